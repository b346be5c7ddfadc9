// Measurement approval (docs/protocol.md "Measurement approval"; DESIGN.md "Upgrades"): a new
// trusted-core build has a new measurement, and an unsealed core hands the root key to a
// joining core of another measurement only if a quorum of keepers of BOTH domains (t_p of the
// provider AND t_c of the customer, the same access structure as the root key itself) signed
// an approval of that measurement for this custody. Each keeper signs with the identity key
// custody.json lists for it (`custos keeper policy approve`, which also audits it).
//
//   approval.json = {"approval": "custos-measurement/v1", "joint_key": hex(Y, compressed),
//                    "tee": "sim" | "sgx" | "tdx" | ..., "measurement": hex,
//                    "not_after": "YYYY-MM-DDTHH:MM:SSZ", "signatures": {keeper id: hex}}
//   signed message = "custos/v1/measurement-approval" || var(Y compressed) || var(tee)
//                    || var(measurement) || u64 not_after (Unix seconds)
//
// The approval names the joint key Y, not the descriptor's fingerprint, so a reshare does not
// void it; a signature counts only while its keeper is listed (with the same identity key) in
// the descriptor the verifier holds, so a reshared-away keeper's signature stops counting.
#pragma once

#include <ctime>
#include <map>
#include <string>

#include "common/bytes.h"
#include "common/status.h"
#include "crypto/ecdsa.h"
#include "protocol/custody/custody.h"

namespace custos::custody {

struct MeasurementApproval {
  crypto::Point joint_key;  // Y of the custody it is for
  std::string tee;          // the evidence type the measurement is for ("sim", "sgx", ...)
  Bytes measurement;        // 32 (sim, SGX MRENCLAVE) or 48 (TDX MRTD) bytes
  std::time_t not_after = 0;
  std::map<std::string, Bytes> signatures;  // keeper id -> ECDSA P-256 P1363 signature

  // SignatureMessage is what each keeper signs (above).
  Bytes SignatureMessage() const;
  // Sign adds (or replaces) `keeper_id`'s signature.
  void Sign(const std::string& keeper_id, const crypto::SigningKey& key);

  std::string ToJsonString() const;
  // Parse refuses unknown keys, a wrong "approval" tag, malformed hex, and a measurement that
  // is not 32 or 48 bytes.
  static StatusOr<MeasurementApproval> Parse(std::string_view text);
};

// ApprovalQuorum says who approved, by domain, among the keepers of the descriptor checked
// against.
struct ApprovalQuorum {
  size_t provider = 0, customer = 0;
  uint32_t provider_threshold = 0, customer_threshold = 0;
};

// CountApproval is CheckApproval without the threshold check: who approved so far.
StatusOr<ApprovalQuorum> CountApproval(const MeasurementApproval& a, const CustodyDescriptor& c,
                                       std::time_t now);

// CheckApproval verifies `a` against the custody `c` at time `now`:
//   - kFailedPrecondition: another joint key ("measurement approval: for another custody"),
//     expired ("measurement approval: expired at ...");
//   - kIntegrityError: a listed keeper's signature does not verify (the file was altered);
//   - kPermissionDenied: fewer than t_p provider or t_c customer keepers signed; the message
//     names both counts ("measurement approval: provider 1 of 1 needed, customer 0 of 2
//     needed: both domains must approve").
// Signatures by ids the descriptor does not list are ignored (keepers reshared away).
StatusOr<ApprovalQuorum> CheckApproval(const MeasurementApproval& a, const CustodyDescriptor& c,
                                       std::time_t now);

}  // namespace custos::custody
