// The server's call queue (src/server/call_queue.h), in process over loopback gRPC: handlers that
// may block run on bounded blocking workers while inline calls keep being answered; a full
// queue refuses at once; odsd's server leaves no gRPC callback poller threads; health over the
// queue, including Watch across a shutdown.

#include "call_queue.h"

#include <dirent.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "ods/common/absl_cpu_frequency.h"
#include "ods/common/clock.h"
#include "ods/config/config.h"
#include "ods/engine/engine.h"
#include "ods/server/server.h"
#include "ods/v1/store.grpc.pb.h"

namespace ods::server {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// Store's Get held until `release` is set (on a blocking worker); Put answered inline.
class HeldStore {
 public:
  explicit HeldStore(std::shared_future<void> release) : release_(std::move(release)) {}

  void Get(UnaryCall<v1::GetRequest, v1::GetResponse>& call) {
    entered.fetch_add(1);
    release_.wait();
    call.Finish(OkStatus());
  }
  Status Put(const grpc::ServerContextBase& /*ctx*/, const v1::PutRequest& req,
             v1::PutResponse& resp) {
    resp.add_versions(static_cast<uint64_t>(req.records_size()));
    return OkStatus();
  }

  std::atomic<int> entered{0};  // Gets that reached the handler

 private:
  std::shared_future<void> release_;
};

// ods.v1.Store on a free loopback port, served through a CallQueue built with `options`, and a
// client of it. Serve methods on `calls`, then Start.
class LoopbackStore {
 public:
  explicit LoopbackStore(CallQueueOptions options) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service);
    std::unique_ptr<grpc::ServerCompletionQueue> cq = builder.AddCompletionQueue();
    server_ = builder.BuildAndStart();
    calls = std::make_unique<CallQueue>(std::move(cq), options);
  }
  ~LoopbackStore() {
    if (server_ != nullptr) server_->Shutdown();
    calls->Shutdown();
  }

  bool listening() const { return server_ != nullptr; }
  // Starts the queue and connects the client.
  void Start() {
    calls->Start();
    PrimeAbslCpuFrequency();  // before connecting: see absl_cpu_frequency.h
    stub_ = v1::Store::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                                   grpc::InsecureChannelCredentials()));
  }
  // A Get of nothing, and a Put of `records` empty records; thread-safe.
  grpc::Status Get() {
    v1::GetRequest req;
    v1::GetResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return stub_->Get(&ctx, req, &resp);
  }
  grpc::Status Put(int records, v1::PutResponse* resp_out = nullptr) {
    v1::PutRequest req;
    for (int i = 0; i < records; ++i) req.add_records();
    v1::PutResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    grpc::Status status = stub_->Put(&ctx, req, &resp);
    if (resp_out != nullptr) *resp_out = resp;
    return status;
  }

  v1::Store::AsyncService service;
  std::unique_ptr<CallQueue> calls;

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Store::Stub> stub_;
};

// With one thread on the queue (odsd's default) and with two.
class CallQueueTest : public ::testing::TestWithParam<size_t> {};
INSTANTIATE_TEST_SUITE_P(Threads, CallQueueTest, ::testing::Values(1, 2));

TEST_P(CallQueueTest, BlockingHandlersWaitOnBoundedWorkersWhileInlineCallsAreAnswered) {
  std::promise<void> release;
  HeldStore store(release.get_future().share());
  LoopbackStore loopback({.threads = GetParam(), .blocking_workers = 1, .max_blocking_queued = 1});
  ASSERT_TRUE(loopback.listening());
  CallQueue& calls = *loopback.calls;
  calls.Serve(&loopback.service, &v1::Store::AsyncService::RequestGet, &store, &HeldStore::Get,
              CallQueue::Runs::kBlocking);
  calls.Serve(&loopback.service, &v1::Store::AsyncService::RequestPut, &store, &HeldStore::Put);
  loopback.Start();
  auto get = [&loopback] { return loopback.Get(); };

  // The first Get holds the only worker, the second waits for it: the queue is full.
  std::future<grpc::Status> held = std::async(std::launch::async, get);
  while (store.entered.load() != 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::future<grpc::Status> waiting = std::async(std::launch::async, get);
  while (calls.blocking_queued() != 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));

  EXPECT_EQ(calls.blocking_refused(), 0u);
  const grpc::Status refused = get();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(calls.blocking_refused(), 1u);
  EXPECT_NE(refused.error_message().find("1 calls already wait for the server's 1 blocking "
                                         "workers"),
            std::string::npos)
      << refused.error_message();

  // An inline method is answered while both Gets wait.
  v1::PutResponse put_resp;
  const grpc::Status put_status = loopback.Put(2, &put_resp);
  EXPECT_TRUE(put_status.ok()) << put_status.error_message();
  ASSERT_EQ(put_resp.versions_size(), 1);
  EXPECT_EQ(put_resp.versions(0), 2u);
  EXPECT_EQ(held.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);

  release.set_value();
  EXPECT_TRUE(held.get().ok());
  EXPECT_TRUE(waiting.get().ok());
}

// Store's Put that spins for `spin` on whatever thread runs it, recording which threads ran
// Puts and how many ran at once.
class SpinningStore {
 public:
  explicit SpinningStore(std::chrono::microseconds spin) : spin_(spin) {}

  Status Put(const grpc::ServerContextBase& /*ctx*/, const v1::PutRequest& /*req*/,
             v1::PutResponse& /*resp*/) {
    const int now_running = running_.fetch_add(1) + 1;
    int seen = most_at_once.load();
    while (now_running > seen && !most_at_once.compare_exchange_weak(seen, now_running)) {
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads_.push_back(std::this_thread::get_id());
    }
    const auto until = std::chrono::steady_clock::now() + spin_;
    while (std::chrono::steady_clock::now() < until) {
    }
    running_.fetch_sub(1);
    return OkStatus();
  }
  std::vector<std::thread::id> threads() {
    std::lock_guard<std::mutex> lock(mu_);
    return threads_;
  }

  std::atomic<int> most_at_once{0};

 private:
  const std::chrono::microseconds spin_;
  std::atomic<int> running_{0};
  std::mutex mu_;
  std::vector<std::thread::id> threads_;  // guarded by mu_
};

// Runs::kInlineOrSpill: calls that find the queue's thread idle run on it; a burst that keeps it
// busy past spill_after_micros has calls run on a blocking worker as well, at most max_spilled
// at a time; with no worker idle nothing spills; all are answered.
TEST(CallQueueSpillTest, ABacklogSpillsToOneIdleWorkerAndAnIdleQueueRunsInline) {
  SpinningStore store(std::chrono::milliseconds(2));
  std::promise<void> release;
  HeldStore held_store(release.get_future().share());
  LoopbackStore loopback(
      {.threads = 1, .blocking_workers = 1, .spill_after_micros = 1000, .max_spilled = 1});
  ASSERT_TRUE(loopback.listening());
  CallQueue& calls = *loopback.calls;
  calls.Serve(&loopback.service, &v1::Store::AsyncService::RequestGet, &held_store, &HeldStore::Get,
              CallQueue::Runs::kBlocking);
  calls.Serve(&loopback.service, &v1::Store::AsyncService::RequestPut, &store, &SpinningStore::Put,
              CallQueue::Runs::kInlineOrSpill);
  loopback.Start();
  auto put = [&loopback] { return loopback.Put(0); };

  // One call at a time, with pauses: the queue's thread is never busy for long.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(put().ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(calls.spilled(), 0u);
  const std::vector<std::thread::id> idle = store.threads();
  ASSERT_EQ(idle.size(), 3u);
  const std::thread::id queue_thread = idle[0];
  for (std::thread::id t : idle) EXPECT_EQ(t, queue_thread);

  // A burst of 24 calls of 2 ms each keeps the thread busy: some spill, never two at once.
  std::vector<std::future<grpc::Status>> burst;
  for (int i = 0; i < 24; ++i) burst.push_back(std::async(std::launch::async, put));
  for (std::future<grpc::Status>& f : burst) EXPECT_TRUE(f.get().ok());
  EXPECT_GE(calls.spilled(), 1u);
  const std::vector<std::thread::id> all = store.threads();
  ASSERT_EQ(all.size(), 27u);
  size_t on_workers = 0;
  for (std::thread::id t : all) on_workers += t != queue_thread ? 1 : 0;
  EXPECT_EQ(on_workers, calls.spilled());
  EXPECT_LE(store.most_at_once.load(), 2);  // the queue's thread and one spilled call

  // A held Get occupies the only worker: the same burst runs inline, none waits behind it.
  std::future<grpc::Status> get =
      std::async(std::launch::async, [&loopback] { return loopback.Get(); });
  while (held_store.entered.load() != 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const uint64_t spilled_before = calls.spilled();
  burst.clear();
  for (int i = 0; i < 24; ++i) burst.push_back(std::async(std::launch::async, put));
  for (std::future<grpc::Status>& f : burst) EXPECT_TRUE(f.get().ok());
  EXPECT_EQ(calls.spilled(), spilled_before);
  EXPECT_EQ(get.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  release.set_value();
  EXPECT_TRUE(get.get().ok());
}

// Names of this process's threads (/proc/self/task/*/comm).
std::vector<std::string> ThreadNames() {
  std::vector<std::string> names;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return names;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string name;
    std::getline(comm, name);
    names.push_back(name);
  }
  closedir(dir);
  return names;
}

class ServerHealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.source = "call_queue_test";
    config_.server.shards = 2;
    config_.server.grpc_listen = "127.0.0.1:0";
    config_.server.admin_listen = "";
    Result<std::unique_ptr<engine::Engine>> engine = engine::Engine::Create(config_, SystemClock());
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(engine).value();
    Result<std::unique_ptr<Server>> server = Server::Start(*engine_, config_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    PrimeAbslCpuFrequency();  // before connecting: see absl_cpu_frequency.h
    health_ = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials()));
  }

  config::Config config_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

// gRPC's callback API polls from threads of its own ("nexting_thread"), which hand the poller
// role to each other and to the queue's thread on every event: none may be left.
TEST_F(ServerHealthTest, NoCallbackPollerThreads) {
  HealthCheckRequest req;
  HealthCheckResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(health_->Check(&ctx, req, &resp).ok());
  for (const std::string& name : ThreadNames()) EXPECT_NE(name, "nexting_thread");
}

TEST_F(ServerHealthTest, CheckKnowsTheServerAndNamesAnUnknownService) {
  HealthCheckRequest req;
  HealthCheckResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(health_->Check(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.status(), HealthCheckResponse::SERVING);

  req.set_service("ods.v1.Nope");
  grpc::ClientContext unknown_ctx;
  const grpc::Status unknown = health_->Check(&unknown_ctx, req, &resp);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(unknown.error_message().find("unknown service 'ods.v1.Nope'"), std::string::npos)
      << unknown.error_message();
}

TEST_F(ServerHealthTest, WatchSeesServingThenNotServingAtShutdown) {
  HealthCheckRequest req;
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> watch = health_->Watch(&ctx, req);
  HealthCheckRequest other;
  other.set_service("ods.v1.Nope");
  grpc::ClientContext other_ctx;
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> unknown =
      health_->Watch(&other_ctx, other);

  HealthCheckResponse resp;
  ASSERT_TRUE(watch->Read(&resp));
  EXPECT_EQ(resp.status(), HealthCheckResponse::SERVING);
  ASSERT_TRUE(unknown->Read(&resp));
  EXPECT_EQ(resp.status(), HealthCheckResponse::SERVICE_UNKNOWN);

  const auto start = std::chrono::steady_clock::now();
  std::thread stop([this] { server_->Shutdown(5'000'000); });
  ASSERT_TRUE(watch->Read(&resp));
  EXPECT_EQ(resp.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(watch->Read(&resp));
  const grpc::Status ended = watch->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE) << ended.error_message();
  EXPECT_FALSE(unknown->Read(&resp));
  EXPECT_EQ(unknown->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  stop.join();
  // The watches ended the drain: it did not wait out the 5 s grace.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

}  // namespace
}  // namespace ods::server
