#include "ods/common/units.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "support/test_util.h"

namespace ods {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;

constexpr Micros kSecond = 1'000'000;
constexpr Micros kMinute = 60 * kSecond;
constexpr Micros kHour = 60 * kMinute;
constexpr Micros kDay = 24 * kHour;

TEST(ParseBytesTest, BinaryUnitIsPowerOf1024) {
  Result<uint64_t> r = ParseBytes("2GiB");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, uint64_t{2} << 30);
}

TEST(ParseBytesTest, BareIntegerIsBytes) {
  Result<uint64_t> r = ParseBytes("512");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, 512u);
}

TEST(ParseBytesTest, SpaceBetweenNumberAndUnitIsAccepted) {
  Result<uint64_t> r = ParseBytes("64 KiB");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, 64u * 1024);
}

TEST(ParseBytesTest, EveryUnitHasItsFactor) {
  const struct {
    const char* text;
    uint64_t bytes;
  } cases[] = {
      {"7B", 7},
      {"3KiB", 3ull << 10},
      {"3MiB", 3ull << 20},
      {"3GiB", 3ull << 30},
      {"3TiB", 3ull << 40},
      {"3KB", 3'000},
      {"3MB", 3'000'000},
      {"3GB", 3'000'000'000},
      {"3TB", 3'000'000'000'000},
      {"0", 0},
      {"  1MiB  ", 1ull << 20},
  };
  for (const auto& c : cases) {
    Result<uint64_t> r = ParseBytes(c.text);
    ASSERT_THAT(r, IsOk()) << c.text;
    EXPECT_EQ(*r, c.bytes) << c.text;
  }
}

TEST(ParseBytesTest, FractionIsRejected) {
  EXPECT_THAT(ParseBytes("1.5GiB"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ParseBytesTest, UnknownUnitIsRejected) {
  EXPECT_THAT(ParseBytes("2XB"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseBytes("2gib"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseBytes("2 GiB extra"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ParseBytesTest, EmptyOrSignedOrUnitOnlyIsRejected) {
  EXPECT_THAT(ParseBytes(""), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseBytes("   "), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseBytes("-1"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseBytes("+1"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseBytes("GiB"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ParseBytesTest, LargestValueIsAccepted) {
  Result<uint64_t> r = ParseBytes("18446744073709551615");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, std::numeric_limits<uint64_t>::max());
}

TEST(ParseBytesTest, NumberOverflowIsRejected) {
  EXPECT_THAT(ParseBytes("18446744073709551616"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseBytes("99999999999999999999999"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ParseBytesTest, UnitOverflowIsRejected) {
  // 2^24 TiB = 2^64 bytes, one past the largest uint64.
  EXPECT_THAT(ParseBytes("16777216TiB"), StatusIs(StatusCode::kInvalidArgument));
  Result<uint64_t> just_fits = ParseBytes("16777215TiB");
  ASSERT_THAT(just_fits, IsOk());
  EXPECT_EQ(*just_fits, uint64_t{16777215} << 40);
}

TEST(ParseBytesTest, ErrorMessageQuotesTheInput) {
  Result<uint64_t> r = ParseBytes("2XB");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), ::testing::HasSubstr("'2XB'"));
}

TEST(ParseDurationTest, DaysAreConvertedToMicros) {
  Result<Micros> r = ParseDuration("90d");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, 90 * kDay);
}

TEST(ParseDurationTest, PartsAreSummed) {
  Result<Micros> r = ParseDuration("1h30m");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, kHour + 30 * kMinute);
}

TEST(ParseDurationTest, MillisecondsAreNotMinutes) {
  Result<Micros> r = ParseDuration("250ms");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, 250'000);
}

TEST(ParseDurationTest, EveryUnitHasItsFactor) {
  const struct {
    const char* text;
    Micros micros;
  } cases[] = {
      {"7us", 7},        {"7ms", 7'000},      {"7s", 7 * kSecond}, {"7m", 7 * kMinute},
      {"7h", 7 * kHour}, {"7d", 7 * kDay},    {"2w", 14 * kDay},   {"0s", 0},
      {" 3s ", 3 * kSecond}, {"1d2h3m4s5ms6us", kDay + 2 * kHour + 3 * kMinute + 4 * kSecond +
                                                   5'000 + 6},
  };
  for (const auto& c : cases) {
    Result<Micros> r = ParseDuration(c.text);
    ASSERT_THAT(r, IsOk()) << c.text;
    EXPECT_EQ(*r, c.micros) << c.text;
  }
}

TEST(ParseDurationTest, EmptyIsRejected) {
  EXPECT_THAT(ParseDuration(""), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDuration("  "), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ParseDurationTest, ZeroNeedsNoUnit) {
  ASSERT_THAT(ParseDuration(" 0 "), IsOk());
  EXPECT_EQ(*ParseDuration("0"), 0);
  EXPECT_THAT(ParseDuration("00"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ParseDurationTest, NumberWithoutUnitIsRejected) {
  EXPECT_THAT(ParseDuration("5"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDuration("1h30"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ParseDurationTest, UnknownUnitIsRejected) {
  EXPECT_THAT(ParseDuration("1y"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDuration("90x"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDuration("1H"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ParseDurationTest, NegativeOrFractionalIsRejected) {
  EXPECT_THAT(ParseDuration("-1s"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDuration("1.5h"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ParseDurationTest, LargestValueIsAccepted) {
  Result<Micros> r = ParseDuration("9223372036854775807us");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, std::numeric_limits<Micros>::max());
}

TEST(ParseDurationTest, OverflowOfOnePartIsRejected) {
  // Fits in uint64 micros but not in the signed Micros the result is.
  EXPECT_THAT(ParseDuration("9223372036854775808us"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDuration("10000000000000000000us"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDuration("30000000w"), StatusIs(StatusCode::kInvalidArgument));
  // Does not fit in uint64 at all.
  EXPECT_THAT(ParseDuration("99999999999999999999d"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ParseDurationTest, OverflowOfTheSumIsRejected) {
  EXPECT_THAT(ParseDuration("9223372036854775807us1us"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDuration("15250000w15250000w"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(FormatBytesTest, UsesLargestExactBinaryUnit) {
  EXPECT_EQ(FormatBytes(0), "0B");
  EXPECT_EQ(FormatBytes(1), "1B");
  EXPECT_EQ(FormatBytes(1536), "1536B");
  EXPECT_EQ(FormatBytes(1024), "1KiB");
  EXPECT_EQ(FormatBytes(uint64_t{3} << 20), "3MiB");
  EXPECT_EQ(FormatBytes(uint64_t{2} << 30), "2GiB");
  EXPECT_EQ(FormatBytes(uint64_t{5} << 40), "5TiB");
  EXPECT_EQ(FormatBytes(uint64_t{1} << 50), "1024TiB");
}

TEST(FormatBytesTest, OutputParsesBackToTheSameValue) {
  for (uint64_t v : {uint64_t{0}, uint64_t{1000}, uint64_t{64} << 10, uint64_t{7} << 30,
                     std::numeric_limits<uint64_t>::max()}) {
    Result<uint64_t> r = ParseBytes(FormatBytes(v));
    ASSERT_THAT(r, IsOk()) << FormatBytes(v);
    EXPECT_EQ(*r, v);
  }
}

TEST(FormatDurationTest, UsesTheLargestExactUnit) {
  EXPECT_EQ(FormatDuration(0), "0s");
  EXPECT_EQ(FormatDuration(Micros{86400} * 1'000'000), "1d");
  EXPECT_EQ(FormatDuration(Micros{90} * 60'000'000), "90m");
  EXPECT_EQ(FormatDuration(1500), "1500us");
  EXPECT_EQ(FormatDuration(250'000), "250ms");
  EXPECT_EQ(FormatDuration(-3'600'000'000), "-1h");
  EXPECT_EQ(FormatDuration(std::numeric_limits<Micros>::min()), "-9223372036854775808us");
}

TEST(FormatDurationTest, RoundTripsThroughParseDuration) {
  for (Micros m : {Micros{1}, Micros{1000}, Micros{7} * 86'400'000'000, Micros{3'661'000'000}}) {
    Result<Micros> back = ParseDuration(FormatDuration(m));
    ASSERT_TRUE(back.ok()) << FormatDuration(m);
    EXPECT_EQ(*back, m);
  }
}

}  // namespace
}  // namespace ods
