#include "ods/common/hash.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>

namespace ods {
namespace {

// The hash decides which shard owns a key; a change would silently move keys between shards (and,
// once tiering persists them, strand data). These values were computed once and are pinned: if
// this test fails, the change is a data-placement migration, not a refactoring.
TEST(StableHash64Test, FixedInputsHashToPinnedValues) {
  EXPECT_EQ(StableHash64("user:42"), 0xee81db5a2c792b94ULL);
  EXPECT_EQ(StableHash64("the quick brown fox jumps over"), 0x79400e46a69e81e9ULL);
  EXPECT_EQ(StableHash64("user:42", 0x6f6473), 0x33ea11ba65b0a632ULL);
  EXPECT_EQ(StableHash64(""), 0x0ULL);
}

TEST(StableHash64Test, SameBytesGiveSameHash) {
  const std::string a = "feature:12345";
  const std::string b = std::string("feature:") + "12345";
  EXPECT_EQ(StableHash64(a), StableHash64(b));
  EXPECT_EQ(StableHash64(a, 7), StableHash64(b, 7));
}

TEST(StableHash64Test, SeedChangesTheHash) {
  EXPECT_NE(StableHash64("user:42", 0), StableHash64("user:42", 1));
}

TEST(StableHash64Test, EmbeddedNulAndLengthAreSignificant) {
  const std::string with_nul("a\0b", 3);
  EXPECT_NE(StableHash64(with_nul), StableHash64("ab"));
  // Zero bytes in the tail must not collide with a shorter input.
  EXPECT_NE(StableHash64(std::string("x\0", 2)), StableHash64("x"));
  EXPECT_NE(StableHash64(std::string(8, '\0')), StableHash64(std::string(7, '\0')));
}

TEST(StableHash64Test, DistinctKeysDoNotCollide) {
  std::set<uint64_t> seen;
  for (int i = 0; i < 10000; ++i) {
    seen.insert(StableHash64("key" + std::to_string(i)));
  }
  EXPECT_EQ(seen.size(), 10000u);
}

TEST(StableHash64Test, LowBitsSpreadSequentialKeysEvenly) {
  constexpr int kBuckets = 16;
  constexpr int kKeys = 16000;
  int counts[kBuckets] = {};
  for (int i = 0; i < kKeys; ++i) ++counts[StableHash64("user:" + std::to_string(i)) % kBuckets];
  for (int b = 0; b < kBuckets; ++b) {
    EXPECT_GT(counts[b], kKeys / kBuckets * 8 / 10) << "bucket " << b;
    EXPECT_LT(counts[b], kKeys / kBuckets * 12 / 10) << "bucket " << b;
  }
}

}  // namespace
}  // namespace ods
