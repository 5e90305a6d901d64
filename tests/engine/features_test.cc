// Engine events and features: ingestion, validation, lookups, run-time definitions, and the
// training/serving parity check (online == historical == brute force from raw events).

#include <sys/resource.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/units.h"
#include "ods/engine/engine.h"
#include "support/odsd_process.h"
#include "support/test_util.h"

namespace ods::engine {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;
using ::testing::HasSubstr;
using record::Field;
using record::Value;

constexpr Micros kSecond = 1'000'000;
constexpr Micros kMinute = 60 * kSecond;
constexpr Micros kHour = 60 * kMinute;
constexpr Micros kDay = 24 * kHour;

// Windows of every aggregation in the parity test: three tile sizes (1m, 1m, 1h by default).
const std::vector<Micros> kWindows = {kHour, 6 * kHour, 2 * kDay};

config::AggregationConfig Agg(std::string name, std::string fn, std::string field, uint32_t n = 0,
                              std::vector<Micros> windows = kWindows) {
  config::AggregationConfig a;
  a.name = std::move(name);
  a.template_name = "tx";
  a.fn = std::move(fn);
  a.field = std::move(field);
  a.n = n;
  a.windows = std::move(windows);
  a.position = "features_test:1:1";
  return a;
}

config::Config MakeConfig() {
  config::Config c;
  c.source = "features_test";
  c.server.shards = 4;
  c.limits.max_batch_size = 10'000;
  c.storage.ram_max_bytes = 0;
  c.tables.push_back({.name = "profile",
                      .key_field = "user_id",
                      .fields = {{"age", ValueType::kInt64}},
                      .free_form = false,
                      .ttl_micros = 0,
                      .max_age_micros = kHour});
  config::EventTemplateConfig t;
  t.name = "tx";
  t.key_field = "user";
  t.timestamp_field = "ts";
  t.fields = {{"amount", ValueType::kDouble},
              {"qty", ValueType::kInt64},
              {"merchant", ValueType::kString}};
  t.allowed_lateness_micros = 3 * kHour;
  t.max_future_micros = kMinute;
  t.history_retention_micros = 30 * kDay;
  t.dedup_window_micros = 10 * kMinute;
  t.position = "features_test:1:1";
  c.definitions.event_templates.push_back(t);
  auto& aggs = c.definitions.aggregations;
  aggs.push_back(Agg("n", "count", ""));
  aggs.push_back(Agg("amount_sum", "sum", "amount"));
  aggs.push_back(Agg("qty_sum", "sum", "qty"));
  aggs.push_back(Agg("amount_min", "min", "amount"));
  aggs.push_back(Agg("qty_max", "max", "qty"));
  aggs.push_back(Agg("amount_mean", "mean", "amount"));
  aggs.push_back(Agg("amount_stddev", "stddev", "amount"));
  aggs.push_back(Agg("first_merchant", "first", "merchant"));
  aggs.push_back(Agg("last_merchant", "last", "merchant"));
  aggs.push_back(Agg("last_amounts", "last_n", "amount", 3));
  aggs.push_back(Agg("merchants", "distinct_count", "merchant"));
  aggs.push_back(Agg("top_merchants", "top_k", "merchant", 2));
  aggs.push_back(Agg("n_1h", "count", "", 0, {kHour}));
  return c;
}

// One raw event as the test remembers it (arrival order = position in the log).
struct RawEvent {
  std::string user;
  Micros time = 0;
  double amount = 0;
  int64_t qty = 0;
  std::string merchant;
  bool has_amount = true;
};

std::vector<Field> Fields(const RawEvent& e) {
  std::vector<Field> f = {{"user", e.user}, {"ts", record::Timestamp{e.time}},
                          {"qty", e.qty}, {"merchant", e.merchant}};
  if (e.has_amount) f.push_back({"amount", e.amount});
  return f;
}

Result<PushResult> Push(Engine& engine, const std::vector<RawEvent>& events,
                        const std::vector<std::string>& ids = {}) {
  std::vector<std::vector<Field>> fields;
  for (const RawEvent& e : events) fields.push_back(Fields(e));
  std::vector<EventInput> inputs;
  for (size_t i = 0; i < events.size(); ++i) {
    inputs.push_back({"tx", fields[i], ids.empty() ? std::string_view() : ids[i]});
  }
  return engine.PushEvents(inputs);
}

Micros AlignDown(Micros t, Micros g) { return t - (((t % g) + g) % g); }

// Brute-force value of aggregation `fn` over events of `user` in window `w` (default tile) as
// of `t`, straight from the definition in aggregate.h.
aggregate::Output Reference(const std::string& fn, const std::string& field, uint32_t n,
                            Micros w, const std::vector<RawEvent>& log, const std::string& user,
                            Micros t) {
  const Micros g = aggregate::DefaultTileFor(w);
  const Micros start = AlignDown(t, g) + g - w;
  std::vector<const RawEvent*> in;  // arrival order
  for (const RawEvent& e : log) {
    if (e.user != user || e.time < start || e.time > t) continue;
    if (field == "amount" && !e.has_amount) continue;
    in.push_back(&e);
  }
  auto value_of = [&](const RawEvent& e) -> Value {
    if (field == "amount") return e.amount;
    if (field == "qty") return e.qty;
    return e.merchant;
  };
  if (fn == "count") return Value(static_cast<int64_t>(in.size()));
  if (fn == "sum" && field == "qty") {
    int64_t s = 0;
    for (auto* e : in) s += e->qty;
    return Value(s);
  }
  if (fn == "distinct_count") {
    std::set<std::string> d;
    for (auto* e : in) d.insert(e->merchant);
    return Value(static_cast<int64_t>(d.size()));
  }
  if (fn == "top_k") {
    std::map<std::string, int64_t> counts;
    for (auto* e : in) ++counts[e->merchant];
    std::vector<std::pair<int64_t, std::string>> order;
    for (auto& [m, c] : counts) order.push_back({-c, m});
    std::sort(order.begin(), order.end());
    std::vector<Value> out;
    for (size_t i = 0; i < order.size() && i < n; ++i) out.push_back(order[i].second);
    return out;
  }
  if (fn == "last_n") {
    std::vector<size_t> idx(in.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
      if (in[a]->time != in[b]->time) return in[a]->time > in[b]->time;
      return a > b;  // later arrival first
    });
    std::vector<Value> out;
    for (size_t i = 0; i < idx.size() && i < n; ++i) out.push_back(value_of(*in[idx[i]]));
    return out;
  }
  if (fn == "sum") {
    double s = 0;
    for (auto* e : in) s += e->amount;
    return Value(s);
  }
  if (in.empty()) return std::monostate{};
  if (fn == "min" || fn == "max") {
    if (field == "qty") {
      int64_t best = in[0]->qty;
      for (auto* e : in) best = fn == "min" ? std::min(best, e->qty) : std::max(best, e->qty);
      return Value(best);
    }
    double best = in[0]->amount;
    for (auto* e : in) best = fn == "min" ? std::min(best, e->amount) : std::max(best, e->amount);
    return Value(best);
  }
  if (fn == "mean" || fn == "stddev") {
    double sum = 0;
    for (auto* e : in) sum += e->amount;
    const double mean = sum / static_cast<double>(in.size());
    if (fn == "mean") return Value(mean);
    double sq = 0;
    for (auto* e : in) sq += (e->amount - mean) * (e->amount - mean);
    return Value(std::sqrt(sq / static_cast<double>(in.size())));
  }
  if (fn == "first" || fn == "last") {
    const RawEvent* pick = in[0];
    for (auto* e : in) {
      if (fn == "first" ? e->time < pick->time : e->time >= pick->time) pick = e;
    }
    return value_of(*pick);
  }
  ADD_FAILURE() << "no reference for " << fn;
  return std::monostate{};
}

// Equal up to floating-point rounding (sums folded in another order), and within the HLL error
// for distinct counts.
void ExpectNear(const aggregate::Output& got, const aggregate::Output& want, const std::string& fn,
                const std::string& what) {
  if (fn == "distinct_count") {
    ASSERT_TRUE(std::holds_alternative<Value>(got)) << what;
    const auto g = std::get<int64_t>(std::get<Value>(got));
    const auto w = std::get<int64_t>(std::get<Value>(want));
    EXPECT_LE(std::abs(g - w), std::max<int64_t>(1, w / 50)) << what;
    return;
  }
  const auto* gv = std::get_if<Value>(&got);
  const auto* wv = std::get_if<Value>(&want);
  if (gv != nullptr && wv != nullptr && std::holds_alternative<double>(*gv) &&
      std::holds_alternative<double>(*wv)) {
    const double g = std::get<double>(*gv);
    const double w = std::get<double>(*wv);
    EXPECT_NEAR(g, w, 1e-9 * std::max(1.0, std::abs(w))) << what;
    return;
  }
  EXPECT_TRUE(got == want) << what;
}

class FeaturesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<Engine>> e = Engine::Create(MakeConfig(), clock_);
    ASSERT_THAT(e, IsOk());
    engine_ = std::move(*e);
  }

  std::vector<FeatureColumn> Online(std::vector<std::string_view> entities,
                                    std::vector<std::string_view> features) {
    Result<std::vector<FeatureColumn>> r =
        engine_->GetOnlineFeatures(entities, features, std::nullopt);
    EXPECT_THAT(r, IsOk());
    return r.ok() ? *r : std::vector<FeatureColumn>{};
  }

  FakeClock clock_{Micros{1'700'000'000} * kSecond + 12'345};
  std::unique_ptr<Engine> engine_;
};

// The parity promise: for every aggregation and window, the online value read at t equals the
// historical value as of t, and both equal a brute-force reference from the raw events.
TEST_F(FeaturesTest, OnlineEqualsHistoricalEqualsReferenceOnARandomStream) {
  std::mt19937_64 rng(20261125);
  const std::vector<std::string> users = {"u0", "u1", "u2", "u3", "u4", "u5"};
  const std::vector<std::string> merchants = {"m0", "m1", "m2", "m3", "m4", "m5", "m6"};
  const config::Config config = MakeConfig();
  std::vector<RawEvent> log;
  struct Checkpoint {
    Micros time;
    std::vector<FeatureColumn> online;
  };
  std::vector<Checkpoint> checkpoints;
  std::vector<std::string> refs;
  for (const auto& a : config.definitions.aggregations) {
    for (Micros w : a.windows) refs.push_back(a.name + "@" + FormatDuration(w));
  }
  std::vector<std::string_view> ref_views(refs.begin(), refs.end());
  std::vector<std::string_view> user_views(users.begin(), users.end());

  Micros now = clock_.NowMicros();
  for (int step = 0; step < 150; ++step) {
    // The next batch: events in (previous now, now], pushed shuffled (out of order, across
    // tiles), so online at `now` has seen every event at or before `now`.
    const Micros step_length = std::uniform_int_distribution<Micros>(kMinute, 2 * kHour)(rng);
    const Micros previous = now;
    now += step_length;
    clock_.Set(now);
    std::vector<RawEvent> batch;
    const int count = std::uniform_int_distribution<int>(0, 40)(rng);
    for (int i = 0; i < count; ++i) {
      RawEvent e;
      e.user = users[std::uniform_int_distribution<size_t>(0, users.size() - 1)(rng)];
      e.time = std::uniform_int_distribution<Micros>(previous + 1, now)(rng);
      if (i % 7 == 3 && !batch.empty()) e.time = batch.back().time;  // equal times: tie rules
      e.amount = std::uniform_real_distribution<double>(-50, 500)(rng);
      e.qty = std::uniform_int_distribution<int64_t>(-5, 100)(rng);
      e.merchant = merchants[std::uniform_int_distribution<size_t>(0, merchants.size() - 1)(rng)];
      e.has_amount = i % 11 != 5;  // some events lack the field: skipped by amount aggregations
      batch.push_back(e);
    }
    Result<PushResult> pushed = Push(*engine_, batch);
    ASSERT_THAT(pushed, IsOk());
    ASSERT_EQ(pushed->applied, batch.size());
    ASSERT_TRUE(pushed->rejected.empty()) << pushed->rejected[0].reason;
    log.insert(log.end(), batch.begin(), batch.end());
    if (step % 3 == 2) checkpoints.push_back({now, Online(user_views, ref_views)});
  }
  ASSERT_GT(log.size(), 500u);

  size_t compared = 0;
  for (const Checkpoint& cp : checkpoints) {
    std::vector<EntityRow> rows;
    for (const std::string& u : users) rows.push_back({u, cp.time});
    Result<std::vector<FeatureColumn>> historical = engine_->GetHistoricalFeatures(rows, ref_views);
    ASSERT_THAT(historical, IsOk());
    size_t f = 0;
    for (const auto& a : config.definitions.aggregations) {
      for (Micros w : a.windows) {
        for (size_t u = 0; u < users.size(); ++u) {
          const std::string what = refs[f] + " of " + users[u] + " at " + std::to_string(cp.time);
          const aggregate::Output& online = cp.online[f].values[u];
          EXPECT_TRUE(online == (*historical)[f].values[u]) << "online != historical: " << what;
          EXPECT_EQ(cp.online[f].statuses[u], (*historical)[f].statuses[u]) << what;
          const bool known = std::any_of(log.begin(), log.end(), [&](const RawEvent& e) {
            return e.user == users[u] && e.time <= cp.time;
          });
          if (!known) {
            EXPECT_EQ(cp.online[f].statuses[u], FeatureStatus::kNotFound) << what;
            EXPECT_TRUE(std::holds_alternative<std::monostate>(online)) << what;
          } else {
            ExpectNear(online, Reference(a.fn, a.field, a.n, w, log, users[u], cp.time), a.fn,
                       what);
          }
          ++compared;
        }
        ++f;
      }
    }
  }
  EXPECT_GE(checkpoints.size(), 20u);
  EXPECT_EQ(compared, checkpoints.size() * users.size() * refs.size());
}

TEST_F(FeaturesTest, BadEventsAreReportedByIndexAndChangeNothing) {
  const Micros now = clock_.NowMicros();
  const Field user{"user", std::string("u1")};
  const Field ts{"ts", record::Timestamp{now - kSecond}};
  std::vector<std::vector<Field>> fields = {
      {user, ts, {"amount", 5.0}},                                  // 0: good
      {ts, {"amount", 1.0}},                                        // 1: missing key
      {user, ts, {"amount", std::string("x")}},                     // 2: wrong type
      {user, ts, {"colour", std::string("red")}},                   // 3: unknown field
      {user, {"amount", 1.0}},                                      // 4: missing event time
      {user, {"ts", record::Timestamp{now - 4 * kHour}}},           // 5: too late
      {user, {"ts", record::Timestamp{now + kHour}}},               // 6: in the future
      {user, ts},                                                   // 7: unknown template
      {{"user", int64_t{42}}, {"ts", int64_t{now - kSecond}}},      // 8: good (int key, int time)
      {{"user", 1.5}, ts},                                          // 9: bad key type
  };
  std::vector<EventInput> inputs;
  for (size_t i = 0; i < fields.size(); ++i) inputs.push_back({i == 7 ? "nope" : "tx", fields[i], ""});
  Result<PushResult> r = engine_->PushEvents(inputs);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->applied, 2u);
  EXPECT_EQ(r->rejected.size(), 8u);
  std::map<uint32_t, EventRejection> by_index;
  for (const EventRejection& e : r->rejected) by_index[e.index] = e;
  for (uint32_t i : {1, 2, 3, 4, 5, 6, 7, 9}) EXPECT_EQ(by_index.count(i), 1u) << "event " << i;
  EXPECT_THAT(by_index[1].reason, HasSubstr("missing key field 'user'"));
  EXPECT_THAT(by_index[2].reason, HasSubstr("template 'tx', key 'u1': field 'amount' is string, expected double"));
  EXPECT_THAT(by_index[3].reason, HasSubstr("no field 'colour'"));
  EXPECT_THAT(by_index[4].reason, HasSubstr("missing event time field 'ts'"));
  EXPECT_EQ(by_index[5].code, StatusCode::kOutOfRange);
  EXPECT_THAT(by_index[5].reason, HasSubstr("allowed_lateness 3h"));
  EXPECT_EQ(by_index[6].code, StatusCode::kOutOfRange);
  EXPECT_THAT(by_index[6].reason, HasSubstr("in the future"));
  EXPECT_EQ(by_index[7].code, StatusCode::kNotFound);
  EXPECT_THAT(by_index[7].reason, HasSubstr("unknown event template 'nope'"));
  EXPECT_THAT(by_index[9].reason, HasSubstr("expected string or int64"));

  // Only the two good events count: u1 has one event, "42" one.
  std::vector<FeatureColumn> c = Online({"u1", "42"}, {"n_1h", "amount_sum@1h"});
  EXPECT_TRUE(c[0].values[0] == aggregate::Output(Value(int64_t{1})));
  EXPECT_TRUE(c[0].values[1] == aggregate::Output(Value(int64_t{1})));
  EXPECT_TRUE(c[1].values[0] == aggregate::Output(Value(5.0)));
  const EngineStats stats = engine_->Stats();
  EXPECT_EQ(stats.events_applied, 2u);
  EXPECT_EQ(stats.events_rejected, 8u);
  EXPECT_EQ(stats.events_late, 1u);
}

TEST_F(FeaturesTest, EventIdsMakeRetriesIdempotentWithinTheDedupWindow) {
  const Micros now = clock_.NowMicros();
  std::vector<RawEvent> events = {{"u1", now - kSecond, 1.0, 1, "m"}, {"u1", now - kSecond, 2.0, 1, "m"}};
  Result<PushResult> first = Push(*engine_, events, {"a", "b"});
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(first->applied, 2u);
  Result<PushResult> retry = Push(*engine_, events, {"a", "b"});
  ASSERT_THAT(retry, IsOk());
  EXPECT_EQ(retry->applied, 0u);
  EXPECT_EQ(retry->duplicates, 2u);
  // The same id for another entity is another event.
  Result<PushResult> other = Push(*engine_, {{"u2", now - kSecond, 1.0, 1, "m"}}, {"a"});
  EXPECT_EQ(other->applied, 1u);
  EXPECT_TRUE(Online({"u1"}, {"n_1h"})[0].values[0] == aggregate::Output(Value(int64_t{2})));
  // Past the window the id is forgotten.
  clock_.Advance(11 * kMinute);
  Result<PushResult> later = Push(*engine_, {{"u1", clock_.NowMicros() - kSecond, 1.0, 1, "m"}}, {"a"});
  EXPECT_EQ(later->applied, 1u);
  EXPECT_EQ(engine_->Stats().events_duplicate, 2u);
}

TEST_F(FeaturesTest, LateEventsWithinAllowedLatenessLandInTheirTile) {
  const Micros now = clock_.NowMicros();
  ASSERT_THAT(Push(*engine_, {{"u1", now - 10 * kMinute, 1.0, 1, "m"}}), IsOk());
  // 2h late: outside the 1h window, inside the 6h one.
  ASSERT_THAT(Push(*engine_, {{"u1", now - 2 * kHour, 1.0, 1, "m"}}), IsOk());
  std::vector<FeatureColumn> c = Online({"u1"}, {"n@1h", "n@6h"});
  EXPECT_TRUE(c[0].values[0] == aggregate::Output(Value(int64_t{1})));
  EXPECT_TRUE(c[1].values[0] == aggregate::Output(Value(int64_t{2})));
}

TEST_F(FeaturesTest, LookupsAreColumnarWithStatusesAndEventTimes) {
  const Micros now = clock_.NowMicros();
  record::Record profile;
  profile.fields = {{"age", int64_t{33}}};
  profile.event_time_micros = now - 2 * kHour;  // older than the table's max_age (1h): STALE
  std::vector<shard::KeyedRecord> put = {{"u1", &profile}};
  ASSERT_THAT(engine_->Put("profile", put), IsOk());
  ASSERT_THAT(Push(*engine_, {{"u1", now - kMinute, 7.0, 1, "m1"}, {"u1", now - 2 * kMinute, 3.0, 1, "m2"}}),
              IsOk());
  std::vector<FeatureColumn> c =
      Online({"u1", "nobody"}, {"profile:age", "amount_sum@1h", "amount_min@1h", "last_amounts@1h"});
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[0].feature, "profile:age");
  EXPECT_EQ(c[0].statuses[0], FeatureStatus::kStale);
  EXPECT_TRUE(c[0].values[0] == aggregate::Output(Value(int64_t{33})));
  EXPECT_EQ(c[0].event_times[0], now - 2 * kHour);
  EXPECT_EQ(c[0].statuses[1], FeatureStatus::kNotFound);
  EXPECT_EQ(c[1].statuses[0], FeatureStatus::kPresent);
  EXPECT_TRUE(c[1].values[0] == aggregate::Output(Value(10.0)));
  EXPECT_EQ(c[1].event_times[0], now - kMinute);
  EXPECT_EQ(c[1].statuses[1], FeatureStatus::kNotFound);
  EXPECT_TRUE(c[2].values[0] == aggregate::Output(Value(3.0)));
  EXPECT_TRUE(c[3].values[0] == aggregate::Output(std::vector<Value>{7.0, 3.0}));
  // An aggregate undefined over an empty window is NOT_FOUND; count is 0 and PRESENT.
  clock_.Advance(2 * kHour);
  c = Online({"u1"}, {"amount_min@1h", "n@1h"});
  EXPECT_EQ(c[0].statuses[0], FeatureStatus::kNotFound);
  EXPECT_EQ(c[1].statuses[0], FeatureStatus::kPresent);
  EXPECT_TRUE(c[1].values[0] == aggregate::Output(Value(int64_t{0})));
}

// Entity keys up to 44 bytes live inside the entity map's slot, longer ones on the heap: keys of
// every length around that boundary, and keys differing only past it, stay apart through the
// map's growth (which moves keys) and the idle sweep (which frees them).
TEST_F(FeaturesTest, EntityKeysOfEveryLengthAreKeptApart) {
  const Micros now = clock_.NowMicros();
  std::vector<std::string> keys;
  for (size_t n = 1; n <= 100; ++n) keys.push_back(std::string(n, 'k'));
  for (int i = 0; i < 300; ++i) {  // share a 60-byte prefix: only the heap bytes differ
    keys.push_back(std::string(60, 'p') + std::to_string(i));
  }
  std::vector<RawEvent> events;
  for (size_t i = 0; i < keys.size(); ++i) {
    for (size_t j = 0; j <= i % 3; ++j) {
      events.push_back({keys[i], now - kMinute, static_cast<double>(i), 1, "m"});
    }
  }
  ASSERT_THAT(Push(*engine_, events), IsOk());
  EXPECT_EQ(engine_->Stats().entities, keys.size());
  std::vector<std::string_view> asked(keys.begin(), keys.end());
  asked.push_back(std::string_view(keys[150]).substr(0, 45));  // a prefix of a stored heap key
  const std::string longer = keys.back() + "x";
  asked.push_back(longer);
  std::vector<FeatureColumn> c = Online(asked, {"amount_sum@1h"});
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_EQ(c[0].statuses[i], FeatureStatus::kPresent) << keys[i];
    const double want = static_cast<double>(i) * static_cast<double>(i % 3 + 1);
    const auto* got = std::get_if<Value>(&c[0].values[i]);
    ASSERT_NE(got, nullptr) << keys[i];
    EXPECT_EQ(std::get<double>(*got), want) << keys[i];
  }
  EXPECT_EQ(c[0].statuses[keys.size()], FeatureStatus::kNotFound);
  EXPECT_EQ(c[0].statuses[keys.size() + 1], FeatureStatus::kNotFound);
  clock_.Advance(40 * kDay);
  engine_->SweepExpiredOnce();
  EXPECT_EQ(engine_->Stats().entities, 0u);
}

TEST_F(FeaturesTest, BadFeatureRefsAreNamed) {
  std::vector<std::string_view> entities = {"u1"};
  auto err = [&](std::string_view ref) {
    std::vector<std::string_view> f = {ref};
    Result<std::vector<FeatureColumn>> r = engine_->GetOnlineFeatures(entities, f, std::nullopt);
    EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument)) << ref;
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_THAT(err("nope"), HasSubstr("feature 'nope': no aggregation or derived feature named 'nope'"));
  EXPECT_THAT(err("n"), HasSubstr("has 3 windows (1h, 6h, 2d); name one, e.g. n@1h"));
  EXPECT_THAT(err("n@5h"), HasSubstr("aggregation 'n' has no window '5h'; its windows: 1h, 6h, 2d"));
  EXPECT_THAT(err("n@soon"), HasSubstr("has no window 'soon'"));
  EXPECT_THAT(err("missing:age"), HasSubstr("feature 'missing:age': unknown table 'missing'"));
  EXPECT_THAT(err("profile:height"), HasSubstr("table 'profile' has no field 'height'"));
  std::vector<std::string_view> none;
  EXPECT_THAT(engine_->GetOnlineFeatures(entities, none, std::nullopt),
              StatusIs(StatusCode::kInvalidArgument));
  std::vector<std::string_view> one = {"n_1h"};
  std::vector<std::string_view> empty_entity = {""};
  EXPECT_THAT(engine_->GetOnlineFeatures(empty_entity, one, std::nullopt),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(FeaturesTest, AnAggregationRegisteredAtRunTimeIsBackfilledFromHistory) {
  std::mt19937_64 rng(7);
  std::vector<RawEvent> log;
  const Micros start = clock_.NowMicros();
  for (int i = 0; i < 400; ++i) {
    clock_.Set(start + i * kMinute);
    RawEvent e{"u" + std::to_string(i % 5), clock_.NowMicros() - kSecond,
               std::uniform_real_distribution<double>(0, 100)(rng), i, "m" + std::to_string(i % 13)};
    ASSERT_THAT(Push(*engine_, {e}), IsOk());
    log.push_back(e);
  }
  config::Definitions defs;
  defs.aggregations.push_back(Agg("late_sum", "sum", "amount", 0, {kHour, 6 * kHour}));
  defs.aggregations.push_back(Agg("late_top", "top_k", "merchant", 3, {6 * kHour}));
  Result<ApplyReport> report = engine_->ApplyDefinitions(defs);
  ASSERT_THAT(report, IsOk());
  EXPECT_EQ(report->aggregations_added.size(), 2u);
  EXPECT_EQ(report->entities_backfilled, 10u);  // 5 entities x 2 aggregations
  EXPECT_EQ(report->events_replayed, 800u);
  const Micros now = clock_.NowMicros();
  for (int u = 0; u < 5; ++u) {
    const std::string user = "u" + std::to_string(u);
    std::vector<FeatureColumn> c = Online({user}, {"late_sum@1h", "late_sum@6h", "late_top"});
    ExpectNear(c[0].values[0], Reference("sum", "amount", 0, kHour, log, user, now), "sum", user);
    ExpectNear(c[1].values[0], Reference("sum", "amount", 0, 6 * kHour, log, user, now), "sum", user);
    ExpectNear(c[2].values[0], Reference("top_k", "merchant", 3, 6 * kHour, log, user, now), "top_k",
               user);
  }
  // Applying the same definition again is a no-op; changing it is refused.
  Result<ApplyReport> again = engine_->ApplyDefinitions(defs);
  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE(again->aggregations_added.empty());
  defs.aggregations[0].windows = {kHour};
  EXPECT_THAT(engine_->ApplyDefinitions(defs), StatusIs(StatusCode::kAlreadyExists));
  EXPECT_EQ(engine_->ListDefinitions().aggregations.size(), MakeConfig().definitions.aggregations.size() + 2);
}

// Retained events below RAM (event_templates.NAME.history_ssd_after, issue #6 point 5): the
// same random stream as the parity test, with events older than 6h moved to a real RocksDB tier
// while it runs; historical answers, and a backfill of an aggregation added at the end, read
// them back and still equal the brute-force reference.
class HistoryBelowRamTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open() {
    engine_.reset();
    config::Config c = MakeConfig();
    c.storage.data_dir = data_.path();
    c.definitions.event_templates[0].history_ssd_after_micros = 6 * kHour;
    Result<std::unique_ptr<Engine>> e = Engine::Create(c, clock_);
    ASSERT_THAT(e, IsOk());
    engine_ = std::move(*e);
  }
  std::vector<FeatureColumn> Historical(const std::vector<std::string>& users, Micros as_of,
                                        const std::vector<std::string_view>& features) {
    std::vector<EntityRow> rows;
    for (const std::string& u : users) rows.push_back({u, as_of});
    Result<std::vector<FeatureColumn>> r = engine_->GetHistoricalFeatures(rows, features);
    EXPECT_THAT(r, IsOk());
    return r.ok() ? *r : std::vector<FeatureColumn>{};
  }

  ::ods::testing::TempDir data_;
  FakeClock clock_{Micros{1'700'000'000} * kSecond + 12'345};
  std::unique_ptr<Engine> engine_;
};

TEST_F(HistoryBelowRamTest, HistoricalAnswersAndBackfillsReadEventsBelowRam) {
  std::mt19937_64 rng(20261202);
  const std::vector<std::string> users = {"u0", "u1", "u2", "u3", "u4"};
  const std::vector<std::string> merchants = {"m0", "m1", "m2", "m3", "m4", "m5"};
  const config::Config config = MakeConfig();
  std::vector<std::string> refs;
  for (const auto& a : config.definitions.aggregations) {
    for (Micros w : a.windows) refs.push_back(a.name + "@" + FormatDuration(w));
  }
  std::vector<std::string_view> ref_views(refs.begin(), refs.end());
  std::vector<RawEvent> log;
  std::vector<Micros> checkpoints;
  Micros now = clock_.NowMicros();
  for (int step = 0; step < 120; ++step) {
    const Micros previous = now;
    now += std::uniform_int_distribution<Micros>(kMinute, 2 * kHour)(rng);
    clock_.Set(now);
    std::vector<RawEvent> batch;
    const int count = std::uniform_int_distribution<int>(0, 30)(rng);
    for (int i = 0; i < count; ++i) {
      RawEvent e;
      e.user = users[std::uniform_int_distribution<size_t>(0, users.size() - 1)(rng)];
      // Mostly in order, some late by up to 3h (allowed_lateness): the move takes only the
      // arrival-order prefix older than 6h, so late events stay in RAM until it reaches them.
      e.time = std::uniform_int_distribution<Micros>(previous + 1, now)(rng);
      if (i % 5 == 4) e.time = std::uniform_int_distribution<Micros>(now - 3 * kHour + kMinute, now)(rng);
      e.amount = std::uniform_real_distribution<double>(-50, 500)(rng);
      e.qty = std::uniform_int_distribution<int64_t>(-5, 100)(rng);
      e.merchant = merchants[std::uniform_int_distribution<size_t>(0, merchants.size() - 1)(rng)];
      e.has_amount = i % 11 != 5;
      batch.push_back(e);
    }
    Result<PushResult> pushed = Push(*engine_, batch);
    ASSERT_THAT(pushed, IsOk());
    ASSERT_EQ(pushed->applied, batch.size());
    log.insert(log.end(), batch.begin(), batch.end());
    engine_->SweepHistoryOnce();
    if (step % 4 == 3) checkpoints.push_back(now);
  }
  const EngineStats stats = engine_->Stats();
  ASSERT_GT(stats.history_moved, log.size() / 2) << "most events are older than 6h by now";
  EXPECT_EQ(stats.history_events_ssd, stats.history_moved);  // nothing past the 30d retention
  size_t compared = 0;
  for (Micros at : checkpoints) {
    const std::vector<FeatureColumn> historical = Historical(users, at, ref_views);
    ASSERT_EQ(historical.size(), refs.size());
    size_t f = 0;
    for (const auto& a : config.definitions.aggregations) {
      for (Micros w : a.windows) {
        for (size_t u = 0; u < users.size(); ++u) {
          const bool known = std::any_of(log.begin(), log.end(), [&](const RawEvent& e) {
            return e.user == users[u] && e.time <= at;
          });
          const std::string what = refs[f] + " of " + users[u] + " at " + std::to_string(at);
          if (!known) {
            EXPECT_EQ(historical[f].statuses[u], FeatureStatus::kNotFound) << what;
            continue;
          }
          ExpectNear(historical[f].values[u], Reference(a.fn, a.field, a.n, w, log, users[u], at),
                     a.fn, what);
          ++compared;
        }
        ++f;
      }
    }
  }
  EXPECT_GT(compared, 1000u);

  // An aggregation added now is backfilled from the events in RAM and below RAM alike.
  config::Definitions defs;
  defs.aggregations.push_back(Agg("late_sum", "sum", "amount", 0, {2 * kDay}));
  defs.aggregations.push_back(Agg("late_top", "top_k", "merchant", 2, {2 * kDay}));
  Result<ApplyReport> report = engine_->ApplyDefinitions(defs);
  ASSERT_THAT(report, IsOk());
  EXPECT_EQ(report->events_replayed, 2 * log.size());  // every event, below RAM or not
  std::vector<std::string_view> user_views(users.begin(), users.end());
  const std::vector<std::string_view> late = {"late_sum", "late_top"};
  Result<std::vector<FeatureColumn>> online =
      engine_->GetOnlineFeatures(user_views, late, std::nullopt);
  ASSERT_THAT(online, IsOk());
  for (size_t u = 0; u < users.size(); ++u) {
    ExpectNear((*online)[0].values[u], Reference("sum", "amount", 0, 2 * kDay, log, users[u], now),
               "sum", users[u]);
    ExpectNear((*online)[1].values[u],
               Reference("top_k", "merchant", 2, 2 * kDay, log, users[u], now), "top_k", users[u]);
  }
}

TEST_F(HistoryBelowRamTest, EventsBelowRamGoPastTheRetentionWithTheirEntityAndAtRestart) {
  const Micros start = clock_.NowMicros();
  for (int i = 0; i < 50; ++i) {
    ASSERT_THAT(Push(*engine_, {{"u1", start - kSecond, 1.0, i, "m"}, {"u2", start - kSecond, 2.0, i, "m"}}),
                IsOk());
  }
  clock_.Advance(7 * kHour);
  EXPECT_EQ(engine_->SweepHistoryOnce(), 100u);
  EXPECT_EQ(engine_->Stats().history_events_ssd, 100u);
  EXPECT_EQ(engine_->SweepHistoryOnce(), 0u);  // nothing more is old enough
  // u2 keeps getting events: its old ones go when they pass the 30d retention.
  clock_.Advance(30 * kDay);
  ASSERT_THAT(Push(*engine_, {{"u2", clock_.NowMicros() - kSecond, 3.0, 1, "m"}}), IsOk());
  engine_->SweepExpiredOnce();  // u1 is idle past every window and the retention: it goes
  EXPECT_EQ(engine_->Stats().entities, 1u);
  engine_->SweepHistoryOnce();
  EXPECT_EQ(engine_->Stats().history_events_ssd, 0u);
  std::vector<FeatureColumn> h = Historical({"u2"}, clock_.NowMicros(), {"n@1h", "n@2d"});
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].values[0], aggregate::Output(Value(int64_t{1})));
  // A restart starts with no event state, below RAM included.
  clock_.Advance(7 * kHour);
  engine_->SweepHistoryOnce();
  Open();
  EXPECT_EQ(engine_->Stats().history_events_ssd, 0u);
  EXPECT_EQ(Historical({"u2"}, clock_.NowMicros(), {"n@2d"})[0].statuses[0],
            FeatureStatus::kNotFound);
}

TEST(HistoryBelowRamConfigTest, ATemplateAppliedAtRunTimeNeedsTheSsdTier) {
  FakeClock clock{Micros{1'700'000'000} * kSecond};
  config::Config c = MakeConfig();
  c.definitions = {};
  Result<std::unique_ptr<Engine>> engine = Engine::Create(c, clock);
  ASSERT_THAT(engine, IsOk());
  config::Definitions defs = MakeConfig().definitions;
  defs.aggregations.clear();
  defs.event_templates[0].history_ssd_after_micros = kHour;
  EXPECT_THAT((*engine)->ApplyDefinitions(defs),
              StatusIs(StatusCode::kFailedPrecondition,
                       HasSubstr("event_templates.tx.history_ssd_after: no SSD tier is open")));
  EXPECT_TRUE((*engine)->ListDefinitions().event_templates.empty());
}

config::DerivedFeatureConfig Weighted(std::string name,
                                      std::vector<std::pair<std::string, double>> inputs) {
  config::DerivedFeatureConfig d;
  d.name = std::move(name);
  d.fn = "weighted";
  d.position = "req:7:3";
  for (auto& [ref, weight] : inputs) d.inputs.push_back({ref, weight, "req:7:" + ref});
  return d;
}

// A weighted derived feature is the weighted sum of its inputs as read in the same call, online
// and as of any past time; an input with no value leaves it without one; STALE propagates.
TEST_F(FeaturesTest, WeightedDerivedFeatureBlendsItsInputsOnlineAndHistorically) {
  config::Definitions defs;
  defs.features.push_back(Weighted(
      "risk", {{"n@1h", 0.5}, {"amount_sum@6h", 0.25}, {"qty_max@1h", -2}, {"profile:age", 0.1}}));
  defs.features.push_back(Weighted("spend_rate", {{"amount_mean@1h", 3}}));
  Result<ApplyReport> report = engine_->ApplyDefinitions(defs);
  ASSERT_THAT(report, IsOk());
  EXPECT_EQ(report->features_added, (std::vector<std::string>{"risk", "spend_rate"}));

  const Micros now = clock_.NowMicros();
  record::Record profile;
  profile.fields = {{"age", int64_t{40}}};
  profile.event_time_micros = now - 2 * kHour;  // past the table's max_age (1h): STALE
  std::vector<shard::KeyedRecord> put = {{"u1", &profile}};
  ASSERT_THAT(engine_->Put("profile", put), IsOk());
  ASSERT_THAT(Push(*engine_, {{"u1", now - 3 * kMinute, 10.0, 4, "m1"},
                              {"u1", now - 2 * kHour, 30.0, 9, "m2"},
                              {"u2", now - kMinute, 5.0, 1, "m1"}}),
              IsOk());
  std::vector<FeatureColumn> c =
      Online({"u1", "u2", "nobody"},
             {"risk", "n@1h", "amount_sum@6h", "qty_max@1h", "profile:age", "spend_rate"});
  ASSERT_EQ(c.size(), 6u);
  EXPECT_EQ(c[0].feature, "risk");
  // u1: 0.5 x 1 + 0.25 x 40 - 2 x 4 + 0.1 x 40, STALE through profile:age.
  EXPECT_EQ(c[0].statuses[0], FeatureStatus::kStale);
  EXPECT_TRUE(c[0].values[0] == aggregate::Output(Value(0.5 * 1 + 0.25 * 40.0 - 2.0 * 4 + 0.1 * 40)));
  EXPECT_EQ(c[0].event_times[0], now - 3 * kMinute);  // the newest input's
  // u2 has no profile record: no value.
  EXPECT_EQ(c[0].statuses[1], FeatureStatus::kNotFound);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(c[0].values[1]));
  EXPECT_EQ(c[0].statuses[2], FeatureStatus::kNotFound);
  EXPECT_EQ(c[5].statuses[0], FeatureStatus::kPresent);
  EXPECT_TRUE(c[5].values[0] == aggregate::Output(Value(30.0)));  // 3 x mean 10
  EXPECT_TRUE(c[5].values[1] == aggregate::Output(Value(15.0)));
  // The same blend of the inputs' own columns, for every row.
  for (size_t row = 0; row < 3; ++row) {
    if (c[0].statuses[row] == FeatureStatus::kNotFound) continue;
    const double want = 0.5 * static_cast<double>(std::get<int64_t>(std::get<Value>(c[1].values[row]))) +
                        0.25 * std::get<double>(std::get<Value>(c[2].values[row])) -
                        2.0 * static_cast<double>(std::get<int64_t>(std::get<Value>(c[3].values[row]))) +
                        0.1 * static_cast<double>(std::get<int64_t>(std::get<Value>(c[4].values[row])));
    EXPECT_TRUE(c[0].values[row] == aggregate::Output(Value(want))) << row;
  }

  // Historical: each row as of its time, from retained history.
  clock_.Advance(3 * kHour);
  const std::vector<EntityRow> rows = {{"u1", now}, {"u2", now}, {"u1", now - 5 * kHour}};
  const std::vector<std::string_view> refs = {"spend_rate", "amount_mean@1h"};
  Result<std::vector<FeatureColumn>> h = engine_->GetHistoricalFeatures(rows, refs);
  ASSERT_THAT(h, IsOk());
  EXPECT_TRUE((*h)[0].values[0] == aggregate::Output(Value(30.0)));
  EXPECT_TRUE((*h)[0].values[1] == aggregate::Output(Value(15.0)));
  EXPECT_EQ((*h)[0].statuses[2], FeatureStatus::kNotFound);  // before any event of u1
  EXPECT_EQ((*h)[1].statuses[2], FeatureStatus::kNotFound);
  EXPECT_EQ(engine_->ListDefinitions().features.size(), 2u);
}

// For access checks: each ref's table or template; a derived feature through its inputs.
TEST_F(FeaturesTest, FeatureSourcesNameTheTablesAndTemplatesAFeatureReads) {
  config::Definitions defs;
  defs.features.push_back(Weighted("blend", {{"n@1h", 1}, {"profile:age", 2}}));
  ASSERT_THAT(engine_->ApplyDefinitions(defs), IsOk());
  std::vector<std::string_view> features = {"amount_sum@6h", "profile:age", "qty_max", "blend"};
  std::vector<std::string_view> sources;
  ASSERT_THAT(engine_->FeatureSources(features, sources), IsOk());
  EXPECT_EQ(sources, (std::vector<std::string_view>{"tx", "profile", "tx", "tx", "profile"}));
  std::vector<std::string_view> unknown = {"nope@1h"};
  EXPECT_THAT(engine_->FeatureSources(unknown, sources), StatusIs(StatusCode::kInvalidArgument));
  std::vector<std::string_view> unknown_table = {"orders:total"};
  EXPECT_THAT(engine_->FeatureSources(unknown_table, sources),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(FeaturesTest, BadDerivedFeaturesAreRejectedNamingTheInputAndApplyNothing) {
  config::Definitions defs;
  defs.features.push_back(Weighted("a", {{"nope@1h", 1}}));
  defs.features.push_back(Weighted("b", {{"top_merchants@1h", 1}}));
  defs.features.push_back(Weighted("c", {{"last_merchant@1h", 1}}));
  defs.features.push_back(Weighted("d", {{"n@7h", 1}}));
  defs.features.push_back(Weighted("e", {{"n", 1}}));
  defs.features.push_back(Weighted("n_1h", {{"n@1h", 1}}));  // an aggregation's name
  defs.features.push_back(Weighted("f", {{"profile:height", 1}}));
  defs.features.push_back(Weighted("g", {{"nowhere:x", 1}}));
  Result<ApplyReport> r = engine_->ApplyDefinitions(defs);
  ASSERT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  const std::string m(r.status().message());
  EXPECT_THAT(m, HasSubstr("req:7:nope@1h: features.a.inputs.nope@1h: no aggregation named 'nope'"));
  EXPECT_THAT(m, HasSubstr("features.b.inputs.top_merchants@1h: aggregation 'top_merchants' "
                           "(top_k of string) does not give a number"));
  EXPECT_THAT(m, HasSubstr("features.c.inputs.last_merchant@1h: aggregation 'last_merchant' "
                           "(last of string) does not give a number"));
  EXPECT_THAT(m, HasSubstr("features.d.inputs.n@7h: aggregation 'n' has no window '7h'"));
  EXPECT_THAT(m, HasSubstr("features.e.inputs.n: aggregation 'n' has 3 windows"));
  EXPECT_THAT(m, HasSubstr("req:7:3: features.n_1h: an aggregation has this name"));
  EXPECT_THAT(m, HasSubstr("features.f.inputs.profile:height: table 'profile' has no field "
                           "'height'"));
  EXPECT_THAT(m, HasSubstr("features.g.inputs.nowhere:x: no table 'nowhere'"));
  EXPECT_TRUE(engine_->ListDefinitions().features.empty());

  // A derived feature may not feed another; a redefinition with other weights is refused; the
  // same definition again is a no-op.
  config::Definitions ok;
  ok.features.push_back(Weighted("blend", {{"n@1h", 1}}));
  ASSERT_THAT(engine_->ApplyDefinitions(ok), IsOk());
  config::Definitions nested;
  nested.features.push_back(Weighted("twice", {{"blend", 2}}));
  EXPECT_THAT(engine_->ApplyDefinitions(nested).status().message(),
              HasSubstr("'blend' is a derived feature; inputs must be aggregations or table "
                        "fields"));
  ASSERT_THAT(engine_->ApplyDefinitions(ok), IsOk());
  ok.features[0].inputs[0].weight = 2;
  EXPECT_THAT(engine_->ApplyDefinitions(ok), StatusIs(StatusCode::kAlreadyExists));
  config::Definitions clash;
  clash.aggregations.push_back(Agg("blend", "count", ""));
  EXPECT_THAT(engine_->ApplyDefinitions(clash).status().message(),
              HasSubstr("a derived feature has this name"));
}

TEST_F(FeaturesTest, BadDefinitionsAreRejectedWithTheirPosition) {
  config::Definitions defs;
  defs.aggregations.push_back(Agg("s", "sum", "merchant"));
  defs.aggregations.back().position = "req:3:5";
  defs.aggregations.push_back(Agg("q", "median", "amount"));
  Result<ApplyReport> r = engine_->ApplyDefinitions(defs);
  ASSERT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(r.status().message(), HasSubstr("req:3:5: aggregations.s: field 'merchant': "));
  EXPECT_THAT(r.status().message(), HasSubstr("unknown fn 'median'"));
  // Nothing was applied.
  EXPECT_EQ(engine_->ListDefinitions().aggregations.size(), MakeConfig().definitions.aggregations.size());
}

TEST_F(FeaturesTest, IdleEntitiesAreSweptOnceNothingCanBeAnsweredFromThem) {
  ASSERT_THAT(Push(*engine_, {{"u1", clock_.NowMicros() - kSecond, 1.0, 1, "m"}}), IsOk());
  ASSERT_EQ(engine_->Stats().entities, 1u);
  clock_.Advance(29 * kDay);  // past the longest window (2d), within retention (30d)
  engine_->SweepExpiredOnce();
  EXPECT_EQ(engine_->Stats().entities, 1u);
  clock_.Advance(2 * kDay);
  engine_->SweepExpiredOnce();
  EXPECT_EQ(engine_->Stats().entities, 0u);
  EXPECT_EQ(Online({"u1"}, {"n@1h"})[0].statuses[0], FeatureStatus::kNotFound);
}

// Hostile times: event times, as_of and record times at the int64 limits are answered (or
// rejected) with a clear status, never by overflowing (UBSan aborts on that).
TEST_F(FeaturesTest, TimesAtTheInt64LimitsDoNotOverflow) {
  constexpr Micros kMin = std::numeric_limits<Micros>::min();
  constexpr Micros kMax = std::numeric_limits<Micros>::max();
  std::vector<std::vector<Field>> fields = {
      {{"user", std::string("u1")}, {"ts", int64_t{kMin}}, {"amount", 1.0}},
      {{"user", std::string("u1")}, {"ts", record::Timestamp{kMax}}, {"amount", 1.0}},
  };
  std::vector<EventInput> inputs = {{"tx", fields[0], ""}, {"tx", fields[1], ""}};
  Result<PushResult> r = engine_->PushEvents(inputs);
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->rejected.size(), 2u);
  EXPECT_EQ(r->rejected[0].code, StatusCode::kOutOfRange);
  EXPECT_THAT(r->rejected[0].reason, HasSubstr("template 'tx', key 'u1': event time"));
  EXPECT_THAT(r->rejected[0].reason, HasSubstr("allowed_lateness 3h"));
  EXPECT_EQ(r->rejected[1].code, StatusCode::kOutOfRange);
  EXPECT_THAT(r->rejected[1].reason, HasSubstr("in the future"));

  ASSERT_THAT(Push(*engine_, {{"u1", clock_.NowMicros() - kSecond, 2.0, 1, "m"}}), IsOk());
  record::Record profile;  // a client may stamp a record with any time
  profile.fields = {{"age", int64_t{33}}};
  profile.event_time_micros = kMin;
  std::vector<shard::KeyedRecord> put = {{"u1", &profile}};
  ASSERT_THAT(engine_->Put("profile", put), IsOk());

  std::vector<FeatureColumn> c = Online({"u1"}, {"profile:age", "n@1h"});
  EXPECT_EQ(c[0].statuses[0], FeatureStatus::kStale);
  EXPECT_EQ(c[1].statuses[0], FeatureStatus::kPresent);

  std::vector<std::string_view> features = {"profile:age", "n@1h", "n@2d", "amount_sum@6h"};
  std::vector<EntityRow> rows = {{"u1", kMin}, {"u1", kMin + 1}, {"u1", kMax}, {"u1", kMax - 1}};
  Result<std::vector<FeatureColumn>> h = engine_->GetHistoricalFeatures(rows, features);
  ASSERT_THAT(h, IsOk());
  for (size_t f = 1; f < features.size(); ++f) {
    EXPECT_EQ((*h)[f].statuses[0], FeatureStatus::kOutOfRetention) << features[f];
    EXPECT_EQ((*h)[f].statuses[1], FeatureStatus::kOutOfRetention) << features[f];
  }
  EXPECT_EQ((*h)[0].statuses[2], FeatureStatus::kStale);  // record time kMin, as of kMax
  EXPECT_TRUE((*h)[1].values[2] == aggregate::Output(Value(int64_t{0})));  // window past all events
  for (std::optional<Micros> as_of : {std::optional<Micros>(kMin), std::optional<Micros>(kMax)}) {
    std::vector<std::string_view> entities = {"u1"};
    EXPECT_THAT(engine_->GetOnlineFeatures(entities, features, as_of), IsOk());
  }
}

// NaN and infinity are refused in events as in records: they would poison min/max (which then
// depend on arrival order), mean and stddev for a whole window.
TEST_F(FeaturesTest, NanAndInfinityInEventsAreRejectedByName) {
  const Micros now = clock_.NowMicros();
  const Field user{"user", std::string("u1")};
  const Field ts{"ts", record::Timestamp{now - kSecond}};
  std::vector<std::vector<Field>> fields = {
      {user, ts, {"amount", std::nan("")}},
      {user, ts, {"amount", -std::numeric_limits<double>::infinity()}},
      {user, ts, {"amount", 4.0}},
  };
  std::vector<EventInput> inputs;
  for (const auto& f : fields) inputs.push_back({"tx", f, ""});
  Result<PushResult> r = engine_->PushEvents(inputs);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->applied, 1u);
  ASSERT_EQ(r->rejected.size(), 2u);
  for (const EventRejection& e : r->rejected) {
    EXPECT_EQ(e.code, StatusCode::kInvalidArgument);
    EXPECT_THAT(e.reason, HasSubstr("template 'tx', key 'u1': field 'amount'"));
    EXPECT_THAT(e.reason, HasSubstr("NaN and infinity"));
  }
  std::vector<FeatureColumn> c = Online({"u1"}, {"amount_min@1h", "amount_mean@1h", "n@1h"});
  EXPECT_TRUE(c[0].values[0] == aggregate::Output(Value(4.0)));
  EXPECT_TRUE(c[1].values[0] == aggregate::Output(Value(4.0)));
  EXPECT_TRUE(c[2].values[0] == aggregate::Output(Value(int64_t{1})));
}

// Peak resident memory of this process, in bytes.
uint64_t MaxRssBytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;
}

// A small request can name one entity and one list feature many times over: the answer's budget
// (limits.max_message_bytes) must stop the lookup while it reads, not after it built every value
// (10000 rows x 1000 features x 1000-value lists would take the server down).
TEST(FeaturesBudgetTest, AnOversizedAnswerIsRefusedBeforeItIsBuilt) {
  FakeClock clock(Micros{1'700'000'000} * kSecond);
  config::Config config = MakeConfig();
  config.limits.max_message_bytes = 1 << 20;
  config.definitions.aggregations.push_back(Agg("recent", "last_n", "qty", 1000, {kHour}));
  Result<std::unique_ptr<Engine>> engine = Engine::Create(config, clock);
  ASSERT_THAT(engine, IsOk());
  std::vector<RawEvent> events;
  // Newest first, so each lands at the end of the last_n list (cheap to fold and replay).
  for (int i = 0; i < 1000; ++i) {
    events.push_back({"u1", clock.NowMicros() - kSecond - i, 1.0, i, "m"});
  }
  ASSERT_THAT(Push(**engine, events), IsOk());

  // Built in full, the answer would be 2000 x 10 lists of 1000 values: about 1 GB.
  std::vector<std::string_view> entities(2000, "u1");
  std::vector<std::string_view> features(10, "recent");
  const uint64_t rss_before = MaxRssBytes();
  for (bool historical : {false, true}) {
    std::optional<Micros> as_of;
    if (historical) as_of = clock.NowMicros();
    Result<std::vector<FeatureColumn>> r = (*engine)->GetOnlineFeatures(entities, features, as_of);
    EXPECT_THAT(r, StatusIs(StatusCode::kResourceExhausted));
    EXPECT_THAT(r.status().message(), HasSubstr("limits.max_message_bytes"));
  }
  EXPECT_LT(MaxRssBytes() - rss_before, uint64_t{200} << 20);
}

// Records and event state share storage.ram.max_bytes: a shard at its share refuses events
// (RESOURCE_EXHAUSTED by index, naming template, key and budget) and still answers reads; once
// its state ages out and is swept it takes events again.
TEST(FeaturesBudgetTest, EventsStopAtTheRamBudgetAndResumeOnceStateIsSwept) {
  FakeClock clock(Micros{1'700'000'000} * kSecond);
  config::Config config = MakeConfig();
  config.storage.ram_max_bytes = 4 << 20;  // 1 MiB per shard
  Result<std::unique_ptr<Engine>> engine = Engine::Create(config, clock);
  ASSERT_THAT(engine, IsOk());
  uint64_t applied = 0;
  uint64_t refused = 0;
  int next = 0;
  for (int batch = 0; batch < 200 && refused == 0; ++batch) {
    std::vector<RawEvent> events;
    for (int i = 0; i < 500; ++i, ++next) {
      events.push_back({"user-" + std::to_string(next), clock.NowMicros() - kSecond, 1.0, 1,
                        "merchant-" + std::to_string(next % 97)});
    }
    Result<PushResult> r = Push(**engine, events);
    ASSERT_THAT(r, IsOk());
    applied += r->applied;
    for (size_t k = 0; k < r->rejected.size(); ++k) {
      const EventRejection& rej = r->rejected[k];
      EXPECT_EQ(rej.code, StatusCode::kResourceExhausted) << rej.reason;
      EXPECT_THAT(rej.reason, HasSubstr("template 'tx', key 'user-"));
      EXPECT_THAT(rej.reason, HasSubstr("storage.ram.max_bytes 4MiB"));
      if (k > 0) {
        EXPECT_LT(r->rejected[k - 1].index, rej.index);  // in index order
      }
    }
    EXPECT_EQ(r->applied + r->rejected.size(), events.size());
    refused += r->rejected.size();
  }
  ASSERT_GT(refused, 0u) << "the budget never filled";
  const EngineStats full = (*engine)->Stats();
  // Each shard may overshoot its share by what one batch adds to it before it is refused.
  EXPECT_LT(full.event_state_bytes, uint64_t{6} << 20);
  EXPECT_GT(full.event_state_bytes, uint64_t{3} << 20);
  EXPECT_EQ(full.entities, applied);
  // Reads still answer.
  const std::vector<std::string_view> who = {"user-0"};
  const std::vector<std::string_view> what = {"n@1h"};
  Result<std::vector<FeatureColumn>> c = (*engine)->GetOnlineFeatures(who, what, std::nullopt);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ((*c)[0].statuses[0], FeatureStatus::kPresent);
  // Past every window and the retention, the sweeper frees the state and events flow again.
  clock.Advance(40 * kDay);
  for (int i = 0; i < 100 && (*engine)->Stats().entities > 0; ++i) (*engine)->SweepExpiredOnce();
  EXPECT_EQ((*engine)->Stats().entities, 0u);
  Result<PushResult> again =
      Push(**engine, {{"late-comer", clock.NowMicros() - kSecond, 1.0, 1, "m"}});
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->applied, 1u);
}

// Every cell of the answer costs bytes on the wire (status, event time, value wrapper) even when
// nothing is found: a grid of rows x features that cannot fit limits.max_message_bytes is
// refused before its columns are allocated, not built and then failed by the transport.
TEST(FeaturesBudgetTest, AGridTooLargeForTheAnswerIsRefusedEvenWhenNothingIsFound) {
  FakeClock clock(Micros{1'700'000'000} * kSecond);
  config::Config config = MakeConfig();
  config.limits.max_message_bytes = 64 << 10;
  Result<std::unique_ptr<Engine>> engine = Engine::Create(config, clock);
  ASSERT_THAT(engine, IsOk());
  std::vector<std::string> keys;
  for (int i = 0; i < 1000; ++i) keys.push_back("nobody" + std::to_string(i));
  std::vector<std::string_view> entities(keys.begin(), keys.end());
  std::vector<std::string_view> features(100, "n@1h");  // 100000 cells: over 1 MB on the wire
  Result<std::vector<FeatureColumn>> r =
      (*engine)->GetOnlineFeatures(entities, features, std::nullopt);
  EXPECT_THAT(r, StatusIs(StatusCode::kResourceExhausted));
  EXPECT_THAT(r.status().message(), HasSubstr("1000 entities x 100 features"));
  std::vector<EntityRow> rows;
  for (std::string_view e : entities) rows.push_back({e, clock.NowMicros()});
  EXPECT_THAT((*engine)->GetHistoricalFeatures(rows, features),
              StatusIs(StatusCode::kResourceExhausted));
  // A grid that fits is answered.
  entities.resize(10);
  features.resize(10);
  EXPECT_THAT((*engine)->GetOnlineFeatures(entities, features, std::nullopt), IsOk());
}

}  // namespace
}  // namespace ods::engine
