#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ods/common/status.h"

namespace ods::server {

// Minimal HTTP/1.1 endpoint for operators: GET /healthz (200 "ok" while the process runs, 503
// while draining), GET /readyz (200 "ready" once SetReady was called, 503 "starting" before it
// and "draining" after SetDraining) and GET /metrics (Prometheus text from the metrics
// function). One background thread; each connection has a 5 s deadline, so a slow client cannot
// hold it. Thread-safe.
class AdminHttp {
 public:
  // Binds `listen` (host:port; port 0 picks one) and starts serving. `metrics` is called on the
  // admin thread for each /metrics request. kUnavailable if the address cannot be bound.
  static Result<std::unique_ptr<AdminHttp>> Start(const std::string& listen,
                                                  std::function<std::string()> metrics);
  ~AdminHttp();  // Stops the thread.

  uint16_t port() const;
  // Replaces the function /metrics calls (a call in progress finishes with the old one).
  void SetMetrics(std::function<std::string()> metrics);
  // Makes /readyz answer 200 (until SetDraining).
  void SetReady();
  // Makes /healthz and /readyz answer 503 from now on.
  void SetDraining();

 private:
  struct Impl;
  explicit AdminHttp(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ods::server
