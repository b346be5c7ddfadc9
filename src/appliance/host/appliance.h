// The untrusted host of an appliance node (`custos server`; DESIGN.md "Attested appliance",
// docs/protocol.md "Appliance API"). It starts the trusted core (host/enclave_process.h),
// hands it custody.json and the stored envelope, persists what the core returns, relays
// keepers' and peer enclaves' SIGMA messages to it, and joins a cluster through a peer when
// configured. It never holds the root key: it only ever sees the envelope, SIGMA messages and
// records, evidence and public status.
//
// Routes (JSON bodies, binary fields base64; [admin] = needs "Authorization: Bearer <token>",
// the token in data_dir/admin.token):
//   GET  /v1/sys/health[?strict]        {"sealed", "initialized", "store_fresh", "serving": bool};
//                                       ?strict answers 503 unless serving (load balancers)
//   GET  /v1/sys/seal-status            what keepers check before a release (no secrets, no
//                                       evidence): sealed, initialized, tee, enclave_key, custody,
//                                       custody_epoch, public_key, origin_binding, unseal_error
//   GET  /v1/sys/status[?nonce=HEX32]   [admin] the core's status + "evidence" (base64) + "host"
//   POST /v1/sys/init                   [admin] {} -> {"initialized": true, "envelope_sha256": hex}
//   POST /v1/sys/sigma/respond          {"message1"} -> {"session", "message2"}
//   POST /v1/sys/sigma/finish           {"session", "message3"} -> {"record"}
//   POST /v1/sys/sigma/record           {"session", "record"} -> {"record"}
//   POST /v1/sys/custody                {"descriptor": custody.json} -> {"custody", "epoch"}
//                                       adopts the successor descriptor of a reshare (the core
//                                       checks it: same joint key, higher epoch, every signature)
//   GET  /v1/sys/audit/head             [keeper or admin] this node's newest durable signed
//                                       audit head: {"log", "audit_public_key", "seq", "hash",
//                                       "signature"} (docs/protocol.md "Audit witness")
//   GET  /v1/sys/audit/records?log=L&from=N&limit=M
//                                       [keeper or admin] {"log", "records": [{"seq", "entry",
//                                       "hash", "signature"}]}, at most 1000 records
//   POST /v1/sys/xks-credentials        [admin] {"uri_prefix", "name"?} -> {"access_key_id",
//                                       "secret_access_key", "uri_prefix", "uri_path", "name",
//                                       "principal_arn"}: an XKS proxy API credential (kms/xks.h)
//   GET  /v1/sys/xks-credentials        [admin] {"credentials": [{"access_key_id", "name",
//                                       "uri_prefix", "principal_arn", "created"}]}
//   POST /v1/sys/xks-credentials/delete [admin] {"access_key_id"} -> {"deleted": id}
//   POST {prefix}/kms/xks/v1/...        the AWS KMS XKS proxy API (kms/xks.h, docs/xks.md)
//   POST /v1/sys/access-keys            [admin] {"name"} -> {"access_key_id", "secret_access_key",
//                                       "principal_arn"}
//   GET  /metrics                       [admin] Prometheus text: KMS requests and latency, sealed state
//   POST /                              the AWS KMS JSON 1.1 API (kms/api.h)
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>

#include "common/secret.h"
#include "appliance/host/audit_writer.h"
#include "protocol/custody/custody.h"
#include "appliance/host/config.h"
#include "appliance/host/enclave_process.h"
#include "appliance/kms/api.h"
#include "appliance/kms/xks.h"
#include "appliance/kmip/api.h"
#include "appliance/kmip/ca.h"
#include "appliance/kms/service.h"
#include "appliance/store/store.h"
#include "net/http.h"
#include "net/source_limiter.h"
#include "net/http_server.h"
#include "nlohmann/json.hpp"

namespace custos::host {

// A node sharing its store ([store] url) re-reads other nodes' key changes every
// kRefreshInterval and refuses KMS requests when it has not confirmed its cache for
// kMaxStaleness: the bound within which a change acknowledged by one node is in force on all.
inline constexpr std::chrono::milliseconds kRefreshInterval{100};
inline constexpr std::chrono::milliseconds kMaxStaleness{1000};

// kEnvelopeFile is the envelope's file name in the data directory.
inline constexpr std::string_view kEnvelopeFile = "envelope.cdc";
// kDatabaseFile is the Store (keys, aliases, access keys, audit chain) in the data directory.
inline constexpr std::string_view kDatabaseFile = "custos.db";
// kAdminTokenFile holds the bearer token the /v1/sys admin routes require.
inline constexpr std::string_view kAdminTokenFile = "admin.token";
// kOriginFile holds the evidence of the enclave that made the envelope.
inline constexpr std::string_view kOriginFile = "envelope.origin";
// kCustodyFile is the custody descriptor the node adopted after a reshare (POST
// /v1/sys/custody). At start the node serves the newer of it and [server] custody.
inline constexpr std::string_view kCustodyFile = "custody.json";

// AccessKeyGrant is a new SigV4 credential, as handed to its owner once.
struct AccessKeyGrant {
  std::string access_key_id;
  SecretBytes secret_access_key;
  std::string principal_arn;
};

class Appliance {
 public:
  // Start creates the data directory (0700), starts the trusted core from `enclave_binary`,
  // loads custody.json and the stored envelope into it, and, if config.join_url is set and
  // the core is sealed, starts joining through that peer in the background (retrying every
  // 2 s until it succeeds or Stop is called).
  static StatusOr<std::unique_ptr<Appliance>> Start(const ServerConfig& config,
                                                    const std::string& enclave_binary);
  ~Appliance();

  // Handle serves one API request; thread-safe.
  net::HttpResponse Handle(const net::HttpRequest& request);
  // HandleKmip answers one KMIP request message (docs/kmip.md) from a client of the KMIP listener.
  Bytes HandleKmip(ByteSpan request, const kmip::KmipPeer& peer);
  // kmip_ca is the KMIP client CA and the listener's certificate ([kmip] listen), or null.
  const kmip::KmipCa* kmip_ca() const { return kmip_ca_ ? &*kmip_ca_ : nullptr; }
  // IssueKmipClient signs a KMIP client certificate for `name` over `public_key_pem`.
  StatusOr<std::string> IssueKmipClient(const std::string& name, const std::string& public_key_pem);
  // Stop ends the join thread (if any) and drains the audit writer. The core stops when the
  // Appliance is destroyed.
  void Stop();
  // SettleAudit waits (up to `timeout`) until the audit log's head is signed and durable, so
  // that keepers witnessing it now see the last entry (dev mode's stop). False on timeout.
  bool SettleAudit(std::chrono::milliseconds timeout) const { return audit_ && audit_->WaitSettled(timeout); }

  // CreateAccessKey makes a SigV4 access key for the principal arn:aws:iam::ACCOUNT:user/NAME
  // (the core draws the secret and wraps it under the root key; the store keeps only the
  // wrapped form). The secret is returned once. Needs an unsealed core; kAlreadyExists for a
  // name already in use. Also served as POST /v1/sys/access-keys (admin token required).
  StatusOr<AccessKeyGrant> CreateAccessKey(const std::string& name);

  // admin_token_file is the file holding the token /v1/sys admin routes require
  // (data_dir/admin.token, created 0600 at start).
  std::string admin_token_file() const;

  // The current core's pid and measurement (a core that died is replaced: SuperviseLoop).
  pid_t enclave_pid() const;
  Bytes core_measurement() const;

 private:
  Appliance(ServerConfig config, std::string enclave_binary, std::shared_ptr<EnclaveProcess> enclave);
  // CoreCall sends one call to the current core (shared lock: the supervisor swaps a dead core
  // under the exclusive lock).
  StatusOr<std::vector<Bytes>> CoreCall(ecall::Call call, std::vector<Bytes> args);
  // Core makes the typed call C (appliance/ecall/calls.h) through CoreCall.
  template <typename C>
  StatusOr<typename C::Result> Core(const typename C::Args& args);
  void SuperviseLoop();
  void StartJoin();
  using Json = nlohmann::json;
  struct Route;
  net::HttpResponse HandleSys(const net::HttpRequest& request, const std::string& path);
  static const std::vector<Route>& Routes();
  bool IsAdmin(const net::HttpRequest& request) const;
  StatusOr<Json> Health(const net::HttpRequest& request, const Json& body);
  StatusOr<Json> SealStatus(const net::HttpRequest& request, const Json& body);
  // The audit witness routes (keepers, or the admin token): AuthorizeAuditRead checks a
  // keeper's signed read (audit/witness.h) against the custody this node serves.
  custos::Status AuthorizeAuditRead(const net::HttpRequest& request) const;
  StatusOr<Json> AuditHead(const net::HttpRequest& request, const Json& body);
  StatusOr<Json> AuditRecords(const net::HttpRequest& request, const Json& body);
  // The same page as bytes (?format=binary, docs/protocol.md "Audit witness").
  StatusOr<std::string> AuditRecordsBinary(const net::HttpRequest& request);
  // ReadAuditPage checks the reader and the query and reads the page: its log name and records.
  StatusOr<std::pair<std::string, std::vector<store::AuditRecord>>> ReadAuditPage(const net::HttpRequest& request);
  StatusOr<Json> Status(const net::HttpRequest& request, const Json& body);
  StatusOr<Json> Init(const net::HttpRequest& request, const Json& body);
  StatusOr<Json> SigmaRespond(const net::HttpRequest& request, const Json& body);
  StatusOr<Json> SigmaFinish(const net::HttpRequest& request, const Json& body);
  StatusOr<Json> SigmaRecord(const net::HttpRequest& request, const Json& body);
  StatusOr<Json> CustodyUpdate(const net::HttpRequest& request, const Json& body);
  // RebindOrigin replaces legacy origin evidence (bound to one custody fingerprint) with
  // evidence bound to the joint key once the core is unsealed, and stores it.
  void RebindOrigin();
  // CoreStatus is the core's status JSON; with a 32-byte nonce it also returns fresh evidence
  // in `evidence` (an empty nonce skips the TEE signature: for the host's own state checks).
  StatusOr<Json> CoreStatus(ByteSpan nonce, Bytes* evidence);
  custos::Status JoinOnce();
  void JoinLoop();
  custos::Status StoreEnvelope(const Bytes& envelope, const Bytes& origin);
  StatusOr<Json> AccessKeys(const net::HttpRequest& request, const Json& body);
  StatusOr<Json> XksCredentials(const net::HttpRequest& request, const Json& body);
  StatusOr<Json> XksCredentialList(const net::HttpRequest& request, const Json& body);
  StatusOr<Json> XksCredentialDelete(const net::HttpRequest& request, const Json& body);
  StatusOr<Json> KmipClients(const net::HttpRequest& request, const Json& body);
  std::string Metrics();
  void MaintenanceLoop();
  // RefreshLoop keeps the KMS cache coherent with the other nodes of a cluster (KmsService::
  // Refresh every kRefreshInterval) and logs when the node stops or resumes serving because of
  // it.
  void RefreshLoop();
  custos::Status OpenKms();
  void RecordAuditKey();

  ServerConfig config_;
  std::string enclave_binary_;
  mutable std::shared_mutex core_mu_;
  // Guarded by core_mu_ (replaced, never reset); a call holds its own reference, so a core
  // replaced meanwhile goes when its last call has returned.
  std::shared_ptr<EnclaveProcess> enclave_;
  std::atomic<uint64_t> restarts_{0};
  std::atomic<bool> join_running_{false};
  std::thread supervisor_thread_;
  std::mutex init_mu_;
  // ServedCustody: the descriptor ChooseCustody picks, parsed, cached while its files are
  // unchanged (audit reads check the reader against it).
  StatusOr<std::shared_ptr<const custody::CustodyDescriptor>> ServedCustody() const;
  mutable std::mutex custody_cache_mu_;
  mutable std::string custody_cache_key_;                                 // guarded by custody_cache_mu_
  mutable std::shared_ptr<const custody::CustodyDescriptor> custody_cache_;  // guarded by custody_cache_mu_
  std::mutex join_mu_;
  std::condition_variable join_cv_;
  bool stopping_ = false;
  std::string last_join_error_;
  std::thread join_thread_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<kms::KmsService> kms_;
  std::unique_ptr<kms::KmsApi> api_;
  std::unique_ptr<kms::XksApi> xks_;
  std::unique_ptr<kmip::KmipApi> kmip_;
  std::optional<kmip::KmipCa> kmip_ca_;  // with [kmip] listen
  std::unique_ptr<AuditWriter> audit_;
  std::atomic<bool> audit_key_recorded_{false};
  std::string admin_token_;
  // Handshakes started per client address: 20 per 10 s (a keeper releases at most every
  // interval, 2 s by default; the core keeps 64 pending sessions).
  net::SourceLimiter sigma_sources_{20, std::chrono::seconds(10)};
  // Failed /v1/sys requests per client address: 100 per 10 s, then 503 for the window.
  net::SourceLimiter sys_failures_{100, std::chrono::seconds(10)};
  std::thread maintenance_thread_;
  std::thread refresh_thread_;  // with [store] url: RefreshLoop
};

// ApiServerOptions returns the HttpServer options an appliance node serves with: TLS from the
// config, and the errors the HTTP layer answers itself (413 body too large, 431, 400) in the
// AWS JSON error shape, since most clients of this port are AWS SDKs.
net::HttpServerOptions ApiServerOptions(const ServerConfig& config);

// DefaultEnclaveBinary returns custos-enclave next to the running executable.
std::string DefaultEnclaveBinary();

// EnclaveLaunchFor builds the core's command line from the configuration.
EnclaveLaunch EnclaveLaunchFor(const ServerConfig& config, const std::string& enclave_binary);

}  // namespace custos::host
