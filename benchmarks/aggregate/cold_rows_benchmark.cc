// Micro-benchmarks of aggregation tiles kept below RAM (aggregate::ColdRows, issue #6 point 5):
// one entity's 365-day windows (tile 1d) with 358 of 365 day-tiles split off into a blob.
//  - BM_ColdRows_Query/cold:0: every member's 365d window from RAM (all 365 rows in RAM).
//  - BM_ColdRows_Query/cold:1: decode the blob, then the same queries over cold + RAM rows: the
//    cost of a lookup that reads the cold tiles fresh from the tier.
//  - BM_ColdRows_Query/cold:2: the same queries over an already decoded blob (a cached decode).
//  - BM_ColdRows_Split: SplitColdRows of the 358 old rows (encode and free), then Restore.
// layout:0 is count, sum, mean of a double; layout:1 adds distinct_count of an int64, top_k (k 5)
// and last_n (n 5) of a string. 20 events a day. Counters: blob and RAM bytes per tile.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ods/aggregate/aggregate.h"
#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/common/value_type.h"
#include "ods/record/value.h"

namespace ods::aggregate {
namespace {

constexpr Micros kDay = int64_t{86'400} * 1'000'000;
constexpr int kDays = 365;
constexpr int kHotDays = 7;
constexpr int kEventsPerDay = 20;

Spec YearSpec(Fn fn, ValueType type, uint32_t n = 0) {
  Spec spec;
  spec.fn = fn;
  spec.input_type = type;
  spec.n = n;
  spec.windows = {365 * kDay};
  spec.tiles = {kDay};
  return spec;
}

// Fields: 0 amount (double), 1 item (int64), 2 label (string).
std::vector<Member> Members(int layout) {
  std::vector<Member> members = {{YearSpec(Fn::kCount, ValueType::kInt64), -1},
                                 {YearSpec(Fn::kSum, ValueType::kDouble), 0},
                                 {YearSpec(Fn::kMean, ValueType::kDouble), 0}};
  if (layout == 1) {
    members.push_back({YearSpec(Fn::kDistinctCount, ValueType::kInt64), 1});
    members.push_back({YearSpec(Fn::kTopK, ValueType::kString, 5), 2});
    members.push_back({YearSpec(Fn::kLastN, ValueType::kString, 5), 2});
  }
  return members;
}

struct Year {
  explicit Year(int kind) : layout(Members(kind)), group(layout) {
    std::mt19937_64 rng(1);
    for (int day = 0; day < kDays; ++day) {
      for (int e = 0; e < kEventsPerDay; ++e) {
        const Micros t = day * kDay + e * (kDay / kEventsPerDay);
        const record::Value amount(std::uniform_real_distribution<double>(0, 500)(rng));
        const record::Value item(static_cast<int64_t>(rng() % 200));
        const record::Value label("merchant-" + std::to_string(rng() % 40));
        const record::Value* values[] = {&amount, &item, &label};
        static_cast<void>(group.Add(t, values, t));
      }
    }
    now = kDays * kDay - 1;
    ram_bytes = group.MemoryBytes();
  }
  GroupLayout layout;
  SeriesGroup group;
  Micros now = 0;
  size_t ram_bytes = 0;
};

void QueryAll(const Year& year, const ColdRows* cold) {
  for (size_t m = 0; m < year.layout.size(); ++m) {
    benchmark::DoNotOptimize(year.group.Query(m, 0, year.now, cold));
  }
}

void BM_ColdRows_Query(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0));
  Year year(static_cast<int>(state.range(1)));
  std::string blob;
  if (mode != 0) {
    static_cast<void>(year.group.SplitColdRows((kDays - kHotDays) * kDay, blob));
  }
  Result<ColdRows> decoded = ColdRows::Decode(year.layout, blob);
  if (!decoded.ok() || (mode != 0 && decoded->row_count() != kDays - kHotDays)) {
    state.SkipWithError("split or decode failed");
    return;
  }
  for (auto _ : state) {
    if (mode == 1) {
      Result<ColdRows> cold = ColdRows::Decode(year.layout, blob);
      QueryAll(year, &*cold);
    } else {
      QueryAll(year, mode == 2 ? &*decoded : nullptr);
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(year.layout.size()));
  state.counters["ram_bytes_per_tile"] = static_cast<double>(year.ram_bytes) / kDays;
  if (mode != 0) {
    state.counters["blob_bytes_per_tile"] =
        static_cast<double>(blob.size()) / (kDays - kHotDays);
    state.counters["decoded_bytes_per_tile"] =
        static_cast<double>(decoded->MemoryBytes()) / (kDays - kHotDays);
  }
}

void BM_ColdRows_Split(benchmark::State& state) {
  Year year(static_cast<int>(state.range(0)));
  std::string blob;
  for (auto _ : state) {
    static_cast<void>(year.group.SplitColdRows((kDays - kHotDays) * kDay, blob));
    state.PauseTiming();
    Result<ColdRows> cold = ColdRows::Decode(year.layout, blob);
    if (!cold.ok() || !year.group.RestoreColdRows(*cold).ok()) {
      state.SkipWithError("decode or restore failed");
      break;
    }
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * (kDays - kHotDays));  // rows split off
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(blob.size()));
}

BENCHMARK(BM_ColdRows_Query)->ArgNames({"cold", "layout"})->ArgsProduct({{0, 1, 2}, {0, 1}});
BENCHMARK(BM_ColdRows_Split)->ArgNames({"layout"})->Arg(0)->Arg(1);

}  // namespace
}  // namespace ods::aggregate
