// Durability of records (issue #6 point 1) through the Engine: a real RocksDB tier under a temp
// data dir; "restart" = destroy the engine and create another on the same dir. Only the clock is
// fake. The crash (kill -9) tests against a real odsd are in tests/server/durability_test.cc.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/value_type.h"
#include "ods/engine/engine.h"
#include "support/odsd_process.h"
#include "support/test_util.h"

namespace ods::engine {
namespace {

using config::Durability;
using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;
using ::ods::testing::TempDir;
using record::Record;
using record::Value;
using shard::KeyedRecord;

constexpr Micros kTtl = 60'000'000;

class DurabilityTest : public ::testing::Test {
 protected:
  // Tables: `synced` (sync), `lazy` (async), `ram` (none), `session` (global mode, with a TTL).
  config::Config MakeConfig(Durability global = Durability::kAsync) const {
    config::Config c;
    c.source = "durability_test";
    c.server.shards = 4;
    c.storage.data_dir = data_.path();
    c.storage.durability = global;
    c.storage.ram_max_bytes = 0;
    c.tables.push_back(Table("synced", Durability::kSync));
    c.tables.push_back(Table("lazy", Durability::kAsync));
    c.tables.push_back(Table("ram", Durability::kNone));
    c.tables.push_back(Table("session", std::nullopt, kTtl));
    return c;
  }
  static config::TableConfig Table(std::string name, std::optional<Durability> durability,
                                   Micros ttl = 0) {
    config::TableConfig t;
    t.name = std::move(name);
    t.key_field = "id";
    t.ttl_micros = ttl;
    t.durability = durability;
    return t;
  }

  void Start(const config::Config& c) {
    engine_.reset();
    Result<std::unique_ptr<Engine>> e = Engine::Create(c, clock_);
    ASSERT_THAT(e, IsOk());
    engine_ = std::move(e).value();
  }
  void Restart() { Start(MakeConfig()); }

  Result<std::vector<uint64_t>> Put1(std::string_view table, std::string_view key, int64_t x,
                                     Micros event_time = 0) {
    Record r;
    r.fields = {{"x", x}, {"note", std::string("n") + std::to_string(x)}};
    r.event_time_micros = event_time;
    const KeyedRecord items[] = {{key, &r}};
    return engine_->Put(table, items);
  }
  std::optional<Record> Get1(std::string_view table, std::string_view key) {
    std::vector<std::optional<Record>> out;
    const std::string_view keys[] = {key};
    EXPECT_THAT(engine_->Get(table, keys, {}, out), IsOk());
    return out.empty() ? std::nullopt : out[0];
  }

  TempDir data_;
  FakeClock clock_;
  std::unique_ptr<Engine> engine_;  // Last: closed before data_ is removed.
};

TEST_F(DurabilityTest, SyncAndAsyncRecordsSurviveARestartWithVersionAndEventTime) {
  Start(MakeConfig());
  Result<std::vector<uint64_t>> v1 = Put1("synced", "a", 1, /*event_time=*/111);
  Result<std::vector<uint64_t>> v2 = Put1("lazy", "b", 2, /*event_time=*/-5);
  ASSERT_THAT(v1, IsOk());
  ASSERT_THAT(v2, IsOk());
  Restart();
  EXPECT_EQ(engine_->Stats().recovered_records, 2u);
  std::optional<Record> a = Get1("synced", "a");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(*a->Find("x"), Value(int64_t{1}));
  EXPECT_EQ(*a->Find("note"), Value(std::string("n1")));
  EXPECT_EQ(a->event_time_micros, 111);
  EXPECT_EQ(a->version, (*v1)[0]);
  std::optional<Record> b = Get1("lazy", "b");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->event_time_micros, -5);
  EXPECT_EQ(b->version, (*v2)[0]);
}

TEST_F(DurabilityTest, VersionsKeepIncreasingAcrossARestart) {
  Start(MakeConfig());
  uint64_t last = 0;
  for (int i = 0; i < 3; ++i) {
    Result<std::vector<uint64_t>> v = Put1("synced", "k", i);
    ASSERT_THAT(v, IsOk());
    last = (*v)[0];
  }
  Restart();
  Result<std::vector<uint64_t>> after = Put1("synced", "k", 9);
  ASSERT_THAT(after, IsOk());
  EXPECT_GT((*after)[0], last);
}

TEST_F(DurabilityTest, DeletesAndOverwritesAreDurable) {
  Start(MakeConfig());
  ASSERT_THAT(Put1("synced", "gone", 1), IsOk());
  ASSERT_THAT(Put1("lazy", "changed", 1), IsOk());
  ASSERT_THAT(Put1("lazy", "changed", 2), IsOk());
  const std::string_view keys[] = {"gone", "never"};
  Result<std::vector<uint8_t>> deleted = engine_->Delete("synced", keys);
  ASSERT_THAT(deleted, IsOk());
  EXPECT_EQ((*deleted)[0], 1);
  EXPECT_EQ((*deleted)[1], 0);
  Restart();
  EXPECT_FALSE(Get1("synced", "gone").has_value());
  std::optional<Record> changed = Get1("lazy", "changed");
  ASSERT_TRUE(changed.has_value());
  EXPECT_EQ(*changed->Find("x"), Value(int64_t{2}));
}

TEST_F(DurabilityTest, NoneTablesAreNotWrittenAndStartEmpty) {
  Start(MakeConfig());
  ASSERT_THAT(Put1("ram", "r", 1), IsOk());
  EXPECT_TRUE(Get1("ram", "r").has_value());
  Restart();
  EXPECT_FALSE(Get1("ram", "r").has_value());
  EXPECT_EQ(engine_->Stats().recovered_records, 0u);
}

TEST_F(DurabilityTest, AllNoneOpensNoTierAndCreatesNoFiles) {
  config::Config c = MakeConfig(Durability::kNone);
  c.tables.erase(c.tables.begin(), c.tables.begin() + 2);  // leaves `ram` and `session`
  Start(c);
  ASSERT_THAT(Put1("session", "s", 1), IsOk());
  EXPECT_EQ(engine_->Stats().durable_batches, 0u);
  EXPECT_FALSE(std::filesystem::exists(data_.path() + "/records"));
}

TEST_F(DurabilityTest, RecoveryKeepsTheOriginalExpiryAndDropsExpiredRecords) {
  Start(MakeConfig());  // `session` is async (the global mode) with a 60 s TTL
  ASSERT_THAT(Put1("session", "early", 1), IsOk());
  clock_.Advance(kTtl / 2);
  ASSERT_THAT(Put1("session", "late", 2), IsOk());
  Restart();  // at ttl/2: both live
  EXPECT_EQ(engine_->Stats().recovered_records, 2u);
  EXPECT_TRUE(Get1("session", "early").has_value());
  clock_.Advance(kTtl / 2);  // `early` expires now: its expiry came back from disk, not now+ttl
  EXPECT_FALSE(Get1("session", "early").has_value());
  EXPECT_TRUE(Get1("session", "late").has_value());
  Restart();  // `early` is expired: not loaded, and removed from the tier
  EXPECT_EQ(engine_->Stats().recovered_records, 1u);
  EXPECT_FALSE(Get1("session", "early").has_value());
  EXPECT_TRUE(Get1("session", "late").has_value());
}

TEST_F(DurabilityTest, TheTtlSweepRemovesExpiredRecordsFromTheTierToo) {
  Start(MakeConfig());  // `session`: async, 60 s TTL
  const Micros start = clock_.NowMicros();
  ASSERT_THAT(Put1("session", "s1", 1), IsOk());
  ASSERT_THAT(Put1("session", "s2", 2), IsOk());
  clock_.Advance(kTtl);
  EXPECT_EQ(engine_->SweepExpiredOnce(), 2u);
  // Back before the expiry: had the tier kept its copies, recovery would serve them again.
  clock_.Set(start);
  Restart();
  EXPECT_EQ(engine_->Stats().recovered_records, 0u);
  EXPECT_FALSE(Get1("session", "s1").has_value());
}

TEST_F(DurabilityTest, RecordsThatNoLongerFitTheSchemaAreNotServed) {
  Start(MakeConfig());
  ASSERT_THAT(Put1("lazy", "has-note", 1), IsOk());  // fields x and note
  config::Config typed = MakeConfig();
  typed.tables[1].free_form = false;
  typed.tables[1].fields = {{"x", ValueType::kInt64}};  // `note` is no longer a field
  Start(typed);
  EXPECT_EQ(engine_->Stats().recovered_records, 0u);
  EXPECT_FALSE(Get1("lazy", "has-note").has_value());
}

TEST_F(DurabilityTest, ASecondEngineOnTheSameDataDirIsUnavailable) {
  Start(MakeConfig());
  Result<std::unique_ptr<Engine>> second = Engine::Create(MakeConfig(), clock_);
  EXPECT_THAT(second, StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(second.status().message(), ::testing::HasSubstr(data_.path()));
}

TEST_F(DurabilityTest, ADataDirThatIsAFileIsUnavailable) {
  config::Config c = MakeConfig();
  c.storage.data_dir = data_.path() + "/file";
  std::FILE* f = std::fopen(c.storage.data_dir.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  EXPECT_THAT(Engine::Create(c, clock_), StatusIs(StatusCode::kUnavailable));
}

TEST_F(DurabilityTest, ConcurrentSyncPutsShareFsyncs) {
  Start(MakeConfig());
  constexpr int kWriters = 8;
  constexpr int kPutsEach = 30;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kPutsEach; ++i) {
        if (!Put1("synced", "w" + std::to_string(w) + "k" + std::to_string(i), i).ok()) {
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const EngineStats s = engine_->Stats();
  EXPECT_EQ(s.durable_batches, uint64_t{kWriters * kPutsEach});
  EXPECT_LT(s.durable_syncs, s.durable_batches);
  std::printf("sync puts: %llu acknowledged with %llu fsyncs\n",
              static_cast<unsigned long long>(s.durable_batches),
              static_cast<unsigned long long>(s.durable_syncs));
  Restart();
  EXPECT_EQ(engine_->Stats().recovered_records, uint64_t{kWriters * kPutsEach});
}

TEST_F(DurabilityTest, ARejectedPutWritesNothingToTheTier) {
  Start(MakeConfig());
  Record bad;
  bad.fields = {{"x", int64_t{1}}};
  const KeyedRecord items[] = {{"ok", &bad}, {"", &bad}};  // the empty key fails validation
  EXPECT_THAT(engine_->Put("synced", items), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(engine_->Stats().durable_batches, 0u);
  Restart();
  EXPECT_FALSE(Get1("synced", "ok").has_value());
}

}  // namespace
}  // namespace ods::engine
