// Micro-benchmark of the server's hand-written FeaturesResponse encoding
// (src/server/features_wire.h), the last step of every GetOnlineFeatures answer:
//  - BM_FeaturesWire_Encode: the answer of 100 entities x 10 features as odsd's features
//    benchmark asks for it (2 int64 counts and 8 doubles per entity, each with its status and
//    an event time of today in micros), sized and written into a buffer; items/s = values.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "features_wire.h"
#include "ods/engine/features.h"

namespace ods::server {
namespace {

std::vector<engine::FeatureColumn> Answer() {
  constexpr size_t kRows = 100;
  constexpr Micros kToday = 1'764'720'000'000'000;  // 2025-12-03, micros since the epoch
  std::vector<engine::FeatureColumn> columns(10);
  for (size_t f = 0; f < columns.size(); ++f) {
    engine::FeatureColumn& c = columns[f];
    c.feature = "feature_" + std::to_string(f) + "@24h";
    c.values.resize(kRows);
    c.statuses.assign(kRows, engine::FeatureStatus::kPresent);
    for (size_t i = 0; i < kRows; ++i) {
      if (f < 2) {
        c.values[i].emplace<record::Value>(static_cast<int64_t>(i % 7 + 1));
      } else {
        c.values[i].emplace<record::Value>(12.5 * static_cast<double>(i) + 0.25);
      }
      c.event_times.push_back(kToday + static_cast<Micros>(i) * 1'000'003);
    }
  }
  return columns;
}

void BM_FeaturesWire_Encode(benchmark::State& state) {
  const std::vector<engine::FeatureColumn> columns = Answer();
  std::string out;
  for (auto _ : state) {
    const FeaturesResponseEncoder encoder(columns);
    out.resize(encoder.size());
    encoder.Write(out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
  state.counters["bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_FeaturesWire_Encode);

}  // namespace
}  // namespace ods::server
