#include "appliance/host/enclave_process.h"

#include "appliance/ecall/calls.h"

#include "common/secret.h"

#include <signal.h>
#include <spawn.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

extern char** environ;

namespace custos::host {

namespace {
constexpr int kChildFd = 3;
}

StatusOr<std::unique_ptr<EnclaveProcess>> EnclaveProcess::Spawn(const EnclaveLaunch& launch) {
  if (access(launch.binary.c_str(), X_OK) != 0)
    return NotFound("trusted core executable not found or not executable: " + launch.binary);
  if (launch.workers < 1 || launch.workers > 256)
    return InvalidArgument("trusted core workers must be 1 to 256");
  std::vector<int> host_fds, child_fds;
  auto close_all = [&] {
    for (int fd : host_fds) close(fd);
    for (int fd : child_fds) close(fd);
  };
  for (int i = 0; i < launch.workers; ++i) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      Status st = Unavailable(std::string("socketpair: ") + std::strerror(errno));
      close_all();
      return st;
    }
    host_fds.push_back(sv[0]);
    // Above the targets of the dup2s below, so that no dup2 overwrites a source not yet moved.
    int high = fcntl(sv[1], F_DUPFD_CLOEXEC, kChildFd + launch.workers);
    close(sv[1]);
    if (high < 0) {
      Status st = Unavailable(std::string("fcntl: ") + std::strerror(errno));
      close_all();
      return st;
    }
    child_fds.push_back(high);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 onto fds 3, 4, ... clears close-on-exec there; every other descriptor of the host is
  // CLOEXEC or closed below, so the core inherits only stdin/stdout/stderr and its sockets.
  for (int i = 0; i < launch.workers; ++i)
    posix_spawn_file_actions_adddup2(&actions, child_fds[i], kChildFd + i);
  // And whatever a library opened without close-on-exec (listening sockets of in-process
  // keepers in dev mode, say) does not reach the core either.
  posix_spawn_file_actions_addclosefrom_np(&actions, kChildFd + launch.workers);
  std::vector<std::string> args = {launch.binary, "--fd", std::to_string(kChildFd), "--workers",
                                   std::to_string(launch.workers)};
  args.insert(args.end(), launch.args.begin(), launch.args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, launch.binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  for (int fd : child_fds) close(fd);
  child_fds.clear();
  if (rc != 0) {
    close_all();
    return Unavailable(std::string("cannot start the trusted core: ") + std::strerror(rc));
  }
  std::unique_ptr<EnclaveProcess> p(new EnclaveProcess(pid, std::move(host_fds)));
  auto hello = ecall::Invoke<ecall::Hello>(
      [&](ecall::Call c, std::vector<Bytes> a) { return p->Call(c, std::move(a)); }, {});
  if (!hello.ok())
    return hello.status().WithContext("trusted core did not start (see its log line above)");
  p->tee_ = std::move(hello->tee);
  p->enclave_key_ = std::move(hello->enclave_key);
  p->measurement_ = std::move(hello->measurement);
  p->info_json_ = std::move(hello->info);
  return p;
}

EnclaveProcess::EnclaveProcess(pid_t pid, std::vector<int> fds) : pid_(pid) {
  for (int fd : fds) {
    channels_.push_back(std::make_unique<Channel>(fd));
    free_.push_back(channels_.back().get());
  }
}

EnclaveProcess::~EnclaveProcess() {
  for (auto& c : channels_) close(c->fd);
  if (reaped_) return;
  for (int i = 0; i < 200; ++i) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || r < 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
}

std::optional<std::string> EnclaveProcess::Exited() {
  std::lock_guard<std::mutex> lock(mu_);
  if (reaped_) return exit_reason_;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r != pid_) {
    if (!broken_) return std::nullopt;
    // The channel broke but the process lives on (out of step): end it.
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  }
  reaped_ = true;
  broken_ = true;
  if (WIFSIGNALED(status)) exit_reason_ = "killed by signal " + std::to_string(WTERMSIG(status));
  else if (WIFEXITED(status)) exit_reason_ = "exited with status " + std::to_string(WEXITSTATUS(status));
  else exit_reason_ = "ended";
  return exit_reason_;
}

StatusOr<std::vector<Bytes>> EnclaveProcess::Call(ecall::Call call, std::vector<Bytes> args) {
  // Arguments and results may be secret (Decrypt plaintexts, SigV4 secrets, data keys): every
  // copy made here is wiped; the caller owns the results.
  ecall::Request request{call, std::move(args)};
  Bytes payload = request.Encode();
  for (Bytes& a : request.args) WipeBytes(a);
  Channel* channel = nullptr;
  {
    std::unique_lock<std::mutex> lock(mu_);
    free_cv_.wait(lock, [&] { return broken_ || !free_.empty(); });
    if (broken_) {
      WipeBytes(payload);
      return Unavailable("trusted core is gone; the server is restarting it (sealed)");
    }
    channel = free_.back();
    free_.pop_back();
  }
  Status st = ecall::WriteFrame(channel->fd, payload);
  WipeBytes(payload);
  StatusOr<Bytes> answer = st.ok() ? channel->reader.Next() : StatusOr<Bytes>(st);
  {
    std::lock_guard<std::mutex> lock(mu_);
    // A channel out of step (or a dead core) is never reused: the whole process is done.
    if (!answer.ok()) broken_ = true;
    free_.push_back(channel);
  }
  free_cv_.notify_one();
  if (!answer.ok()) {
    free_cv_.notify_all();
    return Unavailable("trusted core: " + answer.status().message());
  }
  StatusOr<ecall::Response> resp = ecall::Response::Decode(*answer);
  WipeBytes(*answer);
  if (!resp.ok()) return resp.status();
  RETURN_IF_ERROR(resp->ToStatus());
  return std::move(resp->results);
}

}  // namespace custos::host
