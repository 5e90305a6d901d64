#include "aggregate/hll.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "ods/common/varint.h"

namespace ods::aggregate {
namespace {

// Bits of the hash left for the rank once the register index is taken; ranks are 1..kQ+1.
constexpr int kQ = 64 - HllSketch::kPrecision;

// Ertl's sigma(x) = x + sum_k x^(2^k) 2^(k-1), for the registers still zero.
double Sigma(double x) {
  if (x == 1.0) return std::numeric_limits<double>::infinity();
  double y = 1.0;
  double z = x;
  double previous;
  do {
    x *= x;
    previous = z;
    z += x * y;
    y += y;
  } while (z != previous);
  return z;
}

// Ertl's tau(x), for the registers at the maximal rank.
double Tau(double x) {
  if (x == 0.0 || x == 1.0) return 0.0;
  double y = 1.0;
  double z = 1.0 - x;
  double previous;
  do {
    x = std::sqrt(x);
    previous = z;
    y *= 0.5;
    z -= (1.0 - x) * (1.0 - x) * y;
  } while (z != previous);
  return z / 3.0;
}

}  // namespace

HllSketch::HllSketch(const HllSketch& other)
    : slot_count_(other.slot_count_),
      sparse_size_(other.sparse_size_),
      has_zero_(other.has_zero_),
      dense_(other.dense_) {
  std::memcpy(inline_, other.inline_, sizeof inline_);
  const size_t words = dense_ ? kRegisters / sizeof(uint64_t) : slot_count_;
  if (words > 0) {
    heap_ = std::make_unique<uint64_t[]>(words);
    std::memcpy(heap_.get(), other.heap_.get(), words * sizeof(uint64_t));
  }
}

HllSketch& HllSketch::operator=(const HllSketch& other) {
  if (this != &other) *this = HllSketch(other);
  return *this;
}

HllSketch::HllSketch(HllSketch&& other) noexcept
    : heap_(std::move(other.heap_)),
      slot_count_(std::exchange(other.slot_count_, 0)),
      sparse_size_(std::exchange(other.sparse_size_, 0)),
      has_zero_(std::exchange(other.has_zero_, false)),
      dense_(std::exchange(other.dense_, false)) {
  std::memcpy(inline_, other.inline_, sizeof inline_);
  std::memset(other.inline_, 0, sizeof other.inline_);
}

HllSketch& HllSketch::operator=(HllSketch&& other) noexcept {
  if (this != &other) {
    heap_ = std::move(other.heap_);
    slot_count_ = std::exchange(other.slot_count_, 0);
    sparse_size_ = std::exchange(other.sparse_size_, 0);
    has_zero_ = std::exchange(other.has_zero_, false);
    dense_ = std::exchange(other.dense_, false);
    std::memcpy(inline_, other.inline_, sizeof inline_);
    std::memset(other.inline_, 0, sizeof other.inline_);
  }
  return *this;
}

void HllSketch::AddToDense(uint64_t hash) {
  const size_t index = hash >> kQ;
  const uint64_t rest = hash << kPrecision;
  const auto rank = static_cast<uint8_t>(rest == 0 ? kQ + 1 : std::countl_zero(rest) + 1);
  uint8_t* r = registers();
  r[index] = std::max(r[index], rank);
}

void HllSketch::MakeDense() {
  std::unique_ptr<uint64_t[]> sparse = std::move(heap_);
  heap_ = std::make_unique<uint64_t[]>(kRegisters / sizeof(uint64_t));  // zero-initialized
  dense_ = true;
  const uint64_t* hashes = slot_count_ == 0 ? inline_ : sparse.get();
  const uint32_t count = slot_count_ == 0 ? kInlineHashes : slot_count_;
  if (has_zero_) AddToDense(0);
  for (uint32_t i = 0; i < count; ++i) {
    if (hashes[i] != 0) AddToDense(hashes[i]);
  }
  std::memset(inline_, 0, sizeof inline_);
  slot_count_ = 0;
  sparse_size_ = 0;
  has_zero_ = false;
}

uint32_t HllSketch::FindSlot(uint64_t hash) const {
  // The low bits pick the slot; the register index uses the high bits, so they stay independent.
  const uint32_t mask = slot_count_ - 1;
  const uint64_t* slots = heap_.get();
  auto i = static_cast<uint32_t>(hash) & mask;
  while (slots[i] != hash && slots[i] != 0) i = (i + 1) & mask;  // the load keeps a slot free
  return i;
}

bool HllSketch::ContainsSparse(uint64_t hash) const {
  if (slot_count_ == 0) return inline_[0] == hash || inline_[1] == hash;
  return heap_[FindSlot(hash)] == hash;
}

void HllSketch::GrowSparse(uint32_t slots) {
  std::unique_ptr<uint64_t[]> old = std::move(heap_);
  const uint64_t* hashes = slot_count_ == 0 ? inline_ : old.get();
  const uint32_t count = slot_count_ == 0 ? kInlineHashes : slot_count_;
  heap_ = std::make_unique<uint64_t[]>(slots);  // zero: free
  slot_count_ = slots;
  for (uint32_t i = 0; i < count; ++i) {
    if (hashes[i] != 0) heap_[FindSlot(hashes[i])] = hashes[i];
  }
  std::memset(inline_, 0, sizeof inline_);
}

void HllSketch::InsertSparse(uint64_t hash) {
  if (slot_count_ == 0) {
    for (uint64_t& place : inline_) {
      if (place == 0) {
        place = hash;
        return;
      }
    }
    GrowSparse(4);  // the inline places are full: 2 + this one fit 4 slots at load 3/4
  } else {
    // At most 3/4 of the slots in use (so kSparseMax hashes fit in kMaxSlots slots).
    const uint32_t stored = sparse_size_ - (has_zero_ ? 1 : 0) + 1;
    if (4 * stored > 3 * slot_count_) GrowSparse(2 * slot_count_);
  }
  heap_[FindSlot(hash)] = hash;
}

void HllSketch::Add(uint64_t hash) {
  if (dense_) {
    AddToDense(hash);
    return;
  }
  if (hash == 0 ? has_zero_ : ContainsSparse(hash)) return;
  if (sparse_size_ == kSparseMax) {  // a new hash: too many to keep exactly
    MakeDense();
    AddToDense(hash);
    return;
  }
  if (hash == 0) {
    has_zero_ = true;
  } else {
    InsertSparse(hash);
  }
  ++sparse_size_;
}

void HllSketch::Merge(const HllSketch& other) {
  if (!other.dense_) {
    if (dense_) {
      other.ForEachSparse([this](uint64_t hash) { AddToDense(hash); });
      return;
    }
    if (sparse_size_ == 0) {
      *this = other;  // the common first merge of a window: one copy, no re-hashing
      return;
    }
    // Room for both at once (at most the largest table), then one probe per hash.
    const uint64_t both = static_cast<uint64_t>(sparse_size_) + other.sparse_size_;
    if (both > kInlineHashes) {
      uint32_t slots = std::max<uint32_t>(slot_count_, 4);
      while (slots < kMaxSlots && 4 * both > uint64_t{3} * slots) slots *= 2;
      if (slots != slot_count_) GrowSparse(slots);
    }
    other.ForEachSparse([this](uint64_t hash) { Add(hash); });
    return;
  }
  if (!dense_) MakeDense();
  uint8_t* mine = registers();
  const uint8_t* theirs = other.registers();
  for (size_t i = 0; i < kRegisters; ++i) mine[i] = std::max(mine[i], theirs[i]);
}

uint64_t HllSketch::Estimate() const {
  if (!dense_) return sparse_size_;
  int histogram[kQ + 2] = {};
  const uint8_t* r = registers();
  for (size_t i = 0; i < kRegisters; ++i) ++histogram[r[i]];
  const double m = static_cast<double>(kRegisters);
  double z = m * Tau(1.0 - histogram[kQ + 1] / m);
  for (int k = kQ; k >= 1; --k) z = 0.5 * (z + histogram[k]);
  z += m * Sigma(histogram[0] / m);
  const double alpha_inf = 1.0 / (2.0 * std::log(2.0));
  return static_cast<uint64_t>(std::llround(alpha_inf * m * m / z));
}

namespace {

// Encode's first byte: the form (low two bits) and, for a sparse sketch, whether it holds 0.
constexpr uint8_t kSparseForm = 0;
constexpr uint8_t kDenseGapsForm = 1;
constexpr uint8_t kDensePackedForm = 2;
constexpr uint8_t kFormMask = 3;
constexpr uint8_t kHasZeroFlag = 4;
constexpr size_t kPackedBytes = HllSketch::kRegisters / 4 * 3;  // 6 bits a register
constexpr uint8_t kMaxRank = kQ + 1;

void PutFixed64(uint64_t v, std::string& out) {
  char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(v >> (8 * i));
  out.append(bytes, sizeof bytes);
}

}  // namespace

void HllSketch::Encode(std::string& out) const {
  if (!dense_) {
    out.push_back(static_cast<char>(kSparseForm | (has_zero_ ? kHasZeroFlag : 0)));
    PutVarint(slot_count_, out);
    PutVarint(sparse_size_ - (has_zero_ ? 1 : 0), out);
    const uint64_t* hashes = slot_count_ == 0 ? inline_ : heap_.get();
    const uint32_t count = slot_count_ == 0 ? kInlineHashes : slot_count_;
    for (uint32_t i = 0; i < count; ++i) {
      if (hashes[i] != 0) PutFixed64(hashes[i], out);
    }
    return;
  }
  const uint8_t* r = registers();
  size_t nonzero = 0;
  size_t gaps_bytes = 0;
  size_t next = 0;  // the register after the previous non-zero one
  for (size_t i = 0; i < kRegisters; ++i) {
    if (r[i] == 0) continue;
    ++nonzero;
    gaps_bytes += VarintSize(i - next) + 1;
    next = i + 1;
  }
  if (VarintSize(nonzero) + gaps_bytes < kPackedBytes) {
    out.push_back(static_cast<char>(kDenseGapsForm));
    PutVarint(nonzero, out);
    next = 0;
    for (size_t i = 0; i < kRegisters; ++i) {
      if (r[i] == 0) continue;
      PutVarint(i - next, out);
      out.push_back(static_cast<char>(r[i]));
      next = i + 1;
    }
    return;
  }
  out.push_back(static_cast<char>(kDensePackedForm));
  const size_t start = out.size();
  out.resize(start + kPackedBytes);
  for (size_t i = 0; i < kRegisters; i += 4) {
    const uint32_t four = uint32_t{r[i]} | uint32_t{r[i + 1]} << 6 | uint32_t{r[i + 2]} << 12 |
                          uint32_t{r[i + 3]} << 18;
    char* at = out.data() + start + i / 4 * 3;
    at[0] = static_cast<char>(four);
    at[1] = static_cast<char>(four >> 8);
    at[2] = static_cast<char>(four >> 16);
  }
}

bool HllSketch::Decode(std::string_view& in) {
  *this = HllSketch();
  if (in.empty()) return false;
  const auto tag = static_cast<uint8_t>(in.front());
  in.remove_prefix(1);
  if ((tag & ~(kFormMask | kHasZeroFlag)) != 0 ||
      ((tag & kHasZeroFlag) != 0 && (tag & kFormMask) != kSparseForm)) {
    return false;
  }
  switch (tag & kFormMask) {
    case kSparseForm: {
      uint64_t slots;
      uint64_t count;
      if (!GetVarint(in, slots) || !GetVarint(in, count)) return false;
      const bool zero = (tag & kHasZeroFlag) != 0;
      if (count + (zero ? 1 : 0) > kSparseMax || count > in.size() / 8) return false;
      if (slots == 0) {
        if (count > kInlineHashes) return false;
      } else if (slots < 4 || slots > kMaxSlots || !std::has_single_bit(slots) ||
                 4 * count > 3 * slots) {
        return false;
      }
      if (slots != 0) {
        heap_ = std::make_unique<uint64_t[]>(slots);  // zero: free
        slot_count_ = static_cast<uint32_t>(slots);
      }
      for (uint64_t i = 0; i < count; ++i) {
        uint64_t hash = 0;
        for (int b = 0; b < 8; ++b) hash |= uint64_t{static_cast<unsigned char>(in[b])} << (8 * b);
        in.remove_prefix(8);
        if (hash == 0) return false;
        if (slot_count_ == 0) {
          if (ContainsSparse(hash)) return false;
          inline_[i] = hash;
        } else {
          uint64_t& slot = heap_[FindSlot(hash)];
          if (slot == hash) return false;
          slot = hash;
        }
      }
      has_zero_ = zero;
      sparse_size_ = static_cast<uint32_t>(count) + (zero ? 1 : 0);
      return true;
    }
    case kDenseGapsForm: {
      uint64_t nonzero;
      if (!GetVarint(in, nonzero) || nonzero == 0 || nonzero > kRegisters) return false;
      heap_ = std::make_unique<uint64_t[]>(kRegisters / sizeof(uint64_t));
      dense_ = true;
      uint8_t* r = registers();
      uint64_t next = 0;
      for (uint64_t k = 0; k < nonzero; ++k) {
        uint64_t gap;
        if (!GetVarint(in, gap) || gap >= kRegisters - next || in.empty()) return false;
        const auto rank = static_cast<uint8_t>(in.front());
        in.remove_prefix(1);
        if (rank == 0 || rank > kMaxRank) return false;
        r[next + gap] = rank;
        next += gap + 1;
      }
      return true;
    }
    case kDensePackedForm: {
      if (in.size() < kPackedBytes) return false;
      heap_ = std::make_unique<uint64_t[]>(kRegisters / sizeof(uint64_t));
      dense_ = true;
      uint8_t* r = registers();
      for (size_t i = 0; i < kRegisters; i += 4) {
        const char* at = in.data() + i / 4 * 3;
        const uint32_t four = uint32_t{static_cast<unsigned char>(at[0])} |
                              uint32_t{static_cast<unsigned char>(at[1])} << 8 |
                              uint32_t{static_cast<unsigned char>(at[2])} << 16;
        for (size_t j = 0; j < 4; ++j) {
          const auto rank = static_cast<uint8_t>(four >> (6 * j) & 63);
          if (rank > kMaxRank) return false;
          r[i + j] = rank;
        }
      }
      in.remove_prefix(kPackedBytes);
      return true;
    }
    default:
      return false;
  }
}

size_t HllSketch::HeapBytes() const { return dense_ ? kRegisters : slot_count_ * sizeof(uint64_t); }

}  // namespace ods::aggregate
