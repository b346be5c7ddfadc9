// The host's handle on the trusted core running as its own process (`sim` backend; DESIGN.md
// "TEE backends"). The host starts custos-enclave with one socket pair per core worker and
// sends it ecall/ecall.h requests, one at a time per channel: as many calls run at once as the
// core has workers (docs/architecture.md "The trusted core's workers"). Nothing the host
// receives from it is secret in clear.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/status.h"
#include "appliance/ecall/ecall.h"

namespace custos::host {

// EnclaveLaunch says which executable to start and with which arguments (besides --fd).
struct EnclaveLaunch {
  std::string binary;              // path to custos-enclave
  std::vector<std::string> args;   // e.g. {"--tee", "sim", "--sim-key-dir", "/var/lib/custos/sim"}
  int workers = 1;                 // core threads, one channel each (1..256)
  // pipelined: more channels (and core threads), each lent to one fiber-running HTTP I/O
  // thread at a time: its fibers' calls are written one after another without waiting, and
  // the answers, which come back in order, resume them (net/fiber.h). 0..256.
  int pipelined = 0;
};

struct PipeLink;  // enclave_process.cc: a pipelined channel lent to one I/O thread

// EnclaveProcess owns one running trusted core. Call is thread-safe: each call takes a free
// channel (waiting for one when all are busy); a call from a fiber that may suspend
// (fiber::SuspendAllowed) goes through its thread's pipelined channel instead and suspends
// the fiber, not the thread, until the answer. The destructor closes the sockets, which makes
// the core exit, and reaps it (SIGKILL after 2 s).
class EnclaveProcess : public std::enable_shared_from_this<EnclaveProcess> {
 public:
  // Spawn starts the core and performs kHello; fails if the binary cannot be started, exits
  // early (its stderr says why), or speaks another interface version.
  static StatusOr<std::shared_ptr<EnclaveProcess>> Spawn(const EnclaveLaunch& launch);
  ~EnclaveProcess();
  EnclaveProcess(const EnclaveProcess&) = delete;
  EnclaveProcess& operator=(const EnclaveProcess&) = delete;

  // Call sends one request and returns the core's results or its error. kUnavailable if the
  // core has gone (it is not restarted here).
  StatusOr<std::vector<Bytes>> Call(ecall::Call call, std::vector<Bytes> args);

  // Exited reaps the core if it has ended (or, when its channel broke, ends it) and says how;
  // nullopt while it runs. Thread-safe.
  std::optional<std::string> Exited();

  pid_t pid() const { return pid_; }
  int workers() const { return static_cast<int>(channels_.size()); }
  int pipelined() const { return static_cast<int>(pipes_.size()); }
  // The kHello results.
  const std::string& tee() const { return tee_; }
  const Bytes& enclave_key() const { return enclave_key_; }
  const Bytes& measurement() const { return measurement_; }
  const std::string& info_json() const { return info_json_; }

 private:
  // Channel is one socket to one core worker; used by one call at a time.
  struct Channel {
    explicit Channel(int fd) : fd(fd), reader(fd) {}
    int fd;
    ecall::FrameReader reader;
  };
  friend struct PipeLink;
  EnclaveProcess(pid_t pid, std::vector<int> fds, std::vector<int> pipe_fds);
  // CallSync sends one request on a free channel and waits for its answer.
  StatusOr<Bytes> CallSync(const Bytes& payload);
  // CallSuspending sends one request on the calling I/O thread's pipelined channel and
  // suspends the fiber until its answer; nullopt when this thread can have no channel (all
  // are lent to other threads, or this process is not owned by a shared_ptr).
  std::optional<StatusOr<Bytes>> CallSuspending(const Bytes& payload);
  void MarkBroken();
  bool Broken();
  std::mutex mu_;
  std::condition_variable free_cv_;
  pid_t pid_;
  std::vector<std::unique_ptr<Channel>> channels_;
  std::vector<Channel*> free_;  // guarded by mu_
  std::vector<std::unique_ptr<Channel>> pipes_;
  std::vector<Channel*> free_pipes_;  // guarded by mu_
  bool broken_ = false;       // guarded by mu_
  bool reaped_ = false;       // guarded by mu_
  std::string exit_reason_;   // guarded by mu_
  std::string tee_;
  Bytes enclave_key_, measurement_;
  std::string info_json_;
};

}  // namespace custos::host
