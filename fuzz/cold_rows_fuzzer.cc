// Fuzzes aggregate::ColdRows::Decode on arbitrary bytes, as a corrupt tier would hand it cold
// aggregation rows, under a layout of every fn and input type over two tile sizes (two runs).
// Decode may reject the input; whatever it accepts must answer every query, restore into a group,
// split out again into a blob that decodes to as many rows, refuse a merge with itself (every
// row repeats), and agree with BlobExpired.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ods/aggregate/aggregate.h"
#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/common/value_type.h"

namespace {

using ods::aggregate::ColdRows;

constexpr ods::Micros kHour = int64_t{3'600} * 1'000'000;
constexpr ods::Micros kDay = 24 * kHour;

void Require(bool condition) {
  if (!condition) std::abort();
}

const ods::aggregate::GroupLayout& Layout() {
  static const auto* const kLayout = [] {
    std::vector<ods::aggregate::Member> members;
    for (int f = 0; f <= static_cast<int>(ods::aggregate::Fn::kTopK); ++f) {
      for (int t = 1; t <= 7; ++t) {
        const auto fn = static_cast<ods::aggregate::Fn>(f);
        const auto type = static_cast<ods::ValueType>(t);
        if (fn == ods::aggregate::Fn::kCount && type != ods::ValueType::kInt64) continue;
        if (!ods::aggregate::CheckInputType(fn, type).ok()) continue;
        ods::aggregate::Spec spec;
        spec.fn = fn;
        spec.input_type = type;
        spec.n = ods::aggregate::NeedsN(fn) ? 3 : 0;
        spec.windows = {kDay, 30 * kDay};
        spec.tiles = {kHour, kDay};
        members.push_back({spec, fn == ods::aggregate::Fn::kCount ? -1 : t - 1});
      }
    }
    return new ods::aggregate::GroupLayout(std::move(members));
  }();
  return *kLayout;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& layout = Layout();
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  ods::Result<ColdRows> cold = ColdRows::Decode(layout, in);
  const ods::Result<bool> expired = ColdRows::BlobExpired(layout, in, 1000 * kDay);
  if (!cold.ok()) return 0;
  Require(expired.ok() && *expired == cold->Expired(1000 * kDay));
  const size_t rows = cold->row_count();

  ods::aggregate::SeriesGroup group(layout);
  const ods::Micros times[] = {0, 1000 * kDay, std::numeric_limits<ods::Micros>::max(),
                               std::numeric_limits<ods::Micros>::min()};
  for (size_t m = 0; m < layout.size(); ++m) {
    for (size_t w = 0; w < layout.member(m).spec.windows.size(); ++w) {
      for (const ods::Micros t : times) {
        static_cast<void>(ods::aggregate::OutputBytes(group.Query(m, w, t, &*cold)));
      }
    }
  }
  if (rows > 0) Require(!ColdRows::MergeBlobs(layout, in, in, 1000 * kDay).ok());

  const ods::Result<int64_t> restored = group.RestoreColdRows(*cold);
  Require(restored.ok() && cold->empty());
  Require(*restored == static_cast<int64_t>(group.MemoryBytes()) -
                           static_cast<int64_t>(ods::aggregate::SeriesGroup(layout).MemoryBytes()));
  // Rows of the last tiles of int64 time end after the largest cutoff and stay.
  std::string again;
  static_cast<void>(group.SplitColdRows(std::numeric_limits<ods::Micros>::max(), again));
  const ods::Result<ColdRows> redecoded = ColdRows::Decode(layout, again);
  Require(redecoded.ok() && redecoded->row_count() <= rows);
  return 0;
}
