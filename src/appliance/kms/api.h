// The AWS KMS JSON 1.1 front end (docs/kms.md "Protocol"): `POST /` with
// `X-Amz-Target: TrentService.<Operation>`, a JSON body, SigV4 (kms/sigv4.h) with the
// credentials of custos access keys. Every request, accepted or refused, is appended to the
// audit chain before it is answered; a request whose audit entry cannot be written is answered
// with an error. Errors are AWS's shape: HTTP 4xx/5xx, `{"__type": "<Exception>", "message": "..."}`,
// so every SDK raises its own exception class.
//
// Access keys: `CreateAccessKey` asks the trusted core for a new secret (it is stored only
// wrapped under the root key); the front end unwraps a key's secret through the core on its
// first use and keeps it in memory (SecretBytes) to verify signatures.
//
// Thread safety: Handle runs concurrently on the server's I/O threads.
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include "common/secret.h"
#include "appliance/kms/service.h"
#include "net/sigv4.h"
#include "net/source_limiter.h"
#include "net/http.h"
#include "appliance/store/store.h"
#include "protocol/audit/entry.h"

namespace custos::kms {

// AuditSink appends one audit entry and returns once it is in the log; with `durable` once it
// is also fsynced, which KmsApi asks for every operation that changes state
// (host/audit_writer.h).
using AuditSink = std::function<Status(const audit::Entry& entry, bool durable)>;

// NewAccessKey is a freshly created credential, handed to its owner once.
struct NewAccessKey {
  std::string access_key_id;
  SecretBytes secret_access_key;
  std::string principal_arn;
};

// RequestMetrics accumulates per-operation counts and latencies for /metrics.
class RequestMetrics {
 public:
  void Record(std::string_view operation, std::string_view outcome, std::chrono::nanoseconds latency);
  // Render writes Prometheus text exposition lines (custos_kms_requests_total,
  // custos_kms_request_duration_seconds histogram).
  std::string Render() const;

 private:
  struct Histogram {
    std::vector<uint64_t> buckets;
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, uint64_t> counts_;
  std::map<std::string, Histogram> latency_;
};

class KmsApi {
 public:
  // `service`, `store` must outlive the KmsApi. `sigv4.region` is the region clients must sign
  // for; `audit` may be empty only in unit tests.
  KmsApi(KmsService* service, store::Store* store, CoreCall core, AuditSink audit, SigV4Options sigv4);

  // Handle serves one KMS API request (the host routes `POST /` here).
  net::HttpResponse Handle(const net::HttpRequest& request);

  // CreateAccessKey makes a credential for arn:aws:iam::ACCOUNT:user/NAME. NAME: 1-64 of
  // [A-Za-z0-9+=,.@_-]. kAlreadyExists when the name is taken; kFailedPrecondition when sealed.
  StatusOr<NewAccessKey> CreateAccessKey(const std::string& name);

  // ErrorResponse renders an AWS JSON error (also used for transport errors and the host's
  // own refusals on this API).
  static net::HttpResponse ErrorResponse(int http_status, std::string_view type, std::string_view message,
                                         const std::string& request_id);

  const RequestMetrics& metrics() const { return metrics_; }
  // The XKS proxy API counts its requests here too (operations XksEncrypt, ...).
  RequestMetrics* mutable_metrics() { return &metrics_; }

 private:
  StatusOr<SigV4Credentials> Lookup(std::string_view access_key_id);

  KmsService* service_;
  store::Store* store_;
  CoreCall core_;
  AuditSink audit_;
  SigV4Options sigv4_;
  RequestMetrics metrics_;
  // Failed authentications per (client address, claimed access key id): 50 per 10 s, then
  // ThrottlingException until the window ends. Such refusals are counted, not audited.
  net::SourceLimiter auth_failures_{50, std::chrono::seconds(10)};
  struct Credential {
    std::shared_ptr<SigningKeyCache> signing_keys;  // holds the secret
    std::string principal_arn;
  };
  std::shared_mutex cred_mu_;
  std::map<std::string, std::shared_ptr<const Credential>, std::less<>> credentials_;
};

}  // namespace custos::kms
