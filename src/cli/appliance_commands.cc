#include "cli/appliance_commands.h"

#include <signal.h>

#include <chrono>
#include <iostream>
#include <thread>
#include <vector>

#include "protocol/attestation/dcap.h"
#include "protocol/custody/approval.h"
#include "cli/dev_mode.h"
#include "common/file.h"
#include "common/log.h"
#include "appliance/host/appliance.h"
#include "appliance/kmip/server.h"
#include "appliance/host/config.h"
#include "keeper/daemon/fault_injection.h"
#include "keeper/daemon/keeper_service.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "net/tls_identity.h"

namespace custos::cli {

using json = nlohmann::json;

StatusOr<std::string> AdminToken(std::string token_file) {
  if (token_file.empty()) {
    const char* env = std::getenv("CUSTOS_ADMIN_TOKEN_FILE");
    if (env == nullptr || *env == '\0')
      return InvalidArgument("this command needs the appliance's admin token: --token-file (the server's "
                             "data_dir/admin.token) or CUSTOS_ADMIN_TOKEN_FILE");
    token_file = env;
  }
  ASSIGN_OR_RETURN(std::string token, ReadFileString(token_file));
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  if (token.empty()) return InvalidArgument("the admin token file is empty");
  return token;
}

StatusOr<keeper::ReleaseOptions> LoadReleaseOptions(const std::string& url, const std::string& policy_path,
                                                    const std::string& collateral_path,
                                                    const std::string& ca_file,
                                                    const std::vector<std::string>& approval_paths) {
  keeper::ReleaseOptions o;
  o.server_url = url;
  o.ca_file = ca_file;
  ASSIGN_OR_RETURN(std::string policy_text, ReadFileString(policy_path));
  ASSIGN_OR_RETURN(o.policy, attestation::ParseAttestationPolicyJson(policy_text));
  if (!collateral_path.empty()) {
    ASSIGN_OR_RETURN(o.collateral_json, ReadFileString(collateral_path));
  }
  for (const std::string& path : approval_paths) {
    ASSIGN_OR_RETURN(std::string text, ReadFileString(path));
    // Refused here if it is not an approval at all; whether it is in force is judged per release.
    RETURN_IF_ERROR(custody::MeasurementApproval::Parse(text).status().WithContext(path));
    o.approvals.push_back(std::move(text));
  }
  // Only a bad-partial fault changes a release; the DKG and reshare faults do not touch it.
  ASSIGN_OR_RETURN(o.misbehaviour, keeper::MisbehaviourFromEnv());
  return o;
}

void AddAutoReleaseFlags(CLI::App* serve, AutoReleaseFlags& f) {
  serve->add_option("--auto-release", f.url,
                    "appliance URL: verify it and release this keeper's partial whenever it is sealed");
  serve->add_option("--release-policy", f.policy_path, "attestation policy JSON for --auto-release");
  serve->add_option("--release-collateral", f.collateral_path, "DCAP collateral JSON for --auto-release");
  serve->add_option("--release-ca-file", f.ca_file, "CA bundle for an https appliance");
  serve->add_option("--release-interval-ms", f.interval_ms, "how often to check the appliance (default 2000)");
  serve->add_option("--release-approval", f.approval_paths,
                    "a measurement approval file (custos keeper policy approve): also release to that build when "
                    "t_p provider and t_c customer keepers signed it (repeatable)");
  serve->add_option("--witness-interval-ms", f.witness_interval_ms,
                    "how often to witness the appliance's audit chain while it serves (default 60000; 0: at "
                    "releases only)");
}

namespace {

Status Server(const std::string& config_path, bool insecure_http) {
  ASSIGN_OR_RETURN(host::ServerConfig config, host::LoadServerConfig(config_path));
  if (insecure_http) {
    if (!config.tls_cert.empty()) return InvalidArgument("--insecure-http and [server] tls_cert exclude each other");
    config.insecure_http = true;
  }
  // TLS by default: without a configured certificate the node makes (once) and uses its own.
  if (config.insecure_http) {
    Log("warn", "host",
        "serving plain HTTP (insecure_http = true): KMS plaintexts, data keys, admin tokens and new "
        "access-key secrets cross the network in clear; for development behind a trusted network only");
  } else if (config.tls_cert.empty()) {
    ASSIGN_OR_RETURN(net::TlsIdentity id, net::EnsureSelfSignedIdentity(config.data_dir + "/tls",
                                                                       net::HostPart(config.listen),
                                                                       "custos appliance"));
    config.tls_cert = id.cert_file;
    config.tls_key = id.key_file;
    Log("info", "host", id.created ? "TLS identity created: clients pin this certificate (--ca-file)"
                                   : "TLS identity: clients pin this certificate (--ca-file)",
        {{"certificate", id.cert_file}, {"sha256", id.fingerprint}});
  }
  // A trusted core that dies must show up as an error on the next call, not kill the host.
  signal(SIGPIPE, SIG_IGN);
  std::string binary = config.enclave_binary.empty() ? host::DefaultEnclaveBinary() : config.enclave_binary;
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  ASSIGN_OR_RETURN(std::unique_ptr<host::Appliance> appliance, host::Appliance::Start(config, binary));
  net::HttpServerOptions opts = host::ApiServerOptions(config);
  ASSIGN_OR_RETURN(auto server, net::HttpServer::Create(
                                    config.listen,
                                    [&](const net::HttpRequest& r) { return appliance->Handle(r); }, opts));
  RETURN_IF_ERROR(server->Start());
  std::cout << "custos server listening on " << (server->tls() ? "https" : "http") << "://"
            << config.listen.substr(0, config.listen.rfind(':')) << ":" << server->port() << std::endl;
  // [xks] listen: the XKS proxy API alone, on its own address, mutual TLS when configured.
  std::unique_ptr<net::HttpServer> xks_server;
  if (!config.xks_listen.empty()) {
    net::HttpServerOptions xo = host::ApiServerOptions(config);
    xo.tls_client_ca_file = config.xks_client_ca;
    xo.tls_client_subject = config.xks_client_subject;
    ASSIGN_OR_RETURN(xks_server, net::HttpServer::Create(
                                     config.xks_listen,
                                     [&](const net::HttpRequest& r) {
                                       std::string path = r.target.substr(0, r.target.find('?'));
                                       if (kms::XksApi::IsXksPath(path)) return appliance->Handle(r);
                                       net::HttpResponse nf;
                                       nf.status = 404;
                                       nf.body = R"({"errorName":"InvalidUriPathException","errorMessage":"this listener serves the XKS proxy API only"})";
                                       return nf;
                                     },
                                     xo));
    RETURN_IF_ERROR(xks_server->Start());
    std::cout << "custos XKS proxy API listening on " << (xks_server->tls() ? "https" : "http") << "://"
              << config.xks_listen.substr(0, config.xks_listen.rfind(':')) << ":" << xks_server->port()
              << (config.xks_client_ca.empty() ? "" : " (mutual TLS)") << std::endl;
  }
  // [kmip] listen: the KMIP server, mutual TLS with the node's KMIP client CA.
  std::unique_ptr<kmip::KmipServer> kmip_server;
  if (const kmip::KmipCa* ca = appliance->kmip_ca()) {
    kmip::KmipServerOptions ko;
    ko.threads = std::max(2u, std::thread::hardware_concurrency());
    ko.cert_file = ca->server_cert_file;
    ko.key_file = ca->server_key_file;
    ko.client_ca_file = ca->ca_cert_file;
    ASSIGN_OR_RETURN(kmip_server, kmip::KmipServer::Create(
                                      config.kmip_listen,
                                      ko, [&](ByteSpan m, const kmip::KmipPeer& p) { return appliance->HandleKmip(m, p); }));
    RETURN_IF_ERROR(kmip_server->Start());
    std::cout << "custos KMIP listening on " << config.kmip_listen.substr(0, config.kmip_listen.rfind(':')) << ":"
              << kmip_server->port() << " (mutual TLS; client CA " << ca->ca_cert_file << ")" << std::endl;
  }
  int sig = 0;
  sigwait(&sigs, &sig);
  Log("info", "host", "stopping on signal", {{"signal", sig}});
  if (kmip_server) kmip_server->Stop();
  if (xks_server) xks_server->Stop();
  server->Stop();
  appliance->Stop();
  return Status::Ok();
}

// CallServer sends one admin request (the admin token as a bearer token).
StatusOr<json> CallServer(const std::string& url, const std::string& ca_file, const std::string& token_file,
                          const std::string& method, const std::string& path) {
  ASSIGN_OR_RETURN(std::string token, AdminToken(token_file));
  net::HttpClientOptions o;
  o.ca_file = ca_file;
  ASSIGN_OR_RETURN(net::HttpClient client, net::HttpClient::Create(url, o));
  net::HttpHeaders headers = {{"authorization", "Bearer " + token}};
  WipeBytes(token);
  StatusOr<net::HttpResponse> r = [&] {
    if (method == "GET") return client.Get(path, headers);
    headers["content-type"] = "application/json";
    return client.Post(path, "{}", headers);
  }();
  WipeBytes(headers["authorization"]);
  return net::DecodeJsonResponse(r, "appliance " + url);
}

Status OperatorInit(const std::string& url, const std::string& ca_file, const std::string& token_file) {
  ASSIGN_OR_RETURN(json r, CallServer(url, ca_file, token_file, "POST", "/v1/sys/init"));
  std::cout << r.dump(2) << "\n";
  return Status::Ok();
}

// OperatorCustodyUpdate hands an appliance the successor descriptor of a reshare (the core
// checks it: every signature, the same joint key, a higher epoch).
Status OperatorCustodyUpdate(const std::string& url, const std::string& ca_file, const std::string& custody_path) {
  ASSIGN_OR_RETURN(custody::CustodyDescriptor d, custody::CustodyDescriptor::Load(custody_path));
  net::HttpClientOptions o;
  o.ca_file = ca_file;
  ASSIGN_OR_RETURN(net::HttpClient client, net::HttpClient::Create(url, o));
  ASSIGN_OR_RETURN(json r, net::DecodeJsonResponse(client.Post("/v1/sys/custody", json{{"descriptor", d.ToJson()}}.dump(),
                                                               {{"content-type", "application/json"}}),
                                                   "appliance " + url));
  std::cout << r.dump(2) << "\n";
  return Status::Ok();
}

Status OperatorStatus(const std::string& url, const std::string& ca_file, const std::string& token_file) {
  ASSIGN_OR_RETURN(json r, CallServer(url, ca_file, token_file, "GET", "/v1/sys/status"));
  std::cout << r.dump(2) << "\n";
  return Status::Ok();
}

// KeeperRelease releases from one or more keeper directories (several: in parallel, as the
// keepers of a quorum would; used by scripts/bench_unseal.sh). `elapsed_ms` covers the
// releases only, not process start or the Argon2id unlock of the keeper stores.
Status KeeperRelease(const std::vector<std::string>& dirs, const std::string& pass_file, const std::string& url,
                     const std::string& policy, const std::string& collateral, const std::string& ca_file,
                     const std::vector<std::string>& approvals) {
  ASSIGN_OR_RETURN(keeper::ReleaseOptions o, LoadReleaseOptions(url, policy, collateral, ca_file, approvals));
  ASSIGN_OR_RETURN(SecretBytes pass, keeper::ResolvePassphrase(pass_file));
  std::vector<std::unique_ptr<keeper::KeeperStore>> stores;
  for (const std::string& dir : dirs) {
    ASSIGN_OR_RETURN(auto store, keeper::KeeperStore::Open(dir, pass));
    stores.push_back(std::move(store));
  }
  std::vector<StatusOr<keeper::ReleaseOutcome>> results(stores.size(), InternalError("not run"));
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (size_t i = 0; i < stores.size(); ++i)
    threads.emplace_back([&, i] { results[i] = keeper::ReleaseToAppliance(*stores[i], o); });
  for (std::thread& t : threads) t.join();
  double elapsed_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  Status first_error;
  bool unsealed = false;
  for (size_t i = 0; i < stores.size(); ++i) {
    json j = {{"keeper", stores[i]->id()}};
    if (!results[i].ok()) {
      j["error"] = results[i].status().message();
      if (first_error.ok()) first_error = results[i].status().WithContext("keeper " + stores[i]->id());
    } else {
      const keeper::ReleaseOutcome& out = *results[i];
      j["released"] = out.released;
      j["unsealed"] = out.unsealed;
      unsealed = unsealed || out.unsealed;
      if (out.custody_updated) j["custody_updated"] = true;
      if (out.released) {
        j["measurement"] = out.measurement;
        j["provider_partials"] = out.provider;
        j["customer_partials"] = out.customer;
      }
    }
    std::cout << j.dump() << "\n";
  }
  if (stores.size() > 1) std::cout << json{{"elapsed_ms", elapsed_ms}, {"unsealed", unsealed}}.dump() << "\n";
  return first_error;
}

}  // namespace

void AddApplianceCommands(CLI::App& app, CLI::App* keeper_cmd, std::function<void(Status)> run) {
  // The strings live as long as `app` (they are captured by the callbacks).
  static std::string config, url, ca_file, pass_file, policy, collateral, token_file;
  static std::vector<std::string> dirs;
  static bool dev = false, insecure_http = false;
  static DevModeOptions dev_options;
  auto* server = app.add_subcommand("server", "run an appliance node (host + trusted core)");
  auto* config_opt =
      server->add_option("--config", config, "server.toml (docs/server.example.toml)");
  auto* dev_flag = server->add_flag(
      "--dev", dev,
      "development only: in-process keepers, DKG, init, unseal and an access key in one command");
  config_opt->excludes(dev_flag);
  server->add_flag("--insecure-http", insecure_http,
                   "serve plain HTTP (as [server] insecure_http = true; development only)")
      ->excludes(dev_flag);
  server
      ->add_option("--listen", dev_options.listen,
                   "with --dev: loopback HOST:PORT (default 127.0.0.1:8200)")
      ->needs(dev_flag);
  server
      ->add_option("--kmip-port", dev_options.kmip_port,
                   "with --dev: the KMIP listener's port on the same host (default: a free one; KMIP's is 5696)")
      ->needs(dev_flag);
  server
      ->add_option("--data-dir", dev_options.data_dir,
                   "with --dev: state directory (default ./.custos-dev)")
      ->needs(dev_flag);
  server->callback([run] {
    if (dev) return run(RunDevMode(dev_options));
    if (config.empty())
      return run(InvalidArgument("server needs --config (or --dev for a development setup)"));
    run(Server(config, insecure_http));
  });

  auto* op = app.add_subcommand("operator", "appliance operations")->require_subcommand(1);
  auto* op_init = op->add_subcommand("init", "generate the root key in the enclave; store its envelope");
  op_init->add_option("--server", url, "appliance URL")->required();
  op_init->add_option("--ca-file", ca_file, "CA bundle for https");
  op_init->add_option("--token-file", token_file, "the server's data_dir/admin.token (else $CUSTOS_ADMIN_TOKEN_FILE)");
  op_init->callback([run] { run(OperatorInit(url, ca_file, token_file)); });
  auto* op_status = op->add_subcommand("status", "print the appliance's status (sealed, contributors, evidence)");
  op_status->add_option("--server", url, "appliance URL")->required();
  op_status->add_option("--ca-file", ca_file, "CA bundle for https");
  op_status->add_option("--token-file", token_file, "the server's data_dir/admin.token (else $CUSTOS_ADMIN_TOKEN_FILE)");
  op_status->callback([run] { run(OperatorStatus(url, ca_file, token_file)); });
  static std::string custody_path;
  auto* op_custody = op->add_subcommand(
      "custody-update", "hand the appliance the custody.json a reshare produced (it keeps its root key)");
  op_custody->add_option("--server", url, "appliance URL")->required();
  op_custody->add_option("--custody", custody_path, "the new custody.json")->required();
  op_custody->add_option("--ca-file", ca_file, "CA bundle for https");
  op_custody->callback([run] { run(OperatorCustodyUpdate(url, ca_file, custody_path)); });

  auto* rel = keeper_cmd->add_subcommand("release", "verify the appliance's enclave and send it this keeper's partial");
  rel->add_option("--dir", dirs, "keeper directory (repeat to release from several, in parallel)")->required();
  rel->add_option("--passphrase-file", pass_file, "at-rest passphrase (else CUSTOS_KEEPER_PASSPHRASE)");
  rel->add_option("--server", url, "appliance URL")->required();
  rel->add_option("--policy", policy, "attestation policy JSON")->required();
  rel->add_option("--collateral", collateral, "DCAP collateral JSON (for quotes)");
  rel->add_option("--ca-file", ca_file, "CA bundle for https");
  static std::vector<std::string> approvals;
  rel->add_option("--approval", approvals,
                  "a measurement approval file (custos keeper policy approve): also release to that build when t_p "
                  "provider and t_c customer keepers signed it (repeatable)");
  rel->callback([run] { run(KeeperRelease(dirs, pass_file, url, policy, collateral, ca_file, approvals)); });
}

}  // namespace custos::cli
