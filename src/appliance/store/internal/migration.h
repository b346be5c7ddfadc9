// One step of a backend's schema (docs/storage.md "Migrations"), shared by the SQLite and the
// PostgreSQL migration lists. Nothing here is part of the Store contract (store.h).
#pragma once

namespace custos::store::internal {

// Migration is one step of the schema: `sql` takes a database at version `version - 1` to
// `version` and records `version` itself as its last statement (SQLite: PRAGMA user_version;
// PostgreSQL: the custos_schema row). Scripts are constants: no SQL is ever built from values.
struct Migration {
  int version;
  const char* sql;
};

}  // namespace custos::store::internal
