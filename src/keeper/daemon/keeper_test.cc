// Tests of the keeper module: the sealed keeper directory, the MAC'd allowlist, the signed
// hash-chained audit log, escrow blobs, the wire formats, and the request handlers through
// KeeperService::Handle. Argon2id runs with deliberately weak parameters to keep them fast.
#include <chrono>
#include <filesystem>
#include <future>
#include <mutex>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/file.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "keeper/daemon/audit_log.h"
#include "keeper/daemon/escrow.h"
#include "keeper/daemon/keeper_service.h"
#include "keeper/daemon/keeper_store.h"
#include "keeper/api/protocol.h"
#include "tests/testing/testing.h"
#include "protocol/threshold/dkg.h"

namespace custos::keeper {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

constexpr crypto::Argon2Params kWeak{.t_cost = 1, .m_cost_kib = 64, .parallelism = 1};

SecretBytes Pass(std::string_view p) { return SecretBytes::CopyFrom(p); }

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

std::string JoinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

std::unique_ptr<KeeperStore> MustInit(const std::string& dir, const std::string& id,
                                      custody::Domain domain = custody::Domain::kProvider) {
  auto s = KeeperStore::Init(dir, id, domain, Pass("correct horse"), kWeak);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

// ---- KeeperStore ----

TEST(KeeperStoreTest, InitThenOpenRestoresIdentityAndKeys) {
  std::string dir = testing::TempDir() + "/k";
  auto store = MustInit(dir, "c1", custody::Domain::kCustomer);
  ASSERT_NE(store, nullptr);
  Bytes identity = store->secrets().identity.verifying_key().Encode();
  Bytes hpke = store->secrets().hpke.public_key().Encode();
  EXPECT_EQ(store->audit().size(), 1u);  // keeper.init
  store.reset();

  auto opened = KeeperStore::Open(dir, Pass("correct horse"));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ((*opened)->id(), "c1");
  EXPECT_EQ((*opened)->domain(), custody::Domain::kCustomer);
  EXPECT_EQ((*opened)->secrets().identity.verifying_key().Encode(), identity);
  EXPECT_EQ((*opened)->secrets().hpke.public_key().Encode(), hpke);
  EXPECT_FALSE((*opened)->secrets().active.has_value());
  EXPECT_EQ((*opened)->audit().size(), 1u);
  // The metadata is public; the private keys are not in it.
  json meta = json::parse(ReadText(dir + "/keeper.json"));
  EXPECT_EQ(meta["id"], "c1");
  EXPECT_EQ(meta["identity_key"], HexEncode(identity));
  EXPECT_EQ(meta["kdf"]["m_cost_kib"], 64);
}

TEST(KeeperStoreTest, SavedSecretsSurviveReopen) {
  std::string dir = testing::TempDir() + "/k";
  auto store = MustInit(dir, "p1");
  ASSERT_NE(store, nullptr);
  crypto::Scalar share = crypto::Scalar::Random();
  store->secrets().active = ShareSlot{"{\"custody\":1}", 2, share};
  ASSERT_OK(store->SaveSecrets());
  store.reset();
  auto opened = KeeperStore::Open(dir, Pass("correct horse"));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  ASSERT_TRUE((*opened)->secrets().active.has_value());
  EXPECT_EQ((*opened)->secrets().active->index, 2u);
  EXPECT_EQ((*opened)->secrets().active->custody_json, "{\"custody\":1}");
  EXPECT_TRUE((*opened)->secrets().active->share == share);
}

TEST(KeeperStoreTest, WrongPassphraseIsPermissionDenied) {
  std::string dir = testing::TempDir() + "/k";
  ASSERT_NE(MustInit(dir, "p1"), nullptr);
  auto opened = KeeperStore::Open(dir, Pass("correct horsf"));
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), ErrorCode::kPermissionDenied);
}

TEST(KeeperStoreTest, TamperedStateIsRefused) {
  std::string dir = testing::TempDir() + "/k";
  ASSERT_NE(MustInit(dir, "p1"), nullptr);
  std::string sealed = ReadText(dir + "/state.sealed");
  ASSERT_GT(sealed.size(), 40u);
  for (size_t pos : {size_t{0}, size_t{20}, sealed.size() - 1}) {
    std::string bad = sealed;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x01);
    WriteText(dir + "/state.sealed", bad);
    auto opened = KeeperStore::Open(dir, Pass("correct horse"));
    ASSERT_FALSE(opened.ok()) << "flipped byte " << pos;
    EXPECT_EQ(opened.status().code(), ErrorCode::kPermissionDenied) << pos;
  }
  WriteText(dir + "/state.sealed", sealed.substr(0, 10));
  EXPECT_FALSE(KeeperStore::Open(dir, Pass("correct horse")).ok());
  WriteText(dir + "/state.sealed", sealed);
  EXPECT_TRUE(KeeperStore::Open(dir, Pass("correct horse")).ok());
}

TEST(KeeperStoreTest, StateIsBoundToKeeperIdentity) {
  // Renaming the keeper in keeper.json changes the state's associated data.
  std::string dir = testing::TempDir() + "/k";
  ASSERT_NE(MustInit(dir, "p1"), nullptr);
  std::string meta = ReadText(dir + "/keeper.json");
  json j = json::parse(meta);
  j["id"] = "p2";
  WriteText(dir + "/keeper.json", j.dump(2));
  auto opened = KeeperStore::Open(dir, Pass("correct horse"));
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), ErrorCode::kPermissionDenied);
}

TEST(KeeperStoreTest, InitRefusesExistingKeeper) {
  std::string dir = testing::TempDir() + "/k";
  ASSERT_NE(MustInit(dir, "p1"), nullptr);
  std::string before = ReadText(dir + "/state.sealed");
  auto again = KeeperStore::Init(dir, "p9", custody::Domain::kProvider, Pass("other"), kWeak);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(ReadText(dir + "/state.sealed"), before);
  EXPECT_TRUE(KeeperStore::Open(dir, Pass("correct horse")).ok());
}

TEST(KeeperStoreTest, InitRefusesBadIds) {
  std::string root = testing::TempDir();
  for (const char* id : {"", "a/b", "../x", "with space"}) {
    auto s = KeeperStore::Init(root + "/x", id, custody::Domain::kProvider, Pass("p"), kWeak);
    ASSERT_FALSE(s.ok()) << id;
    EXPECT_EQ(s.status().code(), ErrorCode::kInvalidArgument) << id;
  }
  EXPECT_FALSE(std::filesystem::exists(root + "/x/keeper.json"));
}

TEST(KeeperStoreTest, OpenWithoutKeeperIsNotFound) {
  auto s = KeeperStore::Open(testing::TempDir(), Pass("p"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kNotFound);
}

// ---- allowlist ----

TEST(AllowlistTest, AddClientThenLoad) {
  std::string dir = testing::TempDir() + "/k";
  auto store = MustInit(dir, "p1");
  ASSERT_NE(store, nullptr);
  auto empty = store->LoadAllowlist();
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE(empty->empty());

  crypto::Point alice = crypto::SigningKey::Generate().verifying_key().point();
  crypto::Point bob = crypto::SigningKey::Generate().verifying_key().point();
  ASSERT_OK(store->AddClient("alice", alice));
  ASSERT_OK(store->AddClient("bob", bob));
  auto again = store->AddClient("alice2", alice);
  EXPECT_EQ(again.code(), ErrorCode::kAlreadyExists);

  store.reset();
  auto opened = KeeperStore::Open(dir, Pass("correct horse"));
  ASSERT_TRUE(opened.ok());
  auto list = (*opened)->LoadAllowlist();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "alice");
  EXPECT_TRUE((*list)[0].key == alice);
  EXPECT_EQ((*list)[1].name, "bob");
  EXPECT_TRUE((*list)[1].key == bob);
  // Each addition is in the audit log: init + 2 clients.
  EXPECT_EQ((*opened)->audit().size(), 3u);
}

TEST(AllowlistTest, HandEditedAllowlistIsIntegrityError) {
  std::string dir = testing::TempDir() + "/k";
  auto store = MustInit(dir, "p1");
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->AddClient("alice", crypto::SigningKey::Generate().verifying_key().point()));
  std::string original = ReadText(dir + "/allowlist.json");

  // An administrator slips in one more client with a text editor.
  std::string mallory = HexEncode(crypto::SigningKey::Generate().verifying_key().Encode());
  std::string edited = original;
  size_t at = edited.find("\"clients\": [");
  ASSERT_NE(at, std::string::npos) << original;
  edited.insert(at + std::string("\"clients\": [").size(),
                "\n    {\"key\": \"" + mallory + "\", \"name\": \"mallory\"},");
  ASSERT_FALSE(json::parse(edited, nullptr, false).is_discarded()) << edited;
  WriteText(dir + "/allowlist.json", edited);
  auto list = store->LoadAllowlist();
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.status().code(), ErrorCode::kIntegrity);
  // Adding through the API does not launder the edit either.
  EXPECT_EQ(store->AddClient("eve", crypto::SigningKey::Generate().verifying_key().point()).code(),
            ErrorCode::kIntegrity);

  // Renaming a client is an edit too.
  std::string renamed = original;
  size_t name = renamed.find("\"alice\"");
  ASSERT_NE(name, std::string::npos);
  renamed.replace(name, 7, "\"alicf\"");
  WriteText(dir + "/allowlist.json", renamed);
  EXPECT_EQ(store->LoadAllowlist().status().code(), ErrorCode::kIntegrity);

  WriteText(dir + "/allowlist.json", "not json");
  EXPECT_EQ(store->LoadAllowlist().status().code(), ErrorCode::kIntegrity);

  WriteText(dir + "/allowlist.json", original);
  EXPECT_TRUE(store->LoadAllowlist().ok());
}

TEST(AllowlistTest, MacDependsOnPassphraseDerivedKey) {
  // The allowlist of one keeper cannot be copied into another keeper's directory.
  std::string a = testing::TempDir() + "/a", b = testing::TempDir() + "/b";
  auto sa = MustInit(a, "p1");
  auto sb = MustInit(b, "p2");
  ASSERT_NE(sa, nullptr);
  ASSERT_NE(sb, nullptr);
  ASSERT_OK(sa->AddClient("alice", crypto::SigningKey::Generate().verifying_key().point()));
  WriteText(b + "/allowlist.json", ReadText(a + "/allowlist.json"));
  EXPECT_EQ(sb->LoadAllowlist().status().code(), ErrorCode::kIntegrity);
}

// ---- audit log ----

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir();
    path_ = dir_ + "/audit.log";
    auto log = AuditLog::Open(path_, &key_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    for (int k = 1; k <= 5; ++k)
      ASSERT_OK((*log)->Append("release", {{"request", k}, {"client", "client-" + std::to_string(k)}}));
    EXPECT_EQ((*log)->size(), 5u);
    lines_ = Lines(ReadText(path_));
    ASSERT_EQ(lines_.size(), 5u);
  }

  // Copy writes `text` to a fresh file beside the log and returns its path.
  std::string Copy(const std::string& text) {
    std::string p = dir_ + "/copy" + std::to_string(copies_++) + ".log";
    WriteText(p, text);
    return p;
  }

  void ExpectFailsAtLine(const std::string& path, int line) {
    auto r = AuditLog::Verify(path, key_.verifying_key());
    ASSERT_FALSE(r.ok()) << "tampered log verified";
    EXPECT_EQ(r.status().code(), ErrorCode::kIntegrity);
    EXPECT_THAT(r.status().message(), HasSubstr("line " + std::to_string(line)))
        << r.status().ToString();
  }

  crypto::SigningKey key_ = crypto::SigningKey::Generate();
  std::string dir_, path_;
  std::vector<std::string> lines_;
  int copies_ = 0;
};

TEST_F(AuditLogTest, IntactLogVerifies) {
  auto r = AuditLog::Verify(path_, key_.verifying_key());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->entries, 5u);
  json last = json::parse(lines_[4]);
  EXPECT_EQ(r->head, last["hash"]);
  EXPECT_EQ(last["seq"], 4);
  EXPECT_EQ(last["details"]["request"], 5);
  EXPECT_EQ(json::parse(lines_[1])["prev"], json::parse(lines_[0])["hash"]);
  auto entries = AuditLog::ReadEntries(path_);
  ASSERT_TRUE(entries.ok());
  EXPECT_EQ(entries->size(), 5u);
}

TEST_F(AuditLogTest, ReopenedLogChainsOn) {
  auto log = AuditLog::Open(path_, &key_);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_EQ((*log)->size(), 5u);
  ASSERT_OK((*log)->Append("client.allow", {{"name", "x"}}));
  auto r = AuditLog::Verify(path_, key_.verifying_key());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->entries, 6u);
}

TEST_F(AuditLogTest, EditedDetailFailsAtThatLine) {
  std::vector<std::string> l = lines_;
  size_t at = l[2].find("client-3");
  ASSERT_NE(at, std::string::npos);
  l[2].replace(at, 8, "client-X");
  ExpectFailsAtLine(Copy(JoinLines(l)), 3);
}

TEST_F(AuditLogTest, EditedEventFails) {
  // Re-serializing the entry with another event name breaks the hash on the same line.
  std::vector<std::string> l = lines_;
  json e = json::parse(l[2]);
  e["event"] = "noop";
  l[2] = e.dump();
  ExpectFailsAtLine(Copy(JoinLines(l)), 3);
}

TEST_F(AuditLogTest, DeletedEntryFailsAtThatLine) {
  std::vector<std::string> l = lines_;
  l.erase(l.begin() + 1);
  ExpectFailsAtLine(Copy(JoinLines(l)), 2);
}

TEST_F(AuditLogTest, DuplicatedLineFails) {
  std::vector<std::string> l = lines_;
  l.insert(l.begin() + 2, l[1]);  // line 2 repeated as line 3
  ExpectFailsAtLine(Copy(JoinLines(l)), 3);
}

TEST_F(AuditLogTest, SwappedEntriesFail) {
  std::vector<std::string> l = lines_;
  std::swap(l[1], l[2]);
  ExpectFailsAtLine(Copy(JoinLines(l)), 2);
}

TEST_F(AuditLogTest, TruncatedPartialLastLineFails) {
  std::string text = ReadText(path_);
  std::string torn = text.substr(0, text.size() - lines_[4].size() / 2);
  ExpectFailsAtLine(Copy(torn), 5);
  // Cutting only the final newline leaves a line that may be incomplete as well.
  ExpectFailsAtLine(Copy(text.substr(0, text.size() - 1)), 5);
}

TEST_F(AuditLogTest, DroppedTailIsNotDetectableButHeadChanges) {
  // Removing whole trailing entries leaves a valid shorter chain; callers compare the head.
  std::vector<std::string> l = lines_;
  l.pop_back();
  auto r = AuditLog::Verify(Copy(JoinLines(l)), key_.verifying_key());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->entries, 4u);
  EXPECT_NE(r->head, json::parse(lines_[4])["hash"].get<std::string>());
}

TEST_F(AuditLogTest, LogOfAnotherKeyFails) {
  crypto::SigningKey other = crypto::SigningKey::Generate();
  auto r = AuditLog::Verify(path_, other.verifying_key());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kIntegrity);
  EXPECT_THAT(r.status().message(), HasSubstr("line 1"));
  EXPECT_THAT(r.status().message(), HasSubstr("signature"));
  // Opening it to append under the other key is refused too.
  EXPECT_FALSE(AuditLog::Open(path_, &other).ok());
}

TEST_F(AuditLogTest, OpenRefusesTamperedLog) {
  std::vector<std::string> l = lines_;
  std::swap(l[3], l[4]);
  WriteText(path_, JoinLines(l));
  auto log = AuditLog::Open(path_, &key_);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), ErrorCode::kIntegrity);
  EXPECT_THAT(log.status().message(), HasSubstr("line 4"));
}

TEST_F(AuditLogTest, KeeperStoreOpenRefusesTamperedLog) {
  std::string dir = testing::TempDir() + "/k";
  auto store = MustInit(dir, "p1");
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->AddClient("alice", crypto::SigningKey::Generate().verifying_key().point()));
  store.reset();
  std::vector<std::string> l = Lines(ReadText(dir + "/audit.log"));
  ASSERT_EQ(l.size(), 2u);
  l.erase(l.begin());
  WriteText(dir + "/audit.log", JoinLines(l));
  auto opened = KeeperStore::Open(dir, Pass("correct horse"));
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), ErrorCode::kIntegrity);
}

// ---- escrow ----

KeeperSecrets SecretsWithShare() {
  KeeperSecrets s{crypto::SigningKey::Generate(), crypto::hpke::PrivateKey::Generate(),
                  ShareSlot{"{\"custody\":\"x\"}", 3, crypto::Scalar::Random()}, std::nullopt};
  return s;
}

TEST(EscrowTest, SealOpenRoundTrip) {
  KeeperSecrets secrets = SecretsWithShare();
  secrets.pending = ShareSlot{"{}", 4, crypto::Scalar::Random()};
  Bytes fp(32, 0xab);
  auto blob = SealEscrow(secrets, "c1", custody::Domain::kCustomer, fp, Pass("recovery"), kWeak);
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  Bytes wire = blob->Encode();
  auto decoded = EscrowBlob::Decode(wire);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->custody_fp, fp);
  EXPECT_EQ(decoded->keeper_id, "c1");
  EXPECT_EQ(decoded->domain, custody::Domain::kCustomer);
  EXPECT_EQ(decoded->params.m_cost_kib, 64u);
  EXPECT_EQ(decoded->Encode(), wire);

  auto opened = OpenEscrow(*decoded, Pass("recovery"));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(opened->identity.verifying_key().Encode(), secrets.identity.verifying_key().Encode());
  EXPECT_TRUE(opened->hpke.public_key() == secrets.hpke.public_key());
  ASSERT_TRUE(opened->active.has_value());
  EXPECT_EQ(opened->active->index, 3u);
  EXPECT_EQ(opened->active->custody_json, secrets.active->custody_json);
  EXPECT_TRUE(opened->active->share == secrets.active->share);
  EXPECT_FALSE(opened->pending.has_value());  // only the active slot travels
}

TEST(EscrowTest, NoActiveShareIsRefused) {
  KeeperSecrets s{crypto::SigningKey::Generate(), crypto::hpke::PrivateKey::Generate(),
                  std::nullopt, std::nullopt};
  auto blob = SealEscrow(s, "c1", custody::Domain::kCustomer, Bytes(32, 1), Pass("p"), kWeak);
  ASSERT_FALSE(blob.ok());
  EXPECT_EQ(blob.status().code(), ErrorCode::kFailedPrecondition);
}

TEST(EscrowTest, WrongPassphraseIsRefused) {
  auto blob = SealEscrow(SecretsWithShare(), "c1", custody::Domain::kCustomer, Bytes(32, 1),
                         Pass("recovery"), kWeak);
  ASSERT_TRUE(blob.ok());
  auto opened = OpenEscrow(*blob, Pass("recoverY"));
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), ErrorCode::kPermissionDenied);
}

TEST(EscrowTest, FlippedByteIsRefused) {
  auto blob = SealEscrow(SecretsWithShare(), "c1", custody::Domain::kCustomer, Bytes(32, 1),
                         Pass("recovery"), kWeak);
  ASSERT_TRUE(blob.ok());
  Bytes wire = blob->Encode();
  // Offsets: magic 0..7, version 8, fp len 9..12, fp 13..44, id len 45..48, id 49..50, domain 51,
  // params 52..63, salt 64..79, nonce 80..91, auth key 92..124, ct len 125..128, ct 129...
  ASSERT_EQ(blob->Header().size(), 125u);
  struct Case {
    size_t offset;
    const char* what;
  };
  for (Case c : {Case{20, "custody fingerprint"}, Case{50, "keeper id"}, Case{51, "domain"},
                 Case{70, "salt"}, Case{85, "nonce"}, Case{100, "auth key"}, Case{133, "ciphertext"},
                 Case{wire.size() - 1, "tag"}}) {
    Bytes bad = wire;
    bad[c.offset] ^= 0x02;
    auto decoded = EscrowBlob::Decode(bad);
    if (!decoded.ok()) continue;  // refused already by the parser
    auto opened = OpenEscrow(*decoded, Pass("recovery"));
    ASSERT_FALSE(opened.ok()) << c.what;
    EXPECT_EQ(opened.status().code(), ErrorCode::kPermissionDenied) << c.what;
  }
  Bytes bad_magic = wire;
  bad_magic[0] = 'X';
  EXPECT_FALSE(EscrowBlob::Decode(bad_magic).ok());
  Bytes trailing = wire;
  trailing.push_back(0);
  EXPECT_FALSE(EscrowBlob::Decode(trailing).ok());
  EXPECT_FALSE(EscrowBlob::Decode(ByteSpan(wire).subspan(0, wire.size() - 1)).ok());
}

TEST(EscrowTest, RecoverySecretFloorAndRecoveryKeys) {
  for (const char* weak : {"a", "correct horse", "aaaaaaaaaaaaaaaaaaaaaaaa", "abababababababababababab"})
    EXPECT_THAT(CheckRecoverySecret(Pass(weak)).message(), ::testing::HasSubstr("too weak")) << weak;
  EXPECT_OK(CheckRecoverySecret(Pass("correct horse battery staple")));
  SecretBytes k1 = NewRecoveryKey(), k2 = NewRecoveryKey();
  EXPECT_EQ(k1.size(), std::string_view("custos-rk1-").size() + 8 * 9 - 1);
  EXPECT_TRUE(k1.ExposeAsString().starts_with("custos-rk1-"));
  EXPECT_NE(k1.ExposeAsString(), k2.ExposeAsString());
  EXPECT_OK(CheckRecoverySecret(k1));
}

// ---- wire formats ----

PartialRequest SampleRequest(const crypto::SigningKey& client) {
  PartialRequest r;
  r.custody_fp = Bytes(32, 0x5a);
  r.keeper_id = "p1";
  r.r = crypto::Point::BaseMul(crypto::Scalar::Random());
  r.context = ToBytes("file header hash");
  r.requester_key = crypto::hpke::PrivateKey::Generate().public_key();
  r.timestamp = UnixNow();
  r.nonce = crypto::RandomBytes(16);
  r.client_key = client.verifying_key().point();
  return r;
}

TEST(PartialRequestTest, EncodeDecodeRoundTrip) {
  crypto::SigningKey client = crypto::SigningKey::Generate();
  PartialRequest r = SampleRequest(client);
  Bytes wire = r.Encode();
  auto d = PartialRequest::Decode(wire);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->custody_fp, r.custody_fp);
  EXPECT_EQ(d->keeper_id, "p1");
  EXPECT_TRUE(d->r == r.r);
  EXPECT_EQ(d->context, r.context);
  EXPECT_TRUE(d->requester_key == r.requester_key);
  EXPECT_EQ(d->timestamp, r.timestamp);
  EXPECT_EQ(d->nonce, r.nonce);
  EXPECT_TRUE(d->client_key == r.client_key);
  EXPECT_EQ(d->Encode(), wire);
}

TEST(PartialRequestTest, HostileEncodingsAreRefused) {
  crypto::SigningKey client = crypto::SigningKey::Generate();
  PartialRequest r = SampleRequest(client);
  Bytes wire = r.Encode();
  Bytes trailing = wire;
  trailing.push_back(0);
  EXPECT_FALSE(PartialRequest::Decode(trailing).ok());
  for (size_t n = 0; n < wire.size(); n += 7)
    EXPECT_FALSE(PartialRequest::Decode(ByteSpan(wire).subspan(0, n)).ok()) << n;
  Bytes suite = wire;
  suite[0] = 2;
  EXPECT_FALSE(PartialRequest::Decode(suite).ok());
  PartialRequest big = r;
  big.context = Bytes(1025, 'c');
  EXPECT_FALSE(PartialRequest::Decode(big.Encode()).ok());
  big.context = Bytes(1024, 'c');
  EXPECT_TRUE(PartialRequest::Decode(big.Encode()).ok());
}

TEST(PartialRequestTest, SignatureCoversEveryByte) {
  crypto::SigningKey client = crypto::SigningKey::Generate();
  PartialRequest r = SampleRequest(client);
  Bytes wire = r.Encode();
  Bytes sig = client.Sign(PartialRequest::SignedBytes(wire));
  auto vk = crypto::VerifyingKey::FromPoint(r.client_key);
  EXPECT_OK(vk.Verify(PartialRequest::SignedBytes(wire), sig));
  // Wrong key.
  EXPECT_FALSE(crypto::SigningKey::Generate().verifying_key().Verify(
      PartialRequest::SignedBytes(wire), sig).ok());
  // Another keeper id or another R.
  PartialRequest other = r;
  other.keeper_id = "p2";
  EXPECT_FALSE(vk.Verify(PartialRequest::SignedBytes(other.Encode()), sig).ok());
  other = r;
  other.r = crypto::Point::BaseMul(crypto::Scalar::Random());
  EXPECT_FALSE(vk.Verify(PartialRequest::SignedBytes(other.Encode()), sig).ok());
  // The signature is domain-separated: a signature over the bare encoding does not count.
  EXPECT_FALSE(vk.Verify(PartialRequest::SignedBytes(wire), client.Sign(wire)).ok());
}

TEST(SignedMessageTest, SignVerifyAndRefusals) {
  crypto::SigningKey key = crypto::SigningKey::Generate();
  Bytes session(16, 0x01);
  SignedMessage m = SignedMessage::Sign(key, session, "dkg/1", "p1", ToBytes("payload"));
  EXPECT_OK(m.Verify(key.verifying_key(), session));

  auto wrong_key = m.Verify(crypto::SigningKey::Generate().verifying_key(), session);
  EXPECT_EQ(wrong_key.code(), ErrorCode::kIntegrity);
  EXPECT_THAT(wrong_key.message(), HasSubstr("p1"));

  Bytes other_session(16, 0x02);
  EXPECT_EQ(m.Verify(key.verifying_key(), other_session).code(), ErrorCode::kIntegrity);

  SignedMessage kind = m;
  kind.kind = "dkg/2";
  EXPECT_EQ(kind.Verify(key.verifying_key(), session).code(), ErrorCode::kIntegrity);

  SignedMessage keeper = m;
  keeper.keeper = "p2";
  EXPECT_FALSE(keeper.Verify(key.verifying_key(), session).ok());

  SignedMessage payload = m;
  payload.payload.push_back('!');
  EXPECT_FALSE(payload.Verify(key.verifying_key(), session).ok());

  // Length prefixes keep field boundaries: moving a byte from kind into keeper is not equal.
  SignedMessage shifted = SignedMessage::Sign(key, session, "dkg/", "1p1", ToBytes("payload"));
  shifted.kind = "dkg/1";
  shifted.keeper = "p1";
  EXPECT_FALSE(shifted.Verify(key.verifying_key(), session).ok());
}

TEST(SignedMessageTest, JsonRoundTrip) {
  crypto::SigningKey key = crypto::SigningKey::Generate();
  Bytes session(16, 0x07);
  SignedMessage m = SignedMessage::Sign(key, session, "reshare/deal", "c2", Bytes{0, 1, 2, 255});
  auto back = SignedMessage::FromJson(json::parse(m.ToJson().dump()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->keeper, "c2");
  EXPECT_EQ(back->kind, "reshare/deal");
  EXPECT_EQ(back->payload, (Bytes{0, 1, 2, 255}));
  EXPECT_OK(back->Verify(key.verifying_key(), session));

  json missing = m.ToJson();
  missing.erase("sig");
  EXPECT_EQ(SignedMessage::FromJson(missing).status().code(), ErrorCode::kInvalidArgument);
  json bad = m.ToJson();
  bad["payload"] = "***";
  EXPECT_EQ(SignedMessage::FromJson(bad).status().code(), ErrorCode::kInvalidArgument);
  bad = m.ToJson();
  bad["kind"] = 5;
  EXPECT_EQ(SignedMessage::FromJson(bad).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(SignedMessage::FromJson(json::array()).ok());
}

TEST(ClientAuthorizationTest, JsonRoundTripAndSignature) {
  crypto::SigningKey client = crypto::SigningKey::Generate();
  ClientAuthorization a = ClientAuthorization::Create(client, "reshare", Bytes(32, 9));
  auto back = ClientAuthorization::FromJson(json::parse(a.ToJson().dump()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->Message(), a.Message());
  EXPECT_OK(crypto::VerifyingKey::FromPoint(back->client_key).Verify(back->Message(), back->sig));
  back->action = "activate";
  EXPECT_FALSE(
      crypto::VerifyingKey::FromPoint(back->client_key).Verify(back->Message(), back->sig).ok());
  json neg = a.ToJson();
  neg["timestamp"] = -1;
  EXPECT_FALSE(ClientAuthorization::FromJson(neg).ok());
}

// ---- KeeperService through Handle ----

class KeeperServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/keeper";
    store_ = MustInit(dir_, "p1");
    ASSERT_NE(store_, nullptr);
    service_ = std::make_unique<KeeperService>(*store_);
    ASSERT_OK(store_->AddClient("operator", admin_.verifying_key().point(), ClientRole::kAdmin));
  }

  // Authorize adds the keeper operator's approval of a round-1 request's params and session.
  json Authorize(json req, const crypto::SigningKey* key = nullptr) {
    Bytes session = HexDecode(req["session"].get<std::string>()).value();
    req["authorization"] = json::array({ClientAuthorization::Create(
                                            key ? *key : admin_, "dkg",
                                            crypto::Sha256Bytes(Concat({session, AsBytes(req["params"].dump())})))
                                            .ToJson()});
    return req;
  }

  net::HttpResponse Call(const std::string& method, const std::string& target,
                         const std::string& body) {
    net::HttpRequest req;
    req.method = method;
    req.target = target;
    req.headers["content-type"] = "application/json";
    req.body = body;
    req.remote = "127.0.0.1:4000";
    return service_->Handle(req);
  }

  // ErrorOf checks that `r` is a JSON error with `status` and returns its message.
  static std::string ErrorOf(const net::HttpResponse& r, int status) {
    EXPECT_EQ(r.status, status) << r.body;
    json j = json::parse(r.body, nullptr, false);
    EXPECT_TRUE(j.is_object()) << r.body;
    if (!j.is_object() || !j.contains("error") || !j.contains("message")) {
      ADD_FAILURE() << "not a JSON error: " << r.body;
      return "";
    }
    return j["message"].get<std::string>();
  }

  json Participant(const std::string& id, uint32_t index, const crypto::Point& identity,
                   const crypto::Point& hpke) {
    return {{"id", id},
            {"index", index},
            {"url", "http://127.0.0.1:1"},
            {"identity_key", HexEncode(identity.Encode())},
            {"hpke_key", HexEncode(hpke.Encode())}};
  }

  json Me(uint32_t index) {
    return Participant("p1", index, store_->secrets().identity.verifying_key().point(),
                       store_->secrets().hpke.public_key());
  }

  json Stranger(const std::string& id, uint32_t index) {
    return Participant(id, index, crypto::SigningKey::Generate().verifying_key().point(),
                       crypto::hpke::PrivateKey::Generate().public_key());
  }

  json Round1(const json& participants, uint64_t threshold) {
    return {{"session", HexEncode(Bytes(16, 0x33))},
            {"round", 1},
            {"params",
             {{"domain", "provider"}, {"threshold", threshold}, {"participants", participants}}}};
  }

  std::string dir_;
  std::unique_ptr<KeeperStore> store_;
  std::unique_ptr<KeeperService> service_;
  crypto::SigningKey admin_ = crypto::SigningKey::Generate();
};

// The provider hands a blob only to whoever proves the recovery secret; guesses lock the blob
// after kMaxEscrowFailures, each refusal audited, and version-1 blobs are no longer served.
TEST_F(KeeperServiceTest, EscrowBlobGoesOnlyToTheRecoverySecretAndGuessingLocksIt) {
  Bytes fp(32, 0xab);
  auto blob = SealEscrow(SecretsWithShare(), "c1", custody::Domain::kCustomer, fp,
                         Pass("the real recovery secret"), kWeak);
  ASSERT_OK(blob.status());
  std::string path = store_->EscrowPath(HexEncode(fp), "c1");
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  ASSERT_OK(WriteFileAtomic(path, blob->Encode(), 0600));
  json where = {{"custody_fp", HexEncode(fp)}, {"keeper_id", "c1"}};
  // Without a proof: refused (and counted).
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/escrow/get", where.dump()), 403), ::testing::HasSubstr("needs a proof"));
  // The public parameters: salt and cost, never the auth key or the ciphertext.
  auto pr = Call("POST", "/v1/escrow/params", where.dump());
  ASSERT_EQ(pr.status, 200) << pr.body;
  json params = json::parse(pr.body);
  EXPECT_FALSE(params.contains("blob"));
  EXPECT_EQ(params["salt"], HexEncode(blob->salt));
  EXPECT_EQ(pr.body.find(HexEncode(blob->auth_key->Encode())), std::string::npos);
  auto fetch = [&](KeeperService& svc, const std::string& secret, uint64_t ts, const Bytes& nonce) {
    auto auth = EscrowAuthKey(Pass(secret), blob->salt, kWeak);
    EXPECT_OK(auth.status());
    json req = where;
    req["timestamp"] = ts;
    req["nonce"] = HexEncode(nonce);
    req["sig"] = HexEncode(auth->Sign(EscrowFetchMessage(fp, "c1", "p1", ts, nonce)));
    net::HttpRequest r;
    r.method = "POST";
    r.target = "/v1/escrow/get";
    r.body = req.dump();
    return svc.Handle(r);
  };
  uint64_t now = UnixNow();
  for (const char* guess : {"a", "b", "c", "the real recovery secreT"})
    EXPECT_THAT(ErrorOf(fetch(*service_, guess, now, crypto::RandomBytes(16)), 403),
                ::testing::HasSubstr("wrong recovery secret"));
  // Five failures: now even the right secret is refused until the window ends.
  EXPECT_THAT(ErrorOf(fetch(*service_, "the real recovery secret", now, crypto::RandomBytes(16)), 403),
              ::testing::HasSubstr("too many failed recovery attempts"));
  std::string log = ReadFileString(dir_ + "/audit.log").value();
  size_t refused = 0;
  for (size_t p = log.find("escrow.refused"); p != std::string::npos; p = log.find("escrow.refused", p + 1)) ++refused;
  EXPECT_EQ(refused, static_cast<size_t>(kMaxEscrowFailures));
  EXPECT_EQ(log.find("escrow.fetch"), std::string::npos);
  // A fresh window (here: a restarted keeper): the right secret gets the blob, once per nonce.
  KeeperService fresh(*store_);
  Bytes nonce = crypto::RandomBytes(16);
  auto ok = fetch(fresh, "the real recovery secret", now, nonce);
  ASSERT_EQ(ok.status, 200) << ok.body;
  auto got = EscrowBlob::Decode(Base64Decode(json::parse(ok.body)["blob"].get<std::string>()).value());
  ASSERT_OK(got.status());
  EXPECT_OK(OpenEscrow(*got, Pass("the real recovery secret")).status());
  EXPECT_THAT(ErrorOf(fetch(fresh, "the real recovery secret", now, nonce), 403), ::testing::HasSubstr("already used"));
  // A version-1 blob (no auth key) is neither served nor described.
  Bytes v1 = blob->Encode();
  v1[8] = 1;
  v1.erase(v1.begin() + 92, v1.begin() + 125);
  ASSERT_OK(EscrowBlob::Decode(v1).status());
  ASSERT_OK(WriteFileAtomic(path, v1, 0600));
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/escrow/params", where.dump()), 409), ::testing::HasSubstr("version 1"));
  EXPECT_THAT(ErrorOf(fetch(fresh, "the real recovery secret", now, crypto::RandomBytes(16)), 409),
              ::testing::HasSubstr("re-export"));
}

// An address that keeps failing (here: malformed bodies) is turned away with 429 before any
// parse, for the rest of the window; other addresses are served.
TEST_F(KeeperServiceTest, RepeatedFailuresFromOneAddressAreThrottled) {
  int refused = 0, throttled = 0;
  for (int i = 0; i < 150; ++i) {
    auto r = Call("POST", "/v1/partial", "[[[[not json");
    refused += r.status == 400;
    throttled += r.status == 429;
  }
  EXPECT_EQ(refused, 100);
  EXPECT_EQ(throttled, 50);
  EXPECT_EQ(service_->refused_by_limiter(), 50u);
  net::HttpRequest other;
  other.method = "GET";
  other.target = "/v1/keeper";
  other.remote = "10.0.0.7:5555";
  EXPECT_EQ(service_->Handle(other).status, 200);
}

TEST_F(KeeperServiceTest, InfoReturnsIdentity) {
  for (const char* target : {"/v1/keeper", "/v1/health"}) {
    auto r = Call("GET", target, "");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.content_type, "application/json");
    json j = json::parse(r.body);
    EXPECT_EQ(j["id"], "p1");
    EXPECT_EQ(j["domain"], "provider");
    EXPECT_EQ(j["suite"], 1);
    EXPECT_EQ(j["identity_key"], HexEncode(store_->secrets().identity.verifying_key().Encode()));
    EXPECT_EQ(j["hpke_key"], HexEncode(store_->secrets().hpke.public_key().Encode()));
    EXPECT_TRUE(j["custody_fingerprint"].is_null());
  }
}

TEST_F(KeeperServiceTest, UnknownRouteIs404Json) {
  auto r = Call("POST", "/v1/nothing", "{}");
  EXPECT_THAT(ErrorOf(r, 404), HasSubstr("/v1/nothing"));
  EXPECT_EQ(json::parse(r.body)["error"], "not_found");
  ErrorOf(Call("GET", "/v1/keeper/extra", ""), 404);
  // A known route with the wrong method is not a 404 and not a success either.
  ErrorOf(Call("GET", "/v1/partial", ""), 400);
}

// Every route of the table reaches its protocol's handler: each answers an incomplete body
// with its own refusal, not "no such endpoint".
TEST_F(KeeperServiceTest, EachProtocolIsReachable) {
  const std::string session = R"({"session": "0011"})";
  struct Case {
    const char* target;
    std::string body;
    int status;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"/v1/dkg/round", R"({"session": "0011", "round": 9})", 400, "DKG round must be 1..7"},
      {"/v1/dkg/round", R"({"session": "0011", "round": 2})", 404,
       "no DKG session 0011 on this keeper"},
      {"/v1/custody/endorse", "{}", 400, "missing 'descriptor'"},
      {"/v1/custody/activate", "{}", 400, "missing 'descriptor'"},
      {"/v1/partial", "{}", 400, "request"},
      {"/v1/escrow/put", "{}", 400, "blob"},
      {"/v1/escrow/params", "{}", 400, "custody_fp"},
      {"/v1/escrow/get", R"({"custody_fp": "00"})", 404, "no escrow blob for this custody"},
      {"/v1/reshare/deal", session, 400, "missing 'proposal' or 'authorization'"},
      {"/v1/reshare/receive", session, 400, "missing 'previous', 'proposal' or 'deals'"},
      {"/v1/reshare/finalize", session, 404, "no reshare session on this keeper"},
  };
  for (const Case& c : cases) {
    std::string message = ErrorOf(Call("POST", c.target, c.body), c.status);
    EXPECT_THAT(message, HasSubstr(c.message)) << c.target;
    EXPECT_THAT(message, ::testing::Not(HasSubstr("no such endpoint"))) << c.target;
  }
  EXPECT_EQ(Call("GET", "/v1/keeper", "").status, 200);
  ErrorOf(Call("POST", "/v1/keeper", "{}"), 404);  // GET only, as before
}

// Escrow fetches touch no sealed state and are served while the sealed-state mutex is held
// elsewhere (a slow endorsement, say); nothing else changes for them.
TEST_F(KeeperServiceTest, EscrowFetchesDoNotWaitForTheSealedState) {
  std::unique_lock<std::mutex> sealed(store_->mu());
  auto answer = std::async(std::launch::async, [&] {
    return Call("POST", "/v1/escrow/params", R"({"custody_fp": "00"})");
  });
  bool served = answer.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  sealed.unlock();
  EXPECT_TRUE(served);
  EXPECT_THAT(ErrorOf(answer.get(), 404), HasSubstr("no escrow blob"));
}

TEST_F(KeeperServiceTest, MalformedJsonIs400) {
  for (const char* body : {"", "{", "not json", "[1,2]", "\"string\"", "{\"a\":}"}) {
    auto r = Call("POST", "/v1/dkg/round", body);
    EXPECT_THAT(ErrorOf(r, 400), HasSubstr("JSON")) << body;
  }
  // Well-formed JSON with mistyped fields names the field.
  auto r = Call("POST", "/v1/dkg/round", R"({"session": 5, "round": 1})");
  EXPECT_THAT(ErrorOf(r, 400), HasSubstr("session"));
  r = Call("POST", "/v1/dkg/round", R"({"session": "00112233", "round": -1})");
  EXPECT_THAT(ErrorOf(r, 400), HasSubstr("round"));
}

// Clients can be removed and their role changed; the running service sees it on the next
// request, and each change is audited.
TEST_F(KeeperServiceTest, ClientRemovalAndRoleChangeAreInForceAtOnce) {
  crypto::SigningKey client = crypto::SigningKey::Generate();
  PartialRequest req = SampleRequest(client);
  Bytes wire = req.Encode();
  json body = {{"request", Base64Encode(wire)}, {"sig", HexEncode(client.Sign(PartialRequest::SignedBytes(wire)))}};
  crypto::Point key = client.verifying_key().point();
  ASSERT_OK(store_->AddClient("alice", key));
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/partial", body.dump()), 409), HasSubstr("no active share"));  // past the allowlist
  ASSERT_OK(store_->SetClientRole(key, ClientRole::kAdmin));
  auto list = store_->LoadAllowlist();
  ASSERT_OK(list.status());
  ASSERT_EQ(list->size(), 2u);  // the fixture's operator, and alice
  EXPECT_EQ((*list)[1].role, ClientRole::kAdmin);
  ASSERT_OK(store_->RemoveClient(key));
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/partial", body.dump()), 403), HasSubstr("not on this keeper's allowlist"));
  EXPECT_EQ(store_->RemoveClient(key).code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->SetClientRole(key, ClientRole::kDecrypt).code(), ErrorCode::kNotFound);
  std::string log = ReadFileString(dir_ + "/audit.log").value();
  EXPECT_THAT(log, HasSubstr("\"event\":\"client.role\""));
  EXPECT_THAT(log, HasSubstr("\"event\":\"client.remove\""));
  EXPECT_THAT(store_->AddClient("again", key).message(), ::testing::Not(HasSubstr("already")));
}

// The service keeps the parsed allowlist (and each listed key's verifying key) between
// requests, but never past a change of the file: a hand edit that the MAC does not cover is
// refused on the very next request, the restored file is accepted again, and a listed key's
// prepared verifying key still refuses a bad signature.
TEST_F(KeeperServiceTest, CachedAllowlistFollowsTheFile) {
  crypto::SigningKey alice = crypto::SigningKey::Generate();
  crypto::SigningKey mallory = crypto::SigningKey::Generate();
  auto signed_body = [](const crypto::SigningKey& key, Bytes sig_flip = {}) {
    Bytes wire = SampleRequest(key).Encode();
    Bytes sig = key.Sign(PartialRequest::SignedBytes(wire));
    if (!sig_flip.empty()) sig[sig_flip[0]] ^= 1;
    return json{{"request", Base64Encode(wire)}, {"sig", HexEncode(sig)}}.dump();
  };
  ASSERT_OK(store_->AddClient("alice", alice.verifying_key().point()));
  // Past the allowlist (which the service now holds parsed) to the missing share.
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/partial", signed_body(alice)), 409), HasSubstr("no active share"));
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/partial", signed_body(alice, Bytes{7})), 403),
              HasSubstr("signature does not verify"));

  // Mallory adds herself by hand: she cannot compute the MAC.
  std::string original = ReadText(dir_ + "/allowlist.json");
  json edited = json::parse(original);
  edited["clients"].push_back({{"name", "mallory"},
                               {"key", HexEncode(mallory.verifying_key().Encode())},
                               {"role", "decrypt"}});
  WriteText(dir_ + "/allowlist.json", edited.dump(2));
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/partial", signed_body(mallory)), 422), HasSubstr("allowlist"));
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/partial", signed_body(alice)), 422), HasSubstr("allowlist"));
  // A bad signature is still judged first, whatever the allowlist's state.
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/partial", signed_body(mallory, Bytes{3})), 403),
              HasSubstr("signature does not verify"));

  WriteText(dir_ + "/allowlist.json", original);
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/partial", signed_body(alice)), 409), HasSubstr("no active share"));
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/partial", signed_body(mallory)), 403),
              HasSubstr("not on this keeper's allowlist"));
}

TEST_F(KeeperServiceTest, PartialBeforeDkgNamesTheCheck) {
  crypto::SigningKey client = crypto::SigningKey::Generate();
  PartialRequest req = SampleRequest(client);
  Bytes wire = req.Encode();
  Bytes sig = client.Sign(PartialRequest::SignedBytes(wire));
  json body = {{"request", Base64Encode(wire)}, {"sig", HexEncode(sig)}};

  // Not allowlisted yet: refused by the allowlist check.
  auto r = Call("POST", "/v1/partial", body.dump());
  EXPECT_THAT(ErrorOf(r, 403), HasSubstr("allowlist"));

  ASSERT_OK(store_->AddClient("alice", client.verifying_key().point()));
  uint64_t audit_before = store_->audit().size();
  r = Call("POST", "/v1/partial", body.dump());
  EXPECT_THAT(ErrorOf(r, 409), HasSubstr("no active share"));
  EXPECT_EQ(store_->audit().size(), audit_before);  // nothing was released

  // A bad signature is refused before the custody is looked at.
  Bytes bad_sig = sig;
  bad_sig[5] ^= 1;
  body["sig"] = HexEncode(bad_sig);
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/partial", body.dump()), 403), HasSubstr("signature"));

  // A request addressed to another keeper is refused.
  req.keeper_id = "p2";
  wire = req.Encode();
  body = {{"request", Base64Encode(wire)},
          {"sig", HexEncode(client.Sign(PartialRequest::SignedBytes(wire)))}};
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/partial", body.dump()), 400), HasSubstr("p2"));
}

// A DKG session starts only with the approval of one of this keeper's admins, over exactly these
// participants (their keys are pinned by it), this threshold and this session; so a stranger
// can neither create, reset nor evict ceremony sessions.
TEST_F(KeeperServiceTest, DkgRound1NeedsItsOperatorsApproval) {
  json req = Round1(json::array({Me(1), Stranger("p2", 2)}), 2);
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/dkg/round", req.dump()), 403), HasSubstr("approval of an admin"));
  crypto::SigningKey stranger = crypto::SigningKey::Generate();
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/dkg/round", Authorize(req, &stranger).dump()), 403),
              HasSubstr("not on this keeper's allowlist"));
  crypto::SigningKey app = crypto::SigningKey::Generate();
  ASSERT_OK(store_->AddClient("app", app.verifying_key().point(), ClientRole::kDecrypt));
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/dkg/round", Authorize(req, &app).dump()), 403), HasSubstr("not as an admin"));
  // An approval of other participants (a swapped peer key) does not cover this request.
  json approved = Authorize(req);
  approved["params"]["participants"][1] = Stranger("p2", 2);
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/dkg/round", approved.dump()), 403), HasSubstr("does not cover this DKG"));
  json ok = Authorize(req);
  ASSERT_EQ(Call("POST", "/v1/dkg/round", ok.dump()).status, 200);
  // The same approval cannot restart (reset) the session.
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/dkg/round", ok.dump()), 403), HasSubstr("already used"));
}

TEST_F(KeeperServiceTest, DkgRound1WithoutThisKeeperIs400) {
  json participants = json::array({Stranger("p2", 1), Stranger("p3", 2)});
  auto r = Call("POST", "/v1/dkg/round", Authorize(Round1(participants, 2)).dump());
  EXPECT_THAT(ErrorOf(r, 400), HasSubstr("not among the DKG participants"));
  // A later round of that session finds nothing.
  json round2 = {{"session", HexEncode(Bytes(16, 0x33))}, {"round", 2}, {"messages", json::array()}};
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/dkg/round", round2.dump()), 404), HasSubstr("no DKG session"));
}

TEST_F(KeeperServiceTest, DkgRound1RefusesOtherKeysForThisKeeper) {
  json participants = json::array({Stranger("p1", 1), Stranger("p2", 2)});
  auto r = Call("POST", "/v1/dkg/round", Authorize(Round1(participants, 1)).dump());
  EXPECT_THAT(ErrorOf(r, 400), HasSubstr("other keys"));
}

TEST_F(KeeperServiceTest, DkgRound1RefusesOtherDomainAndRepeatedIds) {
  json req = Round1(json::array({Me(1), Stranger("p2", 2)}), 1);
  req["params"]["domain"] = "customer";
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/dkg/round", Authorize(req).dump()), 400), HasSubstr("domain"));
  req = Round1(json::array({Me(1), Stranger("p1", 2)}), 1);
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/dkg/round", Authorize(req).dump()), 400), HasSubstr("repeats"));
}

TEST_F(KeeperServiceTest, DkgRound1DealsASignedMessage) {
  json participants = json::array({Me(1), Stranger("p2", 2), Stranger("p3", 3)});
  auto r = Call("POST", "/v1/dkg/round", Authorize(Round1(participants, 2)).dump());
  ASSERT_EQ(r.status, 200) << r.body;
  auto m = SignedMessage::FromJson(json::parse(r.body)["message"]);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->keeper, "p1");
  EXPECT_EQ(m->kind, "dkg/1");
  EXPECT_OK(m->Verify(store_->secrets().identity.verifying_key(), Bytes(16, 0x33)));
  auto deal = threshold::DealMessage::Decode(m->payload);
  ASSERT_TRUE(deal.ok()) << deal.status().ToString();
  EXPECT_EQ(deal->dealer, 1u);
  EXPECT_EQ(deal->commitments.size(), 2u);
  // One encrypted share for each other participant; the dealer keeps its own.
  ASSERT_EQ(deal->encrypted_shares.size(), 2u);
  EXPECT_TRUE(deal->encrypted_shares.count(2) && deal->encrypted_shares.count(3));

  // Round 2 refuses a relayed message whose signature does not verify.
  SignedMessage forged = *m;
  forged.payload.push_back(0);
  json round2 = {{"session", HexEncode(Bytes(16, 0x33))},
                 {"round", 2},
                 {"messages", json::array({forged.ToJson()})}};
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/dkg/round", round2.dump()), 422), HasSubstr("signature"));
}

// Regressions found by fuzz/keeper_request_fuzz.cc: a field of the wrong JSON type, or a
// request quoting bytes that are not UTF-8, used to throw out of Handle (std::terminate).
TEST_F(KeeperServiceTest, MistypedOptionalFieldsAre400NotExceptions) {
  auto r = Call("POST", "/v1/escrow/get", R"({"custody_fp": "00", "keeper_id": 1})");
  EXPECT_THAT(ErrorOf(r, 400), HasSubstr("keeper_id"));
  json p = Me(1);
  p["url"] = 5;
  r = Call("POST", "/v1/dkg/round", Authorize(Round1(json::array({p}), 1)).dump());
  EXPECT_THAT(ErrorOf(r, 400), HasSubstr("url"));
  p["url"] = nullptr;
  EXPECT_THAT(ErrorOf(Call("POST", "/v1/dkg/round", Authorize(Round1(json::array({p}), 1)).dump()), 400),
              HasSubstr("url"));
  // Without a url the entry is still accepted.
  p.erase("url");
  EXPECT_EQ(Call("POST", "/v1/dkg/round", Authorize(Round1(json::array({p}), 1)).dump()).status, 200);
}

TEST_F(KeeperServiceTest, NonUtf8KeeperIdInRequestIsAJsonError) {
  crypto::SigningKey client = crypto::SigningKey::Generate();
  PartialRequest req = SampleRequest(client);
  req.keeper_id = "\xff\xfe";
  Bytes wire = req.Encode();
  json body = {{"request", Base64Encode(wire)},
               {"sig", HexEncode(client.Sign(PartialRequest::SignedBytes(wire)))}};
  auto r = Call("POST", "/v1/partial", body.dump());
  EXPECT_THAT(ErrorOf(r, 400), HasSubstr("addressed to keeper"));
}

}  // namespace
}  // namespace custos::keeper
