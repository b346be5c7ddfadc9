// The SQLite store's schema, as an ordered list of migrations (docs/storage.md "Schema" and
// "Migrations"). A migration is never edited once released: a schema change is a new entry at
// the end of kMigrations and a kSchemaVersion bump in store.h.
#include <sqlite3.h>

#include <array>
#include <string>

#include "appliance/store/internal/sqlite_schema.h"

namespace custos::store::internal {

namespace {

// Version 1: the first schema. STRICT tables make SQLite refuse a value of the wrong type
// instead of storing it; every BLOB and TEXT column is NOT NULL (an empty value is a
// zero-length BLOB or ''), the only NULLs are the two optional dates of a key.
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE keys (
  key_id               TEXT    NOT NULL PRIMARY KEY,
  arn                  TEXT    NOT NULL,
  description          TEXT    NOT NULL,
  key_spec             TEXT    NOT NULL,
  key_usage            TEXT    NOT NULL,
  key_state            TEXT    NOT NULL,
  creation_date        INTEGER NOT NULL,
  deletion_date        INTEGER,
  pending_window_days  INTEGER NOT NULL,
  rotation_enabled     INTEGER NOT NULL CHECK (rotation_enabled IN (0, 1)),
  rotation_period_days INTEGER NOT NULL,
  next_rotation_date   INTEGER,
  policy               TEXT    NOT NULL,
  current_version      INTEGER NOT NULL CHECK (current_version BETWEEN 0 AND 4294967295)
) STRICT;

CREATE TABLE key_versions (
  key_id           TEXT    NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
  version          INTEGER NOT NULL CHECK (version BETWEEN 0 AND 4294967295),
  wrapped_material BLOB    NOT NULL,
  public_key       BLOB    NOT NULL,
  created          INTEGER NOT NULL,
  rotation_type    TEXT    NOT NULL,
  PRIMARY KEY (key_id, version)
) STRICT, WITHOUT ROWID;

CREATE TABLE aliases (
  alias_name        TEXT    NOT NULL PRIMARY KEY,
  key_id            TEXT    NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
  creation_date     INTEGER NOT NULL,
  last_updated_date INTEGER NOT NULL
) STRICT;
CREATE INDEX aliases_by_key ON aliases (key_id, alias_name);

CREATE TABLE tags (
  key_id    TEXT NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
  tag_key   TEXT NOT NULL,
  tag_value TEXT NOT NULL,
  PRIMARY KEY (key_id, tag_key)
) STRICT, WITHOUT ROWID;

CREATE TABLE access_keys (
  access_key_id  TEXT    NOT NULL PRIMARY KEY,
  name           TEXT    NOT NULL UNIQUE,
  principal_arn  TEXT    NOT NULL,
  wrapped_secret BLOB    NOT NULL,
  created        INTEGER NOT NULL
) STRICT;

CREATE TABLE audit (
  seq       INTEGER NOT NULL PRIMARY KEY CHECK (seq > 0),
  entry     TEXT    NOT NULL,
  hash      BLOB    NOT NULL,
  signature BLOB    NOT NULL
) STRICT;
CREATE INDEX audit_signed ON audit (seq) WHERE length(signature) > 0;

CREATE TABLE meta (
  name  TEXT NOT NULL PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;

PRAGMA application_id = 1668641652;
PRAGMA user_version = 1;
)sql";

// Version 2: several nodes on one database (docs/storage.md "Several nodes").
// - keys.revision: UpdateKey and AddKeyVersion apply only to the revision they were read at.
//   Existing keys start at 1.
// - audit records are keyed by (log, seq): each node appends to a log of its own. SQLite
//   cannot change a table's primary key, so the table is rebuilt: the records are copied into
//   the log '' (the single node's log) with their seqs, entries, hashes and signatures as they
//   were. WITHOUT ROWID: the records live in the (log, seq) b-tree itself, so an append writes
//   one b-tree, not a table and an index.
// - custos_state holds the newest change version and state_changes the change log. The
//   version is a counter of its own, not max(state_changes.version), which trimming would not
//   keep if it ever emptied the log.
constexpr char kSchemaV2[] = R"sql(
ALTER TABLE keys ADD COLUMN revision INTEGER NOT NULL DEFAULT 1 CHECK (revision > 0);

CREATE TABLE audit_by_log (
  log       TEXT    NOT NULL,
  seq       INTEGER NOT NULL CHECK (seq > 0),
  entry     TEXT    NOT NULL,
  hash      BLOB    NOT NULL,
  signature BLOB    NOT NULL,
  PRIMARY KEY (log, seq)
) STRICT, WITHOUT ROWID;
INSERT INTO audit_by_log (log, seq, entry, hash, signature)
  SELECT '', seq, entry, hash, signature FROM audit ORDER BY seq;
DROP TABLE audit;
ALTER TABLE audit_by_log RENAME TO audit;
CREATE INDEX audit_signed ON audit (log, seq) WHERE length(signature) > 0;

CREATE TABLE custos_state (
  singleton INTEGER NOT NULL PRIMARY KEY CHECK (singleton = 1),
  version   INTEGER NOT NULL CHECK (version >= 0)
) STRICT;
INSERT INTO custos_state (singleton, version) VALUES (1, 0);

CREATE TABLE state_changes (
  version    INTEGER NOT NULL PRIMARY KEY CHECK (version > 0),
  key_id     TEXT    NOT NULL,
  alias_name TEXT    NOT NULL,
  CHECK (key_id <> '' OR alias_name <> '')
) STRICT;

PRAGMA user_version = 2;
)sql";

constexpr auto kMigrations = std::to_array<Migration>({
    {1, kSchemaV1},
    {2, kSchemaV2},
});
static_assert(kMigrations.size() == kSchemaVersion,
              "kSchemaVersion in store.h must be the number of migrations");

static_assert(kApplicationId == 1668641652, "kSchemaV1 writes kApplicationId as a literal");

// ReadInt runs a constant statement whose first row holds one integer (a pragma, a count).
StatusOr<int64_t> ReadInt(sqlite3* db, const char* op, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db, op, rc);
  rc = sqlite3_step(stmt);
  if (rc != SQLITE_ROW) {
    Status st = SqliteError(db, op, rc == SQLITE_DONE ? SQLITE_ERROR : rc);
    sqlite3_finalize(stmt);
    return st;
  }
  int64_t v = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  return v;
}

Status Exec(sqlite3* db, const char* op, const char* sql) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? Status::Ok() : SqliteError(db, op, rc);
}

// ApplyOne runs migration `m` inside the caller's open transaction.
Status ApplyOne(sqlite3* db, const Migration& m) {
  constexpr char kOp[] = "migrate";
  ASSIGN_OR_RETURN(int64_t have, ReadInt(db, kOp, "PRAGMA user_version"));
  if (have >= m.version) return Status::Ok();  // another process got there first
  if (have != m.version - 1) {
    return InternalError("store: migrate: database at schema version " + std::to_string(have) +
                         " cannot take migration " + std::to_string(m.version));
  }
  if (have == 0) {
    // A version-0 database is a new, empty file; tables in it belong to some other program.
    ASSIGN_OR_RETURN(int64_t objects, ReadInt(db, kOp, "SELECT count(*) FROM sqlite_schema"));
    if (objects != 0) {
      return FailedPrecondition(
          "store: open: database has schema version 0 but is not empty (not a custos store)");
    }
  }
  RETURN_IF_ERROR(Exec(db, kOp, m.sql));
  ASSIGN_OR_RETURN(int64_t now, ReadInt(db, kOp, "PRAGMA user_version"));
  if (now != m.version) {
    return InternalError("store: migrate: migration " + std::to_string(m.version) +
                         " left user_version at " + std::to_string(now));
  }
  return Status::Ok();
}

}  // namespace

std::span<const Migration> Migrations() { return kMigrations; }

Status CheckSchemaHeader(sqlite3* db, int newest) {
  constexpr char kOp[] = "open";
  ASSIGN_OR_RETURN(int64_t version, ReadInt(db, kOp, "PRAGMA user_version"));
  if (version > newest) {
    return FailedPrecondition("store: open: database schema version " + std::to_string(version) +
                              " is newer than this build's schema version " +
                              std::to_string(newest) + "; refusing to open it");
  }
  if (version < 0) {
    return FailedPrecondition("store: open: database schema version " + std::to_string(version) +
                              " is not a custos schema version");
  }
  ASSIGN_OR_RETURN(int64_t app, ReadInt(db, kOp, "PRAGMA application_id"));
  if (app != 0 && app != kApplicationId) {
    return FailedPrecondition(
        "store: open: database application_id is not custos's (not a custos store)");
  }
  if (app == 0 && version != 0) {
    return FailedPrecondition(
        "store: open: database has a schema version but no custos application_id (not a custos "
        "store)");
  }
  return Status::Ok();
}

Status Migrate(sqlite3* db, std::span<const Migration> migrations) {
  const int newest = static_cast<int>(migrations.size());
  for (int i = 0; i < newest; ++i) {
    if (migrations[i].version != i + 1) {
      return InternalError("store: migrate: migrations are not numbered 1, 2, ... in order");
    }
  }
  RETURN_IF_ERROR(CheckSchemaHeader(db, newest));
  ASSIGN_OR_RETURN(int64_t have, ReadInt(db, "migrate", "PRAGMA user_version"));
  for (const Migration& m : migrations) {
    if (m.version <= have) continue;
    RETURN_IF_ERROR(Exec(db, "migrate", "BEGIN IMMEDIATE"));
    // Re-read the header under the write lock: another process may have migrated meanwhile.
    Status st = CheckSchemaHeader(db, newest);
    if (st.ok()) st = ApplyOne(db, m);
    if (st.ok()) st = Exec(db, "migrate", "COMMIT");
    if (!st.ok()) {
      if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      return st;
    }
  }
  return Status::Ok();
}

}  // namespace custos::store::internal
