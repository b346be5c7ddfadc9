// A keeper's directory: public metadata, secrets sealed at rest under a key derived from the
// operator's passphrase (never stored beside them), the client allowlist, the audit log and,
// on provider keepers, escrowed recovery blobs (docs/operations.md, "Keeper directory").
//
//   D/keeper.json     suite, id, domain, identity and HPKE public keys, Argon2id salt+params
//   D/state.sealed    nonce(12) || AES-256-GCM(at-rest key, KeeperSecrets), aad = state AAD
//   D/allowlist.json  allowed client keys + HMAC under a key derived from the at-rest key
//   D/audit.log       hash-chained, signed (keeper/audit_log.h)
//   D/escrow/FP/ID.blob  opaque recovery blobs held for customer keepers (provider only)
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/secret.h"
#include "crypto/argon2id.h"
#include "crypto/ecdsa.h"
#include "crypto/hpke.h"
#include "protocol/custody/custody.h"
#include "keeper/daemon/audit_log.h"

namespace custos::keeper {

// ShareSlot is one share of a domain secret together with the custody it belongs to.
struct ShareSlot {
  std::string custody_json;  // the descriptor (signed when active, unsigned when pending)
  uint32_t index = 0;
  crypto::Scalar share;
};

// KeeperSecrets is everything sealed in state.sealed.
struct KeeperSecrets {
  crypto::SigningKey identity;
  crypto::hpke::PrivateKey hpke;
  std::optional<ShareSlot> active;   // the share in service
  std::optional<ShareSlot> pending;  // endorsed, waiting for the fully signed descriptor

  // Encode/Decode: u8 version=1 || identity sk(32) || hpke sk(32) || slot(active) || slot(pending)
  // with slot = u8 present || [var custody json || u32 index || share(32)].
  SecretBytes Encode() const;
  static StatusOr<KeeperSecrets> Decode(const SecretBytes& b);
};

// ClientRole: what an allowlisted client key may ask for. "decrypt" clients request partial
// decryptions; "admin" clients may also authorise a reshare of this keeper's domain (which hands
// the domain secret to new keepers, so it is kept apart from everyday decryption rights).
enum class ClientRole { kDecrypt, kAdmin };
const char* ClientRoleName(ClientRole r);
StatusOr<ClientRole> ParseClientRole(std::string_view s);

struct AllowedClient {
  std::string name;
  crypto::Point key;
  ClientRole role = ClientRole::kDecrypt;
};

class KeeperStore {
 public:
  // Init creates a new keeper directory (refuses a directory that already holds a keeper).
  static StatusOr<std::unique_ptr<KeeperStore>> Init(const std::string& dir, const std::string& id,
                                                     custody::Domain domain,
                                                     const SecretBytes& passphrase,
                                                     const crypto::Argon2Params& params);
  // Open unseals an existing keeper directory; a wrong passphrase is kPermissionDenied.
  static StatusOr<std::unique_ptr<KeeperStore>> Open(const std::string& dir,
                                                     const SecretBytes& passphrase);
  // CreateFromSecrets makes a new directory holding `secrets` (used by recovery).
  static StatusOr<std::unique_ptr<KeeperStore>> CreateFromSecrets(
      const std::string& dir, const std::string& id, custody::Domain domain,
      KeeperSecrets secrets, const SecretBytes& passphrase, const crypto::Argon2Params& params);

  const std::string& dir() const { return dir_; }
  const std::string& id() const { return id_; }
  custody::Domain domain() const { return domain_; }

  // Secrets are guarded by mu(); callers lock it around read-modify-SaveSecrets sequences.
  std::mutex& mu() { return mu_; }
  KeeperSecrets& secrets() { return *secrets_; }
  // SaveSecrets seals and atomically replaces state.sealed (durable before return).
  Status SaveSecrets();

  // Allowlist: LoadAllowlist verifies the MAC; AddClient appends, SetClientRole changes the role
  // of a listed key, RemoveClient drops it; each re-MACs the file and is audited
  // ("client.allow", "client.role", "client.remove"). The daemon reads the file on every
  // request, so a change is in force at once. kNotFound for a key that is not listed.
  StatusOr<std::vector<AllowedClient>> LoadAllowlist() const;
  // ReadAllowlistText returns the allowlist file as stored; ParseAllowlist checks the MAC of
  // such a text and parses it (LoadAllowlist is the two together).
  StatusOr<std::string> ReadAllowlistText() const;
  StatusOr<std::vector<AllowedClient>> ParseAllowlist(std::string_view text) const;
  Status AddClient(const std::string& name, const crypto::Point& key,
                   ClientRole role = ClientRole::kDecrypt);
  Status SetClientRole(const crypto::Point& key, ClientRole role);
  Status RemoveClient(const crypto::Point& key);

  AuditLog& audit() { return *audit_; }

  // Appliance envelope points: the R of every envelope this keeper released a partial for to
  // an attested enclave. Client partial requests for these points are refused, so the root key
  // goes only to enclaves (docs/threat-model.md "Appliance"). The file is public data
  // (appliance_points, one hex point per line), written with WriteFileAtomic.
  Status AddAppliancePoint(const crypto::Point& r);
  StatusOr<bool> IsAppliancePoint(const crypto::Point& r) const;
  // AppliancePoints lists them all (a reshare hands them to the new keepers).
  StatusOr<std::vector<crypto::Point>> AppliancePoints() const;
  std::string EscrowPath(const std::string& custody_fp_hex, const std::string& keeper_id) const;

 private:
  KeeperStore() = default;
  Status WriteMetadata(const crypto::Argon2Params& params, ByteSpan salt) const;
  Status WriteAllowlist(const std::vector<AllowedClient>& clients) const;
  Bytes StateAad() const;

  std::string dir_, id_;
  custody::Domain domain_ = custody::Domain::kProvider;
  SecretBytes at_rest_key_;  // Argon2id(passphrase, salt); never written anywhere
  std::mutex mu_;
  std::unique_ptr<KeeperSecrets> secrets_;
  std::unique_ptr<AuditLog> audit_;
};

// ResolvePassphrase returns the keeper's at-rest passphrase from `file` if given, else from
// CUSTOS_KEEPER_PASSPHRASE; fails with a message naming both sources.
StatusOr<SecretBytes> ResolvePassphrase(const std::string& file);

}  // namespace custos::keeper
