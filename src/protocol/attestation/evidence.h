// Evidence of any supported type (DESIGN.md "Evidence"): Intel DCAP quotes (SGX v3, TDX v4)
// and custos `sim` evidence, told apart by the sim magic. Used by keepers (before releasing a
// partial) and by enclaves (before handing the root key to a joining peer).
#pragma once

#include <ctime>
#include <string_view>

#include "protocol/attestation/dcap.h"
#include "protocol/attestation/sim_evidence.h"

namespace custos::attestation {

// IsSimEvidence reports whether `evidence` starts with the sim magic.
bool IsSimEvidence(ByteSpan evidence);

// VerifyEvidence verifies sim evidence (VerifySimEvidence) or a DCAP quote against
// `collateral_json` (ParseCollateralJson) at time `at`, and returns the verdict. A DCAP quote
// without collateral is kInvalidArgument "DCAP evidence needs collateral". It does not apply a
// policy: call CheckPolicy and CheckReportData next.
StatusOr<DcapVerdict> VerifyEvidence(ByteSpan evidence, std::string_view collateral_json,
                                     std::time_t at);

// DescribeOwnEvidence reads the identity fields (tee, measurement, signer, product id, svn,
// debug) of evidence this process just obtained from its own TEE, without collateral: an
// enclave uses it to learn its own identity for the cluster policy. Sim evidence is verified
// as usual; a DCAP quote is only parsed (its genuineness is the verifiers' business).
StatusOr<DcapVerdict> DescribeOwnEvidence(ByteSpan evidence);

}  // namespace custos::attestation
