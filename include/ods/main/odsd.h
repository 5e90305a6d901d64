#pragma once

namespace ods::main {

// The whole odsd program: parses flags (see `odsd --help`), loads and validates the config,
// starts the engine and the gRPC/admin servers, prints one readiness line on stdout
// ("odsd ready grpc=HOST:PORT admin=HOST:PORT"), waits for SIGINT/SIGTERM, drains, and returns
// the exit code: 0 clean stop, --help/--version, or valid --check-config; 1 bad config;
// 2 bad usage; 3 start-up failure (port in use, data dir not writable).
// Blocks SIGINT and SIGTERM in the calling process. Call once, from main().
int RunOdsd(int argc, char** argv);

}  // namespace ods::main
