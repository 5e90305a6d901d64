#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "ods/common/check.h"

namespace ods {

// Error categories. Numbering mirrors google.rpc.Code so server/status_mapping.cc maps 1:1.
enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

std::string_view StatusCodeName(StatusCode code);

// `text` made safe to quote in an error message: at most `max_bytes` bytes (then "..."), and
// bytes outside printable ASCII replaced by '?'. Client-supplied names and keys go through this
// so a hostile string cannot bloat an error past gRPC's metadata limit or break a log line.
std::string QuoteForMessage(std::string_view text, size_t max_bytes = 64);

// Outcome of a fallible operation: a code and, on error, a message for humans that names the
// table, key, field or file position involved. Cheap to copy when ok (no allocation).
// Thread-compatible.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: message", or "OK".
  std::string ToString() const;

  // Explicitly drops a status whose failure the caller has decided not to act on.
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgumentError(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status NotFoundError(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status AlreadyExistsError(std::string m) {
  return {StatusCode::kAlreadyExists, std::move(m)};
}
inline Status ResourceExhaustedError(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status FailedPreconditionError(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status InternalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status UnavailableError(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status UnimplementedError(std::string m) {
  return {StatusCode::kUnimplemented, std::move(m)};
}

// A value or a non-ok Status. Accessing value() of an error is a bug: ODS_CHECK aborts.
//   Result<Config> c = Load(path);
//   if (!c.ok()) return c.status();
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : data_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(data_).ok()) {
      data_ = Status(StatusCode::kInternal, "Result constructed from an OK status");
    }
  }

  bool ok() const { return std::holds_alternative<T>(data_); }
  Status status() const { return ok() ? Status() : std::get<Status>(data_); }

  T& value() & {
    ODS_CHECK(ok());
    return std::get<T>(data_);
  }
  const T& value() const& {
    ODS_CHECK(ok());
    return std::get<T>(data_);
  }
  T&& value() && {
    ODS_CHECK(ok());
    return std::get<T>(std::move(data_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace ods

#define ODS_STATUS_CONCAT_INNER_(a, b) a##b
#define ODS_STATUS_CONCAT_(a, b) ODS_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (a Status) is not ok.
#define ODS_RETURN_IF_ERROR(expr)            \
  do {                                       \
    ::ods::Status ods_status_ = (expr);      \
    if (!ods_status_.ok()) return ods_status_; \
  } while (false)

// `lhs = value of expr` (a Result<T>), or returns its status from the enclosing function.
#define ODS_ASSIGN_OR_RETURN(lhs, expr) \
  ODS_ASSIGN_OR_RETURN_IMPL_(ODS_STATUS_CONCAT_(ods_result_, __LINE__), lhs, expr)
#define ODS_ASSIGN_OR_RETURN_IMPL_(result, lhs, expr) \
  auto result = (expr);                               \
  if (!result.ok()) return result.status();           \
  lhs = std::move(result).value()
