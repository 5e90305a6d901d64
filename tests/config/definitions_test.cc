// Tests of the event_templates and aggregations sections (LoadString, LoadFile, LoadDefinitions).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/clock.h"
#include "ods/config/config.h"
#include "support/test_util.h"

namespace ods::config {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;

constexpr Micros kSecond = 1'000'000;
constexpr Micros kMinute = 60 * kSecond;
constexpr Micros kHour = 60 * kMinute;
constexpr Micros kDay = 24 * kHour;

// The error message of loading `yaml` as "test.yaml"; fails the test if it loads.
std::string LoadError(std::string_view yaml) {
  Result<Config> r = LoadString(yaml, "test.yaml");
  EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  return r.ok() ? std::string() : r.status().message();
}

// As LoadError, for LoadDefinitions.
std::string DefinitionsError(std::string_view yaml,
                             std::span<const EventTemplateConfig> known = {}) {
  Result<Definitions> r = LoadDefinitions(yaml, "apply.yaml", known);
  EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  return r.ok() ? std::string() : r.status().message();
}

// A template on lines 1-2; an aggregation appended after it starts on line 4 (name at column 3).
constexpr std::string_view kTemplate = R"(event_templates:
  tx: {key: user_id, timestamp: ts, fields: {amount: double, merchant: string}}
aggregations:
)";

std::string WithTemplate(std::string_view aggregations) {
  return std::string(kTemplate) + std::string(aggregations);
}

// --- Event templates ---------------------------------------------------------------------------

TEST(EventTemplateTest, EveryKeyIsParsedIntoItsField) {
  Result<Config> r = LoadString(R"(event_templates:
  transactions:
    key: user_id
    timestamp: ts
    fields: {amount: double, merchant: string, tags: bytes}
    allowed_lateness: 2h
    max_future: 30s
    history_retention: 14d
    dedup_window: 5m
    history_ssd_after: 1d
    tiles_ssd_after: 7d
)",
                                "test.yaml");
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->definitions.event_templates.size(), 1u);
  const EventTemplateConfig& t = r->definitions.event_templates[0];
  EXPECT_EQ(t.name, "transactions");
  EXPECT_EQ(t.key_field, "user_id");
  EXPECT_EQ(t.timestamp_field, "ts");
  ASSERT_EQ(t.fields.size(), 3u);
  EXPECT_EQ(t.fields[0].name, "amount");
  EXPECT_EQ(t.fields[0].type, ValueType::kDouble);
  EXPECT_EQ(t.fields[1].name, "merchant");
  EXPECT_EQ(t.fields[1].type, ValueType::kString);
  EXPECT_EQ(t.fields[2].name, "tags");
  EXPECT_EQ(t.fields[2].type, ValueType::kBytes);
  EXPECT_EQ(t.allowed_lateness_micros, 2 * kHour);
  EXPECT_EQ(t.max_future_micros, 30 * kSecond);
  EXPECT_EQ(t.history_retention_micros, 14 * kDay);
  EXPECT_EQ(t.dedup_window_micros, 5 * kMinute);
  EXPECT_EQ(t.history_ssd_after_micros, kDay);
  EXPECT_EQ(t.tiles_ssd_after_micros, 7 * kDay);
  EXPECT_EQ(t.position, "test.yaml:2:3");
  EXPECT_TRUE(r->definitions.aggregations.empty());
}

TEST(EventTemplateTest, OmittedKeysTakeTheirDefaults) {
  Result<Config> r =
      LoadString("event_templates:\n  clicks: {key: user_id, timestamp: ts}\n", "test.yaml");
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->definitions.event_templates.size(), 1u);
  const EventTemplateConfig& t = r->definitions.event_templates[0];
  EXPECT_TRUE(t.fields.empty());
  EXPECT_EQ(t.allowed_lateness_micros, kHour);
  EXPECT_EQ(t.max_future_micros, kMinute);
  EXPECT_EQ(t.history_retention_micros, 7 * kDay);
  EXPECT_EQ(t.dedup_window_micros, 10 * kMinute);
  EXPECT_EQ(t.history_ssd_after_micros, 0);
  EXPECT_EQ(t.tiles_ssd_after_micros, 0);
  EXPECT_EQ(t.position, "test.yaml:2:3");
}

TEST(EventTemplateTest, HistorySsdAfterMustBeAtLeastASecondAndShorterThanTheRetention) {
  EXPECT_EQ(LoadError("event_templates:\n  tx: {key: id, timestamp: ts, history_retention: 7d, "
                      "history_ssd_after: 7d}\n"),
            "test.yaml:2:74: event_templates.tx.history_ssd_after: must be shorter than "
            "history_retention (7d): events older than the retention are not kept anywhere");
  EXPECT_EQ(LoadError("event_templates:\n  tx: {key: id, timestamp: ts, history_ssd_after: 500ms}\n"),
            "test.yaml:2:51: event_templates.tx.history_ssd_after: too short; expected at least 1s");
  EXPECT_THAT(LoadError("event_templates:\n  tx: {key: id, timestamp: ts, history_ssd_after: soon}\n"),
              ::testing::HasSubstr("test.yaml:2:51: event_templates.tx.history_ssd_after"));
}

TEST(EventTemplateTest, TilesSsdAfterMustBeAtLeastASecondAndLongerThanTheLateness) {
  EXPECT_EQ(LoadError("event_templates:\n  tx: {key: id, timestamp: ts, allowed_lateness: 2h, "
                      "tiles_ssd_after: 2h}\n"),
            "test.yaml:2:71: event_templates.tx.tiles_ssd_after: must be longer than "
            "allowed_lateness (2h): a late event must never land in a tile already below RAM");
  EXPECT_EQ(LoadError("event_templates:\n  tx: {key: id, timestamp: ts, allowed_lateness: 0s, "
                      "tiles_ssd_after: 10ms}\n"),
            "test.yaml:2:71: event_templates.tx.tiles_ssd_after: too short; expected at least 1s");
  EXPECT_THAT(LoadError("event_templates:\n  tx: {key: id, timestamp: ts, tiles_ssd_after: -1d}\n"),
              ::testing::HasSubstr("test.yaml:2:49: event_templates.tx.tiles_ssd_after"));
}

TEST(EventTemplateTest, NoSectionsGiveNoDefinitions) {
  Result<Config> r = LoadString("event_templates:\naggregations:\n", "test.yaml");
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->definitions.event_templates.empty());
  EXPECT_TRUE(r->definitions.aggregations.empty());
}

TEST(EventTemplateTest, EmptyFieldsMapMakesACountOnlyTemplate) {
  Result<Config> r =
      LoadString("event_templates:\n  t: {key: id, timestamp: ts, fields: {}}\n", "test.yaml");
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->definitions.event_templates[0].fields.empty());
}

TEST(EventTemplateTest, TemplatesKeepFileOrder) {
  Result<Config> r = LoadString(R"(event_templates:
  zebra: {key: id, timestamp: ts}
  alpha: {key: id, timestamp: ts}
)",
                                "test.yaml");
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->definitions.event_templates.size(), 2u);
  EXPECT_EQ(r->definitions.event_templates[0].name, "zebra");
  EXPECT_EQ(r->definitions.event_templates[0].position, "test.yaml:2:3");
  EXPECT_EQ(r->definitions.event_templates[1].name, "alpha");
  EXPECT_EQ(r->definitions.event_templates[1].position, "test.yaml:3:3");
}

TEST(EventTemplateTest, BadNameIsRejected) {
  EXPECT_EQ(LoadError("event_templates:\n  9tx: {key: id, timestamp: ts}\n"),
            "test.yaml:2:3: bad event template name '9tx'; expected letters, digits and _, "
            "starting with a letter or _, at most 64 bytes");
}

TEST(EventTemplateTest, DuplicateNameIsRejectedAtTheSecondOccurrence) {
  EXPECT_EQ(LoadError(R"(event_templates:
  tx: {key: id, timestamp: ts}
  tx: {key: id, timestamp: ts}
)"),
            "test.yaml:3:3: duplicate key 'tx' in event_templates");
}

TEST(EventTemplateTest, MissingKeyAndTimestampAreReportedAtTheName) {
  EXPECT_EQ(LoadError("event_templates:\n  tx:\n    fields: {a: int64}\n"),
            "test.yaml:2:3: event_templates.tx: missing 'key' (the event field holding the "
            "entity key, e.g. key: user_id)\n"
            "test.yaml:2:3: event_templates.tx: missing 'timestamp' (the event field holding the "
            "event time, e.g. timestamp: ts)");
}

TEST(EventTemplateTest, BadKeyAndTimestampNamesAreRejected) {
  EXPECT_EQ(LoadError(R"(event_templates:
  tx:
    key: user.id
    timestamp: "event time"
)"),
            "test.yaml:3:10: event_templates.tx.key: bad field name 'user.id'; expected letters, "
            "digits and _, starting with a letter or _\n"
            "test.yaml:4:16: event_templates.tx.timestamp: bad field name 'event time'; expected "
            "letters, digits and _, starting with a letter or _");
}

TEST(EventTemplateTest, NonStringKeyIsRejectedOnce) {
  EXPECT_EQ(LoadError("event_templates:\n  tx:\n    key: [a]\n    timestamp: ts\n"),
            "test.yaml:3:10: event_templates.tx.key: expected a string, found a list");
}

TEST(EventTemplateTest, TimestampEqualToKeyIsRejected) {
  EXPECT_EQ(LoadError(R"(event_templates:
  tx:
    timestamp: id
    key: id
)"),
            "test.yaml:3:16: event_templates.tx.timestamp: 'id' is also the key; expected a "
            "field other than the key");
}

TEST(EventTemplateTest, KeyOrTimestampRedeclaredAmongFieldsIsRejected) {
  EXPECT_EQ(LoadError(R"(event_templates:
  tx:
    fields: {user_id: string, amount: double, ts: timestamp}
    key: user_id
    timestamp: ts
)"),
            "test.yaml:3:14: event_templates.tx.fields.user_id: the key field must not be "
            "declared again among fields\n"
            "test.yaml:3:47: event_templates.tx.fields.ts: the timestamp field must not be "
            "declared again among fields");
}

TEST(EventTemplateTest, FieldsAreCheckedAsTablesFieldsAre) {
  EXPECT_EQ(LoadError(R"(event_templates:
  tx:
    key: id
    timestamp: ts
    fields: {amount: float, "bad name": int64}
)"),
            "test.yaml:5:22: event_templates.tx.fields.amount: unknown field type 'float'; "
            "expected one of: int64, double, bool, string, bytes, float_vector, timestamp\n"
            "test.yaml:5:29: bad field name 'bad name' in event_templates.tx.fields; expected "
            "letters, digits and _");
}

TEST(EventTemplateTest, UnknownKeyIsRejected) {
  EXPECT_EQ(LoadError("event_templates:\n  tx:\n    key: id\n    timestamp: ts\n    ttl: 1d\n"),
            "test.yaml:5:5: unknown key 'ttl' in event_templates.tx; expected one of: key, "
            "timestamp, fields, allowed_lateness, max_future, history_retention, dedup_window, "
            "history_ssd_after, tiles_ssd_after");
}

TEST(EventTemplateTest, SectionMustBeAMapping) {
  EXPECT_EQ(LoadError("event_templates: [tx]\n"),
            "test.yaml:1:18: event_templates: expected a mapping (key: value entries), found a "
            "list");
}

TEST(EventTemplateTest, DurationsOverTheirMaximumAreRejected) {
  EXPECT_EQ(LoadError(R"(event_templates:
  tx:
    key: id
    timestamp: ts
    allowed_lateness: 3651d
    max_future: 25h
    history_retention: 3651d
    dedup_window: 8d
)"),
            "test.yaml:5:23: event_templates.tx.allowed_lateness: 3651d is too long; expected at "
            "most 3650d\n"
            "test.yaml:6:17: event_templates.tx.max_future: 25h is too long; expected at most 1d\n"
            "test.yaml:7:24: event_templates.tx.history_retention: 3651d is too long; expected "
            "at most 3650d\n"
            "test.yaml:8:19: event_templates.tx.dedup_window: 8d is too long; expected at most "
            "7d");
}

TEST(EventTemplateTest, DurationBoundsAreInclusive) {
  Result<Config> r = LoadString(R"(event_templates:
  longest:
    key: id
    timestamp: ts
    allowed_lateness: 3650d
    max_future: 1d
    history_retention: 3650d
    dedup_window: 7d
  shortest:
    key: id
    timestamp: ts
    allowed_lateness: 0s
    max_future: 0s
    history_retention: 0s
    dedup_window: 0s
)",
                                "test.yaml");
  ASSERT_THAT(r, IsOk());
  const EventTemplateConfig& longest = r->definitions.event_templates[0];
  EXPECT_EQ(longest.allowed_lateness_micros, 3650 * kDay);
  EXPECT_EQ(longest.max_future_micros, kDay);
  EXPECT_EQ(longest.history_retention_micros, 3650 * kDay);
  EXPECT_EQ(longest.dedup_window_micros, 7 * kDay);
  const EventTemplateConfig& shortest = r->definitions.event_templates[1];
  EXPECT_EQ(shortest.allowed_lateness_micros, 0);
  EXPECT_EQ(shortest.max_future_micros, 0);
  EXPECT_EQ(shortest.history_retention_micros, 0);
  EXPECT_EQ(shortest.dedup_window_micros, 0);
}

TEST(EventTemplateTest, BadDurationIsRejected) {
  EXPECT_EQ(LoadError("event_templates:\n  tx: {key: id, timestamp: ts, max_future: soon}\n"),
            "test.yaml:2:44: event_templates.tx.max_future: bad duration 'soon': expected "
            "integers with units us, ms, s, m, h, d or w, e.g. 90d, 1h30m, 250ms");
}

// --- Aggregations: what is parsed ---------------------------------------------------------------

TEST(AggregationTest, TheDocumentedExampleParses) {
  Result<Config> r = LoadString(R"(tables:
  user_profile: {key: user_id, fields: {age: int64}, max_age: 1d}
event_templates:
  transactions:
    key: user_id
    timestamp: ts
    fields: {amount: double, merchant: string}
aggregations:
  txn_count:   {template: transactions, fn: count, windows: [1h, 24h, 7d]}
  txn_sum_7d:  {template: transactions, fn: sum, field: amount, window: 7d, tile: 1h, max_age: 2h}
  merchants:   {template: transactions, fn: distinct_count, field: merchant, window: 30d}
  top_merch:   {template: transactions, fn: top_k, field: merchant, k: 5, window: 7d}
  last_amts:   {template: transactions, fn: last_n, field: amount, n: 10, window: 1d}
)",
                                "test.yaml");
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->tables.size(), 1u);
  EXPECT_EQ(r->tables[0].max_age_micros, kDay);
  const std::vector<AggregationConfig>& a = r->definitions.aggregations;
  ASSERT_EQ(a.size(), 5u);

  EXPECT_EQ(a[0].name, "txn_count");
  EXPECT_EQ(a[0].template_name, "transactions");
  EXPECT_EQ(a[0].fn, "count");
  EXPECT_EQ(a[0].field, "");
  EXPECT_EQ(a[0].n, 0u);
  EXPECT_EQ(a[0].windows, (std::vector<Micros>{kHour, 24 * kHour, 7 * kDay}));
  EXPECT_EQ(a[0].tile_micros, 0);
  EXPECT_EQ(a[0].max_age_micros, 0);
  EXPECT_EQ(a[0].position, "test.yaml:9:3");

  EXPECT_EQ(a[1].name, "txn_sum_7d");
  EXPECT_EQ(a[1].fn, "sum");
  EXPECT_EQ(a[1].field, "amount");
  EXPECT_EQ(a[1].windows, std::vector<Micros>{7 * kDay});
  EXPECT_EQ(a[1].tile_micros, kHour);
  EXPECT_EQ(a[1].max_age_micros, 2 * kHour);
  EXPECT_EQ(a[1].position, "test.yaml:10:3");

  EXPECT_EQ(a[2].fn, "distinct_count");
  EXPECT_EQ(a[2].field, "merchant");
  EXPECT_EQ(a[2].windows, std::vector<Micros>{30 * kDay});

  EXPECT_EQ(a[3].fn, "top_k");
  EXPECT_EQ(a[3].n, 5u);  // k is stored in n
  EXPECT_EQ(a[3].windows, std::vector<Micros>{7 * kDay});

  EXPECT_EQ(a[4].fn, "last_n");
  EXPECT_EQ(a[4].field, "amount");
  EXPECT_EQ(a[4].n, 10u);
  EXPECT_EQ(a[4].windows, std::vector<Micros>{kDay});
  EXPECT_EQ(a[4].position, "test.yaml:13:3");
}

TEST(AggregationTest, EveryFnIsAccepted) {
  std::string yaml = WithTemplate("");
  for (const char* fn :
       {"sum", "min", "max", "mean", "stddev", "first", "last", "distinct_count"}) {
    yaml +=
        std::string("  a_") + fn + ": {template: tx, fn: " + fn + ", field: amount, window: 1h}\n";
  }
  yaml += "  a_count: {template: tx, fn: count, window: 1h}\n";
  yaml += "  a_last_n: {template: tx, fn: last_n, field: amount, n: 3, window: 1h}\n";
  yaml += "  a_top_k: {template: tx, fn: top_k, field: merchant, k: 3, window: 1h}\n";
  Result<Config> r = LoadString(yaml, "test.yaml");
  ASSERT_THAT(r, IsOk());
  std::set<std::string> fns;
  for (const AggregationConfig& a : r->definitions.aggregations) fns.insert(a.fn);
  EXPECT_EQ(fns, (std::set<std::string>{"count", "sum", "min", "max", "mean", "stddev", "first",
                                        "last", "last_n", "distinct_count", "top_k"}));
}

TEST(AggregationTest, AggregationMayComeBeforeItsTemplate) {
  Result<Config> r = LoadString(R"(aggregations:
  n: {template: tx, fn: count, window: 1h}
event_templates:
  tx: {key: id, timestamp: ts}
)",
                                "test.yaml");
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->definitions.aggregations.size(), 1u);
  EXPECT_EQ(r->definitions.aggregations[0].template_name, "tx");
}

TEST(AggregationTest, NamesMayCoincideWithATableName) {
  Result<Config> r = LoadString(R"(tables:
  user: {key: user_id}
event_templates:
  user: {key: user_id, timestamp: ts}
aggregations:
  user: {template: user, fn: count, window: 1h}
)",
                                "test.yaml");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->tables[0].name, "user");
  EXPECT_EQ(r->definitions.event_templates[0].name, "user");
  EXPECT_EQ(r->definitions.aggregations[0].name, "user");
}

TEST(AggregationTest, WindowAndTileBoundsAreInclusive) {
  Result<Config> r =
      LoadString(WithTemplate(R"(  longest: {template: tx, fn: count, window: 3650d, max_age: 3650d}
  shortest: {template: tx, fn: count, window: 1s, tile: 1s}
  most_tiles: {template: tx, fn: count, window: 100000s, tile: 1s}
  n_bounds: {template: tx, fn: last_n, field: amount, n: 1000, window: 1h}
)"),
                 "test.yaml");
  ASSERT_THAT(r, IsOk());
  const std::vector<AggregationConfig>& a = r->definitions.aggregations;
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(a[0].windows, std::vector<Micros>{3650 * kDay});
  EXPECT_EQ(a[0].max_age_micros, 3650 * kDay);
  EXPECT_EQ(a[1].windows, std::vector<Micros>{kSecond});
  EXPECT_EQ(a[1].tile_micros, kSecond);
  EXPECT_EQ(a[2].tile_micros, kSecond);
  EXPECT_EQ(a[3].n, 1000u);
}

TEST(AggregationTest, TileDividingEveryWindowIsAccepted) {
  Result<Config> r = LoadString(
      WithTemplate("  c: {template: tx, fn: count, windows: [1h, 24h, 7d], tile: 15m}\n"),
      "test.yaml");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->definitions.aggregations[0].tile_micros, 15 * kMinute);
}

// --- Aggregations: errors ----------------------------------------------------------------------

TEST(AggregationTest, BadNameIsRejected) {
  EXPECT_EQ(LoadError(WithTemplate("  txn-count: {template: tx, fn: count, window: 1h}\n")),
            "test.yaml:4:3: bad aggregation name 'txn-count'; expected letters, digits and _, "
            "starting with a letter or _, at most 64 bytes");
}

TEST(AggregationTest, DuplicateNameIsRejectedAtTheSecondOccurrence) {
  EXPECT_EQ(LoadError(WithTemplate(R"(  c: {template: tx, fn: count, window: 1h}
  c: {template: tx, fn: count, window: 2h}
)")),
            "test.yaml:5:3: duplicate key 'c' in aggregations");
}

TEST(AggregationTest, UnknownKeyIsRejected) {
  EXPECT_EQ(LoadError(WithTemplate("  c: {template: tx, fn: count, window: 1h, tiles: 1m}\n")),
            "test.yaml:4:44: unknown key 'tiles' in aggregations.c; expected one of: template, "
            "fn, function, field, n, k, window, windows, tile, max_age");
}

TEST(DerivedFeatureTest, FunctionTakesAListOfRefs) {
  Result<Definitions> d = LoadDefinitions(
      "features:\n  score: {function: blend, inputs: [spend@24h, 'profile:age']}\n", "apply.yaml",
      {});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->features.size(), 1u);
  EXPECT_EQ(d->features[0].function, "blend");
  EXPECT_EQ(d->features[0].fn, "");
  ASSERT_EQ(d->features[0].inputs.size(), 2u);
  EXPECT_EQ(d->features[0].inputs[1].ref, "profile:age");
  EXPECT_EQ(DefinitionsError("features:\n  s: {function: blend, inputs: {a: 1}}\n"),
            "apply.yaml:2:32: features.s.inputs: expected a list of feature refs such as "
            "[txn_count@1h, merchants@30d]");
  EXPECT_EQ(DefinitionsError("features:\n  s: {function: blend, fn: weighted, inputs: [a]}\n"),
            "apply.yaml:2:7: features.s.function: both 'fn' (weighted) and 'function' (a Lua "
            "function) are given; expected exactly one");
}

TEST(AggregationTest, FunctionNamesALuaAggregatorWithOrWithoutAField) {
  Result<Config> config = LoadString(
      WithTemplate(
          "  spend: {template: tx, function: decayed_sum, field: amount, windows: [1h, 24h]}\n"
          "  whole: {template: tx, function: my_agg, window: 1h}\n"),
      "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const auto& aggs = config->definitions.aggregations;
  ASSERT_EQ(aggs.size(), 2u);
  EXPECT_EQ(aggs[0].function, "decayed_sum");
  EXPECT_EQ(aggs[0].fn, "");
  EXPECT_EQ(aggs[0].field, "amount");
  EXPECT_EQ(aggs[1].function, "my_agg");
  EXPECT_EQ(aggs[1].field, "");
}

TEST(AggregationTest, FnAndFunctionTogetherAndBadFunctionNamesAreRejected) {
  EXPECT_EQ(LoadError(WithTemplate(
                "  c: {template: tx, fn: sum, function: my_sum, field: amount, window: 1h}\n")),
            "test.yaml:4:30: aggregations.c.function: both 'fn' (a built-in) and 'function' (a "
            "Lua aggregator) are given; expected exactly one");
  EXPECT_EQ(LoadError(WithTemplate("  c: {template: tx, function: my-sum, window: 1h}\n")),
            "test.yaml:4:31: aggregations.c.function: bad function name 'my-sum'; expected "
            "letters, digits and _, starting with a letter or _, at most 64 bytes");
  EXPECT_EQ(LoadError(WithTemplate("  c: {template: tx, function: f, n: 3, window: 1h}\n")),
            "test.yaml:4:34: aggregations.c.n: only fn last_n takes n; remove it");
  EXPECT_EQ(LoadError(WithTemplate("  c: {template: tx, function: f, field: nope, window: 1h}\n")),
            "test.yaml:4:41: aggregations.c.field: unknown field 'nope' of event template 'tx'; "
            "expected one of: amount, merchant");
}

TEST(AggregationTest, DefinitionMustBeAMapping) {
  EXPECT_EQ(LoadError(WithTemplate("  c: count\n")),
            "test.yaml:4:6: aggregations.c: expected a mapping (key: value entries), found "
            "'count'");
}

TEST(AggregationTest, MissingTemplateFnAndWindowAreReportedAtTheName) {
  EXPECT_EQ(LoadError(WithTemplate("  c: {field: amount}\n")),
            "test.yaml:4:3: aggregations.c: missing 'template' (the event template whose events "
            "are aggregated, e.g. template: transactions)\n"
            "test.yaml:4:3: aggregations.c: missing 'fn' (one of: count, sum, min, max, mean, "
            "stddev, first, last, last_n, distinct_count, top_k) or 'function' (a registered "
            "Lua aggregator)\n"
            "test.yaml:4:3: aggregations.c: missing 'window' or 'windows' (e.g. window: 1h, or "
            "windows: [1h, 24h, 7d])");
}

TEST(AggregationTest, UnknownTemplateIsRejectedListingTheTemplates) {
  EXPECT_EQ(LoadError(WithTemplate("  c: {template: txn, fn: count, window: 1h}\n")),
            "test.yaml:4:17: aggregations.c.template: unknown event template 'txn'; expected "
            "one of: tx");
}

TEST(AggregationTest, TemplateWithoutAnyTemplatesIsRejected) {
  EXPECT_EQ(LoadError("aggregations:\n  c: {template: tx, fn: count, window: 1h}\n"),
            "test.yaml:2:17: aggregations.c.template: unknown event template 'tx'; no event "
            "templates are defined (add one under event_templates)");
}

TEST(AggregationTest, ATableIsNotATemplate) {
  EXPECT_EQ(LoadError(R"(tables:
  user_profile: {key: user_id, fields: {age: int64}}
aggregations:
  c: {template: user_profile, fn: sum, field: age, window: 1h}
)"),
            "test.yaml:4:17: aggregations.c.template: unknown event template 'user_profile'; no "
            "event templates are defined (add one under event_templates)");
}

TEST(AggregationTest, UnknownFnIsRejected) {
  EXPECT_EQ(LoadError(WithTemplate("  c: {template: tx, fn: avg, field: amount, window: 1h}\n")),
            "test.yaml:4:25: aggregations.c.fn: unknown value 'avg'; expected one of: count, "
            "sum, min, max, mean, stddev, first, last, last_n, distinct_count, top_k");
}

TEST(AggregationTest, CountTakesNoField) {
  EXPECT_EQ(LoadError(WithTemplate("  c: {template: tx, fn: count, field: amount, window: 1h}\n")),
            "test.yaml:4:32: aggregations.c.field: fn count counts events and takes no field; "
            "remove it");
}

TEST(AggregationTest, EveryOtherFnNeedsAField) {
  EXPECT_EQ(LoadError(WithTemplate("  s: {template: tx, fn: sum, window: 1h}\n")),
            "test.yaml:4:3: aggregations.s: missing 'field' (the field of the template that fn "
            "sum aggregates, e.g. field: amount)");
}

TEST(AggregationTest, FieldMustBeDeclaredByTheTemplate) {
  EXPECT_EQ(LoadError(WithTemplate("  s: {template: tx, fn: sum, field: amt, window: 1h}\n")),
            "test.yaml:4:37: aggregations.s.field: unknown field 'amt' of event template 'tx'; "
            "expected one of: amount, merchant");
}

TEST(AggregationTest, KeyAndTimestampAreNotAggregatable) {
  EXPECT_EQ(
      LoadError(WithTemplate(R"(  k: {template: tx, fn: distinct_count, field: user_id, window: 1h}
  t: {template: tx, fn: max, field: ts, window: 1h}
)")),
      "test.yaml:4:48: aggregations.k.field: 'user_id' is the key of event template 'tx', "
      "not an aggregatable field; expected one of: amount, merchant\n"
      "test.yaml:5:37: aggregations.t.field: 'ts' is the timestamp of event template "
      "'tx', not an aggregatable field; expected one of: amount, merchant");
}

TEST(AggregationTest, FieldOfATemplateWithoutFields) {
  EXPECT_EQ(LoadError(R"(event_templates:
  clicks: {key: id, timestamp: ts}
aggregations:
  s: {template: clicks, fn: last, field: page, window: 1h}
)"),
            "test.yaml:4:42: aggregations.s.field: unknown field 'page' of event template "
            "'clicks'; the template declares no fields, so only fn count applies");
}

TEST(AggregationTest, ABrokenTemplateIsReportedOnlyOnce) {
  // amount's type is wrong; the aggregation naming amount must not add "unknown field".
  EXPECT_EQ(LoadError(R"(event_templates:
  tx: {key: id, timestamp: ts, fields: {amount: float}}
aggregations:
  s: {template: tx, fn: sum, field: amount, window: 1h}
)"),
            "test.yaml:2:49: event_templates.tx.fields.amount: unknown field type 'float'; "
            "expected one of: int64, double, bool, string, bytes, float_vector, timestamp");
}

TEST(AggregationTest, NIsOnlyForLastNAndKOnlyForTopK) {
  EXPECT_EQ(LoadError(WithTemplate(R"(  a:
    template: tx
    fn: sum
    field: amount
    n: 3
    k: 3
    window: 1h
  b:
    template: tx
    fn: top_k
    field: merchant
    n: 3
    window: 1h
  c:
    template: tx
    fn: last_n
    field: merchant
    k: 3
    window: 1h
)")),
            "test.yaml:8:5: aggregations.a.n: only fn last_n takes n; remove it\n"
            "test.yaml:9:5: aggregations.a.k: only fn top_k takes k; remove it\n"
            "test.yaml:11:3: aggregations.b: missing 'k' (how many of the most frequent values "
            "top_k keeps, 1 to 1000)\n"
            "test.yaml:15:5: aggregations.b.n: only fn last_n takes n; top_k takes k\n"
            "test.yaml:17:3: aggregations.c: missing 'n' (how many of the latest values last_n "
            "keeps, 1 to 1000)\n"
            "test.yaml:21:5: aggregations.c.k: only fn top_k takes k; last_n takes n");
}

TEST(AggregationTest, NAndKOutOfRangeAreRejected) {
  EXPECT_EQ(
      LoadError(WithTemplate(R"(  a: {template: tx, fn: last_n, field: amount, n: 0, window: 1h}
  b: {template: tx, fn: top_k, field: merchant, k: 1001, window: 1h}
)")),
      "test.yaml:4:51: aggregations.a.n: expected an integer in [1, 1000], found '0'\n"
      "test.yaml:5:52: aggregations.b.k: expected an integer in [1, 1000], found '1001'");
}

TEST(AggregationTest, WindowAndWindowsTogetherAreRejectedAtTheSecond) {
  EXPECT_EQ(LoadError(WithTemplate(R"(  c:
    template: tx
    fn: count
    windows: [1h]
    window: 2h
)")),
            "test.yaml:8:5: aggregations.c.window: both 'window' and 'windows' are given; "
            "expected exactly one");
}

TEST(AggregationTest, WindowsMustBeANonEmptyList) {
  EXPECT_EQ(LoadError(WithTemplate(R"(  a: {template: tx, fn: count, windows: 1h}
  b: {template: tx, fn: count, windows: []}
)")),
            "test.yaml:4:41: aggregations.a.windows: expected a list of durations such as [1h, "
            "24h], found '1h'\n"
            "test.yaml:5:41: aggregations.b.windows: is empty; expected at least one duration "
            "such as [1h]");
}

TEST(AggregationTest, BadWindowsAreRejectedWithTheirIndex) {
  EXPECT_EQ(LoadError(WithTemplate(
                "  c: {template: tx, fn: count, windows: [0s, 1500ms, 3651d, 1d, 24h, soon]}\n")),
            "test.yaml:4:42: aggregations.c.windows[0]: '0s' is zero; expected a duration of at "
            "least 1s\n"
            "test.yaml:4:46: aggregations.c.windows[1]: '1500ms' is not a whole number of "
            "seconds; expected a duration such as 90s\n"
            "test.yaml:4:54: aggregations.c.windows[2]: 3651d is too long; expected at most "
            "3650d\n"
            "test.yaml:4:65: aggregations.c.windows[4]: duplicate window '24h' (same length as "
            "'1d'); expected distinct windows\n"
            "test.yaml:4:70: aggregations.c.windows[5]: bad duration 'soon': expected integers "
            "with units us, ms, s, m, h, d or w, e.g. 90d, 1h30m, 250ms");
}

TEST(AggregationTest, BadSingleWindowIsRejected) {
  EXPECT_EQ(LoadError(WithTemplate(R"(  a: {template: tx, fn: count, window: 0s}
  b: {template: tx, fn: count, window: 90500ms}
)")),
            "test.yaml:4:40: aggregations.a.window: '0s' is zero; expected a duration of at "
            "least 1s\n"
            "test.yaml:5:40: aggregations.b.window: '90500ms' is not a whole number of seconds; "
            "expected a duration such as 90s");
}

TEST(AggregationTest, BadTileIsRejected) {
  EXPECT_EQ(LoadError(WithTemplate(R"(  a: {template: tx, fn: count, window: 1h, tile: 0s}
  b: {template: tx, fn: count, window: 1h, tile: 500ms}
  c: {template: tx, fn: count, windows: [1h, 90m, 7m], tile: 10m}
  d: {template: tx, fn: count, window: 2d, tile: 1s}
)")),
            "test.yaml:4:50: aggregations.a.tile: '0s' is zero; expected a duration of at least "
            "1s\n"
            "test.yaml:5:50: aggregations.b.tile: '500ms' is not a whole number of seconds; "
            "expected a duration such as 90s\n"
            "test.yaml:6:62: aggregations.c.tile: '10m' does not divide window '7m'; expected a "
            "tile that divides every window\n"
            "test.yaml:7:50: aggregations.d.tile: '1s' splits window '2d' into 172800 tiles; "
            "expected at most 100000 (a longer tile)");
}

TEST(AggregationTest, MaxAgeOverItsMaximumIsRejected) {
  EXPECT_EQ(LoadError(WithTemplate("  c: {template: tx, fn: count, window: 1h, max_age: 3651d}\n")),
            "test.yaml:4:53: aggregations.c.max_age: 3651d is too long; expected at most 3650d");
}

// Problems found after both sections are read (unknown templates) are still listed in file
// order.
TEST(AggregationTest, ProblemsOfSeveralDefinitionsAreAllReportedInFileOrder) {
  const std::string e = LoadError(R"(event_templates:
  tx: {key: id, timestamp: ts, fields: {amount: double}}
  bad: {key: id}
aggregations:
  a: {template: nope, fn: count, window: 1h}
  b: {template: tx, fn: median, field: amount, window: 1h}
  c: {template: tx, fn: count, window: 1h}
)");
  EXPECT_EQ(e,
            "test.yaml:3:3: event_templates.bad: missing 'timestamp' (the event field holding the "
            "event time, e.g. timestamp: ts)\n"
            "test.yaml:5:17: aggregations.a.template: unknown event template 'nope'; expected "
            "one of: tx, bad\n"
            "test.yaml:6:25: aggregations.b.fn: unknown value 'median'; expected one of: count, "
            "sum, min, max, mean, stddev, first, last, last_n, distinct_count, top_k");
}

// --- Tables: max_age ---------------------------------------------------------------------------

TEST(TableMaxAgeTest, DefaultsToNeverAndParses) {
  Result<Config> r =
      LoadString("tables:\n  a: {key: id}\n  b: {key: id, max_age: 90m}\n", "test.yaml");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->tables[0].max_age_micros, 0);
  EXPECT_EQ(r->tables[1].max_age_micros, 90 * kMinute);
}

TEST(TableMaxAgeTest, OverItsMaximumIsRejected) {
  EXPECT_EQ(LoadError("tables:\n  t:\n    key: id\n    max_age: 3651d\n"),
            "test.yaml:4:14: tables.t.max_age: 3651d is too long; expected at most 3650d");
}

// --- LoadDefinitions ---------------------------------------------------------------------------

EventTemplateConfig KnownTemplate() {
  EventTemplateConfig t;
  t.name = "purchases";
  t.key_field = "user_id";
  t.timestamp_field = "ts";
  t.fields = {{"price", ValueType::kDouble}, {"sku", ValueType::kString}};
  t.position = "odsd.yaml:30:3";
  return t;
}

TEST(LoadDefinitionsTest, EmptyTextGivesNoDefinitions) {
  for (std::string_view text : {"", "\n", "# nothing\n"}) {
    Result<Definitions> r = LoadDefinitions(text, "apply.yaml", {});
    ASSERT_THAT(r, IsOk()) << text;
    EXPECT_TRUE(r->event_templates.empty());
    EXPECT_TRUE(r->aggregations.empty());
  }
}

TEST(LoadDefinitionsTest, ParsesTemplatesAndAggregations) {
  Result<Definitions> r = LoadDefinitions(R"(event_templates:
  clicks: {key: user_id, timestamp: ts, fields: {page: string}}
aggregations:
  pages: {template: clicks, fn: distinct_count, field: page, windows: [1h, 1d]}
)",
                                          "apply.yaml", {});
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->event_templates.size(), 1u);
  EXPECT_EQ(r->event_templates[0].name, "clicks");
  EXPECT_EQ(r->event_templates[0].position, "apply.yaml:2:3");
  ASSERT_EQ(r->aggregations.size(), 1u);
  EXPECT_EQ(r->aggregations[0].name, "pages");
  EXPECT_EQ(r->aggregations[0].windows, (std::vector<Micros>{kHour, kDay}));
  EXPECT_EQ(r->aggregations[0].position, "apply.yaml:4:3");
}

TEST(LoadDefinitionsTest, AggregationMayNameAKnownTemplate) {
  const EventTemplateConfig known[] = {KnownTemplate()};
  Result<Definitions> r = LoadDefinitions(
      "aggregations:\n  spend: {template: purchases, fn: sum, field: price, window: 1d}\n",
      "apply.yaml", known);
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->event_templates.empty());
  ASSERT_EQ(r->aggregations.size(), 1u);
  EXPECT_EQ(r->aggregations[0].template_name, "purchases");
}

TEST(LoadDefinitionsTest, FieldIsCheckedAgainstTheKnownTemplate) {
  const EventTemplateConfig known[] = {KnownTemplate()};
  EXPECT_EQ(
      DefinitionsError(
          "aggregations:\n  spend: {template: purchases, fn: sum, field: amount, window: 1d}\n",
          known),
      "apply.yaml:2:48: aggregations.spend.field: unknown field 'amount' of event template "
      "'purchases'; expected one of: price, sku");
}

TEST(LoadDefinitionsTest, TheTextsTemplateWinsOverAKnownOne) {
  const EventTemplateConfig known[] = {KnownTemplate()};
  // The text redefines purchases with `amount` instead of `price`.
  const std::string text = R"(event_templates:
  purchases: {key: user_id, timestamp: ts, fields: {amount: double}}
aggregations:
  spend: {template: purchases, fn: sum, field: amount, window: 1d}
  old: {template: purchases, fn: sum, field: price, window: 1d}
)";
  EXPECT_EQ(DefinitionsError(text, known),
            "apply.yaml:5:46: aggregations.old.field: unknown field 'price' of event template "
            "'purchases'; expected one of: amount");
}

TEST(LoadDefinitionsTest, UnknownTemplateListsTheTextsAndTheKnownTemplates) {
  const EventTemplateConfig known[] = {KnownTemplate()};
  EXPECT_EQ(DefinitionsError(R"(event_templates:
  clicks: {key: user_id, timestamp: ts}
aggregations:
  c: {template: views, fn: count, window: 1h}
)",
                             known),
            "apply.yaml:4:17: aggregations.c.template: unknown event template 'views'; expected "
            "one of: clicks, purchases");
}

TEST(LoadDefinitionsTest, OnlyDefinitionSectionsAreAllowed) {
  EXPECT_EQ(DefinitionsError("tables:\n  t: {key: id}\nserver: {shards: 2}\n"),
            "apply.yaml:1:1: unknown key 'tables' in the top level; expected one of: "
            "event_templates, aggregations, features\n"
            "apply.yaml:3:1: unknown key 'server' in the top level; expected one of: "
            "event_templates, aggregations, features");
}

TEST(LoadDefinitionsTest, ErrorsAreReportedAsLoadStringReportsThem) {
  EXPECT_EQ(DefinitionsError("event_templates:\n  tx: {key: id, timestamp: id}\n"),
            "apply.yaml:2:28: event_templates.tx.timestamp: 'id' is also the key; expected a "
            "field other than the key");
  EXPECT_EQ(DefinitionsError("just text\n"),
            "apply.yaml:1:1: the top level: expected a mapping (key: value entries), found 'just "
            "text'");
}

TEST(LoadDefinitionsTest, SyntaxErrorIsReported) {
  const std::string e = DefinitionsError("aggregations:\n  c: {template: [\n");
  EXPECT_THAT(e, ::testing::StartsWith("apply.yaml:"));
  EXPECT_THAT(e, ::testing::HasSubstr("YAML syntax error"));
}

// --- The shipped example -----------------------------------------------------------------------

TEST(ExampleConfigTest, FeaturesYamlLoadsAndUsesEveryFn) {
  const std::string path = std::string(ODS_SOURCE_DIR) + "/config/examples/features.yaml";
  Result<Config> r = LoadFile(path);
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->tables.size(), 1u);
  EXPECT_EQ(r->tables[0].name, "user_profile");
  EXPECT_EQ(r->tables[0].max_age_micros, kDay);
  ASSERT_EQ(r->definitions.event_templates.size(), 1u);
  const EventTemplateConfig& t = r->definitions.event_templates[0];
  EXPECT_EQ(t.name, "transactions");
  EXPECT_EQ(t.history_retention_micros, 30 * kDay);
  std::set<std::string> fns;
  bool has_windows_list = false;
  bool has_tile = false;
  for (const AggregationConfig& a : r->definitions.aggregations) {
    EXPECT_EQ(a.template_name, "transactions") << a.name;
    EXPECT_EQ(a.position.rfind(path + ":", 0), 0u) << a.position;
    fns.insert(a.fn);
    has_windows_list = has_windows_list || a.windows.size() > 1;
    has_tile = has_tile || a.tile_micros != 0;
  }
  EXPECT_EQ(fns, (std::set<std::string>{"count", "sum", "min", "max", "mean", "stddev", "first",
                                        "last", "last_n", "distinct_count", "top_k"}));
  ASSERT_EQ(r->definitions.features.size(), 1u);
  EXPECT_EQ(r->definitions.features[0].name, "risk_blend");
  EXPECT_EQ(r->definitions.features[0].inputs.size(), 3u);
  ASSERT_EQ(r->definitions.features.size(), 1u);
  EXPECT_EQ(r->definitions.features[0].name, "risk_blend");
  EXPECT_EQ(r->definitions.features[0].inputs.size(), 3u);
  EXPECT_TRUE(has_windows_list);
  EXPECT_TRUE(has_tile);
}

}  // namespace
}  // namespace ods::config

namespace ods::config {
namespace {

// --- features (derived) ---------------------------------------------------------------------

TEST(DerivedFeatureTest, WeightedFeatureParsesWithInputsInFileOrder) {
  Result<Definitions> r = LoadDefinitions(R"(features:
  risk: {fn: weighted, inputs: {txn_count@1h: 0.7, "profile:age": -2, merchants: 1e-3}}
)",
                                          "apply.yaml", {});
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->features.size(), 1u);
  const DerivedFeatureConfig& d = r->features[0];
  EXPECT_EQ(d.name, "risk");
  EXPECT_EQ(d.fn, "weighted");
  EXPECT_EQ(d.position, "apply.yaml:2:3");
  ASSERT_EQ(d.inputs.size(), 3u);
  EXPECT_EQ(d.inputs[0].ref, "txn_count@1h");
  EXPECT_EQ(d.inputs[0].weight, 0.7);
  EXPECT_EQ(d.inputs[0].position, "apply.yaml:2:33");
  EXPECT_EQ(d.inputs[1].ref, "profile:age");
  EXPECT_EQ(d.inputs[1].weight, -2);
  EXPECT_EQ(d.inputs[2].weight, 1e-3);
}

TEST(DerivedFeatureTest, EachMistakeIsReportedWhereItIs) {
  EXPECT_EQ(DefinitionsError("features:\n  r: {inputs: {a: 1}}\n"),
            "apply.yaml:2:3: features.r: missing 'fn' (expected weighted) or 'function' (a "
            "registered Lua function of kind derived)");
  EXPECT_EQ(DefinitionsError("features:\n  r: {fn: blend, inputs: {a: 1}}\n"),
            "apply.yaml:2:11: features.r.fn: unknown value 'blend'; expected one of: weighted");
  EXPECT_EQ(DefinitionsError("features:\n  r: {fn: weighted}\n"),
            "apply.yaml:2:3: features.r: missing 'inputs' (a map of feature refs to weights)");
  EXPECT_EQ(DefinitionsError("features:\n  r: {fn: weighted, inputs: [a, b]}\n"),
            "apply.yaml:2:29: features.r.inputs: expected a map of feature refs to weights such "
            "as {txn_count@1h: 0.7, merchants@30d: 0.3}");
  EXPECT_EQ(DefinitionsError("features:\n  r: {fn: weighted, inputs: {a: heavy, b: .nan}}\n"),
            "apply.yaml:2:33: features.r.inputs.a: expected a finite number such as 0.5, found "
            "'heavy'\n"
            "apply.yaml:2:43: features.r.inputs.b: expected a finite number such as 0.5, found "
            "'.nan'");
  EXPECT_EQ(DefinitionsError("features:\n  9r: {fn: weighted, inputs: {a: 1}}\n"),
            "apply.yaml:2:3: bad feature name '9r'; expected letters, digits and _, starting with "
            "a letter or _, at most 64 bytes");
  EXPECT_EQ(DefinitionsError("features:\n  r: {fn: weighted, inputs: {a: 1}, window: 1h}\n"),
            "apply.yaml:2:37: unknown key 'window' in features.r; expected one of: fn, function, "
            "inputs");
}

}  // namespace
}  // namespace ods::config
