// What travels inside a SIGMA channel (channel.h) between a keeper and an enclave during quorum
// unseal, and between two enclaves during a cluster join. DESIGN.md "Attested appliance";
// docs/protocol.md, "Unseal records" and "Enclave join". Each value is the plaintext of one
// record; the record layer gives confidentiality, integrity and order.
//
//   UnsealRequest  E -> K  u8 1 || custody fingerprint (32) || R (33) || envelope digest (32)
//   PartialRelease K -> E  u8 2 || u32 index || D (33) || DLEQ proof (64)           [threshold]
//   UnsealProgress E -> K  u8 3 || u8 unsealed || u16 provider count || u16 customer count
//   JoinRequest    N -> E  u8 4 || var(evidence of N) || var(collateral json, may be empty)
//   JoinGrant      E -> N  u8 5 || root key (32) || var(envelope) || var(origin file)
//
// envelope digest = SHA-256("custos/v1/envelope" || envelope); the keeper's DLEQ proof uses
// context = "custos/v1/unseal" || envelope digest, so a proof made for one envelope does not
// verify for another. A joining enclave N's evidence binds
//   report_data = SHA-256("custos/v1/join" || pk_N (33) || SHA-256(message1) || SHA-256(message2))
// i.e. its own signing key (the key that signed SIGMA message 3) and this very handshake.
#pragma once

#include <cstdint>

#include "common/bytes.h"
#include "common/secret.h"
#include "crypto/p256.h"
#include "protocol/threshold/partial.h"

namespace custos::sigma {

enum class ReleaseRecord : uint8_t {
  kUnsealRequest = 1,
  kPartialRelease = 2,
  kUnsealProgress = 3,
  kJoinRequest = 4,
  kJoinGrant = 5,
};

// kJoinPeerId is the SIGMA keeper_id a joining enclave presents (it is not a keeper).
inline constexpr std::string_view kJoinPeerId = "@enclave";
// kRootKeySize is the length of the appliance root key.
inline constexpr size_t kRootKeySize = 32;

// EnvelopeDigest returns SHA-256("custos/v1/envelope" || envelope).
Bytes EnvelopeDigest(ByteSpan envelope);
// UnsealProofContext returns "custos/v1/unseal" || envelope digest.
Bytes UnsealProofContext(ByteSpan envelope_digest);
// EnvelopeOriginReportData returns the report_data of the evidence an enclave produces for an
// envelope it made (kInit), or re-binds once it holds the root key (kOriginRebind):
//   SHA-256("custos/v1/envelope-origin-y" || envelope digest (32) || Y (33, compressed) ||
//           root key id (16))
// Only a genuine enclave can produce such evidence, so an envelope the host made itself
// (anyone can encrypt to Y) is refused. It binds the joint public key Y, which a reshare does
// not change, so an appliance survives every reshare (docs/protocol.md "Custody envelope").
Bytes EnvelopeOriginReportData(ByteSpan envelope_digest, const crypto::Point& joint_key,
                               ByteSpan root_key_id);
// LegacyEnvelopeOriginReportData is the binding cores made before custody updates existed:
// SHA-256("custos/v1/envelope-origin" || envelope digest (32) || custody fingerprint (32) ||
// root key id (16)). It names one custody descriptor, so a reshare stranded such an envelope;
// the core still accepts it (for the fingerprints it knows) and re-binds it at the next unseal.
Bytes LegacyEnvelopeOriginReportData(ByteSpan envelope_digest, ByteSpan custody_fp,
                                     ByteSpan root_key_id);

// OriginBinding says what an envelope's origin evidence binds besides the envelope and the
// root key id.
enum class OriginBinding : uint8_t {
  kCustodyFingerprint = 1,  // legacy: one custody descriptor (stranded by a reshare)
  kJointKey = 2,            // the joint public key Y (survives reshares)
};

// EnvelopeOrigin is the content of <data_dir>/envelope.origin:
//   "CORG" || u8 version (1) || u8 binding (2 = joint key) || evidence        (this release)
//   evidence                                       (no magic: legacy, custody fingerprint)
// The host stores it opaquely; the core decodes it at kLoad and reports the binding in its
// status, so a reshare can refuse to strand a sealed appliance whose evidence is legacy.
struct EnvelopeOrigin {
  OriginBinding binding = OriginBinding::kJointKey;
  Bytes evidence;
  Bytes Encode() const;
  // Decode never fails on legacy files (anything without the magic); a file with the magic
  // must carry version 1, a known binding and non-empty evidence.
  static StatusOr<EnvelopeOrigin> Decode(ByteSpan file);
};
// OriginBindingName is "joint-key" or "custody-fingerprint" (status JSON "origin_binding").
std::string_view OriginBindingName(OriginBinding binding);
// RootKeyId returns the public identifier of a root key: the first 16 bytes of
// HMAC-SHA256(root key, "custos/v1/root-key-id").
Bytes RootKeyId(const SecretBytes& root_key);
// JoinReportData returns the 32-byte report_data a joining enclave's evidence must bind.
Bytes JoinReportData(const crypto::Point& joiner_key, ByteSpan message1, ByteSpan message2);

struct UnsealRequest {
  Bytes custody_fp;       // 32
  crypto::Point r;        // the envelope's KEM point
  Bytes envelope_digest;  // 32
  Bytes Encode() const;
  static StatusOr<UnsealRequest> Decode(ByteSpan b);
};

Bytes EncodePartialRelease(const threshold::PartialDecryption& p);
StatusOr<threshold::PartialDecryption> DecodePartialRelease(ByteSpan b);

struct UnsealProgress {
  bool unsealed = false;
  uint16_t provider = 0;  // verified provider partials so far
  uint16_t customer = 0;  // verified customer partials so far
  Bytes Encode() const;
  static StatusOr<UnsealProgress> Decode(ByteSpan b);
};

struct JoinRequest {
  Bytes evidence;
  Bytes collateral;  // DCAP collateral JSON for a quote; empty for sim evidence
  // approval: the measurement approval (custody/approval.h, JSON) of the joining core's own
  // measurement when it differs from the serving core's (a rolling upgrade); empty otherwise.
  // Encoded as a trailing var field only when present, so a request without one is
  // byte-identical to the format before approvals.
  Bytes approval;
  Bytes Encode() const;
  static StatusOr<JoinRequest> Decode(ByteSpan b);
};

// JoinGrant carries the root key: it is encoded into and decoded from SecretBytes only.
struct JoinGrant {
  SecretBytes root_key;  // 32
  Bytes envelope;
  Bytes origin_evidence;
  SecretBytes Encode() const;
  static StatusOr<JoinGrant> Decode(const SecretBytes& b);
};

// RecordType returns the type byte of a record plaintext, or kInvalidArgument if empty.
StatusOr<ReleaseRecord> RecordType(ByteSpan b);

}  // namespace custos::sigma
