// SIGMA-I wire format and key schedule between a keeper (initiator K) and an enclave
// (responder E): Krawczyk, "SIGMA: the SIGn-and-MAc approach", CRYPTO 2003, section 5.2 (the
// identity-protecting variant). DESIGN.md "Attested appliance"; docs/protocol.md, "SIGMA-I".
// This header is the byte-exact specification; sigma.h runs it, channel.h is the record layer.
//
// Notation: `||` concatenation; u8/u64 big-endian integers; var(b) = u32 big-endian length || b;
// H = SHA-256; points are SEC1 compressed (33 bytes); signatures are ECDSA P-256/SHA-256 in
// IEEE P1363 form r||s (64 bytes); suite = 1 (DESIGN "Cryptographic suite v1").
//
//   (1) K -> E  message1 = u8 suite(1) || u8 type(1) || g^x(33) || nonce_K(32)          [67 bytes]
//   (2) E -> K  message2 = u8 suite(1) || u8 type(2) || g^y(33) || var(sealed2)
//                 sealed2 = AES-256-GCM(k_hs, nonce = 0^11 || 0x02,
//                                       aad = u8 1 || u8 2 || g^y, plaintext = auth_E)
//                 auth_E  = var(evidence) || pk_E(33) || sig_E(64) || mac_E(32)
//   (3) K -> E  message3 = u8 suite(1) || u8 type(3) || var(sealed3)
//                 sealed3 = AES-256-GCM(k_hs, nonce = 0^11 || 0x03,
//                                       aad = u8 1 || u8 3, plaintext = auth_K)
//                 auth_K  = var(keeper_id) || pk_K(33) || sig_K(64) || mac_K(32)
//
// Transcript hashes (every item var-prefixed so no two transcripts share an encoding):
//   th_hs = H(var("custos/v1/sigma/th-handshake") || var(message1) || var(g^y))
//   th_E  = H(var("custos/v1/sigma/th-responder") || var(message1) || var(g^y) ||
//             var(evidence) || var(pk_E))
//   th_K  = H(var("custos/v1/sigma/th-initiator") || var(message1) || var(message2) ||
//             var(keeper_id) || var(pk_K))
//
// Key schedule (RFC 5869, HKDF-SHA256), Z = x-coordinate of g^xy (32 bytes):
//   PRK  = HKDF-Extract(salt = th_hs, ikm = Z)
//   Km   = HKDF-Expand(PRK, "custos/v1/sigma/km", 32)         MAC key (HMAC-SHA256)
//   k_hs = HKDF-Expand(PRK, "custos/v1/sigma/handshake", 32)  AEAD key for messages 2 and 3
//   k2e  = HKDF-Expand(PRK, "custos/v1/sigma/k2e", 32)        record key keeper -> enclave
//   e2k  = HKDF-Expand(PRK, "custos/v1/sigma/e2k", 32)        record key enclave -> keeper
// As in SIGMA, the session keys depend only on g^xy and the session's fresh values; the
// identities are bound by the signatures and MACs, which cover the whole transcript.
// k_hs encrypts exactly two messages, under the distinct nonces 0x..02 and 0x..03.
//
// Authentication:
//   sig_E = Sign(sk_E, "custos/v1/sigma/responder-signature" || th_E)
//   mac_E = HMAC-SHA256(Km, "custos/v1/sigma/responder-mac" || th_E)
//   sig_K = Sign(sk_K, "custos/v1/sigma/initiator-signature" || th_K)
//   mac_K = HMAC-SHA256(Km, "custos/v1/sigma/initiator-mac" || th_K)
// th_E contains E's identity (pk_E and its evidence) and th_K contains K's (keeper_id, pk_K), so
// each MAC is SIGMA's MAC_Km(identity), extended to the transcript. Distinct labels keep a
// responder's signature or MAC from being reflected as an initiator's.
//
// Evidence binding (DESIGN "Evidence"):
//   report_data = H("custos/v1/report" || g^y(33) || pk_E(33) || nonce_K(32) ||
//                   H(custody.json)(32))
// Every field after the label has a fixed length, so the concatenation is unambiguous.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/secret.h"
#include "crypto/hash.h"
#include "crypto/p256.h"

namespace custos::sigma {

// kSuiteV1 is the only suite: P-256, SHA-256, HKDF-SHA256, AES-256-GCM, ECDSA P1363.
inline constexpr uint8_t kSuiteV1 = 1;
// kNonceSize is the length of nonce_K.
inline constexpr size_t kNonceSize = 32;
// kMacSize is the length of an HMAC-SHA256 tag.
inline constexpr size_t kMacSize = 32;
// kDigestSize is the length of SHA-256(custody.json) and of report_data.
inline constexpr size_t kDigestSize = 32;
// kMaxEvidenceSize bounds the evidence carried in message 2 (a DCAP quote with its
// certification chain is a few KiB).
inline constexpr size_t kMaxEvidenceSize = 64 * 1024;
// kMaxKeeperIdSize bounds keeper_id in message 3 (ids are never empty).
inline constexpr size_t kMaxKeeperIdSize = 256;

// Domain-separation labels, byte-exact as in the comment above.
inline constexpr std::string_view kLabelThHandshake = "custos/v1/sigma/th-handshake";
inline constexpr std::string_view kLabelThResponder = "custos/v1/sigma/th-responder";
inline constexpr std::string_view kLabelThInitiator = "custos/v1/sigma/th-initiator";
inline constexpr std::string_view kLabelKm = "custos/v1/sigma/km";
inline constexpr std::string_view kLabelHandshake = "custos/v1/sigma/handshake";
inline constexpr std::string_view kLabelK2e = "custos/v1/sigma/k2e";
inline constexpr std::string_view kLabelE2k = "custos/v1/sigma/e2k";
inline constexpr std::string_view kLabelResponderSignature = "custos/v1/sigma/responder-signature";
inline constexpr std::string_view kLabelResponderMac = "custos/v1/sigma/responder-mac";
inline constexpr std::string_view kLabelInitiatorSignature = "custos/v1/sigma/initiator-signature";
inline constexpr std::string_view kLabelInitiatorMac = "custos/v1/sigma/initiator-mac";
inline constexpr std::string_view kLabelReport = "custos/v1/report";

// Message1 is K's opening message: its ephemeral DH share and a fresh nonce.
struct Message1 {
  crypto::Point initiator_share;  // g^x
  Bytes nonce;                    // nonce_K, kNonceSize bytes

  Bytes Encode() const;
  // Decode refuses a wrong suite or type, a non-canonical or invalid point, a short message and
  // trailing bytes (kInvalidArgument).
  static StatusOr<Message1> Decode(ByteSpan b);
};

// Message2 is E's reply: its DH share in clear, its identity and proofs sealed under k_hs.
struct Message2 {
  crypto::Point responder_share;  // g^y
  Bytes sealed;                   // sealed2 (ciphertext || tag)

  Bytes Encode() const;
  // Header returns u8 suite || u8 type || g^y, the AEAD associated data of sealed2.
  Bytes Header() const;
  static StatusOr<Message2> Decode(ByteSpan b);
};

// Message3 is K's final message: its identity and proofs sealed under k_hs.
struct Message3 {
  Bytes sealed;  // sealed3 (ciphertext || tag)

  Bytes Encode() const;
  // Header returns u8 suite || u8 type, the AEAD associated data of sealed3.
  static Bytes Header();
  static StatusOr<Message3> Decode(ByteSpan b);
};

// ResponderAuth is auth_E, the plaintext of sealed2.
struct ResponderAuth {
  Bytes evidence;             // opaque attestation evidence, <= kMaxEvidenceSize
  crypto::Point signing_key;  // pk_E
  Bytes signature;            // sig_E, 64 bytes
  Bytes mac;                  // mac_E, 32 bytes

  Bytes Encode() const;
  static StatusOr<ResponderAuth> Decode(ByteSpan b);
};

// InitiatorAuth is auth_K, the plaintext of sealed3.
struct InitiatorAuth {
  std::string keeper_id;      // 1..kMaxKeeperIdSize bytes
  crypto::Point signing_key;  // pk_K
  Bytes signature;            // sig_K, 64 bytes
  Bytes mac;                  // mac_K, 32 bytes

  Bytes Encode() const;
  static StatusOr<InitiatorAuth> Decode(ByteSpan b);
};

// SessionKeys holds every secret derived from g^xy; each is wiped on destruction.
struct SessionKeys {
  SecretBytes km;         // Km
  SecretBytes handshake;  // k_hs
  SecretBytes k2e;        // record key keeper -> enclave
  SecretBytes e2k;        // record key enclave -> keeper
};

// DeriveSessionKeys computes Z = x(own * peer) and runs the key schedule with salt th_hs. Fails
// (kIntegrity) if the shared point is the identity.
StatusOr<SessionKeys> DeriveSessionKeys(const crypto::Scalar& own, const crypto::Point& peer,
                                        const crypto::Digest& th_hs);

// HandshakeTranscript returns th_hs.
crypto::Digest HandshakeTranscript(ByteSpan message1, const crypto::Point& responder_share);
// ResponderTranscript returns th_E.
crypto::Digest ResponderTranscript(ByteSpan message1, const crypto::Point& responder_share,
                                   ByteSpan evidence, const crypto::Point& responder_key);
// InitiatorTranscript returns th_K.
crypto::Digest InitiatorTranscript(ByteSpan message1, ByteSpan message2, std::string_view keeper_id,
                                   const crypto::Point& initiator_key);

// SignedBytes returns `label || th`, the message an identity key signs.
Bytes SignedBytes(std::string_view label, const crypto::Digest& th);
// TranscriptMac returns HMAC-SHA256(km, label || th).
Bytes TranscriptMac(const SecretBytes& km, std::string_view label, const crypto::Digest& th);

// ReportData returns report_data for the given session values. custody_hash must be 32 bytes
// (InvalidArgument otherwise) and nonce kNonceSize bytes.
StatusOr<Bytes> ReportData(const crypto::Point& responder_share, const crypto::Point& responder_key,
                           ByteSpan nonce, ByteSpan custody_hash);

// HandshakeNonce returns the AEAD nonce of message `type` (2 or 3): 0^11 || type.
Bytes HandshakeNonce(uint8_t type);

}  // namespace custos::sigma
