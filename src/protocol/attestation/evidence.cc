#include "protocol/attestation/evidence.h"

#include <algorithm>

#include "protocol/attestation/dcap_quote.h"

namespace custos::attestation {

bool IsSimEvidence(ByteSpan evidence) {
  return evidence.size() >= kSimEvidenceMagic.size() &&
         std::equal(kSimEvidenceMagic.begin(), kSimEvidenceMagic.end(), evidence.begin());
}

StatusOr<DcapVerdict> VerifyEvidence(ByteSpan evidence, std::string_view collateral_json,
                                     std::time_t at) {
  if (IsSimEvidence(evidence)) return VerifySimEvidence(evidence);
  if (collateral_json.empty()) return InvalidArgument("DCAP evidence needs collateral");
  ASSIGN_OR_RETURN(DcapCollateral collateral, ParseCollateralJson(collateral_json));
  return VerifyDcapQuote(evidence, collateral, at);
}

StatusOr<DcapVerdict> DescribeOwnEvidence(ByteSpan evidence) {
  if (IsSimEvidence(evidence)) return VerifySimEvidence(evidence);
  ASSIGN_OR_RETURN(DcapQuote q, ParseDcapQuote(evidence));
  DcapVerdict v;
  if (q.version == 3) {
    v.tee = "sgx";
    v.measurement = q.sgx_body.mr_enclave;
    v.signer = q.sgx_body.mr_signer;
    v.product_id = q.sgx_body.isv_prod_id;
    v.svn = q.sgx_body.isv_svn;
    v.debug = q.sgx_body.debug();
    v.report_data = q.sgx_body.report_data;
  } else {
    v.tee = "tdx";
    v.measurement = q.td_body.mr_td;
    v.signer = q.td_body.mr_owner;
    v.debug = q.td_body.debug();
    v.report_data = q.td_body.report_data;
  }
  return v;
}

}  // namespace custos::attestation
