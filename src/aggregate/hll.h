#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

// HyperLogLog distinct-count sketch over 64-bit hashes (private to ods_aggregate).
namespace ods::aggregate {

// A set of 64-bit hashes summarized for counting: exact while small, then a HyperLogLog sketch
// of 2^14 registers (standard error ~0.81%) read with Ertl's improved estimator (2017), which
// needs no empirical bias tables.
//
// The state is a function of the set of hashes added, whatever the grouping or order: the sparse
// form is the set itself (an open-addressing hash table: an add or a membership test touches one
// or two cache lines whatever the set's size) and turns dense (each register the max over its
// hashes) once it holds more than kSparseMax hashes. So merging the sketches of parts equals
// adding every hash to one sketch, and Estimate() is the same either way. Thread-compatible.
class HllSketch {
 public:
  static constexpr int kPrecision = 14;
  static constexpr size_t kRegisters = size_t{1} << kPrecision;
  // Largest sparse table: its 8-byte slots then take as much memory as the dense registers.
  static constexpr size_t kMaxSlots = kRegisters / sizeof(uint64_t);
  // Largest sparse set: the largest table at its highest load (3/4).
  static constexpr size_t kSparseMax = kMaxSlots / 4 * 3;

  HllSketch() = default;
  HllSketch(const HllSketch& other);
  HllSketch& operator=(const HllSketch& other);
  HllSketch(HllSketch&& other) noexcept;
  HllSketch& operator=(HllSketch&& other) noexcept;

  // O(1) expected (amortized over table growth).
  void Add(uint64_t hash);
  // Adds every hash `other` holds (or stands for). O(size of other) sparse, O(kRegisters) dense.
  void Merge(const HllSketch& other);
  // Number of distinct hashes: exact while sparse, else the HyperLogLog estimate (rounded).
  uint64_t Estimate() const;

  bool dense() const { return dense_ != nullptr; }
  // Heap bytes held: the sparse table or the dense registers.
  size_t HeapBytes() const;

 private:
  void MakeDense();
  void AddToDense(uint64_t hash);
  // The slot of the sparse table that holds non-zero `hash`, else the free slot where it goes.
  uint32_t FindSlot(uint64_t hash) const;
  // Moves the sparse set into a table of `slots` slots (a power of two, room for the set).
  void GrowSparse(uint32_t slots);
  // Calls f(hash) for each hash of the sparse set.
  template <class F>
  void ForEachSparse(F&& f) const;

  // Sparse form: slots_ (slot_count_ slots, a power of two, or null when empty) holds the
  // distinct non-zero hashes, 0 marking a free slot; has_zero_ says whether the hash 0 was added;
  // sparse_size_ counts both. All unused once dense.
  std::unique_ptr<uint64_t[]> slots_;
  uint32_t slot_count_ = 0;
  uint32_t sparse_size_ = 0;
  bool has_zero_ = false;
  std::unique_ptr<uint8_t[]> dense_;  // kRegisters registers, or null while sparse
};

}  // namespace ods::aggregate
