// Engine::Get reading through to a system of record (tables.NAME.read_through) on a real
// PostgreSQL 15 (support/postgres_server.h): rows made here with libpqxx.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "ods/common/clock.h"
#include "ods/config/config.h"
#include "ods/engine/engine.h"
#include "support/odsd_process.h"
#include "support/postgres_server.h"
#include "support/test_util.h"

namespace ods::engine {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::PostgresServer;
using ::ods::testing::StatusIs;
using ::ods::testing::TempDir;
using record::Record;
using ::testing::HasSubstr;
using ::testing::Not;

void Sql(const std::string& conninfo, const std::string& sql) {
  pqxx::connection conn(conninfo);
  pqxx::work txn(conn);
  txn.exec(sql);
  txn.commit();
}

// A config with table `customers` reading through to `crm_customers` at `conninfo`.
std::string Yaml(const std::string& conninfo, const std::string& options,
                 const std::string& extra_table = "") {
  return "server: {shards: 4}\n"
         "tables:\n"
         "  customers:\n"
         "    key: id\n"
         "    fields: {name: string, limit: double, vip: bool, since: timestamp}\n" +
         extra_table +
         "    read_through:\n"
         "      postgres:\n"
         "        conninfo: \"" + conninfo + "\"\n"
         "        table: crm_customers\n"
         "        key_column: customer_id\n"
         "        columns: {name: full_name, limit: credit_limit, vip: vip, since: since}\n" +
         options;
}

class ReadThroughTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.ok()) << "PostgreSQL test server did not start: " << server_.error();
    Sql(server_.conninfo(),
        "DROP TABLE IF EXISTS crm_customers; CREATE TABLE crm_customers (customer_id text "
        "PRIMARY KEY, full_name text, credit_limit numeric, vip boolean, since timestamptz);"
        "INSERT INTO crm_customers VALUES ('c1', 'Ada', 1500.5, true, "
        "'2020-01-01 00:00:00+00'), ('c2', NULL, 10, NULL, NULL)");
  }

  void Start(const std::string& options) {
    Result<config::Config> c = config::LoadString(Yaml(server_.conninfo(), options), "test.yaml");
    ASSERT_THAT(c, IsOk());
    Result<std::unique_ptr<Engine>> e = Engine::Create(*c, clock_);
    ASSERT_THAT(e, IsOk());
    engine_ = std::move(*e);
  }

  Result<std::vector<std::optional<Record>>> Get(std::vector<std::string_view> keys,
                                                 std::vector<std::string_view> fields = {}) {
    std::vector<std::optional<Record>> out;
    ODS_RETURN_IF_ERROR(engine_->Get("customers", keys, fields, out));
    return out;
  }

  PostgresServer& server_ = PostgresServer::Shared();
  FakeClock clock_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(ReadThroughTest, MissReadsRowWithTypedValuesAndNullsAbsent) {
  Start("      cache: false\n");
  auto got = Get({"c1", "c2"});
  ASSERT_THAT(got, IsOk());
  ASSERT_TRUE((*got)[0].has_value());
  const Record& ada = *(*got)[0];
  EXPECT_EQ(*ada.Find("name"), record::Value(std::string("Ada")));
  EXPECT_EQ(*ada.Find("limit"), record::Value(1500.5));
  EXPECT_EQ(*ada.Find("vip"), record::Value(true));
  EXPECT_EQ(*ada.Find("since"), record::Value(record::Timestamp{1'577'836'800'000'000}));
  ASSERT_TRUE((*got)[1].has_value());
  EXPECT_EQ((*got)[1]->Find("name"), nullptr);
  EXPECT_EQ((*got)[1]->Find("vip"), nullptr);
  EXPECT_EQ(*(*got)[1]->Find("limit"), record::Value(10.0));
  EXPECT_EQ(engine_->Stats().sor_reads, 2u);
}

TEST_F(ReadThroughTest, CachedRecordIsServedFromRamAfterwards) {
  Start("      cache: true\n");
  auto first = Get({"c1"});
  ASSERT_THAT(first, IsOk());
  ASSERT_TRUE((*first)[0].has_value());
  EXPECT_GT((*first)[0]->version, 0u);
  EXPECT_EQ(engine_->Stats().sor_cached, 1u);
  EXPECT_EQ(engine_->Stats().records, 1u);
  // Gone from the source: the next read is answered by RAM, without asking.
  Sql(server_.conninfo(), "DELETE FROM crm_customers WHERE customer_id = 'c1'");
  auto second = Get({"c1"});
  ASSERT_THAT(second, IsOk());
  ASSERT_TRUE((*second)[0].has_value());
  EXPECT_EQ(*(*second)[0]->Find("name"), record::Value(std::string("Ada")));
  EXPECT_EQ((*second)[0]->version, (*first)[0]->version);
  EXPECT_EQ(engine_->Stats().sor_reads, 1u);
}

TEST_F(ReadThroughTest, WithoutCacheEveryMissAsksTheSource) {
  Start("      cache: false\n");
  ASSERT_THAT(Get({"c1"}), IsOk());
  ASSERT_THAT(Get({"c1"}), IsOk());
  EXPECT_EQ(engine_->Stats().sor_reads, 2u);
  EXPECT_EQ(engine_->Stats().records, 0u);
}

TEST_F(ReadThroughTest, RecordInRamIsNotReplacedBySource) {
  Start("      cache: true\n");
  const Record mine{{{"name", std::string("Mine")}}, 0, 0};
  const shard::KeyedRecord item{"c1", &mine};
  ASSERT_THAT(engine_->Put("customers", {&item, 1}), IsOk());
  auto got = Get({"c1"});
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(*(*got)[0]->Find("name"), record::Value(std::string("Mine")));
  EXPECT_EQ(engine_->Stats().sor_reads, 0u);
}

TEST_F(ReadThroughTest, MissingKeyIsNotFoundAndRememberedForNegativeTtl) {
  Start("      negative_ttl: 30s\n");
  auto got = Get({"c9"});
  ASSERT_THAT(got, IsOk());
  EXPECT_FALSE((*got)[0].has_value());
  EXPECT_EQ(engine_->Stats().sor_misses, 1u);
  // The row appears in the source; within negative_ttl the miss is answered from memory.
  Sql(server_.conninfo(), "INSERT INTO crm_customers VALUES ('c9', 'Late', 1, false, NULL)");
  clock_.Advance(29'000'000);
  got = Get({"c9"});
  ASSERT_THAT(got, IsOk());
  EXPECT_FALSE((*got)[0].has_value());
  EXPECT_EQ(engine_->Stats().sor_negative_hits, 1u);
  EXPECT_EQ(engine_->Stats().sor_negative_keys, 1u);
  clock_.Advance(2'000'000);
  got = Get({"c9"});
  ASSERT_THAT(got, IsOk());
  ASSERT_TRUE((*got)[0].has_value());
  EXPECT_EQ(*(*got)[0]->Find("name"), record::Value(std::string("Late")));
}

TEST_F(ReadThroughTest, RememberedMissesAreBoundedByMaxNegativeKeys) {
  Start("      max_negative_keys: 2\n");
  ASSERT_THAT(Get({"m1", "m2", "m3"}), IsOk());
  EXPECT_EQ(engine_->Stats().sor_negative_keys, 2u);
  // m1, the oldest, was forgotten: asked again.
  ASSERT_THAT(Get({"m1"}), IsOk());
  EXPECT_EQ(engine_->Stats().sor_misses, 4u);
  EXPECT_EQ(engine_->Stats().sor_negative_hits, 0u);
}

TEST_F(ReadThroughTest, ProjectionAppliesToRecordsReadThrough) {
  Start("");
  auto got = Get({"c1"}, {"vip"});
  ASSERT_THAT(got, IsOk());
  ASSERT_TRUE((*got)[0].has_value());
  ASSERT_EQ((*got)[0]->fields.size(), 1u);
  EXPECT_EQ((*got)[0]->fields[0].name, "vip");
  // The cached record is whole.
  auto whole = Get({"c1"});
  ASSERT_THAT(whole, IsOk());
  EXPECT_EQ((*whole)[0]->fields.size(), 4u);
}

TEST_F(ReadThroughTest, OnlineFeaturesOfTableFieldsReadThrough) {
  Start("");
  const std::string_view entities[] = {"c1", "c9"};
  const std::string_view features[] = {"customers:name"};
  Result<std::vector<FeatureColumn>> cols =
      engine_->GetOnlineFeatures(entities, features, std::nullopt);
  ASSERT_THAT(cols, IsOk());
  EXPECT_EQ(engine_->Stats().sor_reads, 1u);
  EXPECT_EQ(engine_->Stats().sor_misses, 1u);
}

TEST_F(ReadThroughTest, CachedRecordOfDurableTableSurvivesRestart) {
  TempDir data;
  Result<config::Config> c = config::LoadString(
      Yaml(server_.conninfo(), "", "    durability: sync\n") + "storage: {data_dir: " +
          data.path() + "}\n",
      "test.yaml");
  ASSERT_THAT(c, IsOk());
  {
    Result<std::unique_ptr<Engine>> e = Engine::Create(*c, clock_);
    ASSERT_THAT(e, IsOk());
    engine_ = std::move(*e);
    ASSERT_THAT(Get({"c1"}), IsOk());
    EXPECT_EQ(engine_->Stats().sor_cached, 1u);
    engine_.reset();
  }
  Sql(server_.conninfo(), "DELETE FROM crm_customers WHERE customer_id = 'c1'");
  Result<std::unique_ptr<Engine>> e = Engine::Create(*c, clock_);
  ASSERT_THAT(e, IsOk());
  engine_ = std::move(*e);
  auto got = Get({"c1"});
  ASSERT_THAT(got, IsOk());
  ASSERT_TRUE((*got)[0].has_value());
  EXPECT_EQ(*(*got)[0]->Find("name"), record::Value(std::string("Ada")));
  EXPECT_EQ(engine_->Stats().sor_reads, 0u);
}

TEST_F(ReadThroughTest, ColumnOfWrongTypeFailsCreateWithPositionColumnAndField) {
  Sql(server_.conninfo(), "ALTER TABLE crm_customers ALTER COLUMN vip TYPE text");
  Result<config::Config> c = config::LoadString(Yaml(server_.conninfo(), ""), "test.yaml");
  ASSERT_THAT(c, IsOk());
  Result<std::unique_ptr<Engine>> e = Engine::Create(*c, clock_);
  ASSERT_THAT(e, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(e.status().message(), HasSubstr("test.yaml:6:5: tables.customers.read_through"));
  EXPECT_THAT(e.status().message(), HasSubstr("column 'vip' is text but field 'vip' is bool"));
}

TEST(ReadThroughServerTest, StoppedSourceFailsMissesWithUnavailableAndRamStillServes) {
  PostgresServer server;  // its own: this test stops it
  ASSERT_TRUE(server.Start()) << "PostgreSQL test server did not start: " << server.error();
  Sql(server.conninfo(),
      "CREATE TABLE crm_customers (customer_id text PRIMARY KEY, full_name text, credit_limit "
      "float8, vip boolean, since timestamp); INSERT INTO crm_customers VALUES "
      "('c1', 'Ada', 1, true, NULL), ('c2', 'Bo', 2, false, NULL)");
  Result<config::Config> c =
      config::LoadString(Yaml(server.conninfo() + " password=hunter2", ""), "test.yaml");
  ASSERT_THAT(c, IsOk());
  FakeClock clock;
  Result<std::unique_ptr<Engine>> e = Engine::Create(*c, clock);
  ASSERT_THAT(e, IsOk());
  Engine& engine = **e;
  std::vector<std::optional<Record>> out;
  const std::string_view c1[] = {"c1"};
  ASSERT_THAT(engine.Get("customers", c1, {}, out), IsOk());
  ASSERT_TRUE(out[0].has_value());

  const std::string socket_dir = server.dir();
  server.Stop();
  // Cached: answered from RAM without the source.
  ASSERT_THAT(engine.Get("customers", c1, {}, out), IsOk());
  EXPECT_TRUE(out[0].has_value());
  const std::string_view both[] = {"c1", "c2"};
  const Status s = engine.Get("customers", both, {}, out);
  EXPECT_THAT(s, StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(s.message(), HasSubstr("table 'customers'"));
  EXPECT_THAT(s.message(), HasSubstr("host=" + socket_dir));
  EXPECT_THAT(s.message(), Not(HasSubstr("hunter2")));
  EXPECT_EQ(engine.Stats().sor_errors, 1u);
  EXPECT_EQ(engine.Stats().records, 1u);
}

TEST(ReadThroughStartTest, UnreachableSourceAtStartDoesNotStopCreate) {
  TempDir no_server;
  Result<config::Config> c = config::LoadString(
      Yaml("host=" + no_server.path() + " dbname=crm user=ods", ""), "test.yaml");
  ASSERT_THAT(c, IsOk());
  FakeClock clock;
  Result<std::unique_ptr<Engine>> e = Engine::Create(*c, clock);
  ASSERT_THAT(e, IsOk());
  std::vector<std::optional<Record>> out;
  const std::string_view keys[] = {"c1"};
  EXPECT_THAT((*e)->Get("customers", keys, {}, out), StatusIs(StatusCode::kUnavailable));
}

}  // namespace
}  // namespace ods::engine
