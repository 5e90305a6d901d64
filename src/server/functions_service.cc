#include "functions_service.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "convert.h"
#include "status_mapping.h"

namespace ods::server {

FunctionsService::FunctionsService(engine::Engine& engine, const Authenticator* auth,
                                   size_t workers, size_t max_queued)
    : engine_(engine), auth_(auth), max_queued_(max_queued) {
  workers = std::max<size_t>(workers, 1);
  for (size_t i = 0; i < workers; ++i) workers_.emplace_back([this] { Work(); });
}

FunctionsService::~FunctionsService() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void FunctionsService::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to run
    std::function<void()> call = std::move(queue_.front());
    queue_.pop_front();
    queued_.store(queue_.size(), std::memory_order_relaxed);
    lock.unlock();
    call();
    lock.lock();
  }
}

void FunctionsService::ServeOn(CallQueue& queue) {
  queue.Serve(this, &FunctionsService::RequestExecute, this, &FunctionsService::HandleExecute);
}

void FunctionsService::HandleExecute(ExecuteCall& call) {
  // Until the worker answers: the queue wait counts, as a client feels it.
  auto timed = std::make_shared<ScopedLatency>(execute_latency_);
  const ods::v1::ExecuteRequest* req = &call.request();
  const ApiKey* key = nullptr;
  Status access = Authorize(auth_, call.context(), Method::kFunctionsExecute, key);
  if (access.ok()) access = CheckTable(auth_, key, Method::kFunctionsExecute, req->table());
  if (!access.ok()) return call.Finish(access);
  auto run = [this, &call, req, timed] {
    const grpc::ServerContext& ctx = call.context();
    ods::v1::ExecuteResponse* resp = &call.response();
    std::vector<record::Field> args;
    args.reserve(req->args_size());
    for (const auto& [name, value] : req->args()) {
      record::Field& field = args.emplace_back();
      field.name = name;
      if (!FromProto(value, field.value)) {
        return call.Finish(InvalidArgumentError("function '" + QuoteForMessage(req->function()) +
                                                "': argument '" + QuoteForMessage(name) +
                                                "' has no value set"));
      }
    }
    const std::vector<std::string_view> keys(req->keys().begin(), req->keys().end());
    // The client's deadline bounds the whole call: keys not started by then are not run (the
    // engine's clock is the system clock in odsd, microseconds since the epoch).
    std::optional<Micros> deadline;
    if (ctx.deadline() != std::chrono::system_clock::time_point::max()) {
      deadline =
          std::chrono::duration_cast<std::chrono::microseconds>(ctx.deadline().time_since_epoch())
              .count();
    }
    Result<engine::ExecuteReport> report =
        engine_.Execute(req->function(), req->table(), keys, args, deadline);
    if (!report.ok()) return call.Finish(report.status());
    resp->set_function_version(report->function_version);
    resp->mutable_results()->Reserve(req->keys_size());
    for (int i = 0; i < req->keys_size(); ++i) {
      const engine::ExecuteResult& in = report->results[i];
      ods::v1::ExecuteResult* out = resp->add_results();
      out->set_key(req->keys(i));
      // Per-key statuses go through the same mapping as call statuses (kInternal text hidden).
      const grpc::Status status = ToGrpcStatus(in.status);
      out->set_code(static_cast<int32_t>(status.error_code()));
      out->set_message(status.error_message());
      if (in.value) ToProto(*in.value, *out->mutable_value());
      out->set_written(in.written);
      out->set_version(in.version);
    }
    call.Finish(OkStatus());
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= max_queued_) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      return call.Finish(ResourceExhaustedError(
          "function '" + QuoteForMessage(req->function()) + "': " + std::to_string(queue_.size()) +
          " Execute calls already wait for the " + std::to_string(workers_.size()) +
          " workers (the limit); retry later"));
    }
    queue_.push_back(std::move(run));
    queued_.store(queue_.size(), std::memory_order_relaxed);
  }
  cv_.notify_one();
}

void FunctionsService::AppendMetrics(std::string& out) const {
  execute_latency_.Render("ods_rpc_handler_seconds", "ods.v1.Functions/Execute", out);
  out.append("# HELP ods_execute_queued Execute calls waiting for a worker.\n");
  out.append("# TYPE ods_execute_queued gauge\n");
  out.append("ods_execute_queued ")
      .append(std::to_string(queued_.load(std::memory_order_relaxed)))
      .append("\n");
  out.append(
      "# HELP ods_execute_refused_total Execute calls refused because the queue was full.\n");
  out.append("# TYPE ods_execute_refused_total counter\n");
  out.append("ods_execute_refused_total ")
      .append(std::to_string(refused_.load(std::memory_order_relaxed)))
      .append("\n");
}

}  // namespace ods::server
