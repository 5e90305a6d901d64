#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/config/config.h"

namespace ods::engine {
class Engine;
}  // namespace ods::engine

namespace ods::server {

// The network face of odsd: the gRPC server (ods.v1.Store, grpc.health.v1.Health, server
// reflection) and the admin HTTP endpoint (/healthz, /metrics). Holds no business logic.
// Thread-safe. `engine` must outlive the server.
class Server {
 public:
  // Binds config.server.grpc_listen (and admin_listen unless empty) and starts serving: with TLS
  // when config.server.tls is set, and checking every ods.v1 call's API key when
  // config.security.api_keys is not empty (docs/security.md). kUnavailable naming the address if
  // a port cannot be bound.
  static Result<std::unique_ptr<Server>> Start(engine::Engine& engine,
                                               const config::Config& config);
  ~Server();  // Shuts down with zero grace if Shutdown was not called.
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // "host:port" actually bound (the port resolved when 0 was asked for).
  std::string grpc_address() const;
  // "host:port" of the admin endpoint, or "" when disabled.
  std::string admin_address() const;

  // Stops accepting calls, marks health NOT_SERVING, lets in-flight calls finish for up to
  // `grace_micros`, then cancels what remains. Blocks until done. Idempotent.
  void Shutdown(Micros grace_micros);

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ods::server
