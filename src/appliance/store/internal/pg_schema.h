// Internals of the PostgreSQL Store backend shared by pg_store.cc, pg_migrations.cc and the
// tests: the ordered schema migrations and the migration runner. Nothing here is part of the
// Store contract (store.h); docs/storage.md "PostgreSQL" describes the schema.
#pragma once
#include <libpq-fe.h>

#include <span>

#include "appliance/store/internal/migration.h"
#include "common/status.h"

namespace custos::store::internal {

// PgMigrations returns the PostgreSQL schema's migrations, ordered; the last one's version is
// kSchemaVersion (store.h), the same number as the SQLite schema's: the two lists are
// translations of one schema. A PostgreSQL Migration ends with
// `UPDATE custos_schema SET version = <its version>`.
std::span<const Migration> PgMigrations();

// MigratePostgres brings the database `conn` is connected to up to the last of `migrations`,
// in one transaction under the advisory lock (kLockClass, kMigrationLock), so nodes starting
// together migrate once and a failing step leaves the database as it was. The tables live in
// the connection's current schema (the first existing schema of search_path). Refused with
// kFailedPrecondition, before anything is written: a database at a newer schema version than
// the last migration (the message names both versions), and a schema that holds tables but no
// custos_schema table (another program's database). `migrations` must be numbered 1, 2, ...
// in order; the tests substitute their own lists.
Status MigratePostgres(PGconn* conn, std::span<const Migration> migrations);

}  // namespace custos::store::internal
