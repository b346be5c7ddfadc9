// Errors as values. A Status says which check failed; it never carries secret material.
// StatusOr<T> holds either a value or a non-OK Status. No exceptions cross module lines.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace custos {

// ErrorCode classifies a failure so callers can map it to exit codes or HTTP statuses.
enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,     // malformed input: bad encoding, wrong length, unknown field
  kNotFound,            // a named object does not exist
  kAlreadyExists,       // refusing to overwrite
  kPermissionDenied,    // caller not authorised (allowlist, signature, policy)
  kFailedPrecondition,  // operation not valid in the current state
  kIntegrity,           // a MAC, tag, signature, hash chain or proof did not verify
  kUnavailable,         // a peer could not be reached
  kInternal,            // a library call failed unexpectedly
  kAborted,             // a concurrent change won (e.g. another node's): read again, retry
  kOutOfRange,          // a position no longer (or not yet) held, e.g. a trimmed change log
};

// ErrorCodeName returns a stable lower-case name for `code`, used in JSON errors.
const char* ErrorCodeName(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // ToString renders "code: message" for logs and stderr.
  std::string ToString() const;
  // WithContext prefixes the message with `context` (e.g. the keeper id) and keeps the code
  // and the reason.
  Status WithContext(const std::string& context) const;
  // reason is a machine-readable cause within code(), from an enum of the module that made the
  // error (0 = none given): callers map errors by value, never by searching the message. The
  // trusted core's reasons (ecall::Reason) cross the host-core boundary with the code.
  uint16_t reason() const { return reason_; }
  template <typename E>
  Status WithReason(E reason) const {
    Status s = *this;
    s.reason_ = static_cast<uint16_t>(reason);
    return s;
  }

 private:
  ErrorCode code_ = ErrorCode::kOk;
  uint16_t reason_ = 0;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {ErrorCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {ErrorCode::kAlreadyExists, std::move(m)}; }
inline Status PermissionDenied(std::string m) {
  return {ErrorCode::kPermissionDenied, std::move(m)};
}
inline Status FailedPrecondition(std::string m) {
  return {ErrorCode::kFailedPrecondition, std::move(m)};
}
inline Status IntegrityError(std::string m) { return {ErrorCode::kIntegrity, std::move(m)}; }
inline Status Unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
inline Status InternalError(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }
inline Status Aborted(std::string m) { return {ErrorCode::kAborted, std::move(m)}; }
inline Status OutOfRange(std::string m) { return {ErrorCode::kOutOfRange, std::move(m)}; }

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) { assert(!status_.ok()); }
  StatusOr(T value) : value_(std::move(value)) {}

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace custos

#define CUSTOS_CONCAT_INNER(a, b) a##b
#define CUSTOS_CONCAT(a, b) CUSTOS_CONCAT_INNER(a, b)

// RETURN_IF_ERROR(expr): returns the Status of `expr` from the enclosing function if not ok.
#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::custos::Status _custos_st = (expr);            \
    if (!_custos_st.ok()) return _custos_st;         \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates a StatusOr expression; on error returns its Status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(CUSTOS_CONCAT(_custos_so_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
