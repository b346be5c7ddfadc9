// Intel DCAP quote verification (DESIGN.md, "Attested appliance" / "Evidence"): an SGX quote v3
// or TDX quote v4 is checked against collateral from the Intel PCS (PCK CRLs, TCB info, QE
// identity) and the Intel SGX Root CA pinned in this module, at a caller-given time. The result
// is a DcapVerdict; whether that verdict is acceptable is a separate decision (CheckPolicy).
//
// Checks, in order, each failing with a Status that names it:
//  1. quote structure (dcap_quote.h);
//  2. root CA CRL and PCK CRL: signed by their issuers, whose chains reach the pinned root;
//  3. PCK certificate chain from the quote up to the pinned root at `at`, CRLs applied;
//  4. TCB info and QE identity: chains to the root, ECDSA signatures over the exact JSON bytes,
//     issueDate <= at <= nextUpdate;
//  5. QE report signed by the PCK leaf key; QE report_data binds the attestation key and the QE
//     authentication data; QE report matches the QE identity (mrsigner, isvprodid, masked
//     miscselect and attributes) and its isvsvn gives the QE TCB status;
//  6. quote signature by the attestation key over header || body;
//  7. TCB level: PCK certificate SGX extensions (FMSPC, PCE-ID, CPU SVN components, PCE SVN)
//     against TCB info, plus the TEE TCB SVN and TDX module identity for TDX.
//
// Thread safety: all functions are pure and may run concurrently.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/attestation/dcap_quote.h"
#include "common/bytes.h"
#include "common/status.h"

namespace custos::attestation {

// DcapCollateral is the verification collateral for one quote, as served by the Intel PCS (or
// a PCCS). Nothing in it is trusted: VerifyDcapQuote checks all of it against the pinned root.
struct DcapCollateral {
  std::string pck_crl_issuer_chain;      // PEM: PCK Processor/Platform CA, then root
  Bytes root_ca_crl;                     // DER
  Bytes pck_crl;                         // DER
  std::string tcb_info_issuer_chain;     // PEM: TCB signing cert, then root
  std::string tcb_info;                  // the exact signed JSON text
  Bytes tcb_info_signature;              // 64, r || s
  std::string qe_identity_issuer_chain;  // PEM: TCB signing cert, then root
  std::string qe_identity;               // the exact signed JSON text
  Bytes qe_identity_signature;           // 64, r || s
};

// ParseCollateralJson reads the collateral JSON object with the keys pck_crl_issuer_chain,
// root_ca_crl, pck_crl (CRLs as hex DER or PEM), tcb_info_issuer_chain, tcb_info,
// tcb_info_signature (hex r || s), qe_identity_issuer_chain, qe_identity and
// qe_identity_signature. InvalidArgument on a missing key, wrong type or bad encoding.
StatusOr<DcapCollateral> ParseCollateralJson(std::string_view json);

// DcapVerdict is what a verified quote says about the attested TEE.
struct DcapVerdict {
  std::string tee;         // "sgx" or "tdx" ("sim" for simulated evidence, made elsewhere)
  std::string tcb_status;  // platform TCB status converged with the QE (and TDX module) status
  std::vector<std::string> advisory_ids;  // Intel security advisories of the matched levels
  Bytes measurement;                      // SGX: MRENCLAVE (32); TDX: MRTD (48)
  // signer: SGX: MRSIGNER (32). TDX: MROWNER (48), the TD owner identity measured into the TD
  // report (MRSIGNERSEAM names Intel's TDX module signer and is checked against TCB info).
  Bytes signer;
  uint16_t product_id = 0;  // SGX: ISVPRODID; TDX: 0 (TDs have none)
  uint16_t svn = 0;         // SGX: ISVSVN; TDX: 0 (TDs have none)
  bool debug = false;       // SGX: ATTRIBUTES.DEBUG; TDX: TD_ATTRIBUTES.DEBUG
  Bytes report_data;        // 64 bytes chosen by the attested code
  std::string fmspc;        // upper-case hex, from the PCK certificate
};

// VerifyDcapQuote verifies `quote` against `collateral` and the pinned Intel SGX Root CA at
// time `at`, and returns what it attests. Fails with kIntegrity for a signature, chain, CRL,
// binding or identity check that fails (the message names the check), kFailedPrecondition for
// collateral or certificates outside their validity window at `at` or a revoked TCB, and
// kInvalidArgument for malformed input.
StatusOr<DcapVerdict> VerifyDcapQuote(ByteSpan quote, const DcapCollateral& collateral,
                                      std::time_t at);

// ParseRfc3339Utc parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" (UTC only), as used by Intel collateral
// and the CLI's --at.
StatusOr<std::time_t> ParseRfc3339Utc(std::string_view text);

// AttestationPolicy is what a verifier (a keeper) accepts. Empty lists accept any value.
struct AttestationPolicy {
  std::vector<Bytes> allowed_measurements;
  std::vector<Bytes> allowed_signers;
  std::optional<uint16_t> product_id;
  uint16_t min_svn = 0;
  bool allow_debug = false;
  std::vector<std::string> accepted_tcb_statuses = {"UpToDate"};
  bool allow_sim = false;
};

// CheckPolicy returns OK if `verdict` satisfies `policy`, else kPermissionDenied naming the
// failed check ("policy: measurement not allowed", "policy: debug", ...).
Status CheckPolicy(const DcapVerdict& verdict, const AttestationPolicy& policy);

// ParseAttestationPolicyJson reads {"measurements": [hex], "signers": [hex], "product_id": n,
// "min_svn": n, "allow_debug": bool, "tcb_statuses": [string], "allow_sim": bool}; every key is
// optional (defaults as in AttestationPolicy); unknown keys are refused.
StatusOr<AttestationPolicy> ParseAttestationPolicyJson(std::string_view json);

}  // namespace custos::attestation
