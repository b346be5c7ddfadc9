// Fuzzes the DCAP parsers (src/protocol/attestation/): quotes and collateral reach a keeper from the
// appliance being attested, i.e. from the party it does not trust, so ParseDcapQuote,
// ParseCollateralJson, ParseAttestationPolicyJson and VerifyDcapQuote must never crash on any
// bytes. Each input is offered to every parser. A quote that parses must be self-consistent:
// the signed part is header || body of the declared TEE, the fixed-size fields have their sizes,
// and any prefix of it is refused (lengths must add up).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "protocol/attestation/dcap.h"
#include "protocol/attestation/dcap_quote.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos::attestation;
  custos::ByteSpan bytes(data, size);
  std::string_view text(reinterpret_cast<const char*>(data), size);

  auto quote = ParseDcapQuote(bytes);
  if (quote.ok()) {
    const DcapQuote& q = *quote;
    const size_t body = q.tee_type == kTeeTypeTdx ? kTdReportBodySize : kSgxReportBodySize;
    if (q.signed_part.size() != kQuoteHeaderSize + body) std::abort();
    if (q.quote_signature.size() != 64 || q.attestation_key.size() != 64) std::abort();
    if (q.qe_report_raw.size() != kSgxReportBodySize) std::abort();
    if (q.qe_report.report_data.size() != 64) std::abort();
    if (ParseDcapQuote(bytes.first(size - 1)).ok() && data[size - 1] != 0) std::abort();
    // Full verification against empty collateral must fail cleanly, never crash.
    if (VerifyDcapQuote(bytes, DcapCollateral{}, 1750377600).ok()) std::abort();
  }

  auto collateral = ParseCollateralJson(text);
  if (collateral.ok()) {
    if (collateral->tcb_info_signature.size() != 64) std::abort();
    if (collateral->qe_identity_signature.size() != 64) std::abort();
  }

  auto policy = ParseAttestationPolicyJson(text);
  if (policy.ok()) {
    DcapVerdict sim;
    sim.tee = "sim";
    if (CheckPolicy(sim, *policy).ok() != policy->allow_sim &&
        (policy->allowed_measurements.empty() && policy->allowed_signers.empty() &&
         !policy->product_id.has_value() && policy->min_svn == 0)) {
      std::abort();  // sim evidence passes exactly when allowed (no other constraint applies)
    }
  }

  (void)ParseRfc3339Utc(text);
  return 0;
}
