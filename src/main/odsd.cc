#include "ods/main/odsd.h"

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <string_view>
#include <system_error>

#include <absl/synchronization/mutex.h>

#include "ods/common/clock.h"
#include "ods/common/logging.h"
#include "ods/common/vcpu_idle.h"
#include "ods/config/config.h"
#include "ods/engine/engine.h"
#include "ods/server/server.h"

namespace {

constexpr std::string_view kUsage = R"(Usage: odsd [options]

Runs the ODS operational data store server.

Options:
  --config FILE         YAML config (default: the embedded config/odsd.yaml)
  --check-config        validate the config, print problems, exit 0 (valid) or 1 (invalid)
  --grpc-listen ADDR    override server.grpc_listen (host:port; port 0 = any free port)
  --admin-listen ADDR   override server.admin_listen (host:port; "" disables)
  --data-dir DIR        override storage.data_dir
  --version             print the version and exit
  --help                print this help and exit

On start odsd prints one line to stdout:
  odsd ready grpc=HOST:PORT admin=HOST:PORT
On SIGINT or SIGTERM it stops accepting calls, drains in-flight calls (server.shutdown_grace),
and exits 0. On SIGHUP it reads the config again and applies the tables' tiering rules,
promote, priority, sla and ttl, and storage's budgets and costs (other changes need a restart);
a config that does not load is logged with FILE:LINE:COLUMN and the running settings stay.
)";

struct Flags {
  std::string config_path;
  bool check_config = false;
  ods::config::Overrides overrides;
};

// Returns -1 to continue, or an exit code.
int ParseFlags(int argc, char** argv, Flags& flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) {
        std::cerr << "odsd: " << arg << " needs a value\n";
        return false;
      }
      out = argv[++i];
      return true;
    };
    std::string v;
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (arg == "--version") {
      std::cout << "odsd " << ODS_VERSION << "\n";
      return 0;
    } else if (arg == "--check-config") {
      flags.check_config = true;
    } else if (arg == "--config") {
      if (!value(flags.config_path)) return 2;
    } else if (arg == "--grpc-listen") {
      if (!value(v)) return 2;
      flags.overrides.grpc_listen = v;
    } else if (arg == "--admin-listen") {
      if (!value(v)) return 2;
      flags.overrides.admin_listen = v;
    } else if (arg == "--data-dir") {
      if (!value(v)) return 2;
      flags.overrides.data_dir = v;
    } else {
      std::cerr << "odsd: unknown option '" << arg << "'\n" << kUsage;
      return 2;
    }
  }
  return -1;
}

}  // namespace

namespace ods::main {

int RunOdsd(int argc, char** argv) {
  Flags flags;
  if (int code = ParseFlags(argc, argv, flags); code >= 0) return code;

  ods::Result<ods::config::Config> config =
      flags.config_path.empty()
          ? ods::config::LoadString(ods::config::EmbeddedDefaultYaml(), "<embedded odsd.yaml>")
          : ods::config::LoadFile(flags.config_path);
  if (config.ok()) {
    if (ods::Status s = ods::config::ApplyOverrides(flags.overrides, *config); !s.ok()) {
      config = s;
    }
  }
  if (config.ok()) {
    if (ods::Status s = ods::engine::Engine::CheckConfig(*config); !s.ok()) config = s;
  }
  if (!config.ok()) {
    std::cerr << config.status().message() << "\n";
    return 1;
  }
  if (flags.check_config) {
    std::cout << config->source << ": ok (" << config->tables.size() << " tables, "
              << config->definitions.event_templates.size() << " event templates, "
              << config->definitions.aggregations.size() << " aggregations, "
              << config->definitions.features.size() << " derived features, "
              << config->server.shards << " shards)\n";
    return 0;
  }
  if (ods::Status s = ods::ConfigureLogging(config->logging.level, config->logging.format);
      !s.ok()) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  auto log = ods::Logger("ods.main");
  // Debian's abseil (used inside gRPC) checks every mutex acquisition for deadlock cycles;
  // that costs ~4% of odsd's CPU under load (perf) and finds nothing in release use.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  std::error_code ec;
  std::filesystem::create_directories(config->storage.data_dir, ec);
  if (ec) {
    log->error("cannot create data dir '{}': {}", config->storage.data_dir, ec.message());
    return 3;
  }

  // Block the stop signals in every thread (threads inherit the mask), then wait for them here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);  // reload the config (tiering rules, budgets, TTLs)
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // The admin endpoint first: while the engine recovers durable records, /healthz already
  // answers and /readyz says "starting".
  std::unique_ptr<ods::server::AdminEndpoint> admin;
  if (!config->server.admin_listen.empty()) {
    auto started = ods::server::AdminEndpoint::Start(config->server.admin_listen);
    if (!started.ok()) {
      log->error("{}", started.status().message());
      return 3;
    }
    admin = std::move(started).value();
    log->info("admin HTTP on {} (not ready until the engine has loaded its data)",
              admin->address());
  }
  auto engine = ods::engine::Engine::Create(*config, ods::SystemClock());
  if (!engine.ok()) {
    log->error("cannot start engine: {}", engine.status().message());
    return 3;
  }
  // Reads the config again as at start (file or embedded default, then the flags' overrides)
  // and applies its reloadable parts: SIGHUP and Admin.ReloadConfig.
  ods::engine::Engine& running = **engine;
  auto reload = [&flags, &running]() -> ods::Result<ods::engine::ReloadReport> {
    ods::Result<ods::config::Config> next =
        flags.config_path.empty()
            ? ods::config::LoadString(ods::config::EmbeddedDefaultYaml(), "<embedded odsd.yaml>")
            : ods::config::LoadFile(flags.config_path);
    if (!next.ok()) return next.status();
    ODS_RETURN_IF_ERROR(ods::config::ApplyOverrides(flags.overrides, *next));
    return running.Reload(*next);
  };
  auto server = ods::server::Server::Start(**engine, *config, std::move(admin), reload);
  if (!server.ok()) {
    log->error("{}", server.status().message());
    return 3;
  }
  log->info("odsd {} started from {}", ODS_VERSION, config->source);
  if (const ods::VcpuIdle idle = ods::ReadVcpuIdle(); idle.HaltsWithoutPolling()) {
    log->warn(
        "this VM's idle vCPUs halt at once (cpuidle haltpoll, guest_halt_poll_ns=0): waking one "
        "can take milliseconds, which then sets the latency tail of calls; docs/operations.md "
        "says how to turn polling on");
  }
  std::cout << "odsd ready grpc=" << (*server)->grpc_address()
            << " admin=" << (*server)->admin_address() << std::endl;

  int signal_number = 0;
  while (sigwait(&stop_signals, &signal_number) == 0 && signal_number == SIGHUP) {
    log->info("received SIGHUP, reloading the config");
    ods::Result<ods::engine::ReloadReport> report = reload();
    if (!report.ok()) {
      log->error("config reload refused, the running settings stay: {}",
                 report.status().message());
    } else {
      log->info("config reload done: {} change(s) applied, {} need a restart, generation {}",
                report->changes.size(), report->needs_restart.size(), report->generation);
    }
  }
  log->info("received {}, draining (grace {} ms)", signal_number == SIGINT ? "SIGINT" : "SIGTERM",
            config->server.shutdown_grace_micros / 1000);
  (*server)->Shutdown(config->server.shutdown_grace_micros);
  server->reset();
  engine->reset();
  log->info("odsd stopped");
  return 0;
}

}  // namespace ods::main
