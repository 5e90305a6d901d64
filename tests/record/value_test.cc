#include "ods/record/value.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ods::record {
namespace {

TEST(ValueTest, TypeOfFollowsTheValueTypeNumbering) {
  EXPECT_EQ(TypeOf(Value(int64_t{1})), ValueType::kInt64);
  EXPECT_EQ(TypeOf(Value(1.5)), ValueType::kDouble);
  EXPECT_EQ(TypeOf(Value(true)), ValueType::kBool);
  EXPECT_EQ(TypeOf(Value(std::string("s"))), ValueType::kString);
  EXPECT_EQ(TypeOf(Value(Bytes{"b"})), ValueType::kBytes);
  EXPECT_EQ(TypeOf(Value(std::vector<float>{1.0f})), ValueType::kFloatVector);
  EXPECT_EQ(TypeOf(Value(Timestamp{5})), ValueType::kTimestamp);
}

TEST(RecordTest, FindReturnsTheNamedFieldOrNull) {
  Record r;
  r.fields.push_back({"age", int64_t{42}});
  r.fields.push_back({"country", std::string("NZ")});
  const Value* age = r.Find("age");
  ASSERT_NE(age, nullptr);
  EXPECT_EQ(std::get<int64_t>(*age), 42);
  const Value* country = r.Find("country");
  ASSERT_NE(country, nullptr);
  EXPECT_EQ(std::get<std::string>(*country), "NZ");
  EXPECT_EQ(r.Find("missing"), nullptr);
  EXPECT_EQ(r.Find(""), nullptr);
}

TEST(RecordTest, StringAndBytesWithSameContentDiffer) {
  EXPECT_NE(Value(std::string("x")), Value(Bytes{"x"}));
  EXPECT_NE(Value(int64_t{5}), Value(Timestamp{5}));
}

}  // namespace
}  // namespace ods::record
