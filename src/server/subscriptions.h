#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ods/common/status.h"
#include "ods/engine/engine.h"
#include "ods/v1/features.grpc.pb.h"
#include "peer_socket.h"

namespace ods::server {

// Serves Features.Subscribe streams from the engine's change log (docs/architecture.md,
// "Subscriptions"). Each stream has at most one message in flight; a stream whose client does
// not read (gRPC flow control holds its write) simply stops taking changes, so writers never
// wait for it: its cursor stays put and, when it reads again, the engine's Subscription gives it
// a gap notice. A stream is also held while its connection's kernel send queue is backed up
// (SocketBackedUp): a client whose HTTP/2 window exceeds the socket buffers would otherwise
// block the server's TCP write, and gRPC then runs a backup poller that slows every writer (see
// docs/architecture.md, "Subscriptions"). One pump thread wakes every kPollInterval while some
// stream is idle (open, no write in flight, held or not) and starts a write on each idle stream
// that has new changes; a stream whose write completed takes its next message at once on the
// call queue's thread. While every stream has a write in flight (e.g. all clients stalled behind
// their HTTP/2 windows) the pump sleeps until one completes. Writers do nothing for subscribers.
// Thread-safe. Must be stopped (Stop) before the gRPC server shuts down, and outlive it.
class SubscriptionHub {
 public:
  explicit SubscriptionHub(engine::Engine& engine);
  ~SubscriptionHub();  // Stop(), then joins the pump thread.
  SubscriptionHub(const SubscriptionHub&) = delete;
  SubscriptionHub& operator=(const SubscriptionHub&) = delete;

  // Asks gRPC for Features.Subscribe's next call (the generated RequestSubscribe, bound to the
  // queue).
  using Requester =
      std::function<void(grpc::ServerContext*, ods::v1::SubscribeRequest*,
                         grpc::ServerAsyncWriter<ods::v1::SubscribeResponse>*, void* tag)>;
  // Checks a Subscribe request and opens its engine subscription; an error ends the stream
  // before its first message. Runs on the queue's thread.
  using Opener = std::function<Result<std::unique_ptr<engine::Subscription>>(
      const grpc::ServerContextBase&, const ods::v1::SubscribeRequest&)>;

  // Serves Subscribe calls that `request` asks for on `cq` (a CallQueue's: the streams' tags are
  // CallTags). Once, before the queue starts; the queue must outlive the hub's streams.
  void Serve(grpc::ServerCompletionQueue* cq, Requester request, Opener open);

  // Ends every open stream with UNAVAILABLE ("server shutting down"), cancelling writes the
  // client is not reading; later Opens are refused the same way. Returns at once.
  void Stop();

  uint64_t open_streams() const;
  // Times a stream's writes were held because its connection's send queue was backed up.
  uint64_t socket_holds() const { return socket_holds_.load(std::memory_order_relaxed); }

  // Whether a connection's send queue is too full to write to: more than kMaxUnsentBytes the
  // peer has not let the kernel send (its receive window is shut), or half the send buffer in
  // use (the kernel counts overhead too: a write blocks before the buffer holds its size in
  // payload). Below both, the next message usually fits without blocking. A held stream is
  // looked at again by the pump every kPollInterval (a few syscalls).
  static constexpr size_t kMaxUnsentBytes = 128 << 10;
  static bool SocketBackedUp(const PeerSocket::Backlog& b) {
    return b.unsent > kMaxUnsentBytes || b.queued * 2 > b.send_buffer;
  }

  // How often the pump looks for new changes while streams are open.
  static constexpr std::chrono::milliseconds kPollInterval{1};

 private:
  class Stream;
  void Listen();
  // Adds an accepted stream and writes its first message (or its error: `subscription` failed).
  void Open(Stream* stream, Result<std::unique_ptr<engine::Subscription>> subscription);
  void Run();
  void Remove(Stream* s);
  // Makes the pump look at every stream now (a stream opened or went idle).
  void WakePump();

  engine::Engine& engine_;
  const size_t max_changes_per_message_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> socket_holds_{0};
  grpc::ServerCompletionQueue* cq_ = nullptr;  // constant after Serve
  Requester request_;                          // constant after Serve
  Opener open_;                                // constant after Serve
  std::vector<Stream*> streams_;               // guarded by mu_
  bool stopped_ = false;                       // guarded by mu_
  bool exit_ = false;                          // guarded by mu_
  bool wake_ = false;  // guarded by mu_: WakePump came since the pump last looked
  std::thread pump_;   // last: starts after the members above exist
};

}  // namespace ods::server
