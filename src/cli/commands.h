#pragma once

#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cli/args.h"

namespace ods::cli {

// Process exit codes of `ods`.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRpcError = 1;     // The server answered with an error.
inline constexpr int kExitUsage = 2;        // Bad command line; nothing was sent.
inline constexpr int kExitUnreachable = 3;  // UNAVAILABLE or DEADLINE_EXCEEDED.

// Where and how to reach odsd, from --addr/$ODS_ADDR, --timeout, the --tls-* flags and
// --api-key/$ODS_API_KEY.
struct GlobalOptions {
  std::string addr = "127.0.0.1:7070";  // gRPC target. Default: $ODS_ADDR, else this.
  double timeout_seconds = 10;          // Deadline of each call (a whole scan). Range: > 0.
  // TLS, on when --tls-ca or --tls-cert is given. Default: plaintext.
  bool tls = false;
  std::string tls_ca_pem;    // --tls-ca FILE's contents; empty: the system's CA roots
  std::string tls_cert_pem;  // --tls-cert FILE's contents (mutual TLS); with tls_key_pem
  std::string tls_key_pem;   // --tls-key FILE's contents
  // Sent as `authorization: Bearer KEY` on every call; empty sends none. Default: $ODS_API_KEY.
  std::string api_key;
};

// The process's streams, injected so commands stay testable.
struct Io {
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
};

// One `ods` command. Thread-safe (immutable).
struct Command {
  std::string_view name;
  std::string_view summary;  // One line for `ods --help`.
  std::string_view help;     // The text of `ods NAME --help`.
  // Flags (as "--name") that take a value, besides the global --addr and --timeout.
  std::vector<std::string_view> value_flags;
  // Builds the request from `args` and calls the server; prints the response as JSON to
  // io.out and errors to io.err. Returns the exit code.
  int (*run)(const GlobalOptions& global, const ParsedArgs& args, const Io& io);
};

// All commands, in help order.
std::span<const Command> Commands();

// The command called `name`, or nullptr.
const Command* FindCommand(std::string_view name);

}  // namespace ods::cli
