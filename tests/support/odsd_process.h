#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace ods::testing {

// A real odsd child process for integration tests. Start() runs the binary built by this tree
// with `args` (plus --grpc-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 and a fresh temp
// --data-dir unless given), waits for its readiness line and records the bound addresses.
// The destructor sends SIGKILL if the process is still running. Thread-compatible.
class OdsdProcess {
 public:
  OdsdProcess() = default;
  ~OdsdProcess();
  OdsdProcess(const OdsdProcess&) = delete;
  OdsdProcess& operator=(const OdsdProcess&) = delete;

  // Starts odsd and waits up to 20 s for "odsd ready ...". Returns false (with the reason in
  // error()) if it exits or prints nothing in time.
  bool Start(const std::vector<std::string>& args = {});

  // Sends `signal` and waits up to `timeout_ms` for exit. Returns the exit code, or -1 on
  // timeout (then the process is killed), or 128+N if it died of signal N.
  int Stop(int signal, int timeout_ms);

  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& admin_address() const { return admin_address_; }
  const std::string& data_dir() const { return data_dir_; }
  const std::string& error() const { return error_; }
  // Everything the process wrote to stderr so far (logs), read from its log file.
  std::string Stderr() const;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::string grpc_address_;
  std::string admin_address_;
  std::string data_dir_;
  std::string stderr_path_;
  std::string error_;
};

// Runs `argv` (argv[0] a path) to completion with stdin closed; captures stdout and stderr.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
CommandResult RunCommand(const std::vector<std::string>& argv, int timeout_ms = 30000);

// A plain HTTP/1.1 GET of `path` from `address` (host:port); returns the whole response, headers
// included ("" on failure). For odsd's admin endpoint (/healthz, /metrics).
std::string HttpGet(const std::string& address, const std::string& path);

// A fresh empty directory under $TMPDIR (or /tmp), removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Path of the odsd binary under test.
inline std::string OdsdPath() { return ODS_ODSD_PATH; }
// Root of the source tree (for config/odsd.yaml etc.).
inline std::string SourceDir() { return ODS_SOURCE_DIR; }

}  // namespace ods::testing
