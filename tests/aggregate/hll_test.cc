#include "aggregate/hll.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ods/common/hash.h"

namespace ods::aggregate {
namespace {

uint64_t HashOf(uint64_t i) {
  char bytes[sizeof i];
  std::memcpy(bytes, &i, sizeof i);
  return StableHash64(std::string_view(bytes, sizeof bytes));
}

double RelativeError(uint64_t estimate, uint64_t truth) {
  return std::abs(static_cast<double>(estimate) - static_cast<double>(truth)) /
         static_cast<double>(truth);
}

TEST(HllSketchTest, EmptyIsZero) {
  HllSketch sketch;
  EXPECT_EQ(sketch.Estimate(), 0u);
  EXPECT_EQ(sketch.HeapBytes(), 0u);
}

TEST(HllSketchTest, ExactWhileSparse) {
  HllSketch sketch;
  for (uint64_t i = 0; i < HllSketch::kSparseMax; ++i) {
    sketch.Add(HashOf(i));
    sketch.Add(HashOf(i / 2));  // duplicates do not count
  }
  EXPECT_FALSE(sketch.dense());
  EXPECT_EQ(sketch.Estimate(), HllSketch::kSparseMax);
  sketch.Add(HashOf(HllSketch::kSparseMax));
  EXPECT_TRUE(sketch.dense());
  EXPECT_EQ(sketch.HeapBytes(), HllSketch::kRegisters);
}

TEST(HllSketchTest, RelativeErrorWithinTwoPercent) {
  // Dense from kSparseMax + 1 on; the estimator has no bias-table gap in between.
  for (uint64_t distinct : {1'000u, 3'000u, 10'000u, 40'000u, 100'000u, 1'000'000u}) {
    HllSketch sketch;
    for (uint64_t i = 0; i < distinct; ++i) sketch.Add(HashOf(i + 17 * distinct));
    EXPECT_LE(RelativeError(sketch.Estimate(), distinct), 0.02)
        << distinct << " distinct, estimated " << sketch.Estimate();
  }
}

TEST(HllSketchTest, MergeOfPartsEqualsOneSketch) {
  std::mt19937_64 rng(7);
  for (uint64_t distinct : {500u, 3'000u, 50'000u}) {
    HllSketch whole;
    std::vector<HllSketch> parts(37);
    for (uint64_t i = 0; i < 3 * distinct; ++i) {
      const uint64_t hash = HashOf(rng() % distinct);
      whole.Add(hash);
      parts[rng() % parts.size()].Add(hash);
    }
    HllSketch merged;
    for (const HllSketch& part : parts) merged.Merge(part);
    EXPECT_EQ(merged.dense(), whole.dense()) << distinct;
    EXPECT_EQ(merged.Estimate(), whole.Estimate()) << distinct;
    // In another grouping too: pairwise, then together.
    HllSketch left;
    HllSketch right;
    for (size_t i = 0; i < parts.size(); ++i) (i % 2 == 0 ? left : right).Merge(parts[i]);
    right.Merge(left);
    EXPECT_EQ(right.Estimate(), whole.Estimate()) << distinct;
  }
}

TEST(HllSketchTest, TwoHashesLiveInline) {
  HllSketch sketch;
  sketch.Add(HashOf(1));
  sketch.Add(HashOf(2));
  sketch.Add(HashOf(1));
  EXPECT_EQ(sketch.Estimate(), 2u);
  EXPECT_EQ(sketch.HeapBytes(), 0u);
  sketch.Add(HashOf(3));  // a third moves the set into a table
  EXPECT_EQ(sketch.Estimate(), 3u);
  EXPECT_GT(sketch.HeapBytes(), 0u);
  HllSketch moved = std::move(sketch);
  moved.Add(HashOf(2));
  EXPECT_EQ(moved.Estimate(), 3u);
}

TEST(HllSketchTest, HashZeroAndCollidingSlotsCountOnce) {
  HllSketch sketch;
  // 0 marks a free slot in the sparse table, so it is kept apart; hashes equal in their low
  // bits probe into the same slots.
  for (int round = 0; round < 3; ++round) {
    sketch.Add(0);
    for (uint64_t high = 1; high <= 40; ++high) sketch.Add(high << 40);
  }
  EXPECT_FALSE(sketch.dense());
  EXPECT_EQ(sketch.Estimate(), 41u);
  HllSketch copy = sketch;
  HllSketch other;
  other.Add(0);
  other.Add(uint64_t{7} << 40);
  other.Add(12345);
  copy.Merge(other);
  EXPECT_EQ(copy.Estimate(), 42u);
  EXPECT_EQ(sketch.Estimate(), 41u);
}

TEST(HllSketchTest, AnyOrderGivesTheSameState) {
  // Around the sparse limit too, where the order decides when the sketch turns dense.
  std::mt19937_64 rng(11);
  constexpr uint64_t kMax = HllSketch::kSparseMax;
  for (uint64_t distinct :
       {uint64_t{1}, uint64_t{3}, uint64_t{100}, kMax - 1, kMax, kMax + 1, uint64_t{5'000}}) {
    std::vector<uint64_t> hashes;
    for (uint64_t i = 0; i < distinct; ++i) hashes.push_back(i == 0 ? 0 : HashOf(i));
    HllSketch forward;
    for (uint64_t h : hashes) forward.Add(h);
    std::shuffle(hashes.begin(), hashes.end(), rng);
    HllSketch shuffled;
    for (uint64_t h : hashes) shuffled.Add(h);
    EXPECT_EQ(forward.dense(), distinct > HllSketch::kSparseMax) << distinct;
    EXPECT_EQ(shuffled.dense(), forward.dense()) << distinct;
    EXPECT_EQ(shuffled.Estimate(), forward.Estimate()) << distinct;
    if (!forward.dense()) {
      EXPECT_EQ(forward.Estimate(), distinct);
    }
  }
}

TEST(HllSketchTest, CopyIsIndependent) {
  HllSketch a;
  for (uint64_t i = 0; i < 10'000; ++i) a.Add(HashOf(i));
  HllSketch b = a;
  for (uint64_t i = 10'000; i < 20'000; ++i) b.Add(HashOf(i));
  EXPECT_LT(a.Estimate(), b.Estimate());
  EXPECT_LE(RelativeError(a.Estimate(), 10'000), 0.02);
}

// ---- Encode / Decode ---------------------------------------------------------------------------

HllSketch SketchOf(uint64_t distinct, bool with_zero) {
  HllSketch sketch;
  if (with_zero) sketch.Add(0);
  for (uint64_t i = 0; i < distinct; ++i) sketch.Add(HashOf(i));
  return sketch;
}

// Every form (inline, table, with the hash 0, dense as gaps and as packed registers) decodes to a
// sketch with the same estimate, heap bytes and merge results.
TEST(HllSketchCodecTest, RoundTripsEveryForm) {
  for (const uint64_t distinct : {0, 1, 2, 3, 100, 1536, 1537, 3000, 100'000}) {
    for (const bool zero : {false, true}) {
      SCOPED_TRACE(std::to_string(distinct) + (zero ? " with 0" : ""));
      const HllSketch sketch = SketchOf(distinct, zero);
      std::string bytes;
      sketch.Encode(bytes);
      std::string_view in = bytes;
      HllSketch decoded;
      ASSERT_TRUE(decoded.Decode(in));
      EXPECT_TRUE(in.empty());
      EXPECT_EQ(decoded.Estimate(), sketch.Estimate());
      EXPECT_EQ(decoded.HeapBytes(), sketch.HeapBytes());
      EXPECT_EQ(decoded.dense(), sketch.dense());
      HllSketch a = SketchOf(700, false);
      HllSketch b = a;
      a.Merge(sketch);
      b.Merge(decoded);
      EXPECT_EQ(a.Estimate(), b.Estimate());
      if (sketch.dense()) {
        std::string again;
        decoded.Encode(again);
        EXPECT_EQ(again, bytes);
      }
    }
  }
}

TEST(HllSketchCodecTest, DenseSketchesAreCompact) {
  std::string just_dense;
  SketchOf(HllSketch::kSparseMax + 1, false).Encode(just_dense);
  EXPECT_LT(just_dense.size(), 4'000u);  // ~2 bytes per set register, not 16 KiB
  std::string full;
  SketchOf(1'000'000, false).Encode(full);
  EXPECT_EQ(full.size(), 1 + HllSketch::kRegisters / 4 * 3);  // 6 bits a register
}

bool Decodes(std::string_view bytes) {
  HllSketch sketch;
  return sketch.Decode(bytes) && bytes.empty();
}

std::string Fixed64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(v >> (8 * i));
  return out;
}

TEST(HllSketchCodecTest, RefusesStatesNoFoldMakes) {
  // Sparse: tag 0 (4: holds the hash 0), table slots, hash count, hashes.
  EXPECT_TRUE(Decodes(std::string("\x00\x00\x02", 3) + Fixed64(5) + Fixed64(6)));
  EXPECT_FALSE(Decodes(std::string("\x00\x00\x02", 3) + Fixed64(5) + Fixed64(5)));  // repeated
  EXPECT_FALSE(Decodes(std::string("\x00\x00\x01", 3) + Fixed64(0)));  // 0 is a flag, not a hash
  EXPECT_FALSE(Decodes(std::string("\x00\x00\x03", 3) + Fixed64(1) + Fixed64(2) + Fixed64(3)));
  EXPECT_FALSE(Decodes(std::string("\x00\x04\x04", 3) + Fixed64(1) + Fixed64(2) + Fixed64(3) +
                       Fixed64(4)));                                      // table too full
  EXPECT_FALSE(Decodes(std::string("\x00\x06\x01", 3) + Fixed64(1)));   // not a power of two
  EXPECT_FALSE(Decodes(std::string("\x05\x00\x00", 3)));             // 0 flag on dense
  EXPECT_FALSE(Decodes(std::string("\x03", 1)));                       // unknown form
  // Dense gaps: count, then (gap, rank) pairs; ranks are 1..51.
  EXPECT_TRUE(Decodes(std::string("\x01\x01\x05\x33", 4)));
  EXPECT_FALSE(Decodes(std::string("\x01\x01\x05\x34", 4)));
  EXPECT_FALSE(Decodes(std::string("\x01\x01\x05\x00", 4)));
  EXPECT_FALSE(Decodes(std::string("\x01\x01\x80\x80\x01\x01", 6)));  // past the registers
  // Packed: a 6-bit register of 52 or more.
  std::string packed(1 + HllSketch::kRegisters / 4 * 3, '\0');
  packed[0] = 2;
  EXPECT_TRUE(Decodes(packed));
  packed[1] = 52;
  EXPECT_FALSE(Decodes(packed));
}

TEST(HllSketchCodecTest, EveryTruncationIsRefused) {
  for (const uint64_t distinct : {2, 100, 2000, 100'000}) {
    std::string bytes;
    SketchOf(distinct, true).Encode(bytes);
    for (size_t size = 0; size < bytes.size(); ++size) {
      HllSketch sketch;
      std::string_view in(bytes.data(), size);
      ASSERT_FALSE(sketch.Decode(in)) << distinct << " distinct, " << size << " bytes";
    }
  }
}

}  // namespace
}  // namespace ods::aggregate
