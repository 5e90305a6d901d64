#include "cli/args.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "support/test_util.h"

namespace ods::cli {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::Pair;

constexpr std::string_view kFlags[] = {"--limit", "--prefix"};

Result<ParsedArgs> Parse(const std::vector<std::string>& args) { return ParseArgs(args, kFlags); }

TEST(CliArgsTest, SplitsPositionalsAndFlagsInBothSpellings) {
  const Result<ParsedArgs> r = Parse({"t", "--limit", "5", "k", "--prefix=p"});
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->positional, ElementsAre("t", "k"));
  EXPECT_THAT(r->flags, ElementsAre(Pair("--limit", "5"), Pair("--prefix", "p")));
  EXPECT_FALSE(r->help);
}

TEST(CliArgsTest, DoubleDashEndsFlags) {
  const Result<ParsedArgs> r = Parse({"t", "--", "--limit", "-k"});
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->positional, ElementsAre("t", "--limit", "-k"));
}

TEST(CliArgsTest, LoneDashIsPositional) {
  const Result<ParsedArgs> r = Parse({"-"});
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->positional, ElementsAre("-"));
}

TEST(CliArgsTest, HelpFlagSetsHelp) {
  EXPECT_TRUE(Parse({"t", "--help"})->help);
  EXPECT_TRUE(Parse({"-h"})->help);
}

TEST(CliArgsTest, UnknownFlagIsInvalidArgument) {
  EXPECT_THAT(Parse({"t", "--nope"}), StatusIs(StatusCode::kInvalidArgument));
}

TEST(CliArgsTest, FlagWithoutValueIsInvalidArgument) {
  EXPECT_THAT(Parse({"t", "--limit"}), StatusIs(StatusCode::kInvalidArgument));
}

TEST(CliArgsTest, RepeatedFlagIsInvalidArgument) {
  EXPECT_THAT(Parse({"--limit", "1", "--limit=2"}), StatusIs(StatusCode::kInvalidArgument));
}

TEST(CliArgsTest, RepeatableFlagCollectsEveryValueInOrder) {
  constexpr std::string_view kWithRepeatable[] = {"--limit", "--arg..."};
  const std::vector<std::string> args = {"f", "--arg", "a=1", "k", "--arg=b=2", "--limit", "3"};
  const Result<ParsedArgs> r = ParseArgs(args, kWithRepeatable);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->positional, ElementsAre("f", "k"));
  EXPECT_THAT(r->repeated.at("--arg"), ElementsAre("a=1", "b=2"));
  EXPECT_THAT(r->flags, ElementsAre(Pair("--limit", "3")));
  EXPECT_THAT(ParseArgs(std::vector<std::string>{"--arg..."}, kWithRepeatable),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(CliArgsTest, SplitListSplitsOnCommas) {
  EXPECT_THAT(*SplitList("a,b,c", "option '--fields'"), ElementsAre("a", "b", "c"));
}

TEST(CliArgsTest, SplitListRejectsEmptyItems) {
  EXPECT_THAT(SplitList("", "option '--fields'"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(SplitList("a,,b", "option '--fields'"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(SplitList("a,", "option '--fields'"), StatusIs(StatusCode::kInvalidArgument));
}


TEST(CliArgsTest, SwitchTakesNoValue) {
  constexpr std::string_view kWithSwitch[] = {"--limit", "--keep-state!"};
  const Result<ParsedArgs> r = ParseArgs(std::vector<std::string>{"a", "--keep-state", "b"},
                                         kWithSwitch);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->positional, ElementsAre("a", "b"));  // "b" is not taken as its value
  ASSERT_NE(r->Find("--keep-state"), nullptr);
  EXPECT_EQ(*r->Find("--keep-state"), "");
  EXPECT_EQ(ParseArgs(std::vector<std::string>{"a"}, kWithSwitch)->Find("--keep-state"), nullptr);
  EXPECT_THAT(ParseArgs(std::vector<std::string>{"--keep-state=yes"}, kWithSwitch),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseArgs(std::vector<std::string>{"--keep-state", "--keep-state"}, kWithSwitch),
              StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace ods::cli
