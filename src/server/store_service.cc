#include "store_service.h"

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
namespace {

// Most records per ScanResponse message; pages are also capped at half of
// limits.max_message_bytes.
constexpr size_t kScanPageRecords = 256;

// Views of a repeated string field, valid while `field` is unchanged.
std::vector<std::string_view> Views(const google::protobuf::RepeatedPtrField<std::string>& field) {
  return {field.begin(), field.end()};
}

Status CheckTableName(const std::string& table) {
  if (table.empty()) return InvalidArgumentError("request names no table");
  return OkStatus();
}

// The caller may call `method` on `table`, the table is named, and the batch is within
// limits.max_batch_size: checked before any conversion so a refused or oversized request costs
// nothing beyond its parse.
Status CheckRequest(const engine::Engine& engine, const Authenticator* auth,
                    const grpc::ServerContextBase& ctx, Method method, const std::string& table,
                    int size, std::string_view what) {
  const ApiKey* key = nullptr;
  ODS_RETURN_IF_ERROR(Authorize(auth, ctx, method, key));
  ODS_RETURN_IF_ERROR(CheckTable(auth, key, method, table));
  ODS_RETURN_IF_ERROR(CheckTableName(table));
  return engine.CheckRequestSize(table, static_cast<size_t>(size), what);
}

}  // namespace

// One Scan call: streams the records of a key list in pages, one page in flight at a time. A
// page holds at most kScanPageRecords records and about half of limits.max_message_bytes (at
// least one record: config guarantees any record fits). Records deleted between listing and
// reading are skipped. Listing the keys and reading each page run on the queue's blocking
// workers (O(records) and possibly reads below RAM), writes and their completions on the queue.
// One operation at a time: the call frees itself when its final status is sent.
class StoreService::ScanCall final : public CallTag {
 public:
  // Asks for the next Scan call.
  static void Listen(StoreService& service) {
    auto* call = new ScanCall(service);
    service.RequestScan(&call->ctx_, &call->req_, &call->writer_, service.queue_->cq(),
                        service.queue_->cq(), call);
  }

  void Proceed(bool ok) override {
    switch (state_) {
      case State::kListening:
        if (!ok) {  // the server shuts down
          delete this;
          return;
        }
        Listen(service_);
        start_ = std::chrono::steady_clock::now();
        return Continue([this] { Begin(); });
      case State::kWriting:
        if (!ok) {
          return Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away during scan"));
        }
        return Continue([this] { NextPage(); });
      case State::kFinishing:
        service_.scan_latency_.Record(std::chrono::steady_clock::now() - start_);
        delete this;
        return;
    }
  }

 private:
  enum class State { kListening, kWriting, kFinishing };

  explicit ScanCall(StoreService& service)
      : service_(service),
        page_budget_bytes_(service.engine_.config().limits.max_message_bytes / 2) {}

  // Runs `step` on a blocking worker (the queue full: ends the scan).
  template <typename Step>
  void Continue(Step step) {
    if (!service_.queue_->RunBlocking(step)) {
      Finish(ToGrpcStatus(service_.queue_->QueueFullError()));
    }
  }

  // Checks the caller and the request, lists the keys, writes the first page.
  void Begin() {
    engine::Engine& engine = service_.engine_;
    const ApiKey* key = nullptr;
    Status s = Authorize(service_.auth_, ctx_, Method::kStoreScan, key);
    if (s.ok()) s = CheckTable(service_.auth_, key, Method::kStoreScan, req_.table());
    if (s.ok()) s = CheckTableName(req_.table());
    fields_.assign(req_.fields().begin(), req_.fields().end());
    if (s.ok()) {
      // A Get of no keys validates the projection before the O(records) key listing.
      std::vector<std::optional<record::Record>> none;
      s = engine.Get(req_.table(), {}, fields_, none);
    }
    if (s.ok()) {
      Result<std::vector<std::string>> keys =
          engine.ScanKeys(req_.table(), req_.prefix(), req_.start_after(), req_.limit());
      if (keys.ok()) {
        keys_ = std::move(keys).value();
      } else {
        s = keys.status();
      }
    }
    if (!s.ok()) return Finish(ToGrpcStatus(s));
    NextPage();
  }

  // Reads and writes the next page, or finishes when no record is left.
  void NextPage() {
    page_.Clear();
    size_t page_bytes = 0;
    size_t batch_size = kScanPageRecords;
    bool page_full = false;
    while (next_ < keys_.size() && !page_full) {
      const size_t end = std::min(keys_.size(), next_ + batch_size);
      const std::vector<std::string_view> batch(keys_.begin() + next_, keys_.begin() + end);
      std::vector<std::optional<record::Record>> found;
      Status s = service_.engine_.Get(req_.table(), batch, fields_, found);
      if (s.code() == StatusCode::kResourceExhausted && batch_size > 1) {
        batch_size /= 2;  // Large records: read fewer at a time.
        continue;
      }
      if (!s.ok()) return Finish(ToGrpcStatus(s));
      size_t i = 0;
      for (; i < batch.size() && !page_full; ++i) {
        if (!found[i]) continue;
        ods::v1::Record* out = page_.add_records();
        ToProto(batch[i], *found[i], *out);
        const size_t bytes = out->ByteSizeLong();
        if (page_.records_size() > 1 && page_bytes + bytes > page_budget_bytes_) {
          page_.mutable_records()->RemoveLast();  // Starts the next page instead.
          page_full = true;
          break;
        }
        page_bytes += bytes;
        page_full = page_.records_size() >= static_cast<int>(kScanPageRecords);
      }
      next_ += i;
    }
    if (page_.records_size() == 0) return Finish(grpc::Status::OK);
    state_ = State::kWriting;
    writer_.Write(page_, this);
  }

  void Finish(const grpc::Status& status) {
    state_ = State::kFinishing;
    writer_.Finish(status, this);
  }

  StoreService& service_;
  const size_t page_budget_bytes_;
  grpc::ServerContext ctx_;
  ods::v1::ScanRequest req_;
  grpc::ServerAsyncWriter<ods::v1::ScanResponse> writer_{&ctx_};
  State state_ = State::kListening;
  std::chrono::steady_clock::time_point start_;  // the whole stream counts
  std::vector<std::string_view> fields_;         // views of req_.fields()
  std::vector<std::string> keys_;
  size_t next_ = 0;
  ods::v1::ScanResponse page_;
};

void StoreService::ServeOn(CallQueue& queue) {
  queue_ = &queue;
  queue.Serve(this, &StoreService::RequestPut, this, &StoreService::HandlePut);
  queue.Serve(this, &StoreService::RequestGet, this, &StoreService::HandleGet);
  queue.Serve(this, &StoreService::RequestDelete, this, &StoreService::HandleDelete);
  ScanCall::Listen(*this);
}

void StoreService::HandlePut(PutCall& call) {
  // Shared with the completion: recorded when the answer is sent (a sync table's after fsync).
  auto timed = std::make_shared<ScopedLatency>(put_latency_);
  const ods::v1::PutRequest& req = call.request();
  if (Status s = CheckRequest(engine_, auth_, call.context(), Method::kStorePut, req.table(),
                              req.records_size(), "records");
      !s.ok()) {
    return call.Finish(s);
  }
  std::vector<record::Record> records(req.records_size());
  std::vector<shard::KeyedRecord> items(req.records_size());
  for (int i = 0; i < req.records_size(); ++i) {
    const ods::v1::Record& in = req.records(i);
    if (Status s = FromProto(req.table(), in, records[i]); !s.ok()) return call.Finish(s);
    items[i] = {in.key(), &records[i]};
  }
  // A sync table answers from the durable tier's committer thread once the write is on disk:
  // the queue's thread is not held for the fsync.
  engine_.PutThen(req.table(), items, [&call, timed](Result<std::vector<uint64_t>> versions) {
    if (!versions.ok()) return call.Finish(versions.status());
    call.response().mutable_versions()->Assign(versions->begin(), versions->end());
    call.Finish(OkStatus());
  });
}

void StoreService::HandleGet(GetCall& call) {
  if (!engine_.ReadsThrough(call.request().table())) {
    return call.Finish(LookUp(call.context(), call.request(), call.response()));
  }
  // A miss may wait for the system of record: off the queue's thread.
  if (!queue_->RunBlocking([this, &call] {
        call.Finish(LookUp(call.context(), call.request(), call.response()));
      })) {
    call.Finish(queue_->QueueFullError());
  }
}

Status StoreService::LookUp(const grpc::ServerContextBase& ctx, const ods::v1::GetRequest& req,
                            ods::v1::GetResponse& resp) {
  const ScopedLatency timed(get_latency_);
  ODS_RETURN_IF_ERROR(
      CheckRequest(engine_, auth_, ctx, Method::kStoreGet, req.table(), req.keys_size(), "keys"));
  std::vector<std::optional<record::Record>> found;
  const std::vector<std::string_view> keys = Views(req.keys());
  const std::vector<std::string_view> fields = Views(req.fields());
  ODS_RETURN_IF_ERROR(engine_.Get(req.table(), keys, fields, found));
  resp.mutable_results()->Reserve(req.keys_size());
  for (int i = 0; i < req.keys_size(); ++i) {
    ods::v1::GetResult* result = resp.add_results();
    result->set_key(req.keys(i));
    if (found[i]) {
      result->set_found(true);
      ToProto(req.keys(i), *found[i], *result->mutable_record());
    }
  }
  return OkStatus();
}

void StoreService::HandleDelete(DeleteCall& call) {
  auto timed = std::make_shared<ScopedLatency>(delete_latency_);
  const ods::v1::DeleteRequest& req = call.request();
  if (Status s = CheckRequest(engine_, auth_, call.context(), Method::kStoreDelete, req.table(),
                              req.keys_size(), "keys");
      !s.ok()) {
    return call.Finish(s);
  }
  const std::vector<std::string_view> keys = Views(req.keys());
  engine_.DeleteThen(req.table(), keys, [&call, timed](Result<std::vector<uint8_t>> deleted) {
    if (!deleted.ok()) return call.Finish(deleted.status());
    ods::v1::DeleteResponse& resp = call.response();
    uint32_t count = 0;
    for (uint8_t d : *deleted) {
      resp.add_deleted(d != 0);
      count += d;
    }
    resp.set_deleted_count(count);
    call.Finish(OkStatus());
  });
}

void StoreService::AppendMetrics(std::string& out) const {
  constexpr std::string_view kName = "ods_rpc_handler_seconds";
  put_latency_.Render(kName, "ods.v1.Store/Put", out);
  get_latency_.Render(kName, "ods.v1.Store/Get", out);
  delete_latency_.Render(kName, "ods.v1.Store/Delete", out);
  scan_latency_.Render(kName, "ods.v1.Store/Scan", out);
}

}  // namespace ods::server
