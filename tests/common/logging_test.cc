#include "ods/common/logging.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/test_util.h"

namespace ods {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;

TEST(LoggingTest, KnownLevelsAndFormatsAreAccepted) {
  for (const char* level : {"trace", "debug", "info", "warn", "error", "off"}) {
    EXPECT_THAT(ConfigureLogging(level, "text"), IsOk()) << level;
  }
  EXPECT_THAT(ConfigureLogging("info", "json"), IsOk());
}

TEST(LoggingTest, UnknownLevelIsRejected) {
  EXPECT_THAT(ConfigureLogging("verbose", "text"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(LoggingTest, UnknownFormatIsRejected) {
  EXPECT_THAT(ConfigureLogging("info", "xml"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(LoggingTest, LoggerIsCreatedOnceAndNamed) {
  auto a = Logger("ods.test");
  auto b = Logger("ods.test");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a->name(), "ods.test");
}

TEST(LoggingTest, LoggersFollowTheConfiguredLevel) {
  ASSERT_THAT(ConfigureLogging("warn", "text"), IsOk());
  EXPECT_EQ(Logger("ods.level_test")->level(), spdlog::level::warn);
  ASSERT_THAT(ConfigureLogging("debug", "text"), IsOk());
  EXPECT_EQ(Logger("ods.level_test2")->level(), spdlog::level::debug);
}

}  // namespace
}  // namespace ods
