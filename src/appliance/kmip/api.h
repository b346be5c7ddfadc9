// The KMIP server's operations (docs/kmip.md): one KMIP request message in, one response out,
// over custos keys. Every object is a custos key, reached through KmsService::ExecuteKmip or
// Execute, so the KMS API's key policies, states, deletion rules and audit chain apply to it;
// KMIP-only attributes are the key's reserved "kmip:" tags. The principal is the client
// certificate's common name N, as arn:aws:iam::ACCOUNT:user/kmip/N.
//
// Operations: Discover Versions, Query, Create, Get (refused for symmetric keys: no export),
// Get Attributes, Get Attribute List, Add/Modify/Delete Attribute (1.x), Set/Modify/Delete
// Attribute (2.0), Locate, Activate, Revoke, Destroy, Encrypt, Decrypt (AES-GCM, AES-CBC),
// MAC, MAC Verify (HMAC-SHA256), Create Key Pair (ECDSA P-256: the private key is the custos key,
// the public key the object "<key id>/public"), Sign, Signature Verify (ECDSA with SHA-256),
// Get of a public key (X.509). Every batch item is audited in the appliance's chain.
//
// Thread safety: Handle runs concurrently on the KMIP server's I/O threads.
#pragma once

#include <map>
#include <memory>
#include <shared_mutex>
#include <string>

#include "appliance/kms/api.h"
#include "appliance/kms/service.h"
#include "common/bytes.h"
#include "protocol/kmip/message.h"
#include "protocol/kmip/ttlv.h"

namespace custos::kmip {

struct KmipApiOptions {
  std::string account_id = "000000000000";
  std::string vendor = "custos";
  DecodeLimits limits;
};

// KmipPeer is who sent a request: the client certificate's common name and its address.
struct KmipPeer {
  std::string name;
  std::string source;
};

class KmipApi {
 public:
  // `service` must outlive the KmipApi; `audit` may be empty only in unit tests.
  KmipApi(kms::KmsService* service, kms::AuditSink audit, KmipApiOptions options);

  // Handle answers one request (its whole TTLV encoding). A message that does not decode or
  // whose envelope is wrong gets a response with one failed batch item (Invalid Message),
  // naming the check.
  Bytes Handle(ByteSpan request, const KmipPeer& peer);

  // Principal is the ARN a client certificate's name acts as.
  std::string Principal(const std::string& name) const;

 private:
  struct Context;
  ResponseBatchItem Run(const RequestBatchItem& item, Context& ctx);
  StatusOr<Item> Dispatch(const RequestBatchItem& item, Context& ctx);

  StatusOr<Item> DiscoverVersions(const Item& payload, Context& ctx);
  StatusOr<Item> Query(const Item& payload, Context& ctx);
  StatusOr<Item> Create(const Item& payload, Context& ctx);
  StatusOr<Item> Get(const Item& payload, Context& ctx);
  StatusOr<Item> GetAttributes(const Item& payload, Context& ctx);
  StatusOr<Item> GetAttributeList(const Item& payload, Context& ctx);
  StatusOr<Item> ChangeAttribute(uint32_t operation, const Item& payload, Context& ctx);
  StatusOr<Item> Locate(const Item& payload, Context& ctx);
  StatusOr<Item> Lifecycle(uint32_t operation, const Item& payload, Context& ctx);
  StatusOr<Item> Crypt(bool encrypt, const Item& payload, Context& ctx);
  StatusOr<Item> Mac(bool verify, const Item& payload, Context& ctx);
  StatusOr<Item> CreateKeyPair(const Item& payload, Context& ctx);
  StatusOr<Item> Register(const Item& payload, Context& ctx);
  StatusOr<Item> Sign(bool verify, const Item& payload, Context& ctx);

  StatusOr<std::string> Uid(const Item& payload, Context& ctx) const;
  // Outcome runs one KMS service operation for the request's caller (a "<id>/public" KeyId is
  // the key itself); Service is Outcome with a refusal turned into its KMIP reason; Validity
  // answers a verification: Valid, Invalid on `invalid_error`, any other refusal as such.
  kms::KmsOutcome Outcome(std::string_view operation, const nlohmann::json& request, Context& ctx, bool kmip);
  StatusOr<nlohmann::json> Service(std::string_view operation, const nlohmann::json& request, Context& ctx,
                                   bool kmip = true);
  StatusOr<Item> Validity(std::string_view operation, const nlohmann::json& request, std::string_view invalid_error,
                          const std::string& uid, Context& ctx);
  StatusOr<std::vector<Attribute>> ObjectAttributes(const std::string& uid, Context& ctx);
  StatusOr<uint32_t> KeyBits(const std::string& uid, Context& ctx);

  kms::KmsService* service_;
  kms::AuditSink audit_;
  KmipApiOptions options_;
  // A key's KMIP Cryptographic Length never changes: cached after the first look.
  std::shared_mutex bits_mu_;
  std::map<std::string, uint32_t> bits_;
};

}  // namespace custos::kmip
