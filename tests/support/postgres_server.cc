#include "support/postgres_server.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "support/odsd_process.h"

// With libpqxx 6.4 (Debian 12), LeakSanitizer reports the PGresult of a query that meets a
// broken connection as leaked inside libpqxx (PQexec called from libpqxx, about 2 KiB per lost
// connection; not traced further). Only the postgres tests lose a server on purpose, so the
// binaries that use this helper (and only they) ignore leaks from inside libpqxx.
extern "C" const char* __lsan_default_suppressions() { return "leak:libpqxx\n"; }

namespace ods::testing {
namespace {

constexpr const char* kPort = "5432";
constexpr const char* kDatabase = "ods_test";

struct RunUser {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

// Forks and execs `args` with stdout and stderr appended to `log_path`, as `user`. With
// `die_with_parent` the child gets SIGQUIT (postgres: immediate shutdown) when this thread
// exits. Returns the pid, or -1.
pid_t Spawn(std::vector<std::string> args, const std::string& log_path, const RunUser& user,
            bool die_with_parent) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid != 0) return pid;
  // Child: only async-signal-safe calls from here on.
  const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (log < 0 || null < 0) _exit(126);
  dup2(null, 0);
  dup2(log, 1);
  dup2(log, 2);
  if (user.switch_user) {
    if (setgroups(0, nullptr) != 0 || setgid(user.gid) != 0 || setuid(user.uid) != 0) _exit(126);
  }
  // After setuid: a credential change clears the parent-death signal.
  if (die_with_parent) {
    prctl(PR_SET_PDEATHSIG, SIGQUIT);
    if (getppid() != parent) _exit(126);
  }
  execv(argv[0], argv.data());
  _exit(127);
}

int WaitExit(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string Tail(const std::string& path, size_t max_bytes = 2000) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  const std::string text = s.str();
  return text.size() > max_bytes ? "..." + text.substr(text.size() - max_bytes) : text;
}

}  // namespace

PostgresServer::~PostgresServer() { Stop(); }

std::string PostgresServer::conninfo() const {
  return "host=" + dir_ + " port=" + kPort + " dbname=" + kDatabase + " user=postgres";
}

bool PostgresServer::Start() {
  const char* env_bin = std::getenv("ODS_PG_BIN");
  bin_dir_ = env_bin != nullptr ? env_bin : "/usr/lib/postgresql/15/bin";
  for (const char* tool : {"initdb", "postgres", "pg_isready", "createdb"}) {
    if (access((bin_dir_ + "/" + tool).c_str(), X_OK) != 0) {
      error_ = "PostgreSQL 15 server binary '" + bin_dir_ + "/" + tool +
               "' not found; install Debian's postgresql-15 (scripts/install-deps.sh) or set "
               "ODS_PG_BIN";
      return false;
    }
  }
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/ods-pg-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    error_ = "mkdtemp " + pattern + " failed";
    return false;
  }
  dir_ = pattern;

  if (geteuid() == 0) {
    const passwd* nobody = getpwnam("nobody");
    if (nobody == nullptr) {
      error_ = "running as root, and there is no user 'nobody' to run postgres as";
      return false;
    }
    as_nobody_ = true;
    uid_ = nobody->pw_uid;
    gid_ = nobody->pw_gid;
    if (chown(dir_.c_str(), uid_, gid_) != 0) {
      error_ = "cannot chown " + dir_ + " to nobody";
      return false;
    }
  }
  const std::string log = LogPath();
  {
    // Created here so that the test can read it whatever user the server runs as.
    std::ofstream touch(log);
    if (as_nobody_ && chown(log.c_str(), uid_, gid_) != 0) {
      error_ = "cannot chown " + log;
      return false;
    }
  }

  const pid_t initdb = Spawn({bin_dir_ + "/initdb", "-D", dir_ + "/data", "-U", "postgres", "-A",
                              "trust", "--no-locale", "-E", "UTF8", "--no-sync"},
                             log, {as_nobody_, uid_, gid_}, /*die_with_parent=*/false);
  const int initdb_exit = initdb > 0 ? WaitExit(initdb) : -1;
  if (initdb_exit != 0) {
    error_ = "initdb failed (exit " + std::to_string(initdb_exit) + ") in " + dir_ +
             (as_nobody_ ? " as nobody" : "") + ":\n" + Tail(log);
    return false;
  }
  if (!StartProcess()) return false;
  const CommandResult created =
      RunCommand({bin_dir_ + "/createdb", "-h", dir_, "-p", kPort, "-U", "postgres", kDatabase});
  if (created.exit_code != 0) {
    error_ = "createdb failed: " + created.err;
    return false;
  }
  return true;
}

bool PostgresServer::StartProcess() {
  const std::string log = LogPath();
  pid_ = Spawn({bin_dir_ + "/postgres", "-D", dir_ + "/data", "-k", dir_, "-p", kPort, "-c",
                "listen_addresses=", "-c", "fsync=off", "-c", "full_page_writes=off", "-c",
                "shared_buffers=16MB", "-c", "max_connections=20"},
               log, {as_nobody_, uid_, gid_}, /*die_with_parent=*/true);
  if (pid_ <= 0) {
    error_ = "cannot fork postgres";
    pid_ = -1;
    return false;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      error_ = "postgres exited during start-up (as " +
               std::string(as_nobody_ ? "nobody" : "the current user") + "):\n" + Tail(log);
      return false;
    }
    if (RunCommand({bin_dir_ + "/pg_isready", "-q", "-h", dir_, "-p", kPort}).exit_code == 0) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  error_ = "postgres did not accept connections within 30 s:\n" + Tail(log);
  StopProcess();
  return false;
}

void PostgresServer::StopProcess() {
  if (pid_ <= 0) return;
  kill(pid_, SIGINT);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool exited = false;
  while (!exited && std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    exited = waitpid(pid_, &status, WNOHANG) == pid_;
    if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!exited) {
    kill(pid_, SIGKILL);
    WaitExit(pid_);
  }
  pid_ = -1;
}

bool PostgresServer::Restart() {
  StopProcess();
  return !dir_.empty() && StartProcess();
}

void PostgresServer::Stop() {
  StopProcess();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }
}

PostgresServer& PostgresServer::Shared() {
  // Destroyed (stopped) at exit, after the tests.
  static PostgresServer server;
  static const bool started [[maybe_unused]] = server.Start();
  return server;
}

}  // namespace ods::testing
