#pragma once

#include <grpcpp/support/byte_buffer.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "auth.h"
#include "call_queue.h"
#include "ods/common/latency_histogram.h"
#include "ods/common/mutex.h"
#include "ods/common/thread_annotations.h"
#include "ods/engine/engine.h"
#include "ods/v1/features.grpc.pb.h"
#include "subscriptions.h"

namespace ods::server {

// ods.v1.Features: validates wire input, converts at the edge, calls the engine and maps
// statuses. Served from a CallQueue: pushes, event streams and lookups run inline on its thread
// (engine calls lock one shard at a time, for microseconds), except lookups when some table
// reads through to a system of record (a table field's read may then wait on the network):
// those run on the queue's blocking workers. Subscribe streams are written by SubscriptionHub.
// Thread-safe; `engine` must outlive the service.
//
// Whole-request errors (a batch over limits.max_batch_size, an unknown feature ref...) fail the
// call; an invalid event fails only itself and is reported by index in a successful answer.
// The generated service with lookups as raw (byte buffer) methods: their answers are written
// straight to the wire (features_wire.h), not built as messages.
using FeaturesServiceBase =
    ods::v1::Features::WithAsyncMethod_PushEvents<ods::v1::Features::WithAsyncMethod_StreamEvents<
        ods::v1::Features::WithRawMethod_GetOnlineFeatures<
            ods::v1::Features::WithRawMethod_GetHistoricalFeatures<
                ods::v1::Features::WithAsyncMethod_Subscribe<ods::v1::Features::Service>>>>>;

class FeaturesService final : public FeaturesServiceBase {
 public:
  // `auth` checks every call (null: keys off): the method's role, and for a key restricted to
  // tables the event templates pushed and the tables and templates behind the features read.
  // `engine` and `auth` must outlive the service.
  FeaturesService(engine::Engine& engine, const Authenticator* auth);

  // Serves every method on `queue` (before it starts), which must outlive the service's calls.
  void ServeOn(CallQueue& queue);

  // The unary methods: the answer's status; `resp` holds the answer when it is OK.
  Status HandlePushEvents(const grpc::ServerContextBase& ctx, const ods::v1::PushEventsRequest& req,
                          ods::v1::PushEventsResponse& resp);
  // Raw methods: `wire` holds a GetOnlineFeaturesRequest / GetHistoricalFeaturesRequest (one
  // that does not parse answers INVALID_ARGUMENT), `resp` receives a FeaturesResponse.
  Status HandleGetOnlineFeatures(const grpc::ServerContextBase& ctx, const grpc::ByteBuffer& wire,
                                 grpc::ByteBuffer& resp);
  Status HandleGetHistoricalFeatures(const grpc::ServerContextBase& ctx,
                                     const grpc::ByteBuffer& wire, grpc::ByteBuffer& resp);

  // StreamEvents (StreamEventsCall) applies each message as it arrives and answers the totals
  // once the client half-closes; an error (e.g. a message over limits.max_batch_size) ends the
  // call, earlier messages stay applied. Subscribe streams changes (SubscriptionHub).

  // Ends every Subscribe stream (server shutdown: they would otherwise hold the drain).
  void StopSubscriptions() { subscriptions_->Stop(); }
  uint64_t subscribe_streams() const { return subscriptions_->open_streams(); }
  uint64_t subscribe_socket_holds() const { return subscriptions_->socket_holds(); }

  // Events rejected here before reaching the engine (a value with no type set); the engine
  // counts the rest. Added to ods_events_rejected_total.
  uint64_t events_rejected_at_edge() const {
    return events_rejected_at_edge_.load(std::memory_order_relaxed);
  }
  // Appends `ods_rpc_handler_seconds` (handler time per method: from the handler's start to its
  // answer, excluding gRPC's queueing and transport) in Prometheus text format.
  void AppendMetrics(std::string& out) const;

 private:
  class StreamEventsCall;

  // A Subscribe stream's engine subscription. Errors (ending the stream before its first
  // message): as Engine::Subscribe, plus the `read` role on every table and template named or
  // behind a feature.
  Result<std::unique_ptr<engine::Subscription>> OpenSubscription(
      const grpc::ServerContextBase& ctx, const ods::v1::SubscribeRequest& req);

  engine::Engine& engine_;
  const Authenticator* const auth_;
  std::atomic<uint64_t> events_rejected_at_edge_{0};
  LatencyHistogram push_latency_;
  LatencyHistogram online_latency_;
  LatencyHistogram historical_latency_;
  std::unique_ptr<SubscriptionHub> subscriptions_;
};

}  // namespace ods::server
