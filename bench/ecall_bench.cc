// Cost of one host<->enclave call in the `sim` backend (issue 3 target: <= 20 us round trip
// for a small request): the host's EnclaveProcess sends an ecall frame over the socket pair to
// a real custos-enclave process (locked down, seccomp) and waits for the answer.
//   BM_EcallPing/16     kPing with 16 payload bytes: framing + 2 context switches each way
//   BM_EcallPing/4096   the same with a 4 KiB payload
//   BM_EcallStatus      kStatus: JSON status + fresh sim evidence (one ECDSA signature)
//   BM_KmsEncrypt/64    kKmsEncrypt of 64 bytes under a SYMMETRIC_DEFAULT key with a one-pair
//                       encryption context: decode the KeyRef, unwrap the key version, HKDF the
//                       message key, AES-256-GCM (the core's cost of one AWS Encrypt)
//   BM_KmsGenerateDataKey  kKmsGenerateDataKey of a 32-byte key, plaintext returned
// The KMS cases use their own core, initialised (kLoad of a custody made here, kInit) so it holds
// a root key, with one key created before timing.
// Run: build/ecall_bench (custos-enclave must sit next to it, as the build puts it).
#include <benchmark/benchmark.h>
#include <stdlib.h>
#include <unistd.h>

#include <climits>
#include <filesystem>

#include "crypto/random.h"
#include "protocol/custody/custody.h"
#include "appliance/ecall/kms_calls.h"
#include "appliance/host/enclave_process.h"

namespace {

using namespace custos;

std::shared_ptr<host::EnclaveProcess> SpawnEnclave() {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  std::string dir = std::filesystem::path(std::string(exe, n > 0 ? n : 0)).parent_path();
  char tmpl[] = "/tmp/custos-ecall-bench-XXXXXX";
  std::string keys = mkdtemp(tmpl);
  auto p = host::EnclaveProcess::Spawn({dir + "/custos-enclave", {"--tee", "sim", "--sim-key-dir", keys}});
  if (!p.ok()) {
    fprintf(stderr, "cannot start custos-enclave: %s\n", p.status().message().c_str());
    return std::shared_ptr<host::EnclaveProcess>();
  }
  return std::move(*p);
}

std::shared_ptr<host::EnclaveProcess>& Enclave() {
  static std::shared_ptr<host::EnclaveProcess> e = SpawnEnclave();
  return e;
}

// BenchCustody is a signed custody of one provider and one customer keeper (threshold 1 each),
// dealt in the clear: enough for kLoad and kInit.
std::string BenchCustody() {
  custody::CustodyDescriptor d;
  d.ceremony_id = crypto::RandomBytes(16);
  std::vector<crypto::SigningKey> identities;
  for (custody::Domain domain : {custody::Domain::kProvider, custody::Domain::kCustomer}) {
    crypto::Scalar x = crypto::Scalar::Random();
    std::string id = domain == custody::Domain::kProvider ? "P1" : "C1";
    identities.push_back(crypto::SigningKey::Generate());
    custody::DomainRecord& dom = d.domain(domain);
    dom.threshold = 1;
    dom.public_key = crypto::Point::BaseMul(x);
    dom.keepers.push_back({id, domain, 1, "http://127.0.0.1:1", identities.back().verifying_key().point(),
                           crypto::Point::BaseMul(crypto::Scalar::Random()), crypto::Point::BaseMul(x),
                           custody::ProvePossession(x, id, domain, 1)});
  }
  d.public_key = d.provider.public_key + d.customer.public_key;
  d.signatures["P1"] = identities[0].Sign(d.SignatureMessage());
  d.signatures["C1"] = identities[1].Sign(d.SignatureMessage());
  return d.ToJsonString();
}

// KmsEnclave is an unsealed core and the encoded KeyRef of one SYMMETRIC_DEFAULT key in it.
struct KmsEnclave {
  std::shared_ptr<host::EnclaveProcess> process;
  Bytes ref;
};

KmsEnclave& Kms() {
  static KmsEnclave k = [] {
    KmsEnclave out{SpawnEnclave(), {}};
    if (!out.process) return out;
    Status st = out.process->Call(ecall::Call::kLoad, {ToBytes(BenchCustody()), Bytes{}, Bytes{}, Bytes{}}).status();
    if (st.ok()) st = out.process->Call(ecall::Call::kInit, {}).status();
    auto made = st.ok() ? out.process->Call(ecall::Call::kKmsCreateKey,
                                            {ToBytes("bench-key"), ecall::U32Arg(1), ToBytes(ecall::kSpecSymmetric)})
                        : StatusOr<std::vector<Bytes>>(st);
    if (!made.ok()) {
      fprintf(stderr, "cannot initialise the KMS core: %s\n", made.status().message().c_str());
      out.process.reset();
      return out;
    }
    out.ref = ecall::KeyRef{"bench-key", 1, std::string(ecall::kSpecSymmetric), (*made)[0]}.Encode();
    return out;
  }();
  return k;
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

void BM_KmsEncrypt(benchmark::State& state) {
  KmsEnclave& k = Kms();
  if (!k.process) return state.SkipWithError("no KMS core");
  Bytes plaintext(static_cast<size_t>(state.range(0)), 0x42);
  Bytes ctx = ecall::EncodeEncryptionContext({{"purpose", "bench"}});
  for (auto _ : state) {
    auto r = k.process->Call(ecall::Call::kKmsEncrypt, {k.ref, plaintext, ctx});
    if (!r.ok()) {
      state.SkipWithError("encrypt failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_KmsEncrypt)->Arg(64)->UseRealTime();

void BM_KmsGenerateDataKey(benchmark::State& state) {
  KmsEnclave& k = Kms();
  if (!k.process) return state.SkipWithError("no KMS core");
  Bytes ctx = ecall::EncodeEncryptionContext({{"purpose", "bench"}});
  for (auto _ : state) {
    auto r = k.process->Call(ecall::Call::kKmsGenerateDataKey, {k.ref, ecall::U32Arg(32), ctx, Bytes{1}});
    if (!r.ok() || (*r)[1].size() != 32) {
      state.SkipWithError("generate data key failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_KmsGenerateDataKey)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
