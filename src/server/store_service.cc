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

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx, const Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

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

grpc::ServerUnaryReactor* StoreService::Put(grpc::CallbackServerContext* ctx,
                                            const ods::v1::PutRequest* req,
                                            ods::v1::PutResponse* resp) {
  // Shared with the completion: recorded when the answer is sent (a sync table's after fsync).
  auto timed = std::make_shared<ScopedLatency>(put_latency_);
  if (Status s = CheckRequest(engine_, auth_, *ctx, Method::kStorePut, req->table(),
                              req->records_size(), "records");
      !s.ok()) {
    return Finish(ctx, s);
  }
  std::vector<record::Record> records(req->records_size());
  std::vector<shard::KeyedRecord> items(req->records_size());
  for (int i = 0; i < req->records_size(); ++i) {
    const ods::v1::Record& in = req->records(i);
    if (Status s = FromProto(req->table(), in, records[i]); !s.ok()) return Finish(ctx, s);
    items[i] = {in.key(), &records[i]};
  }
  // A sync table answers from the durable tier's committer thread once the write is on disk:
  // this gRPC thread is not held for the fsync.
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  engine_.PutThen(req->table(), items,
                  [reactor, resp, timed](Result<std::vector<uint64_t>> versions) {
    if (!versions.ok()) {
      reactor->Finish(ToGrpcStatus(versions.status()));
      return;
    }
    resp->mutable_versions()->Assign(versions->begin(), versions->end());
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* StoreService::Get(grpc::CallbackServerContext* ctx,
                                            const ods::v1::GetRequest* req,
                                            ods::v1::GetResponse* resp) {
  const ScopedLatency timed(get_latency_);
  if (Status s = CheckRequest(engine_, auth_, *ctx, Method::kStoreGet, req->table(),
                              req->keys_size(), "keys");
      !s.ok()) {
    return Finish(ctx, s);
  }
  std::vector<std::optional<record::Record>> found;
  const std::vector<std::string_view> keys = Views(req->keys());
  const std::vector<std::string_view> fields = Views(req->fields());
  if (Status s = engine_.Get(req->table(), keys, fields, found); !s.ok()) return Finish(ctx, s);
  resp->mutable_results()->Reserve(req->keys_size());
  for (int i = 0; i < req->keys_size(); ++i) {
    ods::v1::GetResult* result = resp->add_results();
    result->set_key(req->keys(i));
    if (found[i]) {
      result->set_found(true);
      ToProto(req->keys(i), *found[i], *result->mutable_record());
    }
  }
  return Finish(ctx, OkStatus());
}

grpc::ServerUnaryReactor* StoreService::Delete(grpc::CallbackServerContext* ctx,
                                               const ods::v1::DeleteRequest* req,
                                               ods::v1::DeleteResponse* resp) {
  auto timed = std::make_shared<ScopedLatency>(delete_latency_);
  if (Status s = CheckRequest(engine_, auth_, *ctx, Method::kStoreDelete, req->table(),
                              req->keys_size(), "keys");
      !s.ok()) {
    return Finish(ctx, s);
  }
  const std::vector<std::string_view> keys = Views(req->keys());
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  engine_.DeleteThen(req->table(), keys,
                     [reactor, resp, timed](Result<std::vector<uint8_t>> deleted) {
    if (!deleted.ok()) {
      reactor->Finish(ToGrpcStatus(deleted.status()));
      return;
    }
    uint32_t count = 0;
    for (uint8_t d : *deleted) {
      resp->add_deleted(d != 0);
      count += d;
    }
    resp->set_deleted_count(count);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

namespace {

// Streams the records of a key list in pages; one page in flight at a time. A page holds at
// most kScanPageRecords records and about half of limits.max_message_bytes (at least one
// record: config guarantees any record fits). Deletes itself in OnDone. Records deleted between
// listing and reading are skipped.
class ScanReactor final : public grpc::ServerWriteReactor<ods::v1::ScanResponse> {
 public:
  // `access` is the caller's access check: the scan fails with it unless it is OK.
  ScanReactor(engine::Engine& engine, const ods::v1::ScanRequest& req, Status access,
              LatencyHistogram& latency)
      : engine_(engine),
        latency_(latency),
        table_(req.table()),
        field_names_(req.fields().begin(), req.fields().end()),
        fields_(field_names_.begin(), field_names_.end()),
        page_budget_bytes_(engine.config().limits.max_message_bytes / 2) {
    Status s = std::move(access);
    if (s.ok()) s = CheckTableName(table_);
    if (s.ok()) {
      // A Get of no keys validates the projection before the O(records) key listing.
      std::vector<std::optional<record::Record>> none;
      s = engine_.Get(table_, {}, fields_, none);
    }
    if (s.ok()) {
      Result<std::vector<std::string>> keys =
          engine_.ScanKeys(table_, req.prefix(), req.start_after(), req.limit());
      if (keys.ok()) {
        keys_ = std::move(keys).value();
      } else {
        s = keys.status();
      }
    }
    if (!s.ok()) {
      Finish(ToGrpcStatus(s));
      return;
    }
    NextPage();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away during scan"));
      return;
    }
    NextPage();
  }

  void OnDone() override {
    latency_.Record(std::chrono::steady_clock::now() - start_);
    delete this;
  }

 private:
  void NextPage() {
    page_.Clear();
    size_t page_bytes = 0;
    size_t batch_size = kScanPageRecords;
    bool page_full = false;
    while (next_ < keys_.size() && !page_full) {
      const size_t end = std::min(keys_.size(), next_ + batch_size);
      const std::vector<std::string_view> batch(keys_.begin() + next_, keys_.begin() + end);
      std::vector<std::optional<record::Record>> found;
      Status s = engine_.Get(table_, batch, fields_, found);
      if (s.code() == StatusCode::kResourceExhausted && batch_size > 1) {
        batch_size /= 2;  // Large records: read fewer at a time.
        continue;
      }
      if (!s.ok()) {
        Finish(ToGrpcStatus(s));
        return;
      }
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
    if (page_.records_size() == 0) {
      Finish(grpc::Status::OK);
      return;
    }
    StartWrite(&page_);
  }

  engine::Engine& engine_;
  LatencyHistogram& latency_;  // the whole stream, from the handler to OnDone
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  const std::string table_;
  const std::vector<std::string> field_names_;
  const std::vector<std::string_view> fields_;  // views of field_names_
  const size_t page_budget_bytes_;
  std::vector<std::string> keys_;
  size_t next_ = 0;
  ods::v1::ScanResponse page_;
};

}  // namespace

grpc::ServerWriteReactor<ods::v1::ScanResponse>* StoreService::Scan(
    grpc::CallbackServerContext* ctx, const ods::v1::ScanRequest* req) {
  const ApiKey* key = nullptr;
  Status access = Authorize(auth_, *ctx, Method::kStoreScan, key);
  if (access.ok()) access = CheckTable(auth_, key, Method::kStoreScan, req->table());
  return new ScanReactor(engine_, *req, std::move(access), scan_latency_);
}

void StoreService::AppendMetrics(std::string& out) const {
  constexpr std::string_view kName = "ods_rpc_handler_seconds";
  put_latency_.Render(kName, "ods.v1.Store/Put", out);
  get_latency_.Render(kName, "ods.v1.Store/Get", out);
  delete_latency_.Render(kName, "ods.v1.Store/Delete", out);
  scan_latency_.Render(kName, "ods.v1.Store/Scan", out);
}

}  // namespace ods::server
