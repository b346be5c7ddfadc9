// KMS operations. Inside this file a failed check throws ApiError (an AWS exception name and a
// message), caught in Execute: the ~30 operations stay straight-line and every refusal names
// the check. Nothing is thrown across the module boundary.
#include "appliance/kms/service.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <regex>

#include "crypto/random.h"
#include "appliance/ecall/kms_calls.h"
#include "appliance/kms/policy.h"

namespace custos::kms {

using json = nlohmann::json;

namespace {

struct ApiError {
  std::string type;
  std::string message;
  int http_status = 400;
};

[[noreturn]] void Fail(std::string type, std::string message, int http = 400) {
  throw ApiError{std::move(type), std::move(message), http};
}

[[noreturn]] void Validation(std::string message) { Fail("ValidationException", std::move(message)); }

// Every ecall::Reason the core gives, with the AWS error it becomes (a test checks that each
// reason has a row).
constexpr CoreError kCoreErrors[] = {
    {ecall::Reason::kSealed, "DependencyTimeoutException",
     "the appliance is sealed: its trusted core has no root key until a quorum of keepers releases it", 503},
    {ecall::Reason::kOtherKey, "IncorrectKeyException", "the ciphertext was encrypted under another key", 400},
    {ecall::Reason::kMaterialDoesNotUnwrap, "KMSInternalException",
     "stored key material does not unwrap under this appliance's root key", 500},
    {ecall::Reason::kCiphertextInvalid, "InvalidCiphertextException",
     "the ciphertext is invalid, was tampered with, or its encryption context does not match", 400},
    {ecall::Reason::kSignatureInvalid, "KMSInvalidSignatureException", "the signature does not verify", 400},
    {ecall::Reason::kMacInvalid, "KMSInvalidMacException", "the MAC does not verify", 400},
    {ecall::Reason::kKeyUsage, "InvalidKeyUsageException", "the key's usage does not allow this operation", 400},
};

constexpr int64_t kDay = 86400;

std::string NewKeyId() {
  Bytes b = crypto::RandomBytes(16);
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // UUID version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  std::string h = HexEncode(b);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" +
         h.substr(20);
}

bool IsKeyId(std::string_view s) {
  static const std::regex re("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$");
  return std::regex_match(s.begin(), s.end(), re);
}

// ---- request field readers (SerializationException for wrong JSON types, as AWS answers) ----

const json* Field(const json& req, const char* name) {
  auto it = req.find(name);
  if (it == req.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<std::string> OptString(const json& req, const char* name) {
  const json* f = Field(req, name);
  if (f == nullptr) return std::nullopt;
  if (!f->is_string()) Fail("SerializationException", std::string(name) + " must be a string");
  return f->get<std::string>();
}

std::string ReqString(const json& req, const char* name) {
  auto v = OptString(req, name);
  if (!v) Validation(std::string(name) + " is required");
  if (v->empty()) Validation(std::string(name) + " must not be empty");
  return *v;
}

std::optional<int64_t> OptInt(const json& req, const char* name) {
  const json* f = Field(req, name);
  if (f == nullptr) return std::nullopt;
  if (!f->is_number_integer()) Fail("SerializationException", std::string(name) + " must be an integer");
  return f->get<int64_t>();
}

std::optional<bool> OptBool(const json& req, const char* name) {
  const json* f = Field(req, name);
  if (f == nullptr) return std::nullopt;
  if (!f->is_boolean()) Fail("SerializationException", std::string(name) + " must be a boolean");
  return f->get<bool>();
}

Bytes ReqBlob(const json& req, const char* name, size_t max_len) {
  auto v = OptString(req, name);
  if (!v) Validation(std::string(name) + " is required");
  auto b = Base64Decode(*v);
  if (!b.ok()) Fail("SerializationException", std::string(name) + " is not valid base64");
  if (b->empty()) Validation(std::string(name) + " must not be empty");
  if (b->size() > max_len)
    Validation(std::string(name) + " is longer than " + std::to_string(max_len) + " bytes");
  return std::move(b).value();
}

ecall::EncryptionContext ReqContext(const json& req, const char* name) {
  ecall::EncryptionContext ctx;
  const json* f = Field(req, name);
  if (f == nullptr) return ctx;
  if (!f->is_object()) Fail("SerializationException", std::string(name) + " must be a map of strings");
  if (f->size() > 64) Validation(std::string(name) + " has more than 64 entries");
  for (auto& [k, v] : f->items()) {
    if (!v.is_string()) Fail("SerializationException", std::string(name) + " values must be strings");
    if (k.empty()) Validation(std::string(name) + " keys must not be empty");
    if (k.size() > 4096 || v.get_ref<const std::string&>().size() > 4096)
      Validation(std::string(name) + " entry is too long");
    ctx[k] = v.get<std::string>();
  }
  return ctx;
}

std::vector<store::Tag> ReqTags(const json& req) {
  std::vector<store::Tag> tags;
  const json* f = Field(req, "Tags");
  if (f == nullptr) return tags;
  if (!f->is_array()) Fail("SerializationException", "Tags must be a list");
  if (f->size() > 50) Validation("Tags: at most 50 tags");
  for (const json& t : *f) {
    if (!t.is_object()) Fail("SerializationException", "Tags entries must be objects");
    store::Tag tag{ReqString(t, "TagKey"), OptString(t, "TagValue").value_or("")};
    if (tag.key.size() > 128 || tag.value.size() > 256) Validation("Tags: TagKey or TagValue too long");
    tags.push_back(std::move(tag));
  }
  return tags;
}

void CheckLimit(const json& req, int64_t* limit) {
  auto l = OptInt(req, "Limit");
  if (l) {
    if (*l < 1 || *l > 1000) Validation("Limit must be between 1 and 1000");
    *limit = *l;
  }
}

// Page applies Limit/Marker to a sorted list; the marker is the index to resume at.
template <typename T>
std::pair<std::vector<T>, std::optional<std::string>> Page(const std::vector<T>& all, const json& req,
                                                           int64_t default_limit) {
  int64_t limit = default_limit;
  CheckLimit(req, &limit);
  size_t start = 0;
  if (auto m = OptString(req, "Marker")) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(m->c_str(), &end, 10);
    if (m->empty() || *end != '\0' || v > all.size()) Validation("Marker is not a marker this server issued");
    start = static_cast<size_t>(v);
  }
  size_t stop = std::min(all.size(), start + static_cast<size_t>(limit));
  std::vector<T> page(all.begin() + static_cast<std::ptrdiff_t>(start),
                      all.begin() + static_cast<std::ptrdiff_t>(stop));
  std::optional<std::string> next;
  if (stop < all.size()) next = std::to_string(stop);
  return {std::move(page), next};
}

void SetPage(json& out, const std::optional<std::string>& next) {
  out["Truncated"] = next.has_value();
  if (next) out["NextMarker"] = *next;
}

std::string UsageFor(const std::string& spec) {
  if (spec == ecall::kSpecSymmetric) return "ENCRYPT_DECRYPT";
  if (spec == ecall::kSpecHmac256) return "GENERATE_VERIFY_MAC";
  return "SIGN_VERIFY";
}

void CheckAliasName(const std::string& name) {
  static const std::regex re("^alias/[a-zA-Z0-9:/_-]+$");
  if (name.size() > 256 || !std::regex_match(name, re))
    Fail("ValidationException", "AliasName must match alias/[a-zA-Z0-9:/_-]+ and be at most 256 characters");
  if (name.rfind("alias/aws/", 0) == 0)
    Fail("NotAuthorizedException", "alias/aws/ names are reserved for AWS managed keys");
}

}  // namespace

// ---- the cache ----

struct CachedKey {
  store::KeyRecord record;
  std::shared_ptr<const KeyPolicy> policy;
  std::map<uint32_t, store::KeyVersion> versions;
};

struct KmsService::Impl {
  store::Store* store;
  CoreCall core;
  ServiceOptions opt;
  std::shared_mutex mu;
  std::map<std::string, CachedKey> keys;              // key id -> key
  std::map<std::string, store::AliasRecord> aliases;  // alias name -> alias

  int64_t Now() const { return opt.now ? opt.now() : static_cast<int64_t>(std::time(nullptr)); }
  std::string KeyArn(const std::string& id) const {
    return "arn:aws:kms:" + opt.region + ":" + opt.account_id + ":key/" + id;
  }
  std::string AliasArn(const std::string& name) const {
    return "arn:aws:kms:" + opt.region + ":" + opt.account_id + ":" + name;
  }

  // ---- core calls: map the core's errors to AWS errors, by reason (CoreErrorFor) ----
  std::vector<Bytes> Core(ecall::Call call, std::vector<Bytes> args) {
    auto r = core(call, std::move(args));
    if (r.ok()) return std::move(r).value();
    const Status& s = r.status();
    if (const CoreError* e = CoreErrorFor(static_cast<ecall::Reason>(s.reason())))
      Fail(e->type, e->message, e->http);
    if (s.code() == ErrorCode::kInvalidArgument) Validation(s.message());
    if (s.code() == ErrorCode::kUnavailable)
      Fail("DependencyTimeoutException", "the trusted core is restarting; the appliance is sealed until keepers release again", 503);
    Fail("KMSInternalException", "the trusted core failed the request", 500);
  }

  // ---- key resolution ----

  // ResolveId maps a KeyId parameter (id, key ARN, alias name, alias ARN) to a key id.
  std::string ResolveId(const std::string& ref, bool allow_alias = true) {
    std::string id = ref;
    std::string key_arn_prefix = "arn:aws:kms:" + opt.region + ":" + opt.account_id + ":";
    if (ref.rfind("arn:", 0) == 0) {
      if (ref.rfind(key_arn_prefix, 0) != 0)
        Fail("NotFoundException", "the ARN names another region or account than this KMS");
      id = ref.substr(key_arn_prefix.size());
      if (id.rfind("key/", 0) == 0) id = id.substr(4);
    }
    if (id.rfind("alias/", 0) == 0) {
      if (!allow_alias) Validation("an alias is not allowed here; name the key by id or ARN");
      auto it = aliases.find(id);
      if (it == aliases.end()) Fail("NotFoundException", "alias " + id + " is not found");
      return it->second.key_id;
    }
    if (!IsKeyId(id)) Fail("NotFoundException", "invalid keyId " + ref.substr(0, 128));
    return id;
  }

  CachedKey& Find(const std::string& ref, bool allow_alias = true) {
    std::string id = ResolveId(ref, allow_alias);
    auto it = keys.find(id);
    if (it == keys.end()) Fail("NotFoundException", "Key '" + KeyArn(id) + "' does not exist");
    return it->second;
  }

  void Authorize(const Caller& caller, const CachedKey& k, std::string_view op,
                 const ecall::EncryptionContext& ctx = {}) {
    PolicyRequest pr;
    pr.principal_arn = caller.principal_arn;
    pr.account_id = caller.account_id;
    pr.action = "kms:" + std::string(op);
    pr.resource_arn = k.record.arn;
    pr.encryption_context = ctx;
    pr.key_spec = k.record.key_spec;
    pr.key_usage = k.record.key_usage;
    PolicyResult r = k.policy->Evaluate(pr);
    if (r.decision != PolicyDecision::kAllow)
      Fail("AccessDeniedException", "User: " + caller.principal_arn + " is not authorized to perform: kms:" +
                                        std::string(op) + " on resource: " + k.record.arn + " (" + r.reason + ")");
  }

  static void RequireEnabled(const CachedKey& k) {
    if (k.record.key_state == "Disabled") Fail("DisabledException", k.record.arn + " is disabled");
    if (k.record.key_state != "Enabled")
      Fail("KMSInvalidStateException", k.record.arn + " is pending deletion");
  }

  static void RequireUsage(const CachedKey& k, const std::string& usage, std::string_view op) {
    if (k.record.key_usage != usage)
      Fail("InvalidKeyUsageException", k.record.arn + " has KeyUsage " + k.record.key_usage + ", which does not allow " +
                                           std::string(op));
  }

  static void RequireNotPendingDeletion(const CachedKey& k) {
    if (k.record.key_state == "PendingDeletion")
      Fail("KMSInvalidStateException", k.record.arn + " is pending deletion");
  }

  Bytes Ref(const CachedKey& k, uint32_t version) {
    auto it = k.versions.find(version);
    if (it == k.versions.end()) Fail("KMSInternalException", "key version is missing from the store", 500);
    ecall::KeyRef ref{k.record.key_id, version, k.record.key_spec, it->second.wrapped_material};
    return ref.Encode();
  }

  json Metadata(const CachedKey& k) const {
    const store::KeyRecord& r = k.record;
    json m = {{"AWSAccountId", opt.account_id},
              {"KeyId", r.key_id},
              {"Arn", r.arn},
              {"CreationDate", r.creation_date},
              {"Enabled", r.key_state == "Enabled"},
              {"Description", r.description},
              {"KeyUsage", r.key_usage},
              {"KeyState", r.key_state},
              {"Origin", "AWS_KMS"},
              {"KeyManager", "CUSTOMER"},
              {"CustomerMasterKeySpec", r.key_spec},
              {"KeySpec", r.key_spec},
              {"MultiRegion", false}};
    if (r.key_spec == ecall::kSpecSymmetric) m["EncryptionAlgorithms"] = {"SYMMETRIC_DEFAULT"};
    if (r.key_spec == ecall::kSpecEccP256) m["SigningAlgorithms"] = {"ECDSA_SHA_256"};
    if (r.key_spec == ecall::kSpecHmac256) m["MacAlgorithms"] = {"HMAC_SHA_256"};
    if (r.deletion_date) {
      m["DeletionDate"] = *r.deletion_date;
      m["PendingDeletionWindowInDays"] = r.pending_window_days;
    }
    return m;
  }

  void StoreOrFail(const Status& s) {
    if (!s.ok()) Fail("KMSInternalException", "the key store refused the change", 500);
  }

  // UpdateRecord writes `r` through to the store, then the cache.
  void UpdateRecord(CachedKey& k, store::KeyRecord r) {
    StoreOrFail(store->UpdateKey(r));
    k.record = std::move(r);
  }

  // ---- operations; `lock` is held shared or exclusive by Execute as the table says ----

  json CreateKey(const json& req, const Caller& caller, std::string* key_id) {
    std::string spec = OptString(req, "KeySpec").value_or(OptString(req, "CustomerMasterKeySpec").value_or("SYMMETRIC_DEFAULT"));
    if (spec != ecall::kSpecSymmetric && spec != ecall::kSpecHmac256 && spec != ecall::kSpecEccP256)
      Validation("KeySpec " + spec.substr(0, 64) + " is not supported (SYMMETRIC_DEFAULT, HMAC_256, ECC_NIST_P256)");
    std::string usage = OptString(req, "KeyUsage").value_or(UsageFor(spec));
    if (usage != UsageFor(spec))
      Validation("KeyUsage " + usage.substr(0, 64) + " is not valid for KeySpec " + spec);
    if (auto origin = OptString(req, "Origin"); origin && *origin != "AWS_KMS")
      Fail("UnsupportedOperationException", "only Origin AWS_KMS is supported");
    if (OptBool(req, "MultiRegion").value_or(false))
      Fail("UnsupportedOperationException", "multi-Region keys are not supported");
    std::string description = OptString(req, "Description").value_or("");
    if (description.size() > 8192) Validation("Description is longer than 8192 characters");
    std::vector<store::Tag> tags = ReqTags(req);
    std::string policy_doc = OptString(req, "Policy").value_or(DefaultKeyPolicy(opt.account_id));
    auto policy = KeyPolicy::Parse(policy_doc);
    if (!policy.ok()) Fail("MalformedPolicyDocumentException", policy.status().message());

    store::KeyRecord r;
    r.key_id = NewKeyId();
    r.arn = KeyArn(r.key_id);
    r.description = description;
    r.key_spec = spec;
    r.key_usage = usage;
    r.key_state = "Enabled";
    r.creation_date = Now();
    r.policy = policy_doc;
    r.current_version = 1;
    *key_id = r.key_id;
    CachedKey k{r, std::make_shared<const KeyPolicy>(std::move(policy).value()), {}};
    if (!OptBool(req, "BypassPolicyLockoutSafetyCheck").value_or(false)) LockoutCheck(k, caller);
    auto made = Core(ecall::Call::kKmsCreateKey, {ToBytes(r.key_id), ecall::U32Arg(1), ToBytes(spec)});
    store::KeyVersion v{r.key_id, 1, made[0], made[1], r.creation_date, ""};
    StoreOrFail(store->CreateKey(r, v));
    if (!tags.empty()) StoreOrFail(store->TagResource(r.key_id, tags));
    k.versions[1] = v;
    json out = {{"KeyMetadata", Metadata(k)}};
    keys.emplace(r.key_id, std::move(k));
    return out;
  }

  // LockoutCheck refuses a policy that would stop the caller from changing it again (AWS's
  // "policy lockout safety check").
  void LockoutCheck(const CachedKey& k, const Caller& caller) {
    PolicyRequest pr{caller.principal_arn, caller.account_id, "kms:PutKeyPolicy", k.record.arn, {},
                     k.record.key_spec, k.record.key_usage};
    if (k.policy->Evaluate(pr).decision != PolicyDecision::kAllow)
      Fail("MalformedPolicyDocumentException",
           "the new key policy will not allow you to update the key policy in the future "
           "(set BypassPolicyLockoutSafetyCheck to override)");
  }

  json Encrypt(const json& req, const Caller& caller, std::string* key_id) {
    CachedKey& k = Find(ReqString(req, "KeyId"));
    *key_id = k.record.key_id;
    auto ctx = ReqContext(req, "EncryptionContext");
    Authorize(caller, k, "Encrypt", ctx);
    RequireEnabled(k);
    RequireUsage(k, "ENCRYPT_DECRYPT", "Encrypt");
    CheckAlgorithm(req, "EncryptionAlgorithm");
    Bytes pt = ReqBlob(req, "Plaintext", ecall::kMaxKmsPlaintext);
    auto r = Core(ecall::Call::kKmsEncrypt, {Ref(k, k.record.current_version), pt, ecall::EncodeEncryptionContext(ctx)});
    WipeBytes(pt);
    return {{"CiphertextBlob", Base64Encode(r[0])}, {"KeyId", k.record.arn}, {"EncryptionAlgorithm", "SYMMETRIC_DEFAULT"}};
  }

  static void CheckAlgorithm(const json& req, const char* name) {
    auto a = OptString(req, name);
    if (a && *a != "SYMMETRIC_DEFAULT")
      Fail("InvalidKeyUsageException", std::string(name) + " " + a->substr(0, 64) + " is not supported by this key");
  }

  // KeyForBlob finds the key a ciphertext names, checking it against an optional KeyId.
  CachedKey& KeyForBlob(const json& req, const char* key_field, const Bytes& blob, ecall::CiphertextHeader* header) {
    auto h = ecall::ParseCiphertextHeader(blob);
    if (!h.ok()) Fail("InvalidCiphertextException", "the ciphertext is not a custos KMS ciphertext (" + h.status().message() + ")");
    *header = *h;
    auto it = keys.find(h->key_id);
    if (auto want = OptString(req, key_field)) {
      CachedKey& named = Find(*want);
      if (it == keys.end() || &it->second != &named)
        Fail("IncorrectKeyException", "the ciphertext was not encrypted under " + named.record.arn);
    }
    if (it == keys.end()) Fail("InvalidCiphertextException", "the ciphertext names a key that does not exist");
    return it->second;
  }

  json Decrypt(const json& req, const Caller& caller, std::string* key_id) {
    Bytes blob = ReqBlob(req, "CiphertextBlob", 6144);
    ecall::CiphertextHeader h;
    CachedKey& k = KeyForBlob(req, "KeyId", blob, &h);
    *key_id = k.record.key_id;
    auto ctx = ReqContext(req, "EncryptionContext");
    Authorize(caller, k, "Decrypt", ctx);
    RequireEnabled(k);
    RequireUsage(k, "ENCRYPT_DECRYPT", "Decrypt");
    CheckAlgorithm(req, "EncryptionAlgorithm");
    if (!k.versions.count(h.version)) Fail("InvalidCiphertextException", "the ciphertext names a key version that does not exist");
    auto r = Core(ecall::Call::kKmsDecrypt, {Ref(k, h.version), blob, ecall::EncodeEncryptionContext(ctx)});
    json out = {{"KeyId", k.record.arn}, {"Plaintext", Base64Encode(r[0])}, {"EncryptionAlgorithm", "SYMMETRIC_DEFAULT"}};
    WipeBytes(r[0]);
    return out;
  }

  json ReEncrypt(const json& req, const Caller& caller, std::string* key_id) {
    Bytes blob = ReqBlob(req, "CiphertextBlob", 6144);
    ecall::CiphertextHeader h;
    CachedKey& src = KeyForBlob(req, "SourceKeyId", blob, &h);
    CachedKey& dst = Find(ReqString(req, "DestinationKeyId"));
    *key_id = dst.record.key_id;
    auto sctx = ReqContext(req, "SourceEncryptionContext");
    auto dctx = ReqContext(req, "DestinationEncryptionContext");
    Authorize(caller, src, "ReEncryptFrom", sctx);
    Authorize(caller, dst, "ReEncryptTo", dctx);
    RequireEnabled(src);
    RequireEnabled(dst);
    RequireUsage(src, "ENCRYPT_DECRYPT", "ReEncrypt");
    RequireUsage(dst, "ENCRYPT_DECRYPT", "ReEncrypt");
    CheckAlgorithm(req, "SourceEncryptionAlgorithm");
    CheckAlgorithm(req, "DestinationEncryptionAlgorithm");
    if (!src.versions.count(h.version)) Fail("InvalidCiphertextException", "the ciphertext names a key version that does not exist");
    auto r = Core(ecall::Call::kKmsReEncrypt, {Ref(src, h.version), blob, ecall::EncodeEncryptionContext(sctx),
                                               Ref(dst, dst.record.current_version), ecall::EncodeEncryptionContext(dctx)});
    return {{"CiphertextBlob", Base64Encode(r[0])},
            {"SourceKeyId", src.record.arn},
            {"KeyId", dst.record.arn},
            {"SourceEncryptionAlgorithm", "SYMMETRIC_DEFAULT"},
            {"DestinationEncryptionAlgorithm", "SYMMETRIC_DEFAULT"}};
  }

  json GenerateDataKey(const json& req, const Caller& caller, std::string* key_id, bool with_plaintext) {
    const char* op = with_plaintext ? "GenerateDataKey" : "GenerateDataKeyWithoutPlaintext";
    CachedKey& k = Find(ReqString(req, "KeyId"));
    *key_id = k.record.key_id;
    auto ctx = ReqContext(req, "EncryptionContext");
    Authorize(caller, k, op, ctx);
    RequireEnabled(k);
    RequireUsage(k, "ENCRYPT_DECRYPT", op);
    auto spec = OptString(req, "KeySpec");
    auto n = OptInt(req, "NumberOfBytes");
    if (spec && n) Validation("specify either KeySpec or NumberOfBytes, not both");
    if (!spec && !n) Validation("KeySpec or NumberOfBytes is required");
    uint32_t bytes = 0;
    if (spec) {
      if (*spec == "AES_256") bytes = 32;
      else if (*spec == "AES_128") bytes = 16;
      else Validation("KeySpec must be AES_256 or AES_128");
    } else {
      if (*n < 1 || *n > static_cast<int64_t>(ecall::kMaxDataKeyBytes)) Validation("NumberOfBytes must be between 1 and 1024");
      bytes = static_cast<uint32_t>(*n);
    }
    auto r = Core(ecall::Call::kKmsGenerateDataKey, {Ref(k, k.record.current_version), ecall::U32Arg(bytes),
                                                     ecall::EncodeEncryptionContext(ctx), Bytes{with_plaintext ? uint8_t{1} : uint8_t{0}}});
    json out = {{"CiphertextBlob", Base64Encode(r[0])}, {"KeyId", k.record.arn}};
    if (with_plaintext) out["Plaintext"] = Base64Encode(r[1]);
    WipeBytes(r[1]);
    return out;
  }

  json GenerateRandom(const json& req) {
    auto n = OptInt(req, "NumberOfBytes");
    if (!n) Validation("NumberOfBytes is required");
    if (*n < 1 || *n > static_cast<int64_t>(ecall::kMaxRandomBytes)) Validation("NumberOfBytes must be between 1 and 1024");
    if (OptString(req, "CustomKeyStoreId")) Fail("UnsupportedOperationException", "custom key stores are not supported");
    auto r = Core(ecall::Call::kKmsGenerateRandom, {ecall::U32Arg(static_cast<uint32_t>(*n))});
    return {{"Plaintext", Base64Encode(r[0])}};
  }

  Bytes SignInputs(const json& req, std::string* type) {
    *type = OptString(req, "MessageType").value_or("RAW");
    if (*type != "RAW" && *type != "DIGEST") Validation("MessageType must be RAW or DIGEST");
    auto alg = OptString(req, "SigningAlgorithm");
    if (!alg) Validation("SigningAlgorithm is required");
    if (*alg != "ECDSA_SHA_256") Fail("InvalidKeyUsageException", "SigningAlgorithm " + alg->substr(0, 64) + " is not valid for this key");
    Bytes m = ReqBlob(req, "Message", ecall::kMaxMacMessage);
    if (*type == "DIGEST" && m.size() != 32) Validation("a DIGEST message for ECDSA_SHA_256 must be 32 bytes");
    return m;
  }

  json Sign(const json& req, const Caller& caller, std::string* key_id) {
    CachedKey& k = Find(ReqString(req, "KeyId"));
    *key_id = k.record.key_id;
    Authorize(caller, k, "Sign");
    RequireEnabled(k);
    RequireUsage(k, "SIGN_VERIFY", "Sign");
    std::string type;
    Bytes m = SignInputs(req, &type);
    auto r = Core(ecall::Call::kKmsSign, {Ref(k, k.record.current_version), m, ToBytes(type)});
    return {{"KeyId", k.record.arn}, {"Signature", Base64Encode(r[0])}, {"SigningAlgorithm", "ECDSA_SHA_256"}};
  }

  json Verify(const json& req, const Caller& caller, std::string* key_id) {
    CachedKey& k = Find(ReqString(req, "KeyId"));
    *key_id = k.record.key_id;
    Authorize(caller, k, "Verify");
    RequireEnabled(k);
    RequireUsage(k, "SIGN_VERIFY", "Verify");
    std::string type;
    Bytes m = SignInputs(req, &type);
    Bytes sig = ReqBlob(req, "Signature", 256);
    Core(ecall::Call::kKmsVerify, {Ref(k, k.record.current_version), m, ToBytes(type), sig});
    return {{"KeyId", k.record.arn}, {"SignatureValid", true}, {"SigningAlgorithm", "ECDSA_SHA_256"}};
  }

  json GetPublicKey(const json& req, const Caller& caller, std::string* key_id) {
    CachedKey& k = Find(ReqString(req, "KeyId"));
    *key_id = k.record.key_id;
    Authorize(caller, k, "GetPublicKey");
    RequireEnabled(k);
    if (k.record.key_spec != ecall::kSpecEccP256)
      Fail("UnsupportedOperationException", k.record.arn + " is not an asymmetric key");
    const store::KeyVersion& v = k.versions.at(k.record.current_version);
    return {{"KeyId", k.record.arn},
            {"PublicKey", Base64Encode(v.public_key)},
            {"CustomerMasterKeySpec", k.record.key_spec},
            {"KeySpec", k.record.key_spec},
            {"KeyUsage", k.record.key_usage},
            {"SigningAlgorithms", {"ECDSA_SHA_256"}}};
  }

  Bytes MacInputs(const json& req) {
    auto alg = OptString(req, "MacAlgorithm");
    if (!alg) Validation("MacAlgorithm is required");
    if (*alg != "HMAC_SHA_256") Fail("InvalidKeyUsageException", "MacAlgorithm " + alg->substr(0, 64) + " is not valid for this key");
    return ReqBlob(req, "Message", ecall::kMaxMacMessage);
  }

  json GenerateMac(const json& req, const Caller& caller, std::string* key_id) {
    CachedKey& k = Find(ReqString(req, "KeyId"));
    *key_id = k.record.key_id;
    Authorize(caller, k, "GenerateMac");
    RequireEnabled(k);
    RequireUsage(k, "GENERATE_VERIFY_MAC", "GenerateMac");
    Bytes m = MacInputs(req);
    auto r = Core(ecall::Call::kKmsGenerateMac, {Ref(k, k.record.current_version), m});
    return {{"KeyId", k.record.arn}, {"Mac", Base64Encode(r[0])}, {"MacAlgorithm", "HMAC_SHA_256"}};
  }

  json VerifyMac(const json& req, const Caller& caller, std::string* key_id) {
    CachedKey& k = Find(ReqString(req, "KeyId"));
    *key_id = k.record.key_id;
    Authorize(caller, k, "VerifyMac");
    RequireEnabled(k);
    RequireUsage(k, "GENERATE_VERIFY_MAC", "VerifyMac");
    Bytes m = MacInputs(req);
    Bytes mac = ReqBlob(req, "Mac", 64);
    Core(ecall::Call::kKmsVerifyMac, {Ref(k, k.record.current_version), m, mac});
    return {{"KeyId", k.record.arn}, {"MacValid", true}, {"MacAlgorithm", "HMAC_SHA_256"}};
  }

  json DescribeKey(const json& req, const Caller& caller, std::string* key_id) {
    CachedKey& k = Find(ReqString(req, "KeyId"));
    *key_id = k.record.key_id;
    Authorize(caller, k, "DescribeKey");
    return {{"KeyMetadata", Metadata(k)}};
  }

  json ListKeys(const json& req) {
    std::vector<json> all;
    for (auto& [id, k] : keys) all.push_back({{"KeyId", id}, {"KeyArn", k.record.arn}});
    auto [page, next] = Page(all, req, 100);
    json out = {{"Keys", page}};
    SetPage(out, next);
    return out;
  }

  json SetState(const json& req, const Caller& caller, std::string* key_id, bool enable) {
    CachedKey& k = Find(ReqString(req, "KeyId"), false);
    *key_id = k.record.key_id;
    Authorize(caller, k, enable ? "EnableKey" : "DisableKey");
    RequireNotPendingDeletion(k);
    store::KeyRecord r = k.record;
    r.key_state = enable ? "Enabled" : "Disabled";
    UpdateRecord(k, r);
    return json::object();
  }

  json ScheduleKeyDeletion(const json& req, const Caller& caller, std::string* key_id) {
    CachedKey& k = Find(ReqString(req, "KeyId"), false);
    *key_id = k.record.key_id;
    Authorize(caller, k, "ScheduleKeyDeletion");
    int64_t days = OptInt(req, "PendingWindowInDays").value_or(30);
    if (days < 7 || days > 30) Validation("PendingWindowInDays must be between 7 and 30");
    RequireNotPendingDeletion(k);
    store::KeyRecord r = k.record;
    r.key_state = "PendingDeletion";
    r.pending_window_days = static_cast<int32_t>(days);
    r.deletion_date = Now() + days * kDay;
    UpdateRecord(k, r);
    return {{"KeyId", r.arn}, {"DeletionDate", *r.deletion_date}, {"KeyState", "PendingDeletion"},
            {"PendingWindowInDays", days}};
  }

  json CancelKeyDeletion(const json& req, const Caller& caller, std::string* key_id) {
    CachedKey& k = Find(ReqString(req, "KeyId"), false);
    *key_id = k.record.key_id;
    Authorize(caller, k, "CancelKeyDeletion");
    if (k.record.key_state != "PendingDeletion")
      Fail("KMSInvalidStateException", k.record.arn + " is not pending deletion");
    store::KeyRecord r = k.record;
    r.key_state = "Disabled";  // as AWS does: the key comes back disabled
    r.deletion_date.reset();
    r.pending_window_days = 0;
    UpdateRecord(k, r);
    return {{"KeyId", r.arn}};
  }

  void RequireRotatable(const CachedKey& k) {
    if (k.record.key_spec != ecall::kSpecSymmetric)
      Fail("UnsupportedOperationException", "only SYMMETRIC_DEFAULT keys can be rotated");
  }

  json SetRotation(const json& req, const Caller& caller, std::string* key_id, bool enable) {
    CachedKey& k = Find(ReqString(req, "KeyId"), false);
    *key_id = k.record.key_id;
    Authorize(caller, k, enable ? "EnableKeyRotation" : "DisableKeyRotation");
    RequireEnabledForRotation(k);
    RequireRotatable(k);
    store::KeyRecord r = k.record;
    r.rotation_enabled = enable;
    if (enable) {
      int64_t period = OptInt(req, "RotationPeriodInDays").value_or(365);
      if (period < 90 || period > 2560) Validation("RotationPeriodInDays must be between 90 and 2560");
      r.rotation_period_days = static_cast<int32_t>(period);
      r.next_rotation_date = Now() + period * kDay;
    } else {
      r.next_rotation_date.reset();
    }
    UpdateRecord(k, r);
    return json::object();
  }

  static void RequireEnabledForRotation(const CachedKey& k) {
    if (k.record.key_state == "Disabled") Fail("DisabledException", k.record.arn + " is disabled");
    RequireNotPendingDeletion(k);
  }

  json GetKeyRotationStatus(const json& req, const Caller& caller, std::string* key_id) {
    CachedKey& k = Find(ReqString(req, "KeyId"), false);
    *key_id = k.record.key_id;
    Authorize(caller, k, "GetKeyRotationStatus");
    RequireNotPendingDeletion(k);
    RequireRotatable(k);
    json out = {{"KeyId", k.record.arn}, {"KeyRotationEnabled", k.record.rotation_enabled}};
    if (k.record.rotation_enabled) {
      out["RotationPeriodInDays"] = k.record.rotation_period_days;
      if (k.record.next_rotation_date) out["NextRotationDate"] = *k.record.next_rotation_date;
    }
    return out;
  }

  // Rotate adds a version and makes it current; new ciphertexts use it, old ones keep
  // naming their version.
  void Rotate(CachedKey& k, const std::string& type) {
    uint32_t next = k.versions.rbegin()->first + 1;
    auto made = Core(ecall::Call::kKmsCreateKey, {ToBytes(k.record.key_id), ecall::U32Arg(next), ToBytes(k.record.key_spec)});
    store::KeyVersion v{k.record.key_id, next, made[0], made[1], Now(), type};
    store::KeyRecord r = k.record;
    r.current_version = next;
    if (r.rotation_enabled) r.next_rotation_date = Now() + int64_t{r.rotation_period_days} * kDay;
    StoreOrFail(store->AddKeyVersion(r, v));
    k.record = r;
    k.versions[next] = v;
  }

  json RotateKeyOnDemand(const json& req, const Caller& caller, std::string* key_id) {
    CachedKey& k = Find(ReqString(req, "KeyId"), false);
    *key_id = k.record.key_id;
    Authorize(caller, k, "RotateKeyOnDemand");
    RequireEnabledForRotation(k);
    RequireRotatable(k);
    size_t on_demand = 0;
    for (auto& [n, v] : k.versions) on_demand += v.rotation_type == "ON_DEMAND";
    if (on_demand >= 10) Fail("LimitExceededException", "a key can be rotated on demand at most 10 times");
    Rotate(k, "ON_DEMAND");
    return {{"KeyId", k.record.arn}};
  }

  json ListKeyRotations(const json& req, const Caller& caller, std::string* key_id) {
    CachedKey& k = Find(ReqString(req, "KeyId"), false);
    *key_id = k.record.key_id;
    Authorize(caller, k, "ListKeyRotations");
    RequireRotatable(k);
    std::vector<json> all;
    for (auto& [n, v] : k.versions)
      if (n > 1) all.push_back({{"KeyId", k.record.arn}, {"RotationDate", v.created}, {"RotationType", v.rotation_type}});
    auto [page, next] = Page(all, req, 100);
    json out = {{"Rotations", page}};
    SetPage(out, next);
    return out;
  }

  json CreateAlias(const json& req, const Caller& caller, std::string* key_id) {
    std::string name = ReqString(req, "AliasName");
    CheckAliasName(name);
    CachedKey& k = Find(ReqString(req, "TargetKeyId"), false);
    *key_id = k.record.key_id;
    Authorize(caller, k, "CreateAlias");
    RequireNotPendingDeletion(k);
    if (aliases.count(name)) Fail("AlreadyExistsException", "an alias with the name " + name + " already exists");
    store::AliasRecord a{name, k.record.key_id, Now(), Now()};
    Status s = store->CreateAlias(a);
    if (s.code() == ErrorCode::kAlreadyExists) Fail("AlreadyExistsException", "an alias with the name " + name + " already exists");
    StoreOrFail(s);
    aliases[name] = a;
    return json::object();
  }

  json UpdateAlias(const json& req, const Caller& caller, std::string* key_id) {
    std::string name = ReqString(req, "AliasName");
    CheckAliasName(name);
    auto it = aliases.find(name);
    if (it == aliases.end()) Fail("NotFoundException", "alias " + name + " is not found");
    CachedKey& k = Find(ReqString(req, "TargetKeyId"), false);
    *key_id = k.record.key_id;
    auto old = keys.find(it->second.key_id);
    if (old != keys.end() && old->second.record.key_usage != k.record.key_usage)
      Validation("the alias's new key must have the same KeyUsage as its current key");
    if (old != keys.end()) Authorize(caller, old->second, "UpdateAlias");
    Authorize(caller, k, "UpdateAlias");
    RequireNotPendingDeletion(k);
    int64_t now = Now();
    StoreOrFail(store->UpdateAlias(name, k.record.key_id, now));
    it->second.key_id = k.record.key_id;
    it->second.last_updated_date = now;
    return json::object();
  }

  json DeleteAlias(const json& req, const Caller& caller, std::string* key_id) {
    std::string name = ReqString(req, "AliasName");
    auto it = aliases.find(name);
    if (it == aliases.end()) Fail("NotFoundException", "alias " + name.substr(0, 256) + " is not found");
    *key_id = it->second.key_id;
    auto k = keys.find(it->second.key_id);
    if (k != keys.end()) Authorize(caller, k->second, "DeleteAlias");
    StoreOrFail(store->DeleteAlias(name));
    aliases.erase(it);
    return json::object();
  }

  json ListAliases(const json& req, const Caller& caller, std::string* key_id) {
    std::optional<std::string> filter;
    if (auto ref = OptString(req, "KeyId")) {
      CachedKey& k = Find(*ref, false);
      *key_id = k.record.key_id;
      Authorize(caller, k, "ListAliases");
      filter = k.record.key_id;
    }
    std::vector<json> all;
    for (auto& [name, a] : aliases) {
      if (filter && a.key_id != *filter) continue;
      all.push_back({{"AliasName", name}, {"AliasArn", AliasArn(name)}, {"TargetKeyId", a.key_id},
                     {"CreationDate", a.creation_date}, {"LastUpdatedDate", a.last_updated_date}});
    }
    auto [page, next] = Page(all, req, 50);
    json out = {{"Aliases", page}};
    SetPage(out, next);
    return out;
  }

  json TagResource(const json& req, const Caller& caller, std::string* key_id) {
    CachedKey& k = Find(ReqString(req, "KeyId"), false);
    *key_id = k.record.key_id;
    Authorize(caller, k, "TagResource");
    RequireNotPendingDeletion(k);
    auto tags = ReqTags(req);
    if (tags.empty()) Validation("Tags is required");
    StoreOrFail(store->TagResource(k.record.key_id, tags));
    return json::object();
  }

  json UntagResource(const json& req, const Caller& caller, std::string* key_id) {
    CachedKey& k = Find(ReqString(req, "KeyId"), false);
    *key_id = k.record.key_id;
    Authorize(caller, k, "UntagResource");
    RequireNotPendingDeletion(k);
    const json* f = Field(req, "TagKeys");
    if (f == nullptr || !f->is_array() || f->empty()) Validation("TagKeys must be a non-empty list");
    std::vector<std::string> names;
    for (const json& t : *f) {
      if (!t.is_string()) Fail("SerializationException", "TagKeys entries must be strings");
      names.push_back(t.get<std::string>());
    }
    StoreOrFail(store->UntagResource(k.record.key_id, names));
    return json::object();
  }

  json ListResourceTags(const json& req, const Caller& caller, std::string* key_id) {
    CachedKey& k = Find(ReqString(req, "KeyId"), false);
    *key_id = k.record.key_id;
    Authorize(caller, k, "ListResourceTags");
    auto tags = store->ListTags(k.record.key_id);
    if (!tags.ok()) Fail("KMSInternalException", "the key store could not list tags", 500);
    std::vector<json> all;
    for (auto& t : *tags) all.push_back({{"TagKey", t.key}, {"TagValue", t.value}});
    auto [page, next] = Page(all, req, 50);
    json out = {{"Tags", page}};
    SetPage(out, next);
    return out;
  }

  static void CheckPolicyName(const json& req) {
    auto name = OptString(req, "PolicyName").value_or("default");
    if (name != "default") Fail("NotFoundException", "the only key policy name is \"default\"");
  }

  json GetKeyPolicy(const json& req, const Caller& caller, std::string* key_id) {
    CachedKey& k = Find(ReqString(req, "KeyId"), false);
    *key_id = k.record.key_id;
    Authorize(caller, k, "GetKeyPolicy");
    CheckPolicyName(req);
    return {{"Policy", k.record.policy}, {"PolicyName", "default"}};
  }

  json PutKeyPolicy(const json& req, const Caller& caller, std::string* key_id) {
    CachedKey& k = Find(ReqString(req, "KeyId"), false);
    *key_id = k.record.key_id;
    Authorize(caller, k, "PutKeyPolicy");
    RequireNotPendingDeletion(k);
    CheckPolicyName(req);
    std::string doc = ReqString(req, "Policy");
    auto policy = KeyPolicy::Parse(doc);
    if (!policy.ok()) Fail("MalformedPolicyDocumentException", policy.status().message());
    CachedKey probe{k.record, std::make_shared<const KeyPolicy>(std::move(policy).value()), {}};
    if (!OptBool(req, "BypassPolicyLockoutSafetyCheck").value_or(false)) LockoutCheck(probe, caller);
    store::KeyRecord r = k.record;
    r.policy = doc;
    UpdateRecord(k, r);
    k.policy = probe.policy;
    return json::object();
  }
};

// ---- dispatch ----

namespace {

enum class Lock { kShared, kExclusive };

struct OperationInfo {
  std::string_view name;
  Lock lock;
};

// Which lock each operation needs: reads of the cache share it; anything that changes keys,
// versions, aliases or policies takes it alone.
constexpr OperationInfo kOperations[] = {
    {"CreateKey", Lock::kExclusive},        {"DescribeKey", Lock::kShared},
    {"ListKeys", Lock::kShared},            {"CreateAlias", Lock::kExclusive},
    {"UpdateAlias", Lock::kExclusive},      {"DeleteAlias", Lock::kExclusive},
    {"ListAliases", Lock::kShared},         {"EnableKey", Lock::kExclusive},
    {"DisableKey", Lock::kExclusive},       {"ScheduleKeyDeletion", Lock::kExclusive},
    {"CancelKeyDeletion", Lock::kExclusive}, {"EnableKeyRotation", Lock::kExclusive},
    {"DisableKeyRotation", Lock::kExclusive}, {"GetKeyRotationStatus", Lock::kShared},
    {"RotateKeyOnDemand", Lock::kExclusive}, {"ListKeyRotations", Lock::kShared},
    {"Encrypt", Lock::kShared},             {"Decrypt", Lock::kShared},
    {"ReEncrypt", Lock::kShared},           {"GenerateDataKey", Lock::kShared},
    {"GenerateDataKeyWithoutPlaintext", Lock::kShared}, {"GenerateRandom", Lock::kShared},
    {"Sign", Lock::kShared},                {"Verify", Lock::kShared},
    {"GetPublicKey", Lock::kShared},        {"GenerateMac", Lock::kShared},
    {"VerifyMac", Lock::kShared},           {"TagResource", Lock::kShared},
    {"UntagResource", Lock::kShared},       {"ListResourceTags", Lock::kShared},
    {"GetKeyPolicy", Lock::kShared},        {"PutKeyPolicy", Lock::kExclusive},
};

}  // namespace

const std::vector<std::string_view>& KmsService::Operations() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> v;
    for (const auto& o : kOperations) v.push_back(o.name);
    return v;
  }();
  return names;
}

KmsService::KmsService(store::Store* store, CoreCall core, ServiceOptions options)
    : impl_(std::make_unique<Impl>()), options_(options) {
  impl_->store = store;
  impl_->core = std::move(core);
  impl_->opt = std::move(options);
}

KmsService::~KmsService() = default;

Status KmsService::Load() {
  std::unique_lock lock(impl_->mu);
  ASSIGN_OR_RETURN(auto records, impl_->store->ListKeys());
  impl_->keys.clear();
  for (auto& r : records) {
    auto policy = KeyPolicy::Parse(r.policy);
    if (!policy.ok()) return policy.status().WithContext("stored policy of key " + r.key_id);
    CachedKey k{r, std::make_shared<const KeyPolicy>(std::move(policy).value()), {}};
    ASSIGN_OR_RETURN(auto versions, impl_->store->ListKeyVersions(r.key_id));
    for (auto& v : versions) k.versions[v.version] = v;
    if (!k.versions.count(r.current_version))
      return IntegrityError("store: key " + r.key_id + " has no row for its current version");
    impl_->keys.emplace(r.key_id, std::move(k));
  }
  ASSIGN_OR_RETURN(auto aliases, impl_->store->ListAliases(std::nullopt));
  impl_->aliases.clear();
  for (auto& a : aliases) impl_->aliases[a.alias_name] = a;
  return Status::Ok();
}

KmsOutcome KmsService::Execute(std::string_view operation, const json& req, const Caller& caller) {
  KmsOutcome out;
  const OperationInfo* info = nullptr;
  for (const auto& o : kOperations)
    if (o.name == operation) info = &o;
  if (info == nullptr) {
    out.error_type = "UnknownOperationException";
    out.message = "unknown operation";
    out.http_status = 400;
    return out;
  }
  Impl& m = *impl_;
  try {
    if (!req.is_object()) Fail("SerializationException", "the request body is not a JSON object");
    std::shared_lock<std::shared_mutex> shared(m.mu, std::defer_lock);
    std::unique_lock<std::shared_mutex> exclusive(m.mu, std::defer_lock);
    if (info->lock == Lock::kShared) shared.lock();
    else exclusive.lock();
    std::string* id = &out.key_id;
    std::string_view op = operation;
    json r;
    if (op == "CreateKey") r = m.CreateKey(req, caller, id);
    else if (op == "DescribeKey") r = m.DescribeKey(req, caller, id);
    else if (op == "ListKeys") r = m.ListKeys(req);
    else if (op == "CreateAlias") r = m.CreateAlias(req, caller, id);
    else if (op == "UpdateAlias") r = m.UpdateAlias(req, caller, id);
    else if (op == "DeleteAlias") r = m.DeleteAlias(req, caller, id);
    else if (op == "ListAliases") r = m.ListAliases(req, caller, id);
    else if (op == "EnableKey") r = m.SetState(req, caller, id, true);
    else if (op == "DisableKey") r = m.SetState(req, caller, id, false);
    else if (op == "ScheduleKeyDeletion") r = m.ScheduleKeyDeletion(req, caller, id);
    else if (op == "CancelKeyDeletion") r = m.CancelKeyDeletion(req, caller, id);
    else if (op == "EnableKeyRotation") r = m.SetRotation(req, caller, id, true);
    else if (op == "DisableKeyRotation") r = m.SetRotation(req, caller, id, false);
    else if (op == "GetKeyRotationStatus") r = m.GetKeyRotationStatus(req, caller, id);
    else if (op == "RotateKeyOnDemand") r = m.RotateKeyOnDemand(req, caller, id);
    else if (op == "ListKeyRotations") r = m.ListKeyRotations(req, caller, id);
    else if (op == "Encrypt") r = m.Encrypt(req, caller, id);
    else if (op == "Decrypt") r = m.Decrypt(req, caller, id);
    else if (op == "ReEncrypt") r = m.ReEncrypt(req, caller, id);
    else if (op == "GenerateDataKey") r = m.GenerateDataKey(req, caller, id, true);
    else if (op == "GenerateDataKeyWithoutPlaintext") r = m.GenerateDataKey(req, caller, id, false);
    else if (op == "GenerateRandom") r = m.GenerateRandom(req);
    else if (op == "Sign") r = m.Sign(req, caller, id);
    else if (op == "Verify") r = m.Verify(req, caller, id);
    else if (op == "GetPublicKey") r = m.GetPublicKey(req, caller, id);
    else if (op == "GenerateMac") r = m.GenerateMac(req, caller, id);
    else if (op == "VerifyMac") r = m.VerifyMac(req, caller, id);
    else if (op == "TagResource") r = m.TagResource(req, caller, id);
    else if (op == "UntagResource") r = m.UntagResource(req, caller, id);
    else if (op == "ListResourceTags") r = m.ListResourceTags(req, caller, id);
    else if (op == "GetKeyPolicy") r = m.GetKeyPolicy(req, caller, id);
    else if (op == "PutKeyPolicy") r = m.PutKeyPolicy(req, caller, id);
    out.response = std::move(r);
  } catch (const ApiError& e) {
    out.error_type = e.type;
    out.message = e.message;
    out.http_status = e.http_status;
  } catch (const json::exception&) {
    out.error_type = "SerializationException";
    out.message = "the request does not match the operation's shape";
    out.http_status = 400;
  }
  return out;
}

Status KmsService::RunMaintenance() {
  Impl& m = *impl_;
  std::unique_lock lock(m.mu);
  Status first = Status::Ok();
  int64_t now = m.Now();
  std::vector<std::string> expired;
  for (auto& [id, k] : m.keys) {
    if (k.record.key_state == "PendingDeletion" && k.record.deletion_date && *k.record.deletion_date <= now) {
      expired.push_back(id);
      continue;
    }
    if (k.record.key_state == "Enabled" && k.record.rotation_enabled && k.record.next_rotation_date &&
        *k.record.next_rotation_date <= now) {
      try {
        m.Rotate(k, "AUTOMATIC");
      } catch (const ApiError& e) {
        if (first.ok()) first = Unavailable("rotation of " + id + ": " + e.message);
      }
    }
  }
  for (const std::string& id : expired) {
    Status s = m.store->DeleteKey(id);
    if (!s.ok()) {
      if (first.ok()) first = s;
      continue;
    }
    m.keys.erase(id);
    for (auto it = m.aliases.begin(); it != m.aliases.end();) {
      if (it->second.key_id == id) it = m.aliases.erase(it);
      else ++it;
    }
  }
  return first;
}

const CoreError* CoreErrorFor(ecall::Reason reason) {
  for (const CoreError& e : kCoreErrors)
    if (e.reason == reason) return &e;
  return nullptr;
}

}  // namespace custos::kms
