// Tests for `custos audit verify` (cli/audit_commands.h), run as a function and through Main
// on a real SQLite database: an intact log exits 0 with its report; a tampered one is refused
// naming the entry; the key comes from --public-key, or from the database with a warning;
// --expect-head catches a truncation; a missing database or key is an error, never created.
#include "cli/audit_commands.h"

#include <sqlite3.h>

#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "protocol/audit/chain.h"
#include "cli/commands.h"
#include "crypto/ecdsa.h"
#include "gmock/gmock.h"
#include "appliance/store/store.h"
#include "tests/testing/testing.h"

namespace custos::cli {
namespace {

using ::testing::HasSubstr;

class AuditVerifyCommandTest : public ::testing::Test {
 protected:
  // SetUp stores a log of 3 batches (5, 4 and 3 entries) signed by key_ in D/custos.db.
  void SetUp() override {
    auto store = store::OpenSqliteStore(dir_ + "/custos.db");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    Bytes hash = audit::GenesisHash();
    uint64_t seq = 0;
    for (int n : {5, 4, 3}) {
      std::vector<store::AuditRecord> batch;
      for (int i = 0; i < n; ++i) {
        store::AuditRecord r;
        r.seq = ++seq;
        r.entry = R"({"operation":"Encrypt","request_id":")" + std::to_string(seq) + R"("})";
        r.hash = hash = audit::EntryHash(hash, seq, r.entry);
        batch.push_back(std::move(r));
      }
      batch.back().signature = key_.Sign(audit::CheckpointMessage(seq, hash));
      ASSERT_OK((*store)->AppendAudit(batch, store::Durability::kDurable));
    }
    head_ = std::to_string(seq) + ":" + HexEncode(hash);
    ASSERT_OK((*store)->PutMeta("audit_public_key", key_hex_));
  }

  Status Verify(AuditVerifyFlags flags) {
    out_.str("");
    err_.str("");
    return AuditVerify(flags, out_, err_);
  }
  nlohmann::json Report() { return nlohmann::json::parse(out_.str()); }

  void Exec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ + "/custos.db").c_str(), &db), SQLITE_OK);
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK);
  }

  std::string dir_ = custos::testing::TempDir();
  crypto::SigningKey key_ = crypto::SigningKey::Generate();
  std::string key_hex_ = HexEncode(key_.verifying_key().Encode());
  std::string head_;
  std::ostringstream out_, err_;
};

TEST_F(AuditVerifyCommandTest, IntactLogWithPinnedKey) {
  ASSERT_OK(Verify({dir_, key_hex_, ""}));
  nlohmann::json r = Report();
  EXPECT_EQ(r["intact"], true);
  EXPECT_EQ(r["entries"], 12);
  EXPECT_EQ(r["signatures"], 3);
  EXPECT_EQ(std::to_string(r["head_seq"].get<uint64_t>()) + ":" + r["head_hash"].get<std::string>(),
            head_);
  EXPECT_EQ(r["public_key_from"], "--public-key");
  EXPECT_EQ(err_.str(), "");
}

TEST_F(AuditVerifyCommandTest, KeyFromTheDatabaseWarns) {
  ASSERT_OK(Verify({dir_, "", ""}));
  EXPECT_EQ(Report()["public_key_from"], "database");
  EXPECT_THAT(err_.str(), HasSubstr("warning: the audit public key was read from the database"));
}

TEST_F(AuditVerifyCommandTest, TamperedLogIsRefusedNamingTheEntry) {
  Exec("UPDATE audit SET entry = replace(entry, 'Encrypt', 'Decrypt') WHERE seq = 7");
  Status st = Verify({dir_, key_hex_, ""});
  EXPECT_EQ(st.code(), ErrorCode::kIntegrity);
  EXPECT_EQ(st.message(), "audit log: entry 7: hash does not match (edited, inserted or reordered)");
  nlohmann::json r = Report();
  EXPECT_EQ(r["intact"], false);
  EXPECT_EQ(r["failed_seq"], 7);
  EXPECT_EQ(r["head_seq"], 5);
}

TEST_F(AuditVerifyCommandTest, AnotherKeyIsRefused) {
  std::string other = HexEncode(crypto::SigningKey::Generate().verifying_key().Encode());
  Status st = Verify({dir_, other, ""});
  EXPECT_EQ(st.code(), ErrorCode::kIntegrity);
  EXPECT_THAT(st.message(), HasSubstr("entry 5: signature does not verify"));
  EXPECT_EQ(Verify({dir_, "03zz", ""}).code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(Verify({dir_, "02" + std::string(64, '0'), ""}).ok());  // not a curve point
}

TEST_F(AuditVerifyCommandTest, ExpectHeadCatchesTruncation) {
  ASSERT_OK(Verify({dir_, key_hex_, head_}));
  Exec("DELETE FROM audit WHERE seq > 9");  // the whole last batch
  ASSERT_OK(Verify({dir_, key_hex_, ""}));  // undetectable without a pinned head
  Status st = Verify({dir_, key_hex_, head_});
  EXPECT_EQ(st.code(), ErrorCode::kIntegrity);
  EXPECT_THAT(st.message(), HasSubstr("ends at seq 9 before the expected head seq 12"));
  EXPECT_EQ(Verify({dir_, key_hex_, "12"}).code(), ErrorCode::kInvalidArgument);
}

TEST_F(AuditVerifyCommandTest, MissingDatabaseOrKeyIsAnError) {
  std::string empty = custos::testing::TempDir();
  EXPECT_EQ(Verify({empty, key_hex_, ""}).code(), ErrorCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(empty + "/custos.db"));
  Exec("DELETE FROM meta WHERE name = 'audit_public_key'");
  Status st = Verify({dir_, "", ""});
  EXPECT_EQ(st.code(), ErrorCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr("--public-key"));
}

// The directory dev.env names (CUSTOS_DATA_DIR) holds the database in server/; and a fresh
// appliance whose log has no entry yet (no audit key recorded) is reported intact, not an error.
TEST_F(AuditVerifyCommandTest, DevModeDirectoryAndAnEmptyLog) {
  std::string dev = custos::testing::TempDir();
  std::filesystem::create_directories(dev + "/server");
  std::filesystem::copy_file(dir_ + "/custos.db", dev + "/server/custos.db");
  ASSERT_OK(Verify({dev, key_hex_, ""}));
  EXPECT_EQ(Report()["entries"], 12);
  EXPECT_EQ(Report()["database"], dev + "/server/custos.db");
  std::string fresh = custos::testing::TempDir();
  ASSERT_OK(store::OpenSqliteStore(fresh + "/custos.db").status());
  ASSERT_OK(Verify({fresh, "", ""}));
  EXPECT_EQ(Report()["intact"], true);
  EXPECT_EQ(Report()["entries"], 0);
  EXPECT_THAT(Report()["note"].get<std::string>(), HasSubstr("empty"));
}

TEST_F(AuditVerifyCommandTest, VersionFlag) {
  std::vector<std::string> args = {"custos", "--version"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(Main(static_cast<int>(argv.size()), argv.data()), 0);
  EXPECT_THAT(::testing::internal::GetCapturedStdout(), ::testing::StartsWith("custos 0."));
}

TEST_F(AuditVerifyCommandTest, MainExitCodes) {
  std::vector<std::string> args = {"custos", "audit", "verify", "--data-dir", dir_,
                                   "--public-key", key_hex_};
  auto run = [&] {
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    return Main(static_cast<int>(argv.size()), argv.data());
  };
  EXPECT_EQ(run(), 0);
  Exec("DELETE FROM audit WHERE seq = 3");
  EXPECT_EQ(run(), 1);
  args = {"custos", "audit", "verify"};
  EXPECT_EQ(run(), 2);  // --data-dir (or --store-url) is required
  args = {"custos", "audit", "verify", "--data-dir", dir_, "--store-url", "postgresql://h/db"};
  EXPECT_EQ(run(), 2);  // not both
  args = {"custos", "audit", "verify", "--data-dir", dir_, "--log", "node-1"};
  EXPECT_EQ(run(), 1);  // --log names a log of a shared database
}

}  // namespace
}  // namespace custos::cli
