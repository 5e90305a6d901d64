#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/config/config.h"

namespace ods::engine {
class Engine;
struct ReloadReport;
}  // namespace ods::engine

namespace ods::server {

class AdminHttp;

// The admin HTTP endpoint started on its own, before the engine loads its data (recovery of
// durable records can take a while), so that operators and orchestrators see the process:
// /healthz answers 200, /readyz 503 "starting", /metrics `ods_ready 0`. Server::Start takes it
// over: /metrics then serves every figure and /readyz answers 200. Thread-safe.
class AdminEndpoint {
 public:
  // Binds `listen` (host:port; port 0 picks one). kUnavailable naming the address if it cannot.
  static Result<std::unique_ptr<AdminEndpoint>> Start(const std::string& listen);
  ~AdminEndpoint();
  AdminEndpoint(const AdminEndpoint&) = delete;
  AdminEndpoint& operator=(const AdminEndpoint&) = delete;

  // "host:port" actually bound.
  std::string address() const { return address_; }

 private:
  friend class Server;
  AdminEndpoint(std::unique_ptr<AdminHttp> http, std::string address);
  std::unique_ptr<AdminHttp> http_;
  std::string address_;
};

// The network face of odsd: the gRPC server (ods.v1.Store, grpc.health.v1.Health, server
// reflection) and the admin HTTP endpoint (/healthz, /readyz, /metrics). Holds no business
// logic. Thread-safe. `engine` must outlive the server.
class Server {
 public:
  // Binds config.server.grpc_listen (and admin_listen unless empty) and starts serving: with TLS
  // when config.server.tls is set, and checking every ods.v1 call's API key when
  // config.security.api_keys is not empty (docs/security.md). The admin endpoint is `admin` when
  // given (started early by the caller; config.server.admin_listen is then not bound again).
  // kUnavailable naming the address if a port cannot be bound.
  // `reload`, when given, is what Admin.ReloadConfig runs (odsd's: read the config file again,
  // Engine::Reload); without it ReloadConfig answers FAILED_PRECONDITION.
  static Result<std::unique_ptr<Server>> Start(
      engine::Engine& engine, const config::Config& config,
      std::unique_ptr<AdminEndpoint> admin = nullptr,
      std::function<Result<engine::ReloadReport>()> reload = nullptr);
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
