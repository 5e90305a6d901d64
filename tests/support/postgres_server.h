#pragma once

#include <sys/types.h>

#include <string>

namespace ods::testing {

// A throwaway PostgreSQL 15 server for tests: `initdb` into a fresh temp dir, `postgres`
// listening only on a unix socket in that dir (no TCP port, so parallel tests never collide),
// and one database, `ods_test`, with trust authentication for user `postgres`.
//
// postgres refuses to run as root: when the test runs as root, initdb and postgres run as
// `nobody` (the temp dir is chowned to it); otherwise as the current user. The destructor stops
// the server (fast shutdown) and removes the dir; if the test process dies first, the server
// gets SIGQUIT (PR_SET_PDEATHSIG) and exits by itself.
//
// Binaries: $ODS_PG_BIN, else /usr/lib/postgresql/15/bin (Debian's postgresql-15, installed by
// scripts/install-deps.sh). Thread-compatible; start and stop it from one thread.
class PostgresServer {
 public:
  PostgresServer() = default;
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // Creates the cluster, starts the server, waits up to 30 s until it accepts connections and
  // creates the database. False on any failure, with the reason (and the server log's tail) in
  // error(): tests must FAIL on it, never skip.
  bool Start();

  // Fast shutdown (SIGINT), SIGKILL after 10 s; removes the temp dir. Idempotent.
  void Stop();

  // Stops the server process as Stop does, keeping the cluster, and starts it again on the same
  // socket: what a database restart looks like to clients. False (see error()) if it does not
  // come back within 30 s.
  bool Restart();

  bool running() const { return pid_ > 0; }
  // libpq connection string of the database: "host=DIR port=5432 dbname=ods_test user=postgres".
  std::string conninfo() const;
  // The dir holding the socket (and the cluster, in DIR/data).
  const std::string& dir() const { return dir_; }
  const std::string& error() const { return error_; }

  // One server per test process, started on first use and stopped at exit. Check ok() (or
  // error()) before using it.
  static PostgresServer& Shared();
  bool ok() const { return running() && error_.empty(); }

 private:
  // Starts postgres on the cluster in dir_ and waits until it accepts connections.
  bool StartProcess();
  void StopProcess();
  std::string LogPath() const { return dir_ + "/postgres.log"; }

  std::string bin_dir_;
  std::string dir_;
  std::string error_;
  pid_t pid_ = -1;
  // Under root, initdb and postgres run as nobody (uid_, gid_).
  bool as_nobody_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
};

}  // namespace ods::testing
