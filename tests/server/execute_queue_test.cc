// Execute's worker queue is bounded: with every worker held by a runaway procedure and the queue
// full, the next call is refused at once with RESOURCE_EXHAUSTED instead of waiting in an
// ever-growing queue. In process, over real gRPC on loopback, with a real engine.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "call_queue.h"
#include "functions_service.h"
#include "ods/common/absl_cpu_frequency.h"
#include "ods/common/clock.h"
#include "ods/config/config.h"
#include "ods/engine/engine.h"
#include "ods/v1/functions.grpc.pb.h"

namespace ods::server {
namespace {

TEST(ExecuteQueueTest, ACallBeyondTheQueueLimitIsRefusedAtOnce) {
  config::Config config;
  config.source = "execute_queue_test";
  config.server.shards = 2;
  config::TableConfig table;
  table.name = "t";
  table.key_field = "id";
  config.tables.push_back(table);
  Result<std::unique_ptr<engine::Engine>> engine = engine::Engine::Create(config, SystemClock());
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  engine::FunctionSpec spin;
  spin.name = "spin";
  spin.kind = engine::FunctionKind::kProcedure;
  spin.source = "function execute(record, args, key) while true do end end";
  spin.limits.instructions = 1'000'000'000'000;
  spin.limits.wall_micros = 2'000'000;
  ASSERT_TRUE((*engine)->RegisterFunction(spin).ok());

  FunctionsService service(**engine, nullptr, /*workers=*/1, /*max_queued=*/1);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::ServerCompletionQueue> cq = builder.AddCompletionQueue();
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  CallQueue calls(std::move(cq));
  service.ServeOn(calls);
  calls.Start();
  PrimeAbslCpuFrequency();  // before connecting: see absl_cpu_frequency.h
  auto stub = v1::Functions::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  auto call = [&stub](grpc::Status& status) {
    v1::ExecuteRequest req;
    req.set_function("spin");
    req.set_table("t");
    req.add_keys("k");
    v1::ExecuteResponse resp;
    grpc::ClientContext ctx;
    status = stub->Execute(&ctx, req, &resp);
  };

  grpc::Status first;
  grpc::Status second;
  grpc::Status third;
  std::thread running([&] { call(first); });  // holds the only worker for its 2 s budget
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::thread waiting([&] { call(second); });  // fills the queue
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto start = std::chrono::steady_clock::now();
  call(third);
  const auto waited = std::chrono::steady_clock::now() - start;
  running.join();
  waiting.join();

  EXPECT_TRUE(first.ok()) << first.error_message();  // per-key budget errors, call OK
  const bool third_refused = third.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
  const bool second_refused = second.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
  ASSERT_TRUE(third_refused || second_refused)
      << "second: " << second.error_message() << ", third: " << third.error_message();
  const grpc::Status& refused = third_refused ? third : second;
  EXPECT_NE(refused.error_message().find("Execute calls already wait for the 1 workers"),
            std::string::npos)
      << refused.error_message();
  if (third_refused) {
    // Refused at once, not after the runaway's budget.
    EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(waited).count(), 1000);
  }
  std::string metrics;
  service.AppendMetrics(metrics);
  EXPECT_NE(metrics.find("\nods_execute_refused_total 1\n"), std::string::npos) << metrics;
  server->Shutdown();
  calls.Shutdown();
}

}  // namespace
}  // namespace ods::server
