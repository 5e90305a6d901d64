#pragma once

#include <google/protobuf/arena.h>
#include <grpcpp/completion_queue.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/async_unary_call.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "ods/common/status.h"
#include "status_mapping.h"

namespace ods::server {

// Something waiting on a CallQueue: the queue's thread calls Proceed(ok) when the operation it
// was passed to as a tag completes (`ok` as gRPC reports it).
class CallTag {
 public:
  virtual ~CallTag() = default;
  virtual void Proceed(bool ok) = 0;
};

// A CallTag that calls `(owner->*kProceed)(ok)`: lets one object (a streaming call) wait on
// several operations at once, one tag each.
template <typename Owner, void (Owner::*kProceed)(bool)>
class MemberTag final : public CallTag {
 public:
  explicit MemberTag(Owner* owner) : owner_(owner) {}
  void Proceed(bool ok) override { (owner_->*kProceed)(ok); }

 private:
  Owner* const owner_;
};

// When a streaming call that asked for gRPC's "call done" notice (AsyncNotifyWhenDone) may be
// freed: once its final status went out and the notice came. The two arrive in either order,
// possibly on two queue threads; exactly one of the calls below returns true. Thread-safe.
class CallEnd {
 public:
  // The final status's tag completed. True: free the call now.
  bool StatusSent() {
    std::lock_guard<std::mutex> lock(mu_);
    status_sent_ = true;
    return call_done_;
  }
  // The "call done" tag completed (after any reaction to a cancellation). True: free it now.
  bool CallDone() {
    std::lock_guard<std::mutex> lock(mu_);
    call_done_ = true;
    return status_sent_;
  }

 private:
  std::mutex mu_;
  bool status_sent_ = false;  // guarded by mu_
  bool call_done_ = false;    // guarded by mu_
};

// How a generated service with method M marked async (WithAsyncMethod_M or WithRawMethod_M)
// asks gRPC for M's next call: its RequestM.
template <typename Service, typename Request, typename Response>
using RequestMethod = void (Service::*)(grpc::ServerContext*, Request*,
                                        grpc::ServerAsyncResponseWriter<Response>*,
                                        grpc::CompletionQueue*, grpc::ServerCompletionQueue*,
                                        void*);

// A call's message of type T: on the call's arena when T is a protobuf message (parsing a request
// of many repeated entries then costs a few block allocations, not one per entry), else a plain
// member (grpc::ByteBuffer of raw methods).
template <typename T, bool kOnArena = std::is_base_of_v<google::protobuf::MessageLite, T>>
class CallMessage {
 public:
  explicit CallMessage(google::protobuf::Arena* arena)
      : message_(google::protobuf::Arena::CreateMessage<T>(arena)) {}
  T* get() { return message_; }

 private:
  T* message_;
};
template <typename T>
class CallMessage<T, false> {
 public:
  explicit CallMessage(google::protobuf::Arena* /*arena*/) {}
  T* get() { return &message_; }

 private:
  T message_;
};

// One unary call served through a CallQueue. The handler gets it on the queue's thread and
// answers exactly once with Finish, there or later from any other thread; until then it may read
// context() and request() and fill response(). The call frees itself once the answer is sent.
template <typename Request, typename Response>
class UnaryCall final : public CallTag {
 public:
  // Sends response() when `status` is OK, else only the status (mapped by ToGrpcStatus).
  void Finish(const Status& status) {
    finishing_ = true;
    if (status.ok()) {
      writer_.Finish(*response_.get(), grpc::Status::OK, this);
    } else {
      writer_.FinishWithError(ToGrpcStatus(status), this);
    }
  }

  const grpc::ServerContext& context() const { return ctx_; }
  const Request& request() { return *request_.get(); }
  Response& response() { return *response_.get(); }

  // A method's way of asking for its next call and of handling one. Owned by the CallQueue.
  class Method {
   public:
    virtual ~Method() = default;
    virtual void RequestNext(UnaryCall* call, grpc::ServerCompletionQueue* cq) = 0;
    virtual void Handle(UnaryCall& call) = 0;
  };

  // Asks for the next call of `method` on `cq`.
  static void Listen(Method* method, grpc::ServerCompletionQueue* cq) {
    method->RequestNext(new UnaryCall(method, cq), cq);
  }

  grpc::ServerContext* mutable_context() { return &ctx_; }
  Request* mutable_request() { return request_.get(); }
  grpc::ServerAsyncResponseWriter<Response>* writer() { return &writer_; }

  void Proceed(bool ok) override {
    if (finishing_ || !ok) {  // the answer went out, or the server shuts down
      delete this;
      return;
    }
    Listen(method_, cq_);  // one call of each method is always waiting
    method_->Handle(*this);
  }

 private:
  UnaryCall(Method* method, grpc::ServerCompletionQueue* cq) : method_(method), cq_(cq) {}

  Method* const method_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext ctx_;
  google::protobuf::Arena arena_;
  CallMessage<Request> request_{&arena_};
  CallMessage<Response> response_{&arena_};
  grpc::ServerAsyncResponseWriter<Response> writer_{&ctx_};
  bool finishing_ = false;
};

// How a CallQueue runs (CallQueue::Options).
struct CallQueueOptions {
  // Threads waiting on the queue and running handlers. More than one raises the throughput
  // ceiling and brings back gRPC's poller hand-offs (see CallQueue).
  size_t threads = 1;
  // Threads running blocking handlers, and the most calls that wait for one (beyond:
  // RESOURCE_EXHAUSTED).
  size_t blocking_workers = 4;
  size_t max_blocking_queued = 1024;
  // Runs::kInlineOrSpill: a queue thread that has had work without a pause for this long is
  // behind (a backlog, typically after the host stalled the process); it then hands such calls
  // to an idle blocking worker, at most max_spilled at a time, so another core helps drain it.
  // 0: never.
  int64_t spill_after_micros = 1000;
  size_t max_spilled = 1;
};

// gRPC's async API served by one thread (Options::threads): the thread waits on one completion
// queue and runs each completed operation's CallTag. It is the process's only gRPC poller once
// no callback method is left: each additional poller thread costs about three context switches
// per call at moderate rates (gRPC hands the poller role between them on every event;
// docs/architecture.md). Handlers run inline on the queue's threads and must not block: work that
// may wait (a backfill, a read from a system of record) goes to the queue's blocking workers
// (Serve(..., Runs::kBlocking), RunBlocking) or to a service's own threads, which answer from
// there.
//
// Lifecycle: Serve every method once grpc::Server::BuildAndStart succeeded, then Start;
// Shutdown after grpc::Server::Shutdown returned (every call answered and freed). Serve, Start
// and Shutdown are not thread-safe. With more than one thread, the tags of one call may run
// concurrently on different threads.
class CallQueue {
 public:
  using Options = CallQueueOptions;

  explicit CallQueue(std::unique_ptr<grpc::ServerCompletionQueue> cq, Options options = {})
      : cq_(std::move(cq)), options_(options) {}
  ~CallQueue() { Shutdown(); }
  CallQueue(const CallQueue&) = delete;
  CallQueue& operator=(const CallQueue&) = delete;

  // Where a method's handlers run: inline on the queue's thread; on a blocking worker (for
  // handlers that may wait: in arrival order; a call that finds Options::max_blocking_queued
  // calls waiting is answered RESOURCE_EXHAUSTED); or inline unless the queue's thread is behind,
  // then on a blocking worker (for handlers that never wait but cost much CPU: lookups; see
  // Options::spill_after_micros).
  enum class Runs { kInline, kBlocking, kInlineOrSpill };

  // Serves the unary method whose RequestM is `request` with `handler`, a member function of
  // `owner` that answers the call itself (now or later). `service` and `owner` (often the same
  // object) must outlive the queue.
  template <typename Service, typename Owner, typename Request, typename Response>
  void Serve(std::type_identity_t<Service>* service,
             RequestMethod<Service, Request, Response> request, Owner* owner,
             void (Owner::*handler)(UnaryCall<Request, Response>&), Runs runs = Runs::kInline) {
    Add(service, request, runs,
        [owner, handler](UnaryCall<Request, Response>& call) { (owner->*handler)(call); });
  }
  // As above, for a handler that answers with its result: the call's status, and response()
  // when it is OK.
  template <typename Service, typename Owner, typename Request, typename Response>
  void Serve(std::type_identity_t<Service>* service,
             RequestMethod<Service, Request, Response> request, Owner* owner,
             Status (Owner::*handler)(const grpc::ServerContextBase&, const Request&, Response&),
             Runs runs = Runs::kInline) {
    Add(service, request, runs, [owner, handler](UnaryCall<Request, Response>& call) {
      call.Finish((owner->*handler)(call.context(), call.request(), call.response()));
    });
  }

  // Runs `work` on a blocking worker; false (nothing queued) when Options::max_blocking_queued
  // works already wait. Thread-safe.
  bool RunBlocking(std::function<void()> work);
  // Works waiting for a blocking worker. Thread-safe.
  size_t blocking_queued() const;
  // Works RunBlocking refused since the start (the queue was full). Thread-safe.
  uint64_t blocking_refused() const { return refused_.load(std::memory_order_relaxed); }
  // Runs::kInlineOrSpill calls handed to a blocking worker since the start. Thread-safe.
  uint64_t spilled() const { return spilled_.load(std::memory_order_relaxed); }
  // What a call answers when RunBlocking refused its work (RESOURCE_EXHAUSTED).
  Status QueueFullError() const;

  // The queue, for streaming calls that request and run themselves (their tags are CallTags).
  grpc::ServerCompletionQueue* cq() { return cq_.get(); }

  // Starts the queue's threads and the blocking workers.
  void Start();
  // Shuts the queue down, runs what is left on it and joins the threads. Idempotent.
  void Shutdown();

 private:
  class AnyMethod {
   public:
    virtual ~AnyMethod() = default;
  };
  template <typename Service, typename Request, typename Response, typename Handler>
  class BoundMethod final : public UnaryCall<Request, Response>::Method, public AnyMethod {
   public:
    BoundMethod(Service* service, RequestMethod<Service, Request, Response> request,
                Handler handler, CallQueue* queue, Runs runs)
        : service_(service),
          request_(request),
          handler_(std::move(handler)),
          queue_(queue),
          runs_(runs) {}
    void RequestNext(UnaryCall<Request, Response>* call, grpc::ServerCompletionQueue* cq) override {
      (service_->*request_)(call->mutable_context(), call->mutable_request(), call->writer(), cq,
                            cq, call);
    }
    void Handle(UnaryCall<Request, Response>& call) override {
      switch (runs_) {
        case Runs::kInline:
          handler_(call);
          return;
        case Runs::kInlineOrSpill:
          if (!queue_->Spill([this, &call] { handler_(call); })) handler_(call);
          return;
        case Runs::kBlocking:
          if (!queue_->RunBlocking([this, &call] { handler_(call); })) {
            call.Finish(queue_->QueueFullError());
          }
          return;
      }
    }

   private:
    Service* const service_;
    const RequestMethod<Service, Request, Response> request_;
    const Handler handler_;
    CallQueue* const queue_;
    const Runs runs_;
  };

  template <typename Service, typename Request, typename Response, typename Handler>
  void Add(Service* service, RequestMethod<Service, Request, Response> request, Runs runs,
           Handler handler) {
    auto method = std::make_unique<BoundMethod<Service, Request, Response, Handler>>(
        service, request, std::move(handler), this, runs);
    UnaryCall<Request, Response>::Listen(method.get(), cq_.get());
    methods_.push_back(std::move(method));
  }
  // On a queue thread that is behind (Options::spill_after_micros), with fewer than
  // Options::max_spilled spilled works running or waiting and a blocking worker idle (nothing
  // queued): queues `work` for that worker and returns true. Else false: the caller runs it.
  bool Spill(std::function<void()> work);
  void Run();
  void Work();

  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  const Options options_;
  std::vector<std::unique_ptr<AnyMethod>> methods_;
  std::vector<std::thread> threads_;
  bool shut_down_ = false;

  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> spilled_{0};
  std::atomic<size_t> spilled_pending_{0};  // spilled works queued or running
  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::deque<std::function<void()>> work_;  // guarded by mu_
  bool stop_ = false;                       // guarded by mu_
  size_t idle_workers_ = 0;                 // workers waiting for work; guarded by mu_
  std::vector<std::thread> workers_;
};

}  // namespace ods::server
