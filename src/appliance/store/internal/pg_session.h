// Internals of the PostgreSQL Store backend shared by pg_store.cc, pg_migrations.cc and the
// tests: typed statements, binary parameters and results over libpq, the mapping of server
// errors to Status, and the classification of a failure that the store's retry rule needs
// (docs/storage.md "PostgreSQL"). Nothing here is part of the Store contract (store.h).
#pragma once
#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/status.h"

namespace custos::store::internal {

// The PostgreSQL type oids the store sends and reads (catalog/pg_type.h is a server header).
inline constexpr Oid kBoolOid = 16;
inline constexpr Oid kByteaOid = 17;
inline constexpr Oid kInt8Oid = 20;
inline constexpr Oid kInt4Oid = 23;
inline constexpr Oid kTextOid = 25;
inline constexpr Oid kByteaArrayOid = 1001;
inline constexpr Oid kInt8ArrayOid = 1016;

// kLockClass is the first key of custos's named advisory locks ("cust" in ASCII, as the
// SQLite application_id); the second names the lock. Advisory locks are per database.
inline constexpr int32_t kLockClass = 0x63757374;
inline constexpr int32_t kMigrationLock = 1;  // the schema migration (pg_migrations.cc)
// kAuditLockClass ("cusa") is the first key of the audit append locks, one per audit log: the
// second key is hashtext(log), computed by the server. Two logs whose hashes collide share a
// lock, which only makes their appends wait for each other.
inline constexpr int32_t kAuditLockClass = 0x63757361;

// PgQuery is one constant statement and the types of the columns it returns (none for a
// statement without rows). Exec checks the result against `columns`, so the row readers can
// trust each column's binary layout.
struct PgQuery {
  const char* sql;
  std::span<const Oid> columns;
};

// PgParams are one statement's parameters, $1, $2, ... in the order added, all sent in binary
// format with their types given, so no value is ever parsed as SQL text or converted. Values
// are copied. Text parameters must be UTF-8 without NUL bytes (PostgreSQL text cannot hold a
// NUL); anything else is refused with kInvalidArgument before the statement is sent.
class PgParams {
 public:
  PgParams& Text(std::string_view v);
  PgParams& Bytea(ByteSpan v);
  PgParams& Bytea(std::string_view v) { return Bytea(AsBytes(v)); }
  PgParams& Int8(int64_t v);
  PgParams& Int4(int32_t v);
  PgParams& Bool(bool v);
  PgParams& OptInt8(const std::optional<int64_t>& v);
  // Arrays (one dimension, no NULL elements), for unnest() in a batch insert.
  PgParams& Int8Array(std::span<const int64_t> v);
  PgParams& ByteaArray(std::span<const ByteSpan> v);

  // Check is kInvalidArgument if a value cannot be sent (text that is not UTF-8 or holds a
  // NUL, a value over 1 GiB); the message names the operation and the parameter's position,
  // never its value.
  Status Check(const char* op) const;
  int size() const { return static_cast<int>(params_.size()); }
  // Arrays for PQexecParams; valid while this object lives and is not changed.
  std::vector<Oid> Types() const;
  std::vector<const char*> Values() const;
  std::vector<int> Lengths() const;

 private:
  struct Param {
    Oid type;
    bool null;
    std::string bytes;  // the binary send format of the value
  };
  PgParams& Add(Oid type, std::string bytes);

  std::vector<Param> params_;
  int bad_param_ = 0;  // 1-based position of the first value that cannot be sent, 0 if none
  const char* bad_why_ = "";
};

// PgResult owns one result whose column types Exec checked against its PgQuery. The readers
// take a row and a column; Text and Blob read text and bytea columns alike (byte for byte).
class PgResult {
 public:
  explicit PgResult(PGresult* res) : res_(res) {}

  int rows() const { return PQntuples(res_.get()); }
  // affected is the number of rows an INSERT, UPDATE or DELETE changed.
  int64_t affected() const;
  bool IsNull(int row, int col) const { return PQgetisnull(res_.get(), row, col) != 0; }
  std::string Text(int row, int col) const;
  Bytes Blob(int row, int col) const;
  int64_t Int8(int row, int col) const;
  int32_t Int4(int row, int col) const;
  bool Bool(int row, int col) const;
  std::optional<int64_t> OptInt8(int row, int col) const;

 private:
  struct Clear {
    void operator()(PGresult* r) const { PQclear(r); }
  };
  std::unique_ptr<PGresult, Clear> res_;
};

// Failure says what a failed call means for retrying it (PgStore's rule: a call is retried
// once, on a fresh connection, only where that cannot apply it twice).
enum class Failure {
  kNone,
  // The connection broke or the server ended it (SQLSTATE class 08, 57P01-57P03, no answer):
  // every statement not yet answered may or may not have run.
  kConnection,
  // The server is read-only (25006: a standby, e.g. the old primary after a failover).
  kReadOnly,
  // The server rolled the transaction back to resolve a conflict (40001, 40P01).
  kRolledBack,
  // Anything else: a constraint, a bad value, a missing table.
  kOther,
};

// PgError maps a failed statement or a connection failure to a Status:
// unique_violation (23505) is kAlreadyExists, foreign_key_violation (23503) kNotFound (the key
// named does not exist), other class 23 and class 22 kInvalidArgument, insufficient_privilege
// kPermissionDenied, a malformed statement or binary value (42601, 42P18, 42804, 22P03, 08P01)
// kInternal, everything else (connection, shutdown, resources, conflicts) kUnavailable. The
// message is "store: <op>: <the server's primary message>": primary messages name tables,
// columns and constraints; the DETAIL field, which quotes values, is never used. `failure`,
// if not null, receives the classification above.
Status PgError(PGconn* conn, const PGresult* res, const char* op, Failure* failure);

// PgSession runs statements on one connection for one call and remembers what the call's
// retry rule needs: the kind of the last failure and whether a COMMIT was sent. It does not
// own the connection.
class PgSession {
 public:
  explicit PgSession(PGconn* conn) : conn_(conn) {}

  PGconn* conn() const { return conn_; }

  // Exec runs a statement with binary parameters and binary results.
  StatusOr<PgResult> Exec(const char* op, const PgQuery& query, const PgParams& params);
  StatusOr<PgResult> Exec(const char* op, const PgQuery& query);
  // Script runs constant SQL without parameters, possibly several statements, through the
  // simple query protocol (BEGIN with SET LOCAL, a migration script).
  Status Script(const char* op, const char* sql);
  // Commit sends COMMIT; from then on a connection failure leaves the outcome unknown, and the
  // error says so. A transaction the server had already aborted is refused (kUnavailable).
  Status Commit(const char* op);
  // Rollback ends an open transaction, ignoring failures (a broken connection is closed by
  // its owner).
  void Rollback();

  Failure failure() const { return failure_; }
  bool commit_sent() const { return commit_sent_; }
  // RetrySafe is true when the call that used this session failed in a way that left nothing
  // of it applied, so running it again cannot apply it twice: the connection failed before a
  // COMMIT was sent (a transaction whose connection dies uncommitted is rolled back by the
  // server), or the server rolled the transaction back itself. Only reads and writes inside an
  // explicit transaction may rely on this (see PgStore).
  bool RetrySafe() const;

 private:
  StatusOr<PgResult> Check(const char* op, PGresult* res, const PgQuery* query);

  PGconn* conn_;
  Failure failure_ = Failure::kNone;
  bool commit_sent_ = false;
};

// PgTransaction is one BEGIN ... COMMIT on a session; one not committed is rolled back when it
// goes out of scope, so an early return stores nothing.
class PgTransaction {
 public:
  explicit PgTransaction(PgSession& session) : session_(session) {}
  PgTransaction(const PgTransaction&) = delete;
  PgTransaction& operator=(const PgTransaction&) = delete;
  ~PgTransaction() {
    if (open_) session_.Rollback();
  }

  // Begin runs `begin`: "BEGIN", possibly followed by SET LOCAL or a lock (constant SQL).
  Status Begin(const char* op, const char* begin = "BEGIN");
  Status Commit(const char* op);

 private:
  PgSession& session_;
  bool open_ = false;
};

// IsUtf8Text is true for valid UTF-8 without NUL bytes: what a PostgreSQL text value can hold
// in a UTF-8 database.
bool IsUtf8Text(std::string_view s);

}  // namespace custos::store::internal
