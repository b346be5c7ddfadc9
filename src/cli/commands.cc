#include "cli/commands.h"

#include "cli/kms_commands.h"
#include "cli/object_commands.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "protocol/attestation/dcap.h"
#include "cli/appliance_commands.h"
#include "cli/audit_commands.h"
#include "protocol/attestation/evidence.h"
#include "protocol/attestation/sim_evidence.h"
#include "client/ceremony/ceremony.h"
#include "cli/output_file.h"
#include "common/file.h"
#include "common/log.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "appliance/ecall/ecall.h"
#include "protocol/custody/approval.h"
#include "protocol/envelope/dual_control.h"
#include "keeper/daemon/escrow.h"
#include "keeper/api/keeper_client.h"
#include "keeper/daemon/fault_injection.h"
#include "keeper/daemon/keeper_service.h"
#include "keeper/daemon/keeper_store.h"
#include "keeper/daemon/witness.h"
#include "keeper/api/protocol.h"
#include "net/http_server.h"
#include "net/tls_identity.h"
#include "client/requester/partial_collector.h"

namespace custos::cli {

using custody::CustodyDescriptor;
using nlohmann::json;

namespace {

// HardenProcess keeps secrets out of core dumps and swap for every custos command.
void HardenProcess() {
  struct rlimit no_core = {0, 0};
  (void)setrlimit(RLIMIT_CORE, &no_core);
  (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

crypto::Argon2Params KdfParams(uint32_t m_kib, uint32_t t) {
  crypto::Argon2Params p;
  p.m_cost_kib = m_kib;
  p.t_cost = t;
  return p;
}

struct FileDescriptor {
  int fd = -1;
  ~FileDescriptor() {
    if (fd > 2) ::close(fd);
  }
};

StatusOr<int> OpenInput(const std::string& path) {
  if (path == "-") return STDIN_FILENO;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFound("cannot open " + path + ": " + std::strerror(errno));
  return fd;
}

StatusOr<CustodyDescriptor> LoadVerifiedCustody(const std::string& path) {
  ASSIGN_OR_RETURN(CustodyDescriptor c, CustodyDescriptor::Load(path));
  Status st = c.Verify();
  if (!st.ok()) return st.WithContext(path);
  return c;
}

// ---- client ----

Status ClientInit(const std::string& out) {
  crypto::SigningKey k = crypto::SigningKey::Generate();
  RETURN_IF_ERROR(keeper::WriteClientKey(out, k));
  std::cout << "client key written to " << out << " (public key " << out << ".pub)\n";
  return Status::Ok();
}

// ---- keeper ----

Status KeeperInit(const std::string& dir, const std::string& domain, const std::string& id,
                  const std::string& pass_file, uint32_t m_kib, uint32_t t) {
  ASSIGN_OR_RETURN(custody::Domain d, custody::ParseDomain(domain));
  ASSIGN_OR_RETURN(SecretBytes pass, keeper::ResolvePassphrase(pass_file));
  ASSIGN_OR_RETURN(auto store, keeper::KeeperStore::Init(dir, id, d, pass, KdfParams(m_kib, t)));
  std::cout << "keeper " << id << " (" << domain << ") initialised in " << dir << "\n";
  return Status::Ok();
}

// KeeperAllow adds a client key (or, with `remove`, takes it off; with `role_given` for a
// listed key, changes its role). In force at once: the daemon reads the allowlist per request.
Status KeeperAllow(const std::string& dir, const std::string& client, const std::string& name,
                   const std::string& role_name, bool role_given, bool remove, const std::string& pass_file) {
  ASSIGN_OR_RETURN(keeper::ClientRole role, keeper::ParseClientRole(role_name));
  ASSIGN_OR_RETURN(crypto::Point key, keeper::ReadClientPublicKey(client));
  ASSIGN_OR_RETURN(SecretBytes pass, keeper::ResolvePassphrase(pass_file));
  ASSIGN_OR_RETURN(auto store, keeper::KeeperStore::Open(dir, pass));
  std::string n = name.empty() ? std::filesystem::path(client).stem().string() : name;
  if (remove) {
    RETURN_IF_ERROR(store->RemoveClient(key));
    std::cout << "client " << n << " removed from keeper " << store->id() << "\n";
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(auto listed, store->LoadAllowlist());
  bool known = std::any_of(listed.begin(), listed.end(), [&](const keeper::AllowedClient& c) { return c.key == key; });
  if (known && role_given) {
    RETURN_IF_ERROR(store->SetClientRole(key, role));
    std::cout << "client " << n << " on keeper " << store->id() << " now has role " << keeper::ClientRoleName(role) << "\n";
    return Status::Ok();
  }
  RETURN_IF_ERROR(store->AddClient(n, key, role));
  std::cout << "client " << n << " allowed on keeper " << store->id() << " (role "
            << keeper::ClientRoleName(role) << ")\n";
  return Status::Ok();
}

// KeeperPolicyApprove adds this keeper's signature to a measurement approval (creating the
// file if it does not exist), after auditing it ("policy.approve"). Every keeper signs the same
// file in turn; it is in force once t_p provider and t_c customer keepers signed.
Status KeeperPolicyApprove(const std::string& dir, const std::string& measurement_hex, const std::string& tee,
                           const std::string& approval_path, uint32_t valid_days, const std::string& pass_file) {
  auto measurement = HexDecode(measurement_hex);
  if (!measurement.ok() || (measurement->size() != 32 && measurement->size() != 48))
    return InvalidArgument("--measurement must be 32 or 48 bytes in hex (sha256sum custos-enclave for sim)");
  if (valid_days < 1 || valid_days > 366) return InvalidArgument("--valid-days must be 1..366");
  ASSIGN_OR_RETURN(SecretBytes pass, keeper::ResolvePassphrase(pass_file));
  ASSIGN_OR_RETURN(auto store, keeper::KeeperStore::Open(dir, pass));
  std::lock_guard<std::mutex> lock(store->mu());
  const auto& active = store->secrets().active;
  if (!active) return FailedPrecondition("keeper " + store->id() + " holds no active share: nothing to approve for");
  ASSIGN_OR_RETURN(CustodyDescriptor custody, CustodyDescriptor::Parse(active->custody_json));
  custody::MeasurementApproval a;
  if (FileExists(approval_path)) {
    ASSIGN_OR_RETURN(std::string text, ReadFileString(approval_path));
    ASSIGN_OR_RETURN(a, custody::MeasurementApproval::Parse(text));
    if (!(a.joint_key == custody.public_key))
      return FailedPrecondition(approval_path + " is for another custody (another joint key)");
    if (a.measurement != *measurement || a.tee != tee)
      return FailedPrecondition(approval_path + " approves " + a.tee + " measurement " + HexEncode(a.measurement) +
                                ", not " + tee + " " + measurement_hex);
  } else {
    a.joint_key = custody.public_key;
    a.tee = tee;
    a.measurement = *measurement;
    a.not_after = std::time(nullptr) + static_cast<std::time_t>(valid_days) * 86400;
  }
  // Every signature already there must verify (a tampered file is not co-signed).
  RETURN_IF_ERROR(custody::CountApproval(a, custody, std::time(nullptr)).status());
  a.Sign(store->id(), store->secrets().identity);
  RETURN_IF_ERROR(store->audit().Append("policy.approve", {{"tee", a.tee},
                                                           {"measurement", HexEncode(a.measurement)},
                                                           {"not_after", a.not_after},
                                                           {"custody", custody.FingerprintHex()}}));
  RETURN_IF_ERROR(WriteFileAtomic(approval_path, a.ToJsonString(), 0644));
  ASSIGN_OR_RETURN(custody::ApprovalQuorum q, custody::CountApproval(a, custody, std::time(nullptr)));
  bool done = q.provider >= q.provider_threshold && q.customer >= q.customer_threshold;
  std::cout << "keeper " << store->id() << " approved " << a.tee << " measurement " << HexEncode(a.measurement)
            << ": provider " << q.provider << " of " << q.provider_threshold << ", customer " << q.customer << " of "
            << q.customer_threshold << (done ? " (in force)" : " (not yet in force: both domains must approve)")
            << "\n";
  return Status::Ok();
}

Status KeeperWitnessCheck(const std::string& dir, const std::string& url, const std::string& ca_file,
                          const std::string& pass_file) {
  ASSIGN_OR_RETURN(SecretBytes pass, keeper::ResolvePassphrase(pass_file));
  ASSIGN_OR_RETURN(auto store, keeper::KeeperStore::Open(dir, pass));
  ASSIGN_OR_RETURN(keeper::WitnessOutcome w, keeper::WitnessAppliance(*store, url, ca_file));
  std::cout << nlohmann::json{{"keeper", store->id()},   {"appliance", url},        {"log", w.log},
                              {"seq", w.seq},            {"hash", w.hash},          {"advanced", w.advanced},
                              {"first_sight", w.first_sight}, {"records_checked", w.checked},
                              {"by_line", w.by_line},    {"run", HexEncode(w.run)}}
                   .dump()
            << "\n";
  return Status::Ok();
}

Status KeeperWitnessReset(const std::string& dir, const std::string& reason, const std::string& pass_file) {
  ASSIGN_OR_RETURN(SecretBytes pass, keeper::ResolvePassphrase(pass_file));
  ASSIGN_OR_RETURN(auto store, keeper::KeeperStore::Open(dir, pass));
  RETURN_IF_ERROR(keeper::ResetWitness(*store, reason));
  std::cout << "keeper " << store->id() << " forgot the audit heads it witnessed; the next witness starts afresh\n";
  return Status::Ok();
}

Status KeeperServe(const std::string& dir, const std::string& listen, const std::string& pass_file,
                   std::string cert, std::string key, bool insecure_http, const AutoReleaseFlags& release,
                   const std::string& audit_sync, uint32_t audit_window_ms) {
  if (insecure_http && !cert.empty()) return InvalidArgument("--insecure-http and --tls-cert exclude each other");
  keeper::AuditSyncOptions sync;
  ASSIGN_OR_RETURN(sync.mode, keeper::ParseAuditSync(audit_sync));
  sync.group_window = std::chrono::milliseconds(audit_window_ms);
  std::optional<keeper::ReleaseOptions> release_options;
  if (!release.url.empty()) {
    if (release.policy_path.empty()) return InvalidArgument("--auto-release needs --release-policy");
    ASSIGN_OR_RETURN(release_options, LoadReleaseOptions(release.url, release.policy_path,
                                                         release.collateral_path, release.ca_file,
                                                         release.approval_paths));
  }
  ASSIGN_OR_RETURN(SecretBytes pass, keeper::ResolvePassphrase(pass_file));
  ASSIGN_OR_RETURN(auto store, keeper::KeeperStore::Open(dir, pass));
  pass = SecretBytes();
  RETURN_IF_ERROR(store->audit().SetSync(sync));
  // TLS by default: without --tls-cert the keeper makes (once) and uses its own identity.
  if (insecure_http) {
    Log("warn", "keeper",
        "serving plain HTTP (--insecure-http): requests, client keys and escrow blobs cross the network in "
        "clear (partials stay HPKE-sealed); for development only");
  } else if (cert.empty()) {
    ASSIGN_OR_RETURN(net::TlsIdentity id, net::EnsureSelfSignedIdentity(dir + "/tls", net::HostPart(listen),
                                                                       "custos keeper " + store->id()));
    cert = id.cert_file;
    key = id.key_file;
    Log("info", "keeper", id.created ? "TLS identity created: clients pin this certificate (--ca-file)"
                                     : "TLS identity: clients pin this certificate (--ca-file)",
        {{"certificate", id.cert_file}, {"sha256", id.fingerprint}});
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const keeper::Misbehaviour> faults, keeper::MisbehaviourFromEnv());
  if (faults != nullptr)
    Log("warn", "keeper", "FAULT INJECTION ACTIVE: this keeper misbehaves on purpose (test only)");
  (void)mlockall(MCL_CURRENT | MCL_FUTURE);  // best effort; RLIMIT_MEMLOCK may refuse
  keeper::KeeperService service(*store, faults);
  net::HttpServerOptions opts;
  opts.tls_cert_file = cert;
  opts.tls_key_file = key;
  opts.max_body_bytes = 4 << 20;
  // Block the stop signals before threads start so only sigwait below receives them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  ASSIGN_OR_RETURN(auto server, net::HttpServer::Create(
                                    listen, [&](const net::HttpRequest& r) { return service.Handle(r); },
                                    opts));
  RETURN_IF_ERROR(server->Start());
  std::unique_ptr<keeper::AutoRelease> auto_release;
  if (release_options) release_options->witness_interval = std::chrono::milliseconds(release.witness_interval_ms);
  if (release_options)
    auto_release = std::make_unique<keeper::AutoRelease>(*store, *release_options,
                                                         std::chrono::milliseconds(release.interval_ms));
  std::cout << "keeper " << store->id() << " listening on " << (server->tls() ? "https" : "http")
            << "://" << listen.substr(0, listen.rfind(':')) << ":" << server->port() << std::endl;
  int sig = 0;
  sigwait(&sigs, &sig);
  Log("info", "keeper", "stopping on signal", {{"signal", sig}});
  server->Stop();
  return Status::Ok();
}

// EscrowExportFlags are `keeper escrow export`'s choices about the recovery secret.
struct EscrowExportFlags {
  bool generate_recovery_key = false;  // draw a random recovery key and print it once
  bool insecure_test_kdf = false;      // allow Argon2id below kEscrowMinParams (tests only)
};

Status KeeperEscrowExport(const std::string& dir, const std::string& to, const std::string& pass_file,
                          const std::string& keeper_pass_file, uint32_t m_kib, uint32_t t,
                          const std::string& ca_file, const EscrowExportFlags& flags) {
  crypto::Argon2Params params = KdfParams(m_kib, t);
  const crypto::Argon2Params& floor = keeper::kEscrowMinParams;
  if (!flags.insecure_test_kdf && (params.m_cost_kib < floor.m_cost_kib || params.t_cost < floor.t_cost))
    return InvalidArgument("escrow Argon2id below 64 MiB / 3 passes: the provider holding the blob could "
                           "guess the recovery secret faster (--insecure-test-kdf allows it, for tests only)");
  if (flags.generate_recovery_key == !pass_file.empty())
    return InvalidArgument("give the recovery secret with --passphrase-file, or --generate-recovery-key (one of them)");
  SecretBytes escrow_pass;
  if (flags.generate_recovery_key) {
    escrow_pass = keeper::NewRecoveryKey();
  } else {
    ASSIGN_OR_RETURN(std::string escrow_pass_s, ReadPassphraseFile(pass_file));
    escrow_pass = SecretBytes::CopyFrom(escrow_pass_s);
    WipeBytes(escrow_pass_s);
    RETURN_IF_ERROR(keeper::CheckRecoverySecret(escrow_pass));
  }
  ASSIGN_OR_RETURN(SecretBytes pass, keeper::ResolvePassphrase(keeper_pass_file));
  ASSIGN_OR_RETURN(auto store, keeper::KeeperStore::Open(dir, pass));
  if (store->domain() != custody::Domain::kCustomer)
    return FailedPrecondition("only customer keepers export recovery fragments");
  const keeper::KeeperSecrets& s = store->secrets();
  if (!s.active) return FailedPrecondition("keeper holds no active share to escrow");
  ASSIGN_OR_RETURN(CustodyDescriptor c, CustodyDescriptor::Parse(s.active->custody_json));
  ASSIGN_OR_RETURN(keeper::EscrowBlob blob,
                   keeper::SealEscrow(s, store->id(), store->domain(), c.Fingerprint(), escrow_pass, params));
  Bytes encoded = blob.Encode();
  Bytes sig = s.identity.Sign(keeper::EscrowUploadMessage(encoded));
  ASSIGN_OR_RETURN(keeper::KeeperClient client, keeper::KeeperClient::Create(to, ca_file));
  ASSIGN_OR_RETURN(json r, client.Call("/v1/escrow/put", {{"blob", Base64Encode(encoded)},
                                                          {"sig", HexEncode(sig)}}));
  RETURN_IF_ERROR(store->audit().Append(
      "escrow.export", {{"to", to}, {"custody", c.FingerprintHex()},
                        {"blob_hash", HexEncode(crypto::Sha256Bytes(encoded))}}));
  std::cout << "recovery fragment of keeper " << store->id() << " deposited at " << to << "\n";
  if (flags.generate_recovery_key)
    std::cout << "recovery key (shown once; store it offline, e.g. on paper; custos keeper recover reads it "
                 "from --passphrase-file):\n"
              << escrow_pass.ExposeAsString() << "\n";
  return Status::Ok();
}

Status KeeperRecover(const std::string& dir, const std::string& from, const std::string& pass_file,
                     const std::string& custody_path, const std::string& keeper_id,
                     const std::string& keeper_pass_file, uint32_t m_kib, uint32_t t,
                     const std::string& ca_file) {
  ASSIGN_OR_RETURN(CustodyDescriptor c, LoadVerifiedCustody(custody_path));
  ASSIGN_OR_RETURN(std::string escrow_pass_s, ReadPassphraseFile(pass_file));
  SecretBytes escrow_pass = SecretBytes::CopyFrom(escrow_pass_s);
  WipeBytes(escrow_pass_s);
  ASSIGN_OR_RETURN(SecretBytes pass, keeper::ResolvePassphrase(keeper_pass_file));
  ASSIGN_OR_RETURN(keeper::KeeperClient client, keeper::KeeperClient::Create(from, ca_file));
  json req = {{"custody_fp", c.FingerprintHex()}};
  if (!keeper_id.empty()) req["keeper_id"] = keeper_id;
  // The provider hands the blob over only against a proof of the recovery secret: derive the
  // blob's auth key from its salt and cost, and sign this request with it.
  ASSIGN_OR_RETURN(json params, client.Call("/v1/escrow/params", req));
  ASSIGN_OR_RETURN(Bytes salt, keeper::GetHex(params, "salt"));
  crypto::Argon2Params kdf;
  ASSIGN_OR_RETURN(uint64_t pt, keeper::GetUint(params, "t_cost"));
  ASSIGN_OR_RETURN(uint64_t pm, keeper::GetUint(params, "m_cost_kib"));
  ASSIGN_OR_RETURN(uint64_t pp, keeper::GetUint(params, "parallelism"));
  if (pt > 16 || pm > (1u << 20) || pp > 16)
    return InvalidArgument("escrow blob asks for Argon2id parameters above 1 GiB / 16 passes / 16 lanes");
  kdf.t_cost = static_cast<uint32_t>(pt);
  kdf.m_cost_kib = static_cast<uint32_t>(pm);
  kdf.parallelism = static_cast<uint32_t>(pp);
  ASSIGN_OR_RETURN(std::string blob_keeper, keeper::GetString(params, "keeper_id"));
  ASSIGN_OR_RETURN(std::string provider_id, keeper::GetString(params, "provider"));
  ASSIGN_OR_RETURN(crypto::SigningKey auth, keeper::EscrowAuthKey(escrow_pass, salt, kdf));
  uint64_t now = static_cast<uint64_t>(std::time(nullptr));
  Bytes nonce = crypto::RandomBytes(16);
  req["keeper_id"] = blob_keeper;
  req["timestamp"] = now;
  req["nonce"] = HexEncode(nonce);
  req["sig"] = HexEncode(auth.Sign(keeper::EscrowFetchMessage(c.Fingerprint(), blob_keeper, provider_id, now, nonce)));
  ASSIGN_OR_RETURN(json r, client.Call("/v1/escrow/get", req));
  ASSIGN_OR_RETURN(Bytes encoded, keeper::GetBase64(r, "blob"));
  ASSIGN_OR_RETURN(keeper::EscrowBlob blob, keeper::EscrowBlob::Decode(encoded));
  if (blob.custody_fp != c.Fingerprint())
    return IntegrityError("escrow blob belongs to another custody");
  ASSIGN_OR_RETURN(keeper::KeeperSecrets secrets, keeper::OpenEscrow(blob, escrow_pass));
  const custody::KeeperRecord* rec = c.FindKeeper(blob.keeper_id);
  if (rec == nullptr || !secrets.active)
    return IntegrityError("escrow blob names a keeper that custody.json does not list");
  // The recovered share must be the one custody.json commits to.
  if (!(crypto::Point::BaseMul(secrets.active->share) == rec->verification_key) ||
      secrets.active->index != rec->index ||
      !(secrets.identity.verifying_key().point() == rec->identity_key))
    return IntegrityError("recovered share does not match keeper " + blob.keeper_id +
                          "'s verification key in custody.json");
  secrets.active->custody_json = c.ToJsonString();
  ASSIGN_OR_RETURN(auto store, keeper::KeeperStore::CreateFromSecrets(
                                   dir, blob.keeper_id, blob.domain, std::move(secrets), pass,
                                   KdfParams(m_kib, t)));
  RETURN_IF_ERROR(store->audit().Append(
      "keeper.recover", {{"from", from}, {"custody", c.FingerprintHex()},
                         {"blob_hash", HexEncode(crypto::Sha256Bytes(encoded))}}));
  std::cout << "keeper " << blob.keeper_id << " recovered into " << dir << "\n";
  return Status::Ok();
}

Status KeeperAuditVerify(const std::string& dir, const std::string& custody_path) {
  ASSIGN_OR_RETURN(std::string meta_text, ReadFileString(dir + "/keeper.json"));
  ASSIGN_OR_RETURN(json meta, keeper::ParseJsonObject(meta_text));
  ASSIGN_OR_RETURN(crypto::Point key, keeper::GetPoint(meta, "identity_key"));
  if (!custody_path.empty()) {
    // Pin the identity key to custody.json, so a rewritten keeper.json cannot vouch for a
    // rewritten log.
    ASSIGN_OR_RETURN(CustodyDescriptor c, LoadVerifiedCustody(custody_path));
    const custody::KeeperRecord* rec = c.FindKeeper(meta.value("id", ""));
    if (rec == nullptr) return NotFound("custody.json does not list this keeper");
    key = rec->identity_key;
  }
  ASSIGN_OR_RETURN(auto report, keeper::AuditLog::Verify(dir + "/audit.log",
                                                         crypto::VerifyingKey::FromPoint(key)));
  std::cout << "audit log OK: " << report.entries << " entries, head " << report.head << "\n";
  return Status::Ok();
}

// ---- ceremonies ----

StatusOr<std::vector<crypto::SigningKey>> ResolveAdminKeys(const std::string& flag, const char* what);

Status CeremonyDkg(const std::string& provider, uint32_t pt, const std::string& customer, uint32_t ct,
                   const std::string& out, const std::string& client_key, const std::string& ca_file) {
  if (FileExists(out)) return AlreadyExists("refusing to overwrite " + out);
  ceremony::DkgCeremonyOptions o;
  ASSIGN_OR_RETURN(std::vector<crypto::SigningKey> keys, ResolveAdminKeys(client_key, "a DKG"));
  for (const auto& k : keys) o.admin_keys.push_back(&k);
  o.provider_urls = SplitList(provider);
  o.customer_urls = SplitList(customer);
  o.provider_threshold = pt;
  o.customer_threshold = ct;
  o.ca_file = ca_file;
  o.log = &std::cerr;
  ASSIGN_OR_RETURN(CustodyDescriptor d, ceremony::RunDkg(o));
  RETURN_IF_ERROR(WriteFileAtomic(out, d.ToJsonString(), 0644));
  std::cout << "custody " << d.FingerprintHex() << " written to " << out << "\n";
  return Status::Ok();
}

// ResolveAdminKeys loads the comma-separated admin key files from the flag or CUSTOS_CLIENT_KEY.
StatusOr<std::vector<crypto::SigningKey>> ResolveAdminKeys(const std::string& flag, const char* what) {
  std::string paths = flag;
  if (paths.empty()) {
    const char* env = std::getenv("CUSTOS_CLIENT_KEY");
    if (env != nullptr) paths = env;
  }
  if (paths.empty())
    return InvalidArgument(std::string(what) +
                           " needs an admin client key: pass --client-key or set CUSTOS_CLIENT_KEY");
  std::vector<crypto::SigningKey> keys;
  for (const std::string& p : SplitList(paths)) {
    ASSIGN_OR_RETURN(crypto::SigningKey k, keeper::ReadClientKey(p));
    keys.push_back(std::move(k));
  }
  return keys;
}

Status CeremonyReshare(const std::string& custody_path, const std::string& domain,
                       const std::string& keepers, uint32_t t, const std::string& out,
                       const std::string& client_key, const std::string& ca_file,
                       const std::vector<std::string>& appliances, const std::vector<std::string>& skip) {
  if (FileExists(out)) return AlreadyExists("refusing to overwrite " + out);
  ceremony::ReshareCeremonyOptions o;
  ASSIGN_OR_RETURN(o.current, LoadVerifiedCustody(custody_path));
  ASSIGN_OR_RETURN(o.domain, custody::ParseDomain(domain));
  o.new_urls = SplitList(keepers);
  o.new_threshold = t;
  ASSIGN_OR_RETURN(std::vector<crypto::SigningKey> keys, ResolveAdminKeys(client_key, "resharing"));
  for (const auto& k : keys) o.admin_keys.push_back(&k);
  o.ca_file = ca_file;
  for (const std::string& a : appliances)
    for (const std::string& u : SplitList(a)) o.appliances.push_back(u);
  for (const std::string& a : skip)
    for (const std::string& u : SplitList(a)) o.skip_appliances.push_back(u);
  o.log = &std::cerr;
  ASSIGN_OR_RETURN(CustodyDescriptor d, ceremony::RunReshare(o));
  RETURN_IF_ERROR(WriteFileAtomic(out, d.ToJsonString(), 0644));
  std::cout << "custody " << d.FingerprintHex() << " (epoch " << d.epoch << ") written to " << out
            << "\n";
  return Status::Ok();
}

// ---- files ----

Status Encrypt(const std::string& custody_path, const std::string& in, const std::string& out,
               uint32_t chunk_kib) {
  if (chunk_kib < 4 || chunk_kib > 16384) return InvalidArgument("--chunk-kib must be 4..16384");
  ASSIGN_OR_RETURN(CustodyDescriptor c, LoadVerifiedCustody(custody_path));
  FileDescriptor input;
  ASSIGN_OR_RETURN(input.fd, OpenInput(in));
  ASSIGN_OR_RETURN(OutputFile output, OutputFile::Open(out));
  RETURN_IF_ERROR(files::EncryptDualControl(c.public_key, input.fd, output.fd(), chunk_kib * 1024));
  return output.Commit();
}

Status Decrypt(const std::string& custody_path, const std::string& client_key, const std::string& in,
               const std::string& out, const std::string& keepers,
               const std::vector<std::string>& overrides, const std::string& ca_file) {
  ASSIGN_OR_RETURN(CustodyDescriptor c, LoadVerifiedCustody(custody_path));
  ASSIGN_OR_RETURN(crypto::SigningKey key, keeper::ReadClientKey(client_key));
  FileDescriptor input;
  ASSIGN_OR_RETURN(input.fd, OpenInput(in));
  ASSIGN_OR_RETURN(files::DualControlHeader h, files::ReadDualControlHeader(input.fd));
  if (!(h.y == c.public_key))
    return PermissionDenied("file was encrypted to another custody (its public key differs)");
  requester::CollectOptions o;
  o.custody = &c;
  o.client_key = &key;
  o.keeper_ids = SplitList(keepers);
  for (const std::string& ov : overrides) {
    auto eq = ov.find('=');
    if (eq == std::string::npos) return InvalidArgument("--keeper-url takes ID=URL");
    o.url_override[ov.substr(0, eq)] = ov.substr(eq + 1);
  }
  o.ca_file = ca_file;
  o.log = &std::cerr;
  ASSIGN_OR_RETURN(crypto::Point s, requester::CollectSharedPoint(o, h.r, h.Digest()));
  ASSIGN_OR_RETURN(SecretBytes dek, files::UnwrapDek(h, s));
  ASSIGN_OR_RETURN(OutputFile output, OutputFile::Open(out));
  RETURN_IF_ERROR(files::DecryptDualControlBody(h, dek, input.fd, output.fd()));
  return output.Commit();
}

// AttestVerify prints a JSON verdict for DCAP evidence and returns non-OK when it is rejected.
Status AttestVerify(const std::string& evidence, const std::string& collateral_path,
                    const std::string& policy_path, const std::string& at_text) {
  ASSIGN_OR_RETURN(Bytes quote, ReadFileBytes(evidence));
  std::time_t at = std::time(nullptr);
  if (!at_text.empty()) {
    ASSIGN_OR_RETURN(at, attestation::ParseRfc3339Utc(at_text));
  }
  json out = {{"evidence", evidence}};
  auto finish = [&](const Status& st) {
    out["accepted"] = st.ok();
    if (!st.ok()) out["reason"] = st.message();
    std::cout << out.dump(2) << "\n";
    return st;
  };
  // Evidence type by its magic: custos `sim` evidence, else an Intel DCAP quote.
  bool sim = attestation::IsSimEvidence(quote);
  StatusOr<attestation::DcapVerdict> verdict = InvalidArgument("no verdict");
  if (sim) {
    verdict = attestation::VerifySimEvidence(quote);
  } else {
    if (collateral_path.empty())
      return finish(InvalidArgument("DCAP evidence needs --collateral"));
    ASSIGN_OR_RETURN(std::string collateral_text, ReadFileString(collateral_path));
    ASSIGN_OR_RETURN(attestation::DcapCollateral collateral,
                     attestation::ParseCollateralJson(collateral_text));
    verdict = attestation::VerifyDcapQuote(quote, collateral, at);
  }
  if (!verdict.ok()) return finish(verdict.status());
  out["tee"] = verdict->tee;
  out["tcb_status"] = verdict->tcb_status;
  out["advisory_ids"] = verdict->advisory_ids;
  out["measurement"] = HexEncode(verdict->measurement);
  out["signer"] = HexEncode(verdict->signer);
  out["product_id"] = verdict->product_id;
  out["svn"] = verdict->svn;
  out["debug"] = verdict->debug;
  out["report_data"] = HexEncode(verdict->report_data);
  out["fmspc"] = verdict->fmspc;
  // Without a policy the question is only "is this a genuine quote?": report its TCB status.
  // Sim evidence is never genuine hardware: it needs a policy that allows it.
  if (policy_path.empty())
    return finish(sim ? PermissionDenied("policy: sim evidence needs a policy with allow_sim")
                      : Status::Ok());
  ASSIGN_OR_RETURN(std::string policy_text, ReadFileString(policy_path));
  ASSIGN_OR_RETURN(attestation::AttestationPolicy policy,
                   attestation::ParseAttestationPolicyJson(policy_text));
  return finish(attestation::CheckPolicy(*verdict, policy));
}

Status CustodyShow(const std::string& path) {
  ASSIGN_OR_RETURN(CustodyDescriptor c, LoadVerifiedCustody(path));
  std::cout << "custody " << c.FingerprintHex() << " epoch " << c.epoch << ": provider "
            << c.provider.threshold << "-of-" << c.provider.keepers.size() << ", customer "
            << c.customer.threshold << "-of-" << c.customer.keepers.size() << "; signatures OK\n";
  return Status::Ok();
}

}  // namespace

int Main(int argc, char** argv) {
  HardenProcess();
  CLI::App app{"custos: co-custodial key management (docs/operations.md)"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all");
  app.set_version_flag("--version", std::string("custos ") + CUSTOS_VERSION +
                                        " (crypto suite 1, host-core interface " +
                                        std::to_string(ecall::kVersion) + ")");
  Status result;
  auto run = [&result](Status st) { result = std::move(st); };

  // Shared flags.
  std::string pass_file, ca_file, dir, out, in, custody_path, url, id, domain, client, name;
  uint32_t kdf_m = 1u << 16, kdf_t = 3;
  auto add_kdf = [&](CLI::App* c) {
    c->add_option("--kdf-memory-kib", kdf_m, "Argon2id memory (KiB); default 65536 (RFC 9106)");
    c->add_option("--kdf-iterations", kdf_t, "Argon2id passes; default 3 (RFC 9106)");
  };

  auto* client_cmd = app.add_subcommand("client", "requester keys")->require_subcommand(1);
  auto* client_init = client_cmd->add_subcommand("init", "create a client signing key");
  client_init->add_option("--out", out, "private key path (public key: PATH.pub)")->required();
  client_init->callback([&] { run(ClientInit(out)); });

  auto* keeper_cmd = app.add_subcommand("keeper", "a keeper of one share")->require_subcommand(1);
  auto* k_init = keeper_cmd->add_subcommand("init", "create a keeper directory");
  k_init->add_option("--dir", dir)->required();
  k_init->add_option("--domain", domain, "provider|customer")->required();
  k_init->add_option("--id", id)->required();
  k_init->add_option("--passphrase-file", pass_file, "at-rest passphrase (else CUSTOS_KEEPER_PASSPHRASE)");
  add_kdf(k_init);
  k_init->callback([&] { run(KeeperInit(dir, domain, id, pass_file, kdf_m, kdf_t)); });

  auto* k_allow = keeper_cmd->add_subcommand("allow", "allow a client key to request partials");
  k_allow->add_option("--dir", dir)->required();
  k_allow->add_option("--client", client, "CLIENT.key.pub")->required();
  std::string role = "decrypt";
  k_allow->add_option("--name", name);
  CLI::Option* role_opt =
      k_allow->add_option("--role", role, "decrypt (default) or admin (may authorise resharing); for a listed key, changes its role");
  bool remove_client = false;
  k_allow->add_flag("--remove", remove_client, "take the key off the allowlist (in force at once)")->excludes(role_opt);
  k_allow->add_option("--passphrase-file", pass_file);
  k_allow->callback([&, role_opt] {
    run(KeeperAllow(dir, client, name, role, role_opt->count() > 0, remove_client, pass_file));
  });

  std::string listen, tls_cert, tls_key;
  auto* k_serve = keeper_cmd->add_subcommand("serve", "run the keeper daemon");
  k_serve->add_option("--dir", dir)->required();
  k_serve->add_option("--listen", listen, "HOST:PORT")->required();
  k_serve->add_option("--passphrase-file", pass_file);
  k_serve->add_option("--tls-cert", tls_cert, "PEM certificate chain (enables HTTPS)");
  k_serve->add_option("--tls-key", tls_key, "PEM private key");
  bool insecure_http = false;
  k_serve->add_flag("--insecure-http", insecure_http,
                    "serve plain HTTP (development only; default: HTTPS, with a self-signed identity in DIR/tls "
                    "unless --tls-cert/--tls-key)");
  AutoReleaseFlags auto_release;
  AddAutoReleaseFlags(k_serve, auto_release);
  std::string audit_sync = "group";
  uint32_t audit_window_ms = 10;
  k_serve->add_option("--audit-sync", audit_sync,
                      "when a partial release's audit entry reaches the disk: 'group' (written before the answer, "
                      "fsync'd within --audit-sync-window-ms; default) or 'request' (fsync before each answer)");
  k_serve->add_option("--audit-sync-window-ms", audit_window_ms, "group-commit window, 1..10 ms (default 10)");
  k_serve->callback([&] {
    run(KeeperServe(dir, listen, pass_file, tls_cert, tls_key, insecure_http, auto_release, audit_sync,
                    audit_window_ms));
  });

  std::string keeper_pass_file;
  auto* k_escrow = keeper_cmd->add_subcommand("escrow", "recovery fragments")->require_subcommand(1);
  auto* k_export = k_escrow->add_subcommand("export", "deposit a sealed recovery fragment");
  k_export->add_option("--dir", dir)->required();
  k_export->add_option("--to", url, "provider keeper URL")->required();
  k_export->add_option("--passphrase-file", pass_file,
                       "recovery passphrase (at least 20 characters, 8 different), or use --generate-recovery-key");
  EscrowExportFlags escrow_flags;
  k_export->add_flag("--generate-recovery-key", escrow_flags.generate_recovery_key,
                     "draw a random recovery key instead of a passphrase and print it once");
  k_export->add_flag("--insecure-test-kdf", escrow_flags.insecure_test_kdf,
                     "tests only: allow --kdf-* below 64 MiB / 3 passes");
  k_export->add_option("--keeper-passphrase-file", keeper_pass_file,
                       "at-rest passphrase (else CUSTOS_KEEPER_PASSPHRASE)");
  k_export->add_option("--ca-file", ca_file);
  add_kdf(k_export);
  k_export->callback([&] {
    run(KeeperEscrowExport(dir, url, pass_file, keeper_pass_file, kdf_m, kdf_t, ca_file, escrow_flags));
  });

  auto* k_recover = keeper_cmd->add_subcommand("recover", "restore a customer keeper from escrow");
  k_recover->add_option("--dir", dir, "new keeper directory")->required();
  k_recover->add_option("--from", url, "provider keeper URL")->required();
  k_recover->add_option("--passphrase-file", pass_file, "recovery passphrase")->required();
  k_recover->add_option("--custody", custody_path)->required();
  k_recover->add_option("--keeper", id, "which keeper's fragment (if several)");
  k_recover->add_option("--keeper-passphrase-file", keeper_pass_file,
                        "new at-rest passphrase (else CUSTOS_KEEPER_PASSPHRASE)");
  k_recover->add_option("--ca-file", ca_file);
  add_kdf(k_recover);
  k_recover->callback([&] {
    run(KeeperRecover(dir, url, pass_file, custody_path, id, keeper_pass_file, kdf_m, kdf_t, ca_file));
  });

  auto* k_policy = keeper_cmd->add_subcommand("policy", "what this keeper approves")->require_subcommand(1);
  auto* k_approve = k_policy->add_subcommand(
      "approve", "sign (and audit) the approval of a new trusted-core measurement; nodes of that build may join "
                 "the cluster once t_p provider AND t_c customer keepers signed the same file");
  std::string approve_measurement, approve_tee, approval_path;
  uint32_t valid_days = 30;
  k_approve->add_option("--dir", dir)->required();
  k_approve->add_option("--measurement", approve_measurement, "hex measurement of the new core build")->required();
  k_approve->add_option("--tee", approve_tee, "evidence type of that build: sim, sgx, tdx, ...")->required();
  k_approve->add_option("--approval", approval_path, "approval file: created by the first keeper, co-signed by the others")
      ->required();
  k_approve->add_option("--valid-days", valid_days, "days the approval stays valid (set by the first keeper; default 30)");
  k_approve->add_option("--passphrase-file", pass_file);
  k_approve->callback([&] {
    run(KeeperPolicyApprove(dir, approve_measurement, approve_tee, approval_path, valid_days, pass_file));
  });

  auto* k_witness = keeper_cmd->add_subcommand("witness", "witness an appliance's KMS audit chain")->require_subcommand(1);
  auto* k_wcheck = k_witness->add_subcommand(
      "check", "read the appliance's signed audit head, check it extends the one this keeper witnessed last "
               "(rollback, fork), record it; prints the outcome as JSON");
  k_wcheck->add_option("--dir", dir)->required();
  k_wcheck->add_option("--server", url, "appliance URL")->required();
  k_wcheck->add_option("--ca-file", ca_file, "CA bundle for https");
  k_wcheck->add_option("--passphrase-file", pass_file);
  k_wcheck->callback([&] { run(KeeperWitnessCheck(dir, url, ca_file, pass_file)); });
  auto* k_wreset = k_witness->add_subcommand(
      "reset", "forget the heads this keeper witnessed (after a deliberate restore of the appliance's database or "
               "its re-initialisation); audited");
  std::string reset_reason;
  k_wreset->add_option("--dir", dir)->required();
  k_wreset->add_option("--reason", reset_reason, "why (recorded in the keeper's audit log)")->required();
  k_wreset->add_option("--passphrase-file", pass_file);
  k_wreset->callback([&] { run(KeeperWitnessReset(dir, reset_reason, pass_file)); });

  auto* k_audit = keeper_cmd->add_subcommand("audit", "audit log")->require_subcommand(1);
  auto* k_verify = k_audit->add_subcommand("verify", "verify the hash chain and signatures");
  k_verify->add_option("--dir", dir)->required();
  k_verify->add_option("--custody", custody_path, "pin the keeper's identity key to custody.json");
  k_verify->callback([&] { run(KeeperAuditVerify(dir, custody_path)); });

  auto* cer = app.add_subcommand("ceremony", "DKG and resharing")->require_subcommand(1);
  std::string provider_urls, customer_urls, keepers, client_key;
  uint32_t pt = 0, ct = 0, threshold = 0;
  auto* dkg = cer->add_subcommand("dkg", "dealerless key generation across both domains");
  dkg->add_option("--provider", provider_urls, "URL[,URL...]")->required();
  dkg->add_option("--provider-threshold", pt)->required();
  dkg->add_option("--customer", customer_urls, "URL[,URL...]")->required();
  dkg->add_option("--customer-threshold", ct)->required();
  dkg->add_option("--out", out)->required();
  dkg->add_option("--client-key", client_key,
                  "admin key file(s) approving the DKG, comma-separated (else CUSTOS_CLIENT_KEY): each keeper "
                  "needs one of its own admins");
  dkg->add_option("--ca-file", ca_file);
  dkg->callback([&] { run(CeremonyDkg(provider_urls, pt, customer_urls, ct, out, client_key, ca_file)); });

  auto* reshare = cer->add_subcommand("reshare", "re-deal one domain to new keepers");
  reshare->add_option("--custody", custody_path)->required();
  reshare->add_option("--domain", domain)->required();
  reshare->add_option("--keepers", keepers, "new keepers: URL[,URL...]")->required();
  reshare->add_option("--threshold", threshold)->required();
  reshare->add_option("--out", out)->required();
  reshare->add_option("--client-key", client_key,
                      "admin key file(s) authorising the reshare, comma-separated (else CUSTOS_CLIENT_KEY)");
  reshare->add_option("--ca-file", ca_file);
  std::vector<std::string> appliances, skip_appliances;
  reshare->add_option("--appliance", appliances,
                      "appliance URL(s) of this custody to keep (besides those the old keepers released to); "
                      "each is checked before any keeper commits and handed the new custody after");
  reshare->add_option("--skip-appliance", skip_appliances,
                      "appliance URL(s) not to check: retired, or listed under another address with --appliance");
  reshare->callback([&] {
    run(CeremonyReshare(custody_path, domain, keepers, threshold, out, client_key, ca_file, appliances,
                        skip_appliances));
  });

  uint32_t chunk_kib = 64;
  auto* enc = app.add_subcommand("encrypt", "encrypt a file to the joint key (no keeper needed)");
  enc->add_option("--custody", custody_path)->required();
  enc->add_option("--in", in)->required();
  enc->add_option("--out", out)->required();
  enc->add_option("--chunk-kib", chunk_kib, "plaintext bytes per chunk, in KiB (4..16384)");
  enc->callback([&] { run(Encrypt(custody_path, in, out, chunk_kib)); });

  std::vector<std::string> overrides;
  auto* dec = app.add_subcommand("decrypt", "decrypt with partials from both domains");
  dec->add_option("--custody", custody_path)->required();
  dec->add_option("--client-key", client_key)->required();
  dec->add_option("--in", in)->required();
  dec->add_option("--out", out)->required();
  dec->add_option("--keepers", keepers, "ask only these keepers: ID[,ID...]");
  dec->add_option("--keeper-url", overrides, "ID=URL: reach a keeper at another address");
  dec->add_option("--ca-file", ca_file);
  dec->callback([&] { run(Decrypt(custody_path, client_key, in, out, keepers, overrides, ca_file)); });

  auto* cus = app.add_subcommand("custody", "custody descriptors")->require_subcommand(1);
  auto* cus_verify = cus->add_subcommand("verify", "check every signature and print the fingerprint");
  cus_verify->add_option("--custody", custody_path)->required();
  cus_verify->callback([&] { run(CustodyShow(custody_path)); });

  std::string evidence, collateral, policy, at;
  auto* attest = app.add_subcommand("attest", "remote attestation evidence")->require_subcommand(1);
  auto* a_verify = attest->add_subcommand("verify", "verify a DCAP quote; prints a JSON verdict");
  a_verify->add_option("--evidence", evidence, "SGX quote v3 or TDX quote v4")->required();
  a_verify->add_option("--collateral", collateral, "collateral JSON (PCS format)");
  a_verify->add_option("--policy", policy, "attestation policy JSON");
  a_verify->add_option("--at", at, "verification time, RFC 3339 UTC (default: now)");
  a_verify->callback([&] { run(AttestVerify(evidence, collateral, policy, at)); });

  AddApplianceCommands(app, keeper_cmd, run);
  AddAuditCommands(app, run);
  AddKmsCommands(app, run);
  AddObjectCommands(app, run);

  // Log format for this process and the ones it starts (common/log.h).
  std::string log_format;
  app.add_option("--log-format", log_format, "json or text (default: text on a terminal, json otherwise)")
      ->check(CLI::IsMember({"json", "text"}))
      ->each([](const std::string& v) { ::setenv("CUSTOS_LOG_FORMAT", v.c_str(), 1); });

  // One CA setting for every client command: --ca-file, else CUSTOS_CA_FILE (the object
  // commands then fall back to AWS_CA_BUNDLE, as AWS tools do). docs/operations.md "TLS".
  std::function<void(CLI::App*)> ca_env = [&](CLI::App* a) {
    for (const char* name : {"--ca-file", "--release-ca-file"})
      if (CLI::Option* o = a->get_option_no_throw(name)) o->envname("CUSTOS_CA_FILE");
    for (CLI::App* sub : a->get_subcommands([](CLI::App*) { return true; })) ca_env(sub);
  };
  ca_env(&app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "custos: " << e.what() << " (see --help)\n";
    return 2;
  }
  if (!result.ok()) {
    std::string msg = result.ToString();
    for (char& ch : msg)
      if (ch == '\n') ch = ' ';
    std::cerr << "custos: error: " << msg << "\n";
    return 1;
  }
  return 0;
}

}  // namespace custos::cli
