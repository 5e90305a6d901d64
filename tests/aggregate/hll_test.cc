#include "aggregate/hll.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
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

}  // namespace
}  // namespace ods::aggregate
