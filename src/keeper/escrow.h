// Recovery fragments (docs/protocol.md, "Escrow blob"). A customer keeper seals its whole
// secret state under Argon2id(passphrase) and deposits the opaque blob with a provider keeper;
// recovery opens it at a new customer keeper. The provider never sees passphrase or share.
//
//   blob = "CUSTOSEB" || u8 version(1) || var(custody fp) || var(keeper id) || u8 domain ||
//          u32 t_cost || u32 m_cost_kib || u32 parallelism || salt(16) || nonce(12) || var(ct)
//   ct   = AES-256-GCM(Argon2id(passphrase, salt), KeeperSecrets::Encode(), aad = all before ct)
#pragma once

#include "crypto/argon2id.h"
#include "custody/custody.h"
#include "keeper/keeper_store.h"

namespace custos::keeper {

struct EscrowBlob {
  Bytes custody_fp;
  std::string keeper_id;
  custody::Domain domain = custody::Domain::kCustomer;
  crypto::Argon2Params params;
  Bytes salt, nonce, ciphertext;

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

}  // namespace custos::keeper
