#include "features_service.h"

#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/slice.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "convert.h"
#include "features_wire.h"
#include "ods/common/check.h"
#include "ods/common/clock.h"
#include "ods/common/mutex.h"
#include "ods/common/thread_annotations.h"
#include "ods/engine/features.h"
#include "ods/record/value.h"
#include "status_mapping.h"

namespace ods::server {
namespace {

// Most rejections one answer lists (the rest are only counted). Listed rejections also stop at
// half of limits.max_message_bytes, so the answer of a long stream or a large batch of bad events
// always fits the message limit and its totals reach the client.
constexpr uint64_t kMaxListedRejections = 10'000;
// Wire bytes of a listed rejection beyond its message: tags, index, code, lengths (generous).
constexpr uint64_t kRejectionOverheadBytes = 16;

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx, const Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// Checked before any conversion, so an oversized request costs nothing beyond its parse (the
// engine checks again).
Status CheckBatch(const engine::Engine& engine, std::string_view call, int size,
                  std::string_view what) {
  const uint32_t limit = engine.config().limits.max_batch_size;
  if (static_cast<uint64_t>(size) <= limit) return OkStatus();
  return InvalidArgumentError(std::string(call) + ": " + std::to_string(size) + " " +
                              std::string(what) + " in one request; limits.max_batch_size is " +
                              std::to_string(limit));
}

// For a key restricted to tables: every event's template is one it may use. The whole message
// is refused otherwise (nothing applied).
Status CheckTemplates(const Authenticator* auth, const ApiKey* key, Method method,
                      const ods::v1::PushEventsRequest& req) {
  if (key == nullptr || key->tables.empty()) return OkStatus();
  for (const ods::v1::Event& e : req.events()) {
    ODS_RETURN_IF_ERROR(auth->CheckTable(*key, method, e.template_()));
  }
  return OkStatus();
}

// For a key restricted to tables: every table and template the `features` read is one it may
// use. An unknown feature is INVALID_ARGUMENT, as the lookup would answer.
Status CheckFeatureSources(const engine::Engine& engine, const Authenticator* auth,
                           const ApiKey* key, Method method,
                           std::span<const std::string_view> features) {
  if (key == nullptr || key->tables.empty()) return OkStatus();
  std::vector<std::string_view> sources;
  ODS_RETURN_IF_ERROR(engine.FeatureSources(features, sources));
  for (std::string_view source : sources) {
    ODS_RETURN_IF_ERROR(auth->CheckTable(*key, method, source));
  }
  return OkStatus();
}

// Adds one rejection to `out`, listing it while under kMaxListedRejections and `max_listed_bytes`
// (`listed_bytes` counts what is listed so far) and while the stream position fits the wire's
// uint32 index.
void AddRejection(uint64_t index, StatusCode code, std::string message, uint64_t max_listed_bytes,
                  uint64_t& listed_bytes, ods::v1::PushEventsResponse& out) {
  out.set_rejected_count(out.rejected_count() + 1);
  const uint64_t bytes = message.size() + kRejectionOverheadBytes;
  if (static_cast<uint64_t>(out.rejected_size()) >= kMaxListedRejections ||
      listed_bytes + bytes > max_listed_bytes || index > std::numeric_limits<uint32_t>::max()) {
    out.set_rejected_truncated(true);
    return;
  }
  listed_bytes += bytes;
  ods::v1::EventError* e = out.add_rejected();
  e->set_index(static_cast<uint32_t>(index));
  e->set_code(static_cast<int32_t>(code));
  e->set_message(std::move(message));
}

// Conversion buffers of PushBatch. Reusing one across the messages of a stream keeps the
// capacity of its vectors and of the strings in `fields`, so converting a message of the same
// shape as the last one allocates nothing. Thread-compatible.
struct PushScratch {
  std::vector<record::Field> fields;  // [0, used) hold the fields of the message
  std::vector<uint32_t> starts;       // starts[j]: first field of inputs[j]
  std::vector<uint32_t> positions;    // positions[j]: request position of inputs[j]
  std::vector<engine::EventInput> inputs;
  std::vector<std::pair<uint32_t, Status>> bad;  // conversion failures, by position
};

// Converts and applies the events of one message; adds the outcome to `out`, reporting event i as
// index base + i. Events whose values cannot be converted are rejected here, counted in
// `rejected_at_edge` and not sent to the engine. `listed_bytes`: see AddRejection. Fails (nothing
// applied) only when the message as a whole is refused.
Status PushBatch(engine::Engine& engine, const ods::v1::PushEventsRequest& req, uint64_t base,
                 std::atomic<uint64_t>& rejected_at_edge, uint64_t& listed_bytes,
                 PushScratch& scratch, ods::v1::PushEventsResponse& out) {
  const int n = req.events_size();
  ODS_RETURN_IF_ERROR(CheckBatch(engine, "PushEvents", n, "events"));
  if (n == 0) return OkStatus();

  // One buffer for the fields of all events, converted in full before any span into it is taken.
  std::vector<record::Field>& fields = scratch.fields;
  std::vector<uint32_t>& starts = scratch.starts;
  std::vector<uint32_t>& positions = scratch.positions;
  std::vector<std::pair<uint32_t, Status>>& bad = scratch.bad;
  starts.clear();
  positions.clear();
  bad.clear();
  size_t used = 0;
  for (int i = 0; i < n; ++i) {
    const size_t start = used;
    if (Status s = AppendEventFields(req.events(i), fields, used); !s.ok()) {
      used = start;
      bad.emplace_back(static_cast<uint32_t>(i), std::move(s));
      continue;
    }
    starts.push_back(static_cast<uint32_t>(start));
    positions.push_back(static_cast<uint32_t>(i));
  }
  starts.push_back(static_cast<uint32_t>(used));

  std::vector<engine::EventInput>& inputs = scratch.inputs;
  inputs.resize(positions.size());
  for (size_t j = 0; j < positions.size(); ++j) {
    const ods::v1::Event& e = req.events(static_cast<int>(positions[j]));
    inputs[j].template_name = e.template_();
    inputs[j].fields =
        std::span<const record::Field>(fields.data() + starts[j], starts[j + 1] - starts[j]);
    inputs[j].event_id = e.event_id();
  }
  engine::PushResult result;
  if (!inputs.empty()) {
    ODS_ASSIGN_OR_RETURN(result, engine.PushEvents(inputs));
  }
  if (!bad.empty()) rejected_at_edge.fetch_add(bad.size(), std::memory_order_relaxed);
  out.set_applied(out.applied() + result.applied);
  out.set_duplicates(out.duplicates() + result.duplicates);

  // Both lists are in position order: merge them so `rejected` stays in index order.
  const uint64_t max_listed_bytes = engine.config().limits.max_message_bytes / 2;
  auto converted = bad.begin();
  auto add_converted_before = [&](uint64_t position) {
    for (; converted != bad.end() && converted->first < position; ++converted) {
      AddRejection(base + converted->first, converted->second.code(), converted->second.message(),
                   max_listed_bytes, listed_bytes, out);
    }
  };
  for (engine::EventRejection& r : result.rejected) {
    ODS_CHECK(r.index < positions.size());
    const uint32_t position = positions[r.index];
    add_converted_before(position);
    AddRejection(base + position, r.code, std::move(r.reason), max_listed_bytes, listed_bytes, out);
  }
  add_converted_before(std::numeric_limits<uint64_t>::max());
  return OkStatus();
}

std::vector<std::string_view> Views(const google::protobuf::RepeatedPtrField<std::string>& field) {
  return {field.begin(), field.end()};
}

// The request of a raw-method call, parsed onto an arena whose first block is this thread's
// scratch block: a request of up to kFirstBlockBytes parses without a heap allocation.
// Lives within one handler call (handlers do not nest on a thread).
template <class Message>
class ParsedRequest {
 public:
  ParsedRequest()
      : arena_(Options()), message_(google::protobuf::Arena::CreateMessage<Message>(&arena_)) {}
  ParsedRequest(const ParsedRequest&) = delete;
  ParsedRequest& operator=(const ParsedRequest&) = delete;

  // INVALID_ARGUMENT naming `call` if `wire` is not a `Message`.
  Status Parse(std::string_view call, const grpc::ByteBuffer& wire) {
    grpc::ByteBuffer shared(wire);  // shares the slices; Deserialize consumes its argument
    if (grpc::SerializationTraits<Message>::Deserialize(&shared, message_).ok()) return OkStatus();
    return InvalidArgumentError(std::string(call) + ": the request does not parse as " +
                                Message::descriptor()->full_name() +
                                " (malformed bytes, or a string field that is not UTF-8)");
  }
  const Message& operator*() const { return *message_; }
  const Message* operator->() const { return message_; }

 private:
  static constexpr size_t kFirstBlockBytes = 32 * 1024;
  static google::protobuf::ArenaOptions Options() {
    thread_local const std::unique_ptr<char[]> block(new char[kFirstBlockBytes]);
    google::protobuf::ArenaOptions options;
    options.initial_block = block.get();
    options.initial_block_size = kFirstBlockBytes;
    return options;
  }

  google::protobuf::Arena arena_;
  Message* message_;
};

// Writes FeaturesResponse{columns} into `out` as one slice, sized exactly.
void WriteColumns(const std::vector<engine::FeatureColumn>& columns, grpc::ByteBuffer& out) {
  const FeaturesResponseEncoder encoder(columns);
  grpc::Slice slice(encoder.size());
  encoder.Write(reinterpret_cast<char*>(const_cast<uint8_t*>(slice.begin())));
  grpc::ByteBuffer answer(&slice, 1);
  out.Swap(&answer);
}

// Reads a client stream of event batches and applies them in stream order, answering the totals
// once the client half-closes. Receiving (and parsing) message k+1 overlaps applying message k:
// the buffer of a completed read becomes the work buffer and the next read is started into the
// other buffer before the work is applied.
// At most one read is outstanding and at most one thread applies at a time: a read that
// completes while another thread applies is left for that thread (no callback thread blocks).
// Finish is called exactly once, by the applying thread. Deletes itself in OnDone, which gRPC
// calls after Finish and every started read have completed.
class StreamEventsReactor final : public grpc::ServerReadReactor<ods::v1::PushEventsRequest> {
 public:
  // `key` is the caller's API key (null: keys off), already authorized for StreamEvents; a
  // message with an event of a template it may not use ends the call.
  StreamEventsReactor(engine::Engine& engine, std::atomic<uint64_t>& rejected_at_edge,
                      const Authenticator* auth, const ApiKey* key,
                      ods::v1::PushEventsResponse* resp)
      : engine_(engine), rejected_at_edge_(rejected_at_edge), auth_(auth), key_(key), resp_(resp) {
    StartRead(&buffers_[0]);
  }

  void OnReadDone(bool ok) override {
    {
      MutexLock lock(mu_);
      if (ok) {
        read_ready_ = true;
      } else {
        read_closed_ = true;  // half-closed (or gone: then Finish is a no-op)
      }
      if (applying_) return;  // the applying thread picks this read up
      applying_ = true;
    }
    ApplyReady();
  }

  void OnDone() override { delete this; }

 private:
  // Applies completed reads until none is left; run by the one thread that set applying_.
  void ApplyReady() ODS_EXCLUDES(mu_) {
    for (;;) {
      const ods::v1::PushEventsRequest* work = nullptr;
      {
        MutexLock lock(mu_);
        if (finished_) {  // a read that completed after Finish: dropped, never applied
          applying_ = false;
          return;
        }
        if (!read_ready_) {
          if (read_closed_) {
            finished_ = true;
            Finish(grpc::Status::OK);
          }
          applying_ = false;
          return;
        }
        read_ready_ = false;
        read_buffer_ = 1 - read_buffer_;  // the message just read becomes the work
        buffers_[read_buffer_].Clear();   // the message applied last
        StartRead(&buffers_[read_buffer_]);
        work = &buffers_[1 - read_buffer_];
      }
      Status s = CheckTemplates(auth_, key_, Method::kFeaturesStreamEvents, *work);
      if (s.ok()) {
        s = PushBatch(engine_, *work, next_index_, rejected_at_edge_, listed_bytes_, scratch_,
                      *resp_);
      }
      next_index_ += static_cast<uint64_t>(work->events_size());
      if (!s.ok()) {
        MutexLock lock(mu_);
        finished_ = true;  // the read started above completes (then ignored) before OnDone
        Finish(ToGrpcStatus(s));
        applying_ = false;
        return;
      }
    }
  }

  engine::Engine& engine_;
  std::atomic<uint64_t>& rejected_at_edge_;
  const Authenticator* const auth_;
  const ApiKey* const key_;
  ods::v1::PushEventsResponse* const resp_;  // owned by gRPC, valid until OnDone

  Mutex mu_;
  // buffers_[read_buffer_] receives the outstanding read (gRPC writes it until OnReadDone); the
  // other holds the message being applied. Cleared and reused for every message, keeping their
  // parsed events for the next parse (not on an arena: parsing into a fresh arena each message
  // measured slower than parsing into a reused message).
  ods::v1::PushEventsRequest buffers_[2];
  int read_buffer_ ODS_GUARDED_BY(mu_) = 0;
  bool read_ready_ ODS_GUARDED_BY(mu_) = false;   // the read buffer holds a message to apply
  bool read_closed_ ODS_GUARDED_BY(mu_) = false;  // the last read completed with ok=false
  bool applying_ ODS_GUARDED_BY(mu_) = false;     // a thread runs ApplyReady
  bool finished_ ODS_GUARDED_BY(mu_) = false;     // Finish was called

  // Only the applying thread touches these.
  PushScratch scratch_;
  uint64_t next_index_ = 0;    // stream position of the first event of the message applied next
  uint64_t listed_bytes_ = 0;  // of the rejections *resp_ lists
};

// Ends a StreamEvents call at once with `status` (the caller was refused), reading nothing.
// Deletes itself in OnDone.
class RefusedStreamReactor final : public grpc::ServerReadReactor<ods::v1::PushEventsRequest> {
 public:
  explicit RefusedStreamReactor(const Status& status) { Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

FeaturesService::FeaturesService(engine::Engine& engine, const Authenticator* auth)
    : engine_(engine), auth_(auth), subscriptions_(std::make_unique<SubscriptionHub>(engine)) {
  SetMessageAllocatorFor_PushEvents(&push_allocator_);
}

grpc::ServerWriteReactor<ods::v1::SubscribeResponse>* FeaturesService::Subscribe(
    grpc::CallbackServerContext* ctx, const ods::v1::SubscribeRequest* req) {
  const ApiKey* key = nullptr;
  Status access = Authorize(auth_, *ctx, Method::kFeaturesSubscribe, key);
  engine::SubscribeRequest request;
  request.tables.assign(req->tables().begin(), req->tables().end());
  request.templates.assign(req->templates().begin(), req->templates().end());
  request.features.assign(req->features().begin(), req->features().end());
  request.keys.assign(req->keys().begin(), req->keys().end());
  if (req->has_from_sequence()) request.from_sequence = req->from_sequence();
  for (const std::string& name : request.tables) {
    if (access.ok()) access = CheckTable(auth_, key, Method::kFeaturesSubscribe, name);
  }
  for (const std::string& name : request.templates) {
    if (access.ok()) access = CheckTable(auth_, key, Method::kFeaturesSubscribe, name);
  }
  if (access.ok() && !request.features.empty()) {
    const std::vector<std::string_view> features(request.features.begin(),
                                                 request.features.end());
    access = CheckFeatureSources(engine_, auth_, key, Method::kFeaturesSubscribe, features);
  }
  if (!access.ok()) return subscriptions_->Open(ctx, access);
  return subscriptions_->Open(ctx, engine_.Subscribe(request));
}

void FeaturesService::AppendMetrics(std::string& out) const {
  constexpr std::string_view kName = "ods_rpc_handler_seconds";
  out.append("# HELP ods_rpc_handler_seconds Time in the RPC handler, from its start to its "
             "answer (gRPC queueing and transport excluded).\n");
  out.append("# TYPE ods_rpc_handler_seconds histogram\n");
  push_latency_.Render(kName, "ods.v1.Features/PushEvents", out);
  online_latency_.Render(kName, "ods.v1.Features/GetOnlineFeatures", out);
  historical_latency_.Render(kName, "ods.v1.Features/GetHistoricalFeatures", out);
}

grpc::ServerUnaryReactor* FeaturesService::PushEvents(grpc::CallbackServerContext* ctx,
                                                      const ods::v1::PushEventsRequest* req,
                                                      ods::v1::PushEventsResponse* resp) {
  const ScopedLatency timed(push_latency_);
  const ApiKey* key = nullptr;
  if (Status s = Authorize(auth_, *ctx, Method::kFeaturesPushEvents, key); !s.ok()) {
    return Finish(ctx, s);
  }
  if (Status s = CheckTemplates(auth_, key, Method::kFeaturesPushEvents, *req); !s.ok()) {
    return Finish(ctx, s);
  }
  uint64_t listed_bytes = 0;
  PushScratch scratch;
  return Finish(
      ctx, PushBatch(engine_, *req, 0, events_rejected_at_edge_, listed_bytes, scratch, *resp));
}

grpc::ServerReadReactor<ods::v1::PushEventsRequest>* FeaturesService::StreamEvents(
    grpc::CallbackServerContext* ctx, ods::v1::PushEventsResponse* resp) {
  const ApiKey* key = nullptr;
  if (Status s = Authorize(auth_, *ctx, Method::kFeaturesStreamEvents, key); !s.ok()) {
    return new RefusedStreamReactor(s);
  }
  return new StreamEventsReactor(engine_, events_rejected_at_edge_, auth_, key, resp);
}

grpc::ServerUnaryReactor* FeaturesService::GetOnlineFeatures(grpc::CallbackServerContext* ctx,
                                                             const grpc::ByteBuffer* wire,
                                                             grpc::ByteBuffer* resp) {
  const ScopedLatency timed(online_latency_);
  const ApiKey* key = nullptr;
  if (Status s = Authorize(auth_, *ctx, Method::kFeaturesGetOnlineFeatures, key); !s.ok()) {
    return Finish(ctx, s);
  }
  ParsedRequest<ods::v1::GetOnlineFeaturesRequest> req;
  if (Status s = req.Parse("GetOnlineFeatures", *wire); !s.ok()) return Finish(ctx, s);
  if (Status s = CheckBatch(engine_, "GetOnlineFeatures", req->entities_size(), "entities");
      !s.ok()) {
    return Finish(ctx, s);
  }
  const std::vector<std::string_view> entities = Views(req->entities());
  const std::vector<std::string_view> features = Views(req->features());
  if (Status s = CheckFeatureSources(engine_, auth_, key, Method::kFeaturesGetOnlineFeatures,
                                     features);
      !s.ok()) {
    return Finish(ctx, s);
  }
  const std::optional<Micros> as_of =
      req->has_as_of_micros() ? std::optional<Micros>(req->as_of_micros()) : std::nullopt;
  Result<std::vector<engine::FeatureColumn>> columns =
      engine_.GetOnlineFeatures(entities, features, as_of);
  if (!columns.ok()) return Finish(ctx, columns.status());
  WriteColumns(*columns, *resp);
  return Finish(ctx, OkStatus());
}

grpc::ServerUnaryReactor* FeaturesService::GetHistoricalFeatures(grpc::CallbackServerContext* ctx,
                                                                 const grpc::ByteBuffer* wire,
                                                                 grpc::ByteBuffer* resp) {
  const ScopedLatency timed(historical_latency_);
  const ApiKey* key = nullptr;
  if (Status s = Authorize(auth_, *ctx, Method::kFeaturesGetHistoricalFeatures, key); !s.ok()) {
    return Finish(ctx, s);
  }
  ParsedRequest<ods::v1::GetHistoricalFeaturesRequest> req;
  if (Status s = req.Parse("GetHistoricalFeatures", *wire); !s.ok()) return Finish(ctx, s);
  if (Status s = CheckBatch(engine_, "GetHistoricalFeatures", req->rows_size(), "rows"); !s.ok()) {
    return Finish(ctx, s);
  }
  std::vector<engine::EntityRow> rows(req->rows_size());
  for (int i = 0; i < req->rows_size(); ++i) {
    rows[i].entity = req->rows(i).entity();
    rows[i].timestamp = req->rows(i).timestamp_micros();
  }
  const std::vector<std::string_view> features = Views(req->features());
  if (Status s = CheckFeatureSources(engine_, auth_, key, Method::kFeaturesGetHistoricalFeatures,
                                     features);
      !s.ok()) {
    return Finish(ctx, s);
  }
  Result<std::vector<engine::FeatureColumn>> columns =
      engine_.GetHistoricalFeatures(rows, features);
  if (!columns.ok()) return Finish(ctx, columns.status());
  WriteColumns(*columns, *resp);
  return Finish(ctx, OkStatus());
}

}  // namespace ods::server
