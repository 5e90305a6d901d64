#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

// HyperLogLog distinct-count sketch over 64-bit hashes (private to ods_aggregate).
namespace ods::aggregate {

// A set of 64-bit hashes summarized for counting: exact while small, then a HyperLogLog sketch
// of 2^14 registers (standard error ~0.81%) read with Ertl's improved estimator (2017), which
// needs no empirical bias tables.
//
// The state is a function of the set of hashes added, whatever the grouping or order: the sparse
// form is the set itself — up to kInlineHashes inside the object (no allocation, no pointer to
// chase: most tiles of one entity see one or two distinct values), beyond that an
// open-addressing hash table (an add or a membership test touches one or two cache lines
// whatever the set's size) — and it turns dense (each register the max over its hashes) once it
// holds more than kSparseMax hashes. So merging the sketches of parts equals adding every hash to
// one sketch, and Estimate() is the same either way. Thread-compatible.
class HllSketch {
 public:
  static constexpr int kPrecision = 14;
  static constexpr size_t kRegisters = size_t{1} << kPrecision;
  static constexpr size_t kInlineHashes = 2;
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

  bool dense() const { return dense_; }
  // No hash added. O(1).
  bool empty() const { return !dense_ && sparse_size_ == 0; }

  // Calls f(hash) for each hash of a sparse sketch, in no particular order; nothing once dense.
  template <class F>
  void ForEachSparse(F&& f) const {
    if (dense_) return;
    if (has_zero_) f(uint64_t{0});
    const uint64_t* hashes = slot_count_ == 0 ? inline_ : heap_.get();
    const uint32_t count = slot_count_ == 0 ? kInlineHashes : slot_count_;
    for (uint32_t i = 0; i < count; ++i) {
      if (hashes[i] != 0) f(hashes[i]);
    }
  }
  // Heap bytes held: the sparse table or the dense registers; 0 while the set is inline.
  size_t HeapBytes() const;

  // Appends the sketch to `out`: sparse, its table size and hashes (8 bytes each); dense, the
  // non-zero registers as (gap, rank) pairs or all registers in 6 bits, whichever is smaller
  // (~2 bytes per distinct value up to ~5,000, at most 12 KiB). O(size).
  void Encode(std::string& out) const;
  // Replaces this (empty) sketch with one read from the front of `in`: the same hashes or
  // registers and HeapBytes() as the encoded one, so Estimate() and merges answer the same.
  // False on truncated or invalid input (a rank out of range, a repeated hash, a table too
  // full); the sketch is then unspecified but valid. Allocates at most the dense registers.
  bool Decode(std::string_view& in);

 private:
  uint8_t* registers() const { return reinterpret_cast<uint8_t*>(heap_.get()); }
  void MakeDense();
  void AddToDense(uint64_t hash);
  // Whether the sparse set holds non-zero `hash`.
  bool ContainsSparse(uint64_t hash) const;
  // Adds non-zero `hash`, known to be absent, to the sparse set (which has room for it).
  void InsertSparse(uint64_t hash);
  // The slot of the table that holds non-zero `hash`, else the free slot where it goes.
  uint32_t FindSlot(uint64_t hash) const;
  // Moves the sparse set into a table of `slots` slots (a power of two, room for the set).
  void GrowSparse(uint32_t slots);
  // Sparse: the non-zero hashes are in inline_ while slot_count_ is 0 (0 marks a free place),
  // else in the table heap_ of slot_count_ slots (0 marks a free slot); has_zero_ says whether
  // the hash 0 was added; sparse_size_ counts them all. Dense: heap_ holds the kRegisters
  // one-byte registers, and the sparse fields are unused.
  uint64_t inline_[kInlineHashes] = {};
  std::unique_ptr<uint64_t[]> heap_;
  uint32_t slot_count_ = 0;
  uint32_t sparse_size_ = 0;
  bool has_zero_ = false;
  bool dense_ = false;
};

}  // namespace ods::aggregate
