// KMS operations. Each operation is a handler in one table (kOperations, at the end) and returns
// StatusOr<json>; a refusal is a Status whose reason is an AwsError (Err below), which Execute
// turns into the AWS exception name and HTTP status from kAwsErrors. No exceptions for control
// flow: the only catch is Execute's guard against a nlohmann::json library exception.
#include "appliance/kms/service.h"

#include "net/fiber.h"

#include <atomic>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <regex>

#include "crypto/hash.h"
#include "crypto/random.h"
#include "appliance/ecall/calls.h"
#include "appliance/ecall/kms_calls.h"
#include "appliance/kms/policy.h"

namespace custos::kms {

using json = nlohmann::json;

namespace {

struct AwsErrorInfo {
  AwsError error;
  const char* type;  // the AWS exception name
  int http;
  ErrorCode code;    // the custos class of the Status that carries it
};

// Every AwsError with its AWS name and HTTP status (a test checks that each has a row).
constexpr AwsErrorInfo kAwsErrors[] = {
    {AwsError::kValidation, "ValidationException", 400, ErrorCode::kInvalidArgument},
    {AwsError::kSerialization, "SerializationException", 400, ErrorCode::kInvalidArgument},
    {AwsError::kNotFound, "NotFoundException", 400, ErrorCode::kNotFound},
    {AwsError::kAccessDenied, "AccessDeniedException", 400, ErrorCode::kPermissionDenied},
    {AwsError::kNotAuthorized, "NotAuthorizedException", 400, ErrorCode::kPermissionDenied},
    {AwsError::kDisabled, "DisabledException", 400, ErrorCode::kFailedPrecondition},
    {AwsError::kInvalidState, "KMSInvalidStateException", 400, ErrorCode::kFailedPrecondition},
    {AwsError::kInvalidKeyUsage, "InvalidKeyUsageException", 400, ErrorCode::kFailedPrecondition},
    {AwsError::kUnsupportedOperation, "UnsupportedOperationException", 400, ErrorCode::kInvalidArgument},
    {AwsError::kMalformedPolicyDocument, "MalformedPolicyDocumentException", 400, ErrorCode::kInvalidArgument},
    {AwsError::kInvalidCiphertext, "InvalidCiphertextException", 400, ErrorCode::kIntegrity},
    {AwsError::kIncorrectKey, "IncorrectKeyException", 400, ErrorCode::kInvalidArgument},
    {AwsError::kInvalidSignature, "KMSInvalidSignatureException", 400, ErrorCode::kIntegrity},
    {AwsError::kInvalidMac, "KMSInvalidMacException", 400, ErrorCode::kIntegrity},
    {AwsError::kAlreadyExists, "AlreadyExistsException", 400, ErrorCode::kAlreadyExists},
    {AwsError::kLimitExceeded, "LimitExceededException", 400, ErrorCode::kFailedPrecondition},
    {AwsError::kUnknownOperation, "UnknownOperationException", 400, ErrorCode::kInvalidArgument},
    {AwsError::kDependencyTimeout, "DependencyTimeoutException", 503, ErrorCode::kUnavailable},
    {AwsError::kInternal, "KMSInternalException", 500, ErrorCode::kInternal},
};

const AwsErrorInfo* InfoFor(AwsError e) {
  for (const AwsErrorInfo& i : kAwsErrors)
    if (i.error == e) return &i;
  return nullptr;
}

// Err is a refusal: an AWS error and a message that names the check (safe to return).
Status Err(AwsError e, std::string message) {
  const AwsErrorInfo* i = InfoFor(e);
  return Status(i ? i->code : ErrorCode::kInternal, std::move(message)).WithReason(e);
}
Status Validation(std::string message) { return Err(AwsError::kValidation, std::move(message)); }

// Every ecall::Reason the core gives, with the AWS error it becomes (a test checks that each
// reason has a row).
constexpr CoreError kCoreErrors[] = {
    {ecall::Reason::kSealed, AwsError::kDependencyTimeout,
     "the appliance is sealed: its trusted core has no root key until a quorum of keepers releases it"},
    {ecall::Reason::kOtherKey, AwsError::kIncorrectKey, "the ciphertext was encrypted under another key"},
    {ecall::Reason::kMaterialDoesNotUnwrap, AwsError::kInternal,
     "stored key material does not unwrap under this appliance's root key"},
    {ecall::Reason::kCiphertextInvalid, AwsError::kInvalidCiphertext,
     "the ciphertext is invalid, was tampered with, or its encryption context does not match"},
    {ecall::Reason::kSignatureInvalid, AwsError::kInvalidSignature, "the signature does not verify"},
    {ecall::Reason::kMacInvalid, AwsError::kInvalidMac, "the MAC does not verify"},
    {ecall::Reason::kKeyUsage, AwsError::kInvalidKeyUsage, "the key's usage does not allow this operation"},
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
  // 8-4-4-4-12 lower-case hex (by hand: this runs on every request, and std::regex costs
  // microseconds).
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

// ---- request field readers (SerializationException for wrong JSON types, as AWS answers) ----

const json* Field(const json& req, const char* name) {
  auto it = req.find(name);
  if (it == req.end() || it->is_null()) return nullptr;
  return &*it;
}

Status WrongType(const char* name, const char* what) {
  return Err(AwsError::kSerialization, std::string(name) + " must be " + what);
}

StatusOr<std::optional<std::string>> OptString(const json& req, const char* name) {
  const json* f = Field(req, name);
  if (f == nullptr) return std::optional<std::string>();
  if (!f->is_string()) return WrongType(name, "a string");
  return std::optional<std::string>(f->get<std::string>());
}

StatusOr<std::string> ReqString(const json& req, const char* name) {
  ASSIGN_OR_RETURN(auto v, OptString(req, name));
  if (!v) return Validation(std::string(name) + " is required");
  if (v->empty()) return Validation(std::string(name) + " must not be empty");
  return *v;
}

StatusOr<std::optional<int64_t>> OptInt(const json& req, const char* name) {
  const json* f = Field(req, name);
  if (f == nullptr) return std::optional<int64_t>();
  if (!f->is_number_integer()) return WrongType(name, "an integer");
  return std::optional<int64_t>(f->get<int64_t>());
}

StatusOr<bool> OptBool(const json& req, const char* name, bool default_value) {
  const json* f = Field(req, name);
  if (f == nullptr) return default_value;
  if (!f->is_boolean()) return WrongType(name, "a boolean");
  return f->get<bool>();
}

StatusOr<Bytes> ReqBlob(const json& req, const char* name, size_t max_len) {
  ASSIGN_OR_RETURN(auto v, OptString(req, name));
  if (!v) return Validation(std::string(name) + " is required");
  auto b = Base64Decode(*v);
  if (!b.ok()) return Err(AwsError::kSerialization, std::string(name) + " is not valid base64");
  if (b->empty()) return Validation(std::string(name) + " must not be empty");
  if (b->size() > max_len)
    return Validation(std::string(name) + " is longer than " + std::to_string(max_len) + " bytes");
  return std::move(b).value();
}

StatusOr<ecall::EncryptionContext> ReqContext(const json& req, const char* name) {
  ecall::EncryptionContext ctx;
  const json* f = Field(req, name);
  if (f == nullptr) return ctx;
  if (!f->is_object()) return WrongType(name, "a map of strings");
  if (f->size() > 64) return Validation(std::string(name) + " has more than 64 entries");
  for (auto& [k, v] : f->items()) {
    if (!v.is_string()) return Err(AwsError::kSerialization, std::string(name) + " values must be strings");
    if (k.empty()) return Validation(std::string(name) + " keys must not be empty");
    if (k.size() > 4096 || v.get_ref<const std::string&>().size() > 4096)
      return Validation(std::string(name) + " entry is too long");
    ctx[k] = v.get<std::string>();
  }
  return ctx;
}

// Tags beginning with kKmipTagPrefix hold a key's KMIP attributes; only the KMIP server sets them.
constexpr std::string_view kKmipTagPrefix = "kmip:";
Status CheckReservedTags(const Caller& caller, const std::vector<store::Tag>& tags) {
  if (caller.kmip) return Status::Ok();
  for (const store::Tag& t : tags)
    if (t.key.starts_with(kKmipTagPrefix)) return Validation("tag keys beginning with kmip: are reserved for KMIP attributes");
  return Status::Ok();
}

StatusOr<std::vector<store::Tag>> ReqTags(const json& req) {
  std::vector<store::Tag> tags;
  const json* f = Field(req, "Tags");
  if (f == nullptr) return tags;
  if (!f->is_array()) return WrongType("Tags", "a list");
  if (f->size() > 50) return Validation("Tags: at most 50 tags");
  for (const json& t : *f) {
    if (!t.is_object()) return Err(AwsError::kSerialization, "Tags entries must be objects");
    ASSIGN_OR_RETURN(std::string key, ReqString(t, "TagKey"));
    ASSIGN_OR_RETURN(auto value, OptString(t, "TagValue"));
    store::Tag tag{std::move(key), value.value_or("")};
    if (tag.key.size() > 128 || tag.value.size() > 256) return Validation("Tags: TagKey or TagValue too long");
    tags.push_back(std::move(tag));
  }
  return tags;
}

// Paged is one page of a sorted list and the marker of the next, if any.
template <typename T>
struct Paged {
  std::vector<T> items;
  std::optional<std::string> next;
};

// Page applies Limit/Marker to a sorted list; the marker is the index to resume at.
template <typename T>
StatusOr<Paged<T>> Page(const std::vector<T>& all, const json& req, int64_t default_limit) {
  int64_t limit = default_limit;
  ASSIGN_OR_RETURN(auto l, OptInt(req, "Limit"));
  if (l) {
    if (*l < 1 || *l > 1000) return Validation("Limit must be between 1 and 1000");
    limit = *l;
  }
  size_t start = 0;
  ASSIGN_OR_RETURN(auto m, OptString(req, "Marker"));
  if (m) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(m->c_str(), &end, 10);
    if (m->empty() || *end != '\0' || v > all.size()) return Validation("Marker is not a marker this server issued");
    start = static_cast<size_t>(v);
  }
  size_t stop = std::min(all.size(), start + static_cast<size_t>(limit));
  Paged<T> page;
  page.items.assign(all.begin() + static_cast<std::ptrdiff_t>(start), all.begin() + static_cast<std::ptrdiff_t>(stop));
  if (stop < all.size()) page.next = std::to_string(stop);
  return page;
}

// PageOut is the response of a List operation: the page under `field`, Truncated, NextMarker.
json PageOut(const char* field, Paged<json> page) {
  json out = {{field, std::move(page.items)}, {"Truncated", page.next.has_value()}};
  if (page.next) out["NextMarker"] = *page.next;
  return out;
}

std::string UsageFor(const std::string& spec) {
  if (spec == ecall::kSpecSymmetric) return "ENCRYPT_DECRYPT";
  if (spec == ecall::kSpecHmac256) return "GENERATE_VERIFY_MAC";
  return "SIGN_VERIFY";
}

Status CheckAliasName(const std::string& name) {
  static const std::regex re("^alias/[a-zA-Z0-9:/_-]+$");
  if (name.size() > 256 || !std::regex_match(name, re))
    return Validation("AliasName must match alias/[a-zA-Z0-9:/_-]+ and be at most 256 characters");
  if (name.rfind("alias/aws/", 0) == 0)
    return Err(AwsError::kNotAuthorized, "alias/aws/ names are reserved for AWS managed keys");
  return Status::Ok();
}

Status CheckAlgorithm(const json& req, const char* name) {
  ASSIGN_OR_RETURN(auto a, OptString(req, name));
  if (a && *a != "SYMMETRIC_DEFAULT")
    return Err(AwsError::kInvalidKeyUsage, std::string(name) + " " + a->substr(0, 64) + " is not supported by this key");
  return Status::Ok();
}

Status CheckPolicyName(const json& req) {
  ASSIGN_OR_RETURN(auto name, OptString(req, "PolicyName"));
  if (name.value_or("default") != "default") return Err(AwsError::kNotFound, "the only key policy name is \"default\"");
  return Status::Ok();
}

}  // namespace

// ---- the cache ----

struct CachedKey {
  store::KeyRecord record;
  std::shared_ptr<const KeyPolicy> policy;
  std::map<uint32_t, store::KeyVersion> versions;
};

// Invocation is one operation's input: the request, its caller, and where the handler records
// the key the request resolved to (for the audit entry).
struct Invocation {
  const json& req;
  const Caller& caller;
  std::string* key_id;
};

struct KmsService::Impl {
  store::Store* store;
  CoreCall core;
  ServiceOptions opt;
  std::shared_mutex mu;
  // Writers waiting for mu: fibers step back from taking it shared while one waits
  // (LockShared), so a writer is not starved by a stream of readers.
  std::atomic<int> writers_waiting{0};
  std::map<std::string, CachedKey> keys;              // key id -> key
  std::map<std::string, store::AliasRecord> aliases;  // alias name -> alias
  // The store's change log version the cache reflects (guarded by mu), and when the cache was
  // last confirmed against the store (steady clock, nanoseconds since its epoch).
  uint64_t state_version = 0;
  std::atomic<int64_t> fresh_at{0};

  static int64_t SteadyNow() {
    return std::chrono::steady_clock::now().time_since_epoch().count();
  }
  void MarkFresh() { fresh_at.store(SteadyNow()); }
  bool Fresh() const {
    if (opt.max_staleness.count() == 0) return true;
    const auto age = std::chrono::steady_clock::duration(SteadyNow() - fresh_at.load());
    return age <= opt.max_staleness;
  }

  // ---- cache coherence (several nodes on one store) ----

  // ReadKey builds a key's cache entry from the store (kNotFound if it is gone).
  StatusOr<CachedKey> ReadKey(const store::KeyRecord& r) {
    auto policy = KeyPolicy::Parse(r.policy);
    if (!policy.ok()) return policy.status().WithContext("stored policy of key " + r.key_id);
    CachedKey k{r, std::make_shared<const KeyPolicy>(std::move(policy).value()), {}};
    ASSIGN_OR_RETURN(auto versions, store->ListKeyVersions(r.key_id));
    for (auto& v : versions) k.versions[v.version] = v;
    if (!k.versions.count(r.current_version))
      return IntegrityError("store: key " + r.key_id + " has no row for its current version");
    return k;
  }

  // LoadAll replaces the cache with the store's contents. Requires mu exclusively.
  Status LoadAll() {
    // The version first: changes committed while the tables are read are applied again by the
    // next catch-up, which is harmless (each re-reads the current row).
    ASSIGN_OR_RETURN(uint64_t version, store->StateVersion());
    ASSIGN_OR_RETURN(auto records, store->ListKeys());
    std::map<std::string, CachedKey> fresh_keys;
    for (auto& r : records) {
      ASSIGN_OR_RETURN(CachedKey k, ReadKey(r));
      fresh_keys.emplace(r.key_id, std::move(k));
    }
    ASSIGN_OR_RETURN(auto alias_list, store->ListAliases(std::nullopt));
    std::map<std::string, store::AliasRecord> fresh_aliases;
    for (auto& a : alias_list) fresh_aliases[a.alias_name] = a;
    keys = std::move(fresh_keys);
    aliases = std::move(fresh_aliases);
    state_version = version;
    MarkFresh();
    return Status::Ok();
  }

  // ReloadKey / ReloadAlias re-read one entry after another node changed it.
  Status ReloadKey(const std::string& id) {
    StatusOr<store::KeyRecord> r = store->GetKey(id);
    if (!r.ok() && r.status().code() == ErrorCode::kNotFound) {
      keys.erase(id);
      return Status::Ok();
    }
    if (!r.ok()) return r.status();
    ASSIGN_OR_RETURN(CachedKey k, ReadKey(*r));
    keys.insert_or_assign(id, std::move(k));
    return Status::Ok();
  }
  Status ReloadAlias(const std::string& name) {
    StatusOr<store::AliasRecord> a = store->GetAlias(name);
    if (!a.ok() && a.status().code() == ErrorCode::kNotFound) {
      aliases.erase(name);
      return Status::Ok();
    }
    if (!a.ok()) return a.status();
    aliases[name] = *a;
    return Status::Ok();
  }

  // CatchUp applies every change after state_version. Requires mu exclusively.
  Status CatchUp() {
    constexpr size_t kPage = 1000;
    for (;;) {
      StatusOr<std::vector<store::StateChange>> changes = store->StateChangesSince(state_version, kPage);
      if (!changes.ok() && changes.status().code() == ErrorCode::kOutOfRange) return LoadAll();
      if (!changes.ok()) return changes.status();
      for (const store::StateChange& c : *changes) {
        if (!c.key_id.empty()) RETURN_IF_ERROR(ReloadKey(c.key_id));
        if (!c.alias_name.empty()) RETURN_IF_ERROR(ReloadAlias(c.alias_name));
        state_version = c.version;
      }
      if (changes->size() < kPage) break;
    }
    MarkFresh();
    return Status::Ok();
  }

  int64_t Now() const { return opt.now ? opt.now() : static_cast<int64_t>(std::time(nullptr)); }
  std::string KeyArn(const std::string& id) const {
    return "arn:aws:kms:" + opt.region + ":" + opt.account_id + ":key/" + id;
  }
  std::string AliasArn(const std::string& name) const {
    return "arn:aws:kms:" + opt.region + ":" + opt.account_id + ":" + name;
  }

  // ---- core calls: map the core's errors to AWS errors, by reason (CoreErrorFor) ----
  // Core makes the typed call C (ecall/calls.h) and maps a failure to the AWS error.
  template <typename C>
  StatusOr<typename C::Result> Core(const typename C::Args& args) {
    auto r = ecall::Invoke<C>(core, args);
    if (r.ok()) return r;
    const Status& s = r.status();
    if (const CoreError* e = CoreErrorFor(static_cast<ecall::Reason>(s.reason()))) return Err(e->error, e->message);
    if (s.code() == ErrorCode::kInvalidArgument) return Validation(s.message());
    if (s.code() == ErrorCode::kUnavailable)
      return Err(AwsError::kDependencyTimeout,
                 "the trusted core is restarting; the appliance is sealed until keepers release again");
    return Err(AwsError::kInternal, "the trusted core failed the request");
  }

  // ---- key resolution ----

  // ResolveId maps a KeyId parameter (id, key ARN, alias name, alias ARN) to a key id.
  StatusOr<std::string> ResolveId(const std::string& ref, bool allow_alias = true) {
    std::string id = ref;
    std::string key_arn_prefix = "arn:aws:kms:" + opt.region + ":" + opt.account_id + ":";
    if (ref.rfind("arn:", 0) == 0) {
      if (ref.rfind(key_arn_prefix, 0) != 0)
        return Err(AwsError::kNotFound, "the ARN names another region or account than this KMS");
      id = ref.substr(key_arn_prefix.size());
      if (id.rfind("key/", 0) == 0) id = id.substr(4);
    }
    if (id.rfind("alias/", 0) == 0) {
      if (!allow_alias) return Validation("an alias is not allowed here; name the key by id or ARN");
      auto it = aliases.find(id);
      if (it == aliases.end()) return Err(AwsError::kNotFound, "alias " + id + " is not found");
      return it->second.key_id;
    }
    if (!IsKeyId(id)) return Err(AwsError::kNotFound, "invalid keyId " + ref.substr(0, 128));
    return id;
  }

  StatusOr<CachedKey*> Find(const std::string& ref, bool allow_alias = true) {
    ASSIGN_OR_RETURN(std::string id, ResolveId(ref, allow_alias));
    auto it = keys.find(id);
    if (it == keys.end()) return Err(AwsError::kNotFound, "Key '" + KeyArn(id) + "' does not exist");
    return &it->second;
  }

  // Named finds the key the request's `field` names and records it as the request's key.
  StatusOr<CachedKey*> Named(const Invocation& in, const char* field, bool allow_alias = true) {
    ASSIGN_OR_RETURN(std::string ref, ReqString(in.req, field));
    ASSIGN_OR_RETURN(CachedKey * k, Find(ref, allow_alias));
    *in.key_id = k->record.key_id;
    return k;
  }

  Status Authorize(const Caller& caller, const CachedKey& k, std::string_view op,
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
      return Err(AwsError::kAccessDenied, "User: " + caller.principal_arn + " is not authorized to perform: kms:" +
                                              std::string(op) + " on resource: " + k.record.arn + " (" + r.reason + ")");
    return Status::Ok();
  }

  static Status RequireEnabled(const CachedKey& k) {
    if (k.record.key_state == "Disabled") return Err(AwsError::kDisabled, k.record.arn + " is disabled");
    if (k.record.key_state != "Enabled") return Err(AwsError::kInvalidState, k.record.arn + " is pending deletion");
    return Status::Ok();
  }

  // RequireUsage: the key's usage allows `op`. A KMIP_AES key (registered through KMIP) has
  // usage ENCRYPT_DECRYPT but serves only the KMIP server's Encrypt and Decrypt (KmipCryptCommon
  // does not come here): every KMS API operation refuses it by name, before the core would.
  static Status RequireUsage(const CachedKey& k, const std::string& usage, std::string_view op) {
    if (k.record.key_spec == ecall::kSpecKmipAes)
      return Err(AwsError::kInvalidKeyUsage,
                 k.record.arn +
                     " is a KMIP_AES key (registered through KMIP): only KMIP "
                     "Encrypt and Decrypt may use it, not " +
                     std::string(op));
    if (k.record.key_usage != usage)
      return Err(AwsError::kInvalidKeyUsage, k.record.arn + " has KeyUsage " + k.record.key_usage +
                                                 ", which does not allow " + std::string(op));
    return Status::Ok();
  }

  // Usable is the check every cryptographic operation makes: policy, state, usage.
  Status Usable(const Invocation& in, const CachedKey& k, std::string_view op, const std::string& usage,
                const ecall::EncryptionContext& ctx = {}) {
    RETURN_IF_ERROR(Authorize(in.caller, k, op, ctx));
    RETURN_IF_ERROR(RequireEnabled(k));
    return RequireUsage(k, usage, op);
  }

  static Status RequireNotPendingDeletion(const CachedKey& k) {
    if (k.record.key_state == "PendingDeletion")
      return Err(AwsError::kInvalidState, k.record.arn + " is pending deletion");
    return Status::Ok();
  }

  static Status RequireRotatable(const CachedKey& k) {
    // A new version would replace the key the client registered and still holds.
    if (k.record.key_spec == ecall::kSpecKmipAes)
      return Err(AwsError::kUnsupportedOperation, "a registered KMIP key cannot be rotated");
    if (k.record.key_spec != ecall::kSpecSymmetric)
      return Err(AwsError::kUnsupportedOperation, "only SYMMETRIC_DEFAULT keys can be rotated");
    return Status::Ok();
  }

  static Status RequireEnabledForRotation(const CachedKey& k) {
    if (k.record.key_state == "Disabled") return Err(AwsError::kDisabled, k.record.arn + " is disabled");
    return RequireNotPendingDeletion(k);
  }

  StatusOr<ecall::KeyRef> Ref(const CachedKey& k, uint32_t version) {
    auto it = k.versions.find(version);
    if (it == k.versions.end()) return Err(AwsError::kInternal, "key version is missing from the store");
    return ecall::KeyRef{k.record.key_id, version, k.record.key_spec, it->second.wrapped_material};
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
              {"Origin", r.key_spec == ecall::kSpecKmipAes ? "EXTERNAL" : "AWS_KMS"},
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

  // Stored maps a store failure to KMSInternalException (the store's message stays in the
  // server: it may name paths).
  // Stored maps a store failure to the AWS error; kAborted (another node changed the key
  // since this node read it) passes through as it is, for Execute to catch up and run again.
  static Status Stored(const Status& s) {
    if (s.ok() || s.code() == ErrorCode::kAborted) return s;
    return Err(AwsError::kInternal, "the key store refused the change");
  }

  // UpdateRecord writes `r` through to the store, then the cache. The store applies it only to
  // the revision the cache holds.
  Status UpdateRecord(CachedKey& k, store::KeyRecord r) {
    r.revision = k.record.revision;
    RETURN_IF_ERROR(Stored(store->UpdateKey(r)));
    r.revision = k.record.revision + 1;
    k.record = std::move(r);
    return Status::Ok();
  }

  // LockoutCheck refuses a policy that would stop the caller from changing it again (AWS's
  // "policy lockout safety check").
  static Status LockoutCheck(const CachedKey& k, const Caller& caller) {
    PolicyRequest pr{caller.principal_arn, caller.account_id, "kms:PutKeyPolicy", k.record.arn, {},
                     k.record.key_spec, k.record.key_usage};
    if (k.policy->Evaluate(pr).decision != PolicyDecision::kAllow)
      return Err(AwsError::kMalformedPolicyDocument,
                 "the new key policy will not allow you to update the key policy in the future "
                 "(set BypassPolicyLockoutSafetyCheck to override)");
    return Status::Ok();
  }

  // ---- operations; Execute holds the lock shared or exclusive as kOperations says ----

  StatusOr<json> CreateKey(const Invocation& in) {
    const json& req = in.req;
    ASSIGN_OR_RETURN(auto key_spec, OptString(req, "KeySpec"));
    ASSIGN_OR_RETURN(auto cmk_spec, OptString(req, "CustomerMasterKeySpec"));
    std::string spec = key_spec.value_or(cmk_spec.value_or("SYMMETRIC_DEFAULT"));
    if (spec != ecall::kSpecSymmetric && spec != ecall::kSpecHmac256 && spec != ecall::kSpecEccP256)
      return Validation("KeySpec " + spec.substr(0, 64) + " is not supported (SYMMETRIC_DEFAULT, HMAC_256, ECC_NIST_P256)");
    ASSIGN_OR_RETURN(auto usage_field, OptString(req, "KeyUsage"));
    std::string usage = usage_field.value_or(UsageFor(spec));
    if (usage != UsageFor(spec)) return Validation("KeyUsage " + usage.substr(0, 64) + " is not valid for KeySpec " + spec);
    ASSIGN_OR_RETURN(auto origin, OptString(req, "Origin"));
    if (origin && *origin != "AWS_KMS") return Err(AwsError::kUnsupportedOperation, "only Origin AWS_KMS is supported");
    ASSIGN_OR_RETURN(bool multi_region, OptBool(req, "MultiRegion", false));
    if (multi_region) return Err(AwsError::kUnsupportedOperation, "multi-Region keys are not supported");
    return NewKey(in, spec, usage, nullptr);
  }

  // KmipRegister (KMIP Register): a key record made as CreateKey makes one (Description, Tags
  // with the reserved kmip: ones, Policy and its lockout check, PreActive), whose one version is
  // the client's AES key, wrapped by the core (kms-import-key) under spec KMIP_AES. Only the KMIP
  // server's caller may register. The material is wiped once wrapped and never logged.
  StatusOr<json> KmipRegister(const Invocation& in) {
    if (!in.caller.kmip)
      return Err(AwsError::kAccessDenied, "only the KMIP server may register key material");
    ASSIGN_OR_RETURN(auto encoded, OptString(in.req, "Material"));
    if (!encoded) return Validation("Material is required");
    StatusOr<Bytes> decoded = Base64Decode(*encoded);
    WipeBytes(*encoded);  // this copy; the request itself is the caller's to wipe
    if (!decoded.ok()) return Err(AwsError::kSerialization, "Material is not valid base64");
    WipedBuffer material(std::move(decoded).value());
    ASSIGN_OR_RETURN(auto spec_field, OptString(in.req, "KeySpec"));
    const std::string spec = spec_field.value_or(std::string(ecall::kSpecKmipAes));
    if (spec == ecall::kSpecHmac256) {
      // A registered HMAC key is an HMAC_256 key like any other (the core MACs with the material
      // as given): the KMS API's GenerateMac and VerifyMac use it too.
      if (material.size() != 32) return Validation("Material must be 32 bytes for an HMAC_256 key");
      return NewKey(in, spec, "GENERATE_VERIFY_MAC", &material);
    }
    if (spec != ecall::kSpecKmipAes) return Validation("KeySpec must be KMIP_AES or HMAC_256");
    if (material.size() != ecall::kKmipAes128KeySize &&
        material.size() != ecall::kKmipAes256KeySize)
      return Validation("Material must be 16 or 32 bytes (an AES-128 or AES-256 key)");
    return NewKey(in, spec, "ENCRYPT_DECRYPT", &material);
  }

  // NewKey is CreateKey's and KmipRegister's common part: it reads Description, Tags, Policy,
  // BypassPolicyLockoutSafetyCheck and (for the KMIP server) PreActive, and stores a key of
  // `spec` and `usage` whose version 1 the core draws (`material` null: kms-create-key) or wraps
  // from `material` (kms-import-key, which takes the buffer over).
  StatusOr<json> NewKey(const Invocation& in, const std::string& spec, const std::string& usage,
                        WipedBuffer* material) {
    const json& req = in.req;
    ASSIGN_OR_RETURN(auto description_field, OptString(req, "Description"));
    std::string description = description_field.value_or("");
    if (description.size() > 8192) return Validation("Description is longer than 8192 characters");
    ASSIGN_OR_RETURN(std::vector<store::Tag> tags, ReqTags(req));
    RETURN_IF_ERROR(CheckReservedTags(in.caller, tags));
    ASSIGN_OR_RETURN(auto policy_field, OptString(req, "Policy"));
    std::string policy_doc = policy_field.value_or(DefaultKeyPolicy(opt.account_id));
    auto policy = KeyPolicy::Parse(policy_doc);
    if (!policy.ok()) return Err(AwsError::kMalformedPolicyDocument, policy.status().message());
    ASSIGN_OR_RETURN(bool bypass, OptBool(req, "BypassPolicyLockoutSafetyCheck", false));

    store::KeyRecord r;
    r.key_id = NewKeyId();
    r.arn = KeyArn(r.key_id);
    r.description = description;
    r.key_spec = spec;
    r.key_usage = usage;
    // A KMIP Create makes a Pre-Active object: a disabled key until Activate.
    r.key_state = in.caller.kmip && req.value("PreActive", false) ? "Disabled" : "Enabled";
    r.creation_date = Now();
    r.policy = policy_doc;
    r.current_version = 1;
    r.revision = 1;
    *in.key_id = r.key_id;
    CachedKey k{r, std::make_shared<const KeyPolicy>(std::move(policy).value()), {}};
    if (!bypass) RETURN_IF_ERROR(LockoutCheck(k, in.caller));
    store::KeyVersion v{r.key_id, 1, {}, {}, r.creation_date, ""};
    if (material == nullptr) {
      ASSIGN_OR_RETURN(auto made, Core<ecall::KmsCreateKey>({r.key_id, 1, spec}));
      v.wrapped_material = std::move(made.wrapped);
      v.public_key = std::move(made.public_key);
    } else {
      ASSIGN_OR_RETURN(auto made,
                       Core<ecall::KmsImportKey>({r.key_id, 1, spec, std::move(*material)}));
      v.wrapped_material = std::move(made.wrapped);
    }
    RETURN_IF_ERROR(Stored(store->CreateKey(r, v)));
    if (!tags.empty()) RETURN_IF_ERROR(Stored(store->TagResource(r.key_id, tags)));
    k.versions[1] = v;
    json out = {{"KeyMetadata", Metadata(k)}};
    keys.emplace(r.key_id, std::move(k));
    return out;
  }

  StatusOr<json> Encrypt(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId"));
    ASSIGN_OR_RETURN(auto ctx, ReqContext(in.req, "EncryptionContext"));
    RETURN_IF_ERROR(Usable(in, *k, "Encrypt", "ENCRYPT_DECRYPT", ctx));
    RETURN_IF_ERROR(CheckAlgorithm(in.req, "EncryptionAlgorithm"));
    ASSIGN_OR_RETURN(Bytes pt, ReqBlob(in.req, "Plaintext", ecall::kMaxKmsPlaintext));
    ASSIGN_OR_RETURN(ecall::KeyRef ref, Ref(*k, k->record.current_version));
    ASSIGN_OR_RETURN(auto r, Core<ecall::KmsEncrypt>({std::move(ref), WipedBuffer(std::move(pt)), std::move(ctx)}));
    return json{{"CiphertextBlob", Base64Encode(r.blob)}, {"KeyId", k->record.arn}, {"EncryptionAlgorithm", "SYMMETRIC_DEFAULT"}};
  }

  // KeyForBlob finds the key a ciphertext names, checking it against an optional KeyId.
  StatusOr<CachedKey*> KeyForBlob(const json& req, const char* key_field, const Bytes& blob,
                                  ecall::CiphertextHeader* header) {
    auto h = ecall::ParseCiphertextHeader(blob);
    if (!h.ok())
      return Err(AwsError::kInvalidCiphertext, "the ciphertext is not a custos KMS ciphertext (" + h.status().message() + ")");
    *header = *h;
    auto it = keys.find(h->key_id);
    ASSIGN_OR_RETURN(auto want, OptString(req, key_field));
    if (want) {
      ASSIGN_OR_RETURN(CachedKey * named, Find(*want));
      if (it == keys.end() || &it->second != named)
        return Err(AwsError::kIncorrectKey, "the ciphertext was not encrypted under " + named->record.arn);
    }
    if (it == keys.end()) return Err(AwsError::kInvalidCiphertext, "the ciphertext names a key that does not exist");
    return &it->second;
  }

  static Status RequireVersion(const CachedKey& k, uint32_t version) {
    if (!k.versions.count(version))
      return Err(AwsError::kInvalidCiphertext, "the ciphertext names a key version that does not exist");
    return Status::Ok();
  }

  StatusOr<json> Decrypt(const Invocation& in) {
    ASSIGN_OR_RETURN(Bytes blob, ReqBlob(in.req, "CiphertextBlob", 6144));
    ecall::CiphertextHeader h;
    ASSIGN_OR_RETURN(CachedKey * k, KeyForBlob(in.req, "KeyId", blob, &h));
    *in.key_id = k->record.key_id;
    ASSIGN_OR_RETURN(auto ctx, ReqContext(in.req, "EncryptionContext"));
    RETURN_IF_ERROR(Usable(in, *k, "Decrypt", "ENCRYPT_DECRYPT", ctx));
    RETURN_IF_ERROR(CheckAlgorithm(in.req, "EncryptionAlgorithm"));
    RETURN_IF_ERROR(RequireVersion(*k, h.version));
    ASSIGN_OR_RETURN(ecall::KeyRef ref, Ref(*k, h.version));
    ASSIGN_OR_RETURN(auto r, Core<ecall::KmsDecrypt>({std::move(ref), std::move(blob), std::move(ctx)}));
    return json{{"KeyId", k->record.arn}, {"Plaintext", Base64Encode(r.plaintext.view())}, {"EncryptionAlgorithm", "SYMMETRIC_DEFAULT"}};
  }

  StatusOr<json> ReEncrypt(const Invocation& in) {
    const json& req = in.req;
    ASSIGN_OR_RETURN(Bytes blob, ReqBlob(req, "CiphertextBlob", 6144));
    ecall::CiphertextHeader h;
    ASSIGN_OR_RETURN(CachedKey * src, KeyForBlob(req, "SourceKeyId", blob, &h));
    ASSIGN_OR_RETURN(CachedKey * dst, Named(in, "DestinationKeyId"));
    ASSIGN_OR_RETURN(auto sctx, ReqContext(req, "SourceEncryptionContext"));
    ASSIGN_OR_RETURN(auto dctx, ReqContext(req, "DestinationEncryptionContext"));
    RETURN_IF_ERROR(Authorize(in.caller, *src, "ReEncryptFrom", sctx));
    RETURN_IF_ERROR(Authorize(in.caller, *dst, "ReEncryptTo", dctx));
    RETURN_IF_ERROR(RequireEnabled(*src));
    RETURN_IF_ERROR(RequireEnabled(*dst));
    RETURN_IF_ERROR(RequireUsage(*src, "ENCRYPT_DECRYPT", "ReEncrypt"));
    RETURN_IF_ERROR(RequireUsage(*dst, "ENCRYPT_DECRYPT", "ReEncrypt"));
    RETURN_IF_ERROR(CheckAlgorithm(req, "SourceEncryptionAlgorithm"));
    RETURN_IF_ERROR(CheckAlgorithm(req, "DestinationEncryptionAlgorithm"));
    RETURN_IF_ERROR(RequireVersion(*src, h.version));
    ASSIGN_OR_RETURN(ecall::KeyRef src_ref, Ref(*src, h.version));
    ASSIGN_OR_RETURN(ecall::KeyRef dst_ref, Ref(*dst, dst->record.current_version));
    ASSIGN_OR_RETURN(auto r, Core<ecall::KmsReEncrypt>({std::move(src_ref), std::move(blob), std::move(sctx),
                                                        std::move(dst_ref), std::move(dctx)}));
    return json{{"CiphertextBlob", Base64Encode(r.blob)},
                {"SourceKeyId", src->record.arn},
                {"KeyId", dst->record.arn},
                {"SourceEncryptionAlgorithm", "SYMMETRIC_DEFAULT"},
                {"DestinationEncryptionAlgorithm", "SYMMETRIC_DEFAULT"}};
  }

  StatusOr<json> GenerateDataKey(const Invocation& in, bool with_plaintext) {
    const char* op = with_plaintext ? "GenerateDataKey" : "GenerateDataKeyWithoutPlaintext";
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId"));
    ASSIGN_OR_RETURN(auto ctx, ReqContext(in.req, "EncryptionContext"));
    RETURN_IF_ERROR(Usable(in, *k, op, "ENCRYPT_DECRYPT", ctx));
    ASSIGN_OR_RETURN(auto spec, OptString(in.req, "KeySpec"));
    ASSIGN_OR_RETURN(auto n, OptInt(in.req, "NumberOfBytes"));
    if (spec && n) return Validation("specify either KeySpec or NumberOfBytes, not both");
    if (!spec && !n) return Validation("KeySpec or NumberOfBytes is required");
    uint32_t bytes = 0;
    if (spec) {
      if (*spec == "AES_256") bytes = 32;
      else if (*spec == "AES_128") bytes = 16;
      else return Validation("KeySpec must be AES_256 or AES_128");
    } else {
      if (*n < 1 || *n > static_cast<int64_t>(ecall::kMaxDataKeyBytes)) return Validation("NumberOfBytes must be between 1 and 1024");
      bytes = static_cast<uint32_t>(*n);
    }
    ASSIGN_OR_RETURN(ecall::KeyRef ref, Ref(*k, k->record.current_version));
    ASSIGN_OR_RETURN(auto r, Core<ecall::KmsGenerateDataKey>({std::move(ref), bytes, std::move(ctx), with_plaintext}));
    json out = {{"CiphertextBlob", Base64Encode(r.blob)}, {"KeyId", k->record.arn}};
    if (with_plaintext) out["Plaintext"] = Base64Encode(r.plaintext.view());
    return out;
  }
  StatusOr<json> GenerateDataKeyWithPlaintext(const Invocation& in) { return GenerateDataKey(in, true); }
  StatusOr<json> GenerateDataKeyWithoutPlaintext(const Invocation& in) { return GenerateDataKey(in, false); }

  StatusOr<json> GenerateRandom(const Invocation& in) {
    ASSIGN_OR_RETURN(auto n, OptInt(in.req, "NumberOfBytes"));
    if (!n) return Validation("NumberOfBytes is required");
    if (*n < 1 || *n > static_cast<int64_t>(ecall::kMaxRandomBytes)) return Validation("NumberOfBytes must be between 1 and 1024");
    ASSIGN_OR_RETURN(auto store_id, OptString(in.req, "CustomKeyStoreId"));
    if (store_id) return Err(AwsError::kUnsupportedOperation, "custom key stores are not supported");
    ASSIGN_OR_RETURN(auto r, Core<ecall::KmsGenerateRandom>({static_cast<uint32_t>(*n)}));
    return json{{"Plaintext", Base64Encode(r.random)}};
  }

  static StatusOr<Bytes> SignInputs(const json& req, std::string* type) {
    ASSIGN_OR_RETURN(auto t, OptString(req, "MessageType"));
    *type = t.value_or("RAW");
    if (*type != "RAW" && *type != "DIGEST") return Validation("MessageType must be RAW or DIGEST");
    ASSIGN_OR_RETURN(auto alg, OptString(req, "SigningAlgorithm"));
    if (!alg) return Validation("SigningAlgorithm is required");
    if (*alg != "ECDSA_SHA_256")
      return Err(AwsError::kInvalidKeyUsage, "SigningAlgorithm " + alg->substr(0, 64) + " is not valid for this key");
    ASSIGN_OR_RETURN(Bytes m, ReqBlob(req, "Message", ecall::kMaxMacMessage));
    if (*type == "DIGEST" && m.size() != 32) return Validation("a DIGEST message for ECDSA_SHA_256 must be 32 bytes");
    return m;
  }

  StatusOr<json> Sign(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId"));
    RETURN_IF_ERROR(Usable(in, *k, "Sign", "SIGN_VERIFY"));
    std::string type;
    ASSIGN_OR_RETURN(Bytes m, SignInputs(in.req, &type));
    ASSIGN_OR_RETURN(ecall::KeyRef ref, Ref(*k, k->record.current_version));
    ASSIGN_OR_RETURN(auto r, Core<ecall::KmsSign>({std::move(ref), std::move(m), type}));
    return json{{"KeyId", k->record.arn}, {"Signature", Base64Encode(r.signature)}, {"SigningAlgorithm", "ECDSA_SHA_256"}};
  }

  StatusOr<json> Verify(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId"));
    RETURN_IF_ERROR(Usable(in, *k, "Verify", "SIGN_VERIFY"));
    std::string type;
    ASSIGN_OR_RETURN(Bytes m, SignInputs(in.req, &type));
    ASSIGN_OR_RETURN(Bytes sig, ReqBlob(in.req, "Signature", 256));
    ASSIGN_OR_RETURN(ecall::KeyRef ref, Ref(*k, k->record.current_version));
    RETURN_IF_ERROR(Core<ecall::KmsVerify>({std::move(ref), std::move(m), type, std::move(sig)}).status());
    return json{{"KeyId", k->record.arn}, {"SignatureValid", true}, {"SigningAlgorithm", "ECDSA_SHA_256"}};
  }

  StatusOr<json> GetPublicKey(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId"));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "GetPublicKey"));
    RETURN_IF_ERROR(RequireEnabled(*k));
    if (k->record.key_spec != ecall::kSpecEccP256)
      return Err(AwsError::kUnsupportedOperation, k->record.arn + " is not an asymmetric key");
    const store::KeyVersion& v = k->versions.at(k->record.current_version);
    return json{{"KeyId", k->record.arn},
                {"PublicKey", Base64Encode(v.public_key)},
                {"CustomerMasterKeySpec", k->record.key_spec},
                {"KeySpec", k->record.key_spec},
                {"KeyUsage", k->record.key_usage},
                {"SigningAlgorithms", {"ECDSA_SHA_256"}}};
  }

  static StatusOr<Bytes> MacInputs(const json& req) {
    ASSIGN_OR_RETURN(auto alg, OptString(req, "MacAlgorithm"));
    if (!alg) return Validation("MacAlgorithm is required");
    if (*alg != "HMAC_SHA_256")
      return Err(AwsError::kInvalidKeyUsage, "MacAlgorithm " + alg->substr(0, 64) + " is not valid for this key");
    return ReqBlob(req, "Message", ecall::kMaxMacMessage);
  }

  StatusOr<json> GenerateMac(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId"));
    RETURN_IF_ERROR(Usable(in, *k, "GenerateMac", "GENERATE_VERIFY_MAC"));
    ASSIGN_OR_RETURN(Bytes m, MacInputs(in.req));
    ASSIGN_OR_RETURN(ecall::KeyRef ref, Ref(*k, k->record.current_version));
    ASSIGN_OR_RETURN(auto r, Core<ecall::KmsGenerateMac>({std::move(ref), std::move(m)}));
    return json{{"KeyId", k->record.arn}, {"Mac", Base64Encode(r.mac)}, {"MacAlgorithm", "HMAC_SHA_256"}};
  }

  StatusOr<json> VerifyMac(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId"));
    RETURN_IF_ERROR(Usable(in, *k, "VerifyMac", "GENERATE_VERIFY_MAC"));
    ASSIGN_OR_RETURN(Bytes m, MacInputs(in.req));
    ASSIGN_OR_RETURN(Bytes mac, ReqBlob(in.req, "Mac", 64));
    ASSIGN_OR_RETURN(ecall::KeyRef ref, Ref(*k, k->record.current_version));
    RETURN_IF_ERROR(Core<ecall::KmsVerifyMac>({std::move(ref), std::move(m), std::move(mac)}).status());
    return json{{"KeyId", k->record.arn}, {"MacValid", true}, {"MacAlgorithm", "HMAC_SHA_256"}};
  }

  // ---- the KMIP server's key operations (appliance/kmip, docs/kmip.md) ----
  // A KMIP object is a custos key; its KMIP-only attributes are "kmip:" tags. Its KMIP state is
  // the key's state read through the tag kmip:state: Enabled is Active; Disabled is the tag's
  // PreActive, Deactivated or Compromised (Deactivated without one); PendingDeletion is
  // Destroyed (Destroyed Compromised after a compromise).

  StatusOr<std::vector<store::Tag>> KeyTags(const CachedKey& k) {
    auto tags = store->ListTags(k.record.key_id);
    if (!tags.ok()) return Err(AwsError::kInternal, "the key store could not list tags");
    return std::move(tags).value();
  }

  static json TagsJson(const std::vector<store::Tag>& tags) {
    json out = json::object();
    for (const store::Tag& t : tags) out[t.key] = t.value;
    return out;
  }

  static std::string KmipFlavor(const std::vector<store::Tag>& tags) {
    for (const store::Tag& t : tags)
      if (t.key == "kmip:state") return t.value;
    return "";
  }

  StatusOr<json> KmipDescribe(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "DescribeKey"));
    ASSIGN_OR_RETURN(auto tags, KeyTags(*k));
    return json{{"KeyMetadata", Metadata(*k)}, {"Tags", TagsJson(tags)}};
  }

  // KmipList: every key with its tags (Locate filters them; like ListKeys, no key policy is
  // consulted to list, and a key's attributes are still read only through KmipDescribe).
  StatusOr<json> KmipList(const Invocation&) {
    json all = json::array();
    for (auto& [id, k] : keys) {
      ASSIGN_OR_RETURN(auto tags, KeyTags(k));
      all.push_back({{"KeyMetadata", Metadata(k)}, {"Tags", TagsJson(tags)}});
    }
    return json{{"Keys", std::move(all)}};
  }

  Status SetKmipTags(const CachedKey& k, std::vector<store::Tag> tags) {
    return Stored(store->TagResource(k.record.key_id, tags));
  }

  StatusOr<json> KmipActivate(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "EnableKey"));
    ASSIGN_OR_RETURN(auto tags, KeyTags(*k));
    if (k->record.key_state != "Disabled" || KmipFlavor(tags) != "PreActive")
      return Err(AwsError::kInvalidState, "only a Pre-Active object can be activated");
    // From now on a disabled key reads as Deactivated (a KMS DisableKey included).
    RETURN_IF_ERROR(SetKmipTags(*k, {{"kmip:state", "Deactivated"}, {"kmip:activation", std::to_string(Now())}}));
    store::KeyRecord r = k->record;
    r.key_state = "Enabled";
    RETURN_IF_ERROR(UpdateRecord(*k, r));
    return json::object();
  }

  StatusOr<json> KmipRevoke(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "DisableKey"));
    RETURN_IF_ERROR(RequireNotPendingDeletion(*k));
    const bool compromised = in.req.value("Compromised", false);
    std::vector<store::Tag> tags = {{"kmip:state", compromised ? "Compromised" : "Deactivated"},
                                    {"kmip:deactivation", std::to_string(Now())}};
    if (compromised) tags.push_back({"kmip:compromise", std::to_string(Now())});
    RETURN_IF_ERROR(SetKmipTags(*k, std::move(tags)));
    if (k->record.key_state != "Disabled") {
      store::KeyRecord r = k->record;
      r.key_state = "Disabled";
      RETURN_IF_ERROR(UpdateRecord(*k, r));
    }
    return json::object();
  }

  // KmipDestroy: KMIP destroys only an object that is not Active; custos schedules the key's
  // deletion with the shortest window (7 days), as ScheduleKeyDeletion would: until then the
  // object reads as Destroyed and CancelKeyDeletion (KMS API) can still bring it back.
  StatusOr<json> KmipDestroy(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "ScheduleKeyDeletion"));
    if (k->record.key_state == "Enabled")
      return Err(AwsError::kInvalidState, "an Active object cannot be destroyed: revoke it first");
    if (k->record.key_state == "PendingDeletion") return Err(AwsError::kInvalidState, "the object is already destroyed");
    RETURN_IF_ERROR(SetKmipTags(*k, {{"kmip:destroy", std::to_string(Now())}}));
    store::KeyRecord r = k->record;
    r.key_state = "PendingDeletion";
    r.pending_window_days = 7;
    r.deletion_date = Now() + 7 * kDay;
    RETURN_IF_ERROR(UpdateRecord(*k, r));
    return json{{"DeletionDate", *r.deletion_date}};
  }


  // KmipCrypt reads the fields both directions share and checks policy, state and spec.
  struct KmipCryptArgs {
    CachedKey* key;
    uint32_t bits, mode;
    Bytes iv, aad;
  };
  StatusOr<KmipCryptArgs> KmipCryptCommon(const Invocation& in, std::string_view op) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, op));
    RETURN_IF_ERROR(RequireEnabled(*k));
    if (k->record.key_spec != ecall::kSpecSymmetric && k->record.key_spec != ecall::kSpecKmipAes)
      return Err(AwsError::kInvalidKeyUsage, k->record.arn + " is a " + k->record.key_spec + " key, not an AES key");
    KmipCryptArgs a{k, 256, ecall::kKmipModeGcm, {}, {}};
    ASSIGN_OR_RETURN(auto bits, OptInt(in.req, "Bits"));
    ASSIGN_OR_RETURN(auto mode, OptInt(in.req, "Mode"));
    if (bits) a.bits = static_cast<uint32_t>(*bits);
    if (mode) a.mode = static_cast<uint32_t>(*mode);
    ASSIGN_OR_RETURN(a.iv, XksBlob(in.req, "Iv", 16, false));
    ASSIGN_OR_RETURN(a.aad, XksBlob(in.req, "Aad", 8192, false));
    return a;
  }

  StatusOr<json> KmipEncrypt(const Invocation& in) {
    ASSIGN_OR_RETURN(KmipCryptArgs a, KmipCryptCommon(in, "Encrypt"));
    ASSIGN_OR_RETURN(Bytes data, XksBlob(in.req, "Data", ecall::kMaxKmipData, false));
    ASSIGN_OR_RETURN(auto tag_length, OptInt(in.req, "TagLength"));
    ASSIGN_OR_RETURN(ecall::KeyRef ref, Ref(*a.key, a.key->record.current_version));
    uint32_t tl = a.mode == ecall::kKmipModeGcm ? static_cast<uint32_t>(tag_length.value_or(16)) : 0;
    ASSIGN_OR_RETURN(auto r, Core<ecall::KmipEncrypt>({std::move(ref), a.bits, a.mode, std::move(a.iv),
                                                        WipedBuffer(std::move(data)), std::move(a.aad), tl}));
    return json{{"Data", Base64Encode(r.ciphertext)}, {"Iv", Base64Encode(r.iv)}, {"Tag", Base64Encode(r.tag)}};
  }

  // KMIP ciphertexts do not name a key version: KmipDecrypt uses the current one (a rotated
  // key's older KMIP ciphertexts do not decrypt; docs/kmip.md says so).
  StatusOr<json> KmipDecrypt(const Invocation& in) {
    ASSIGN_OR_RETURN(KmipCryptArgs a, KmipCryptCommon(in, "Decrypt"));
    ASSIGN_OR_RETURN(Bytes data, XksBlob(in.req, "Data", ecall::kMaxKmipData + 16, false));
    ASSIGN_OR_RETURN(Bytes tag, XksBlob(in.req, "Tag", 16, false));
    ASSIGN_OR_RETURN(ecall::KeyRef ref, Ref(*a.key, a.key->record.current_version));
    ASSIGN_OR_RETURN(auto r, Core<ecall::KmipDecrypt>({std::move(ref), a.bits, a.mode, std::move(a.iv),
                                                        std::move(data), std::move(a.aad), std::move(tag)}));
    return json{{"Data", Base64Encode(r.plaintext.view())}};
  }

  // ---- the XKS proxy API (docs/xks.md): the key an external key id names ----

  // XksNamed finds the key `externalKeyId` names: a key id, or an alias name without "alias/".
  StatusOr<CachedKey*> XksNamed(const Invocation& in) {
    ASSIGN_OR_RETURN(std::string ext, ReqString(in.req, "externalKeyId"));
    std::string id = ext;
    if (!IsKeyId(ext)) {
      auto a = aliases.find("alias/" + ext);
      if (a == aliases.end())
        return Err(AwsError::kNotFound, "external key " + ext.substr(0, 128) +
                                            " is not found (neither a key id nor the name of an alias)");
      id = a->second.key_id;
    }
    auto it = keys.find(id);
    if (it == keys.end()) return Err(AwsError::kNotFound, "external key " + ext.substr(0, 128) + " is not found");
    *in.key_id = id;
    return &it->second;
  }

  // XksUsable: the key policy allows `op` to the credential's principal, the key is enabled
  // (InvalidStateException otherwise: XKS has no DisabledException) and AES-256.
  Status XksUsable(const Invocation& in, const CachedKey& k, std::string_view op) {
    RETURN_IF_ERROR(Authorize(in.caller, k, op));
    if (k.record.key_state != "Enabled")
      return Err(AwsError::kInvalidState, k.record.arn + " is " + k.record.key_state);
    if (k.record.key_spec != ecall::kSpecSymmetric)
      return Err(AwsError::kInvalidKeyUsage, k.record.arn + " is a " + k.record.key_spec +
                                                 " key; the XKS proxy API encrypts with AES-256 keys only");
    ASSIGN_OR_RETURN(auto alg, OptString(in.req, "encryptionAlgorithm"));
    if (!alg) return Validation("encryptionAlgorithm is required");
    if (*alg != "AES_GCM") return Err(AwsError::kUnsupportedOperation, "encryptionAlgorithm must be AES_GCM");
    return Status::Ok();
  }

  // XksBlob reads an optional base64 field; beyond `max_len` is UnsupportedOperationException
  // (a size above what this implementation supports, the spec's error for it).
  // An absent optional field reads as empty; `present` (if given) says whether it was there.
  static StatusOr<Bytes> XksBlob(const json& req, const char* name, size_t max_len, bool required,
                                 bool* present = nullptr) {
    ASSIGN_OR_RETURN(auto v, OptString(req, name));
    if (present != nullptr) *present = v.has_value();
    if (!v) {
      if (required) return Validation(std::string(name) + " is required");
      return Bytes{};
    }
    auto b = Base64Decode(*v);
    if (!b.ok()) return Validation(std::string(name) + " is not valid base64");
    if (b->size() > max_len)
      return Err(AwsError::kUnsupportedOperation,
                 std::string(name) + " is longer than " + std::to_string(max_len) + " bytes");
    return std::move(b).value();
  }

  // XksMetadata is custos's ciphertextMetadata: u8 format (1) || u32 key version.
  static Bytes XksMetadata(uint32_t version) {
    ByteWriter w;
    w.U8(1).U32(version);
    return w.Take();
  }

  // XksAad is the spec's AES-GCM AAD: u16 len(aad) || aad || u8 len(metadata) || metadata.
  static Bytes XksAad(const Bytes& aad, const Bytes& metadata) {
    ByteWriter w;
    w.U16(static_cast<uint16_t>(aad.size())).Raw(aad).U8(static_cast<uint8_t>(metadata.size())).Raw(metadata);
    return w.Take();
  }

  StatusOr<json> XksGetKeyMetadata(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, XksNamed(in));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "DescribeKey"));
    const store::KeyRecord& r = k->record;
    json usage = json::array();
    std::string spec = r.key_spec;
    if (r.key_spec == ecall::kSpecSymmetric) {
      spec = "AES_256";
      usage = {"ENCRYPT", "DECRYPT"};
    } else {
      usage = {"SIGN", "VERIFY"};
    }
    return json{{"keySpec", spec}, {"keyUsage", usage}, {"keyStatus", r.key_state == "Enabled" ? "ENABLED" : "DISABLED"}};
  }

  StatusOr<json> XksEncrypt(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, XksNamed(in));
    RETURN_IF_ERROR(XksUsable(in, *k, "Encrypt"));
    ASSIGN_OR_RETURN(auto cdiv_alg, OptString(in.req, "ciphertextDataIntegrityValueAlgorithm"));
    if (cdiv_alg && *cdiv_alg != "SHA_256")
      return Err(AwsError::kUnsupportedOperation, "ciphertextDataIntegrityValueAlgorithm must be SHA_256");
    ASSIGN_OR_RETURN(Bytes plaintext, XksBlob(in.req, "plaintext", ecall::kMaxXksPlaintext, true));
    if (plaintext.empty()) return Validation("plaintext must not be empty");
    ASSIGN_OR_RETURN(const Bytes given_aad, XksBlob(in.req, "additionalAuthenticatedData", 8192, false));
    const uint32_t version = k->record.current_version;
    const Bytes metadata = XksMetadata(version);
    ASSIGN_OR_RETURN(ecall::KeyRef ref, Ref(*k, version));
    const Bytes full_aad = XksAad(given_aad, metadata);
    ASSIGN_OR_RETURN(auto r, Core<ecall::XksEncrypt>({ref, WipedBuffer(Bytes(plaintext)), full_aad}));
    json out = {{"ciphertext", Base64Encode(r.ciphertext)},
                {"ciphertextMetadata", Base64Encode(metadata)},
                {"initializationVector", Base64Encode(r.iv)},
                {"authenticationTag", Base64Encode(r.tag)}};
    if (cdiv_alg) {
      // Appendix C: the CDIV over the fields as they will be returned, computed before the
      // check that they decrypt back to the plaintext (a later corruption is then caught).
      out["ciphertextDataIntegrityValue"] =
          Base64Encode(crypto::Sha256Bytes(Concat({given_aad, metadata, r.iv, r.ciphertext, r.tag})));
      auto back = Core<ecall::XksDecrypt>({std::move(ref), r.iv, r.ciphertext, r.tag, full_aad});
      const bool same = back.ok() && back->plaintext.view().size() == plaintext.size() &&
                        std::equal(plaintext.begin(), plaintext.end(), back->plaintext.view().begin());
      if (!same) {
        WipeBytes(plaintext);
        return Err(AwsError::kInternal, "the ciphertext did not decrypt back to the plaintext; it was not returned");
      }
    }
    WipeBytes(plaintext);
    return out;
  }

  StatusOr<json> XksDecrypt(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, XksNamed(in));
    RETURN_IF_ERROR(XksUsable(in, *k, "Decrypt"));
    ASSIGN_OR_RETURN(Bytes ciphertext, XksBlob(in.req, "ciphertext", ecall::kMaxXksPlaintext, true));
    if (ciphertext.empty()) return Err(AwsError::kInvalidCiphertext, "the ciphertext is empty");
    ASSIGN_OR_RETURN(Bytes iv, XksBlob(in.req, "initializationVector", 16, true));
    ASSIGN_OR_RETURN(Bytes tag, XksBlob(in.req, "authenticationTag", 16, true));
    ASSIGN_OR_RETURN(Bytes aad, XksBlob(in.req, "additionalAuthenticatedData", 8192, false));
    ASSIGN_OR_RETURN(Bytes metadata, XksBlob(in.req, "ciphertextMetadata", 20, false));
    // Every ciphertext this proxy makes carries its metadata: format 1 and the key version.
    if (metadata.size() != 5 || metadata[0] != 1)
      return Err(AwsError::kInvalidCiphertext,
                 "the ciphertextMetadata is missing or not this key manager's (format 1, key version)");
    const uint32_t version = (uint32_t{metadata[1]} << 24) | (uint32_t{metadata[2]} << 16) |
                             (uint32_t{metadata[3]} << 8) | uint32_t{metadata[4]};
    RETURN_IF_ERROR(RequireVersion(*k, version));
    ASSIGN_OR_RETURN(ecall::KeyRef ref, Ref(*k, version));
    ASSIGN_OR_RETURN(auto r, Core<ecall::XksDecrypt>({std::move(ref), std::move(iv), std::move(ciphertext),
                                                      std::move(tag), XksAad(aad, metadata)}));
    return json{{"plaintext", Base64Encode(r.plaintext.view())}};
  }

  StatusOr<json> DescribeKey(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId"));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "DescribeKey"));
    return json{{"KeyMetadata", Metadata(*k)}};
  }

  StatusOr<json> ListKeys(const Invocation& in) {
    std::vector<json> all;
    for (auto& [id, k] : keys) all.push_back({{"KeyId", id}, {"KeyArn", k.record.arn}});
    ASSIGN_OR_RETURN(auto page, Page(all, in.req, 100));
    return PageOut("Keys", std::move(page));
  }

  StatusOr<json> SetState(const Invocation& in, bool enable) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, enable ? "EnableKey" : "DisableKey"));
    RETURN_IF_ERROR(RequireNotPendingDeletion(*k));
    store::KeyRecord r = k->record;
    r.key_state = enable ? "Enabled" : "Disabled";
    RETURN_IF_ERROR(UpdateRecord(*k, r));
    return json::object();
  }
  StatusOr<json> EnableKey(const Invocation& in) { return SetState(in, true); }
  StatusOr<json> DisableKey(const Invocation& in) { return SetState(in, false); }

  StatusOr<json> ScheduleKeyDeletion(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "ScheduleKeyDeletion"));
    ASSIGN_OR_RETURN(auto window, OptInt(in.req, "PendingWindowInDays"));
    int64_t days = window.value_or(30);
    if (days < 7 || days > 30) return Validation("PendingWindowInDays must be between 7 and 30");
    RETURN_IF_ERROR(RequireNotPendingDeletion(*k));
    store::KeyRecord r = k->record;
    r.key_state = "PendingDeletion";
    r.pending_window_days = static_cast<int32_t>(days);
    r.deletion_date = Now() + days * kDay;
    RETURN_IF_ERROR(UpdateRecord(*k, r));
    return json{{"KeyId", r.arn}, {"DeletionDate", *r.deletion_date}, {"KeyState", "PendingDeletion"},
                {"PendingWindowInDays", days}};
  }

  StatusOr<json> CancelKeyDeletion(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "CancelKeyDeletion"));
    if (k->record.key_state != "PendingDeletion")
      return Err(AwsError::kInvalidState, k->record.arn + " is not pending deletion");
    store::KeyRecord r = k->record;
    r.key_state = "Disabled";  // as AWS does: the key comes back disabled
    r.deletion_date.reset();
    r.pending_window_days = 0;
    RETURN_IF_ERROR(UpdateRecord(*k, r));
    return json{{"KeyId", r.arn}};
  }

  StatusOr<json> SetRotation(const Invocation& in, bool enable) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, enable ? "EnableKeyRotation" : "DisableKeyRotation"));
    RETURN_IF_ERROR(RequireEnabledForRotation(*k));
    RETURN_IF_ERROR(RequireRotatable(*k));
    store::KeyRecord r = k->record;
    r.rotation_enabled = enable;
    if (enable) {
      ASSIGN_OR_RETURN(auto period_field, OptInt(in.req, "RotationPeriodInDays"));
      int64_t period = period_field.value_or(365);
      if (period < 90 || period > 2560) return Validation("RotationPeriodInDays must be between 90 and 2560");
      r.rotation_period_days = static_cast<int32_t>(period);
      r.next_rotation_date = Now() + period * kDay;
    } else {
      r.next_rotation_date.reset();
    }
    RETURN_IF_ERROR(UpdateRecord(*k, r));
    return json::object();
  }
  StatusOr<json> EnableKeyRotation(const Invocation& in) { return SetRotation(in, true); }
  StatusOr<json> DisableKeyRotation(const Invocation& in) { return SetRotation(in, false); }

  StatusOr<json> GetKeyRotationStatus(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "GetKeyRotationStatus"));
    RETURN_IF_ERROR(RequireNotPendingDeletion(*k));
    RETURN_IF_ERROR(RequireRotatable(*k));
    json out = {{"KeyId", k->record.arn}, {"KeyRotationEnabled", k->record.rotation_enabled}};
    if (k->record.rotation_enabled) {
      out["RotationPeriodInDays"] = k->record.rotation_period_days;
      if (k->record.next_rotation_date) out["NextRotationDate"] = *k->record.next_rotation_date;
    }
    return out;
  }

  // Rotate adds a version and makes it current; new ciphertexts use it, old ones keep
  // naming their version.
  Status Rotate(CachedKey& k, const std::string& type) {
    uint32_t next = k.versions.rbegin()->first + 1;
    ASSIGN_OR_RETURN(auto made, Core<ecall::KmsCreateKey>({k.record.key_id, next, k.record.key_spec}));
    store::KeyVersion v{k.record.key_id, next, std::move(made.wrapped), std::move(made.public_key), Now(), type};
    store::KeyRecord r = k.record;
    r.current_version = next;
    if (r.rotation_enabled) r.next_rotation_date = Now() + int64_t{r.rotation_period_days} * kDay;
    RETURN_IF_ERROR(Stored(store->AddKeyVersion(r, v)));
    r.revision = k.record.revision + 1;
    k.record = r;
    k.versions[next] = v;
    return Status::Ok();
  }

  StatusOr<json> RotateKeyOnDemand(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "RotateKeyOnDemand"));
    RETURN_IF_ERROR(RequireEnabledForRotation(*k));
    RETURN_IF_ERROR(RequireRotatable(*k));
    size_t on_demand = 0;
    for (auto& [n, v] : k->versions) on_demand += v.rotation_type == "ON_DEMAND";
    if (on_demand >= 10) return Err(AwsError::kLimitExceeded, "a key can be rotated on demand at most 10 times");
    RETURN_IF_ERROR(Rotate(*k, "ON_DEMAND"));
    return json{{"KeyId", k->record.arn}};
  }

  StatusOr<json> ListKeyRotations(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "ListKeyRotations"));
    RETURN_IF_ERROR(RequireRotatable(*k));
    std::vector<json> all;
    for (auto& [n, v] : k->versions)
      if (n > 1) all.push_back({{"KeyId", k->record.arn}, {"RotationDate", v.created}, {"RotationType", v.rotation_type}});
    ASSIGN_OR_RETURN(auto page, Page(all, in.req, 100));
    return PageOut("Rotations", std::move(page));
  }

  StatusOr<json> CreateAlias(const Invocation& in) {
    ASSIGN_OR_RETURN(std::string name, ReqString(in.req, "AliasName"));
    RETURN_IF_ERROR(CheckAliasName(name));
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "TargetKeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "CreateAlias"));
    RETURN_IF_ERROR(RequireNotPendingDeletion(*k));
    Status exists = Err(AwsError::kAlreadyExists, "an alias with the name " + name + " already exists");
    if (aliases.count(name)) return exists;
    store::AliasRecord a{name, k->record.key_id, Now(), Now()};
    Status s = store->CreateAlias(a);
    if (s.code() == ErrorCode::kAlreadyExists) return exists;
    RETURN_IF_ERROR(Stored(s));
    aliases[name] = a;
    return json::object();
  }

  StatusOr<json> UpdateAlias(const Invocation& in) {
    ASSIGN_OR_RETURN(std::string name, ReqString(in.req, "AliasName"));
    RETURN_IF_ERROR(CheckAliasName(name));
    auto it = aliases.find(name);
    if (it == aliases.end()) return Err(AwsError::kNotFound, "alias " + name + " is not found");
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "TargetKeyId", false));
    auto old = keys.find(it->second.key_id);
    if (old != keys.end() && old->second.record.key_usage != k->record.key_usage)
      return Validation("the alias's new key must have the same KeyUsage as its current key");
    // KMIP_AES shares ENCRYPT_DECRYPT with SYMMETRIC_DEFAULT but serves none of its operations.
    if (old != keys.end() && (old->second.record.key_spec == ecall::kSpecKmipAes) !=
                                 (k->record.key_spec == ecall::kSpecKmipAes))
      return Validation(
          "the alias's new key must have the same KeySpec as its current key (KMIP_AES keys serve "
          "only KMIP)");
    if (old != keys.end()) RETURN_IF_ERROR(Authorize(in.caller, old->second, "UpdateAlias"));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "UpdateAlias"));
    RETURN_IF_ERROR(RequireNotPendingDeletion(*k));
    int64_t now = Now();
    RETURN_IF_ERROR(Stored(store->UpdateAlias(name, k->record.key_id, now)));
    it->second.key_id = k->record.key_id;
    it->second.last_updated_date = now;
    return json::object();
  }

  StatusOr<json> DeleteAlias(const Invocation& in) {
    ASSIGN_OR_RETURN(std::string name, ReqString(in.req, "AliasName"));
    auto it = aliases.find(name);
    if (it == aliases.end()) return Err(AwsError::kNotFound, "alias " + name.substr(0, 256) + " is not found");
    *in.key_id = it->second.key_id;
    auto k = keys.find(it->second.key_id);
    if (k != keys.end()) RETURN_IF_ERROR(Authorize(in.caller, k->second, "DeleteAlias"));
    RETURN_IF_ERROR(Stored(store->DeleteAlias(name)));
    aliases.erase(it);
    return json::object();
  }

  StatusOr<json> ListAliases(const Invocation& in) {
    std::optional<std::string> filter;
    ASSIGN_OR_RETURN(auto ref, OptString(in.req, "KeyId"));
    if (ref) {
      ASSIGN_OR_RETURN(CachedKey * k, Find(*ref, false));
      *in.key_id = k->record.key_id;
      RETURN_IF_ERROR(Authorize(in.caller, *k, "ListAliases"));
      filter = k->record.key_id;
    }
    std::vector<json> all;
    for (auto& [name, a] : aliases) {
      if (filter && a.key_id != *filter) continue;
      all.push_back({{"AliasName", name}, {"AliasArn", AliasArn(name)}, {"TargetKeyId", a.key_id},
                     {"CreationDate", a.creation_date}, {"LastUpdatedDate", a.last_updated_date}});
    }
    ASSIGN_OR_RETURN(auto page, Page(all, in.req, 50));
    return PageOut("Aliases", std::move(page));
  }

  StatusOr<json> TagResource(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "TagResource"));
    RETURN_IF_ERROR(RequireNotPendingDeletion(*k));
    ASSIGN_OR_RETURN(auto tags, ReqTags(in.req));
    if (tags.empty()) return Validation("Tags is required");
    RETURN_IF_ERROR(CheckReservedTags(in.caller, tags));
    RETURN_IF_ERROR(Stored(store->TagResource(k->record.key_id, tags)));
    return json::object();
  }

  StatusOr<json> UntagResource(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "UntagResource"));
    RETURN_IF_ERROR(RequireNotPendingDeletion(*k));
    const json* f = Field(in.req, "TagKeys");
    if (f == nullptr || !f->is_array() || f->empty()) return Validation("TagKeys must be a non-empty list");
    std::vector<std::string> names;
    for (const json& t : *f) {
      if (!t.is_string()) return Err(AwsError::kSerialization, "TagKeys entries must be strings");
      names.push_back(t.get<std::string>());
      if (!in.caller.kmip && names.back().starts_with(kKmipTagPrefix))
        return Validation("tag keys beginning with kmip: are reserved for KMIP attributes");
    }
    RETURN_IF_ERROR(Stored(store->UntagResource(k->record.key_id, names)));
    return json::object();
  }

  StatusOr<json> ListResourceTags(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "ListResourceTags"));
    auto tags = store->ListTags(k->record.key_id);
    if (!tags.ok()) return Err(AwsError::kInternal, "the key store could not list tags");
    std::vector<json> all;
    for (auto& t : *tags) all.push_back({{"TagKey", t.key}, {"TagValue", t.value}});
    ASSIGN_OR_RETURN(auto page, Page(all, in.req, 50));
    return PageOut("Tags", std::move(page));
  }

  StatusOr<json> GetKeyPolicy(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "GetKeyPolicy"));
    RETURN_IF_ERROR(CheckPolicyName(in.req));
    return json{{"Policy", k->record.policy}, {"PolicyName", "default"}};
  }

  StatusOr<json> PutKeyPolicy(const Invocation& in) {
    ASSIGN_OR_RETURN(CachedKey * k, Named(in, "KeyId", false));
    RETURN_IF_ERROR(Authorize(in.caller, *k, "PutKeyPolicy"));
    RETURN_IF_ERROR(RequireNotPendingDeletion(*k));
    RETURN_IF_ERROR(CheckPolicyName(in.req));
    ASSIGN_OR_RETURN(std::string doc, ReqString(in.req, "Policy"));
    auto policy = KeyPolicy::Parse(doc);
    if (!policy.ok()) return Err(AwsError::kMalformedPolicyDocument, policy.status().message());
    CachedKey probe{k->record, std::make_shared<const KeyPolicy>(std::move(policy).value()), {}};
    ASSIGN_OR_RETURN(bool bypass, OptBool(in.req, "BypassPolicyLockoutSafetyCheck", false));
    if (!bypass) RETURN_IF_ERROR(LockoutCheck(probe, in.caller));
    store::KeyRecord r = k->record;
    r.policy = doc;
    RETURN_IF_ERROR(UpdateRecord(*k, r));
    k->policy = probe.policy;
    return json::object();
  }
};

// ---- dispatch: one table ----

namespace {

enum class Lock { kShared, kExclusive };

struct Operation {
  std::string_view name;
  // Reads of the cache share the lock; anything that changes keys, versions, aliases or
  // policies takes it alone.
  Lock lock;
  // Whether the operation changes state (keys, aliases, policies, tags): its audit entry is
  // then fsynced before the answer, whatever [audit] sync says.
  bool changes_state;
  StatusOr<json> (KmsService::Impl::*run)(const Invocation&);
};

using I = KmsService::Impl;
constexpr Operation kOperations[] = {
    {"CreateKey", Lock::kExclusive, true, &I::CreateKey},
    {"DescribeKey", Lock::kShared, false, &I::DescribeKey},
    {"ListKeys", Lock::kShared, false, &I::ListKeys},
    {"CreateAlias", Lock::kExclusive, true, &I::CreateAlias},
    {"UpdateAlias", Lock::kExclusive, true, &I::UpdateAlias},
    {"DeleteAlias", Lock::kExclusive, true, &I::DeleteAlias},
    {"ListAliases", Lock::kShared, false, &I::ListAliases},
    {"EnableKey", Lock::kExclusive, true, &I::EnableKey},
    {"DisableKey", Lock::kExclusive, true, &I::DisableKey},
    {"ScheduleKeyDeletion", Lock::kExclusive, true, &I::ScheduleKeyDeletion},
    {"CancelKeyDeletion", Lock::kExclusive, true, &I::CancelKeyDeletion},
    {"EnableKeyRotation", Lock::kExclusive, true, &I::EnableKeyRotation},
    {"DisableKeyRotation", Lock::kExclusive, true, &I::DisableKeyRotation},
    {"GetKeyRotationStatus", Lock::kShared, false, &I::GetKeyRotationStatus},
    {"RotateKeyOnDemand", Lock::kExclusive, true, &I::RotateKeyOnDemand},
    {"ListKeyRotations", Lock::kShared, false, &I::ListKeyRotations},
    {"Encrypt", Lock::kShared, false, &I::Encrypt},
    {"Decrypt", Lock::kShared, false, &I::Decrypt},
    {"ReEncrypt", Lock::kShared, false, &I::ReEncrypt},
    {"GenerateDataKey", Lock::kShared, false, &I::GenerateDataKeyWithPlaintext},
    {"GenerateDataKeyWithoutPlaintext", Lock::kShared, false, &I::GenerateDataKeyWithoutPlaintext},
    {"GenerateRandom", Lock::kShared, false, &I::GenerateRandom},
    {"Sign", Lock::kShared, false, &I::Sign},
    {"Verify", Lock::kShared, false, &I::Verify},
    {"GetPublicKey", Lock::kShared, false, &I::GetPublicKey},
    {"GenerateMac", Lock::kShared, false, &I::GenerateMac},
    {"VerifyMac", Lock::kShared, false, &I::VerifyMac},
    // Tags live in the store only (not in the cache), so tag changes share the lock.
    {"TagResource", Lock::kShared, true, &I::TagResource},
    {"UntagResource", Lock::kShared, true, &I::UntagResource},
    {"ListResourceTags", Lock::kShared, false, &I::ListResourceTags},
    {"GetKeyPolicy", Lock::kShared, false, &I::GetKeyPolicy},
    {"PutKeyPolicy", Lock::kExclusive, true, &I::PutKeyPolicy},
};

// The XKS proxy API's key operations (ExecuteXks only: not reachable through TrentService).
constexpr Operation kXksOperations[] = {
    {"XksGetKeyMetadata", Lock::kShared, false, &I::XksGetKeyMetadata},
    {"XksEncrypt", Lock::kShared, false, &I::XksEncrypt},
    {"XksDecrypt", Lock::kShared, false, &I::XksDecrypt},
};

// The KMIP server's key operations (ExecuteKmip only).
constexpr Operation kKmipOperations[] = {
    {"KmipCreate", Lock::kExclusive, true, &I::CreateKey},
    {"KmipRegister", Lock::kExclusive, true, &I::KmipRegister},
    {"KmipDescribe", Lock::kShared, false, &I::KmipDescribe},
    {"KmipList", Lock::kShared, false, &I::KmipList},
    {"KmipActivate", Lock::kExclusive, true, &I::KmipActivate},
    {"KmipRevoke", Lock::kExclusive, true, &I::KmipRevoke},
    {"KmipDestroy", Lock::kExclusive, true, &I::KmipDestroy},
    // TagResource and UntagResource, which let a KMIP caller (only) set kmip: tags.
    {"KmipSetTags", Lock::kShared, true, &I::TagResource},
    {"KmipDeleteTags", Lock::kShared, true, &I::UntagResource},
    {"KmipEncrypt", Lock::kShared, false, &I::KmipEncrypt},
    {"KmipDecrypt", Lock::kShared, false, &I::KmipDecrypt},
};

const Operation* FindOperation(std::string_view name) {
  for (const Operation& o : kOperations)
    if (o.name == name) return &o;
  return nullptr;
}

const Operation* FindXksOperation(std::string_view name) {
  for (const Operation& o : kXksOperations)
    if (o.name == name) return &o;
  return nullptr;
}

// Refusal turns a failed operation's Status into the AWS error the client sees. A Status without
// an AwsError reason cannot come from a handler (each maps its failures); should one appear, it
// is reported as KMSInternalException without its message.
void Refusal(const Status& s, KmsOutcome* out) {
  const AwsErrorInfo* info = InfoFor(static_cast<AwsError>(s.reason()));
  out->error_type = info ? info->type : "KMSInternalException";
  out->message = info ? s.message() : "internal error";
  out->http_status = info ? info->http : 500;
}

}  // namespace

bool KmsService::ChangesState(std::string_view operation) {
  const Operation* op = FindOperation(operation);
  return op == nullptr || op->changes_state;  // an unknown name: the safe answer
}

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
  return impl_->LoadAll();
}

Status KmsService::Refresh() {
  Impl& m = *impl_;
  ASSIGN_OR_RETURN(uint64_t version, m.store->StateVersion());
  {
    std::shared_lock lock(m.mu);
    if (version == m.state_version) {
      m.MarkFresh();
      return Status::Ok();
    }
  }
  std::unique_lock lock(m.mu);
  return m.CatchUp();
}

bool KmsService::Fresh() const { return impl_->Fresh(); }

KmsOutcome KmsService::Execute(std::string_view operation, const json& req, const Caller& caller) {
  return Run(FindOperation(operation), req, caller);
}

KmsOutcome KmsService::ExecuteKmip(std::string_view operation, const json& req, const Caller& caller) {
  for (const Operation& o : kKmipOperations)
    if (o.name == operation) return Run(&o, req, caller);
  return Run(nullptr, req, caller);
}

KmsOutcome KmsService::ExecuteXks(std::string_view operation, const json& req, const Caller& caller) {
  return Run(FindXksOperation(operation), req, caller);
}

namespace {

// On a fiber (net/fiber.h) mu is never waited for by blocking the thread: another fiber of the
// same thread may hold it shared while suspended in a core call, and would never be resumed
// to let go. A fiber tries and yields instead; a waiting writer makes readers on fibers step
// back, so it gets its turn once the readers inside finish.
void LockExclusive(std::atomic<int>& writers_waiting, std::unique_lock<std::shared_mutex>& lock) {
  writers_waiting.fetch_add(1);
  if (net::fiber::Current() == nullptr) {
    lock.lock();
  } else {
    while (!lock.try_lock()) net::fiber::Yield();
  }
  writers_waiting.fetch_sub(1);
}

void LockShared(const std::atomic<int>& writers_waiting, std::shared_lock<std::shared_mutex>& lock) {
  if (net::fiber::Current() == nullptr) return lock.lock();
  while (writers_waiting.load() > 0 || !lock.try_lock()) net::fiber::Yield();
}

}  // namespace

KmsOutcome KmsService::Run(const void* operation, const json& req, const Caller& caller) {
  KmsOutcome out;
  const Operation* op = static_cast<const Operation*>(operation);
  if (op == nullptr) {
    Refusal(Err(AwsError::kUnknownOperation, "unknown operation"), &out);
    return out;
  }
  if (!req.is_object()) {
    Refusal(Err(AwsError::kSerialization, "the request body is not a JSON object"), &out);
    return out;
  }
  Impl& m = *impl_;
  std::shared_lock<std::shared_mutex> shared(m.mu, std::defer_lock);
  std::unique_lock<std::shared_mutex> exclusive(m.mu, std::defer_lock);
  const bool alone = op->lock != Lock::kShared;
  if (alone) LockExclusive(m.writers_waiting, exclusive);
  else LockShared(m.writers_waiting, shared);
  // A change is made from the store's current state: catch up with other nodes first. (On a
  // single node the log holds only this node's own changes: one cheap read.)
  if (alone) (void)m.CatchUp();
  if (!m.Fresh()) {
    Refusal(Err(AwsError::kDependencyTimeout,
                "this node has not confirmed the cluster's key state with the database recently; "
                "retry (another node may answer)"),
            &out);
    return out;
  }
  StatusOr<json> r = Status(ErrorCode::kInternal, "");
  // The readers check every field's JSON type before reading it, so the json library should not
  // throw; this guard keeps a library exception (e.g. a number out of range) from escaping the
  // module as anything but the AWS error for a malformed request.
  auto run = [&] {
    out.key_id.clear();
    // An operation under the shared lock may suspend its fiber in its core call: the only lock
    // it holds is mu shared, which fibers never block on. Exclusive ones call the core without
    // suspending.
    std::optional<net::fiber::AllowSuspend> may_suspend;
    if (shared.owns_lock()) may_suspend.emplace();
    try {
      r = (m.*(op->run))(Invocation{req, caller, &out.key_id});
    } catch (const json::exception&) {
      r = Err(AwsError::kSerialization, "the request does not match the operation's shape");
    }
  };
  run();
  // Another node changed the key between the catch-up and the store's check: catch up and run
  // the operation once more on the current state.
  if (alone && !r.ok() && r.status().code() == ErrorCode::kAborted && m.CatchUp().ok()) run();
  // In a cluster, a refusal may come from a cache behind the store: a key or alias made through
  // another node since this node's last refresh (a client's CreateKey and its first Encrypt or
  // Decrypt can reach two nodes), a key enabled there. When the store has changes the cache has
  // not seen, catch up and answer from the current state. (Only refusals pay this read; callers
  // are authenticated before Execute.)
  if (!alone && !r.ok() && m.opt.max_staleness.count() > 0) {
    StatusOr<uint64_t> newest = m.store->StateVersion();
    if (newest.ok() && *newest != m.state_version) {
      shared.unlock();
      LockExclusive(m.writers_waiting, exclusive);
      if (m.CatchUp().ok()) run();
    }
  }
  if (!r.ok() && r.status().code() == ErrorCode::kAborted)
    r = Err(AwsError::kInternal, "another node changed the key at the same time; retry");
  if (r.ok()) out.response = std::move(r).value();
  else Refusal(r.status(), &out);
  return out;
}

Status KmsService::RunMaintenance() {
  Impl& m = *impl_;
  std::unique_lock lock(m.mu);
  // Every node runs maintenance: act on the store's current state (a deletion another node
  // cancelled, a rotation another node made), not on a stale cache.
  RETURN_IF_ERROR(m.CatchUp());
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
      Status s = m.Rotate(k, "AUTOMATIC");
      // kAborted: another node changed (or rotated) the key first; the next round looks again.
      if (!s.ok() && s.code() != ErrorCode::kAborted && first.ok())
        first = Unavailable("rotation of " + id + ": " + s.message());
    }
  }
  for (const std::string& id : expired) {
    Status s = m.store->DeleteKey(id);
    if (!s.ok() && s.code() != ErrorCode::kNotFound) {  // kNotFound: another node deleted it
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

const char* AwsErrorType(AwsError error) {
  const AwsErrorInfo* i = InfoFor(error);
  return i ? i->type : nullptr;
}

int AwsErrorHttpStatus(AwsError error) {
  const AwsErrorInfo* i = InfoFor(error);
  return i ? i->http : 0;
}

}  // namespace custos::kms
