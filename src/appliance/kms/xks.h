// The AWS KMS External Key Store proxy API, v1 (aws/aws-kms-xksproxy-api-spec; docs/xks.md):
// AWS KMS keeps the key material of a KMS key in an external key store and calls this API for
// every Encrypt, Decrypt and DescribeKey on it. With custos behind it, that material is a custos
// SYMMETRIC_DEFAULT key: it lives only in the attested trusted core, under co-custody.
//
//   POST {prefix}/kms/xks/v1/keys/{externalKeyId}/metadata   -> GetKeyMetadata
//   POST {prefix}/kms/xks/v1/keys/{externalKeyId}/encrypt    -> Encrypt
//   POST {prefix}/kms/xks/v1/keys/{externalKeyId}/decrypt    -> Decrypt
//   POST {prefix}/kms/xks/v1/health                          -> GetHealthStatus
//
// {prefix} is the optional path prefix ("" or "/a/b", [A-Za-z0-9_-] segments): each credential
// belongs to one prefix and signs requests under it only. An external key id is a custos key id
// or an alias name without "alias/". Requests are SigV4-signed with service "kms-xks-proxy" in
// the caller's region (any); credentials are custos access keys of their own kind
// (CreateCredential; several per prefix at once, so they rotate without downtime). Every
// authenticated request is audited with its requestMetadata. Errors are the spec's: HTTP status
// and {"errorName", "errorMessage"}.
//
// Thread safety: Handle runs concurrently on the server's I/O threads.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "appliance/kms/api.h"
#include "appliance/kms/service.h"
#include "appliance/store/store.h"
#include "common/secret.h"
#include "net/http.h"
#include "net/sigv4.h"

namespace custos::kms {

struct XksOptions {
  // The region requests must be signed for; empty: any (AWS KMS signs with its own region).
  std::string region;
  // Requests per second accepted per URI prefix (ThrottlingException beyond); 0: no limit.
  double max_requests_per_second = 0;
  // GetHealthStatus's description of this node: its ekmFleetDetails id and model.
  std::string node_name = "custos-1";
  std::string model = "custos trusted core";
  // How long a deep health check's result is served before the next one (the spec: at most
  // one minute).
  std::chrono::seconds health_cache{30};
};

// NewXksCredential is a freshly made credential, shown once.
struct NewXksCredential {
  std::string access_key_id;  // 24 characters of A-Z and 2-7
  SecretBytes secret_access_key;  // 44 characters of base64 (256 random bits)
  std::string uri_prefix;     // "" or "/a/b"
  std::string principal_arn;  // arn:aws:iam::ACCOUNT:user/xks{prefix}/NAME
  std::string name;
};

// XksCredentialInfo is a credential as listed (no secret).
struct XksCredentialInfo {
  std::string access_key_id, name, uri_prefix, principal_arn;
  int64_t created = 0;
};

class XksApi {
 public:
  // `service`, `store` (and `metrics`, if given) must outlive the XksApi; `audit` may be empty
  // only in unit tests. Requests are counted in `metrics` (for /metrics) when given.
  XksApi(KmsService* service, store::Store* store, CoreCall core, AuditSink audit, XksOptions options,
         RequestMetrics* metrics = nullptr);

  // IsXksPath: the request path names the XKS API (it contains "/kms/xks/v1").
  static bool IsXksPath(std::string_view path);

  // Handle serves one XKS API request.
  net::HttpResponse Handle(const net::HttpRequest& request);

  // CreateCredential makes a credential for `uri_prefix` ("" or "/seg/..." of [A-Za-z0-9_-]
  // segments; the XksProxyUriPath `prefix + "/kms/xks/v1"` at most 128 characters) named
  // `name` (1-64 of [A-Za-z0-9_-]; empty: a random one). kInvalidArgument for a bad prefix or
  // name, kAlreadyExists for a taken name, kFailedPrecondition when sealed.
  StatusOr<NewXksCredential> CreateCredential(const std::string& uri_prefix, const std::string& name);
  StatusOr<std::vector<XksCredentialInfo>> ListCredentials();
  // DeleteCredential removes one (in force at once on this node; other nodes check the store
  // on every request too). kNotFound if it is not an XKS credential.
  Status DeleteCredential(const std::string& access_key_id);

  // UriPath is the XksProxyUriPath AWS KMS is configured with for `uri_prefix`.
  static std::string UriPath(const std::string& uri_prefix) { return uri_prefix + "/kms/xks/v1"; }
  // Cdiv is the spec's ciphertextDataIntegrityValue (Appendix C): SHA-256 over the decoded
  // aad || ciphertextMetadata || initializationVector || ciphertext || authenticationTag.
  static Bytes Cdiv(ByteSpan aad, ByteSpan metadata, ByteSpan iv, ByteSpan ciphertext, ByteSpan tag);

 private:
  struct Credential {
    Bytes wrapped;  // the stored wrapped secret it was opened from
    std::shared_ptr<SigningKeyCache> signing_keys;
    std::string principal_arn, uri_prefix;
  };
  StatusOr<SigV4Credentials> Lookup(std::string_view access_key_id);
  // Health runs (or serves the cached result of) the deep health check.
  nlohmann::json Health();
  bool Throttled(const std::string& uri_prefix);

  // Serve is Handle without the request count; it names the operation and, for an audited
  // answer, its outcome.
  net::HttpResponse Serve(const net::HttpRequest& request, std::string* operation, std::string* outcome);

  KmsService* service_;
  store::Store* store_;
  RequestMetrics* metrics_;
  CoreCall core_;
  AuditSink audit_;
  XksOptions options_;
  SigV4Options sigv4_;

  std::shared_mutex cred_mu_;
  std::map<std::string, std::shared_ptr<const Credential>, std::less<>> credentials_;

  std::mutex health_mu_;  // one health check at a time; the others wait for its result
  std::chrono::steady_clock::time_point health_at_{};
  std::string health_status_;  // ACTIVE, DEGRADED or UNAVAILABLE; empty before the first
  std::string health_key_id_;

  std::mutex rate_mu_;
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point at{};
  };
  std::map<std::string, Bucket> buckets_;
};

}  // namespace custos::kms
