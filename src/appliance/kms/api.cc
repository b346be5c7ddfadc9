#include "appliance/kms/api.h"

#include "net/fiber.h"

#include "appliance/ecall/calls.h"

#include <cmath>
#include <ctime>
#include <regex>

#include "crypto/random.h"
#include "appliance/ecall/kms_calls.h"
#include "net/json_fields.h"

namespace custos::kms {

using json = nlohmann::json;

namespace {

constexpr std::string_view kTargetPrefix = "TrentService.";
constexpr double kBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5};

std::string NewRequestId() {
  std::string h = HexEncode(crypto::RandomBytes(16));
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
}

std::string NewAccessKeyId() {
  static constexpr char kBase32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  Bytes r = crypto::RandomBytes(16);
  std::string id = "CKIA";
  for (uint8_t b : r) id.push_back(kBase32[b & 31]);
  return id;
}

// SigV4Error maps a SigV4 refusal to the AWS error a KMS endpoint answers with.
struct MappedError {
  int status;
  const char* type;
};

MappedError MapSigV4Error(const Status& s) {
  namespace e = sigv4_error;
  const std::string& m = s.message();
  if (m == e::kMissingAuthorization) return {403, "MissingAuthenticationTokenException"};
  if (m == e::kUnknownAccessKey || m == e::kSecurityTokenInvalid) return {400, "UnrecognizedClientException"};
  if (m == e::kLookupFailed) {
    if (s.code() == ErrorCode::kFailedPrecondition || s.code() == ErrorCode::kUnavailable)
      return {503, "DependencyTimeoutException"};
    return {500, "KMSInternalException"};
  }
  if (m == e::kSignatureMismatch || m == e::kClockSkew || m == e::kPresignExpired || m == e::kWrongRegion ||
      m == e::kWrongService || m == e::kScopeDateMismatch || m == e::kContentSha256Mismatch)
    return {400, "InvalidSignatureException"};
  return {400, "IncompleteSignatureException"};
}

// ClaimedAccessKeyId is the access key id a request names (Authorization header or presigned
// query), unverified; empty when there is none. Only used to key the failure limiter.
std::string ClaimedAccessKeyId(const net::HttpRequest& req) {
  std::string_view text;
  auto auth = req.headers.find("authorization");
  std::string_view marker = "Credential=";
  if (auth != req.headers.end()) {
    text = auth->second;
  } else {
    text = req.target;
    marker = "X-Amz-Credential=";
  }
  size_t at = text.find(marker);
  if (at == std::string_view::npos) return "";
  text.remove_prefix(at + marker.size());
  size_t end = text.find_first_of("/%, &");
  return std::string(text.substr(0, std::min<size_t>(end == std::string_view::npos ? text.size() : end, 128)));
}

}  // namespace

// ---- metrics ----

void RequestMetrics::Record(std::string_view operation, std::string_view outcome, std::chrono::nanoseconds latency) {
  double s = std::chrono::duration<double>(latency).count();
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[{std::string(operation), std::string(outcome)}];
  Histogram& h = latency_[std::string(operation)];
  if (h.buckets.empty()) h.buckets.assign(std::size(kBuckets), 0);
  for (size_t i = 0; i < std::size(kBuckets); ++i)
    if (s <= kBuckets[i]) ++h.buckets[i];
  ++h.count;
  h.sum += s;
}

std::string RequestMetrics::Render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  out += "# HELP custos_kms_requests_total KMS API requests by operation and outcome (ok or the AWS error).\n";
  out += "# TYPE custos_kms_requests_total counter\n";
  for (const auto& [k, n] : counts_)
    out += "custos_kms_requests_total{operation=\"" + k.first + "\",outcome=\"" + k.second + "\"} " +
           std::to_string(n) + "\n";
  out += "# HELP custos_kms_request_duration_seconds KMS API request latency, audit write included.\n";
  out += "# TYPE custos_kms_request_duration_seconds histogram\n";
  for (const auto& [op, h] : latency_) {
    std::string lbl = "operation=\"" + op + "\"";
    for (size_t i = 0; i < std::size(kBuckets); ++i) {
      char le[32];
      std::snprintf(le, sizeof(le), "%g", kBuckets[i]);
      out += "custos_kms_request_duration_seconds_bucket{" + lbl + ",le=\"" + le + "\"} " +
             std::to_string(h.buckets[i]) + "\n";
    }
    out += "custos_kms_request_duration_seconds_bucket{" + lbl + ",le=\"+Inf\"} " + std::to_string(h.count) + "\n";
    char sum[64];
    std::snprintf(sum, sizeof(sum), "%.6f", h.sum);
    out += "custos_kms_request_duration_seconds_sum{" + lbl + "} " + sum + "\n";
    out += "custos_kms_request_duration_seconds_count{" + lbl + "} " + std::to_string(h.count) + "\n";
  }
  return out;
}

// ---- the front end ----

KmsApi::KmsApi(KmsService* service, store::Store* store, CoreCall core, AuditSink audit, SigV4Options sigv4)
    : service_(service), store_(store), core_(std::move(core)), audit_(std::move(audit)), sigv4_(std::move(sigv4)) {}

net::HttpResponse KmsApi::ErrorResponse(int http_status, std::string_view type, std::string_view message,
                                        const std::string& request_id) {
  net::HttpResponse r;
  r.status = http_status;
  r.content_type = "application/x-amz-json-1.1";
  // Messages may quote a cut piece of the request: render invalid UTF-8 as U+FFFD, never throw.
  r.body = json{{"__type", type}, {"message", message}}.dump(-1, ' ', false, json::error_handler_t::replace);
  if (!request_id.empty()) r.headers["x-amzn-requestid"] = request_id;
  return r;
}

StatusOr<SigV4Credentials> KmsApi::Lookup(std::string_view access_key_id) {
  {
    std::shared_lock lock(cred_mu_);
    auto it = credentials_.find(access_key_id);
    if (it != credentials_.end())
      return SigV4Credentials{std::string(access_key_id), SecretBytes(), "", it->second->signing_keys};
  }
  ASSIGN_OR_RETURN(store::AccessKeyRecord rec, store_->GetAccessKey(access_key_id));
  // An XKS proxy credential (kms/xks.h) signs XKS API requests only.
  if (rec.principal_arn.find(":user/xks/") != std::string::npos) return NotFound("not a KMS API access key");
  ASSIGN_OR_RETURN(auto r, ecall::Invoke<ecall::KmsOpenAccessSecret>(core_, {rec.access_key_id, rec.wrapped_secret}));
  auto cred = std::make_shared<Credential>(Credential{
      std::make_shared<SigningKeyCache>(SecretBytes::CopyFrom(r.secret.view())), rec.principal_arn});
  SigV4Credentials out{rec.access_key_id, SecretBytes(), "", cred->signing_keys};
  std::unique_lock lock(cred_mu_);
  credentials_.emplace(rec.access_key_id, std::move(cred));
  return out;
}

StatusOr<NewAccessKey> KmsApi::CreateAccessKey(const std::string& name) {
  static const std::regex re("^[A-Za-z0-9+=,.@_-]{1,64}$");
  if (!std::regex_match(name, re)) return InvalidArgument("access key name must be 1-64 of [A-Za-z0-9+=,.@_-]");
  // Names are unique in the store (kAlreadyExists from PutAccessKey); no list scan needed.
  std::string id = NewAccessKeyId();
  ASSIGN_OR_RETURN(auto r, ecall::Invoke<ecall::KmsNewAccessSecret>(core_, {id}));
  store::AccessKeyRecord rec;
  rec.access_key_id = id;
  rec.name = name;
  rec.principal_arn = "arn:aws:iam::" + service_->options().account_id + ":user/" + name;
  rec.wrapped_secret = std::move(r.wrapped);
  rec.created = static_cast<int64_t>(std::time(nullptr));
  RETURN_IF_ERROR(store_->PutAccessKey(rec));
  return NewAccessKey{id, SecretBytes::CopyFrom(r.secret.view()), rec.principal_arn};
}

net::HttpResponse KmsApi::Handle(const net::HttpRequest& req) {
  auto start = std::chrono::steady_clock::now();
  std::string request_id = NewRequestId();
  audit::Entry entry;  // time: now, when the request was received
  entry.request_id = request_id;
  entry.source = req.remote;
  std::string operation = "unknown";
  net::HttpResponse response;
  bool authenticated = false;
  auto finish = [&](net::HttpResponse r, const std::string& outcome) {
    entry.outcome = outcome;
    entry.http_status = r.status;
    // Requests that never authenticated are counted in /metrics, not written as signed audit
    // rows: otherwise anyone could grow the chain (3,000 bad signatures once added 3,000 rows).
    if (audit_ && authenticated) {
      // A result is never handed out unaudited. A refusal that cannot be audited (typically:
      // the core is sealed, so nothing can sign the chain) keeps its own answer: it did nothing.
      // No lock is held here: the append may suspend this request's fiber (AuditWriter).
      net::fiber::AllowSuspend may_suspend;
      Status s = audit_(entry, KmsService::ChangesState(operation));
      if (!s.ok() && r.status == 200) {
        r = ErrorResponse(500, "KMSInternalException",
                          "the audit log could not be written, so the request is refused", request_id);
        metrics_.Record(operation, "KMSInternalException", std::chrono::steady_clock::now() - start);
        return r;
      }
    }
    metrics_.Record(operation, outcome, std::chrono::steady_clock::now() - start);
    return r;
  };
  auto fail = [&](int status, const char* type, const std::string& message) {
    return finish(ErrorResponse(status, type, message, request_id), type);
  };

  auto target = req.headers.find("x-amz-target");
  if (target == req.headers.end() || target->second.rfind(kTargetPrefix, 0) != 0)
    return fail(400, "UnknownOperationException", "X-Amz-Target must be TrentService.<Operation>");
  std::string op = target->second.substr(kTargetPrefix.size());
  bool known = false;
  for (auto name : KmsService::Operations()) known |= name == op;
  if (!known) return fail(400, "UnknownOperationException", "unknown operation " + op.substr(0, 64));
  operation = op;
  entry.operation = op;

  // Failed authentications are bounded per client address and claimed access key id before the
  // signature is even looked at.
  std::string limiter_key = net::HostPart(req.remote) + "/" + ClaimedAccessKeyId(req);
  if (!auth_failures_.Allowed(limiter_key))
    return fail(400, "ThrottlingException",
                "too many failed authentications from this address for this access key id: wait and retry");
  auto identity = VerifySigV4(req, [this](std::string_view id) { return Lookup(id); }, sigv4_, std::time(nullptr));
  if (!identity.ok()) auth_failures_.Record(limiter_key);
  if (!identity.ok()) {
    MappedError e = MapSigV4Error(identity.status());
    if (identity.status().message() == sigv4_error::kLookupFailed &&
        identity.status().code() == ErrorCode::kFailedPrecondition)
      // Access secrets are wrapped under the root key: a sealed core cannot open them, so no
      // request (metadata calls included) can be authenticated until the node is unsealed.
      return fail(e.status, e.type,
                  "the appliance is sealed: its trusted core has no root key until a quorum of keepers "
                  "releases it, so no access key can be checked (see custos operator status)");
    if (identity.status().message() == sigv4_error::kLookupFailed &&
        identity.status().code() == ErrorCode::kUnavailable)
      return fail(e.status, e.type, "the trusted core is not answering, so no access key can be checked (the server restarts a core that died)");
    return fail(e.status, e.type, std::string(identity.status().message()));
  }
  std::string principal;
  {
    std::shared_lock lock(cred_mu_);
    auto it = credentials_.find(identity->access_key_id);
    if (it != credentials_.end()) principal = it->second->principal_arn;
  }
  entry.principal = principal;
  entry.access_key_id = identity->access_key_id;
  authenticated = true;

  if (Status depth = net::CheckJsonDepth(req.body); !depth.ok())
    return fail(400, "SerializationException", depth.message());
  json body = json::parse(req.body.empty() ? std::string_view("{}") : std::string_view(req.body), nullptr, false);
  if (body.is_discarded() || !body.is_object())
    return fail(400, "SerializationException", "the request body is not a JSON object");

  Caller caller{principal, service_->options().account_id, identity->access_key_id};
  KmsOutcome out = service_->Execute(op, body, caller);
  entry.key_id = out.key_id;
  if (!out.ok()) return fail(out.http_status, out.error_type.c_str(), out.message);
  net::HttpResponse r;
  r.content_type = "application/x-amz-json-1.1";
  r.body = out.response.dump(-1, ' ', false, json::error_handler_t::replace);
  r.headers["x-amzn-requestid"] = request_id;
  return finish(std::move(r), "ok");
}

}  // namespace custos::kms
