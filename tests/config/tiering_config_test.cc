// Tiering rules in the config (issue #6 point 3): what parses, and every error with its
// FILE:LINE:COLUMN.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "ods/config/config.h"
#include "support/test_util.h"

namespace ods::config {
namespace {

using ::ods::testing::IsOk;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string Error(std::string_view yaml) {
  Result<Config> r = LoadString(yaml, "t.yaml");
  EXPECT_FALSE(r.ok()) << yaml;
  return r.ok() ? std::string() : r.status().message();
}

constexpr std::string_view kStorage = R"y(storage:
  durability: async
  backing: {kind: directory}
)y";

TEST(TieringConfigTest, RulesParseInFileOrderWithTheirConditions) {
  const std::string yaml = std::string(kStorage) + R"y(tables:
  users:
    key: user_id
    fields: {plan: string, score: double, active: bool}
    tiering:
      - {to: ram, when: {field: "plan == 'pro' or (score >= 0.5 and active == true)"}}
      - {to: ssd, when: {idle_for: 1h}}
      - {to: backing, when: {age: 30d, field: "plan in ['free', 'trial']"}}
      - {to: ssd}
    promote: {after_hits: 3}
)y";
  Result<Config> c = LoadString(yaml, "t.yaml");
  ASSERT_THAT(c, IsOk());
  const TableConfig& t = c->tables.at(0);
  ASSERT_EQ(t.tiering.size(), 4u);
  EXPECT_EQ(t.tiering[0].to, StorageTier::kRam);
  ASSERT_TRUE(t.tiering[0].field.has_value());
  EXPECT_EQ(t.tiering[0].field->op, Predicate::Op::kOr);
  EXPECT_EQ(t.tiering[0].field_text, "plan == 'pro' or (score >= 0.5 and active == true)");
  EXPECT_EQ(t.tiering[1].to, StorageTier::kSsd);
  EXPECT_EQ(t.tiering[1].idle_for_micros, Micros{3600} * 1'000'000);
  EXPECT_FALSE(t.tiering[1].field.has_value());
  EXPECT_EQ(t.tiering[2].to, StorageTier::kBacking);
  EXPECT_EQ(t.tiering[2].age_micros, Micros{30} * 86'400 * 1'000'000);
  EXPECT_EQ(t.tiering[2].field->op, Predicate::Op::kIn);
  EXPECT_EQ(t.tiering[2].field->literals.size(), 2u);
  EXPECT_EQ(t.tiering[3].idle_for_micros, 0);
  EXPECT_EQ(t.tiering[2].position, "t.yaml:11:9");
  EXPECT_EQ(t.promote, Promote::kAfterHits);
  EXPECT_EQ(t.promote_after_hits, 3u);
}

TEST(TieringConfigTest, PromoteDefaultsToOnAccessAndAcceptsNever) {
  Result<Config> c = LoadString(std::string(kStorage) + R"y(tables:
  a: {key: id}
  b: {key: id, promote: never}
)y", "t.yaml");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->tables[0].promote, Promote::kOnAccess);
  EXPECT_TRUE(c->tables[0].tiering.empty());
  EXPECT_EQ(c->tables[1].promote, Promote::kNever);
}

TEST(TieringConfigTest, ABadPredicateIsRejectedAtItsColumn) {
  // The problem is at offset 8 of the predicate, which starts at column 34 (inside quotes).
  const std::string e = Error(std::string(kStorage) + R"y(tables:
  users:
    key: id
    tiering:
      - {to: ssd, when: {field: "plan == and"}}
)y");
  EXPECT_THAT(e, StartsWith("t.yaml:8:42: "));
  EXPECT_THAT(e, HasSubstr("tables.users.tiering[0].when.field"));
  EXPECT_THAT(e, HasSubstr("expected a value"));
}

TEST(TieringConfigTest, UnknownFieldsAndTypeMismatchesOfTypedTablesAreRejected) {
  const std::string e = Error(std::string(kStorage) + R"y(tables:
  users:
    key: id
    fields: {plan: string, score: double, vec: float_vector}
    tiering:
      - {to: ssd, when: {field: "plna == 'pro'"}}
      - {to: ssd, when: {field: "score > 'high'"}}
      - {to: ssd, when: {field: "plan == 'x' and vec == 1"}}
      - {to: ssd, when: {field: "id == 'k'"}}
)y");
  EXPECT_THAT(e, HasSubstr("t.yaml:9:34: tables.users.tiering[0].when.field: unknown field 'plna'"));
  EXPECT_THAT(e, HasSubstr("t.yaml:10:34: tables.users.tiering[1].when.field: field 'score' is "
                           "double; '>' with this value can never hold"));
  EXPECT_THAT(e, HasSubstr("t.yaml:11:50: tables.users.tiering[2].when.field: field 'vec'"));
  EXPECT_THAT(e, HasSubstr("t.yaml:12:34: tables.users.tiering[3].when.field: 'id' is the "
                           "table's key"));
}

TEST(TieringConfigTest, BadRuleShapesAreRejectedWithTheirPositions) {
  const std::string e = Error(std::string(kStorage) + R"y(tables:
  users:
    key: id
    tiering:
      - {to: disk}
      - {when: {idle_for: 1h}}
      - {to: ssd, when: {idle_for: 1ms}}
      - {to: ssd, when: {idel_for: 1h}}
      - {to: ssd, if: {age: 1d}}
    promote: sometimes
)y");
  EXPECT_THAT(e, HasSubstr("t.yaml:8:14: tables.users.tiering[0].to: unknown value 'disk'"));
  EXPECT_THAT(e, HasSubstr("t.yaml:9:9: tables.users.tiering[1]: missing 'to'"));
  EXPECT_THAT(e, HasSubstr("t.yaml:10:36: tables.users.tiering[2].when.idle_for: 1ms is too "
                           "short"));
  EXPECT_THAT(e, HasSubstr("t.yaml:11:26: unknown key 'idel_for'"));
  EXPECT_THAT(e, HasSubstr("t.yaml:12:19: unknown key 'if'"));
  EXPECT_THAT(e, HasSubstr("t.yaml:13:14: tables.users.promote: unknown value 'sometimes'"));
}

TEST(TieringConfigTest, MovingBelowRamNeedsADurableTableAndBackingNeedsAStore) {
  const std::string e = Error(R"y(storage:
  durability: none
tables:
  ram_only:
    key: id
    tiering: [{to: ssd, when: {idle_for: 1h}}]
  durable:
    key: id
    durability: async
    tiering: [{to: backing, when: {age: 1d}}]
)y");
  EXPECT_THAT(e, HasSubstr("t.yaml:6:20: tables.ram_only.tiering: to: ssd needs the table to be "
                           "durable"));
  EXPECT_THAT(e, HasSubstr("t.yaml:10:20: tables.durable.tiering: to: backing needs "
                           "storage.backing"));
}

TEST(TieringConfigTest, TransientRulesNeedNoTargetAndRefuseIdleForAndLowerTiers) {
  Result<Config> c = LoadString(std::string(kStorage) + R"y(tables:
  users:
    key: id
    tiering: [{transient: true, when: {field: "plan == 'scratch'"}}]
)y", "t.yaml");
  ASSERT_THAT(c, IsOk());
  EXPECT_TRUE(c->tables[0].tiering[0].transient);
  EXPECT_EQ(c->tables[0].tiering[0].to, StorageTier::kRam);
  const std::string e = Error(std::string(kStorage) + R"y(tables:
  users:
    key: id
    tiering:
      - {transient: true, to: ssd}
      - {transient: true, when: {idle_for: 1h}}
)y");
  EXPECT_THAT(e, HasSubstr("t.yaml:8:21: tables.users.tiering[0].transient: a transient record "
                           "stays in RAM"));
  EXPECT_THAT(e, HasSubstr("t.yaml:9:21: tables.users.tiering[1].transient: cannot be combined "
                           "with when.idle_for"));
}

TEST(TieringConfigTest, TieringMustBeAList) {
  const std::string e = Error(std::string(kStorage) + R"y(tables:
  users:
    key: id
    tiering: {to: ssd}
)y");
  EXPECT_THAT(e, StartsWith("t.yaml:7:14: tables.users.tiering: expected a list of rules"));
}

}  // namespace
}  // namespace ods::config
