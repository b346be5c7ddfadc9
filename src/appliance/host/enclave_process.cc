#include "appliance/host/enclave_process.h"

#include "appliance/ecall/calls.h"

#include "common/secret.h"

#include <signal.h>
#include <spawn.h>
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
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return Unavailable(std::string("socketpair: ") + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 onto fd 3 clears close-on-exec there; every other descriptor of the host is CLOEXEC
  // or closed below, so the core inherits only stdin/stdout/stderr and its socket.
  posix_spawn_file_actions_adddup2(&actions, sv[1], kChildFd);
  // And whatever a library opened without close-on-exec (listening sockets of in-process
  // keepers in dev mode, say) does not reach the core either.
  posix_spawn_file_actions_addclosefrom_np(&actions, kChildFd + 1);
  std::vector<std::string> args = {launch.binary, "--fd", std::to_string(kChildFd)};
  args.insert(args.end(), launch.args.begin(), launch.args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, launch.binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(sv[1]);
  if (rc != 0) {
    close(sv[0]);
    return Unavailable(std::string("cannot start the trusted core: ") + std::strerror(rc));
  }
  std::unique_ptr<EnclaveProcess> p(new EnclaveProcess(pid, sv[0]));
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

EnclaveProcess::~EnclaveProcess() {
  close(fd_);
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
  std::lock_guard<std::mutex> lock(mu_);
  if (broken_) {
    WipeBytes(payload);
    return Unavailable("trusted core is gone; the server is restarting it (sealed)");
  }
  Status st = ecall::WriteFrame(fd_, payload);
  WipeBytes(payload);
  StatusOr<Bytes> answer = st.ok() ? reader_.Next() : StatusOr<Bytes>(st);
  if (!answer.ok()) {
    broken_ = true;  // the stream is out of step or the core died: never reuse it
    return Unavailable("trusted core: " + answer.status().message());
  }
  StatusOr<ecall::Response> resp = ecall::Response::Decode(*answer);
  WipeBytes(*answer);
  if (!resp.ok()) return resp.status();
  RETURN_IF_ERROR(resp->ToStatus());
  return std::move(resp->results);
}

}  // namespace custos::host
