#include "ods/tier/rocksdb_tier.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ods/record/value.h"
#include "support/odsd_process.h"
#include "support/test_util.h"

namespace ods::tier {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;
using ::ods::testing::TempDir;
using ::ods::testing::WaitUntil;
using record::Bytes;
using record::Field;
using record::Record;
using record::Timestamp;

struct Loaded {
  Record record;
  Micros expire_at = 0;
};
using LoadedMap = std::map<std::pair<std::string, std::string>, Loaded>;

LoadedMap LoadAll(const RocksDbTier& tier) {
  LoadedMap out;
  EXPECT_THAT(tier.ForEach([&](const StoredRecord& r) {
    out[{std::string(r.table), std::string(r.key)}] = {*r.record, r.expire_at_micros};
  }),
              IsOk());
  return out;
}

std::unique_ptr<RocksDbTier> OpenOrDie(const std::string& dir, Micros interval = 0) {
  Result<std::unique_ptr<RocksDbTier>> tier = RocksDbTier::Open({dir, interval});
  EXPECT_THAT(tier, IsOk());
  return tier.ok() ? std::move(*tier) : nullptr;
}

Record EveryType() {
  Record r;
  r.fields = {{"b", true},
              {"bytes", Bytes{"\x00\xff"}},
              {"d", 2.5},
              {"i", int64_t{-7}},
              {"s", std::string("hello")},
              {"ts", Timestamp{1'700'000'000'000'000}},
              {"v", std::vector<float>{1.0f, -2.0f}}};
  r.event_time_micros = -12345;
  return r;
}

// Retained events below RAM: per (template, entity), by seq; range deletes; never seen by
// ForEach (recovery of records); cleared when the tier opens again.
TEST(RocksDbTierTest, EventsAreReadByRangeDeletedByRangeAndClearedAtOpen) {
  TempDir dir;
  auto events_of = [](const RocksDbTier& tier, uint32_t template_id, std::string_view entity,
                      uint64_t first, uint64_t last) {
    std::vector<std::pair<uint64_t, std::string>> out;
    EXPECT_THAT(tier.ReadEvents(template_id, entity, first, last,
                                [&](uint64_t seq, std::string_view bytes) {
                                  out.emplace_back(seq, std::string(bytes));
                                }),
                IsOk());
    return out;
  };
  using Events = std::vector<std::pair<uint64_t, std::string>>;
  {
    std::unique_ptr<RocksDbTier> tier = OpenOrDie(dir.path());
    WriteBatch records;
    records.Put("t", "k", EveryType(), 0, 1);
    ASSERT_THAT(tier->Write(records), IsOk());
    WriteBatch events;
    // "u" and "u1": one entity key a prefix of another stays apart; seqs beyond 255 sort right.
    for (uint64_t seq : {1, 2, 300, 301}) events.PutEvent(0, "u", seq, "e" + std::to_string(seq));
    events.PutEvent(0, "u1", 5, "other entity");
    events.PutEvent(1, "u", 7, "other template");
    ASSERT_THAT(tier->WriteEvents(events), IsOk());
    EXPECT_EQ(events_of(*tier, 0, "u", 0, UINT64_MAX),
              (Events{{1, "e1"}, {2, "e2"}, {300, "e300"}, {301, "e301"}}));
    EXPECT_EQ(events_of(*tier, 0, "u", 2, 300), (Events{{2, "e2"}, {300, "e300"}}));
    EXPECT_EQ(events_of(*tier, 1, "u", 0, 100), (Events{{7, "other template"}}));
    WriteBatch garbage;
    garbage.DeleteEvents(0, "u", 300);  // seqs below 300
    ASSERT_THAT(tier->WriteEvents(garbage), IsOk());
    EXPECT_EQ(events_of(*tier, 0, "u", 0, UINT64_MAX), (Events{{300, "e300"}, {301, "e301"}}));
    EXPECT_EQ(events_of(*tier, 0, "u1", 0, UINT64_MAX), (Events{{5, "other entity"}}));
    EXPECT_EQ(LoadAll(*tier).size(), 1u);  // the record only
  }
  std::unique_ptr<RocksDbTier> tier = OpenOrDie(dir.path());
  EXPECT_TRUE(events_of(*tier, 0, "u", 0, UINT64_MAX).empty());
  EXPECT_TRUE(events_of(*tier, 1, "u", 0, UINT64_MAX).empty());
  EXPECT_EQ(LoadAll(*tier).size(), 1u);  // records stay
}

// Tiles blobs below RAM: by (template, entity, blob id); apart from events (an event range
// deletion of the same template and entity leaves them); cleared when the tier opens again.
TEST(RocksDbTierTest, TilesAreReadByIdApartFromEventsAndClearedAtOpen) {
  TempDir dir;
  using Blob = std::optional<std::string>;
  auto tiles_of = [](const RocksDbTier& tier, uint32_t template_id, std::string_view entity,
                     uint64_t id) {
    Result<Blob> blob = tier.ReadTiles(template_id, entity, id);
    EXPECT_THAT(blob, IsOk());
    return blob.ok() ? *blob : Blob("read failed");
  };
  {
    std::unique_ptr<RocksDbTier> tier = OpenOrDie(dir.path());
    WriteBatch batch;
    batch.PutTiles(0, "u", 3, std::string("tiles\0of u", 11));
    batch.PutTiles(0, "u1", 3, "tiles of u1");
    batch.PutTiles(1, "u", 3, "other template");
    batch.PutEvent(0, "u", 3, "an event");
    ASSERT_THAT(tier->WriteEvents(batch), IsOk());
    EXPECT_EQ(tiles_of(*tier, 0, "u", 3), Blob(std::string("tiles\0of u", 11)));
    EXPECT_EQ(tiles_of(*tier, 0, "u1", 3), Blob("tiles of u1"));
    EXPECT_EQ(tiles_of(*tier, 1, "u", 3), Blob("other template"));
    EXPECT_EQ(tiles_of(*tier, 0, "u", 4), std::nullopt);
    WriteBatch garbage;
    garbage.DeleteEvents(0, "u", UINT64_MAX);
    garbage.DeleteTiles(0, "u1", 3);
    ASSERT_THAT(tier->WriteEvents(garbage), IsOk());
    EXPECT_EQ(tiles_of(*tier, 0, "u", 3), Blob(std::string("tiles\0of u", 11)));
    EXPECT_EQ(tiles_of(*tier, 0, "u1", 3), std::nullopt);
    EXPECT_TRUE(LoadAll(*tier).empty());  // recovery of records never sees them
  }
  std::unique_ptr<RocksDbTier> tier = OpenOrDie(dir.path());
  EXPECT_EQ(tiles_of(*tier, 0, "u", 3), std::nullopt);
  EXPECT_EQ(tiles_of(*tier, 1, "u", 3), std::nullopt);
}

TEST(RocksDbTierTest, RecordsSurviveReopenWithVersionExpiryAndEventTime) {
  TempDir dir;
  {
    auto tier = OpenOrDie(dir.path());
    ASSERT_NE(tier, nullptr);
    WriteBatch batch;
    batch.Put("users", "u1", EveryType(), /*expire_at_micros=*/987654321, /*version=*/42);
    batch.Put("orders", "o1", Record{{{"n", int64_t{1}}}, 5, 0}, 0, 43);
    Result<uint64_t> ticket = tier->Write(batch);
    ASSERT_THAT(ticket, IsOk());
    ASSERT_THAT(tier->WaitDurable(*ticket), IsOk());
  }
  auto tier = OpenOrDie(dir.path());
  ASSERT_NE(tier, nullptr);
  LoadedMap all = LoadAll(*tier);
  ASSERT_EQ(all.size(), 2u);
  const Loaded& u1 = all[{"users", "u1"}];
  Record expected = EveryType();
  expected.version = 42;
  EXPECT_EQ(u1.record.fields, expected.fields);
  EXPECT_EQ(u1.record.event_time_micros, -12345);
  EXPECT_EQ(u1.record.version, 42u);
  EXPECT_EQ(u1.expire_at, 987654321);
  const Loaded& o1 = all[{"orders", "o1"}];
  EXPECT_EQ(o1.record.version, 43u);
  EXPECT_EQ(o1.expire_at, 0);
  EXPECT_EQ(o1.record.event_time_micros, 5);
}

TEST(RocksDbTierTest, DeleteRemovesTheRecordAndTheLaterEntryOfABatchWins) {
  TempDir dir;
  auto tier = OpenOrDie(dir.path());
  ASSERT_NE(tier, nullptr);
  WriteBatch first;
  first.Put("t", "gone", Record{{{"x", int64_t{1}}}, 0, 0}, 0, 1);
  first.Put("t", "kept", Record{{{"x", int64_t{1}}}, 0, 0}, 0, 2);
  first.Put("t", "kept", Record{{{"x", int64_t{2}}}, 0, 0}, 0, 3);
  ASSERT_THAT(tier->Write(first), IsOk());
  WriteBatch second;
  second.Delete("t", "gone");
  second.Delete("t", "never-there");
  EXPECT_EQ(second.size(), 2u);
  ASSERT_THAT(tier->Write(second), IsOk());
  LoadedMap all = LoadAll(*tier);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all.begin()->first.second, "kept");
  EXPECT_EQ(all.begin()->second.record.version, 3u);
  EXPECT_EQ(*all.begin()->second.record.Find("x"), record::Value(int64_t{2}));
}

TEST(RocksDbTierTest, TablesWithAPrefixNameStaySeparate) {
  TempDir dir;
  auto tier = OpenOrDie(dir.path());
  ASSERT_NE(tier, nullptr);
  WriteBatch batch;
  batch.Put("ab", "c", Record{{{"x", int64_t{1}}}, 0, 0}, 0, 1);
  batch.Put("a", "bc", Record{{{"x", int64_t{2}}}, 0, 0}, 0, 2);
  ASSERT_THAT(tier->Write(batch), IsOk());
  LoadedMap all = LoadAll(*tier);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[std::make_pair(std::string("ab"), std::string("c"))].record.version, 1u);
  EXPECT_EQ(all[std::make_pair(std::string("a"), std::string("bc"))].record.version, 2u);
}

TEST(RocksDbTierTest, SecondOpenOfTheSameDirectoryIsUnavailable) {
  TempDir dir;
  auto first = OpenOrDie(dir.path());
  ASSERT_NE(first, nullptr);
  Result<std::unique_ptr<RocksDbTier>> second = RocksDbTier::Open({dir.path(), 0});
  EXPECT_THAT(second, StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(second.status().message(), ::testing::HasSubstr("another odsd"));
}

TEST(RocksDbTierTest, OpenOnAFileIsUnavailable) {
  TempDir dir;
  const std::string file = dir.path() + "/not-a-dir";
  std::ofstream(file) << "x";
  EXPECT_THAT(RocksDbTier::Open({file, 0}), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(RocksDbTier::Open({"", 0}), StatusIs(StatusCode::kInvalidArgument));
}

TEST(RocksDbTierTest, ConcurrentSyncWritersShareFsyncs) {
  TempDir dir;
  auto tier = OpenOrDie(dir.path());
  ASSERT_NE(tier, nullptr);
  constexpr int kWriters = 8;
  constexpr int kWritesEach = 40;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kWritesEach; ++i) {
        WriteBatch batch;
        batch.Put("t", "w" + std::to_string(w) + "-" + std::to_string(i),
                  Record{{{"x", int64_t{i}}}, 0, 0}, 0, static_cast<uint64_t>(i + 1));
        Result<uint64_t> ticket = tier->Write(batch);
        if (!ticket.ok() || !tier->WaitDurable(*ticket).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const TierStats stats = tier->Stats();
  EXPECT_EQ(stats.batches_written, uint64_t{kWriters * kWritesEach});
  EXPECT_EQ(stats.synced_batches, stats.batches_written);
  // Group commit: with 8 writers waiting, an fsync covers several batches.
  EXPECT_LT(stats.syncs, stats.batches_written);
  std::printf("group commit: %llu batches acknowledged durable with %llu fsyncs (%.1f per fsync)\n",
              static_cast<unsigned long long>(stats.batches_written),
              static_cast<unsigned long long>(stats.syncs),
              static_cast<double>(stats.batches_written) / static_cast<double>(stats.syncs));
}

TEST(RocksDbTierTest, OnDurableCallsBackOnceFsyncedAndGroupsCallbacks) {
  TempDir dir;
  auto tier = OpenOrDie(dir.path());
  ASSERT_NE(tier, nullptr);
  constexpr int kWrites = 200;
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  for (int i = 0; i < kWrites; ++i) {
    WriteBatch batch;
    batch.Put("t", "k" + std::to_string(i), Record{{{"x", int64_t{i}}}, 0, 0}, 0, 1);
    Result<uint64_t> ticket = tier->Write(batch);
    ASSERT_THAT(ticket, IsOk());
    tier->OnDurable(*ticket, [&](const Status& s) { ++(s.ok() ? ok : failed); });
  }
  EXPECT_TRUE(WaitUntil([&] { return ok.load() == kWrites; }, std::chrono::seconds(10)));
  EXPECT_EQ(failed.load(), 0);
  const TierStats stats = tier->Stats();
  EXPECT_EQ(stats.synced_batches, uint64_t{kWrites});
  // Nobody blocked: the callbacks queued during one fsync were covered by the next.
  EXPECT_LT(stats.syncs, uint64_t{kWrites});
  std::printf("OnDurable: %d writes from one thread acknowledged with %llu fsyncs\n", kWrites,
              static_cast<unsigned long long>(stats.syncs));
}

TEST(RocksDbTierTest, QueuedCallbacksRunBeforeTheTierCloses) {
  TempDir dir;
  auto tier = OpenOrDie(dir.path());
  ASSERT_NE(tier, nullptr);
  std::atomic<int> ok{0};
  for (int i = 0; i < 20; ++i) {
    WriteBatch batch;
    batch.Put("t", "k" + std::to_string(i), Record{{{"x", int64_t{i}}}, 0, 0}, 0, 1);
    Result<uint64_t> ticket = tier->Write(batch);
    ASSERT_THAT(ticket, IsOk());
    tier->OnDurable(*ticket, [&](const Status& s) { ok += s.ok() ? 1 : 0; });
  }
  tier.reset();
  EXPECT_EQ(ok.load(), 20);
}

TEST(RocksDbTierTest, BackgroundSyncerMakesUnwaitedWritesDurable) {
  TempDir dir;
  auto tier = OpenOrDie(dir.path(), /*interval=*/10'000);
  ASSERT_NE(tier, nullptr);
  for (int i = 0; i < 5; ++i) {
    WriteBatch batch;
    batch.Put("t", "k" + std::to_string(i), Record{{{"x", int64_t{i}}}, 0, 0}, 0, 1);
    ASSERT_THAT(tier->Write(batch), IsOk());
  }
  EXPECT_TRUE(
      WaitUntil([&] { return tier->Stats().synced_batches == 5; }, std::chrono::seconds(5)));
  EXPECT_GE(tier->Stats().syncs, 1u);
}

TEST(RocksDbTierTest, CorruptStoredValueIsDataLossNamingTheKey) {
  TempDir dir;
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, dir.path(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    // Key "\x01" "t" "bad": table "t", key "bad"; the value claims 9 field names and has none.
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), std::string("\x01tbad", 5), "\x09").ok());
    ASSERT_TRUE(db->Close().ok());
  }
  auto tier = OpenOrDie(dir.path());
  ASSERT_NE(tier, nullptr);
  const Status s = tier->ForEach([](const StoredRecord&) {});
  EXPECT_THAT(s, StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(s.message(), ::testing::HasSubstr("tbad"));
}

}  // namespace
}  // namespace ods::tier
