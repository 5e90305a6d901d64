#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

// HyperLogLog distinct-count sketch over 64-bit hashes (private to ods_aggregate).
namespace ods::aggregate {

// A set of 64-bit hashes summarized for counting: exact while small, then a HyperLogLog sketch
// of 2^14 registers (standard error ~0.81%) read with Ertl's improved estimator (2017), which
// needs no empirical bias tables.
//
// The state is a function of the set of hashes added, whatever the grouping or order: the sparse
// form is the sorted set itself and turns dense (each register the max over its hashes) once it
// holds more than kSparseMax hashes. So merging the sketches of parts equals adding every hash
// to one sketch, and Estimate() is the same either way. Thread-compatible.
class HllSketch {
 public:
  static constexpr int kPrecision = 14;
  static constexpr size_t kRegisters = size_t{1} << kPrecision;
  // Largest sparse set: its 8-byte hashes then take as much memory as the dense registers.
  static constexpr size_t kSparseMax = kRegisters / sizeof(uint64_t);

  HllSketch() = default;
  HllSketch(const HllSketch& other);
  HllSketch& operator=(const HllSketch& other);
  HllSketch(HllSketch&&) noexcept = default;
  HllSketch& operator=(HllSketch&&) noexcept = default;

  // O(log size + size) while sparse (sorted insert), O(1) once dense.
  void Add(uint64_t hash);
  // Adds every hash `other` holds (or stands for). O(size of both) sparse, O(kRegisters) dense.
  void Merge(const HllSketch& other);
  // Number of distinct hashes: exact while sparse, else the HyperLogLog estimate (rounded).
  uint64_t Estimate() const;

  bool dense() const { return dense_ != nullptr; }
  // Heap bytes held: the sparse vector's capacity or the dense registers.
  size_t HeapBytes() const;

 private:
  void MakeDense();
  void AddToDense(uint64_t hash);

  std::vector<uint64_t> sparse_;      // sorted, distinct; empty once dense
  std::unique_ptr<uint8_t[]> dense_;  // kRegisters registers, or null while sparse
};

}  // namespace ods::aggregate
