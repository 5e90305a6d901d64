// ods_echo_server: a bare gRPC server (callback API, like odsd) whose one method returns its
// payload. ods_bench --workload echo against it measures what gRPC alone costs on this machine:
// the ceiling for odsd's Get. Prints "echo ready addr=HOST:PORT" on stdout when serving; stops
// on SIGINT/SIGTERM and exits 0. Exit codes: 2 bad usage, 3 cannot bind.

#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <signal.h>

#include <iostream>
#include <memory>
#include <string>
#include <string_view>

#include "ods/bench/echo.grpc.pb.h"

namespace {

constexpr std::string_view kUsage = R"(Usage: ods_echo_server [--listen HOST:PORT]

Serves ods.bench.Echo (returns the request payload) until SIGINT or SIGTERM.
  --listen ADDR   address to bind; port 0 picks a free port (default 127.0.0.1:0)
Prints "echo ready addr=HOST:PORT" on stdout once serving.
)";

class EchoService final : public ods::bench::Echo::CallbackService {
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* ctx,
                                 const ods::bench::EchoRequest* req,
                                 ods::bench::EchoResponse* resp) override {
    resp->set_payload(req->payload());
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

// "host:port" with the port replaced by `port`.
std::string WithPort(const std::string& addr, int port) {
  const size_t colon = addr.rfind(':');
  return addr.substr(0, colon) + ":" + std::to_string(port);
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--listen" && i + 1 < argc) {
      listen = argv[++i];
    } else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    } else {
      std::cerr << "ods_echo_server: unknown or incomplete argument " << arg << "\n" << kUsage;
      return 2;
    }
  }
  if (listen.rfind(':') == std::string::npos) {
    std::cerr << "ods_echo_server: --listen wants HOST:PORT, got " << listen << "\n";
    return 2;
  }

  // Same as odsd: no abseil deadlock detection, so the echo ceiling stays comparable.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Block the stop signals in every thread (gRPC's included) so that only sigwait sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  EchoService service;
  int bound_port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &bound_port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    std::cerr << "ods_echo_server: cannot listen on " << listen << "\n";
    return 3;
  }
  std::cout << "echo ready addr=" << WithPort(listen, bound_port) << std::endl;

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  server->Shutdown();
  return 0;
}
