#include "ods/common/logging.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/test_util.h"

namespace ods {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;

TEST(LoggingTest, JsonFormatEscapesTheMessage) {
  ASSERT_TRUE(ConfigureLogging("info", "json").ok());
  ::testing::internal::CaptureStderr();
  Logger("ods.test")->info("table \"a\\b\"\nnext");
  spdlog::default_logger()->flush();
  Logger("ods.test")->flush();
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find(R"("msg":"table \"a\\b\"\u000anext")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("logger":"ods.test")"), std::string::npos) << out;
  ASSERT_TRUE(ConfigureLogging("info", "text").ok());
}

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
