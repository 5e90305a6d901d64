#pragma once

#include <google/protobuf/arena.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/message_allocator.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "auth.h"
#include "subscriptions.h"
#include "ods/common/latency_histogram.h"
#include "ods/common/mutex.h"
#include "ods/common/thread_annotations.h"
#include "ods/engine/engine.h"
#include "ods/v1/features.grpc.pb.h"

namespace ods::server {

// Allocates each call's request and response on one protobuf Arena: parsing a request of many
// events and building a columnar answer of many values then cost a few bump allocations instead
// of one heap allocation per message. Arenas are recycled: when a call ends its arena is reset
// (which keeps its first block of kFirstBlockBytes) and pooled for a later call, up to
// kMaxPooled of them, so a call whose messages fit the first block allocates no arena memory at
// all. Thread-safe.
template <typename Request, typename Response>
class ArenaMessageAllocator final : public grpc::MessageAllocator<Request, Response> {
 public:
  ArenaMessageAllocator() : pool_(std::make_shared<Pool>()) {}
  // Frees the idle holders (each holds the pool: without this they would keep it, and
  // themselves, alive forever); a call still in flight frees its holder when it ends.
  ~ArenaMessageAllocator() override { pool_->Close(); }
  ArenaMessageAllocator(const ArenaMessageAllocator&) = delete;
  ArenaMessageAllocator& operator=(const ArenaMessageAllocator&) = delete;

  grpc::MessageHolder<Request, Response>* AllocateMessages() override {
    if (std::unique_ptr<Holder> h = pool_->Take()) return h.release();
    return new Holder(pool_);  // gRPC calls Release() when the call is done.
  }

  // A 100 entities x 10 features answer takes about 100 KiB.
  static constexpr size_t kFirstBlockBytes = 128 << 10;
  // Most idle arenas kept (at most kMaxPooled * kFirstBlockBytes of idle memory).
  static constexpr size_t kMaxPooled = 32;

 private:
  class Holder;

  // Idle holders. Shared with the holders of calls in flight, so a call may end after the
  // allocator is gone.
  class Pool {
   public:
    std::unique_ptr<Holder> Take() ODS_EXCLUDES(mu_) {
      MutexLock lock(mu_);
      if (idle_.empty()) return nullptr;
      std::unique_ptr<Holder> h = std::move(idle_.back());
      idle_.pop_back();
      return h;
    }
    // Keeps `h` for a later call, or frees it when the pool is full or closed.
    void Put(std::unique_ptr<Holder> h) ODS_EXCLUDES(mu_) {
      MutexLock lock(mu_);
      if (!closed_ && idle_.size() < kMaxPooled) idle_.push_back(std::move(h));
    }
    // Frees the idle holders and every holder put back from now on.
    void Close() ODS_EXCLUDES(mu_) {
      std::vector<std::unique_ptr<Holder>> idle;  // freed outside the lock
      MutexLock lock(mu_);
      closed_ = true;
      idle.swap(idle_);
    }

   private:
    Mutex mu_;
    bool closed_ ODS_GUARDED_BY(mu_) = false;
    std::vector<std::unique_ptr<Holder>> idle_ ODS_GUARDED_BY(mu_);
  };

  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    explicit Holder(std::shared_ptr<Pool> pool)
        : pool_(std::move(pool)),
          first_block_(std::make_unique<char[]>(kFirstBlockBytes)),
          arena_(Options(first_block_.get())) {
      CreateMessages();
    }
    void Release() override {
      arena_.Reset();  // frees every block but the first
      CreateMessages();
      std::shared_ptr<Pool> pool = pool_;  // Put may free this holder
      pool->Put(std::unique_ptr<Holder>(this));
    }

   private:
    void CreateMessages() {
      this->set_request(google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }
    static google::protobuf::ArenaOptions Options(char* first_block) {
      google::protobuf::ArenaOptions options;
      options.initial_block = first_block;
      options.initial_block_size = kFirstBlockBytes;
      options.start_block_size = 16 << 10;
      options.max_block_size = 64 << 10;
      return options;
    }
    std::shared_ptr<Pool> pool_;
    std::unique_ptr<char[]> first_block_;  // the arena's first block, kept across Reset
    google::protobuf::Arena arena_;
  };

  std::shared_ptr<Pool> pool_;
};

// ods.v1.Features over the callback API: validates wire input, converts at the edge, calls the
// engine and maps statuses. Handlers run inline on gRPC's callback threads (engine calls lock
// one shard at a time, for microseconds). Thread-safe; `engine` must outlive the service.
//
// Whole-request errors (a batch over limits.max_batch_size, an unknown feature ref...) fail the
// call; an invalid event fails only itself and is reported by index in a successful answer.
// The generated service with lookups as raw (byte buffer) methods: their answers are written
// straight to the wire (features_wire.h), not built as messages.
using FeaturesServiceBase = ods::v1::Features::WithCallbackMethod_PushEvents<
    ods::v1::Features::WithCallbackMethod_StreamEvents<
        ods::v1::Features::WithRawCallbackMethod_GetOnlineFeatures<
            ods::v1::Features::WithRawCallbackMethod_GetHistoricalFeatures<
                ods::v1::Features::WithCallbackMethod_Subscribe<ods::v1::Features::Service>>>>>;

class FeaturesService final : public FeaturesServiceBase {
 public:
  // `auth` checks every call (null: keys off): the method's role, and for a key restricted to
  // tables the event templates pushed and the tables and templates behind the features read.
  // `engine` and `auth` must outlive the service.
  FeaturesService(engine::Engine& engine, const Authenticator* auth);

  grpc::ServerUnaryReactor* PushEvents(grpc::CallbackServerContext* ctx,
                                       const ods::v1::PushEventsRequest* req,
                                       ods::v1::PushEventsResponse* resp) override;
  // Applies each message as it arrives; answers the totals once the client half-closes. An error
  // (e.g. a message over limits.max_batch_size) ends the call; earlier messages stay applied.
  grpc::ServerReadReactor<ods::v1::PushEventsRequest>* StreamEvents(
      grpc::CallbackServerContext* ctx, ods::v1::PushEventsResponse* resp) override;
  // Raw methods: `req` holds a GetOnlineFeaturesRequest / GetHistoricalFeaturesRequest (one that
  // does not parse answers INVALID_ARGUMENT), `resp` receives a FeaturesResponse.
  grpc::ServerUnaryReactor* GetOnlineFeatures(grpc::CallbackServerContext* ctx,
                                              const grpc::ByteBuffer* req,
                                              grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* GetHistoricalFeatures(grpc::CallbackServerContext* ctx,
                                                  const grpc::ByteBuffer* req,
                                                  grpc::ByteBuffer* resp) override;

  // Streams changes (SubscriptionHub). Errors before the first message: as Engine::Subscribe,
  // plus the `read` role on every table and template named or behind a feature.
  grpc::ServerWriteReactor<ods::v1::SubscribeResponse>* Subscribe(
      grpc::CallbackServerContext* ctx, const ods::v1::SubscribeRequest* req) override;
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
  engine::Engine& engine_;
  const Authenticator* const auth_;
  std::atomic<uint64_t> events_rejected_at_edge_{0};
  LatencyHistogram push_latency_;
  LatencyHistogram online_latency_;
  LatencyHistogram historical_latency_;
  ArenaMessageAllocator<ods::v1::PushEventsRequest, ods::v1::PushEventsResponse> push_allocator_;
  std::unique_ptr<SubscriptionHub> subscriptions_;
};

}  // namespace ods::server
