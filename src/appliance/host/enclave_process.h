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
};

// EnclaveProcess owns one running trusted core. Call is thread-safe: each call takes a free
// channel (waiting for one when all are busy). The destructor closes the sockets, which makes
// the core exit, and reaps it (SIGKILL after 2 s).
class EnclaveProcess {
 public:
  // Spawn starts the core and performs kHello; fails if the binary cannot be started, exits
  // early (its stderr says why), or speaks another interface version.
  static StatusOr<std::unique_ptr<EnclaveProcess>> Spawn(const EnclaveLaunch& launch);
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
  EnclaveProcess(pid_t pid, std::vector<int> fds);
  std::mutex mu_;
  std::condition_variable free_cv_;
  pid_t pid_;
  std::vector<std::unique_ptr<Channel>> channels_;
  std::vector<Channel*> free_;  // guarded by mu_
  bool broken_ = false;       // guarded by mu_
  bool reaped_ = false;       // guarded by mu_
  std::string exit_reason_;   // guarded by mu_
  std::string tee_;
  Bytes enclave_key_, measurement_;
  std::string info_json_;
};

}  // namespace custos::host
