// Offline verification of the KMS audit chain (audit/chain.h; docs/audit.md "Verifying").
//
// The verifier recomputes every hash from the genesis hash, so it trusts nothing stored but the
// entries' bytes, and accepts the log only if its last entry carries a signature by the audit
// key over (seq, hash): that signature vouches for every entry before it. What it cannot see
// alone is the loss of whole batches at the end of the log (truncation, or a database rolled
// back to an older copy): the remaining prefix is itself a correctly signed chain. A head kept
// from an earlier run (`ExpectHead`) closes that gap up to that head.
//
// Module audit does not depend on module store (the trusted core links audit and must not
// link a database): records are fed one by one, or as any vector of structs with the fields
// seq, entry, hash and signature (store::AuditRecord is one).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "protocol/audit/chain.h"
#include "common/bytes.h"
#include "crypto/ecdsa.h"

namespace custos::audit {

// AuditReport is the verifier's verdict. `failure` names the first failed check and the entry
// it concerns ("entry 17: hash does not match (edited, inserted or reordered)"); verification
// stops there, so the counts and the head describe what was checked before it.
struct AuditReport {
  bool intact = false;
  uint64_t entries = 0;     // records examined, including the failed one
  uint64_t signatures = 0;  // signatures that verified
  // The newest head whose signature verified (seq 0 and the genesis hash when none did).
  // When intact this is the log's last entry: keep it to detect a later truncation.
  uint64_t head_seq = 0;
  std::string head_hash;  // hex
  std::string failure;    // empty when intact
  uint64_t failed_seq = 0;  // the entry `failure` names (0 when intact)

  // ToJson renders the report for `custos audit verify`.
  nlohmann::json ToJson() const;
};

// ChainVerifier checks records fed in order, in memory bounded by one record, so a log of any
// length can be read from the store page by page. Not thread-safe.
class ChainVerifier {
 public:
  explicit ChainVerifier(crypto::VerifyingKey audit_key);

  // ExpectHead pins a head from an earlier run: the log must contain `seq` with this hash
  // (else "truncated or rolled back"). Call before the first Add.
  void ExpectHead(const Head& head);

  // Add checks one record: it must have the next seq (the first is 1), the hash recomputed from
  // the previous one, and, if it has a signature, a valid one over CheckpointMessage(seq, hash).
  // Returns false once a check has failed (later records are then ignored).
  bool Add(uint64_t seq, std::string_view entry, ByteSpan hash, ByteSpan signature);

  // Finish checks the end of the log (the last entry must be signed; an expected head must
  // have been reached) and returns the report.
  AuditReport Finish();

 private:
  void Fail(uint64_t seq, std::string message);

  crypto::VerifyingKey key_;
  std::optional<Head> expected_head_;
  bool expected_head_seen_ = false;
  uint64_t last_seq_ = 0;
  Bytes last_hash_;
  bool last_signed_ = true;  // the empty log has nothing unsigned
  AuditReport report_;
};

// VerifyAuditChain verifies a whole log held in memory, `records` in seq order. R is any
// struct with fields seq (uint64_t), entry (std::string), hash and signature (Bytes), such as
// store::AuditRecord. The report says whether the log is intact; it is never an error.
template <typename R>
AuditReport VerifyAuditChain(const std::vector<R>& records, const crypto::VerifyingKey& audit_key,
                             std::optional<Head> expected_head = std::nullopt) {
  ChainVerifier v(audit_key);
  if (expected_head) v.ExpectHead(*expected_head);
  for (const R& r : records)
    if (!v.Add(r.seq, r.entry, r.hash, r.signature)) break;
  return v.Finish();
}

// ParseHead reads a head as printed by the verifier, "SEQ:HASHHEX" (64 hex digits).
StatusOr<Head> ParseHead(std::string_view text);

}  // namespace custos::audit
