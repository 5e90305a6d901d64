#include "cli/requests.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/odsd_process.h"
#include "support/test_util.h"

namespace ods::cli {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;
using ::ods::testing::TempDir;
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

TEST(CliRequestsTest, SubscribeCollectsRepeatedNamesKeysAndFrom) {
  ParsedArgs args = Args({}, {{"--from", "42"}});
  args.repeated["--table"] = {"a", "b"};
  args.repeated["--feature"] = {"sum@1h"};
  args.repeated["--key"] = {"k1"};
  const auto r = BuildSubscribeRequest(args);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->tables(), ElementsAre("a", "b"));
  EXPECT_THAT(r->features(), ElementsAre("sum@1h"));
  EXPECT_THAT(r->keys(), ElementsAre("k1"));
  EXPECT_TRUE(r->templates().empty());
  EXPECT_EQ(r->from_sequence(), 42u);
}

TEST(CliRequestsTest, SubscribeWithoutANameOrWithABadFromIsInvalidArgument) {
  EXPECT_THAT(BuildSubscribeRequest(Args({})), StatusIs(StatusCode::kInvalidArgument));
  ParsedArgs keys_only = Args({});
  keys_only.repeated["--key"] = {"k"};
  EXPECT_THAT(BuildSubscribeRequest(keys_only), StatusIs(StatusCode::kInvalidArgument));
  for (const char* from : {"0", "-1", "x"}) {
    ParsedArgs args = Args({}, {{"--from", from}});
    args.repeated["--template"] = {"tx"};
    EXPECT_THAT(BuildSubscribeRequest(args), StatusIs(StatusCode::kInvalidArgument)) << from;
  }
  ParsedArgs positional = Args({"t"});
  positional.repeated["--table"] = {"t"};
  EXPECT_THAT(BuildSubscribeRequest(positional), StatusIs(StatusCode::kInvalidArgument));
}

Result<ods::v1::PushEventsRequest> Push(const ParsedArgs& args, const std::string& in = "") {
  std::istringstream stream(in);
  return BuildPushRequest(args, stream);
}

Result<ods::v1::ApplyDefinitionsRequest> Apply(const ParsedArgs& args, const std::string& in = "") {
  std::istringstream stream(in);
  return BuildApplyRequest(args, stream);
}

TEST(CliRequestsTest, PushBuildsOneTypedEventWithKeyAndTimestampAsFields) {
  const auto r = Push(Args({"transactions", "user_id=u1", "ts:timestamp=1700000000000000",
                            "amount=12.5", "merchant=acme"},
                           {{"--event-id", "e1"}}));
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->events_size(), 1);
  const ods::v1::Event& event = r->events(0);
  EXPECT_EQ(event.template_(), "transactions");
  EXPECT_EQ(event.event_id(), "e1");
  EXPECT_EQ(event.fields().size(), 4u);
  EXPECT_EQ(event.fields().at("user_id").string_value(), "u1");
  EXPECT_EQ(event.fields().at("ts").timestamp_micros_value(), 1700000000000000);
  EXPECT_DOUBLE_EQ(event.fields().at("amount").double_value(), 12.5);
  EXPECT_EQ(event.fields().at("merchant").string_value(), "acme");
}

TEST(CliRequestsTest, PushWithoutEventIdLeavesItEmpty) {
  const auto r = Push(Args({"t", "k=1"}));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->events(0).event_id(), "");
  EXPECT_EQ(r->events(0).fields().at("k").int64_value(), 1);
}

TEST(CliRequestsTest, PushWithoutTemplateOrFieldsIsInvalidArgument) {
  EXPECT_THAT(Push(Args({})), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(Push(Args({"t"})), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(Push(Args({"", "k=1"})), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(Push(Args({"t", "k=1"}, {{"--event-id", ""}})),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(CliRequestsTest, PushWithBadOrRepeatedFieldNamesTheArgument) {
  const auto bad = Push(Args({"t", "k=1", "ts:timestamp=soon"}));
  EXPECT_THAT(bad, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(bad.status().message(), HasSubstr("'ts:timestamp=soon'"));
  const auto twice = Push(Args({"t", "k=1", "k:string=2"}));
  EXPECT_THAT(twice, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(twice.status().message(), HasSubstr("'k:string=2'"));
}

TEST(CliRequestsTest, PushJsonParsesWholeRequest) {
  const auto r = Push(Args({}, {{"--json", R"({"events":[
      {"template":"a","fields":{"k":{"string_value":"x"}},"event_id":"e"},
      {"template":"b"}]})"}}));
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->events_size(), 2);
  EXPECT_EQ(r->events(0).template_(), "a");
  EXPECT_EQ(r->events(0).event_id(), "e");
  EXPECT_EQ(r->events(0).fields().at("k").string_value(), "x");
  EXPECT_EQ(r->events(1).template_(), "b");
}

TEST(CliRequestsTest, PushJsonDashReadsStdin) {
  const auto r = Push(Args({}, {{"--json", "-"}}), R"({"events":[{"template":"a"}]})");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->events(0).template_(), "a");
}

TEST(CliRequestsTest, PushJsonWithTemplateOrEventIdOrBadJsonIsInvalidArgument) {
  const auto with_template = Push(Args({"t"}, {{"--json", "{}"}}));
  EXPECT_THAT(with_template, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(with_template.status().message(), HasSubstr("'t'"));
  EXPECT_THAT(Push(Args({}, {{"--json", "{}"}, {"--event-id", "e"}})),
              StatusIs(StatusCode::kInvalidArgument));
  const auto wrong_message = Push(Args({}, {{"--json", R"({"records":[]})"}}));
  EXPECT_THAT(wrong_message, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(wrong_message.status().message(), HasSubstr("ods.v1.PushEventsRequest"));
  EXPECT_THAT(Push(Args({}, {{"--json", "-"}}), ""), StatusIs(StatusCode::kInvalidArgument));
}

TEST(CliRequestsTest, FeaturesSplitsEntitiesAndFeatures) {
  const auto r = BuildFeaturesRequest(Args({"u1,u2", "txn_count@1h,user_profile:age"}));
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->entities(), ElementsAre("u1", "u2"));
  EXPECT_THAT(r->features(), ElementsAre("txn_count@1h", "user_profile:age"));
  EXPECT_FALSE(r->has_as_of_micros());
}

TEST(CliRequestsTest, FeaturesAsOfSetsTheTime) {
  const auto r = BuildFeaturesRequest(Args({"u1", "f"}, {{"--as-of", "1700000000000000"}}));
  ASSERT_THAT(r, IsOk());
  ASSERT_TRUE(r->has_as_of_micros());
  EXPECT_EQ(r->as_of_micros(), 1700000000000000);
}

TEST(CliRequestsTest, FeaturesUsageErrorsNameTheArgument) {
  EXPECT_THAT(BuildFeaturesRequest(Args({})), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(BuildFeaturesRequest(Args({"u1"})), StatusIs(StatusCode::kInvalidArgument));
  const auto empty_item = BuildFeaturesRequest(Args({"u1,,u2", "f"}));
  EXPECT_THAT(empty_item, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(empty_item.status().message(), HasSubstr("'u1,,u2'"));
  const auto extra = BuildFeaturesRequest(Args({"u1", "u2", "f"}));
  EXPECT_THAT(extra, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(extra.status().message(), HasSubstr("'f'"));
  const auto as_of = BuildFeaturesRequest(Args({"u1", "f"}, {{"--as-of", "now"}}));
  EXPECT_THAT(as_of, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(as_of.status().message(), HasSubstr("--as-of"));
}

TEST(CliRequestsTest, HistoryBuildsOneRowPerEntityAtTime) {
  const auto r = BuildHistoryRequest(Args({"u1@100,a@b@-5", "f1,f2"}));
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->rows_size(), 2);
  EXPECT_EQ(r->rows(0).entity(), "u1");
  EXPECT_EQ(r->rows(0).timestamp_micros(), 100);
  EXPECT_EQ(r->rows(1).entity(), "a@b");  // the last '@' splits
  EXPECT_EQ(r->rows(1).timestamp_micros(), -5);
  EXPECT_THAT(r->features(), ElementsAre("f1", "f2"));
}

TEST(CliRequestsTest, HistoryWithBadRowNamesTheItem) {
  for (const char* rows : {"u1", "u1@", "u1@soon", "@100"}) {
    const auto r = BuildHistoryRequest(Args({std::string("u0@1,") + rows, "f"}));
    EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument)) << rows;
    EXPECT_THAT(r.status().message(), HasSubstr(std::string("'") + rows + "'"));
  }
  EXPECT_THAT(BuildHistoryRequest(Args({"u1@1"})), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(BuildHistoryRequest(Args({"u1@1", "f", "g"})),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(CliRequestsTest, ApplyReadsTheFile) {
  const TempDir dir;
  const std::string path = dir.path() + "/defs.yaml";
  const std::string yaml = "aggregations:\n  a: {template: t, fn: count, window: 1h}\n";
  std::ofstream(path) << yaml;
  const auto r = Apply(Args({path}));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->yaml(), yaml);
}

TEST(CliRequestsTest, ApplyDashReadsStdin) {
  const auto r = Apply(Args({"-"}), "event_templates: {}\n");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->yaml(), "event_templates: {}\n");
}

TEST(CliRequestsTest, ApplyOfUnreadableFileNamesIt) {
  const TempDir dir;
  const auto missing = Apply(Args({dir.path() + "/nope.yaml"}));
  EXPECT_THAT(missing, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(missing.status().message(), HasSubstr("nope.yaml"));
  const auto directory = Apply(Args({dir.path()}));
  EXPECT_THAT(directory, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(directory.status().message(), HasSubstr("directory"));
}

TEST(CliRequestsTest, ApplyTakesExactlyOneFile) {
  EXPECT_THAT(Apply(Args({})), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(Apply(Args({"a.yaml", "b.yaml"})), StatusIs(StatusCode::kInvalidArgument));
}

TEST(CliRequestsTest, DefinitionsTakesNoArguments) {
  EXPECT_THAT(BuildDefinitionsRequest(Args({})), IsOk());
  EXPECT_THAT(BuildDefinitionsRequest(Args({"x"})), StatusIs(StatusCode::kInvalidArgument));
}

TEST(CliRequestsTest, HealthTakesOptionalService) {
  EXPECT_EQ(BuildHealthRequest(Args({}))->service(), "");
  EXPECT_EQ(BuildHealthRequest(Args({"ods.v1.Store"}))->service(), "ods.v1.Store");
  EXPECT_THAT(BuildHealthRequest(Args({"a", "b"})), StatusIs(StatusCode::kInvalidArgument));
}


TEST(CliRequestsTest, RegisterKeepStateSwitch) {
  std::istringstream in("function init() return 0 end");
  auto r = BuildRegisterRequest(Args({"f", "aggregator", "-"}, {{"--keep-state", ""}}), in);
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->keep_state());
  EXPECT_EQ(r->source(), "function init() return 0 end");
  std::istringstream again("x");
  r = BuildRegisterRequest(Args({"f", "aggregator", "-"}), again);
  ASSERT_THAT(r, IsOk());
  EXPECT_FALSE(r->keep_state());
}

}  // namespace
}  // namespace ods::cli
