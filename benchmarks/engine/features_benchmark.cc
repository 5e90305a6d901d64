// Micro-benchmarks of event ingestion and feature lookups in ods::engine::Engine, in process:
//  - BM_Features_Ingest: PushEvents of 64-event batches, 5 aggregations (count, sum, mean, max,
//    distinct_count) x 3 windows (1h, 24h, 7d) per event, 100k entities, 16 shards; items/s =
//    events/s, at 1 and 2 threads (target >= 1,000,000 events/s on 2 cores, docs/benchmarks.md).
//  - BM_Features_Online: GetOnlineFeatures of 100 random entities x 10 features (5 aggregations
//    x 2 windows) from 100k entities with 10 events each in the last 50 minutes; items/s =
//    feature values/s.
//  - BM_Features_OnlineDerived/0 and /1: the same plus one derived feature of three inputs, the
//    built-in weighted blend (/0) or the same blend in Lua (/1) (issue #5: the latency cost of a
//    derived feature).
//  - BM_Features_IngestSum/0 and /1: PushEvents as BM_Features_Ingest into an engine with one
//    aggregation, sum of amount over 1h, 24h, 7d: /0 the built-in sum, /1 a Lua aggregator
//    computing the same (issue #5 point 5: target, Lua within 5x of built-in). Run side by side.
//  - BM_Features_OnlineSum/0 and /1: GetOnlineFeatures of 100 entities x the three windows of
//    that sum (10 events per entity), built-in vs Lua: the read cost of Lua merge and finalize.
//  - BM_Features_MemoryPerEntity: bytes of event state per entity after 20 events per entity
//    spread over a day, with and without retained history (counters, not timings).

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/config/config.h"
#include "ods/engine/engine.h"
#include "ods/record/value.h"

namespace ods::engine {
namespace {

constexpr uint32_t kShards = 16;
constexpr size_t kEntities = 100'000;
constexpr size_t kBatch = 64;
constexpr Micros kHour = 3'600'000'000;

config::Config MakeConfig(Micros history_retention) {
  config::Config config;
  config.source = "<features_benchmark>";
  config.server.shards = kShards;
  config.storage.ram_max_bytes = 0;
  config::EventTemplateConfig t;
  t.name = "tx";
  t.key_field = "user";
  t.timestamp_field = "ts";
  t.fields = {{"amount", ValueType::kDouble}, {"merchant", ValueType::kString}};
  t.history_retention_micros = history_retention;
  t.dedup_window_micros = 0;
  t.allowed_lateness_micros = 24 * kHour;
  config.definitions.event_templates.push_back(t);
  const std::vector<Micros> windows = {kHour, 24 * kHour, 7 * 24 * kHour};
  auto add = [&](std::string name, std::string fn, std::string field) {
    config::AggregationConfig a;
    a.name = std::move(name);
    a.template_name = "tx";
    a.fn = std::move(fn);
    a.field = std::move(field);
    a.windows = windows;
    config.definitions.aggregations.push_back(a);
  };
  add("tx_count", "count", "");
  add("amount_sum", "sum", "amount");
  add("amount_mean", "mean", "amount");
  add("amount_max", "max", "amount");
  add("merchants", "distinct_count", "merchant");
  // A derived feature over three of them, for BM_Features_OnlineDerived.
  config::DerivedFeatureConfig risk;
  risk.name = "risk";
  risk.fn = "weighted";
  risk.inputs = {{"tx_count@1h", 0.5, ""}, {"amount_sum@24h", 0.01, ""}, {"merchants@7d", 1, ""}};
  config.definitions.features.push_back(risk);
  // The same blend computed by a Lua derived function, for BM_Features_OnlineDerived/1.
  config::FunctionConfig blend;
  blend.name = "risk_blend";
  blend.kind = "derived";
  blend.source = R"(
function compute(x)
  local a, b, c = x["tx_count@1h"], x["amount_sum@24h"], x["merchants@7d"]
  if a == nil or b == nil or c == nil then return nil end
  return 0.5 * a + 0.01 * b + c
end
)";
  config.functions.push_back(blend);
  config::DerivedFeatureConfig risk_lua;
  risk_lua.name = "risk_lua";
  risk_lua.function = "risk_blend";
  risk_lua.inputs = {{"tx_count@1h", 0, ""}, {"amount_sum@24h", 0, ""}, {"merchants@7d", 0, ""}};
  config.definitions.features.push_back(risk_lua);
  return config;
}

std::unique_ptr<Engine> MakeEngine(Micros history_retention) {
  Result<std::unique_ptr<Engine>> engine =
      Engine::Create(MakeConfig(history_retention), SystemClock());
  if (!engine.ok()) {
    std::fprintf(stderr, "Engine::Create: %s\n", engine.status().ToString().c_str());
    std::abort();
  }
  return std::move(engine).value();
}

std::vector<std::string> MakeKeys() {
  std::vector<std::string> keys;
  char buf[32];
  for (size_t i = 0; i < kEntities; ++i) {
    std::snprintf(buf, sizeof(buf), "user:%010zu", i);
    keys.emplace_back(buf);
  }
  return keys;
}

const std::vector<std::string>& Keys() {
  static const std::vector<std::string> keys = MakeKeys();
  return keys;
}

// One event's fields; the key and time are rewritten per event.
struct EventFields {
  std::vector<record::Field> fields;
  EventFields() {
    fields = {{"user", std::string()},
              {"ts", record::Timestamp{0}},
              {"amount", 0.0},
              {"merchant", std::string()}};
  }
  void Set(std::string_view key, Micros ts, double amount, uint64_t merchant) {
    std::get<std::string>(fields[0].value).assign(key);
    fields[1].value = record::Timestamp{ts};
    fields[2].value = amount;
    std::string& m = std::get<std::string>(fields[3].value);
    m = "merchant-";
    m += std::to_string(merchant % 500);
  }
};

class Rng {
 public:
  explicit Rng(uint64_t seed) : x_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t Next() {
    x_ ^= x_ << 13;
    x_ ^= x_ >> 7;
    x_ ^= x_ << 17;
    return x_;
  }

 private:
  uint64_t x_;
};

Engine& IngestEngine() {
  static std::unique_ptr<Engine> engine = MakeEngine(/*history_retention=*/0);
  return *engine;
}

// Issue #5 point 5: one sum aggregation, built-in (false) or a Lua aggregator (true).
constexpr std::string_view kLuaSum = R"(
function init() return 0.0 end
function update(s, v, t) return s + v end
function merge(a, b) return a + b end
function finalize(s) return s end
)";

std::unique_ptr<Engine> MakeSumEngine(bool lua) {
  config::Config config = MakeConfig(/*history_retention=*/0);
  config.definitions.features.clear();
  auto& aggs = config.definitions.aggregations;
  aggs.erase(aggs.begin());  // keep amount_sum only
  aggs.resize(1);
  if (lua) {
    config::FunctionConfig f;
    f.name = "lua_sum";
    f.kind = "aggregator";
    f.source = std::string(kLuaSum);
    config.functions.push_back(f);
    aggs[0].fn.clear();
    aggs[0].function = "lua_sum";
  }
  Result<std::unique_ptr<Engine>> engine = Engine::Create(config, SystemClock());
  if (!engine.ok()) {
    std::fprintf(stderr, "Engine::Create: %s\n", engine.status().ToString().c_str());
    std::abort();
  }
  return std::move(engine).value();
}

void PushRandom(benchmark::State& state, Engine& engine) {
  const auto& keys = Keys();
  Rng rng(static_cast<uint64_t>(state.thread_index()) + 1);
  std::vector<EventFields> fields(kBatch);
  std::vector<EventInput> inputs(kBatch);
  for (auto _ : state) {
    const Micros now = SystemClock().NowMicros();
    for (size_t i = 0; i < kBatch; ++i) {
      const uint64_t r = rng.Next();
      fields[i].Set(keys[r % kEntities], now - static_cast<Micros>(r % 1'000'000),
                    static_cast<double>(r % 10'000) / 100.0, r >> 20);
      inputs[i] = {"tx", fields[i].fields, {}};
    }
    Result<PushResult> result = engine.PushEvents(inputs);
    if (!result.ok() || result->applied != kBatch) {
      state.SkipWithError(result.ok() ? result->rejected.front().reason.c_str()
                                      : result.status().ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kBatch));
}

void BM_Features_Ingest(benchmark::State& state) { PushRandom(state, IngestEngine()); }

void BM_Features_IngestSum(benchmark::State& state) {
  static std::unique_ptr<Engine> builtin = MakeSumEngine(false);
  static std::unique_ptr<Engine> lua = MakeSumEngine(true);
  PushRandom(state, state.range(0) == 0 ? *builtin : *lua);
}

// Lookups read an engine of their own with a fixed state (not Ingest's, whose state depends on
// how long Ingest ran): every entity has kOnlineEventsPerEntity events over the last 50 minutes,
// merchants drawn from 500.
constexpr size_t kOnlineEventsPerEntity = 10;

// Fills `e` with `per_entity` events for each of the first `entities` keys, stamped over the
// last `spread` microseconds.
void FillForLookups(Engine& engine, size_t per_entity = kOnlineEventsPerEntity,
                    uint64_t spread = 50 * 60'000'000ull, size_t entities = kEntities) {
  const auto& keys = Keys();
  std::vector<EventFields> fields(kBatch);
  std::vector<EventInput> inputs(kBatch);
  Rng rng(99);
  const Micros now = SystemClock().NowMicros();
  size_t n = 0;
  for (size_t round = 0; round < per_entity; ++round) {
    for (size_t k = 0; k < entities; ++k) {
      const uint64_t r = rng.Next();
      fields[n].Set(keys[k], now - static_cast<Micros>(r % spread),
                    static_cast<double>(r % 10'000) / 100.0, r >> 20);
      inputs[n] = {"tx", fields[n].fields, {}};
      if (++n == kBatch || (round + 1 == per_entity && k + 1 == entities)) {
        if (!engine.PushEvents(std::span(inputs.data(), n)).ok()) std::abort();
        n = 0;
      }
    }
  }
}

Engine& OnlineEngine() {
  static std::unique_ptr<Engine> engine = [] {
    std::unique_ptr<Engine> e = MakeEngine(/*history_retention=*/0);
    FillForLookups(*e);
    return e;
  }();
  return *engine;
}

const std::vector<std::string_view> kOnlineFeatures = {
    "tx_count@1h",     "tx_count@24h",  "amount_sum@1h",  "amount_sum@7d", "amount_mean@1h",
    "amount_mean@24h", "amount_max@1h", "amount_max@24h", "merchants@1h",  "merchants@7d"};

// Each iteration: 100 random entities of the first `key_count`, then `before_read(entities)` if
// given (its time counts in the time per call), then the lookup.
void Lookups(benchmark::State& state, const std::vector<std::string_view>& features,
             Engine& engine = OnlineEngine(), size_t key_count = kEntities,
             const std::function<void(std::span<const std::string_view>)>& before_read = {}) {
  const auto& keys = Keys();
  Rng rng(static_cast<uint64_t>(state.thread_index()) + 77);
  std::vector<std::string_view> entities(100);
  for (auto _ : state) {
    for (auto& e : entities) e = keys[rng.Next() % key_count];
    if (before_read) before_read(entities);
    Result<std::vector<FeatureColumn>> columns =
        engine.GetOnlineFeatures(entities, features, std::nullopt);
    if (!columns.ok()) {
      state.SkipWithError(columns.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(columns->data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(entities.size()) *
                          static_cast<int64_t>(features.size()));
}

void BM_Features_Online(benchmark::State& state) { Lookups(state, kOnlineFeatures); }

// The same lookups on busy entities, the state features_compare.sh reads after its first round:
// 160 events each over the last 3 minutes (a 1h window spans 3-4 one-minute tiles of ~60
// distinct merchants each), 20,000 entities. /0 reads only (a distinct_count answer is cached
// until its entity changes); /1 first pushes one event to each of the 100 entities, so every
// read merges the tiles again (the time per call includes that PushEvents of 100 events).
constexpr size_t kBusyEntities = 20'000;
void BM_Features_OnlineBusy(benchmark::State& state) {
  static std::unique_ptr<Engine> engine = [] {
    std::unique_ptr<Engine> e = MakeEngine(/*history_retention=*/0);
    FillForLookups(*e, /*per_entity=*/160, /*spread=*/3 * 60'000'000ull, kBusyEntities);
    return e;
  }();
  if (state.range(0) == 0) {
    Lookups(state, kOnlineFeatures, *engine, kBusyEntities);
    return;
  }
  Rng rng(static_cast<uint64_t>(state.thread_index()) + 91);
  std::vector<EventFields> fields(100);
  std::vector<EventInput> inputs(fields.size());
  Lookups(state, kOnlineFeatures, *engine, kBusyEntities,
          [&](std::span<const std::string_view> entities) {
            const Micros now = SystemClock().NowMicros();
            for (size_t i = 0; i < entities.size(); ++i) {
              const uint64_t r = rng.Next();
              fields[i].Set(entities[i], now, static_cast<double>(r % 10'000) / 100.0, r >> 20);
              inputs[i] = {"tx", fields[i].fields, {}};
            }
            if (!engine->PushEvents(inputs).ok()) std::abort();
          });
}

// The same lookups plus one derived feature of three inputs: /0 the built-in weighted blend,
// /1 the same blend in Lua (its cost per call is the difference in time per iteration from
// BM_Features_Online; items/s counts 11 values a row).
void BM_Features_OnlineDerived(benchmark::State& state) {
  std::vector<std::string_view> features = kOnlineFeatures;
  features.push_back(state.range(0) == 0 ? "risk" : "risk_lua");
  Lookups(state, features);
}

void BM_Features_OnlineSum(benchmark::State& state) {
  static std::unique_ptr<Engine> builtin;
  static std::unique_ptr<Engine> lua;
  std::unique_ptr<Engine>& engine = state.range(0) == 0 ? builtin : lua;
  if (engine == nullptr) {
    engine = MakeSumEngine(state.range(0) != 0);
    FillForLookups(*engine);
  }
  Lookups(state, {"amount_sum@1h", "amount_sum@24h", "amount_sum@7d"}, *engine);
}

// Arg 0: history retention in hours (0 = tiles only).
void BM_Features_MemoryPerEntity(benchmark::State& state) {
  constexpr size_t kMemoryEntities = 20'000;
  constexpr size_t kEventsPerEntity = 20;
  const Micros retention = state.range(0) * kHour;
  for (auto _ : state) {
    std::unique_ptr<Engine> engine = MakeEngine(retention);
    const auto& keys = Keys();
    std::vector<EventFields> fields(kBatch);
    std::vector<EventInput> inputs;
    const Micros now = SystemClock().NowMicros();
    Rng rng(5);
    for (size_t e = 0; e < kEventsPerEntity; ++e) {
      for (size_t start = 0; start < kMemoryEntities; start += kBatch) {
        inputs.clear();
        for (size_t i = 0; i < kBatch && start + i < kMemoryEntities; ++i) {
          const uint64_t r = rng.Next();
          // Spread over the last day, so events fall in different tiles of every window.
          fields[i].Set(keys[start + i], now - static_cast<Micros>(r % (23 * kHour)),
                        static_cast<double>(r % 1000), r >> 17);
          inputs.push_back({"tx", fields[i].fields, {}});
        }
        if (!engine->PushEvents(inputs).ok()) std::abort();
      }
    }
    const EngineStats stats = engine->Stats();
    state.counters["entities"] = static_cast<double>(stats.entities);
    state.counters["bytes_per_entity"] =
        static_cast<double>(stats.event_state_bytes) / static_cast<double>(stats.entities);
  }
}

BENCHMARK(BM_Features_Ingest)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_Features_Online)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_Features_OnlineBusy)->Arg(0)->Arg(1)->UseRealTime();
BENCHMARK(BM_Features_OnlineDerived)->Arg(0)->Arg(1)->Threads(1)->UseRealTime();
BENCHMARK(BM_Features_IngestSum)->Arg(0)->Arg(1)->UseRealTime();
BENCHMARK(BM_Features_OnlineSum)->Arg(0)->Arg(1)->UseRealTime();
BENCHMARK(BM_Features_MemoryPerEntity)
    ->Arg(0)
    ->Arg(168)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ods::engine
