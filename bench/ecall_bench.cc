// Cost of one host<->enclave call in the `sim` backend (issue 3 target: <= 20 us round trip
// for a small request): the host's EnclaveProcess sends an ecall frame over the socket pair to
// a real custos-enclave process (locked down, seccomp) and waits for the answer.
//   BM_EcallPing/16     kPing with 16 payload bytes: framing + 2 context switches each way
//   BM_EcallPing/4096   the same with a 4 KiB payload
//   BM_EcallStatus      kStatus: JSON status + fresh sim evidence (one ECDSA signature)
// Run: build/ecall_bench (custos-enclave must sit next to it, as the build puts it).
#include <benchmark/benchmark.h>
#include <stdlib.h>
#include <unistd.h>

#include <climits>
#include <filesystem>

#include "host/enclave_process.h"

namespace {

using namespace custos;

std::unique_ptr<host::EnclaveProcess>& Enclave() {
  static std::unique_ptr<host::EnclaveProcess> e = [] {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    std::string dir = std::filesystem::path(std::string(exe, n > 0 ? n : 0)).parent_path();
    char tmpl[] = "/tmp/custos-ecall-bench-XXXXXX";
    std::string keys = mkdtemp(tmpl);
    auto p = host::EnclaveProcess::Spawn({dir + "/custos-enclave", {"--tee", "sim", "--sim-key-dir", keys}});
    if (!p.ok()) {
      fprintf(stderr, "cannot start custos-enclave: %s\n", p.status().message().c_str());
      return std::unique_ptr<host::EnclaveProcess>();
    }
    return std::move(*p);
  }();
  return e;
}

void BM_EcallPing(benchmark::State& state) {
  auto& e = Enclave();
  if (!e) return state.SkipWithError("no enclave");
  Bytes payload(static_cast<size_t>(state.range(0)), 0x42);
  for (auto _ : state) {
    auto r = e->Call(ecall::Call::kPing, {payload});
    if (!r.ok() || (*r)[0].size() != payload.size()) {
      state.SkipWithError("ping failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EcallPing)->Arg(16)->Arg(4096)->UseRealTime();

void BM_EcallStatus(benchmark::State& state) {
  auto& e = Enclave();
  if (!e) return state.SkipWithError("no enclave");
  for (auto _ : state) {
    auto r = e->Call(ecall::Call::kStatus, {Bytes{}});
    if (!r.ok()) {
      state.SkipWithError("status failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EcallStatus)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
