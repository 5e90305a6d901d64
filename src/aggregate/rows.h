#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "ods/aggregate/aggregate.h"
#include "ods/common/clock.h"
#include "ods/record/value.h"

// The row format of SeriesGroup and ColdRows (private to ods_aggregate).
//
// A run's rows live in one buffer, sorted by tile index; a row is
//   [int64_t index][uint64_t present][partial of slot 0][partial of slot 1]...
// where bit s of `present` says slot s's partial is constructed (its member took an event in
// that tile). Partials are constructed in place and moved between rows through a small table of
// functions per partial type (PartialOps), so the fold and merge are the very Ops<P> that
// ComputeAsOf uses: online and point-in-time values stay bit-identical.
namespace ods::aggregate {

inline constexpr size_t kHeaderBytes = 2 * sizeof(uint64_t);  // index, present
inline constexpr size_t kMaxSlotsPerRun = 64;                 // bits of `present`

// Consecutive rows of one run, ascending by index.
struct RowRange {
  const std::byte* data = nullptr;
  size_t count = 0;
};

// The type-erased operations on one partial type P, constructed in raw row memory.
struct PartialOps {
  size_t size;
  size_t align;
  bool trivially_relocatable;  // a memcpy moves it
  // Construct / fold into the partial at `at`; each returns the change of its heap bytes
  // (heap_bytes), in O(1) for every fn (kLastN, kTopK count what they add and drop).
  int64_t (*init)(std::byte* at, Micros t, const record::Value* v, const Spec& s);
  int64_t (*fold)(std::byte* at, Micros t, const record::Value* v, const Spec& s);
  void (*relocate)(std::byte* to, std::byte* from);  // move-construct at `to`, destroy `from`
  void (*destroy)(std::byte* at);
  size_t (*heap_bytes)(const std::byte* at);
  // Merges the partials at `offset` of the rows whose present bit `bit` is set, in row order.
  Output (*merge)(const std::byte* rows, size_t count, size_t stride, size_t offset, uint64_t bit,
                  const Spec& s);
  // As merge, over two ranges in ascending index order; on equal indices the row of `older`
  // first. (Apart from merge so that queries without cold rows pay nothing for it.)
  Output (*merge_two)(RowRange older, RowRange newer, size_t stride, size_t offset, uint64_t bit,
                      const Spec& s);
  // Appends the partial at `at` to `out` (partial_codec.h).
  void (*encode)(const std::byte* at, std::string& out);
  // Reads one partial from the front of `in` and constructs it at `at`; false (nothing
  // constructed, `in` consumed up to the fault) on truncated or invalid bytes.
  bool (*decode)(std::string_view& in, std::byte* at, const Spec& s);
};

template <class P>
P* As(std::byte* at) {
  return std::launder(reinterpret_cast<P*>(at));
}
template <class P>
const P* As(const std::byte* at) {
  return std::launder(reinterpret_cast<const P*>(at));
}

inline uint64_t PresentBits(const std::byte* row) {
  uint64_t present;
  std::memcpy(&present, row + sizeof(int64_t), sizeof present);
  return present;
}
inline void SetPresentBits(std::byte* row, uint64_t present) {
  std::memcpy(row + sizeof(int64_t), &present, sizeof present);
}
inline int64_t RowIndex(const std::byte* row) {
  int64_t index;
  std::memcpy(&index, row, sizeof index);
  return index;
}
inline void SetRowIndex(std::byte* row, int64_t index) {
  std::memcpy(row, &index, sizeof index);
}

// One member's partial within the rows of a run.
struct GroupLayout::Slot {
  uint32_t member = 0;
  uint32_t offset = 0;  // bytes from the row's start
  const PartialOps* ops = nullptr;
};

// The rows of one tile size: which members have a partial there, where, and how far back rows
// are kept.
struct GroupLayout::Run {
  Micros tile = 0;
  Micros keep = 0;           // longest window of any slot with this tile size
  size_t expected_rows = 0;  // keep / tile: rows a full run holds
  size_t row_bytes = kHeaderBytes;
  bool trivially_relocatable = true;  // every slot's partial is
  std::vector<Slot> slots;            // at most kMaxSlotsPerRun
};

// Moves `count` rows from `from` to `to`: non-overlapping, or `to` below `from` (rows move in
// ascending order).
void RelocateRows(const GroupLayout::Run& run, std::byte* to, std::byte* from, size_t count);

// Destroys the partials of `count` rows at `rows`; returns the heap bytes they held if
// `count_heap`, else 0 (HeapBytes walks top_k maps and last_n lists).
size_t DestroyRows(const GroupLayout::Run& run, std::byte* rows, size_t count, bool count_heap);

// Heap bytes of the partials of `count` rows at `rows` (0 for a trivially relocatable run).
size_t RowsHeapBytes(const GroupLayout::Run& run, const std::byte* rows, size_t count);

// First row of `data` (of `run`, `size` rows) whose index is >= `index`.
size_t LowerBound(const GroupLayout::Run& run, const std::byte* data, size_t size, int64_t index);

}  // namespace ods::aggregate
