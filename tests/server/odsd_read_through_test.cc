// A real odsd whose table reads through to a PostgreSQL system of record (tables.NAME.
// read_through), called over gRPC: a miss is answered from PostgreSQL, then from RAM.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <memory>
#include <pqxx/pqxx>
#include <string>

#include "ods/v1/store.grpc.pb.h"
#include "support/odsd_process.h"
#include "support/postgres_server.h"
#include "support/test_util.h"

namespace ods {
namespace {

using ::ods::testing::OdsdProcess;
using ::ods::testing::PostgresServer;
using ::ods::testing::TempDir;

void Sql(const std::string& conninfo, const std::string& sql) {
  pqxx::connection conn(conninfo);
  pqxx::work txn(conn);
  txn.exec(sql);
  txn.commit();
}

grpc::Status Get(v1::Store::Stub& stub, const std::string& key, v1::GetResponse* resp) {
  v1::GetRequest req;
  req.set_table("customers");
  req.add_keys(key);
  grpc::ClientContext ctx;
  return stub.Get(&ctx, req, resp);
}

TEST(OdsdReadThroughTest, GetMissIsReadFromPostgresThenServedFromRam) {
  PostgresServer& server = PostgresServer::Shared();
  ASSERT_TRUE(server.ok()) << "PostgreSQL test server did not start: " << server.error();
  Sql(server.conninfo(),
      "DROP TABLE IF EXISTS odsd_customers; CREATE TABLE odsd_customers (id bigint PRIMARY "
      "KEY, name text, score real); INSERT INTO odsd_customers VALUES (17, 'Ada', 0.25)");
  TempDir dir;
  const std::string config = dir.path() + "/odsd.yaml";
  std::ofstream(config) << "server: {shards: 2}\n"
                        << "tables:\n"
                        << "  customers:\n"
                        << "    key: id\n"
                        << "    fields: {name: string, score: double}\n"
                        << "    read_through:\n"
                        << "      postgres: {conninfo: \"" << server.conninfo()
                        << "\", table: odsd_customers, key_column: id}\n"
                        << "      negative_ttl: 1h\n";
  OdsdProcess odsd;
  ASSERT_TRUE(odsd.Start({"--config", config})) << odsd.error();
  auto stub = v1::Store::NewStub(
      grpc::CreateChannel(odsd.grpc_address(), grpc::InsecureChannelCredentials()));

  v1::GetResponse resp;
  grpc::Status s = Get(*stub, "17", &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), 1);
  ASSERT_TRUE(resp.results(0).found());
  EXPECT_EQ(resp.results(0).record().fields().at("name").string_value(), "Ada");
  EXPECT_EQ(resp.results(0).record().fields().at("score").double_value(), 0.25);

  // Changed in PostgreSQL: the cached record answers (read-through, not write-through).
  Sql(server.conninfo(), "UPDATE odsd_customers SET name = 'Changed' WHERE id = 17");
  resp.Clear();
  s = Get(*stub, "17", &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.results(0).record().fields().at("name").string_value(), "Ada");

  resp.Clear();
  s = Get(*stub, "18", &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(resp.results(0).found());
  EXPECT_NE(odsd.Stderr().find("reads through to postgres host=" + server.dir()),
            std::string::npos)
      << odsd.Stderr();
  EXPECT_EQ(odsd.Stop(SIGTERM, 10000), 0);
}

TEST(OdsdReadThroughTest, ColumnOfWrongTypeStopsStartWithPosition) {
  PostgresServer& server = PostgresServer::Shared();
  ASSERT_TRUE(server.ok()) << "PostgreSQL test server did not start: " << server.error();
  Sql(server.conninfo(),
      "DROP TABLE IF EXISTS odsd_bad; CREATE TABLE odsd_bad (id text PRIMARY KEY, n jsonb)");
  TempDir dir;
  const std::string config = dir.path() + "/odsd.yaml";
  std::ofstream(config) << "tables:\n"
                        << "  t:\n"
                        << "    key: id\n"
                        << "    fields: {n: int64}\n"
                        << "    read_through: {postgres: {conninfo: \"" << server.conninfo()
                        << "\", table: odsd_bad, key_column: id}}\n";
  const auto r = ::ods::testing::RunCommand({::ods::testing::OdsdPath(), "--config", config,
                                             "--grpc-listen", "127.0.0.1:0", "--admin-listen",
                                             "", "--data-dir", dir.path() + "/data"});
  EXPECT_NE(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("odsd.yaml:5:5: tables.t.read_through"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("column 'n' is jsonb but field 'n' is int64"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ods
