// Micro-benchmark of the cost of durability on Engine::Put, in process (no gRPC): a one-record
// Put into a free-form table of 16 shards whose durability is none, async or sync, at 1 and 8
// threads. For sync, 8 threads over 1 thread is what group commit buys: the 8 writers share
// fsyncs. The data dir is a fresh directory under $TMPDIR (or /tmp), removed at exit; sync
// figures mean something only if that is a real disk.

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/config/config.h"
#include "ods/engine/engine.h"
#include "ods/record/value.h"
#include "ods/shard/shard.h"

namespace ods::engine {
namespace {

constexpr size_t kKeys = 100'000;

// An engine with one table of the given durability on its own temp data dir.
struct DurableFixture {
  explicit DurableFixture(config::Durability durability) {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/ods-bench-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    dir = pattern;
    config::Config config;
    config.source = "<durability_benchmark>";
    config.server.shards = 16;
    config.storage.ram_max_bytes = 0;
    config.storage.data_dir = dir;
    config.storage.durability = durability;
    config::TableConfig table;
    table.name = "features";
    table.key_field = "user_id";
    config.tables = {table};
    Result<std::unique_ptr<Engine>> created = Engine::Create(config, SystemClock());
    if (!created.ok()) {
      std::fprintf(stderr, "Engine::Create: %s\n", created.status().ToString().c_str());
      std::abort();
    }
    engine = std::move(created).value();
    char buf[32];
    for (size_t i = 0; i < kKeys; ++i) {
      std::snprintf(buf, sizeof(buf), "user:%012zu", i);
      keys.emplace_back(buf);
    }
    record.fields = {
        {"age", int64_t{42}}, {"country", std::string("DE")}, {"score", 0.5}, {"premium", true}};
  }
  ~DurableFixture() {
    engine.reset();  // closes (and fsyncs) the tier before its directory goes
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string dir;
  std::vector<std::string> keys;
  record::Record record;
  std::unique_ptr<Engine> engine;
};

DurableFixture& FixtureFor(int64_t mode) {
  static DurableFixture none(config::Durability::kNone);
  static DurableFixture async(config::Durability::kAsync);
  static DurableFixture sync(config::Durability::kSync);
  return mode == 0 ? none : (mode == 1 ? async : sync);
}

// durability: 0 = none, 1 = async, 2 = sync.
void BM_Engine_PutDurable(benchmark::State& state) {
  DurableFixture& f = FixtureFor(state.range(0));
  uint64_t x = (static_cast<uint64_t>(state.thread_index()) + 7) * 0x9E3779B97F4A7C15ull;
  shard::KeyedRecord item[1];
  for (auto _ : state) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    item[0] = {f.keys[x % kKeys], &f.record};
    Result<std::vector<uint64_t>> versions = f.engine->Put("features", item);
    if (!versions.ok()) {
      state.SkipWithError(versions.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(versions->data());
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_Engine_PutDurable)
    ->ArgNames({"durability"})
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Threads(1)
    ->Threads(8)
    ->UseRealTime();

}  // namespace
}  // namespace ods::engine
