// custos-enclave: the trusted core as its own process, for the `sim` TEE backend (and the
// program a hardware TEE runtime such as Gramine would load). The host starts it with one
// connected socket on --fd and speaks ecall/ecall.h over it, one call at a time.
//
// Start-up order matters: every file this process will ever read (its own executable for the
// sim measurement, the sim platform key, OpenSSL's configuration) is read first, and the
// worker threads are started (the seccomp filter refuses clone); then the process locks itself
// down (no core dumps, memory locked, seccomp on every thread: enclave/hardening.h); only then
// does it create the core and draw its keys, so no key exists before the lockdown.
//
// Workers: --workers N sockets on fds --fd, --fd + 1, ...; one thread serves each, one call at
// a time, all over the one EnclaveCore (KMS calls run concurrently, the others one at a time:
// core.h). It exits when the host closes the first socket.
#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <future>
#include <iostream>
#include <latch>
#include <memory>
#include <thread>

#include "CLI/CLI.hpp"
#include "protocol/attestation/tee_adapters.h"
#include "common/log.h"
#include "common/secret.h"
#include "crypto/ecdsa.h"
#include "crypto/random.h"
#include "appliance/ecall/ecall.h"
#include "common/file.h"
#include "appliance/enclave/core.h"
#include "appliance/enclave/hardening.h"

namespace {

using namespace custos;

void Log(const std::string& level, const std::string& msg, const nlohmann::json& extra = {}) {
  custos::Log(level, "enclave", msg, extra.is_object() ? extra : nlohmann::json::object());
}

StatusOr<std::string> SelfPath() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return Unavailable("cannot resolve /proc/self/exe");
  return std::string(buf, static_cast<size_t>(n));
}

// Serve answers the calls arriving on `fd` until the host closes it.
Status Serve(int fd, enclave::EnclaveCore& core) {
  ecall::FrameReader reader(fd);
  // A pipelined channel (docs/architecture.md) brings several requests in one read: they are
  // answered in order and the answers leave in one write, up to kBatch at a time.
  constexpr int kBatch = 32;
  Bytes out;
  for (;;) {
    auto request = reader.Next();
    if (!request.ok()) {
      if (request.status().code() == ErrorCode::kUnavailable) return Status::Ok();  // host gone
      return request.status();
    }
    for (int answered = 0;;) {
      Bytes response = core.Handle(*request);
      WipeBytes(*request);  // requests and responses carry plaintexts and secrets
      Status framed = ecall::AppendFrame(out, response);
      WipeBytes(response);
      RETURN_IF_ERROR(framed);
      if (++answered == kBatch || !reader.HasFrame()) break;
      request = reader.Next();
      if (!request.ok()) return request.status();
    }
    Status written = WriteFully(fd, out);
    WipeBytes(out);
    out.clear();
    RETURN_IF_ERROR(written);
  }
}

Status Run(int fd, int workers, attestation::TeeBackendConfig tee_config) {
  // 1. Everything that touches the file system.
  OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, nullptr);
  (void)crypto::RandomBytes(32);
  (void)crypto::SigningKey::Generate().Sign(Bytes{0});
  ASSIGN_OR_RETURN(tee_config.trusted_core_path, SelfPath());
  ASSIGN_OR_RETURN(std::unique_ptr<attestation::TeeBackend> tee,
                   attestation::MakeTeeBackend(tee_config));
  signal(SIGPIPE, SIG_IGN);  // a vanished host is seen as a write error, not a signal
  // The extra workers wait for the core; they are started before the lockdown, which
  // forbids clone, and get its filter with the rest of the process (TSYNC).
  std::promise<enclave::EnclaveCore*> core_ready;
  std::shared_future<enclave::EnclaveCore*> core_future = core_ready.get_future().share();
  // A thread makes syscalls as it starts (glibc registers rseq): each one must be running
  // before the filter is installed.
  std::latch started(workers - 1);
  struct Worker {
    int fd;
    std::shared_future<enclave::EnclaveCore*> core;
    std::latch* started;
  };
  // Each worker's stack is 2 MiB, not glibc's 8 MiB default: the lockdown locks all memory
  // (mlockall), stacks included, and the host starts 3 channels per CPU.
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 2 << 20);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  for (int i = 1; i < workers; ++i) {
    auto* w = new Worker{fd + i, core_future, &started};
    pthread_t thread;
    int rc = pthread_create(
        &thread, &attr,
        [](void* arg) -> void* {
          std::unique_ptr<Worker> w(static_cast<Worker*>(arg));
          w->started->count_down();
          enclave::EnclaveCore* core = w->core.get();
          if (core == nullptr) return nullptr;
          Status st = Serve(w->fd, *core);
          if (!st.ok()) Log("error", "trusted core worker stopped", {{"reason", st.message()}});
          return nullptr;
        },
        w);
    if (rc != 0) {
      delete w;
      pthread_attr_destroy(&attr);
      // The workers already started count down and end; wait for them (they use `started`).
      started.count_down(workers - i);
      started.wait();
      core_ready.set_value(nullptr);
      return Unavailable(std::string("cannot start a trusted core worker: ") + std::strerror(rc));
    }
  }
  pthread_attr_destroy(&attr);
  started.wait();
  // 2. Lock down. Hardware backends keep reading their attestation files.
  enclave::SeccompOptions seccomp;
  seccomp.allow_file_open = tee_config.name != "sim";
  StatusOr<enclave::LockdownReport> report = enclave::LockDown(seccomp);
  if (!report.ok()) {
    core_ready.set_value(nullptr);
    return report.status();
  }
  nlohmann::json lockdown = {{"dumps_disabled", report->dumps_disabled},
                             {"memory_locked", report->memory_locked},
                             {"seccomp", report->seccomp_installed}};
  if (!report->memory_locked) lockdown["memory_lock_error"] = report->memory_lock_error;
  // 3. The core, its keys, and the call loops.
  enclave::CoreOptions options;
  options.tee = std::move(tee);
  options.lockdown = lockdown;
  StatusOr<std::unique_ptr<enclave::EnclaveCore>> core =
      enclave::EnclaveCore::Create(std::move(options));
  if (!core.ok()) {
    core_ready.set_value(nullptr);
    return core.status();
  }
  Log("info", "trusted core ready",
      {{"tee", tee_config.name}, {"lockdown", lockdown}, {"workers", workers}});
  core_ready.set_value(core->get());
  // The first channel's end is the host's: the process exits with it (main's _exit ends the
  // other workers).
  return Serve(fd, **core);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"custos trusted core (started by `custos server`, not by hand)"};
  int fd = -1;
  custos::attestation::TeeBackendConfig tee;
  tee.name = "sim";
  int product_id = 0, svn = 0;
  bool debug = false;
  int workers = 1;
  app.add_option("--fd", fd, "first connected socket to the host")->required();
  app.add_option("--workers", workers, "worker threads, one per socket from --fd on")
      ->check(CLI::Range(1, 256));
  app.add_option("--tee", tee.name, "sim | sgx-gramine | tdx-configfs");
  app.add_option("--sim-key-dir", tee.sim_key_dir, "sim platform key directory");
  app.add_option("--sim-product-id", product_id)->check(CLI::Range(0, 65535));
  app.add_option("--sim-svn", svn)->check(CLI::Range(0, 65535));
  app.add_flag("--sim-debug", debug, "report the DEBUG attribute (keepers refuse it by default)");
  app.add_option("--gramine-root", tee.gramine_root);
  app.add_option("--tsm-root", tee.tsm_root);
  CLI11_PARSE(app, argc, argv);
  tee.sim_identity.product_id = static_cast<uint16_t>(product_id);
  tee.sim_identity.svn = static_cast<uint16_t>(svn);
  tee.sim_identity.debug = debug;
  custos::Status st = Run(fd, workers, tee);
  if (!st.ok()) {
    Log("error", "trusted core stopped", {{"reason", st.message()}});
    _exit(1);
  }
  // _exit: no static destructors or at-exit handlers run under the seccomp filter.
  _exit(0);
}
