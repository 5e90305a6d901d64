// What only the directory store does: segments, recovery at open (torn tails, checksums),
// compaction, the directory lock. The shared contract is in backing_store_test.cc.

#include "ods/tier/directory_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "ods/record/value.h"
#include "support/odsd_process.h"
#include "support/test_util.h"

namespace ods::tier {
namespace {

namespace fs = std::filesystem;
using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;
using ::ods::testing::TempDir;
using record::Record;
using ::testing::HasSubstr;

Record Counter(int64_t n) { return Record{{{"n", n}}, 0, 0}; }
Record Text(const std::string& s) { return Record{{{"s", s}}, 0, 0}; }

class DirectoryStoreTest : public ::testing::Test {
 protected:
  DirectoryStoreOptions Options() const {
    DirectoryStoreOptions o;
    o.dir = dir_.path() + "/backing";
    o.segment_max_bytes = 4 << 10;
    // Crashes are simulated by cutting files, so fsync adds only time here (the contract tests
    // run with the default, sync on).
    o.sync = false;
    return o;
  }

  std::unique_ptr<DirectoryStore> Open() {
    Result<std::unique_ptr<DirectoryStore>> store = DirectoryStore::Open(Options());
    EXPECT_THAT(store, IsOk());
    return store.ok() ? std::move(*store) : nullptr;
  }

  static void Put(DirectoryStore& store, std::string_view key, const Record& r) {
    const BackingPut put{"t", key, &r, 0, 1};
    ASSERT_THAT(store.Put({&put, 1}), IsOk());
  }

  static std::optional<Record> Get(DirectoryStore& store, std::string_view key) {
    Result<std::optional<BackingEntry>> got = store.Get("t", key);
    EXPECT_THAT(got, IsOk());
    if (!got.ok() || !got->has_value()) return std::nullopt;
    return (*got)->record;
  }

  // Every key of table t with its record's "n" field.
  static std::map<std::string, int64_t> Contents(DirectoryStore& store) {
    std::map<std::string, int64_t> out;
    Result<BackingScanPage> page = store.ScanKeys("t", "", BackingStore::kMaxScanLimit);
    EXPECT_THAT(page, IsOk());
    if (!page.ok()) return out;
    for (const std::string& key : page->keys) {
      std::optional<Record> r = Get(store, key);
      EXPECT_TRUE(r.has_value()) << key;
      if (r.has_value()) out[key] = std::get<int64_t>(*r->Find("n"));
    }
    return out;
  }

  std::string NewestSegmentPath(DirectoryStore& store) { return store.Segments().back().path; }

  TempDir dir_;
};

TEST_F(DirectoryStoreTest, ReopenRebuildsIndexFromEverySegment) {
  std::map<std::string, int64_t> want;
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    std::mt19937 rng(3);
    for (int i = 0; i < 2000; ++i) {
      const std::string key = "k" + std::to_string(rng() % 300);
      if (rng() % 5 == 0) {
        const BackingKey k{"t", key};
        ASSERT_THAT(store->Delete({&k, 1}), IsOk());
        want.erase(key);
      } else {
        Put(*store, key, Counter(i));
        want[key] = i;
      }
    }
    EXPECT_GT(store->Segments().size(), 3u);
    EXPECT_EQ(Contents(*store), want);
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Contents(*store), want);
  Result<BackingStats> stats = store->Stats();
  ASSERT_THAT(stats, IsOk());
  EXPECT_EQ(stats->records, want.size());
}

TEST_F(DirectoryStoreTest, TornTailIsCutAtOpenAndWritesContinue) {
  std::string path;
  uint64_t whole_bytes = 0;
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    Put(*store, "a", Counter(1));
    whole_bytes = store->Segments().back().file_bytes;
    Put(*store, "b", Counter(2));
    path = NewestSegmentPath(*store);
  }
  // A crash in the middle of appending b: its entry is cut short.
  fs::resize_file(path, fs::file_size(path) - 3);
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(Contents(*store), (std::map<std::string, int64_t>{{"a", 1}}));
    EXPECT_EQ(fs::file_size(path), whole_bytes);
    Put(*store, "c", Counter(3));
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Contents(*store), (std::map<std::string, int64_t>{{"a", 1}, {"c", 3}}));
}

TEST_F(DirectoryStoreTest, LastEntryFailingItsChecksumIsATornTail) {
  std::string path;
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    Put(*store, "a", Counter(1));
    Put(*store, "b", Counter(2));
    path = NewestSegmentPath(*store);
  }
  // Garbage in the last bytes (the file was extended but the data never landed).
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-1, std::ios::end);
    f.put('\x5a');
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Contents(*store), (std::map<std::string, int64_t>{{"a", 1}}));
}

TEST_F(DirectoryStoreTest, BatchCutShortIsDroppedWhole) {
  std::string path;
  uint64_t before_batch = 0;
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    Put(*store, "a", Counter(1));
    before_batch = store->Segments().back().file_bytes;
    const Record r = Counter(2);
    const BackingPut batch[] = {{"t", "x", &r, 0, 1}, {"t", "y", &r, 0, 1}, {"t", "z", &r, 0, 1}};
    ASSERT_THAT(store->Put(batch), IsOk());
    path = NewestSegmentPath(*store);
  }
  // Keep x and y whole, lose z: the batch must vanish entirely.
  fs::resize_file(path, fs::file_size(path) - 2);
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Contents(*store), (std::map<std::string, int64_t>{{"a", 1}}));
  EXPECT_EQ(fs::file_size(path), before_batch);
}

TEST_F(DirectoryStoreTest, CorruptEntryBeforeTheTailFailsOpenWithDataLossNamingFileAndOffset) {
  std::string path;
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    Put(*store, "a", Counter(1));
    Put(*store, "b", Counter(2));
    path = NewestSegmentPath(*store);
  }
  {
    // First entry starts at offset 8 (after the magic); flip a byte of its body.
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8 + 8 + 3);
    f.put('\x7f');
  }
  Result<std::unique_ptr<DirectoryStore>> store = DirectoryStore::Open(Options());
  ASSERT_THAT(store, StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(store.status().message(), HasSubstr(path));
  EXPECT_THAT(store.status().message(), HasSubstr("offset 8"));
  EXPECT_THAT(store.status().message(), HasSubstr("checksum"));
}

TEST_F(DirectoryStoreTest, CorruptionFoundByGetIsDataLossNamingTableKeyAndFile) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Put(*store, "victim", Text(std::string(200, 'v')));
  const std::string path = NewestSegmentPath(*store);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-5, std::ios::end);
    f.put('\x01');
  }
  Result<std::optional<BackingEntry>> got = store->Get("t", "victim");
  ASSERT_THAT(got, StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(got.status().message(), HasSubstr("table 't' key 'victim'"));
  EXPECT_THAT(got.status().message(), HasSubstr(path));
}

TEST_F(DirectoryStoreTest, CorruptSealedSegmentIsDataLossNotATornTail) {
  std::string first;
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 200; ++i) Put(*store, "k" + std::to_string(i), Text(std::string(50, 'x')));
    ASSERT_GT(store->Segments().size(), 1u);
    first = store->Segments().front().path;
  }
  fs::resize_file(first, fs::file_size(first) - 3);
  Result<std::unique_ptr<DirectoryStore>> store = DirectoryStore::Open(Options());
  ASSERT_THAT(store, StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(store.status().message(), HasSubstr(first));
}

TEST_F(DirectoryStoreTest, CompactionDropsDeadEntriesAndKeepsLiveOnes) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  std::map<std::string, int64_t> want;
  for (int round = 0; round < 20; ++round) {
    for (int k = 0; k < 10; ++k) {
      Put(*store, "k" + std::to_string(k), Counter(round));
      want["k" + std::to_string(k)] = round;
    }
  }
  const BackingKey gone{"t", "k3"};
  ASSERT_THAT(store->Delete({&gone, 1}), IsOk());
  want.erase("k3");
  uint64_t before = 0;
  for (const SegmentInfo& s : store->Segments()) before += s.file_bytes;

  Result<size_t> compacted = store->Compact(0.5);
  ASSERT_THAT(compacted, IsOk());
  EXPECT_GT(*compacted, 0u);
  uint64_t after = 0;
  for (const SegmentInfo& s : store->Segments()) {
    after += s.file_bytes;
    if (!s.active) {
      EXPECT_EQ(s.file_bytes - 8, s.live_bytes) << s.path;  // nothing dead left
    }
  }
  EXPECT_LT(after * 2, before);
  EXPECT_EQ(Contents(*store), want);

  store.reset();
  store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Contents(*store), want);
}

TEST_F(DirectoryStoreTest, CompactionKeepsTheDeleteThatHidesAnOlderSegment) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Put(*store, "old", Counter(1));
  const uint64_t first = store->Segments().front().id;
  ASSERT_THAT(store->CompactSegment(first), IsOk());  // seals it: "old" lives there
  const BackingKey k{"t", "old"};
  ASSERT_THAT(store->Delete({&k, 1}), IsOk());
  const uint64_t second = store->Segments().back().id;
  ASSERT_NE(first, second);
  Put(*store, "other", Counter(2));
  ASSERT_THAT(store->CompactSegment(second), IsOk());

  store.reset();
  store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Contents(*store), (std::map<std::string, int64_t>{{"other", 2}}));

  // Once the older segment is compacted too, nothing of "old" is left anywhere.
  ASSERT_THAT(store->CompactSegment(first), IsOk());
  store.reset();
  store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Contents(*store), (std::map<std::string, int64_t>{{"other", 2}}));
}

TEST_F(DirectoryStoreTest, SegmentWithNothingLiveIsRemovedByCompaction) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Put(*store, "a", Counter(1));
  const SegmentInfo first = store->Segments().front();
  Put(*store, "a", Counter(2));  // same segment: a's first entry is dead
  ASSERT_THAT(store->CompactSegment(first.id), IsOk());
  ASSERT_EQ(store->Segments().size(), 2u);  // the rewritten one and the new active one
  ASSERT_THAT(store->CompactSegment(store->Segments().back().id), IsOk());
  Put(*store, "a", Counter(3));  // now the rewritten first segment holds nothing live
  ASSERT_THAT(store->CompactSegment(first.id), IsOk());
  EXPECT_FALSE(fs::exists(first.path));
  EXPECT_EQ(Contents(*store), (std::map<std::string, int64_t>{{"a", 3}}));
  EXPECT_THAT(store->CompactSegment(first.id), StatusIs(StatusCode::kNotFound));
}

TEST_F(DirectoryStoreTest, LeftoverCompactionFileIsRemovedAtOpen) {
  std::string leftover;
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    Put(*store, "a", Counter(1));
    leftover = store->Segments().front().path + ".compact";
  }
  std::ofstream(leftover) << "half-written compaction";
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(fs::exists(leftover));
  EXPECT_EQ(Contents(*store), (std::map<std::string, int64_t>{{"a", 1}}));
}

TEST_F(DirectoryStoreTest, ValuesAreCompressedOnDisk) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Put(*store, "big", Text(std::string(100'000, 'z')));
  Result<BackingStats> stats = store->Stats();
  ASSERT_THAT(stats, IsOk());
  EXPECT_GT(stats->bytes, 100'000u);
  EXPECT_LT(store->Segments().back().file_bytes, 2'000u);
}

TEST_F(DirectoryStoreTest, SecondOpenOfTheSameDirectoryIsUnavailable) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Result<std::unique_ptr<DirectoryStore>> second = DirectoryStore::Open(Options());
  EXPECT_THAT(second, StatusIs(StatusCode::kUnavailable));
  store.reset();
  EXPECT_THAT(DirectoryStore::Open(Options()), IsOk());
}

TEST_F(DirectoryStoreTest, BadOptionsAreInvalidArgument) {
  DirectoryStoreOptions o = Options();
  o.dir = "";
  EXPECT_THAT(DirectoryStore::Open(o), StatusIs(StatusCode::kInvalidArgument));
  o = Options();
  o.segment_max_bytes = 100;
  EXPECT_THAT(DirectoryStore::Open(o), StatusIs(StatusCode::kInvalidArgument));
  o = Options();
  o.compression_level = 0;
  EXPECT_THAT(DirectoryStore::Open(o), StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace ods::tier
