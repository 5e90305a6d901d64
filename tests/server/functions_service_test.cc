// ods.v1.Functions (Execute) and the function RPCs of ods.v1.Admin against a real odsd process
// over gRPC: registration and versions, procedures on records, per-key and whole-call errors, and
// a runaway procedure that must not stall reads.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ods/common/hash.h"
#include "ods/v1/admin.grpc.pb.h"
#include "ods/v1/functions.grpc.pb.h"
#include "ods/v1/store.grpc.pb.h"
#include "support/odsd_process.h"

namespace ods {
namespace {

using ::ods::testing::OdsdProcess;
using ::ods::testing::TempDir;

constexpr uint32_t kShards = 4;

// `bump` comes from config (a file beside it); everything else is registered by the tests.
constexpr char kConfig[] = R"(
server: {shards: 4}
logging: {level: warn}
limits: {max_batch_size: 50, max_record_bytes: 64KiB, max_message_bytes: 1MiB}
tables:
  profile:
    key: user_id
    fields: {age: int64, score: double}
  counters:
    key: id
functions:
  bump:
    kind: procedure
    source: lua/bump.lua
    limits: {instructions: 100000, memory: 256KiB, wall_time: 50ms}
)";

constexpr char kBump[] = R"(
function execute(record, args, key)
  local n = (record and record.n or 0) + (args.by or 1)
  return n, {n = n}
end
)";

// The shard owning `key` of `table`: the documented routing contract (Engine::ShardOf).
uint32_t ShardOf(const std::string& table, const std::string& key) {
  return static_cast<uint32_t>(StableHash64(key, StableHash64(table, 0x6f6473)) % kShards);
}

// Keys of `table` owned by `shard`, `n` of them.
std::vector<std::string> KeysOnShard(const std::string& table, uint32_t shard, size_t n) {
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < n; ++i) {
    const std::string key = "k" + std::to_string(i);
    if (ShardOf(table, key) == shard) keys.push_back(key);
  }
  return keys;
}

class FunctionsServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::filesystem::create_directories(dir_->path() + "/lua");
    std::ofstream(dir_->path() + "/lua/bump.lua") << kBump;
    const std::string path = dir_->path() + "/odsd.yaml";
    std::ofstream(path) << kConfig;
    odsd_ = new OdsdProcess();
    ASSERT_TRUE(odsd_->Start({"--config", path})) << odsd_->error();
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(odsd_->Stop(SIGTERM, 10000), 0) << odsd_->Stderr();
    delete odsd_;
    delete dir_;
  }

  void SetUp() override {
    ASSERT_NE(odsd_, nullptr);
    auto channel = grpc::CreateChannel(odsd_->grpc_address(), grpc::InsecureChannelCredentials());
    functions_ = v1::Functions::NewStub(channel);
    admin_ = v1::Admin::NewStub(channel);
    store_ = v1::Store::NewStub(channel);
  }

  grpc::Status Register(const std::string& name, const std::string& kind, const std::string& source,
                        v1::RegisterFunctionResponse* out = nullptr, int64_t wall_micros = 0,
                        uint64_t instructions = 0) {
    v1::RegisterFunctionRequest req;
    req.set_name(name);
    req.set_kind(kind);
    req.set_source(source);
    req.set_max_wall_micros(wall_micros);
    req.set_max_instructions(instructions);
    v1::RegisterFunctionResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = admin_->RegisterFunction(&ctx, req, &resp);
    if (out != nullptr) *out = resp;
    return s;
  }

  grpc::Status Execute(const std::string& fn, const std::string& table,
                       const std::vector<std::string>& keys, v1::ExecuteResponse& resp,
                       const std::map<std::string, v1::Value>& args = {}) {
    v1::ExecuteRequest req;
    req.set_function(fn);
    req.set_table(table);
    for (const std::string& k : keys) req.add_keys(k);
    for (const auto& [name, value] : args) (*req.mutable_args())[name] = value;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return functions_->Execute(&ctx, req, &resp);
  }

  static v1::Value Int(int64_t v) {
    v1::Value out;
    out.set_int64_value(v);
    return out;
  }

  static TempDir* dir_;
  static OdsdProcess* odsd_;
  std::unique_ptr<v1::Functions::Stub> functions_;
  std::unique_ptr<v1::Admin::Stub> admin_;
  std::unique_ptr<v1::Store::Stub> store_;
};

TempDir* FunctionsServiceTest::dir_ = nullptr;
OdsdProcess* FunctionsServiceTest::odsd_ = nullptr;

TEST_F(FunctionsServiceTest, ConfigProcedureUpdatesRecordsAndReturnsAValuePerKey) {
  v1::ExecuteResponse resp;
  grpc::Status s = Execute("bump", "counters", {"cfg-a", "cfg-b", "cfg-a"}, resp, {{"by", Int(5)}});
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.function_version(), 1u);
  ASSERT_EQ(resp.results_size(), 3);
  EXPECT_EQ(resp.results(0).key(), "cfg-a");
  EXPECT_EQ(resp.results(0).code(), 0);
  EXPECT_EQ(resp.results(0).value().int64_value(), 5);
  EXPECT_TRUE(resp.results(0).written());
  EXPECT_EQ(resp.results(2).value().int64_value(), 10);

  v1::GetRequest get;
  get.set_table("counters");
  get.add_keys("cfg-a");
  v1::GetResponse got;
  grpc::ClientContext ctx;
  ASSERT_TRUE(store_->Get(&ctx, get, &got).ok());
  ASSERT_TRUE(got.results(0).found());
  EXPECT_EQ(got.results(0).record().fields().at("n").int64_value(), 10);
  EXPECT_EQ(got.results(0).record().version(), resp.results(2).version());
}

TEST_F(FunctionsServiceTest, RegisteringANameAgainMakesANewVersionAndListsIt) {
  v1::RegisterFunctionResponse first;
  ASSERT_TRUE(Register("tagger", "procedure", "function execute() return 'one' end", &first).ok());
  EXPECT_EQ(first.function().version(), 1u);
  v1::RegisterFunctionResponse second;
  ASSERT_TRUE(Register("tagger", "procedure", "function execute() return 'two' end", &second).ok());
  EXPECT_EQ(second.function().version(), 2u);
  EXPECT_EQ(second.function().kind(), "procedure");
  EXPECT_EQ(second.function().max_instructions(), 1'000'000u);

  v1::ExecuteResponse resp;
  ASSERT_TRUE(Execute("tagger", "counters", {"t"}, resp).ok());
  EXPECT_EQ(resp.function_version(), 2u);
  EXPECT_EQ(resp.results(0).value().string_value(), "two");

  v1::ListFunctionsResponse list;
  grpc::ClientContext ctx;
  ASSERT_TRUE(admin_->ListFunctions(&ctx, v1::ListFunctionsRequest(), &list).ok());
  bool found = false;
  for (const v1::FunctionDefinition& f : list.functions()) {
    if (f.name() == "tagger") {
      found = true;
      EXPECT_EQ(f.version(), 2u);
    }
    if (f.name() == "bump") {
      EXPECT_EQ(f.max_wall_micros(), 50'000);
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(FunctionsServiceTest, BadRegistrationsAreInvalidArgumentAndChangeNothing) {
  ASSERT_TRUE(Register("keeper", "procedure", "function execute() return 1 end").ok());
  grpc::Status syntax = Register("keeper", "procedure", "function execute()\n  return )\nend");
  EXPECT_EQ(syntax.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(syntax.error_message().find("function keeper v2: line 2:"), std::string::npos)
      << syntax.error_message();
  grpc::Status kind = Register("keeper", "derived", "function compute() end");
  EXPECT_EQ(kind.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status unknown_kind = Register("other", "macro", "function execute() end");
  EXPECT_EQ(unknown_kind.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(unknown_kind.error_message().find("unknown kind 'macro'"), std::string::npos);
  grpc::Status entries = Register("agg", "aggregator", "function init() end");
  EXPECT_EQ(entries.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(entries.error_message().find("'update', 'merge', 'finalize'"), std::string::npos);

  v1::ExecuteResponse resp;
  ASSERT_TRUE(Execute("keeper", "counters", {"x"}, resp).ok());
  EXPECT_EQ(resp.function_version(), 1u);
}

TEST_F(FunctionsServiceTest, WholeCallErrorsNameTheProblem) {
  v1::ExecuteResponse resp;
  grpc::Status s = Execute("no_such_fn", "counters", {"a"}, resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("unknown function 'no_such_fn'"), std::string::npos);
  s = Execute("bump", "no_such_table", {"a"}, resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  s = Execute("bump", "counters", {}, resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = Execute("bump", "counters", {"a"}, resp, {{"by", v1::Value()}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("argument 'by' has no value"), std::string::npos);
  ASSERT_TRUE(Register("blend", "derived", "function compute(a) return a end").ok());
  s = Execute("blend", "counters", {"a"}, resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("only procedures"), std::string::npos);
}

TEST_F(FunctionsServiceTest, PerKeyErrorsNameTableKeyFieldAndLeaveRecordsUnchanged) {
  ASSERT_TRUE(Register("set_age", "procedure", R"(
function execute(r, args, key)
  if key == "oops" then error("bad key " .. key) end
  if key == "typo" then return nil, {age = "forty"} end
  return "ok", {age = args.age}
end)")
                  .ok());
  v1::ExecuteResponse resp;
  ASSERT_TRUE(
      Execute("set_age", "profile", {"fine", "oops", "typo"}, resp, {{"age", Int(40)}}).ok());
  EXPECT_EQ(resp.results(0).code(), 0);
  EXPECT_EQ(resp.results(1).code(), static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  EXPECT_NE(resp.results(1).message().find("function set_age v1: line 3: bad key oops"),
            std::string::npos)
      << resp.results(1).message();
  EXPECT_EQ(resp.results(2).code(), static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  const std::string& m = resp.results(2).message();
  EXPECT_NE(m.find("'profile'"), std::string::npos) << m;
  EXPECT_NE(m.find("typo"), std::string::npos) << m;
  EXPECT_NE(m.find("age"), std::string::npos) << m;
  EXPECT_FALSE(resp.results(2).written());

  v1::GetRequest get;
  get.set_table("profile");
  get.add_keys("fine");
  get.add_keys("typo");
  v1::GetResponse got;
  grpc::ClientContext ctx;
  ASSERT_TRUE(store_->Get(&ctx, get, &got).ok());
  EXPECT_TRUE(got.results(0).found());
  EXPECT_FALSE(got.results(1).found());
}

// A procedure stuck in an infinite loop burns its wall-clock budget, again and again, on one
// shard. Reads of keys on every shard (its own included) must keep answering meanwhile: each
// read must take far less than one budget, and reads must go on while the runaway runs.
TEST_F(FunctionsServiceTest, RunawayProcedureDoesNotStallReads) {
  constexpr int64_t kWallBudgetMicros = 400'000;
  constexpr int kRunawayCalls = 3;
  ASSERT_TRUE(Register("spin", "procedure", "function execute(r)\n  while true do end\nend",
                       nullptr, kWallBudgetMicros, /*instructions=*/1'000'000'000'000)
                  .ok());
  const std::string runaway_key = KeysOnShard("counters", 0, 1)[0];
  std::vector<std::string> read_keys;
  for (uint32_t s = 0; s < kShards; ++s) {
    for (const std::string& k : KeysOnShard("counters", s, 2)) read_keys.push_back(k);
  }
  {
    v1::PutRequest put;
    put.set_table("counters");
    for (const std::string& k : read_keys) {
      v1::Record* r = put.add_records();
      r->set_key(k);
      (*r->mutable_fields())["n"] = Int(1);
    }
    v1::PutResponse put_resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(store_->Put(&ctx, put, &put_resp).ok());
  }

  std::atomic<bool> running{true};
  std::vector<v1::ExecuteResponse> runaway(kRunawayCalls);
  std::vector<grpc::Status> runaway_status(kRunawayCalls);
  const auto runaway_start = std::chrono::steady_clock::now();
  std::thread spinner([&] {
    for (int i = 0; i < kRunawayCalls; ++i) {
      runaway_status[i] = Execute("spin", "counters", {runaway_key}, runaway[i]);
    }
    running = false;
  });

  std::vector<double> latencies_ms;
  size_t next = 0;
  while (running) {
    v1::GetRequest get;
    get.set_table("counters");
    get.add_keys(read_keys[next++ % read_keys.size()]);
    v1::GetResponse got;
    grpc::ClientContext ctx;
    const auto start = std::chrono::steady_clock::now();
    const grpc::Status s = store_->Get(&ctx, get, &got);
    const auto end = std::chrono::steady_clock::now();
    if (!s.ok() || got.results_size() != 1 || !got.results(0).found()) {
      ADD_FAILURE() << "read failed: " << s.error_message();
      break;
    }
    if (running) {
      latencies_ms.push_back(std::chrono::duration<double, std::milli>(end - start).count());
    }
  }
  spinner.join();
  ASSERT_FALSE(latencies_ms.empty());
  const double runaway_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - runaway_start)
          .count();

  for (int i = 0; i < kRunawayCalls; ++i) {
    ASSERT_TRUE(runaway_status[i].ok()) << runaway_status[i].error_message();
    EXPECT_EQ(runaway[i].results(0).code(), static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED));
    EXPECT_NE(runaway[i].results(0).message().find("function spin v1: line 2: wall-clock budget"),
              std::string::npos)
        << runaway[i].results(0).message();
  }
  // The runaway really ran: about kRunawayCalls budgets of wall time.
  EXPECT_GE(runaway_ms, kRunawayCalls * kWallBudgetMicros / 1000.0 * 0.9);
  const double worst_ms = *std::max_element(latencies_ms.begin(), latencies_ms.end());
  std::sort(latencies_ms.begin(), latencies_ms.end());
  const double median_ms = latencies_ms[latencies_ms.size() / 2];
  std::cout << "reads during runaway: " << latencies_ms.size() << ", median " << median_ms
            << " ms, worst " << worst_ms << " ms, runaway " << runaway_ms << " ms\n";
  // Blocked reads would wait for the whole runaway (>= 1.2 s) or at least one budget (400 ms):
  // generous bounds that hold on a loaded machine and under sanitizers.
  EXPECT_GE(latencies_ms.size(), 20u);
  EXPECT_LT(worst_ms, kWallBudgetMicros / 1000.0 / 2);
}

}  // namespace
}  // namespace ods
