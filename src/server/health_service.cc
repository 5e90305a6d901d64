#include "health_service.h"

#include <algorithm>
#include <optional>
#include <string>

namespace ods::server {
namespace {

using grpc::health::v1::HealthCheckResponse;

}  // namespace

// One Watch call. Its mutex guards the write state; the service's mutex is taken before it,
// never after. At most one message in flight: a status that changes meanwhile is sent when the
// write completes. Frees itself once its final status went out and gRPC said the call is done.
class HealthService::WatchCall final : public CallTag {
 public:
  explicit WatchCall(HealthService& service) : service_(service) {
    ctx_.AsyncNotifyWhenDone(&done_tag_);
  }

  void Request() {
    service_.RequestWatch(&ctx_, &req_, &writer_, service_.cq_, service_.cq_, this);
  }

  // The call arrived (ok) or the server shuts down (not ok: the call never started).
  void Proceed(bool ok) override {
    if (!ok) {
      delete this;  // no "call done" comes for a call that never started
      return;
    }
    service_.Listen();
    std::lock_guard<std::mutex> service_lock(service_.mu_);
    std::lock_guard<std::mutex> lock(mu_);
    if (service_.serving_) service_.watches_.push_back(this);
    SendLocked(service_.serving_);
  }

  // The server stops serving: tells the client, then ends the stream.
  void StopServing() {
    std::lock_guard<std::mutex> lock(mu_);
    SendLocked(/*serving=*/false);
  }

 private:
  // Sends the status for `serving` unless it is what the client last got; ends the stream once
  // NOT_SERVING went out.
  void SendLocked(bool serving) {
    stopping_ = stopping_ || !serving;
    const HealthCheckResponse::ServingStatus status = !req_.service().empty()
                                                          ? HealthCheckResponse::SERVICE_UNKNOWN
                                                      : serving ? HealthCheckResponse::SERVING
                                                                : HealthCheckResponse::NOT_SERVING;
    if (writing_ || finishing_) {
      pending_ = status;
      return;
    }
    if (sent_ && *sent_ == status) {
      if (stopping_)
        FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
      return;
    }
    message_.set_status(status);
    sent_ = status;
    writing_ = true;
    writer_.Write(message_, &write_tag_);
  }

  void WriteDone(bool ok) {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) return FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
    if (pending_) {
      const HealthCheckResponse::ServingStatus next = *pending_;
      pending_.reset();
      if (next != sent_) {
        message_.set_status(next);
        sent_ = next;
        writing_ = true;
        writer_.Write(message_, &write_tag_);
        return;
      }
    }
    if (stopping_)
      FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
  }

  // gRPC's "call done": after the final status went out, or when the client cancelled.
  void CallDone(bool /*ok*/) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ctx_.IsCancelled() && !writing_) {
        FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
      }
    }
    if (end_.CallDone()) Free();
  }

  void StatusSent(bool /*ok*/) {
    if (end_.StatusSent()) Free();
  }

  void Free() {
    service_.Remove(this);
    delete this;
  }

  void FinishLocked(const grpc::Status& status) {
    if (finishing_) return;
    finishing_ = true;
    writer_.Finish(status, &finish_tag_);
  }

  HealthService& service_;
  grpc::ServerContext ctx_;
  grpc::health::v1::HealthCheckRequest req_;
  grpc::ServerAsyncWriter<HealthCheckResponse> writer_{&ctx_};
  MemberTag<WatchCall, &WatchCall::WriteDone> write_tag_{this};
  MemberTag<WatchCall, &WatchCall::StatusSent> finish_tag_{this};
  MemberTag<WatchCall, &WatchCall::CallDone> done_tag_{this};
  std::mutex mu_;
  HealthCheckResponse message_;                                // the message in flight
  std::optional<HealthCheckResponse::ServingStatus> sent_;     // the last status written
  std::optional<HealthCheckResponse::ServingStatus> pending_;  // to write after the one in flight
  bool writing_ = false;
  bool stopping_ = false;   // end the stream once NOT_SERVING went out
  bool finishing_ = false;  // the final status was started
  CallEnd end_;
};

void HealthService::ServeOn(CallQueue& queue) {
  cq_ = queue.cq();
  queue.Serve(this, &HealthService::RequestCheck, this, &HealthService::HandleCheck);
  Listen();
}

void HealthService::Listen() { (new WatchCall(*this))->Request(); }

Status HealthService::HandleCheck(const grpc::ServerContextBase& /*ctx*/,
                                  const grpc::health::v1::HealthCheckRequest& req,
                                  grpc::health::v1::HealthCheckResponse& resp) {
  if (!req.service().empty()) {
    return NotFoundError("health: unknown service '" + QuoteForMessage(req.service()) +
                         "' (this server reports only on the server as a whole: \"\")");
  }
  std::lock_guard<std::mutex> lock(mu_);
  resp.set_status(serving_ ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
  return OkStatus();
}

void HealthService::SetNotServing() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!serving_) return;
  serving_ = false;
  for (WatchCall* call : watches_) call->StopServing();
}

void HealthService::Remove(WatchCall* call) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase(watches_, call);
}

}  // namespace ods::server
