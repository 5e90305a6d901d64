// The client examples (examples/python/ods_client.py, examples/cpp/ods_client.cc) against a real
// odsd running the embedded default config, which they are written for: each must print the
// values a correct server gives for the record and events it sends, and exit 0.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <sstream>
#include <string>
#include <vector>

#include "support/odsd_process.h"

namespace ods {
namespace {

using ::ods::testing::CommandResult;
using ::ods::testing::OdsdProcess;
using ::ods::testing::RunCommand;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> PythonExample(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {ODS_PYTHON3, ODS_PYTHON_CLIENT, "--stubs", ODS_PYTHON_STUBS_DIR};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::vector<std::string> CppExample(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {ODS_CPP_CLIENT};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// What either example prints for user `key` on a fresh odsd: the record as put, and the
// aggregates of its three transactions (12.5 at m1, 30.25 at m2, 7.5 at m1).
void ExpectRoundTrip(const CommandResult& r, const std::string& key) {
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(
      Lines(r.out),
      ElementsAre(StartsWith("Put     user_profile/" + key + " -> version "),
                  "Get     user_profile/" + key + " -> age=42 country=NL",
                  "Push    3 transactions -> applied=3 duplicates=0 rejected=0",
                  "Feature txn_count@1h = 3 (PRESENT)", "Feature txn_amount@1h = 50.25 (PRESENT)",
                  "Feature merchants_7d = 2 (PRESENT)", "Feature user_profile:age = 42 (PRESENT)"))
      << r.err;
}

TEST(ClientExamplesTest, PythonExampleRoundTripsRecordAndFeatures) {
  OdsdProcess odsd;
  ASSERT_TRUE(odsd.Start()) << odsd.error();
  ExpectRoundTrip(RunCommand(PythonExample({"--target", odsd.grpc_address(), "--key", "py_1"})),
                  "py_1");
  EXPECT_EQ(odsd.Stop(SIGTERM, 10000), 0) << odsd.Stderr();
}

TEST(ClientExamplesTest, CppExampleRoundTripsRecordAndFeatures) {
  OdsdProcess odsd;
  ASSERT_TRUE(odsd.Start()) << odsd.error();
  ExpectRoundTrip(RunCommand(CppExample({"--target", odsd.grpc_address(), "--key", "cc_1"})),
                  "cc_1");
  EXPECT_EQ(odsd.Stop(SIGTERM, 10000), 0) << odsd.Stderr();
}

// With odsd gone, both exit 3 (as the ods CLI does) and say where they tried to connect.
TEST(ClientExamplesTest, ExamplesExitWith3WhenOdsdIsUnreachable) {
  OdsdProcess odsd;
  ASSERT_TRUE(odsd.Start()) << odsd.error();
  const std::string address = odsd.grpc_address();
  ASSERT_EQ(odsd.Stop(SIGTERM, 10000), 0) << odsd.Stderr();

  const CommandResult py = RunCommand(PythonExample({"--target", address, "--timeout", "1"}));
  EXPECT_EQ(py.exit_code, 3) << py.out << py.err;
  EXPECT_THAT(py.err, HasSubstr("cannot connect to odsd at " + address));
  const CommandResult cc = RunCommand(CppExample({"--target", address, "--timeout", "1"}));
  EXPECT_EQ(cc.exit_code, 3) << cc.out << cc.err;
  EXPECT_THAT(cc.err, HasSubstr("cannot connect to odsd at " + address));
}

}  // namespace
}  // namespace ods
