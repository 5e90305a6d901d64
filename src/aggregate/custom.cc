// CustomSeries and ComputeCustomAsOf: the tiles of user-defined aggregations (aggregate.h).

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aggregate/partial.h"
#include "ods/aggregate/aggregate.h"
#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/record/value.h"

namespace ods::aggregate {
namespace {

// The runs of `spec`: distinct tile sizes in order of first use, each with the longest window
// that uses it.
struct RunShape {
  Micros tile = 0;
  Micros keep = 0;
};

// At most a few windows per spec: a linear scan beats any map.
size_t RunsOf(const Spec& spec, RunShape* out, size_t capacity) {
  size_t n = 0;
  for (size_t w = 0; w < spec.windows.size(); ++w) {
    size_t r = 0;
    while (r < n && out[r].tile != spec.tiles[w]) ++r;
    if (r == n) {
      if (n == capacity) break;
      out[n++] = {spec.tiles[w], 0};
    }
    out[r].keep = std::max(out[r].keep, spec.windows[w]);
  }
  return n;
}

// The run (see RunsOf) that holds windows[window]'s tiles.
size_t RunOfWindow(const Spec& spec, size_t window) {
  size_t run = 0;
  for (size_t w = 0; w < spec.windows.size(); ++w) {
    bool first_use = true;
    for (size_t v = 0; v < w && first_use; ++v) first_use = spec.tiles[v] != spec.tiles[w];
    if (!first_use) continue;
    if (spec.tiles[w] == spec.tiles[window]) return run;
    ++run;
  }
  return run;
}

constexpr size_t kMaxRuns = 16;

size_t StateHeapBytes(const std::string& s) { return s.capacity() > 15 ? s.capacity() : 0; }

}  // namespace

std::vector<CustomSeries::Tile>::const_iterator CustomSeries::Find(uint32_t run,
                                                                  int64_t index) const {
  return std::lower_bound(tiles_.begin(), tiles_.end(), std::pair(run, index),
                          [](const Tile& t, const std::pair<uint32_t, int64_t>& key) {
                            return t.run != key.first ? t.run < key.first : t.index < key.second;
                          });
}

Status CustomSeries::Stage(CustomFn& fn, const Spec& spec, Micros event_time,
                           std::span<const record::Value* const> values, Micros now,
                           Staged& out) const {
  out.changes.clear();
  RunShape shapes[kMaxRuns];
  const size_t runs = RunsOf(spec, shapes, kMaxRuns);
  for (size_t r = 0; r < runs; ++r) {
    const Micros tile = shapes[r].tile;
    const int64_t first = SaturatingSub(FloorDiv(now, tile), shapes[r].keep / tile - 1);
    const int64_t index = FloorDiv(event_time, tile);
    if (index < first) continue;
    Staged::Change& change = out.changes.emplace_back();
    change.run = static_cast<uint32_t>(r);
    change.index = index;
    auto it = Find(change.run, index);
    if (it != tiles_.end() && it->run == change.run && it->index == index) {
      change.state = it->state;
    } else {
      change.state.clear();
    }
    ODS_RETURN_IF_ERROR(fn.Update(change.state, event_time, values));
  }
  return OkStatus();
}

int64_t CustomSeries::Commit(const Spec& spec, Staged& staged, Micros now) {
  if (staged.changes.empty()) return 0;
  RunShape shapes[kMaxRuns];
  RunsOf(spec, shapes, kMaxRuns);
  int64_t delta = 0;
  for (Staged::Change& change : staged.changes) {
    auto found = Find(change.run, change.index);
    auto it = tiles_.begin() + (found - tiles_.cbegin());
    if (it != tiles_.end() && it->run == change.run && it->index == change.index) {
      delta -= static_cast<int64_t>(StateHeapBytes(it->state));
      it->state.swap(change.state);
      delta += static_cast<int64_t>(StateHeapBytes(it->state));
      continue;
    }
    // A new tile: first forget the tiles of its run that no window needs any more (all lie
    // before `it`). Erase and insert move strings between slots, and a moved-to string can keep
    // its old buffer, so the change of bytes is measured rather than derived.
    const RunShape& shape = shapes[change.run];
    const int64_t first = SaturatingSub(FloorDiv(now, shape.tile), shape.keep / shape.tile - 1);
    const auto before = static_cast<int64_t>(MemoryBytes());
    auto run_begin = tiles_.begin() + (Find(change.run, INT64_MIN) - tiles_.cbegin());
    auto stale_end = tiles_.begin() + (Find(change.run, first) - tiles_.cbegin());
    if (stale_end > it) stale_end = it;
    const auto position = (it - tiles_.begin()) - (stale_end - run_begin);
    tiles_.erase(run_begin, stale_end);
    tiles_.insert(tiles_.begin() + position,
                  Tile{change.run, change.index, std::move(change.state)});
    delta += static_cast<int64_t>(MemoryBytes()) - before;
  }
  staged.changes.clear();
  return delta;
}

Status CustomSeries::Query(CustomFn& fn, const Spec& spec, size_t window, Micros now,
                           Output& out) const {
  thread_local std::vector<std::string_view> states;
  states.clear();
  const auto run = static_cast<uint32_t>(RunOfWindow(spec, window));
  const int64_t last = FloorDiv(now, spec.tiles[window]);
  const int64_t first = FirstTileIndex(spec, window, last);
  for (auto it = Find(run, first); it != tiles_.end() && it->run == run && it->index <= last;
       ++it) {
    states.push_back(it->state);
  }
  return fn.Finish(states, out);
}

size_t CustomSeries::MemoryBytes() const {
  size_t bytes = tiles_.capacity() * sizeof(Tile);
  for (const Tile& t : tiles_) bytes += StateHeapBytes(t.state);
  return bytes;
}

void CustomSeries::Prefetch() const {
  if (tiles_.empty()) return;
  const auto* end = reinterpret_cast<const char*>(tiles_.data() + tiles_.size());
  __builtin_prefetch(end - 1);
  __builtin_prefetch(end - 1 - 64);
}

Status ComputeCustomAsOf(CustomFn& fn, const Spec& spec, size_t window,
                         std::span<const CustomEvent> events_in_arrival_order, Micros as_of,
                         Output& out) {
  const Micros tile = spec.tiles[window];
  const int64_t last = FloorDiv(as_of, tile);
  const int64_t first = FirstTileIndex(spec, window, last);
  std::map<int64_t, std::string> tiles;
  for (const CustomEvent& e : events_in_arrival_order) {
    if (e.event_time > as_of) continue;
    const int64_t index = FloorDiv(e.event_time, tile);
    if (index < first || index > last) continue;
    std::string& state = tiles[index];
    std::string next = state;
    ODS_RETURN_IF_ERROR(fn.Update(next, e.event_time, e.values));
    state.swap(next);
  }
  std::vector<std::string_view> states;
  states.reserve(tiles.size());
  for (const auto& [index, state] : tiles) states.push_back(state);
  return fn.Finish(states, out);
}

}  // namespace ods::aggregate
