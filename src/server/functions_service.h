#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "auth.h"
#include "call_queue.h"
#include "ods/common/latency_histogram.h"
#include "ods/engine/engine.h"
#include "ods/v1/functions.grpc.pb.h"

namespace ods::server {

// ods.v1.Functions, served from a CallQueue. A procedure may run up to its wall-clock budget per
// key, so Execute does not run on the queue's thread (which also serves every Get and Put): the
// handler queues the call to this service's own workers and returns; a worker runs it and
// answers. A runaway procedure thus holds one worker, never the queue's thread; when every
// worker is busy, Execute calls wait in the queue while other RPCs are served as usual.
// Thread-safe; `engine` must outlive the service. The destructor runs the queued calls and joins
// the workers (the gRPC server is shut down first, so nothing is queued after).
class FunctionsService final : public ods::v1::Functions::AsyncService {
 public:
  // `workers` >= 1 threads run Execute calls; at most `max_queued` more wait for one (a call
  // beyond that is refused at once with RESOURCE_EXHAUSTED, so a burst against busy workers
  // cannot grow memory without bound). `auth` (null: keys off) checks each call, for the role
  // and the request's table, on the gRPC thread before it is queued; it must outlive the
  // service.
  static constexpr size_t kDefaultMaxQueued = 1024;
  FunctionsService(engine::Engine& engine, const Authenticator* auth, size_t workers,
                   size_t max_queued = kDefaultMaxQueued);
  ~FunctionsService() override;
  FunctionsService(const FunctionsService&) = delete;
  FunctionsService& operator=(const FunctionsService&) = delete;

  // Errors of the whole call as Engine::Execute (INVALID_ARGUMENT also for an unset arg value);
  // per-key outcomes in results[i].code/message.
  using ExecuteCall = UnaryCall<ods::v1::ExecuteRequest, ods::v1::ExecuteResponse>;
  void HandleExecute(ExecuteCall& call);

  // Serves Execute on `queue` (before it starts).
  void ServeOn(CallQueue& queue);

  // Appends the series of `ods_rpc_handler_seconds` for Execute (from the handler to the
  // worker's answer, queue wait included), after FeaturesService's HELP and TYPE lines, then
  // the gauge `ods_execute_queued` and the counter `ods_execute_refused_total` (queue full).
  void AppendMetrics(std::string& out) const;

 private:
  void Work();

  engine::Engine& engine_;
  const Authenticator* const auth_;
  std::mutex mu_;
  std::condition_variable cv_;
  const size_t max_queued_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  std::atomic<size_t> queued_{0};            // queue_.size(), for scrapes without mu_
  std::atomic<uint64_t> refused_{0};
  bool stop_ = false;  // guarded by mu_
  LatencyHistogram execute_latency_;
  std::vector<std::thread> workers_;  // last: started after the members above exist
};

}  // namespace ods::server
