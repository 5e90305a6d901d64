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

#include <string>
#include <vector>

#include "ods/v1/store.pb.h"
#include "support/odsd_process.h"

namespace ods::cli {
namespace {

using ::ods::testing::CommandResult;
using ::ods::testing::OdsdProcess;
using ::ods::testing::RunCommand;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
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
}

TEST(CliOdsUsageTest, HelpAndVersionExitZero) {
  const CommandResult help = RunCommand({ODS_CLI_PATH, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("Usage: ods"));
  const CommandResult put_help = RunCommand({ODS_CLI_PATH, "put", "--help"});
  EXPECT_EQ(put_help.exit_code, 0);
  EXPECT_THAT(put_help.out, HasSubstr("float_vector"));
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

}  // namespace
}  // namespace ods::cli
