// The KMS audit chain (DESIGN.md "Audit"; docs/protocol.md "Audit log"). Every request the
// appliance serves becomes one entry (canonical JSON: principal, operation, key, outcome,
// request id, time; never plaintext or key material). Entries are hash-chained:
//   h_0      = 32 zero bytes
//   h_seq    = SHA-256("custos/v1/audit-entry" || h_{seq-1} || u64 seq || var(entry))
// seq starts at 1 and increases by one. The trusted core extends the chain (ecall kAuditAppend)
// and signs each new head with its audit key (ECDSA P-256, derived from the root key, so every
// node of a cluster and every restart has the same one):
//   signature = Sign(CheckpointMessage(seq, h_seq))
// An edited, deleted, inserted or reordered entry changes every later hash, and no one but an
// unsealed core can sign a new head.
#pragma once
#include <cstdint>
#include <string_view>
#include "common/bytes.h"

namespace custos::audit {

inline constexpr size_t kHashSize = 32;

// GenesisHash is h_0.
Bytes GenesisHash();

// EntryHash computes h_seq from h_{seq-1}, seq and the entry's bytes.
Bytes EntryHash(ByteSpan previous_hash, uint64_t seq, std::string_view entry);

// CheckpointMessage is what the audit key signs for a head:
//   "custos/v1/audit-head" || u64 seq || hash (32)
Bytes CheckpointMessage(uint64_t seq, ByteSpan hash);

// A line statement is the core's word that a head is one it signed in its current run, whose
// identity is a random run id drawn when the core's KMS state is set up (at unseal). Within a
// run the core signs only heads that extend the previous one (kAuditAppend refuses any other
// anchor), so two heads with line statements of one run lie on one chain, the newer extending
// the older (docs/protocol.md "Audit witness"). What the audit key signs:
//   "custos/v1/audit-line" || run id (16) || u64 seq || hash (32)
inline constexpr size_t kRunIdSize = 16;
Bytes LineMessage(ByteSpan run_id, uint64_t seq, ByteSpan hash);

// EncodeHead/DecodeHead: head = u64 seq || hash (32).
Bytes EncodeHead(uint64_t seq, ByteSpan hash);
struct Head {
  uint64_t seq = 0;
  Bytes hash;
};
StatusOr<Head> DecodeHead(ByteSpan encoded);

}  // namespace custos::audit
