#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

namespace ods::bench {

// Log-linear latency histogram in nanoseconds (HdrHistogram's layout with 32 sub-buckets per
// power of two): fixed size, no allocation in Record(), relative error under 1/32 (~3%).
// Thread-compatible: give each thread its own and Merge() them at the end.
class LatencyHistogram {
 public:
  // Adds one sample. O(1), no allocation.
  void Record(uint64_t nanos) {
    ++counts_[BucketOf(nanos)];
    ++count_;
    sum_nanos_ += nanos;
    max_nanos_ = std::max(max_nanos_, nanos);
  }

  void Merge(const LatencyHistogram& other) {
    for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    sum_nanos_ += other.sum_nanos_;
    max_nanos_ = std::max(max_nanos_, other.max_nanos_);
  }

  uint64_t count() const { return count_; }
  uint64_t max_nanos() const { return max_nanos_; }
  double mean_nanos() const {
    return count_ == 0 ? 0.0 : static_cast<double>(sum_nanos_) / static_cast<double>(count_);
  }

  // The smallest recorded value v such that a fraction `q` (in [0, 1]) of the samples are
  // <= v, reported as the midpoint of its bucket (never above max). 0 when empty. O(buckets).
  uint64_t Percentile(double q) const {
    if (count_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count_) + 0.999999);
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(Midpoint(i), max_nanos_);
    }
    return max_nanos_;
  }

 private:
  static constexpr int kSubBits = 5;
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  // Groups 0 (values < 32) .. 59 (values up to 2^64): 60 * 32 buckets.
  static constexpr size_t kBuckets = 60 * kSub;

  static size_t BucketOf(uint64_t v) {
    if (v < kSub) return static_cast<size_t>(v);
    const int e = 63 - std::countl_zero(v);         // floor(log2 v) >= kSubBits
    const uint64_t mantissa = v >> (e - kSubBits);  // in [32, 64)
    return static_cast<size_t>((e - kSubBits + 1) * kSub + (mantissa - kSub));
  }
  static uint64_t Midpoint(size_t bucket) {
    if (bucket < kSub) return bucket;
    const uint64_t group = bucket / kSub;
    const uint64_t mantissa = kSub + bucket % kSub;
    const uint64_t low = mantissa << (group - 1);
    const uint64_t width = uint64_t{1} << (group - 1);
    return low + width / 2;
  }

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_nanos_ = 0;
  uint64_t max_nanos_ = 0;
};

}  // namespace ods::bench
