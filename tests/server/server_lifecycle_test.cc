// odsd as a process: flags, config errors, health, reflection, admin HTTP, limits that need their
// own config (RAM budget, message size, concurrent streams per connection), and clean shutdown on
// SIGTERM/SIGINT while clients are calling.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "ods/v1/features.grpc.pb.h"
#include "ods/v1/store.grpc.pb.h"
#include "support/odsd_process.h"
#include "support/test_util.h"

namespace ods {
namespace {

using ::ods::testing::HttpGet;
using ::ods::testing::OdsdProcess;
using ::ods::testing::OdsdPath;
using ::ods::testing::RunCommand;
using ::ods::testing::SourceDir;
using ::ods::testing::TempDir;

std::string WriteConfig(const TempDir& dir, const std::string& text) {
  const std::string path = dir.path() + "/odsd.yaml";
  std::ofstream(path) << text;
  return path;
}

// A Store client connected to `odsd`.
std::unique_ptr<v1::Store::Stub> StoreStub(const OdsdProcess& odsd) {
  return v1::Store::NewStub(
      grpc::CreateChannel(odsd.grpc_address(), grpc::InsecureChannelCredentials()));
}

// grpc.health.v1.Health/Check for `service` with hand-encoded protobuf bytes (the health proto
// is not installed by Debian). Returns the ServingStatus enum value, or -1 on RPC failure.
int HealthCheck(const std::string& address, const std::string& service) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  std::string request;
  if (!service.empty()) {
    request.push_back(0x0a);  // field 1, length-delimited
    request.push_back(static_cast<char>(service.size()));
    request += service;
  }
  grpc::Slice slice(request);
  grpc::ByteBuffer req_buf(&slice, 1);
  grpc::ByteBuffer resp_buf;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", req_buf, &cq);
  call->StartCall();
  grpc::Status status;
  call->Finish(&resp_buf, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  if (!cq.Next(&tag, &ok) || !ok || !status.ok()) return -1;
  std::vector<grpc::Slice> slices;
  if (!resp_buf.Dump(&slices).ok()) return -1;
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (bytes.empty()) return 0;  // status UNKNOWN (0) is encoded as nothing
  if (bytes.size() != 2 || bytes[0] != 0x08) return -1;
  return bytes[1];
}

TEST(OdsdFlagsTest, VersionPrintsVersionAndExitsZero) {
  auto r = RunCommand({OdsdPath(), "--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("odsd ", 0), 0u) << r.out;
}

TEST(OdsdFlagsTest, HelpListsEveryFlag) {
  auto r = RunCommand({OdsdPath(), "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag : {"--config", "--check-config", "--grpc-listen", "--admin-listen",
                           "--data-dir", "--version"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  }
}

TEST(OdsdFlagsTest, UnknownFlagExitsTwo) {
  auto r = RunCommand({OdsdPath(), "--frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--frobnicate"), std::string::npos);
}

TEST(OdsdFlagsTest, CheckConfigAcceptsTheShippedDefault) {
  auto r = RunCommand({OdsdPath(), "--check-config", "--config", SourceDir() + "/config/odsd.yaml"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto embedded = RunCommand({OdsdPath(), "--check-config"});
  EXPECT_EQ(embedded.exit_code, 0) << embedded.err;
}

TEST(OdsdFlagsTest, CheckConfigRejectsBadConfigWithFileLineColumn) {
  TempDir dir;
  const std::string path = WriteConfig(dir, "server:\n  shards: lots\n");
  auto r = RunCommand({OdsdPath(), "--check-config", "--config", path});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(path + ":2:11:"), std::string::npos) << r.err;
}

TEST(OdsdFlagsTest, BadConfigFileStopsStartWithExitOne) {
  TempDir dir;
  const std::string path = WriteConfig(dir, "tables:\n  t: {fields: {a: int64}}\n");
  auto r = RunCommand({OdsdPath(), "--config", path, "--grpc-listen", "127.0.0.1:0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing 'key'"), std::string::npos) << r.err;
}

TEST(OdsdFlagsTest, MissingConfigFileExitsOne) {
  auto r = RunCommand({OdsdPath(), "--config", "/nonexistent/odsd.yaml"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/odsd.yaml"), std::string::npos);
}

TEST(OdsdFlagsTest, BadListenFlagExitsOneNamingTheFlag) {
  auto r = RunCommand({OdsdPath(), "--grpc-listen", "nonsense"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--grpc-listen"), std::string::npos) << r.err;
}

TEST(OdsdServeTest, PortInUseExitsThree) {
  OdsdProcess first;
  ASSERT_TRUE(first.Start()) << first.error();
  TempDir other_data;  // Its own data dir: the port, not the data dir lock, must be what fails.
  auto r = RunCommand({OdsdPath(), "--grpc-listen", first.grpc_address(), "--admin-listen", "",
                       "--data-dir", other_data.path()});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(first.Stop(SIGTERM, 5000), 0);
}

TEST(OdsdServeTest, HealthReportsServing) {
  OdsdProcess odsd;
  ASSERT_TRUE(odsd.Start()) << odsd.error();
  EXPECT_EQ(HealthCheck(odsd.grpc_address(), ""), 1);  // SERVING
  EXPECT_EQ(odsd.Stop(SIGTERM, 5000), 0);
}

TEST(OdsdServeTest, ReflectionListsTheStoreService) {
  OdsdProcess odsd;
  ASSERT_TRUE(odsd.Start()) << odsd.error();
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(
      grpc::CreateChannel(odsd.grpc_address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto stream = stub->ServerReflectionInfo(&ctx);
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_list_services("");
  ASSERT_TRUE(stream->Write(req));
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  stream->WritesDone();
  std::vector<std::string> names;
  for (const auto& s : resp.list_services_response().service()) names.push_back(s.name());
  EXPECT_NE(std::find(names.begin(), names.end(), "ods.v1.Store"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "grpc.health.v1.Health"), names.end());
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(odsd.Stop(SIGTERM, 5000), 0);
}

TEST(OdsdServeTest, AdminEndpointServesHealthzAndMetrics) {
  OdsdProcess odsd;
  ASSERT_TRUE(odsd.Start()) << odsd.error();
  auto stub = StoreStub(odsd);
  v1::PutRequest put;
  put.set_table("user_features");
  v1::Record* r = put.add_records();
  r->set_key("m1");
  (*r->mutable_fields())["x"].set_int64_value(1);
  v1::PutResponse put_resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub->Put(&ctx, put, &put_resp).ok());

  const std::string health = HttpGet(odsd.admin_address(), "/healthz");
  EXPECT_NE(health.find("200 OK"), std::string::npos) << health;
  const std::string metrics = HttpGet(odsd.admin_address(), "/metrics");
  EXPECT_NE(metrics.find("ods_records 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("ods_puts_total 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\nods_grpc_blocking_queued 0\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\nods_grpc_blocking_refused_total 0\n"), std::string::npos) << metrics;
  EXPECT_NE(HttpGet(odsd.admin_address(), "/nope").find("404"), std::string::npos);
  EXPECT_EQ(odsd.Stop(SIGTERM, 5000), 0);
}

TEST(OdsdServeTest, RamBudgetReachedIsResourceExhaustedAndWritesNothing) {
  TempDir dir;
  const std::string path = WriteConfig(dir, R"(
server: {shards: 1}
storage: {ram: {max_bytes: 64KiB}}
tables: {t: {key: id}}
)");
  OdsdProcess odsd;
  ASSERT_TRUE(odsd.Start({"--config", path})) << odsd.error();
  auto stub = StoreStub(odsd);
  grpc::Status last;
  int accepted = 0;
  for (int i = 0; i < 100 && last.ok(); ++i) {
    v1::PutRequest put;
    put.set_table("t");
    v1::Record* r = put.add_records();
    r->set_key("k" + std::to_string(i));
    (*r->mutable_fields())["blob"].set_string_value(std::string(4000, 'x'));
    v1::PutResponse resp;
    grpc::ClientContext ctx;
    last = stub->Put(&ctx, put, &resp);
    if (last.ok()) ++accepted;
  }
  EXPECT_EQ(last.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(last.error_message().find("ram.max_bytes"), std::string::npos) << last.error_message();
  EXPECT_GT(accepted, 5);
  EXPECT_LT(accepted, 17);
  // The rejected key was not written.
  v1::GetRequest get;
  get.set_table("t");
  get.add_keys("k" + std::to_string(accepted));
  v1::GetResponse got;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub->Get(&ctx, get, &got).ok());
  EXPECT_FALSE(got.results(0).found());
  EXPECT_EQ(odsd.Stop(SIGTERM, 5000), 0);
}

TEST(OdsdServeTest, ScanLargerThanOnePageStreamsEveryRecordInOrder) {
  OdsdProcess odsd;
  ASSERT_TRUE(odsd.Start()) << odsd.error();
  auto stub = StoreStub(odsd);
  v1::PutRequest put;
  put.set_table("user_features");
  for (int i = 0; i < 1000; ++i) {
    v1::Record* r = put.add_records();
    r->set_key("p" + std::to_string(10000 + i));
    (*r->mutable_fields())["i"].set_int64_value(i);
  }
  v1::PutResponse put_resp;
  grpc::ClientContext put_ctx;
  ASSERT_TRUE(stub->Put(&put_ctx, put, &put_resp).ok());

  v1::ScanRequest scan;
  scan.set_table("user_features");
  scan.set_prefix("p");
  grpc::ClientContext ctx;
  auto reader = stub->Scan(&ctx, scan);
  v1::ScanResponse page;
  int pages = 0;
  std::vector<std::string> keys;
  while (reader->Read(&page)) {
    ++pages;
    for (const auto& r : page.records()) keys.push_back(r.key());
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(keys.size(), 1000u);
  EXPECT_GT(pages, 1);
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  EXPECT_EQ(odsd.Stop(SIGTERM, 5000), 0);
}

// SIGTERM (or SIGINT) while clients call: odsd exits 0 within 5 s, and every call either
// succeeded or was refused with UNAVAILABLE/CANCELLED — never a crash or another error.
void ExpectCleanStopUnderLoad(int signal) {
  OdsdProcess odsd;
  ASSERT_TRUE(odsd.Start()) << odsd.error();
  auto stub = StoreStub(odsd);
  std::atomic<bool> stop{false};
  std::atomic<int> ok_calls{0};
  std::atomic<int> bad_calls{0};
  std::thread client([&] {
    for (int i = 0; i < 200000 && !stop.load(); ++i) {
      v1::PutRequest put;
      put.set_table("user_features");
      v1::Record* r = put.add_records();
      r->set_key("load" + std::to_string(i % 100));
      (*r->mutable_fields())["i"].set_int64_value(i);
      v1::PutResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      grpc::Status s = stub->Put(&ctx, put, &resp);
      if (s.ok()) {
        ok_calls.fetch_add(1);
      } else if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
                 s.error_code() != grpc::StatusCode::CANCELLED) {
        bad_calls.fetch_add(1);
      }
    }
  });
  ASSERT_TRUE(::ods::testing::WaitUntil([&] { return ok_calls.load() > 50; },
                                        std::chrono::seconds(10)));
  const auto start = std::chrono::steady_clock::now();
  const int code = odsd.Stop(signal, 5000);
  const auto took = std::chrono::steady_clock::now() - start;
  stop.store(true);
  client.join();
  EXPECT_EQ(code, 0) << odsd.Stderr();
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_EQ(bad_calls.load(), 0);
}

TEST(OdsdServeTest, SigtermUnderLoadExitsZeroWithinFiveSeconds) {
  ExpectCleanStopUnderLoad(SIGTERM);
}

TEST(OdsdServeTest, SigintUnderLoadExitsZeroWithinFiveSeconds) { ExpectCleanStopUnderLoad(SIGINT); }

// A channel with a connection of its own (gRPC otherwise shares one between channels to the same
// address), so per-connection limits apply to it alone.
std::shared_ptr<grpc::Channel> OwnConnection(const OdsdProcess& odsd) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(odsd.grpc_address(), grpc::InsecureChannelCredentials(), args);
}

grpc::Status GetWithin(v1::Store::Stub& stub, std::chrono::milliseconds timeout) {
  v1::GetRequest get;
  get.set_table("t");
  get.add_keys("k");
  v1::GetResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  return stub.Get(&ctx, get, &resp);
}

TEST(OdsdLimitsTest, MessageOverMaxMessageBytesIsResourceExhausted) {
  TempDir dir;
  const std::string path = WriteConfig(dir, R"(
server: {shards: 1}
limits: {max_record_bytes: 16KiB, max_message_bytes: 64KiB}
tables: {t: {key: id}}
)");
  OdsdProcess odsd;
  ASSERT_TRUE(odsd.Start({"--config", path})) << odsd.error();
  auto stub = StoreStub(odsd);
  v1::PutRequest put;
  put.set_table("t");
  v1::Record* r = put.add_records();
  r->set_key("k");
  (*r->mutable_fields())["blob"].set_string_value(std::string(100 << 10, 'x'));
  v1::PutResponse resp;
  grpc::ClientContext ctx;
  const grpc::Status s = stub->Put(&ctx, put, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  // The server is still serving after refusing it.
  EXPECT_TRUE(GetWithin(*stub, std::chrono::seconds(5)).ok());
}

TEST(OdsdLimitsTest, CallsBeyondMaxConcurrentStreamsWaitUntilOneEnds) {
  TempDir dir;
  const std::string path = WriteConfig(dir, R"(
server: {shards: 1}
limits: {max_concurrent_streams: 1}
tables: {t: {key: id}}
event_templates: {e: {key: id, timestamp: ts}}
)");
  OdsdProcess odsd;
  ASSERT_TRUE(odsd.Start({"--config", path})) << odsd.error();
  const std::shared_ptr<grpc::Channel> channel = OwnConnection(odsd);
  auto store = v1::Store::NewStub(channel);
  // Connects and learns the server's SETTINGS before the stream is opened.
  ASSERT_TRUE(GetWithin(*store, std::chrono::seconds(5)).ok());

  // An idle StreamEvents call holds the connection's only stream.
  auto features = v1::Features::NewStub(channel);
  grpc::ClientContext stream_ctx;
  v1::PushEventsResponse pushed;
  std::unique_ptr<grpc::ClientWriter<v1::PushEventsRequest>> stream =
      features->StreamEvents(&stream_ctx, &pushed);
  EXPECT_EQ(GetWithin(*store, std::chrono::milliseconds(500)).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  // The limit is per connection: another client is not held up.
  auto other = v1::Store::NewStub(OwnConnection(odsd));
  EXPECT_TRUE(GetWithin(*other, std::chrono::seconds(5)).ok());

  ASSERT_TRUE(stream->WritesDone());
  ASSERT_TRUE(stream->Finish().ok());
  EXPECT_TRUE(GetWithin(*store, std::chrono::seconds(5)).ok());
}

}  // namespace
}  // namespace ods
