// libpq plumbing of the PostgreSQL store: binary parameters and results, error mapping and
// failure classification (internal/pg_session.h).
#include "appliance/store/internal/pg_session.h"

#include <array>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace custos::store::internal {

namespace {

// PostgreSQL refuses a single value above 1 GiB.
constexpr size_t kMaxValueBytes = (size_t{1} << 30) - 1;

void PutBigEndian(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetBigEndian(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// ArrayHeader starts the binary send format of a one-dimensional array without NULLs
// (PostgreSQL's array_recv): dimensions, a has-null flag, the element type, then per
// dimension its length and lower bound (1). An empty array has no dimensions.
std::string ArrayHeader(Oid element, size_t n) {
  std::string out;
  PutBigEndian(out, n == 0 ? 0 : 1, 4);
  PutBigEndian(out, 0, 4);
  PutBigEndian(out, element, 4);
  if (n != 0) {
    PutBigEndian(out, n, 4);
    PutBigEndian(out, 1, 4);
  }
  return out;
}

// One row per SQLSTATE (or class, by its two-character prefix), first match wins.
struct SqlStateRule {
  const char* state;
  ErrorCode code;
  Failure failure;
};
constexpr SqlStateRule kSqlStateRules[] = {
    {"23505", ErrorCode::kAlreadyExists, Failure::kOther},     // unique_violation
    {"23503", ErrorCode::kNotFound, Failure::kOther},          // foreign_key_violation
    {"23", ErrorCode::kInvalidArgument, Failure::kOther},      // other integrity constraints
    {"22P03", ErrorCode::kInternal, Failure::kOther},          // invalid_binary_representation
    {"22", ErrorCode::kInvalidArgument, Failure::kOther},      // data exceptions
    {"08P01", ErrorCode::kInternal, Failure::kOther},          // protocol_violation
    {"08", ErrorCode::kUnavailable, Failure::kConnection},     // connection exceptions
    {"57P01", ErrorCode::kUnavailable, Failure::kConnection},  // admin_shutdown
    {"57P02", ErrorCode::kUnavailable, Failure::kConnection},  // crash_shutdown
    {"57P03", ErrorCode::kUnavailable, Failure::kConnection},  // cannot_connect_now
    {"25006", ErrorCode::kUnavailable, Failure::kReadOnly},    // read_only_sql_transaction
    {"40001", ErrorCode::kUnavailable, Failure::kRolledBack},  // serialization_failure
    {"40P01", ErrorCode::kUnavailable, Failure::kRolledBack},  // deadlock_detected
    {"42501", ErrorCode::kPermissionDenied, Failure::kOther},  // insufficient_privilege
    {"42601", ErrorCode::kInternal, Failure::kOther},          // syntax_error
    {"42P18", ErrorCode::kInternal, Failure::kOther},          // indeterminate_datatype
    {"42804", ErrorCode::kInternal, Failure::kOther},          // datatype_mismatch
};

const SqlStateRule* RuleFor(const char* state) {
  if (state == nullptr) return nullptr;
  for (const SqlStateRule& rule : kSqlStateRules) {
    if (std::strncmp(state, rule.state, std::strlen(rule.state)) == 0) return &rule;
  }
  return nullptr;
}

// OneLine folds libpq's multi-line messages ("...failed: Connection refused\n\tIs the server
// running...") into one line.
std::string OneLine(const char* text) {
  std::string out;
  bool space = false;
  for (const char* p = text; p != nullptr && *p != 0; ++p) {
    if (*p == '\n' || *p == '\t' || *p == '\r' || *p == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(*p);
  }
  return out.empty() ? "no answer from the server" : out;
}

}  // namespace

bool IsUtf8Text(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    int n;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= static_cast<size_t>(n)) return false;
    for (int k = 1; k <= n; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + static_cast<size_t>(k)]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, UTF-16 surrogates and code points above U+10FFFF are not UTF-8.
    static constexpr std::array<uint32_t, 4> kMin = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[static_cast<size_t>(n)] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += static_cast<size_t>(n) + 1;
  }
  return true;
}

// ---- PgParams.

PgParams& PgParams::Add(Oid type, std::string bytes) {
  if (bytes.size() > kMaxValueBytes && bad_param_ == 0) {
    bad_param_ = size() + 1;
    bad_why_ = "is larger than PostgreSQL's 1 GiB limit";
  }
  params_.push_back(Param{type, false, std::move(bytes)});
  return *this;
}

PgParams& PgParams::Text(std::string_view v) {
  if (!IsUtf8Text(v) && bad_param_ == 0) {
    bad_param_ = size() + 1;
    bad_why_ = "is not UTF-8 text without NUL bytes, which PostgreSQL text cannot hold";
  }
  return Add(kTextOid, std::string(v));
}

PgParams& PgParams::Bytea(ByteSpan v) {
  return Add(kByteaOid, std::string(reinterpret_cast<const char*>(v.data()), v.size()));
}

PgParams& PgParams::Int8(int64_t v) {
  std::string out;
  PutBigEndian(out, static_cast<uint64_t>(v), 8);
  return Add(kInt8Oid, std::move(out));
}

PgParams& PgParams::Int4(int32_t v) {
  std::string out;
  PutBigEndian(out, static_cast<uint32_t>(v), 4);
  return Add(kInt4Oid, std::move(out));
}

PgParams& PgParams::Bool(bool v) { return Add(kBoolOid, std::string(1, v ? '\1' : '\0')); }

PgParams& PgParams::OptInt8(const std::optional<int64_t>& v) {
  if (v) return Int8(*v);
  params_.push_back(Param{kInt8Oid, true, {}});
  return *this;
}

PgParams& PgParams::Int8Array(std::span<const int64_t> v) {
  std::string out = ArrayHeader(kInt8Oid, v.size());
  for (int64_t x : v) {
    PutBigEndian(out, 8, 4);
    PutBigEndian(out, static_cast<uint64_t>(x), 8);
  }
  return Add(kInt8ArrayOid, std::move(out));
}

PgParams& PgParams::ByteaArray(std::span<const ByteSpan> v) {
  std::string out = ArrayHeader(kByteaOid, v.size());
  for (ByteSpan x : v) {
    if (x.size() > kMaxValueBytes) {
      PutBigEndian(out, 0, 4);  // the whole array is refused below (and by Check)
      continue;
    }
    PutBigEndian(out, x.size(), 4);
    out.append(reinterpret_cast<const char*>(x.data()), x.size());
  }
  return Add(kByteaArrayOid, std::move(out));
}

Status PgParams::Check(const char* op) const {
  if (bad_param_ == 0) return Status::Ok();
  return InvalidArgument(std::string("store: ") + op + ": parameter $" +
                         std::to_string(bad_param_) + " " + bad_why_);
}

std::vector<Oid> PgParams::Types() const {
  std::vector<Oid> out;
  for (const Param& p : params_) out.push_back(p.type);
  return out;
}

std::vector<const char*> PgParams::Values() const {
  std::vector<const char*> out;
  // A null pointer is SQL NULL to libpq: an empty value must point somewhere.
  for (const Param& p : params_) out.push_back(p.null ? nullptr : p.bytes.c_str());
  return out;
}

std::vector<int> PgParams::Lengths() const {
  std::vector<int> out;
  for (const Param& p : params_) out.push_back(static_cast<int>(p.bytes.size()));
  return out;
}

// ---- PgResult.

int64_t PgResult::affected() const {
  const char* n = PQcmdTuples(res_.get());
  return n == nullptr || *n == 0 ? 0 : std::strtoll(n, nullptr, 10);
}

std::string PgResult::Text(int row, int col) const {
  return std::string(PQgetvalue(res_.get(), row, col),
                     static_cast<size_t>(PQgetlength(res_.get(), row, col)));
}

Bytes PgResult::Blob(int row, int col) const {
  const auto* p = reinterpret_cast<const uint8_t*>(PQgetvalue(res_.get(), row, col));
  return Bytes(p, p + PQgetlength(res_.get(), row, col));
}

int64_t PgResult::Int8(int row, int col) const {
  if (PQgetlength(res_.get(), row, col) != 8) return 0;  // NULL (checked by the caller)
  return static_cast<int64_t>(GetBigEndian(PQgetvalue(res_.get(), row, col), 8));
}

int32_t PgResult::Int4(int row, int col) const {
  if (PQgetlength(res_.get(), row, col) != 4) return 0;
  return static_cast<int32_t>(GetBigEndian(PQgetvalue(res_.get(), row, col), 4));
}

bool PgResult::Bool(int row, int col) const {
  return PQgetlength(res_.get(), row, col) == 1 && PQgetvalue(res_.get(), row, col)[0] != 0;
}

std::optional<int64_t> PgResult::OptInt8(int row, int col) const {
  if (IsNull(row, col)) return std::nullopt;
  return Int8(row, col);
}

// ---- Errors.

Status PgError(PGconn* conn, const PGresult* res, const char* op, Failure* failure) {
  const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary = res != nullptr ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  const std::string text =
      primary != nullptr ? std::string(primary) : OneLine(PQerrorMessage(conn));
  const SqlStateRule* rule = RuleFor(state);
  ErrorCode code = rule != nullptr ? rule->code : ErrorCode::kUnavailable;
  Failure kind = rule != nullptr ? rule->failure : Failure::kOther;
  // A connection that is gone is a connection failure whatever the last message said (a
  // FATAL before closing, a protocol error, or nothing at all).
  if (conn == nullptr || PQstatus(conn) == CONNECTION_BAD) {
    kind = Failure::kConnection;
    code = ErrorCode::kUnavailable;
  }
  if (failure != nullptr) *failure = kind;
  if (code == ErrorCode::kNotFound) {
    return NotFound(std::string("store: ") + op + ": key not found (" + text + ")");
  }
  return Status(code, std::string("store: ") + op + ": " + text);
}

// ---- PgSession.

StatusOr<PgResult> PgSession::Check(const char* op, PGresult* raw, const PgQuery* query) {
  PgResult res(raw);
  const ExecStatusType st = raw != nullptr ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    return PgError(conn_, raw, op, &failure_);
  }
  if (query == nullptr) return res;
  const int want = static_cast<int>(query->columns.size());
  if (PQnfields(raw) != want) {
    failure_ = Failure::kOther;
    return InternalError(std::string("store: ") + op + ": the result has " +
                         std::to_string(PQnfields(raw)) + " columns, expected " +
                         std::to_string(want));
  }
  for (int i = 0; i < want; ++i) {
    if (PQftype(raw, i) != query->columns[static_cast<size_t>(i)] || PQfformat(raw, i) != 1) {
      failure_ = Failure::kOther;
      return InternalError(std::string("store: ") + op + ": result column " +
                           std::to_string(i + 1) + " has type " + std::to_string(PQftype(raw, i)) +
                           ", expected " + std::to_string(query->columns[static_cast<size_t>(i)]));
    }
  }
  return res;
}

StatusOr<PgResult> PgSession::Exec(const char* op, const PgQuery& query, const PgParams& params) {
  RETURN_IF_ERROR(params.Check(op));
  const std::vector<Oid> types = params.Types();
  const std::vector<const char*> values = params.Values();
  const std::vector<int> lengths = params.Lengths();
  const std::vector<int> formats(values.size(), 1);
  PGresult* res = PQexecParams(conn_, query.sql, params.size(), types.data(), values.data(),
                               lengths.data(), formats.data(), /*resultFormat=*/1);
  return Check(op, res, &query);
}

StatusOr<PgResult> PgSession::Exec(const char* op, const PgQuery& query) {
  return Exec(op, query, PgParams());
}

Status PgSession::Script(const char* op, const char* sql) {
  auto res = Check(op, PQexec(conn_, sql), nullptr);
  return res.status();
}

Status PgSession::Commit(const char* op) {
  commit_sent_ = true;
  PGresult* raw = PQexec(conn_, "COMMIT");
  auto res = Check(op, raw, nullptr);
  if (!res.ok()) {
    if (failure_ != Failure::kConnection) return res.status();
    return Unavailable(std::string("store: ") + op +
                       ": the connection failed during COMMIT, so whether the transaction was "
                       "stored is unknown (" +
                       res.status().message() + ")");
  }
  // COMMIT of a transaction the server had aborted answers ROLLBACK, not an error.
  if (std::strcmp(PQcmdStatus(raw), "COMMIT") != 0) {
    failure_ = Failure::kOther;
    return Unavailable(std::string("store: ") + op + ": the server rolled the transaction back");
  }
  return Status::Ok();
}

void PgSession::Rollback() {
  const PGTransactionStatusType st = PQtransactionStatus(conn_);
  if (st == PQTRANS_INTRANS || st == PQTRANS_INERROR) PQclear(PQexec(conn_, "ROLLBACK"));
}

bool PgSession::RetrySafe() const {
  switch (failure_) {
    case Failure::kConnection:
    case Failure::kReadOnly:
      return !commit_sent_;
    case Failure::kRolledBack:
      return true;
    case Failure::kNone:
    case Failure::kOther:
      return false;
  }
  return false;
}

// ---- PgTransaction.

Status PgTransaction::Begin(const char* op, const char* begin) {
  open_ = true;
  return session_.Script(op, begin);
}

Status PgTransaction::Commit(const char* op) {
  open_ = false;
  return session_.Commit(op);
}

}  // namespace custos::store::internal
