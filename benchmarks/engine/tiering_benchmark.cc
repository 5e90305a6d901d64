// Tiering (issue #6 point 9), in process: Get latency by tier (RAM, SSD = RocksDB, backing =
// directory store) with p50/p99 from per-call timings, demotion throughput, how long a tier
// sweep step holds a shard, and restart-to-serving time with records on SSD. Real RocksDB and
// backing store under a temp dir. docs/benchmarks.md, "Tiering".

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "ods/common/check.h"
#include "ods/common/clock.h"
#include "ods/common/predicate.h"
#include "ods/engine/engine.h"
#include "ods/record/schema.h"
#include "ods/shard/shard.h"
#include "ods/tier/rocksdb_tier.h"

namespace ods::engine {
namespace {

using Clock = std::chrono::steady_clock;

// A fresh directory under $TMPDIR, removed with the object.
class BenchDir {
 public:
  BenchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ods-tier-bench-XXXXXX").string();
    ODS_CHECK(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~BenchDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Ten numeric fields, as the memory figure asks (f0..f9: int64 and double alternate).
record::Record TenNumbers(int64_t i) {
  record::Record r;
  for (int f = 0; f < 10; ++f) {
    if (f % 2 == 0) {
      r.fields.push_back({"f" + std::to_string(f), i * 10 + f});
    } else {
      r.fields.push_back({"f" + std::to_string(f), static_cast<double>(i) / (f + 1)});
    }
  }
  return r;
}

config::Config TierConfig(const std::string& dir, config::Promote promote) {
  config::Config c;
  c.source = "tiering_benchmark";
  c.server.shards = 4;
  c.storage.data_dir = dir;
  c.storage.durability = config::Durability::kAsync;
  c.storage.ram_max_bytes = 0;
  c.storage.backing = config::BackingConfig{};
  config::TableConfig t;
  t.name = "t";
  t.key_field = "id";
  config::TierRuleConfig rule;
  rule.to = StorageTier::kSsd;
  rule.idle_for_micros = int64_t{365} * 86'400'000'000;  // never, within a benchmark
  t.tiering.push_back(rule);
  t.promote = promote;
  c.tables.push_back(std::move(t));
  return c;
}

std::string Key(int64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "key:%012lld", static_cast<long long>(i));
  return buf;
}

void Load(Engine& engine, int64_t n) {
  std::vector<record::Record> records;
  std::vector<std::string> keys;
  std::vector<shard::KeyedRecord> items;
  for (int64_t start = 0; start < n; start += 1000) {
    records.clear();
    keys.clear();
    items.clear();
    for (int64_t i = start; i < std::min(n, start + 1000); ++i) {
      records.push_back(TenNumbers(i));
      keys.push_back(Key(i));
    }
    for (size_t j = 0; j < keys.size(); ++j) items.push_back({keys[j], &records[j]});
    ODS_CHECK(engine.Put("t", items).ok());
  }
}

void MoveAll(Engine& engine, int64_t n, StorageTier to) {
  std::vector<std::string> keys;
  std::vector<std::string_view> views;
  for (int64_t start = 0; start < n; start += 1000) {
    keys.clear();
    views.clear();
    for (int64_t i = start; i < std::min(n, start + 1000); ++i) keys.push_back(Key(i));
    for (const std::string& k : keys) views.push_back(k);
    ODS_CHECK(engine.MoveRecords("t", views, to).ok());
  }
}

// Get of one random key per call, the records all in tier range(0) (0 ram, 1 ssd, 2 backing),
// `promote: never` so they stay there. Counters p50_us and p99_us: per-call quantiles.
void BM_Tier_Get(benchmark::State& state) {
  const auto tier = static_cast<StorageTier>(state.range(0));
  constexpr int64_t kRecords = 20'000;
  BenchDir dir;
  std::unique_ptr<Engine> engine =
      std::move(Engine::Create(TierConfig(dir.path(), config::Promote::kNever), SystemClock()))
          .value();
  Load(*engine, kRecords);
  if (tier != StorageTier::kRam) MoveAll(*engine, kRecords, tier);
  std::mt19937_64 rng(42);
  std::vector<double> micros;
  micros.reserve(1 << 20);
  std::vector<std::optional<record::Record>> out;
  std::string key;
  for (auto _ : state) {
    key = Key(static_cast<int64_t>(rng() % kRecords));
    const std::string_view keys[] = {key};
    const auto start = Clock::now();
    ODS_CHECK(engine->Get("t", keys, {}, out).ok());
    const auto end = Clock::now();
    ODS_CHECK(out[0].has_value());
    micros.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
  std::sort(micros.begin(), micros.end());
  if (!micros.empty()) {
    state.counters["p50_us"] = micros[micros.size() / 2];
    state.counters["p99_us"] = micros[micros.size() * 99 / 100];
  }
  state.SetLabel(std::string(StorageTierName(tier)));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Tier_Get)->Arg(0)->Arg(1)->Arg(2)->UseRealTime();

// Records moved per second, RAM -> range(0) (1 ssd, 2 backing), by MoveRecords in batches of
// 1000 (the sweep's path: version checks, RocksDB marker batches, backing store writes).
void BM_Tier_Demote(benchmark::State& state) {
  const auto tier = static_cast<StorageTier>(state.range(0));
  constexpr int64_t kRecords = 20'000;
  int64_t moved = 0;
  for (auto _ : state) {
    state.PauseTiming();
    BenchDir dir;
    std::unique_ptr<Engine> engine =
        std::move(Engine::Create(TierConfig(dir.path(), config::Promote::kNever), SystemClock()))
            .value();
    Load(*engine, kRecords);
    state.ResumeTiming();
    MoveAll(*engine, kRecords, tier);
    moved += kRecords;
    state.PauseTiming();
    engine.reset();
    state.ResumeTiming();
  }
  state.SetLabel(std::string(StorageTierName(tier)));
  state.SetItemsProcessed(moved);
}
BENCHMARK(BM_Tier_Demote)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// How long one tier-sweep step holds a shard's lock: Shard::CollectTierMoves over 1024 of
// 100,000 RAM records whose rule tests a field predicate (decoding each record) that never
// matches, so nothing moves and every step does the full work.
void BM_Tier_SweepStepHold(benchmark::State& state) {
  auto schema = std::make_shared<const record::TableSchema>(
      "t", "id", std::vector<record::TableSchema::FieldSpec>{}, /*free_form=*/true, 0);
  auto policy = std::make_shared<shard::TieringPolicy>();
  size_t offset = 0;
  shard::TierRule rule;
  rule.to = StorageTier::kSsd;
  rule.field = ParsePredicate("f0 < 0 and f1 > 1e300", offset).value();
  policy->rules.push_back(rule);
  shard::Shard shard(0, {schema}, SystemClock(), 0, {policy});
  constexpr int64_t kRecords = 100'000;
  std::vector<record::Record> records;
  std::vector<std::string> keys;
  for (int64_t i = 0; i < kRecords; ++i) {
    records.push_back(TenNumbers(i));
    keys.push_back(Key(i));
  }
  std::vector<shard::KeyedRecord> items;
  std::vector<uint32_t> indices;
  for (size_t i = 0; i < keys.size(); ++i) {
    items.push_back({keys[i], &records[i]});
    indices.push_back(static_cast<uint32_t>(i));
  }
  std::vector<uint64_t> versions(items.size());
  shard.Put(0, items, indices, versions);
  std::vector<shard::TierMove> moves;
  for (auto _ : state) {
    moves.clear();
    benchmark::DoNotOptimize(shard.CollectTierMoves(1024, moves));
  }
  ODS_CHECK(moves.empty());
  state.SetItemsProcessed(state.iterations() * 1024);
}
BENCHMARK(BM_Tier_SweepStepHold)->Unit(benchmark::kMicrosecond);

// How long one tiles-sweep step holds a shard's lock at its worst: Shard::CollectTileMoves when
// every one of 1,000 entities has a year of day tiles (count, sum, distinct_count, top_k 3 over
// 365 days) to move, as right after tiles_ssd_after is set; the step stops at 256 KiB encoded.
// Each iteration collects (under the lock) and gives the moves back unwritten (the rows stay),
// so every step does the full work again. Counters: entities and encoded KiB per step.
void BM_Tier_TilesSweepStepHold(benchmark::State& state) {
  constexpr Micros kDay = Micros{86'400} * 1'000'000;
  FakeClock clock(Micros{1'700'000'000'000'000});
  shard::Shard shard(0, {}, clock, 0);
  auto t = std::make_shared<shard::TemplateSpec>();
  t->field_count = 2;  // 0: amount (double), 1: merchant (string)
  t->tiles_ssd_after_micros = 2 * kDay;
  t->field_names = {"amount", "merchant"};
  shard.AddTemplate(t);
  uint32_t next_id = 0;
  auto add = [&](aggregate::Fn fn, ValueType type, int32_t field, uint32_t n) {
    auto a = std::make_shared<shard::AggregationSpec>();
    a->id = next_id++;
    a->field = field;
    a->spec.fn = fn;
    a->spec.input_type = type;
    a->spec.n = n;
    a->spec.windows = {kDay, 30 * kDay, 365 * kDay};
    for (Micros w : a->spec.windows) a->spec.tiles.push_back(aggregate::DefaultTileFor(w));
    shard.AddAggregation(a);
  };
  add(aggregate::Fn::kCount, ValueType::kInt64, -1, 0);
  add(aggregate::Fn::kSum, ValueType::kDouble, 0, 0);
  add(aggregate::Fn::kDistinctCount, ValueType::kString, 1, 0);
  add(aggregate::Fn::kTopK, ValueType::kString, 1, 3);
  constexpr int kEntities = 1'000;
  std::vector<std::string> keys;
  for (int u = 0; u < kEntities; ++u) keys.push_back("user:" + std::to_string(u));
  std::vector<record::Value> values(2 * kEntities);
  std::vector<const record::Value*> pointers(2 * kEntities);
  std::vector<shard::ShardEvent> events(kEntities);
  std::vector<uint32_t> indices(kEntities);
  std::vector<shard::EventOutcome> outcomes(kEntities);
  for (int day = 0; day < 365; ++day) {
    for (int u = 0; u < kEntities; ++u) {
      values[2 * u] = static_cast<double>((u * 31 + day) % 1000);
      values[2 * u + 1] = "m" + std::to_string((u + day) % 40);
      pointers[2 * u] = &values[2 * u];
      pointers[2 * u + 1] = &values[2 * u + 1];
      events[u] = {0, keys[u], clock.NowMicros(), &pointers[2 * u], {}};
      indices[u] = static_cast<uint32_t>(u);
    }
    shard.ApplyEvents(events, indices, outcomes);
    clock.Advance(kDay);
  }
  std::vector<shard::TileMove> moves;
  size_t entities = 0;
  size_t bytes = 0;
  for (auto _ : state) {
    moves.clear();
    shard.CollectTileMoves(1024, moves);
    state.PauseTiming();
    entities = moves.size();
    bytes = 0;
    for (const shard::TileMove& m : moves) {
      for (const std::string& b : m.moved) bytes += b.size();
    }
    shard.CommitTileMoves(moves, /*written=*/false);
    state.ResumeTiming();
  }
  ODS_CHECK(entities > 0);
  state.counters["entities_per_step"] = static_cast<double>(entities);
  state.counters["encoded_kib_per_step"] = static_cast<double>(bytes) / 1024;
}
BENCHMARK(BM_Tier_TilesSweepStepHold)->Unit(benchmark::kMicrosecond);

// Restart to serving with range(0) records on SSD: the records are written to the RocksDB tier
// directly (as a previous odsd left them), then Engine::Create is timed until it returns (it
// loads one below-RAM entry per record; values stay on SSD until read).
void BM_Tier_RestartToServing(benchmark::State& state) {
  const int64_t n = state.range(0);
  BenchDir dir;
  {
    const std::string records_dir = dir.path() + "/records";
    std::filesystem::create_directories(records_dir);
    std::unique_ptr<tier::RocksDbTier> tier =
        std::move(tier::RocksDbTier::Open({records_dir, 100'000})).value();
    for (int64_t start = 0; start < n; start += 10'000) {
      tier::WriteBatch batch;
      for (int64_t i = start; i < std::min(n, start + 10'000); ++i) {
        record::Record r = TenNumbers(i);
        r.version = static_cast<uint64_t>(i + 1);
        batch.Put("t", Key(i), r, 0, r.version);
      }
      ODS_CHECK(tier->Write(batch).ok());
    }
  }
  config::Config c = TierConfig(dir.path(), config::Promote::kOnAccess);
  c.storage.backing.reset();
  c.server.shards = 16;
  for (auto _ : state) {
    std::unique_ptr<Engine> engine = std::move(Engine::Create(c, SystemClock())).value();
    state.PauseTiming();
    ODS_CHECK(engine->Stats().records_ssd == static_cast<uint64_t>(n));
    state.counters["ram_bytes_per_record"] =
        static_cast<double>(engine->Stats().memory_bytes) / static_cast<double>(n);
    engine.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_Tier_RestartToServing)
    ->Arg(1'000'000)
    ->Arg(10'000'000)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// An engine config for the event benchmarks: template tx (user, ts, amount, merchant) set up by
// `tune`, aggregations {name, fn, field, n} over `windows`, and a durable table so that the SSD
// tier opens in every variant (below RAM needs it; RAM-only gets one too, for fairness).
struct BenchAgg {
  const char* name;
  const char* fn;
  const char* field;
  uint32_t n;
};
config::Config EventBenchConfig(const std::string& dir, std::vector<Micros> windows,
                                std::initializer_list<BenchAgg> aggs,
                                const std::function<void(config::EventTemplateConfig&)>& tune) {
  config::Config c;
  c.source = "tiering_benchmark";
  c.server.shards = 4;
  c.storage.data_dir = dir;
  c.storage.ram_max_bytes = 0;
  config::EventTemplateConfig t;
  t.name = "tx";
  t.key_field = "user";
  t.timestamp_field = "ts";
  t.fields = {{"amount", ValueType::kDouble}, {"merchant", ValueType::kString}};
  t.position = "bench:1:1";
  tune(t);
  c.definitions.event_templates.push_back(t);
  for (const BenchAgg& b : aggs) {
    config::AggregationConfig a;
    a.name = b.name;
    a.template_name = "tx";
    a.fn = b.fn;
    a.field = b.field;
    a.n = b.n;
    a.windows = windows;
    a.position = "bench:1:1";
    c.definitions.aggregations.push_back(std::move(a));
  }
  config::TableConfig pad;
  pad.name = "pad";
  pad.key_field = "id";
  c.tables.push_back(std::move(pad));
  c.storage.durability = config::Durability::kAsync;
  return c;
}

// Retained events below RAM (issue #6 point 5): GetHistoricalFeatures of one entity (3
// aggregations, 2 windows each) with its 200 retained events all in RAM (range(0) = 0) or all but
// the last hour's below RAM (1, history_ssd_after: 1h), 2,000 entities over 20 days. Counters:
// per-call p50/p99, and the event state's RAM bytes per retained event.
void BM_Tier_HistoryRead(benchmark::State& state) {
  constexpr Micros kHour = 3'600'000'000;
  constexpr int kEntities = 2'000;
  constexpr int kEventsPerEntity = 200;
  const bool below_ram = state.range(0) == 1;
  BenchDir dir;
  const config::Config c = EventBenchConfig(
      dir.path(), {24 * kHour, 7 * 24 * kHour},
      {{"n", "count", "", 0}, {"amount_sum", "sum", "amount", 0},
       {"top_merchants", "top_k", "merchant", 3}},
      [&](config::EventTemplateConfig& t) {
        t.history_retention_micros = 30 * 24 * kHour;
        t.history_ssd_after_micros = below_ram ? kHour : 0;
        t.allowed_lateness_micros = kHour;
      });
  const Micros start = Micros{1'700'000'000'000'000};
  FakeClock clock(start);
  std::unique_ptr<Engine> engine = std::move(Engine::Create(c, clock)).value();
  // Events in time order over 20 days: step k pushes one event of every entity.
  const Micros step = 20 * 24 * kHour / kEventsPerEntity;
  std::vector<std::string> users;
  for (int u = 0; u < kEntities; ++u) users.push_back("user:" + std::to_string(u));
  std::vector<std::vector<record::Field>> fields(kEntities);
  std::vector<EventInput> inputs(kEntities);
  for (int k = 0; k < kEventsPerEntity; ++k) {
    clock.Set(start + k * step);
    for (int u = 0; u < kEntities; ++u) {
      fields[u] = {{"user", users[u]},
                   {"ts", record::Timestamp{clock.NowMicros()}},
                   {"amount", static_cast<double>((u * 31 + k) % 1000)},
                   {"merchant", "m" + std::to_string((u + k) % 40)}};
      inputs[u] = {"tx", fields[u], {}};
    }
    ODS_CHECK(engine->PushEvents(inputs).ok());
    if (below_ram && k % 20 == 19) {
      while (engine->SweepHistoryOnce() > 0) {
      }
    }
  }
  clock.Advance(2 * kHour);
  while (engine->SweepHistoryOnce() > 0) {
  }
  const EngineStats stats = engine->Stats();
  const double events = static_cast<double>(kEntities) * kEventsPerEntity;
  if (below_ram) ODS_CHECK(stats.history_events_ssd == static_cast<uint64_t>(events));
  state.counters["event_state_bytes_per_event"] =
      static_cast<double>(stats.event_state_bytes) / events;
  const std::vector<std::string_view> features = {"n@1d", "n@7d", "amount_sum@1d",
                                                  "amount_sum@7d", "top_merchants@1d",
                                                  "top_merchants@7d"};
  std::mt19937_64 rng(42);
  std::vector<double> micros;
  micros.reserve(1 << 20);
  const Micros end = clock.NowMicros();
  for (auto _ : state) {
    const EntityRow row{users[rng() % kEntities],
                        end - static_cast<Micros>(rng() % (10 * 24 * kHour))};
    const auto t0 = Clock::now();
    Result<std::vector<FeatureColumn>> got =
        engine->GetHistoricalFeatures(std::span<const EntityRow>(&row, 1), features);
    const auto t1 = Clock::now();
    ODS_CHECK(got.ok() && (*got)[0].statuses[0] == FeatureStatus::kPresent);
    micros.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(micros.begin(), micros.end());
  if (!micros.empty()) {
    state.counters["p50_us"] = micros[micros.size() / 2];
    state.counters["p99_us"] = micros[micros.size() * 99 / 100];
  }
  state.SetLabel(below_ram ? "events below RAM" : "events in RAM");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Tier_HistoryRead)->Arg(0)->Arg(1)->UseRealTime();

// Aggregation tiles below RAM (issue #6 point 5): GetOnlineFeatures of one entity, 4 aggregations
// over 365 days (count, sum, distinct_count, top_k 3), with every tile in RAM (range(0) = 0) or
// all but the last 2 days' below RAM (1, tiles_ssd_after: 2d); 2,000 entities with one event a
// day for 365 days. Counters: the first read of each entity (p50/p99: a blob read from RocksDB
// and decoded, when below RAM), then reads of random entities (decoded tiles cached in RAM), and
// RAM / SSD bytes of tiles per entity.
void BM_Tier_TilesRead(benchmark::State& state) {
  constexpr Micros kDay = Micros{86'400} * 1'000'000;
  constexpr int kEntities = 2'000;
  constexpr int kDays = 365;
  const bool below_ram = state.range(0) == 1;
  BenchDir dir;
  const config::Config c = EventBenchConfig(
      dir.path(), {kDay, 30 * kDay, 365 * kDay},
      {{"n", "count", "", 0}, {"amount_sum", "sum", "amount", 0},
       {"merchants", "distinct_count", "merchant", 0}, {"top_merchants", "top_k", "merchant", 3}},
      [&](config::EventTemplateConfig& t) {
        t.history_retention_micros = 0;
        t.tiles_ssd_after_micros = below_ram ? 2 * kDay : 0;
      });
  const Micros start = Micros{1'700'000'000'000'000};
  FakeClock clock(start);
  std::unique_ptr<Engine> engine = std::move(Engine::Create(c, clock)).value();
  std::vector<std::string> users;
  for (int u = 0; u < kEntities; ++u) users.push_back("user:" + std::to_string(u));
  std::vector<std::vector<record::Field>> fields(kEntities);
  std::vector<EventInput> inputs(kEntities);
  for (int day = 0; day < kDays; ++day) {
    clock.Set(start + day * kDay);
    for (int u = 0; u < kEntities; ++u) {
      fields[u] = {{"user", users[u]},
                   {"ts", record::Timestamp{clock.NowMicros()}},
                   {"amount", static_cast<double>((u * 31 + day) % 1000)},
                   {"merchant", "m" + std::to_string((u + day) % 40)}};
      inputs[u] = {"tx", fields[u], {}};
    }
    ODS_CHECK(engine->PushEvents(inputs).ok());
    if (below_ram && day % 30 == 29) {
      while (engine->SweepTilesOnce() > 0) {
      }
    }
  }
  clock.Advance(kDay / 2);
  while (below_ram && engine->SweepTilesOnce() > 0) {
  }
  const EngineStats stats = engine->Stats();
  if (below_ram) ODS_CHECK(stats.tiles_entities_ssd == kEntities);
  state.counters["ram_bytes_per_entity"] = static_cast<double>(stats.event_state_bytes) / kEntities;
  state.counters["ssd_bytes_per_entity"] = static_cast<double>(stats.tiles_bytes_ssd) / kEntities;
  const std::vector<std::string_view> features = {"n@365d", "amount_sum@365d", "merchants@365d",
                                                  "top_merchants@365d"};
  auto read = [&](std::string_view user) {
    const auto t0 = Clock::now();
    Result<std::vector<FeatureColumn>> got =
        engine->GetOnlineFeatures(std::span<const std::string_view>(&user, 1), features,
                                  std::nullopt);
    const auto t1 = Clock::now();
    ODS_CHECK(got.ok() && (*got)[0].statuses[0] == FeatureStatus::kPresent &&
              std::get<int64_t>(std::get<record::Value>((*got)[0].values[0])) >= kDays - 1);
    return std::chrono::duration<double, std::micro>(t1 - t0).count();
  };
  std::vector<double> first;
  for (const std::string& u : users) first.push_back(read(u));
  std::sort(first.begin(), first.end());
  state.counters["first_read_p50_us"] = first[first.size() / 2];
  state.counters["first_read_p99_us"] = first[first.size() * 99 / 100];
  std::mt19937_64 rng(42);
  std::vector<double> micros;
  micros.reserve(1 << 20);
  for (auto _ : state) micros.push_back(read(users[rng() % kEntities]));
  std::sort(micros.begin(), micros.end());
  if (!micros.empty()) {
    state.counters["p50_us"] = micros[micros.size() / 2];
    state.counters["p99_us"] = micros[micros.size() * 99 / 100];
  }
  const EngineStats after = engine->Stats();
  const auto lookups = static_cast<double>(after.tiles_cache_hits + after.tiles_cache_misses);
  state.counters["cache_hit_ratio"] =
      lookups > 0 ? static_cast<double>(after.tiles_cache_hits) / lookups : 0;
  state.counters["cache_mib"] = static_cast<double>(after.tiles_cache_bytes) / (1 << 20);
  state.SetLabel(below_ram ? "tiles below RAM" : "tiles in RAM");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Tier_TilesRead)->Arg(0)->Arg(1)->UseRealTime();

}  // namespace
}  // namespace ods::engine
