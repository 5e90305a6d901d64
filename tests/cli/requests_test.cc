#include "cli/requests.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "support/test_util.h"

namespace ods::cli {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

ParsedArgs Args(std::vector<std::string> positional,
                std::vector<std::pair<std::string, std::string>> flags = {}) {
  ParsedArgs args;
  args.positional = std::move(positional);
  for (auto& [name, value] : flags) {
    args.flags.emplace(name, value);
  }
  return args;
}

Result<ods::v1::PutRequest> Put(const ParsedArgs& args, const std::string& in = "") {
  std::istringstream stream(in);
  return BuildPutRequest(args, stream);
}

TEST(CliRequestsTest, PutBuildsOneTypedRecord) {
  const auto r = Put(Args({"user_profile", "u1", "age=42", "country=US"}, {{"--event-time", "7"}}));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->table(), "user_profile");
  ASSERT_EQ(r->records_size(), 1);
  const ods::v1::Record& record = r->records(0);
  EXPECT_EQ(record.key(), "u1");
  EXPECT_EQ(record.event_time_micros(), 7);
  EXPECT_EQ(record.fields().at("age").int64_value(), 42);
  EXPECT_EQ(record.fields().at("country").string_value(), "US");
}

TEST(CliRequestsTest, PutWithoutKeyIsInvalidArgument) {
  EXPECT_THAT(Put(Args({"t"})), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(Put(Args({})), StatusIs(StatusCode::kInvalidArgument));
}

TEST(CliRequestsTest, PutWithBadFieldNamesTheArgument) {
  const auto r = Put(Args({"t", "k", "ok=1", "age:int64=x"}));
  EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(r.status().message(), HasSubstr("'age:int64=x'"));
}

TEST(CliRequestsTest, PutWithRepeatedFieldIsInvalidArgument) {
  EXPECT_THAT(Put(Args({"t", "k", "a=1", "a:string=2"})), StatusIs(StatusCode::kInvalidArgument));
}

TEST(CliRequestsTest, PutWithBadEventTimeIsInvalidArgument) {
  EXPECT_THAT(Put(Args({"t", "k"}, {{"--event-time", "soon"}})),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(CliRequestsTest, PutJsonParsesBatchAndFillsTable) {
  const auto r =
      Put(Args({"t"}, {{"--json", R"({"records":[{"key":"a","fields":{"x":{"int64_value":"1"}}},
                                                     {"key":"b"}]})"}}));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->table(), "t");
  ASSERT_EQ(r->records_size(), 2);
  EXPECT_EQ(r->records(0).fields().at("x").int64_value(), 1);
  EXPECT_EQ(r->records(1).key(), "b");
}

TEST(CliRequestsTest, PutJsonDashReadsStdin) {
  const auto r = Put(Args({"t"}, {{"--json", "-"}}), R"({"table":"t","records":[{"key":"a"}]})");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->records(0).key(), "a");
}

TEST(CliRequestsTest, PutJsonWithOtherTableIsInvalidArgument) {
  EXPECT_THAT(Put(Args({"t"}, {{"--json", R"({"table":"u"})"}})),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(CliRequestsTest, PutMalformedJsonIsInvalidArgument) {
  EXPECT_THAT(Put(Args({"t"}, {{"--json", "{"}})), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(Put(Args({"t"}, {{"--json", R"({"nope":1})"}})),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(Put(Args({"t"}, {{"--json", "-"}}), ""), StatusIs(StatusCode::kInvalidArgument));
}

TEST(CliRequestsTest, PutJsonWithKeyArgumentIsInvalidArgument) {
  EXPECT_THAT(Put(Args({"t", "k"}, {{"--json", "{}"}})), StatusIs(StatusCode::kInvalidArgument));
}

TEST(CliRequestsTest, GetCollectsKeysAndFields) {
  const auto r = BuildGetRequest(Args({"t", "k1", "k2"}, {{"--fields", "a,b"}}));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->table(), "t");
  EXPECT_THAT(r->keys(), ElementsAre("k1", "k2"));
  EXPECT_THAT(r->fields(), ElementsAre("a", "b"));
}

TEST(CliRequestsTest, GetWithoutKeyIsInvalidArgument) {
  EXPECT_THAT(BuildGetRequest(Args({"t"})), StatusIs(StatusCode::kInvalidArgument));
}

TEST(CliRequestsTest, DeleteCollectsKeys) {
  const auto r = BuildDeleteRequest(Args({"t", "k1", "k2"}));
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->keys(), ElementsAre("k1", "k2"));
}

TEST(CliRequestsTest, ScanReadsAllOptions) {
  const auto r = BuildScanRequest(Args(
      {"t"}, {{"--prefix", "u"}, {"--start-after", "u1"}, {"--limit", "5"}, {"--fields", "a"}}));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->prefix(), "u");
  EXPECT_EQ(r->start_after(), "u1");
  EXPECT_EQ(r->limit(), 5u);
  EXPECT_THAT(r->fields(), ElementsAre("a"));
}

TEST(CliRequestsTest, ScanWithBadLimitIsInvalidArgument) {
  EXPECT_THAT(BuildScanRequest(Args({"t"}, {{"--limit", "-1"}})),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(BuildScanRequest(Args({"t", "extra"})), StatusIs(StatusCode::kInvalidArgument));
}

TEST(CliRequestsTest, HealthTakesOptionalService) {
  EXPECT_EQ(BuildHealthRequest(Args({}))->service(), "");
  EXPECT_EQ(BuildHealthRequest(Args({"ods.v1.Store"}))->service(), "ods.v1.Store");
  EXPECT_THAT(BuildHealthRequest(Args({"a", "b"})), StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace ods::cli
