// Tier moves are crash-safe (issue #6 point 7): a real odsd is killed (SIGKILL, by the
// ODS_CRASH_POINT fault injection) at each step of a move to the backing store, of a move to
// SSD, of a promotion out of the backing store and of the deletion of outdated backing copies;
// restarted on the same data dir, every record is readable with its value, and records can be
// moved again. Real RocksDB and directory backing store; real gRPC.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <ostream>
#include <memory>
#include <string>
#include <vector>

#include "ods/v1/admin.grpc.pb.h"
#include "ods/v1/store.grpc.pb.h"
#include "support/odsd_process.h"

namespace ods {
namespace {

using ::ods::testing::OdsdProcess;
using ::ods::testing::TempDir;

constexpr int kRecords = 20;

std::string Key(int i) { return "k" + std::to_string(i); }

std::vector<std::string> AllKeys() {
  std::vector<std::string> keys;
  for (int i = 0; i < kRecords; ++i) keys.push_back(Key(i));
  return keys;
}

std::shared_ptr<grpc::Channel> Channel(const OdsdProcess& odsd) {
  return grpc::CreateChannel(odsd.grpc_address(), grpc::InsecureChannelCredentials());
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return ctx;
}

grpc::Status Move(const OdsdProcess& odsd, const std::string& to) {
  auto stub = v1::Admin::NewStub(Channel(odsd));
  v1::MoveRecordsRequest req;
  req.set_table("t");
  for (const std::string& k : AllKeys()) req.add_keys(k);
  req.set_to(to);
  v1::MoveRecordsResponse resp;
  return stub->MoveRecords(Context().get(), req, &resp);
}

// The x of every record (-1 absent), or an empty vector when the call failed.
std::vector<int64_t> GetAll(const OdsdProcess& odsd, grpc::Status* status = nullptr) {
  auto stub = v1::Store::NewStub(Channel(odsd));
  v1::GetRequest req;
  req.set_table("t");
  for (const std::string& k : AllKeys()) req.add_keys(k);
  v1::GetResponse resp;
  const grpc::Status s = stub->Get(Context().get(), req, &resp);
  if (status != nullptr) *status = s;
  std::vector<int64_t> out;
  if (!s.ok()) return out;
  for (const auto& r : resp.results()) {
    out.push_back(r.found() ? r.record().fields().at("x").int64_value() : -1);
  }
  return out;
}

std::vector<int64_t> Expected() {
  std::vector<int64_t> x;
  for (int i = 0; i < kRecords; ++i) x.push_back(i);
  return x;
}

enum class Trigger { kMoveToSsd, kMoveToBacking, kPromoteFromBacking, kDeleteGarbage };

struct CrashCase {
  const char* point;
  Trigger trigger;
};

void PrintTo(const CrashCase& c, std::ostream* os) { *os << c.point; }

class TierCrashTest : public ::testing::TestWithParam<CrashCase> {
 protected:
  std::string WriteConfig() {
    const std::string path = dir_.path() + "/odsd.yaml";
    std::ofstream(path) << R"(server: {shards: 2}
storage: {durability: sync, backing: {kind: directory}}
tables:
  t:
    key: id
    fields: {x: int64}
    tiering: [{to: ssd, when: {idle_for: 1h}}]
)";
    return path;
  }

  TempDir dir_;
  TempDir data_;
};

TEST_P(TierCrashTest, EveryRecordIsReadableAfterACrashAtTheStep) {
  const CrashCase c = GetParam();
  const std::string config = WriteConfig();
  {
    OdsdProcess odsd;
    setenv("ODS_CRASH_POINT", c.point, 1);
    const bool started = odsd.Start({"--config", config, "--data-dir", data_.path()});
    unsetenv("ODS_CRASH_POINT");
    ASSERT_TRUE(started) << odsd.error();
    auto store = v1::Store::NewStub(Channel(odsd));
    v1::PutRequest put;
    put.set_table("t");
    for (int i = 0; i < kRecords; ++i) {
      v1::Record* r = put.add_records();
      r->set_key(Key(i));
      (*r->mutable_fields())["x"].set_int64_value(i);
    }
    v1::PutResponse put_resp;
    ASSERT_TRUE(store->Put(Context().get(), put, &put_resp).ok());

    switch (c.trigger) {
      case Trigger::kMoveToSsd:
        EXPECT_FALSE(Move(odsd, "ssd").ok());
        break;
      case Trigger::kMoveToBacking:
        EXPECT_FALSE(Move(odsd, "backing").ok());
        break;
      case Trigger::kPromoteFromBacking: {
        ASSERT_TRUE(Move(odsd, "backing").ok());
        grpc::Status s;
        GetAll(odsd, &s);
        EXPECT_FALSE(s.ok());
        break;
      }
      case Trigger::kDeleteGarbage:
        // Promotion leaves the backing copies outdated; the sweeper deletes them within ~1 s.
        ASSERT_TRUE(Move(odsd, "backing").ok());
        EXPECT_EQ(GetAll(odsd), Expected());
        break;
    }
    for (int i = 0; i < 100 && odsd.Stderr().find("ODS_CRASH_POINT: killing") == std::string::npos;
         ++i) {
      usleep(50'000);
    }
    ASSERT_NE(odsd.Stderr().find(std::string("killing the process at ") + c.point),
              std::string::npos)
        << odsd.Stderr();
    EXPECT_EQ(odsd.Stop(SIGTERM, 10000), 128 + SIGKILL);
  }
  OdsdProcess again;
  ASSERT_TRUE(again.Start({"--config", config, "--data-dir", data_.path()})) << again.error();
  EXPECT_EQ(GetAll(again), Expected()) << "after a crash at " << c.point;
  // Moves go on working from whatever state the crash left.
  ASSERT_TRUE(Move(again, "backing").ok());
  EXPECT_EQ(GetAll(again), Expected());
  ASSERT_TRUE(Move(again, "ssd").ok());
  EXPECT_EQ(GetAll(again), Expected());
  EXPECT_EQ(again.Stop(SIGTERM, 10000), 0) << again.Stderr();
}

INSTANTIATE_TEST_SUITE_P(
    Steps, TierCrashTest,
    ::testing::Values(CrashCase{"tier.demote_ssd.done", Trigger::kMoveToSsd},
                      CrashCase{"tier.move.backing_written", Trigger::kMoveToBacking},
                      CrashCase{"tier.move.ssd_marked", Trigger::kMoveToBacking},
                      CrashCase{"tier.move.done", Trigger::kMoveToBacking},
                      CrashCase{"tier.promote.ssd_written", Trigger::kPromoteFromBacking},
                      CrashCase{"tier.promote.done", Trigger::kPromoteFromBacking},
                      CrashCase{"tier.garbage.deleted", Trigger::kDeleteGarbage}),
    [](const ::testing::TestParamInfo<CrashCase>& info) {
      std::string name = info.param.point;
      for (char& ch : name) ch = ch == '.' ? '_' : ch;
      return name;
    });

}  // namespace
}  // namespace ods
