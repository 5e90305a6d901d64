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

// Checked before any conversion, so an oversized request costs nothing beyond its parse (the
// engine checks again).
Status CheckBatch(const engine::Engine& engine, std::string_view call, uint64_t size,
                  std::string_view what) {
  const uint32_t limit = engine.config().limits.max_batch_size;
  if (size <= limit) return OkStatus();
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

}  // namespace

// One StreamEvents call: applies each message as it arrives, in stream order, and answers the
// totals once the client half-closes. Runs on the queue's thread, one operation at a time
// (a read, then the apply, then the next read); frees itself when its final status is sent.
class FeaturesService::StreamEventsCall final : public CallTag {
 public:
  // Asks for the next StreamEvents call.
  static void Listen(FeaturesService& service, grpc::ServerCompletionQueue* cq) {
    auto* call = new StreamEventsCall(service, cq);
    service.RequestStreamEvents(&call->ctx_, &call->reader_, cq, cq, call);
  }

  void Proceed(bool ok) override {
    switch (state_) {
      case State::kListening: {
        if (!ok) {  // the server shuts down
          delete this;
          return;
        }
        Listen(service_, cq_);
        Status s = Authorize(service_.auth_, ctx_, Method::kFeaturesStreamEvents, key_);
        if (!s.ok()) return Finish(s);
        return Read();
      }
      case State::kReading: {
        if (!ok) return Finish(OkStatus());  // half-closed (or gone: then Finish is a no-op)
        Status s = CheckTemplates(service_.auth_, key_, Method::kFeaturesStreamEvents, message_);
        if (s.ok()) {
          s = PushBatch(service_.engine_, message_, next_index_, service_.events_rejected_at_edge_,
                        listed_bytes_, scratch_, response_);
        }
        next_index_ += static_cast<uint64_t>(message_.events_size());
        if (!s.ok()) return Finish(s);  // earlier messages stay applied
        return Read();
      }
      case State::kFinishing:
        delete this;
        return;
    }
  }

 private:
  enum class State { kListening, kReading, kFinishing };

  StreamEventsCall(FeaturesService& service, grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq) {}

  void Read() {
    state_ = State::kReading;
    message_.Clear();  // keeps the parsed events' memory for the next parse
    reader_.Read(&message_, this);
  }

  void Finish(const Status& status) {
    state_ = State::kFinishing;
    if (status.ok()) {
      reader_.Finish(response_, grpc::Status::OK, this);
    } else {
      reader_.FinishWithError(ToGrpcStatus(status), this);
    }
  }

  FeaturesService& service_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext ctx_;
  grpc::ServerAsyncReader<ods::v1::PushEventsResponse, ods::v1::PushEventsRequest> reader_{&ctx_};
  State state_ = State::kListening;
  const ApiKey* key_ = nullptr;  // the caller's (null: keys off)
  ods::v1::PushEventsRequest message_;
  ods::v1::PushEventsResponse response_;
  PushScratch scratch_;
  uint64_t next_index_ = 0;    // stream position of the first event of the next message
  uint64_t listed_bytes_ = 0;  // of the rejections response_ lists
};

FeaturesService::FeaturesService(engine::Engine& engine, const Authenticator* auth)
    : engine_(engine), auth_(auth), subscriptions_(std::make_unique<SubscriptionHub>(engine)) {}

Result<std::unique_ptr<engine::Subscription>> FeaturesService::OpenSubscription(
    const grpc::ServerContextBase& ctx, const ods::v1::SubscribeRequest& req) {
  const ods::v1::SubscribeRequest* const r = &req;
  const ApiKey* key = nullptr;
  Status access = Authorize(auth_, ctx, Method::kFeaturesSubscribe, key);
  engine::SubscribeRequest request;
  request.tables.assign(r->tables().begin(), r->tables().end());
  request.templates.assign(r->templates().begin(), r->templates().end());
  request.features.assign(r->features().begin(), r->features().end());
  request.keys.assign(r->keys().begin(), r->keys().end());
  if (r->has_from_sequence()) request.from_sequence = r->from_sequence();
  for (const std::string& name : request.tables) {
    if (access.ok()) access = CheckTable(auth_, key, Method::kFeaturesSubscribe, name);
  }
  for (const std::string& name : request.templates) {
    if (access.ok()) access = CheckTable(auth_, key, Method::kFeaturesSubscribe, name);
  }
  if (access.ok() && !request.features.empty()) {
    const std::vector<std::string_view> features(request.features.begin(), request.features.end());
    access = CheckFeatureSources(engine_, auth_, key, Method::kFeaturesSubscribe, features);
  }
  if (!access.ok()) return access;
  return engine_.Subscribe(request);
}

void FeaturesService::AppendMetrics(std::string& out) const {
  constexpr std::string_view kName = "ods_rpc_handler_seconds";
  out.append(
      "# HELP ods_rpc_handler_seconds Time in the RPC handler, from its start to its "
      "answer (gRPC queueing and transport excluded).\n");
  out.append("# TYPE ods_rpc_handler_seconds histogram\n");
  push_latency_.Render(kName, "ods.v1.Features/PushEvents", out);
  online_latency_.Render(kName, "ods.v1.Features/GetOnlineFeatures", out);
  historical_latency_.Render(kName, "ods.v1.Features/GetHistoricalFeatures", out);
}

void FeaturesService::ServeOn(CallQueue& queue) {
  queue.Serve(this, &FeaturesService::RequestPushEvents, this, &FeaturesService::HandlePushEvents);
  // A feature of a table that reads through may wait for its system of record. Else lookups
  // never wait but are the server's costliest calls: a backlog spills them to a second core.
  const CallQueue::Runs lookups =
      engine_.HasReadThrough() ? CallQueue::Runs::kBlocking : CallQueue::Runs::kInlineOrSpill;
  queue.Serve(this, &FeaturesService::RequestGetOnlineFeatures, this,
              &FeaturesService::HandleGetOnlineFeatures, lookups);
  queue.Serve(this, &FeaturesService::RequestGetHistoricalFeatures, this,
              &FeaturesService::HandleGetHistoricalFeatures, lookups);
  StreamEventsCall::Listen(*this, queue.cq());
  grpc::ServerCompletionQueue* cq = queue.cq();
  subscriptions_->Serve(
      cq,
      [this, cq](grpc::ServerContext* ctx, ods::v1::SubscribeRequest* req,
                 grpc::ServerAsyncWriter<ods::v1::SubscribeResponse>* writer,
                 void* tag) { RequestSubscribe(ctx, req, writer, cq, cq, tag); },
      [this](const grpc::ServerContextBase& ctx, const ods::v1::SubscribeRequest& req) {
        return OpenSubscription(ctx, req);
      });
}

Status FeaturesService::HandlePushEvents(const grpc::ServerContextBase& ctx,
                                         const ods::v1::PushEventsRequest& req,
                                         ods::v1::PushEventsResponse& resp) {
  const ScopedLatency timed(push_latency_);
  const ApiKey* key = nullptr;
  ODS_RETURN_IF_ERROR(Authorize(auth_, ctx, Method::kFeaturesPushEvents, key));
  ODS_RETURN_IF_ERROR(CheckTemplates(auth_, key, Method::kFeaturesPushEvents, req));
  uint64_t listed_bytes = 0;
  PushScratch scratch;
  return PushBatch(engine_, req, 0, events_rejected_at_edge_, listed_bytes, scratch, resp);
}

Status FeaturesService::HandleGetOnlineFeatures(const grpc::ServerContextBase& ctx,
                                                const grpc::ByteBuffer& wire,
                                                grpc::ByteBuffer& resp) {
  const ScopedLatency timed(online_latency_);
  const ApiKey* key = nullptr;
  ODS_RETURN_IF_ERROR(Authorize(auth_, ctx, Method::kFeaturesGetOnlineFeatures, key));
  // The usual request is read in place (features_wire.h); anything else by protobuf.
  grpc::Slice bytes;
  OnlineRequestView req;
  std::optional<ParsedRequest<ods::v1::GetOnlineFeaturesRequest>> parsed;
  if (!(wire.TrySingleSlice(&bytes).ok() || wire.DumpToSingleSlice(&bytes).ok()) ||
      !ReadOnlineRequest(
          std::string_view(reinterpret_cast<const char*>(bytes.begin()), bytes.size()), req)) {
    parsed.emplace();
    ODS_RETURN_IF_ERROR(parsed->Parse("GetOnlineFeatures", wire));
    const ods::v1::GetOnlineFeaturesRequest& m = **parsed;
    req.entities = Views(m.entities());
    req.features = Views(m.features());
    req.as_of = m.has_as_of_micros() ? std::optional<Micros>(m.as_of_micros()) : std::nullopt;
  }
  ODS_RETURN_IF_ERROR(CheckBatch(engine_, "GetOnlineFeatures", req.entities.size(), "entities"));
  ODS_RETURN_IF_ERROR(
      CheckFeatureSources(engine_, auth_, key, Method::kFeaturesGetOnlineFeatures, req.features));
  ODS_ASSIGN_OR_RETURN(std::vector<engine::FeatureColumn> columns,
                       engine_.GetOnlineFeatures(req.entities, req.features, req.as_of));
  WriteColumns(columns, resp);
  return OkStatus();
}

Status FeaturesService::HandleGetHistoricalFeatures(const grpc::ServerContextBase& ctx,
                                                    const grpc::ByteBuffer& wire,
                                                    grpc::ByteBuffer& resp) {
  const ScopedLatency timed(historical_latency_);
  const ApiKey* key = nullptr;
  ODS_RETURN_IF_ERROR(Authorize(auth_, ctx, Method::kFeaturesGetHistoricalFeatures, key));
  ParsedRequest<ods::v1::GetHistoricalFeaturesRequest> req;
  ODS_RETURN_IF_ERROR(req.Parse("GetHistoricalFeatures", wire));
  ODS_RETURN_IF_ERROR(CheckBatch(engine_, "GetHistoricalFeatures", req->rows_size(), "rows"));
  std::vector<engine::EntityRow> rows(req->rows_size());
  for (int i = 0; i < req->rows_size(); ++i) {
    rows[i].entity = req->rows(i).entity();
    rows[i].timestamp = req->rows(i).timestamp_micros();
  }
  const std::vector<std::string_view> features = Views(req->features());
  ODS_RETURN_IF_ERROR(
      CheckFeatureSources(engine_, auth_, key, Method::kFeaturesGetHistoricalFeatures, features));
  ODS_ASSIGN_OR_RETURN(std::vector<engine::FeatureColumn> columns,
                       engine_.GetHistoricalFeatures(rows, features));
  WriteColumns(columns, resp);
  return OkStatus();
}

}  // namespace ods::server
