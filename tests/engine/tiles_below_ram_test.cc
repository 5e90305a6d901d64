// Aggregation tiles below RAM (event_templates.NAME.tiles_ssd_after, issue #6 point 5): an engine
// that moves old tiles to a real RocksDB tier answers every online read exactly as a twin engine
// that keeps them all in RAM, over 400 days of events and windows up to 365 days.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
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
using record::Field;
using ::testing::HasSubstr;

constexpr Micros kSecond = 1'000'000;
constexpr Micros kMinute = 60 * kSecond;
constexpr Micros kHour = 60 * kMinute;
constexpr Micros kDay = 24 * kHour;

// A day (hour tiles), 30 and 365 days (day tiles).
const std::vector<Micros> kWindows = {kDay, 30 * kDay, 365 * kDay};

config::AggregationConfig Agg(std::string name, std::string fn, std::string field, uint32_t n = 0) {
  config::AggregationConfig a;
  a.name = std::move(name);
  a.template_name = "tx";
  a.fn = std::move(fn);
  a.field = std::move(field);
  a.n = n;
  a.windows = kWindows;
  a.position = "tiles_below_ram_test:1:1";
  return a;
}

// `tiles_after` 0: every tile in RAM; else tiles move below RAM under `data_dir`.
config::Config MakeConfig(Micros tiles_after, const std::string& data_dir) {
  config::Config c;
  c.source = "tiles_below_ram_test";
  c.server.shards = 2;
  c.limits.max_batch_size = 10'000;
  c.storage.ram_max_bytes = 0;
  c.storage.data_dir = data_dir;
  config::EventTemplateConfig t;
  t.name = "tx";
  t.key_field = "user";
  t.timestamp_field = "ts";
  t.fields = {{"amount", ValueType::kDouble}, {"merchant", ValueType::kString}};
  t.allowed_lateness_micros = 3 * kHour;
  t.history_retention_micros = 0;  // tiles only: what is measured is theirs
  t.tiles_ssd_after_micros = tiles_after;
  t.position = "tiles_below_ram_test:1:1";
  c.definitions.event_templates.push_back(t);
  auto& aggs = c.definitions.aggregations;
  aggs.push_back(Agg("n", "count", ""));
  aggs.push_back(Agg("amount_sum", "sum", "amount"));
  aggs.push_back(Agg("amount_mean", "mean", "amount"));
  aggs.push_back(Agg("amount_stddev", "stddev", "amount"));
  aggs.push_back(Agg("amount_max", "max", "amount"));
  aggs.push_back(Agg("first_merchant", "first", "merchant"));
  aggs.push_back(Agg("last_amounts", "last_n", "amount", 3));
  aggs.push_back(Agg("merchants", "distinct_count", "merchant"));
  aggs.push_back(Agg("top_merchants", "top_k", "merchant", 2));
  return c;
}

struct Event {
  std::string user;
  Micros time = 0;
  double amount = 0;
  std::string merchant;
};

Result<PushResult> Push(Engine& engine, const std::vector<Event>& events) {
  std::vector<std::vector<Field>> fields;
  for (const Event& e : events) {
    fields.push_back({{"user", e.user},
                      {"ts", record::Timestamp{e.time}},
                      {"amount", e.amount},
                      {"merchant", e.merchant}});
  }
  std::vector<EventInput> inputs;
  for (const auto& f : fields) inputs.push_back({"tx", f, {}});
  return engine.PushEvents(inputs);
}

class TilesBelowRamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<Engine>> ram = Engine::Create(MakeConfig(0, ""), clock_);
    ASSERT_THAT(ram, IsOk());
    ram_ = std::move(*ram);
    OpenTiered();
    for (int u = 0; u < 8; ++u) users_.push_back("user" + std::to_string(u));
    for (const auto& a : MakeConfig(0, "").definitions.aggregations) {
      for (Micros w : a.windows) refs_.push_back(a.name + "@" + FormatDuration(w));
    }
  }
  void OpenTiered(uint64_t tile_cache_bytes = uint64_t{64} << 20) {
    tiered_.reset();
    config::Config c = MakeConfig(2 * kDay, data_.path());
    c.storage.tile_cache_bytes = tile_cache_bytes;
    Result<std::unique_ptr<Engine>> tiered = Engine::Create(c, clock_);
    ASSERT_THAT(tiered, IsOk());
    tiered_ = std::move(*tiered);
  }

  // Pushes the same events to both engines.
  void PushBoth(const std::vector<Event>& events) {
    for (Engine* e : {ram_.get(), tiered_.get()}) {
      Result<PushResult> pushed = Push(*e, events);
      ASSERT_THAT(pushed, IsOk());
      ASSERT_EQ(pushed->applied, events.size());
    }
  }

  // `days` of random events, sweeping the tiered engine as odsd's sweeper would.
  void Ingest(int days, std::mt19937_64& rng) {
    const Micros end = clock_.NowMicros() + days * kDay;
    while (clock_.NowMicros() < end) {
      const Micros previous = clock_.NowMicros();
      clock_.Advance(std::uniform_int_distribution<Micros>(kHour, 20 * kHour)(rng));
      const Micros now = clock_.NowMicros();
      std::vector<Event> batch(std::uniform_int_distribution<size_t>(0, 6)(rng));
      for (Event& e : batch) {
        e.user = users_[std::uniform_int_distribution<size_t>(0, users_.size() - 1)(rng)];
        // Some late, within allowed_lateness (3h).
        e.time = std::uniform_int_distribution<Micros>(std::max(previous, now - 3 * kHour) + 1,
                                                       now)(rng);
        e.amount = std::uniform_real_distribution<double>(-50, 500)(rng);
        e.merchant = "m" + std::to_string(std::uniform_int_distribution<int>(0, 40)(rng));
      }
      ASSERT_NO_FATAL_FAILURE(PushBoth(batch));
      tiered_->SweepTilesOnce();
    }
  }

  // Every ref of every user: the tiered engine answers exactly as the all-RAM one.
  void ExpectSameAnswers(const std::string& context) {
    std::vector<std::string_view> users(users_.begin(), users_.end());
    std::vector<std::string_view> refs(refs_.begin(), refs_.end());
    Result<std::vector<FeatureColumn>> want = ram_->GetOnlineFeatures(users, refs, std::nullopt);
    Result<std::vector<FeatureColumn>> got = tiered_->GetOnlineFeatures(users, refs, std::nullopt);
    ASSERT_THAT(want, IsOk());
    ASSERT_THAT(got, IsOk());
    for (size_t f = 0; f < refs.size(); ++f) {
      for (size_t u = 0; u < users.size(); ++u) {
        EXPECT_TRUE((*got)[f].values[u] == (*want)[f].values[u])
            << context << ": " << refs[f] << " of " << users[u];
        EXPECT_EQ((*got)[f].statuses[u], (*want)[f].statuses[u])
            << context << ": " << refs[f] << " of " << users[u];
      }
    }
  }

  ::ods::testing::TempDir data_;
  FakeClock clock_{Micros{1'700'000'000} * kSecond + 12'345};
  std::unique_ptr<Engine> ram_;
  std::unique_ptr<Engine> tiered_;
  std::vector<std::string> users_;
  std::vector<std::string> refs_;
};

TEST_F(TilesBelowRamTest, A365DayWindowReadsTilesBelowRamExactlyAsFromRam) {
  std::mt19937_64 rng(20261203);
  for (int checkpoint = 0; checkpoint < 16; ++checkpoint) {
    ASSERT_NO_FATAL_FAILURE(Ingest(25, rng));
    ASSERT_NO_FATAL_FAILURE(ExpectSameAnswers("day " + std::to_string(25 * (checkpoint + 1))));
  }
  const EngineStats tiered = tiered_->Stats();
  const EngineStats ram = ram_->Stats();
  EXPECT_EQ(tiered.tiles_entities_ssd, users_.size());
  EXPECT_GT(tiered.tiles_moved, 16 * users_.size());
  EXPECT_GT(tiered.tiles_bytes_ssd, 0u);
  EXPECT_EQ(tiered.tier_move_errors, 0u);
  // 2 of the 365 day-tiles stay in RAM: the tiles' RAM is a small part of the all-RAM figure.
  EXPECT_LT(tiered.event_state_bytes * 5, ram.event_state_bytes)
      << tiered.event_state_bytes << " vs " << ram.event_state_bytes;
  // Reading again is served by the decoded tiles in RAM.
  ASSERT_NO_FATAL_FAILURE(ExpectSameAnswers("again"));
  const EngineStats again = tiered_->Stats();
  EXPECT_GT(tiered.tiles_cache_misses, 0u);
  EXPECT_EQ(again.tiles_cache_misses, tiered.tiles_cache_misses);
  EXPECT_GT(again.tiles_cache_hits, tiered.tiles_cache_hits);
  EXPECT_GT(again.tiles_cache_bytes, 0u);
  // Short windows only: nothing below RAM is read.
  std::vector<std::string_view> users(users_.begin(), users_.end());
  const std::vector<std::string_view> short_refs = {"n@1d", "top_merchants@1d"};
  ASSERT_THAT(tiered_->GetOnlineFeatures(users, short_refs, std::nullopt), IsOk());
  const EngineStats after_short = tiered_->Stats();
  EXPECT_EQ(after_short.tiles_cache_hits, again.tiles_cache_hits);
  EXPECT_EQ(after_short.tiles_cache_misses, again.tiles_cache_misses);
}

TEST_F(TilesBelowRamTest, TilesBelowRamGoWhenNoWindowReadsThemWithTheirEntityAndAtRestart) {
  std::mt19937_64 rng(7);
  ASSERT_NO_FATAL_FAILURE(Ingest(40, rng));
  ASSERT_EQ(tiered_->Stats().tiles_entities_ssd, users_.size());
  // user0 keeps getting events; the others go idle for longer than the longest window.
  for (int day = 0; day < 400; day += 5) {
    clock_.Advance(5 * kDay);
    ASSERT_NO_FATAL_FAILURE(PushBoth({{"user0", clock_.NowMicros() - kMinute, 1.0, "m"}}));
    tiered_->SweepTilesOnce();
    if (day % 50 == 0) {
      ASSERT_NO_FATAL_FAILURE(ExpectSameAnswers("day " + std::to_string(day)));
    }
  }
  tiered_->SweepExpiredOnce();  // idle entities go, and their blobs with them
  ram_->SweepExpiredOnce();
  tiered_->SweepTilesOnce();
  EngineStats s = tiered_->Stats();
  EXPECT_EQ(s.entities, 1u);
  EXPECT_EQ(s.tiles_entities_ssd, 1u);
  ASSERT_NO_FATAL_FAILURE(ExpectSameAnswers("after the idle entities went"));
  // user0's first 40 days are past every window: its blob holds only what a window reads.
  const uint64_t bytes_with_user0 = s.tiles_bytes_ssd;
  EXPECT_GT(bytes_with_user0, 0u);
  // Quiet for longer than the longest window: nothing below RAM is read any more.
  clock_.Advance(366 * kDay);
  tiered_->SweepTilesOnce();
  s = tiered_->Stats();
  EXPECT_EQ(s.tiles_entities_ssd, 0u);
  EXPECT_EQ(s.tiles_bytes_ssd, 0u);
  ASSERT_NO_FATAL_FAILURE(ExpectSameAnswers("past every window"));

  // A restart starts with no event state, below RAM included.
  ASSERT_NO_FATAL_FAILURE(PushBoth({{"user1", clock_.NowMicros() - kMinute, 2.0, "m"}}));
  clock_.Advance(3 * kDay);
  tiered_->SweepTilesOnce();
  ASSERT_EQ(tiered_->Stats().tiles_entities_ssd, 1u);
  ASSERT_NO_FATAL_FAILURE(OpenTiered());
  EXPECT_EQ(tiered_->Stats().tiles_entities_ssd, 0u);
  EXPECT_EQ(tiered_->Stats().entities, 0u);
}

// With a cache too small for one entity's tiles, every read decodes its blobs afresh: the same
// answers, nothing kept.
TEST_F(TilesBelowRamTest, WithoutACacheEveryReadDecodesAndAnswersAlike) {
  ASSERT_NO_FATAL_FAILURE(OpenTiered(/*tile_cache_bytes=*/100));
  std::mt19937_64 rng(99);
  ASSERT_NO_FATAL_FAILURE(Ingest(60, rng));
  ASSERT_NO_FATAL_FAILURE(ExpectSameAnswers("first"));
  ASSERT_NO_FATAL_FAILURE(ExpectSameAnswers("again"));
  const EngineStats s = tiered_->Stats();
  EXPECT_EQ(s.tiles_entities_ssd, users_.size());
  EXPECT_EQ(s.tiles_cache_hits, 0u);
  EXPECT_GE(s.tiles_cache_misses, 2 * users_.size());
  EXPECT_EQ(s.tiles_cache_bytes, 0u);
}

// tiles_ssd_after > allowed_lateness keeps accepted events out of tiles below RAM; a clock
// stepped back could let one in, which is refused, naming the entity, and changes nothing.
TEST_F(TilesBelowRamTest, AnEventIntoATileBelowRamIsRefusedAndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(PushBoth({{"user2", clock_.NowMicros() - kMinute, 5.0, "m1"}}));
  clock_.Advance(4 * kDay);
  ASSERT_NO_FATAL_FAILURE(PushBoth({{"user2", clock_.NowMicros() - kMinute, 6.0, "m2"}}));
  tiered_->SweepTilesOnce();
  ASSERT_EQ(tiered_->Stats().tiles_entities_ssd, 1u);
  const Micros now = clock_.NowMicros();
  clock_.Set(now - 3 * kDay - kHour);  // the clock steps back
  Result<PushResult> pushed = Push(*tiered_, {{"user2", clock_.NowMicros() - kMinute, 7.0, "m3"},
                                              {"user3", clock_.NowMicros() - kMinute, 8.0, "m3"}});
  ASSERT_THAT(pushed, IsOk());
  EXPECT_EQ(pushed->applied, 1u);
  ASSERT_EQ(pushed->rejected.size(), 1u);
  EXPECT_EQ(pushed->rejected[0].index, 0u);
  EXPECT_EQ(pushed->rejected[0].code, StatusCode::kOutOfRange);
  EXPECT_THAT(pushed->rejected[0].reason,
              HasSubstr("falls in an aggregation tile of entity 'user2' already moved below RAM"));
  Result<PushResult> twin = Push(*ram_, {{"user3", clock_.NowMicros() - kMinute, 8.0, "m3"}});
  ASSERT_THAT(twin, IsOk());
  ASSERT_EQ(twin->applied, 1u);
  clock_.Set(now);
  ASSERT_NO_FATAL_FAILURE(ExpectSameAnswers("after the refused event"));
}

TEST(TilesBelowRamConfigTest, ATemplateAppliedAtRunTimeNeedsTheSsdTier) {
  FakeClock clock{Micros{1'700'000'000} * kSecond};
  config::Config c = MakeConfig(0, "");
  const config::Definitions defs = [&] {
    config::Definitions d;
    d.event_templates = c.definitions.event_templates;
    d.event_templates[0].tiles_ssd_after_micros = kDay;
    return d;
  }();
  c.definitions = {};
  Result<std::unique_ptr<Engine>> engine = Engine::Create(c, clock);
  ASSERT_THAT(engine, IsOk());
  EXPECT_THAT((*engine)->ApplyDefinitions(defs),
              StatusIs(StatusCode::kFailedPrecondition,
                       HasSubstr("event_templates.tx.tiles_ssd_after: no SSD tier is open")));
  EXPECT_TRUE((*engine)->ListDefinitions().event_templates.empty());
}

}  // namespace
}  // namespace ods::engine
