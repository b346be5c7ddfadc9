// The PostgreSQL store's schema, as an ordered list of migrations, and the runner that applies
// them (docs/storage.md "PostgreSQL"). The tables are those of the SQLite schema
// (migrations.cc) in PostgreSQL's types. A migration is never edited once released: a schema
// change is a new entry at the end of kPgMigrations (and of the SQLite list) and a
// kSchemaVersion bump in store.h.
#include <array>
#include <string>

#include "appliance/store/internal/pg_schema.h"
#include "appliance/store/internal/pg_session.h"
#include "appliance/store/store.h"

namespace custos::store::internal {

namespace {

// Version 1: the first schema. Every text column is COLLATE "C", compared and ordered byte by
// byte as SQLite's BINARY collation does (a listing is in the same order on both backends, and
// not in the database locale's). Values that may hold any bytes, NUL included, are bytea:
// descriptions, policies, tag values, meta values and audit entries (whose chain hash covers
// their exact bytes; bytea is never converted between encodings). Every column but the two
// optional dates of a key is NOT NULL. custos_schema holds the schema version (the SQLite
// schema's PRAGMA user_version); audit_sync is the row SyncAudit updates (pg_store.cc).
constexpr char kPgSchemaV1[] = R"sql(
CREATE TABLE custos_schema (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version   integer NOT NULL CHECK (version >= 0)
);
INSERT INTO custos_schema (version) VALUES (0);

CREATE TABLE keys (
  key_id               text COLLATE "C" NOT NULL PRIMARY KEY,
  arn                  text COLLATE "C" NOT NULL,
  description          bytea   NOT NULL,
  key_spec             text COLLATE "C" NOT NULL,
  key_usage            text COLLATE "C" NOT NULL,
  key_state            text COLLATE "C" NOT NULL,
  creation_date        bigint  NOT NULL,
  deletion_date        bigint,
  pending_window_days  integer NOT NULL,
  rotation_enabled     boolean NOT NULL,
  rotation_period_days integer NOT NULL,
  next_rotation_date   bigint,
  policy               bytea   NOT NULL,
  current_version      bigint  NOT NULL CHECK (current_version BETWEEN 0 AND 4294967295)
);

CREATE TABLE key_versions (
  key_id           text COLLATE "C" NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
  version          bigint NOT NULL CHECK (version BETWEEN 0 AND 4294967295),
  wrapped_material bytea  NOT NULL,
  public_key       bytea  NOT NULL,
  created          bigint NOT NULL,
  rotation_type    text COLLATE "C" NOT NULL,
  PRIMARY KEY (key_id, version)
);

CREATE TABLE aliases (
  alias_name        text COLLATE "C" NOT NULL PRIMARY KEY,
  key_id            text COLLATE "C" NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
  creation_date     bigint NOT NULL,
  last_updated_date bigint NOT NULL
);
CREATE INDEX aliases_by_key ON aliases (key_id, alias_name);

CREATE TABLE tags (
  key_id    text COLLATE "C" NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
  tag_key   text COLLATE "C" NOT NULL,
  tag_value bytea NOT NULL,
  PRIMARY KEY (key_id, tag_key)
);

CREATE TABLE access_keys (
  access_key_id  text COLLATE "C" NOT NULL PRIMARY KEY,
  name           text COLLATE "C" NOT NULL UNIQUE,
  principal_arn  text COLLATE "C" NOT NULL,
  wrapped_secret bytea  NOT NULL,
  created        bigint NOT NULL
);

CREATE TABLE audit (
  seq       bigint NOT NULL PRIMARY KEY CHECK (seq > 0),
  entry     bytea  NOT NULL,
  hash      bytea  NOT NULL,
  signature bytea  NOT NULL
);
CREATE INDEX audit_signed ON audit (seq) WHERE length(signature) > 0;

CREATE TABLE meta (
  name  text COLLATE "C" NOT NULL PRIMARY KEY,
  value bytea NOT NULL
);

CREATE TABLE audit_sync (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  syncs     bigint  NOT NULL
);
INSERT INTO audit_sync (syncs) VALUES (0);

UPDATE custos_schema SET version = 1;
)sql";

// Version 2: several nodes on one database, as the SQLite schema's version 2 (migrations.cc):
// keys.revision (existing keys start at 1); audit records keyed by (log, seq), the existing
// ones in the log '' (the new column's default, dropped afterwards so that every insert names
// its log); custos_state, the newest change version, whose row every mutation of keys,
// aliases and tags locks first (pg_store.cc), and state_changes, the change log. Adding a
// column with a constant default does not rewrite the table; the new primary key is built
// from the audit rows under the migration's lock, once.
constexpr char kPgSchemaV2[] = R"sql(
ALTER TABLE keys ADD COLUMN revision bigint NOT NULL DEFAULT 1 CHECK (revision > 0);

ALTER TABLE audit ADD COLUMN log text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE audit ALTER COLUMN log DROP DEFAULT;
ALTER TABLE audit DROP CONSTRAINT audit_pkey;
ALTER TABLE audit ADD CONSTRAINT audit_pkey PRIMARY KEY (log, seq);
DROP INDEX audit_signed;
CREATE INDEX audit_signed ON audit (log, seq) WHERE length(signature) > 0;

CREATE TABLE custos_state (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version   bigint  NOT NULL CHECK (version >= 0)
);
INSERT INTO custos_state (version) VALUES (0);

CREATE TABLE state_changes (
  version    bigint NOT NULL PRIMARY KEY CHECK (version > 0),
  key_id     text COLLATE "C" NOT NULL,
  alias_name text COLLATE "C" NOT NULL,
  CHECK (key_id <> '' OR alias_name <> '')
);

UPDATE custos_schema SET version = 2;
)sql";

constexpr auto kPgMigrations = std::to_array<Migration>({
    {1, kPgSchemaV1},
    {2, kPgSchemaV2},
});
static_assert(kPgMigrations.size() == kSchemaVersion,
              "kSchemaVersion in store.h must be the number of PostgreSQL migrations too");

static_assert(kLockClass == 1668641652 && kMigrationLock == 1,
              "kBeginMigration writes the lock's keys as literals");
// The lock is taken by a statement of its own, before anything is read: under READ COMMITTED
// each later statement sees every transaction committed before the lock was granted, so a
// node that waited for another's migration reads the migrated version. A node waits for the
// lock however long another's migration takes (no lock_timeout for this transaction).
constexpr char kBeginMigration[] =
    "BEGIN; SET LOCAL lock_timeout = 0; SELECT pg_advisory_xact_lock(1668641652, 1)";

constexpr Oid kStateColumns[] = {kTextOid, kInt8Oid, kBoolOid};
constexpr PgQuery kSchemaState = {
    "SELECT current_schema()::text, "
    "(SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
    "ON n.oid = c.relnamespace WHERE n.nspname = current_schema()), "
    "EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
    "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
    "AND c.relname = 'custos_schema' AND c.relkind = 'r')",
    kStateColumns};
constexpr Oid kVersionColumns[] = {kInt4Oid};
constexpr PgQuery kSchemaVersionQuery = {"SELECT version FROM custos_schema", kVersionColumns};

// ReadSchemaVersion returns the database's schema version (0 for an empty schema) and refuses
// a schema that belongs to another program or to a newer custos.
StatusOr<int64_t> ReadSchemaVersion(PgSession& s, int newest) {
  constexpr char kOp[] = "open";
  ASSIGN_OR_RETURN(PgResult state, s.Exec(kOp, kSchemaState));
  if (state.IsNull(0, 0)) {
    return FailedPrecondition(
        "store: open: no schema to create the tables in (search_path names no existing schema)");
  }
  if (!state.Bool(0, 2)) {
    if (state.Int8(0, 1) != 0) {
      return FailedPrecondition("store: open: schema " + state.Text(0, 0) +
                                " holds tables but no custos_schema table (not a custos store)");
    }
    return 0;
  }
  ASSIGN_OR_RETURN(PgResult row, s.Exec(kOp, kSchemaVersionQuery));
  if (row.rows() != 1) {
    return FailedPrecondition("store: open: custos_schema holds " + std::to_string(row.rows()) +
                              " rows, not one (not a custos store)");
  }
  const int64_t version = row.Int4(0, 0);
  if (version > newest) {
    return FailedPrecondition("store: open: database schema version " + std::to_string(version) +
                              " is newer than this build's schema version " +
                              std::to_string(newest) + "; refusing to open it");
  }
  return version;
}

}  // namespace

std::span<const Migration> PgMigrations() { return kPgMigrations; }

Status MigratePostgres(PGconn* conn, std::span<const Migration> migrations) {
  constexpr char kOp[] = "migrate";
  const int newest = static_cast<int>(migrations.size());
  for (int i = 0; i < newest; ++i) {
    if (migrations[static_cast<size_t>(i)].version != i + 1) {
      return InternalError("store: migrate: migrations are not numbered 1, 2, ... in order");
    }
  }
  PgSession s(conn);
  PgTransaction tx(s);
  RETURN_IF_ERROR(tx.Begin(kOp, kBeginMigration));
  ASSIGN_OR_RETURN(int64_t have, ReadSchemaVersion(s, newest));
  if (have == newest) return Status::Ok();  // the rollback ends a transaction that wrote nothing
  for (const Migration& m : migrations) {
    if (m.version <= have) continue;
    RETURN_IF_ERROR(s.Script(kOp, m.sql));
    ASSIGN_OR_RETURN(PgResult row, s.Exec(kOp, kSchemaVersionQuery));
    const int64_t now = row.rows() == 1 ? row.Int4(0, 0) : -1;
    if (now != m.version) {
      return InternalError("store: migrate: migration " + std::to_string(m.version) +
                           " left the schema at version " + std::to_string(now));
    }
  }
  return tx.Commit(kOp);
}

}  // namespace custos::store::internal
