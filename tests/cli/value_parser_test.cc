#include "cli/value_parser.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "support/test_util.h"

namespace ods::cli {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Kind = ods::v1::Value::KindCase;

FieldAssignment ParseOk(std::string_view arg) {
  Result<FieldAssignment> r = ParseFieldAssignment(arg);
  EXPECT_THAT(r, IsOk()) << arg;
  return r.ok() ? *r : FieldAssignment{};
}

TEST(CliValueParserTest, InfersInt64FromInteger) {
  const FieldAssignment f = ParseOk("age=42");
  EXPECT_EQ(f.name, "age");
  ASSERT_EQ(f.value.kind_case(), Kind::kInt64Value);
  EXPECT_EQ(f.value.int64_value(), 42);
}

TEST(CliValueParserTest, InfersNegativeAndExtremeInt64) {
  EXPECT_EQ(ParseOk("n=-7").value.int64_value(), -7);
  EXPECT_EQ(ParseOk("n=9223372036854775807").value.int64_value(),
            std::numeric_limits<int64_t>::max());
  EXPECT_EQ(ParseOk("n=-9223372036854775808").value.int64_value(),
            std::numeric_limits<int64_t>::min());
}

TEST(CliValueParserTest, InfersStringForIntegerOutsideInt64) {
  const FieldAssignment f = ParseOk("id=9223372036854775808");
  ASSERT_EQ(f.value.kind_case(), Kind::kStringValue);
  EXPECT_EQ(f.value.string_value(), "9223372036854775808");
}

TEST(CliValueParserTest, InfersStringForDigitsWithLeadingZero) {
  const FieldAssignment f = ParseOk("zip=02134");
  ASSERT_EQ(f.value.kind_case(), Kind::kStringValue);
  EXPECT_EQ(f.value.string_value(), "02134");
  EXPECT_EQ(ParseOk("zero=0").value.int64_value(), 0);
}

TEST(CliValueParserTest, InfersDoubleFromDecimal) {
  const FieldAssignment f = ParseOk("score=1.5");
  ASSERT_EQ(f.value.kind_case(), Kind::kDoubleValue);
  EXPECT_DOUBLE_EQ(f.value.double_value(), 1.5);
  EXPECT_DOUBLE_EQ(ParseOk("x=-2e3").value.double_value(), -2000);
  EXPECT_DOUBLE_EQ(ParseOk("x=.5").value.double_value(), 0.5);
}

TEST(CliValueParserTest, InfersBoolFromTrueAndFalse) {
  const FieldAssignment t = ParseOk("premium=true");
  ASSERT_EQ(t.value.kind_case(), Kind::kBoolValue);
  EXPECT_TRUE(t.value.bool_value());
  EXPECT_FALSE(ParseOk("premium=false").value.bool_value());
}

TEST(CliValueParserTest, InfersStringForOtherText) {
  EXPECT_EQ(ParseOk("country=US").value.string_value(), "US");
  EXPECT_EQ(ParseOk("w=nan").value.string_value(), "nan");
  EXPECT_EQ(ParseOk("w=True").value.string_value(), "True");
  EXPECT_EQ(ParseOk("w=1.2.3").value.string_value(), "1.2.3");
}

TEST(CliValueParserTest, EmptyValueIsEmptyString) {
  const FieldAssignment f = ParseOk("note=");
  ASSERT_EQ(f.value.kind_case(), Kind::kStringValue);
  EXPECT_EQ(f.value.string_value(), "");
}

TEST(CliValueParserTest, ValueKeepsEqualsSigns) {
  EXPECT_EQ(ParseOk("expr=a=b").value.string_value(), "a=b");
}

TEST(CliValueParserTest, StringSuffixForcesString) {
  const FieldAssignment f = ParseOk("name:string=42");
  EXPECT_EQ(f.name, "name");
  ASSERT_EQ(f.value.kind_case(), Kind::kStringValue);
  EXPECT_EQ(f.value.string_value(), "42");
}

TEST(CliValueParserTest, Int64SuffixParsesInteger) {
  const FieldAssignment f = ParseOk("age:int64=+42");
  ASSERT_EQ(f.value.kind_case(), Kind::kInt64Value);
  EXPECT_EQ(f.value.int64_value(), 42);
}

TEST(CliValueParserTest, DoubleSuffixAcceptsInteger) {
  const FieldAssignment f = ParseOk("score:double=3");
  ASSERT_EQ(f.value.kind_case(), Kind::kDoubleValue);
  EXPECT_DOUBLE_EQ(f.value.double_value(), 3.0);
}

TEST(CliValueParserTest, BoolSuffixParsesBool) {
  const FieldAssignment f = ParseOk("premium:bool=true");
  ASSERT_EQ(f.value.kind_case(), Kind::kBoolValue);
  EXPECT_TRUE(f.value.bool_value());
}

TEST(CliValueParserTest, BytesSuffixDecodesBase64WithOrWithoutPadding) {
  const FieldAssignment padded = ParseOk("avatar:bytes=aGk=");
  ASSERT_EQ(padded.value.kind_case(), Kind::kBytesValue);
  EXPECT_EQ(padded.value.bytes_value(), "hi");
  EXPECT_EQ(ParseOk("avatar:bytes=aGk").value.bytes_value(), "hi");
  EXPECT_EQ(ParseOk("avatar:bytes=aGVsbG8=").value.bytes_value(), "hello");
  EXPECT_EQ(ParseOk("avatar:bytes=/w==").value.bytes_value(), std::string(1, '\xff'));
  EXPECT_EQ(ParseOk("avatar:bytes=").value.bytes_value(), "");
}

TEST(CliValueParserTest, FloatVectorSuffixParsesCommaSeparatedFloats) {
  const FieldAssignment f = ParseOk("emb:float_vector=0.1,-0.2,3");
  ASSERT_EQ(f.value.kind_case(), Kind::kFloatVectorValue);
  EXPECT_THAT(f.value.float_vector_value().values(), ElementsAre(0.1f, -0.2f, 3.0f));
}

TEST(CliValueParserTest, FloatVectorSuffixWithEmptyValueIsEmptyVector) {
  const FieldAssignment f = ParseOk("emb:float_vector=");
  ASSERT_EQ(f.value.kind_case(), Kind::kFloatVectorValue);
  EXPECT_EQ(f.value.float_vector_value().values_size(), 0);
}

TEST(CliValueParserTest, TimestampSuffixParsesMicros) {
  const FieldAssignment f = ParseOk("signup:timestamp=1700000000000000");
  ASSERT_EQ(f.value.kind_case(), Kind::kTimestampMicrosValue);
  EXPECT_EQ(f.value.timestamp_micros_value(), 1700000000000000);
}

TEST(CliValueParserTest, NameKeepsColonsBeforeTheTypeSuffix) {
  const FieldAssignment f = ParseOk("a:b:int64=1");
  EXPECT_EQ(f.name, "a:b");
  EXPECT_EQ(f.value.int64_value(), 1);
}

// Every malformed argument is kInvalidArgument and its message quotes the argument.
class CliValueParserBadInputTest : public ::testing::TestWithParam<const char*> {};

TEST_P(CliValueParserBadInputTest, IsInvalidArgumentNamingTheArgument) {
  const Result<FieldAssignment> r = ParseFieldAssignment(GetParam());
  EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(r.status().message(), HasSubstr(std::string("'") + GetParam() + "'"));
}

INSTANTIATE_TEST_SUITE_P(
    All, CliValueParserBadInputTest,
    ::testing::Values("age", "=42", ":int64=1", "age:int64=abc", "age:int64=1.5",
                      "age:int64=", "age:int64= 1", "age:int64=99999999999999999999",
                      "score:double=abc", "score:double=inf", "score:double=nan",
                      "score:double=1e999", "premium:bool=yes", "premium:bool=1", "avatar:bytes=a",
                      "avatar:bytes=a*==", "avatar:bytes=aGk==", "emb:float_vector=0.1,,0.2",
                      "emb:float_vector=0.1,x", "emb:float_vector=1e99", "emb:float_vector=0.1,",
                      "signup:timestamp=yesterday", "x:uuid=1", "x:=1"));

TEST(CliValueParserTest, ParseUint32RejectsNegativeAndOverflow) {
  EXPECT_THAT(ParseUint32("-1", "--limit"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseUint32("4294967296", "--limit"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(*ParseUint32("4294967295", "--limit"), 4294967295u);
}

}  // namespace
}  // namespace ods::cli
