// The PostgreSQL system of record against a real PostgreSQL 15 (support/postgres_server.h):
// rows made here with libpqxx, read back by key with the configured fields' types.

#include "ods/tier/system_of_record.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "support/postgres_server.h"
#include "support/test_util.h"

namespace ods::tier {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::PostgresServer;
using ::ods::testing::StatusIs;
using record::Bytes;
using record::Timestamp;
using ::testing::HasSubstr;
using ::testing::Not;

void Sql(const std::string& conninfo, const std::string& sql) {
  pqxx::connection conn(conninfo);
  pqxx::work txn(conn);
  txn.exec(sql);
  txn.commit();
}

// Columns of every supported kind, as the fields of a typed table would give them.
std::vector<SorColumn> AllColumns() {
  return {{"age", ValueType::kInt64, "age"},         {"score", ValueType::kDouble, "score"},
          {"amount", ValueType::kDouble, "amount"},  {"vip", ValueType::kBool, "vip"},
          {"name", ValueType::kString, "full_name"}, {"avatar", ValueType::kBytes, "avatar"},
          {"signup", ValueType::kTimestamp, "signup"}};
}

class SystemOfRecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.ok()) << "PostgreSQL test server did not start: " << server_.error();
    Sql(server_.conninfo(),
        "DROP TABLE IF EXISTS sor_people; CREATE TABLE sor_people (id text PRIMARY KEY, "
        "age integer, score double precision, amount numeric, vip boolean, full_name varchar(40), "
        "avatar bytea, signup timestamptz);"
        "INSERT INTO sor_people VALUES ('ann', 42, 0.5, 12.25, true, 'Ann \"A\" O''Neil', "
        "'\\x00ff10', '2024-01-02 03:04:05.123456+00'),"
        "('bob', NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
        "('q\"\\,{}', 7, -1, 0, false, 'quoted', '\\x', 'infinity')");
  }

  std::unique_ptr<SystemOfRecord> Open(std::vector<SorColumn> columns = AllColumns(),
                                       std::string table = "sor_people") {
    Result<std::unique_ptr<SystemOfRecord>> sor = OpenPostgresSystemOfRecord(
        {.conninfo = server_.conninfo(), .table = table, .key_column = "id", .columns = columns});
    EXPECT_THAT(sor, IsOk());
    return sor.ok() ? std::move(*sor) : nullptr;
  }

  PostgresServer& server_ = PostgresServer::Shared();
};

TEST_F(SystemOfRecordTest, ReadsEveryColumnTypeAsItsFieldType) {
  std::unique_ptr<SystemOfRecord> sor = Open();
  ASSERT_NE(sor, nullptr);
  const std::string_view keys[] = {"ann"};
  Result<std::vector<std::optional<record::Record>>> got = sor->Read(keys);
  ASSERT_THAT(got, IsOk());
  ASSERT_TRUE((*got)[0].has_value());
  const record::Record& r = *(*got)[0];
  EXPECT_EQ(*r.Find("age"), record::Value(int64_t{42}));
  EXPECT_EQ(*r.Find("score"), record::Value(0.5));
  EXPECT_EQ(*r.Find("amount"), record::Value(12.25));
  EXPECT_EQ(*r.Find("vip"), record::Value(true));
  EXPECT_EQ(*r.Find("name"), record::Value(std::string("Ann \"A\" O'Neil")));
  EXPECT_EQ(*r.Find("avatar"), record::Value(Bytes{std::string("\x00\xff\x10", 3)}));
  EXPECT_EQ(*r.Find("signup"), record::Value(Timestamp{1'704'164'645'123'456}));
  EXPECT_EQ(r.fields.size(), 7u);
  EXPECT_TRUE(std::is_sorted(r.fields.begin(), r.fields.end(),
                             [](const auto& a, const auto& b) { return a.name < b.name; }));
}

TEST_F(SystemOfRecordTest, NullColumnsAndInfiniteTimestampsLeaveFieldsAbsent) {
  std::unique_ptr<SystemOfRecord> sor = Open();
  ASSERT_NE(sor, nullptr);
  const std::string_view keys[] = {"bob", "q\"\\,{}"};
  Result<std::vector<std::optional<record::Record>>> got = sor->Read(keys);
  ASSERT_THAT(got, IsOk());
  ASSERT_TRUE((*got)[0].has_value());
  EXPECT_TRUE((*got)[0]->fields.empty());
  // A key with the characters an array literal escapes is found as itself.
  ASSERT_TRUE((*got)[1].has_value());
  EXPECT_EQ((*got)[1]->Find("signup"), nullptr);
  EXPECT_EQ(*(*got)[1]->Find("age"), record::Value(int64_t{7}));
}

TEST_F(SystemOfRecordTest, BatchAnswersEachKeyInOrderWithMissesAndDuplicates) {
  std::unique_ptr<SystemOfRecord> sor = Open();
  ASSERT_NE(sor, nullptr);
  const std::string_view keys[] = {"nobody", "bob", "ann", "bob", "\xff\xfe"};
  Result<std::vector<std::optional<record::Record>>> got = sor->Read(keys);
  ASSERT_THAT(got, IsOk());
  ASSERT_EQ(got->size(), 5u);
  EXPECT_FALSE((*got)[0].has_value());
  EXPECT_TRUE((*got)[1].has_value());
  ASSERT_TRUE((*got)[2].has_value());
  EXPECT_EQ(*(*got)[2]->Find("age"), record::Value(int64_t{42}));
  EXPECT_TRUE((*got)[3].has_value());
  EXPECT_FALSE((*got)[4].has_value());  // not UTF-8: cannot be a text key, not asked
}

TEST_F(SystemOfRecordTest, IntegerKeyColumnMatchesCanonicalDecimalKeysOnly) {
  Sql(server_.conninfo(),
      "DROP TABLE IF EXISTS sor_accounts; CREATE TABLE sor_accounts (id bigint PRIMARY KEY, "
      "balance bigint); INSERT INTO sor_accounts VALUES (42, 100), (-7, 5)");
  Result<std::unique_ptr<SystemOfRecord>> sor = OpenPostgresSystemOfRecord(
      {.conninfo = server_.conninfo(), .table = "public.sor_accounts", .key_column = "id",
       .columns = {{"balance", ValueType::kInt64, "balance"}}});
  ASSERT_THAT(sor, IsOk());
  const std::string_view keys[] = {"42", "-7", "042", "abc", "99999999999999999999"};
  Result<std::vector<std::optional<record::Record>>> got = (*sor)->Read(keys);
  ASSERT_THAT(got, IsOk());
  ASSERT_TRUE((*got)[0].has_value());
  EXPECT_EQ(*(*got)[0]->Find("balance"), record::Value(int64_t{100}));
  EXPECT_TRUE((*got)[1].has_value());
  EXPECT_FALSE((*got)[2].has_value());
  EXPECT_FALSE((*got)[3].has_value());
  EXPECT_FALSE((*got)[4].has_value());
}

TEST_F(SystemOfRecordTest, ByteaKeyColumnMatchesAnyBytes) {
  Sql(server_.conninfo(),
      "DROP TABLE IF EXISTS sor_blobs; CREATE TABLE sor_blobs (id bytea PRIMARY KEY, n int);"
      "INSERT INTO sor_blobs VALUES ('\\x00ff', 1)");
  Result<std::unique_ptr<SystemOfRecord>> sor = OpenPostgresSystemOfRecord(
      {.conninfo = server_.conninfo(), .table = "sor_blobs", .key_column = "id",
       .columns = {{"n", ValueType::kInt64, "n"}}});
  ASSERT_THAT(sor, IsOk());
  const std::string_view keys[] = {std::string_view("\x00\xff", 2), "x"};
  Result<std::vector<std::optional<record::Record>>> got = (*sor)->Read(keys);
  ASSERT_THAT(got, IsOk());
  EXPECT_TRUE((*got)[0].has_value());
  EXPECT_FALSE((*got)[1].has_value());
}

TEST_F(SystemOfRecordTest, ColumnOfUnsupportedTypeIsInvalidArgumentNamingColumnAndField) {
  Sql(server_.conninfo(),
      "DROP TABLE IF EXISTS sor_json; CREATE TABLE sor_json (id text, doc jsonb)");
  Result<std::unique_ptr<SystemOfRecord>> sor = OpenPostgresSystemOfRecord(
      {.conninfo = server_.conninfo(), .table = "sor_json", .key_column = "id",
       .columns = {{"age", ValueType::kInt64, "doc"}}});
  ASSERT_THAT(sor, IsOk());
  const Status s = (*sor)->Check();
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(s.message(), HasSubstr("column 'doc' is jsonb but field 'age' is int64"));
  // A read finds the same problem, as a precondition of the source rather than of the call.
  const std::string_view keys[] = {"a"};
  EXPECT_THAT((*sor)->Read(keys), StatusIs(StatusCode::kFailedPrecondition));
}

TEST_F(SystemOfRecordTest, MissingColumnOrTableIsInvalidArgumentNamingIt) {
  std::unique_ptr<SystemOfRecord> sor = Open({{"age", ValueType::kInt64, "no_such_column"}});
  ASSERT_NE(sor, nullptr);
  const Status s = sor->Check();
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(s.message(), HasSubstr("no_such_column"));
  std::unique_ptr<SystemOfRecord> other = Open(AllColumns(), "no_such_table");
  ASSERT_NE(other, nullptr);
  EXPECT_THAT(other->Check().message(), HasSubstr("no_such_table"));
}

TEST_F(SystemOfRecordTest, BadOptionsAreInvalidArgumentWithoutThePassword) {
  const std::vector<SorColumn> cols = {{"n", ValueType::kInt64, "n"}};
  EXPECT_THAT(OpenPostgresSystemOfRecord({.conninfo = "", .table = "t", .key_column = "id",
                                          .columns = cols}),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(OpenPostgresSystemOfRecord({.conninfo = "host=/tmp", .table = "a;drop",
                                          .key_column = "id", .columns = cols}),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(OpenPostgresSystemOfRecord({.conninfo = "host=/tmp", .table = "t",
                                          .key_column = "id",
                                          .columns = {{"v", ValueType::kFloatVector, "v"}}}),
              StatusIs(StatusCode::kInvalidArgument));
  Result<std::unique_ptr<SystemOfRecord>> unparsable = OpenPostgresSystemOfRecord(
      {.conninfo = "host=/tmp password=hunter2 nonsense", .table = "t", .key_column = "id",
       .columns = cols});
  ASSERT_THAT(unparsable, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(unparsable.status().message(), Not(HasSubstr("hunter2")));
}

TEST(SystemOfRecordServerTest, StoppedServerIsUnavailableNamingTargetNotPasswordAndRestartHeals) {
  PostgresServer server;  // its own: this test stops and restarts it
  ASSERT_TRUE(server.Start()) << "PostgreSQL test server did not start: " << server.error();
  Sql(server.conninfo(), "CREATE TABLE t (id text PRIMARY KEY, n int); INSERT INTO t VALUES "
                         "('a', 1)");
  Result<std::unique_ptr<SystemOfRecord>> sor = OpenPostgresSystemOfRecord(
      {.conninfo = server.conninfo() + " password=hunter2", .table = "t", .key_column = "id",
       .columns = {{"n", ValueType::kInt64, "n"}}});
  ASSERT_THAT(sor, IsOk());
  const std::string_view keys[] = {"a"};
  ASSERT_THAT((*sor)->Read(keys), IsOk());

  ASSERT_TRUE(server.Restart()) << server.error();
  Result<std::vector<std::optional<record::Record>>> after_restart = (*sor)->Read(keys);
  ASSERT_THAT(after_restart, IsOk());
  EXPECT_TRUE((*after_restart)[0].has_value());

  const std::string socket_dir = server.dir();
  server.Stop();
  Result<std::vector<std::optional<record::Record>>> down = (*sor)->Read(keys);
  ASSERT_THAT(down, StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(down.status().message(), HasSubstr("host=" + socket_dir));
  EXPECT_THAT(down.status().message(), HasSubstr("table=t"));
  EXPECT_THAT(down.status().message(), Not(HasSubstr("hunter2")));
  EXPECT_THAT((*sor)->Read(keys), StatusIs(StatusCode::kUnavailable));
}

}  // namespace
}  // namespace ods::tier
