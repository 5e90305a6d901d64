#include "subscriptions.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

#include "call_queue.h"
#include "convert.h"
#include "ods/common/logging.h"
#include "status_mapping.h"

namespace ods::server {
namespace {

ods::v1::ChangeKind KindToProto(engine::ChangeKind kind) {
  switch (kind) {
    case engine::ChangeKind::kPut:
      return ods::v1::CHANGE_PUT;
    case engine::ChangeKind::kDelete:
      return ods::v1::CHANGE_DELETE;
    case engine::ChangeKind::kExpire:
      return ods::v1::CHANGE_EXPIRE;
    case engine::ChangeKind::kEvent:
      return ods::v1::CHANGE_EVENT;
  }
  return ods::v1::CHANGE_KIND_UNSPECIFIED;
}

void BatchToProto(const engine::SubscriptionBatch& batch, ods::v1::SubscribeResponse& out) {
  out.Clear();
  if (batch.gap) {
    ods::v1::SubscriptionGap* gap = out.mutable_gap();
    gap->set_from_sequence(batch.gap->from_sequence);
    gap->set_to_sequence(batch.gap->to_sequence);
    gap->set_reason(batch.gap->reason == engine::GapReason::kOverflow ? ods::v1::GAP_OVERFLOW
                                                                      : ods::v1::GAP_NOT_RETAINED);
  }
  for (const std::shared_ptr<const engine::Change>& c : batch.changes) {
    ods::v1::Change* p = out.add_changes();
    p->set_sequence(c->sequence);
    p->set_kind(KindToProto(c->kind));
    p->set_source(c->source);
    p->set_key(c->key);
    p->set_published_micros(c->at_micros);
    if (c->kind == engine::ChangeKind::kPut) {
      ToProto(c->key, c->record, *p->mutable_record());
    } else if (c->kind == engine::ChangeKind::kEvent) {
      auto& fields = *p->mutable_event_fields();
      for (const record::Field& f : c->record.fields) ToProto(f.value, fields[f.name]);
      p->set_event_time_micros(c->record.event_time_micros);
    }
  }
  for (const engine::FeatureUpdate& u : batch.features) {
    ods::v1::FeatureUpdate* p = out.add_features();
    p->set_sequence(u.sequence);
    p->set_feature(u.feature);
    p->set_entity(u.entity);
    ToProto(u.value, *p->mutable_value());
    p->set_status(ToProto(u.status));
    p->set_event_time_micros(u.event_time);
  }
  out.set_next_sequence(batch.next_sequence);
}

}  // namespace

// One Subscribe call. Its mutex guards the write state; the hub's mutex is taken before it,
// never after. Operations complete on the call queue's thread (a tag each: a write, the final
// status, and gRPC's "call done", which also says when the client cancelled); writes start
// there, on the pump thread (Poll) or on the thread that stops the hub. Frees itself once the
// final status went out and gRPC said the call is done.
class SubscriptionHub::Stream final : public CallTag {
 public:
  explicit Stream(SubscriptionHub& hub) : hub_(hub) { ctx_.AsyncNotifyWhenDone(&done_tag_); }

  grpc::ServerContext* context() { return &ctx_; }
  ods::v1::SubscribeRequest* request() { return &request_; }
  grpc::ServerAsyncWriter<ods::v1::SubscribeResponse>* writer() { return &writer_; }
  const grpc::ServerContext& context() const { return ctx_; }

  // The call arrived (ok) or the server shuts down (not ok: the call never started).
  void Proceed(bool ok) override {
    if (!ok) {
      delete this;  // no "call done" comes for a call that never started
      return;
    }
    hub_.Listen();
    hub_.Open(this, hub_.open_(ctx_, request_));
  }

  // Streams `subscription`; the first message is the start sequence (and a gap if from_sequence
  // is no longer retained). Null: finishes at once with `error`.
  void Start(std::unique_ptr<engine::Subscription> subscription, std::optional<PeerSocket> socket,
             const Status& error) {
    std::lock_guard<std::mutex> lock(mu_);
    subscription_ = std::move(subscription);
    socket_ = socket;
    if (subscription_ == nullptr) return FinishLocked(ToGrpcStatus(error));
    WriteNextLocked(/*always=*/true);
  }

  // Starts a write if none is in flight and there is something new. Called by the pump, under
  // the hub's mutex. Returns whether the stream is idle (open, no write in flight) and so needs
  // the pump to look again; a stream with a write in flight continues from WriteDone.
  bool Poll() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!writing_ && !finished_ && subscription_->HasPending()) WriteNextLocked(false);
    return !writing_ && !finished_;
  }

  // Ends the stream (server shutting down).
  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (writing_) {
      ctx_.TryCancel();  // a write the client does not read would otherwise never complete
    } else {
      FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
    }
  }

 private:
  void WriteDone(bool ok) {
    bool idle = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (!ok || cancelled_) {
        FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "subscription cancelled"));
      } else if (stop_) {
        FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
      } else if (subscription_->HasPending()) {
        WriteNextLocked(false);
      }
      idle = !writing_ && !finished_;
    }
    // Caught up: the pump looks for its next changes (it may be sleeping because every stream
    // had a write in flight). After our lock: the hub's mutex is never taken under ours.
    if (idle) hub_.WakePump();
  }

  // gRPC's "call done": after the final status went out, or when the client cancelled.
  void CallDone(bool /*ok*/) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ctx_.IsCancelled()) {
        cancelled_ = true;
        if (!writing_) {
          FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "subscription cancelled"));
        }
      }
    }
    if (end_.CallDone()) Free();
  }

  void StatusSent(bool /*ok*/) {
    if (end_.StatusSent()) Free();
  }

  void Free() {
    hub_.Remove(this);
    delete this;
  }

  // Takes the next batch; writes it if it holds something (or `always`). Batches the filter
  // left empty are skipped, a bounded number at a time (the pump comes back).
  void WriteNextLocked(bool always) {
    if (finished_) return;
    if (!always && SocketBackedUpLocked()) return;  // the pump comes back
    engine::SubscriptionBatch batch;
    for (int round = 0; round < 16; ++round) {
      Status s = subscription_->Next(hub_.max_changes_per_message_, batch);
      if (!s.ok()) {
        FinishLocked(ToGrpcStatus(s));
        return;
      }
      if (always || batch.gap || !batch.changes.empty() || !batch.features.empty()) break;
      if (!subscription_->HasPending()) return;
    }
    if (!always && !batch.gap && batch.changes.empty() && batch.features.empty()) return;
    BatchToProto(batch, message_);
    writing_ = true;
    writer_.Write(message_, &write_tag_);
  }

  // Whether the connection's send queue is backed up (SocketBackedUp); counts each hold once.
  bool SocketBackedUpLocked() {
    if (!socket_) return false;
    const std::optional<PeerSocket::Backlog> backlog = socket_->ReadBacklog();
    if (!backlog) {
      socket_.reset();  // the connection closed: the "call done" cancellation follows
      return false;
    }
    const bool backed_up = SocketBackedUp(*backlog);
    if (backed_up && !held_) hub_.socket_holds_.fetch_add(1, std::memory_order_relaxed);
    held_ = backed_up;
    return backed_up;
  }

  void FinishLocked(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    writer_.Finish(status, &finish_tag_);
  }

  SubscriptionHub& hub_;
  grpc::ServerContext ctx_;
  ods::v1::SubscribeRequest request_;
  grpc::ServerAsyncWriter<ods::v1::SubscribeResponse> writer_{&ctx_};
  MemberTag<Stream, &Stream::WriteDone> write_tag_{this};
  MemberTag<Stream, &Stream::StatusSent> finish_tag_{this};
  MemberTag<Stream, &Stream::CallDone> done_tag_{this};
  std::mutex mu_;
  std::unique_ptr<engine::Subscription> subscription_;  // set by Start
  std::optional<PeerSocket> socket_;                    // the connection, when Find knew it (TCP)
  bool writing_ = false;                                // a message is in flight
  bool held_ = false;                   // the last look found the connection backed up
  bool finished_ = false;               // the final status was started
  bool cancelled_ = false;              // the client cancelled
  bool stop_ = false;                   // Stop came
  ods::v1::SubscribeResponse message_;  // the message in flight
  CallEnd end_;
};

SubscriptionHub::SubscriptionHub(engine::Engine& engine)
    : engine_(engine),
      // Every change fits: a record is at most max_record_bytes, at most half a message.
      max_changes_per_message_(
          std::clamp<size_t>(engine.config().limits.max_message_bytes /
                                 (2 * engine.config().limits.max_record_bytes + 1),
                             1, 256)),
      pump_([this] { Run(); }) {}

SubscriptionHub::~SubscriptionHub() {
  Stop();
  {
    std::lock_guard<std::mutex> lock(mu_);
    exit_ = true;
  }
  cv_.notify_all();
  pump_.join();
}

void SubscriptionHub::Serve(grpc::ServerCompletionQueue* cq, Requester request, Opener open) {
  cq_ = cq;
  request_ = std::move(request);
  open_ = std::move(open);
  Listen();
}

void SubscriptionHub::Listen() {
  auto* stream = new Stream(*this);
  request_(stream->context(), stream->request(), stream->writer(), stream);
}

void SubscriptionHub::Open(Stream* stream,
                           Result<std::unique_ptr<engine::Subscription>> subscription) {
  std::optional<PeerSocket> socket;
  if (subscription.ok()) socket = PeerSocket::Find(stream->context()->peer());
  std::unique_lock<std::mutex> lock(mu_);
  if (subscription.ok() && stopped_) subscription = UnavailableError("server shutting down");
  if (!subscription.ok()) {
    lock.unlock();
    stream->Start(nullptr, std::nullopt, subscription.status());  // not listed: ends at once
    return;
  }
  streams_.push_back(stream);
  stream->Start(std::move(subscription).value(), socket, OkStatus());
  wake_ = true;
  lock.unlock();
  cv_.notify_all();
}

void SubscriptionHub::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stopped_ = true;
  for (Stream* s : streams_) s->Stop();
}

uint64_t SubscriptionHub::open_streams() const {
  std::lock_guard<std::mutex> lock(mu_);
  return streams_.size();
}

void SubscriptionHub::Remove(Stream* s) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase(streams_, s);
}

void SubscriptionHub::WakePump() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake_ = true;
  }
  cv_.notify_all();
}

void SubscriptionHub::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!exit_) {
    bool any_idle = false;
    for (Stream* s : streams_) any_idle |= s->Poll();
    wake_ = false;
    if (any_idle) {
      cv_.wait_for(lock, kPollInterval, [this] { return exit_; });
    } else {
      // No stream to look for: none open, or each has a write in flight (a stalled client holds
      // one for as long as it reads nothing). Sleep until one opens or goes idle.
      cv_.wait(lock, [this] { return exit_ || wake_; });
    }
  }
}

}  // namespace ods::server
