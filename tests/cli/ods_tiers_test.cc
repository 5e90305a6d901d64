// Tiering seen by an operator (issue #6 points 4 and 8): `ods move` moves records between
// tiers over Admin.MoveRecords, `ods get` reads them from wherever they are, and `ods tiers`
// (Admin.GetTierStats) and /metrics report records, bytes and reads by tier, the read p99
// against the table's SLA and the monthly cost. A real odsd with RocksDB and a directory
// backing store under a temp data dir.

#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "ods/v1/admin.pb.h"
#include "ods/v1/features.pb.h"
#include "ods/v1/store.pb.h"
#include "support/odsd_process.h"
#include "support/test_util.h"

namespace ods {
namespace {

using ::ods::testing::CommandResult;
using ::ods::testing::HttpGet;
using ::ods::testing::OdsdProcess;
using ::ods::testing::RunCommand;
using ::ods::testing::TempDir;
using ::testing::HasSubstr;

template <typename T>
T ParseJson(const std::string& text) {
  T message;
  const auto status = google::protobuf::util::JsonStringToMessage(text, &message);
  EXPECT_TRUE(status.ok()) << "not a " << T::descriptor()->full_name() << ": " << text;
  return message;
}

// Runs the `ods` CLI against `odsd`'s gRPC address.
CommandResult OdsOf(const OdsdProcess& odsd, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {ODS_CLI_PATH, "--addr", odsd.grpc_address()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

// odsd's config in these tests (the tests rewrite parts of it).
constexpr const char* kConfig = R"(server: {shards: 2}
storage:
  durability: async
  ram: {cost_per_gib_month: 1024}
  ssd: {cost_per_gib_month: 0}
  backing: {kind: directory, cost_per_gib_month: 0}
tables:
  users:
    key: id
    fields: {plan: string, score: double}
    tiering:
      - {to: ram, when: {field: "plan == 'pro'"}}
      - {to: ssd, when: {idle_for: 1h}}
    sla: {read_p99: 250ms}
  plain: {key: id}
)";

class CliTiersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(config_) << kConfig;
    ASSERT_TRUE(odsd_.Start({"--config", config_, "--data-dir", data_.path()})) << odsd_.error();
  }
  void TearDown() override { EXPECT_EQ(odsd_.Stop(SIGTERM, 10000), 0) << odsd_.Stderr(); }

  CommandResult Ods(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {ODS_CLI_PATH, "--addr", odsd_.grpc_address()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }
  ods::v1::TableTierStats Users() {
    const CommandResult r = Ods({"tiers"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const auto stats = ParseJson<ods::v1::GetTierStatsResponse>(r.out);
    EXPECT_EQ(stats.tables_size(), 2);
    return stats.tables_size() > 0 ? stats.tables(0) : ods::v1::TableTierStats();
  }

  TempDir dir_;
  TempDir data_;
  const std::string config_ = dir_.path() + "/odsd.yaml";
  OdsdProcess odsd_;
};

TEST_F(CliTiersTest, MovedRecordsAreReadFromTheirTierAndCountedThere) {
  ASSERT_EQ(Ods({"put", "users", "u1", "plan=free", "score=0.5"}).exit_code, 0);
  ASSERT_EQ(Ods({"put", "users", "u2", "plan=free", "score=0.25"}).exit_code, 0);
  ods::v1::TableTierStats users = Users();
  EXPECT_EQ(users.table(), "users");
  EXPECT_TRUE(users.tiered());
  EXPECT_EQ(users.ram().records(), 2u);
  EXPECT_GT(users.ram().bytes(), 0u);
  EXPECT_GT(users.monthly_cost(), 0.0) << "RAM bytes cost 1024 a GiB";

  const CommandResult moved = Ods({"move", "users", "u1", "--to", "backing"});
  ASSERT_EQ(moved.exit_code, 0) << moved.err;
  EXPECT_EQ(ParseJson<ods::v1::MoveRecordsResponse>(moved.out).moved(), 1u);
  ASSERT_EQ(Ods({"move", "users", "u2", "--to", "ssd"}).exit_code, 0);
  users = Users();
  EXPECT_EQ(users.ram().records(), 0u);
  EXPECT_EQ(users.ssd().records(), 1u);
  EXPECT_EQ(users.backing().records(), 1u);
  EXPECT_GT(users.backing().bytes(), 0u);
  EXPECT_EQ(users.backing().demotions(), 1u);

  const CommandResult get = Ods({"get", "users", "u1", "u2"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  const auto got = ParseJson<ods::v1::GetResponse>(get.out);
  ASSERT_EQ(got.results_size(), 2);
  EXPECT_TRUE(got.results(0).found());
  EXPECT_TRUE(got.results(1).found());
  users = Users();
  EXPECT_EQ(users.backing().reads(), 1u);
  EXPECT_EQ(users.ssd().reads(), 1u);
  EXPECT_EQ(users.promotions(), 2u);
  EXPECT_EQ(users.ram().records(), 2u);
  EXPECT_GE(users.read_calls(), 1u);
  EXPECT_EQ(users.sla_read_p99_micros(), 250'000);
  EXPECT_TRUE(users.sla_met()) << "a few reads on loopback take well under 250ms";

  const std::string metrics = HttpGet(odsd_.admin_address(), "/metrics");
  EXPECT_THAT(metrics, HasSubstr("ods_tier_records{table=\"users\",tier=\"ram\"} 2\n"));
  EXPECT_THAT(metrics, HasSubstr("ods_tier_reads_total{table=\"users\",tier=\"backing\"} 1\n"));
  EXPECT_THAT(metrics, HasSubstr("ods_tier_promotions_total{table=\"users\"} 2\n"));
  EXPECT_THAT(metrics, HasSubstr("ods_table_sla_read_p99_seconds{table=\"users\"} 0.25\n"));
  EXPECT_THAT(metrics, HasSubstr("# TYPE ods_table_read_seconds histogram\n"));
  EXPECT_THAT(metrics, HasSubstr("ods_table_read_seconds_count{table=\"users\"} "));
}

TEST_F(CliTiersTest, BadMovesAreRefusedWithClearErrors) {
  const CommandResult bad_tier = Ods({"move", "users", "u1", "--to", "disk"});
  EXPECT_EQ(bad_tier.exit_code, 2);
  EXPECT_THAT(bad_tier.err, HasSubstr("--to must be ram, ssd or backing"));
  EXPECT_EQ(Ods({"move", "users", "--to", "ssd"}).exit_code, 2);
  const CommandResult no_table = Ods({"move", "nope", "k", "--to", "ssd"});
  EXPECT_EQ(no_table.exit_code, 1);
  EXPECT_THAT(no_table.err, HasSubstr("NOT_FOUND"));
  const CommandResult not_durable = Ods({"move", "plain", "k", "--to", "ssd"});
  EXPECT_EQ(not_durable.exit_code, 0) << "plain is durable (storage.durability async)";
  EXPECT_EQ(Ods({"tiers", "extra"}).exit_code, 2);
}

// Rewrites `path` with `text` where `from` was (once; the test fails if it is not there).
void Rewrite(const std::string& path, const std::string& from, const std::string& to) {
  std::string text = kConfig;
  const size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  text.replace(at, from.size(), to);
  std::ofstream(path) << text;
}

TEST_F(CliTiersTest, SighupAndReloadApplyNewRulesAndABadFileChangesNothing) {
  // SIGHUP with a new rule and TTL.
  Rewrite(config_, "      - {to: ssd, when: {idle_for: 1h}}\n",
          "      - {to: ssd, when: {idle_for: 1h}}\n      - {to: backing, when: {age: 30d}}\n"
          "    ttl: 7d\n");
  ASSERT_EQ(kill(odsd_.pid(), SIGHUP), 0);
  ods::v1::TableTierStats users;
  for (int i = 0; i < 100; ++i) {
    users = Users();
    if (users.rules_size() == 3) break;
    usleep(50'000);
  }
  ASSERT_EQ(users.rules_size(), 3) << odsd_.Stderr();
  EXPECT_EQ(users.rules(2), "to backing when age 30d");
  const CommandResult tiers = Ods({"tiers"});
  EXPECT_EQ(ParseJson<ods::v1::GetTierStatsResponse>(tiers.out).settings_generation(), 2u);
  EXPECT_THAT(odsd_.Stderr(), HasSubstr("config reload: tables.users.ttl: 0s -> 7d"));

  // A file that does not load: ods reload answers with its position; nothing changes.
  Rewrite(config_, "    sla: {read_p99: 250ms}", "    sla: {read_p99: fast}");
  const CommandResult bad = Ods({"reload"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(bad.err, HasSubstr(config_ + ":14:21: tables.users.sla.read_p99"));
  ASSERT_EQ(kill(odsd_.pid(), SIGHUP), 0);
  for (int i = 0; i < 100 && odsd_.Stderr().find("config reload refused") == std::string::npos;
       ++i) {
    usleep(50'000);
  }
  EXPECT_THAT(odsd_.Stderr(), HasSubstr("config reload refused, the running settings stay: " +
                                        config_ + ":14:21"));
  users = Users();
  EXPECT_EQ(users.rules_size(), 3) << "the file (back to two rules) did not load";
  EXPECT_EQ(users.sla_read_p99_micros(), 250'000);

  // A good file again: ods reload applies it and says what changed.
  Rewrite(config_, "  plain: {key: id}", "  plain: {key: id, priority: 5}");
  const CommandResult good = Ods({"reload"});
  ASSERT_EQ(good.exit_code, 0) << good.err;
  const auto response = ParseJson<ods::v1::ReloadConfigResponse>(good.out);
  EXPECT_EQ(response.settings_generation(), 3u);
  EXPECT_THAT(std::vector<std::string>(response.changes().begin(), response.changes().end()),
              ::testing::Contains("tables.plain.priority: 0 -> 5"));
  EXPECT_THAT(std::vector<std::string>(response.changes().begin(), response.changes().end()),
              ::testing::Contains("tables.users.ttl: 7d -> 0s (for records written from now)"));
}

// Retained events below RAM (issue #6 point 5) seen by an operator: events older than
// history_ssd_after leave RAM within a sweep or two (ods_history_events_ssd on /metrics), `ods
// history` answers from them as before, and a restart starts without them (the event state is
// not durable).
TEST(CliHistoryBelowRamTest, HistoryReadsEventsMovedBelowRamUntilARestart) {
  TempDir dir;
  TempDir data;
  const std::string config = dir.path() + "/odsd.yaml";
  std::ofstream(config) << R"(server: {shards: 2}
event_templates:
  tx:
    key: user
    timestamp: ts
    fields: {amount: double}
    history_retention: 1d
    history_ssd_after: 1s
aggregations:
  n: {template: tx, fn: count, windows: [1h]}
  spent: {template: tx, fn: sum, field: amount, windows: [1h]}
)";
  OdsdProcess odsd;
  ASSERT_TRUE(odsd.Start({"--config", config, "--data-dir", data.path()})) << odsd.error();
  auto ods = [&](const std::vector<std::string>& args) { return OdsOf(odsd, args); };
  const int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  constexpr int64_t kMinute = 60'000'000;
  for (int ago = 10; ago >= 6; --ago) {
    const CommandResult push = ods({"push", "tx", "user=u1",
                                    "ts:timestamp=" + std::to_string(now - ago * kMinute),
                                    "amount=" + std::to_string(ago) + ".0"});
    ASSERT_EQ(push.exit_code, 0) << push.err;
  }
  EXPECT_TRUE(::ods::testing::WaitUntil(
      [&] {
        return HttpGet(odsd.admin_address(), "/metrics").find("ods_history_events_ssd 5\n") !=
               std::string::npos;
      },
      std::chrono::seconds(10)))
      << HttpGet(odsd.admin_address(), "/metrics");
  const std::string rows = "u1@" + std::to_string(now) + ",u1@" +
                           std::to_string(now - 7 * kMinute + 1'000'000);
  const CommandResult history = ods({"history", rows, "n,spent"});
  ASSERT_EQ(history.exit_code, 0) << history.err;
  const auto got = ParseJson<ods::v1::FeaturesResponse>(history.out);
  ASSERT_EQ(got.columns_size(), 2);
  EXPECT_EQ(got.columns(0).values(0).value().int64_value(), 5);
  EXPECT_EQ(got.columns(0).values(1).value().int64_value(), 4);  // -10 .. -7 minutes
  EXPECT_DOUBLE_EQ(got.columns(1).values(0).value().double_value(), 40.0);
  EXPECT_DOUBLE_EQ(got.columns(1).values(1).value().double_value(), 34.0);

  ASSERT_EQ(odsd.Stop(SIGTERM, 10000), 0) << odsd.Stderr();
  ASSERT_TRUE(odsd.Start({"--config", config, "--data-dir", data.path()})) << odsd.error();
  EXPECT_THAT(HttpGet(odsd.admin_address(), "/metrics"), HasSubstr("ods_history_events_ssd 0\n"));
  const CommandResult after = ods({"history", rows, "n"});
  ASSERT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(ParseJson<ods::v1::FeaturesResponse>(after.out).columns(0).statuses(0),
            ods::v1::NOT_FOUND);
  EXPECT_EQ(odsd.Stop(SIGTERM, 10000), 0) << odsd.Stderr();
}

// Aggregation tiles below RAM (issue #6 point 5) seen by an operator: tiles that ended more than
// tiles_ssd_after ago leave RAM within a sweep or two (ods_tiles_entities_ssd on /metrics) while
// `ods features` over gRPC keeps answering from them and the tiles in RAM together.
TEST(CliTilesBelowRamTest, FeaturesReadTilesMovedBelowRam) {
  TempDir dir;
  TempDir data;
  const std::string config = dir.path() + "/odsd.yaml";
  std::ofstream(config) << R"(server: {shards: 2}
event_templates:
  tx:
    key: user
    timestamp: ts
    fields: {amount: double}
    allowed_lateness: 2s
    tiles_ssd_after: 3s
aggregations:
  n: {template: tx, fn: count, windows: [1m]}
  spent: {template: tx, fn: sum, field: amount, windows: [1m]}
)";
  OdsdProcess odsd;
  ASSERT_TRUE(odsd.Start({"--config", config, "--data-dir", data.path()})) << odsd.error();
  auto ods = [&](const std::vector<std::string>& args) { return OdsOf(odsd, args); };
  // The window has 1s tiles: a tile moves 3s after it ends; the test ends well within the minute.
  auto now = [] {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  for (int i = 1; i <= 4; ++i) {
    const CommandResult push = ods({"push", "tx", "user=u1", "ts:timestamp=" + std::to_string(now()),
                                    "amount=" + std::to_string(i) + ".5"});
    ASSERT_EQ(push.exit_code, 0) << push.err;
  }
  EXPECT_TRUE(::ods::testing::WaitUntil(
      [&] {
        return HttpGet(odsd.admin_address(), "/metrics").find("ods_tiles_entities_ssd 1\n") !=
               std::string::npos;
      },
      std::chrono::seconds(20)))
      << HttpGet(odsd.admin_address(), "/metrics");
  // One more in RAM, then the answer is both parts.
  const CommandResult push = ods({"push", "tx", "user=u1", "ts:timestamp=" + std::to_string(now()),
                                  "amount=10.0"});
  ASSERT_EQ(push.exit_code, 0) << push.err;
  const CommandResult features = ods({"features", "u1", "n,spent"});
  ASSERT_EQ(features.exit_code, 0) << features.err;
  const auto got = ParseJson<ods::v1::FeaturesResponse>(features.out);
  ASSERT_EQ(got.columns_size(), 2);
  EXPECT_EQ(got.columns(0).values(0).value().int64_value(), 5);
  EXPECT_DOUBLE_EQ(got.columns(1).values(0).value().double_value(), 1.5 + 2.5 + 3.5 + 4.5 + 10);
  const std::string metrics = HttpGet(odsd.admin_address(), "/metrics");
  EXPECT_THAT(metrics, ::testing::ContainsRegex("ods_tiles_cache_misses_total [1-9]"));
  EXPECT_THAT(metrics, ::testing::ContainsRegex("ods_tiles_moved_total [1-9]"));
  EXPECT_EQ(odsd.Stop(SIGTERM, 10000), 0) << odsd.Stderr();
}

}  // namespace
}  // namespace ods
