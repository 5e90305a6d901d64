// GroupLayout and SeriesGroup: the partials of several aggregations kept in shared tile rows
// (the row format is in rows.h).

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "aggregate/partial.h"
#include "aggregate/partial_codec.h"
#include "aggregate/rows.h"
#include "ods/aggregate/aggregate.h"
#include "ods/common/check.h"
#include "ods/common/clock.h"
#include "ods/common/hash.h"
#include "ods/common/status.h"
#include "ods/common/varint.h"
#include "ods/record/value.h"

namespace ods::aggregate {
namespace {

template <class P>
void MergeRange(typename Ops<P>::Acc& acc, RowRange rows, size_t stride, size_t offset,
                uint64_t bit, const Spec& s) {
  for (size_t i = 0; i < rows.count; ++i) {
    const std::byte* row = rows.data + i * stride;
    if ((PresentBits(row) & bit) != 0) Ops<P>::Merge(acc, *As<P>(row + offset), s);
  }
}

template <class P>
Output MergeRows(const std::byte* rows, size_t count, size_t stride, size_t offset, uint64_t bit,
                 const Spec& s) {
  typename Ops<P>::Acc acc{};
  MergeRange<P>(acc, RowRange{rows, count}, stride, offset, bit, s);
  return Ops<P>::Finish(acc, s);
}

template <class P>
Output MergeTwo(RowRange older, RowRange newer, size_t stride, size_t offset, uint64_t bit,
                const Spec& s) {
  typename Ops<P>::Acc acc{};
  if (older.count == 0 || newer.count == 0 ||
      RowIndex(older.data + (older.count - 1) * stride) < RowIndex(newer.data)) {
    MergeRange<P>(acc, older, stride, offset, bit, s);
    MergeRange<P>(acc, newer, stride, offset, bit, s);
    return Ops<P>::Finish(acc, s);
  }
  size_t i = 0;
  size_t j = 0;
  while (i < older.count || j < newer.count) {
    const std::byte* row;
    if (j == newer.count ||
        (i < older.count &&
         RowIndex(older.data + i * stride) <= RowIndex(newer.data + j * stride))) {
      row = older.data + i++ * stride;
    } else {
      row = newer.data + j++ * stride;
    }
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
    &MergeTwo<P>,
    [](const std::byte* at, std::string& out) { codec::Codec<P>::Encode(*As<P>(at), out); },
    [](std::string_view& in, std::byte* at, const Spec& s) -> bool {
      P p{};
      if (!codec::Codec<P>::Decode(in, p, s)) return false;
      new (at) P(std::move(p));
      return true;
    },
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
  answer_slots_.resize(members_.size());
  for (size_t m = 0; m < members_.size(); ++m) {
    const bool cached = members_[m].spec.fn == Fn::kDistinctCount;
    for (size_t w = 0; w < members_[m].spec.windows.size(); ++w) {
      answer_slots_[m].push_back(cached ? static_cast<int32_t>(answer_count_++) : -1);
    }
  }
  for (Run& run : runs_) {
    run.row_bytes = AlignUp(run.row_bytes, alignof(uint64_t));
    run.expected_rows = static_cast<size_t>(run.keep / run.tile);
  }
  // The members decide the runs and slots (the grouping above); bump the seed if it changes.
  constexpr uint64_t kLayoutSeed = 0x6f64732d6c617931;  // "ods-lay1"
  std::string bytes;
  PutVarint(members_.size(), bytes);
  for (const Member& member : members_) {
    const Spec& spec = member.spec;
    PutVarint(static_cast<uint64_t>(spec.fn), bytes);
    PutVarint(static_cast<uint64_t>(spec.input_type), bytes);
    PutVarint(spec.n, bytes);
    PutVarint(ZigZag(member.field), bytes);
    PutVarint(spec.windows.size(), bytes);
    for (size_t w = 0; w < spec.windows.size(); ++w) {
      PutVarint(ZigZag(spec.windows[w]), bytes);
      PutVarint(ZigZag(spec.tiles[w]), bytes);
    }
  }
  fingerprint_ = StableHash64(bytes, kLayoutSeed);
}

GroupLayout::~GroupLayout() = default;

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

size_t DestroyRows(const GroupLayout::Run& run, std::byte* rows, size_t count,
                   bool count_heap) {
  if (run.trivially_relocatable) return 0;
  size_t heap = 0;
  for (size_t i = 0; i < count; ++i) {
    std::byte* row = rows + i * run.row_bytes;
    const uint64_t present = PresentBits(row);
    for (size_t s = 0; s < run.slots.size(); ++s) {
      if ((present >> s & 1) == 0) continue;
      std::byte* at = row + run.slots[s].offset;
      if (count_heap) heap += run.slots[s].ops->heap_bytes(at);
      run.slots[s].ops->destroy(at);
    }
  }
  return heap;
}

size_t RowsHeapBytes(const GroupLayout::Run& run, const std::byte* rows, size_t count) {
  if (run.trivially_relocatable) return 0;
  size_t heap = 0;
  for (size_t i = 0; i < count; ++i) {
    const std::byte* row = rows + i * run.row_bytes;
    const uint64_t present = PresentBits(row);
    for (size_t s = 0; s < run.slots.size(); ++s) {
      if ((present >> s & 1) != 0) heap += run.slots[s].ops->heap_bytes(row + run.slots[s].offset);
    }
  }
  return heap;
}

SeriesGroup::SeriesGroup(const GroupLayout& layout) : layout_(&layout) {
  if (layout.runs_.size() > kInlineRuns) {
    more_ = std::make_unique<Rows[]>(layout.runs_.size() - kInlineRuns);
  }
}

SeriesGroup::~SeriesGroup() { Release(); }

SeriesGroup::SeriesGroup(SeriesGroup&& other) noexcept
    : layout_(other.layout_), more_(std::move(other.more_)), answers_(std::move(other.answers_)) {
  for (size_t r = 0; r < kInlineRuns; ++r) inline_[r] = std::exchange(other.inline_[r], Rows{});
}

SeriesGroup& SeriesGroup::operator=(SeriesGroup&& other) noexcept {
  if (this != &other) {
    Release();
    layout_ = other.layout_;
    more_ = std::move(other.more_);
    answers_ = std::move(other.answers_);
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
  ForgetAnswers();
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

namespace {

// The rows of `data` (`size` rows of `run`, ascending by index) whose index lies in
// [first, last]. O(log size + rows after last).
RowRange RowsInWindow(const GroupLayout::Run& run, const std::byte* data, size_t size,
                      int64_t first, int64_t last) {
  // Usually the window holds every row kept (a run keeps its longest window): then one row is
  // read instead of log2(size), each likely a cache miss.
  const size_t begin =
      size == 0 || RowIndex(data) >= first ? 0 : LowerBound(run, data, size, first);
  size_t end = size;
  while (end > begin && RowIndex(data + (end - 1) * run.row_bytes) > last) --end;
  return RowRange{data + begin * run.row_bytes, end - begin};
}

}  // namespace

GroupLayout::WindowAt GroupLayout::At(size_t m, size_t window, Micros now) const {
  ODS_DCHECK(m < members_.size());
  const Spec& spec = members_[m].spec;
  ODS_DCHECK(window < spec.windows.size());
  const int64_t last = FloorDiv(now, spec.tiles[window]);
  return WindowAt{static_cast<uint32_t>(m), static_cast<uint32_t>(window),
                  FirstTileIndex(spec, window, last), last};
}

Output SeriesGroup::Query(size_t m, size_t window, Micros now) const {
  return Query(layout_->At(m, window, now), nullptr);
}

int64_t SeriesGroup::EnableAnswerCache(size_t m, size_t window) {
  const uint32_t count = layout_->answer_count_;
  if (answers_ != nullptr || layout_->answer_slots_[m][window] < 0) return 0;
  answers_ = std::make_unique<Answer[]>(count);
  return static_cast<int64_t>(count * sizeof(Answer));
}

void SeriesGroup::ForgetAnswers() {
  if (answers_ == nullptr) return;
  for (uint32_t i = 0; i < layout_->answer_count_; ++i) answers_[i] = Answer{};
}

Output SeriesGroup::Query(size_t m, size_t window, Micros now, const ColdRows* cold) const {
  return Query(layout_->At(m, window, now), cold);
}

Output SeriesGroup::Query(const GroupLayout::WindowAt& at, const ColdRows* cold) const {
  ODS_DCHECK(at.m < layout_->members_.size());
  ODS_DCHECK(at.window < layout_->members_[at.m].spec.windows.size());
  const Spec& spec = layout_->members_[at.m].spec;
  const GroupLayout::WindowSlot where = layout_->windows_[at.m][at.window];
  const GroupLayout::Run& run = layout_->runs_[where.run];
  const GroupLayout::Slot& slot = run.slots[where.slot];
  const Rows& rs = rows(where.run);
  if (cold != nullptr && !cold->runs_.empty()) {
    ODS_CHECK(cold->layout_ == layout_);
    const ColdRows::RunRows& cs = cold->runs_[where.run];
    return slot.ops->merge_two(RowsInWindow(run, cs.data, cs.size, at.first, at.last),
                               RowsInWindow(run, rs.data, rs.size, at.first, at.last),
                               run.row_bytes, slot.offset, uint64_t{1} << where.slot, spec);
  }
  const int32_t cached = layout_->answer_slots_[at.m][at.window];
  Answer* answer = cached >= 0 && answers_ != nullptr ? &answers_[cached] : nullptr;
  if (answer != nullptr && answer->first == at.first && answer->last == at.last) {
    return record::Value(answer->value);
  }
  const RowRange in = RowsInWindow(run, rs.data, rs.size, at.first, at.last);
  Output out = slot.ops->merge(in.data, in.count, run.row_bytes, slot.offset,
                               uint64_t{1} << where.slot, spec);
  if (answer != nullptr) {
    const auto* value = std::get_if<record::Value>(&out);
    const int64_t* count = value != nullptr ? std::get_if<int64_t>(value) : nullptr;
    if (count != nullptr) *answer = Answer{at.first, at.last, *count};
  }
  return out;
}

// How many rows of each run have tiles that end at or before `before`.
std::vector<size_t> SeriesGroup::RowsBefore(Micros before) const {
  const auto& runs = layout_->runs_;
  std::vector<size_t> counts(runs.size(), 0);
  for (size_t r = 0; r < runs.size(); ++r) {
    const Rows& rs = rows(r);
    // (index + 1) * tile <= before  <=>  index < FloorDiv(before, tile), without overflow.
    counts[r] = LowerBound(runs[r], rs.data, rs.size, FloorDiv(before, runs[r].tile));
  }
  return counts;
}

void SeriesGroup::EncodeColdRows(Micros before, std::string& out) const {
  out.clear();
  const auto& runs = layout_->runs_;
  const std::vector<size_t> counts = RowsBefore(before);
  std::vector<std::vector<const std::byte*>> cold(runs.size());
  for (size_t r = 0; r < runs.size(); ++r) {
    for (size_t i = 0; i < counts[r]; ++i) cold[r].push_back(rows(r).data + i * runs[r].row_bytes);
  }
  ColdRows::Encode(*layout_, cold, out);
}

int64_t SeriesGroup::DropColdRows(Micros before) {
  ForgetAnswers();
  const auto& runs = layout_->runs_;
  const std::vector<size_t> counts = RowsBefore(before);
  int64_t delta = 0;
  for (size_t r = 0; r < runs.size(); ++r) {
    if (counts[r] == 0) continue;
    const GroupLayout::Run& run = runs[r];
    Rows& rs = rows(r);
    delta -= static_cast<int64_t>(DestroyRows(run, rs.data, counts[r], /*count_heap=*/true));
    const size_t remaining = rs.size - counts[r];
    std::byte* data = nullptr;
    if (remaining > 0) {
      data = static_cast<std::byte*>(::operator new(remaining * run.row_bytes));
      RelocateRows(run, data, rs.data + counts[r] * run.row_bytes, remaining);
    }
    ::operator delete(rs.data);
    delta -= static_cast<int64_t>((rs.capacity - remaining) * run.row_bytes);
    rs = Rows{data, static_cast<uint32_t>(remaining), static_cast<uint32_t>(remaining)};
  }
  return delta;
}

int64_t SeriesGroup::SplitColdRows(Micros before, std::string& out) {
  EncodeColdRows(before, out);
  return out.empty() ? 0 : DropColdRows(before);
}

Result<int64_t> SeriesGroup::RestoreColdRows(ColdRows& cold) {
  if (cold.runs_.empty()) return int64_t{0};
  ForgetAnswers();
  if (cold.layout_ != layout_) {
    return InvalidArgumentError("cold rows of another aggregation layout");
  }
  const auto& runs = layout_->runs_;
  for (size_t r = 0; r < runs.size(); ++r) {
    const ColdRows::RunRows& cs = cold.runs_[r];
    const Rows& rs = rows(r);
    const size_t stride = runs[r].row_bytes;
    for (size_t i = 0; i < cs.size; ++i) {
      const int64_t index = RowIndex(cs.data + i * stride);
      const size_t at = LowerBound(runs[r], rs.data, rs.size, index);
      if (at < rs.size && RowIndex(rs.data + at * stride) == index) {
        return FailedPreconditionError("tile " + std::to_string(index) + " of tile size " +
                                       std::to_string(runs[r].tile) +
                                       "us is both in RAM and in the cold rows");
      }
    }
  }
  int64_t delta = 0;
  for (size_t r = 0; r < runs.size(); ++r) {
    ColdRows::RunRows& cs = cold.runs_[r];
    if (cs.size == 0) continue;
    const GroupLayout::Run& run = runs[r];
    const size_t stride = run.row_bytes;
    Rows& rs = rows(r);
    const size_t total = rs.size + cs.size;
    delta += static_cast<int64_t>(RowsHeapBytes(run, cs.data, cs.size));
    auto* data = static_cast<std::byte*>(::operator new(total * stride));
    size_t i = 0;
    size_t j = 0;
    for (size_t k = 0; k < total; ++k) {
      if (j == rs.size || (i < cs.size && RowIndex(cs.data + i * stride) <
                                              RowIndex(rs.data + j * stride))) {
        RelocateRows(run, data + k * stride, cs.data + i++ * stride, 1);
      } else {
        RelocateRows(run, data + k * stride, rs.data + j++ * stride, 1);
      }
    }
    ::operator delete(rs.data);
    ::operator delete(cs.data);
    cs = ColdRows::RunRows{};
    delta += (static_cast<int64_t>(total) - static_cast<int64_t>(rs.capacity)) *
             static_cast<int64_t>(stride);
    rs = Rows{data, static_cast<uint32_t>(total), static_cast<uint32_t>(total)};
  }
  cold.Release();
  return delta;
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
  if (answers_ != nullptr) __builtin_prefetch(answers_.get());
}

size_t SeriesGroup::MemoryBytes() const {
  const auto& runs = layout_->runs_;
  size_t bytes = runs.size() > kInlineRuns ? (runs.size() - kInlineRuns) * sizeof(Rows) : 0;
  if (answers_ != nullptr) bytes += layout_->answer_count_ * sizeof(Answer);
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
