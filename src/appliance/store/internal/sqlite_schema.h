// Internals of the SQLite Store backend shared by sqlite_store.cc, migrations.cc and the tests:
// the ordered schema migrations and the hooks the tests use to look inside a connection.
// Nothing here is part of the Store contract (store.h); docs/storage.md describes the schema.
#pragma once
#include <span>
#include <string>

#include "appliance/store/internal/migration.h"
#include "appliance/store/store.h"
#include "common/status.h"

struct sqlite3;

namespace custos::store::internal {

// kApplicationId is written to the database header (PRAGMA application_id) by migration 1 so
// that a SQLite file of another program is never taken for a custos store ("cust" in ASCII).
inline constexpr int kApplicationId = 0x63757374;

// A SQLite Migration (internal/migration.h) ends by setting PRAGMA user_version to its own
// version (a constant in the script: PRAGMA takes no bound parameters).

// Migrations returns the build's migrations, ordered; the last one's version is kSchemaVersion.
std::span<const Migration> Migrations();

// CheckSchemaHeader refuses (kFailedPrecondition) a database whose user_version is above
// `newest` or whose application_id is neither 0 (a fresh file) nor kApplicationId.
Status CheckSchemaHeader(sqlite3* db, int newest);

// Migrate applies the migrations above the database's user_version, each in its own
// BEGIN IMMEDIATE transaction together with its user_version bump, so a failed step leaves
// the database at the previous version. A version-0 database must be empty (no tables).
// `migrations` must be numbered 1, 2, ... in order; the test substitutes its own lists.
Status Migrate(sqlite3* db, std::span<const Migration> migrations);

// SqliteError maps a failed SQLite call on `db` to a Status: a UNIQUE or PRIMARY KEY
// constraint is kAlreadyExists, a FOREIGN KEY constraint kNotFound (the key named does not
// exist), another constraint kInvalidArgument, misuse kInternal, anything else (I/O, busy,
// corruption, a full disk) kUnavailable. The message is "store: <op>: <SQLite's error text>";
// SQLite's texts name tables and columns, never the values bound.
Status SqliteError(sqlite3* db, const char* op, int rc);

// QueryForTesting runs one constant statement (e.g. "PRAGMA synchronous") on the store's own
// connection and returns the first column of its first row as text; for tests only.
StatusOr<std::string> QueryForTesting(Store& store, const char* sql);

}  // namespace custos::store::internal
