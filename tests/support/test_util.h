#pragma once

#include <gmock/gmock.h>

#include <chrono>
#include <functional>
#include <thread>

#include "ods/common/status.h"

namespace ods::testing {

// Polls `condition` until it holds or `timeout` passes; true if it held. For tests that wait on
// another thread or process (never a fixed sleep).
inline bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return condition();
}

namespace internal {
inline Status GetStatus(const Status& s) { return s; }
template <typename T>
Status GetStatus(const Result<T>& r) {
  return r.status();
}
}  // namespace internal

// EXPECT_THAT(status_or_result, StatusIs(StatusCode::kNotFound)): matches codes, not text.
MATCHER_P(StatusIs, code, "has status code " + std::string(StatusCodeName(code))) {
  const Status s = ::ods::testing::internal::GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code;
}

// EXPECT_THAT(r, StatusIs(StatusCode::kNotFound, HasSubstr("table 'x'"))): code and message.
MATCHER_P2(StatusIs, code, message_matcher,
           "has status code " + std::string(StatusCodeName(code)) + " and a matching message") {
  const Status s = ::ods::testing::internal::GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, s.message(), result_listener);
}

// EXPECT_THAT(result, IsOkAndHolds(Eq(3))): an OK Result whose value matches.
MATCHER_P(IsOkAndHolds, value_matcher, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status().ToString();
    return false;
  }
  return ::testing::ExplainMatchResult(value_matcher, *arg, result_listener);
}

MATCHER(IsOk, "is OK") {
  const Status s = ::ods::testing::internal::GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.ok();
}

}  // namespace ods::testing

