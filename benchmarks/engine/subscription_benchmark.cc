// Writers' cost of the change log (docs/architecture.md, "Subscriptions"): Engine::Put of one
// small record with the log off, on without subscribers, with one subscriber that never reads
// (stalled), and with one that reads everything as it comes (live, on its own thread).

#include <benchmark/benchmark.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ods/common/clock.h"
#include "ods/engine/engine.h"

namespace ods::engine {
namespace {

constexpr size_t kKeys = 100'000;

enum Mode : int64_t { kLogOff = 0, kNoSubscriber = 1, kStalled = 2, kLive = 3 };

struct Fixture {
  std::vector<std::string> keys;
  std::vector<record::Record> records;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Subscription> subscription;
  std::atomic<bool> stop{false};
  std::thread reader;
  ~Fixture() {
    stop = true;
    if (reader.joinable()) reader.join();
    subscription.reset();
  }
};

std::unique_ptr<Fixture> MakeFixture(Mode mode) {
  auto f = std::make_unique<Fixture>();
  config::Config config;
  config.source = "<subscription_benchmark>";
  config.server.shards = 16;
  config.storage.ram_max_bytes = 0;
  config.subscriptions.retained_changes = mode == kLogOff ? 0 : 65536;
  config::TableConfig typed;
  typed.name = "profile";
  typed.key_field = "user_id";
  typed.free_form = false;
  typed.fields = {{"age", ValueType::kInt64},
                  {"country", ValueType::kString},
                  {"score", ValueType::kDouble},
                  {"premium", ValueType::kBool}};
  config.tables = {typed};
  Result<std::unique_ptr<Engine>> engine = Engine::Create(config, SystemClock());
  if (!engine.ok()) {
    std::fprintf(stderr, "Engine::Create: %s\n", engine.status().ToString().c_str());
    std::abort();
  }
  f->engine = std::move(engine).value();
  char buf[32];
  for (size_t i = 0; i < kKeys; ++i) {
    std::snprintf(buf, sizeof(buf), "user:%012zu", i);
    f->keys.emplace_back(buf);
    record::Record r;
    r.fields = {{"age", int64_t{20} + static_cast<int64_t>(i % 60)},
                {"country", std::string(i % 2 == 0 ? "DE" : "FR")},
                {"score", 0.5 + static_cast<double>(i % 100) / 100.0},
                {"premium", i % 3 == 0}};
    f->records.push_back(std::move(r));
  }
  if (mode == kNoSubscriber) {
    // The log records from the first subscription on: one that came and went turns it on.
    if (!f->engine->Subscribe({.tables = {"profile"}}).ok()) std::abort();
  }
  if (mode == kStalled || mode == kLive) {
    Result<std::unique_ptr<Subscription>> s = f->engine->Subscribe({.tables = {"profile"}});
    if (!s.ok()) std::abort();
    f->subscription = std::move(s).value();
  }
  if (mode == kLive) {
    // Reads as the server's pump does: everything new, else a pause (the pump polls each ms).
    f->reader = std::thread([fx = f.get()] {
      SubscriptionBatch batch;
      while (!fx->stop.load(std::memory_order_relaxed)) {
        if (!fx->subscription->HasPending()) {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          continue;
        }
        if (!fx->subscription->Next(256, batch).ok()) std::abort();
        benchmark::DoNotOptimize(batch.changes.data());
      }
    });
  }
  return f;
}

Fixture& SharedFixture(Mode mode) {
  static std::array<std::unique_ptr<Fixture>, 4> fixtures;
  static std::once_flag once[4];
  std::call_once(once[mode], [mode] { fixtures[mode] = MakeFixture(mode); });
  return *fixtures[mode];
}

void BM_Subscription_Put(benchmark::State& state) {
  Fixture& f = SharedFixture(static_cast<Mode>(state.range(0)));
  uint64_t x = static_cast<uint64_t>(state.thread_index()) * 0x9E3779B97F4A7C15ull + 1;
  shard::KeyedRecord item[1];
  for (auto _ : state) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const size_t i = x % kKeys;
    item[0] = {f.keys[i], &f.records[i]};
    Result<std::vector<uint64_t>> versions = f.engine->Put("profile", item);
    if (!versions.ok()) {
      state.SkipWithError(versions.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(versions->data());
  }
  state.SetItemsProcessed(state.iterations());
}

// subscribers: 0 = change log off, 1 = on without subscribers, 2 = one stalled subscriber,
// 3 = one live subscriber.
BENCHMARK(BM_Subscription_Put)
    ->ArgNames({"subscribers"})
    ->DenseRange(0, 3)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

}  // namespace
}  // namespace ods::engine
