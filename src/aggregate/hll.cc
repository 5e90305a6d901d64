#include "aggregate/hll.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>

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
    : slot_count_(other.slot_count_), sparse_size_(other.sparse_size_), has_zero_(other.has_zero_) {
  if (other.slots_ != nullptr) {
    slots_ = std::make_unique<uint64_t[]>(slot_count_);
    std::memcpy(slots_.get(), other.slots_.get(), slot_count_ * sizeof(uint64_t));
  }
  if (other.dense_ != nullptr) {
    dense_ = std::make_unique<uint8_t[]>(kRegisters);
    std::memcpy(dense_.get(), other.dense_.get(), kRegisters);
  }
}

HllSketch& HllSketch::operator=(const HllSketch& other) {
  if (this != &other) *this = HllSketch(other);
  return *this;
}

HllSketch::HllSketch(HllSketch&& other) noexcept
    : slots_(std::move(other.slots_)),
      slot_count_(std::exchange(other.slot_count_, 0)),
      sparse_size_(std::exchange(other.sparse_size_, 0)),
      has_zero_(std::exchange(other.has_zero_, false)),
      dense_(std::move(other.dense_)) {}

HllSketch& HllSketch::operator=(HllSketch&& other) noexcept {
  if (this != &other) {
    slots_ = std::move(other.slots_);
    slot_count_ = std::exchange(other.slot_count_, 0);
    sparse_size_ = std::exchange(other.sparse_size_, 0);
    has_zero_ = std::exchange(other.has_zero_, false);
    dense_ = std::move(other.dense_);
  }
  return *this;
}

void HllSketch::AddToDense(uint64_t hash) {
  const size_t index = hash >> kQ;
  const uint64_t rest = hash << kPrecision;
  const auto rank = static_cast<uint8_t>(rest == 0 ? kQ + 1 : std::countl_zero(rest) + 1);
  dense_[index] = std::max(dense_[index], rank);
}

template <class F>
void HllSketch::ForEachSparse(F&& f) const {
  if (has_zero_) f(uint64_t{0});
  for (uint32_t i = 0; i < slot_count_; ++i) {
    if (slots_[i] != 0) f(slots_[i]);
  }
}

void HllSketch::MakeDense() {
  dense_ = std::make_unique<uint8_t[]>(kRegisters);  // zero-initialized
  ForEachSparse([this](uint64_t hash) { AddToDense(hash); });
  slots_.reset();
  slot_count_ = 0;
  sparse_size_ = 0;
  has_zero_ = false;
}

uint32_t HllSketch::FindSlot(uint64_t hash) const {
  // The low bits pick the slot; the register index uses the high bits, so they stay independent.
  const uint32_t mask = slot_count_ - 1;
  auto i = static_cast<uint32_t>(hash) & mask;
  while (slots_[i] != hash && slots_[i] != 0) i = (i + 1) & mask;  // the load keeps a slot free
  return i;
}

void HllSketch::GrowSparse(uint32_t slots) {
  std::unique_ptr<uint64_t[]> old = std::move(slots_);
  const uint32_t old_count = slot_count_;
  slot_count_ = slots;
  slots_ = std::make_unique<uint64_t[]>(slot_count_);  // zero: free
  for (uint32_t i = 0; i < old_count; ++i) {
    if (old[i] != 0) slots_[FindSlot(old[i])] = old[i];
  }
}

void HllSketch::Add(uint64_t hash) {
  if (dense_ != nullptr) {
    AddToDense(hash);
    return;
  }
  if (hash == 0 ? has_zero_ : slot_count_ > 0 && slots_[FindSlot(hash)] == hash) return;
  // A new hash.
  if (sparse_size_ == kSparseMax) {
    MakeDense();
    AddToDense(hash);
    return;
  }
  ++sparse_size_;
  if (hash == 0) {
    has_zero_ = true;
    return;
  }
  // At most 3/4 of the slots in use (so kSparseMax hashes fit in kMaxSlots slots).
  const uint32_t stored = sparse_size_ - (has_zero_ ? 1 : 0);
  if (4 * stored > 3 * slot_count_) GrowSparse(slot_count_ == 0 ? 2 : 2 * slot_count_);
  slots_[FindSlot(hash)] = hash;
}

void HllSketch::Merge(const HllSketch& other) {
  if (other.dense_ == nullptr) {
    if (dense_ != nullptr) {
      other.ForEachSparse([this](uint64_t hash) { AddToDense(hash); });
    } else if (sparse_size_ == 0) {
      *this = other;  // the common first merge of a window: one copy, no re-hashing
    } else {
      // Room for both at once (at most the largest table), then one probe per hash.
      const uint64_t both = static_cast<uint64_t>(sparse_size_) + other.sparse_size_;
      uint32_t slots = std::max<uint32_t>(slot_count_, 2);
      while (slots < kMaxSlots && 4 * both > uint64_t{3} * slots) slots *= 2;
      if (slots != slot_count_) GrowSparse(slots);
      other.ForEachSparse([this](uint64_t hash) { Add(hash); });
    }
    return;
  }
  if (dense_ == nullptr) MakeDense();
  for (size_t i = 0; i < kRegisters; ++i) dense_[i] = std::max(dense_[i], other.dense_[i]);
}

uint64_t HllSketch::Estimate() const {
  if (dense_ == nullptr) return sparse_size_;
  int histogram[kQ + 2] = {};
  for (size_t i = 0; i < kRegisters; ++i) ++histogram[dense_[i]];
  const double m = static_cast<double>(kRegisters);
  double z = m * Tau(1.0 - histogram[kQ + 1] / m);
  for (int k = kQ; k >= 1; --k) z = 0.5 * (z + histogram[k]);
  z += m * Sigma(histogram[0] / m);
  const double alpha_inf = 1.0 / (2.0 * std::log(2.0));
  return static_cast<uint64_t>(std::llround(alpha_inf * m * m / z));
}

size_t HllSketch::HeapBytes() const {
  return dense_ != nullptr ? kRegisters : slot_count_ * sizeof(uint64_t);
}

}  // namespace ods::aggregate
