#include "tests/testing/s3rver.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace custos::testing {
namespace {

constexpr auto kStartTimeout = std::chrono::seconds(30);
constexpr int kPortAttempts = 3;

std::string S3rverBinary() {
  return std::string(CUSTOS_SOURCE_DIR) + "/tests/s3/node_modules/.bin/s3rver";
}

// FreeLoopbackPort asks the kernel for a port that is free right now; another process may take
// it before s3rver binds it, which Start survives by trying again.
StatusOr<int> FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Unavailable(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  int err = errno;
  ::close(fd);
  if (!ok) return Unavailable(std::string("bind 127.0.0.1:0: ") + std::strerror(err));
  return static_cast<int>(ntohs(addr.sin_port));
}

bool Accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

std::string LogTail(const std::string& path) {
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  std::string text = all.str();
  constexpr size_t kTail = 2000;
  return text.size() > kTail ? text.substr(text.size() - kTail) : text;
}

void KillAndReap(pid_t pid) {
  ::kill(-pid, SIGKILL);  // its process group, in case node started helpers
  ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

// Spawn starts s3rver with stdout and stderr appended to `log`; the child dies with its parent.
StatusOr<pid_t> Spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) return Unavailable("open " + log + ": " + std::strerror(errno));
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(log_fd);
    return Unavailable(std::string("fork: ") + std::strerror(err));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) _exit(127);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(log_fd);
  return pid;
}

}  // namespace

StatusOr<std::unique_ptr<S3rverProcess>> S3rverProcess::Start(
    const std::vector<std::string>& buckets) {
  std::string binary = S3rverBinary();
  if (::access(binary.c_str(), X_OK) != 0) {
    return FailedPrecondition("s3rver is not installed at " + binary +
                              ": run `make test-deps` (npm ci --prefix tests/s3)");
  }
  std::unique_ptr<S3rverProcess> server(new S3rverProcess());
  std::string tmpl = (std::filesystem::temp_directory_path() / "custos-s3rver-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return Unavailable("mkdtemp " + tmpl + ": " + std::strerror(errno));
  }
  server->dir_ = tmpl;
  server->log_path_ = server->dir_ + "/s3rver.log";

  Status last = Unavailable("s3rver did not start");
  for (int attempt = 0; attempt < kPortAttempts; ++attempt) {
    ASSIGN_OR_RETURN(int port, FreeLoopbackPort());
    std::string data = server->dir_ + "/data-" + std::to_string(attempt);
    std::vector<std::string> args = {
        binary, "-d", data, "-a", "127.0.0.1", "-p", std::to_string(port), "--silent"};
    for (const std::string& b : buckets) {
      args.push_back("--configure-bucket");
      args.push_back(b);
    }
    ASSIGN_OR_RETURN(server->pid_, Spawn(args, server->log_path_));
    auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
    bool exited = false;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(server->pid_, &status, WNOHANG) == server->pid_) {
        exited = true;
        server->pid_ = -1;
        break;
      }
      if (Accepts(port)) {
        server->endpoint_ = "http://127.0.0.1:" + std::to_string(port);
        return server;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!exited) {
      KillAndReap(server->pid_);
      server->pid_ = -1;
      return Unavailable("s3rver did not accept connections on port " + std::to_string(port) +
                         " within 30 s; its log ends:\n" + LogTail(server->log_path_));
    }
    // It exited: most likely the port was taken between our probe and its bind. Try another.
    last = Unavailable("s3rver exited at start; its log ends:\n" + LogTail(server->log_path_));
  }
  return last;
}

S3rverProcess::~S3rverProcess() {
  if (pid_ > 0) KillAndReap(pid_);
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

}  // namespace custos::testing
