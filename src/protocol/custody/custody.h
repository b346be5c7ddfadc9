// The custody descriptor (custody.json): who holds which part of the master key, and the public
// values everyone verifies against. It is the trust anchor of every co-custody operation; its
// fingerprint names it in requests, and every keeper it lists signs it (docs/protocol.md,
// "Custody descriptor").
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "crypto/ecdsa.h"
#include "crypto/p256.h"

namespace custos::custody {

enum class Domain : uint8_t { kProvider = 1, kCustomer = 2 };
const char* DomainName(Domain d);
StatusOr<Domain> ParseDomain(std::string_view s);

struct KeeperRecord {
  std::string id;
  Domain domain = Domain::kProvider;
  uint32_t index = 0;  // Shamir x-coordinate within the domain
  std::string url;     // where the coordinator and requesters reach it (not security-relevant)
  crypto::Point identity_key;      // ECDSA P-256 verifying key (signs broadcasts, descriptors)
  crypto::Point hpke_key;          // receives encrypted shares
  crypto::Point verification_key;  // X_i = x_i * G
  // possession_proof: Schnorr proof of knowledge of x_i (a DLEQ proof with G1 = G2 = G, context
  // PossessionContext). Because every listed key carries one, whoever controls a whole domain
  // still cannot pick a domain key that cancels the other domain's (rogue-key attack on
  // Y = Y_P + Y_C): doing so would require knowing the other domain's secret.
  Bytes possession_proof;
};

// PossessionContext = "custos/v1/possession" || var(id) || u8 domain || u32 index.
Bytes PossessionContext(const std::string& id, Domain domain, uint32_t index);
// ProvePossession returns the 64-byte proof that the holder knows `share` with X = share*G.
Bytes ProvePossession(const crypto::Scalar& share, const std::string& id, Domain domain,
                      uint32_t index);

struct DomainRecord {
  uint32_t threshold = 0;
  crypto::Point public_key;  // Y_P or Y_C
  std::vector<KeeperRecord> keepers;
};

struct ExcludedKeeper {
  std::string id;
  std::string reason;
};

struct CustodyDescriptor {
  uint32_t suite = 1;
  uint64_t epoch = 1;  // 1 after the DKG, +1 per reshare
  Bytes ceremony_id;   // the session id of the DKG or reshare that produced it
  DomainRecord provider, customer;
  crypto::Point public_key;  // Y = Y_P + Y_C
  Bytes previous;            // fingerprint of the descriptor this one replaces (empty after DKG)
  std::vector<ExcludedKeeper> excluded;
  std::map<std::string, Bytes> signatures;  // keeper id -> ECDSA P1363 over SigningBytes

  // SigningBytes is the canonical binary encoding of every field but the signatures.
  Bytes SigningBytes() const;
  // Fingerprint = SHA-256("custos/v1/custody" || SigningBytes()).
  Bytes Fingerprint() const;
  std::string FingerprintHex() const { return HexEncode(Fingerprint()); }

  nlohmann::json ToJson() const;
  std::string ToJsonString() const { return ToJson().dump(2) + "\n"; }
  static StatusOr<CustodyDescriptor> FromJson(const nlohmann::json& j);
  static StatusOr<CustodyDescriptor> Parse(std::string_view text);
  static StatusOr<CustodyDescriptor> Load(const std::string& path);

  // CheckStructure validates everything but signatures: suite, thresholds, unique ids and
  // indices, Y = Y_P + Y_C, each keeper's proof of possession, and that each domain's
  // verification keys lie on one polynomial of the stated degree whose constant term is the
  // domain key.
  Status CheckStructure() const;
  // Verify = CheckStructure + a valid signature from every listed keeper.
  Status Verify() const;
  // SignatureMessage is what keepers sign: "custos/v1/custody-sign" || SigningBytes.
  Bytes SignatureMessage() const;

  const DomainRecord& domain(Domain d) const { return d == Domain::kProvider ? provider : customer; }
  DomainRecord& domain(Domain d) { return d == Domain::kProvider ? provider : customer; }
  const KeeperRecord* FindKeeper(std::string_view id) const;
  // CountApprovals returns how many keepers of `approvers` signed this descriptor (signatures
  // from keepers not listed here, e.g. removed dealers of a reshare, are allowed in the map).
  size_t CountApprovals(const DomainRecord& approvers) const;
  std::vector<const KeeperRecord*> AllKeepers() const;
};

}  // namespace custos::custody
