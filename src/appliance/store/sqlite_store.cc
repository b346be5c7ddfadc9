// The SQLite backend of Store (docs/storage.md). One connection, guarded by a mutex: the KMS
// service keeps key metadata in memory, so the store sees only control-plane writes and audit
// batches. Every statement is a constant with bound parameters; every mutation runs in one
// BEGIN IMMEDIATE transaction, and with WAL + synchronous=FULL the WAL is fsynced before
// COMMIT returns, which is what makes an OK from a mutating call durable.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "appliance/store/internal/sqlite_schema.h"
#include "appliance/store/internal/store_rules.h"
#include "appliance/store/store.h"

namespace custos::store {

namespace internal {

Status SqliteError(sqlite3* db, const char* op, int rc) {
  // sqlite3_errmsg describes the most recent failure on `db`; fall back to the code's generic
  // text when the failing call did not set it (e.g. a commit after an automatic rollback).
  const char* text =
      db != nullptr && sqlite3_extended_errcode(db) == rc ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string msg = std::string("store: ") + op + ": " + text;
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
      switch (rc) {
        case SQLITE_CONSTRAINT_PRIMARYKEY:
        case SQLITE_CONSTRAINT_UNIQUE:
          return AlreadyExists(std::move(msg));
        case SQLITE_CONSTRAINT_FOREIGNKEY:
          return NotFound(std::string("store: ") + op + ": key not found (" + text + ")");
        default:
          return InvalidArgument(std::move(msg));
      }
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
      return InternalError(std::move(msg));
    default:
      return Unavailable(std::move(msg));
  }
}

}  // namespace internal

namespace {

using internal::kMaxAuditSeq;
using internal::NotFoundIn;
using internal::SqliteError;

// Stmt is a cached prepared statement lent to one call: parameters are bound in order
// (?1, ?2, ...), and on destruction it is reset and its bindings cleared, so no bound value
// outlives the call inside the connection. Bound data is copied (SQLITE_TRANSIENT).
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* stmt, const char* op) : db_(db), stmt_(stmt), op_(op) {}
  Stmt(Stmt&& other) noexcept
      : db_(other.db_),
        stmt_(std::exchange(other.stmt_, nullptr)),
        op_(other.op_),
        next_(other.next_),
        bind_rc_(other.bind_rc_) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt() {
    if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }

  Stmt& Text(std::string_view v) {
    // A null data pointer would bind SQL NULL; an empty string must stay ''.
    return Bind(sqlite3_bind_text64(stmt_, ++next_, v.empty() ? "" : v.data(), v.size(),
                                    SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  Stmt& Blob(ByteSpan v) {
    // Likewise an empty BLOB must stay a zero-length BLOB, not NULL.
    return Bind(v.empty()
                    ? sqlite3_bind_zeroblob(stmt_, ++next_, 0)
                    : sqlite3_bind_blob64(stmt_, ++next_, v.data(), v.size(), SQLITE_TRANSIENT));
  }
  Stmt& Int(int64_t v) { return Bind(sqlite3_bind_int64(stmt_, ++next_, v)); }
  Stmt& OptInt(const std::optional<int64_t>& v) {
    return v ? Int(*v) : Bind(sqlite3_bind_null(stmt_, ++next_));
  }

  // Step returns true for a row, false when done.
  StatusOr<bool> Step() {
    if (bind_rc_ != SQLITE_OK) return SqliteError(db_, op_, bind_rc_);
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(db_, op_, rc);
  }
  // Rows steps through every remaining row and returns read(*this) for each, in order.
  template <typename Read>
  auto Rows(Read read) -> StatusOr<std::vector<decltype(read(*this))>> {
    std::vector<decltype(read(*this))> out;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, Step());
      if (!row) return out;
      out.push_back(read(*this));
    }
  }

  // Run steps a statement that returns no rows.
  Status Run() {
    ASSIGN_OR_RETURN(bool row, Step());
    if (row) return InternalError(std::string("store: ") + op_ + ": statement returned a row");
    return Status::Ok();
  }

  std::string ColText(int i) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    int n = sqlite3_column_bytes(stmt_, i);
    return p == nullptr ? std::string() : std::string(p, static_cast<size_t>(n));
  }
  Bytes ColBlob(int i) const {
    const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, i));
    int n = sqlite3_column_bytes(stmt_, i);
    return p == nullptr ? Bytes() : Bytes(p, p + n);
  }
  int64_t ColInt(int i) const { return sqlite3_column_int64(stmt_, i); }
  std::optional<int64_t> ColOptInt(int i) const {
    if (sqlite3_column_type(stmt_, i) == SQLITE_NULL) return std::nullopt;
    return ColInt(i);
  }

 private:
  Stmt& Bind(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
    return *this;
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  const char* op_;
  int next_ = 0;
  int bind_rc_ = SQLITE_OK;
};

// Transaction is one BEGIN ... COMMIT; one not committed is rolled back when it goes out of
// scope, so an early return stores nothing.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    if (open_ && !sqlite3_get_autocommit(db_)) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }

  // Begin takes the write lock at once for a mutation (IMMEDIATE), so a busy database fails
  // here (after the busy timeout) rather than half-way through; reads use a deferred BEGIN.
  Status Begin(const char* op, bool write) {
    int rc = sqlite3_exec(db_, write ? "BEGIN IMMEDIATE" : "BEGIN", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_, op, rc);
    open_ = true;
    return Status::Ok();
  }
  Status Commit(const char* op) {
    int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_, op, rc);
    open_ = false;
    return Status::Ok();
  }

 private:
  sqlite3* db_;
  bool open_ = false;
};

// The statements. Each is a named constant; the statement cache is keyed by its address.
#define CUSTOS_KEY_COLUMNS                                                                    \
  "key_id, arn, description, key_spec, key_usage, key_state, creation_date, deletion_date, "  \
  "pending_window_days, rotation_enabled, rotation_period_days, next_rotation_date, policy, " \
  "current_version"
// revision is read with the record but never bound from it: CreateKey stores 1, and UpdateKey
// and AddKeyVersion advance it past the revision they checked.
#define CUSTOS_KEY_READ_COLUMNS CUSTOS_KEY_COLUMNS ", revision"
#define CUSTOS_VERSION_COLUMNS \
  "key_id, version, wrapped_material, public_key, created, rotation_type"
#define CUSTOS_ALIAS_COLUMNS "alias_name, key_id, creation_date, last_updated_date"
#define CUSTOS_ACCESS_KEY_COLUMNS "access_key_id, name, principal_arn, wrapped_secret, created"
#define CUSTOS_AUDIT_COLUMNS "seq, entry, hash, signature"

constexpr char kInsertKey[] = "INSERT INTO keys (" CUSTOS_KEY_COLUMNS
                              ", revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                              "?12, ?13, ?14, 1)";
// Applies only to the revision the record was read at (?15); no row changed means the key is
// absent or changed since (kKeyRevision tells which).
constexpr char kUpdateKey[] =
    "UPDATE keys SET arn = ?2, description = ?3, key_spec = ?4, key_usage = ?5, key_state = ?6, "
    "creation_date = ?7, deletion_date = ?8, pending_window_days = ?9, rotation_enabled = ?10, "
    "rotation_period_days = ?11, next_rotation_date = ?12, policy = ?13, current_version = ?14, "
    "revision = revision + 1 WHERE key_id = ?1 AND revision = ?15";
constexpr char kSelectKey[] = "SELECT " CUSTOS_KEY_READ_COLUMNS " FROM keys WHERE key_id = ?1";
constexpr char kListKeys[] = "SELECT " CUSTOS_KEY_READ_COLUMNS " FROM keys ORDER BY key_id";
constexpr char kKeyExists[] = "SELECT 1 FROM keys WHERE key_id = ?1";
constexpr char kKeyRevision[] = "SELECT revision FROM keys WHERE key_id = ?1";
constexpr char kDeleteKeyTags[] = "DELETE FROM tags WHERE key_id = ?1";
constexpr char kDeleteKeyAliases[] = "DELETE FROM aliases WHERE key_id = ?1";
constexpr char kDeleteKeyVersions[] = "DELETE FROM key_versions WHERE key_id = ?1";
constexpr char kDeleteKey[] = "DELETE FROM keys WHERE key_id = ?1";

constexpr char kInsertVersion[] =
    "INSERT INTO key_versions (" CUSTOS_VERSION_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
constexpr char kSelectVersion[] =
    "SELECT " CUSTOS_VERSION_COLUMNS " FROM key_versions WHERE key_id = ?1 AND version = ?2";
constexpr char kListVersions[] =
    "SELECT " CUSTOS_VERSION_COLUMNS " FROM key_versions WHERE key_id = ?1 ORDER BY version";
constexpr char kVersionExists[] = "SELECT 1 FROM key_versions WHERE key_id = ?1 AND version = ?2";

constexpr char kInsertAlias[] =
    "INSERT INTO aliases (" CUSTOS_ALIAS_COLUMNS ") VALUES (?1, ?2, ?3, ?4)";
constexpr char kUpdateAlias[] =
    "UPDATE aliases SET key_id = ?2, last_updated_date = ?3 WHERE alias_name = ?1";
constexpr char kDeleteAlias[] = "DELETE FROM aliases WHERE alias_name = ?1";
constexpr char kSelectAlias[] =
    "SELECT " CUSTOS_ALIAS_COLUMNS " FROM aliases WHERE alias_name = ?1";
constexpr char kListAliases[] = "SELECT " CUSTOS_ALIAS_COLUMNS " FROM aliases ORDER BY alias_name";
constexpr char kListKeyAliases[] =
    "SELECT " CUSTOS_ALIAS_COLUMNS " FROM aliases WHERE key_id = ?1 ORDER BY alias_name";

constexpr char kUpsertTag[] =
    "INSERT INTO tags (key_id, tag_key, tag_value) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (key_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value";
constexpr char kDeleteTag[] = "DELETE FROM tags WHERE key_id = ?1 AND tag_key = ?2";
constexpr char kListTags[] =
    "SELECT tag_key, tag_value FROM tags WHERE key_id = ?1 ORDER BY tag_key";

constexpr char kInsertAccessKey[] =
    "INSERT INTO access_keys (" CUSTOS_ACCESS_KEY_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr char kSelectAccessKey[] =
    "SELECT " CUSTOS_ACCESS_KEY_COLUMNS " FROM access_keys WHERE access_key_id = ?1";
constexpr char kListAccessKeys[] =
    "SELECT " CUSTOS_ACCESS_KEY_COLUMNS " FROM access_keys ORDER BY access_key_id";
constexpr char kDeleteAccessKey[] = "DELETE FROM access_keys WHERE access_key_id = ?1";

// The audit writes' transaction control, run through the statement cache (AuditWriteScope).
constexpr char kSyncNormal[] = "PRAGMA synchronous = NORMAL";
constexpr char kSyncFull[] = "PRAGMA synchronous = FULL";
constexpr char kBeginImmediate[] = "BEGIN IMMEDIATE";
constexpr char kCommit[] = "COMMIT";
constexpr char kRollback[] = "ROLLBACK";

// Every audit statement names its log as ?1: the store's own, or ReadAuditLog's.
constexpr char kLastSeq[] = "SELECT seq FROM audit WHERE log = ?1 ORDER BY seq DESC LIMIT 1";
constexpr char kInsertAudit[] =
    "INSERT INTO audit (log, " CUSTOS_AUDIT_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr char kSignAudit[] =
    "UPDATE audit SET signature = ?3 WHERE log = ?1 AND seq = ?2 AND length(signature) = 0";
constexpr char kAuditSigned[] =
    "SELECT length(signature) > 0 FROM audit WHERE log = ?1 AND seq = ?2";
constexpr char kLastAudit[] =
    "SELECT " CUSTOS_AUDIT_COLUMNS " FROM audit WHERE log = ?1 ORDER BY seq DESC LIMIT 1";
// The WHERE term matches the partial index audit_signed, so this is one index probe.
constexpr char kLastSignedAudit[] = "SELECT " CUSTOS_AUDIT_COLUMNS
                                    " FROM audit WHERE log = ?1 AND length(signature) > 0 "
                                    "ORDER BY seq DESC LIMIT 1";
constexpr char kReadAudit[] =
    "SELECT " CUSTOS_AUDIT_COLUMNS " FROM audit WHERE log = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3";
// The logs, one index seek each (a loose index scan): the next log is the first (log, seq)
// entry above the previous log, so the cost grows with the number of logs, not of records.
constexpr char kListAuditLogs[] =
    "WITH RECURSIVE logs (name) AS ("
    " SELECT (SELECT log FROM audit ORDER BY log LIMIT 1)"
    " UNION ALL"
    " SELECT (SELECT log FROM audit WHERE log > logs.name ORDER BY log LIMIT 1)"
    " FROM logs WHERE logs.name IS NOT NULL)"
    " SELECT name FROM logs WHERE name IS NOT NULL ORDER BY name";

// The change log. The write lock every mutation holds (BEGIN IMMEDIATE) orders the versions:
// each mutation reads the counter, appends after it and advances it before COMMIT, and no
// other writer runs in between, so versions are given out in commit order without a gap.
constexpr char kRecordChange[] =
    "INSERT INTO state_changes (version, key_id, alias_name) "
    "SELECT version + 1, ?1, ?2 FROM custos_state";
constexpr char kAdvanceState[] = "UPDATE custos_state SET version = version + 1";
// ?1 is how many changes are kept.
constexpr char kTrimChanges[] =
    "DELETE FROM state_changes WHERE version <= (SELECT version FROM custos_state) - ?1";
constexpr char kStateVersion[] = "SELECT version FROM custos_state";
constexpr char kOldestChange[] = "SELECT min(version) FROM state_changes";
constexpr char kChangesSince[] =
    "SELECT version, key_id, alias_name FROM state_changes WHERE version > ?1 "
    "ORDER BY version LIMIT ?2";

constexpr char kUpsertMeta[] =
    "INSERT INTO meta (name, value) VALUES (?1, ?2) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value";
constexpr char kSelectMeta[] = "SELECT value FROM meta WHERE name = ?1";

#undef CUSTOS_KEY_COLUMNS
#undef CUSTOS_KEY_READ_COLUMNS
#undef CUSTOS_VERSION_COLUMNS
#undef CUSTOS_ALIAS_COLUMNS
#undef CUSTOS_ACCESS_KEY_COLUMNS
#undef CUSTOS_AUDIT_COLUMNS

void BindKey(Stmt& s, const KeyRecord& k) {
  s.Text(k.key_id)
      .Text(k.arn)
      .Text(k.description)
      .Text(k.key_spec)
      .Text(k.key_usage)
      .Text(k.key_state)
      .Int(k.creation_date)
      .OptInt(k.deletion_date)
      .Int(k.pending_window_days)
      .Int(k.rotation_enabled ? 1 : 0)
      .Int(k.rotation_period_days)
      .OptInt(k.next_rotation_date)
      .Text(k.policy)
      .Int(k.current_version);
}

KeyRecord ReadKey(const Stmt& s) {
  KeyRecord k;
  k.key_id = s.ColText(0);
  k.arn = s.ColText(1);
  k.description = s.ColText(2);
  k.key_spec = s.ColText(3);
  k.key_usage = s.ColText(4);
  k.key_state = s.ColText(5);
  k.creation_date = s.ColInt(6);
  k.deletion_date = s.ColOptInt(7);
  k.pending_window_days = static_cast<int32_t>(s.ColInt(8));
  k.rotation_enabled = s.ColInt(9) != 0;
  k.rotation_period_days = static_cast<int32_t>(s.ColInt(10));
  k.next_rotation_date = s.ColOptInt(11);
  k.policy = s.ColText(12);
  k.current_version = static_cast<uint32_t>(s.ColInt(13));
  k.revision = static_cast<uint64_t>(s.ColInt(14));
  return k;
}

void BindVersion(Stmt& s, const KeyVersion& v) {
  s.Text(v.key_id)
      .Int(v.version)
      .Blob(v.wrapped_material)
      .Blob(v.public_key)
      .Int(v.created)
      .Text(v.rotation_type);
}

KeyVersion ReadVersion(const Stmt& s) {
  KeyVersion v;
  v.key_id = s.ColText(0);
  v.version = static_cast<uint32_t>(s.ColInt(1));
  v.wrapped_material = s.ColBlob(2);
  v.public_key = s.ColBlob(3);
  v.created = s.ColInt(4);
  v.rotation_type = s.ColText(5);
  return v;
}

AliasRecord ReadAlias(const Stmt& s) {
  return AliasRecord{s.ColText(0), s.ColText(1), s.ColInt(2), s.ColInt(3)};
}

AccessKeyRecord ReadAccessKey(const Stmt& s) {
  return AccessKeyRecord{s.ColText(0), s.ColText(1), s.ColText(2), s.ColBlob(3), s.ColInt(4)};
}

AuditRecord ReadAuditRecord(const Stmt& s) {
  return AuditRecord{static_cast<uint64_t>(s.ColInt(0)), s.ColText(1), s.ColBlob(2), s.ColBlob(3)};
}

// QueryText runs a constant statement and returns its first row's first column as text.
StatusOr<std::string> QueryText(sqlite3* db, const char* op, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db, op, rc);
  rc = sqlite3_step(raw);
  std::string out;
  if (rc == SQLITE_ROW) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(raw, 0));
    if (p != nullptr) out.assign(p, static_cast<size_t>(sqlite3_column_bytes(raw, 0)));
  }
  Status st =
      rc == SQLITE_ROW ? Status::Ok() : SqliteError(db, op, rc == SQLITE_DONE ? SQLITE_ERROR : rc);
  sqlite3_finalize(raw);
  if (!st.ok()) return st;
  return out;
}

// SetAndCheckPragma runs `set` and then `get`, and fails unless `get` answers `want`: a pragma
// SQLite cannot honour (WAL on a filesystem without shared memory, foreign keys in a build
// without them) is ignored silently, and custos must not run on weaker guarantees than it
// promises.
Status SetAndCheckPragma(sqlite3* db, const char* set, const char* get, const char* want) {
  constexpr char kOp[] = "open";
  int rc = sqlite3_exec(db, set, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db, kOp, rc);
  ASSIGN_OR_RETURN(std::string now, QueryText(db, kOp, get));
  if (now != want) {
    return Unavailable(std::string("store: open: ") + get + " is '" + now + "', need '" + want +
                       "'");
  }
  return Status::Ok();
}

// PrepareFile creates the database file with mode 0600 before SQLite sees it (SQLite would
// create it 0644 less the umask, and gives its -wal and -shm files the database's mode), and
// takes group and other access away from an existing database and its side files.
Status PrepareFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Unavailable("store: open: cannot open " + path + ": " + std::strerror(errno));
  }
  struct stat st;
  Status result;
  if (::fstat(fd, &st) != 0) {
    result = Unavailable("store: open: cannot stat " + path + ": " + std::strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    result = FailedPrecondition("store: open: " + path + " is not a regular file");
  } else if ((st.st_mode & 077) != 0 && ::fchmod(fd, 0600) != 0) {
    result = Unavailable("store: open: cannot chmod " + path + ": " + std::strerror(errno));
  }
  ::close(fd);
  if (!result.ok()) return result;
  for (const char* suffix : {"-wal", "-shm", "-journal"}) {
    std::string side = path + suffix;
    if (::stat(side.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0 &&
        ::chmod(side.c_str(), 0600) != 0) {
      return Unavailable("store: open: cannot chmod " + side + ": " + std::strerror(errno));
    }
  }
  return Status::Ok();
}

class SqliteStore final : public Store, public internal::ChangeLogSettings {
 public:
  SqliteStore(sqlite3* db, std::string path, std::string audit_log)
      : db_(db), path_(std::move(path)), audit_log_(std::move(audit_log)) {}
  ~SqliteStore() override {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_finalize(read_stmt_);
    sqlite3_close_v2(read_db_);
    sqlite3_close_v2(db_);
    if (wal_fd_ >= 0) ::close(wal_fd_);
  }
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // Configure sets the connection up and migrates the schema; see OpenSqliteStore.
  Status Configure() {
    std::lock_guard<std::mutex> lock(mu_);
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    // DEFENSIVE forbids writable_schema and other ways of corrupting the file through SQL;
    // trusted_schema off means the schema can call no function with side effects.
    sqlite3_db_config(db_, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
    sqlite3_db_config(db_, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
    // Refuse a newer or foreign database before writing anything to it (journal_mode=WAL is
    // itself a write to the header).
    RETURN_IF_ERROR(internal::CheckSchemaHeader(db_, kSchemaVersion));
    RETURN_IF_ERROR(
        SetAndCheckPragma(db_, "PRAGMA journal_mode = WAL", "PRAGMA journal_mode", "wal"));
    RETURN_IF_ERROR(SetAndCheckPragma(db_, "PRAGMA synchronous = FULL", "PRAGMA synchronous", "2"));
    RETURN_IF_ERROR(SetAndCheckPragma(db_, "PRAGMA foreign_keys = ON", "PRAGMA foreign_keys", "1"));
    // A checkpoint runs inside the commit that crosses this many log pages, with the
    // connection held: 250 pages (1 MiB) instead of SQLite's 1,000 keeps each such stall of the
    // request path's audit writes a quarter as long (docs/storage.md).
    RETURN_IF_ERROR(SetAndCheckPragma(db_, "PRAGMA wal_autocheckpoint = 250", "PRAGMA wal_autocheckpoint", "250"));
    return internal::Migrate(db_, internal::Migrations());
  }

  StatusOr<std::string> QueryForTesting(const char* sql) {
    std::lock_guard<std::mutex> lock(mu_);
    return QueryText(db_, "query", sql);
  }

  void SetStateChangesKept(uint64_t kept) override { kept_ = kept; }

  // ---- Keys.

  Status CreateKey(const KeyRecord& key, const KeyVersion& first_version) override {
    constexpr char kOp[] = "create key";
    RETURN_IF_ERROR(internal::CheckNewKey(key, first_version));
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Begin(kOp, true));
    {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kInsertKey));
      BindKey(s, key);
      RETURN_IF_ERROR(s.Run());
    }
    {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kInsertVersion));
      BindVersion(s, first_version);
      RETURN_IF_ERROR(s.Run());
    }
    RETURN_IF_ERROR(LogChanges(kOp, {{key.key_id, ""}}));
    return tx.Commit(kOp);
  }

  StatusOr<KeyRecord> GetKey(std::string_view key_id) override {
    constexpr char kOp[] = "get key";
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kSelectKey));
    s.Text(key_id);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return NotFoundIn(kOp, "key");
    return ReadKey(s);
  }

  StatusOr<std::vector<KeyRecord>> ListKeys() override {
    constexpr char kOp[] = "list keys";
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kListKeys));
    return s.Rows([](Stmt& r) { return ReadKey(r); });
  }

  Status UpdateKey(const KeyRecord& key) override {
    constexpr char kOp[] = "update key";
    RETURN_IF_ERROR(internal::CheckRevision(kOp, key));
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Begin(kOp, true));
    RETURN_IF_ERROR(UpdateRecord(kOp, key));
    RETURN_IF_ERROR(CheckCurrentVersion(kOp, key));
    RETURN_IF_ERROR(LogChanges(kOp, {{key.key_id, ""}}));
    return tx.Commit(kOp);
  }

  Status AddKeyVersion(const KeyRecord& key, const KeyVersion& version) override {
    constexpr char kOp[] = "add key version";
    RETURN_IF_ERROR(internal::CheckVersionOfKey(kOp, key, version));
    RETURN_IF_ERROR(internal::CheckRevision(kOp, key));
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Begin(kOp, true));
    // The record first: a missing key is kNotFound and a stale record kAborted before the
    // version is looked at.
    RETURN_IF_ERROR(UpdateRecord(kOp, key));
    {
      // A duplicate version fails on the primary key (kAlreadyExists).
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kInsertVersion));
      BindVersion(s, version);
      RETURN_IF_ERROR(s.Run());
    }
    RETURN_IF_ERROR(CheckCurrentVersion(kOp, key));
    RETURN_IF_ERROR(LogChanges(kOp, {{key.key_id, ""}}));
    return tx.Commit(kOp);
  }

  StatusOr<KeyVersion> GetKeyVersion(std::string_view key_id, uint32_t version) override {
    constexpr char kOp[] = "get key version";
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kSelectVersion));
    s.Text(key_id).Int(version);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return NotFoundIn(kOp, "key version");
    return ReadVersion(s);
  }

  StatusOr<std::vector<KeyVersion>> ListKeyVersions(std::string_view key_id) override {
    constexpr char kOp[] = "list key versions";
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Begin(kOp, false));
    RETURN_IF_ERROR(RequireKey(kOp, key_id));
    ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kListVersions));
    s.Text(key_id);
    return s.Rows([](Stmt& r) { return ReadVersion(r); });
  }

  Status DeleteKey(std::string_view key_id) override {
    constexpr char kOp[] = "delete key";
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Begin(kOp, true));
    // The key's aliases go with it: the change log names each, after the key.
    std::vector<AliasRecord> aliases;
    {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kListKeyAliases));
      s.Text(key_id);
      ASSIGN_OR_RETURN(aliases, s.Rows([](Stmt& r) { return ReadAlias(r); }));
    }
    // The foreign keys cascade too; deleting the dependents explicitly keeps DeleteKey
    // complete even on a connection where foreign keys were off.
    for (const char* sql : {kDeleteKeyTags, kDeleteKeyAliases, kDeleteKeyVersions}) {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, sql));
      s.Text(key_id);
      RETURN_IF_ERROR(s.Run());
    }
    {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kDeleteKey));
      s.Text(key_id);
      RETURN_IF_ERROR(s.Run());
      if (sqlite3_changes(db_) == 0) return NotFoundIn(kOp, "key");
    }
    std::vector<Touched> touched = {{key_id, ""}};
    for (const AliasRecord& a : aliases) touched.push_back({"", a.alias_name});
    RETURN_IF_ERROR(LogChanges(kOp, touched));
    return tx.Commit(kOp);
  }

  // ---- Aliases.

  Status CreateAlias(const AliasRecord& alias) override {
    constexpr char kOp[] = "create alias";
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Begin(kOp, true));
    {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kInsertAlias));
      s.Text(alias.alias_name)
          .Text(alias.key_id)
          .Int(alias.creation_date)
          .Int(alias.last_updated_date);
      RETURN_IF_ERROR(s.Run());
    }
    RETURN_IF_ERROR(LogChanges(kOp, {{"", alias.alias_name}}));
    return tx.Commit(kOp);
  }

  Status UpdateAlias(std::string_view alias_name, std::string_view key_id,
                     int64_t updated) override {
    constexpr char kOp[] = "update alias";
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Begin(kOp, true));
    {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kUpdateAlias));
      s.Text(alias_name).Text(key_id).Int(updated);
      RETURN_IF_ERROR(s.Run());
      if (sqlite3_changes(db_) == 0) return NotFoundIn(kOp, "alias");
    }
    RETURN_IF_ERROR(LogChanges(kOp, {{"", alias_name}}));
    return tx.Commit(kOp);
  }

  Status DeleteAlias(std::string_view alias_name) override {
    constexpr char kOp[] = "delete alias";
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Begin(kOp, true));
    {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kDeleteAlias));
      s.Text(alias_name);
      RETURN_IF_ERROR(s.Run());
      if (sqlite3_changes(db_) == 0) return NotFoundIn(kOp, "alias");
    }
    RETURN_IF_ERROR(LogChanges(kOp, {{"", alias_name}}));
    return tx.Commit(kOp);
  }

  StatusOr<AliasRecord> GetAlias(std::string_view alias_name) override {
    constexpr char kOp[] = "get alias";
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kSelectAlias));
    s.Text(alias_name);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return NotFoundIn(kOp, "alias");
    return ReadAlias(s);
  }

  StatusOr<std::vector<AliasRecord>> ListAliases(std::optional<std::string_view> key_id) override {
    constexpr char kOp[] = "list aliases";
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Begin(kOp, false));
    if (key_id) RETURN_IF_ERROR(RequireKey(kOp, *key_id));
    ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, key_id ? kListKeyAliases : kListAliases));
    if (key_id) s.Text(*key_id);
    return s.Rows([](Stmt& r) { return ReadAlias(r); });
  }

  // ---- Tags.

  Status TagResource(std::string_view key_id, const std::vector<Tag>& tags) override {
    constexpr char kOp[] = "tag resource";
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Begin(kOp, true));
    RETURN_IF_ERROR(RequireKey(kOp, key_id));
    for (const Tag& tag : tags) {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kUpsertTag));
      s.Text(key_id).Text(tag.key).Text(tag.value);
      RETURN_IF_ERROR(s.Run());
    }
    RETURN_IF_ERROR(LogChanges(kOp, {{key_id, ""}}));
    return tx.Commit(kOp);
  }

  Status UntagResource(std::string_view key_id, const std::vector<std::string>& tag_keys) override {
    constexpr char kOp[] = "untag resource";
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Begin(kOp, true));
    RETURN_IF_ERROR(RequireKey(kOp, key_id));
    for (const std::string& tag_key : tag_keys) {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kDeleteTag));
      s.Text(key_id).Text(tag_key);
      RETURN_IF_ERROR(s.Run());
    }
    RETURN_IF_ERROR(LogChanges(kOp, {{key_id, ""}}));
    return tx.Commit(kOp);
  }

  StatusOr<std::vector<Tag>> ListTags(std::string_view key_id) override {
    constexpr char kOp[] = "list tags";
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Begin(kOp, false));
    RETURN_IF_ERROR(RequireKey(kOp, key_id));
    ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kListTags));
    s.Text(key_id);
    return s.Rows([](Stmt& r) { return Tag{r.ColText(0), r.ColText(1)}; });
  }

  // ---- Access keys.

  Status PutAccessKey(const AccessKeyRecord& key) override {
    constexpr char kOp[] = "put access key";
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Begin(kOp, true));
    {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kInsertAccessKey));
      s.Text(key.access_key_id)
          .Text(key.name)
          .Text(key.principal_arn)
          .Blob(key.wrapped_secret)
          .Int(key.created);
      RETURN_IF_ERROR(s.Run());
    }
    return tx.Commit(kOp);
  }

  StatusOr<AccessKeyRecord> GetAccessKey(std::string_view access_key_id) override {
    constexpr char kOp[] = "get access key";
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kSelectAccessKey));
    s.Text(access_key_id);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return NotFoundIn(kOp, "access key");
    return ReadAccessKey(s);
  }

  StatusOr<std::vector<AccessKeyRecord>> ListAccessKeys() override {
    constexpr char kOp[] = "list access keys";
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kListAccessKeys));
    return s.Rows([](Stmt& r) { return ReadAccessKey(r); });
  }

  Status DeleteAccessKey(std::string_view access_key_id) override {
    constexpr char kOp[] = "delete access key";
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Begin(kOp, true));
    {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kDeleteAccessKey));
      s.Text(access_key_id);
      RETURN_IF_ERROR(s.Run());
      if (sqlite3_changes(db_) == 0) return NotFoundIn(kOp, "access key");
    }
    return tx.Commit(kOp);
  }

  // ---- Audit.

  Status AppendAudit(const std::vector<AuditRecord>& records, Durability durability) override {
    constexpr char kOp[] = "append audit";
    if (records.empty()) return Status::Ok();
    // The batch must be consecutive in itself; checked before touching the database.
    RETURN_IF_ERROR(internal::CheckAuditBatch(records));
    std::lock_guard<std::mutex> lock(mu_);
    AuditWriteScope tx(*this);
    RETURN_IF_ERROR(tx.Begin(kOp, durability));
    uint64_t last = 0;
    {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kLastSeq));
      s.Text(audit_log_);
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (row) last = static_cast<uint64_t>(s.ColInt(0));
    }
    if (records.front().seq != last + 1) return internal::AuditNotNext(records.front().seq, last);
    for (const AuditRecord& r : records) {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kInsertAudit));
      s.Text(audit_log_)
          .Int(static_cast<int64_t>(r.seq))
          .Text(r.entry)
          .Blob(r.hash)
          .Blob(r.signature);
      RETURN_IF_ERROR(s.Run());
    }
    return tx.Commit(kOp);
  }

  Status SignAudit(uint64_t seq, ByteSpan signature, Durability durability) override {
    constexpr char kOp[] = "sign audit";
    RETURN_IF_ERROR(internal::CheckAuditSignature(seq, signature));
    std::lock_guard<std::mutex> lock(mu_);
    AuditWriteScope tx(*this);
    RETURN_IF_ERROR(tx.Begin(kOp, durability));
    {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kSignAudit));
      s.Text(audit_log_).Int(static_cast<int64_t>(seq)).Blob(signature);
      RETURN_IF_ERROR(s.Run());
    }
    if (sqlite3_changes(db_) != 1) {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kAuditSigned));
      s.Text(audit_log_).Int(static_cast<int64_t>(seq));
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return NotFoundIn(kOp, "audit record");
      return internal::AuditSignedAlready(seq);
    }
    return tx.Commit(kOp);
  }

  // SyncAudit flushes the write-ahead log, where every committed transaction is, with
  // fdatasync(2) on a descriptor of its own (the page cache is per file, not per descriptor):
  // what SQLite's own commit does with synchronous=FULL, without holding the connection, so
  // requests keep writing while the disk flushes.
  Status SyncAudit() override {
    int fd = -1;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (wal_fd_ < 0) {
        const char* db_path = sqlite3_db_filename(db_, "main");
        if (db_path == nullptr || *db_path == 0)
          return Unavailable("store: sync audit: the database has no file");
        std::string wal = std::string(db_path) + "-wal";
        wal_fd_ = ::open(wal.c_str(), O_RDONLY | O_CLOEXEC);
        if (wal_fd_ < 0)
          return Unavailable("store: sync audit: cannot open " + wal + ": " + std::strerror(errno));
      }
      fd = wal_fd_;
    }
    // The log is never deleted or replaced while this connection is open (SQLite rewinds it in
    // place after a checkpoint, and a checkpoint fsyncs the database first), so the descriptor
    // stays the log's.
    if (::fdatasync(fd) != 0)
      return Unavailable(std::string("store: sync audit: fdatasync: ") + std::strerror(errno));
    return Status::Ok();
  }

  StatusOr<AuditRecord> LastAudit() override { return NewestAudit("last audit", kLastAudit); }

  StatusOr<AuditRecord> LastSignedAudit() override {
    return NewestAudit("last signed audit", kLastSignedAudit);
  }

  StatusOr<std::vector<AuditRecord>> ReadAudit(uint64_t from_seq, size_t limit) override {
    return ReadAuditOf("read audit", audit_log_, from_seq, limit);
  }

  // ---- The change log.

  StatusOr<uint64_t> StateVersion() override {
    constexpr char kOp[] = "state version";
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kStateVersion));
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return InternalError("store: state version: custos_state holds no row");
    return static_cast<uint64_t>(s.ColInt(0));
  }

  StatusOr<std::vector<StateChange>> StateChangesSince(uint64_t version, size_t limit) override {
    constexpr char kOp[] = "state changes since";
    std::lock_guard<std::mutex> lock(mu_);
    // One read transaction: the bounds and the changes come from one snapshot.
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Begin(kOp, false));
    uint64_t newest = 0;
    std::optional<uint64_t> oldest;
    {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kStateVersion));
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return InternalError("store: state changes since: custos_state holds no row");
      newest = static_cast<uint64_t>(s.ColInt(0));
    }
    {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kOldestChange));
      ASSIGN_OR_RETURN(bool row, s.Step());
      std::optional<int64_t> min = row ? s.ColOptInt(0) : std::nullopt;
      if (min) oldest = static_cast<uint64_t>(*min);
    }
    RETURN_IF_ERROR(internal::CheckStateChangesSince(version, newest, oldest));
    ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kChangesSince));
    s.Int(static_cast<int64_t>(version)).Int(internal::RowLimit(limit));
    return s.Rows([](Stmt& r) {
      return StateChange{static_cast<uint64_t>(r.ColInt(0)), r.ColText(1), r.ColText(2)};
    });
  }

  // ---- Other nodes' audit logs.

  StatusOr<std::vector<std::string>> ListAuditLogs() override {
    constexpr char kOp[] = "list audit logs";
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kListAuditLogs));
    return s.Rows([](Stmt& r) { return r.ColText(0); });
  }

  StatusOr<std::vector<AuditRecord>> ReadAuditLog(std::string_view log, uint64_t from_seq,
                                                  size_t limit) override {
    constexpr char kOp[] = "read audit log";
    RETURN_IF_ERROR(internal::CheckAuditLogName(kOp, log));
    return ReadAuditOf(kOp, log, from_seq, limit);
  }

  // ---- Meta.

  Status PutMeta(std::string_view name, std::string_view value) override {
    constexpr char kOp[] = "put meta";
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Begin(kOp, true));
    {
      ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kUpsertMeta));
      s.Text(name).Text(value);
      RETURN_IF_ERROR(s.Run());
    }
    return tx.Commit(kOp);
  }

  StatusOr<std::string> GetMeta(std::string_view name) override {
    constexpr char kOp[] = "get meta";
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Stmt s, Prepare(kOp, kSelectMeta));
    s.Text(name);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return NotFoundIn(kOp, "meta value");
    return s.ColText(0);
  }

 private:
  static constexpr int kBusyTimeoutMs = 5000;

  // Prepare lends the cached statement for `sql` (a constant above), preparing it on first
  // use. A statement is lent to one Stmt at a time: a call never holds two Stmts for the same
  // constant at once (the second would reset the first). Requires mu_.
  StatusOr<Stmt> Prepare(const char* op, const char* sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
      sqlite3_stmt* stmt = nullptr;
      int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
      if (rc != SQLITE_OK) {
        sqlite3_finalize(stmt);
        return SqliteError(db_, op, rc);
      }
      it = cache_.emplace(sql, stmt).first;
    }
    return Stmt(db_, it->second, op);
  }

  // RequireKey is kNotFound unless the key exists. Requires mu_.
  Status RequireKey(const char* op, std::string_view key_id) {
    ASSIGN_OR_RETURN(Stmt s, Prepare(op, kKeyExists));
    s.Text(key_id);
    ASSIGN_OR_RETURN(bool row, s.Step());
    return row ? Status::Ok() : NotFoundIn(op, "key");
  }

  // CheckCurrentVersion refuses a record whose current_version names no stored version, so
  // the store never holds a key that new ciphertexts could not be made under. Requires mu_.
  Status CheckCurrentVersion(const char* op, const KeyRecord& key) {
    ASSIGN_OR_RETURN(Stmt s, Prepare(op, kVersionExists));
    s.Text(key.key_id).Int(key.current_version);
    ASSIGN_OR_RETURN(bool row, s.Step());
    return row ? Status::Ok() : internal::CurrentVersionMissing(op);
  }

  // UpdateRecord stores `key` over the stored record if that is still at key.revision, and
  // advances the revision: kNotFound if the key is absent, kAborted if it changed since it was
  // read. Requires mu_ and a write transaction.
  Status UpdateRecord(const char* op, const KeyRecord& key) {
    {
      ASSIGN_OR_RETURN(Stmt s, Prepare(op, kUpdateKey));
      BindKey(s, key);
      s.Int(static_cast<int64_t>(key.revision));
      RETURN_IF_ERROR(s.Run());
      if (sqlite3_changes(db_) == 1) return Status::Ok();
    }
    ASSIGN_OR_RETURN(Stmt s, Prepare(op, kKeyRevision));
    s.Text(key.key_id);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return NotFoundIn(op, "key");
    return internal::KeyChangedSinceRead(op, static_cast<uint64_t>(s.ColInt(0)), key.revision);
  }

  // Touched is what one change is about: a key (its record, versions or tags) or an alias.
  struct Touched {
    std::string_view key_id;
    std::string_view alias_name;
  };

  // LogChanges appends one change per entry of `touched`, in order, with the next versions,
  // and trims the log to the newest kept_, all in the caller's write transaction (whose lock
  // keeps every other writer out until COMMIT). Requires mu_.
  Status LogChanges(const char* op, const std::vector<Touched>& touched) {
    for (const Touched& t : touched) {
      {
        ASSIGN_OR_RETURN(Stmt s, Prepare(op, kRecordChange));
        s.Text(t.key_id).Text(t.alias_name);
        RETURN_IF_ERROR(s.Run());
      }
      ASSIGN_OR_RETURN(Stmt s, Prepare(op, kAdvanceState));
      RETURN_IF_ERROR(s.Run());
      if (sqlite3_changes(db_) != 1) {
        return InternalError(std::string("store: ") + op + ": custos_state holds no row");
      }
    }
    ASSIGN_OR_RETURN(Stmt s, Prepare(op, kTrimChanges));
    s.Int(static_cast<int64_t>(kept_.load()));
    return s.Run();
  }

  // ReadAuditOf reads a page of a log through a second, read-only connection: with the WAL it
  // reads the committed log while the main connection writes, so a page of up to 1,000 records
  // (each witnessing keeper's, an export's) does not hold the request path's audit writes
  // behind mu_ for its length.
  StatusOr<std::vector<AuditRecord>> ReadAuditOf(const char* op, std::string_view log,
                                                 uint64_t from_seq, size_t limit) {
    if (limit == 0 || from_seq > kMaxAuditSeq) return std::vector<AuditRecord>();
    std::lock_guard<std::mutex> lock(read_mu_);
    if (read_stmt_ == nullptr) RETURN_IF_ERROR(OpenReader(op));
    Stmt s(read_db_, read_stmt_, op);
    s.Text(log).Int(static_cast<int64_t>(from_seq)).Int(internal::RowLimit(limit));
    return s.Rows([](Stmt& r) { return ReadAuditRecord(r); });
  }

  StatusOr<AuditRecord> NewestAudit(const char* op, const char* sql) {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Stmt s, Prepare(op, sql));
    s.Text(audit_log_);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return AuditRecord{};
    return ReadAuditRecord(s);
  }

  // OpenReader opens the read-only connection of ReadAuditLog. Requires read_mu_.
  Status OpenReader(const char* op) {
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                             nullptr);
    if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* stmt = nullptr;
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v3(db, kReadAudit, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) {
      Status st = SqliteError(db, op, rc);
      sqlite3_finalize(stmt);
      sqlite3_close_v2(db);
      return st;
    }
    read_db_ = db;
    read_stmt_ = stmt;
    return Status::Ok();
  }

  // ExecCached runs a statement without results through the statement cache. Requires mu_.
  Status ExecCached(const char* op, const char* sql) {
    ASSIGN_OR_RETURN(Stmt s, Prepare(op, sql));
    return s.Run();
  }

  // AuditWriteScope is the audit writes' IMMEDIATE transaction; for a kWritten write it also
  // switches the connection to synchronous=NORMAL (in WAL mode: commit writes the log without
  // fsync) and back to FULL at the end. Through cached statements: audit writes run once per
  // group-commit round on the request path, and sqlite3_exec would parse the two PRAGMAs,
  // BEGIN and COMMIT again every time. Requires mu_.
  class AuditWriteScope {
   public:
    explicit AuditWriteScope(SqliteStore& store) : store_(store) {}
    AuditWriteScope(const AuditWriteScope&) = delete;
    AuditWriteScope& operator=(const AuditWriteScope&) = delete;
    ~AuditWriteScope() {
      if (open_ && !sqlite3_get_autocommit(store_.db_)) (void)store_.ExecCached("audit rollback", kRollback);
      if (relaxed_) (void)store_.ExecCached("audit sync mode", kSyncFull);
    }
    Status Begin(const char* op, Durability durability) {
      if (durability != Durability::kDurable) {
        RETURN_IF_ERROR(store_.ExecCached(op, kSyncNormal));
        relaxed_ = true;
      }
      RETURN_IF_ERROR(store_.ExecCached(op, kBeginImmediate));
      open_ = true;
      return Status::Ok();
    }
    Status Commit(const char* op) {
      RETURN_IF_ERROR(store_.ExecCached(op, kCommit));
      open_ = false;
      return Status::Ok();
    }

   private:
    SqliteStore& store_;
    bool relaxed_ = false;
    bool open_ = false;
  };

  std::mutex mu_;
  sqlite3* const db_;
  const std::string path_;
  std::mutex read_mu_;
  sqlite3* read_db_ = nullptr;         // guarded by read_mu_: ReadAuditLog's connection
  sqlite3_stmt* read_stmt_ = nullptr;  // guarded by read_mu_
  const std::string audit_log_;  // the log this store's audit calls act on
  std::atomic<uint64_t> kept_{internal::kStateChangesKept};  // changes the log keeps
  int wal_fd_ = -1;  // guarded by mu_; opened by the first SyncAudit
  std::unordered_map<const char*, sqlite3_stmt*> cache_;  // guarded by mu_
};

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path, StoreOptions options) {
  RETURN_IF_ERROR(internal::CheckAuditLogName("open", options.audit_log));
  RETURN_IF_ERROR(PrepareFile(path));
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
      nullptr);
  if (rc != SQLITE_OK) {
    Status st = SqliteError(db, "open", rc);
    sqlite3_close_v2(db);  // a harmless no-op on nullptr
    return st;
  }
  auto store = std::make_unique<SqliteStore>(db, path, std::move(options.audit_log));
  RETURN_IF_ERROR(store->Configure());
  return std::unique_ptr<Store>(std::move(store));
}

namespace internal {

StatusOr<std::string> QueryForTesting(Store& store, const char* sql) {
  auto* sqlite = dynamic_cast<SqliteStore*>(&store);
  if (sqlite == nullptr) return InvalidArgument("store: query: not a SQLite store");
  return sqlite->QueryForTesting(sql);
}

}  // namespace internal

}  // namespace custos::store
