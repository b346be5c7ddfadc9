// The KMS operations of the appliance (docs/kms.md): the AWS KMS JSON 1.1 API's semantics over
// custos's key hierarchy (DESIGN.md "Key hierarchy"). Keys, versions, aliases, tags and
// policies live in a store::Store; key material exists only wrapped (ecall/kms_calls.h) and
// every operation on it is one call to the trusted core (`CoreCall`). This class never sees a
// master key in clear; it does see data keys and plaintexts, which clients send and receive
// through the host (docs/threat-model.md).
//
// Execute takes an operation name and its JSON request, already authenticated (kms/api.h checks
// SigV4 and maps the principal), checks the key policy, runs the operation, and returns the
// JSON response or an AWS error (exception name + message). Key metadata is cached in memory
// (loaded from the store at Load, written through on every change) so the hot path (Encrypt,
// Decrypt, GenerateDataKey) reads no database.
//
// Several nodes may share one store (a cluster on PostgreSQL). The cache then follows the
// store's change log (store::StateChange): Refresh, called by the host every refresh interval,
// re-reads what other nodes changed; every operation that changes state first catches up the
// same way, and the store refuses (kAborted) a change made from a stale copy of a key, after
// which the operation catches up and runs once more. With max_staleness set, a node that has
// not confirmed its cache against the store for that long refuses every operation (503) until
// it can again: so a change acknowledged by any node is in force on every serving node within
// max_staleness (docs/operations.md "A cluster of nodes").
//
// Thread safety: Execute may run concurrently; reads share a lock, changes take it exclusively.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>
#include "common/bytes.h"
#include "common/status.h"
#include "appliance/ecall/ecall.h"
#include "nlohmann/json.hpp"
#include "appliance/store/store.h"

namespace custos::kms {

// CoreCall reaches the trusted core: one ecall request, its results or its error.
using CoreCall = std::function<StatusOr<std::vector<Bytes>>(ecall::Call, std::vector<Bytes>)>;

// ServiceOptions: the identity of this KMS in ARNs, and the clock.
struct ServiceOptions {
  std::string region = "us-east-1";
  std::string account_id = "000000000000";
  // now returns Unix seconds (tests move it to expire deletion windows and rotate keys).
  std::function<int64_t()> now;
  // max_staleness: 0 (a single node: nothing else changes the store) or the bound above.
  std::chrono::milliseconds max_staleness{0};
};

// Caller is the authenticated principal of one request.
struct Caller {
  std::string principal_arn;  // arn:aws:iam::ACCOUNT:user/NAME
  std::string account_id;
  std::string access_key_id;
  // kmip: the KMIP server's caller (a client certificate's name): only it may set the
  // reserved "kmip:" tags that hold KMIP attributes (docs/kmip.md "Objects are custos keys").
  bool kmip = false;
};

// KmsOutcome is the answer to one operation: `response` when `error_type` is empty, else an
// AWS error (e.g. "NotFoundException") with a message safe to return, and the HTTP status.
// key_id names the key the request resolved to (for the audit entry), empty if none.
struct KmsOutcome {
  nlohmann::json response = nlohmann::json::object();
  std::string error_type;
  std::string message;
  int http_status = 200;
  std::string key_id;
  bool ok() const { return error_type.empty(); }
};

// AwsError is an AWS KMS exception an operation can answer. Inside the service a refusal is a
// Status whose reason() is an AwsError; Execute turns it into the exception name and HTTP
// status from one table (AwsErrorType, AwsErrorHttpStatus). Values are never reused.
enum class AwsError : uint16_t {
  kNone = 0,
  kValidation = 1,
  kSerialization = 2,
  kNotFound = 3,
  kAccessDenied = 4,
  kNotAuthorized = 5,
  kDisabled = 6,
  kInvalidState = 7,
  kInvalidKeyUsage = 8,
  kUnsupportedOperation = 9,
  kMalformedPolicyDocument = 10,
  kInvalidCiphertext = 11,
  kIncorrectKey = 12,
  kInvalidSignature = 13,
  kInvalidMac = 14,
  kAlreadyExists = 15,
  kLimitExceeded = 16,
  kUnknownOperation = 17,
  kDependencyTimeout = 18,
  kInternal = 19,
};
inline constexpr uint16_t kMaxAwsError = 19;
// AwsErrorType is the AWS exception name ("NotFoundException"), nullptr for kNone.
const char* AwsErrorType(AwsError error);
// AwsErrorHttpStatus is the HTTP status AWS answers it with (400, 500 or 503), 0 for kNone.
int AwsErrorHttpStatus(AwsError error);

// CoreError is the AWS error a core failure becomes, chosen by the core's reason.
struct CoreError {
  ecall::Reason reason;
  AwsError error;
  const char* message;  // safe to show: fixed text, never the core's own message
};
// CoreErrorFor returns the table row for `reason`, or nullptr for kNone (then the error code
// decides: kInvalidArgument -> ValidationException with the core's message, kUnavailable ->
// DependencyTimeoutException 503, anything else KMSInternalException 500).
const CoreError* CoreErrorFor(ecall::Reason reason);

class KmsService {
 public:
  KmsService(store::Store* store, CoreCall core, ServiceOptions options);
  ~KmsService();

  // Load reads every key, version and alias into the cache. Call once before Execute.
  Status Load();

  // Refresh applies the store's changes since the cache's state version (re-reading each key
  // and alias another node changed, or everything when the log no longer reaches back) and,
  // on success, marks the cache fresh. Safe to call concurrently with Execute; it holds the
  // cache's lock only when there is something to apply.
  Status Refresh();
  // Fresh: max_staleness is 0, or the cache was confirmed against the store within it.
  bool Fresh() const;

  // Execute runs `operation` (the X-Amz-Target suffix, e.g. "Encrypt") for `caller`.
  KmsOutcome Execute(std::string_view operation, const nlohmann::json& request, const Caller& caller);
  // ExecuteXks runs one XKS proxy API key operation (docs/xks.md), "XksGetKeyMetadata",
  // "XksEncrypt" or "XksDecrypt", on the key the request's "externalKeyId" names (a key id, or
  // an alias name without "alias/"), with Execute's locking, freshness and errors. The key
  // policy decides for the caller as for DescribeKey, Encrypt and Decrypt.
  KmsOutcome ExecuteXks(std::string_view operation, const nlohmann::json& request, const Caller& caller);

  // ExecuteKmip runs one of the KMIP server's key operations (appliance/kmip, docs/kmip.md):
  // "KmipCreate", "KmipRegister", "KmipDescribe", "KmipList", "KmipActivate", "KmipRevoke",
  // "KmipDestroy", "KmipSetTags", "KmipDeleteTags", "KmipEncrypt", "KmipDecrypt", with Execute's
  // locking, freshness, policies and errors. The key policy decides for the caller as for
  // DescribeKey, EnableKey, DisableKey, ScheduleKeyDeletion, TagResource, UntagResource, Encrypt,
  // Decrypt. KmipRegister (caller.kmip only, else AccessDeniedException) makes a key as
  // CreateKey does from {"Material": base64 of 16 or 32 bytes, "Tags", "Description",
  // "PreActive", "Policy"} whose spec is KMIP_AES: the client's AES key, used as given by
  // KmipEncrypt/KmipDecrypt, refused by every KMS API cryptographic operation and by rotation.
  KmsOutcome ExecuteKmip(std::string_view operation, const nlohmann::json& request, const Caller& caller);

  // RunMaintenance deletes keys whose deletion date has passed and rotates keys whose
  // rotation date has come. The host calls it periodically; safe to call concurrently with
  // Execute. Returns the first error (maintenance continues with the other keys).
  Status RunMaintenance();

  // Operations lists every operation Execute knows (for metrics and docs).
  static const std::vector<std::string_view>& Operations();
  // ChangesState: whether `operation` changes keys, aliases, policies or tags (true for a name
  // that is not an operation).
  static bool ChangesState(std::string_view operation);

  const ServiceOptions& options() const { return options_; }

 // Impl holds the cache and the operations (service.cc); public only so that the operations
  // table there can name its handlers.
  struct Impl;

 private:
  // Run executes one row of an operations table (service.cc; null: unknown operation).
  KmsOutcome Run(const void* operation, const nlohmann::json& request, const Caller& caller);
  std::unique_ptr<Impl> impl_;
  ServiceOptions options_;
};

}  // namespace custos::kms
