#pragma once

#include <mutex>
#include <vector>

#include "call_queue.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "ods/common/status.h"

namespace ods::server {

// grpc.health.v1.Health, served from a CallQueue (gRPC's own health service runs on its
// callback API, whose threads would poll beside the queue's). Knows one service, the server as a
// whole (""): SERVING until SetNotServing. Check of any other name answers NOT_FOUND; Watch of
// one answers SERVICE_UNKNOWN and stays open, as the protocol asks. Open to every caller (no API
// key). Thread-safe; must outlive its queue's calls.
class HealthService final : public grpc::health::v1::Health::AsyncService {
 public:
  HealthService() = default;
  HealthService(const HealthService&) = delete;
  HealthService& operator=(const HealthService&) = delete;

  // Serves Check and Watch on `queue` (before it starts).
  void ServeOn(CallQueue& queue);

  // NOT_SERVING from now on (the server drains): every Watch stream is told so and then ends
  // with UNAVAILABLE "server shutting down"; later Watch calls end the same way after their
  // first message. Idempotent.
  void SetNotServing();

  Status HandleCheck(const grpc::ServerContextBase& ctx,
                     const grpc::health::v1::HealthCheckRequest& req,
                     grpc::health::v1::HealthCheckResponse& resp);

 private:
  class WatchCall;
  void Listen();
  void Remove(WatchCall* call);

  grpc::ServerCompletionQueue* cq_ = nullptr;  // constant after ServeOn
  std::mutex mu_;
  bool serving_ = true;              // guarded by mu_
  std::vector<WatchCall*> watches_;  // guarded by mu_
};

}  // namespace ods::server
