// ColdRows: the blob format of rows split off a SeriesGroup, and its decoded form (see
// aggregate.h for the format, rows.h for the rows).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aggregate/partial.h"
#include "aggregate/partial_codec.h"
#include "aggregate/rows.h"
#include "ods/aggregate/aggregate.h"
#include "ods/common/check.h"
#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/common/varint.h"

namespace ods::aggregate {
namespace {

constexpr uint8_t kBlobVersion = 1;
// Fewest bytes one row takes in a blob: its index, its present bits and one partial.
constexpr size_t kMinRowBytes = 3;

Status DataLoss(std::string what) {
  return Status(StatusCode::kDataLoss, "cold aggregation rows: " + std::move(what));
}

// The header of a blob: per run its row count and newest tile index.
struct Header {
  std::vector<uint64_t> rows;
  std::vector<int64_t> newest;
};

// Reads the header from the front of `in`.
Status ReadHeader(uint64_t fingerprint, size_t runs, std::string_view& in, Header& header) {
  if (in.empty()) return DataLoss("truncated before the format version");
  const auto version = static_cast<uint8_t>(in.front());
  in.remove_prefix(1);
  if (version != kBlobVersion) {
    return InvalidArgumentError("cold aggregation rows: unknown format version " +
                                std::to_string(version) + " (this build reads " +
                                std::to_string(kBlobVersion) + ")");
  }
  uint64_t stored;
  if (!codec::GetFixed64(in, stored)) return DataLoss("truncated in the layout fingerprint");
  if (stored != fingerprint) {
    return InvalidArgumentError(
        "cold aggregation rows: written under another aggregation layout (fingerprint " +
        std::to_string(stored) + ", expected " + std::to_string(fingerprint) + ")");
  }
  uint64_t count;
  if (!GetVarint(in, count)) return DataLoss("truncated in the run count");
  if (count != runs) {
    return DataLoss("holds " + std::to_string(count) + " runs, the layout has " +
                    std::to_string(runs));
  }
  header.rows.assign(runs, 0);
  header.newest.assign(runs, 0);
  for (size_t r = 0; r < runs; ++r) {
    if (!GetVarint(in, header.rows[r])) return DataLoss("truncated in the header");
    if (header.rows[r] > 0 && !codec::GetI64(in, header.newest[r])) {
      return DataLoss("truncated in the header");
    }
  }
  return OkStatus();
}

// The end of tile `index` of size `tile` (exclusive), clamped to the int64 range.
Micros TileEnd(int64_t index, Micros tile) {
  int64_t next;
  int64_t end;
  if (__builtin_add_overflow(index, 1, &next) || __builtin_mul_overflow(next, tile, &end)) {
    return index < 0 ? std::numeric_limits<Micros>::min() : std::numeric_limits<Micros>::max();
  }
  return end;
}

// Whether a row of tile `index` is older than every window of `run` as of `now` (as in Add).
bool PastEveryWindow(const GroupLayout::Run& run, int64_t index, Micros now) {
  return index < SaturatingSub(FloorDiv(now, run.tile), run.keep / run.tile - 1);
}

}  // namespace

ColdRows::~ColdRows() { Release(); }

ColdRows::ColdRows(ColdRows&& other) noexcept
    : layout_(std::exchange(other.layout_, nullptr)), runs_(std::move(other.runs_)) {
  other.runs_.clear();
}

ColdRows& ColdRows::operator=(ColdRows&& other) noexcept {
  if (this != &other) {
    Release();
    layout_ = std::exchange(other.layout_, nullptr);
    runs_ = std::move(other.runs_);
    other.runs_.clear();
  }
  return *this;
}

void ColdRows::Release() {
  for (size_t r = 0; r < runs_.size(); ++r) {
    DestroyRows(layout_->runs_[r], runs_[r].data, runs_[r].size, /*count_heap=*/false);
    ::operator delete(runs_[r].data);
  }
  runs_.clear();
}

void ColdRows::Encode(const GroupLayout& layout,
                      const std::vector<std::vector<const std::byte*>>& rows, std::string& out) {
  ODS_CHECK(out.empty() && rows.size() == layout.runs_.size());
  bool any = false;
  for (const auto& run_rows : rows) any = any || !run_rows.empty();
  if (!any) return;
  out.push_back(static_cast<char>(kBlobVersion));
  codec::PutFixed64(layout.fingerprint_, out);
  PutVarint(rows.size(), out);
  for (const auto& run_rows : rows) {
    PutVarint(run_rows.size(), out);
    if (!run_rows.empty()) codec::PutI64(RowIndex(run_rows.back()), out);
  }
  for (size_t r = 0; r < rows.size(); ++r) {
    const GroupLayout::Run& run = layout.runs_[r];
    for (size_t i = 0; i < rows[r].size(); ++i) {
      const std::byte* row = rows[r][i];
      if (i == 0) {
        codec::PutI64(RowIndex(row), out);
      } else {
        PutVarint(static_cast<uint64_t>(RowIndex(row)) - static_cast<uint64_t>(RowIndex(rows[r][i - 1])),
                  out);
      }
      const uint64_t present = PresentBits(row);
      PutVarint(present, out);
      for (size_t s = 0; s < run.slots.size(); ++s) {
        if ((present >> s & 1) != 0) run.slots[s].ops->encode(row + run.slots[s].offset, out);
      }
    }
  }
}

Result<ColdRows> ColdRows::Decode(const GroupLayout& layout, std::string_view blob) {
  ColdRows cold;
  if (blob.empty()) return cold;
  const auto& runs = layout.runs_;
  Header header;
  ODS_RETURN_IF_ERROR(ReadHeader(layout.fingerprint_, runs.size(), blob, header));
  cold.layout_ = &layout;
  cold.runs_.resize(runs.size());
  for (size_t r = 0; r < runs.size(); ++r) {
    const GroupLayout::Run& run = runs[r];
    const uint64_t count = header.rows[r];
    if (count == 0) continue;
    if (count > blob.size() / kMinRowBytes || count > std::numeric_limits<uint32_t>::max()) {
      return DataLoss("truncated: " + std::to_string(count) + " rows announced in " +
                      std::to_string(blob.size()) + " bytes");
    }
    RunRows& rs = cold.runs_[r];
    rs.data = static_cast<std::byte*>(::operator new(count * run.row_bytes));
    const uint64_t slot_mask =
        run.slots.size() == 64 ? ~uint64_t{0} : (uint64_t{1} << run.slots.size()) - 1;
    int64_t index = 0;
    for (uint64_t i = 0; i < count; ++i) {
      if (i == 0) {
        if (!codec::GetI64(blob, index)) return DataLoss("truncated in a row's tile index");
      } else {
        uint64_t step;
        if (!GetVarint(blob, step)) return DataLoss("truncated in a row's tile index");
        // Unsigned arithmetic gives the true distance to the largest int64 for any index.
        const uint64_t headroom = static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) -
                                  static_cast<uint64_t>(index);
        if (step == 0 || step > headroom) return DataLoss("rows out of order or repeated");
        index = static_cast<int64_t>(static_cast<uint64_t>(index) + step);
      }
      uint64_t present;
      if (!GetVarint(blob, present)) return DataLoss("truncated in a row's present bits");
      if (present == 0 || (present & ~slot_mask) != 0) {
        return DataLoss("a row's present bits name no member");
      }
      std::byte* row = rs.data + i * run.row_bytes;
      SetRowIndex(row, index);
      SetPresentBits(row, 0);
      ++rs.size;  // from here on Release destroys what the row holds
      uint64_t constructed = 0;
      for (size_t s = 0; s < run.slots.size(); ++s) {
        if ((present >> s & 1) == 0) continue;
        const GroupLayout::Slot& slot = run.slots[s];
        if (!slot.ops->decode(blob, row + slot.offset, layout.members_[slot.member].spec)) {
          return DataLoss("a partial of tile " + std::to_string(index) + " does not decode");
        }
        constructed |= uint64_t{1} << s;
        SetPresentBits(row, constructed);
      }
    }
    if (index != header.newest[r]) return DataLoss("the header's newest tile is not the last");
  }
  if (!blob.empty()) return DataLoss(std::to_string(blob.size()) + " trailing bytes");
  return cold;
}

Result<std::string> ColdRows::MergeBlobs(const GroupLayout& layout, std::string_view older,
                                         std::string_view newer, Micros now) {
  ODS_ASSIGN_OR_RETURN(ColdRows a, Decode(layout, older));
  ODS_ASSIGN_OR_RETURN(ColdRows b, Decode(layout, newer));
  const auto& runs = layout.runs_;
  std::vector<std::vector<const std::byte*>> rows(runs.size());
  for (size_t r = 0; r < runs.size(); ++r) {
    const size_t stride = runs[r].row_bytes;
    const RunRows none;
    const RunRows& x = a.runs_.empty() ? none : a.runs_[r];
    const RunRows& y = b.runs_.empty() ? none : b.runs_[r];
    size_t i = 0;
    size_t j = 0;
    while (i < x.size || j < y.size) {
      const std::byte* p = i < x.size ? x.data + i * stride : nullptr;
      const std::byte* q = j < y.size ? y.data + j * stride : nullptr;
      if (p != nullptr && q != nullptr && RowIndex(p) == RowIndex(q)) {
        return FailedPreconditionError("cold aggregation rows: both blobs hold tile " +
                                       std::to_string(RowIndex(p)) + " of tile size " +
                                       std::to_string(runs[r].tile) + "us");
      }
      const std::byte* next;
      if (q == nullptr || (p != nullptr && RowIndex(p) < RowIndex(q))) {
        next = p;
        ++i;
      } else {
        next = q;
        ++j;
      }
      if (!PastEveryWindow(runs[r], RowIndex(next), now)) rows[r].push_back(next);
    }
  }
  std::string out;
  Encode(layout, rows, out);
  return out;
}

Result<bool> ColdRows::BlobExpired(const GroupLayout& layout, std::string_view blob, Micros now) {
  if (blob.empty()) return true;
  Header header;
  ODS_RETURN_IF_ERROR(ReadHeader(layout.fingerprint_, layout.runs_.size(), blob, header));
  for (size_t r = 0; r < layout.runs_.size(); ++r) {
    if (header.rows[r] > 0 && !PastEveryWindow(layout.runs_[r], header.newest[r], now)) {
      return false;
    }
  }
  return true;
}

size_t ColdRows::row_count() const {
  size_t rows = 0;
  for (const RunRows& rs : runs_) rows += rs.size;
  return rows;
}

Micros ColdRows::newest_tile_end() const {
  Micros end = std::numeric_limits<Micros>::min();
  for (size_t r = 0; r < runs_.size(); ++r) {
    const GroupLayout::Run& run = layout_->runs_[r];
    if (runs_[r].size == 0) continue;
    end = std::max(end, TileEnd(RowIndex(runs_[r].data + (runs_[r].size - 1) * run.row_bytes),
                                run.tile));
  }
  return end;
}

bool ColdRows::Expired(Micros now) const {
  for (size_t r = 0; r < runs_.size(); ++r) {
    const GroupLayout::Run& run = layout_->runs_[r];
    if (runs_[r].size == 0) continue;
    const int64_t newest = RowIndex(runs_[r].data + (runs_[r].size - 1) * run.row_bytes);
    if (!PastEveryWindow(run, newest, now)) return false;
  }
  return true;
}

size_t ColdRows::MemoryBytes() const {
  size_t bytes = 0;
  for (size_t r = 0; r < runs_.size(); ++r) {
    const GroupLayout::Run& run = layout_->runs_[r];
    bytes += runs_[r].size * run.row_bytes + RowsHeapBytes(run, runs_[r].data, runs_[r].size);
  }
  return bytes;
}

}  // namespace ods::aggregate
