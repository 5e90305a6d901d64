#include "odsd_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "ods/common/absl_cpu_frequency.h"

namespace ods::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<char*> Argv(std::vector<std::string>& args) {
  std::vector<char*> out;
  for (std::string& a : args) out.push_back(a.data());
  out.push_back(nullptr);
  return out;
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Waits up to `timeout_ms` for `pid`; returns the decoded status or -1 on timeout.
int WaitFor(pid_t pid, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return DecodeWaitStatus(status);
    if (r < 0) return -1;
    if (Clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool HasFlag(const std::vector<std::string>& args, const std::string& flag) {
  for (const std::string& a : args) {
    if (a == flag) return true;
  }
  return false;
}

}  // namespace

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/ods-test-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) std::abort();
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

OdsdProcess::~OdsdProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    WaitFor(pid_, 5000);
  }
  std::error_code ec;
  if (!data_dir_.empty()) std::filesystem::remove_all(data_dir_, ec);
  if (!stderr_path_.empty()) std::filesystem::remove(stderr_path_, ec);
}

bool OdsdProcess::Start(const std::vector<std::string>& extra_args) {
  // The test's own gRPC clients connect next: see absl_cpu_frequency.h.
  PrimeAbslCpuFrequency();
  std::vector<std::string> args = {OdsdPath()};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  if (!HasFlag(args, "--grpc-listen")) args.insert(args.end(), {"--grpc-listen", "127.0.0.1:0"});
  if (!HasFlag(args, "--admin-listen")) {
    args.insert(args.end(), {"--admin-listen", "127.0.0.1:0"});
  }
  if (!HasFlag(args, "--data-dir")) {
    std::string dir = std::filesystem::temp_directory_path() / "ods-odsd-XXXXXX";
    if (mkdtemp(dir.data()) == nullptr) {
      error_ = "mkdtemp failed";
      return false;
    }
    data_dir_ = dir;
    args.insert(args.end(), {"--data-dir", data_dir_});
  }
  std::string log_path = std::filesystem::temp_directory_path() / "ods-odsd-log-XXXXXX";
  const int log_fd = mkstemp(log_path.data());
  stderr_path_ = log_path;
  int out_pipe[2];
  if (log_fd < 0 || pipe(out_pipe) != 0) {
    error_ = "pipe/mkstemp failed";
    return false;
  }
  pid_ = fork();
  if (pid_ == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    close(out_pipe[0]);
    close(out_pipe[1]);
    close(log_fd);
    std::vector<char*> argv = Argv(args);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(log_fd);
  // Read stdout until the readiness line or timeout.
  std::string out;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  bool ready = false;
  while (!ready && Clock::now() < deadline) {
    pollfd p{out_pipe[0], POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[512];
    const ssize_t n = read(out_pipe[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    const size_t nl = out.find('\n');
    if (nl == std::string::npos) continue;
    std::istringstream line(out.substr(0, nl));
    std::string word;
    while (line >> word) {
      if (word.rfind("grpc=", 0) == 0) grpc_address_ = word.substr(5);
      if (word.rfind("admin=", 0) == 0) admin_address_ = word.substr(6);
    }
    ready = out.rfind("odsd ready", 0) == 0 && !grpc_address_.empty();
  }
  close(out_pipe[0]);  // odsd writes nothing else to stdout.
  if (!ready) {
    error_ = "odsd did not become ready; stdout: '" + out + "'; stderr: " + Stderr();
    return false;
  }
  return true;
}

int OdsdProcess::Stop(int signal, int timeout_ms) {
  if (pid_ <= 0) return -1;
  kill(pid_, signal);
  int code = WaitFor(pid_, timeout_ms);
  if (code == -1) {
    kill(pid_, SIGKILL);
    WaitFor(pid_, 5000);
  }
  pid_ = -1;
  return code;
}

std::string OdsdProcess::Stderr() const { return ReadFile(stderr_path_); }

CommandResult RunCommand(const std::vector<std::string>& argv_in, int timeout_ms) {
  CommandResult result;
  std::vector<std::string> args = argv_in;
  char out_path[] = "/tmp/ods-cmd-out-XXXXXX";
  char err_path[] = "/tmp/ods-cmd-err-XXXXXX";
  const int out_fd = mkstemp(out_path);
  const int err_fd = mkstemp(err_path);
  const pid_t pid = fork();
  if (pid == 0) {
    const int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, STDIN_FILENO);
    dup2(out_fd, STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    std::vector<char*> argv = Argv(args);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out_fd);
  close(err_fd);
  result.exit_code = WaitFor(pid, timeout_ms);
  if (result.exit_code == -1) {
    kill(pid, SIGKILL);
    WaitFor(pid, 5000);
  }
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  unlink(out_path);
  unlink(err_path);
  return result;
}

std::string HttpGet(const std::string& address, const std::string& path) {
  const size_t colon = address.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "";
  }
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return "";
  }
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

}  // namespace ods::testing
