// The BackingStore contract (include/ods/tier/backing_store.h), run against every
// implementation: the directory store in a temp dir and the postgres store on a real PostgreSQL
// 15 started by the test (support/postgres_server.h). A postgres that cannot start FAILS the
// tests; nothing is skipped.

#include "ods/tier/backing_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ods/record/value.h"
#include "support/odsd_process.h"
#include "support/postgres_server.h"
#include "support/test_util.h"

namespace ods::tier {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::PostgresServer;
using ::ods::testing::StatusIs;
using ::ods::testing::TempDir;
using record::Bytes;
using record::Record;
using record::Timestamp;
using ::testing::HasSubstr;
using ::testing::Not;

using StoreResult = Result<std::unique_ptr<BackingStore>>;

class DirectoryImpl {
 public:
  std::string Prepare() { return ""; }
  StoreResult Open() { return OpenDirectoryStore({.dir = dir_.path() + "/backing"}); }
  // A store whose directory cannot be created: its parent is a regular file.
  StoreResult OpenUnreachable() {
    std::ofstream(dir_.path() + "/file") << "x";
    return OpenDirectoryStore({.dir = dir_.path() + "/file/backing"});
  }
  // What OpenUnreachable's error must name.
  std::string UnreachableTarget() const { return dir_.path() + "/file/backing"; }

 private:
  TempDir dir_;
};

class PostgresImpl {
 public:
  // Empty, or why the server is not usable (the test then fails with it).
  std::string Prepare() {
    PostgresServer& server = PostgresServer::Shared();
    return server.ok() ? "" : "PostgreSQL test server did not start: " + server.error();
  }
  // Each test gets its own table: tests of one process share the server.
  StoreResult Open() {
    return OpenPostgresStore({.conninfo = PostgresServer::Shared().conninfo(), .table = table_});
  }
  // A socket dir with no server in it, and a password that must not leak into the message.
  StoreResult OpenUnreachable() {
    return OpenPostgresStore({.conninfo = "host=" + empty_.path() +
                                          " port=5432 dbname=ods_test user=ods password=hunter2",
                              .table = table_});
  }
  std::string UnreachableTarget() const { return "host=" + empty_.path(); }

 private:
  static std::string NextTable() {
    static std::atomic<int> n{0};
    return "ods_backing_" + std::to_string(n++);
  }
  std::string table_ = NextTable();
  TempDir empty_;
};

class ImplName {
 public:
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, DirectoryImpl> ? "Directory" : "Postgres";
  }
};

Record EveryType() {
  Record r;
  r.fields = {{"b", true},
              {"bytes", Bytes{std::string("\x00\xff", 2)}},
              {"d", 2.5},
              {"i", int64_t{-7}},
              {"s", std::string("hello")},
              {"ts", Timestamp{1'700'000'000'000'000}},
              {"v", std::vector<float>{1.0f, -2.0f}}};
  r.event_time_micros = -12345;
  return r;
}

Record Counter(int64_t n) { return Record{{{"n", n}}, 0, 0}; }

template <typename Impl>
class BackingStoreContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string error = impl_.Prepare();
    ASSERT_EQ(error, "") << error;
    StoreResult store = impl_.Open();
    ASSERT_THAT(store, IsOk());
    store_ = std::move(*store);
  }

  void Put(std::string_view table, std::string_view key, const Record& r, Micros expire = 0,
           uint64_t version = 1) {
    const BackingPut put{table, key, &r, expire, version};
    ASSERT_THAT(store_->Put({&put, 1}), IsOk());
  }

  std::optional<BackingEntry> Get(std::string_view table, std::string_view key) {
    Result<std::optional<BackingEntry>> got = store_->Get(table, key);
    EXPECT_THAT(got, IsOk());
    return got.ok() ? std::move(*got) : std::nullopt;
  }

  // Every key of `table`, read in pages of `page`.
  std::vector<std::string> ScanAll(std::string_view table, size_t page, int* pages = nullptr) {
    std::vector<std::string> keys;
    std::string after;
    for (int n = 1; n < 1000; ++n) {
      Result<BackingScanPage> p = store_->ScanKeys(table, after, page);
      EXPECT_THAT(p, IsOk());
      if (!p.ok()) break;
      EXPECT_LE(p->keys.size(), page);
      keys.insert(keys.end(), p->keys.begin(), p->keys.end());
      if (pages != nullptr) *pages = n;
      if (!p->more) break;
      after = p->next_start_after;
    }
    return keys;
  }

  Impl impl_;
  std::unique_ptr<BackingStore> store_;
};

using Implementations = ::testing::Types<DirectoryImpl, PostgresImpl>;
TYPED_TEST_SUITE(BackingStoreContractTest, Implementations, ImplName);

TYPED_TEST(BackingStoreContractTest, PutThenGetReturnsFieldsVersionExpiryAndEventTime) {
  this->Put("users", "u1", EveryType(), /*expire=*/1'800'000'000'000'000, /*version=*/42);
  std::optional<BackingEntry> got = this->Get("users", "u1");
  ASSERT_TRUE(got.has_value());
  Record want = EveryType();
  want.version = 42;
  EXPECT_EQ(got->record.fields, want.fields);
  EXPECT_EQ(got->record.event_time_micros, -12345);
  EXPECT_EQ(got->record.version, 42u);
  EXPECT_EQ(got->expire_at_micros, 1'800'000'000'000'000);
}

TYPED_TEST(BackingStoreContractTest, ExpiryZeroMeansNeverAndIsNotInterpreted) {
  this->Put("t", "never", Counter(1), /*expire=*/0);
  this->Put("t", "long_ago", Counter(2), /*expire=*/1);  // expired: still returned
  ASSERT_TRUE(this->Get("t", "never").has_value());
  EXPECT_EQ(this->Get("t", "never")->expire_at_micros, 0);
  ASSERT_TRUE(this->Get("t", "long_ago").has_value());
  EXPECT_EQ(this->Get("t", "long_ago")->expire_at_micros, 1);
}

TYPED_TEST(BackingStoreContractTest, GetOfMissingKeyOrTableReturnsNothing) {
  this->Put("t", "k", Counter(1));
  EXPECT_FALSE(this->Get("t", "other").has_value());
  EXPECT_FALSE(this->Get("no_such_table", "k").has_value());
}

TYPED_TEST(BackingStoreContractTest, PutOverExistingKeyReplacesRecord) {
  this->Put("t", "k", EveryType(), 5, 1);
  this->Put("t", "k", Counter(2), 0, 2);
  std::optional<BackingEntry> got = this->Get("t", "k");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->record.fields, Counter(2).fields);
  EXPECT_EQ(got->record.version, 2u);
  EXPECT_EQ(got->expire_at_micros, 0);
  Result<BackingStats> stats = this->store_->Stats();
  ASSERT_THAT(stats, IsOk());
  EXPECT_EQ(stats->records, 1u);
}

TYPED_TEST(BackingStoreContractTest, LaterEntryOfOneBatchWins) {
  const Record a = Counter(1);
  const Record b = Counter(2);
  const BackingPut batch[] = {{"t", "k", &a, 0, 1}, {"t", "other", &a, 0, 1}, {"t", "k", &b, 0, 2}};
  ASSERT_THAT(this->store_->Put(batch), IsOk());
  std::optional<BackingEntry> got = this->Get("t", "k");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->record.fields, b.fields);
  EXPECT_EQ(got->record.version, 2u);
}

TYPED_TEST(BackingStoreContractTest, DeleteRemovesKeysAndIgnoresMissingOnes) {
  this->Put("t", "a", Counter(1));
  this->Put("t", "b", Counter(2));
  this->Put("u", "a", Counter(3));
  const BackingKey keys[] = {{"t", "a"}, {"t", "missing"}, {"nope", "a"}};
  ASSERT_THAT(this->store_->Delete(keys), IsOk());
  EXPECT_FALSE(this->Get("t", "a").has_value());
  EXPECT_TRUE(this->Get("t", "b").has_value());
  EXPECT_TRUE(this->Get("u", "a").has_value());  // same key, other table
}

TYPED_TEST(BackingStoreContractTest, GetManyAnswersEachKeyAtItsPosition) {
  this->Put("t", "a", Counter(1));
  this->Put("t", "c", Counter(3));
  const std::string_view keys[] = {"c", "b", "a", "c"};
  Result<std::vector<std::optional<BackingEntry>>> got = this->store_->GetMany("t", keys);
  ASSERT_THAT(got, IsOk());
  ASSERT_EQ(got->size(), 4u);
  ASSERT_TRUE((*got)[0].has_value());
  EXPECT_EQ((*got)[0]->record.fields, Counter(3).fields);
  EXPECT_FALSE((*got)[1].has_value());
  ASSERT_TRUE((*got)[2].has_value());
  EXPECT_EQ((*got)[2]->record.fields, Counter(1).fields);
  EXPECT_TRUE((*got)[3].has_value());
}

TYPED_TEST(BackingStoreContractTest, ScanPagesThroughOneTableInByteOrder) {
  std::vector<std::string> want;
  for (int i = 0; i < 25; ++i) want.push_back("k" + std::to_string(100 + i));
  // Byte order, not text order: NUL and 0xff bytes, and a prefix before its extensions.
  want.push_back(std::string("k\0", 2));
  want.push_back("k");
  want.push_back("k\xff");
  want.push_back("A");
  std::vector<BackingPut> batch;
  const Record r = Counter(1);
  for (const std::string& k : want) batch.push_back({"t", k, &r, 0, 1});
  batch.push_back({"t2", "k100", &r, 0, 1});  // another table's keys stay out
  batch.push_back({"s", "zzz", &r, 0, 1});
  ASSERT_THAT(this->store_->Put(batch), IsOk());
  std::sort(want.begin(), want.end());

  int pages = 0;
  EXPECT_EQ(this->ScanAll("t", 10, &pages), want);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(this->ScanAll("t", 1000), want);
  EXPECT_EQ(this->ScanAll("t", 29, &pages), want);
  EXPECT_EQ(pages, 1);  // exactly one full page: `more` is false
}

TYPED_TEST(BackingStoreContractTest, ScanOfEmptyOrUnknownTableReturnsNoKeys) {
  Result<BackingScanPage> page = this->store_->ScanKeys("empty", "", 10);
  ASSERT_THAT(page, IsOk());
  EXPECT_TRUE(page->keys.empty());
  EXPECT_FALSE(page->more);
  this->Put("t", "k", Counter(1));
  const BackingKey k{"t", "k"};
  ASSERT_THAT(this->store_->Delete({&k, 1}), IsOk());
  EXPECT_TRUE(this->ScanAll("t", 10).empty());
}

TYPED_TEST(BackingStoreContractTest, LargeValuesRoundTrip) {
  std::mt19937_64 rng(7);
  std::string noise(4 << 20, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  Record r;
  r.fields = {{"noise", Bytes{noise}}, {"text", std::string(1 << 20, 'x')}};
  this->Put("t", std::string(1000, 'k'), r, 0, 9);
  std::optional<BackingEntry> got = this->Get("t", std::string(1000, 'k'));
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->record.fields == r.fields);
}

TYPED_TEST(BackingStoreContractTest, StatsCountLiveRecordsAndTheirBytes) {
  Result<BackingStats> empty = this->store_->Stats();
  ASSERT_THAT(empty, IsOk());
  EXPECT_EQ(empty->records, 0u);
  EXPECT_EQ(empty->bytes, 0u);
  this->Put("t", "a", Counter(1));
  this->Put("t", "b", Record{{{"s", std::string(1000, 'x')}}, 0, 0});
  Result<BackingStats> two = this->store_->Stats();
  ASSERT_THAT(two, IsOk());
  EXPECT_EQ(two->records, 2u);
  EXPECT_GT(two->bytes, 1000u);
  const BackingKey keys[] = {{"t", "a"}, {"t", "b"}};
  ASSERT_THAT(this->store_->Delete(keys), IsOk());
  Result<BackingStats> none = this->store_->Stats();
  ASSERT_THAT(none, IsOk());
  EXPECT_EQ(none->records, 0u);
  EXPECT_EQ(none->bytes, 0u);
}

TYPED_TEST(BackingStoreContractTest, RecordsSurviveReopen) {
  this->Put("t", "k", EveryType(), 77, 5);
  const BackingKey gone{"t", "gone"};
  this->Put("t", "gone", Counter(1));
  ASSERT_THAT(this->store_->Delete({&gone, 1}), IsOk());
  this->store_.reset();
  StoreResult reopened = this->impl_.Open();
  ASSERT_THAT(reopened, IsOk());
  this->store_ = std::move(*reopened);
  std::optional<BackingEntry> got = this->Get("t", "k");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->record.version, 5u);
  EXPECT_EQ(got->expire_at_micros, 77);
  EXPECT_FALSE(this->Get("t", "gone").has_value());
}

TYPED_TEST(BackingStoreContractTest, BadArgumentsAreRejectedAndChangeNothing) {
  const Record r = Counter(1);
  const BackingPut no_table{"", "k", &r, 0, 1};
  const BackingPut no_key[] = {{"t", "ok", &r, 0, 1}, {"t", "", &r, 0, 1}};
  const BackingPut no_record{"t", "k", nullptr, 0, 1};
  const BackingPut spaced{"a table", "k", &r, 0, 1};
  EXPECT_THAT(this->store_->Put({&no_table, 1}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(this->store_->Put(no_key), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(this->store_->Put({&no_record, 1}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(this->store_->Put({&spaced, 1}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(this->store_->Get("t", std::string(70000, 'k')),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(this->store_->ScanKeys("t", "", 0), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_FALSE(this->Get("t", "ok").has_value());
}

TYPED_TEST(BackingStoreContractTest, UnreachableStoreFailsToOpenWithUnavailableNamingIt) {
  StoreResult bad = this->impl_.OpenUnreachable();
  ASSERT_THAT(bad, StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(bad.status().message(), HasSubstr(this->impl_.UnreachableTarget()));
  EXPECT_THAT(bad.status().message(), Not(HasSubstr("hunter2")));
}

TYPED_TEST(BackingStoreContractTest, ConcurrentWritersAndReadersSeeWholeRecords) {
  constexpr int kThreads = 4;
  constexpr int kKeys = 50;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kKeys; ++i) {
        const std::string key = std::to_string(t) + "/" + std::to_string(i);
        const Record r = Counter(i);
        const BackingPut put{"t", key, &r, 0, 1};
        if (!this->store_->Put({&put, 1}).ok()) ++failures;
        Result<std::optional<BackingEntry>> got = this->store_->Get("t", key);
        if (!got.ok() || !got->has_value() || (*got)->record.fields != r.fields) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(this->ScanAll("t", 64).size(), size_t{kThreads * kKeys});
}

// Stats().bytes is defined on uncompressed stored bytes, so both implementations report the
// same figure for the same records.
TEST(BackingStoreTest, StatsBytesAreTheSameInEveryImplementation) {
  DirectoryImpl directory;
  PostgresImpl postgres;
  const std::string error = postgres.Prepare();
  ASSERT_EQ(error, "") << error;
  StoreResult a = directory.Open();
  StoreResult b = postgres.Open();
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  const Record small = Counter(1);
  const Record big = EveryType();
  const Record text{{{"s", std::string(5000, 'y')}}, 7, 0};
  const std::string long_key(300, 'k');
  const BackingPut batch[] = {
      {"t", "a", &small, 0, 1}, {"t", "b", &big, 99, 2}, {"users", long_key, &text, 0, 3}};
  ASSERT_THAT((*a)->Put(batch), IsOk());
  ASSERT_THAT((*b)->Put(batch), IsOk());
  Result<BackingStats> sa = (*a)->Stats();
  Result<BackingStats> sb = (*b)->Stats();
  ASSERT_THAT(sa, IsOk());
  ASSERT_THAT(sb, IsOk());
  EXPECT_EQ(sa->records, 3u);
  EXPECT_EQ(sb->records, 3u);
  EXPECT_EQ(sa->bytes, sb->bytes);
}

}  // namespace
}  // namespace ods::tier
