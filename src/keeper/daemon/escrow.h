// Recovery fragments (docs/protocol.md, "Escrow blob"). A customer keeper seals its whole
// secret state under a recovery secret (a long passphrase, or a random recovery key) stretched
// by Argon2id, and deposits the opaque blob with a provider keeper; recovery opens it at a new
// customer keeper. The provider never sees the recovery secret or the share, and hands the blob
// only to a caller that proves knowledge of the recovery secret (a signature under the blob's
// auth key), a few failed attempts per hour at most.
//
//   blob = "CUSTOSEB" || u8 version(2) || var(custody fp) || var(keeper id) || u8 domain ||
//          u32 t_cost || u32 m_cost_kib || u32 parallelism || salt(16) || nonce(12) ||
//          auth key (33) || var(ct)
//   K    = Argon2id(recovery secret, salt, params, 32)
//   ct   = AES-256-GCM(HKDF(K, "custos/v1/escrow/seal", 32), KeeperSecrets::Encode(),
//                      aad = all before ct)
//   auth key = a*G, a = HKDF(K, "custos/v1/escrow/auth", 48) mod n
// Version 1 blobs (no auth key; K itself was the AES key) still open, but a provider no longer
// accepts or serves them: re-export.
#pragma once

#include <optional>
#include <string_view>

#include "crypto/argon2id.h"
#include "crypto/ecdsa.h"
#include "protocol/custody/custody.h"
#include "keeper/daemon/keeper_store.h"

namespace custos::keeper {

// kEscrowMinParams is the floor for the Argon2id cost of a new blob (RFC 9106's second
// recommended setting): `escrow export` refuses less unless explicitly told it is a test.
inline constexpr crypto::Argon2Params kEscrowMinParams{3, 1u << 16, 4};
// kMaxEscrowFailures failed fetches of one blob within kEscrowFailureWindowSeconds lock it
// until the window ends.
inline constexpr int kMaxEscrowFailures = 5;
inline constexpr uint64_t kEscrowFailureWindowSeconds = 3600;

struct EscrowBlob {
  uint8_t version = 2;
  Bytes custody_fp;
  std::string keeper_id;
  custody::Domain domain = custody::Domain::kCustomer;
  crypto::Argon2Params params;
  Bytes salt, nonce;
  std::optional<crypto::Point> auth_key;  // version 2
  Bytes ciphertext;

  Bytes Header() const;
  Bytes Encode() const;
  static StatusOr<EscrowBlob> Decode(ByteSpan b);
};

// SealEscrow seals `secrets` (its active slot must be set) under the recovery passphrase.
StatusOr<EscrowBlob> SealEscrow(const KeeperSecrets& secrets, const std::string& keeper_id,
                                custody::Domain domain, ByteSpan custody_fp,
                                const SecretBytes& passphrase, const crypto::Argon2Params& params);
// OpenEscrow returns the sealed secrets; a wrong passphrase or edited blob is kPermissionDenied.
StatusOr<KeeperSecrets> OpenEscrow(const EscrowBlob& blob, const SecretBytes& passphrase);
// EscrowUploadMessage is what the exporting keeper signs: "custos/v1/escrow" || blob.
Bytes EscrowUploadMessage(ByteSpan blob);

// EscrowAuthKey derives the signing key that proves knowledge of the recovery secret for a
// blob with this salt and these parameters (one Argon2id evaluation).
StatusOr<crypto::SigningKey> EscrowAuthKey(const SecretBytes& secret, ByteSpan salt,
                                           const crypto::Argon2Params& params);
// EscrowFetchMessage is what a recovering keeper signs with the auth key to fetch a blob:
//   "custos/v1/escrow-fetch" || var(custody fp) || var(keeper id) || var(provider keeper id) ||
//   u64 timestamp || nonce (16)
// The provider's id binds it to one provider keeper; timestamp and nonce to one request.
Bytes EscrowFetchMessage(ByteSpan custody_fp, std::string_view keeper_id, std::string_view provider_id,
                         uint64_t timestamp, ByteSpan nonce);

// CheckRecoverySecret refuses a recovery passphrase an offline or online guesser could find: at
// least 20 bytes with at least 8 distinct ones (six random words pass; "aaaa…" does not).
Status CheckRecoverySecret(const SecretBytes& secret);
// NewRecoveryKey returns a random recovery key: "custos-rk1-" followed by 256 random bits as 8
// dash-separated groups of 8 hex digits. Used as the recovery secret, it cannot be guessed even
// by the provider holding the blob.
SecretBytes NewRecoveryKey();

}  // namespace custos::keeper
