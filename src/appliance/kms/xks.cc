#include "appliance/kms/xks.h"

#include "net/fiber.h"

#include <algorithm>
#include <ctime>
#include <regex>

#include "appliance/ecall/calls.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "protocol/audit/entry.h"

namespace custos::kms {

namespace {

using json = nlohmann::json;

constexpr std::string_view kApiRoot = "/kms/xks/v1";
constexpr char kService[] = "kms-xks-proxy";
// Bodies: the largest valid request (8192-byte plaintext or ciphertext and 8192-byte AAD in
// base64, with metadata and ARNs of up to 2048 characters) fits well within this.
constexpr size_t kMaxBody = 64 << 10;

std::string NewRequestId() {
  std::string h = HexEncode(crypto::RandomBytes(16));
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
}

// Error renders the spec's error: HTTP status and {"errorName", "errorMessage"}; the message
// is printable ASCII and shorter than 512 characters, as the spec requires.
net::HttpResponse Error(int status, std::string_view name, std::string_view message) {
  std::string m(message.substr(0, 500));
  for (char& c : m)
    if (c < 0x20 || c > 0x7e) c = '?';
  net::HttpResponse r;
  r.status = status;
  r.body = json{{"errorName", name}, {"errorMessage", m}}.dump();
  return r;
}

// OutcomeOf is what the audit log and /metrics record of an answer: "ok", or its errorName.
std::string OutcomeOf(const net::HttpResponse& r) {
  if (r.status == 200) return "ok";
  json e = json::parse(r.body, nullptr, false);
  return e.is_object() ? e.value("errorName", "error") : "error";
}

// XksError maps a KMS service outcome to the spec's error names.
net::HttpResponse XksError(const KmsOutcome& o) {
  const std::string& t = o.error_type;
  if (t == "ValidationException" || t == "SerializationException") return Error(400, "ValidationException", o.message);
  if (t == "NotFoundException") return Error(404, "KeyNotFoundException", o.message);
  if (t == "AccessDeniedException" || t == "NotAuthorizedException") return Error(403, "AccessDeniedException", o.message);
  if (t == "DisabledException" || t == "KMSInvalidStateException") return Error(400, "InvalidStateException", o.message);
  if (t == "InvalidKeyUsageException") return Error(400, "InvalidKeyUsageException", o.message);
  if (t == "InvalidCiphertextException" || t == "IncorrectKeyException")
    return Error(400, "InvalidCiphertextException", o.message);
  if (t == "UnsupportedOperationException") return Error(501, "UnsupportedOperationException", o.message);
  if (t == "DependencyTimeoutException") return Error(503, "DependencyTimeoutException", o.message);
  if (t == "LimitExceededException") return Error(429, "ThrottlingException", o.message);
  return Error(500, "InternalException", "the key manager failed the request");
}

bool IsAlnum(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// ValidPrefix: "" or ("/" segment)+ with segments of [A-Za-z0-9_-]; the URI path within 128.
// (By hand, not std::regex: this runs on every request.)
bool ValidPrefix(std::string_view prefix) {
  if (prefix.size() + kApiRoot.size() > 128) return false;
  bool segment_empty = true;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = prefix[i];
    if (c == '/') {
      if (i > 0 && segment_empty) return false;
      segment_empty = true;
    } else if (i == 0 || !(IsAlnum(c) || c == '_' || c == '-')) {
      return false;
    } else {
      segment_empty = false;
    }
  }
  return prefix.empty() || !segment_empty;
}

// ParseRoute reads "/health" or "/keys/{id}/{metadata|encrypt|decrypt}" (id: 1..128 of
// [A-Za-z0-9._-]); false for anything else.
bool ParseRoute(std::string_view rest, std::string* operation, std::string* key_id) {
  if (rest == "/health") {
    *operation = "XksGetHealthStatus";
    return true;
  }
  constexpr std::string_view kKeys = "/keys/";
  if (rest.substr(0, kKeys.size()) != kKeys) return false;
  rest.remove_prefix(kKeys.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash > 128) return false;
  std::string_view id = rest.substr(0, slash), op = rest.substr(slash + 1);
  for (char c : id)
    if (!(IsAlnum(c) || c == '.' || c == '_' || c == '-')) return false;
  if (op == "metadata") *operation = "XksGetKeyMetadata";
  else if (op == "encrypt") *operation = "XksEncrypt";
  else if (op == "decrypt") *operation = "XksDecrypt";
  else return false;
  *key_id = std::string(id);
  return true;
}

bool ValidName(std::string_view name) {
  static const std::regex re("^[A-Za-z0-9_-]{1,64}$");
  return std::regex_match(name.begin(), name.end(), re);
}

// The credential's record: name "xks{prefix}/{name}" (KMS access key names cannot hold '/'),
// principal arn:aws:iam::ACCOUNT:user/xks{prefix}/{name}.
constexpr std::string_view kPrincipalMark = ":user/xks";

// PrefixOf returns the URI prefix an XKS credential's principal names, or nullopt for a
// principal that is not an XKS credential's.
std::optional<std::string> PrefixOf(std::string_view principal_arn) {
  size_t at = principal_arn.find(kPrincipalMark);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = principal_arn.substr(at + kPrincipalMark.size());  // {prefix}/{name}
  size_t slash = rest.rfind('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string prefix(rest.substr(0, slash));
  if (!ValidPrefix(prefix)) return std::nullopt;
  return prefix;
}

// Metadata keeps requestMetadata's string fields (all the spec defines are strings), each cut
// at 2048 characters (the longest ARN the spec asks proxies to accept).
json Metadata(const json& request_metadata) {
  json out = json::object();
  if (!request_metadata.is_object()) return out;
  for (const auto& [k, v] : request_metadata.items())
    if (v.is_string() && k.size() <= 64 && out.size() < 16) out[k] = v.get<std::string>().substr(0, 2048);
  return out;
}

}  // namespace

XksApi::XksApi(KmsService* service, store::Store* store, CoreCall core, AuditSink audit, XksOptions options,
               RequestMetrics* metrics)
    : service_(service),
      store_(store),
      metrics_(metrics),
      core_(std::move(core)),
      audit_(std::move(audit)),
      options_(std::move(options)) {
  sigv4_.region = options_.region;
  sigv4_.service = kService;
  sigv4_.must_sign_if_present = {};
}

bool XksApi::IsXksPath(std::string_view path) { return path.find(kApiRoot) != std::string_view::npos; }

Bytes XksApi::Cdiv(ByteSpan aad, ByteSpan metadata, ByteSpan iv, ByteSpan ciphertext, ByteSpan tag) {
  return crypto::Sha256Bytes(Concat({aad, metadata, iv, ciphertext, tag}));
}

StatusOr<SigV4Credentials> XksApi::Lookup(std::string_view access_key_id) {
  // The store is read on every request, so a deleted credential stops working at once (on
  // every node); the unwrapped secret is cached while its record is unchanged.
  ASSIGN_OR_RETURN(store::AccessKeyRecord rec, store_->GetAccessKey(access_key_id));
  std::optional<std::string> prefix = PrefixOf(rec.principal_arn);
  if (!prefix) return NotFound("not an XKS credential");
  {
    std::shared_lock lock(cred_mu_);
    auto it = credentials_.find(access_key_id);
    if (it != credentials_.end() && it->second->wrapped == rec.wrapped_secret)
      return SigV4Credentials{rec.access_key_id, SecretBytes(), "", it->second->signing_keys};
  }
  ASSIGN_OR_RETURN(auto r, ecall::Invoke<ecall::KmsOpenAccessSecret>(core_, {rec.access_key_id, rec.wrapped_secret}));
  auto cred = std::make_shared<Credential>(
      Credential{rec.wrapped_secret, std::make_shared<SigningKeyCache>(SecretBytes::CopyFrom(r.secret.view())),
                 rec.principal_arn, *prefix});
  SigV4Credentials out{rec.access_key_id, SecretBytes(), "", cred->signing_keys};
  std::unique_lock lock(cred_mu_);
  credentials_[rec.access_key_id] = std::move(cred);
  return out;
}

bool XksApi::Throttled(const std::string& uri_prefix) {
  if (options_.max_requests_per_second <= 0) return false;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(rate_mu_);
  auto [it, fresh] = buckets_.try_emplace(uri_prefix);
  Bucket& b = it->second;
  // A bucket of one second's worth: bursts up to the rate, then the rate.
  const double cap = std::max(1.0, options_.max_requests_per_second);
  if (fresh) {
    b.tokens = cap;
  } else {
    const double elapsed = std::chrono::duration<double>(now - b.at).count();
    b.tokens = std::min(cap, b.tokens + elapsed * options_.max_requests_per_second);
  }
  b.at = now;
  if (b.tokens < 1) return true;
  b.tokens -= 1;
  return false;
}

json XksApi::Health() {
  std::lock_guard lock(health_mu_);
  const auto now = std::chrono::steady_clock::now();
  if (health_status_.empty() || now - health_at_ >= options_.health_cache) {
    // The deep check: encrypt and decrypt a fixed value under the proxy's own test key
    // (alias/custos/xks-health-check, made on first use), never under a customer's key.
    const std::string account = service_->options().account_id;
    Caller self{"arn:aws:iam::" + account + ":root", account, ""};
    std::string status = "UNAVAILABLE";
    auto find = [&]() {
      KmsOutcome d = service_->Execute("DescribeKey", json{{"KeyId", "alias/custos/xks-health-check"}}, self);
      return d.ok() ? d.response["KeyMetadata"].value("KeyId", "") : std::string();
    };
    std::string key_id = find();
    if (key_id.empty()) {
      KmsOutcome made = service_->Execute(
          "CreateKey",
          json{{"Description", "custos XKS proxy: the deep health check encrypts and decrypts a test value under this key"}},
          self);
      if (made.ok()) {
        std::string id = made.response["KeyMetadata"].value("KeyId", "");
        KmsOutcome alias = service_->Execute(
            "CreateAlias", json{{"AliasName", "alias/custos/xks-health-check"}, {"TargetKeyId", id}}, self);
        key_id = alias.ok() ? id : find();  // another node may have named its own first
      }
    }
    if (!key_id.empty()) {
      const json meta = {{"awsPrincipalArn", self.principal_arn}, {"kmsOperation", "KmsHealthCheck"}, {"kmsRequestId", "health"}};
      KmsOutcome enc = service_->ExecuteXks(
          "XksEncrypt",
          json{{"externalKeyId", key_id}, {"requestMetadata", meta}, {"plaintext", Base64Encode(AsBytes("custos health"))},
               {"encryptionAlgorithm", "AES_GCM"}},
          self);
      if (enc.ok()) {
        json req = enc.response;
        req["externalKeyId"] = key_id;
        req["requestMetadata"] = meta;
        req["encryptionAlgorithm"] = "AES_GCM";
        KmsOutcome dec = service_->ExecuteXks("XksDecrypt", req, self);
        if (dec.ok() && dec.response.value("plaintext", "") == Base64Encode(AsBytes("custos health"))) status = "ACTIVE";
      }
    }
    health_status_ = status;
    health_key_id_ = key_id;
    health_at_ = now;
  }
  return json{{"xksProxyFleetSize", 1},
              {"xksProxyVendor", "custos"},
              {"xksProxyModel", std::string("custos XKS proxy ") + CUSTOS_VERSION},
              {"ekmVendor", "custos"},
              {"ekmFleetDetails", json::array({json{{"id", options_.node_name},
                                                    {"model", options_.model},
                                                    {"healthStatus", health_status_}}})}};
}

net::HttpResponse XksApi::Handle(const net::HttpRequest& req) {
  const auto start = std::chrono::steady_clock::now();
  std::string operation = "XksUnknown";
  std::string outcome;  // set by Serve for the answers it audits
  net::HttpResponse r = Serve(req, &operation, &outcome);
  if (metrics_ != nullptr) {
    if (outcome.empty()) outcome = OutcomeOf(r);
    metrics_->Record(operation, outcome, std::chrono::steady_clock::now() - start);
  }
  return r;
}

net::HttpResponse XksApi::Serve(const net::HttpRequest& req, std::string* op_out, std::string* outcome_out) {
  const std::string path = req.target.substr(0, req.target.find('?'));
  const size_t root = path.find(kApiRoot);
  const std::string prefix = path.substr(0, root);
  const std::string rest = root == std::string::npos ? "" : path.substr(root + kApiRoot.size());
  // The spec: a GET (or any other method) on these URIs is 405, before anything else.
  if (req.method != "POST") {
    net::HttpResponse r = Error(405, "ValidationException", "XKS API requests are POST requests");
    r.headers["allow"] = "POST";
    return r;
  }
  // The route: health, or keys/{externalKeyId}/{metadata|encrypt|decrypt}.
  std::string operation, key_id;
  if (!ParseRoute(rest, &operation, &key_id) || !ValidPrefix(prefix))
    return Error(404, "InvalidUriPathException", "no XKS API operation at " + path.substr(0, 256));
  *op_out = operation;
  if (Throttled(prefix))
    return Error(429, "ThrottlingException",
                 "more than " + std::to_string(static_cast<int>(options_.max_requests_per_second)) +
                     " requests per second under this URI prefix");

  // Authentication: SigV4 (service kms-xks-proxy) with a credential of this very prefix.
  auto identity = VerifySigV4(req, [this](std::string_view id) { return Lookup(id); }, sigv4_, std::time(nullptr));
  if (!identity.ok()) {
    // The credential could not be read or opened (the core is sealed, the store unreachable):
    // not the caller's fault.
    if (identity.status().message() == sigv4_error::kLookupFailed)
      return Error(503, "DependencyTimeoutException",
                   "the credential could not be checked: the appliance is sealed or its database unreachable");
    return Error(401, "AuthenticationFailedException", identity.status().message());
  }
  std::shared_ptr<const Credential> cred;
  {
    std::shared_lock lock(cred_mu_);
    auto it = credentials_.find(identity->access_key_id);
    if (it != credentials_.end()) cred = it->second;
  }
  if (cred == nullptr) return Error(401, "AuthenticationFailedException", "sigv4: unknown access key id");
  if (cred->uri_prefix != prefix)
    return Error(401, "AuthenticationFailedException", "the credential signs requests under another URI prefix");

  // From here every answer is audited.
  audit::Entry entry;
  entry.request_id = NewRequestId();
  entry.principal = cred->principal_arn;
  entry.access_key_id = identity->access_key_id;
  entry.operation = operation;
  entry.key_id = key_id;
  entry.source = req.remote;
  json body = json::parse(req.body, nullptr, false);
  net::HttpResponse out;
  KmsOutcome outcome;
  if (req.body.size() > kMaxBody) {
    out = Error(501, "UnsupportedOperationException", "the request body is larger than 64 KiB");
  } else if (!body.is_object()) {
    out = Error(400, "ValidationException", "the request body is not a JSON object");
  } else {
    const json metadata = body.value("requestMetadata", json());
    entry.request_metadata = Metadata(metadata);
    std::vector<const char*> required = {"kmsRequestId", "kmsOperation"};
    if (operation != "XksGetHealthStatus") required.push_back("awsPrincipalArn");
    std::string missing;
    for (const char* f : required)
      if (!metadata.is_object() || !metadata.value(f, json()).is_string()) missing = f;
    if (!missing.empty() && operation != "XksGetHealthStatus") {
      out = Error(400, "ValidationException", "requestMetadata." + missing + " is required");
    } else if (operation == "XksGetHealthStatus") {
      out.body = Health().dump();
    } else {
      body["externalKeyId"] = key_id;
      const std::string account = service_->options().account_id;
      outcome = service_->ExecuteXks(operation, body, Caller{cred->principal_arn, account, identity->access_key_id});
      if (!outcome.key_id.empty()) entry.key_id = outcome.key_id;
      out = outcome.ok() ? net::HttpResponse{200, "application/json", outcome.response.dump(), {}} : XksError(outcome);
    }
  }
  entry.http_status = out.status;
  entry.outcome = OutcomeOf(out);
  *outcome_out = entry.outcome;
  if (audit_) {
    net::fiber::AllowSuspend may_suspend;  // no lock is held: the append may suspend the fiber
    Status s = audit_(entry, false);
    // Nothing is handed out unaudited.
    if (!s.ok() && out.status == 200) {
      *outcome_out = "InternalException";
      return Error(500, "InternalException", "the audit log could not be written");
    }
  }
  out.headers["x-amzn-requestid"] = entry.request_id;
  return out;
}

StatusOr<NewXksCredential> XksApi::CreateCredential(const std::string& uri_prefix, const std::string& name) {
  if (!ValidPrefix(uri_prefix))
    return InvalidArgument("an XKS URI prefix is empty or /segment[/segment...] of A-Z a-z 0-9 _ -, and the URI path (prefix + "
                           "/kms/xks/v1) at most 128 characters");
  std::string label = name.empty() ? "cred-" + HexEncode(crypto::RandomBytes(4)) : name;
  if (!ValidName(label)) return InvalidArgument("an XKS credential name is 1-64 of A-Z a-z 0-9 _ -");
  // Access key ids as the spec asks: 20-30 characters of A-Z and 2-7 (here 24).
  static constexpr char kBase32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string id = "XKS";
  for (uint8_t b : crypto::RandomBytes(21)) id.push_back(kBase32[b & 31]);
  ASSIGN_OR_RETURN(auto r, ecall::Invoke<ecall::KmsNewAccessSecret>(core_, {id, ecall::kXksSecretEntropy}));
  store::AccessKeyRecord rec;
  rec.access_key_id = id;
  rec.name = "xks" + uri_prefix + "/" + label;
  rec.principal_arn = "arn:aws:iam::" + service_->options().account_id + ":user/" + rec.name;
  rec.wrapped_secret = std::move(r.wrapped);
  rec.created = static_cast<int64_t>(std::time(nullptr));
  RETURN_IF_ERROR(store_->PutAccessKey(rec));
  return NewXksCredential{id, SecretBytes::CopyFrom(r.secret.view()), uri_prefix, rec.principal_arn, label};
}

StatusOr<std::vector<XksCredentialInfo>> XksApi::ListCredentials() {
  ASSIGN_OR_RETURN(std::vector<store::AccessKeyRecord> all, store_->ListAccessKeys());
  std::vector<XksCredentialInfo> out;
  for (const store::AccessKeyRecord& r : all) {
    std::optional<std::string> prefix = PrefixOf(r.principal_arn);
    if (!prefix) continue;
    out.push_back({r.access_key_id, r.name.substr(r.name.rfind('/') + 1), *prefix, r.principal_arn, r.created});
  }
  return out;
}

Status XksApi::DeleteCredential(const std::string& access_key_id) {
  ASSIGN_OR_RETURN(store::AccessKeyRecord rec, store_->GetAccessKey(access_key_id));
  if (!PrefixOf(rec.principal_arn)) return NotFound("access key " + access_key_id.substr(0, 64) + " is not an XKS credential");
  RETURN_IF_ERROR(store_->DeleteAccessKey(access_key_id));
  std::unique_lock lock(cred_mu_);
  credentials_.erase(access_key_id);
  return Status::Ok();
}

}  // namespace custos::kms
