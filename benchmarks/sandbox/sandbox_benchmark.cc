// Micro-benchmarks of one sandboxed Lua call (ods::sandbox::Sandbox), the unit cost behind Lua
// aggregators, derived features and procedures:
//  - BM_Sandbox_AggregatorUpdate: update(state, value, time) of a Lua sum on a number state
//    (fresh environment, state decoded and encoded); items/s = updates/s.
//  - BM_Sandbox_AggregatorFinish/N: merge of N tile states and finalize, in one call.
//  - BM_Sandbox_Call: a bare call of a one-line function, the fixed cost of a fresh environment.

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/clock.h"
#include "ods/record/value.h"
#include "ods/sandbox/sandbox.h"

namespace ods::sandbox {
namespace {

constexpr std::string_view kLuaSum = R"(
function init() return 0.0 end
function update(s, v, t) return s + v end
function merge(a, b) return a + b end
function finalize(s) return s end
)";

FunctionId MustLoad(Sandbox& sandbox, std::string_view source) {
  Result<FunctionId> id = sandbox.Load("bench", 1, source, Limits{});
  if (!id.ok()) {
    std::fprintf(stderr, "%s\n", id.status().ToString().c_str());
    std::abort();
  }
  return *id;
}

void BM_Sandbox_AggregatorUpdate(benchmark::State& state) {
  Sandbox sandbox(SystemClock());
  const FunctionId id = MustLoad(sandbox, kLuaSum);
  std::string tile;
  const record::Value value(1.5);
  AggregatorEvent event;
  event.value = &value;
  for (auto _ : state) {
    event.time += 1;
    if (!sandbox.AggregatorUpdate(id, tile, event).ok()) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Sandbox_AggregatorFinish(benchmark::State& state) {
  Sandbox sandbox(SystemClock());
  const FunctionId id = MustLoad(sandbox, kLuaSum);
  std::string tile;
  const record::Value value(2.0);
  AggregatorEvent event;
  event.value = &value;
  if (!sandbox.AggregatorUpdate(id, tile, event).ok()) std::abort();
  const std::vector<std::string_view> tiles(static_cast<size_t>(state.range(0)), tile);
  for (auto _ : state) {
    auto result = sandbox.AggregatorFinish(id, tiles);
    if (!result.ok()) std::abort();
    benchmark::DoNotOptimize(result);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Sandbox_Call(benchmark::State& state) {
  Sandbox sandbox(SystemClock());
  const FunctionId id = MustLoad(sandbox, "function f(x) return x end");
  const std::vector<record::Value> args = {record::Value(int64_t{1})};
  for (auto _ : state) {
    auto result = sandbox.Call(id, "f", args);
    if (!result.ok()) std::abort();
    benchmark::DoNotOptimize(result);
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_Sandbox_AggregatorUpdate);
BENCHMARK(BM_Sandbox_AggregatorFinish)->Arg(1)->Arg(24)->Arg(168);
BENCHMARK(BM_Sandbox_Call);

}  // namespace
}  // namespace ods::sandbox
