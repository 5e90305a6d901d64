// Micro-benchmarks of the record codec (ods/record/codec.h): Encode, Decode and a projected
// Decode, for a small record (4 fields, as the engine benchmarks store) and a larger one
// (32 fields: strings, numbers and a 64-float vector). Bytes/s count encoded bytes.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ods/common/status.h"
#include "ods/record/codec.h"
#include "ods/record/value.h"

namespace ods::record {
namespace {

// Argument 0: fields per record. 4 = the small record, anything larger = the large record.
Record MakeRecord(int64_t field_count) {
  Record r;
  r.event_time_micros = 1'700'000'000'000'000;
  if (field_count <= 4) {
    r.fields = {
        {"age", int64_t{42}}, {"country", std::string("DE")}, {"score", 0.75}, {"premium", true}};
    return r;
  }
  for (int64_t i = 0; i < field_count; ++i) {
    std::string name = "feature_" + std::to_string(i);
    switch (i % 4) {
      case 0:
        r.fields.push_back({std::move(name), std::string(48, 'x')});
        break;
      case 1:
        r.fields.push_back({std::move(name), i * 1000});
        break;
      case 2:
        r.fields.push_back({std::move(name), static_cast<double>(i) / 7.0});
        break;
      default:
        r.fields.push_back({std::move(name), std::vector<float>(i == 3 ? 64 : 4, 0.25f)});
        break;
    }
  }
  return r;
}

void BM_Codec_Encode(benchmark::State& state) {
  const Record record = MakeRecord(state.range(0));
  FieldDictionary dict;
  std::string out;
  Encode(record, 0, 1, dict, out);  // interns the names outside the loop
  for (auto _ : state) {
    Encode(record, 0, 1, dict, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(out.size()));
}

void BM_Codec_Decode(benchmark::State& state) {
  const Record record = MakeRecord(state.range(0));
  FieldDictionary dict;
  std::string encoded;
  Encode(record, 0, 1, dict, encoded);
  Record out;
  for (auto _ : state) {
    Status s = Decode(encoded, dict, nullptr, out);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(out.fields.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(encoded.size()));
}

// Decodes only two fields (the first and the last by id), as a Get with a projection does.
void BM_Codec_DecodeProjected(benchmark::State& state) {
  const Record record = MakeRecord(state.range(0));
  FieldDictionary dict;
  std::string encoded;
  Encode(record, 0, 1, dict, encoded);
  const std::vector<uint32_t> projection = {0, static_cast<uint32_t>(dict.size() - 1)};
  Record out;
  for (auto _ : state) {
    Status s = Decode(encoded, dict, &projection, out);
    if (!s.ok() || out.fields.size() != 2) {
      state.SkipWithError("projected Decode failed or returned the wrong fields");
      break;
    }
    benchmark::DoNotOptimize(out.fields.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(encoded.size()));
}

BENCHMARK(BM_Codec_Encode)->ArgNames({"fields"})->Arg(4)->Arg(32);
BENCHMARK(BM_Codec_Decode)->ArgNames({"fields"})->Arg(4)->Arg(32);
BENCHMARK(BM_Codec_DecodeProjected)->ArgNames({"fields"})->Arg(4)->Arg(32);

}  // namespace
}  // namespace ods::record
