#include "ods/common/value_type.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace ods {
namespace {

constexpr ValueType kAllTypes[] = {ValueType::kInt64,  ValueType::kDouble, ValueType::kBool,
                                   ValueType::kString, ValueType::kBytes,  ValueType::kFloatVector,
                                   ValueType::kTimestamp};

TEST(ValueTypeTest, NumbersAreStableBecauseTheyAreStoredInRecords) {
  EXPECT_EQ(static_cast<int>(ValueType::kInt64), 1);
  EXPECT_EQ(static_cast<int>(ValueType::kDouble), 2);
  EXPECT_EQ(static_cast<int>(ValueType::kBool), 3);
  EXPECT_EQ(static_cast<int>(ValueType::kString), 4);
  EXPECT_EQ(static_cast<int>(ValueType::kBytes), 5);
  EXPECT_EQ(static_cast<int>(ValueType::kFloatVector), 6);
  EXPECT_EQ(static_cast<int>(ValueType::kTimestamp), 7);
}

TEST(ValueTypeTest, NamesAreTheConfigSpellings) {
  EXPECT_EQ(ValueTypeName(ValueType::kInt64), "int64");
  EXPECT_EQ(ValueTypeName(ValueType::kDouble), "double");
  EXPECT_EQ(ValueTypeName(ValueType::kBool), "bool");
  EXPECT_EQ(ValueTypeName(ValueType::kString), "string");
  EXPECT_EQ(ValueTypeName(ValueType::kBytes), "bytes");
  EXPECT_EQ(ValueTypeName(ValueType::kFloatVector), "float_vector");
  EXPECT_EQ(ValueTypeName(ValueType::kTimestamp), "timestamp");
}

TEST(ValueTypeTest, ParseIsInverseOfName) {
  for (ValueType t : kAllTypes) {
    std::optional<ValueType> parsed = ParseValueType(ValueTypeName(t));
    ASSERT_TRUE(parsed.has_value()) << ValueTypeName(t);
    EXPECT_EQ(*parsed, t);
  }
}

TEST(ValueTypeTest, ParseRejectsOtherText) {
  EXPECT_FALSE(ParseValueType("int").has_value());
  EXPECT_FALSE(ParseValueType("INT64").has_value());
  EXPECT_FALSE(ParseValueType("").has_value());
  EXPECT_FALSE(ParseValueType("unknown").has_value());
}

TEST(ValueTypeTest, OutOfRangeValueHasPlaceholderName) {
  EXPECT_EQ(ValueTypeName(static_cast<ValueType>(0)), "");
  EXPECT_EQ(ValueTypeName(static_cast<ValueType>(200)), "unknown");
}

TEST(ValueTypeTest, NameListNamesEveryType) {
  const std::string list(ValueTypeNameList());
  for (ValueType t : kAllTypes) {
    EXPECT_NE(list.find(ValueTypeName(t)), std::string::npos) << ValueTypeName(t);
  }
}

}  // namespace
}  // namespace ods
