#pragma once

#include <google/protobuf/arena.h>
#include <grpcpp/support/message_allocator.h>

#include <atomic>
#include <cstdint>

#include "ods/engine/engine.h"
#include "ods/v1/features.grpc.pb.h"

namespace ods::server {

// Allocates each call's request and response on one protobuf Arena, freed whole when the call
// ends: parsing a request of many events and building a columnar answer of many values then cost
// a few block allocations instead of one heap allocation per message. Thread-safe.
template <typename Request, typename Response>
class ArenaMessageAllocator final : public grpc::MessageAllocator<Request, Response> {
 public:
  grpc::MessageHolder<Request, Response>* AllocateMessages() override {
    return new Holder();  // gRPC calls Release() when the call is done.
  }

 private:
  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    Holder() : arena_(Options()) {
      this->set_request(google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }
    void Release() override { delete this; }

   private:
    static google::protobuf::ArenaOptions Options() {
      google::protobuf::ArenaOptions options;
      // A 100 entities x 10 features answer is ~100 KiB: reach it in a few blocks.
      options.start_block_size = 4 << 10;
      options.max_block_size = 64 << 10;
      return options;
    }
    google::protobuf::Arena arena_;
  };
};

// ods.v1.Features over the callback API: validates wire input, converts at the edge, calls the
// engine and maps statuses. Handlers run inline on gRPC's callback threads (engine calls lock
// one shard at a time, for microseconds). Thread-safe; `engine` must outlive the service.
//
// Whole-request errors (a batch over limits.max_batch_size, an unknown feature ref...) fail the
// call; an invalid event fails only itself and is reported by index in a successful answer.
class FeaturesService final : public ods::v1::Features::CallbackService {
 public:
  explicit FeaturesService(engine::Engine& engine);

  grpc::ServerUnaryReactor* PushEvents(grpc::CallbackServerContext* ctx,
                                       const ods::v1::PushEventsRequest* req,
                                       ods::v1::PushEventsResponse* resp) override;
  // Applies each message as it arrives; answers the totals once the client half-closes. An error
  // (e.g. a message over limits.max_batch_size) ends the call; earlier messages stay applied.
  grpc::ServerReadReactor<ods::v1::PushEventsRequest>* StreamEvents(
      grpc::CallbackServerContext* ctx, ods::v1::PushEventsResponse* resp) override;
  grpc::ServerUnaryReactor* GetOnlineFeatures(grpc::CallbackServerContext* ctx,
                                              const ods::v1::GetOnlineFeaturesRequest* req,
                                              ods::v1::FeaturesResponse* resp) override;
  grpc::ServerUnaryReactor* GetHistoricalFeatures(grpc::CallbackServerContext* ctx,
                                                  const ods::v1::GetHistoricalFeaturesRequest* req,
                                                  ods::v1::FeaturesResponse* resp) override;

  // Events rejected here before reaching the engine (a value with no type set); the engine
  // counts the rest. Added to ods_events_rejected_total.
  uint64_t events_rejected_at_edge() const {
    return events_rejected_at_edge_.load(std::memory_order_relaxed);
  }

 private:
  engine::Engine& engine_;
  std::atomic<uint64_t> events_rejected_at_edge_{0};
  ArenaMessageAllocator<ods::v1::PushEventsRequest, ods::v1::PushEventsResponse> push_allocator_;
  ArenaMessageAllocator<ods::v1::GetOnlineFeaturesRequest, ods::v1::FeaturesResponse>
      online_allocator_;
  ArenaMessageAllocator<ods::v1::GetHistoricalFeaturesRequest, ods::v1::FeaturesResponse>
      historical_allocator_;
};

}  // namespace ods::server
