// End-to-end tests of the attested appliance (issue 3) with real processes on loopback: four
// keepers (1 provider, 2-of-3 customers) after a real DKG, `custos server` nodes (host +
// custos-enclave), `custos operator init`, `custos keeper release` and `keeper serve
// --auto-release`, cluster join, and the refusals. Tests run in order and share one cluster.
#include <sched.h>

#include <fstream>
#include <regex>
#include <thread>

#include "protocol/attestation/sim_evidence.h"
#include "client/kms/client.h"
#include "crypto/hash.h"
#include "protocol/audit/witness.h"
#include "protocol/envelope/dual_control.h"
#include "protocol/threshold/shamir.h"
#include "keeper/daemon/keeper_store.h"
#include "net/http_client.h"
#include "protocol/sigma/release.h"
#include "protocol/sigma/sigma.h"
#include "gmock/gmock.h"
#include "tests/e2e/harness.h"

namespace custos {
namespace {

using namespace e2e;
using nlohmann::json;
using ::testing::HasSubstr;

class Appliance : public ::testing::Test {
 protected:
  static Cluster* c;
  static std::string custody, policy;
  static ApplianceNodes* apps;

  static void SetUpTestSuite() {
    c = new Cluster();
    StartCoCustody(*c, custody);
    apps = new ApplianceNodes(*c, custody);
    if (HasFatalFailure()) return;
  }
  static void TearDownTestSuite() {
    delete apps;
    apps = nullptr;
    delete c;
  }

  static Node& StartNode(const std::string& name, const std::string& extra_server = "",
                         const std::string& extra_tee = "") {
    return apps->Start(name, extra_server, extra_tee);
  }
  static void StopNode(Node& n, int sig = SIGTERM) { ApplianceNodes::Stop(n, sig); }
  static StatusOr<json> Status(const Node& n) { return ApplianceNodes::Status(n); }
  static json MustStatus(const Node& n) { return ApplianceNodes::MustStatus(n); }
  static std::string WritePolicy(const std::string& file, const json& overrides = json::object()) {
    return apps->WritePolicy(file, overrides);
  }
  static RunResult Release(const std::string& keeper, const Node& n, const std::string& policy_path = "",
                           std::map<std::string, std::string> env = {}) {
    return apps->Release(keeper, n, policy_path.empty() ? policy : policy_path, std::move(env));
  }
};
Cluster* Appliance::c = nullptr;
std::string Appliance::custody, Appliance::policy;
ApplianceNodes* Appliance::apps = nullptr;

TEST_F(Appliance, InitRestartSealedThenQuorumUnseals) {
  Node& n = StartNode("node1");
  json s = MustStatus(n);
  EXPECT_TRUE(s["sealed"].get<bool>());
  EXPECT_FALSE(s["initialized"].get<bool>());
  EXPECT_EQ(s["lockdown"]["seccomp"], true);
  EXPECT_EQ(s["lockdown"]["dumps_disabled"], true);
  // The sim measurement is the SHA-256 of the trusted-core executable (docs/threat-model.md).
  auto exe = ReadFileBytes(EnclaveBin());
  ASSERT_OK(exe.status());
  EXPECT_EQ(s["measurement"], HexEncode(crypto::Sha256Bytes(*exe)));
  // The core runs under a seccomp filter, seen from outside its process.
  std::string proc_status = ReadAll("/proc/" + std::to_string(s["host"]["enclave_pid"].get<int>()) + "/status");
  EXPECT_THAT(proc_status, HasSubstr("Seccomp:\t2"));
  // [server] cpu_scheduling defaults to batch: the core inherited SCHED_BATCH from the host.
  EXPECT_EQ(sched_getscheduler(s["host"]["enclave_pid"].get<int>()), SCHED_BATCH);
  policy = WritePolicy("policy.json");

  // A stranger cannot initialise the node, nor read its status or metrics; the public routes
  // tell only what keepers need before they check the core themselves.
  auto r = c->Run({"operator", "init", "--server", n.url()}, {{"CUSTOS_ADMIN_TOKEN_FILE", ""}});
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("needs the appliance's admin token"));
  ASSERT_OK(WriteFileAtomic(c->P("stranger.token"), std::string_view("0123456789abcdef0123456789abcdef\n")));
  r = c->Run({"operator", "init", "--server", n.url(), "--token-file", c->P("stranger.token")});
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("this route needs the admin token"));
  EXPECT_EQ(r.err.find(n.dir), std::string::npos) << "the refusal names a server path: " << r.err;
  EXPECT_FALSE(MustStatus(n)["initialized"].get<bool>());
  auto anon = net::HttpClient::Create(n.url());
  ASSERT_OK(anon.status());
  for (const char* route : {"/v1/sys/status", "/metrics"}) {
    auto denied = anon->Get(route);
    ASSERT_OK(denied.status());
    EXPECT_EQ(denied->status, 403) << route;
  }
  auto seal = net::DecodeJsonResponse(anon->Get("/v1/sys/seal-status"), "node");
  ASSERT_OK(seal.status());
  EXPECT_TRUE(seal->contains("custody"));
  for (const char* hidden : {"root_key_id", "contributors", "host", "evidence", "audit_public_key", "lockdown"})
    EXPECT_FALSE(seal->contains(hidden)) << hidden;
  r = c->Run({"operator", "init", "--server", n.url(), "--token-file", n.dir + "/data/admin.token"});
  ASSERT_EQ(r.code, 0) << r.err;
  s = MustStatus(n);
  EXPECT_FALSE(s["sealed"].get<bool>());
  std::string root_id = s["root_key_id"];
  EXPECT_NE(c->Run({"operator", "init", "--server", n.url(), "--token-file", n.dir + "/data/admin.token"}).code,
            0);  // only once

  StopNode(n, SIGKILL);  // host killed: its core exits with it
  StartNode("node1");
  s = MustStatus(n);
  EXPECT_TRUE(s["sealed"].get<bool>());
  EXPECT_TRUE(s["initialized"].get<bool>());
  for (const char* k : {"P1", "C1"}) {
    r = Release(k, n);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(MustStatus(n)["sealed"].get<bool>()) << "sealed after " << k;
  }
  r = Release("C3", n);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"unsealed\":true"));
  s = MustStatus(n);
  EXPECT_FALSE(s["sealed"].get<bool>());
  EXPECT_EQ(s["root_key_id"], root_id);
  EXPECT_EQ(s["contributors"].size(), 3u);
  // Each release is in the keeper's own verified audit log.
  auto audit = c->Run({"keeper", "audit", "verify", "--dir", c->P("C3"), "--custody", custody});
  EXPECT_EQ(audit.code, 0) << audit.err;
  EXPECT_THAT(ReadAll(c->P("C3") + "/audit.log"), HasSubstr("enclave.release"));
}

TEST_F(Appliance, OneSideAloneNeverUnseals) {
  Node& n = apps->nodes["node1"];
  StopNode(n);
  StartNode("node1");
  for (const char* k : {"C1", "C2", "C3"}) ASSERT_EQ(Release(k, n).code, 0);
  json s = MustStatus(n);
  EXPECT_TRUE(s["sealed"].get<bool>());
  EXPECT_EQ(s["contributors"].size(), 3u);
  StopNode(n);
  StartNode("node1");
  ASSERT_EQ(Release("P1", n).code, 0);
  EXPECT_TRUE(MustStatus(n)["sealed"].get<bool>());
}

TEST_F(Appliance, KeepersRefuseWrongMeasurementSimForbiddenAndDebugEnclave) {
  Node& n = apps->nodes["node1"];
  StopNode(n);
  StartNode("node1");  // a fresh sealed life: no keeper counted yet
  std::string wrong = WritePolicy("wrong-measurement.json", {{"measurements", {HexEncode(crypto::RandomBytes(32))}}});
  auto r = Release("P1", n, wrong);
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("measurement not allowed"));
  std::string no_sim = WritePolicy("no-sim.json", {{"allow_sim", false}});
  r = Release("C1", n, no_sim);
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("sim evidence not allowed"));
  EXPECT_THAT(ReadAll(c->P("C1") + "/audit.log"), HasSubstr("enclave.refused"));

  Node& dbg = StartNode("debug-node", "", "sim_debug = true\n");
  r = Release("P1", dbg);
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("debug enclave not allowed"));
  EXPECT_TRUE(MustStatus(dbg)["sealed"].get<bool>());
  StopNode(dbg);
}

TEST_F(Appliance, EnclaveRefusesBadProofUnknownKeeperAndReplayedSigma) {
  Node& n = apps->nodes["node1"];
  StopNode(n);
  StartNode("node1");
  auto r = Release("P1", n, "", {{"CUSTOS_FAULT_INJECTION", "bad-partial"}});
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("partial from keeper P1 refused"));

  // Raw SIGMA from this test process: a keeper id custody.json does not list.
  auto client = net::HttpClient::Create(n.url());
  ASSERT_OK(client.status());
  auto post = [&](const char* path, const json& body) {
    return net::DecodeJsonResponse(client->Post(path, body.dump(), {{"content-type", "application/json"}}), "node");
  };
  auto d = custody::CustodyDescriptor::Load(custody);
  ASSERT_OK(d.status());
  auto accept_any = [](ByteSpan, ByteSpan) { return Status::Ok(); };
  crypto::SigningKey stranger_key = crypto::SigningKey::Generate();
  sigma::SigmaInitiator stranger(stranger_key, {"X9", d->Fingerprint(), accept_any});
  auto m2 = post("/v1/sys/sigma/respond", {{"message1", Base64Encode(*stranger.Start())}});
  ASSERT_OK(m2.status());
  auto fin = stranger.Finish(*Base64Decode((*m2)["message2"].get<std::string>()));
  ASSERT_OK(fin.status());
  auto refused = post("/v1/sys/sigma/finish", {{"session", (*m2)["session"]}, {"message3", Base64Encode(fin->message3)}});
  EXPECT_THAT(refused.status().message(), HasSubstr("keeper X9 is not in custody.json"));

  // As the real keeper C2 (its identity key from its store): replays and reordering refused.
  auto pass = SecretBytes::CopyFrom(std::string_view("e2e at-rest passphrase"));
  auto store = keeper::KeeperStore::Open(c->P("C2"), pass);
  ASSERT_OK(store.status());
  sigma::SigmaInitiator a(store.value()->secrets().identity, {"C2", d->Fingerprint(), accept_any});
  sigma::SigmaInitiator b(store.value()->secrets().identity, {"C2", d->Fingerprint(), accept_any});
  auto ra = post("/v1/sys/sigma/respond", {{"message1", Base64Encode(*a.Start())}});
  auto rb = post("/v1/sys/sigma/respond", {{"message1", Base64Encode(*b.Start())}});
  ASSERT_OK(ra.status());
  ASSERT_OK(rb.status());
  auto fa = a.Finish(*Base64Decode((*ra)["message2"].get<std::string>()));
  ASSERT_OK(fa.status());
  // Session a's message 3 into session b: refused.
  EXPECT_FALSE(post("/v1/sys/sigma/finish", {{"session", (*rb)["session"]}, {"message3", Base64Encode(fa->message3)}}).ok());
  ASSERT_OK(post("/v1/sys/sigma/finish", {{"session", (*ra)["session"]}, {"message3", Base64Encode(fa->message3)}}).status());
  EXPECT_THAT(post("/v1/sys/sigma/finish", {{"session", (*ra)["session"]}, {"message3", Base64Encode(fa->message3)}})
                  .status().message(), HasSubstr("already finished"));
  ASSERT_OK(fa->channel.Seal(Bytes{2}).status());  // skip sequence number 0
  auto late = fa->channel.Seal(Bytes{2});
  EXPECT_THAT(post("/v1/sys/sigma/record", {{"session", (*ra)["session"]}, {"record", Base64Encode(*late)}})
                  .status().message(), HasSubstr("out of sequence"));
  EXPECT_TRUE(MustStatus(n)["sealed"].get<bool>());
  // The server is still serving and a proper release still counts.
  EXPECT_EQ(Release("C2", n).code, 0);
}

// Scans the readable memory of `pid` for `needle`. Returns -1 if the memory cannot be read.
int CountInMemory(pid_t pid, ByteSpan needle) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  int fd = ::open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY);
  if (fd < 0 || !maps) return -1;
  int found = 0;
  std::string line;
  Bytes buf;
  while (std::getline(maps, line)) {
    unsigned long lo = 0, hi = 0;
    char perms[5] = {};
    if (sscanf(line.c_str(), "%lx-%lx %4s", &lo, &hi, perms) != 3 || perms[0] != 'r') continue;
    if (line.find("[vvar]") != std::string::npos || hi - lo > (1ul << 32)) continue;
    buf.resize(hi - lo);
    ssize_t n = pread(fd, buf.data(), buf.size(), static_cast<off_t>(lo));
    if (n <= 0) continue;
    auto end = buf.begin() + n;
    for (auto it = buf.begin(); (it = std::search(it, end, needle.begin(), needle.end())) != end; ++it) ++found;
  }
  ::close(fd);
  return found;
}

TEST_F(Appliance, HostMemoryHoldsNoRootKeyAfterUnseal) {
  Node& n = apps->nodes["node1"];
  StopNode(n);
  StartNode("node1");
  for (const char* k : {"P1", "C1", "C2"}) ASSERT_EQ(Release(k, n).code, 0);
  json s = MustStatus(n);
  ASSERT_FALSE(s["sealed"].get<bool>());
  // The keepers refuse a client partials for the envelope's point: the root key goes only to
  // attested enclaves, so `custos decrypt` of the envelope fails even for an allowlisted client.
  std::string envelope = n.dir + "/data/envelope.cdc";
  auto r = c->Run({"decrypt", "--custody", custody, "--client-key", c->P("app.key"), "--in", envelope,
                   "--out", c->P("root.bin")});
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("appliance envelope's point"));
  EXPECT_FALSE(fs::exists(c->P("root.bin")));
  // The test holds every keeper's secrets, so it opens the envelope itself to know the key to
  // look for: S = sum of both domains' Lagrange-combined x_i * R.
  auto env_bytes = ReadFileBytes(envelope);
  ASSERT_OK(env_bytes.status());
  auto header = files::DualControlHeader::Decode(*env_bytes);
  ASSERT_OK(header.status());
  auto pass = SecretBytes::CopyFrom(std::string_view("e2e at-rest passphrase"));
  crypto::Point sum;
  for (auto [ids, n_ids] : {std::pair{std::vector<std::string>{"P1"}, 1}, {std::vector<std::string>{"C1", "C2"}, 2}}) {
    std::vector<uint32_t> idx;
    std::vector<crypto::Point> pts;
    for (const std::string& id : ids) {
      auto store = keeper::KeeperStore::Open(c->P(id), pass);
      ASSERT_OK(store.status());
      const auto& slot = *store.value()->secrets().active;
      idx.push_back(slot.index);
      pts.push_back(header->r * slot.share);
    }
    auto part = threshold::InterpolatePointsAtZero(idx, pts);
    ASSERT_OK(part.status());
    sum += *part;
    (void)n_ids;
  }
  auto opened = files::OpenDualControlSecret(*env_bytes, sum);
  ASSERT_OK(opened.status());
  Bytes root_bytes(opened->Expose().begin(), opened->Expose().end());
  auto root = StatusOr<Bytes>(root_bytes);
  ASSERT_EQ(root->size(), 32u);
  EXPECT_EQ(HexEncode(sigma::RootKeyId(*opened)), s["root_key_id"].get<std::string>());
  int in_host = CountInMemory(n.pid, *root);
  if (in_host < 0) GTEST_SKIP() << "cannot read /proc/" << n.pid << "/mem here (needs CAP_SYS_PTRACE)";
  EXPECT_EQ(in_host, 0) << "the host process holds a copy of the root key";
  // Control: the same scan finds the key in the trusted core's memory, so the scan works.
  int in_core = CountInMemory(s["host"]["enclave_pid"].get<int>(), *root);
  EXPECT_GT(in_core, 0);
}

// The host swaps in an envelope of its own making (anyone can encrypt to Y): even a full quorum
// does not get the enclave to adopt that root key.
TEST_F(Appliance, SubstitutedEnvelopeNeverUnseals) {
  Node& n = apps->nodes["node1"];
  StopNode(n);
  std::string env = n.dir + "/data/envelope.cdc";
  fs::copy_file(env, env + ".genuine", fs::copy_options::overwrite_existing);
  ASSERT_OK(WriteFileAtomic(c->P("host-root.bin"), crypto::RandomBytes(32)));
  auto r = c->Run({"encrypt", "--custody", custody, "--in", c->P("host-root.bin"), "--out", env, "--chunk-kib", "4"});
  ASSERT_EQ(r.code, 0) << r.err;
  StartNode("node1");
  for (const char* k : {"P1", "C1"}) ASSERT_EQ(Release(k, n).code, 0);
  r = Release("C2", n);
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("envelope was not made by an enclave for this root key"));
  EXPECT_TRUE(MustStatus(n)["sealed"].get<bool>());
  StopNode(n);
  fs::rename(env + ".genuine", env);
  StartNode("node1");
  for (const char* k : {"P1", "C1", "C2"}) ASSERT_EQ(Release(k, n).code, 0);
  EXPECT_FALSE(MustStatus(n)["sealed"].get<bool>());
}

TEST_F(Appliance, AutoReleaseUnsealsARestartedAppliance) {
  Node& n = apps->nodes["node1"];
  for (const char* k : {"P1", "C1", "C3"}) {
    c->Kill(k, SIGTERM);
    c->Start(k, "", "", {"--auto-release", n.url(), "--release-policy", policy, "--release-interval-ms", "200"});
  }
  StopNode(n, SIGKILL);
  StartNode("node1");
  EXPECT_TRUE(WaitFor([&] {
    auto s = Status(n);
    return s.ok() && !(*s)["sealed"].get<bool>();
  })) << ReadAll(c->keepers["P1"].log);
  EXPECT_THAT(ReadAll(c->keepers["C1"].log), HasSubstr("partial released"));
}

// A trusted core that dies (here kill -9) is reaped, logged and restarted sealed by its host;
// the auto-releasing keepers of the previous test unseal the new one.
TEST_F(Appliance, DeadCoreIsRestartedAndUnsealedAgain) {
  Node& n = apps->nodes["node1"];
  ASSERT_TRUE(WaitFor([&] { return !MustStatus(n)["sealed"].get<bool>(); }));
  json before = MustStatus(n);
  int old_pid = before["host"]["enclave_pid"].get<int>();
  ASSERT_EQ(::kill(old_pid, SIGKILL), 0);
  EXPECT_TRUE(WaitFor([&] {
    auto s = Status(n);
    return s.ok() && !(*s)["sealed"].get<bool>() && (*s)["host"]["enclave_pid"].get<int>() != old_pid;
  })) << ReadAll(n.log);
  json after = MustStatus(n);
  EXPECT_EQ(after["root_key_id"], before["root_key_id"]);
  EXPECT_EQ(after["host"]["core_restarts"], 1);
  EXPECT_NE(after["enclave_key"], before["enclave_key"]);
  EXPECT_FALSE(fs::exists("/proc/" + std::to_string(old_pid))) << "the dead core was not reaped";
  std::string log = ReadAll(n.log);
  EXPECT_THAT(log, HasSubstr("trusted core died; restarting it"));
  EXPECT_THAT(log, HasSubstr("killed by signal 9"));
  EXPECT_THAT(log, HasSubstr("trusted core restarted"));
  // The core inherits no descriptor but its sockets and stdio (dev mode once leaked keepers'
  // listening sockets into it): stdio, one socket per worker (one per CPU by default) and one
  // pipelined socket per fiber-running I/O thread (2 per CPU), nothing else.
  const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int core_fds = 0;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(after["host"]["enclave_pid"].get<int>()) + "/fd")) {
    (void)e;
    ++core_fds;
  }
  EXPECT_LE(core_fds, 3 + cpus + 2 * cpus);
}

TEST_F(Appliance, SecondNodeJoinsDifferentMeasurementIsRefused) {
  Node& n1 = apps->nodes["node1"];
  ASSERT_TRUE(WaitFor([&] { return !MustStatus(n1)["sealed"].get<bool>(); }));
  std::string root_id = MustStatus(n1)["root_key_id"];
  Node& n2 = StartNode("node2", "join = \"" + n1.url() + "\"\n");
  EXPECT_TRUE(WaitFor([&] { return !MustStatus(n2)["sealed"].get<bool>(); })) << ReadAll(n2.log);
  EXPECT_EQ(MustStatus(n2)["root_key_id"], root_id);
  // The core is unsealed when kJoinComplete returns; the host writes the envelope right after
  // (a crash in between costs only a second join), so status can say unsealed a moment before
  // the file exists.
  EXPECT_TRUE(WaitFor([&] { return fs::exists(n2.dir + "/data/envelope.cdc"); }));

  // Same code plus one byte: another measurement. The cluster policy refuses it.
  std::string other = c->P("custos-enclave-other");
  fs::copy_file(EnclaveBin(), other, fs::copy_options::overwrite_existing);
  std::ofstream(other, std::ios::app) << '\n';
  fs::permissions(other, fs::perms::owner_all);
  Node& n3 = StartNode("node3", "join = \"" + n1.url() + "\"\n", "enclave_binary = \"" + other + "\"\n");
  EXPECT_TRUE(WaitFor([&] { return MustStatus(n3)["host"].contains("last_join_error"); }));
  json s3 = MustStatus(n3);
  EXPECT_TRUE(s3["sealed"].get<bool>());
  EXPECT_THAT(s3["host"]["last_join_error"].get<std::string>(), HasSubstr("measurement not allowed"));
  EXPECT_NE(s3["measurement"], MustStatus(n1)["measurement"]);
  StopNode(n3);
  StopNode(n2);
}

// Customer-witnessed audit (issue 16): the keepers witness node 1's audit chain. A database
// restored from an older copy is refused at the next unseal, naming the rollback (and `audit
// verify --witness` says so); once the operator confirms the restore (`keeper witness reset`),
// the others unseal it, and a keeper that did not reset sees the new history at the seq it
// witnessed: a fork, refused. Normal restarts keep unsealing throughout.
TEST_F(Appliance, KeepersRefuseARolledBackOrForkedAuditChain) {
  Node& n = apps->nodes["node1"];
  // Releases by hand from here: the keepers serve without auto-release.
  for (const char* k : {"P1", "C1", "C3"}) {
    c->Kill(k, SIGTERM);
    c->Start(k);
  }
  ASSERT_TRUE(WaitFor([&] { return !MustStatus(n)["sealed"].get<bool>(); }));
  auto r = c->Run({"operator", "access-key", "create", "--name", "witness", "--server", n.url(), "--token-file",
                   n.dir + "/data/admin.token"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::map<std::string, std::string> creds;
  for (size_t p = 0; p < r.out.size();) {
    size_t nl = r.out.find('\n', p), eq = r.out.find('=', p);
    if (eq < nl) creds[r.out.substr(p, eq - p)] = r.out.substr(eq + 1, nl - eq - 1);
    p = nl == std::string::npos ? r.out.size() : nl + 1;
  }
  auto create_keys = [&](int count) {
    kms::SigV4Credentials cr{creds["AWS_ACCESS_KEY_ID"],
                             SecretBytes::CopyFrom(std::string_view(creds["AWS_SECRET_ACCESS_KEY"])), "", nullptr};
    auto k = kms::KmsClient::Create(n.url(), std::move(cr), "us-east-1");
    ASSERT_OK(k.status());
    for (int i = 0; i < count; ++i) ASSERT_OK(k->CallOrError("CreateKey", json::object()).status());
  };
  auto witness = [&](const std::string& keeper) {
    return c->Run({"keeper", "witness", "check", "--dir", c->P(keeper), "--server", n.url()});
  };
  auto witnessed_seq = [&](const RunResult& w) {
    json j = json::parse(w.out, nullptr, false);
    return j.is_object() ? j.value("seq", uint64_t{0}) : uint64_t{0};
  };
  auto restart_and_unseal = [&](const std::vector<std::string>& keepers) {
    StopNode(n);
    StartNode("node1");
    for (const std::string& k : keepers) {
      RunResult rel = Release(k, n);
      ASSERT_EQ(rel.code, 0) << k << ": " << rel.err;
    }
    ASSERT_FALSE(MustStatus(n)["sealed"].get<bool>());
  };
  const std::vector<std::string> quorum = {"P1", "C1", "C3"};
  const std::string db = n.dir + "/data/custos.db";

  // The log is read by the custody's keepers (a signed read) or with the admin token; anyone
  // else is refused, naming what failed.
  auto http = net::HttpClient::Create(n.url());
  ASSERT_OK(http.status());
  auto refused = [&](const net::HttpHeaders& h) {
    auto resp = http->Get("/v1/sys/audit/head", h);
    EXPECT_OK(resp.status());
    EXPECT_EQ(resp.ok() ? resp->status : 0, 403);
    return resp.ok() ? resp->body : "";
  };
  EXPECT_THAT(refused({}), HasSubstr("read by the custody's keepers"));
  crypto::SigningKey stranger = crypto::SigningKey::Generate();
  const std::string now = std::to_string(std::time(nullptr));
  auto signed_by = [&](const std::string& id, const std::string& when) {
    return net::HttpHeaders{
        {"x-custos-keeper", id},
        {"x-custos-time", when},
        {"x-custos-signature",
         HexEncode(stranger.Sign(audit::ReadRequestMessage(id, "/v1/sys/audit/head", std::stoll(when))))}};
  };
  EXPECT_THAT(refused(signed_by("X9", now)), HasSubstr("keeper X9 is not in this custody"));
  EXPECT_THAT(refused(signed_by("P1", now)), HasSubstr("the signature of keeper P1 does not verify"));
  EXPECT_THAT(refused(signed_by("P1", std::to_string(std::time(nullptr) - 3600))), HasSubstr("from the appliance's clock"));
  auto admin = net::DecodeJsonResponse(
      http->Get("/v1/sys/audit/head", {{"authorization", "Bearer " + ReadAll(n.dir + "/data/admin.token").substr(0, 64)}}),
      "node");
  ASSERT_OK(admin.status());
  EXPECT_TRUE(admin->contains("seq"));

  create_keys(3);
  for (const char* k : {"P1", "C1", "C2", "C3"}) ASSERT_EQ(witness(k).code, 0) << k;
  // While the same core runs, a witness takes the new head on the core's line statement: no
  // record between is read (the two heads' records are spot-checked). After the restart below
  // (another core run) the records are read again.
  // (The head shown is the newest one whose signature is fsynced, so right after the key
  // creations it can still be one the core signed before an earlier test restarted it, which
  // comes without a line: wait for a witness that records a line's run first.)
  ASSERT_TRUE(WaitFor([&] {
    json j = json::parse(witness("P1").out, nullptr, false);
    return j.is_object() && !j.value("run", "").empty();
  }));
  create_keys(2);
  RunResult lined = witness("P1");
  ASSERT_EQ(lined.code, 0) << lined.err;
  json lined_json = json::parse(lined.out, nullptr, false);
  ASSERT_TRUE(lined_json.is_object()) << lined.out;
  EXPECT_TRUE(lined_json.value("by_line", false)) << lined.out;
  EXPECT_EQ(lined_json.value("records_checked", uint64_t{99}), 0u) << lined.out;
  const std::string first_run = lined_json.value("run", "");
  EXPECT_EQ(first_run.size(), 2 * audit::kRunIdSize) << lined.out;
  // A copy of the database as it is now, taken with the node stopped (an old backup, or what a
  // host kept to roll back to); then a normal restart and more keys, witnessed by everyone.
  StopNode(n);
  fs::create_directories(c->P("old-db"));
  for (const char* suffix : {"", "-wal", "-shm"})
    if (fs::exists(db + suffix))
      fs::copy_file(db + suffix, c->P("old-db/custos.db") + suffix, fs::copy_options::overwrite_existing);
  StartNode("node1");
  for (const std::string& k : quorum) ASSERT_EQ(Release(k, n).code, 0) << k;
  create_keys(3);
  uint64_t newest = 0;
  for (const char* k : {"P1", "C1", "C2", "C3"}) {
    RunResult w = witness(k);
    ASSERT_EQ(w.code, 0) << k << ": " << w.err;
    newest = witnessed_seq(w);
    json j = json::parse(w.out, nullptr, false);
    EXPECT_FALSE(j.value("by_line", true)) << k << ": " << w.out;  // another run: read
    EXPECT_NE(j.value("run", ""), first_run) << k << ": " << w.out;
  }
  ASSERT_GT(newest, 3u);

  // The old copy put back: the node restarts sealed and every keeper refuses it, naming the
  // rollback; nothing is released.
  StopNode(n);
  for (const char* suffix : {"", "-wal", "-shm"}) {
    fs::remove(db + suffix);
    if (fs::exists(c->P("old-db/custos.db") + suffix))
      fs::copy_file(c->P("old-db/custos.db") + suffix, db + suffix);
  }
  StartNode("node1");
  for (const std::string& k : quorum) {
    RunResult rel = Release(k, n);
    EXPECT_NE(rel.code, 0) << k;
    EXPECT_THAT(rel.err, HasSubstr("audit rollback: log '' ends at signed head seq"));
    EXPECT_THAT(rel.err, HasSubstr("before seq " + std::to_string(newest) + " this keeper witnessed"));
  }
  EXPECT_TRUE(MustStatus(n)["sealed"].get<bool>());
  EXPECT_THAT(ReadAll(c->P("P1") + "/audit.log"), HasSubstr("audit.witness.refused"));
  r = c->Run({"audit", "verify", "--data-dir", n.dir + "/data", "--witness", c->P("P1") + "/witness.json"});
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("before the expected head seq " + std::to_string(newest) + " (truncated or rolled back)"));
  EXPECT_THAT(r.out, HasSubstr("\"public_key_from\": \"--witness\""));

  // The operator confirms the restore was deliberate: P1, C1, C3 forget what they witnessed
  // (audited) and unseal it. The restored history then grows past the seq C2 witnessed.
  for (const std::string& k : quorum) {
    RunResult reset = c->Run({"keeper", "witness", "reset", "--dir", c->P(k), "--reason", "restored backup"});
    ASSERT_EQ(reset.code, 0) << reset.err;
    EXPECT_THAT(ReadAll(c->P(k) + "/audit.log"), HasSubstr("audit.witness.reset"));
  }
  for (const std::string& k : quorum) ASSERT_EQ(Release(k, n).code, 0) << k;
  EXPECT_FALSE(MustStatus(n)["sealed"].get<bool>());
  create_keys(static_cast<int>(newest) + 2);
  ASSERT_EQ(witness("P1").code, 0);
  RunResult forked = witness("C2");
  EXPECT_NE(forked.code, 0);
  EXPECT_THAT(forked.err, HasSubstr("audit fork: log '' has hash"));
  EXPECT_THAT(forked.err, HasSubstr("at seq " + std::to_string(newest) + ", this keeper witnessed"));
  EXPECT_THAT(forked.err, HasSubstr("two different heads at one sequence number"));

  // Normal restarts keep unsealing; C2 keeps refusing this history.
  StopNode(n);
  StartNode("node1");
  RunResult c2 = Release("C2", n);
  EXPECT_NE(c2.code, 0);
  EXPECT_THAT(c2.err, HasSubstr("audit fork"));
  for (const std::string& k : quorum) ASSERT_EQ(Release(k, n).code, 0) << k;
  EXPECT_FALSE(MustStatus(n)["sealed"].get<bool>());
  restart_and_unseal(quorum);
  EXPECT_EQ(c->Run({"keeper", "audit", "verify", "--dir", c->P("C2"), "--custody", custody}).code, 0);
}

}  // namespace
}  // namespace custos
