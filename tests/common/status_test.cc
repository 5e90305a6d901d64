#include "ods/common/status.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>

#include "support/test_util.h"

namespace ods {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_EQ(s, OkStatus());
}

TEST(StatusTest, ErrorCarriesCodeAndMessage) {
  Status s = NotFoundError("unknown table 'x'");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "unknown table 'x'");
  EXPECT_EQ(s.ToString(), "NOT_FOUND: unknown table 'x'");
}

TEST(StatusTest, HelpersProduceTheirCodes) {
  EXPECT_THAT(InvalidArgumentError("m"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(NotFoundError("m"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(AlreadyExistsError("m"), StatusIs(StatusCode::kAlreadyExists));
  EXPECT_THAT(ResourceExhaustedError("m"), StatusIs(StatusCode::kResourceExhausted));
  EXPECT_THAT(FailedPreconditionError("m"), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(InternalError("m"), StatusIs(StatusCode::kInternal));
  EXPECT_THAT(UnavailableError("m"), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(UnimplementedError("m"), StatusIs(StatusCode::kUnimplemented));
}

TEST(StatusTest, CodeNumbersMirrorGoogleRpcCode) {
  EXPECT_EQ(static_cast<int>(StatusCode::kInvalidArgument), 3);
  EXPECT_EQ(static_cast<int>(StatusCode::kNotFound), 5);
  EXPECT_EQ(static_cast<int>(StatusCode::kResourceExhausted), 8);
  EXPECT_EQ(static_cast<int>(StatusCode::kAborted), 10);
  EXPECT_EQ(static_cast<int>(StatusCode::kUnavailable), 14);
  EXPECT_EQ(static_cast<int>(StatusCode::kDataLoss), 15);
  EXPECT_EQ(static_cast<int>(StatusCode::kUnauthenticated), 16);
}

TEST(StatusTest, EveryCodeHasItsCanonicalName) {
  EXPECT_EQ(StatusCodeName(StatusCode::kOk), "OK");
  EXPECT_EQ(StatusCodeName(StatusCode::kCancelled), "CANCELLED");
  EXPECT_EQ(StatusCodeName(StatusCode::kUnknown), "UNKNOWN");
  EXPECT_EQ(StatusCodeName(StatusCode::kInvalidArgument), "INVALID_ARGUMENT");
  EXPECT_EQ(StatusCodeName(StatusCode::kDeadlineExceeded), "DEADLINE_EXCEEDED");
  EXPECT_EQ(StatusCodeName(StatusCode::kNotFound), "NOT_FOUND");
  EXPECT_EQ(StatusCodeName(StatusCode::kAlreadyExists), "ALREADY_EXISTS");
  EXPECT_EQ(StatusCodeName(StatusCode::kPermissionDenied), "PERMISSION_DENIED");
  EXPECT_EQ(StatusCodeName(StatusCode::kResourceExhausted), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(StatusCodeName(StatusCode::kFailedPrecondition), "FAILED_PRECONDITION");
  EXPECT_EQ(StatusCodeName(StatusCode::kAborted), "ABORTED");
  EXPECT_EQ(StatusCodeName(StatusCode::kOutOfRange), "OUT_OF_RANGE");
  EXPECT_EQ(StatusCodeName(StatusCode::kUnimplemented), "UNIMPLEMENTED");
  EXPECT_EQ(StatusCodeName(StatusCode::kInternal), "INTERNAL");
  EXPECT_EQ(StatusCodeName(StatusCode::kUnavailable), "UNAVAILABLE");
  EXPECT_EQ(StatusCodeName(StatusCode::kDataLoss), "DATA_LOSS");
  EXPECT_EQ(StatusCodeName(StatusCode::kUnauthenticated), "UNAUTHENTICATED");
}

TEST(StatusTest, EqualityComparesCodeAndMessage) {
  EXPECT_EQ(NotFoundError("a"), NotFoundError("a"));
  EXPECT_FALSE(NotFoundError("a") == NotFoundError("b"));
  EXPECT_FALSE(NotFoundError("a") == InvalidArgumentError("a"));
}

TEST(ResultTest, HoldsValue) {
  Result<std::string> r(std::string("hello"));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, "hello");
  EXPECT_EQ(r->size(), 5u);
  EXPECT_TRUE(r.status().ok());
}

TEST(ResultTest, HoldsError) {
  Result<int> r(NotFoundError("gone"));
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r, StatusIs(StatusCode::kNotFound));
  EXPECT_EQ(r.status().message(), "gone");
}

TEST(ResultTest, OkStatusBecomesInternalError) {
  Result<int> r(OkStatus());
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r, StatusIs(StatusCode::kInternal));
}

TEST(ResultTest, MoveOnlyValueCanBeTakenOut) {
  Result<std::unique_ptr<int>> r(std::make_unique<int>(7));
  ASSERT_THAT(r, IsOk());
  std::unique_ptr<int> p = std::move(r).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 7);
}

Status FailIfNegative(int v) {
  if (v < 0) return InvalidArgumentError("negative");
  return OkStatus();
}

Result<int> Half(int v) {
  if (v % 2 != 0) return InvalidArgumentError("odd");
  return v / 2;
}

Status ReturnIfErrorUser(int v, bool& reached_end) {
  ODS_RETURN_IF_ERROR(FailIfNegative(v));
  reached_end = true;
  return OkStatus();
}

Result<int> AssignOrReturnUser(int v) {
  ODS_ASSIGN_OR_RETURN(const int half, Half(v));
  return half + 1;
}

TEST(StatusMacrosTest, ReturnIfErrorStopsOnError) {
  bool reached_end = false;
  EXPECT_THAT(ReturnIfErrorUser(-1, reached_end), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_FALSE(reached_end);
  EXPECT_THAT(ReturnIfErrorUser(1, reached_end), IsOk());
  EXPECT_TRUE(reached_end);
}

TEST(StatusMacrosTest, AssignOrReturnAssignsOrPropagates) {
  Result<int> good = AssignOrReturnUser(8);
  ASSERT_THAT(good, IsOk());
  EXPECT_EQ(*good, 5);
  EXPECT_THAT(AssignOrReturnUser(7), StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace ods
