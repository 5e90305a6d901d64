#include "aggregate/hll.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>

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

HllSketch::HllSketch(const HllSketch& other) : sparse_(other.sparse_) {
  if (other.dense_ != nullptr) {
    dense_ = std::make_unique<uint8_t[]>(kRegisters);
    std::memcpy(dense_.get(), other.dense_.get(), kRegisters);
  }
}

HllSketch& HllSketch::operator=(const HllSketch& other) {
  if (this != &other) *this = HllSketch(other);
  return *this;
}

void HllSketch::AddToDense(uint64_t hash) {
  const size_t index = hash >> kQ;
  const uint64_t rest = hash << kPrecision;
  const auto rank = static_cast<uint8_t>(rest == 0 ? kQ + 1 : std::countl_zero(rest) + 1);
  dense_[index] = std::max(dense_[index], rank);
}

void HllSketch::MakeDense() {
  dense_ = std::make_unique<uint8_t[]>(kRegisters);  // zero-initialized
  for (uint64_t hash : sparse_) AddToDense(hash);
  std::vector<uint64_t>().swap(sparse_);
}

void HllSketch::Add(uint64_t hash) {
  if (dense_ != nullptr) {
    AddToDense(hash);
    return;
  }
  auto it = std::lower_bound(sparse_.begin(), sparse_.end(), hash);
  if (it != sparse_.end() && *it == hash) return;
  if (sparse_.size() == kSparseMax) {
    MakeDense();
    AddToDense(hash);
    return;
  }
  sparse_.insert(it, hash);
}

void HllSketch::Merge(const HllSketch& other) {
  if (other.dense_ == nullptr) {
    if (dense_ != nullptr) {
      for (uint64_t hash : other.sparse_) AddToDense(hash);
      return;
    }
    std::vector<uint64_t> merged;
    merged.reserve(std::min(sparse_.size() + other.sparse_.size(), kSparseMax + 1));
    std::set_union(sparse_.begin(), sparse_.end(), other.sparse_.begin(), other.sparse_.end(),
                   std::back_inserter(merged));
    sparse_ = std::move(merged);
    if (sparse_.size() > kSparseMax) MakeDense();
    return;
  }
  if (dense_ == nullptr) MakeDense();
  for (size_t i = 0; i < kRegisters; ++i) dense_[i] = std::max(dense_[i], other.dense_[i]);
}

uint64_t HllSketch::Estimate() const {
  if (dense_ == nullptr) return sparse_.size();
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
  return dense_ != nullptr ? kRegisters : sparse_.capacity() * sizeof(uint64_t);
}

}  // namespace ods::aggregate
