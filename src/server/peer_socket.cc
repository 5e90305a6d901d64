#include "peer_socket.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace ods::server {
namespace {

// An IPv4 or IPv6 address and port, IPv4-mapped IPv6 addresses as IPv4.
struct Endpoint {
  int family = AF_UNSPEC;
  unsigned char address[16] = {};
  uint16_t port = 0;

  bool operator==(const Endpoint& o) const {
    const size_t n = family == AF_INET ? 4 : 16;
    return family == o.family && port == o.port && std::memcmp(address, o.address, n) == 0;
  }
};

std::optional<Endpoint> ParseGrpcPeer(std::string_view peer) {
  Endpoint e;
  std::string_view host;
  std::string_view port;
  if (peer.starts_with("ipv4:")) {
    peer.remove_prefix(5);
    const size_t colon = peer.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    e.family = AF_INET;
    host = peer.substr(0, colon);
    port = peer.substr(colon + 1);
  } else if (peer.starts_with("ipv6:[")) {
    peer.remove_prefix(6);
    const size_t close = peer.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    e.family = AF_INET6;
    host = peer.substr(0, close);
    host = host.substr(0, host.find('%'));  // a zone ("fe80::1%eth0") is not part of the address
    port = peer.substr(close + 2);
  } else {
    return std::nullopt;
  }
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), e.port);
  if (ec != std::errc() || end != port.data() + port.size()) return std::nullopt;
  if (inet_pton(e.family, std::string(host).c_str(), e.address) != 1) return std::nullopt;
  return e;
}

std::optional<Endpoint> RemoteEndpoint(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
  Endpoint e;
  if (ss.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(ss);
    e.family = AF_INET;
    std::memcpy(e.address, &in.sin_addr, 4);
    e.port = ntohs(in.sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(ss);
    e.port = ntohs(in6.sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
      e.family = AF_INET;
      std::memcpy(e.address, in6.sin6_addr.s6_addr + 12, 4);
    } else {
      e.family = AF_INET6;
      std::memcpy(e.address, &in6.sin6_addr, 16);
    }
  } else {
    return std::nullopt;
  }
  return e;
}

bool IsTcp(int fd) {
  int type = 0;
  int protocol = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return false;
  len = sizeof protocol;
  return getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) == 0 && protocol == IPPROTO_TCP;
}

}  // namespace

std::optional<PeerSocket> PeerSocket::Find(std::string_view grpc_peer) {
  const std::optional<Endpoint> want = ParseGrpcPeer(grpc_peer);
  if (!want) return std::nullopt;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  std::optional<PeerSocket> found;
  while (const dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    struct stat st {};
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    const std::optional<Endpoint> remote = RemoteEndpoint(static_cast<int>(fd));
    if (!remote || !(*remote == *want) || !IsTcp(static_cast<int>(fd))) continue;
    found = PeerSocket(static_cast<int>(fd), st.st_dev, st.st_ino);
    break;
  }
  closedir(dir);
  return found;
}

std::optional<PeerSocket::Backlog> PeerSocket::ReadBacklog() const {
  struct stat st {};
  if (fstat(fd_, &st) != 0 || st.st_dev != dev_ || st.st_ino != inode_) return std::nullopt;
  int unsent = 0;
  int queued = 0;
  int send_buffer = 0;
  socklen_t len = sizeof send_buffer;
  if (ioctl(fd_, SIOCOUTQNSD, &unsent) != 0 || ioctl(fd_, SIOCOUTQ, &queued) != 0 ||
      getsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &send_buffer, &len) != 0) {
    return std::nullopt;
  }
  return Backlog{static_cast<size_t>(unsent), static_cast<size_t>(queued),
                 static_cast<size_t>(send_buffer)};
}

}  // namespace ods::server
