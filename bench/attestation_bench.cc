// Cost of checking attestation evidence (src/protocol/attestation/dcap.h, sim_evidence.h): what a keeper
// spends per quote before it trusts an appliance. The DCAP figures use the real Intel quotes and
// PCS collateral in ../shared/testdata/dcap (the dcap-qvl vectors, also used by dcap_test.cc),
// verified at a time inside both collaterals' validity windows. docs/benchmarks.md records a run.
//
//   BM_VerifySgxQuoteV3                    VerifyDcapQuote on the SGX v3 quote, collateral parsed
//                                          once outside the loop (a verifier that caches the
//                                          collateral it fetched from the PCS)
//   BM_VerifyTdxQuoteV4                    the same for the TDX v4 quote
//   BM_VerifySgxQuoteV3WithCollateralParse ParseCollateralJson on the collateral text (already in
//                                          memory) + VerifyDcapQuote, per quote
//   BM_VerifySimEvidence                   VerifySimEvidence on `sim` evidence made once by a
//                                          SimPlatform whose key lives in a temporary directory
//   BM_CheckPolicy                         CheckPolicy of the SGX verdict against a policy that
//                                          pins its measurement, signer, product id and SVN
//
// Every iteration checks that the evidence was accepted (and by the expected path) and stops
// the benchmark with SkipWithError otherwise, so an error path can never be timed as a result.
// These are measurements, not tests: nothing here asserts a timing.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>

#include "protocol/attestation/dcap.h"
#include "protocol/attestation/sim_evidence.h"
#include "common/file.h"
#include "crypto/random.h"

namespace custos::attestation {
namespace {

[[noreturn]] void Die(const std::string& what, const Status& st) {
  std::cerr << "attestation_bench: " << what << ": " << st.ToString() << "\n";
  std::abort();
}

template <typename T>
T Must(StatusOr<T> v, const std::string& what) {
  if (!v.ok()) Die(what, v.status());
  return std::move(v).value();
}

std::string SharedTestdata(const std::string& rel) {
  return std::string(CUSTOS_SHARED_TESTDATA) + "/" + rel;
}

// DcapVector is one quote of ../shared/testdata/dcap with its collateral, as text and parsed.
struct DcapVector {
  std::string tee;  // the verdict's expected tee: "sgx" or "tdx"
  Bytes quote;
  std::string collateral_json;
  DcapCollateral collateral;
  // Inside both collaterals' windows (issued 2025-06-19, next update 2025-07-19), as in
  // dcap_test.cc; the wall clock is long past them.
  std::time_t at = Must(ParseRfc3339Utc("2025-06-20T00:00:00Z"), "--at");
};

DcapVector LoadDcapVector(const std::string& name, const std::string& tee) {
  DcapVector v;
  v.tee = tee;
  v.quote = Must(ReadFileBytes(SharedTestdata("dcap/" + name)), "read " + name);
  v.collateral_json = Must(ReadFileString(SharedTestdata("dcap/" + name + "_collateral.json")),
                           "read " + name + " collateral");
  v.collateral = Must(ParseCollateralJson(v.collateral_json), "parse " + name + " collateral");
  return v;
}

// Accepted stops the benchmark and returns false unless `verdict` is a verdict for `tee`.
bool Accepted(benchmark::State& state, const StatusOr<DcapVerdict>& verdict,
              const std::string& tee) {
  if (!verdict.ok()) {
    state.SkipWithError(("evidence refused: " + verdict.status().ToString()).c_str());
    return false;
  }
  if (verdict->tee != tee) {
    state.SkipWithError(("verdict for tee \"" + verdict->tee + "\", expected " + tee).c_str());
    return false;
  }
  return true;
}

void VerifyDcap(benchmark::State& state, const DcapVector& v) {
  for (auto _ : state) {
    StatusOr<DcapVerdict> verdict = VerifyDcapQuote(v.quote, v.collateral, v.at);
    if (!Accepted(state, verdict, v.tee)) break;
    benchmark::DoNotOptimize(verdict);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}

void BM_VerifySgxQuoteV3(benchmark::State& state) {
  VerifyDcap(state, LoadDcapVector("sgx_quote", "sgx"));
}
BENCHMARK(BM_VerifySgxQuoteV3)->Unit(benchmark::kMicrosecond);

void BM_VerifyTdxQuoteV4(benchmark::State& state) {
  VerifyDcap(state, LoadDcapVector("tdx_quote", "tdx"));
}
BENCHMARK(BM_VerifyTdxQuoteV4)->Unit(benchmark::kMicrosecond);

void BM_VerifySgxQuoteV3WithCollateralParse(benchmark::State& state) {
  const DcapVector v = LoadDcapVector("sgx_quote", "sgx");
  for (auto _ : state) {
    StatusOr<DcapCollateral> collateral = ParseCollateralJson(v.collateral_json);
    if (!collateral.ok()) {
      state.SkipWithError(("collateral refused: " + collateral.status().ToString()).c_str());
      break;
    }
    StatusOr<DcapVerdict> verdict = VerifyDcapQuote(v.quote, *collateral, v.at);
    if (!Accepted(state, verdict, v.tee)) break;
    benchmark::DoNotOptimize(verdict);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_VerifySgxQuoteV3WithCollateralParse)->Unit(benchmark::kMicrosecond);

// MakeSimEvidence signs one evidence blob for this executable's measurement with a fresh
// platform key, created in a private temporary directory that is removed again at once: the
// benchmark needs only the evidence, and the key file should not outlive that.
Bytes MakeSimEvidence() {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                    "/custos-attestation-bench-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) Die("mkdtemp " + dir, InternalError("failed"));
  StatusOr<SimPlatform> platform = SimPlatform::LoadOrCreate(dir + "/keys");
  StatusOr<Bytes> evidence = InternalError("no platform");
  if (platform.ok()) {
    Bytes measurement = Must(MeasureExecutable("/proc/self/exe"), "measure this executable");
    evidence = platform->MakeEvidence(measurement, SimIdentity{.product_id = 1, .svn = 1},
                                      crypto::RandomBytes(64));
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (!platform.ok()) Die("sim platform", platform.status());
  return Must(std::move(evidence), "sim evidence");
}

void BM_VerifySimEvidence(benchmark::State& state) {
  const Bytes evidence = MakeSimEvidence();
  for (auto _ : state) {
    StatusOr<DcapVerdict> verdict = VerifySimEvidence(evidence);
    if (!Accepted(state, verdict, "sim")) break;
    benchmark::DoNotOptimize(verdict);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_VerifySimEvidence)->Unit(benchmark::kMicrosecond);

void BM_CheckPolicy(benchmark::State& state) {
  const DcapVector v = LoadDcapVector("sgx_quote", "sgx");
  const DcapVerdict verdict = Must(VerifyDcapQuote(v.quote, v.collateral, v.at), "SGX quote");
  // A keeper's policy for this appliance: its exact identity, and the quote's real TCB status.
  AttestationPolicy policy;
  policy.allowed_measurements = {verdict.measurement};
  policy.allowed_signers = {verdict.signer};
  policy.product_id = verdict.product_id;
  policy.min_svn = verdict.svn;
  policy.accepted_tcb_statuses = {"UpToDate", "ConfigurationAndSWHardeningNeeded"};
  for (auto _ : state) {
    Status st = CheckPolicy(verdict, policy);
    if (!st.ok()) {
      state.SkipWithError(("policy refused: " + st.ToString()).c_str());
      break;
    }
    benchmark::DoNotOptimize(st);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_CheckPolicy);

}  // namespace
}  // namespace custos::attestation

BENCHMARK_MAIN();
