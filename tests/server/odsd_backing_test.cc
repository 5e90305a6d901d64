// odsd opens the configured backing store (storage.backing) at start and refuses to start,
// with a message naming it, when it cannot (issue #6 point 2). Real odsd processes; the
// postgres cases use a real PostgreSQL 15 (support/postgres_server.h).

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/odsd_process.h"
#include "support/postgres_server.h"
#include "support/test_util.h"

namespace ods {
namespace {

using ::ods::testing::OdsdPath;
using ::ods::testing::OdsdProcess;
using ::ods::testing::PostgresServer;
using ::ods::testing::RunCommand;
using ::ods::testing::TempDir;

// A config file in `dir` with `backing` as its storage.backing value.
std::string WriteConfig(const TempDir& dir, const std::string& backing) {
  const std::string path = dir.path() + "/odsd.yaml";
  std::ofstream(path) << "server: {shards: 2}\n"
                      << "storage: {backing: " << backing << "}\n"
                      << "tables:\n  t: {key: id}\n";
  return path;
}

// Runs odsd with `config` and `data_dir` until it exits by itself (it should not start).
::ods::testing::CommandResult RunOdsd(const std::string& config, const std::string& data_dir) {
  return RunCommand({OdsdPath(), "--config", config, "--data-dir", data_dir, "--grpc-listen",
                     "127.0.0.1:0", "--admin-listen", ""});
}

TEST(OdsdBackingTest, DirectoryBackingStoreIsOpenedUnderTheDataDir) {
  TempDir dir;
  TempDir data;
  OdsdProcess odsd;
  ASSERT_TRUE(
      odsd.Start({"--config", WriteConfig(dir, "{kind: directory}"), "--data-dir", data.path()}))
      << odsd.error();
  EXPECT_TRUE(std::filesystem::exists(data.path() + "/backing/000000000001.seg"));
  EXPECT_NE(odsd.Stderr().find("backing store directory " + data.path() + "/backing"),
            std::string::npos)
      << odsd.Stderr();
  EXPECT_EQ(odsd.Stop(SIGTERM, 10000), 0);
}

TEST(OdsdBackingTest, UnusableBackingDirectoryStopsStartWithAClearMessage) {
  TempDir dir;
  TempDir data;
  std::ofstream(dir.path() + "/file") << "not a directory";
  const std::string backing_dir = dir.path() + "/file/backing";
  const auto r = RunOdsd(WriteConfig(dir, "{dir: " + backing_dir + "}"), data.path());
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("backing store"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(backing_dir), std::string::npos) << r.err;
}

TEST(OdsdBackingTest, SecondOdsdOnTheSameBackingDirectoryStopsStart) {
  TempDir dir;
  TempDir data;
  TempDir other_data;
  const std::string config = WriteConfig(dir, "{dir: " + data.path() + "/shared-backing}");
  OdsdProcess first;
  ASSERT_TRUE(first.Start({"--config", config, "--data-dir", data.path()})) << first.error();
  const auto r = RunOdsd(config, other_data.path());
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("locked"), std::string::npos) << r.err;
  EXPECT_EQ(first.Stop(SIGTERM, 10000), 0);
}

TEST(OdsdBackingTest, UnreachablePostgresStopsStartNamingTargetButNotPassword) {
  TempDir dir;
  TempDir data;
  TempDir no_server;
  const auto r =
      RunOdsd(WriteConfig(dir, "{kind: postgres, postgres: {conninfo: \"host=" + no_server.path() +
                                   " dbname=ods user=ods password=hunter2\"}}"),
              data.path());
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("host=" + no_server.path()), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("hunter2"), std::string::npos) << r.err;
}

TEST(OdsdBackingTest, PostgresBackingStoreIsOpenedAtStart) {
  PostgresServer& server = PostgresServer::Shared();
  ASSERT_TRUE(server.ok()) << "PostgreSQL test server did not start: " << server.error();
  TempDir dir;
  TempDir data;
  OdsdProcess odsd;
  ASSERT_TRUE(odsd.Start({"--config",
                          WriteConfig(dir, "{kind: postgres, postgres: {conninfo: \"" +
                                               server.conninfo() + "\", table: odsd_test}}"),
                          "--data-dir", data.path()}))
      << odsd.error();
  EXPECT_NE(odsd.Stderr().find("backing store postgres host=" + server.dir()), std::string::npos)
      << odsd.Stderr();
  EXPECT_EQ(odsd.Stop(SIGTERM, 10000), 0);
}

}  // namespace
}  // namespace ods
