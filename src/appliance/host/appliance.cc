#include "appliance/host/appliance.h"
#include "appliance/host/cpu_scheduling.h"

#include "net/fiber.h"

#include "appliance/ecall/calls.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <iostream>
#include <regex>
#include <thread>

#include "common/file.h"
#include "common/log.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "protocol/audit/witness.h"
#include "protocol/custody/custody.h"
#include "net/http_client.h"
#include "net/json_fields.h"
#include "protocol/sigma/release.h"

namespace custos::host {

using json = nlohmann::json;

namespace {

void Log(const std::string& level, const std::string& msg, const json& extra = json::object()) {
  custos::Log(level, "host", msg, extra);
}

// ChooseCustody returns the descriptor the node serves: [server] custody, or the one it adopted
// after a reshare (data_dir/custody.json) when that one is newer. Both must be of the same
// joint key; the core verifies the chosen one again at kLoad.
StatusOr<std::string> ChooseCustody(const ServerConfig& config) {
  ASSIGN_OR_RETURN(std::string configured, ReadFileString(config.custody_path));
  std::string adopted_path = config.data_dir + "/" + std::string(kCustodyFile);
  if (!std::filesystem::exists(adopted_path)) return configured;
  ASSIGN_OR_RETURN(std::string adopted, ReadFileString(adopted_path));
  auto a = custody::CustodyDescriptor::Parse(adopted);
  if (!a.ok()) return a.status().WithContext(adopted_path);
  auto c = custody::CustodyDescriptor::Parse(configured);
  if (!c.ok()) return c.status().WithContext(config.custody_path);
  if (!(a->public_key == c->public_key))
    return FailedPrecondition(adopted_path + " (adopted after a reshare) and " + config.custody_path +
                              " ([server] custody) have different joint public keys: they are not the "
                              "same custody; point [server] custody at this node's custody");
  bool use_adopted = a->epoch > c->epoch;
  Log("info", "custody descriptor chosen",
      {{"path", use_adopted ? adopted_path : config.custody_path},
       {"epoch", use_adopted ? a->epoch : c->epoch},
       {"custody", use_adopted ? a->FingerprintHex() : c->FingerprintHex()}});
  return use_adopted ? adopted : configured;
}

constexpr char kAdminTokenNeeded[] =
    "this route needs the admin token: Authorization: Bearer <the token in the server's data_dir/admin.token> "
    "(custos operator ... --token-file, or CUSTOS_ADMIN_TOKEN_FILE)";

}  // namespace

std::string DefaultEnclaveBinary() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "custos-enclave";
  return (std::filesystem::path(std::string(buf, static_cast<size_t>(n))).parent_path() /
          "custos-enclave")
      .string();
}

net::HttpServerOptions ApiServerOptions(const ServerConfig& config) {
  net::HttpServerOptions o;
  // One I/O thread per CPU, each running its requests on fibers: a request waiting for the
  // trusted core suspends and the thread serves its other connections (net/fiber.h,
  // docs/architecture.md "Appliance concurrency model").
  o.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  o.fibers = true;
  o.tls_cert_file = config.tls_cert;
  o.tls_key_file = config.tls_key;
  o.transport_error = [](int status, std::string_view, std::string_view message) {
    return kms::KmsApi::ErrorResponse(status, status == 400 ? "SerializationException" : "ValidationException",
                                      message, "");
  };
  return o;
}

EnclaveLaunch EnclaveLaunchFor(const ServerConfig& c, const std::string& enclave_binary) {
  EnclaveLaunch l;
  l.binary = enclave_binary;
  l.args = {"--tee", c.tee_backend};
  if (c.tee_backend == "sim") {
    l.args.insert(l.args.end(), {"--sim-key-dir", c.sim_key_dir.empty() ? c.data_dir + "/sim" : c.sim_key_dir,
                                 "--sim-product-id", std::to_string(c.sim_product_id), "--sim-svn",
                                 std::to_string(c.sim_svn)});
    if (c.sim_debug) l.args.push_back("--sim-debug");
  }
  l.args.insert(l.args.end(), {"--gramine-root", c.gramine_root, "--tsm-root", c.tsm_root});
  // One core worker per CPU unless configured (docs/architecture.md "The trusted core's
  // workers").
  const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  l.workers = c.core_workers != 0 ? c.core_workers : cpus;
  // And a pipelined channel for every fiber-running I/O thread: the KMS API server's and the
  // XKS listener's (ApiServerOptions), one per CPU each. A thread beyond these calls through
  // the workers' channels.
  l.pipelined = std::min(256, 2 * cpus);
  return l;
}

Appliance::Appliance(ServerConfig config, std::string enclave_binary, std::shared_ptr<EnclaveProcess> enclave)
    : config_(std::move(config)), enclave_binary_(std::move(enclave_binary)), enclave_(std::move(enclave)) {}

Appliance::~Appliance() { Stop(); }

// StartCore spawns the trusted core and loads the custody it serves, the stored envelope and
// its origin file (at start, and again when the supervisor restarts a core that died).
StatusOr<std::shared_ptr<EnclaveProcess>> StartCore(const ServerConfig& config, const std::string& enclave_binary,
                                                    bool* initialized) {
  ASSIGN_OR_RETURN(std::string custody_json, ChooseCustody(config));
  Bytes envelope, origin;
  std::string envelope_path = config.data_dir + "/" + std::string(kEnvelopeFile);
  std::string origin_path = config.data_dir + "/" + std::string(kOriginFile);
  if (std::filesystem::exists(envelope_path)) {
    ASSIGN_OR_RETURN(envelope, ReadFileBytes(envelope_path));
    if (std::filesystem::exists(origin_path)) {
      ASSIGN_OR_RETURN(origin, ReadFileBytes(origin_path));
    }
  }
  std::string collateral;
  if (!config.join_collateral.empty()) {
    ASSIGN_OR_RETURN(collateral, ReadFileString(config.join_collateral));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<EnclaveProcess> enclave,
                   EnclaveProcess::Spawn(EnclaveLaunchFor(config, enclave_binary)));
  RETURN_IF_ERROR(
      ecall::Invoke<ecall::Load>([&](ecall::Call c, std::vector<Bytes> a) { return enclave->Call(c, std::move(a)); },
                                 {ToBytes(custody_json), envelope, origin, ToBytes(collateral)}).status());
  *initialized = !envelope.empty();
  return enclave;
}

StatusOr<std::unique_ptr<Appliance>> Appliance::Start(const ServerConfig& config,
                                                      const std::string& enclave_binary) {
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) return Unavailable("cannot create data_dir " + config.data_dir + ": " + ec.message());
  ::chmod(config.data_dir.c_str(), 0700);
  // Before the core and the server threads start, so that they inherit it.
  RETURN_IF_ERROR(ApplyCpuScheduling(config.cpu_scheduling));
  bool initialized = false;
  ASSIGN_OR_RETURN(std::shared_ptr<EnclaveProcess> enclave, StartCore(config, enclave_binary, &initialized));
  std::unique_ptr<Appliance> a(new Appliance(config, enclave_binary, std::move(enclave)));
  RETURN_IF_ERROR(a->OpenKms());
  Log("info", "trusted core started",
      {{"tee", a->enclave_->tee()},
       {"enclave_pid", a->enclave_->pid()},
       {"measurement", HexEncode(a->enclave_->measurement())},
       {"initialized", initialized},
       {"cpu_scheduling", config.cpu_scheduling},
       {"state", "sealed"}});
  a->StartJoin();
  a->maintenance_thread_ = std::thread([p = a.get()] { p->MaintenanceLoop(); });
  if (!config.store_url.empty()) a->refresh_thread_ = std::thread([p = a.get()] { p->RefreshLoop(); });
  a->supervisor_thread_ = std::thread([p = a.get()] { p->SuperviseLoop(); });
  return a;
}

StatusOr<std::vector<Bytes>> Appliance::CoreCall(ecall::Call call, std::vector<Bytes> args) {
  std::shared_ptr<EnclaveProcess> enclave;
  {
    // Not held during the call: a call may suspend its fiber (net/fiber.h), and no lock may
    // be held across a suspension.
    std::shared_lock<std::shared_mutex> lock(core_mu_);
    enclave = enclave_;
  }
  return enclave->Call(call, std::move(args));
}

template <typename C>
StatusOr<typename C::Result> Appliance::Core(const typename C::Args& args) {
  return ecall::Invoke<C>([this](ecall::Call call, std::vector<Bytes> a) { return CoreCall(call, std::move(a)); }, args);
}

pid_t Appliance::enclave_pid() const {
  std::shared_lock<std::shared_mutex> lock(core_mu_);
  return enclave_->pid();
}

Bytes Appliance::core_measurement() const {
  std::shared_lock<std::shared_mutex> lock(core_mu_);
  return enclave_->measurement();
}

void Appliance::StartJoin() {
  if (config_.join_url.empty() || join_running_.exchange(true)) return;
  if (join_thread_.joinable()) join_thread_.join();
  join_thread_ = std::thread([this] {
    JoinLoop();
    join_running_ = false;
  });
}

// SuperviseLoop restarts a trusted core that died (crash, OOM kill, kill -9): the host reaps
// it, logs why, and starts a new one, sealed; keepers with --auto-release (or a join) unseal it
// again. Until then every call answers "trusted core is gone" / sealed.
void Appliance::SuperviseLoop() {
  std::string last_error;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(join_mu_);
      if (join_cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stopping_; })) return;
    }
    std::optional<std::string> gone;
    pid_t old_pid = 0;
    {
      std::shared_lock<std::shared_mutex> lock(core_mu_);
      gone = enclave_->Exited();
      old_pid = enclave_->pid();
    }
    if (!gone) continue;
    if (last_error.empty())
      Log("error", "trusted core died; restarting it (it starts sealed)", {{"enclave_pid", old_pid}, {"reason", *gone}});
    bool initialized = false;
    auto fresh = StartCore(config_, enclave_binary_, &initialized);
    if (!fresh.ok()) {
      if (fresh.status().message() != last_error)
        Log("error", "cannot restart the trusted core; retrying", {{"reason", fresh.status().message()}});
      last_error = fresh.status().message();
      continue;
    }
    last_error.clear();
    pid_t pid = (*fresh)->pid();
    {
      std::unique_lock<std::shared_mutex> lock(core_mu_);
      enclave_ = std::move(*fresh);
    }
    restarts_.fetch_add(1);
    Log("info", "trusted core restarted", {{"enclave_pid", pid}, {"initialized", initialized}, {"state", "sealed"}});
    StartJoin();
  }
}

custos::Status Appliance::OpenKms() {
  // [store] url: a database shared by the nodes of a cluster; else this node's SQLite file.
  // Each node appends to its own audit log, named by [server] node_name.
  store::StoreOptions store_options;
  store_options.audit_log = config_.node_name;
  ASSIGN_OR_RETURN(store_, store::OpenStore(config_.store_url.empty()
                                                ? config_.data_dir + "/" + std::string(kDatabaseFile)
                                                : config_.store_url,
                                            store_options));
  kms::CoreCall core = [this](ecall::Call call, std::vector<Bytes> args) { return CoreCall(call, std::move(args)); };
  kms::ServiceOptions so;
  so.region = config_.kms_region;
  so.account_id = config_.kms_account_id;
  // Sharing the store with other nodes: the cache follows their changes (RefreshLoop, every
  // kRefreshInterval) and the node refuses to serve when it could not for kMaxStaleness.
  if (!config_.store_url.empty()) so.max_staleness = kMaxStaleness;
  kms_ = std::make_unique<kms::KmsService>(store_.get(), core, so);
  RETURN_IF_ERROR(kms_->Load());
  kms::SigV4Options sig;
  sig.region = config_.kms_region;
  sig.service = "kms";
  // The audit chain: the core extends and signs it (ecall kAuditAppend). The audit public key
  // (derived from the root key) is recorded in the store the first time the core signs, for
  // `custos audit verify`.
  BatchSigner signer = [this](ByteSpan anchor, const std::vector<std::string>& entries) -> StatusOr<SignedHead> {
    ByteWriter w;
    w.U32(static_cast<uint32_t>(entries.size()));
    for (const std::string& e : entries) w.Var(e);
    ASSIGN_OR_RETURN(auto r, Core<ecall::AuditAppend>({Bytes(anchor.begin(), anchor.end()), w.Take()}));
    if (!audit_key_recorded_.load()) RecordAuditKey();
    return SignedHead{std::move(r.head), std::move(r.signature)};
  };
  AuditWriterOptions audit_options;
  audit_options.sync = config_.audit_sync == "request" ? AuditSync::kRequest : AuditSync::kGroup;
  ASSIGN_OR_RETURN(audit_, AuditWriter::Start(*store_, signer, audit_options));
  kms::AuditSink sink = [this](const audit::Entry& entry, bool durable) {
    return audit_->Append(entry, durable);
  };
  api_ = std::make_unique<kms::KmsApi>(kms_.get(), store_.get(), core, sink, sig);
  kms::XksOptions xo;
  xo.region = config_.xks_region;
  xo.max_requests_per_second = config_.xks_max_requests_per_second;
  xo.node_name = config_.node_name.empty() ? "custos-1" : config_.node_name;
  xo.model = "custos trusted core (" + config_.tee_backend + ")";
  xks_ = std::make_unique<kms::XksApi>(kms_.get(), store_.get(), core, sink, xo, api_->mutable_metrics());
  if (!config_.kmip_listen.empty()) {
    kmip::KmipApiOptions ko;
    ko.account_id = config_.kms_account_id;
    kmip_ = std::make_unique<kmip::KmipApi>(kms_.get(), sink, ko);
    std::string host = config_.kmip_listen.substr(0, config_.kmip_listen.rfind(':'));
    if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    if (host == "0.0.0.0" || host == "::") host = config_.node_name.empty() ? "localhost" : config_.node_name;
    ASSIGN_OR_RETURN(kmip_ca_, kmip::EnsureCa(config_.data_dir + "/kmip", host));
  }
  // The admin token: kept across restarts so operators' scripts keep working; 0600.
  std::string token_path = admin_token_file();
  if (std::filesystem::exists(token_path)) {
    ASSIGN_OR_RETURN(admin_token_, ReadFileString(token_path));
    while (!admin_token_.empty() && (admin_token_.back() == '\n' || admin_token_.back() == '\r')) admin_token_.pop_back();
    if (admin_token_.size() < 32) return FailedPrecondition(token_path + " holds a token shorter than 32 characters");
  } else {
    admin_token_ = HexEncode(crypto::RandomBytes(32));
    RETURN_IF_ERROR(WriteFileAtomic(token_path, ToBytes(admin_token_ + "\n"), 0600));
  }
  return custos::Status::Ok();
}

void Appliance::RecordAuditKey() {
  auto st = CoreStatus({}, nullptr);
  if (!st.ok() || !st->contains("audit_public_key")) return;
  std::string key = (*st)["audit_public_key"].get<std::string>();
  auto stored = store_->GetMeta("audit_public_key");
  if (stored.ok() && *stored != key) {
    Log("error", "the audit key of this root differs from the one the store recorded", {{"stored", *stored}, {"core", key}});
    return;
  }
  if (!stored.ok() && !store_->PutMeta("audit_public_key", key).ok()) return;
  audit_key_recorded_ = true;
}

std::string Appliance::admin_token_file() const { return config_.data_dir + "/" + std::string(kAdminTokenFile); }

StatusOr<AccessKeyGrant> Appliance::CreateAccessKey(const std::string& name) {
  ASSIGN_OR_RETURN(kms::NewAccessKey k, api_->CreateAccessKey(name));
  Log("info", "access key created", {{"access_key_id", k.access_key_id}, {"principal", k.principal_arn}});
  return AccessKeyGrant{k.access_key_id, std::move(k.secret_access_key), k.principal_arn};
}

bool Appliance::IsAdmin(const net::HttpRequest& req) const {
  auto auth = req.headers.find("authorization");
  std::string want = "Bearer " + admin_token_;
  return auth != req.headers.end() && ConstantTimeEquals(AsBytes(auth->second), AsBytes(want));
}

StatusOr<json> Appliance::XksCredentials(const net::HttpRequest&, const json& body) {
  ASSIGN_OR_RETURN(std::string prefix, net::GetString(body, "uri_prefix"));
  std::string name = body.value("name", json("")).is_string() ? body.value("name", std::string()) : std::string();
  ASSIGN_OR_RETURN(kms::NewXksCredential c, xks_->CreateCredential(prefix, name));
  Log("info", "XKS credential created",
      {{"access_key_id", c.access_key_id}, {"uri_prefix", c.uri_prefix}, {"name", c.name}});
  return json{{"access_key_id", c.access_key_id},
              {"secret_access_key", std::string(c.secret_access_key.ExposeAsString())},
              {"uri_prefix", c.uri_prefix},
              {"uri_path", kms::XksApi::UriPath(c.uri_prefix)},
              {"name", c.name},
              {"principal_arn", c.principal_arn}};
}

StatusOr<json> Appliance::XksCredentialList(const net::HttpRequest&, const json&) {
  ASSIGN_OR_RETURN(std::vector<kms::XksCredentialInfo> all, xks_->ListCredentials());
  json list = json::array();
  for (const kms::XksCredentialInfo& c : all)
    list.push_back({{"access_key_id", c.access_key_id}, {"name", c.name}, {"uri_prefix", c.uri_prefix},
                    {"uri_path", kms::XksApi::UriPath(c.uri_prefix)}, {"principal_arn", c.principal_arn},
                    {"created", c.created}});
  return json{{"credentials", std::move(list)}};
}

StatusOr<json> Appliance::XksCredentialDelete(const net::HttpRequest&, const json& body) {
  ASSIGN_OR_RETURN(std::string id, net::GetString(body, "access_key_id"));
  RETURN_IF_ERROR(xks_->DeleteCredential(id));
  Log("info", "XKS credential deleted", {{"access_key_id", id}});
  return json{{"deleted", id}};
}

StatusOr<std::string> Appliance::IssueKmipClient(const std::string& name, const std::string& public_key_pem) {
  if (!kmip_ca_) return FailedPrecondition("this node serves no KMIP ([kmip] listen is not set)");
  ASSIGN_OR_RETURN(std::string cert, kmip::IssueClientCertificate(*kmip_ca_, name, public_key_pem));
  Log("info", "KMIP client certificate issued", {{"name", name}, {"principal", kmip_->Principal(name)}});
  return cert;
}

StatusOr<json> Appliance::KmipClients(const net::HttpRequest&, const json& body) {
  ASSIGN_OR_RETURN(std::string name, net::GetString(body, "name"));
  ASSIGN_OR_RETURN(std::string public_key, net::GetString(body, "public_key"));
  ASSIGN_OR_RETURN(std::string cert, IssueKmipClient(name, public_key));
  ASSIGN_OR_RETURN(std::string ca, ReadFileString(kmip_ca_->ca_cert_file));
  return json{{"certificate", cert}, {"ca_certificate", ca}, {"principal_arn", kmip_->Principal(name)}};
}

Bytes Appliance::HandleKmip(ByteSpan request, const kmip::KmipPeer& peer) {
  return kmip_->Handle(request, peer);
}

StatusOr<json> Appliance::AccessKeys(const net::HttpRequest&, const json& body) {
  ASSIGN_OR_RETURN(std::string name, net::GetString(body, "name"));
  ASSIGN_OR_RETURN(AccessKeyGrant g, CreateAccessKey(name));
  json out = {{"access_key_id", g.access_key_id},
              {"secret_access_key", std::string(g.secret_access_key.ExposeAsString())},
              {"principal_arn", g.principal_arn}};
  return out;
}

std::string Appliance::Metrics() {
  std::string out = api_->metrics().Render();
  auto st = CoreStatus({}, nullptr);
  out += "# HELP custos_sealed 1 while the trusted core has no root key.\n# TYPE custos_sealed gauge\n";
  out += "custos_sealed " + std::string(st.ok() && !st->value("sealed", true) ? "0" : "1") + "\n";
  out += "# HELP custos_core_up 1 while the trusted core answers.\n# TYPE custos_core_up gauge\n";
  out += "custos_core_up " + std::string(st.ok() ? "1" : "0") + "\n";
  out += "# HELP custos_core_restarts_total Trusted cores that died and were restarted (sealed).\n"
         "# TYPE custos_core_restarts_total counter\n";
  out += "custos_core_restarts_total " + std::to_string(restarts_.load()) + "\n";
  out += "# HELP custos_sys_throttled_total /v1/sys requests turned away for too many failures from their address.\n"
         "# TYPE custos_sys_throttled_total counter\n";
  out += "custos_sys_throttled_total " + std::to_string(sys_failures_.refused()) + "\n";
  out += "# HELP custos_sigma_throttled_total SIGMA handshakes refused for too many from one address.\n"
         "# TYPE custos_sigma_throttled_total counter\n";
  out += "custos_sigma_throttled_total " + std::to_string(sigma_sources_.refused()) + "\n";
  return out;
}

void Appliance::MaintenanceLoop() {
  std::string last_error;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(join_mu_);
      if (join_cv_.wait_for(lock, std::chrono::seconds(30), [this] { return stopping_; })) return;
    }
    auto st = CoreStatus({}, nullptr);
    if (!st.ok() || st->value("sealed", true)) continue;
    custos::Status s = kms_->RunMaintenance();
    if (!s.ok() && s.message() != last_error) Log("warn", "key maintenance failed", {{"reason", s.message()}});
    last_error = s.ok() ? "" : s.message();
  }
}

void Appliance::RefreshLoop() {
  bool fresh = true;
  std::string last_error;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(join_mu_);
      if (join_cv_.wait_for(lock, kRefreshInterval, [this] { return stopping_; })) return;
    }
    custos::Status s = kms_->Refresh();
    if (!s.ok() && s.message() != last_error)
      Log("warn", "cannot follow the cluster's key changes in the database", {{"reason", s.message()}});
    last_error = s.ok() ? "" : s.message();
    const bool now_fresh = kms_->Fresh();
    if (now_fresh != fresh)
      Log(now_fresh ? "info" : "warn",
          now_fresh ? "key cache confirmed against the database again; serving"
                    : "key cache not confirmed against the database; refusing KMS requests",
          {{"max_staleness_ms", kMaxStaleness.count()}});
    fresh = now_fresh;
  }
}

void Appliance::Stop() {
  {
    std::lock_guard<std::mutex> lock(join_mu_);
    stopping_ = true;
  }
  join_cv_.notify_all();
  if (join_thread_.joinable()) join_thread_.join();
  if (maintenance_thread_.joinable()) maintenance_thread_.join();
  if (refresh_thread_.joinable()) refresh_thread_.join();
  if (supervisor_thread_.joinable()) supervisor_thread_.join();
  if (audit_) audit_->Stop();
}

// The /v1/sys routes: who may call each, and how large its body may be. Routing, the access
// check and the size check come before the body is parsed, so an unauthenticated caller costs
// a table lookup, not a JSON parse. Admin routes need "Authorization: Bearer <admin token>"
// (data_dir/admin.token). Public routes either reveal only what a keeper needs before it
// authenticates the core itself (seal-status), or are authenticated by their content: SIGMA
// messages by the handshake, a custody update by every listed keeper's signature, which the
// core verifies.
struct Appliance::Route {
  const char* method;
  const char* path;
  bool admin;
  size_t max_body;
  StatusOr<Json> (Appliance::*handler)(const net::HttpRequest&, const Json&);
};

const std::vector<Appliance::Route>& Appliance::Routes() {
  static const std::vector<Route> routes = {
      {"GET", "/v1/sys/health", false, 0, &Appliance::Health},
      {"GET", "/v1/sys/seal-status", false, 0, &Appliance::SealStatus},
      {"GET", "/v1/sys/status", true, 0, &Appliance::Status},
      {"POST", "/v1/sys/init", true, 4 << 10, &Appliance::Init},
      {"POST", "/v1/sys/access-keys", true, 4 << 10, &Appliance::AccessKeys},
      {"POST", "/v1/sys/xks-credentials", true, 4 << 10, &Appliance::XksCredentials},
      {"GET", "/v1/sys/xks-credentials", true, 0, &Appliance::XksCredentialList},
      {"POST", "/v1/sys/xks-credentials/delete", true, 4 << 10, &Appliance::XksCredentialDelete},
      {"POST", "/v1/sys/kmip-clients", true, 8 << 10, &Appliance::KmipClients},
      {"POST", "/v1/sys/sigma/respond", false, 64 << 10, &Appliance::SigmaRespond},
      {"POST", "/v1/sys/sigma/finish", false, 64 << 10, &Appliance::SigmaFinish},
      // A join's record carries the joining node's evidence and DCAP collateral (<= 512 KiB).
      {"POST", "/v1/sys/sigma/record", false, 1 << 20, &Appliance::SigmaRecord},
      {"POST", "/v1/sys/custody", false, 256 << 10, &Appliance::CustodyUpdate},
      // Keepers witnessing the audit chain: a keeper's signed read or the admin token (checked
      // by the handlers: AuthorizeAuditRead).
      {"GET", "/v1/sys/audit/head", false, 0, &Appliance::AuditHead},
      {"GET", "/v1/sys/audit/records", false, 0, &Appliance::AuditRecords},
  };
  return routes;
}

net::HttpResponse Appliance::Handle(const net::HttpRequest& req) {
  std::string path = req.target.substr(0, req.target.find('?'));
  if (path == "/" && req.method == "POST") return api_->Handle(req);
  if (kms::XksApi::IsXksPath(path)) return xks_->Handle(req);
  // The control plane: an address whose requests keep failing (a stranger probing admin routes,
  // malformed bodies, refused handshakes) is turned away before any work for the window.
  // Health is exempt both ways: behind a load balancer every request comes from its address, so
  // strangers' failures must not make the node fail its health checks, and a ?strict check of a
  // sealed node (503) is not a failure of the caller's.
  if (req.method == "GET" && path == "/v1/sys/health") return HandleSys(req, path);
  std::string source = net::HostPart(req.remote);
  if (!sys_failures_.Allowed(source))
    return net::ErrorResponse(Unavailable("too many failed requests from this address: wait and retry"));
  net::HttpResponse out = HandleSys(req, path);
  if (out.status >= 400) sys_failures_.Record(source);
  return out;
}

namespace {
std::optional<std::string> QueryValue(const std::string& target, std::string_view name);
}  // namespace

net::HttpResponse Appliance::HandleSys(const net::HttpRequest& req, const std::string& path) {
  if (path == "/metrics" && req.method == "GET") {
    // Per-operation counts and the sealed state are the operator's business.
    if (!IsAdmin(req)) return net::ErrorResponse(PermissionDenied(kAdminTokenNeeded));
    net::HttpResponse m;
    m.content_type = "text/plain; version=0.0.4";
    m.body = Metrics();
    return m;
  }
  if (path == "/v1/sys/audit/records" && req.method == "GET" && QueryValue(req.target, "format") == "binary") {
    // A page is up to 1,000 records read from the database: read off the I/O thread, whose
    // other connections go on meanwhile (no lock is held here).
    StatusOr<std::string> records = InternalError("audit records: not read");
    net::fiber::AllowSuspend may_suspend;
    net::fiber::RunElsewhere([&] { records = AuditRecordsBinary(req); });
    if (!records.ok()) return net::ErrorResponse(records.status());
    net::HttpResponse r;
    r.content_type = "application/octet-stream";
    r.body = std::move(*records);
    return r;
  }
  const Route* route = nullptr;
  for (const Route& r : Routes())
    if (path == r.path && req.method == r.method) route = &r;
  if (route == nullptr) return net::ErrorResponse(NotFound("no route " + req.method + " " + path.substr(0, 128)));
  if (route->admin && !IsAdmin(req)) return net::ErrorResponse(PermissionDenied(kAdminTokenNeeded));
  if (req.body.size() > route->max_body)
    return net::ErrorResponse(InvalidArgument("request body too large for " + path + " (at most " +
                                              std::to_string(route->max_body) + " bytes)"));
  json body = json::object();
  if (req.method == "POST") {
    auto parsed = net::ParseJsonObject(req.body);
    if (!parsed.ok()) return net::ErrorResponse(parsed.status());
    body = std::move(*parsed);
  }
  StatusOr<json> out = (this->*(route->handler))(req, body);
  if (!out.ok()) return net::ErrorResponse(out.status());
  net::HttpResponse r;
  r.body = out->dump();
  return r;
}

StatusOr<json> Appliance::CoreStatus(ByteSpan nonce, Bytes* evidence) {
  ASSIGN_OR_RETURN(auto r, Core<ecall::StatusQuery>({Bytes(nonce.begin(), nonce.end())}));
  json s = json::parse(r.status, nullptr, false);
  if (s.is_discarded() || !s.is_object()) return InternalError("trusted core returned malformed status");
  if (evidence != nullptr) *evidence = std::move(r.evidence);
  return s;
}

StatusOr<json> Appliance::Health(const net::HttpRequest& req, const json&) {
  ASSIGN_OR_RETURN(json s, CoreStatus({}, nullptr));
  const bool sealed = s.value("sealed", true);
  const bool initialized = s.value("initialized", false);
  const bool store_fresh = kms_->Fresh();
  json out{{"sealed", sealed}, {"initialized", initialized}, {"store_fresh", store_fresh},
           {"serving", initialized && !sealed && store_fresh}};
  // ?strict: the answer a load balancer checks (HAProxy's httpchk): 200 only while serving.
  if (req.target.find("?strict") != std::string::npos && !out["serving"].get<bool>()) {
    return Unavailable(std::string("not serving: ") +
                       (!initialized ? "not initialized"
                        : sealed     ? "sealed"
                                     : "key cache not confirmed against the database"));
  }
  return out;
}

StatusOr<json> Appliance::SealStatus(const net::HttpRequest&, const json&) {
  // What a keeper reads before its SIGMA handshake (it authenticates the core itself there):
  // no root key id, no audit key, no contributors, no host details, no evidence.
  ASSIGN_OR_RETURN(json s, CoreStatus({}, nullptr));
  json out = json::object();
  for (const char* k : {"sealed", "initialized", "tee", "enclave_key", "custody", "custody_epoch", "public_key",
                        "origin_binding", "unseal_error"})
    if (s.contains(k)) out[k] = s[k];
  return out;
}

namespace {

// QueryValue is the value of `name` in the request target's query string (no percent-decoding:
// the audit routes' values are numbers and node names, [A-Za-z0-9._-]); nullopt when absent.
std::optional<std::string> QueryValue(const std::string& target, std::string_view name) {
  size_t q = target.find('?');
  if (q == std::string::npos) return std::nullopt;
  std::string_view rest = std::string_view(target).substr(q + 1);
  while (!rest.empty()) {
    std::string_view pair = rest.substr(0, rest.find('&'));
    rest = pair.size() < rest.size() ? rest.substr(pair.size() + 1) : std::string_view();
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) return std::string(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
  }
  return std::nullopt;
}

StatusOr<uint64_t> QueryNumber(const std::string& target, std::string_view name, uint64_t fallback) {
  std::optional<std::string> v = QueryValue(target, name);
  if (!v) return fallback;
  if (v->empty() || v->size() > 19 || v->find_first_not_of("0123456789") != std::string::npos)
    return InvalidArgument(std::string(name) + " must be a decimal number");
  return std::stoull(*v);
}

constexpr size_t kMaxAuditRecordsPerRead = 1000;

}  // namespace

StatusOr<std::shared_ptr<const custody::CustodyDescriptor>> Appliance::ServedCustody() const {
  // Parsing (and checking) a descriptor costs far more than reading its files: the parsed one
  // is kept while both files read the same (every witnessing keeper's page read asks).
  ASSIGN_OR_RETURN(std::string key, ReadFileString(config_.custody_path));
  const std::string adopted_path = config_.data_dir + "/" + std::string(kCustodyFile);
  if (std::filesystem::exists(adopted_path)) {
    ASSIGN_OR_RETURN(std::string adopted, ReadFileString(adopted_path));
    key += std::string(1, '\0') + adopted;
  }
  {
    std::lock_guard<std::mutex> lock(custody_cache_mu_);
    if (custody_cache_ && custody_cache_key_ == key) return custody_cache_;
  }
  ASSIGN_OR_RETURN(std::string custody_text, ChooseCustody(config_));
  ASSIGN_OR_RETURN(custody::CustodyDescriptor parsed, custody::CustodyDescriptor::Parse(custody_text));
  auto shared = std::make_shared<const custody::CustodyDescriptor>(std::move(parsed));
  std::lock_guard<std::mutex> lock(custody_cache_mu_);
  custody_cache_key_ = std::move(key);
  custody_cache_ = shared;
  return shared;
}

custos::Status Appliance::AuthorizeAuditRead(const net::HttpRequest& req) const {
  if (IsAdmin(req)) return custos::Status::Ok();
  auto header = [&](const char* name) -> std::string {
    auto h = req.headers.find(name);
    return h == req.headers.end() ? "" : h->second;
  };
  const std::string keeper_id = header(audit::kReadKeeperHeader);
  const std::string time_text = header(audit::kReadTimeHeader);
  const std::string signature_hex = header(audit::kReadSignatureHeader);
  if (keeper_id.empty() || time_text.empty() || signature_hex.empty())
    return PermissionDenied(
        "the audit log is read by the custody's keepers (a signed read: x-custos-keeper, x-custos-time, "
        "x-custos-signature) or with the admin token");
  if (time_text.size() > 12 || time_text.find_first_not_of("0123456789") != std::string::npos)
    return PermissionDenied("audit read: x-custos-time must be unix seconds");
  const int64_t when = std::stoll(time_text);
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  if (when < now - audit::kReadSkewSeconds || when > now + audit::kReadSkewSeconds)
    return PermissionDenied("audit read: x-custos-time is more than " + std::to_string(audit::kReadSkewSeconds) +
                            " s from the appliance's clock");
  ASSIGN_OR_RETURN(std::shared_ptr<const custody::CustodyDescriptor> custody, ServedCustody());
  const custody::KeeperRecord* keeper = custody->FindKeeper(keeper_id);
  if (keeper == nullptr) return PermissionDenied("audit read: keeper " + keeper_id.substr(0, 64) + " is not in this custody");
  StatusOr<Bytes> signature = HexDecode(signature_hex);
  if (!signature.ok() ||
      !crypto::VerifyingKey::FromPoint(keeper->identity_key).Verify(audit::ReadRequestMessage(keeper_id, req.target, when), *signature).ok())
    return PermissionDenied("audit read: the signature of keeper " + keeper_id + " does not verify");
  return custos::Status::Ok();
}

StatusOr<json> Appliance::AuditHead(const net::HttpRequest& req, const json&) {
  RETURN_IF_ERROR(AuthorizeAuditRead(req));
  json out = {{"log", config_.node_name}, {"seq", 0}, {"hash", ""}, {"signature", ""}};
  StatusOr<std::string> key = store_->GetMeta("audit_public_key");
  if (key.ok()) {
    out["audit_public_key"] = *key;
  } else if (key.status().code() != ErrorCode::kNotFound) {
    return key.status();
  }
  if (audit_) {
    SignedRecordHead head = audit_->WitnessHead();
    if (head.seq != 0) {
      out["seq"] = head.seq;
      out["hash"] = HexEncode(head.hash);
      out["signature"] = HexEncode(head.signature);
      // The core's line statement for this head (docs/protocol.md "Audit witness"): a keeper
      // that witnessed a head of the same run need not read the records in between. None when
      // the running core did not sign this head (sealed, restarted since, or behind).
      StatusOr<ecall::AuditLine::Result> line = Core<ecall::AuditLine>({audit::EncodeHead(head.seq, head.hash)});
      if (line.ok()) out["line"] = {{"run", HexEncode(line->run_id)}, {"signature", HexEncode(line->signature)}};
    }
  }
  return out;
}

StatusOr<std::pair<std::string, std::vector<store::AuditRecord>>> Appliance::ReadAuditPage(const net::HttpRequest& req) {
  RETURN_IF_ERROR(AuthorizeAuditRead(req));
  std::string log = QueryValue(req.target, "log").value_or(config_.node_name);
  static const std::regex log_re("^[A-Za-z0-9._-]{0,64}$");
  if (!std::regex_match(log, log_re)) return InvalidArgument("log must be 0 to 64 characters of A-Z a-z 0-9 . _ -");
  ASSIGN_OR_RETURN(uint64_t from, QueryNumber(req.target, "from", 1));
  ASSIGN_OR_RETURN(uint64_t limit, QueryNumber(req.target, "limit", kMaxAuditRecordsPerRead));
  if (from == 0 || limit == 0 || limit > kMaxAuditRecordsPerRead)
    return InvalidArgument("from must be at least 1 and limit 1.." + std::to_string(kMaxAuditRecordsPerRead));
  ASSIGN_OR_RETURN(std::vector<store::AuditRecord> page, store_->ReadAuditLog(log, from, limit));
  return std::make_pair(std::move(log), std::move(page));
}

StatusOr<json> Appliance::AuditRecords(const net::HttpRequest& req, const json&) {
  ASSIGN_OR_RETURN(auto page, ReadAuditPage(req));
  json records = json::array();
  for (const store::AuditRecord& r : page.second)
    records.push_back({{"seq", r.seq}, {"entry", r.entry}, {"hash", HexEncode(r.hash)}, {"signature", HexEncode(r.signature)}});
  return json{{"log", page.first}, {"records", std::move(records)}};
}

StatusOr<std::string> Appliance::AuditRecordsBinary(const net::HttpRequest& req) {
  ASSIGN_OR_RETURN(auto page, ReadAuditPage(req));
  // docs/protocol.md "Audit witness": u32 count, then per record u64 seq || hash (32) ||
  // var(signature) || var(entry). No JSON to build, escape and parse on either side: each
  // witnessing keeper reads every entry of the log.
  size_t size = 4;
  for (const store::AuditRecord& r : page.second) size += 8 + r.hash.size() + 8 + r.signature.size() + r.entry.size();
  ByteWriter w;
  w.Reserve(size).U32(static_cast<uint32_t>(page.second.size()));
  for (const store::AuditRecord& r : page.second) {
    if (r.hash.size() != audit::kHashSize) return InternalError("audit: a stored record hash is not 32 bytes");
    w.U64(r.seq).Raw(r.hash).Var(r.signature).Var(r.entry);
  }
  Bytes out = w.Take();
  return std::string(out.begin(), out.end());
}

StatusOr<json> Appliance::Status(const net::HttpRequest& req, const json&) {
  const std::string& target = req.target;
  Bytes nonce(32, 0);  // without ?nonce=, evidence over an all-zero nonce
  size_t q = target.find("nonce=");
  if (q != std::string::npos) {
    std::string hex = target.substr(q + 6);
    hex = hex.substr(0, hex.find('&'));
    auto n = HexDecode(hex);
    if (!n.ok() || n->size() != 32) return InvalidArgument("nonce must be 64 hex digits");
    nonce = *n;
  }
  Bytes evidence;
  ASSIGN_OR_RETURN(json s, CoreStatus(nonce, &evidence));
  s["evidence"] = Base64Encode(evidence);
  json host = {{"enclave_pid", enclave_pid()}, {"core_restarts", restarts_.load()}};
  if (!config_.join_url.empty()) {
    std::lock_guard<std::mutex> lock(join_mu_);
    host["join"] = config_.join_url;
    if (!last_join_error_.empty()) host["last_join_error"] = last_join_error_;
  }
  s["host"] = host;
  return s;
}

custos::Status Appliance::StoreEnvelope(const Bytes& envelope, const Bytes& origin) {
  // The origin evidence first: the envelope's presence is what "initialised" means. Each
  // WriteFileAtomic fsyncs the file and the directory before returning.
  RETURN_IF_ERROR(WriteFileAtomic(config_.data_dir + "/" + std::string(kOriginFile), origin, 0600));
  return WriteFileAtomic(config_.data_dir + "/" + std::string(kEnvelopeFile), envelope, 0600);
}

StatusOr<json> Appliance::Init(const net::HttpRequest&, const json&) {
  std::lock_guard<std::mutex> lock(init_mu_);
  std::string path = config_.data_dir + "/" + std::string(kEnvelopeFile);
  if (std::filesystem::exists(path))
    return FailedPrecondition("already initialised: " + path + " exists");
  ASSIGN_OR_RETURN(auto r, Core<ecall::Init>({}));
  RETURN_IF_ERROR(StoreEnvelope(r.envelope, r.origin));
  std::string digest = HexEncode(crypto::Sha256Bytes(r.envelope));
  Log("info", "appliance initialised: root key generated in the trusted core, envelope stored",
      {{"envelope", path}, {"envelope_sha256", digest}, {"state", "unsealed"}});
  // envelope_digest is the value keepers bind their proofs to and record in their audit logs.
  return json{{"initialized", true},
              {"envelope", path},
              {"envelope_sha256", digest},
              {"envelope_digest", HexEncode(sigma::EnvelopeDigest(r.envelope))}};
}

StatusOr<json> Appliance::SigmaRespond(const net::HttpRequest& req, const json& body) {
  // Each message 1 costs the core fresh evidence and a pending session slot: a client address
  // gets kSigmaRespondsPerWindow of them per window, so one source cannot push a keeper's
  // handshake out of the core's pending slots (a keeper needs one per release).
  if (!sigma_sources_.TryTake(net::HostPart(req.remote)))
    return Unavailable("too many SIGMA handshakes from this address: retry in a few seconds");
  ASSIGN_OR_RETURN(Bytes m1, net::GetBase64(body, "message1"));
  ASSIGN_OR_RETURN(auto r, Core<ecall::SigmaRespond>({std::move(m1)}));
  return json{{"session", HexEncode(r.session)}, {"message2", Base64Encode(r.message2)}};
}

StatusOr<json> Appliance::SigmaFinish(const net::HttpRequest&, const json& body) {
  ASSIGN_OR_RETURN(Bytes session, net::GetHex(body, "session"));
  ASSIGN_OR_RETURN(Bytes m3, net::GetBase64(body, "message3"));
  ASSIGN_OR_RETURN(auto r, Core<ecall::SigmaFinish>({std::move(session), std::move(m3)}));
  return json{{"record", Base64Encode(r.record)}};
}

StatusOr<json> Appliance::SigmaRecord(const net::HttpRequest&, const json& body) {
  ASSIGN_OR_RETURN(Bytes session, net::GetHex(body, "session"));
  ASSIGN_OR_RETURN(Bytes record, net::GetBase64(body, "record"));
  ASSIGN_OR_RETURN(auto r, Core<ecall::Record>({std::move(session), std::move(record)}));
  // The core's status tells whether this record unsealed it; log transitions for operators.
  auto st = CoreStatus({}, nullptr);
  if (st.ok() && !st->value("sealed", true)) {
    Log("info", "keeper record accepted", {{"state", "unsealed"}, {"contributors", (*st)["contributors"]}});
    if (st->value("origin_binding", "") == "custody-fingerprint") RebindOrigin();
  }
  return json{{"record", Base64Encode(r.record)}};
}

void Appliance::RebindOrigin() {
  std::lock_guard<std::mutex> lock(init_mu_);
  auto r = Core<ecall::OriginRebind>({});
  custos::Status st = r.ok() ? WriteFileAtomic(config_.data_dir + "/" + std::string(kOriginFile), r->origin, 0600)
                             : r.status();
  if (st.ok())
    Log("info", "envelope origin evidence re-bound to the joint public key (it survives reshares)",
        {{"origin", config_.data_dir + "/" + std::string(kOriginFile)}});
  else
    Log("error", "could not re-bind the envelope origin evidence; a reshare would strand this node",
        {{"reason", st.message()}});
}

StatusOr<json> Appliance::CustodyUpdate(const net::HttpRequest&, const json& body) {
  if (!body.contains("descriptor") || !body["descriptor"].is_object())
    return InvalidArgument("missing 'descriptor' (the custody.json object)");
  ASSIGN_OR_RETURN(custody::CustodyDescriptor d, custody::CustodyDescriptor::FromJson(body["descriptor"]));
  std::string text = d.ToJsonString();
  std::lock_guard<std::mutex> lock(init_mu_);
  ASSIGN_OR_RETURN(auto before, CoreStatus({}, nullptr));
  ASSIGN_OR_RETURN(auto r, Core<ecall::CustodyUpdate>({ToBytes(text)}));
  std::string fp = HexEncode(r.fingerprint);
  if (before.value("custody", "") != fp) {
    // The core adopted it; keep it so a restart serves it too (ChooseCustody).
    RETURN_IF_ERROR(WriteFileAtomic(config_.data_dir + "/" + std::string(kCustodyFile), ToBytes(text), 0600));
    Log("info", "custody updated",
        {{"custody", fp}, {"epoch", d.epoch}, {"previous", before.value("custody", "")},
         {"sealed", before.value("sealed", true)}});
  }
  return json{{"custody", fp}, {"epoch", d.epoch}};
}

// ---- cluster join ----

custos::Status Appliance::JoinOnce() {
  ASSIGN_OR_RETURN(net::HttpClient client, net::HttpClient::Create(config_.join_url));
  std::string collateral;
  if (!config_.join_collateral.empty()) {
    ASSIGN_OR_RETURN(collateral, ReadFileString(config_.join_collateral));
  }
  auto post = [&](const char* path, const json& body) {
    return net::DecodeJsonResponse(client.Post(path, body.dump(), {{"content-type", "application/json"}}),
                                   "peer " + config_.join_url);
  };
  Bytes approval;
  if (!config_.join_approval.empty()) {
    ASSIGN_OR_RETURN(approval, ReadFileBytes(config_.join_approval));
  }
  ASSIGN_OR_RETURN(auto s1, Core<ecall::JoinStart>({std::move(approval)}));
  ASSIGN_OR_RETURN(json p2, post("/v1/sys/sigma/respond", {{"message1", Base64Encode(s1.message1)}}));
  ASSIGN_OR_RETURN(Bytes m2, net::GetBase64(p2, "message2"));
  std::string session = p2.value("session", "");
  ASSIGN_OR_RETURN(auto s3, Core<ecall::JoinFinish>({s1.handle, std::move(m2), ToBytes(collateral)}));
  ASSIGN_OR_RETURN(json p4, post("/v1/sys/sigma/finish", {{"session", session}, {"message3", Base64Encode(s3.message3)}}));
  ASSIGN_OR_RETURN(json p5, post("/v1/sys/sigma/record", {{"session", session}, {"record", Base64Encode(s3.record)}}));
  ASSIGN_OR_RETURN(Bytes grant, net::GetBase64(p5, "record"));
  ASSIGN_OR_RETURN(auto done, Core<ecall::JoinComplete>({s1.handle, std::move(grant)}));
  {
    std::lock_guard<std::mutex> lock(init_mu_);
    std::string path = config_.data_dir + "/" + std::string(kEnvelopeFile);
    std::string origin_path = config_.data_dir + "/" + std::string(kOriginFile);
    if (!std::filesystem::exists(path)) {
      RETURN_IF_ERROR(StoreEnvelope(done.envelope, done.origin));
    } else if (auto stored = ReadFileBytes(origin_path); !stored.ok() || *stored != done.origin) {
      // The peer's origin evidence replaced a legacy one here (enclave JoinComplete).
      RETURN_IF_ERROR(WriteFileAtomic(origin_path, done.origin, 0600));
    }
  }
  auto st = CoreStatus({}, nullptr);
  if (st.ok() && st->value("origin_binding", "") == "custody-fingerprint") RebindOrigin();
  return custos::Status::Ok();
}

void Appliance::JoinLoop() {
  for (;;) {
    auto st = CoreStatus({}, nullptr);
    if (st.ok() && !st->value("sealed", true)) return;
    custos::Status r = JoinOnce();
    {
      std::unique_lock<std::mutex> lock(join_mu_);
      if (r.ok()) {
        last_join_error_.clear();
        json fields = {{"state", "unsealed"}};
        if (!config_.join_approval.empty()) fields["approval"] = config_.join_approval;
        Log("info", "joined the cluster through " + config_.join_url, fields);
        return;
      }
      if (r.message() != last_join_error_)
        Log("warn", "join through " + config_.join_url + " failed; retrying", {{"reason", r.message()}});
      last_join_error_ = r.message();
      if (join_cv_.wait_for(lock, std::chrono::seconds(2), [this] { return stopping_; })) return;
    }
  }
}

}  // namespace custos::host
