// PeerSocket finds the server side of a TCP connection by the peer address gRPC reports and
// reads its send queue; SubscriptionHub::SocketBackedUp says when a stream must be held.

#include "peer_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "subscriptions.h"

namespace ods::server {
namespace {

// A listening socket, a client connected to it and the accepted server side, over `family`'s
// loopback (AF_INET6 listening on [::] dual-stack reached over 127.0.0.1 when `v4_client`).
struct Connection {
  int listener = -1;
  int client = -1;
  int server = -1;
  std::string client_peer;  // the client's address as gRPC spells a peer

  ~Connection() {
    for (int fd : {listener, client, server}) {
      if (fd >= 0) close(fd);
    }
  }
};

void Connect(Connection& c, bool dual_stack) {
  c.listener = socket(dual_stack ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(c.listener, 0);
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (dual_stack) {
    int off = 0;
    ASSERT_EQ(setsockopt(c.listener, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off), 0);
    auto& in6 = reinterpret_cast<sockaddr_in6&>(addr);
    in6.sin6_family = AF_INET6;
    in6.sin6_addr = in6addr_any;
    len = sizeof in6;
  } else {
    auto& in = reinterpret_cast<sockaddr_in&>(addr);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof in;
  }
  ASSERT_EQ(bind(c.listener, reinterpret_cast<sockaddr*>(&addr), len), 0) << std::strerror(errno);
  ASSERT_EQ(listen(c.listener, 1), 0);
  ASSERT_EQ(getsockname(c.listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const uint16_t port = dual_stack ? reinterpret_cast<sockaddr_in6&>(addr).sin6_port
                                   : reinterpret_cast<sockaddr_in&>(addr).sin_port;

  c.client = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = port;
  ASSERT_EQ(connect(c.client, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  c.server = accept(c.listener, nullptr, nullptr);
  ASSERT_GE(c.server, 0);
  sockaddr_in local{};
  socklen_t local_len = sizeof local;
  ASSERT_EQ(getsockname(c.client, reinterpret_cast<sockaddr*>(&local), &local_len), 0);
  c.client_peer = "ipv4:127.0.0.1:" + std::to_string(ntohs(local.sin_port));
}

TEST(PeerSocketTest, FindsTheServerSideAndReadsItsSendQueue) {
  Connection c;
  Connect(c, /*dual_stack=*/false);
  const std::optional<PeerSocket> socket = PeerSocket::Find(c.client_peer);
  ASSERT_TRUE(socket.has_value());
  std::optional<PeerSocket::Backlog> backlog = socket->ReadBacklog();
  ASSERT_TRUE(backlog.has_value());
  EXPECT_EQ(backlog->unsent, 0u);
  EXPECT_EQ(backlog->queued, 0u);
  EXPECT_GT(backlog->send_buffer, 0u);
  EXPECT_FALSE(SubscriptionHub::SocketBackedUp(*backlog));

  // It is the server's descriptor: what the server writes and the client does not read shows.
  const std::string chunk(1000, 'x');
  ASSERT_EQ(write(c.server, chunk.data(), chunk.size()), static_cast<ssize_t>(chunk.size()));
  backlog = socket->ReadBacklog();
  ASSERT_TRUE(backlog.has_value());
  EXPECT_LE(backlog->queued, chunk.size());  // loopback acknowledges at once
  EXPECT_FALSE(SubscriptionHub::SocketBackedUp(*backlog));

  // The client reads nothing: its receive window shuts and the rest stays unsent.
  ASSERT_EQ(fcntl(c.server, F_SETFL, O_NONBLOCK), 0);
  const std::string big(64 << 10, 'y');
  size_t written = 0;
  while (write(c.server, big.data(), big.size()) > 0) written += big.size();
  ASSERT_EQ(errno, EAGAIN);
  backlog = socket->ReadBacklog();
  ASSERT_TRUE(backlog.has_value());
  EXPECT_GT(backlog->unsent, 0u);
  EXPECT_GE(backlog->queued, backlog->unsent);
  EXPECT_TRUE(SubscriptionHub::SocketBackedUp(*backlog))
      << "unsent " << backlog->unsent << " queued " << backlog->queued << " buffer "
      << backlog->send_buffer << " written " << written;
}

TEST(PeerSocketTest, FindsAnIpv4ClientOfADualStackListener) {
  Connection c;
  Connect(c, /*dual_stack=*/true);
  const std::optional<PeerSocket> socket = PeerSocket::Find(c.client_peer);
  ASSERT_TRUE(socket.has_value());
  EXPECT_TRUE(socket->ReadBacklog().has_value());
}

TEST(PeerSocketTest, AClosedConnectionReadsAsGoneEvenIfItsNumberIsReused) {
  Connection c;
  Connect(c, /*dual_stack=*/false);
  const std::optional<PeerSocket> socket = PeerSocket::Find(c.client_peer);
  ASSERT_TRUE(socket.has_value());
  const int number = c.server;
  close(c.server);
  c.server = -1;
  EXPECT_FALSE(socket->ReadBacklog().has_value());
  // The lowest free number is the one just closed: another socket takes it.
  const int other = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(other, number);
  EXPECT_FALSE(socket->ReadBacklog().has_value());
  close(other);
}

TEST(PeerSocketTest, OtherPeersAndMalformedAddressesFindNothing) {
  Connection c;
  Connect(c, /*dual_stack=*/false);
  for (const std::string& peer :
       {std::string("unix:/tmp/odsd.sock"), std::string("ipv4:127.0.0.1"),
        std::string("ipv4:127.0.0.1:notaport"), std::string("ipv4:127.0.0.1:99999"),
        std::string("ipv4:300.0.0.1:80"), std::string("ipv6:[::1:80"), std::string(""),
        std::string("ipv4:127.0.0.2:") + c.client_peer.substr(c.client_peer.rfind(':') + 1)}) {
    EXPECT_FALSE(PeerSocket::Find(peer).has_value()) << peer;
  }
}

}  // namespace
}  // namespace ods::server
