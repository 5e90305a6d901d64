// GroupLayout and SeriesGroup: the partials of several aggregations kept in shared tile rows.
//
// A run's rows live in one buffer, sorted by tile index; a row is
//   [int64_t index][uint64_t present][partial of slot 0][partial of slot 1]...
// where bit s of `present` says slot s's partial is constructed (its member took an event in
// that tile). Partials are constructed in place and moved between rows through a small table of
// functions per partial type (PartialOps), so the fold and merge are the very Ops<P> that
// ComputeAsOf uses: online and point-in-time values stay bit-identical.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "aggregate/partial.h"
#include "ods/aggregate/aggregate.h"
#include "ods/common/check.h"
#include "ods/common/clock.h"
#include "ods/record/value.h"

namespace ods::aggregate {
namespace {

constexpr size_t kHeaderBytes = 2 * sizeof(uint64_t);  // index, present
constexpr size_t kMaxSlotsPerRun = 64;                 // bits of `present`

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
};

template <class P>
P* As(std::byte* at) {
  return std::launder(reinterpret_cast<P*>(at));
}
template <class P>
const P* As(const std::byte* at) {
  return std::launder(reinterpret_cast<const P*>(at));
}

uint64_t PresentBits(const std::byte* row) {
  uint64_t present;
  std::memcpy(&present, row + sizeof(int64_t), sizeof present);
  return present;
}
void SetPresentBits(std::byte* row, uint64_t present) {
  std::memcpy(row + sizeof(int64_t), &present, sizeof present);
}
int64_t RowIndex(const std::byte* row) {
  int64_t index;
  std::memcpy(&index, row, sizeof index);
  return index;
}

template <class P>
Output MergeRows(const std::byte* rows, size_t count, size_t stride, size_t offset, uint64_t bit,
                 const Spec& s) {
  typename Ops<P>::Acc acc{};
  for (size_t i = 0; i < count; ++i) {
    const std::byte* row = rows + i * stride;
    if ((PresentBits(row) & bit) != 0) Ops<P>::Merge(acc, *As<P>(row + offset), s);
  }
  return Ops<P>::Finish(acc, s);
}

template <class P>
constexpr PartialOps kPartialOps = {
    sizeof(P),
    alignof(P),
    std::is_trivially_copyable_v<P>,
    [](std::byte* at, Micros t, const record::Value* v, const Spec& s) -> int64_t {
      P* p = new (at) P(Ops<P>::Init(t, v, s));
      if constexpr (Ops<P>::kHasHeap) {
        return static_cast<int64_t>(Ops<P>::HeapBytes(*p));
      } else {
        return 0;
      }
    },
    [](std::byte* at, Micros t, const record::Value* v, const Spec& s) -> int64_t {
      P& p = *As<P>(at);
      if constexpr (requires { Ops<P>::FoldCountingHeap(p, t, v, s); }) {
        return Ops<P>::FoldCountingHeap(p, t, v, s);  // HeapBytes is O(entries) for these
      } else if constexpr (Ops<P>::kHasHeap) {
        const auto before = static_cast<int64_t>(Ops<P>::HeapBytes(p));
        Ops<P>::Fold(p, t, v, s);
        return static_cast<int64_t>(Ops<P>::HeapBytes(p)) - before;
      } else {
        Ops<P>::Fold(p, t, v, s);
        return 0;
      }
    },
    [](std::byte* to, std::byte* from) {
      P* source = As<P>(from);
      new (to) P(std::move(*source));
      source->~P();
    },
    [](std::byte* at) { As<P>(at)->~P(); },
    [](const std::byte* at) -> size_t {
      if constexpr (Ops<P>::kHasHeap) {
        return Ops<P>::HeapBytes(*As<P>(at));
      } else {
        return 0;
      }
    },
    &MergeRows<P>,
};

const PartialOps* OpsOf(const Spec& spec) {
  return WithPartial(spec, [](auto tag) -> const PartialOps* {
    using P = typename decltype(tag)::type;
    static_assert(alignof(P) <= alignof(uint64_t), "rows are 8-byte aligned");
    return &kPartialOps<P>;
  });
}

size_t AlignUp(size_t n, size_t align) { return (n + align - 1) / align * align; }

}  // namespace

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

GroupLayout::GroupLayout(std::vector<Member> members) : members_(std::move(members)) {
  ODS_CHECK(!members_.empty());
  windows_.resize(members_.size());
  for (size_t m = 0; m < members_.size(); ++m) {
    const Spec& spec = members_[m].spec;
    ODS_CHECK(Validate(spec).ok());
    for (size_t w = 0; w < spec.windows.size(); ++w) {
      const Micros tile = spec.tiles[w];
      // The member's slot for this tile size if it has one, else a run of that size with room.
      WindowSlot where{static_cast<uint32_t>(runs_.size()), 0};
      bool found = false;
      for (size_t r = 0; r < runs_.size() && !found; ++r) {
        if (runs_[r].tile != tile) continue;
        for (size_t s = 0; s < runs_[r].slots.size(); ++s) {
          if (runs_[r].slots[s].member == m) {
            where = {static_cast<uint32_t>(r), static_cast<uint32_t>(s)};
            found = true;
            break;
          }
        }
        if (!found && runs_[r].slots.size() < kMaxSlotsPerRun) {
          where = {static_cast<uint32_t>(r), static_cast<uint32_t>(runs_[r].slots.size())};
        }
      }
      if (where.run == runs_.size()) {
        Run& run = runs_.emplace_back();
        run.tile = tile;
      }
      Run& run = runs_[where.run];
      if (!found) {
        const PartialOps* ops = OpsOf(spec);
        const size_t offset = AlignUp(run.row_bytes, ops->align);
        where.slot = static_cast<uint32_t>(run.slots.size());
        run.slots.push_back(Slot{static_cast<uint32_t>(m), static_cast<uint32_t>(offset), ops});
        run.row_bytes = offset + ops->size;
        run.trivially_relocatable = run.trivially_relocatable && ops->trivially_relocatable;
      }
      run.keep = std::max(run.keep, spec.windows[w]);
      windows_[m].push_back(where);
    }
  }
  for (Run& run : runs_) {
    run.row_bytes = AlignUp(run.row_bytes, alignof(uint64_t));
    run.expected_rows = static_cast<size_t>(run.keep / run.tile);
  }
}

GroupLayout::~GroupLayout() = default;

namespace {

// Moves `count` rows from `from` to `to`: non-overlapping, or `to` below `from` (rows move in
// ascending order).
void RelocateRows(const GroupLayout::Run& run, std::byte* to, std::byte* from, size_t count) {
  if (count == 0) return;
  if (run.trivially_relocatable) {
    std::memmove(to, from, count * run.row_bytes);
    return;
  }
  for (size_t i = 0; i < count; ++i) {
    std::byte* dst = to + i * run.row_bytes;
    std::byte* src = from + i * run.row_bytes;
    std::memcpy(dst, src, kHeaderBytes);
    const uint64_t present = PresentBits(src);
    for (size_t s = 0; s < run.slots.size(); ++s) {
      if ((present >> s & 1) != 0) {
        run.slots[s].ops->relocate(dst + run.slots[s].offset, src + run.slots[s].offset);
      }
    }
  }
}

// First row of `rows` (of `run`) whose index is >= `index`.
size_t LowerBound(const GroupLayout::Run& run, const std::byte* data, size_t size, int64_t index) {
  size_t lo = 0;
  size_t hi = size;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (RowIndex(data + mid * run.row_bytes) < index) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

}  // namespace

SeriesGroup::SeriesGroup(const GroupLayout& layout) : layout_(&layout) {
  if (layout.runs_.size() > kInlineRuns) {
    more_ = std::make_unique<Rows[]>(layout.runs_.size() - kInlineRuns);
  }
}

SeriesGroup::~SeriesGroup() { Release(); }

SeriesGroup::SeriesGroup(SeriesGroup&& other) noexcept
    : layout_(other.layout_), more_(std::move(other.more_)) {
  for (size_t r = 0; r < kInlineRuns; ++r) inline_[r] = std::exchange(other.inline_[r], Rows{});
}

SeriesGroup& SeriesGroup::operator=(SeriesGroup&& other) noexcept {
  if (this != &other) {
    Release();
    layout_ = other.layout_;
    more_ = std::move(other.more_);
    for (size_t r = 0; r < kInlineRuns; ++r) inline_[r] = std::exchange(other.inline_[r], Rows{});
  }
  return *this;
}

void SeriesGroup::Release() {
  const auto& runs = layout_->runs_;
  for (size_t r = 0; r < runs.size(); ++r) {
    if (r >= kInlineRuns && more_ == nullptr) break;  // moved from
    Rows& rs = rows(r);
    if (!runs[r].trivially_relocatable) {
      for (size_t i = 0; i < rs.size; ++i) {
        std::byte* row = rs.data + i * runs[r].row_bytes;
        const uint64_t present = PresentBits(row);
        for (size_t s = 0; s < runs[r].slots.size(); ++s) {
          if ((present >> s & 1) != 0) runs[r].slots[s].ops->destroy(row + runs[r].slots[s].offset);
        }
      }
    }
    ::operator delete(rs.data);
    rs = Rows{};
  }
}

int64_t SeriesGroup::Add(Micros event_time, std::span<const record::Value* const> values,
                         Micros now) {
  int64_t delta = 0;  // of MemoryBytes()
  const auto& runs = layout_->runs_;
  const auto& members = layout_->members_;
  for (size_t r = 0; r < runs.size(); ++r) {
    const GroupLayout::Run& run = runs[r];
    uint64_t taking = 0;  // slots whose member folds this event
    for (size_t s = 0; s < run.slots.size(); ++s) {
      const Member& member = members[run.slots[s].member];
      const record::Value* v = member.field >= 0 ? values[member.field] : nullptr;
      if (Accepts(member.spec, v)) taking |= uint64_t{1} << s;
    }
    if (taking == 0) continue;
    const int64_t first = SaturatingSub(FloorDiv(now, run.tile), run.keep / run.tile - 1);
    const int64_t index = FloorDiv(event_time, run.tile);
    if (index < first) continue;

    // Find the row of `index`, or make room for it.
    Rows& rs = rows(r);
    const size_t stride = run.row_bytes;
    std::byte* row = nullptr;
    size_t position = rs.size;
    if (rs.size > 0) {
      std::byte* last = rs.data + (rs.size - 1) * stride;
      const int64_t last_index = RowIndex(last);
      if (last_index == index) {
        row = last;
      } else if (last_index > index) {
        position = LowerBound(run, rs.data, rs.size, index);
        if (RowIndex(rs.data + position * stride) == index) row = rs.data + position * stride;
      }
    }
    if (row == nullptr) {
      // A new row: first forget the rows no window needs any more (all lie before `position`).
      const size_t stale = LowerBound(run, rs.data, rs.size, first);
      if (stale > 0) {
        if (!run.trivially_relocatable) {
          for (size_t i = 0; i < stale; ++i) {
            std::byte* dead = rs.data + i * stride;
            const uint64_t present = PresentBits(dead);
            for (size_t s = 0; s < run.slots.size(); ++s) {
              if ((present >> s & 1) == 0) continue;
              std::byte* at = dead + run.slots[s].offset;
              delta -= static_cast<int64_t>(run.slots[s].ops->heap_bytes(at));
              run.slots[s].ops->destroy(at);
            }
          }
        }
        RelocateRows(run, rs.data, rs.data + stale * stride, rs.size - stale);
        rs.size -= static_cast<uint32_t>(stale);
        position -= stale;
      }
      size_t capacity = rs.capacity;
      if (rs.size == rs.capacity) {
        const size_t doubled = std::max<size_t>(2 * rs.capacity, 1);
        capacity = rs.size < run.expected_rows ? std::min(doubled, run.expected_rows) : doubled;
        capacity = std::max<size_t>(capacity, rs.size + 1);
      } else if (rs.capacity > 4 * (rs.size + 1)) {
        capacity = rs.size + 1;  // return the spare capacity once it dominates
      }
      if (capacity != rs.capacity) {
        auto* data = static_cast<std::byte*>(::operator new(capacity* stride));
        RelocateRows(run, data, rs.data, position);
        RelocateRows(run, data + (position + 1) * stride, rs.data + position * stride,
                     rs.size - position);
        ::operator delete(rs.data);
        delta += (static_cast<int64_t>(capacity) - static_cast<int64_t>(rs.capacity)) *
                 static_cast<int64_t>(stride);
        rs.data = data;
        rs.capacity = static_cast<uint32_t>(capacity);
      } else if (position < rs.size) {
        // Shift the later rows up by one, from the back (each move lands in free space).
        for (size_t i = rs.size; i > position; --i) {
          RelocateRows(run, rs.data + i * stride, rs.data + (i - 1) * stride, 1);
        }
      }
      row = rs.data + position * stride;
      std::memcpy(row, &index, sizeof index);
      SetPresentBits(row, 0);
      ++rs.size;
    }

    uint64_t present = PresentBits(row);
    for (uint64_t bits = taking; bits != 0; bits &= bits - 1) {
      const auto s = static_cast<size_t>(std::countr_zero(bits));
      const GroupLayout::Slot& slot = run.slots[s];
      const Member& member = members[slot.member];
      const record::Value* v = member.field >= 0 ? values[member.field] : nullptr;
      if ((present >> s & 1) != 0) {
        delta += slot.ops->fold(row + slot.offset, event_time, v, member.spec);
      } else {
        delta += slot.ops->init(row + slot.offset, event_time, v, member.spec);
        present |= uint64_t{1} << s;
      }
    }
    SetPresentBits(row, present);
  }
  return delta;
}

Output SeriesGroup::Query(size_t m, size_t window, Micros now) const {
  ODS_DCHECK(m < layout_->members_.size());
  const Spec& spec = layout_->members_[m].spec;
  ODS_DCHECK(window < spec.windows.size());
  const GroupLayout::WindowSlot where = layout_->windows_[m][window];
  const GroupLayout::Run& run = layout_->runs_[where.run];
  const GroupLayout::Slot& slot = run.slots[where.slot];
  const int64_t last = FloorDiv(now, spec.tiles[window]);
  const int64_t first = FirstTileIndex(spec, window, last);
  const Rows& rs = rows(where.run);
  const size_t begin = LowerBound(run, rs.data, rs.size, first);
  size_t end = rs.size;
  while (end > begin && RowIndex(rs.data + (end - 1) * run.row_bytes) > last) --end;
  return slot.ops->merge(rs.data + begin * run.row_bytes, end - begin, run.row_bytes, slot.offset,
                         uint64_t{1} << where.slot, spec);
}

void SeriesGroup::Prefetch() const {
  constexpr size_t kMaxBytes = 512;  // per run: the newest rows, what short windows read
  const auto& runs = layout_->runs_;
  for (size_t r = 0; r < runs.size(); ++r) {
    const Rows& rs = rows(r);
    const size_t bytes = std::min<size_t>(rs.size * runs[r].row_bytes, kMaxBytes);
    const std::byte* end = rs.data + rs.size * runs[r].row_bytes;
    for (size_t back = 0; back < bytes; back += 64) __builtin_prefetch(end - 1 - back);
  }
}

size_t SeriesGroup::MemoryBytes() const {
  const auto& runs = layout_->runs_;
  size_t bytes = runs.size() > kInlineRuns ? (runs.size() - kInlineRuns) * sizeof(Rows) : 0;
  for (size_t r = 0; r < runs.size(); ++r) {
    const Rows& rs = rows(r);
    bytes += rs.capacity * runs[r].row_bytes;
    if (runs[r].trivially_relocatable) continue;
    for (size_t i = 0; i < rs.size; ++i) {
      const std::byte* row = rs.data + i * runs[r].row_bytes;
      const uint64_t present = PresentBits(row);
      for (size_t s = 0; s < runs[r].slots.size(); ++s) {
        if ((present >> s & 1) != 0) {
          bytes += runs[r].slots[s].ops->heap_bytes(row + runs[r].slots[s].offset);
        }
      }
    }
  }
  return bytes;
}

}  // namespace ods::aggregate
