#include "ods/shard/shard.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ods/common/clock.h"
#include "ods/record/codec.h"
#include "ods/record/schema.h"

namespace ods::shard {
namespace {

using record::Field;
using record::Record;
using record::TableSchema;
using record::Value;

constexpr uint32_t kTyped = 0;
constexpr uint32_t kFree = 1;
constexpr uint32_t kWithTtl = 2;
constexpr Micros kTtl = 60'000'000;

std::vector<std::shared_ptr<const TableSchema>> Catalog() {
  return {
      std::make_shared<const TableSchema>(
          "typed", "id",
          std::vector<TableSchema::FieldSpec>{{"age", ValueType::kInt64},
                                              {"name", ValueType::kString}},
          false, 0),
      std::make_shared<const TableSchema>("free", "id", std::vector<TableSchema::FieldSpec>{},
                                          true, 0),
      std::make_shared<const TableSchema>("ttl", "id", std::vector<TableSchema::FieldSpec>{},
                                          true, kTtl),
  };
}

std::vector<uint32_t> AllIndices(size_t n) {
  std::vector<uint32_t> v(n);
  std::iota(v.begin(), v.end(), 0u);
  return v;
}

Record Rec(int64_t age, std::string name = "n") {
  Record r;
  r.fields = {{"age", age}, {"name", std::move(name)}};
  return r;
}

// Test-side wrapper over the span+indices API for the common "all positions" case.
class ShardTest : public ::testing::Test {
 protected:
  explicit ShardTest(uint64_t max_memory_bytes = 0)
      : shard_(7, Catalog(), clock_, max_memory_bytes) {}

  std::vector<uint64_t> Put(uint32_t table, const std::vector<std::string>& keys,
                            const std::vector<Record>& records) {
    std::vector<KeyedRecord> items;
    for (size_t i = 0; i < keys.size(); ++i) items.push_back({keys[i], &records[i]});
    std::vector<uint64_t> versions(keys.size(), 0);
    const std::vector<uint32_t> indices = AllIndices(keys.size());
    shard_.Put(table, items, indices, versions);
    return versions;
  }
  uint64_t Put1(uint32_t table, const std::string& key, const Record& r) {
    return Put(table, {key}, {r})[0];
  }

  std::vector<std::optional<Record>> Get(uint32_t table, const std::vector<std::string_view>& keys,
                                         const std::vector<std::string_view>& fields = {}) {
    std::vector<std::optional<Record>> out(keys.size());
    const std::vector<uint32_t> indices = AllIndices(keys.size());
    uint64_t budget = UINT64_MAX;
    EXPECT_TRUE(shard_.Get(table, keys, indices, fields, out, budget));
    return out;
  }
  std::optional<Record> Get1(uint32_t table, std::string_view key) { return Get(table, {key})[0]; }

  std::vector<uint8_t> Delete(uint32_t table, const std::vector<std::string_view>& keys) {
    std::vector<uint8_t> deleted(keys.size(), 7);
    const std::vector<uint32_t> indices = AllIndices(keys.size());
    shard_.Delete(table, keys, indices, deleted);
    return deleted;
  }

  std::vector<std::string> Collect(uint32_t table, std::string_view prefix,
                                   std::string_view start_after, size_t limit) {
    std::vector<std::string> out;
    shard_.CollectKeys(table, prefix, start_after, limit, out);
    std::sort(out.begin(), out.end());
    return out;
  }

  FakeClock clock_;
  Shard shard_;
};

TEST_F(ShardTest, IdIsTheConstructorArgument) { EXPECT_EQ(shard_.id(), 7u); }

TEST_F(ShardTest, PutThenGetReturnsTheRecord) {
  Record in = Rec(30, "ann");
  in.event_time_micros = 123;
  const uint64_t v = Put1(kTyped, "u1", in);
  std::optional<Record> out = Get1(kTyped, "u1");
  ASSERT_TRUE(out.has_value());
  ASSERT_EQ(out->fields.size(), 2u);
  EXPECT_EQ(out->fields[0], (Field{"age", int64_t{30}}));
  EXPECT_EQ(out->fields[1], (Field{"name", std::string("ann")}));
  EXPECT_EQ(out->event_time_micros, 123);
  EXPECT_EQ(out->version, v);
}

TEST_F(ShardTest, GetOfAbsentKeyIsNullopt) {
  Put1(kTyped, "u1", Rec(1));
  EXPECT_FALSE(Get1(kTyped, "u2").has_value());
}

TEST_F(ShardTest, TablesAreSeparateNamespaces) {
  Record free_record;
  free_record.fields = {{"x", true}};
  Put1(kTyped, "k", Rec(1));
  EXPECT_FALSE(Get1(kFree, "k").has_value());
  Put1(kFree, "k", free_record);
  std::optional<Record> typed = Get1(kTyped, "k");
  ASSERT_TRUE(typed.has_value());
  EXPECT_NE(typed->Find("age"), nullptr);
}

TEST_F(ShardTest, PutOverExistingKeyReplacesTheRecord) {
  Put1(kTyped, "u1", Rec(1, "old"));
  Record replacement;
  replacement.fields = {{"age", int64_t{2}}};
  Put1(kTyped, "u1", replacement);
  std::optional<Record> out = Get1(kTyped, "u1");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->fields, replacement.fields);  // "name" is gone: a put replaces, not merges
}

TEST_F(ShardTest, OnlyIndexedPositionsAreTouched) {
  const std::vector<std::string> keys = {"a", "b", "c", "d"};
  const std::vector<Record> records = {Rec(0), Rec(1), Rec(2), Rec(3)};
  std::vector<KeyedRecord> items;
  for (size_t i = 0; i < keys.size(); ++i) items.push_back({keys[i], &records[i]});
  std::vector<uint64_t> versions(4, 0);
  const std::vector<uint32_t> mine = {1, 3};
  shard_.Put(kTyped, items, mine, versions);
  EXPECT_EQ(versions[0], 0u);
  EXPECT_NE(versions[1], 0u);
  EXPECT_EQ(versions[2], 0u);
  EXPECT_NE(versions[3], 0u);

  const std::vector<std::string_view> get_keys = {"a", "b", "c", "d"};
  std::vector<std::optional<Record>> out(4);
  out[0] = Rec(99);  // positions not in `indices` keep what they held
  uint64_t budget = UINT64_MAX;
  ASSERT_TRUE(shard_.Get(kTyped, get_keys, mine, {}, out, budget));
  ASSERT_TRUE(out[0].has_value());
  EXPECT_EQ(out[0]->fields, Rec(99).fields);
  ASSERT_TRUE(out[1].has_value());
  EXPECT_EQ(*out[1]->Find("age"), Value(int64_t{1}));
  EXPECT_FALSE(out[2].has_value());
  ASSERT_TRUE(out[3].has_value());
  EXPECT_EQ(*out[3]->Find("age"), Value(int64_t{3}));

  EXPECT_FALSE(Get1(kTyped, "a").has_value());
  EXPECT_FALSE(Get1(kTyped, "c").has_value());
}

TEST_F(ShardTest, GetStopsBeforeDecodingPastTheByteBudget) {
  Put1(kTyped, "a", Rec(1));
  const std::vector<std::string_view> keys = {"a", "a", "a"};
  std::vector<std::optional<Record>> out(3);
  const std::vector<uint32_t> indices = {0, 1, 2};
  uint64_t unlimited = UINT64_MAX;
  ASSERT_TRUE(shard_.Get(kTyped, keys, indices, {}, out, unlimited));
  const uint64_t one_record = UINT64_MAX - unlimited;
  ASSERT_EQ(one_record % 3, 0u);
  uint64_t budget = 2 * (one_record / 3);  // room for two of the three
  std::vector<std::optional<Record>> fresh(3);
  EXPECT_FALSE(shard_.Get(kTyped, keys, indices, {}, fresh, budget));
  EXPECT_TRUE(fresh[0].has_value());
  EXPECT_TRUE(fresh[1].has_value());
  EXPECT_FALSE(fresh[2].has_value());
  EXPECT_EQ(budget, 0u);
}

TEST_F(ShardTest, GetOverwritesStaleOutputAtItsPositions) {
  Put1(kTyped, "present", Rec(5));
  std::vector<std::optional<Record>> out(2, Rec(99));
  const std::vector<std::string_view> keys = {"absent", "present"};
  const std::vector<uint32_t> indices = {0, 1};
  uint64_t budget = UINT64_MAX;
  ASSERT_TRUE(shard_.Get(kTyped, keys, indices, {}, out, budget));
  EXPECT_FALSE(out[0].has_value());
  ASSERT_TRUE(out[1].has_value());
  EXPECT_EQ(*out[1]->Find("age"), Value(int64_t{5}));
}

TEST_F(ShardTest, VersionsStrictlyIncrease) {
  std::vector<uint64_t> seen;
  for (int i = 0; i < 5; ++i) seen.push_back(Put1(kTyped, "same", Rec(i)));
  const std::vector<uint64_t> batch = Put(kFree, {"a", "b", "c"}, {Rec(1), Rec(2), Rec(3)});
  seen.insert(seen.end(), batch.begin(), batch.end());
  seen.push_back(Put1(kTyped, "other", Rec(0)));
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_GT(seen[i], seen[i - 1]) << i;
  EXPECT_GT(seen.front(), 0u);
}

TEST_F(ShardTest, DuplicateKeyInOneBatchLastWins) {
  const std::vector<uint64_t> v = Put(kTyped, {"k", "k"}, {Rec(1), Rec(2)});
  EXPECT_LT(v[0], v[1]);
  std::optional<Record> out = Get1(kTyped, "k");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out->Find("age"), Value(int64_t{2}));
  EXPECT_EQ(out->version, v[1]);
  EXPECT_EQ(shard_.Stats().records, 1u);
}

TEST_F(ShardTest, ProjectionReturnsOnlyRequestedFields) {
  Put1(kTyped, "u1", Rec(30, "ann"));
  std::optional<Record> out = Get(kTyped, {"u1"}, {"name"})[0];
  ASSERT_TRUE(out.has_value());
  ASSERT_EQ(out->fields.size(), 1u);
  EXPECT_EQ(out->fields[0], (Field{"name", std::string("ann")}));
}

TEST_F(ShardTest, ProjectionOfUnknownFieldsYieldsAnEmptyRecord) {
  Put1(kFree, "u1", Rec(30, "ann"));
  std::optional<Record> out = Get(kFree, {"u1"}, {"never_written"})[0];
  ASSERT_TRUE(out.has_value());  // the record exists; it just has none of the fields
  EXPECT_TRUE(out->fields.empty());
}

TEST_F(ShardTest, DeleteRemovesAndReportsWhatWasLive) {
  Put(kTyped, {"a", "b"}, {Rec(1), Rec(2)});
  const std::vector<uint8_t> deleted = Delete(kTyped, {"a", "missing"});
  EXPECT_EQ(deleted, (std::vector<uint8_t>{1, 0}));
  EXPECT_FALSE(Get1(kTyped, "a").has_value());
  EXPECT_TRUE(Get1(kTyped, "b").has_value());
  EXPECT_EQ(Delete(kTyped, {"a"}), (std::vector<uint8_t>{0}));
}

TEST_F(ShardTest, StatsCountOperations) {
  Put(kTyped, {"a", "b", "c"}, {Rec(1), Rec(2), Rec(3)});
  Get(kTyped, {"a", "zz"});
  Delete(kTyped, {"b", "zz"});
  const ShardStats s = shard_.Stats();
  EXPECT_EQ(s.records, 2u);
  EXPECT_EQ(s.puts, 3u);
  EXPECT_EQ(s.gets, 2u);
  EXPECT_EQ(s.get_hits, 1u);
  EXPECT_EQ(s.deletes, 1u);
  EXPECT_EQ(s.expired, 0u);
}

// --- TTL ---------------------------------------------------------------------------------------

TEST_F(ShardTest, RecordIsVisibleUntilItsTtlPasses) {
  Put1(kWithTtl, "k", Rec(1));
  clock_.Advance(kTtl - 1);
  EXPECT_TRUE(Get1(kWithTtl, "k").has_value());
  clock_.Advance(1);
  EXPECT_FALSE(Get1(kWithTtl, "k").has_value());
}

TEST_F(ShardTest, RewriteRestartsTheTtl) {
  Put1(kWithTtl, "k", Rec(1));
  clock_.Advance(kTtl - 1);
  Put1(kWithTtl, "k", Rec(2));
  clock_.Advance(kTtl - 1);
  std::optional<Record> out = Get1(kWithTtl, "k");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out->Find("age"), Value(int64_t{2}));
  clock_.Advance(1);
  EXPECT_FALSE(Get1(kWithTtl, "k").has_value());
}

TEST_F(ShardTest, TableWithoutTtlNeverExpires) {
  Put1(kTyped, "k", Rec(1));
  clock_.Advance(Micros{100} * 365 * 86'400'000'000);
  EXPECT_TRUE(Get1(kTyped, "k").has_value());
  EXPECT_EQ(shard_.SweepExpired(100), 0u);
}

TEST_F(ShardTest, ExpiredRecordIsHiddenFromCollectKeysAndNotCountedAsDeleted) {
  Put(kWithTtl, {"a", "b"}, {Rec(1), Rec(2)});
  clock_.Advance(kTtl);
  EXPECT_TRUE(Collect(kWithTtl, "", "", 10).empty());
  EXPECT_EQ(Delete(kWithTtl, {"a"}), (std::vector<uint8_t>{0}));
  EXPECT_EQ(shard_.Stats().deletes, 0u);
}

TEST_F(ShardTest, SweepRemovesOnlyExpiredRecordsAndCountsThem) {
  Put(kWithTtl, {"old1", "old2", "old3"}, {Rec(1), Rec(2), Rec(3)});
  clock_.Advance(kTtl / 2);
  Put1(kWithTtl, "young", Rec(4));
  Put1(kFree, "forever", Rec(5));
  clock_.Advance(kTtl / 2);
  EXPECT_EQ(shard_.Stats().records, 5u);  // expired-but-unswept still counted
  EXPECT_EQ(shard_.SweepExpired(100), 3u);
  const ShardStats s = shard_.Stats();
  EXPECT_EQ(s.records, 2u);
  EXPECT_EQ(s.expired, 3u);
  EXPECT_TRUE(Get1(kWithTtl, "young").has_value());
  EXPECT_TRUE(Get1(kFree, "forever").has_value());
  EXPECT_EQ(shard_.SweepExpired(100), 0u);
}

TEST_F(ShardTest, SweepStopsAtItsBudget) {
  std::vector<std::string> keys;
  std::vector<Record> records;
  for (int i = 0; i < 10; ++i) {
    keys.push_back("k" + std::to_string(i));
    records.push_back(Rec(i));
  }
  Put(kWithTtl, keys, records);
  clock_.Advance(kTtl);
  EXPECT_EQ(shard_.SweepExpired(4), 4u);
  EXPECT_EQ(shard_.Stats().records, 6u);
  EXPECT_EQ(shard_.SweepExpired(100), 6u);
  EXPECT_EQ(shard_.Stats().records, 0u);
  EXPECT_EQ(shard_.Stats().expired, 10u);
  EXPECT_EQ(shard_.Stats().memory_bytes, 0u);
}

// --- CollectKeys -------------------------------------------------------------------------------

class ShardCollectTest : public ShardTest {
 protected:
  void SetUp() override {
    Put(kFree, {"user:3", "user:1", "user:2", "item:1", "user:10", "usr"},
        {Rec(0), Rec(0), Rec(0), Rec(0), Rec(0), Rec(0)});
  }
};

TEST_F(ShardCollectTest, PrefixSelectsKeys) {
  EXPECT_EQ(Collect(kFree, "user:", "", 100),
            (std::vector<std::string>{"user:1", "user:10", "user:2", "user:3"}));
}

TEST_F(ShardCollectTest, EmptyPrefixSelectsAll) {
  EXPECT_EQ(Collect(kFree, "", "", 100).size(), 6u);
}

TEST_F(ShardCollectTest, StartAfterIsExclusive) {
  EXPECT_EQ(Collect(kFree, "user:", "user:10", 100),
            (std::vector<std::string>{"user:2", "user:3"}));
}

TEST_F(ShardCollectTest, LimitKeepsTheSmallestKeys) {
  EXPECT_EQ(Collect(kFree, "user:", "", 2), (std::vector<std::string>{"user:1", "user:10"}));
  EXPECT_EQ(Collect(kFree, "", "item:1", 1), (std::vector<std::string>{"user:1"}));
}

TEST_F(ShardCollectTest, ZeroLimitCollectsNothing) {
  EXPECT_TRUE(Collect(kFree, "", "", 0).empty());
}

TEST_F(ShardCollectTest, AppendsAfterExistingOutput) {
  std::vector<std::string> out = {"zzz-existing"};
  shard_.CollectKeys(kFree, "user:", "", 2, out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0], "zzz-existing");
  std::vector<std::string> rest(out.begin() + 1, out.end());
  std::sort(rest.begin(), rest.end());
  EXPECT_EQ(rest, (std::vector<std::string>{"user:1", "user:10"}));
}

TEST_F(ShardCollectTest, OtherTablesAreNotCollected) {
  EXPECT_TRUE(Collect(kTyped, "", "", 100).empty());
}

// --- Memory ------------------------------------------------------------------------------------

TEST_F(ShardTest, MemoryRisesOnPutAndReturnsToZeroOnDelete) {
  EXPECT_EQ(shard_.Stats().memory_bytes, 0u);
  Put1(kTyped, "u1", Rec(1, std::string(1000, 'x')));
  const uint64_t one = shard_.Stats().memory_bytes;
  EXPECT_GT(one, 1000u);
  Put1(kTyped, "u2", Rec(1, std::string(1000, 'x')));
  EXPECT_EQ(shard_.Stats().memory_bytes, 2 * one);
  Delete(kTyped, {"u1", "u2"});
  EXPECT_EQ(shard_.Stats().memory_bytes, 0u);
}

TEST_F(ShardTest, LongKeysAndRecordsRoundTripAndOverwriteInPlace) {
  const std::string key(300, 'k');  // sizes >= 128 take multi-byte length prefixes
  Put1(kTyped, key, Rec(1, std::string(20000, 'a')));
  const uint64_t bytes = shard_.Stats().memory_bytes;
  Put1(kTyped, key, Rec(2, std::string(20000, 'b')));  // same size: reuses the entry
  EXPECT_EQ(shard_.Stats().memory_bytes, bytes);
  std::optional<Record> got = Get1(kTyped, key);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got->Find("age"), Value(int64_t{2}));
  EXPECT_EQ(*got->Find("name"), Value(std::string(20000, 'b')));
  EXPECT_FALSE(Get1(kTyped, std::string(299, 'k')).has_value());
  Delete(kTyped, {key});
  EXPECT_EQ(shard_.Stats().memory_bytes, 0u);
}

TEST_F(ShardTest, OverwriteAccountsForTheNewSizeOnly) {
  Put1(kTyped, "u1", Rec(1, std::string(10, 'x')));
  const uint64_t small = shard_.Stats().memory_bytes;
  Put1(kTyped, "u1", Rec(1, std::string(5000, 'x')));
  const uint64_t large = shard_.Stats().memory_bytes;
  EXPECT_GE(large, small + 4990);
  Put1(kTyped, "u1", Rec(1, std::string(10, 'x')));
  EXPECT_EQ(shard_.Stats().memory_bytes, small);
  Delete(kTyped, {"u1"});
  EXPECT_EQ(shard_.Stats().memory_bytes, 0u);
}

TEST_F(ShardTest, MaxEntryBytesIsAtLeastWhatAPutAdds) {
  const std::vector<Record> records = {Rec(0, ""), Rec(-1, std::string(5000, 'x')),
                                       Rec(std::numeric_limits<int64_t>::min(), "n")};
  for (size_t i = 0; i < records.size(); ++i) {
    const std::string key = "key" + std::to_string(i);
    const uint64_t before = shard_.Stats().memory_bytes;
    Put1(kTyped, key, records[i]);
    const uint64_t added = shard_.Stats().memory_bytes - before;
    EXPECT_GE(Shard::MaxEntryBytes(key, records[i]), added) << i;
    EXPECT_LE(Shard::MaxEntryBytes(key, records[i]), added + 64) << i;  // and not wildly more
  }
}

TEST_F(ShardTest, UnlimitedShardNeverExceedsMemory) {
  EXPECT_FALSE(shard_.WouldExceedMemory(uint64_t{1} << 62));
}

class LimitedShardTest : public ShardTest {
 protected:
  LimitedShardTest() : ShardTest(/*max_memory_bytes=*/4096) {}
};

TEST_F(LimitedShardTest, WouldExceedMemoryComparesAgainstTheBudget) {
  EXPECT_FALSE(shard_.WouldExceedMemory(4096));
  EXPECT_TRUE(shard_.WouldExceedMemory(4097));
  Put1(kTyped, "u1", Rec(1, std::string(1000, 'x')));
  const uint64_t used = shard_.Stats().memory_bytes;
  ASSERT_GT(used, 1000u);
  EXPECT_FALSE(shard_.WouldExceedMemory(4096 - used));
  EXPECT_TRUE(shard_.WouldExceedMemory(4096 - used + 1));
  Delete(kTyped, {"u1"});
  EXPECT_FALSE(shard_.WouldExceedMemory(4096));
}

// --- Concurrency -------------------------------------------------------------------------------

// Two threads write and read disjoint keys of one shard at once. Every read must see a complete
// record (its two fields agree) written by its own thread, and nothing may be lost.
TEST_F(ShardTest, ConcurrentPutsAndGetsStayConsistent) {
  constexpr int kRounds = 2000;
  std::atomic<int> bad_reads{0};
  auto worker = [&](const std::string& prefix) {
    for (int i = 0; i < kRounds; ++i) {
      const std::string key = prefix + std::to_string(i % 50);
      Record r;
      r.fields = {{"age", int64_t{i}}, {"name", prefix + std::to_string(i)}};
      const KeyedRecord item{key, &r};
      const uint32_t index = 0;
      uint64_t version = 0;
      shard_.Put(kTyped, std::span<const KeyedRecord>(&item, 1),
                 std::span<const uint32_t>(&index, 1), std::span<uint64_t>(&version, 1));
      const std::string_view k = key;
      std::optional<Record> out;
      uint64_t budget = UINT64_MAX;
      shard_.Get(kTyped, std::span<const std::string_view>(&k, 1),
                 std::span<const uint32_t>(&index, 1), {},
                 std::span<std::optional<Record>>(&out, 1), budget);
      // Only this thread writes `key`, so it must read back exactly what it just wrote.
      const Value* age = out.has_value() ? out->Find("age") : nullptr;
      const Value* name = out.has_value() ? out->Find("name") : nullptr;
      if (age == nullptr || name == nullptr || out->version != version ||
          *age != Value(int64_t{i}) || *name != Value(prefix + std::to_string(i))) {
        bad_reads.fetch_add(1);
      }
    }
  };
  std::thread a(worker, "a:");
  std::thread b(worker, "b:");
  a.join();
  b.join();
  EXPECT_EQ(bad_reads.load(), 0);
  const ShardStats s = shard_.Stats();
  EXPECT_EQ(s.records, 100u);
  EXPECT_EQ(s.puts, 2u * kRounds);
  EXPECT_EQ(s.gets, 2u * kRounds);
  EXPECT_EQ(s.get_hits, 2u * kRounds);
  // Memory accounting survived the interleaving: deleting everything returns it to zero.
  std::vector<std::string> keys;
  shard_.CollectKeys(kTyped, "", "", 1000, keys);
  ASSERT_EQ(keys.size(), 100u);
  std::vector<std::string_view> views(keys.begin(), keys.end());
  Delete(kTyped, views);
  EXPECT_EQ(shard_.Stats().memory_bytes, 0u);
}

TEST_F(ShardTest, ConcurrentVersionsAreUnique) {
  constexpr int kPuts = 3000;
  std::vector<uint64_t> versions_a;
  std::vector<uint64_t> versions_b;
  auto worker = [&](const std::string& key, std::vector<uint64_t>& versions) {
    const Record r = Rec(1);
    for (int i = 0; i < kPuts; ++i) versions.push_back(Put1(kFree, key, r));
  };
  std::thread a(worker, "a", std::ref(versions_a));
  std::thread b(worker, "b", std::ref(versions_b));
  a.join();
  b.join();
  std::vector<uint64_t> all = versions_a;
  all.insert(all.end(), versions_b.begin(), versions_b.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());
  EXPECT_TRUE(std::is_sorted(versions_a.begin(), versions_a.end()));
  EXPECT_TRUE(std::is_sorted(versions_b.begin(), versions_b.end()));
}

// --- Procedures (Shard::Execute) ----------------------------------------------------------------

// A fake clock that runs `on_read` once, at its `fire_at`-th read, from inside whatever reads
// it: the sandbox's budget hook reads it while a procedure runs with no record lock held, so a
// test can write the record in the middle of a procedure, deterministically.
class InterruptingClock final : public Clock {
 public:
  Micros NowMicros() const override {
    if (++reads_ == fire_at && on_read) on_read();
    return 1'700'000'000'000'000;
  }
  int fire_at = 0;
  std::function<void()> on_read;

 private:
  mutable int reads_ = 0;
};

class ShardProcedureTest : public ShardTest {
 protected:
  sandbox::FunctionId Load(std::string_view source, sandbox::Limits limits = {}) {
    auto id = shard_.LoadFunction("proc", 3, source, limits);
    EXPECT_TRUE(id.ok()) << id.status().message();
    return id.ok() ? *id : sandbox::FunctionId{};
  }
  ProcedureOutcome Run(sandbox::FunctionId id, uint32_t table, std::string_view key,
                       const std::vector<Field>& args = {}) {
    ProcedureCall call;
    call.table = table;
    call.key = key;
    call.function = id;
    call.args = args;
    call.label = "function proc v3";
    call.max_record_bytes = 1 << 20;
    return shard_.Execute(call);
  }
};

TEST_F(ShardProcedureTest, UpdatesTheRecordInPlaceAndReturnsAValue) {
  const uint64_t before = Put1(kTyped, "u1", Rec(30, "ann"));
  const auto id = Load(R"(
function execute(r, args) r.age = r.age + args.by; return "was " .. r.name, r end)");
  const ProcedureOutcome out = Run(id, kTyped, "u1", {{"by", int64_t{5}}});
  ASSERT_TRUE(out.status.ok()) << out.status.message();
  EXPECT_EQ(out.value, Value(std::string("was ann")));
  EXPECT_TRUE(out.written);
  EXPECT_GT(out.version, before);
  std::optional<Record> now = Get1(kTyped, "u1");
  ASSERT_TRUE(now.has_value());
  EXPECT_EQ(*now->Find("age"), Value(int64_t{35}));
  EXPECT_EQ(now->version, out.version);
}

TEST_F(ShardProcedureTest, AbsentRecordIsNilAndMayBeCreated) {
  const auto id = Load(R"(
function execute(r, args, key)
  if r == nil then return "created", {count = 1, who = key} end
  r.count = r.count + 1
  return "bumped", r
end)");
  ProcedureOutcome first = Run(id, kFree, "k1");
  ASSERT_TRUE(first.status.ok()) << first.status.message();
  EXPECT_EQ(first.value, Value(std::string("created")));
  ProcedureOutcome second = Run(id, kFree, "k1");
  EXPECT_EQ(second.value, Value(std::string("bumped")));
  std::optional<Record> now = Get1(kFree, "k1");
  ASSERT_TRUE(now.has_value());
  EXPECT_EQ(*now->Find("count"), Value(int64_t{2}));
  EXPECT_EQ(*now->Find("who"), Value(std::string("k1")));
}

TEST_F(ShardProcedureTest, ReturningNoRecordLeavesTheRecordAlone) {
  const uint64_t v = Put1(kTyped, "u1", Rec(30));
  const auto id = Load("function execute(r) return r.age * 2 end");
  const ProcedureOutcome out = Run(id, kTyped, "u1");
  ASSERT_TRUE(out.status.ok());
  EXPECT_EQ(out.value, Value(int64_t{60}));
  EXPECT_FALSE(out.written);
  EXPECT_EQ(Get1(kTyped, "u1")->version, v);
}

TEST_F(ShardProcedureTest, WrongTypeForTypedTableIsRefusedNamingTableKeyField) {
  const uint64_t v = Put1(kTyped, "u1", Rec(30));
  const auto id = Load("function execute(r) r.age = 'old'; return 1, r end");
  const ProcedureOutcome out = Run(id, kTyped, "u1");
  EXPECT_EQ(out.status.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(out.status.message(), ::testing::HasSubstr("function proc v3: new record: "));
  EXPECT_THAT(out.status.message(), ::testing::HasSubstr("'typed'"));
  EXPECT_THAT(out.status.message(), ::testing::HasSubstr("u1"));
  EXPECT_THAT(out.status.message(), ::testing::HasSubstr("age"));
  EXPECT_FALSE(out.written);
  EXPECT_EQ(Get1(kTyped, "u1")->version, v);
}

TEST_F(ShardProcedureTest, UnknownFieldForTypedTableIsRefused) {
  Put1(kTyped, "u1", Rec(30));
  const auto id = Load("function execute(r) r.color = 'red'; return 1, r end");
  EXPECT_EQ(Run(id, kTyped, "u1").status.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Get1(kTyped, "u1")->Find("color"), nullptr);
}

TEST_F(ShardProcedureTest, FreeFormFieldsKeepTheirStoredTypes) {
  Record r;
  r.fields = {{"b", record::Bytes{"\x01\x02"}}, {"t", record::Timestamp{99}}, {"d", 1.5}};
  Put1(kFree, "k", r);
  const auto id = Load("function execute(r) r.d = 2; return nil, r end");
  ASSERT_TRUE(Run(id, kFree, "k").status.ok());
  std::optional<Record> now = Get1(kFree, "k");
  ASSERT_TRUE(now.has_value());
  EXPECT_EQ(*now->Find("b"), Value(record::Bytes{"\x01\x02"}));
  EXPECT_EQ(*now->Find("t"), Value(record::Timestamp{99}));
  EXPECT_EQ(*now->Find("d"), Value(2.0));
}

TEST_F(ShardProcedureTest, BudgetOverrunLeavesRecordUnchangedAndShardServing) {
  const uint64_t v = Put1(kTyped, "u1", Rec(30));
  sandbox::Limits limits;
  limits.instructions = 100'000;
  const auto id = Load("function execute(r)\n  r.age = 1\n  while true do end\nend", limits);
  const ProcedureOutcome out = Run(id, kTyped, "u1");
  EXPECT_EQ(out.status.code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(out.status.message(), ::testing::HasSubstr("function proc v3: line 3"));
  EXPECT_EQ(Get1(kTyped, "u1")->version, v);
  EXPECT_EQ(*Get1(kTyped, "u1")->Find("age"), Value(int64_t{30}));
  const auto ok = Load("function execute(r) return r.age end");
  EXPECT_EQ(Run(ok, kTyped, "u1").value, Value(int64_t{30}));
}

TEST_F(ShardProcedureTest, UnloadedFunctionIsNotFound) {
  const auto id = Load("function execute() return 1 end");
  shard_.UnloadFunction(id);
  EXPECT_EQ(Run(id, kFree, "k").status.code(), StatusCode::kNotFound);
}

class ShardProcedureMemoryTest : public ShardTest {
 protected:
  ShardProcedureMemoryTest() : ShardTest(/*max_memory_bytes=*/512) {}
};

TEST_F(ShardProcedureMemoryTest, NewRecordPastTheRamBudgetIsRefusedAndChangesNothing) {
  Record small;
  small.fields = {{"s", std::string("x")}};
  const uint64_t v = Put1(kFree, "k", small);
  auto id = shard_.LoadFunction("grow", 1,
                                "function execute(r) r.s = string.rep('y', 4096); "
                                "return 1, r end",
                                {});
  ASSERT_TRUE(id.ok());
  ProcedureCall call;
  call.table = kFree;
  call.key = "k";
  call.function = *id;
  call.label = "function grow v1";
  const ProcedureOutcome out = shard_.Execute(call);
  EXPECT_EQ(out.status.code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(out.status.message(),
              ::testing::HasSubstr("function grow v1: table 'free', key 'k'"));
  EXPECT_FALSE(out.written);
  EXPECT_EQ(Get1(kFree, "k")->version, v);
}

class ShardProcedureRaceTest : public ::testing::Test {
 protected:
  ShardProcedureRaceTest() : shard_(0, Catalog(), clock_, 0) {}

  void PutCount(int64_t count) {
    Record r;
    r.fields = {{"count", count}};
    const KeyedRecord item{"k", &r};
    const uint32_t index = 0;
    uint64_t version = 0;
    shard_.Put(kFree, std::span(&item, 1), std::span(&index, 1), std::span(&version, 1));
  }

  InterruptingClock clock_;
  Shard shard_;
};

TEST_F(ShardProcedureRaceTest, PutDuringProcedureMakesItRunAgainOnTheNewRecord) {
  PutCount(1);
  int runs_seen = 0;
  // The procedure spins long enough for the budget hook to read the clock several times; the
  // third read (inside the first run) writes the record behind the procedure's back.
  clock_.fire_at = 3;
  clock_.on_read = [&] {
    ++runs_seen;
    PutCount(100);
  };
  sandbox::Limits limits;
  limits.instructions = 1'000'000;
  auto id = shard_.LoadFunction("bump", 1, R"(
function execute(r)
  for i = 1, 20000 do end
  r.count = r.count + 1
  return r.count, r
end)",
                                limits);
  ASSERT_TRUE(id.ok());
  ProcedureCall call;
  call.table = kFree;
  call.key = "k";
  call.function = *id;
  call.label = "function bump v1";
  const ProcedureOutcome out = shard_.Execute(call);
  ASSERT_TRUE(out.status.ok()) << out.status.message();
  EXPECT_EQ(runs_seen, 1);
  EXPECT_EQ(out.value, Value(int64_t{101}));  // not 2: the first run's write was dropped
  std::vector<std::optional<Record>> got(1);
  const std::string_view key = "k";
  const uint32_t index = 0;
  uint64_t budget = UINT64_MAX;
  ASSERT_TRUE(shard_.Get(kFree, std::span(&key, 1), std::span(&index, 1), {}, got, budget));
  EXPECT_EQ(*got[0]->Find("count"), Value(int64_t{101}));
}

}  // namespace
}  // namespace ods::shard

namespace ods::shard {
namespace {

// The idle sweep visits a bounded number of entities per call and resumes where it stopped, so
// a shard holding many entities is never locked for a whole pass.
class ShardSweepTest : public ::testing::Test {
 protected:
  static constexpr Micros kHour = 3'600'000'000;

  ShardSweepTest() : shard_(0, {}, clock_, 0) {
    auto t = std::make_shared<TemplateSpec>();
    t->id = 0;
    shard_.AddTemplate(t);
    auto a = std::make_shared<AggregationSpec>();
    a->spec.fn = aggregate::Fn::kCount;
    a->spec.windows = {kHour};
    a->spec.tiles = {kHour / 60};
    shard_.AddAggregation(a);
  }

  // One event for each key, stamped `age` before now.
  void Push(const std::vector<std::string>& keys, Micros age) {
    std::vector<ShardEvent> events(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      events[i].key = keys[i];
      events[i].event_time = clock_.NowMicros() - age;
    }
    std::vector<EventOutcome> outcomes(keys.size());
    shard_.ApplyEvents(events, AllIndices(keys.size()), outcomes);
  }

  static std::vector<std::string> Keys(const std::string& prefix, int n) {
    std::vector<std::string> keys;
    for (int i = 0; i < n; ++i) keys.push_back(prefix + std::to_string(i));
    return keys;
  }

  FakeClock clock_;
  Shard shard_;
};

TEST_F(ShardSweepTest, EachCallVisitsAtMostItsBudgetAndPassesResume) {
  Push(Keys("fresh-", 300), 0);
  Push(Keys("idle-with-a-key-longer-than-forty-four-bytes-", 200), 2 * kHour);
  ASSERT_EQ(shard_.Stats().entities, 500u);
  // 50 visits among 500 entities, 200 of them idle, remove ~20 (all 50 visited being idle has
  // odds of ~1e-20): the budget counts visits, not removals.
  size_t removed = shard_.SweepIdleEntities(50);
  EXPECT_LT(removed, 50u);
  size_t calls = 1;
  while (removed < 200 && calls < 100) {
    const size_t now_removed = shard_.SweepIdleEntities(50);
    EXPECT_LE(now_removed, 50u);
    removed += now_removed;
    ++calls;
  }
  EXPECT_EQ(removed, 200u);
  // 500 entities at 50 visits per call: one pass is 10 calls (resuming, not restarting).
  EXPECT_LE(calls, 10u);
  EXPECT_EQ(shard_.Stats().entities, 300u);
  EXPECT_EQ(shard_.SweepIdleEntities(1000), 0u);  // a budget past the end wraps and stops
  EXPECT_EQ(shard_.SweepExpired(1000), 0u);        // this shard has no tables at all
  clock_.Advance(2 * kHour);
  EXPECT_EQ(shard_.SweepIdleEntities(1000), 300u);
  EXPECT_EQ(shard_.Stats().entities, 0u);
}

}  // namespace
}  // namespace ods::shard

namespace ods::shard {
namespace {

// Stats().event_state_bytes is a running figure kept by every change (events with and without
// ids, duplicates, out-of-order and too-old events, strings that outgrow the small-string
// buffer, history trimmed and compacted, tiles dropped, entities swept, an aggregation added and
// backfilled). It must always equal a walk over every entity.
TEST(ShardEventBytesTest, TheRunningFigureEqualsAWalkAfterEveryChange) {
  constexpr Micros kSecond = 1'000'000;
  constexpr Micros kHour = 3600 * kSecond;
  FakeClock clock(Micros{1'700'000'000} * kSecond);
  Shard shard(0, {}, clock, 0);
  auto t = std::make_shared<TemplateSpec>();
  t->field_count = 2;  // 0: merchant (string), 1: amount (double)
  t->history_retention_micros = 2 * kHour;
  t->dedup_window_micros = 10 * 60 * kSecond;
  t->field_names = {"merchant", "amount"};
  t->history_ssd_after_micros = kHour / 2;  // retained events move below RAM too
  t->tiles_ssd_after_micros = 2 * kHour;    // and tiles (a late event into one is refused)
  shard.AddTemplate(t);
  std::map<std::pair<std::string, uint64_t>, std::string> below_tiles;
  // Below RAM: a map standing in for the SSD tier (the engine's is RocksDB).
  std::map<std::pair<std::string, uint64_t>, std::string> below;
  shard.SetColdHistoryReader([&](uint32_t, std::string_view entity, uint64_t first,
                                 uint64_t last, std::vector<HistoryEvent>& out) {
    for (auto it = below.lower_bound({std::string(entity), first});
         it != below.end() && it->first.first == entity && it->first.second <= last; ++it) {
      HistoryEvent& e = out.emplace_back();
      if (Status s = record::DecodeRow(it->second, e.event_time, e.values); !s.ok()) return s;
    }
    return OkStatus();
  });
  uint32_t next_id = 0;
  // Lua aggregators too: string states that outgrow the small-string buffer, and one over the
  // whole event that fails on some events (which must change nothing).
  auto add_lua = [&](int32_t field, std::string source) {
    auto f = std::make_shared<AggregatorFunction>();
    f->name = "lua" + std::to_string(next_id);
    f->version = 1;
    f->source = std::move(source);
    auto a = std::make_shared<AggregationSpec>();
    a->id = next_id++;
    a->field = field;
    a->name = f->name;
    a->function = f;
    a->spec.windows = {kHour, 24 * kHour};
    a->spec.tiles = {aggregate::DefaultTileFor(kHour), aggregate::DefaultTileFor(24 * kHour)};
    ASSERT_TRUE(shard.PrepareAggregation(*a).ok());
    shard.AddAggregation(a);
  };
  const std::string kConcat = R"(
function init() return "" end
function update(s, v) if #s > 60 then s = "" end return s .. v end
function merge(a, b) return a .. b end
function finalize(s) return #s end)";
  const std::string kPicky = R"(
function init() return {n = 0} end
function update(s, e) if e.amount == 999 or e.amount == 998 then error("no") end s.n = s.n + 1 return s end
function merge(a, b) return {n = a.n + b.n} end
function finalize(s) return s.n end)";
  add_lua(0, kConcat);
  add_lua(-1, kPicky);
  auto add = [&](aggregate::Fn fn, ValueType type, int32_t field, uint32_t n) {
    auto a = std::make_shared<AggregationSpec>();
    a->id = next_id++;
    a->field = field;
    a->spec.fn = fn;
    a->spec.input_type = type;
    a->spec.n = n;
    a->spec.windows = {kHour, 24 * kHour};
    a->spec.tiles = {aggregate::DefaultTileFor(kHour), aggregate::DefaultTileFor(24 * kHour)};
    shard.AddAggregation(a);
  };
  add(aggregate::Fn::kTopK, ValueType::kString, 0, 2);
  add(aggregate::Fn::kLastN, ValueType::kString, 0, 3);
  add(aggregate::Fn::kDistinctCount, ValueType::kString, 0, 0);
  add(aggregate::Fn::kMin, ValueType::kString, 0, 0);
  add(aggregate::Fn::kSum, ValueType::kDouble, 1, 0);

  std::mt19937_64 rng(11);
  auto pick = [&](uint64_t n) { return rng() % n; };
  std::vector<std::string> keys, ids, merchants;
  std::vector<Value> values;
  for (int step = 0; step < 400; ++step) {
    const size_t batch = 1 + pick(40);
    keys.assign(batch, "");
    ids.assign(batch, "");
    merchants.assign(batch, "");
    values.clear();
    values.reserve(2 * batch);
    std::vector<ShardEvent> events(batch);
    std::vector<const Value*> pointers(2 * batch);
    for (size_t i = 0; i < batch; ++i) {
      keys[i] = (pick(3) == 0 ? std::string(50, 'L') : "u") + std::to_string(pick(60));
      merchants[i] = "m" + std::to_string(pick(30)) + (pick(4) == 0 ? std::string(30, 'x') : "");
      values.emplace_back(merchants[i]);
      values.emplace_back(static_cast<double>(pick(1000)));
      pointers[2 * i] = pick(5) == 0 ? nullptr : &values[2 * i];
      pointers[2 * i + 1] = &values[2 * i + 1];
      if (pick(2) == 0) ids[i] = "id-" + std::to_string(pick(500)) + std::string(pick(2) * 20, 'i');
      events[i].key = keys[i];
      events[i].event_time = clock.NowMicros() - static_cast<Micros>(pick(3 * kHour));
      events[i].values = &pointers[2 * i];
      events[i].event_id = ids[i];
    }
    std::vector<EventOutcome> outcomes(batch);
    shard.ApplyEvents(events, AllIndices(batch), outcomes);
    ASSERT_EQ(shard.Stats().event_state_bytes, shard.CountEventStateBytes()) << "step " << step;
    if (pick(3) == 0) {
      std::vector<HistoryMove> moves;
      shard.CollectHistoryMoves(1 + pick(80), moves);
      const bool written = pick(5) != 0;  // sometimes the write "fails": events stay in RAM
      for (const HistoryMove& m : moves) {
        for (size_t k = 0; k < m.encoded.size() && written; ++k) {
          below[{m.entity, m.first_seq + k}] = m.encoded[k];
        }
      }
      shard.CommitHistoryMoves(moves, written);
      ASSERT_EQ(shard.Stats().event_state_bytes, shard.CountEventStateBytes()) << "step " << step;
    }
    if (pick(3) == 0) {
      std::vector<TileMove> moves;
      shard.CollectTileMoves(1 + pick(80), moves);
      const bool written = pick(5) != 0;  // sometimes the write "fails": tiles stay in RAM
      for (TileMove& m : moves) {
        const std::string old = m.old_id == 0 ? "" : below_tiles.at({m.entity, m.old_id});
        Result<std::string> merged = MergeTiles(m.layouts, old, m.moved, clock.NowMicros());
        ASSERT_TRUE(merged.ok()) << merged.status().message();
        m.blob_bytes = merged->size();
        if (written) below_tiles[{m.entity, m.new_id}] = *merged;
      }
      shard.CommitTileMoves(moves, written);
      ASSERT_EQ(shard.Stats().event_state_bytes, shard.CountEventStateBytes()) << "step " << step;
    }
    clock.Advance(static_cast<Micros>(pick(120)) * kSecond);
    if (step % 50 == 49) {
      clock.Advance(static_cast<Micros>(pick(30)) * kHour);  // most state ages out
      shard.SweepIdleEntities(1 + pick(100));
      ASSERT_EQ(shard.Stats().event_state_bytes, shard.CountEventStateBytes()) << "step " << step;
    }
    if (step == 200) {  // backfilled from retained history
      add(aggregate::Fn::kTopK, ValueType::kString, 0, 5);
      ASSERT_EQ(shard.Stats().event_state_bytes, shard.CountEventStateBytes());
      add_lua(0, kConcat);
      ASSERT_EQ(shard.Stats().event_state_bytes, shard.CountEventStateBytes());
    }
  }
  EXPECT_GT(shard.Stats().event_state_bytes, 0u);
  EXPECT_GT(shard.Stats().events_failed, 0u);  // the failure path was taken
  EXPECT_GT(shard.Stats().history_moved, 0u);
  EXPECT_GT(shard.Stats().tiles_moved, 0u);
}

// An online read needs the tiles below RAM of an entity whose window reaches them, as of the
// blob the entity points at: without them, or with a blob a later move replaced, the read stops
// with kAborted (the engine then asks ColdTilesOf again); with them it answers as from RAM.
TEST(ShardColdTilesTest, AReadWithoutTheCurrentTilesBelowRamIsAborted) {
  constexpr Micros kHour = Micros{3600} * 1'000'000;
  constexpr Micros kDay = 24 * kHour;
  FakeClock clock(Micros{1'700'000'000} * 1'000'000);
  Shard shard(0, {}, clock, 0);
  auto t = std::make_shared<TemplateSpec>();
  t->tiles_ssd_after_micros = 2 * kDay;
  shard.AddTemplate(t);
  auto a = std::make_shared<AggregationSpec>();
  a->spec.fn = aggregate::Fn::kCount;
  a->spec.windows = {kDay, 10 * kDay};
  a->spec.tiles = {kHour, kDay};
  shard.AddAggregation(a);
  auto push = [&] {
    ShardEvent e;
    e.key = "u";
    e.event_time = clock.NowMicros();
    std::vector<EventOutcome> outcomes(1);
    shard.ApplyEvents({&e, 1}, AllIndices(1), outcomes);
    ASSERT_EQ(outcomes[0], EventOutcome::kApplied);
  };
  std::map<uint64_t, std::string> below;
  auto move = [&] {
    std::vector<TileMove> moves;
    shard.CollectTileMoves(10, moves);
    ASSERT_EQ(moves.size(), 1u);
    TileMove& m = moves[0];
    Result<std::string> merged = MergeTiles(m.layouts, m.old_id == 0 ? "" : below.at(m.old_id),
                                            m.moved, clock.NowMicros());
    ASSERT_TRUE(merged.ok());
    m.blob_bytes = merged->size();
    below[m.new_id] = *merged;
    shard.CommitTileMoves(moves, true);
  };
  const std::vector<std::string_view> entities = {"u"};
  std::vector<aggregate::Output> values(1);
  std::vector<Micros> times(1);
  std::vector<uint8_t> found(1);
  const std::vector<AggregationRead> long_read = {{0, 1, values.data(), times.data(), found.data()}};
  const std::vector<AggregationRead> short_read = {{0, 0, values.data(), times.data(), found.data()}};
  auto cold_of = [&] {
    std::vector<ColdTilesRef> refs;
    TileLayouts layouts;
    shard.ColdTilesOf(0, long_read, entities, AllIndices(1), clock.NowMicros(), refs, layouts);
    std::vector<ColdTiles> cold;
    for (const ColdTilesRef& ref : refs) {
      Result<std::shared_ptr<const DecodedTiles>> d = DecodeTiles(layouts, below.at(ref.blob_id));
      EXPECT_TRUE(d.ok());
      cold.push_back({ref, *d});
    }
    return cold;
  };
  auto read = [&](const std::vector<AggregationRead>& reads, const std::vector<ColdTiles>& cold,
                  Status& error) {
    uint64_t budget = 1 << 20;
    error = OkStatus();
    return shard.ReadOnline(0, reads, entities, AllIndices(1), clock.NowMicros(), budget, error,
                            cold);
  };
  for (int day = 0; day < 5; ++day) {
    ASSERT_NO_FATAL_FAILURE(push());
    clock.Advance(kDay);
  }
  ASSERT_NO_FATAL_FAILURE(move());
  Status error;
  EXPECT_FALSE(read(long_read, {}, error));
  EXPECT_EQ(error.code(), StatusCode::kAborted);
  EXPECT_TRUE(read(short_read, {}, error)) << error.message();  // the last day is all in RAM
  std::vector<ColdTiles> first = cold_of();
  ASSERT_EQ(first.size(), 1u);
  ASSERT_TRUE(read(long_read, first, error)) << error.message();
  EXPECT_EQ(values[0], aggregate::Output(Value(int64_t{5})));
  // Two days later another move replaces the blob: the old one no longer answers.
  for (int day = 0; day < 2; ++day) {
    ASSERT_NO_FATAL_FAILURE(push());
    clock.Advance(kDay);
  }
  ASSERT_NO_FATAL_FAILURE(move());
  EXPECT_FALSE(read(long_read, first, error));
  EXPECT_EQ(error.code(), StatusCode::kAborted);
  ASSERT_TRUE(read(long_read, cold_of(), error)) << error.message();
  EXPECT_EQ(values[0], aggregate::Output(Value(int64_t{7})));
  EXPECT_EQ(shard.Stats().tiles_entities_ssd, 1u);
  EXPECT_EQ(shard.Stats().tiles_moved, 2u);
}

}  // namespace
}  // namespace ods::shard

namespace ods::shard {
namespace {

// The TTL sweep visits a bounded number of records per call and resumes where it stopped.
TEST_F(ShardTest, TtlSweepVisitsAtMostItsBudgetAndResumes) {
  std::vector<std::string> keys;
  std::vector<Record> records;
  for (int i = 0; i < 300; ++i) {
    keys.push_back("expiring-" + std::to_string(i));
    records.push_back(Rec(i));
  }
  Put(kWithTtl, keys, records);
  clock_.Advance(kTtl / 2);
  keys.clear();
  records.clear();
  for (int i = 0; i < 200; ++i) {
    keys.push_back("young-" + std::to_string(i));
    records.push_back(Rec(i));
  }
  Put(kWithTtl, keys, records);
  clock_.Advance(kTtl / 2);
  // 50 visits among 500 records, 300 expired, remove ~30 (all 50 expired: odds ~1e-12).
  size_t removed = shard_.SweepExpired(50);
  EXPECT_LT(removed, 50u);
  size_t calls = 1;
  while (removed < 300 && calls < 100) {
    removed += shard_.SweepExpired(50);
    ++calls;
  }
  EXPECT_EQ(removed, 300u);
  EXPECT_LE(calls, 10u);  // one pass: 500 records at 50 a call
  EXPECT_EQ(shard_.Stats().records, 200u);
  EXPECT_EQ(shard_.SweepExpired(10'000), 0u);
  clock_.Advance(kTtl);
  EXPECT_EQ(shard_.SweepExpired(10'000), 200u);
  EXPECT_EQ(shard_.Stats().memory_bytes, 0u);
}

}  // namespace
}  // namespace ods::shard
