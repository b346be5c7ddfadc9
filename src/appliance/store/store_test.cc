// The Store on both backends: every method's round trip and refusals, concurrency and
// durability of acknowledged writes across kill -9 (a child process killed mid-stream) run
// against SQLite and against a private PostgreSQL server (StoreTest, parametrized by backend).
// SQLite only: the schema migrations and version checks on files, the connection's pragmas, file
// modes, and durability across a lost page cache (a VFS that shows what SQLite had not fsynced
// when a call returned). PostgreSQL only: migrations under the advisory lock, concurrent audit
// appenders on two stores, kWritten and SyncAudit against the server's WAL flush position,
// refusals of foreign and newer databases and of a server without fsync, and reconnection
// after the server died or restarted.
#include "appliance/store/store.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include "appliance/store/internal/pg_schema.h"
#include "appliance/store/internal/sqlite_schema.h"
#include "appliance/store/internal/store_rules.h"
#include "gtest/gtest.h"
#include "tests/support/pg_server.h"
#include "tests/testing/testing.h"

namespace custos::store {
namespace {

// ---------------------------------------------------------------------------------------------
// Records and comparisons.

auto Tie(const KeyRecord& k) {
  return std::tie(k.key_id, k.arn, k.description, k.key_spec, k.key_usage, k.key_state,
                  k.creation_date, k.deletion_date, k.pending_window_days, k.rotation_enabled,
                  k.rotation_period_days, k.next_rotation_date, k.policy, k.current_version,
                  k.revision);
}
auto Tie(const KeyVersion& v) {
  return std::tie(v.key_id, v.version, v.wrapped_material, v.public_key, v.created,
                  v.rotation_type);
}
auto Tie(const AliasRecord& a) {
  return std::tie(a.alias_name, a.key_id, a.creation_date, a.last_updated_date);
}
auto Tie(const AccessKeyRecord& a) {
  return std::tie(a.access_key_id, a.name, a.principal_arn, a.wrapped_secret, a.created);
}
auto Tie(const AuditRecord& r) { return std::tie(r.seq, r.entry, r.hash, r.signature); }
auto Tie(const Tag& t) { return std::tie(t.key, t.value); }
auto Tie(const StateChange& c) { return std::tie(c.version, c.key_id, c.alias_name); }

template <typename T>
void ExpectSame(const std::vector<T>& got, const std::vector<T>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(Tie(got[i]), Tie(want[i])) << "at " << i;
}

// Bytes with embedded zeros, a leading zero and a trailing zero: a C-string path would cut them.
Bytes Material(uint8_t salt, size_t n = 48) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = (i % 5 == 0) ? 0 : static_cast<uint8_t>(salt + i);
  return b;
}

std::string KeyId(int i) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%08d-0000-4000-8000-000000000000", i);
  return buf;
}

KeyRecord SampleKey(const std::string& id) {
  KeyRecord k;
  k.key_id = id;
  k.arn = "arn:aws:kms:eu-west-1:111122223333:key/" + id;
  k.description = "sample key";
  k.key_spec = "SYMMETRIC_DEFAULT";
  k.key_usage = "ENCRYPT_DECRYPT";
  k.key_state = "Enabled";
  k.creation_date = 1700000000;
  k.rotation_enabled = false;
  k.rotation_period_days = 365;
  k.policy = R"({"Version":"2012-10-17","Statement":[]})";
  k.current_version = 1;
  return k;
}

KeyVersion SampleVersion(const std::string& id, uint32_t version) {
  KeyVersion v;
  v.key_id = id;
  v.version = version;
  v.wrapped_material = Material(static_cast<uint8_t>(version));
  v.created = 1700000000 + version;
  v.rotation_type = version == 1 ? "" : "ON_DEMAND";
  return v;
}

// A key with every optional field set and awkward contents.
KeyRecord FullKey(const std::string& id) {
  KeyRecord k = SampleKey(id);
  k.description = std::string("with") + '\0' + "nul and \xc3\xa9 and 'quotes'; DROP TABLE keys;--";
  k.key_spec = "ECC_NIST_P256";
  k.key_usage = "SIGN_VERIFY";
  k.key_state = "PendingDeletion";
  k.creation_date = -5;  // before the epoch: nothing assumes positive times
  k.deletion_date = 1800000000;
  k.pending_window_days = 7;
  k.rotation_enabled = true;
  k.rotation_period_days = 90;
  k.next_rotation_date = 1710000000;
  k.current_version = 4294967295u;
  return k;
}

KeyVersion FullVersion(const std::string& id) {
  KeyVersion v;
  v.key_id = id;
  v.version = 4294967295u;
  v.wrapped_material = Material(7, 1 << 20);  // 1 MiB
  v.public_key = Bytes{0, 0, 0x30, 0x59, 0, 0};
  v.created = INT64_MAX;
  v.rotation_type = "AUTOMATIC";
  return v;
}

AuditRecord Audit(uint64_t seq, bool signed_head = false) {
  AuditRecord r;
  r.seq = seq;
  r.entry = R"({"seq":)" + std::to_string(seq) + R"(,"op":"Encrypt"})";
  r.hash = Bytes(32, static_cast<uint8_t>(seq));
  r.hash[0] = 0;
  if (signed_head) r.signature = Bytes{0x30, 0, 0x02, static_cast<uint8_t>(seq), 0};
  return r;
}

std::vector<AuditRecord> AuditBatch(uint64_t first, uint64_t last, bool sign_last = true) {
  std::vector<AuditRecord> out;
  for (uint64_t s = first; s <= last; ++s) out.push_back(Audit(s, sign_last && s == last));
  return out;
}

// NodeAudit is AuditBatch with entries that name `log`, so two logs' records differ.
std::vector<AuditRecord> NodeAudit(const std::string& log, uint64_t first, uint64_t last) {
  std::vector<AuditRecord> out = AuditBatch(first, last);
  for (AuditRecord& r : out) r.entry = log + ":" + r.entry;
  return out;
}

StateChange KeyChange(uint64_t version, const std::string& key_id) {
  return StateChange{version, key_id, ""};
}
StateChange AliasChange(uint64_t version, const std::string& alias_name) {
  return StateChange{version, "", alias_name};
}

// AllChanges reads the whole change log in pages of 3 (so paging is exercised too).
std::vector<StateChange> AllChanges(Store& store) {
  std::vector<StateChange> out;
  for (uint64_t from = 0;;) {
    auto page = store.StateChangesSince(from, 3);
    EXPECT_OK(page.status());
    if (!page.ok() || page->empty()) return out;
    EXPECT_LE(page->size(), 3u);
    out.insert(out.end(), page->begin(), page->end());
    from = page->back().version;
  }
}

std::string Hex(const Bytes& b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t c : b) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Raw SQLite access for setting up and inspecting database files.

class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) ADD_FAILURE() << "sqlite3_open";
  }
  ~RawDb() { sqlite3_close(db_); }
  void Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (err ? err : "?");
    }
    sqlite3_free(err);
  }
  std::string Query(const char* sql) {
    sqlite3_stmt* s = nullptr;
    std::string out = "<none>";
    if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    }
    sqlite3_finalize(s);
    return out;
  }
  sqlite3* get() { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

// ---------------------------------------------------------------------------------------------

enum class Backend { kSqlite, kPostgres };

// StoreBase opens a fresh store on one backend for each test: a SQLite file in a new
// directory, or a new database on the test process's private PostgreSQL server. Either is
// opened through OpenStore, by path or by URL.
class StoreBase : public ::testing::Test {
 protected:
  explicit StoreBase(Backend backend) : backend_(backend) {}

  void SetUp() override {
    if (backend_ == Backend::kSqlite) {
      dir_ = custos::testing::TempDir();
      path_ = dir_ + "/custos.db";
      location_ = path_;
    } else {
      auto server = custos::testing::SharedPgServer();
      ASSERT_OK(server.status());
      pg_ = *server;
      auto db = pg_->NewDatabase();
      ASSERT_OK(db.status());
      db_ = *db;
      location_ = pg_->Url(db_);
    }
    Reopen();
  }

  void Reopen() {
    store_.reset();
    auto s = OpenStore(location_);
    ASSERT_OK(s.status());
    store_ = std::move(s).value();
  }

  bool sqlite() const { return backend_ == Backend::kSqlite; }

  // Query runs one statement on the database directly, beside the store, and returns the first
  // column of its first row as text.
  std::string Query(const char* sql) {
    if (sqlite()) return RawDb(path_).Query(sql);
    auto v = pg_->Query(db_, sql);
    return v.ok() ? *v : "<" + v.status().ToString() + ">";
  }

  std::string Pragma(const char* sql) {
    auto v = internal::QueryForTesting(*store_, sql);
    return v.ok() ? *v : "<" + v.status().ToString() + ">";
  }

  void CreateSampleKey(const std::string& id) {
    ASSERT_OK(store_->CreateKey(SampleKey(id), SampleVersion(id, 1)));
  }

  const Backend backend_;
  std::string dir_, path_;           // SQLite
  custos::testing::PgServer* pg_ = nullptr;  // PostgreSQL
  std::string db_;                   // PostgreSQL: the test's database
  std::string location_;             // what OpenStore is given: path_ or pg_->Url(db_)
  std::unique_ptr<Store> store_;
};

// StoreTest runs on both backends.
class StoreTest : public StoreBase, public ::testing::WithParamInterface<Backend> {
 protected:
  StoreTest() : StoreBase(GetParam()) {}
};

INSTANTIATE_TEST_SUITE_P(, StoreTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
                         });

class SqliteStoreTest : public StoreBase {
 protected:
  SqliteStoreTest() : StoreBase(Backend::kSqlite) {}
};

class PgStoreTest : public StoreBase {
 protected:
  PgStoreTest() : StoreBase(Backend::kPostgres) {}
};

// ---- Keys.

TEST_P(StoreTest, KeyRoundTripsEveryField) {
  const std::string a = KeyId(1), b = KeyId(2);
  ASSERT_OK(store_->CreateKey(FullKey(a), FullVersion(a)));
  CreateSampleKey(b);  // optional fields unset, public key empty

  auto got = store_->GetKey(a);
  ASSERT_OK(got.status());
  EXPECT_EQ(Tie(*got), Tie(FullKey(a)));
  EXPECT_EQ(got->description.substr(0, 8), std::string("with\0nul", 8));

  auto plain = store_->GetKey(b);
  ASSERT_OK(plain.status());
  EXPECT_EQ(Tie(*plain), Tie(SampleKey(b)));
  EXPECT_FALSE(plain->deletion_date.has_value());
  EXPECT_FALSE(plain->next_rotation_date.has_value());

  auto v = store_->GetKeyVersion(a, 4294967295u);
  ASSERT_OK(v.status());
  EXPECT_EQ(Tie(*v), Tie(FullVersion(a)));
  auto v1 = store_->GetKeyVersion(b, 1);
  ASSERT_OK(v1.status());
  EXPECT_EQ(Tie(*v1), Tie(SampleVersion(b, 1)));
  EXPECT_TRUE(v1->public_key.empty());
}

TEST_P(StoreTest, EmptyStringsAndEmptyBlobsStayEmptyNotNull) {
  const std::string id = KeyId(1);
  KeyRecord k = SampleKey(id);
  k.description = "";
  k.policy = "";
  KeyVersion v = SampleVersion(id, 1);
  v.wrapped_material = {};
  v.rotation_type = "";
  ASSERT_OK(store_->CreateKey(k, v));
  auto got = store_->GetKeyVersion(id, 1);
  ASSERT_OK(got.status());
  EXPECT_EQ(Tie(*got), Tie(v));
  // Stored as empty values, not NULL (the columns are NOT NULL, so a NULL would have failed).
  EXPECT_EQ(Query("SELECT count(*) FROM key_versions WHERE length(wrapped_material) = 0 AND "
                  "length(public_key) = 0 AND rotation_type = ''"),
            "1");
  EXPECT_EQ(Query("SELECT count(*) FROM keys WHERE length(description) = 0 AND length(policy) = 0"),
            "1");
  if (sqlite()) {
    RawDb raw(path_);
    EXPECT_EQ(raw.Query("SELECT typeof(wrapped_material) || typeof(public_key) FROM key_versions"),
              "blobblob");
    EXPECT_EQ(raw.Query("SELECT typeof(description) || typeof(policy) FROM keys"), "texttext");
  }
}

TEST_P(StoreTest, CreateKeyRefusesDuplicateAndKeepsTheFirst) {
  const std::string id = KeyId(1);
  CreateSampleKey(id);
  KeyRecord other = FullKey(id);
  other.current_version = 1;
  Status st = store_->CreateKey(other, SampleVersion(id, 1));
  EXPECT_EQ(st.code(), ErrorCode::kAlreadyExists) << st.ToString();
  EXPECT_EQ(st.message().rfind("store: create key: ", 0), 0u) << st.message();
  EXPECT_EQ(st.message().find(id), std::string::npos) << "error names the key id";
  EXPECT_EQ(Tie(*store_->GetKey(id)), Tie(SampleKey(id)));
}

TEST_P(StoreTest, CreateKeyRefusesInconsistentRecordAndStoresNothing) {
  const std::string id = KeyId(1);
  EXPECT_EQ(store_->CreateKey(SampleKey(id), SampleVersion(KeyId(2), 1)).code(),
            ErrorCode::kInvalidArgument);
  KeyRecord k = SampleKey(id);
  k.current_version = 2;
  EXPECT_EQ(store_->CreateKey(k, SampleVersion(id, 1)).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->GetKey(id).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetKeyVersion(id, 1).status().code(), ErrorCode::kNotFound);
}

TEST_P(StoreTest, MissingKeyIsNotFound) {
  auto k = store_->GetKey(KeyId(9));
  EXPECT_EQ(k.status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(k.status().message(), "store: get key: key not found");
  EXPECT_EQ(store_->GetKeyVersion(KeyId(9), 1).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->ListKeyVersions(KeyId(9)).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->UpdateKey(SampleKey(KeyId(9))).code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->AddKeyVersion(SampleKey(KeyId(9)), SampleVersion(KeyId(9), 2)).code(),
            ErrorCode::kNotFound);
  EXPECT_EQ(store_->DeleteKey(KeyId(9)).code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->ListTags(KeyId(9)).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->TagResource(KeyId(9), {}).code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->UntagResource(KeyId(9), {"a"}).code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->ListAliases(std::string_view(KeyId(9))).status().code(), ErrorCode::kNotFound);
  // Nothing was created on the way.
  auto all = store_->ListKeys();
  ASSERT_OK(all.status());
  EXPECT_TRUE(all->empty());
  CreateSampleKey(KeyId(1));
  EXPECT_EQ(store_->GetKeyVersion(KeyId(1), 2).status().code(), ErrorCode::kNotFound);
}

TEST_P(StoreTest, ListKeysOrdersByKeyId) {
  for (int i : {3, 1, 2}) CreateSampleKey(KeyId(i));
  auto all = store_->ListKeys();
  ASSERT_OK(all.status());
  ExpectSame(*all, {SampleKey(KeyId(1)), SampleKey(KeyId(2)), SampleKey(KeyId(3))});
}

TEST_P(StoreTest, UpdateKeyReplacesMetadata) {
  const std::string id = KeyId(1);
  CreateSampleKey(id);
  KeyRecord k = FullKey(id);
  k.current_version = 1;
  ASSERT_OK(store_->UpdateKey(k));
  k.revision = 2;
  EXPECT_EQ(Tie(*store_->GetKey(id)), Tie(k));
  // Back to unset optionals.
  KeyRecord plain = SampleKey(id);
  plain.revision = 2;
  ASSERT_OK(store_->UpdateKey(plain));
  plain.revision = 3;
  EXPECT_EQ(Tie(*store_->GetKey(id)), Tie(plain));
  // A current_version with no stored version is refused and changes nothing.
  KeyRecord bad = plain;
  bad.current_version = 2;
  bad.description = "changed";
  EXPECT_EQ(store_->UpdateKey(bad).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Tie(*store_->GetKey(id)), Tie(plain));
}

TEST_P(StoreTest, AddKeyVersionStoresVersionAndRecordTogether) {
  const std::string id = KeyId(1);
  CreateSampleKey(id);
  KeyRecord k = SampleKey(id);
  for (uint32_t v : {2u, 3u}) {
    k.current_version = v;
    k.next_rotation_date = 1700000000 + v * 1000;
    KeyVersion kv = SampleVersion(id, v);
    kv.public_key = Material(static_cast<uint8_t>(v), 91);
    ASSERT_OK(store_->AddKeyVersion(k, kv));
    ++k.revision;
  }
  EXPECT_EQ(Tie(*store_->GetKey(id)), Tie(k));
  auto versions = store_->ListKeyVersions(id);
  ASSERT_OK(versions.status());
  ASSERT_EQ(versions->size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ((*versions)[i].version, i + 1);  // oldest first
  EXPECT_EQ((*versions)[2].public_key, Material(3, 91));

  // A duplicate version is refused and the record is not updated either.
  KeyRecord again = k;
  again.current_version = 2;
  again.description = "should not stick";
  Status st = store_->AddKeyVersion(again, SampleVersion(id, 2));
  EXPECT_EQ(st.code(), ErrorCode::kAlreadyExists) << st.ToString();
  EXPECT_EQ(Tie(*store_->GetKey(id)), Tie(k));
  // So is a version for another key id, and a record whose current version is not stored.
  EXPECT_EQ(store_->AddKeyVersion(k, SampleVersion(KeyId(2), 4)).code(),
            ErrorCode::kInvalidArgument);
  KeyRecord ahead = k;
  ahead.current_version = 9;
  EXPECT_EQ(store_->AddKeyVersion(ahead, SampleVersion(id, 4)).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->GetKeyVersion(id, 4).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(Tie(*store_->GetKey(id)), Tie(k));
}

TEST_P(StoreTest, DeleteKeyRemovesVersionsAliasesAndTagsOnly) {
  const std::string a = KeyId(1), b = KeyId(2);
  for (const auto& id : {a, b}) {
    CreateSampleKey(id);
    KeyRecord k = SampleKey(id);
    k.current_version = 2;
    ASSERT_OK(store_->AddKeyVersion(k, SampleVersion(id, 2)));
    ASSERT_OK(store_->CreateAlias({"alias/" + id, id, 1, 1}));
    ASSERT_OK(store_->TagResource(id, {{"team", "x"}, {"env", "prod"}}));
  }
  ASSERT_OK(store_->DeleteKey(a));
  EXPECT_EQ(store_->GetKey(a).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetKeyVersion(a, 1).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetKeyVersion(a, 2).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetAlias("alias/" + a).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(Query("SELECT count(*) FROM key_versions"), "2");
  EXPECT_EQ(Query("SELECT count(*) FROM tags"), "2");
  EXPECT_EQ(Query("SELECT count(*) FROM aliases"), "1");
  // The other key is untouched.
  EXPECT_OK(store_->GetKeyVersion(b, 2).status());
  EXPECT_EQ(store_->ListTags(b)->size(), 2u);
  EXPECT_OK(store_->GetAlias("alias/" + b).status());
  // The id can be used again, with nothing left over from before.
  CreateSampleKey(a);
  EXPECT_TRUE(store_->ListTags(a)->empty());
  EXPECT_EQ(store_->ListKeyVersions(a)->size(), 1u);
  EXPECT_EQ(store_->DeleteKey(KeyId(3)).code(), ErrorCode::kNotFound);
}

// ---- Aliases.

TEST_P(StoreTest, Aliases) {
  const std::string a = KeyId(1), b = KeyId(2);
  CreateSampleKey(a);
  CreateSampleKey(b);
  AliasRecord x{"alias/x", a, 100, 100}, y{"alias/y", b, 200, 201}, w{"alias/w", a, 300, 300};
  for (const auto& al : {x, y, w}) ASSERT_OK(store_->CreateAlias(al));

  auto got = store_->GetAlias("alias/y");
  ASSERT_OK(got.status());
  EXPECT_EQ(Tie(*got), Tie(y));

  Status dup = store_->CreateAlias({"alias/x", b, 5, 5});
  EXPECT_EQ(dup.code(), ErrorCode::kAlreadyExists) << dup.ToString();
  EXPECT_EQ(dup.message().find("alias/x"), std::string::npos) << dup.message();
  EXPECT_EQ(Tie(*store_->GetAlias("alias/x")), Tie(x));
  EXPECT_EQ(store_->CreateAlias({"alias/z", KeyId(9), 5, 5}).code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetAlias("alias/z").status().code(), ErrorCode::kNotFound);

  auto all = store_->ListAliases(std::nullopt);
  ASSERT_OK(all.status());
  ExpectSame(*all, {w, x, y});
  auto of_a = store_->ListAliases(std::string_view(a));
  ASSERT_OK(of_a.status());
  ExpectSame(*of_a, {w, x});
  auto of_b = store_->ListAliases(std::string_view(b));
  ASSERT_OK(of_b.status());
  ExpectSame(*of_b, {y});

  // Update moves the alias and keeps its creation date.
  ASSERT_OK(store_->UpdateAlias("alias/x", b, 500));
  EXPECT_EQ(Tie(*store_->GetAlias("alias/x")), Tie(AliasRecord{"alias/x", b, 100, 500}));
  ExpectSame(*store_->ListAliases(std::string_view(a)), {w});
  EXPECT_EQ(store_->UpdateAlias("alias/none", b, 1).code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->UpdateAlias("alias/x", KeyId(9), 1).code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetAlias("alias/x")->key_id, b);

  ASSERT_OK(store_->DeleteAlias("alias/w"));
  EXPECT_EQ(store_->DeleteAlias("alias/w").code(), ErrorCode::kNotFound);
  EXPECT_TRUE(store_->ListAliases(std::string_view(a))->empty());
  EXPECT_EQ(store_->ListAliases(std::nullopt)->size(), 2u);
}

// ---- Tags.

TEST_P(StoreTest, Tags) {
  const std::string id = KeyId(1);
  CreateSampleKey(id);
  EXPECT_TRUE(store_->ListTags(id)->empty());
  ASSERT_OK(store_->TagResource(id, {{"b", "2"}, {"a", std::string("1\0one", 5)}, {"c", ""}}));
  ExpectSame(*store_->ListTags(id),
             {Tag{"a", std::string("1\0one", 5)}, Tag{"b", "2"}, Tag{"c", ""}});
  ASSERT_OK(store_->TagResource(id, {{"b", "two"}, {"d", "4"}}));  // overwrite and add
  ExpectSame(*store_->ListTags(id),
             {Tag{"a", std::string("1\0one", 5)}, Tag{"b", "two"}, Tag{"c", ""}, Tag{"d", "4"}});
  ASSERT_OK(store_->UntagResource(id, {"a", "absent", "c"}));
  ExpectSame(*store_->ListTags(id), {Tag{"b", "two"}, Tag{"d", "4"}});
  ASSERT_OK(store_->TagResource(id, {}));
  ASSERT_OK(store_->UntagResource(id, {}));
  EXPECT_EQ(store_->ListTags(id)->size(), 2u);
}

// ---- Access keys.

TEST_P(StoreTest, AccessKeys) {
  AccessKeyRecord one{"CKIAAAAAAAAAAAAAAAA2", "ops", "arn:aws:iam::111122223333:user/ops",
                      Material(1, 60), 1700000000};
  AccessKeyRecord two{"CKIAAAAAAAAAAAAAAAA1", "ci", "arn:aws:iam::111122223333:user/ci",
                      Bytes{0, 0, 0}, 1700000001};
  ASSERT_OK(store_->PutAccessKey(one));
  ASSERT_OK(store_->PutAccessKey(two));
  auto got = store_->GetAccessKey(one.access_key_id);
  ASSERT_OK(got.status());
  EXPECT_EQ(Tie(*got), Tie(one));
  ExpectSame(*store_->ListAccessKeys(), {two, one});  // by access key id

  AccessKeyRecord same_id = two;
  same_id.name = "other";
  Status st = store_->PutAccessKey(same_id);
  EXPECT_EQ(st.code(), ErrorCode::kAlreadyExists) << st.ToString();
  AccessKeyRecord same_name = two;
  same_name.access_key_id = "CKIAAAAAAAAAAAAAAAA3";
  st = store_->PutAccessKey(same_name);
  EXPECT_EQ(st.code(), ErrorCode::kAlreadyExists) << st.ToString();
  EXPECT_EQ(st.message().find("CKIA"), std::string::npos) << st.message();
  EXPECT_EQ(store_->ListAccessKeys()->size(), 2u);
  EXPECT_EQ(Tie(*store_->GetAccessKey(two.access_key_id)), Tie(two));
  EXPECT_EQ(store_->GetAccessKey("CKIAAAAAAAAAAAAAAAA3").status().code(), ErrorCode::kNotFound);

  // Deleted (a rotated-out credential): gone from every read; its name is free again.
  ASSERT_OK(store_->DeleteAccessKey(one.access_key_id));
  EXPECT_EQ(store_->GetAccessKey(one.access_key_id).status().code(), ErrorCode::kNotFound);
  ExpectSame(*store_->ListAccessKeys(), {two});
  EXPECT_EQ(store_->DeleteAccessKey(one.access_key_id).code(), ErrorCode::kNotFound);
  AccessKeyRecord reuse = one;
  reuse.access_key_id = "CKIAAAAAAAAAAAAAAAA4";
  EXPECT_OK(store_->PutAccessKey(reuse));
}

// ---- Audit.

TEST_P(StoreTest, AuditEmptyLog) {
  for (auto r : {store_->LastAudit(), store_->LastSignedAudit()}) {
    ASSERT_OK(r.status());
    EXPECT_EQ(Tie(*r), Tie(AuditRecord{}));
  }
  EXPECT_TRUE(store_->ReadAudit(0, 10)->empty());
  EXPECT_TRUE(store_->ReadAudit(1, 10)->empty());
}

TEST_P(StoreTest, AuditAppendLastAndPaging) {
  ASSERT_OK(store_->AppendAudit(AuditBatch(1, 3), Durability::kDurable));         // 3 signed
  ASSERT_OK(store_->AppendAudit(AuditBatch(4, 5, false), Durability::kDurable));  // none signed
  ASSERT_OK(store_->AppendAudit({}, Durability::kDurable));                       // empty batch: nothing to do

  EXPECT_EQ(Tie(*store_->LastAudit()), Tie(Audit(5)));
  EXPECT_EQ(Tie(*store_->LastSignedAudit()), Tie(Audit(3, true)));
  ASSERT_OK(store_->AppendAudit(AuditBatch(6, 7), Durability::kDurable));
  EXPECT_EQ(Tie(*store_->LastSignedAudit()), Tie(Audit(7, true)));

  std::vector<AuditRecord> all;
  for (uint64_t s = 1; s <= 7; ++s) all.push_back(Audit(s, s == 3 || s == 7));
  ExpectSame(*store_->ReadAudit(1, 100), all);
  ExpectSame(*store_->ReadAudit(0, 100), all);
  ExpectSame(*store_->ReadAudit(1, 2), {all[0], all[1]});
  ExpectSame(*store_->ReadAudit(3, 2), {all[2], all[3]});
  ExpectSame(*store_->ReadAudit(7, 2), {all[6]});
  EXPECT_TRUE(store_->ReadAudit(8, 2)->empty());
  EXPECT_TRUE(store_->ReadAudit(1, 0)->empty());
  EXPECT_TRUE(store_->ReadAudit(UINT64_MAX, 5)->empty());
  EXPECT_EQ(store_->ReadAudit(1, SIZE_MAX)->size(), 7u);
  // Paging through the whole log in pages of 3.
  std::vector<AuditRecord> paged;
  for (uint64_t from = 1;;) {
    auto page = store_->ReadAudit(from, 3);
    ASSERT_OK(page.status());
    if (page->empty()) break;
    paged.insert(paged.end(), page->begin(), page->end());
    from = page->back().seq + 1;
  }
  ExpectSame(paged, all);
}

TEST_P(StoreTest, AuditContinuityRefusalsStoreNothing) {
  // The first record of an empty log is seq 1.
  for (auto batch : {AuditBatch(2, 3), AuditBatch(0, 0)}) {
    Status st = store_->AppendAudit(batch, Durability::kDurable);
    EXPECT_FALSE(st.ok());
  }
  EXPECT_EQ(store_->AppendAudit(AuditBatch(2, 3), Durability::kDurable).code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(store_->LastAudit()->seq, 0u);
  ASSERT_OK(store_->AppendAudit(AuditBatch(1, 3), Durability::kDurable));

  auto refused = [&](std::vector<AuditRecord> batch, const char* what) {
    Status st = store_->AppendAudit(batch, Durability::kDurable);
    EXPECT_EQ(st.code(), ErrorCode::kFailedPrecondition) << what << ": " << st.ToString();
    EXPECT_EQ(st.message().rfind("store: append audit: ", 0), 0u) << st.message();
  };
  refused(AuditBatch(5, 6), "gap");
  refused(AuditBatch(3, 4), "duplicate of the last");
  refused(AuditBatch(1, 1), "duplicate of an old one");
  refused({Audit(4), Audit(5), Audit(7)}, "gap inside the batch");
  refused({Audit(4), Audit(4)}, "duplicate inside the batch");
  refused({Audit(4), Audit(6), Audit(5)}, "out of order");
  EXPECT_EQ(store_->AppendAudit({Audit(4), Audit(uint64_t{1} << 63)}, Durability::kDurable).code(),
            ErrorCode::kInvalidArgument);

  // Nothing of any refused batch was stored, and the log goes on from 3.
  EXPECT_EQ(store_->LastAudit()->seq, 3u);
  EXPECT_EQ(store_->ReadAudit(4, 10)->size(), 0u);
  ExpectSame(*store_->ReadAudit(1, 10), AuditBatch(1, 3));
  ASSERT_OK(store_->AppendAudit({Audit(4)}, Durability::kDurable));
  EXPECT_EQ(store_->LastAudit()->seq, 4u);
}

// ---- Meta.

TEST_P(StoreTest, Meta) {
  EXPECT_EQ(store_->GetMeta("audit_public_key").status().code(), ErrorCode::kNotFound);
  const std::string value("\x04\x00\x01pem", 6);
  ASSERT_OK(store_->PutMeta("audit_public_key", value));
  EXPECT_EQ(*store_->GetMeta("audit_public_key"), value);
  ASSERT_OK(store_->PutMeta("audit_public_key", "replaced"));
  EXPECT_EQ(*store_->GetMeta("audit_public_key"), "replaced");
  ASSERT_OK(store_->PutMeta("empty", ""));
  EXPECT_EQ(*store_->GetMeta("empty"), "");
}

// ---- Revisions: a key changes only from the revision it was read at.

TEST_P(StoreTest, KeyChangesApplyOnlyToTheRevisionTheyWereReadAt) {
  const std::string id = KeyId(1);
  KeyRecord created = SampleKey(id);
  created.revision = 7;  // CreateKey stores 1 whatever the record says
  ASSERT_OK(store_->CreateKey(created, SampleVersion(id, 1)));
  auto read = store_->GetKey(id);
  ASSERT_OK(read.status());
  EXPECT_EQ(read->revision, 1u);
  EXPECT_EQ(store_->ListKeys()->at(0).revision, 1u);

  // A change from the stored revision applies and advances it.
  KeyRecord fresh = *read;
  fresh.description = "first";
  ASSERT_OK(store_->UpdateKey(fresh));
  fresh.revision = 2;
  EXPECT_EQ(Tie(*store_->GetKey(id)), Tie(fresh));
  const uint64_t logged = *store_->StateVersion();

  // The copy read before that change is stale: refused, nothing stored, nothing logged.
  KeyRecord stale = *read;
  stale.description = "stale";
  Status st = store_->UpdateKey(stale);
  EXPECT_EQ(st.code(), ErrorCode::kAborted) << st.ToString();
  EXPECT_EQ(st.message(),
            "store: update key: the key changed since it was read (revision 2 is stored, the "
            "record is of revision 1)");
  stale.current_version = 2;
  st = store_->AddKeyVersion(stale, SampleVersion(id, 2));
  EXPECT_EQ(st.code(), ErrorCode::kAborted) << st.ToString();
  EXPECT_EQ(st.message().rfind("store: add key version: the key changed since it was read", 0), 0u)
      << st.message();
  EXPECT_EQ(store_->GetKeyVersion(id, 2).status().code(), ErrorCode::kNotFound);
  // A revision ahead of the stored one is no better, and one the store could not advance is
  // refused outright.
  KeyRecord ahead = fresh;
  ahead.revision = 3;
  EXPECT_EQ(store_->UpdateKey(ahead).code(), ErrorCode::kAborted);
  ahead.revision = UINT64_MAX;
  EXPECT_EQ(store_->UpdateKey(ahead).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->AddKeyVersion(ahead, SampleVersion(id, 2)).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Tie(*store_->GetKey(id)), Tie(fresh));
  EXPECT_EQ(*store_->StateVersion(), logged) << "a refused change was logged";

  // AddKeyVersion from the stored revision applies and advances it too.
  KeyRecord rotated = fresh;
  rotated.current_version = 2;
  ASSERT_OK(store_->AddKeyVersion(rotated, SampleVersion(id, 2)));
  EXPECT_EQ(store_->GetKey(id)->revision, 3u);
  EXPECT_OK(store_->GetKeyVersion(id, 2).status());
  // A stale AddKeyVersion of a version that exists is told the key changed (read again), not
  // that the version exists.
  EXPECT_EQ(store_->AddKeyVersion(rotated, SampleVersion(id, 2)).code(), ErrorCode::kAborted);

  // An absent key is kNotFound whatever the revision.
  KeyRecord gone = SampleKey(KeyId(9));
  gone.revision = 5;
  EXPECT_EQ(store_->UpdateKey(gone).code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->AddKeyVersion(gone, SampleVersion(KeyId(9), 1)).code(), ErrorCode::kNotFound);

  Reopen();
  EXPECT_EQ(store_->GetKey(id)->revision, 3u);
}

// ---- The change log.

TEST_P(StoreTest, ChangeLogNamesWhatEachMutationTouched) {
  EXPECT_EQ(*store_->StateVersion(), 0u);
  EXPECT_TRUE(store_->StateChangesSince(0, 10)->empty());
  const std::string a = KeyId(1), b = KeyId(2);
  CreateSampleKey(a);  // 1
  CreateSampleKey(b);  // 2
  KeyRecord k = SampleKey(a);
  k.description = "changed";
  ASSERT_OK(store_->UpdateKey(k));  // 3
  k.revision = 2;
  k.current_version = 2;
  ASSERT_OK(store_->AddKeyVersion(k, SampleVersion(a, 2)));  // 4
  ASSERT_OK(store_->TagResource(a, {{"t", "v"}}));           // 5
  ASSERT_OK(store_->UntagResource(a, {"t"}));                // 6
  for (const char* name : {"alias/x", "alias/y", "alias/z", "alias/w"}) {
    ASSERT_OK(store_->CreateAlias({name, a, 1, 1}));  // 7, 8, 9, 10
  }
  ASSERT_OK(store_->UpdateAlias("alias/x", b, 2));  // 11
  ASSERT_OK(store_->DeleteAlias("alias/y"));        // 12
  // Deleting a removes its aliases alias/w and alias/z too: one change each, after the key's,
  // by name, with consecutive versions.
  ASSERT_OK(store_->DeleteKey(a));  // 13, 14, 15

  // Not logged: refused mutations (rolled back), and what no node caches from the log:
  // access keys, meta values, the audit log.
  EXPECT_FALSE(store_->CreateKey(SampleKey(b), SampleVersion(b, 1)).ok());
  EXPECT_FALSE(store_->UpdateKey(SampleKey(KeyId(9))).ok());
  EXPECT_FALSE(store_->TagResource(KeyId(9), {{"t", "v"}}).ok());
  EXPECT_FALSE(store_->CreateAlias({"alias/x", b, 1, 1}).ok());
  EXPECT_FALSE(store_->UpdateAlias("alias/x", KeyId(9), 3).ok());
  EXPECT_FALSE(store_->DeleteAlias("alias/none").ok());
  EXPECT_FALSE(store_->DeleteKey(a).ok());
  ASSERT_OK(store_->PutAccessKey({"CKIAAAAAAAAAAAAAAAA1", "n", "arn", Material(1), 1}));
  ASSERT_OK(store_->PutMeta("m", "v"));
  ASSERT_OK(store_->AppendAudit(AuditBatch(1, 2, false), Durability::kDurable));
  ASSERT_OK(store_->SignAudit(2, Bytes{1}, Durability::kWritten));
  ASSERT_OK(store_->SyncAudit());

  const std::vector<StateChange> want = {KeyChange(1, a),
                                         KeyChange(2, b),
                                         KeyChange(3, a),
                                         KeyChange(4, a),
                                         KeyChange(5, a),
                                         KeyChange(6, a),
                                         AliasChange(7, "alias/x"),
                                         AliasChange(8, "alias/y"),
                                         AliasChange(9, "alias/z"),
                                         AliasChange(10, "alias/w"),
                                         AliasChange(11, "alias/x"),
                                         AliasChange(12, "alias/y"),
                                         KeyChange(13, a),
                                         AliasChange(14, "alias/w"),
                                         AliasChange(15, "alias/z")};
  EXPECT_EQ(*store_->StateVersion(), 15u);
  ExpectSame(AllChanges(*store_), want);
  ExpectSame(*store_->StateChangesSince(0, 100), want);
  Reopen();
  EXPECT_EQ(*store_->StateVersion(), 15u);
  ExpectSame(AllChanges(*store_), want);
}

TEST_P(StoreTest, StateChangesSincePagesOldestFirst) {
  for (int i = 1; i <= 5; ++i) CreateSampleKey(KeyId(i));
  auto versions = [&](uint64_t since, size_t limit) {
    std::vector<uint64_t> out;
    auto page = store_->StateChangesSince(since, limit);
    EXPECT_OK(page.status());
    if (page.ok()) {
      for (const StateChange& c : *page) out.push_back(c.version);
    }
    return out;
  };
  using V = std::vector<uint64_t>;
  EXPECT_EQ(versions(0, 2), (V{1, 2}));
  EXPECT_EQ(versions(2, 2), (V{3, 4}));
  EXPECT_EQ(versions(4, 2), (V{5}));
  EXPECT_EQ(versions(5, 2), V{});
  EXPECT_EQ(versions(3, 100), (V{4, 5}));
  EXPECT_EQ(versions(0, 0), V{});
  EXPECT_EQ(versions(0, SIZE_MAX).size(), 5u);
  EXPECT_EQ(store_->StateChangesSince(1, 1)->at(0).key_id, KeyId(2));
  // A version above the newest was never given out by this database: the caller's cache
  // came from another (a restored backup, a standby promoted without the newest commits), and
  // the versions it is waiting for will be given out again. It must reload.
  for (uint64_t v : {uint64_t{6}, uint64_t{1} << 63, UINT64_MAX}) {
    auto ahead = store_->StateChangesSince(v, 10);
    EXPECT_EQ(ahead.status().code(), ErrorCode::kOutOfRange) << v;
  }
}

// The log keeps the newest N changes (100,000; 5 here, through the test hook, which changes
// nothing but the number) and trims in the transaction that adds: the caller asking for
// changes it no longer holds is told kOutOfRange, not given a partial list.
TEST_P(StoreTest, ChangeLogKeepsTheNewestAndSaysWhenTrimmed) {
  EXPECT_EQ(internal::SetStateChangesKeptForTesting(*store_, 0).code(),
            ErrorCode::kInvalidArgument);
  ASSERT_OK(internal::SetStateChangesKeptForTesting(*store_, 5));
  for (int i = 1; i <= 6; ++i) CreateSampleKey(KeyId(i));  // 1..6
  for (const char* name : {"alias/1", "alias/2", "alias/3"}) {
    ASSERT_OK(store_->CreateAlias({name, KeyId(1), 1, 1}));  // 7..9
  }
  ASSERT_OK(store_->DeleteKey(KeyId(1)));  // 10..13: four changes in one transaction
  EXPECT_EQ(*store_->StateVersion(), 13u);
  EXPECT_EQ(Query("SELECT count(*) FROM state_changes"), "5");
  EXPECT_EQ(Query("SELECT min(version) FROM state_changes"), "9");

  ExpectSame(*store_->StateChangesSince(8, 100),
             {AliasChange(9, "alias/3"), KeyChange(10, KeyId(1)), AliasChange(11, "alias/1"),
              AliasChange(12, "alias/2"), AliasChange(13, "alias/3")});
  for (uint64_t v : {0u, 1u, 7u}) {
    auto trimmed = store_->StateChangesSince(v, 100);
    EXPECT_EQ(trimmed.status().code(), ErrorCode::kOutOfRange) << v;
    EXPECT_NE(trimmed.status().message().find("trimmed"), std::string::npos)
        << trimmed.status().message();
  }
  EXPECT_TRUE(store_->StateChangesSince(13, 100)->empty());

  // A reopened store keeps the default again: nothing more is trimmed.
  Reopen();
  CreateSampleKey(KeyId(7));
  EXPECT_EQ(Query("SELECT count(*) FROM state_changes"), "6");
  EXPECT_EQ(store_->StateChangesSince(8, 100)->size(), 6u);
}

// Two stores on one database, as two nodes have: each sees the other's changes in its change
// log, and a change from a copy read before the other's change is refused.
TEST_P(StoreTest, TwoStoresSeeEachOthersChanges) {
  auto opened = OpenStore(location_);
  ASSERT_OK(opened.status());
  Store& other = **opened;
  const std::string id = KeyId(1);
  CreateSampleKey(id);
  ExpectSame(*other.StateChangesSince(0, 10), {KeyChange(1, id)});
  EXPECT_EQ(*other.StateVersion(), 1u);

  KeyRecord mine = *store_->GetKey(id), theirs = *other.GetKey(id);
  mine.key_state = "Disabled";
  ASSERT_OK(store_->UpdateKey(mine));
  theirs.description = "from the other node";
  EXPECT_EQ(other.UpdateKey(theirs).code(), ErrorCode::kAborted);
  ExpectSame(*other.StateChangesSince(1, 10), {KeyChange(2, id)});
  // The other node reads again and retries: both changes stand.
  theirs = *other.GetKey(id);
  EXPECT_EQ(theirs.key_state, "Disabled");
  theirs.description = "from the other node";
  ASSERT_OK(other.UpdateKey(theirs));
  ASSERT_OK(other.CreateAlias({"alias/a", id, 1, 1}));
  ExpectSame(*store_->StateChangesSince(2, 10), {KeyChange(3, id), AliasChange(4, "alias/a")});
  auto now = store_->GetKey(id);
  EXPECT_EQ(now->key_state, "Disabled");
  EXPECT_EQ(now->description, "from the other node");
  EXPECT_EQ(now->revision, 3u);
}

// ---- Audit logs of several nodes.

// Each store appends to its own log (StoreOptions::audit_log): seqs, continuity, signatures
// and the newest records are per log; ListAuditLogs and ReadAuditLog see every log.
TEST_P(StoreTest, AuditLogsOfSeveralNodesAreIndependent) {
  auto node_a = OpenStore(location_, {"node-a"});
  auto node_b = OpenStore(location_, {"node-b"});
  ASSERT_OK(node_a.status());
  ASSERT_OK(node_b.status());
  Store& a = **node_a;
  Store& b = **node_b;
  EXPECT_TRUE(store_->ListAuditLogs()->empty());

  ASSERT_OK(store_->AppendAudit(NodeAudit("", 1, 3), Durability::kDurable));
  ASSERT_OK(a.AppendAudit(NodeAudit("node-a", 1, 2), Durability::kWritten));
  EXPECT_EQ(Tie(*b.LastAudit()), Tie(AuditRecord{})) << "node-b's log is empty";
  ASSERT_OK(b.AppendAudit(NodeAudit("node-b", 1, 2), Durability::kDurable));
  ASSERT_OK(b.AppendAudit(NodeAudit("node-b", 3, 4), Durability::kDurable));
  ASSERT_OK(a.SyncAudit());
  // Continuity is checked against the store's own log.
  EXPECT_EQ(a.AppendAudit(NodeAudit("node-a", 4, 4), Durability::kDurable).code(),
            ErrorCode::kFailedPrecondition);
  EXPECT_EQ(a.AppendAudit(NodeAudit("node-a", 5, 5), Durability::kDurable).code(),
            ErrorCode::kFailedPrecondition);
  EXPECT_EQ(store_->LastAudit()->seq, 3u);
  EXPECT_EQ(a.LastAudit()->seq, 2u);
  EXPECT_EQ(b.LastAudit()->seq, 4u);
  // Signing acts on the store's own log: record 1 of each log is signed separately.
  ASSERT_OK(a.SignAudit(1, Bytes{0xa1}, Durability::kDurable));
  EXPECT_EQ(a.SignAudit(1, Bytes{0xa1}, Durability::kDurable).code(),
            ErrorCode::kFailedPrecondition);
  ASSERT_OK(b.SignAudit(1, Bytes{0xb1}, Durability::kDurable));
  EXPECT_EQ(a.SignAudit(4, Bytes{0xa4}, Durability::kDurable).code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->LastSignedAudit()->seq, 3u);
  EXPECT_EQ(a.LastSignedAudit()->seq, 2u);
  EXPECT_EQ(b.LastSignedAudit()->seq, 4u);

  std::vector<AuditRecord> want_a = NodeAudit("node-a", 1, 2);
  want_a[0].signature = Bytes{0xa1};
  std::vector<AuditRecord> want_b = NodeAudit("node-b", 1, 2);
  want_b[0].signature = Bytes{0xb1};
  for (const AuditRecord& r : NodeAudit("node-b", 3, 4)) want_b.push_back(r);
  ExpectSame(*a.ReadAudit(1, 100), want_a);
  ExpectSame(*b.ReadAudit(1, 100), want_b);
  ExpectSame(*store_->ReadAudit(1, 100), NodeAudit("", 1, 3));

  // Every store reads every log.
  for (Store* s : {store_.get(), &a, &b}) {
    EXPECT_EQ(*s->ListAuditLogs(), (std::vector<std::string>{"", "node-a", "node-b"}));
    ExpectSame(*s->ReadAuditLog("node-a", 1, 100), want_a);
    ExpectSame(*s->ReadAuditLog("node-b", 2, 2), {want_b[1], want_b[2]});
    ExpectSame(*s->ReadAuditLog("", 3, 100), NodeAudit("", 3, 3));
    EXPECT_TRUE(s->ReadAuditLog("node-c", 1, 100)->empty());
    EXPECT_TRUE(s->ReadAuditLog("node-a", 1, 0)->empty());
    EXPECT_EQ(s->ReadAuditLog("node a", 1, 100).status().code(), ErrorCode::kInvalidArgument);
  }
  // A store of a log without records: not listed.
  auto node_c = OpenStore(location_, {"node-c"});
  ASSERT_OK(node_c.status());
  EXPECT_EQ((*node_c)->ListAuditLogs()->size(), 3u);
}

TEST_P(StoreTest, AuditLogNamesAreChecked) {
  for (const std::string& good :
       {std::string(64, 'a'), std::string("n"), std::string("node-1.example_A9")}) {
    auto s = OpenStore(location_, {good});
    EXPECT_TRUE(s.ok()) << good << ": " << s.status().ToString();
  }
  for (const std::string& bad :
       {std::string(65, 'a'), std::string("node 1"), std::string("a/b"), std::string("\xc3\xa9"),
        std::string("a\0b", 3), std::string("a:b"), std::string("..\n")}) {
    auto s = OpenStore(location_, {bad});
    EXPECT_EQ(s.status().code(), ErrorCode::kInvalidArgument) << bad;
    EXPECT_EQ(s.status().message(),
              "store: open: an audit log name is 1 to 64 characters of [A-Za-z0-9._-]");
  }
}

// ---- Persistence, pragmas, file.

TEST_P(StoreTest, ReopenKeepsEverything) {
  const std::string a = KeyId(1), b = KeyId(2);
  ASSERT_OK(store_->CreateKey(FullKey(a), FullVersion(a)));
  CreateSampleKey(b);
  KeyRecord kb = SampleKey(b);
  kb.current_version = 2;
  ASSERT_OK(store_->AddKeyVersion(kb, SampleVersion(b, 2)));
  kb.revision = 2;
  AliasRecord al{"alias/a", a, 1, 2};
  ASSERT_OK(store_->CreateAlias(al));
  ASSERT_OK(store_->TagResource(b, {{"k", "v"}}));
  AccessKeyRecord ak{"CKIAAAAAAAAAAAAAAAA1", "n", "arn:aws:iam::1:user/n", Material(3), 9};
  ASSERT_OK(store_->PutAccessKey(ak));
  ASSERT_OK(store_->AppendAudit(AuditBatch(1, 4), Durability::kDurable));
  ASSERT_OK(store_->PutMeta("m", "v"));

  Reopen();
  ExpectSame(*store_->ListKeys(), {FullKey(a), kb});
  ExpectSame(*store_->ListKeyVersions(a), {FullVersion(a)});
  ExpectSame(*store_->ListKeyVersions(b), {SampleVersion(b, 1), SampleVersion(b, 2)});
  ExpectSame(*store_->ListAliases(std::nullopt), {al});
  ExpectSame(*store_->ListTags(b), {Tag{"k", "v"}});
  ExpectSame(*store_->ListAccessKeys(), {ak});
  ExpectSame(*store_->ReadAudit(1, 10), AuditBatch(1, 4));
  EXPECT_EQ(Tie(*store_->LastSignedAudit()), Tie(Audit(4, true)));
  EXPECT_EQ(*store_->GetMeta("m"), "v");
  // And it still takes writes after the reopen.
  ASSERT_OK(store_->AppendAudit(AuditBatch(5, 5), Durability::kDurable));
}

TEST_F(SqliteStoreTest, PragmasOnAReopenedDatabase) {
  CreateSampleKey(KeyId(1));
  Reopen();
  EXPECT_EQ(Pragma("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(Pragma("PRAGMA synchronous"), "2");  // FULL
  EXPECT_EQ(Pragma("PRAGMA foreign_keys"), "1");
  EXPECT_EQ(Pragma("PRAGMA wal_autocheckpoint"), "250");
  EXPECT_NE(Pragma("PRAGMA busy_timeout"), "0");
  EXPECT_EQ(Pragma("PRAGMA user_version"), std::to_string(kSchemaVersion));
  EXPECT_EQ(Pragma("PRAGMA application_id"), std::to_string(internal::kApplicationId));
  EXPECT_EQ(Pragma("PRAGMA trusted_schema"), "0");
  // WAL is a property of the file: a plain connection sees it too.
  RawDb raw(path_);
  EXPECT_EQ(raw.Query("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.Query("PRAGMA integrity_check"), "ok");
  EXPECT_EQ(raw.Query("PRAGMA foreign_key_check"), "<none>");
}

TEST_F(SqliteStoreTest, FilesAreOwnerOnly) {
  store_.reset();
  const std::string fresh = dir_ + "/fresh.db";
  mode_t old = umask(0);  // SQLite alone would create 0644 now
  auto s = OpenSqliteStore(fresh);
  umask(old);
  ASSERT_OK(s.status());
  ASSERT_OK((*s)->PutMeta("x", "y"));
  struct stat st;
  ASSERT_EQ(stat(fresh.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((fresh + "-wal").c_str(), &st), 0) << "WAL file expected while open";
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((fresh + "-shm").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  s = InternalError("closed");

  // An existing database readable by others is tightened on open.
  ASSERT_EQ(chmod(fresh.c_str(), 0644), 0);
  auto again = OpenSqliteStore(fresh);
  ASSERT_OK(again.status());
  ASSERT_EQ(stat(fresh.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(*(*again)->GetMeta("x"), "y");
}

// ---- Schema versions and migrations.

TEST(StoreSchemaTest, NewerDatabaseIsRefusedAndLeftAlone) {
  const std::string path = custos::testing::TempDir() + "/newer.db";
  {
    RawDb raw(path);
    raw.Exec("CREATE TABLE future (x); PRAGMA user_version = 99;");
  }
  auto s = OpenSqliteStore(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kFailedPrecondition);
  const std::string& m = s.status().message();
  EXPECT_NE(m.find("99"), std::string::npos) << m;
  EXPECT_NE(m.find("version " + std::to_string(kSchemaVersion)), std::string::npos) << m;
  RawDb raw(path);
  EXPECT_EQ(raw.Query("PRAGMA user_version"), "99");
  EXPECT_EQ(raw.Query("PRAGMA journal_mode"), "delete") << "refused database was written to";
}

TEST(StoreSchemaTest, EmptyVersionZeroDatabaseIsMigrated) {
  const std::string dir = custos::testing::TempDir();
  // A zero-length file and a valid, empty SQLite database (header written, no tables).
  const std::string zero = dir + "/zero.db", empty = dir + "/empty.db";
  { std::ofstream(zero).flush(); }
  {
    RawDb raw(empty);
    raw.Exec("PRAGMA page_size = 4096; VACUUM;");
    EXPECT_EQ(raw.Query("PRAGMA user_version"), "0");
  }
  for (const auto& path : {zero, empty}) {
    auto s = OpenSqliteStore(path);
    ASSERT_OK(s.status());
    const std::string id = KeyId(1);
    ASSERT_OK((*s)->CreateKey(SampleKey(id), SampleVersion(id, 1)));
    EXPECT_EQ(*internal::QueryForTesting(**s, "PRAGMA user_version"),
              std::to_string(kSchemaVersion));
    s = InternalError("closed");
    RawDb raw(path);
    EXPECT_EQ(raw.Query("SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema "
                        "WHERE type = 'table' ORDER BY name)"),
              "access_keys,aliases,audit,custos_state,key_versions,keys,meta,state_changes,tags");
  }
}

TEST(StoreSchemaTest, ForeignDatabasesAreRefused) {
  const std::string dir = custos::testing::TempDir();
  {
    RawDb raw(dir + "/other-app.db");
    raw.Exec("CREATE TABLE notes (body TEXT);");
  }
  {
    RawDb raw(dir + "/other-id.db");
    raw.Exec("CREATE TABLE t (x); PRAGMA application_id = 42; PRAGMA user_version = 1;");
  }
  {
    RawDb raw(dir + "/no-id.db");
    raw.Exec("CREATE TABLE t (x); PRAGMA user_version = 1;");
  }
  for (const char* name : {"/other-app.db", "/other-id.db", "/no-id.db"}) {
    auto s = OpenSqliteStore(dir + name);
    EXPECT_EQ(s.status().code(), ErrorCode::kFailedPrecondition) << name;
  }
  RawDb raw(dir + "/other-app.db");
  EXPECT_EQ(raw.Query("SELECT count(*) FROM sqlite_schema"), "1") << "foreign db was changed";
  EXPECT_EQ(raw.Query("PRAGMA user_version"), "0");

  std::ofstream(dir + "/garbage.db") << std::string(8192, 'x');
  auto g = OpenSqliteStore(dir + "/garbage.db");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(g.status().message().rfind("store: open: ", 0), 0u) << g.status().message();

  auto d = OpenSqliteStore(dir);  // a directory
  EXPECT_FALSE(d.ok());
}

// What a custos of schema version 1 left in its database, for the migration tests: one key
// with two versions, an alias, a tag, a meta value and an audit chain of three records (the
// second signed).
struct Version1Data {
  std::string id = KeyId(1);
  KeyRecord key = [this] {
    KeyRecord k = SampleKey(id);
    k.current_version = 2;
    return k;
  }();
  std::vector<KeyVersion> versions = {SampleVersion(id, 1), SampleVersion(id, 2)};
  AliasRecord alias{"alias/one", id, 5, 6};
  std::vector<AuditRecord> chain = {Audit(1), Audit(2, true), Audit(3)};
};

// ExpectVersion1DataMigrated checks that a store opened on a migrated version 1 database holds
// everything of Version1Data (keys at revision 1, the chain in the log ""), and goes on from it.
void ExpectVersion1DataMigrated(Store& s) {
  const Version1Data v1;
  auto key = s.GetKey(v1.id);
  ASSERT_OK(key.status());
  EXPECT_EQ(Tie(*key), Tie(v1.key));
  EXPECT_EQ(key->revision, 1u);
  ExpectSame(*s.ListKeyVersions(v1.id), v1.versions);
  ExpectSame(*s.ListAliases(std::nullopt), {v1.alias});
  ExpectSame(*s.ListTags(v1.id), {Tag{"team", "x"}});
  EXPECT_EQ(*s.GetMeta("audit_public_key"), "pk");
  ExpectSame(*s.ReadAudit(1, 10), v1.chain);
  EXPECT_EQ(Tie(*s.LastAudit()), Tie(v1.chain[2]));
  EXPECT_EQ(Tie(*s.LastSignedAudit()), Tie(v1.chain[1]));
  EXPECT_EQ(*s.ListAuditLogs(), std::vector<std::string>{""});
  ExpectSame(*s.ReadAuditLog("", 1, 10), v1.chain);
  EXPECT_EQ(*s.StateVersion(), 0u);
  // The chain goes on, the key changes from revision 1 and the change is logged.
  ASSERT_OK(s.AppendAudit(AuditBatch(4, 4), Durability::kDurable));
  ASSERT_OK(s.SignAudit(3, Bytes{3}, Durability::kDurable));
  KeyRecord changed = v1.key;
  changed.description = "after the migration";
  ASSERT_OK(s.UpdateKey(changed));
  EXPECT_EQ(s.GetKey(v1.id)->revision, 2u);
  ExpectSame(*s.StateChangesSince(0, 10), {KeyChange(1, v1.id)});
  EXPECT_EQ(s.ReadAudit(1, 10)->size(), 4u);
}

// Migration 2 on a database that migration 1 made and a version 1 custos filled: SQLite cannot
// change the audit table's primary key, so the migration rebuilds it; every key and audit
// record survives, in one transaction with the rest of the step.
TEST(StoreSchemaTest, Version1DatabaseMigratesKeepingKeysAndAudit) {
  const std::string path = custos::testing::TempDir() + "/v1.db";
  const Version1Data v1;
  {
    RawDb raw(path);
    ASSERT_OK(internal::Migrate(raw.get(), internal::Migrations().first(1)));
    ASSERT_EQ(raw.Query("PRAGMA user_version"), "1");
    const KeyRecord& k = v1.key;
    std::string sql = "INSERT INTO keys VALUES ('" + k.key_id + "', '" + k.arn + "', '" +
                      k.description + "', '" + k.key_spec + "', '" + k.key_usage + "', '" +
                      k.key_state + "', " + std::to_string(k.creation_date) +
                      ", NULL, 0, 0, 365, NULL, '" + k.policy + "', 2);";
    for (const KeyVersion& v : v1.versions) {
      sql += "INSERT INTO key_versions VALUES ('" + v.key_id + "', " + std::to_string(v.version) +
             ", x'" + Hex(v.wrapped_material) + "', x'', " + std::to_string(v.created) + ", '" +
             v.rotation_type + "');";
    }
    sql += "INSERT INTO aliases VALUES ('alias/one', '" + v1.id + "', 5, 6);";
    sql += "INSERT INTO tags VALUES ('" + v1.id + "', 'team', 'x');";
    for (const AuditRecord& r : v1.chain) {
      sql += "INSERT INTO audit VALUES (" + std::to_string(r.seq) + ", '" + r.entry + "', x'" +
             Hex(r.hash) + "', x'" + Hex(r.signature) + "');";
    }
    sql += "INSERT INTO meta VALUES ('audit_public_key', 'pk');";
    raw.Exec(sql.c_str());
  }
  {
    auto opened = OpenSqliteStore(path);
    ASSERT_OK(opened.status());
    EXPECT_EQ(*internal::QueryForTesting(**opened, "PRAGMA user_version"), "2");
    ExpectVersion1DataMigrated(**opened);
  }
  RawDb raw(path);
  EXPECT_EQ(raw.Query("PRAGMA integrity_check"), "ok");
  EXPECT_EQ(raw.Query("PRAGMA foreign_key_check"), "<none>");
  EXPECT_EQ(raw.Query("SELECT sql FROM sqlite_schema WHERE name = 'audit_signed'"),
            "CREATE INDEX audit_signed ON audit (log, seq) WHERE length(signature) > 0");
  EXPECT_EQ(raw.Query("SELECT count(*) FROM sqlite_schema WHERE name = 'audit_by_log'"), "0");
  EXPECT_EQ(raw.Query("SELECT group_concat(log || '/' || seq, ' ') FROM audit"), "/1 /2 /3 /4");
}

TEST(StoreSchemaTest, EachMigrationIsOneTransaction) {
  const std::string path = custos::testing::TempDir() + "/migrate.db";
  {
    auto s = OpenSqliteStore(path);
    ASSERT_OK(s.status());
    ASSERT_OK((*s)->PutMeta("kept", "yes"));
  }
  // The build's migrations and one more step after them, version `next`.
  const int next = kSchemaVersion + 1;
  const std::string now = std::to_string(kSchemaVersion);
  const std::string bump = "PRAGMA user_version = " + std::to_string(next) + ";";
  auto with_step = [&](const std::string& sql) {
    std::vector<internal::Migration> list(internal::Migrations().begin(),
                                          internal::Migrations().end());
    list.push_back({next, sql.c_str()});
    return list;
  };
  RawDb raw(path);
  auto tables = [&] { return raw.Query("SELECT count(*) FROM sqlite_schema WHERE type='table'"); };
  const std::string before = tables();

  // A step that fails half-way leaves the database at the previous version with nothing of the
  // step.
  const std::string fails = "CREATE TABLE added (x); INSERT INTO no_such_table VALUES (1); " + bump;
  Status st = internal::Migrate(raw.get(), with_step(fails));
  EXPECT_EQ(st.code(), ErrorCode::kUnavailable) << st.ToString();
  EXPECT_EQ(st.message().rfind("store: migrate: ", 0), 0u) << st.message();
  EXPECT_EQ(raw.Query("PRAGMA user_version"), now);
  EXPECT_EQ(tables(), before);

  // A step that forgets its user_version bump is rolled back too.
  EXPECT_EQ(internal::Migrate(raw.get(), with_step("CREATE TABLE added (x);")).code(),
            ErrorCode::kInternal);
  EXPECT_EQ(raw.Query("PRAGMA user_version"), now);
  EXPECT_EQ(tables(), before);

  // Migrations must be numbered in order.
  const internal::Migration misnumbered[] = {{2, "PRAGMA user_version = 2;"}};
  EXPECT_EQ(internal::Migrate(raw.get(), misnumbered).code(), ErrorCode::kInternal);

  // A good step applies, keeps the data, and is applied once however often Migrate runs.
  const std::string good =
      "CREATE TABLE added (x INTEGER) STRICT; INSERT INTO added VALUES (7); " + bump;
  ASSERT_OK(internal::Migrate(raw.get(), with_step(good)));
  ASSERT_OK(internal::Migrate(raw.get(), with_step(good)));
  EXPECT_EQ(raw.Query("PRAGMA user_version"), std::to_string(next));
  EXPECT_EQ(raw.Query("SELECT count(*) FROM added"), "1");
  EXPECT_EQ(raw.Query("SELECT value FROM meta WHERE name = 'kept'"), "yes");
  // Being at a newer version now, this build refuses it, naming both versions.
  auto s = OpenSqliteStore(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("version " + std::to_string(next) + " "), std::string::npos)
      << s.status().message();
  EXPECT_NE(s.status().message().find("version " + now), std::string::npos) << s.status().message();
}

// ---- Concurrency.

// Each of 8 threads creates keys, tags and aliases them, and appends audit records, racing
// the others for the next seq (a loser sees kFailedPrecondition and retries). Nothing is lost
// and the audit log has no gap and no duplicate.
void HammerStore(const std::vector<Store*>& stores, int threads, int per_thread) {
  std::atomic<int> failures{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      Store* store = stores[static_cast<size_t>(t) % stores.size()];
      for (int i = 0; i < per_thread; ++i) {
        const std::string id = KeyId(t * 1000 + i);
        if (!store->CreateKey(SampleKey(id), SampleVersion(id, 1)).ok()) ++failures;
        if (!store->TagResource(id, {{"thread", std::to_string(t)}}).ok()) ++failures;
        if (!store->CreateAlias({"alias/" + id, id, i, i}).ok()) ++failures;
        for (int attempt = 0;; ++attempt) {
          auto last = store->LastAudit();
          if (!last.ok()) {
            ++failures;
            break;
          }
          AuditRecord r = Audit(last->seq + 1, i % 2 == 0);
          r.entry = std::to_string(t) + "/" + std::to_string(i);
          Status st = store->AppendAudit({r}, Durability::kDurable);
          if (st.ok()) break;
          if (st.code() != ErrorCode::kFailedPrecondition || attempt > 10000) {
            ++failures;
            break;
          }
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_EQ(failures.load(), 0);
}

void ExpectHammered(Store& store, int threads, int per_thread) {
  const size_t total = static_cast<size_t>(threads * per_thread);
  auto keys = store.ListKeys();
  ASSERT_OK(keys.status());
  EXPECT_EQ(keys->size(), total);
  EXPECT_EQ(store.ListAliases(std::nullopt)->size(), total);
  for (const auto& k : *keys) EXPECT_EQ(store.ListTags(k.key_id)->size(), 1u);
  auto log = store.ReadAudit(1, total + 10);
  ASSERT_OK(log.status());
  ASSERT_EQ(log->size(), total);
  std::set<std::string> entries;
  for (size_t i = 0; i < log->size(); ++i) {
    EXPECT_EQ((*log)[i].seq, i + 1);
    entries.insert((*log)[i].entry);
  }
  EXPECT_EQ(entries.size(), total) << "an audit entry was stored twice or overwritten";
}

TEST_P(StoreTest, ConcurrentWritersFromEightThreads) {
  HammerStore({store_.get()}, 8, 25);
  ExpectHammered(*store_, 8, 25);
  Reopen();
  ExpectHammered(*store_, 8, 25);
}

// Two stores on one database (as two processes or two nodes would have): on SQLite they
// serialize on the write lock, the busy timeout making them wait instead of failing; on
// PostgreSQL each has its own connections and audit appends serialize on the advisory lock.
TEST_P(StoreTest, TwoStoresShareOneDatabase) {
  auto second = OpenStore(location_);
  ASSERT_OK(second.status());
  HammerStore({store_.get(), second->get()}, 4, 20);
  ExpectHammered(**second, 4, 20);
  ExpectHammered(*store_, 4, 20);
}

// Two stores (as two nodes) each make 50 logged mutations at once, while a third reader polls
// the log: versions 1..100 are each given out once, a reader never sees a version before a
// lower one that is not yet visible (what a sequence would allow: a later transaction taking
// its number first and committing first), and each writer's changes are in the order of its
// calls.
TEST_P(StoreTest, ConcurrentChangesFromTwoStoresAreLoggedInCommitOrder) {
  auto second = OpenStore(location_);
  auto third = OpenStore(location_);
  ASSERT_OK(second.status());
  ASSERT_OK(third.status());
  Store* writers[] = {store_.get(), second->get()};
  constexpr int kWriters = 2, kPerWriter = 50;
  std::vector<std::string> calls[kWriters];  // the key each writer's calls touched, in order
  std::atomic<bool> done{false};
  std::string reader_error;
  size_t reader_seen = 0;
  std::thread reader([&] {
    uint64_t last = 0;
    for (;;) {
      const bool finished = done.load();
      auto page = (*third)->StateChangesSince(last, 1000);
      if (!page.ok()) {
        reader_error = page.status().ToString();
        return;
      }
      for (const StateChange& c : *page) {
        if (c.version != last + 1) {
          reader_error =
              "saw version " + std::to_string(c.version) + " after " + std::to_string(last);
          return;
        }
        last = c.version;
        ++reader_seen;
      }
      if (finished && page->empty()) return;
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> pool;
  std::atomic<int> failures{0};
  for (int t = 0; t < kWriters; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < kPerWriter; ++i) {
        const std::string id = KeyId(t * 1000 + i / 2);
        Status st;
        if (i % 2 == 0) {
          st = writers[t]->CreateKey(SampleKey(id), SampleVersion(id, 1));
        } else {
          KeyRecord k = SampleKey(id);
          k.description = "updated";
          st = writers[t]->UpdateKey(k);
        }
        if (!st.ok()) {
          ADD_FAILURE() << st.ToString();
          ++failures;
        }
        calls[t].push_back(id);
      }
    });
  }
  for (auto& th : pool) th.join();
  done = true;
  reader.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(reader_error, "");
  EXPECT_EQ(reader_seen, static_cast<size_t>(kWriters * kPerWriter));

  const std::vector<StateChange> log = AllChanges(*store_);
  ASSERT_EQ(log.size(), static_cast<size_t>(kWriters * kPerWriter));
  EXPECT_EQ(*store_->StateVersion(), log.size());
  std::vector<std::string> seen[kWriters];
  for (size_t i = 0; i < log.size(); ++i) {
    EXPECT_EQ(log[i].version, i + 1) << "a gap or a duplicate";
    const int writer = std::stoi(log[i].key_id) / 1000;
    ASSERT_TRUE(writer >= 0 && writer < kWriters) << log[i].key_id;
    seen[writer].push_back(log[i].key_id);
  }
  for (int t = 0; t < kWriters; ++t) EXPECT_EQ(seen[t], calls[t]) << "writer " << t;
}

// ---- Durability.

// SyncTracker wraps the default SQLite VFS (and is made the default while it lives) and keeps,
// per database and WAL file, whether bytes were written to it since its last xSync: what a
// power cut at that moment could lose. kill -9 cannot show this (the page cache outlives the
// process); this can.
class SyncTracker {
 public:
  SyncTracker() {
    real_ = sqlite3_vfs_find(nullptr);
    vfs_ = *real_;
    vfs_.szOsFile = static_cast<int>(sizeof(File)) + real_->szOsFile;
    vfs_.zName = "custos-sync-tracker";
    vfs_.pAppData = this;
    vfs_.xOpen = &Open;
    methods_ = sqlite3_io_methods{};
    methods_.iVersion = 3;
    methods_.xClose = [](sqlite3_file* f) {
      int rc = Real(f)->pMethods->xClose(Real(f));
      return rc;
    };
    methods_.xRead = [](sqlite3_file* f, void* b, int n, sqlite3_int64 o) {
      return Real(f)->pMethods->xRead(Real(f), b, n, o);
    };
    methods_.xWrite = [](sqlite3_file* f, const void* b, int n, sqlite3_int64 o) {
      Self(f)->Mark(f, true, false);
      return Real(f)->pMethods->xWrite(Real(f), b, n, o);
    };
    methods_.xTruncate = [](sqlite3_file* f, sqlite3_int64 size) {
      Self(f)->Mark(f, true, false);
      return Real(f)->pMethods->xTruncate(Real(f), size);
    };
    methods_.xSync = [](sqlite3_file* f, int flags) {
      int rc = Real(f)->pMethods->xSync(Real(f), flags);
      if (rc == SQLITE_OK) Self(f)->Mark(f, false, true);
      return rc;
    };
    methods_.xFileSize = [](sqlite3_file* f, sqlite3_int64* size) {
      return Real(f)->pMethods->xFileSize(Real(f), size);
    };
    methods_.xLock = [](sqlite3_file* f, int l) { return Real(f)->pMethods->xLock(Real(f), l); };
    methods_.xUnlock = [](sqlite3_file* f, int l) {
      return Real(f)->pMethods->xUnlock(Real(f), l);
    };
    methods_.xCheckReservedLock = [](sqlite3_file* f, int* out) {
      return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
    };
    methods_.xFileControl = [](sqlite3_file* f, int op, void* arg) {
      return Real(f)->pMethods->xFileControl(Real(f), op, arg);
    };
    methods_.xSectorSize = [](sqlite3_file* f) { return Real(f)->pMethods->xSectorSize(Real(f)); };
    methods_.xDeviceCharacteristics = [](sqlite3_file* f) {
      return Real(f)->pMethods->xDeviceCharacteristics(Real(f));
    };
    methods_.xShmMap = [](sqlite3_file* f, int i, int size, int extend, void volatile** p) {
      return Real(f)->pMethods->xShmMap(Real(f), i, size, extend, p);
    };
    methods_.xShmLock = [](sqlite3_file* f, int off, int n, int flags) {
      return Real(f)->pMethods->xShmLock(Real(f), off, n, flags);
    };
    methods_.xShmBarrier = [](sqlite3_file* f) { Real(f)->pMethods->xShmBarrier(Real(f)); };
    methods_.xShmUnmap = [](sqlite3_file* f, int del) {
      return Real(f)->pMethods->xShmUnmap(Real(f), del);
    };
    methods_.xFetch = [](sqlite3_file* f, sqlite3_int64 o, int n, void** p) {
      return Real(f)->pMethods->xFetch(Real(f), o, n, p);
    };
    methods_.xUnfetch = [](sqlite3_file* f, sqlite3_int64 o, void* p) {
      return Real(f)->pMethods->xUnfetch(Real(f), o, p);
    };
    EXPECT_EQ(sqlite3_vfs_register(&vfs_, 1), SQLITE_OK);
  }
  ~SyncTracker() {
    sqlite3_vfs_register(real_, 1);
    sqlite3_vfs_unregister(&vfs_);
  }
  SyncTracker(const SyncTracker&) = delete;
  SyncTracker& operator=(const SyncTracker&) = delete;

  // Unsynced names the tracked files written since their last sync ("" when none).
  std::string Unsynced() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto& [name, dirty] : dirty_) {
      if (dirty) out += name + " ";
    }
    return out;
  }
  int Syncs(const std::string& suffix) {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const auto& [name, count] : syncs_) {
      if (name.size() >= suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        n += count;
      }
    }
    return n;
  }

 private:
  // File is the tracker's sqlite3_file; the real VFS's file follows it in the same allocation.
  struct File {
    sqlite3_file base;
    SyncTracker* tracker;
    const char* name;  // SQLite keeps it valid until xClose; null for untracked files
  };
  static File* AsFile(sqlite3_file* f) { return reinterpret_cast<File*>(f); }
  static SyncTracker* Self(sqlite3_file* f) { return AsFile(f)->tracker; }
  static sqlite3_file* Real(sqlite3_file* f) {
    return reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + sizeof(File));
  }

  void Mark(sqlite3_file* f, bool dirty, bool synced) {
    const char* name = AsFile(f)->name;
    if (name == nullptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    dirty_[name] = dirty;
    if (synced) ++syncs_[name];
  }

  static int Open(sqlite3_vfs* vfs, const char* name, sqlite3_file* f, int flags, int* out) {
    auto* self = static_cast<SyncTracker*>(vfs->pAppData);
    File* file = AsFile(f);
    file->base.pMethods = nullptr;
    int rc = self->real_->xOpen(self->real_, name, Real(f), flags, out);
    if (rc != SQLITE_OK) return rc;
    file->base.pMethods = &self->methods_;
    file->tracker = self;
    file->name = (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0 ? name : nullptr;
    return SQLITE_OK;
  }

  sqlite3_vfs* real_;
  sqlite3_vfs vfs_;
  sqlite3_io_methods methods_;
  std::mutex mu_;
  std::map<std::string, bool> dirty_;
  std::map<std::string, int> syncs_;
};

// Every mutating call that returned OK left nothing unsynced in the database or its WAL: a
// power cut right after the acknowledgement loses nothing. (With synchronous=NORMAL, WAL
// commits are not synced and this fails.)
TEST_F(SqliteStoreTest, EveryAcknowledgedWriteIsFsynced) {
  store_.reset();
  SyncTracker tracker;
  auto opened = OpenSqliteStore(dir_ + "/tracked.db");
  ASSERT_OK(opened.status());
  Store& s = **opened;
  auto durable = [&](Status st, const char* what) {
    ASSERT_OK(st);
    EXPECT_EQ(tracker.Unsynced(), "") << what << " returned OK with unsynced writes";
  };
  uint64_t seq = 0;
  // Six keys with 1 MiB of material each fill the WAL past SQLite's automatic checkpoint
  // (1000 pages), so a checkpoint into the database file happens on the way.
  for (int i = 1; i <= 6; ++i) {
    const std::string id = KeyId(i);
    KeyVersion big = FullVersion(id);
    big.version = 1;
    durable(s.CreateKey(SampleKey(id), big), "CreateKey");
    KeyRecord k = SampleKey(id);
    k.current_version = 2;
    durable(s.AddKeyVersion(k, SampleVersion(id, 2)), "AddKeyVersion");
    k.description = "updated";
    k.revision = 2;
    durable(s.UpdateKey(k), "UpdateKey");
    durable(s.CreateAlias({"alias/" + id, id, 1, 1}), "CreateAlias");
    durable(s.UpdateAlias("alias/" + id, KeyId(1), 2), "UpdateAlias");
    durable(s.TagResource(id, {{"a", "b"}}), "TagResource");
    durable(s.UntagResource(id, {"a"}), "UntagResource");
    durable(s.AppendAudit(AuditBatch(seq + 1, seq + 3), Durability::kDurable), "AppendAudit");
    seq += 3;
    durable(s.PutMeta("m", id), "PutMeta");
    durable(s.PutAccessKey({"CKIA" + std::to_string(i), id, "arn", Material(1), 1}),
            "PutAccessKey");
  }
  durable(s.DeleteAlias("alias/" + KeyId(2)), "DeleteAlias");
  durable(s.DeleteKey(KeyId(3)), "DeleteKey");
  // The tracker saw the traffic it judges: WAL syncs on commit, database syncs on checkpoint.
  EXPECT_GE(tracker.Syncs("-wal"), 60);
  EXPECT_GE(tracker.Syncs("tracked.db"), 1);
}

// WriteUntilKilled is the child of the kill -9 test: it opens the store, continues the key and
// audit streams where the database ends, and after each call returned OK writes a 9-byte
// acknowledgement ('K' or 'A', then the key number or the last seq) to `ack_fd`.
[[noreturn]] void WriteUntilKilled(const std::string& location, int ack_fd) {
  auto s = OpenStore(location);
  if (!s.ok()) _exit(2);
  auto ack = [&](char kind, uint64_t n) {
    char rec[9];
    rec[0] = kind;
    std::memcpy(rec + 1, &n, 8);
    if (write(ack_fd, rec, sizeof(rec)) != static_cast<ssize_t>(sizeof(rec))) _exit(3);
  };
  auto keys = (*s)->ListKeys();
  auto last = (*s)->LastAudit();
  if (!keys.ok() || !last.ok()) _exit(4);
  uint64_t seq = last->seq;
  for (int i = static_cast<int>(keys->size()) + 1; i < 1000000; ++i) {
    const std::string id = KeyId(i);
    if (!(*s)->CreateKey(SampleKey(id), SampleVersion(id, 1)).ok()) _exit(5);
    ack('K', static_cast<uint64_t>(i));
    const uint64_t n = 1 + static_cast<uint64_t>(i % 3);
    if (!(*s)->AppendAudit(AuditBatch(seq + 1, seq + n), Durability::kDurable).ok()) _exit(6);
    seq += n;
    ack('A', seq);
  }
  _exit(0);
}

// Kill -9 in the middle of a stream of writes, three times over the same database: every
// write the child saw acknowledged is in the database afterwards. The kill points (after 137,
// 251 and 389 acknowledgements, each a prime) are not aligned with any small batch size, so a
// store that acknowledged writes before committing them in groups would lose some.
TEST_P(StoreTest, AcknowledgedWritesSurviveKill9) {
  uint64_t max_key = 0, max_seq = 0;
  for (uint64_t kill_after : {137u, 251u, 389u}) {
    SCOPED_TRACE("kill after " + std::to_string(kill_after) + " acknowledgements");
    store_.reset();
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    fflush(nullptr);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      WriteUntilKilled(location_, fds[1]);
    }
    close(fds[1]);

    uint64_t acks = 0;
    std::string pending;
    auto consume = [&](const char* data, size_t n) {
      pending.append(data, n);
      size_t off = 0;
      for (; pending.size() - off >= 9; off += 9) {
        uint64_t v;
        std::memcpy(&v, pending.data() + off + 1, 8);
        if (pending[off] == 'K') {
          EXPECT_GT(v, max_key);
          max_key = v;
        } else {
          EXPECT_GT(v, max_seq);
          max_seq = v;
        }
        ++acks;
      }
      pending.erase(0, off);
    };
    // Read acknowledgements one at a time until the kill point, then kill the child, which
    // by then is inside its next call.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    char buf[4096];
    while (acks < kill_after && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fds[0], POLLIN, 0};
      if (poll(&p, 1, 1000) <= 0) continue;
      ssize_t n = read(fds[0], buf, 9 - pending.size());
      if (n <= 0) break;
      consume(buf, static_cast<size_t>(n));
    }
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the child ended by itself (status " << status << ") instead of being killed";
    ASSERT_EQ(acks, kill_after) << "the child stopped acknowledging early";
    // Acknowledgements still in the pipe were given before the kill: they count too.
    for (ssize_t n; (n = read(fds[0], buf, sizeof(buf))) > 0;) {
      consume(buf, static_cast<size_t>(n));
    }
    close(fds[0]);

    Reopen();
    for (uint64_t i = 1; i <= max_key; ++i) {
      const std::string id = KeyId(static_cast<int>(i));
      auto k = store_->GetKey(id);
      ASSERT_OK(k.status());
      EXPECT_EQ(Tie(*k), Tie(SampleKey(id)));
      EXPECT_OK(store_->GetKeyVersion(id, 1).status());
    }
    // At most one key beyond the last acknowledged (committed, killed before it could ack).
    auto keys = store_->ListKeys();
    ASSERT_OK(keys.status());
    EXPECT_LE(keys->size(), max_key + 1);
    max_key = keys->size();
    auto last = store_->LastAudit();
    ASSERT_OK(last.status());
    ASSERT_GE(last->seq, max_seq) << "acknowledged audit records were lost";
    auto log = store_->ReadAudit(1, last->seq + 1);
    ASSERT_OK(log.status());
    ASSERT_EQ(log->size(), last->seq);
    for (size_t i = 0; i < log->size(); ++i) {
      ASSERT_EQ((*log)[i].seq, i + 1) << "gap in the audit chain";
      EXPECT_EQ((*log)[i].entry, Audit(i + 1).entry);
    }
    // The newest signed head is the end of the last batch the child appended.
    EXPECT_EQ(store_->LastSignedAudit()->seq, last->seq);
    max_seq = last->seq;
    if (sqlite()) {
      RawDb raw(path_);
      EXPECT_EQ(raw.Query("PRAGMA integrity_check"), "ok");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only.

// PgConn is a libpq connection for tests that drive the migration runner directly.
class PgConn {
 public:
  explicit PgConn(const std::string& url) : conn_(PQconnectdb(url.c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK) ADD_FAILURE() << PQerrorMessage(conn_);
  }
  ~PgConn() { PQfinish(conn_); }
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;
  PGconn* get() { return conn_; }

 private:
  PGconn* conn_;
};

// A fresh database on the shared server, for tests that open stores themselves.
struct PgDatabase {
  custos::testing::PgServer* server = nullptr;
  std::string name;
  std::string url;
  std::string Query(const std::string& sql) const {
    auto v = server->Query(name, sql);
    return v.ok() ? *v : "<" + v.status().ToString() + ">";
  }
};

void NewPgDatabase(PgDatabase* db) {
  auto server = custos::testing::SharedPgServer();
  ASSERT_OK(server.status());
  db->server = *server;
  auto name = db->server->NewDatabase();
  ASSERT_OK(name.status());
  db->name = *name;
  db->url = db->server->Url(db->name);
}

constexpr char kTablesQuery[] =
    "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class c JOIN pg_namespace n "
    "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'";

// Several nodes starting at once on a fresh database: every open succeeds, and the schema is
// applied once (a second application would fail on the existing tables, or add a second
// custos_schema row).
TEST(PgSchemaTest, ConcurrentOpensMigrateOnce) {
  PgDatabase db;
  ASSERT_NO_FATAL_FAILURE(NewPgDatabase(&db));
  constexpr int kNodes = 4;
  std::vector<Status> results(kNodes);
  std::atomic<int> ready{0};
  std::vector<std::thread> nodes;
  for (int i = 0; i < kNodes; ++i) {
    nodes.emplace_back([&, i] {
      ++ready;
      while (ready.load() < kNodes) std::this_thread::yield();
      auto s = OpenPostgresStore(db.url);
      results[static_cast<size_t>(i)] = s.status();
      if (s.ok()) results[static_cast<size_t>(i)] = (*s)->PutMeta("node" + std::to_string(i), "up");
    });
  }
  for (auto& t : nodes) t.join();
  for (const Status& st : results) EXPECT_OK(st);
  EXPECT_EQ(db.Query("SELECT count(*) || ':' || max(version) FROM custos_schema"),
            "1:" + std::to_string(kSchemaVersion));
  EXPECT_EQ(
      db.Query(kTablesQuery),
      "access_keys,aliases,audit,audit_sync,custos_schema,custos_state,key_versions,keys,meta,"
      "state_changes,tags");
  EXPECT_EQ(db.Query("SELECT count(*) FROM meta"), std::to_string(kNodes));
}

TEST(PgSchemaTest, NewerDatabaseIsRefusedAndLeftAlone) {
  PgDatabase db;
  ASSERT_NO_FATAL_FAILURE(NewPgDatabase(&db));
  { ASSERT_OK(OpenPostgresStore(db.url).status()); }
  db.Query("UPDATE custos_schema SET version = 99; CREATE TABLE future (x integer)");
  const std::string objects = db.Query("SELECT count(*) FROM pg_class");
  const std::string syncs = db.Query("SELECT syncs FROM audit_sync");
  auto s = OpenPostgresStore(db.url);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kFailedPrecondition);
  const std::string& m = s.status().message();
  EXPECT_NE(m.find("99"), std::string::npos) << m;
  EXPECT_NE(m.find("version " + std::to_string(kSchemaVersion)), std::string::npos) << m;
  EXPECT_EQ(db.Query("SELECT version FROM custos_schema"), "99");
  EXPECT_EQ(db.Query("SELECT count(*) FROM pg_class"), objects) << "refused database was changed";
  EXPECT_EQ(db.Query("SELECT syncs FROM audit_sync"), syncs);
}

TEST(PgSchemaTest, ForeignDatabasesAreRefused) {
  PgDatabase db;
  ASSERT_NO_FATAL_FAILURE(NewPgDatabase(&db));
  db.Query("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('mine')");
  auto s = OpenPostgresStore(db.url);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kFailedPrecondition) << s.status().ToString();
  EXPECT_NE(s.status().message().find("not a custos store"), std::string::npos);
  EXPECT_EQ(db.Query(kTablesQuery), "notes") << "foreign database was changed";

  // A custos_schema table that does not hold exactly one row is not custos's either.
  PgDatabase two;
  ASSERT_NO_FATAL_FAILURE(NewPgDatabase(&two));
  two.Query("CREATE TABLE custos_schema (version integer); "
            "INSERT INTO custos_schema VALUES (1), (1); ALTER TABLE custos_schema OWNER TO custos");
  EXPECT_EQ(OpenPostgresStore(two.url).status().code(), ErrorCode::kFailedPrecondition);

  // A search_path that names no existing schema leaves nowhere to create the tables.
  PgDatabase none;
  ASSERT_NO_FATAL_FAILURE(NewPgDatabase(&none));
  auto n = OpenPostgresStore(none.url + "?options=-csearch_path%3Dno_such_schema");
  EXPECT_EQ(n.status().code(), ErrorCode::kFailedPrecondition) << n.status().ToString();
  EXPECT_EQ(none.Query(kTablesQuery), "<null>");
}

// Migration 2 on a PostgreSQL database that migration 1 made and a version 1 custos filled:
// the audit table gets its log column and the (log, seq) key in place, and every key and audit
// record survives.
TEST(PgSchemaTest, Version1DatabaseMigratesKeepingKeysAndAudit) {
  PgDatabase db;
  ASSERT_NO_FATAL_FAILURE(NewPgDatabase(&db));
  {
    PgConn conn(db.url);
    ASSERT_OK(internal::MigratePostgres(conn.get(), internal::PgMigrations().first(1)));
  }
  ASSERT_EQ(db.Query("SELECT version FROM custos_schema"), "1");
  const Version1Data v1;
  auto bytea = [](std::string_view v) { return "'\\x" + Hex(Bytes(v.begin(), v.end())) + "'"; };
  const KeyRecord& k = v1.key;
  std::string sql = "INSERT INTO keys VALUES ('" + k.key_id + "', '" + k.arn + "', " +
                    bytea(k.description) + ", '" + k.key_spec + "', '" + k.key_usage + "', '" +
                    k.key_state + "', " + std::to_string(k.creation_date) +
                    ", NULL, 0, false, 365, NULL, " + bytea(k.policy) + ", 2);";
  for (const KeyVersion& v : v1.versions) {
    sql += "INSERT INTO key_versions VALUES ('" + v.key_id + "', " + std::to_string(v.version) +
           ", '\\x" + Hex(v.wrapped_material) + "', '\\x', " + std::to_string(v.created) + ", '" +
           v.rotation_type + "');";
  }
  sql += "INSERT INTO aliases VALUES ('alias/one', '" + v1.id + "', 5, 6);";
  sql += "INSERT INTO tags VALUES ('" + v1.id + "', 'team', " + bytea("x") + ");";
  for (const AuditRecord& r : v1.chain) {
    sql += "INSERT INTO audit VALUES (" + std::to_string(r.seq) + ", " + bytea(r.entry) + ", '\\x" +
           Hex(r.hash) + "', '\\x" + Hex(r.signature) + "');";
  }
  sql += "INSERT INTO meta VALUES ('audit_public_key', " + bytea("pk") + "); SELECT 'ok'";
  ASSERT_EQ(db.Query(sql), "ok");

  {
    auto opened = OpenPostgresStore(db.url);
    ASSERT_OK(opened.status());
    EXPECT_EQ(db.Query("SELECT version FROM custos_schema"), "2");
    ExpectVersion1DataMigrated(**opened);
  }
  EXPECT_EQ(db.Query("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                     "WHERE conname = 'audit_pkey'"),
            "PRIMARY KEY (log, seq)");
  EXPECT_EQ(db.Query("SELECT pg_get_indexdef('audit_signed'::regclass)"),
            "CREATE INDEX audit_signed ON public.audit USING btree (log, seq) WHERE "
            "(length(signature) > 0)");
  EXPECT_EQ(db.Query("SELECT column_default IS NULL FROM information_schema.columns "
                     "WHERE table_name = 'audit' AND column_name = 'log'"),
            "t")
      << "every insert must name its log";
  EXPECT_EQ(db.Query("SELECT string_agg(log || '/' || seq, ' ' ORDER BY seq) FROM audit"),
            "/1 /2 /3 /4");
}

TEST(PgSchemaTest, MigrationIsOneTransaction) {
  PgDatabase db;
  ASSERT_NO_FATAL_FAILURE(NewPgDatabase(&db));
  {
    auto s = OpenPostgresStore(db.url);
    ASSERT_OK(s.status());
    ASSERT_OK((*s)->PutMeta("kept", "yes"));
  }
  // The build's migrations and one more step after them, version `next`.
  const int next = kSchemaVersion + 1;
  const std::string now = std::to_string(kSchemaVersion);
  const std::string bump = "UPDATE custos_schema SET version = " + std::to_string(next) + ";";
  auto with_step = [&](const std::string& sql) {
    std::vector<internal::Migration> list(internal::PgMigrations().begin(),
                                          internal::PgMigrations().end());
    list.push_back({next, sql.c_str()});
    return list;
  };
  PgConn conn(db.url);
  const std::string before = db.Query(kTablesQuery);

  // A step that fails half-way leaves the database at the previous version with nothing of the
  // step.
  const std::string fails =
      "CREATE TABLE added (x integer); INSERT INTO no_such_table VALUES (1); " + bump;
  Status st = internal::MigratePostgres(conn.get(), with_step(fails));
  EXPECT_EQ(st.code(), ErrorCode::kUnavailable) << st.ToString();
  EXPECT_EQ(st.message().rfind("store: migrate: ", 0), 0u) << st.message();
  EXPECT_EQ(db.Query("SELECT version FROM custos_schema"), now);
  EXPECT_EQ(db.Query(kTablesQuery), before);

  // A step that forgets its version bump is rolled back too.
  EXPECT_EQ(
      internal::MigratePostgres(conn.get(), with_step("CREATE TABLE added (x integer);")).code(),
      ErrorCode::kInternal);
  EXPECT_EQ(db.Query("SELECT version FROM custos_schema"), now);
  EXPECT_EQ(db.Query(kTablesQuery), before);

  // Migrations must be numbered in order.
  const internal::Migration misnumbered[] = {{2, "UPDATE custos_schema SET version = 2;"}};
  EXPECT_EQ(internal::MigratePostgres(conn.get(), misnumbered).code(), ErrorCode::kInternal);

  // A good step applies, keeps the data, and is applied once however often it runs.
  const std::string good = "CREATE TABLE added (x integer); INSERT INTO added VALUES (7); " + bump;
  ASSERT_OK(internal::MigratePostgres(conn.get(), with_step(good)));
  ASSERT_OK(internal::MigratePostgres(conn.get(), with_step(good)));
  EXPECT_EQ(db.Query("SELECT version FROM custos_schema"), std::to_string(next));
  EXPECT_EQ(db.Query("SELECT count(*) FROM added"), "1");
  EXPECT_EQ(db.Query("SELECT convert_from(value, 'UTF8') FROM meta WHERE name = 'kept'"), "yes");
  // At a newer version now, this build refuses it, naming both versions.
  auto s = OpenPostgresStore(db.url);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("version " + std::to_string(next) + " "), std::string::npos)
      << s.status().message();
  EXPECT_NE(s.status().message().find("version " + now), std::string::npos) << s.status().message();
}

// A URL libpq cannot parse is refused without being quoted (it may hold a password); a wrong
// password is refused by the server, and the message does not carry it either.
TEST(PgSchemaTest, BadUrlsAreRefusedWithoutTheirPassword) {
  auto bad = OpenStore("postgresql://custos:hunter2secret@[::1/db");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument) << bad.status().ToString();
  EXPECT_EQ(bad.status().message().find("hunter2"), std::string::npos) << bad.status().message();

  PgDatabase db;
  ASSERT_NO_FATAL_FAILURE(NewPgDatabase(&db));
  const std::string wrong = "postgresql://custos:hunter2secret@127.0.0.1:" +
                            std::to_string(db.server->port()) + "/" + db.name;
  auto refused = OpenStore(wrong);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kUnavailable) << refused.status().ToString();
  EXPECT_EQ(refused.status().message().rfind("store: open: ", 0), 0u) << refused.status().message();
  EXPECT_NE(refused.status().message().find("password authentication failed"), std::string::npos)
      << refused.status().message();
  EXPECT_EQ(refused.status().message().find("hunter2"), std::string::npos);
}

// PostgreSQL text holds UTF-8 without NUL bytes: a key id or tag key outside that is refused
// before it is sent, naming the parameter's position, not the value. The free-form fields
// (description, policy, tag values, meta values, audit entries) are bytea and hold anything,
// as the shared tests show.
TEST_F(PgStoreTest, TextFieldsMustBeUtf8WithoutNul) {
  const std::string nul_id = std::string("abc\0def", 7);
  Status st = store_->CreateKey(SampleKey(nul_id), SampleVersion(nul_id, 1));
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << st.ToString();
  EXPECT_EQ(st.message(),
            "store: create key: parameter $1 is not UTF-8 text without NUL bytes, which PostgreSQL "
            "text cannot hold");
  CreateSampleKey(KeyId(1));
  EXPECT_EQ(store_->TagResource(KeyId(1), {{"\xff\xfe", "v"}}).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->GetKey(std::string("\xc3\x28", 2)).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_TRUE(store_->ListTags(KeyId(1))->empty());
  // Valid UTF-8 of every length is accepted and ordered byte by byte (COLLATE "C").
  ASSERT_OK(store_->TagResource(KeyId(1), {{"\xf0\x9f\x94\x91", "4"}, {"\xc3\xa9", "2"},
                                           {"\xe2\x82\xac", "3"}, {"Z", "1"}, {"a", "1"}}));
  auto tags = store_->ListTags(KeyId(1));
  ASSERT_OK(tags.status());
  std::vector<std::string> order;
  for (const Tag& t : *tags) order.push_back(t.key);
  EXPECT_EQ(order, (std::vector<std::string>{"Z", "a", "\xc3\xa9", "\xe2\x82\xac",
                                             "\xf0\x9f\x94\x91"}));
}

// Two stores (two pools of connections, as two nodes would have) and eight threads append
// audit batches, each reading the end of the log and appending after it. Every refusal of a
// lost race is kFailedPrecondition with nothing stored; the log ends up with every batch once,
// seqs without a gap. A SyncAudit thread runs alongside.
TEST_F(PgStoreTest, ConcurrentAppendersFromTwoStoresKeepTheChainContinuous) {
  auto second = OpenStore(location_);
  ASSERT_OK(second.status());
  Store* stores[] = {store_.get(), second->get()};
  constexpr int kThreads = 8, kBatches = 15;
  std::atomic<int> failures{0}, refusals{0};
  std::atomic<bool> done{false};
  std::thread syncer([&] {
    while (!done.load()) {
      if (!stores[1]->SyncAudit().ok()) ++failures;
    }
  });
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t) {
    pool.emplace_back([&, t] {
      Store* store = stores[t % 2];
      for (int b = 0; b < kBatches; ++b) {
        const uint64_t n = 1 + static_cast<uint64_t>((t + b) % 3);
        for (int attempt = 0;; ++attempt) {
          auto last = store->LastAudit();
          if (!last.ok()) {
            ++failures;
            break;
          }
          std::vector<AuditRecord> batch = AuditBatch(last->seq + 1, last->seq + n);
          for (size_t i = 0; i < batch.size(); ++i) {
            batch[i].entry = std::to_string(t) + "/" + std::to_string(b) + "/" + std::to_string(i);
          }
          Status st = store->AppendAudit(
              batch, b % 2 == 0 ? Durability::kDurable : Durability::kWritten);
          if (st.ok()) break;
          if (st.code() != ErrorCode::kFailedPrecondition || attempt > 10000) {
            ADD_FAILURE() << st.ToString();
            ++failures;
            break;
          }
          ++refusals;
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  done = true;
  syncer.join();
  EXPECT_EQ(failures.load(), 0);
  size_t total = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int b = 0; b < kBatches; ++b) total += 1 + static_cast<size_t>((t + b) % 3);
  }
  auto log = store_->ReadAudit(1, total + 10);
  ASSERT_OK(log.status());
  ASSERT_EQ(log->size(), total);
  std::set<std::string> entries;
  for (size_t i = 0; i < log->size(); ++i) {
    ASSERT_EQ((*log)[i].seq, i + 1) << "gap or reordering in the audit log";
    entries.insert((*log)[i].entry);
  }
  EXPECT_EQ(entries.size(), total) << "an audit entry was stored twice or overwritten";
  // A batch is stored whole: its entries are consecutive.
  for (size_t i = 0; i + 1 < log->size(); ++i) {
    const std::string& e = (*log)[i].entry;
    const std::string& next = (*log)[i + 1].entry;
    if (next.substr(next.rfind('/')) != "/0") {
      EXPECT_EQ(e.substr(0, e.rfind('/')), next.substr(0, next.rfind('/'))) << "at " << i;
    }
  }
  std::cout << "appends refused for a lost race: " << refusals.load() << "\n";
}

// WalFlushed is whether the server's WAL is flushed up to where it has been written, i.e.
// no commit is waiting for a flush.
std::string WalFlushed(custos::testing::PgServer* pg, const std::string& db) {
  auto v = pg->Query(db, "SELECT pg_current_wal_flush_lsn() >= pg_current_wal_insert_lsn()");
  return v.ok() ? *v : v.status().ToString();
}

// kDurable commits wait for the WAL flush; kWritten commits do not (the server's WAL writer
// runs every 10 s on the test server, so their commit records stay unflushed); SyncAudit
// flushes everything written before it. And a database whose default is
// synchronous_commit = off does not weaken kDurable.
TEST_F(PgStoreTest, WrittenCommitsAreFlushedBySyncAudit) {
  ASSERT_OK(store_->AppendAudit(AuditBatch(1, 2), Durability::kDurable));
  EXPECT_EQ(WalFlushed(pg_, db_), "t") << "a kDurable commit returned before the flush";

  // A WAL writer round or a checkpoint could flush between the append and the look; one of
  // three tries must show the commit unflushed.
  uint64_t seq = 2;
  bool seen_unflushed = false;
  for (int i = 0; i < 3 && !seen_unflushed; ++i) {
    ASSERT_OK(store_->AppendAudit(AuditBatch(seq + 1, seq + 1), Durability::kWritten));
    ++seq;
    seen_unflushed = WalFlushed(pg_, db_) == "f";
  }
  EXPECT_TRUE(seen_unflushed) << "kWritten commits were flushed at once (synchronous)";
  ASSERT_OK(store_->SyncAudit());
  EXPECT_EQ(WalFlushed(pg_, db_), "t") << "SyncAudit returned before the flush";

  seen_unflushed = false;
  for (int i = 0; i < 3 && !seen_unflushed; ++i) {
    ASSERT_OK(store_->AppendAudit({Audit(seq + 1)}, Durability::kDurable));
    ++seq;
    ASSERT_OK(store_->SignAudit(seq, Bytes{1, 2, 3}, Durability::kWritten));
    seen_unflushed = WalFlushed(pg_, db_) == "f";
  }
  EXPECT_TRUE(seen_unflushed) << "a kWritten SignAudit was flushed at once";
  ASSERT_OK(store_->SyncAudit());
  EXPECT_EQ(WalFlushed(pg_, db_), "t");
  EXPECT_EQ(store_->LastSignedAudit()->seq, seq);

  // Connections made after the database's default became off still commit durably.
  ASSERT_OK(pg_->Query(db_, "ALTER DATABASE " + db_ + " SET synchronous_commit = off").status());
  Reopen();
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(store_->AppendAudit({Audit(seq + 1)}, Durability::kDurable));
    ++seq;
    EXPECT_EQ(WalFlushed(pg_, db_), "t") << "kDurable under a database default of off";
  }
}

// The server must fsync its WAL, or no commit is durable: a store refuses to run on one that
// does not.
TEST_F(PgStoreTest, RefusesAServerWithoutFsync) {
  store_.reset();
  auto set_fsync = [&](const char* sql, const char* want) {
    ASSERT_OK(pg_->Query("postgres", sql).status());
    ASSERT_OK(pg_->Query("postgres", "SELECT pg_reload_conf()").status());
    for (int i = 0; i < 200 && pg_->Query("postgres", "SHOW fsync").value() != want; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(pg_->Query("postgres", "SHOW fsync").value(), want);
  };
  set_fsync("ALTER SYSTEM SET fsync = off", "off");
  auto s = OpenPostgresStore(location_);
  set_fsync("ALTER SYSTEM RESET fsync", "on");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(s.status().message().find("fsync = off"), std::string::npos) << s.status().message();
  EXPECT_OK(OpenPostgresStore(location_).status());
}

// Appends queue on the audit lock, and a wait for a lock is bounded (lock_timeout; 5 s unless
// the URL, role or database sets it, here 300 ms): while another session holds the lock, an
// append fails with kUnavailable and stores nothing; once it is released, appends go on.
TEST_F(PgStoreTest, AppendWaitsForTheAuditLockBoundedly) {
  store_.reset();
  auto s = OpenStore(location_ + "?options=-c%20lock_timeout%3D300ms");
  ASSERT_OK(s.status());
  ASSERT_OK((*s)->AppendAudit(AuditBatch(1, 1), Durability::kDurable));
  PgConn holder(location_);
  // The lock of the default log "" (kLockAuditLog in pg_store.cc).
  PQclear(PQexec(holder.get(), "BEGIN; SELECT pg_advisory_xact_lock(1668641633, hashtext(''))"));
  const auto start = std::chrono::steady_clock::now();
  Status st = (*s)->AppendAudit(AuditBatch(2, 2), Durability::kDurable);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(st.code(), ErrorCode::kUnavailable) << st.ToString();
  EXPECT_EQ(st.message().rfind("store: append audit: ", 0), 0u) << st.message();
  EXPECT_GE(waited, std::chrono::milliseconds(250)) << "did not wait for the lock";
  EXPECT_LT(waited, std::chrono::seconds(3));
  // Readers take no lock.
  EXPECT_EQ((*s)->LastAudit()->seq, 1u);
  PQclear(PQexec(holder.get(), "COMMIT"));
  EXPECT_EQ((*s)->LastAudit()->seq, 1u);
  ASSERT_OK((*s)->AppendAudit(AuditBatch(2, 2), Durability::kDurable));
}

// The audit append lock is per log: an append to one log does not wait for another log's
// appender (another node's group commit), and still waits, for lock_timeout at most, for its
// own log's.
TEST_F(PgStoreTest, AuditAppendsToTwoLogsDoNotWaitForEachOther) {
  store_.reset();
  const std::string bounded = location_ + "?options=-c%20lock_timeout%3D300ms";
  auto a = OpenStore(bounded, {"node-a"});
  auto b = OpenStore(bounded, {"node-b"});
  ASSERT_OK(a.status());
  ASSERT_OK(b.status());
  PgConn holder(location_);
  PQclear(
      PQexec(holder.get(), "BEGIN; SELECT pg_advisory_xact_lock(1668641633, hashtext('node-b'))"));
  const auto start = std::chrono::steady_clock::now();
  ASSERT_OK((*a)->AppendAudit(AuditBatch(1, 2), Durability::kDurable));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(250))
      << "node-a's append waited for node-b's lock";
  Status st = (*b)->AppendAudit(AuditBatch(1, 1), Durability::kDurable);
  EXPECT_EQ(st.code(), ErrorCode::kUnavailable) << st.ToString();
  PQclear(PQexec(holder.get(), "COMMIT"));
  ASSERT_OK((*b)->AppendAudit(AuditBatch(1, 1), Durability::kDurable));
  EXPECT_EQ((*a)->LastAudit()->seq, 2u);
  EXPECT_EQ((*b)->LastAudit()->seq, 1u);
}

// Every logged mutation begins by locking custos_state's row (that is what orders the change
// log across nodes): while another session holds it, a mutation waits (for lock_timeout at
// most, then kUnavailable with nothing stored); reads, audit appends and unlogged writes do
// not wait.
TEST_F(PgStoreTest, LoggedMutationsQueueOnTheStateRowAndNothingElseDoes) {
  store_.reset();
  auto s = OpenStore(location_ + "?options=-c%20lock_timeout%3D200ms");
  ASSERT_OK(s.status());
  Store& store = **s;
  ASSERT_OK(store.CreateKey(SampleKey(KeyId(1)), SampleVersion(KeyId(1), 1)));
  PgConn holder(location_);
  PQclear(PQexec(holder.get(), "BEGIN; SELECT version FROM custos_state FOR UPDATE"));
  const auto start = std::chrono::steady_clock::now();
  Status st = store.CreateKey(SampleKey(KeyId(2)), SampleVersion(KeyId(2), 1));
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(st.code(), ErrorCode::kUnavailable) << st.ToString();
  EXPECT_GE(waited, std::chrono::milliseconds(150)) << "did not wait for the state row";
  EXPECT_EQ(store.CreateAlias({"alias/a", KeyId(1), 1, 1}).code(), ErrorCode::kUnavailable);
  const auto reads = std::chrono::steady_clock::now();
  EXPECT_EQ(store.ListKeys()->size(), 1u);
  EXPECT_EQ(*store.StateVersion(), 1u);
  EXPECT_EQ(store.StateChangesSince(0, 10)->size(), 1u);
  ASSERT_OK(store.AppendAudit(AuditBatch(1, 1), Durability::kDurable));
  ASSERT_OK(store.PutMeta("m", "v"));
  EXPECT_LT(std::chrono::steady_clock::now() - reads, std::chrono::milliseconds(150));
  PQclear(PQexec(holder.get(), "COMMIT"));
  ASSERT_OK(store.CreateKey(SampleKey(KeyId(2)), SampleVersion(KeyId(2), 1)));
  ExpectSame(*store.StateChangesSince(0, 10), {KeyChange(1, KeyId(1)), KeyChange(2, KeyId(2))});
}

// The retry rule, with the connection ended by the server at chosen moments (a trigger that
// terminates its own backend; a sequence, which no rollback undoes, counts the attempts):
// a write whose connection dies before COMMIT was sent is run again and stored once; one
// whose connection dies during COMMIT is not run again, and the caller is told the outcome
// is unknown.
TEST_F(PgStoreTest, WriteIsRetriedOnlyIfItCannotHaveCommitted) {
  CreateSampleKey(KeyId(1));
  ASSERT_EQ(Query(R"sql(
    CREATE SEQUENCE attempts; GRANT USAGE ON SEQUENCE attempts TO custos;
    CREATE FUNCTION die_once() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('attempts') = 1 THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
        RETURN NULL;
      END $$;
    CREATE TRIGGER die_once AFTER INSERT ON aliases FOR EACH ROW EXECUTE FUNCTION die_once();
    SELECT 'ok')sql"),
            "ok");
  ASSERT_OK(store_->CreateAlias({"alias/a", KeyId(1), 1, 1}));
  EXPECT_EQ(Query("SELECT last_value FROM attempts"), "2") << "not run again after the failure";
  EXPECT_EQ(Query("SELECT count(*) FROM aliases"), "1");

  ASSERT_EQ(Query(R"sql(
    DROP TRIGGER die_once ON aliases; ALTER SEQUENCE attempts RESTART;
    CREATE FUNCTION die_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM nextval('attempts');
        PERFORM pg_terminate_backend(pg_backend_pid());
        RETURN NULL;
      END $$;
    CREATE CONSTRAINT TRIGGER die_at_commit AFTER INSERT ON aliases
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION die_at_commit();
    SELECT 'ok')sql"),
            "ok");
  Status st = store_->CreateAlias({"alias/b", KeyId(1), 1, 1});
  EXPECT_EQ(st.code(), ErrorCode::kUnavailable) << st.ToString();
  EXPECT_NE(st.message().find("the connection failed during COMMIT"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("unknown"), std::string::npos) << st.message();
  EXPECT_EQ(Query("SELECT last_value FROM attempts"), "1") << "run again after COMMIT was sent";
  // (The server ended the session before the commit record, so nothing was stored here.)
  EXPECT_EQ(Query("SELECT count(*) FROM aliases"), "1");

  ASSERT_EQ(Query("DROP TRIGGER die_at_commit ON aliases; SELECT 'ok'"), "ok");
  ASSERT_OK(store_->CreateAlias({"alias/b", KeyId(1), 1, 1}));
  EXPECT_EQ(store_->ListAliases(std::nullopt)->size(), 2u);
}

// PgRestartTest runs on a server of its own, which its tests stop and start. On the shared
// server a stop would take seconds: its shutdown checkpoint fsyncs every file of every
// database the other tests created.
class PgRestartTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto started = custos::testing::PgServer::Start();
    start_status_ = new Status(started.status());
    if (started.ok()) server_ = std::move(started).value().release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete start_status_;
    start_status_ = nullptr;
  }

  void SetUp() override {
    ASSERT_OK(*start_status_);
    pg_ = server_;
    auto db = pg_->NewDatabase();
    ASSERT_OK(db.status());
    location_ = pg_->Url(*db);
    auto s = OpenStore(location_);
    ASSERT_OK(s.status());
    store_ = std::move(s).value();
  }

  void CreateSampleKey(const std::string& id) {
    ASSERT_OK(store_->CreateKey(SampleKey(id), SampleVersion(id, 1)));
  }

  static custos::testing::PgServer* server_;
  static Status* start_status_;
  custos::testing::PgServer* pg_ = nullptr;
  std::string location_;
  std::unique_ptr<Store> store_;
};
custos::testing::PgServer* PgRestartTest::server_ = nullptr;
Status* PgRestartTest::start_status_ = nullptr;

// RestartOnExit brings a stopped server back however the test ends, so later tests have it.
struct RestartOnExit {
  custos::testing::PgServer* server;
  bool stopped = false;
  ~RestartOnExit() {
    if (stopped) EXPECT_OK(server->Restart());
  }
};

// While the server is down, every call fails with kUnavailable naming the operation (a
// connection is refused at once on loopback, so nothing hangs); once it is back on the same
// port, the same store reconnects by itself.
TEST_F(PgRestartTest, DeadServerIsUnavailableThenReconnects) {
  CreateSampleKey(KeyId(1));
  ASSERT_OK(store_->AppendAudit(AuditBatch(1, 1), Durability::kDurable));
  RestartOnExit guard{pg_};
  ASSERT_OK(pg_->Stop());
  guard.stopped = true;

  const auto start = std::chrono::steady_clock::now();
  auto got = store_->GetKey(KeyId(1));
  EXPECT_EQ(got.status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(got.status().message().rfind("store: get key: ", 0), 0u) << got.status().message();
  Status created = store_->CreateKey(SampleKey(KeyId(2)), SampleVersion(KeyId(2), 1));
  EXPECT_EQ(created.code(), ErrorCode::kUnavailable);
  EXPECT_EQ(created.message().rfind("store: create key: ", 0), 0u) << created.message();
  EXPECT_EQ(store_->AppendAudit(AuditBatch(2, 2), Durability::kWritten).code(),
            ErrorCode::kUnavailable);
  EXPECT_EQ(store_->SyncAudit().code(), ErrorCode::kUnavailable);
  auto opened = OpenStore(location_);
  EXPECT_EQ(opened.status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(opened.status().message().rfind("store: open: ", 0), 0u) << opened.status().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  std::cout << "while the server is down: " << got.status().ToString() << "\n";

  ASSERT_OK(pg_->Restart());
  guard.stopped = false;
  auto back = store_->GetKey(KeyId(1));
  ASSERT_OK(back.status());
  EXPECT_EQ(Tie(*back), Tie(SampleKey(KeyId(1))));
  CreateSampleKey(KeyId(2));
  ASSERT_OK(store_->AppendAudit(AuditBatch(2, 2), Durability::kDurable));
  EXPECT_EQ(store_->ListKeys()->size(), 2u);
  EXPECT_EQ(store_->LastAudit()->seq, 2u);
}

// A restart of the server between calls (as a failover looks to a store: every pooled
// connection leads to a server that is gone) is invisible to the caller: the first call on a
// dead connection fails before anything was sent that could commit, and runs again on a
// fresh connection. Once for a write first, once for a read first.
TEST_F(PgRestartTest, RestartedServerIsReconnectedTransparently) {
  RestartOnExit guard{pg_};
  // Several calls at once leave several connections idle in the pool.
  auto fill_pool = [&] {
    std::vector<std::thread> readers;
    for (int i = 0; i < 4; ++i) {
      readers.emplace_back([&] {
        for (int j = 0; j < 5; ++j) EXPECT_OK(store_->ListKeys().status());
      });
    }
    for (auto& r : readers) r.join();
  };
  auto restart = [&] {
    ASSERT_OK(pg_->Stop());
    guard.stopped = true;
    ASSERT_OK(pg_->Restart());
    guard.stopped = false;
  };

  CreateSampleKey(KeyId(1));
  fill_pool();
  ASSERT_NO_FATAL_FAILURE(restart());
  ASSERT_OK(store_->CreateKey(SampleKey(KeyId(2)), SampleVersion(KeyId(2), 1)));
  ASSERT_OK(store_->AppendAudit(AuditBatch(1, 2), Durability::kWritten));
  ASSERT_OK(store_->SyncAudit());

  fill_pool();
  ASSERT_NO_FATAL_FAILURE(restart());
  auto keys = store_->ListKeys();
  ASSERT_OK(keys.status());
  EXPECT_EQ(keys->size(), 2u);
  EXPECT_EQ(store_->LastAudit()->seq, 2u);
  EXPECT_EQ(store_->ListAliases(std::nullopt)->size(), 0u);
}


}  // namespace
}  // namespace custos::store
