#include "ods/record/schema.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "support/test_util.h"

namespace ods::record {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;
using ::testing::HasSubstr;

TableSchema Typed() {
  return TableSchema("user_profile", "user_id",
                     {{"age", ValueType::kInt64},
                      {"country", ValueType::kString},
                      {"score", ValueType::kDouble},
                      {"embedding", ValueType::kFloatVector}},
                     /*free_form=*/false, /*ttl_micros=*/0);
}

TableSchema FreeForm() { return TableSchema("features", "user_id", {}, true, 0); }

Record Of(std::vector<Field> fields) {
  Record r;
  r.fields = std::move(fields);
  return r;
}

TEST(TableSchemaTest, AccessorsReturnConstructorArguments) {
  TableSchema s("t", "id", {{"a", ValueType::kBool}}, false, 1234);
  EXPECT_EQ(s.name(), "t");
  EXPECT_EQ(s.key_field(), "id");
  ASSERT_EQ(s.fields().size(), 1u);
  EXPECT_EQ(s.fields()[0].name, "a");
  EXPECT_EQ(s.fields()[0].type, ValueType::kBool);
  EXPECT_FALSE(s.free_form());
  EXPECT_EQ(s.ttl_micros(), 1234);
}

TEST(TableSchemaTest, FieldIndexIsTheDeclarationOrder) {
  const TableSchema s = Typed();
  EXPECT_EQ(s.FieldIndex("age"), 0u);
  EXPECT_EQ(s.FieldIndex("country"), 1u);
  EXPECT_EQ(s.FieldIndex("score"), 2u);
  EXPECT_EQ(s.FieldIndex("embedding"), 3u);
  EXPECT_EQ(s.FieldIndex("ag"), std::nullopt);
  EXPECT_EQ(s.FieldIndex("agex"), std::nullopt);
  EXPECT_EQ(s.FieldIndex("zzz"), std::nullopt);
  EXPECT_EQ(s.FieldIndex(""), std::nullopt);
}

TEST(TableSchemaTest, RecordWithDeclaredFieldsIsValid) {
  EXPECT_THAT(Typed().Validate("u1", Of({{"age", int64_t{30}},
                                          {"country", std::string("NZ")},
                                          {"score", 0.5},
                                          {"embedding", std::vector<float>{1, 2}}})),
              IsOk());
}

TEST(TableSchemaTest, SubsetOfDeclaredFieldsIsValid) {
  EXPECT_THAT(Typed().Validate("u1", Of({{"country", std::string("NZ")}})), IsOk());
  EXPECT_THAT(Typed().Validate("u1", Of({})), IsOk());
}

TEST(TableSchemaTest, UnknownFieldIsRejectedNamingTableKeyAndField) {
  Status s = Typed().Validate("u1", Of({{"age", int64_t{1}}, {"height", int64_t{180}}}));
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(s.message(), HasSubstr("'user_profile'"));
  EXPECT_THAT(s.message(), HasSubstr("'u1'"));
  EXPECT_THAT(s.message(), HasSubstr("'height'"));
}

TEST(TableSchemaTest, KeyFieldIsNotARecordField) {
  EXPECT_THAT(Typed().Validate("u1", Of({{"user_id", std::string("u1")}})),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(TableSchemaTest, WrongTypeIsRejectedNamingBothTypes) {
  Status s = Typed().Validate("u1", Of({{"age", std::string("thirty")}}));
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(s.message(), HasSubstr("'age'"));
  EXPECT_THAT(s.message(), HasSubstr("string"));
  EXPECT_THAT(s.message(), HasSubstr("int64"));
}

TEST(TableSchemaTest, IntegerIsNotAcceptedForDouble) {
  Status s = Typed().Validate("u1", Of({{"score", int64_t{1}}}));
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(s.message(), HasSubstr("double"));
  EXPECT_THAT(s.message(), HasSubstr("int64"));
}

TEST(TableSchemaTest, DuplicateFieldIsRejected) {
  Status s = Typed().Validate("u1", Of({{"age", int64_t{1}}, {"age", int64_t{2}}}));
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(s.message(), HasSubstr("'age'"));
}

TEST(TableSchemaTest, DuplicateFieldIsRejectedInFreeForm) {
  EXPECT_THAT(FreeForm().Validate("u1", Of({{"x", int64_t{1}}, {"x", std::string("2")}})),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(TableSchemaTest, DuplicateAmongManyFieldsIsRejected) {
  std::vector<Field> fields;
  for (int i = 0; i < 40; ++i) fields.push_back({"f" + std::to_string(i), int64_t{i}});
  EXPECT_THAT(FreeForm().Validate("k", Of(fields)), ods::testing::IsOk());
  fields.push_back({"f7", int64_t{7}});
  EXPECT_THAT(FreeForm().Validate("k", Of(fields)),
              ods::testing::StatusIs(StatusCode::kInvalidArgument));
}

TEST(TableSchemaTest, NanDoubleIsRejected) {
  Status s = Typed().Validate("u1", Of({{"score", std::numeric_limits<double>::quiet_NaN()}}));
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(s.message(), HasSubstr("'score'"));
}

TEST(TableSchemaTest, InfiniteDoubleIsRejected) {
  EXPECT_THAT(Typed().Validate("u1", Of({{"score", -std::numeric_limits<double>::infinity()}})),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(TableSchemaTest, NanInsideFloatVectorIsRejected) {
  EXPECT_THAT(Typed().Validate(
                  "u1", Of({{"embedding",
                             std::vector<float>{1.0f, std::numeric_limits<float>::quiet_NaN()}}})),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(FreeForm().Validate(
                  "u1", Of({{"v", std::vector<float>{std::numeric_limits<float>::infinity()}}})),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(TableSchemaTest, NanIsRejectedInFreeForm) {
  EXPECT_THAT(FreeForm().Validate("u1", Of({{"x", std::nan("")}})),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(TableSchemaTest, FreeFormAcceptsAnyWellFormedFieldOfAnyType) {
  EXPECT_THAT(FreeForm().Validate("u1", Of({{"a", int64_t{-1}},
                                            {"b", 2.5},
                                            {"c", false},
                                            {"d", std::string()},
                                            {"e", Bytes{std::string("\x00\xff", 2)}},
                                            {"f", std::vector<float>{}},
                                            {"g", Timestamp{0}},
                                            {"_under", int64_t{0}},
                                            {std::string(kMaxFieldNameBytes, 'z'), true}})),
              IsOk());
}

TEST(TableSchemaTest, BadFieldNamesAreRejected) {
  for (const std::string& name :
       {std::string(""), std::string("1abc"), std::string("a-b"), std::string("a b"),
        std::string("a.b"), std::string(kMaxFieldNameBytes + 1, 'z'), std::string("\xc3\xa9t\xc3\xa9")}) {
    Status s = FreeForm().Validate("u1", Of({{name, int64_t{1}}}));
    EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument)) << name;
    EXPECT_THAT(s.message(), HasSubstr("'features'")) << name;
  }
}

}  // namespace
}  // namespace ods::record
