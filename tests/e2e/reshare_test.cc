// End-to-end: no lost root key across reshares (issue 11). Real keeper and server processes on
// loopback: an appliance initialised under custody epoch 1 keeps its root key through a reshare
// of the customer domain (the ceremony hands it the new descriptor) and one of the provider
// domain (a keeper hands it over at its release), and decrypts KMS ciphertexts made before;
// a reshare that would strand an appliance is refused before any keeper commits; auto-release
// stops on an integrity failure instead of releasing every interval. Tests run in order and
// share one cluster.
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "protocol/attestation/sim_evidence.h"
#include "crypto/hash.h"
#include "protocol/custody/custody.h"
#include "protocol/envelope/dual_control.h"
#include "gmock/gmock.h"
#include "protocol/sigma/release.h"
#include "protocol/sigma/sigma.h"
#include "tests/e2e/harness.h"

namespace custos {
namespace {

using namespace e2e;
using nlohmann::json;
using ::testing::HasSubstr;

class Reshare : public ::testing::Test {
 protected:
  static Cluster* c;
  static ApplianceNodes* apps;
  static std::string custody, policy, key_id, ciphertext, root_id;
  static std::map<std::string, std::string> creds;

  static void SetUpTestSuite() {
    c = new Cluster();
    StartCoCustody(*c, custody);
    if (::testing::Test::HasFatalFailure()) return;
    // The officer authorises reshares: an admin key on every keeper of both domains (one
    // key for all, which production must not do: docs/operations.md "Keeper directory").
    ASSERT_EQ(c->Run({"client", "init", "--out", c->P("officer.key")}).code, 0);
    for (const char* k : {"P1", "C1", "C2", "C3"})
      ASSERT_EQ(c->Run({"keeper", "allow", "--dir", c->P(k), "--client", c->P("officer.key.pub"), "--role", "admin"}).code, 0);
    apps = new ApplianceNodes(*c, custody);
  }
  static void TearDownTestSuite() {
    delete apps;
    delete c;
  }

  static Node& node() { return apps->nodes["node1"]; }

  // NewKeeper initialises keeper `id` of `domain` (allowing the app and the officer) and starts it.
  static void NewKeeper(const std::string& id, const std::string& domain) {
    c->Init(id, domain);
    ASSERT_EQ(c->Run({"keeper", "allow", "--dir", c->P(id), "--client", c->P("officer.key.pub"), "--role", "admin"}).code, 0);
    c->Start(id);
  }

  static RunResult ReshareRun(const std::string& from, const std::string& domain, const std::vector<std::string>& ids,
                              const std::string& t, const std::string& out, std::vector<std::string> extra = {}) {
    std::string urls;
    for (const std::string& id : ids) urls += (urls.empty() ? "" : ",") + c->keepers[id].url();
    std::vector<std::string> args = {"ceremony", "reshare", "--custody", from, "--domain", domain, "--keepers", urls,
                                     "--threshold", t, "--out", out, "--client-key", c->P("officer.key")};
    args.insert(args.end(), extra.begin(), extra.end());
    return c->Run(args);
  }

  static kms::KmsClient Kms() {
    kms::SigV4Credentials cr{creds["AWS_ACCESS_KEY_ID"], SecretBytes::CopyFrom(std::string_view(creds["AWS_SECRET_ACCESS_KEY"])), "", nullptr};
    auto k = kms::KmsClient::Create(node().url(), std::move(cr), "us-east-1");
    EXPECT_OK(k.status());
    return std::move(k).value();
  }

  // Restarted returns the node after a kill -9 and a start: sealed, on whatever custody it kept.
  static Node& Restarted() {
    ApplianceNodes::Stop(node(), SIGKILL);
    return apps->Start("node1");
  }

  static void ExpectSameRootAndOldCiphertextDecrypts() {
    json s = ApplianceNodes::MustStatus(node());
    EXPECT_FALSE(s.value("sealed", true));
    EXPECT_EQ(s.value("root_key_id", ""), root_id);
    kms::KmsClient k = Kms();
    auto plain = k.CallOrError("Decrypt", {{"CiphertextBlob", ciphertext}, {"KeyId", key_id}});
    ASSERT_OK(plain.status());
    EXPECT_EQ(Base64Decode((*plain)["Plaintext"].get<std::string>()).value(), ToBytes("made under epoch 1"));
  }

  static std::string Fingerprint(const std::string& path) {
    auto d = custody::CustodyDescriptor::Load(path);
    EXPECT_OK(d.status());
    return d.ok() ? d->FingerprintHex() : "";
  }

  static size_t CountLines(const std::string& text, const std::string& needle) {
    size_t n = 0;
    for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
    return n;
  }
};
Cluster* Reshare::c = nullptr;
ApplianceNodes* Reshare::apps = nullptr;
std::string Reshare::custody, Reshare::policy, Reshare::key_id, Reshare::ciphertext, Reshare::root_id;
std::map<std::string, std::string> Reshare::creds;

TEST_F(Reshare, CustomerReshareKeepsTheRootKeyAndOldCiphertexts) {
  Node& n = apps->Start("node1");
  policy = apps->WritePolicy("policy.json");
  ASSERT_EQ(c->Run({"operator", "init", "--server", n.url(), "--token-file", n.dir + "/data/admin.token"}).code, 0);
  json s = ApplianceNodes::MustStatus(n);
  root_id = s["root_key_id"];
  EXPECT_EQ(s["origin_binding"], "joint-key");
  auto r = c->Run({"operator", "access-key", "create", "--name", "app", "--server", n.url(), "--token-file",
                   n.dir + "/data/admin.token"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (size_t p = 0; p < r.out.size();) {
    size_t nl = r.out.find('\n', p), eq = r.out.find('=', p);
    if (eq < nl) creds[r.out.substr(p, eq - p)] = r.out.substr(eq + 1, nl - eq - 1);
    p = nl == std::string::npos ? r.out.size() : nl + 1;
  }
  kms::KmsClient k = Kms();
  auto created = k.CallOrError("CreateKey", json::object());
  ASSERT_OK(created.status());
  key_id = (*created)["KeyMetadata"]["KeyId"];
  auto enc = k.CallOrError("Encrypt", {{"KeyId", key_id}, {"Plaintext", Base64Encode(ToBytes("made under epoch 1"))}});
  ASSERT_OK(enc.status());
  ciphertext = (*enc)["CiphertextBlob"];
  // A sealed restart and a quorum release: the keepers now know this appliance (audit log).
  Restarted();
  for (const char* id : {"P1", "C1", "C2"}) ASSERT_EQ(apps->Release(id, node(), policy).code, 0);

  // Customer domain: C1, C2 stay, C3 leaves, C4 joins. The old keepers report the appliance
  // they released to; the ceremony checks it before anyone commits and hands it the result.
  NewKeeper("C4", "customer");
  r = ReshareRun(custody, "customer", {"C1", "C2", "C4"}, "2", c->P("custody2.json"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("appliance " + node().url() + " keeps its root key"));
  EXPECT_THAT(r.err, HasSubstr("appliance " + node().url() + " now serves custody " + Fingerprint(c->P("custody2.json"))));
  s = ApplianceNodes::MustStatus(node());
  EXPECT_EQ(s["custody"], Fingerprint(c->P("custody2.json")));
  EXPECT_EQ(s["custody_epoch"], 2);
  EXPECT_FALSE(s["sealed"].get<bool>());  // the running core kept its key through the update
  ExpectSameRootAndOldCiphertextDecrypts();

  // After a restart the node serves the adopted descriptor (data_dir/custody.json) and the new
  // quorum unseals it; the retired keeper is refused.
  Restarted();
  EXPECT_EQ(ApplianceNodes::MustStatus(node())["custody"], Fingerprint(c->P("custody2.json")));
  r = apps->Release("C3", node(), policy);
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("no active share"));
  for (const char* id : {"P1", "C2", "C4"}) ASSERT_EQ(apps->Release(id, node(), policy).code, 0) << id;
  ExpectSameRootAndOldCiphertextDecrypts();
}

TEST_F(Reshare, ProviderReshareKeepsTheRootKeyKeeperHandsOverTheCustody) {
  // P1 hands its share to P2 and P3 (2-of-2). The ceremony is told to leave the appliance alone,
  // so it still serves epoch 2; the first new keeper to release hands it epoch 3.
  NewKeeper("P2", "provider");
  NewKeeper("P3", "provider");
  auto r = ReshareRun(c->P("custody2.json"), "provider", {"P2", "P3"}, "2", c->P("custody3.json"),
                      {"--skip-appliance", node().url()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("skipped (--skip-appliance)"));
  Restarted();
  EXPECT_EQ(ApplianceNodes::MustStatus(node())["custody"], Fingerprint(c->P("custody2.json")));
  r = apps->Release("P2", node(), policy);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"custody_updated\":true"));
  EXPECT_EQ(ApplianceNodes::MustStatus(node())["custody"], Fingerprint(c->P("custody3.json")));
  for (const char* id : {"P3", "C1", "C4"}) ASSERT_EQ(apps->Release(id, node(), policy).code, 0) << id;
  ExpectSameRootAndOldCiphertextDecrypts();
  // The envelope's point is still served to enclaves only: no client gets the root key from the
  // new quorum either.
  r = c->Run({"decrypt", "--custody", c->P("custody3.json"), "--client-key", c->P("app.key"), "--in",
              node().dir + "/data/envelope.cdc", "--out", c->P("root.bin"), "--keepers", "P2,P3,C1,C4"});
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("appliance envelope's point"));
  EXPECT_FALSE(fs::exists(c->P("root.bin")));
}

TEST_F(Reshare, AReshareThatWouldStrandAnApplianceIsRefused) {
  std::string current = c->P("custody3.json");
  std::string fp = Fingerprint(current);
  // A node of this custody whose envelope carries legacy origin evidence (bound to the custody
  // fingerprint, as cores before this release made it): the test signs it with the shared sim
  // platform key, as such a core would have.
  Node& legacy = apps->Start("legacy");
  ApplianceNodes::Stop(legacy);
  fs::copy_file(node().dir + "/data/envelope.cdc", legacy.dir + "/data/envelope.cdc", fs::copy_options::overwrite_existing);
  fs::copy_file(current, legacy.dir + "/data/custody.json", fs::copy_options::overwrite_existing);
  // Its database is a copy of this custody's node's too (taken online with the sqlite3 shell, the
  // backup docs/operations.md describes): a node of the same root key with an empty database
  // would be, to the keepers witnessing the audit chain, that database rolled back.
  ASSERT_EQ(std::system(("sqlite3 '" + node().dir + "/data/custos.db' \".backup '" + legacy.dir +
                         "/data/custos.db'\"").c_str()),
            0);
  auto envelope = ReadFileBytes(legacy.dir + "/data/envelope.cdc");
  ASSERT_OK(envelope.status());
  auto platform = attestation::SimPlatform::LoadOrCreate(c->P("sim-platform"));
  ASSERT_OK(platform.status());
  Bytes rd = sigma::ReportDataField(sigma::LegacyEnvelopeOriginReportData(
      sigma::EnvelopeDigest(*envelope), *HexDecode(fp), *HexDecode(root_id)));
  auto exe = ReadFileBytes(EnclaveBin());
  ASSERT_OK(exe.status());
  auto evidence = platform->MakeEvidence(crypto::Sha256Bytes(*exe), {}, rd);
  ASSERT_OK(evidence.status());
  ASSERT_OK(WriteFileAtomic(legacy.dir + "/data/envelope.origin", *evidence, 0600));
  apps->Start("legacy");
  EXPECT_EQ(ApplianceNodes::MustStatus(legacy)["origin_binding"], "custody-fingerprint");

  auto keepercustody = [&](const std::string& id) {
    auto kc = keeper::KeeperClient::Create(c->keepers[id].url(), "");
    return kc.ok() && kc->Info().ok() ? kc->Info()->value("custody_fingerprint", std::string()) : std::string();
  };
  NewKeeper("C5", "customer");
  RunResult r = ReshareRun(current, "customer", {"C1", "C4", "C5"}, "2", c->P("stranding.json"), {"--appliance", legacy.url()});
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("reshare refused: appliance " + legacy.url() + " would be stranded"));
  EXPECT_THAT(r.err, HasSubstr("bound to the custody fingerprint"));
  EXPECT_FALSE(fs::exists(c->P("stranding.json")));
  // Nothing was committed: every keeper still serves the current custody.
  for (const char* id : {"C1", "C2", "C4", "P2"}) EXPECT_EQ(keepercustody(id), fp) << id;

  // An appliance that cannot be reached is refused too, with the way out.
  std::string gone = "http://127.0.0.1:" + std::to_string(FreePort());
  r = ReshareRun(current, "customer", {"C1", "C4", "C5"}, "2", c->P("stranding.json"), {"--appliance", gone});
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("cannot check that appliance " + gone + " keeps its root key"));
  EXPECT_THAT(r.err, HasSubstr("--skip-appliance " + gone));

  // Unsealed once by this release, the legacy node's core re-binds its evidence to the joint
  // key; the same reshare then goes through and both nodes keep the root key.
  for (const char* id : {"P2", "P3", "C1", "C4"}) ASSERT_EQ(apps->Release(id, legacy, policy).code, 0) << id;
  json s = ApplianceNodes::MustStatus(legacy);
  EXPECT_EQ(s["origin_binding"], "joint-key");
  EXPECT_EQ(s["root_key_id"], root_id);
  EXPECT_EQ(ReadAll(legacy.dir + "/data/envelope.origin").substr(0, 4), "CORG");
  r = ReshareRun(current, "customer", {"C1", "C4", "C5"}, "2", c->P("custody4.json"), {"--appliance", legacy.url()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ApplianceNodes::MustStatus(legacy)["custody"], Fingerprint(c->P("custody4.json")));
  // C5 never released to an appliance, yet it knows the envelope's point from the old keepers'
  // signed lists, and refuses it to clients from its first day.
  auto header = files::DualControlHeader::Decode(*envelope);
  ASSERT_OK(header.status());
  EXPECT_THAT(ReadAll(c->P("C5") + "/appliance_points"), HasSubstr(HexEncode(header->r.Encode())));
  EXPECT_THAT(ReadAll(c->P("C5") + "/audit.log"), ::testing::Not(HasSubstr("enclave.release")));
  EXPECT_EQ(ApplianceNodes::MustStatus(node())["custody"], Fingerprint(c->P("custody4.json")));
  ApplianceNodes::Stop(legacy);
}

// A substituted envelope: every quorum's partials verify, yet the core refuses the key. The
// auto-releasing keepers stop after the first failure (one release each, at most) instead of
// appending an audit entry every interval, and resume when the core restarts.
TEST_F(Reshare, AutoReleaseStopsOnAnIntegrityFailure) {
  std::string current = c->P("custody4.json");
  Node& n = node();
  ApplianceNodes::Stop(n);
  std::string env = n.dir + "/data/envelope.cdc";
  fs::copy_file(env, env + ".genuine", fs::copy_options::overwrite_existing);
  ASSERT_OK(WriteFileAtomic(c->P("host-root.bin"), crypto::RandomBytes(32)));
  auto r = c->Run({"encrypt", "--custody", current, "--in", c->P("host-root.bin"), "--out", env, "--chunk-kib", "4"});
  ASSERT_EQ(r.code, 0) << r.err;
  apps->Start("node1");
  std::vector<std::string> releasing = {"P2", "P3", "C1", "C4"};
  std::map<std::string, size_t> entries_before;
  for (const std::string& id : releasing) {
    c->Kill(id, SIGTERM);
    entries_before[id] = CountLines(ReadAll(c->P(id) + "/audit.log"), "\"event\":\"enclave.");
    c->Start(id, "", "", {"--auto-release", n.url(), "--release-policy", policy, "--release-interval-ms", "100"});
  }
  EXPECT_TRUE(WaitFor([&] { return ApplianceNodes::MustStatus(n).contains("unseal_error"); }));
  std::this_thread::sleep_for(std::chrono::seconds(3));  // 30 intervals
  for (const std::string& id : releasing) {
    size_t added = CountLines(ReadAll(c->P(id) + "/audit.log"), "\"event\":\"enclave.") - entries_before[id];
    EXPECT_LE(added, 2u) << id << " kept releasing";
    std::string log = ReadAll(c->keepers[id].log);
    EXPECT_EQ(CountLines(log, "release stopped: integrity failure"), 1u) << log;
  }
  EXPECT_THAT(ReadAll(c->keepers["P2"].log), HasSubstr("not made by an enclave for this root key"));
  EXPECT_TRUE(ApplianceNodes::MustStatus(n)["sealed"].get<bool>());
  // The genuine envelope back and a restart (a new core): the keepers release again by themselves.
  ApplianceNodes::Stop(n);
  fs::rename(env + ".genuine", env);
  apps->Start("node1");
  EXPECT_TRUE(WaitFor([&] { return !ApplianceNodes::MustStatus(n).value("sealed", true); }))
      << ReadAll(c->keepers["P2"].log);
  EXPECT_THAT(ReadAll(c->keepers["P2"].log), HasSubstr("releasing again"));
  ExpectSameRootAndOldCiphertextDecrypts();
}

// Every line the server, its core and the keepers logged is one JSON object with a UTC time.
TEST_F(Reshare, EveryLogLineHasATimestamp) {
  std::vector<std::string> logs = {node().log, c->keepers["P2"].log, c->keepers["C1"].log};
  size_t lines = 0;
  for (const std::string& path : logs) {
    std::istringstream text(ReadAll(path));
    for (std::string line; std::getline(text, line);) {
      json j = json::parse(line, nullptr, false);
      ASSERT_TRUE(j.is_object()) << path << ": " << line;
      EXPECT_TRUE(std::regex_match(j.value("time", ""), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
          << path << ": " << line;
      ++lines;
    }
  }
  EXPECT_GT(lines, 10u);
}

// One address cannot flood the core with SIGMA handshakes (each costs evidence and a pending
// session slot): past 20 in 10 s it is told to retry later. (Last in the suite: the node's
// limiter then refuses this address for the rest of the window.)
TEST_F(Reshare, HandshakeFloodFromOneAddressIsRefused) {
  auto client = net::HttpClient::Create(node().url());
  ASSERT_OK(client.status());
  crypto::SigningKey stranger = crypto::SigningKey::Generate();
  auto d = custody::CustodyDescriptor::Load(c->P("custody4.json"));
  ASSERT_OK(d.status());
  int accepted = 0, refused = 0;
  std::string reason;
  for (int i = 0; i < 65; ++i) {
    sigma::SigmaInitiator s(stranger, {"X9", d->Fingerprint(), [](ByteSpan, ByteSpan) { return Status::Ok(); }});
    auto r = net::DecodeJsonResponse(
        client->Post("/v1/sys/sigma/respond", json{{"message1", Base64Encode(*s.Start())}}.dump(),
                     {{"content-type", "application/json"}}),
        "node");
    if (r.ok()) ++accepted;
    else { ++refused; reason = r.status().message(); }
  }
  EXPECT_LE(accepted, 20);
  EXPECT_GE(refused, 45);
  EXPECT_THAT(reason, HasSubstr("too many SIGMA handshakes from this address"));
  EXPECT_FALSE(ApplianceNodes::MustStatus(node()).value("sealed", true));  // and the node kept serving
}

}  // namespace
}  // namespace custos
