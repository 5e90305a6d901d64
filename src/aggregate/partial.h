#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/container/inlined_vector.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "aggregate/hll.h"
#include "ods/aggregate/aggregate.h"
#include "ods/common/check.h"
#include "ods/common/clock.h"
#include "ods/common/hash.h"
#include "ods/common/value_type.h"
#include "ods/record/value.h"

// Per-tile partial aggregates (private to ods_aggregate).
//
// Each (fn, input type) has its own partial type P, so a tile costs only what its fn needs (a
// count tile is 16 bytes with its index, not the size of the largest partial). Every P has an
// Ops<P> with one fold and one merge, used both by Series (online) and by ComputeAsOf
// (point in time), which is what makes their results bit-identical:
//   static P Init(Micros t, const record::Value* v, const Spec&);  // a tile's first event
//   static void Fold(P&, Micros t, const record::Value* v, const Spec&);  // a later event
//   using Acc = ...;  // a window being merged; value-initialized = empty window
//   static void Merge(Acc&, const P& tile, const Spec&);  // tiles in ascending time order
//   static Output Finish(const Acc&, const Spec&);
//   static constexpr bool kHasHeap; static size_t HeapBytes(const P&);
//   // Optional, where HeapBytes is not O(1): Fold returning the change of HeapBytes.
//   static int64_t FoldCountingHeap(P&, Micros t, const record::Value* v, const Spec&);
// `v` is null only for kCount; otherwise it holds spec.input_type. An Acc may point into the
// tiles it merged: Finish runs before they change.
namespace ods::aggregate {

[[noreturn]] inline void SpecNotValidated() {
  ::ods::internal::CheckFailed("Validate(spec).ok() (fn/input type pair)", __FILE__, __LINE__);
}

// ---- Slots: the compact storage of one value of a given input type ----------------------------
// int64_t holds int64, bool and timestamp; double; std::string holds string and bytes;
// std::vector<float> holds float_vector. Slot<S>::Ref reads a Value without copying.
template <class S>
struct Slot;

template <>
struct Slot<int64_t> {
  using View = int64_t;
  static int64_t Ref(const record::Value& v) {
    if (const auto* i = std::get_if<int64_t>(&v)) return *i;
    if (const auto* b = std::get_if<bool>(&v)) return *b ? 1 : 0;
    return std::get<record::Timestamp>(v).micros;
  }
  static record::Value ToValue(int64_t x, ValueType type) {
    if (type == ValueType::kBool) return record::Value(std::in_place_type<bool>, x != 0);
    if (type == ValueType::kTimestamp) return record::Value(record::Timestamp{x});
    return record::Value(std::in_place_type<int64_t>, x);
  }
  static constexpr bool kHasHeap = false;
  static size_t HeapBytes(int64_t) { return 0; }
};

template <>
struct Slot<double> {
  using View = double;
  static double Ref(const record::Value& v) { return std::get<double>(v); }
  static record::Value ToValue(double x, ValueType) {
    return record::Value(std::in_place_type<double>, x);
  }
  static constexpr bool kHasHeap = false;
  static size_t HeapBytes(double) { return 0; }
};

template <>
struct Slot<std::string> {
  using View = std::string_view;
  static const std::string& Ref(const record::Value& v) {
    if (const auto* s = std::get_if<std::string>(&v)) return *s;
    return std::get<record::Bytes>(v).data;
  }
  static record::Value ToValue(std::string_view x, ValueType type) {
    if (type == ValueType::kBytes) return record::Value(record::Bytes{std::string(x)});
    return record::Value(std::in_place_type<std::string>, x);
  }
  static constexpr bool kHasHeap = true;
  static size_t HeapBytes(const std::string& s) {
    static const size_t kInline = std::string().capacity();
    return s.capacity() > kInline ? s.capacity() + 1 : 0;
  }
};

template <>
struct Slot<std::vector<float>> {
  using View = const std::vector<float>&;
  static const std::vector<float>& Ref(const record::Value& v) {
    return std::get<std::vector<float>>(v);
  }
  static record::Value ToValue(const std::vector<float>& x, ValueType) { return record::Value(x); }
  static constexpr bool kHasHeap = true;
  static size_t HeapBytes(const std::vector<float>& x) { return x.capacity() * sizeof(float); }
};

// Stable 64-bit hash of a slot value, for distinct_count.
inline uint64_t HashSlot(std::string_view x) { return StableHash64(x); }
inline uint64_t HashSlot(int64_t x) {
  char bytes[sizeof x];
  std::memcpy(bytes, &x, sizeof x);
  return StableHash64(std::string_view(bytes, sizeof bytes));
}

// ---- tile arithmetic ----------------------------------------------------------------------

// floor(a / b) for b > 0: tile indices of negative times round down, not toward zero.
inline int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if (a % b != 0 && a < 0) --q;
  return q;
}

// a - b for b >= 0, clamped at the smallest int64 instead of overflowing.
inline int64_t SaturatingSub(int64_t a, int64_t b) {
  return a < std::numeric_limits<int64_t>::min() + b ? std::numeric_limits<int64_t>::min() : a - b;
}

// Index of the first tile of windows[window] as of the tile `last` (which holds the as-of time).
inline int64_t FirstTileIndex(const Spec& spec, size_t window, int64_t last) {
  return SaturatingSub(last, spec.windows[window] / spec.tiles[window] - 1);
}

// Whether an event with `value` is folded: kCount takes every event; other fns need the field,
// of the spec's input type.
inline bool Accepts(const Spec& spec, const record::Value* value) {
  if (spec.fn == Fn::kCount) return true;
  return value != nullptr && record::TypeOf(*value) == spec.input_type;
}

template <class P>
struct Ops;

// An Output holding a scalar of type T, built in place (moving a temporary Value into the Output
// trips GCC 12's -Wmaybe-uninitialized under the sanitizers).
template <class T>
Output ScalarOutput(T x) {
  return Output(std::in_place_type<record::Value>, std::in_place_type<T>, x);
}

// ---- count, sum, mean, stddev -----------------------------------------------------------------

struct CountPartial {
  int64_t n = 0;
};

template <>
struct Ops<CountPartial> {
  static CountPartial Init(Micros, const record::Value*, const Spec&) { return {1}; }
  static void Fold(CountPartial& p, Micros, const record::Value*, const Spec&) { ++p.n; }
  using Acc = int64_t;
  static void Merge(Acc& acc, const CountPartial& p, const Spec&) { acc += p.n; }
  static Output Finish(const Acc& acc, const Spec&) { return ScalarOutput<int64_t>(acc); }
  static constexpr bool kHasHeap = false;
  static size_t HeapBytes(const CountPartial&) { return 0; }
};

// Sum of int64 input: two's complement, so overflow wraps instead of being undefined.
struct SumIntPartial {
  uint64_t sum = 0;
};

template <>
struct Ops<SumIntPartial> {
  static SumIntPartial Init(Micros t, const record::Value* v, const Spec& s) {
    SumIntPartial p;
    Fold(p, t, v, s);
    return p;
  }
  static void Fold(SumIntPartial& p, Micros, const record::Value* v, const Spec&) {
    p.sum += static_cast<uint64_t>(std::get<int64_t>(*v));
  }
  using Acc = SumIntPartial;
  static void Merge(Acc& acc, const SumIntPartial& p, const Spec&) { acc.sum += p.sum; }
  static Output Finish(const Acc& acc, const Spec&) {
    return ScalarOutput(static_cast<int64_t>(acc.sum));
  }
  static constexpr bool kHasHeap = false;
  static size_t HeapBytes(const SumIntPartial&) { return 0; }
};

struct SumDoublePartial {
  double sum = 0.0;
};

template <>
struct Ops<SumDoublePartial> {
  static SumDoublePartial Init(Micros t, const record::Value* v, const Spec& s) {
    SumDoublePartial p;
    Fold(p, t, v, s);
    return p;
  }
  static void Fold(SumDoublePartial& p, Micros, const record::Value* v, const Spec&) {
    p.sum += std::get<double>(*v);
  }
  using Acc = SumDoublePartial;
  static void Merge(Acc& acc, const SumDoublePartial& p, const Spec&) { acc.sum += p.sum; }
  static Output Finish(const Acc& acc, const Spec&) { return ScalarOutput<double>(acc.sum); }
  static constexpr bool kHasHeap = false;
  static size_t HeapBytes(const SumDoublePartial&) { return 0; }
};

inline double AsDouble(const record::Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  return std::get<double>(v);
}

struct MeanPartial {
  int64_t n = 0;
  double sum = 0.0;
};

template <>
struct Ops<MeanPartial> {
  static MeanPartial Init(Micros t, const record::Value* v, const Spec& s) {
    MeanPartial p;
    Fold(p, t, v, s);
    return p;
  }
  static void Fold(MeanPartial& p, Micros, const record::Value* v, const Spec&) {
    ++p.n;
    p.sum += AsDouble(*v);
  }
  using Acc = MeanPartial;
  static void Merge(Acc& acc, const MeanPartial& p, const Spec&) {
    acc.n += p.n;
    acc.sum += p.sum;
  }
  static Output Finish(const Acc& acc, const Spec&) {
    if (acc.n == 0) return std::monostate{};
    return ScalarOutput(acc.sum / static_cast<double>(acc.n));
  }
  static constexpr bool kHasHeap = false;
  static size_t HeapBytes(const MeanPartial&) { return 0; }
};

// Welford's running moments within a tile; tiles combine with Chan et al.'s parallel formula.
struct StddevPartial {
  int64_t n = 0;
  double mean = 0.0;
  double m2 = 0.0;  // sum of squared deviations from `mean`
};

template <>
struct Ops<StddevPartial> {
  static StddevPartial Init(Micros t, const record::Value* v, const Spec& s) {
    StddevPartial p;
    Fold(p, t, v, s);
    return p;
  }
  static void Fold(StddevPartial& p, Micros, const record::Value* v, const Spec&) {
    const double x = AsDouble(*v);
    ++p.n;
    const double delta = x - p.mean;
    p.mean += delta / static_cast<double>(p.n);
    p.m2 += delta * (x - p.mean);
  }
  using Acc = StddevPartial;
  static void Merge(Acc& acc, const StddevPartial& p, const Spec&) {
    if (acc.n == 0) {
      acc = p;
      return;
    }
    const double na = static_cast<double>(acc.n);
    const double nb = static_cast<double>(p.n);
    const double n = na + nb;
    const double delta = p.mean - acc.mean;
    acc.n += p.n;
    acc.mean += delta * (nb / n);
    acc.m2 += p.m2 + delta * delta * (na * nb / n);
  }
  static Output Finish(const Acc& acc, const Spec&) {
    if (acc.n == 0) return std::monostate{};
    return ScalarOutput(std::sqrt(std::max(0.0, acc.m2 / static_cast<double>(acc.n))));
  }
  static constexpr bool kHasHeap = false;
  static size_t HeapBytes(const StddevPartial&) { return 0; }
};

// ---- min, max ---------------------------------------------------------------------------------

// The smallest (kMax: largest) value of a tile. Ties keep the value seen first.
template <class S, bool kMax>
struct ExtremePartial {
  S value;
};

template <class S, bool kMax>
struct Ops<ExtremePartial<S, kMax>> {
  using P = ExtremePartial<S, kMax>;
  template <class A, class B>
  static bool Better(const A& candidate, const B& current) {
    return kMax ? current < candidate : candidate < current;
  }
  static P Init(Micros, const record::Value* v, const Spec&) { return P{S(Slot<S>::Ref(*v))}; }
  static void Fold(P& p, Micros, const record::Value* v, const Spec&) {
    const auto& x = Slot<S>::Ref(*v);
    if (Better(x, p.value)) p.value = x;
  }
  using Acc = const P*;  // null: empty window
  static void Merge(Acc& acc, const P& p, const Spec&) {
    if (acc == nullptr || Better(p.value, acc->value)) acc = &p;
  }
  static Output Finish(const Acc& acc, const Spec& s) {
    if (acc == nullptr) return std::monostate{};
    return Slot<S>::ToValue(acc->value, s.input_type);
  }
  static constexpr bool kHasHeap = Slot<S>::kHasHeap;
  static size_t HeapBytes(const P& p) { return Slot<S>::HeapBytes(p.value); }
};

// ---- first, last ------------------------------------------------------------------------------

// The earliest (kLast: latest) event of a tile. Ties on event time: first (kLast: last) to
// arrive, which folding in arrival order gives by replacing only on a strictly earlier time
// (kLast: on a later or equal time). Merging applies the same rule to whole partials: tiles
// cover disjoint times, so in time order a later tile always wins for kLast and never for kFirst,
// and two partials of one tile merged in arrival order (a cold one, then one in RAM) still give
// the earliest (kLast: latest) event.
template <class S, bool kLast>
struct EdgePartial {
  Micros time;
  S value;
};

template <class S, bool kLast>
struct Ops<EdgePartial<S, kLast>> {
  using P = EdgePartial<S, kLast>;
  static P Init(Micros t, const record::Value* v, const Spec&) { return P{t, S(Slot<S>::Ref(*v))}; }
  static void Fold(P& p, Micros t, const record::Value* v, const Spec&) {
    if (kLast ? t >= p.time : t < p.time) {
      p.time = t;
      p.value = Slot<S>::Ref(*v);
    }
  }
  using Acc = const P*;  // null: empty window
  static void Merge(Acc& acc, const P& p, const Spec&) {
    if (acc == nullptr || (kLast ? p.time >= acc->time : p.time < acc->time)) acc = &p;
  }
  static Output Finish(const Acc& acc, const Spec& s) {
    if (acc == nullptr) return std::monostate{};
    return Slot<S>::ToValue(acc->value, s.input_type);
  }
  static constexpr bool kHasHeap = Slot<S>::kHasHeap;
  static size_t HeapBytes(const P& p) { return Slot<S>::HeapBytes(p.value); }
};

// ---- last_n -----------------------------------------------------------------------------------

// The spec.n latest events of a tile, newest first; on equal times the later arrival first.
template <class S>
struct LastNPartial {
  struct Entry {
    Micros time;
    S value;
  };
  std::vector<Entry> newest_first;
};

template <class S>
struct Ops<LastNPartial<S>> {
  using P = LastNPartial<S>;
  static P Init(Micros t, const record::Value* v, const Spec& s) {
    P p;
    Fold(p, t, v, s);
    return p;
  }
  static void Fold(P& p, Micros t, const record::Value* v, const Spec& s) {
    FoldCountingHeap(p, t, v, s);
  }
  // Fold, returning the change of HeapBytes(p) in O(1) (HeapBytes itself walks the entries).
  static int64_t FoldCountingHeap(P& p, Micros t, const record::Value* v, const Spec& s) {
    auto& list = p.newest_first;
    // Before every entry at or before `t`: a later arrival at an equal time goes first.
    auto it = std::partition_point(list.begin(), list.end(),
                                   [t](const typename P::Entry& e) { return e.time > t; });
    const auto position = it - list.begin();
    if (static_cast<size_t>(position) >= s.n) return 0;
    const auto capacity = static_cast<int64_t>(list.capacity());
    int64_t delta = 0;
    if (list.size() == s.n) {
      delta -= static_cast<int64_t>(Slot<S>::HeapBytes(list.back().value));
      list.pop_back();
    }
    auto entry = list.insert(list.begin() + position, typename P::Entry{t, S(Slot<S>::Ref(*v))});
    delta += static_cast<int64_t>(Slot<S>::HeapBytes(entry->value));
    return delta + (static_cast<int64_t>(list.capacity()) - capacity) *
                       static_cast<int64_t>(sizeof(typename P::Entry));
  }
  using Acc = std::vector<const P*>;  // tiles in ascending time order
  static void Merge(Acc& acc, const P& p, const Spec&) { acc.push_back(&p); }
  static Output Finish(const Acc& acc, const Spec& s) {
    std::vector<record::Value> out;
    for (auto tile = acc.rbegin(); tile != acc.rend() && out.size() < s.n; ++tile) {
      for (const auto& e : (*tile)->newest_first) {
        if (out.size() == s.n) break;
        out.push_back(Slot<S>::ToValue(e.value, s.input_type));
      }
    }
    return out;
  }
  static constexpr bool kHasHeap = true;
  static size_t HeapBytes(const P& p) {
    size_t bytes = p.newest_first.capacity() * sizeof(typename P::Entry);
    if constexpr (Slot<S>::kHasHeap) {
      for (const auto& e : p.newest_first) bytes += Slot<S>::HeapBytes(e.value);
    }
    return bytes;
  }
};

// ---- distinct_count ---------------------------------------------------------------------------

// The number of distinct values in `hashes`: an open-addressing set at load <= 1/2 (0 marks a
// free slot; the hash 0 is counted apart). O(n) expected; allocates nothing up to 256 hashes.
inline size_t CountDistinct(std::span<const uint64_t> hashes) {
  size_t slots = 64;
  while (slots < 2 * hashes.size()) slots *= 2;
  absl::InlinedVector<uint64_t, 512> table(slots, 0);
  size_t distinct = 0;
  bool zero = false;
  for (uint64_t hash : hashes) {
    if (hash == 0) {
      distinct += zero ? 0 : 1;
      zero = true;
      continue;
    }
    size_t i = hash & (slots - 1);
    while (table[i] != 0 && table[i] != hash) i = (i + 1) & (slots - 1);
    if (table[i] == 0) {
      table[i] = hash;
      ++distinct;
    }
  }
  return distinct;
}

template <class S>
struct DistinctPartial {
  HllSketch sketch;  // by value: one cache miss fewer per event than behind a pointer
};

template <class S>
struct Ops<DistinctPartial<S>> {
  using P = DistinctPartial<S>;
  static P Init(Micros t, const record::Value* v, const Spec& s) {
    P p;
    Fold(p, t, v, s);
    return p;
  }
  static void Fold(P& p, Micros, const record::Value* v, const Spec&) {
    p.sketch.Add(HashSlot(Slot<S>::Ref(*v)));
  }
  // A window being merged. A window of one sparse tile is answered from that tile's sketch
  // (the usual read of an idle entity's long window); otherwise the hashes of the sparse tiles
  // are gathered (no sketch grown and re-hashed per tile) and the dense tiles (and, past
  // kFlushHashes, the gathered hashes) merged into one sketch. Finish gives what one sketch of
  // every hash would: the union's exact size while it has at most kSparseMax hashes, else the
  // estimate.
  struct Acc {
    static constexpr size_t kFlushHashes = 2 * HllSketch::kSparseMax;
    const HllSketch* only = nullptr;  // the window's one sparse tile so far, not yet gathered
    absl::InlinedVector<uint64_t, 256> hashes;  // 2 KiB on the stack: a few busy tiles, no malloc
    HllSketch sketch;
  };
  static void Gather(Acc& acc, const HllSketch& tile) {
    tile.ForEachSparse([&acc](uint64_t hash) { acc.hashes.push_back(hash); });
    if (acc.hashes.size() > Acc::kFlushHashes) {
      for (uint64_t hash : acc.hashes) acc.sketch.Add(hash);
      acc.hashes.clear();
    }
  }
  static void Merge(Acc& acc, const P& p, const Spec&) {
    if (p.sketch.dense()) {
      acc.sketch.Merge(p.sketch);
      return;
    }
    if (acc.only == nullptr && acc.hashes.empty() && acc.sketch.empty()) {
      acc.only = &p.sketch;
      return;
    }
    if (acc.only != nullptr) {
      Gather(acc, *acc.only);
      acc.only = nullptr;
    }
    Gather(acc, p.sketch);
  }
  static Output Finish(const Acc& acc, const Spec&) {
    if (acc.sketch.empty()) {
      if (acc.only != nullptr) return ScalarOutput(static_cast<int64_t>(acc.only->Estimate()));
      // Only gathered hashes: count them exactly if few.
      const size_t distinct = CountDistinct(acc.hashes);
      if (distinct <= HllSketch::kSparseMax) return ScalarOutput(static_cast<int64_t>(distinct));
    }
    HllSketch all = acc.sketch;
    if (acc.only != nullptr) all.Merge(*acc.only);
    for (uint64_t hash : acc.hashes) all.Add(hash);
    return ScalarOutput(static_cast<int64_t>(all.Estimate()));
  }
  static constexpr bool kHasHeap = true;
  static size_t HeapBytes(const P& p) { return p.sketch.HeapBytes(); }
};

// ---- top_k ------------------------------------------------------------------------------------

// Exact count of each value in a tile.
template <class S>
struct TopKPartial {
  using Counts = absl::flat_hash_map<S, int64_t>;
  std::unique_ptr<Counts> counts;  // never null in a stored tile
};

template <class S>
struct Ops<TopKPartial<S>> {
  using P = TopKPartial<S>;
  using View = typename Slot<S>::View;
  static P Init(Micros t, const record::Value* v, const Spec& s) {
    P p{std::make_unique<typename P::Counts>()};
    Fold(p, t, v, s);
    return p;
  }
  static void Fold(P& p, Micros t, const record::Value* v, const Spec& s) {
    FoldCountingHeap(p, t, v, s);
  }
  // Fold, returning the change of HeapBytes(p) in O(1) (HeapBytes itself walks the entries).
  static int64_t FoldCountingHeap(P& p, Micros, const record::Value* v, const Spec&) {
    const auto capacity = static_cast<int64_t>(p.counts->capacity());
    auto [entry, inserted] = p.counts->try_emplace(Slot<S>::Ref(*v), 0);
    ++entry->second;
    const int64_t key_bytes = inserted ? static_cast<int64_t>(Slot<S>::HeapBytes(entry->first)) : 0;
    return key_bytes + (static_cast<int64_t>(p.counts->capacity()) - capacity) *
                           static_cast<int64_t>(sizeof(typename P::Counts::slot_type) + 1);
  }
  using Acc = absl::flat_hash_map<View, int64_t>;  // views into the merged tiles
  static void Merge(Acc& acc, const P& p, const Spec&) {
    for (const auto& [value, count] : *p.counts) acc[View(value)] += count;
  }
  static Output Finish(const Acc& acc, const Spec& s) {
    std::vector<std::pair<View, int64_t>> entries(acc.begin(), acc.end());
    const size_t k = std::min<size_t>(s.n, entries.size());
    std::partial_sort(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(k),
                      entries.end(), [](const auto& a, const auto& b) {
                        return a.second != b.second ? a.second > b.second : a.first < b.first;
                      });
    std::vector<record::Value> out;
    out.reserve(k);
    for (size_t i = 0; i < k; ++i) out.push_back(Slot<S>::ToValue(entries[i].first, s.input_type));
    return out;
  }
  static constexpr bool kHasHeap = true;
  static size_t HeapBytes(const P& p) {
    // absl's layout: one slot and one control byte per capacity, plus a group of sentinels.
    size_t bytes = sizeof(typename P::Counts) +
                   p.counts->capacity() * (sizeof(typename P::Counts::slot_type) + 1) + 16;
    if constexpr (Slot<S>::kHasHeap) {
      for (const auto& entry : *p.counts) bytes += Slot<S>::HeapBytes(entry.first);
    }
    return bytes;
  }
};

// ---- tiles ------------------------------------------------------------------------------------

template <class P>
struct Tile {
  using Partial = P;
  int64_t index;  // FloorDiv(event time, tile size)
  P partial;
};

// Non-empty tiles of one tile size, sorted by index.
template <class P>
using Tiles = std::vector<Tile<P>>;

// Orders tiles and tile indices, for binary search.
template <class P>
struct TileIndexLess {
  bool operator()(const Tile<P>& tile, int64_t index) const { return tile.index < index; }
  bool operator()(int64_t index, const Tile<P>& tile) const { return index < tile.index; }
};

// Drops the tiles before index `first`, and returns the spare capacity once it dominates.
// Returns how many tiles it dropped.
template <class P>
size_t DropTilesBefore(Tiles<P>& tiles, int64_t first) {
  if (tiles.empty() || tiles.front().index >= first) return 0;
  auto it = std::lower_bound(tiles.begin(), tiles.end(), first, TileIndexLess<P>());
  const auto dropped = static_cast<size_t>(it - tiles.begin());
  tiles.erase(tiles.begin(), it);
  if (tiles.capacity() > 4 * tiles.size()) tiles.shrink_to_fit();
  return dropped;
}

// Folds an event into the tile `index` (>= `first`) of `tiles`, creating it in place if
// missing. Only a new tile drops the tiles before `first` (no window needs them any more): the
// common case, an event for the newest tile, touches nothing but that tile. The vector grows by
// doubling but not past `expected_tiles` (the tiles the longest window spans) until it must, so
// a full run carries no slack. O(1) amortized for the newest tile (in-order arrival),
// O(log tiles + tiles) otherwise.
template <class P>
void FoldIntoTile(Tiles<P>& tiles, int64_t first, int64_t index, Micros t, const record::Value* v,
                  const Spec& s, size_t expected_tiles) {
  ODS_DCHECK(index >= first);
  if (!tiles.empty() && tiles.back().index == index) {
    Ops<P>::Fold(tiles.back().partial, t, v, s);
    return;
  }
  size_t position = tiles.size();
  if (!tiles.empty() && tiles.back().index > index) {
    auto it = std::lower_bound(tiles.begin(), tiles.end(), index, TileIndexLess<P>());
    if (it->index == index) {
      Ops<P>::Fold(it->partial, t, v, s);
      return;
    }
    position = static_cast<size_t>(it - tiles.begin());
  }
  position -= DropTilesBefore(tiles, first);  // every dropped tile lies before `position`
  if (tiles.size() == tiles.capacity()) {
    const size_t doubled = std::max<size_t>(2 * tiles.capacity(), 1);
    tiles.reserve(tiles.size() < expected_tiles ? std::min(doubled, expected_tiles) : doubled);
  }
  tiles.insert(tiles.begin() + static_cast<std::ptrdiff_t>(position),
               Tile<P>{index, Ops<P>::Init(t, v, s)});
}

// The aggregate of the tiles with index in [first, last], merged in ascending order.
// O(log tiles + tiles in range) plus Finish.
template <class P>
Output MergeTiles(const Tiles<P>& tiles, int64_t first, int64_t last, const Spec& s) {
  typename Ops<P>::Acc acc{};
  auto it = std::lower_bound(tiles.begin(), tiles.end(), first, TileIndexLess<P>());
  for (; it != tiles.end() && it->index <= last; ++it) Ops<P>::Merge(acc, it->partial, s);
  return Ops<P>::Finish(acc, s);
}

// Heap bytes of `tiles`: the vector and each partial's payload.
template <class P>
size_t TilesHeapBytes(const Tiles<P>& tiles) {
  size_t bytes = tiles.capacity() * sizeof(Tile<P>);
  if constexpr (Ops<P>::kHasHeap) {
    for (const auto& tile : tiles) bytes += Ops<P>::HeapBytes(tile.partial);
  }
  return bytes;
}

// One alternative per partial type: the tiles of one tile size of one Series.
using AnyTiles =
    std::variant<Tiles<CountPartial>, Tiles<SumIntPartial>, Tiles<SumDoublePartial>,
                 Tiles<MeanPartial>, Tiles<StddevPartial>, Tiles<ExtremePartial<int64_t, false>>,
                 Tiles<ExtremePartial<double, false>>, Tiles<ExtremePartial<std::string, false>>,
                 Tiles<ExtremePartial<int64_t, true>>, Tiles<ExtremePartial<double, true>>,
                 Tiles<ExtremePartial<std::string, true>>, Tiles<EdgePartial<int64_t, false>>,
                 Tiles<EdgePartial<double, false>>, Tiles<EdgePartial<std::string, false>>,
                 Tiles<EdgePartial<std::vector<float>, false>>, Tiles<EdgePartial<int64_t, true>>,
                 Tiles<EdgePartial<double, true>>, Tiles<EdgePartial<std::string, true>>,
                 Tiles<EdgePartial<std::vector<float>, true>>, Tiles<LastNPartial<int64_t>>,
                 Tiles<LastNPartial<double>>, Tiles<LastNPartial<std::string>>,
                 Tiles<LastNPartial<std::vector<float>>>, Tiles<DistinctPartial<int64_t>>,
                 Tiles<DistinctPartial<std::string>>, Tiles<TopKPartial<int64_t>>,
                 Tiles<TopKPartial<std::string>>>;

template <class T>
struct TypeTag {
  using type = T;
};

// Calls f(TypeTag<S>{}) with the slot type of `type`; returns what f returns (type R).
template <class R, class F>
R WithSlot(ValueType type, F&& f) {
  switch (type) {
    case ValueType::kInt64:
    case ValueType::kBool:
    case ValueType::kTimestamp:
      return f(TypeTag<int64_t>{});
    case ValueType::kDouble:
      return f(TypeTag<double>{});
    case ValueType::kString:
    case ValueType::kBytes:
      return f(TypeTag<std::string>{});
    case ValueType::kFloatVector:
      return f(TypeTag<std::vector<float>>{});
  }
  SpecNotValidated();
}

// Calls f(TypeTag<P>{}) with the partial type of a validated `spec`; returns what f returns.
template <class F>
auto WithPartial(const Spec& spec, F&& f) {
  using R = std::invoke_result_t<F&, TypeTag<CountPartial>>;
  switch (spec.fn) {
    case Fn::kCount:
      return f(TypeTag<CountPartial>{});
    case Fn::kSum:
      if (spec.input_type == ValueType::kDouble) return f(TypeTag<SumDoublePartial>{});
      return f(TypeTag<SumIntPartial>{});
    case Fn::kMean:
      return f(TypeTag<MeanPartial>{});
    case Fn::kStddev:
      return f(TypeTag<StddevPartial>{});
    case Fn::kMin:
    case Fn::kMax:
      return WithSlot<R>(spec.input_type, [&](auto slot) -> R {
        using S = typename decltype(slot)::type;
        if constexpr (std::is_same_v<S, std::vector<float>>) {
          SpecNotValidated();
        } else if (spec.fn == Fn::kMax) {
          return f(TypeTag<ExtremePartial<S, true>>{});
        } else {
          return f(TypeTag<ExtremePartial<S, false>>{});
        }
      });
    case Fn::kFirst:
      return WithSlot<R>(spec.input_type, [&](auto slot) -> R {
        return f(TypeTag<EdgePartial<typename decltype(slot)::type, false>>{});
      });
    case Fn::kLast:
      return WithSlot<R>(spec.input_type, [&](auto slot) -> R {
        return f(TypeTag<EdgePartial<typename decltype(slot)::type, true>>{});
      });
    case Fn::kLastN:
      return WithSlot<R>(spec.input_type, [&](auto slot) -> R {
        return f(TypeTag<LastNPartial<typename decltype(slot)::type>>{});
      });
    case Fn::kDistinctCount:
    case Fn::kTopK:
      return WithSlot<R>(spec.input_type, [&](auto slot) -> R {
        using S = typename decltype(slot)::type;
        if constexpr (std::is_same_v<S, int64_t> || std::is_same_v<S, std::string>) {
          if (spec.fn == Fn::kTopK) return f(TypeTag<TopKPartial<S>>{});
          return f(TypeTag<DistinctPartial<S>>{});
        } else {
          SpecNotValidated();
        }
      });
  }
  SpecNotValidated();
}

}  // namespace ods::aggregate
