#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string_view>

namespace ods::server {

// The kernel's send queue of the TCP connection a gRPC call arrived on. gRPC does not expose a
// call's descriptor, so Find looks for the process's connected TCP socket whose remote address
// is the call's peer. The descriptor stays gRPC's (never closed or written here); each read
// first checks that the descriptor is still that socket (its inode), so a connection that
// closed and whose number was reused reads as gone. Linux only. Thread-compatible: one owner.
class PeerSocket {
 public:
  // What the kernel holds to send on the connection.
  struct Backlog {
    size_t unsent = 0;       // written, not yet sent (SIOCOUTQNSD): the peer's window is shut
    size_t queued = 0;       // written, not yet acknowledged (SIOCOUTQ), `unsent` included
    size_t send_buffer = 0;  // the socket's send buffer (SO_SNDBUF, as the kernel counts it)
  };

  // The socket whose remote address is `grpc_peer` as gRPC spells it ("ipv4:127.0.0.1:5000",
  // "ipv6:[::1]:5000"); nullopt for other transports ("unix:...") or when none matches.
  // Lists /proc/self/fd: meant for once per long-lived stream, not per call.
  static std::optional<PeerSocket> Find(std::string_view grpc_peer);

  // nullopt once the descriptor no longer is this socket (the connection closed).
  std::optional<Backlog> ReadBacklog() const;

 private:
  PeerSocket(int fd, dev_t dev, ino_t inode) : fd_(fd), dev_(dev), inode_(inode) {}

  int fd_;
  dev_t dev_;
  ino_t inode_;
};

}  // namespace ods::server
