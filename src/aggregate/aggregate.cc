#include "ods/aggregate/aggregate.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "aggregate/partial.h"
#include "ods/common/check.h"
#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/common/units.h"
#include "ods/common/value_type.h"
#include "ods/record/value.h"

namespace ods::aggregate {
namespace {

constexpr std::array<std::string_view, 11> kFnNames = {
    "count",          "sum",  "min", "max", "mean", "stddev", "first", "last", "last_n",
    "distinct_count", "top_k"};

constexpr Micros kSecond = 1'000'000;
constexpr Micros kMinute = 60 * kSecond;
constexpr Micros kHour = 60 * kMinute;
constexpr Micros kDay = 24 * kHour;

bool IsKnown(Fn fn) { return static_cast<size_t>(fn) < kFnNames.size(); }

}  // namespace

std::string_view FnName(Fn fn) {
  return IsKnown(fn) ? kFnNames[static_cast<size_t>(fn)] : std::string_view("unknown");
}

std::optional<Fn> ParseFn(std::string_view name) {
  for (size_t i = 0; i < kFnNames.size(); ++i) {
    if (kFnNames[i] == name) return static_cast<Fn>(i);
  }
  return std::nullopt;
}

std::string_view FnNameList() {
  return "count, sum, min, max, mean, stddev, first, last, last_n, distinct_count, top_k";
}

bool NeedsField(Fn fn) { return fn != Fn::kCount; }

bool NeedsN(Fn fn) { return fn == Fn::kLastN || fn == Fn::kTopK; }

Status CheckInputType(Fn fn, ValueType type) {
  std::string_view accepted;
  bool ok = false;
  switch (fn) {
    case Fn::kCount:
      return OkStatus();
    case Fn::kSum:
    case Fn::kMean:
    case Fn::kStddev:
      accepted = "int64, double";
      ok = type == ValueType::kInt64 || type == ValueType::kDouble;
      break;
    case Fn::kMin:
    case Fn::kMax:
      accepted = "int64, double, timestamp, string";
      ok = type == ValueType::kInt64 || type == ValueType::kDouble ||
           type == ValueType::kTimestamp || type == ValueType::kString;
      break;
    case Fn::kFirst:
    case Fn::kLast:
    case Fn::kLastN:
      accepted = ValueTypeNameList();
      ok = type >= ValueType::kInt64 && type <= ValueType::kTimestamp;
      break;
    case Fn::kDistinctCount:
    case Fn::kTopK:
      accepted = "int64, bool, string, bytes, timestamp";
      ok = type == ValueType::kInt64 || type == ValueType::kBool || type == ValueType::kString ||
           type == ValueType::kBytes || type == ValueType::kTimestamp;
      break;
    default:
      return InvalidArgumentError("unknown aggregation function #" +
                                  std::to_string(static_cast<int>(fn)) + "; expected one of " +
                                  std::string(FnNameList()));
  }
  if (ok) return OkStatus();
  return InvalidArgumentError(std::string(FnName(fn)) + " cannot aggregate a field of type " +
                              std::string(ValueTypeName(type)) + "; it accepts " +
                              std::string(accepted));
}

Micros DefaultTileFor(Micros window_micros) {
  static constexpr Micros kCandidates[] = {kDay, kHour, kMinute, kSecond};
  if (window_micros <= 0) return window_micros;
  for (Micros tile : kCandidates) {
    if (window_micros % tile == 0 && window_micros / tile >= 24) return tile;
  }
  for (Micros tile : kCandidates) {
    if (window_micros % tile == 0) return tile;
  }
  return window_micros;
}

Status Validate(const Spec& spec) {
  if (!IsKnown(spec.fn)) {
    return InvalidArgumentError("unknown aggregation function #" +
                                std::to_string(static_cast<int>(spec.fn)) + "; expected one of " +
                                std::string(FnNameList()));
  }
  const std::string name(FnName(spec.fn));
  ODS_RETURN_IF_ERROR(CheckInputType(spec.fn, spec.input_type));
  if (NeedsN(spec.fn)) {
    if (spec.n < 1 || spec.n > kMaxN) {
      return InvalidArgumentError(name + " needs n in [1, " + std::to_string(kMaxN) + "], got " +
                                  std::to_string(spec.n));
    }
  } else if (spec.n != 0) {
    return InvalidArgumentError(name + " takes no n (got " + std::to_string(spec.n) +
                                "); only last_n and top_k do");
  }
  if (spec.windows.empty()) return InvalidArgumentError(name + " needs at least one window");
  if (spec.tiles.size() != spec.windows.size()) {
    return InvalidArgumentError(name + " has " + std::to_string(spec.windows.size()) +
                                " windows but " + std::to_string(spec.tiles.size()) +
                                " tile sizes; each window needs one");
  }
  for (size_t i = 0; i < spec.windows.size(); ++i) {
    const Micros window = spec.windows[i];
    const Micros tile = spec.tiles[i];
    if (window <= 0) {
      return InvalidArgumentError(name + " window #" + std::to_string(i + 1) +
                                  " must be positive, got " + FormatDuration(window));
    }
    if (tile <= 0) {
      return InvalidArgumentError(name + " window " + FormatDuration(window) +
                                  ": tile size must be positive, got " + FormatDuration(tile));
    }
    if (window % tile != 0) {
      return InvalidArgumentError(name + " window " + FormatDuration(window) + ": tile size " +
                                  FormatDuration(tile) + " does not divide it");
    }
    if (window / tile > kMaxTilesPerWindow) {
      return InvalidArgumentError(name + " window " + FormatDuration(window) + " with tile size " +
                                  FormatDuration(tile) + " spans " + std::to_string(window / tile) +
                                  " tiles; at most " + std::to_string(kMaxTilesPerWindow) +
                                  " are allowed: use a larger tile");
    }
  }
  return OkStatus();
}

size_t ValueBytes(const record::Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return s->size() + 8;
  if (const auto* b = std::get_if<record::Bytes>(&v)) return b->data.size() + 8;
  if (const auto* f = std::get_if<std::vector<float>>(&v)) return f->size() * 4 + 8;
  return 12;
}

Micros WindowStart(const Spec& spec, size_t window, Micros as_of) {
  const Micros tile = spec.tiles[window];
  const int64_t first = FirstTileIndex(spec, window, FloorDiv(as_of, tile));
  // first * tile overflows only below the int64 range: clamp there.
  return first < std::numeric_limits<Micros>::min() / tile ? std::numeric_limits<Micros>::min()
                                                           : first * tile;
}

size_t OutputBytes(const Output& out) {
  if (const auto* v = std::get_if<record::Value>(&out)) return ValueBytes(*v);
  if (const auto* list = std::get_if<std::vector<record::Value>>(&out)) {
    size_t bytes = 8;
    for (const record::Value& v : *list) bytes += ValueBytes(v);
    return bytes;
  }
  return 4;
}

Output ComputeAsOf(const Spec& spec, size_t window, std::span<const Sample> events_in_arrival_order,
                   Micros as_of) {
  ODS_DCHECK(window < spec.windows.size());
  const Micros tile = spec.tiles[window];
  const int64_t last = FloorDiv(as_of, tile);
  const int64_t first = FirstTileIndex(spec, window, last);
  return WithPartial(spec, [&](auto tag) -> Output {
    Tiles<typename decltype(tag)::type> tiles;
    for (const Sample& event : events_in_arrival_order) {
      if (event.event_time > as_of || !Accepts(spec, event.value)) continue;
      const int64_t index = FloorDiv(event.event_time, tile);
      if (index < first) continue;
      FoldIntoTile(tiles, first, index, event.event_time, event.value, spec,
                   static_cast<size_t>(spec.windows[window] / tile));
    }
    return MergeTiles(tiles, first, last, spec);
  });
}

}  // namespace ods::aggregate
