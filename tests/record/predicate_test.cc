// Predicates of tiering rules: parsing (ods/common/predicate.h) and evaluation on records
// (ods/record/predicate_eval.h).

#include "ods/common/predicate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "ods/record/predicate_eval.h"
#include "support/test_util.h"

namespace ods::record {
namespace {

using ::ods::testing::IsOk;
using ::testing::HasSubstr;

Predicate Parse(std::string_view text) {
  size_t offset = 0;
  Result<Predicate> p = ParsePredicate(text, offset);
  EXPECT_THAT(p, IsOk()) << text;
  return p.ok() ? *p : Predicate();
}

// The error message and offset of a predicate that does not parse.
std::pair<std::string, size_t> ParseError(std::string_view text) {
  size_t offset = 999;
  Result<Predicate> p = ParsePredicate(text, offset);
  EXPECT_FALSE(p.ok()) << text;
  return {p.ok() ? std::string() : p.status().message(), offset};
}

Record R() {
  Record r;
  r.fields = {{"plan", std::string("pro")},  {"score", 0.75},
              {"visits", int64_t{12}},        {"active", true},
              {"blob", Bytes{"ab"}},          {"seen", Timestamp{1'000}},
              {"vec", std::vector<float>{1}}};
  return r;
}

TEST(PredicateTest, ComparisonsOfEveryType) {
  const Record r = R();
  EXPECT_TRUE(Matches(Parse("plan == 'pro'"), r));
  EXPECT_FALSE(Matches(Parse("plan != \"pro\""), r));
  EXPECT_TRUE(Matches(Parse("plan < 'zzz'"), r));
  EXPECT_TRUE(Matches(Parse("score >= 0.75"), r));
  EXPECT_FALSE(Matches(Parse("score > 0.75"), r));
  EXPECT_TRUE(Matches(Parse("visits > 11.5"), r));
  EXPECT_TRUE(Matches(Parse("visits <= 12"), r));
  EXPECT_TRUE(Matches(Parse("score < 1"), r)) << "double against an integer literal";
  EXPECT_TRUE(Matches(Parse("active == true"), r));
  EXPECT_FALSE(Matches(Parse("active > false"), r)) << "bools only compare for equality";
  EXPECT_TRUE(Matches(Parse("blob == 'ab'"), r));
  EXPECT_TRUE(Matches(Parse("seen == 1000"), r));
  EXPECT_TRUE(Matches(Parse("visits in [1, 12, 40]"), r));
  EXPECT_FALSE(Matches(Parse("plan in ['free', 'trial']"), r));
  EXPECT_FALSE(Matches(Parse("vec == 1"), r));
}

TEST(PredicateTest, MissingFieldsAndMismatchedTypesNeverHold) {
  const Record r = R();
  EXPECT_FALSE(Matches(Parse("nope == 1"), r));
  EXPECT_FALSE(Matches(Parse("nope != 1"), r)) << "absent is not 'different'";
  EXPECT_FALSE(Matches(Parse("plan == 3"), r));
  EXPECT_FALSE(Matches(Parse("plan != 3"), r));
  EXPECT_FALSE(Matches(Parse("visits == 'twelve'"), r));
}

TEST(PredicateTest, AndBindsTighterThanOrAndParenthesesGroup) {
  const Record r = R();
  EXPECT_TRUE(Matches(Parse("plan == 'free' and visits > 100 or score > 0.5"), r));
  EXPECT_FALSE(Matches(Parse("plan == 'free' and (visits > 100 or score > 0.5)"), r));
  const Predicate p = Parse("a == 1 or b == 2 and c == 3 or d == 4");
  ASSERT_EQ(p.op, Predicate::Op::kOr);
  ASSERT_EQ(p.children.size(), 3u);
  EXPECT_EQ(p.children[1].op, Predicate::Op::kAnd);
  EXPECT_EQ(p.children[2].offset, 31u);  // where "d == 4" starts
}

TEST(PredicateTest, ErrorsSayWhatWasExpectedAndWhere) {
  auto [m1, o1] = ParseError("plan == ");
  EXPECT_THAT(m1, HasSubstr("expected a value"));
  EXPECT_EQ(o1, 8u);
  auto [m2, o2] = ParseError("plan = 'x'");
  EXPECT_THAT(m2, HasSubstr("expected ==, !=, <, <=, >, >= or 'in'"));
  EXPECT_EQ(o2, 5u);
  auto [m3, o3] = ParseError("plan == 'x' and");
  EXPECT_THAT(m3, HasSubstr("expected a field name"));
  EXPECT_EQ(o3, 15u);
  auto [m4, o4] = ParseError("(plan == 'x'");
  EXPECT_THAT(m4, HasSubstr("expected ')'"));
  auto [m5, o5] = ParseError("plan == 'x");
  EXPECT_THAT(m5, HasSubstr("unterminated string"));
  EXPECT_EQ(o5, 8u);
  auto [m6, o6] = ParseError("plan in ['a' 'b']");
  EXPECT_THAT(m6, HasSubstr("expected ',' or ']'"));
  auto [m7, o7] = ParseError("plan == 'a' plan");
  EXPECT_THAT(m7, HasSubstr("expected 'and', 'or' or the end"));
  EXPECT_EQ(o7, 12u);
  auto [m8, o8] = ParseError("x == abc");
  EXPECT_THAT(m8, HasSubstr("found 'abc'"));
  auto [m9, o9] = ParseError("");
  EXPECT_THAT(m9, HasSubstr("expected a field name"));
  (void)o4;
  (void)o6;
  (void)o8;
  (void)o9;
}

TEST(PredicateTest, DeepNestingAndLongTextAreRefused) {
  std::string deep(100, '(');
  deep += "a == 1";
  deep += std::string(100, ')');
  EXPECT_THAT(ParseError(deep).first, HasSubstr("nested more than 64 levels"));
  std::string longtext = "a == 1";
  while (longtext.size() <= 4096) longtext += " or a == 1";
  EXPECT_THAT(ParseError(longtext).first, HasSubstr("longer than 4096 bytes"));
}

TEST(PredicateTest, ComparableMatchesWhatEvaluationCanEverAccept) {
  EXPECT_TRUE(PredicateComparable(ValueType::kDouble, Predicate::Op::kLt, int64_t{1}));
  EXPECT_TRUE(PredicateComparable(ValueType::kTimestamp, Predicate::Op::kGe, 1.5));
  EXPECT_FALSE(PredicateComparable(ValueType::kInt64, Predicate::Op::kEq, std::string("1")));
  EXPECT_TRUE(PredicateComparable(ValueType::kBytes, Predicate::Op::kIn, std::string("x")));
  EXPECT_FALSE(PredicateComparable(ValueType::kBool, Predicate::Op::kLt, true));
  EXPECT_TRUE(PredicateComparable(ValueType::kBool, Predicate::Op::kNe, false));
  EXPECT_FALSE(PredicateComparable(ValueType::kFloatVector, Predicate::Op::kEq, 1.0));
}

}  // namespace
}  // namespace ods::record
