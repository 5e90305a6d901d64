// Tiering seen by an operator (issue #6 points 4 and 8): `ods move` moves records between
// tiers over Admin.MoveRecords, `ods get` reads them from wherever they are, and `ods tiers`
// (Admin.GetTierStats) and /metrics report records, bytes and reads by tier, the read p99
// against the table's SLA and the monthly cost. A real odsd with RocksDB and a directory
// backing store under a temp data dir.

#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <string>
#include <vector>

#include "ods/v1/admin.pb.h"
#include "ods/v1/store.pb.h"
#include "support/odsd_process.h"

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

class CliTiersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string config = dir_.path() + "/odsd.yaml";
    std::ofstream(config) << R"(server: {shards: 2}
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
    ASSERT_TRUE(odsd_.Start({"--config", config, "--data-dir", data_.path()})) << odsd_.error();
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

}  // namespace
}  // namespace ods
