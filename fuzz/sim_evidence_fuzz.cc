// Fuzz target: the `sim` evidence parser/verifier. Arbitrary bytes must never crash it, and
// must never verify unless they are a correctly signed blob (which random input is not).
#include <cstdint>
#include <cstdlib>

#include "protocol/attestation/sim_evidence.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto v = custos::attestation::VerifySimEvidence(custos::ByteSpan(data, size));
  if (v.ok() && v->tee != "sim") std::abort();
  return 0;
}
