// A private PostgreSQL server for tests: a cluster made by initdb in a fresh temporary
// directory, listening on 127.0.0.1 only on a free port (and on a Unix socket inside that
// directory), password (scram-sha-256) authentication for every connection, fsync on. It runs
// as the invoking user, or, when that is root (initdb refuses root), as nobody:nogroup through
// setpriv(1), with the directory handed to that user. The server binaries are found under
// /usr/lib/postgresql/<version>/bin (the newest version; Debian's postgresql package), or in
// $CUSTOS_PG_BINDIR if set.
//
// The server is stopped (immediately: its data is deleted next, so it makes no shutdown
// checkpoint) and its directory removed when the PgServer is destroyed, and also if the test
// process dies first: a guardian process (a shell in its own session, waiting for a pipe that
// only the test process holds open) stops the server and removes the directory once the pipe
// closes, however the test process ended.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace custos::testing {

class PgServer {
 public:
  // Start makes and starts a cluster with a superuser "postgres" and a login role "custos"
  // (not a superuser), each with a random password. `settings` are extra postgresql.conf
  // lines ("name = value"). kFailedPrecondition if no PostgreSQL server binaries are
  // installed; kUnavailable if initdb or the server fails (the message quotes its log).
  static StatusOr<std::unique_ptr<PgServer>> Start(const std::vector<std::string>& settings = {});
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  // NewDatabase creates an empty database "t_<n>" owned by the custos role and returns its
  // name. Each call gives a new database, so tests sharing one server stay independent.
  StatusOr<std::string> NewDatabase();
  // Url is the custos role's URL for database `db`; AdminUrl is the superuser's.
  std::string Url(const std::string& db) const;
  std::string AdminUrl(const std::string& db) const;
  // Query runs `sql` (one or more statements, constant test SQL) as the superuser in database
  // `db` and returns the first column of the first row of the last statement's result, as text
  // ("<none>" when it returned no row, "<null>" for NULL).
  StatusOr<std::string> Query(const std::string& db, const std::string& sql) const;

  // Stop stops the server (pg_ctl stop -m fast: connections are ended) and keeps its data;
  // Restart starts it again on the same port. Both wait until done.
  Status Stop();
  Status Restart();

  int port() const { return port_; }
  // dir holds the cluster (data/), the server's log (server.log) and its Unix socket.
  const std::string& dir() const { return dir_; }

 private:
  PgServer() = default;
  // Run runs a server binary (as the server's user) with `args`, its output appended to
  // dir/<log>, and fails with the log's tail if it exits with an error.
  Status Run(const std::string& program, const std::vector<std::string>& args,
             const std::string& log) const;
  std::vector<std::string> AsServerUser() const;
  Status StartGuardian();

  std::string bindir_;
  std::string dir_;
  int port_ = 0;
  bool as_root_ = false;
  unsigned server_uid_ = 0, server_gid_ = 0;
  std::string admin_password_, custos_password_;
  int next_db_ = 1;
  int guardian_fd_ = -1;  // write end of the guardian's pipe
  int guardian_pid_ = -1;
};

// SharedPgServer is one PgServer for the whole test process, started by the first call and
// stopped at exit; a failure to start is returned to every caller.
StatusOr<PgServer*> SharedPgServer();

}  // namespace custos::testing
