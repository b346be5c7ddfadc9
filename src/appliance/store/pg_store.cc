// The PostgreSQL backend of Store (docs/storage.md "PostgreSQL"), for several appliance nodes
// sharing one database. A small pool of libpq connections, made on demand; every statement is
// a constant sent with binary parameters; every mutation is one explicit BEGIN ... COMMIT at
// READ COMMITTED, committed with synchronous_commit on (the WAL is flushed before COMMIT
// returns) unless the caller asked for Durability::kWritten.
//
// Reconnection: a call that fails because its connection broke, or because the server turned
// out to be read-only (the old primary after a failover), closes that connection and every
// idle one, and runs once more on a fresh connection, which libpq makes to whichever host of a
// multi-host URL accepts writes (target_session_attrs=read-write), but only where running it
// again cannot apply it twice (PgSession::RetrySafe): reads always; writes only when the
// failure came before their COMMIT was sent, because a transaction whose connection is lost
// before COMMIT is rolled back by the server. A failure during COMMIT itself is returned as
// kUnavailable saying that the outcome is unknown (the commit record may have been written),
// as for a lost network reply; the caller re-reads (the audit writer re-reads LastAudit, and
// seq continuity refuses a batch stored twice).
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "appliance/store/internal/pg_schema.h"
#include "appliance/store/internal/pg_session.h"
#include "appliance/store/internal/store_rules.h"
#include "appliance/store/store.h"

namespace custos::store {

namespace {

using internal::kBoolOid;
using internal::kByteaOid;
using internal::kInt4Oid;
using internal::kInt8Oid;
using internal::kMaxAuditSeq;
using internal::kTextOid;
using internal::NotFoundIn;
using internal::PgParams;
using internal::PgQuery;
using internal::PgResult;
using internal::PgSession;
using internal::PgTransaction;

// ---- Statements. Each names the types of the columns it returns; Exec checks them.

#define CUSTOS_KEY_COLUMNS                                                                    \
  "key_id, arn, description, key_spec, key_usage, key_state, creation_date, deletion_date, "  \
  "pending_window_days, rotation_enabled, rotation_period_days, next_rotation_date, policy, " \
  "current_version"
// revision is read with the record but never bound from it: CreateKey stores 1, and UpdateKey
// and AddKeyVersion advance it past the revision they checked.
#define CUSTOS_KEY_READ_COLUMNS CUSTOS_KEY_COLUMNS ", revision"
// clang-format off
#define CUSTOS_VERSION_COLUMNS(t) \
  t "key_id, " t "version, " t "wrapped_material, " t "public_key, " t "created, " t "rotation_type"
// clang-format on
#define CUSTOS_ALIAS_COLUMNS(t) \
  t "alias_name, " t "key_id, " t "creation_date, " t "last_updated_date"
#define CUSTOS_ACCESS_KEY_COLUMNS "access_key_id, name, principal_arn, wrapped_secret, created"
#define CUSTOS_AUDIT_COLUMNS "seq, entry, hash, signature"

constexpr std::span<const Oid> kNone{};  // a statement that returns no rows
constexpr Oid kKeyColumns[] = {kTextOid, kTextOid, kByteaOid, kTextOid, kTextOid,
                               kTextOid, kInt8Oid, kInt8Oid,  kInt4Oid, kBoolOid,
                               kInt4Oid, kInt8Oid, kByteaOid, kInt8Oid, kInt8Oid};
constexpr Oid kVersionColumns[] = {kTextOid, kInt8Oid, kByteaOid, kByteaOid, kInt8Oid, kTextOid};
constexpr Oid kAliasColumns[] = {kTextOid, kTextOid, kInt8Oid, kInt8Oid};
constexpr Oid kTagColumns[] = {kTextOid, kByteaOid};
constexpr Oid kAccessKeyColumns[] = {kTextOid, kTextOid, kTextOid, kByteaOid, kInt8Oid};
constexpr Oid kAuditColumns[] = {kInt8Oid, kByteaOid, kByteaOid, kByteaOid};
constexpr Oid kOneBool[] = {kBoolOid};
constexpr Oid kOneInt8[] = {kInt8Oid};
constexpr Oid kOneBytea[] = {kByteaOid};
constexpr Oid kOneText[] = {kTextOid};
constexpr Oid kChangesColumns[] = {kInt8Oid, kInt8Oid, kInt8Oid, kTextOid, kTextOid};

constexpr PgQuery kInsertKey = {"INSERT INTO keys (" CUSTOS_KEY_COLUMNS
                                ", revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                                "$11, $12, $13, $14, 1)",
                                kNone};
// Applies only to the revision the record was read at ($15); no row changed means the key is
// absent or changed since (kKeyRevision tells which).
constexpr PgQuery kUpdateKey = {
    "UPDATE keys SET arn = $2, description = $3, key_spec = $4, key_usage = $5, key_state = $6, "
    "creation_date = $7, deletion_date = $8, pending_window_days = $9, rotation_enabled = $10, "
    "rotation_period_days = $11, next_rotation_date = $12, policy = $13, current_version = $14, "
    "revision = revision + 1 WHERE key_id = $1 AND revision = $15",
    kNone};
constexpr PgQuery kSelectKey = {"SELECT " CUSTOS_KEY_READ_COLUMNS " FROM keys WHERE key_id = $1",
                                kKeyColumns};
constexpr PgQuery kListKeys = {"SELECT " CUSTOS_KEY_READ_COLUMNS " FROM keys ORDER BY key_id",
                               kKeyColumns};
constexpr PgQuery kKeyRevision = {"SELECT revision FROM keys WHERE key_id = $1", kOneInt8};
// FOR KEY SHARE holds the key (no DeleteKey can remove it) until the transaction ends.
constexpr PgQuery kLockKey = {"SELECT true FROM keys WHERE key_id = $1 FOR KEY SHARE", kOneBool};
constexpr PgQuery kDeleteKey = {"DELETE FROM keys WHERE key_id = $1", kNone};

constexpr PgQuery kInsertVersion = {
    "INSERT INTO key_versions (" CUSTOS_VERSION_COLUMNS("") ") VALUES ($1, $2, $3, $4, $5, $6)",
    kNone};
constexpr PgQuery kSelectVersion = {
    "SELECT " CUSTOS_VERSION_COLUMNS("") " FROM key_versions WHERE key_id = $1 AND version = $2",
    kVersionColumns};
// A per-key listing is one statement, so it reads one snapshot: no row means no key, and a row
// of NULLs a key without versions (likewise for aliases and tags).
constexpr PgQuery kListVersions = {
    "SELECT " CUSTOS_VERSION_COLUMNS("v.") " FROM keys k LEFT JOIN key_versions v "
                                           "ON v.key_id = k.key_id WHERE k.key_id = $1 "
                                           "ORDER BY v.version",
    kVersionColumns};
constexpr PgQuery kVersionExists = {
    "SELECT true FROM key_versions WHERE key_id = $1 AND version = $2", kOneBool};

constexpr PgQuery kInsertAlias = {
    "INSERT INTO aliases (" CUSTOS_ALIAS_COLUMNS("") ") VALUES ($1, $2, $3, $4)", kNone};
constexpr PgQuery kUpdateAlias = {
    "UPDATE aliases SET key_id = $2, last_updated_date = $3 WHERE alias_name = $1", kNone};
constexpr PgQuery kDeleteAlias = {"DELETE FROM aliases WHERE alias_name = $1", kNone};
constexpr PgQuery kSelectAlias = {
    "SELECT " CUSTOS_ALIAS_COLUMNS("") " FROM aliases WHERE alias_name = $1", kAliasColumns};
constexpr PgQuery kListAliases = {
    "SELECT " CUSTOS_ALIAS_COLUMNS("") " FROM aliases ORDER BY alias_name", kAliasColumns};
constexpr PgQuery kListKeyAliases = {
    "SELECT " CUSTOS_ALIAS_COLUMNS("a.") " FROM keys k LEFT JOIN aliases a "
                                         "ON a.key_id = k.key_id WHERE k.key_id = $1 "
                                         "ORDER BY a.alias_name",
    kAliasColumns};

constexpr PgQuery kUpsertTag = {
    "INSERT INTO tags (key_id, tag_key, tag_value) VALUES ($1, $2, $3) "
    "ON CONFLICT (key_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value",
    kNone};
constexpr PgQuery kDeleteTag = {"DELETE FROM tags WHERE key_id = $1 AND tag_key = $2", kNone};
constexpr PgQuery kListTags = {
    "SELECT t.tag_key, t.tag_value FROM keys k LEFT JOIN tags t ON t.key_id = k.key_id "
    "WHERE k.key_id = $1 ORDER BY t.tag_key",
    kTagColumns};

constexpr PgQuery kInsertAccessKey = {
    "INSERT INTO access_keys (" CUSTOS_ACCESS_KEY_COLUMNS ") VALUES ($1, $2, $3, $4, $5)", kNone};
constexpr PgQuery kSelectAccessKey = {"SELECT " CUSTOS_ACCESS_KEY_COLUMNS
                                      " FROM access_keys WHERE access_key_id = $1",
                                      kAccessKeyColumns};
constexpr PgQuery kListAccessKeys = {"SELECT " CUSTOS_ACCESS_KEY_COLUMNS
                                     " FROM access_keys ORDER BY access_key_id",
                                     kAccessKeyColumns};
constexpr PgQuery kDeleteAccessKey = {"DELETE FROM access_keys WHERE access_key_id = $1", kNone};

// Every audit statement names its log as $1: the store's own, or ReadAuditLog's.
// AppendAudit serializes the appenders of one log, across connections and nodes, on a
// transaction-scoped advisory lock of that log, taken by a statement of its own before the
// log's end is read: under READ COMMITTED the next statement sees every append committed
// before the lock was granted, so the continuity check and the insert act on the real end of
// the log. One lock per log, not one for all: each node appends to its own log, and with one
// lock every node's group commit would queue behind every other node's WAL flush. Readers
// take no lock.
static_assert(internal::kAuditLockClass == 1668641633, "the audit lock's class is a literal below");
constexpr PgQuery kLockAuditLog = {
    "SELECT true FROM pg_advisory_xact_lock(1668641633, hashtext($1))", kOneBool};
constexpr PgQuery kLastSeq = {"SELECT seq FROM audit WHERE log = $1 ORDER BY seq DESC LIMIT 1",
                              kOneInt8};
constexpr PgQuery kInsertAudit = {
    "INSERT INTO audit (log, " CUSTOS_AUDIT_COLUMNS
    ") SELECT $1, * FROM unnest($2::bigint[], $3::bytea[], $4::bytea[], $5::bytea[])",
    kNone};
constexpr PgQuery kSignAudit = {
    "UPDATE audit SET signature = $3 WHERE log = $1 AND seq = $2 AND length(signature) = 0", kNone};
constexpr PgQuery kAuditSigned = {
    "SELECT length(signature) > 0 FROM audit WHERE log = $1 AND seq = $2", kOneBool};
constexpr PgQuery kLastAudit = {"SELECT " CUSTOS_AUDIT_COLUMNS
                                " FROM audit WHERE log = $1 ORDER BY seq DESC LIMIT 1",
                                kAuditColumns};
// The WHERE term is the partial index audit_signed's predicate: one backward index probe.
constexpr PgQuery kLastSignedAudit = {"SELECT " CUSTOS_AUDIT_COLUMNS
                                      " FROM audit WHERE log = $1 AND length(signature) > 0 "
                                      "ORDER BY seq DESC LIMIT 1",
                                      kAuditColumns};
constexpr PgQuery kReadAudit = {"SELECT " CUSTOS_AUDIT_COLUMNS
                                " FROM audit WHERE log = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
                                kAuditColumns};
// The logs, one index probe each (a loose index scan over the (log, seq) key): the cost grows
// with the number of logs, not of records.
constexpr PgQuery kListAuditLogs = {
    "WITH RECURSIVE logs (name) AS ("
    " SELECT (SELECT log FROM audit ORDER BY log LIMIT 1)"
    " UNION ALL"
    " SELECT (SELECT log FROM audit WHERE log > logs.name ORDER BY log LIMIT 1)"
    " FROM logs WHERE logs.name IS NOT NULL)"
    " SELECT name FROM logs WHERE name IS NOT NULL ORDER BY name",
    kOneText};

// The change log. Every mutation of keys, aliases and tags begins with kBeginChange, which
// locks custos_state's row until COMMIT: such mutations run one at a time across every
// connection and node, so the versions kRecordChange gives out are in commit order and
// without a gap (a transaction that rolls back gives its versions back), and a reader never
// sees version n + 1 committed before n. It also means each mutation sees the keys and
// aliases as no concurrent mutation can change them before it commits: DeleteKey's list of
// the aliases it removes is exact. These are control-plane writes, rare next to reads.
constexpr char kBeginChange[] = "BEGIN; SELECT version FROM custos_state FOR UPDATE";
// One change: the next version, the row, and the trim of what falls off ($3 changes kept).
// Each call sees the counter the previous call of its transaction advanced.
constexpr PgQuery kRecordChange = {
    "WITH next AS (UPDATE custos_state SET version = version + 1 RETURNING version), "
    "added AS (INSERT INTO state_changes (version, key_id, alias_name) "
    "SELECT version, $1, $2 FROM next), "
    "trimmed AS (DELETE FROM state_changes WHERE version <= (SELECT version FROM next) - $3) "
    "SELECT version FROM next",
    kOneInt8};
constexpr PgQuery kStateVersion = {"SELECT version FROM custos_state", kOneInt8};
// One statement, so one snapshot: the newest version, the oldest kept and the changes after
// $1 (a row of NULL changes when there are none).
constexpr PgQuery kChangesSince = {
    "SELECT s.version, (SELECT min(version) FROM state_changes), c.version, c.key_id, "
    "c.alias_name FROM custos_state s LEFT JOIN LATERAL (SELECT version, key_id, alias_name "
    "FROM state_changes WHERE version > $1 ORDER BY version LIMIT $2) c ON true "
    "ORDER BY c.version",
    kChangesColumns};
// SyncAudit's statement; see SyncAudit for why it updates a row.
constexpr PgQuery kSyncAudit = {"UPDATE audit_sync SET syncs = syncs + 1", kNone};

constexpr PgQuery kUpsertMeta = {
    "INSERT INTO meta (name, value) VALUES ($1, $2) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    kNone};
constexpr PgQuery kSelectMeta = {"SELECT value FROM meta WHERE name = $1", kOneBytea};

constexpr Oid kFourTexts[] = {kTextOid, kTextOid, kTextOid, kTextOid};
constexpr PgQuery kServerSettings = {
    "SELECT current_setting('fsync'), current_setting('synchronous_commit'), "
    "current_setting('lock_timeout'), current_setting('idle_in_transaction_session_timeout')",
    kFourTexts};

#undef CUSTOS_KEY_COLUMNS
#undef CUSTOS_KEY_READ_COLUMNS
#undef CUSTOS_VERSION_COLUMNS
#undef CUSTOS_ALIAS_COLUMNS
#undef CUSTOS_ACCESS_KEY_COLUMNS
#undef CUSTOS_AUDIT_COLUMNS

// Transaction openings (constant SQL run through the simple query protocol, one round trip).
// kWritten turns synchronous_commit off for that transaction only: COMMIT returns once the
// commit record is in the server's WAL buffers, which survives the death of any custos process
// (the server holds it) but not a crash of the server before its WAL writer flushes (within
// 3 x wal_writer_delay, 600 ms by default).
constexpr char kBegin[] = "BEGIN";
constexpr char kBeginWritten[] = "BEGIN; SET LOCAL synchronous_commit = off";

void BindKey(PgParams& p, const KeyRecord& k) {
  p.Text(k.key_id)
      .Text(k.arn)
      .Bytea(k.description)
      .Text(k.key_spec)
      .Text(k.key_usage)
      .Text(k.key_state)
      .Int8(k.creation_date)
      .OptInt8(k.deletion_date)
      .Int4(k.pending_window_days)
      .Bool(k.rotation_enabled)
      .Int4(k.rotation_period_days)
      .OptInt8(k.next_rotation_date)
      .Bytea(k.policy)
      .Int8(k.current_version);
}

KeyRecord ReadKey(const PgResult& r, int row) {
  KeyRecord k;
  k.key_id = r.Text(row, 0);
  k.arn = r.Text(row, 1);
  k.description = r.Text(row, 2);
  k.key_spec = r.Text(row, 3);
  k.key_usage = r.Text(row, 4);
  k.key_state = r.Text(row, 5);
  k.creation_date = r.Int8(row, 6);
  k.deletion_date = r.OptInt8(row, 7);
  k.pending_window_days = r.Int4(row, 8);
  k.rotation_enabled = r.Bool(row, 9);
  k.rotation_period_days = r.Int4(row, 10);
  k.next_rotation_date = r.OptInt8(row, 11);
  k.policy = r.Text(row, 12);
  k.current_version = static_cast<uint32_t>(r.Int8(row, 13));
  k.revision = static_cast<uint64_t>(r.Int8(row, 14));
  return k;
}

void BindVersion(PgParams& p, const KeyVersion& v) {
  p.Text(v.key_id)
      .Int8(v.version)
      .Bytea(v.wrapped_material)
      .Bytea(v.public_key)
      .Int8(v.created)
      .Text(v.rotation_type);
}

KeyVersion ReadVersion(const PgResult& r, int row) {
  KeyVersion v;
  v.key_id = r.Text(row, 0);
  v.version = static_cast<uint32_t>(r.Int8(row, 1));
  v.wrapped_material = r.Blob(row, 2);
  v.public_key = r.Blob(row, 3);
  v.created = r.Int8(row, 4);
  v.rotation_type = r.Text(row, 5);
  return v;
}

AliasRecord ReadAlias(const PgResult& r, int row) {
  return AliasRecord{r.Text(row, 0), r.Text(row, 1), r.Int8(row, 2), r.Int8(row, 3)};
}

AccessKeyRecord ReadAccessKey(const PgResult& r, int row) {
  return AccessKeyRecord{r.Text(row, 0), r.Text(row, 1), r.Text(row, 2), r.Blob(row, 3),
                         r.Int8(row, 4)};
}

AuditRecord ReadAuditRecord(const PgResult& r, int row) {
  return AuditRecord{static_cast<uint64_t>(r.Int8(row, 0)), r.Text(row, 1), r.Blob(row, 2),
                     r.Blob(row, 3)};
}

// Rows reads every row of `r` with read(r, row); `first_null_col`, if set, names a column that
// is NULL in the one row a per-key LEFT JOIN listing gives for a key without entries.
template <typename Read>
auto Rows(const PgResult& r, Read read, int first_null_col = -1)
    -> std::vector<decltype(read(r, 0))> {
  std::vector<decltype(read(r, 0))> out;
  for (int i = 0; i < r.rows(); ++i) {
    if (first_null_col >= 0 && r.IsNull(i, first_null_col)) continue;
    out.push_back(read(r, i));
  }
  return out;
}

// ConnectionPool lends connections to one call at a time: an idle one, or a new one while
// fewer than kMaxConnections are open; otherwise Acquire waits for a return. Connections are
// made with the URL's settings plus defaults the URL may override (connect and keepalive
// timeouts, so a host that vanished is noticed) and a client encoding it may not (UTF8: text
// is exchanged as UTF-8 whatever the server's encoding).
class ConnectionPool {
 public:
  static constexpr size_t kMaxConnections = 8;

  // Lease is one lent connection; it goes back to the pool when the Lease ends, or is closed
  // if it is broken or its call found the server gone or read-only (then every idle connection
  // is closed too: they lead to the same server).
  class Lease {
   public:
    Lease(ConnectionPool* pool, PGconn* conn) : pool_(pool), session_(conn) {}
    Lease(Lease&& o) noexcept : pool_(std::exchange(o.pool_, nullptr)), session_(o.session_) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (pool_ != nullptr) pool_->Return(session_);
    }
    PgSession& session() { return session_; }

   private:
    ConnectionPool* pool_;
    PgSession session_;
  };

  explicit ConnectionPool(std::string url) : url_(std::move(url)) {}
  ~ConnectionPool() {
    for (PGconn* c : idle_) PQfinish(c);
  }
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  StatusOr<Lease> Acquire(const char* op) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return !idle_.empty() || open_ < kMaxConnections; });
      if (!idle_.empty()) {
        PGconn* c = idle_.back();
        idle_.pop_back();
        return Lease(this, c);
      }
      ++open_;  // the slot is taken while connecting, without the lock
    }
    StatusOr<PGconn*> conn = Connect(op);
    if (!conn.ok()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        --open_;
      }
      cv_.notify_one();
      return conn.status();
    }
    return Lease(this, *conn);
  }

 private:
  StatusOr<PGconn*> Connect(const char* op) {
    // Keywords before dbname are defaults the URL overrides; those after it are forced.
    const char* const keywords[] = {
        "connect_timeout",           "keepalives_idle", "keepalives_interval", "keepalives_count",
        "fallback_application_name", "dbname",          "client_encoding",     nullptr};
    const char* const values[] = {"10", "10", "5", "3", "custos", url_.c_str(), "UTF8", nullptr};
    PGconn* c = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
    if (c == nullptr) return Unavailable(std::string("store: ") + op + ": out of memory");
    Status st = PQstatus(c) == CONNECTION_OK ? Configure(c, op)
                                             : internal::PgError(c, nullptr, op, nullptr);
    if (!st.ok()) {
      PQfinish(c);
      return st;
    }
    return c;
  }

  // Configure sets a new connection up. It checks what the durability promise rests on: the
  // server fsyncs its WAL (refused otherwise: no commit would be durable), and this session's
  // synchronous_commit is not off (a server, database or role default of off is overridden for
  // the session; the stronger settings an operator may choose for replication, such as
  // remote_apply, are kept). And it bounds waiting where nothing else is set (0, PostgreSQL's
  // default): a lock wait ends after 5 s with kUnavailable (55P03), as SQLite's busy timeout
  // does; and a session left idle inside a transaction for 10 s is ended by the server, so a
  // node that died or hung between BEGIN and COMMIT releases its locks (the audit append lock
  // above all) in seconds, not when the server's TCP keepalive notices, hours later. A URL,
  // role or database setting takes precedence.
  static Status Configure(PGconn* c, const char* op) {
    PgSession s(c);
    ASSIGN_OR_RETURN(PgResult r, s.Exec(op, kServerSettings));
    if (r.Text(0, 0) != "on") {
      return Unavailable(std::string("store: ") + op +
                         ": the server runs with fsync = off, so no commit would be durable");
    }
    std::string set;  // constant statements only
    if (r.Text(0, 1) == "off") set += "SET synchronous_commit = on;";
    if (r.Text(0, 2) == "0") set += "SET lock_timeout = '5s';";
    if (r.Text(0, 3) == "0") set += "SET idle_in_transaction_session_timeout = '10s';";
    if (!set.empty()) RETURN_IF_ERROR(s.Script(op, set.c_str()));
    return Status::Ok();
  }

  void Return(const PgSession& s) {
    PGconn* c = s.conn();
    const bool server_gone = s.failure() == internal::Failure::kConnection ||
                             s.failure() == internal::Failure::kReadOnly;
    bool keep = !server_gone && PQstatus(c) == CONNECTION_OK;
    if (keep && PQtransactionStatus(c) != PQTRANS_IDLE) {
      PgSession(c).Rollback();
      keep = PQtransactionStatus(c) == PQTRANS_IDLE;
    }
    std::vector<PGconn*> closing;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (server_gone) closing.swap(idle_);
      if (keep) {
        idle_.push_back(c);
      } else {
        closing.push_back(c);
      }
      open_ -= closing.size();
    }
    cv_.notify_all();
    for (PGconn* dead : closing) PQfinish(dead);
  }

  const std::string url_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<PGconn*> idle_;  // guarded by mu_
  size_t open_ = 0;            // idle, lent and being made; guarded by mu_
};

class PgStore final : public Store, public internal::ChangeLogSettings {
 public:
  PgStore(std::string url, std::string audit_log)
      : pool_(std::move(url)), audit_log_(std::move(audit_log)) {}

  // Open makes the first connection and migrates the schema (internal::MigratePostgres).
  Status Open() {
    ASSIGN_OR_RETURN(ConnectionPool::Lease lease, pool_.Acquire("open"));
    return internal::MigratePostgres(lease.session().conn(), internal::PgMigrations());
  }

  void SetStateChangesKept(uint64_t kept) override { kept_ = kept; }

  // ---- Keys.

  Status CreateKey(const KeyRecord& key, const KeyVersion& first_version) override {
    constexpr char kOp[] = "create key";
    RETURN_IF_ERROR(internal::CheckNewKey(key, first_version));
    PgParams k, v;
    BindKey(k, key);
    BindVersion(v, first_version);
    return Call(kOp, [&](PgSession& s) -> Status {
      PgTransaction tx(s);
      RETURN_IF_ERROR(tx.Begin(kOp, kBeginChange));
      RETURN_IF_ERROR(s.Exec(kOp, kInsertKey, k).status());
      RETURN_IF_ERROR(s.Exec(kOp, kInsertVersion, v).status());
      RETURN_IF_ERROR(LogChanges(s, kOp, {{key.key_id, ""}}));
      return tx.Commit(kOp);
    });
  }

  StatusOr<KeyRecord> GetKey(std::string_view key_id) override {
    constexpr char kOp[] = "get key";
    PgParams p;
    p.Text(key_id);
    return Call(kOp, [&](PgSession& s) -> StatusOr<KeyRecord> {
      ASSIGN_OR_RETURN(PgResult r, s.Exec(kOp, kSelectKey, p));
      if (r.rows() == 0) return NotFoundIn(kOp, "key");
      return ReadKey(r, 0);
    });
  }

  StatusOr<std::vector<KeyRecord>> ListKeys() override {
    constexpr char kOp[] = "list keys";
    return Call(kOp, [&](PgSession& s) -> StatusOr<std::vector<KeyRecord>> {
      ASSIGN_OR_RETURN(PgResult r, s.Exec(kOp, kListKeys));
      return Rows(r, ReadKey);
    });
  }

  Status UpdateKey(const KeyRecord& key) override {
    constexpr char kOp[] = "update key";
    RETURN_IF_ERROR(internal::CheckRevision(kOp, key));
    PgParams k;
    BindKey(k, key);
    k.Int8(static_cast<int64_t>(key.revision));
    return Call(kOp, [&](PgSession& s) -> Status {
      PgTransaction tx(s);
      RETURN_IF_ERROR(tx.Begin(kOp, kBeginChange));
      RETURN_IF_ERROR(UpdateRecord(s, kOp, key, k));
      RETURN_IF_ERROR(CheckCurrentVersion(s, kOp, key));
      RETURN_IF_ERROR(LogChanges(s, kOp, {{key.key_id, ""}}));
      return tx.Commit(kOp);
    });
  }

  Status AddKeyVersion(const KeyRecord& key, const KeyVersion& version) override {
    constexpr char kOp[] = "add key version";
    RETURN_IF_ERROR(internal::CheckVersionOfKey(kOp, key, version));
    RETURN_IF_ERROR(internal::CheckRevision(kOp, key));
    PgParams k, v;
    BindKey(k, key);
    k.Int8(static_cast<int64_t>(key.revision));
    BindVersion(v, version);
    return Call(kOp, [&](PgSession& s) -> Status {
      PgTransaction tx(s);
      RETURN_IF_ERROR(tx.Begin(kOp, kBeginChange));
      // The record first: a missing key is kNotFound and a stale record kAborted before the
      // version is looked at. A duplicate version fails on the primary key (kAlreadyExists).
      RETURN_IF_ERROR(UpdateRecord(s, kOp, key, k));
      RETURN_IF_ERROR(s.Exec(kOp, kInsertVersion, v).status());
      RETURN_IF_ERROR(CheckCurrentVersion(s, kOp, key));
      RETURN_IF_ERROR(LogChanges(s, kOp, {{key.key_id, ""}}));
      return tx.Commit(kOp);
    });
  }

  StatusOr<KeyVersion> GetKeyVersion(std::string_view key_id, uint32_t version) override {
    constexpr char kOp[] = "get key version";
    PgParams p;
    p.Text(key_id).Int8(version);
    return Call(kOp, [&](PgSession& s) -> StatusOr<KeyVersion> {
      ASSIGN_OR_RETURN(PgResult r, s.Exec(kOp, kSelectVersion, p));
      if (r.rows() == 0) return NotFoundIn(kOp, "key version");
      return ReadVersion(r, 0);
    });
  }

  StatusOr<std::vector<KeyVersion>> ListKeyVersions(std::string_view key_id) override {
    constexpr char kOp[] = "list key versions";
    PgParams p;
    p.Text(key_id);
    return Call(kOp, [&](PgSession& s) -> StatusOr<std::vector<KeyVersion>> {
      ASSIGN_OR_RETURN(PgResult r, s.Exec(kOp, kListVersions, p));
      if (r.rows() == 0) return NotFoundIn(kOp, "key");
      return Rows(r, ReadVersion, /*first_null_col=*/0);
    });
  }

  Status DeleteKey(std::string_view key_id) override {
    constexpr char kOp[] = "delete key";
    PgParams p;
    p.Text(key_id);
    return Call(kOp, [&](PgSession& s) -> Status {
      PgTransaction tx(s);
      RETURN_IF_ERROR(tx.Begin(kOp, kBeginChange));
      // The key's aliases go with it: the change log names each, after the key. No alias can
      // be added or moved to the key meanwhile (kBeginChange).
      ASSIGN_OR_RETURN(PgResult aliases, s.Exec(kOp, kListKeyAliases, p));
      if (aliases.rows() == 0) return NotFoundIn(kOp, "key");
      // The versions, aliases and tags go with the key (ON DELETE CASCADE, which PostgreSQL
      // always enforces).
      ASSIGN_OR_RETURN(PgResult r, s.Exec(kOp, kDeleteKey, p));
      if (r.affected() == 0) return NotFoundIn(kOp, "key");
      std::vector<Touched> touched = {{key_id, ""}};
      const std::vector<AliasRecord> gone = Rows(aliases, ReadAlias, /*first_null_col=*/0);
      for (const AliasRecord& a : gone) touched.push_back({"", a.alias_name});
      RETURN_IF_ERROR(LogChanges(s, kOp, touched));
      return tx.Commit(kOp);
    });
  }

  // ---- Aliases.

  Status CreateAlias(const AliasRecord& alias) override {
    constexpr char kOp[] = "create alias";
    PgParams p;
    p.Text(alias.alias_name)
        .Text(alias.key_id)
        .Int8(alias.creation_date)
        .Int8(alias.last_updated_date);
    return WriteAlias(kOp, alias.alias_name, kInsertAlias, p, nullptr);
  }

  Status UpdateAlias(std::string_view alias_name, std::string_view key_id,
                     int64_t updated) override {
    constexpr char kOp[] = "update alias";
    PgParams p;
    p.Text(alias_name).Text(key_id).Int8(updated);
    return WriteAlias(kOp, alias_name, kUpdateAlias, p, "alias");
  }

  Status DeleteAlias(std::string_view alias_name) override {
    constexpr char kOp[] = "delete alias";
    PgParams p;
    p.Text(alias_name);
    return WriteAlias(kOp, alias_name, kDeleteAlias, p, "alias");
  }

  StatusOr<AliasRecord> GetAlias(std::string_view alias_name) override {
    constexpr char kOp[] = "get alias";
    PgParams p;
    p.Text(alias_name);
    return Call(kOp, [&](PgSession& s) -> StatusOr<AliasRecord> {
      ASSIGN_OR_RETURN(PgResult r, s.Exec(kOp, kSelectAlias, p));
      if (r.rows() == 0) return NotFoundIn(kOp, "alias");
      return ReadAlias(r, 0);
    });
  }

  StatusOr<std::vector<AliasRecord>> ListAliases(std::optional<std::string_view> key_id) override {
    constexpr char kOp[] = "list aliases";
    PgParams p;
    if (key_id) p.Text(*key_id);
    return Call(kOp, [&](PgSession& s) -> StatusOr<std::vector<AliasRecord>> {
      if (!key_id) {
        ASSIGN_OR_RETURN(PgResult r, s.Exec(kOp, kListAliases));
        return Rows(r, ReadAlias);
      }
      ASSIGN_OR_RETURN(PgResult r, s.Exec(kOp, kListKeyAliases, p));
      if (r.rows() == 0) return NotFoundIn(kOp, "key");
      return Rows(r, ReadAlias, /*first_null_col=*/0);
    });
  }

  // ---- Tags.

  Status TagResource(std::string_view key_id, const std::vector<Tag>& tags) override {
    constexpr char kOp[] = "tag resource";
    std::vector<PgParams> rows(tags.size());
    for (size_t i = 0; i < tags.size(); ++i) {
      rows[i].Text(key_id).Text(tags[i].key).Bytea(tags[i].value);
    }
    return WriteForKey(kOp, key_id, kUpsertTag, rows);
  }

  Status UntagResource(std::string_view key_id, const std::vector<std::string>& tag_keys) override {
    constexpr char kOp[] = "untag resource";
    std::vector<PgParams> rows(tag_keys.size());
    for (size_t i = 0; i < tag_keys.size(); ++i) rows[i].Text(key_id).Text(tag_keys[i]);
    return WriteForKey(kOp, key_id, kDeleteTag, rows);
  }

  StatusOr<std::vector<Tag>> ListTags(std::string_view key_id) override {
    constexpr char kOp[] = "list tags";
    PgParams p;
    p.Text(key_id);
    return Call(kOp, [&](PgSession& s) -> StatusOr<std::vector<Tag>> {
      ASSIGN_OR_RETURN(PgResult r, s.Exec(kOp, kListTags, p));
      if (r.rows() == 0) return NotFoundIn(kOp, "key");
      return Rows(
          r,
          [](const PgResult& t, int row) {
            return Tag{t.Text(row, 0), t.Text(row, 1)};
          },
          /*first_null_col=*/0);
    });
  }

  // ---- Access keys.

  Status PutAccessKey(const AccessKeyRecord& key) override {
    constexpr char kOp[] = "put access key";
    PgParams p;
    p.Text(key.access_key_id)
        .Text(key.name)
        .Text(key.principal_arn)
        .Bytea(key.wrapped_secret)
        .Int8(key.created);
    return WriteOne(kOp, kInsertAccessKey, p, nullptr);
  }

  StatusOr<AccessKeyRecord> GetAccessKey(std::string_view access_key_id) override {
    constexpr char kOp[] = "get access key";
    PgParams p;
    p.Text(access_key_id);
    return Call(kOp, [&](PgSession& s) -> StatusOr<AccessKeyRecord> {
      ASSIGN_OR_RETURN(PgResult r, s.Exec(kOp, kSelectAccessKey, p));
      if (r.rows() == 0) return NotFoundIn(kOp, "access key");
      return ReadAccessKey(r, 0);
    });
  }

  StatusOr<std::vector<AccessKeyRecord>> ListAccessKeys() override {
    constexpr char kOp[] = "list access keys";
    return Call(kOp, [&](PgSession& s) -> StatusOr<std::vector<AccessKeyRecord>> {
      ASSIGN_OR_RETURN(PgResult r, s.Exec(kOp, kListAccessKeys));
      return Rows(r, ReadAccessKey);
    });
  }

  Status DeleteAccessKey(std::string_view access_key_id) override {
    constexpr char kOp[] = "delete access key";
    PgParams p;
    p.Text(access_key_id);
    return WriteOne(kOp, kDeleteAccessKey, p, "access key");
  }

  // ---- Audit.

  Status AppendAudit(const std::vector<AuditRecord>& records, Durability durability) override {
    constexpr char kOp[] = "append audit";
    if (records.empty()) return Status::Ok();
    RETURN_IF_ERROR(internal::CheckAuditBatch(records));
    // The batch goes in as four arrays and one INSERT ... SELECT unnest(...): one round trip
    // whatever its size.
    std::vector<int64_t> seqs;
    std::vector<ByteSpan> entries, hashes, signatures;
    for (const AuditRecord& r : records) {
      seqs.push_back(static_cast<int64_t>(r.seq));
      entries.push_back(AsBytes(r.entry));
      hashes.push_back(r.hash);
      signatures.push_back(r.signature);
    }
    PgParams log, batch;
    log.Text(audit_log_);
    batch.Text(audit_log_)
        .Int8Array(seqs)
        .ByteaArray(entries)
        .ByteaArray(hashes)
        .ByteaArray(signatures);
    const uint64_t first = records.front().seq;
    return Call(kOp, [&](PgSession& s) -> Status {
      PgTransaction tx(s);
      RETURN_IF_ERROR(tx.Begin(kOp, durability == Durability::kWritten ? kBeginWritten : kBegin));
      RETURN_IF_ERROR(s.Exec(kOp, kLockAuditLog, log).status());
      ASSIGN_OR_RETURN(PgResult last_row, s.Exec(kOp, kLastSeq, log));
      const uint64_t last = last_row.rows() == 0 ? 0 : static_cast<uint64_t>(last_row.Int8(0, 0));
      if (first != last + 1) return internal::AuditNotNext(first, last);
      RETURN_IF_ERROR(s.Exec(kOp, kInsertAudit, batch).status());
      return tx.Commit(kOp);
    });
  }

  Status SignAudit(uint64_t seq, ByteSpan signature, Durability durability) override {
    constexpr char kOp[] = "sign audit";
    RETURN_IF_ERROR(internal::CheckAuditSignature(seq, signature));
    PgParams p, which;
    p.Text(audit_log_).Int8(static_cast<int64_t>(seq)).Bytea(signature);
    which.Text(audit_log_).Int8(static_cast<int64_t>(seq));
    return Call(kOp, [&](PgSession& s) -> Status {
      PgTransaction tx(s);
      RETURN_IF_ERROR(tx.Begin(kOp, durability == Durability::kWritten ? kBeginWritten : kBegin));
      ASSIGN_OR_RETURN(PgResult r, s.Exec(kOp, kSignAudit, p));
      if (r.affected() != 1) {
        ASSIGN_OR_RETURN(PgResult signed_row, s.Exec(kOp, kAuditSigned, which));
        if (signed_row.rows() == 0) return NotFoundIn(kOp, "audit record");
        return internal::AuditSignedAlready(seq);
      }
      return tx.Commit(kOp);
    });
  }

  // SyncAudit commits a transaction that writes WAL, with synchronous_commit on (never off in
  // a store's session, see ConnectionPool::Configure). Its COMMIT returns once the server has
  // flushed the WAL up to its own commit record, and the commit records of every kWritten
  // transaction that returned earlier come before it in the WAL, so they are flushed too (and,
  // with synchronous replication, replicated as far as synchronous_commit asks).
  //
  // It must write a row: a transaction that only takes an xid (SELECT txid_current()) writes a
  // commit record but, having written no other WAL, commits asynchronously (PostgreSQL's
  // RecordTransactionCommit flushes only when the transaction wrote WAL), so it would return
  // before the flush. Updating audit_sync's one row writes WAL. Concurrent SyncAudits wait for
  // each other on that row, each for a flush that mostly covers the next one's.
  //
  // One statement in its own transaction: if the connection fails the call is simply run again
  // (one more flush is harmless), the one write for which the retry rule does not need to know
  // whether it committed.
  Status SyncAudit() override {
    constexpr char kOp[] = "sync audit";
    return Call(kOp, [&](PgSession& s) -> Status { return s.Exec(kOp, kSyncAudit).status(); });
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
    return Call(kOp, [&](PgSession& s) -> StatusOr<uint64_t> {
      ASSIGN_OR_RETURN(PgResult r, s.Exec(kOp, kStateVersion));
      if (r.rows() != 1) return InternalError("store: state version: custos_state holds no row");
      return static_cast<uint64_t>(r.Int8(0, 0));
    });
  }

  StatusOr<std::vector<StateChange>> StateChangesSince(uint64_t version, size_t limit) override {
    constexpr char kOp[] = "state changes since";
    PgParams p;
    // A version above any stored one reads no change; CheckStateChangesSince refuses it.
    p.Int8(static_cast<int64_t>(std::min<uint64_t>(version, kMaxAuditSeq)))
        .Int8(internal::RowLimit(limit));
    return Call(kOp, [&](PgSession& s) -> StatusOr<std::vector<StateChange>> {
      ASSIGN_OR_RETURN(PgResult r, s.Exec(kOp, kChangesSince, p));
      if (r.rows() == 0) {
        return InternalError("store: state changes since: custos_state holds no row");
      }
      const std::optional<int64_t> oldest = r.OptInt8(0, 1);
      RETURN_IF_ERROR(internal::CheckStateChangesSince(
          version, static_cast<uint64_t>(r.Int8(0, 0)),
          oldest ? std::optional<uint64_t>(static_cast<uint64_t>(*oldest)) : std::nullopt));
      return Rows(
          r,
          [](const PgResult& c, int row) {
            return StateChange{static_cast<uint64_t>(c.Int8(row, 2)), c.Text(row, 3),
                               c.Text(row, 4)};
          },
          /*first_null_col=*/2);
    });
  }

  // ---- Other nodes' audit logs.

  StatusOr<std::vector<std::string>> ListAuditLogs() override {
    constexpr char kOp[] = "list audit logs";
    return Call(kOp, [&](PgSession& s) -> StatusOr<std::vector<std::string>> {
      ASSIGN_OR_RETURN(PgResult r, s.Exec(kOp, kListAuditLogs));
      return Rows(r, [](const PgResult& l, int row) { return l.Text(row, 0); });
    });
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
    PgParams p;
    p.Text(name).Bytea(value);
    return WriteOne(kOp, kUpsertMeta, p, nullptr);
  }

  StatusOr<std::string> GetMeta(std::string_view name) override {
    constexpr char kOp[] = "get meta";
    PgParams p;
    p.Text(name);
    return Call(kOp, [&](PgSession& s) -> StatusOr<std::string> {
      ASSIGN_OR_RETURN(PgResult r, s.Exec(kOp, kSelectMeta, p));
      if (r.rows() == 0) return NotFoundIn(kOp, "meta value");
      return r.Text(0, 0);
    });
  }

 private:
  // Call runs `fn` (a read, or a write that is one explicit transaction) on a pooled
  // connection, and once more on a fresh connection when the first run failed in a way that
  // left nothing of it applied (PgSession::RetrySafe; see the top of this file). `fn` must not
  // write outside a PgTransaction, except SyncAudit's idempotent update.
  template <typename Fn>
  auto Call(const char* op, Fn fn) -> decltype(fn(std::declval<PgSession&>())) {
    constexpr int kAttempts = 2;
    for (int attempt = 1;; ++attempt) {
      auto lease = pool_.Acquire(op);
      if (!lease.ok()) return lease.status();
      auto result = fn(lease->session());
      if (result.ok() || attempt == kAttempts || !lease->session().RetrySafe()) return result;
    }
  }

  // WriteOne runs one statement in its own transaction; with `missing` set, a statement that
  // changed no row is kNotFound naming it.
  Status WriteOne(const char* op, const PgQuery& query, const PgParams& params,
                  const char* missing) {
    return Call(op, [&](PgSession& s) -> Status {
      PgTransaction tx(s);
      RETURN_IF_ERROR(tx.Begin(op));
      ASSIGN_OR_RETURN(PgResult r, s.Exec(op, query, params));
      if (missing != nullptr && r.affected() == 0) return NotFoundIn(op, missing);
      return tx.Commit(op);
    });
  }

  // WriteAlias runs one statement on an alias as a logged mutation (kBeginChange, one change
  // naming the alias); with `missing` set, a statement that changed no row is kNotFound.
  Status WriteAlias(const char* op, std::string_view alias_name, const PgQuery& query,
                    const PgParams& params, const char* missing) {
    return Call(op, [&](PgSession& s) -> Status {
      PgTransaction tx(s);
      RETURN_IF_ERROR(tx.Begin(op, kBeginChange));
      ASSIGN_OR_RETURN(PgResult r, s.Exec(op, query, params));
      if (missing != nullptr && r.affected() == 0) return NotFoundIn(op, missing);
      RETURN_IF_ERROR(LogChanges(s, op, {{"", alias_name}}));
      return tx.Commit(op);
    });
  }

  // WriteForKey runs `query` once per parameter row in one transaction, holding the key so it
  // cannot be deleted meanwhile, and logs one change naming the key; kNotFound if the key does
  // not exist (even with no rows).
  Status WriteForKey(const char* op, std::string_view key_id, const PgQuery& query,
                     const std::vector<PgParams>& rows) {
    PgParams key;
    key.Text(key_id);
    return Call(op, [&](PgSession& s) -> Status {
      PgTransaction tx(s);
      RETURN_IF_ERROR(tx.Begin(op, kBeginChange));
      ASSIGN_OR_RETURN(PgResult held, s.Exec(op, kLockKey, key));
      if (held.rows() == 0) return NotFoundIn(op, "key");
      for (const PgParams& row : rows) RETURN_IF_ERROR(s.Exec(op, query, row).status());
      RETURN_IF_ERROR(LogChanges(s, op, {{key_id, ""}}));
      return tx.Commit(op);
    });
  }

  // UpdateRecord runs kUpdateKey (`params`: the record and the revision it was read at) and
  // tells a missing key (kNotFound) from one that changed since it was read (kAborted).
  static Status UpdateRecord(PgSession& s, const char* op, const KeyRecord& key,
                             const PgParams& params) {
    ASSIGN_OR_RETURN(PgResult r, s.Exec(op, kUpdateKey, params));
    if (r.affected() == 1) return Status::Ok();
    PgParams id;
    id.Text(key.key_id);
    ASSIGN_OR_RETURN(PgResult stored, s.Exec(op, kKeyRevision, id));
    if (stored.rows() == 0) return NotFoundIn(op, "key");
    return internal::KeyChangedSinceRead(op, static_cast<uint64_t>(stored.Int8(0, 0)),
                                         key.revision);
  }

  // Touched is what one change is about: a key (its record, versions or tags) or an alias.
  struct Touched {
    std::string_view key_id;
    std::string_view alias_name;
  };

  // LogChanges appends one change per entry of `touched`, in order, with the next versions,
  // trimming the log to the newest kept_, inside the caller's transaction, which began with
  // kBeginChange.
  Status LogChanges(PgSession& s, const char* op, const std::vector<Touched>& touched) const {
    for (const Touched& t : touched) {
      PgParams p;
      p.Text(t.key_id).Text(t.alias_name).Int8(static_cast<int64_t>(kept_.load()));
      ASSIGN_OR_RETURN(PgResult r, s.Exec(op, kRecordChange, p));
      if (r.rows() != 1) {
        return InternalError(std::string("store: ") + op + ": custos_state holds no row");
      }
    }
    return Status::Ok();
  }

  StatusOr<std::vector<AuditRecord>> ReadAuditOf(const char* op, std::string_view log,
                                                 uint64_t from_seq, size_t limit) {
    if (limit == 0 || from_seq > kMaxAuditSeq) return std::vector<AuditRecord>();
    PgParams p;
    p.Text(log).Int8(static_cast<int64_t>(from_seq)).Int8(internal::RowLimit(limit));
    return Call(op, [&](PgSession& s) -> StatusOr<std::vector<AuditRecord>> {
      ASSIGN_OR_RETURN(PgResult r, s.Exec(op, kReadAudit, p));
      return Rows(r, ReadAuditRecord);
    });
  }

  // CheckCurrentVersion refuses a record whose current_version names no stored version, so
  // the store never holds a key that new ciphertexts could not be made under.
  static Status CheckCurrentVersion(PgSession& s, const char* op, const KeyRecord& key) {
    PgParams p;
    p.Text(key.key_id).Int8(key.current_version);
    ASSIGN_OR_RETURN(PgResult r, s.Exec(op, kVersionExists, p));
    return r.rows() != 0 ? Status::Ok() : internal::CurrentVersionMissing(op);
  }

  StatusOr<AuditRecord> NewestAudit(const char* op, const PgQuery& query) {
    PgParams log;
    log.Text(audit_log_);
    return Call(op, [&](PgSession& s) -> StatusOr<AuditRecord> {
      ASSIGN_OR_RETURN(PgResult r, s.Exec(op, query, log));
      if (r.rows() == 0) return AuditRecord{};
      return ReadAuditRecord(r, 0);
    });
  }

  ConnectionPool pool_;
  const std::string audit_log_;  // the log this store's audit calls act on
  std::atomic<uint64_t> kept_{internal::kStateChangesKept};  // changes the log keeps
};

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url, StoreOptions options) {
  RETURN_IF_ERROR(internal::CheckAuditLogName("open", options.audit_log));
  // Parse the URL first, and refuse a malformed one without libpq's message, which may quote
  // the URL and with it the password.
  char* err = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(url.c_str(), &err);
  PQfreemem(err);
  if (parsed == nullptr) {
    return InvalidArgument("store: open: the PostgreSQL URL is malformed");
  }
  PQconninfoFree(parsed);
  auto store = std::make_unique<PgStore>(url, std::move(options.audit_log));
  RETURN_IF_ERROR(store->Open());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace custos::store
