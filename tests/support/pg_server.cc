// A private PostgreSQL server for tests (tests/support/pg_server.h).
#include "tests/support/pg_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>

extern char** environ;

namespace custos::testing {

namespace {

// Hex of 16 random bytes: a password that needs no quoting in a URL or in SQL.
std::string RandomHex() {
  std::random_device rd;
  std::string out;
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 16; ++i) {
    const unsigned b = rd() & 0xff;
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

// FindBinDir returns $CUSTOS_PG_BINDIR, or the newest /usr/lib/postgresql/<version>/bin that
// has initdb.
std::string FindBinDir() {
  if (const char* env = std::getenv("CUSTOS_PG_BINDIR"); env != nullptr && *env != 0) return env;
  glob_t g{};
  std::string best;
  int best_version = -1;
  if (glob("/usr/lib/postgresql/*/bin/initdb", 0, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      const std::string path = g.gl_pathv[i];
      const std::string bin = path.substr(0, path.size() - std::strlen("/initdb"));
      const std::string version = std::filesystem::path(bin).parent_path().filename().string();
      const int v = std::atoi(version.c_str());
      if (v > best_version) {
        best_version = v;
        best = bin;
      }
    }
  }
  globfree(&g);
  return best;
}

// FreePort asks the kernel for an unused loopback port. Another process could take it before
// the server binds it; the server would then fail to start, and say so.
StatusOr<int> FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Unavailable(std::string("pg server: socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  if (port < 0) return Unavailable("pg server: no free port");
  return port;
}

std::string Tail(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string all = ss.str();
  return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
}

// Spawn starts `argv` with stdin from `stdin_fd` (or /dev/null), stdout and stderr appended
// to `log` (or /dev/null), in `cwd`, with no other descriptor of this process and no PG*
// variable of its environment (the cluster is named by arguments only).
StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, int stdin_fd, const std::string& log,
                      const std::string& cwd, bool new_session) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (stdin_fd >= 0) {
    posix_spawn_file_actions_adddup2(&fa, stdin_fd, 0);
  } else {
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  }
  const char* out = log.empty() ? "/dev/null" : log.c_str();
  posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  if (new_session) posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);

  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "PG", 2) != 0) env.push_back(*e);
  }
  env.push_back(nullptr);

  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &fa, &attr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return Unavailable("pg server: cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  return pid;
}

}  // namespace

std::vector<std::string> PgServer::AsServerUser() const {
  if (!as_root_) return {};
  return {"setpriv", "--reuid=" + std::to_string(server_uid_),
          "--regid=" + std::to_string(server_gid_), "--clear-groups", "--"};
}

Status PgServer::Run(const std::string& program, const std::vector<std::string>& args,
                     const std::string& log) const {
  std::vector<std::string> argv = AsServerUser();
  argv.push_back(bindir_ + "/" + program);
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string log_path = dir_ + "/" + log;
  ASSIGN_OR_RETURN(pid_t pid, Spawn(argv, -1, log_path, dir_, false));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Unavailable("pg server: " + program + " failed (status " + std::to_string(status) +
                       "):\n" + Tail(log_path));
  }
  return Status::Ok();
}

Status PgServer::StartGuardian() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return Unavailable(std::string("pg server: pipe: ") + std::strerror(errno));
  }
  // sh waits for end of file on its stdin (the pipe's read end), then stops the server if it
  // still runs and removes the directory. The stop is immediate (the processes end at once,
  // without the shutdown checkpoint a fast stop makes): the data is deleted next, and that
  // checkpoint would fsync every file of every database the tests created, seconds of I/O.
  std::vector<std::string> argv = {
      "/bin/sh", "-c", "d=$1; shift; cat >/dev/null; \"$@\" >/dev/null 2>&1; rm -rf \"$d\"",
      "pg-guardian", dir_};
  for (const std::string& a : AsServerUser()) argv.push_back(a);
  for (const std::string& a :
       {bindir_ + "/pg_ctl", std::string("stop"), std::string("-D"), dir_ + "/data",
        std::string("-m"), std::string("immediate"), std::string("-w")}) {
    argv.push_back(a);
  }
  auto pid = Spawn(argv, fds[0], "", "/", /*new_session=*/true);
  ::close(fds[0]);
  if (!pid.ok()) {
    ::close(fds[1]);
    return pid.status();
  }
  guardian_fd_ = fds[1];
  guardian_pid_ = *pid;
  return Status::Ok();
}

StatusOr<std::unique_ptr<PgServer>> PgServer::Start(const std::vector<std::string>& settings) {
  std::unique_ptr<PgServer> s(new PgServer());
  s->bindir_ = FindBinDir();
  if (s->bindir_.empty()) {
    return FailedPrecondition(
        "pg server: no PostgreSQL server binaries under /usr/lib/postgresql/*/bin "
        "(scripts/install-deps.sh installs Debian's postgresql) and CUSTOS_PG_BINDIR is unset");
  }
  std::string tmpl = (std::filesystem::temp_directory_path() / "custos-pg-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return Unavailable(std::string("pg server: mkdtemp: ") + std::strerror(errno));
  }
  s->dir_ = tmpl;
  s->as_root_ = ::geteuid() == 0;
  if (s->as_root_) {
    const passwd* pw = ::getpwnam("nobody");
    const group* gr = ::getgrnam("nogroup");
    if (pw != nullptr) {
      s->server_uid_ = pw->pw_uid;
      s->server_gid_ = gr != nullptr ? gr->gr_gid : pw->pw_gid;
    }
  }
  // From here on the directory is removed whatever happens (the guardian runs pg_ctl as the
  // server's user, so that must be known first).
  RETURN_IF_ERROR(s->StartGuardian());
  if (s->as_root_) {
    if (s->server_uid_ == 0) {
      return FailedPrecondition("pg server: running as root, but there is no user nobody");
    }
    if (::chown(s->dir_.c_str(), s->server_uid_, s->server_gid_) != 0) {
      return Unavailable(std::string("pg server: chown: ") + std::strerror(errno));
    }
  }
  ::chmod(s->dir_.c_str(), 0700);

  s->admin_password_ = RandomHex();
  s->custos_password_ = RandomHex();
  const std::string pwfile = s->dir_ + "/admin-password";
  {
    std::ofstream f(pwfile);
    f << s->admin_password_ << "\n";
  }
  if (s->as_root_ && ::chown(pwfile.c_str(), s->server_uid_, s->server_gid_) != 0) {
    return Unavailable(std::string("pg server: chown: ") + std::strerror(errno));
  }
  // --no-sync only skips initdb's own final fsync of the new files (a machine crash during a
  // test loses the test anyway); the server itself runs with fsync on.
  RETURN_IF_ERROR(s->Run("initdb",
                         {"-D", s->dir_ + "/data", "-U", "postgres", "--auth=scram-sha-256",
                          "--pwfile=" + pwfile, "-E", "UTF8", "--no-locale", "--no-sync"},
                         "initdb.log"));
  std::filesystem::remove(pwfile);

  ASSIGN_OR_RETURN(s->port_, FreePort());
  {
    std::ofstream conf(s->dir_ + "/data/postgresql.conf", std::ios::app);
    conf << "\n# custos test server (tests/support/pg_server.cc)\n"
         << "listen_addresses = '127.0.0.1'\n"
         << "port = " << s->port_ << "\n"
         << "unix_socket_directories = '" << s->dir_ << "'\n"
         << "fsync = on\n"
         << "synchronous_commit = on\n"
         << "password_encryption = 'scram-sha-256'\n"
         << "max_connections = 100\n"
         << "shared_buffers = 16MB\n"
         // The WAL writer flushes asynchronous commits every wal_writer_delay; at its maximum
         // a test can see such a commit unflushed until something else flushes it.
         << "wal_writer_delay = 10000ms\n";
    for (const std::string& line : settings) conf << line << "\n";
  }
  RETURN_IF_ERROR(s->Restart());

  // The custos role: the password is our own hex, so the statement needs no quoting of values.
  auto created =
      s->Query("postgres", "CREATE ROLE custos LOGIN PASSWORD '" + s->custos_password_ + "'");
  if (!created.ok()) return created.status();
  return s;
}

PgServer::~PgServer() {
  // The guardian stops the server and removes the directory.
  if (guardian_fd_ >= 0) {
    ::close(guardian_fd_);
    int status = 0;
    while (::waitpid(guardian_pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

Status PgServer::Stop() {
  RETURN_IF_ERROR(
      Run("pg_ctl", {"stop", "-D", dir_ + "/data", "-m", "fast", "-w", "-s"}, "pg_ctl.log"));
  return Status::Ok();
}

Status PgServer::Restart() {
  RETURN_IF_ERROR(Run(
      "pg_ctl", {"start", "-D", dir_ + "/data", "-l", dir_ + "/server.log", "-w", "-t", "60", "-s"},
      "pg_ctl.log"));
  return Status::Ok();
}

std::string PgServer::Url(const std::string& db) const {
  return "postgresql://custos:" + custos_password_ + "@127.0.0.1:" + std::to_string(port_) + "/" +
         db;
}

std::string PgServer::AdminUrl(const std::string& db) const {
  return "postgresql://postgres:" + admin_password_ + "@127.0.0.1:" + std::to_string(port_) + "/" +
         db;
}

StatusOr<std::string> PgServer::Query(const std::string& db, const std::string& sql) const {
  PGconn* conn = PQconnectdb(AdminUrl(db).c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn);
    PQfinish(conn);
    return Unavailable("pg server: connect: " + msg);
  }
  PGresult* res = PQexec(conn, sql.c_str());
  const ExecStatusType st = PQresultStatus(res);
  StatusOr<std::string> out = std::string("<none>");
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    out = Unavailable("pg server: " + sql + ": " + PQerrorMessage(conn));
  } else if (PQntuples(res) > 0 && PQnfields(res) > 0) {
    out = PQgetisnull(res, 0, 0) ? std::string("<null>") : std::string(PQgetvalue(res, 0, 0));
  }
  PQclear(res);
  PQfinish(conn);
  return out;
}

StatusOr<std::string> PgServer::NewDatabase() {
  const std::string name = "t_" + std::to_string(next_db_++);
  auto created = Query("postgres", "CREATE DATABASE " + name + " OWNER custos");
  if (!created.ok()) return created.status();
  return name;
}

StatusOr<PgServer*> SharedPgServer() {
  static std::mutex mu;
  static std::unique_ptr<PgServer> server;
  static Status failed;
  std::lock_guard<std::mutex> lock(mu);
  if (server != nullptr) return server.get();
  if (!failed.ok()) return failed;
  auto started = PgServer::Start();
  if (!started.ok()) {
    failed = started.status();
    return failed;
  }
  server = std::move(started).value();
  return server.get();
}

}  // namespace custos::testing
