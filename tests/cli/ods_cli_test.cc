// Integration tests of the `ods` binary (src/cli/ods_main.cc) against a real odsd.

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "ods/v1/admin.pb.h"
#include "ods/v1/features.pb.h"
#include "ods/v1/functions.pb.h"
#include "ods/v1/store.pb.h"
#include "ods/common/sha256.h"
#include "support/odsd_process.h"
#include "support/tls_files.h"

namespace ods::cli {
namespace {

using ::ods::testing::CommandResult;
using ::ods::testing::OdsdProcess;
using ::ods::testing::RunCommand;
using ::ods::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

// Parses one line of `ods` output as `T`; fails the test if it isn't.
template <typename T>
T ParseJson(const std::string& line) {
  T message;
  const auto status = google::protobuf::util::JsonStringToMessage(line, &message);
  EXPECT_TRUE(status.ok()) << "not a " << T::descriptor()->full_name() << ": " << line;
  return message;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t begin = 0;
  for (size_t nl; (nl = text.find('\n', begin)) != std::string::npos; begin = nl + 1) {
    lines.push_back(text.substr(begin, nl - begin));
  }
  return lines;
}

// The record keys of every page `ods scan` printed, in order.
std::vector<std::string> ScannedKeys(const std::string& out) {
  std::vector<std::string> keys;
  for (const std::string& line : Lines(out)) {
    const auto page = ParseJson<ods::v1::ScanResponse>(line);
    for (const ods::v1::Record& r : page.records()) {
      keys.push_back(r.key());
    }
  }
  return keys;
}

constexpr int64_t kSecond = 1'000'000;

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// `ods push` arguments for one event of the default config's `transactions` template.
std::vector<std::string> PushTxn(const std::string& user, int64_t ts, const std::string& amount,
                                 const std::string& merchant = "m") {
  return {"push",
          "transactions",
          "user_id=" + user,
          "ts:timestamp=" + std::to_string(ts),
          "amount=" + amount,
          "merchant=" + merchant};
}

// One `transactions` event in proto3 JSON; `ts` and `amount` are JSON Values.
std::string TxnJson(const std::string& user, const std::string& ts, const std::string& amount) {
  return R"({"template":"transactions","fields":{"user_id":{"string_value":")" + user +
         R"("},"ts":)" + ts + R"(,"amount":)" + amount + "}}";
}

// Writes `text` to a new file in `dir`; returns its path.
std::string WriteFile(const TempDir& dir, const std::string& name, const std::string& text) {
  const std::string path = dir.path() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

class CliOdsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(odsd_.Start()) << odsd_.error(); }

  void TearDown() override { EXPECT_EQ(odsd_.Stop(SIGTERM, 10000), 0) << odsd_.Stderr(); }

  // Runs `ods --addr <odsd> args...`.
  CommandResult Ods(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {ODS_CLI_PATH, "--addr", odsd_.grpc_address()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  OdsdProcess odsd_;
};

TEST_F(CliOdsTest, PutThenGetPrintsTypedValuesAsJson) {
  const CommandResult put =
      Ods({"put", "user_profile", "u1", "age=42", "country=US", "score=1.5", "premium=true",
           "embedding:float_vector=0.5,0.25", "signup:timestamp=1700000000000000",
           "avatar:bytes=aGk=", "--event-time", "123"});
  ASSERT_EQ(put.exit_code, 0) << put.err;
  EXPECT_EQ(ParseJson<ods::v1::PutResponse>(put.out).versions_size(), 1);

  const CommandResult get = Ods({"get", "user_profile", "u1", "missing"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  ASSERT_EQ(Lines(get.out).size(), 1u) << get.out;
  EXPECT_THAT(get.out, HasSubstr(R"("int64_value":"42")"));  // proto field names
  const auto response = ParseJson<ods::v1::GetResponse>(get.out);
  ASSERT_EQ(response.results_size(), 2);
  ASSERT_TRUE(response.results(0).found());
  const ods::v1::Record& record = response.results(0).record();
  EXPECT_EQ(record.event_time_micros(), 123);
  EXPECT_EQ(record.fields().at("age").int64_value(), 42);
  EXPECT_EQ(record.fields().at("country").string_value(), "US");
  EXPECT_DOUBLE_EQ(record.fields().at("score").double_value(), 1.5);
  EXPECT_TRUE(record.fields().at("premium").bool_value());
  EXPECT_THAT(record.fields().at("embedding").float_vector_value().values(),
              ElementsAre(0.5f, 0.25f));
  EXPECT_EQ(record.fields().at("signup").timestamp_micros_value(), 1700000000000000);
  EXPECT_EQ(record.fields().at("avatar").bytes_value(), "hi");
  EXPECT_EQ(response.results(1).key(), "missing");
  EXPECT_FALSE(response.results(1).found());
}

TEST_F(CliOdsTest, SubscribeFromASequencePrintsEachMessageAsJsonUntilMax) {
  // The log records from the first subscription on (this one ends at its timeout).
  ASSERT_EQ(Ods({"--timeout", "0.3", "subscribe", "--table", "user_profile"}).exit_code, 0);
  ASSERT_EQ(Ods({"put", "user_profile", "u1", "age=1"}).exit_code, 0);
  ASSERT_EQ(Ods({"put", "user_profile", "u2", "age=2"}).exit_code, 0);
  ASSERT_EQ(Ods({"delete", "user_profile", "u1"}).exit_code, 0);
  const CommandResult sub =
      Ods({"subscribe", "--table", "user_profile", "--from", "1", "--max", "3"});
  ASSERT_EQ(sub.exit_code, 0) << sub.err;
  std::vector<std::string> changes;
  uint64_t next = 0;
  for (const std::string& line : Lines(sub.out)) {
    const auto m = ParseJson<ods::v1::SubscribeResponse>(line);
    for (const ods::v1::Change& c : m.changes()) {
      changes.push_back(ods::v1::ChangeKind_Name(c.kind()) + " " + c.key() + " " +
                        std::to_string(c.sequence()));
    }
    next = m.next_sequence();
  }
  EXPECT_THAT(changes, ::testing::ElementsAre("CHANGE_PUT u1 1", "CHANGE_PUT u2 2",
                                              "CHANGE_DELETE u1 3"));
  EXPECT_EQ(next, 4u);
  EXPECT_THAT(sub.out, HasSubstr(R"("int64_value":"2")"));
}

TEST_F(CliOdsTest, SubscribeEndsAtTheTimeoutWithSuccess) {
  const CommandResult sub =
      Ods({"--timeout", "0.3", "subscribe", "--table", "user_profile", "--key", "u9"});
  ASSERT_EQ(sub.exit_code, 0) << sub.err;
  ASSERT_EQ(Lines(sub.out).size(), 1u) << sub.out;  // the first message: where it started
  EXPECT_EQ(ParseJson<ods::v1::SubscribeResponse>(sub.out).next_sequence(), 1u);
}

TEST_F(CliOdsTest, SubscribeRefusesBadUsageAndUnknownNames) {
  const CommandResult none = Ods({"subscribe"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_THAT(none.err, HasSubstr("--table, --template or --feature"));
  const CommandResult bad_from = Ods({"subscribe", "--table", "user_profile", "--from", "x"});
  EXPECT_EQ(bad_from.exit_code, 2);
  const CommandResult unknown = Ods({"subscribe", "--table", "nope"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(unknown.err, HasSubstr("'nope'"));
}

TEST_F(CliOdsTest, PutJsonWritesBatch) {
  const CommandResult put =
      Ods({"put", "user_features", "--json",
           R"({"records":[{"key":"a","fields":{"x":{"int64_value":"1"}}},{"key":"b"}]})"});
  ASSERT_EQ(put.exit_code, 0) << put.err;
  EXPECT_EQ(ParseJson<ods::v1::PutResponse>(put.out).versions_size(), 2);
  const auto get = ParseJson<ods::v1::GetResponse>(Ods({"get", "user_features", "a", "b"}).out);
  ASSERT_EQ(get.results_size(), 2);
  EXPECT_EQ(get.results(0).record().fields().at("x").int64_value(), 1);
  EXPECT_TRUE(get.results(1).found());
}

TEST_F(CliOdsTest, GetWithFieldsReturnsOnlyThoseFields) {
  ASSERT_EQ(Ods({"put", "user_profile", "u1", "age=42", "country=US", "score=2.5"}).exit_code, 0);
  const CommandResult get = Ods({"get", "user_profile", "u1", "--fields", "age,country"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  const auto response = ParseJson<ods::v1::GetResponse>(get.out);
  ASSERT_EQ(response.results_size(), 1);
  const auto& fields = response.results(0).record().fields();
  EXPECT_EQ(fields.size(), 2u);
  EXPECT_TRUE(fields.contains("age"));
  EXPECT_TRUE(fields.contains("country"));
}

TEST_F(CliOdsTest, DeleteRemovesRecord) {
  ASSERT_EQ(Ods({"put", "user_features", "k1", "x=1"}).exit_code, 0);
  const CommandResult del = Ods({"delete", "user_features", "k1", "k2"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  const auto response = ParseJson<ods::v1::DeleteResponse>(del.out);
  EXPECT_THAT(response.deleted(), ElementsAre(true, false));
  EXPECT_EQ(response.deleted_count(), 1u);
  const auto get = ParseJson<ods::v1::GetResponse>(Ods({"get", "user_features", "k1"}).out);
  ASSERT_EQ(get.results_size(), 1);
  EXPECT_FALSE(get.results(0).found());
}

TEST_F(CliOdsTest, ScanWithPrefixAndLimitPrintsFirstMatchingKeysInOrder) {
  for (const char* key : {"u3", "u1", "v1", "u2", "u4"}) {
    ASSERT_EQ(Ods({"put", "user_features", key, "x=1"}).exit_code, 0);
  }
  const CommandResult scan = Ods({"scan", "user_features", "--prefix", "u", "--limit", "3"});
  ASSERT_EQ(scan.exit_code, 0) << scan.err;
  EXPECT_THAT(ScannedKeys(scan.out), ElementsAre("u1", "u2", "u3"));
}

TEST_F(CliOdsTest, ScanWithStartAfterResumesAfterKey) {
  for (const char* key : {"a", "b", "c"}) {
    ASSERT_EQ(Ods({"put", "user_features", key, "x=1"}).exit_code, 0);
  }
  const CommandResult scan = Ods({"scan", "user_features", "--start-after", "a"});
  ASSERT_EQ(scan.exit_code, 0) << scan.err;
  EXPECT_THAT(ScannedKeys(scan.out), ElementsAre("b", "c"));
}

TEST_F(CliOdsTest, ScanWithoutMatchesPrintsOneEmptyPage) {
  const CommandResult scan = Ods({"scan", "user_features", "--prefix", "nothing"});
  ASSERT_EQ(scan.exit_code, 0) << scan.err;
  EXPECT_EQ(scan.out, "{\"records\":[]}\n");
}

TEST_F(CliOdsTest, HealthPrintsServing) {
  const CommandResult health = Ods({"health"});
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_EQ(health.out, "{\"status\":\"SERVING\"}\n");
}

TEST_F(CliOdsTest, HealthOfUnknownServiceExitsOneWithNotFound) {
  const CommandResult health = Ods({"health", "no.such.Service"});
  EXPECT_EQ(health.exit_code, 1);
  EXPECT_THAT(health.err, StartsWith("ods: NOT_FOUND: "));
}

TEST_F(CliOdsTest, UnknownTableExitsOneWithNotFound) {
  const CommandResult get = Ods({"get", "no_such_table", "k"});
  EXPECT_EQ(get.exit_code, 1);
  EXPECT_THAT(get.err, StartsWith("ods: NOT_FOUND: "));
  EXPECT_THAT(get.out, IsEmpty());
}

TEST_F(CliOdsTest, SchemaViolationExitsOneWithInvalidArgument) {
  const CommandResult put = Ods({"put", "user_profile", "u1", "age=old"});
  EXPECT_EQ(put.exit_code, 1);
  EXPECT_THAT(put.err, StartsWith("ods: INVALID_ARGUMENT: "));
}

TEST_F(CliOdsTest, BadFieldValueExitsTwoNamingTheArgument) {
  const CommandResult put = Ods({"put", "user_profile", "u1", "age:int64=x"});
  EXPECT_EQ(put.exit_code, 2);
  EXPECT_THAT(put.err, HasSubstr("'age:int64=x'"));
}

TEST_F(CliOdsTest, AddrFromEnvironmentIsUsedWithoutFlag) {
  ASSERT_EQ(setenv("ODS_ADDR", odsd_.grpc_address().c_str(), 1), 0);
  const CommandResult health = RunCommand({ODS_CLI_PATH, "health"});
  unsetenv("ODS_ADDR");
  EXPECT_EQ(health.exit_code, 0) << health.err;
}

// The default config (no --config: the embedded config/odsd.yaml) has the `transactions`
// template {key user_id, timestamp ts, amount double, merchant string} and the aggregations
// txn_count and txn_amount (sum of amount) over 1h, 24h and 7d.
TEST_F(CliOdsTest, PushThenFeaturesReadsValuesComputedFromThePushedEvents) {
  const int64_t now = NowMicros();
  const std::vector<std::pair<std::string, std::string>> txns = {
      {"u1", "12.5"}, {"u1", "3.0"}, {"u2", "7.25"}, {"u1", "4.5"}};
  for (size_t i = 0; i < txns.size(); ++i) {
    const CommandResult push = Ods(PushTxn(
        txns[i].first, now - static_cast<int64_t>(txns.size() - i) * kSecond, txns[i].second));
    ASSERT_EQ(push.exit_code, 0) << push.err;
    EXPECT_THAT(push.err, IsEmpty());
    const auto response = ParseJson<ods::v1::PushEventsResponse>(push.out);
    EXPECT_EQ(response.applied(), 1u);
    EXPECT_EQ(response.rejected_size(), 0);
  }

  const CommandResult features = Ods({"features", "u1,u2,nobody", "txn_count@1h,txn_amount@1h"});
  ASSERT_EQ(features.exit_code, 0) << features.err;
  ASSERT_EQ(Lines(features.out).size(), 1u) << features.out;
  const auto response = ParseJson<ods::v1::FeaturesResponse>(features.out);
  ASSERT_EQ(response.columns_size(), 2);
  const ods::v1::FeatureColumn& count = response.columns(0);
  EXPECT_EQ(count.feature(), "txn_count@1h");
  ASSERT_EQ(count.values_size(), 3);
  ASSERT_EQ(count.statuses_size(), 3);
  EXPECT_EQ(count.statuses(0), ods::v1::PRESENT);
  EXPECT_EQ(count.values(0).value().int64_value(), 3);
  EXPECT_EQ(count.event_times_micros(0), now - 1 * kSecond);  // u1's newest: the last pushed
  EXPECT_EQ(count.values(1).value().int64_value(), 1);
  EXPECT_EQ(count.statuses(2), ods::v1::NOT_FOUND);
  const ods::v1::FeatureColumn& amount = response.columns(1);
  EXPECT_DOUBLE_EQ(amount.values(0).value().double_value(), 12.5 + 3.0 + 4.5);
  EXPECT_DOUBLE_EQ(amount.values(1).value().double_value(), 7.25);
}

TEST_F(CliOdsTest, PushWithEventIdCountsARepeatAsDuplicate) {
  const int64_t ts = NowMicros() - kSecond;
  std::vector<std::string> args = PushTxn("u1", ts, "1.0");
  args.insert(args.end(), {"--event-id", "order-17"});
  ASSERT_EQ(Ods(args).exit_code, 0);
  const CommandResult again = Ods(args);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const auto response = ParseJson<ods::v1::PushEventsResponse>(again.out);
  EXPECT_EQ(response.applied(), 0u);
  EXPECT_EQ(response.duplicates(), 1u);
  const auto count =
      ParseJson<ods::v1::FeaturesResponse>(Ods({"features", "u1", "txn_count@1h"}).out);
  ASSERT_EQ(count.columns_size(), 1);
  EXPECT_EQ(count.columns(0).values(0).value().int64_value(), 1);
}

TEST_F(CliOdsTest, PushJsonSendsTheWholeBatch) {
  const std::string ts = std::to_string(NowMicros() - kSecond);
  const std::string event =
      TxnJson("u1", R"({"timestamp_micros_value":")" + ts + R"("})", R"({"double_value":2.5})");
  const CommandResult push = Ods({"push", "--json", R"({"events":[)" + event + "," + event + "]}"});
  ASSERT_EQ(push.exit_code, 0) << push.err;
  EXPECT_EQ(ParseJson<ods::v1::PushEventsResponse>(push.out).applied(), 2u);
  const auto amount =
      ParseJson<ods::v1::FeaturesResponse>(Ods({"features", "u1", "txn_amount@1h"}).out);
  ASSERT_EQ(amount.columns_size(), 1);
  EXPECT_DOUBLE_EQ(amount.columns(0).values(0).value().double_value(), 5.0);
}

TEST_F(CliOdsTest, RejectedEventExitsOneNamingItsIndex) {
  const std::string ts = std::to_string(NowMicros() - kSecond);
  const std::string ts_value = R"({"int64_value":")" + ts + R"("})";
  const std::string good = TxnJson("u1", ts_value, R"({"double_value":2.5})");
  // amount is declared double; an int64 is rejected, not converted.
  const std::string mistyped = TxnJson("u1", ts_value, R"({"int64_value":"3"})");
  const CommandResult push =
      Ods({"push", "--json", R"({"events":[)" + good + "," + mistyped + "]}"});
  EXPECT_EQ(push.exit_code, 1);
  const auto response = ParseJson<ods::v1::PushEventsResponse>(push.out);
  EXPECT_EQ(response.applied(), 1u);
  ASSERT_EQ(response.rejected_size(), 1);
  EXPECT_EQ(response.rejected(0).index(), 1u);
  EXPECT_THAT(push.err, StartsWith("ods: event 1: INVALID_ARGUMENT: "));
  EXPECT_THAT(push.err, HasSubstr("amount"));
  EXPECT_EQ(Lines(push.err).size(), 1u) << push.err;

  const CommandResult unknown = Ods({"push", "no_such_template", "user_id=u1", "ts=" + ts});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, StartsWith("ods: event 0: NOT_FOUND: "));
}

TEST_F(CliOdsTest, HistoryAndAsOfAnswerAsOfTheGivenTimes) {
  const int64_t now = NowMicros();
  for (int64_t ago : {30, 20, 10}) {
    ASSERT_EQ(Ods(PushTxn("u1", now - ago * kSecond, "1.0")).exit_code, 0);
  }
  const auto at = [&](int64_t ago) { return std::to_string(now - ago * kSecond); };
  const CommandResult history =
      Ods({"history", "u1@" + at(25) + ",u1@" + at(15) + ",u1@" + at(5), "txn_count@1h"});
  ASSERT_EQ(history.exit_code, 0) << history.err;
  const auto rows = ParseJson<ods::v1::FeaturesResponse>(history.out);
  ASSERT_EQ(rows.columns_size(), 1);
  ASSERT_EQ(rows.columns(0).values_size(), 3);
  EXPECT_EQ(rows.columns(0).values(0).value().int64_value(), 1);
  EXPECT_EQ(rows.columns(0).values(1).value().int64_value(), 2);
  EXPECT_EQ(rows.columns(0).values(2).value().int64_value(), 3);

  const CommandResult as_of = Ods({"features", "u1", "txn_count@1h", "--as-of", at(15)});
  ASSERT_EQ(as_of.exit_code, 0) << as_of.err;
  const auto then = ParseJson<ods::v1::FeaturesResponse>(as_of.out);
  ASSERT_EQ(then.columns_size(), 1);
  EXPECT_EQ(then.columns(0).values(0).value().int64_value(), 2);
}

TEST_F(CliOdsTest, UnknownFeatureExitsOneWithInvalidArgument) {
  const CommandResult features = Ods({"features", "u1", "no_such_feature@1h"});
  EXPECT_EQ(features.exit_code, 1);
  EXPECT_THAT(features.err, StartsWith("ods: INVALID_ARGUMENT: "));
  EXPECT_THAT(features.err, HasSubstr("no_such_feature"));
  EXPECT_THAT(features.out, IsEmpty());
}

TEST_F(CliOdsTest, ApplyFromFileServesBackfilledAggregationAndListsIt) {
  const int64_t now = NowMicros();
  ASSERT_EQ(Ods(PushTxn("u1", now - 3 * kSecond, "4.0")).exit_code, 0);
  ASSERT_EQ(Ods(PushTxn("u1", now - 2 * kSecond, "9.5")).exit_code, 0);
  ASSERT_EQ(Ods(PushTxn("u1", now - 1 * kSecond, "6.0")).exit_code, 0);
  const TempDir dir;
  const std::string path = WriteFile(
      dir, "txn_max.yaml",
      "aggregations:\n  txn_max: {template: transactions, fn: max, field: amount, window: 1h}\n");

  const CommandResult apply = Ods({"apply", path});
  ASSERT_EQ(apply.exit_code, 0) << apply.err;
  const auto applied = ParseJson<ods::v1::ApplyDefinitionsResponse>(apply.out);
  EXPECT_THAT(applied.aggregations_added(), ElementsAre("txn_max"));
  EXPECT_THAT(applied.templates_added(), IsEmpty());
  EXPECT_EQ(applied.entities_backfilled(), 1u);
  EXPECT_EQ(applied.events_replayed(), 3u);

  const auto max = ParseJson<ods::v1::FeaturesResponse>(Ods({"features", "u1", "txn_max"}).out);
  ASSERT_EQ(max.columns_size(), 1);
  EXPECT_EQ(max.columns(0).statuses(0), ods::v1::PRESENT);
  EXPECT_DOUBLE_EQ(max.columns(0).values(0).value().double_value(), 9.5);

  const CommandResult definitions = Ods({"definitions"});
  ASSERT_EQ(definitions.exit_code, 0) << definitions.err;
  const auto list = ParseJson<ods::v1::ListDefinitionsResponse>(definitions.out);
  ASSERT_GE(list.aggregations_size(), 1);
  const ods::v1::AggregationDefinition& last = list.aggregations(list.aggregations_size() - 1);
  EXPECT_EQ(last.name(), "txn_max");
  EXPECT_EQ(last.template_(), "transactions");
  EXPECT_EQ(last.fn(), "max");
  EXPECT_EQ(last.field(), "amount");
  EXPECT_THAT(last.windows_micros(), ElementsAre(3600 * kSecond));
}

TEST_F(CliOdsTest, DefinitionsListsTheConfigsTemplate) {
  const CommandResult definitions = Ods({"definitions"});
  ASSERT_EQ(definitions.exit_code, 0) << definitions.err;
  const auto list = ParseJson<ods::v1::ListDefinitionsResponse>(definitions.out);
  ASSERT_GE(list.templates_size(), 1);
  EXPECT_EQ(list.templates(0).name(), "transactions");
  EXPECT_EQ(list.templates(0).key_field(), "user_id");
  EXPECT_EQ(list.templates(0).timestamp_field(), "ts");
  ASSERT_GE(list.aggregations_size(), 1);
  EXPECT_EQ(list.aggregations(0).name(), "txn_count");
}

TEST_F(CliOdsTest, ApplyBadYamlExitsOneWithItsPositionAndAppliesNothing) {
  const TempDir dir;
  const std::string path =
      WriteFile(dir, "bad.yaml",
                "aggregations:\n"
                "  fine: {template: transactions, fn: count, window: 1h}\n"
                "  broken: {template: transactions, fn: nosuch_fn, window: 1h}\n");
  const CommandResult apply = Ods({"apply", path});
  EXPECT_EQ(apply.exit_code, 1);
  EXPECT_THAT(apply.err, StartsWith("ods: INVALID_ARGUMENT: "));
  EXPECT_THAT(apply.err, HasSubstr("<request>:3:"));
  EXPECT_THAT(apply.err, HasSubstr("nosuch_fn"));
  EXPECT_THAT(apply.out, IsEmpty());
  const auto list = ParseJson<ods::v1::ListDefinitionsResponse>(Ods({"definitions"}).out);
  for (const auto& a : list.aggregations()) {
    EXPECT_NE(a.name(), "fine");
  }
}

// Usage and connection errors need no server.
TEST(CliOdsUsageTest, UnknownCommandExitsTwo) {
  const CommandResult r = RunCommand({ODS_CLI_PATH, "frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("'frobnicate'"));
}

TEST(CliOdsUsageTest, MissingCommandOrArgumentsExitTwo) {
  EXPECT_EQ(RunCommand({ODS_CLI_PATH}).exit_code, 2);
  EXPECT_EQ(RunCommand({ODS_CLI_PATH, "get", "user_profile"}).exit_code, 2);
  EXPECT_EQ(RunCommand({ODS_CLI_PATH, "scan", "t", "--limit", "many"}).exit_code, 2);
  EXPECT_EQ(RunCommand({ODS_CLI_PATH, "get", "t", "k", "--bogus"}).exit_code, 2);
  EXPECT_EQ(RunCommand({ODS_CLI_PATH, "--timeout", "0", "health"}).exit_code, 2);
  EXPECT_EQ(RunCommand({ODS_CLI_PATH, "put", "t", "--json", "-"}).exit_code, 2);  // stdin empty
  EXPECT_EQ(RunCommand({ODS_CLI_PATH, "push", "transactions"}).exit_code, 2);
  EXPECT_EQ(RunCommand({ODS_CLI_PATH, "features", "u1"}).exit_code, 2);
  EXPECT_EQ(RunCommand({ODS_CLI_PATH, "definitions", "extra"}).exit_code, 2);
}

TEST(CliOdsUsageTest, BadNewCommandArgumentsExitTwoNamingThem) {
  const CommandResult push =
      RunCommand({ODS_CLI_PATH, "push", "transactions", "user_id=u1", "ts:timestamp=soon"});
  EXPECT_EQ(push.exit_code, 2);
  EXPECT_THAT(push.err, HasSubstr("'ts:timestamp=soon'"));
  const CommandResult history = RunCommand({ODS_CLI_PATH, "history", "u1", "txn_count@1h"});
  EXPECT_EQ(history.exit_code, 2);
  EXPECT_THAT(history.err, HasSubstr("'u1'"));
  EXPECT_THAT(history.err, HasSubstr("Try 'ods history --help'"));
  const CommandResult as_of =
      RunCommand({ODS_CLI_PATH, "features", "u1", "txn_count@1h", "--as-of", "yesterday"});
  EXPECT_EQ(as_of.exit_code, 2);
  EXPECT_THAT(as_of.err, HasSubstr("'yesterday'"));
  const TempDir dir;
  const CommandResult apply = RunCommand({ODS_CLI_PATH, "apply", dir.path() + "/missing.yaml"});
  EXPECT_EQ(apply.exit_code, 2);
  EXPECT_THAT(apply.err, HasSubstr("missing.yaml"));
}

TEST(CliOdsUsageTest, HelpAndVersionExitZero) {
  const CommandResult help = RunCommand({ODS_CLI_PATH, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("Usage: ods"));
  const CommandResult put_help = RunCommand({ODS_CLI_PATH, "put", "--help"});
  EXPECT_EQ(put_help.exit_code, 0);
  EXPECT_THAT(put_help.out, HasSubstr("float_vector"));
  EXPECT_THAT(help.out, HasSubstr("definitions"));
  const CommandResult push_help = RunCommand({ODS_CLI_PATH, "help", "push"});
  EXPECT_EQ(push_help.exit_code, 0);
  EXPECT_THAT(push_help.out, HasSubstr("--event-id"));
  const CommandResult version = RunCommand({ODS_CLI_PATH, "--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_THAT(version.out, StartsWith("ods "));
}

TEST(CliOdsUsageTest, UnreachableServerExitsThree) {
  // A bound but never listening socket: connecting to its port is refused, and holding it
  // keeps anyone else from taking the port meanwhile.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string target = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  const CommandResult r =
      RunCommand({ODS_CLI_PATH, "--addr", target, "--timeout", "5", "get", "t", "k"});
  close(fd);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, StartsWith("ods: UNAVAILABLE: "));
}

TEST_F(CliOdsTest, RegisterExecAndListFunctions) {
  TempDir dir;
  // Procedures may only read durable tables (their writes do not reach the durable tier yet),
  // and the embedded config's tables are durable: run this one on a RAM-only server.
  ASSERT_EQ(odsd_.Stop(SIGTERM, 10000), 0) << odsd_.Stderr();
  const std::string config = WriteFile(
      dir, "odsd.yaml",
      "server: {grpc_listen: \"127.0.0.1:0\", admin_listen: \"\"}\n"
      "storage: {data_dir: \"" + dir.path() + "/data\", durability: none}\n"
      "tables:\n  user_features: {key: id}\n");
  ASSERT_TRUE(odsd_.Start({"--config", config})) << odsd_.error();
  const std::string file = WriteFile(dir, "bump.lua", R"(
function execute(record, args, key)
  if key == "bad" then error("refused " .. key) end
  local n = (record and record.n or 0) + args.by
  return n, {n = n}
end)");
  const CommandResult reg = Ods({"register", "bump", "procedure", file, "--instructions", "50000"});
  ASSERT_EQ(reg.exit_code, 0) << reg.err;
  const auto registered = ParseJson<ods::v1::RegisterFunctionResponse>(reg.out);
  EXPECT_EQ(registered.function().version(), 1u);
  EXPECT_EQ(registered.function().max_instructions(), 50000u);

  const CommandResult exec = Ods({"exec", "bump", "user_features", "c1", "c1", "--arg", "by=5"});
  ASSERT_EQ(exec.exit_code, 0) << exec.err;
  const auto executed = ParseJson<ods::v1::ExecuteResponse>(exec.out);
  ASSERT_EQ(executed.results_size(), 2);
  EXPECT_EQ(executed.results(1).value().int64_value(), 10);
  EXPECT_TRUE(executed.results(1).written());

  const CommandResult failing = Ods({"exec", "bump", "user_features", "ok", "bad", "--arg=by=1"});
  EXPECT_EQ(failing.exit_code, 1);
  EXPECT_THAT(failing.err, HasSubstr("ods: key bad: FAILED_PRECONDITION: function bump v1: line 3: "
                                     "refused bad"));
  EXPECT_EQ(ParseJson<ods::v1::ExecuteResponse>(failing.out).results(0).code(), 0);

  const CommandResult list = Ods({"functions"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  const auto listed = ParseJson<ods::v1::ListFunctionsResponse>(list.out);
  ASSERT_EQ(listed.functions_size(), 1);
  EXPECT_EQ(listed.functions(0).name(), "bump");
}

TEST_F(CliOdsTest, RegisterOfBadLuaAndExecOfUnknownFunctionFail) {
  TempDir dir;
  const std::string file = WriteFile(dir, "bad.lua", "function execute()\n  return (\nend\n");
  const CommandResult reg = Ods({"register", "broken", "procedure", file});
  EXPECT_EQ(reg.exit_code, 1);
  EXPECT_THAT(reg.err, StartsWith("ods: INVALID_ARGUMENT: function broken v1: line 3: "));
  const CommandResult exec = Ods({"exec", "broken", "user_features", "k"});
  EXPECT_EQ(exec.exit_code, 1);
  EXPECT_THAT(exec.err, HasSubstr("NOT_FOUND: unknown function 'broken'"));
  const CommandResult usage = Ods({"exec", "broken", "user_features"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_THAT(usage.err, HasSubstr("missing KEY"));
  const CommandResult bad_arg = Ods({"exec", "f", "t", "k", "--arg", "noequals"});
  EXPECT_EQ(bad_arg.exit_code, 2);
}

// --- TLS and API keys --------------------------------------------------------------------------

constexpr char kCliKey[] = "cli-test-key-7a3e9c1b5d0f2468";

std::string HexDigest(std::string_view key) {
  std::string out;
  char buf[3];
  for (uint8_t b : Sha256(key)) {
    std::snprintf(buf, sizeof buf, "%02x", b);
    out += buf;
  }
  return out;
}

// odsd with TLS and one read key.
class CliSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(MakeTlsFiles(dir_.path(), tls_, error)) << error;
    const std::string config = WriteFile(
        dir_, "odsd.yaml",
        "server:\n  tls: {cert: " + tls_.server_cert + ", key: " + tls_.server_key +
            "}\ntables: {user_profile: {key: user_id}}\n"
            "security: {api_keys: {cli: {key_sha256: " + HexDigest(kCliKey) + ", role: read}}}\n");
    ASSERT_TRUE(odsd_.Start({"--config", config})) << odsd_.error();
  }
  void TearDown() override { EXPECT_EQ(odsd_.Stop(SIGTERM, 10000), 0) << odsd_.Stderr(); }

  // Runs `ods --addr <odsd> args...`.
  CommandResult Ods(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {ODS_CLI_PATH, "--addr", odsd_.grpc_address()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  TempDir dir_;
  ::ods::testing::TlsFiles tls_;
  OdsdProcess odsd_;
};

TEST_F(CliSecurityTest, TlsCaAndApiKeyReachTheServer) {
  const CommandResult get =
      Ods({"--tls-ca", tls_.ca_cert, "--api-key", kCliKey, "get", "user_profile", "u1"});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  // Global flags are accepted after the command too.
  const CommandResult after =
      Ods({"get", "user_profile", "u1", "--tls-ca", tls_.ca_cert, "--api-key=" + std::string(kCliKey)});
  EXPECT_EQ(after.exit_code, 0) << after.err;
}

TEST_F(CliSecurityTest, ApiKeyFromTheEnvironmentIsSent) {
  ASSERT_EQ(setenv("ODS_API_KEY", kCliKey, 1), 0);
  const CommandResult get = Ods({"--tls-ca", tls_.ca_cert, "get", "user_profile", "u1"});
  unsetenv("ODS_API_KEY");
  EXPECT_EQ(get.exit_code, 0) << get.err;
}

TEST_F(CliSecurityTest, WithoutApiKeyExitsOneWithUnauthenticated) {
  const CommandResult get = Ods({"--tls-ca", tls_.ca_cert, "get", "user_profile", "u1"});
  EXPECT_EQ(get.exit_code, 1);
  EXPECT_THAT(get.err, StartsWith("ods: UNAUTHENTICATED: ods.v1.Store/Get: no API key"));
}

TEST_F(CliSecurityTest, ReadKeyPutExitsOneWithPermissionDenied) {
  const CommandResult put = Ods(
      {"--tls-ca", tls_.ca_cert, "--api-key", kCliKey, "put", "user_profile", "u1", "age=3"});
  EXPECT_EQ(put.exit_code, 1);
  EXPECT_THAT(put.err, HasSubstr("PERMISSION_DENIED: ods.v1.Store/Put needs role write; API key "
                                 "'cli' has role read"));
  EXPECT_THAT(put.err, Not(HasSubstr(kCliKey)));
}

TEST_F(CliSecurityTest, PlaintextToTlsServerIsUnreachable) {
  const CommandResult get =
      Ods({"--api-key", kCliKey, "--timeout", "2", "get", "user_profile", "u1"});
  EXPECT_EQ(get.exit_code, 3) << get.err;
}

TEST_F(CliSecurityTest, BadTlsFlagsAreUsageErrors) {
  const CommandResult missing = Ods({"--tls-ca", dir_.path() + "/nope.pem", "health"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("--tls-ca: cannot read '" + dir_.path() + "/nope.pem'"));
  const CommandResult half = Ods({"--tls-ca", tls_.ca_cert, "--tls-cert", tls_.client_cert,
                                  "health"});
  EXPECT_EQ(half.exit_code, 2);
  EXPECT_THAT(half.err, HasSubstr("--tls-cert and --tls-key go together"));
}

}  // namespace
}  // namespace ods::cli
