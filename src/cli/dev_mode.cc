#include "cli/dev_mode.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "protocol/attestation/dcap.h"
#include "client/ceremony/ceremony.h"
#include "common/file.h"
#include "common/log.h"
#include "crypto/random.h"
#include "protocol/custody/custody.h"
#include "appliance/host/appliance.h"
#include "appliance/host/config.h"
#include "appliance/kmip/ca.h"
#include "appliance/kmip/server.h"
#include "keeper/daemon/keeper_service.h"
#include "keeper/daemon/keeper_store.h"
#include "keeper/daemon/release.h"
#include "keeper/daemon/witness.h"
#include "net/http_server.h"

namespace custos::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// The dev deployment's fixed shape: provider 1-of-1 AND customer 2-of-3, the smallest one that
// shows both domains and a customer threshold. Unseal uses P1, C1 and C2; C3 is the spare.
constexpr char kProviderId[] = "P1";
const std::vector<std::string> kCustomerIds = {"C1", "C2", "C3"};
const std::vector<std::string> kUnsealIds = {"P1", "C1", "C2"};
constexpr uint32_t kCustomerThreshold = 2;
constexpr char kAccessKeyName[] = "dev";
constexpr char kCredentialsFile[] = "dev-credentials";
// The XKS proxy API credential dev mode makes (docs/xks.md), and its URI prefix.
constexpr char kXksCredentialsFile[] = "dev-xks-credentials";
constexpr char kXksUriPrefix[] = "/dev";

void Log(const std::string& level, const std::string& msg, const json& extra = json::object()) {
  custos::Log(level, "dev", msg, extra);
}

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// SplitListen separates "host:port" / "[v6]:port" into the host as it appears in a URL
// (brackets kept) and the port text.
StatusOr<std::pair<std::string, std::string>> SplitListen(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size())
    return InvalidArgument("--listen must be HOST:PORT");
  return std::make_pair(listen.substr(0, colon), listen.substr(colon + 1));
}

// CheckLoopback refuses a listen host other than a loopback address: dev mode serves plain
// HTTP with credentials anyone on the machine could read, and must not be reachable from
// elsewhere.
Status CheckLoopback(const std::string& host) {
  if (host == "localhost" || host == "[::1]" || host.rfind("127.", 0) == 0) return Status::Ok();
  return InvalidArgument("dev mode listens on loopback only (127.0.0.1, [::1] or localhost), not " +
                         host);
}

// DataDirLock holds an exclusive flock on D/lock so that two dev servers never share a data
// directory (their keepers and appliances would overwrite each other's state).
class DataDirLock {
 public:
  static StatusOr<std::unique_ptr<DataDirLock>> Acquire(const std::string& dir) {
    std::string path = dir + "/lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return Unavailable("cannot open " + path + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return FailedPrecondition("another `custos server --dev` is using " + dir);
    }
    return std::unique_ptr<DataDirLock>(new DataDirLock(fd));
  }
  ~DataDirLock() { ::close(fd_); }
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_;
};

// LoadOrCreatePassphrase returns the keepers' at-rest passphrase, drawing a random one on the
// first start. Keeping it in a file beside the shares is what makes dev mode dev-only.
StatusOr<SecretBytes> LoadOrCreatePassphrase(const std::string& path) {
  if (!FileExists(path)) {
    SecretBytes raw = crypto::RandomSecret(32);
    std::string hex = HexEncode(raw.Expose());
    Status st = WriteFileAtomic(path, hex + "\n", 0600);
    WipeBytes(hex);
    RETURN_IF_ERROR(st);
  }
  ASSIGN_OR_RETURN(std::string text, ReadPassphraseFile(path));
  SecretBytes pass = SecretBytes::CopyFrom(text);
  WipeBytes(text);
  if (pass.empty()) return InvalidArgument(path + " is empty");
  return pass;
}

// DevKeeper is one in-process keeper: its unsealed store, its request handlers and the
// loopback HTTP server the ceremony talks to. Members are destroyed server first.
struct DevKeeper {
  std::unique_ptr<keeper::KeeperStore> store;
  std::unique_ptr<keeper::KeeperService> service;
  std::unique_ptr<net::HttpServer> server;
  std::string url;
};

// DevKdfParams are the Argon2id parameters dev mode seals new keeper stores with: one pass over
// 8 MiB, the kind of values `custos keeper init --kdf-memory-kib --kdf-iterations` accepts.
// The RFC 9106 defaults cost 64 MiB and three passes per keeper, which on a loaded 2-core
// machine took 13 s for four keepers and broke the 5 s start-up budget, while protecting
// nothing here: the passphrase is a file next to the stores. Production defaults are not
// touched; a store keeps its parameters in keeper.json, so Open uses whatever it was made with.
crypto::Argon2Params DevKdfParams() {
  crypto::Argon2Params p;
  p.t_cost = 1;
  p.m_cost_kib = 8192;
  p.parallelism = 1;
  return p;
}

// OpenOrInitKeeper reopens the keeper in `dir` or creates it (one Argon2id derivation either
// way).
StatusOr<std::unique_ptr<keeper::KeeperStore>> OpenOrInitKeeper(const std::string& dir,
                                                                const std::string& id,
                                                                custody::Domain domain,
                                                                const SecretBytes& pass) {
  if (FileExists(dir + "/keeper.json")) {
    ASSIGN_OR_RETURN(auto store, keeper::KeeperStore::Open(dir, pass));
    if (store->id() != id || store->domain() != domain)
      return FailedPrecondition(dir + " holds keeper " + store->id() + ", expected " + id);
    return store;
  }
  return keeper::KeeperStore::Init(dir, id, domain, pass, DevKdfParams());
}

// DevCredentials is the dev access key as saved in D/dev-credentials.
struct DevCredentials {
  std::string access_key_id;
  SecretBytes secret_access_key;
  std::string principal_arn;
};

StatusOr<DevCredentials> LoadCredentials(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileString(path));
  json j = json::parse(text, nullptr, false);
  WipeBytes(text);
  if (j.is_discarded() || !j.is_object() || !j.contains("access_key_id") ||
      !j["access_key_id"].is_string() || !j.contains("secret_access_key") ||
      !j["secret_access_key"].is_string())
    return InvalidArgument(path + " is malformed");
  DevCredentials c;
  c.access_key_id = j["access_key_id"].get<std::string>();
  std::string& secret = j["secret_access_key"].get_ref<std::string&>();
  c.secret_access_key = SecretBytes::CopyFrom(secret);
  WipeBytes(secret);
  c.principal_arn = j.value("principal_arn", "");
  return c;
}

Status SaveCredentials(const std::string& path, const DevCredentials& c) {
  json j = {{"access_key_id", c.access_key_id},
            {"secret_access_key", std::string(c.secret_access_key.ExposeAsString())},
            {"principal_arn", c.principal_arn}};
  std::string text = j.dump(2) + "\n";
  WipeBytes(j["secret_access_key"].get_ref<std::string&>());
  Status st = WriteFileAtomic(path, text, 0600);
  WipeBytes(text);
  return st;
}

// CallAppliance runs one API request through the appliance's handler, in process (the same
// code path as over HTTP, without the loopback round trip).
StatusOr<json> CallAppliance(host::Appliance& appliance, const std::string& method,
                             const std::string& target, const json& body = json::object()) {
  net::HttpRequest req;
  req.method = method;
  req.target = target;
  if (method == "POST") {
    req.body = body.dump();
    req.headers["content-type"] = "application/json";
  }
  req.remote = "dev-mode";
  auto token = ReadFileString(appliance.admin_token_file());
  if (!token.ok()) return token.status();
  while (!token->empty() && (token->back() == '\n' || token->back() == '\r')) token->pop_back();
  req.headers["authorization"] = "Bearer " + *token;
  WipeBytes(*token);
  return net::DecodeJsonResponse(StatusOr<net::HttpResponse>(appliance.Handle(req)), "appliance");
}

// DevDeployment owns every running piece. Members are declared in start order, so they are
// destroyed (and stopped) in reverse: API server, appliance, keepers.
class DevDeployment {
 public:
  explicit DevDeployment(DevModeOptions options) : options_(std::move(options)) {}
  ~DevDeployment() { Stop(); }

  // Start brings the deployment up to "ready" and fills the printed lines.
  Status Start();
  // Stop drains the API server, stops the appliance (its core exits), then the keepers.
  void Stop();
  // TakeEnvLines hands over the KEY=VALUE lines (they hold the secret access key).
  std::string TakeEnvLines() { return std::move(env_lines_); }
  const std::string& dir() const { return dir_; }

 private:
  Status PrepareDataDir();
  Status StartKeepers();
  Status RunDkgIfNeeded();
  Status StartAppliance();
  Status InitIfNeeded();
  Status Unseal();
  Status EnsureAccessKey();
  Status EnsureXksCredential();
  Status EnsureKmipClient();
  Status WriteDevEnv();

  DevModeOptions options_;
  std::string dir_;  // absolute data directory
  std::unique_ptr<DataDirLock> lock_;
  SecretBytes passphrase_;
  std::vector<DevKeeper> keepers_;  // P1, C1, C2, C3
  std::unique_ptr<host::Appliance> appliance_;
  std::unique_ptr<net::HttpServer> api_;
  std::unique_ptr<kmip::KmipServer> kmip_;
  std::string kmip_host_;
  int kmip_port_ = 0;
  // The unsealing keepers keep releasing (as `keeper serve --auto-release` does): a trusted
  // core that dies is restarted sealed by the appliance and unsealed again by these.
  std::vector<std::unique_ptr<keeper::AutoRelease>> auto_release_;
  std::string endpoint_;
  std::string region_;  // the SigV4 region the KMS API answers to
  // fresh_root_key_: this start generated the root key, so no saved access key is valid.
  bool fresh_root_key_ = false;
  DevCredentials credentials_;
  DevCredentials xks_credentials_;
  std::string env_lines_;
  bool env_written_ = false;
};

Status DevDeployment::PrepareDataDir() {
  // Refuse a non-loopback address before creating anything.
  ASSIGN_OR_RETURN(auto listen, SplitListen(options_.listen));
  RETURN_IF_ERROR(CheckLoopback(listen.first));
  std::error_code ec;
  fs::path abs = fs::absolute(options_.data_dir, ec);
  if (ec) return InvalidArgument("cannot resolve --data-dir: " + ec.message());
  dir_ = abs.lexically_normal().string();
  if (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  fs::create_directories(dir_ + "/keepers", ec);
  if (ec) return Unavailable("cannot create " + dir_ + ": " + ec.message());
  for (const std::string& d : {dir_, dir_ + "/keepers"})
    if (::chmod(d.c_str(), 0700) != 0)
      return Unavailable("cannot chmod " + d + ": " + std::strerror(errno));
  ASSIGN_OR_RETURN(lock_, DataDirLock::Acquire(dir_));
  // A dev.env left by a crash must not announce a server that is not ready yet.
  ::unlink((dir_ + "/" + kDevEnvFile).c_str());
  ASSIGN_OR_RETURN(passphrase_, LoadOrCreatePassphrase(dir_ + "/keepers/passphrase"));
  return Status::Ok();
}

Status DevDeployment::StartKeepers() {
  std::vector<std::pair<std::string, custody::Domain>> ids = {
      {kProviderId, custody::Domain::kProvider}};
  for (const std::string& id : kCustomerIds) ids.emplace_back(id, custody::Domain::kCustomer);
  // One Argon2id derivation each: run them in parallel.
  std::vector<StatusOr<std::unique_ptr<keeper::KeeperStore>>> stores;
  stores.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) stores.emplace_back(InternalError("not run"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < ids.size(); ++i)
    threads.emplace_back([&, i] {
      stores[i] = OpenOrInitKeeper(dir_ + "/keepers/" + ids[i].first, ids[i].first, ids[i].second,
                                   passphrase_);
    });
  for (std::thread& t : threads) t.join();
  passphrase_ = SecretBytes();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!stores[i].ok()) return stores[i].status().WithContext("keeper " + ids[i].first);
    DevKeeper k;
    k.store = std::move(stores[i]).value();
    k.service = std::make_unique<keeper::KeeperService>(*k.store);
    net::HttpServerOptions opts;
    opts.max_body_bytes = 4 << 20;
    keeper::KeeperService* service = k.service.get();
    ASSIGN_OR_RETURN(
        k.server, net::HttpServer::Create(
                      "127.0.0.1:0",
                      [service](const net::HttpRequest& r) { return service->Handle(r); }, opts));
    RETURN_IF_ERROR(k.server->Start());
    k.url = "http://127.0.0.1:" + std::to_string(k.server->port());
    Log("info", "keeper serving", {{"keeper", ids[i].first}, {"url", k.url}});
    keepers_.push_back(std::move(k));
  }
  return Status::Ok();
}

Status DevDeployment::RunDkgIfNeeded() {
  std::string custody_path = dir_ + "/custody.json";
  if (FileExists(custody_path)) return Status::Ok();
  // Without custody.json this must be a first start: keepers holding a share, or an
  // appliance envelope, mean an earlier setup was interrupted or edited by hand.
  for (DevKeeper& k : keepers_) {
    std::lock_guard<std::mutex> lock(k.store->mu());
    if (k.store->secrets().active || k.store->secrets().pending)
      return FailedPrecondition("keeper " + k.store->id() + " already holds a share but " +
                                custody_path + " is missing; remove " + dir_ + " to start over");
  }
  if (FileExists(dir_ + "/server/" + std::string(host::kEnvelopeFile)))
    return FailedPrecondition("the appliance has an envelope but " + custody_path +
                              " is missing; remove " + dir_ + " to start over");
  // The operator's approval every keeper requires for a DKG: one dev admin key, allowed as
  // admin on the four keepers and kept in D/keepers/admin.key (dev mode: one person plays every
  // keeper operator).
  std::string admin_path = dir_ + "/keepers/admin.key";
  if (!FileExists(admin_path)) RETURN_IF_ERROR(keeper::WriteClientKey(admin_path, crypto::SigningKey::Generate()));
  ASSIGN_OR_RETURN(crypto::SigningKey admin, keeper::ReadClientKey(admin_path));
  for (DevKeeper& k : keepers_) {
    Status st = k.store->AddClient("dev-admin", admin.verifying_key().point(), keeper::ClientRole::kAdmin);
    if (!st.ok() && st.code() != ErrorCode::kAlreadyExists) return st.WithContext("keeper " + k.store->id());
  }
  ceremony::DkgCeremonyOptions o;
  o.admin_keys = {&admin};
  o.provider_urls = {keepers_[0].url};
  for (size_t i = 1; i < keepers_.size(); ++i) o.customer_urls.push_back(keepers_[i].url);
  o.provider_threshold = 1;
  o.customer_threshold = kCustomerThreshold;
  std::ostringstream progress;
  o.log = &progress;
  StatusOr<custody::CustodyDescriptor> d = ceremony::RunDkg(o);
  // The ceremony's progress lines, as JSON log lines (they name keepers and rounds, no secret).
  std::istringstream lines(progress.str());
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) Log("info", "dkg: " + line);
  if (!d.ok()) return d.status();
  RETURN_IF_ERROR(WriteFileAtomic(custody_path, d->ToJsonString(), 0644));
  Log("info", "custody written", {{"custody", d->FingerprintHex()}, {"path", custody_path}});
  return Status::Ok();
}

Status DevDeployment::StartAppliance() {
  ASSIGN_OR_RETURN(auto listen, SplitListen(options_.listen));
  host::ServerConfig config;
  config.listen = options_.listen;
  config.data_dir = dir_ + "/server";
  config.custody_path = dir_ + "/custody.json";
  config.tee_backend = "sim";
  config.sim_key_dir = config.data_dir + "/sim";
  // KMIP (docs/kmip.md) on the same loopback host, a free port.
  config.kmip_listen = listen.first + ":" + (options_.kmip_port.empty() ? "0" : options_.kmip_port);
  region_ = config.kms_region;
  std::string binary =
      options_.enclave_binary.empty() ? host::DefaultEnclaveBinary() : options_.enclave_binary;
  ASSIGN_OR_RETURN(appliance_, host::Appliance::Start(config, binary));
  host::Appliance* appliance = appliance_.get();
  ASSIGN_OR_RETURN(
      api_,
      net::HttpServer::Create(
          config.listen, [appliance](const net::HttpRequest& r) { return appliance->Handle(r); },
          host::ApiServerOptions(config)));
  RETURN_IF_ERROR(api_->Start());
  endpoint_ = "http://" + listen.first + ":" + std::to_string(api_->port());
  Log("info", "appliance serving", {{"endpoint", endpoint_}});
  const kmip::KmipCa* ca = appliance->kmip_ca();
  kmip::KmipServerOptions ko;
  ko.cert_file = ca->server_cert_file;
  ko.key_file = ca->server_key_file;
  ko.client_ca_file = ca->ca_cert_file;
  ASSIGN_OR_RETURN(kmip_, kmip::KmipServer::Create(config.kmip_listen, ko, [appliance](ByteSpan m, const kmip::KmipPeer& p) {
                     return appliance->HandleKmip(m, p);
                   }));
  RETURN_IF_ERROR(kmip_->Start());
  kmip_host_ = listen.first;
  kmip_port_ = kmip_->port();
  Log("info", "KMIP serving", {{"host", kmip_host_}, {"port", kmip_port_}});
  return Status::Ok();
}

// EnsureKmipClient gives dev mode a KMIP client certificate ("dev"), made once.
Status DevDeployment::EnsureKmipClient() {
  std::string dir = dir_ + "/kmip-client";
  if (std::filesystem::exists(dir + "/client.crt") && std::filesystem::exists(dir + "/client.key") &&
      std::filesystem::exists(dir + "/ca.crt")) {
    // The CA may have been made again (a new data directory for the server): check the files
    // still belong together by comparing the CA.
    auto have = ReadFileString(dir + "/ca.crt");
    auto now = ReadFileString(appliance_->kmip_ca()->ca_cert_file);
    if (have.ok() && now.ok() && *have == *now) return Status::Ok();
  }
  std::filesystem::create_directories(dir);
  ::chmod(dir.c_str(), 0700);
  ASSIGN_OR_RETURN(auto pair, kmip::MakeClientKey());
  ASSIGN_OR_RETURN(std::string cert, appliance_->IssueKmipClient("dev", pair.second));
  ASSIGN_OR_RETURN(std::string ca, ReadFileString(appliance_->kmip_ca()->ca_cert_file));
  Status st = WriteFileAtomic(dir + "/client.key", pair.first, 0600);
  WipeBytes(pair.first);
  RETURN_IF_ERROR(st);
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/client.crt", cert, 0644));
  return WriteFileAtomic(dir + "/ca.crt", ca, 0644);
}

Status DevDeployment::InitIfNeeded() {
  ASSIGN_OR_RETURN(json health, CallAppliance(*appliance_, "GET", "/v1/sys/health"));
  if (health.value("initialized", false)) return Status::Ok();
  ASSIGN_OR_RETURN(json init, CallAppliance(*appliance_, "POST", "/v1/sys/init"));
  fresh_root_key_ = true;
  Log("info", "appliance initialised", {{"envelope_digest", init.value("envelope_digest", "")}});
  return Status::Ok();
}

Status DevDeployment::Unseal() {
  // The policy every dev keeper applies: sim evidence, and only from the core this process
  // started (its measurement is the SHA-256 of that custos-enclave executable, so a rebuilt
  // core is pinned afresh on the next start). Written out for `custos keeper release` by hand.
  json policy_json = {{"allow_sim", true},
                      {"measurements", {HexEncode(appliance_->core_measurement())}}};
  RETURN_IF_ERROR(WriteFileAtomic(dir_ + "/release-policy.json", policy_json.dump(2) + "\n", 0644));
  keeper::ReleaseOptions o;
  o.server_url = endpoint_;
  ASSIGN_OR_RETURN(o.policy, attestation::ParseAttestationPolicyJson(policy_json.dump()));
  std::vector<DevKeeper*> releasing;
  for (DevKeeper& k : keepers_)
    for (const std::string& id : kUnsealIds)
      if (k.store->id() == id) releasing.push_back(&k);
  std::vector<StatusOr<keeper::ReleaseOutcome>> results(releasing.size(), InternalError("not run"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < releasing.size(); ++i)
    threads.emplace_back(
        [&, i] { results[i] = keeper::ReleaseToAppliance(*releasing[i]->store, o); });
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < releasing.size(); ++i) {
    const std::string& id = releasing[i]->store->id();
    if (!results[i].ok()) return results[i].status().WithContext("release from keeper " + id);
    Log("info", "keeper release",
        {{"keeper", id}, {"released", results[i]->released}, {"unsealed", results[i]->unsealed}});
  }
  ASSIGN_OR_RETURN(json health, CallAppliance(*appliance_, "GET", "/v1/sys/health"));
  if (health.value("sealed", true))
    return InternalError("the appliance is still sealed after releases from P1, C1, C2");
  // Dev keepers witness the audit chain more often than the default minute: a dev server is
  // short-lived.
  o.witness_interval = std::chrono::seconds(5);
  for (DevKeeper* k : releasing)
    auto_release_.push_back(
        std::make_unique<keeper::AutoRelease>(*k->store, o, std::chrono::milliseconds(500)));
  return Status::Ok();
}

Status DevDeployment::EnsureAccessKey() {
  std::string path = dir_ + "/" + kCredentialsFile;
  // A new root key means a new key store: an access key saved under the old one is gone.
  if (!fresh_root_key_ && FileExists(path)) {
    ASSIGN_OR_RETURN(credentials_, LoadCredentials(path));
    Log("info", "reusing the dev access key", {{"access_key_id", credentials_.access_key_id}});
    return Status::Ok();
  }
  StatusOr<host::AccessKeyGrant> grant = appliance_->CreateAccessKey(kAccessKeyName);
  if (!grant.ok() && grant.status().code() == ErrorCode::kAlreadyExists) {
    // D/dev-credentials was deleted: "dev" exists but its secret is unknown; make another.
    grant = appliance_->CreateAccessKey(std::string(kAccessKeyName) + "-" +
                                        HexEncode(crypto::RandomBytes(4)));
  }
  if (!grant.ok()) return grant.status();
  credentials_.access_key_id = grant->access_key_id;
  credentials_.secret_access_key = std::move(grant->secret_access_key);
  credentials_.principal_arn = grant->principal_arn;
  RETURN_IF_ERROR(SaveCredentials(path, credentials_));
  Log("info", "dev access key created",
      {{"access_key_id", credentials_.access_key_id}, {"principal", credentials_.principal_arn}});
  return Status::Ok();
}

Status DevDeployment::EnsureXksCredential() {
  std::string path = dir_ + "/" + kXksCredentialsFile;
  if (!fresh_root_key_ && FileExists(path)) {
    ASSIGN_OR_RETURN(xks_credentials_, LoadCredentials(path));
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(json made, CallAppliance(*appliance_, "POST", "/v1/sys/xks-credentials",
                                            json{{"uri_prefix", kXksUriPrefix}}));
  xks_credentials_.access_key_id = made.value("access_key_id", "");
  std::string& secret = made["secret_access_key"].get_ref<std::string&>();
  xks_credentials_.secret_access_key = SecretBytes::CopyFrom(secret);
  WipeBytes(secret);
  xks_credentials_.principal_arn = made.value("principal_arn", "");
  RETURN_IF_ERROR(SaveCredentials(path, xks_credentials_));
  Log("info", "dev XKS proxy credential created",
      {{"access_key_id", xks_credentials_.access_key_id}, {"uri_path", made.value("uri_path", "")}});
  return Status::Ok();
}

Status DevDeployment::WriteDevEnv() {
  std::string lines;
  lines += "CUSTOS_ENDPOINT=" + endpoint_ + "\n";
  lines += "AWS_ACCESS_KEY_ID=" + credentials_.access_key_id + "\n";
  lines += "AWS_SECRET_ACCESS_KEY=" + std::string(credentials_.secret_access_key.ExposeAsString()) +
           "\n";
  lines += "AWS_REGION=" + region_ + "\n";
  // AWS CLI v1 and older boto3 read only AWS_DEFAULT_REGION.
  lines += "AWS_DEFAULT_REGION=" + region_ + "\n";
  lines += "CUSTOS_ADMIN_TOKEN_FILE=" + appliance_->admin_token_file() + "\n";
  lines += "CUSTOS_DATA_DIR=" + dir_ + "\n";
  // The AWS KMS XKS proxy API (docs/xks.md): requests go to ENDPOINT + URI_PREFIX +
  // "/keys/<key id or alias name>/encrypt" (and /decrypt, /metadata, or URI_PREFIX + "/health"),
  // SigV4-signed for service kms-xks-proxy with this credential. URI_PREFIX is what AWS KMS
  // calls XksProxyUriPath.
  lines += "CUSTOS_XKS_ENDPOINT=" + endpoint_ + "\n";
  lines += "CUSTOS_XKS_URI_PREFIX=" + std::string(kXksUriPrefix) + "/kms/xks/v1\n";
  lines += "CUSTOS_XKS_ACCESS_KEY_ID=" + xks_credentials_.access_key_id + "\n";
  lines += "CUSTOS_XKS_SECRET_ACCESS_KEY=" + std::string(xks_credentials_.secret_access_key.ExposeAsString()) + "\n";
  // KMIP (docs/kmip.md): mutual TLS to HOST:PORT with this client certificate and key; CA
  // verifies the server (and issued the client certificate).
  lines += "CUSTOS_KMIP_HOST=" + kmip_host_ + "\n";
  lines += "CUSTOS_KMIP_PORT=" + std::to_string(kmip_port_) + "\n";
  lines += "CUSTOS_KMIP_CA=" + dir_ + "/kmip-client/ca.crt\n";
  lines += "CUSTOS_KMIP_CERT=" + dir_ + "/kmip-client/client.crt\n";
  lines += "CUSTOS_KMIP_KEY=" + dir_ + "/kmip-client/client.key\n";
  // A server killed with SIGKILL cannot remove this file: the pid tells whether it is live.
  lines += "CUSTOS_DEV_PID=" + std::to_string(::getpid()) + "\n";
  RETURN_IF_ERROR(WriteFileAtomic(dir_ + "/" + kDevEnvFile, lines, 0600));
  env_written_ = true;
  env_lines_ = std::move(lines);
  return Status::Ok();
}

Status DevDeployment::Start() {
  struct Step {
    const char* name;
    Status (DevDeployment::*run)();
  };
  const Step steps[] = {{"data directory", &DevDeployment::PrepareDataDir},
                        {"keepers", &DevDeployment::StartKeepers},
                        {"dkg", &DevDeployment::RunDkgIfNeeded},
                        {"appliance", &DevDeployment::StartAppliance},
                        {"init", &DevDeployment::InitIfNeeded},
                        {"unseal", &DevDeployment::Unseal},
                        {"access key", &DevDeployment::EnsureAccessKey},
                        {"xks credential", &DevDeployment::EnsureXksCredential},
                        {"kmip client", &DevDeployment::EnsureKmipClient},
                        {"dev.env", &DevDeployment::WriteDevEnv}};
  for (const Step& s : steps) {
    Clock::time_point t = Clock::now();
    Status st = (this->*s.run)();
    if (!st.ok()) return st.WithContext("dev mode: " + std::string(s.name));
    Log("debug", "step done", {{"step", s.name}, {"ms", MsSince(t)}});
  }
  return Status::Ok();
}

void DevDeployment::Stop() {
  if (env_written_) {
    ::unlink((dir_ + "/" + kDevEnvFile).c_str());
    env_written_ = false;
  }
  // The unsealing keepers witness the audit chain's last head before it goes (the periodic
  // witness covers a server that dies instead), so a restart on an older copy of the database
  // is refused by them.
  if (!auto_release_.empty() && !endpoint_.empty() && appliance_) {
    // (The API still serves: the keepers read the head over it, as any keeper does.)
    if (!appliance_->SettleAudit(std::chrono::seconds(2)))
      Log("warn", "the audit log's last entries are not signed and durable yet; the keepers witness what is");
    for (DevKeeper& k : keepers_) {
      if (std::find(kUnsealIds.begin(), kUnsealIds.end(), k.store->id()) == kUnsealIds.end()) continue;
      StatusOr<keeper::WitnessOutcome> w = keeper::WitnessAppliance(*k.store, endpoint_);
      if (!w.ok())
        Log("warn", "audit witness at stop failed", {{"keeper", k.store->id()}, {"reason", w.status().message()}});
    }
  }
  auto_release_.clear();  // joins the release threads before the appliance goes
  if (kmip_) kmip_->Stop();
  if (api_) api_->Stop();
  if (appliance_) {
    appliance_->Stop();
    appliance_.reset();  // closes the core's socket; the core exits and is reaped
  }
  for (auto it = keepers_.rbegin(); it != keepers_.rend(); ++it)
    if (it->server) it->server->Stop();
  keepers_.clear();
  api_.reset();
}

}  // namespace

// Banner is what a person at a terminal sees once the dev server is ready (as `vault server
// -dev` does): what runs, how to use it, and the lines to source.
std::string Banner(const std::string& dir, const std::string& lines) {
  std::string endpoint;
  for (size_t p = lines.find("CUSTOS_ENDPOINT="); p != std::string::npos;) {
    endpoint = lines.substr(p + 16, lines.find('\n', p) - p - 16);
    break;
  }
  std::string b;
  b += "\ncustos dev server is running: DEVELOPMENT ONLY (keys and passphrases are files in " + dir + ").\n\n";
  b += "  KMS API and /v1/sys:  " + endpoint + "  (plain HTTP, loopback)\n";
  b += "  keepers (in process): P1 (provider), C1 C2 C3 (customer, any 2 of 3)\n";
  b += "  appliance:            sim trusted core, initialised and unsealed by P1, C1, C2\n\n";
  b += "From another shell:\n";
  b += "  set -a; . " + dir + "/dev.env; set +a\n";
  b += "  aws kms create-key --endpoint-url \"$CUSTOS_ENDPOINT\"\n\n";
  b += "Ctrl-C stops it; the next start reuses " + dir + ". The lines of dev.env:\n\n";
  return b;
}

Status RunDevMode(const DevModeOptions& options) {
  Clock::time_point start = Clock::now();
  // At a terminal, dev mode shows warnings and the banner, not every setup step (those stay
  // available with CUSTOS_LOG_LEVEL=info, and in JSON when stderr is not a terminal).
  if (isatty(STDERR_FILENO) != 0 && std::getenv("CUSTOS_LOG_LEVEL") == nullptr) ::setenv("CUSTOS_LOG_LEVEL", "warn", 1);
  // A trusted core that dies must show up as an error on the next call, not kill the host.
  signal(SIGPIPE, SIG_IGN);
  // Block the stop signals before any thread starts, so only sigwait below receives them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  Log("warn",
      "DEV MODE: keeper passphrase stored beside the shares, sim TEE, credentials on disk; "
      "for development only");
  DevDeployment dev(options);
  RETURN_IF_ERROR(dev.Start());
  Log("info", "dev mode ready",
      {{"startup_ms", MsSince(start)}, {"env_file", dev.dir() + "/" + kDevEnvFile}});
  // The lines a shell can `export` or `source`: on stdout only, never in a log.
  std::string lines = dev.TakeEnvLines();
  if (isatty(STDOUT_FILENO) != 0) std::cout << Banner(dev.dir(), lines);
  std::cout << lines << std::flush;
  WipeBytes(lines);
  int sig = 0;
  sigwait(&sigs, &sig);
  Log("info", "stopping on signal", {{"signal", sig}});
  dev.Stop();
  Log("info", "stopped");
  return Status::Ok();
}

}  // namespace custos::cli
