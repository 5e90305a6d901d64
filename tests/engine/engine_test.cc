#include "ods/engine/engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/hash.h"
#include "support/odsd_process.h"
#include "support/test_util.h"

namespace ods::engine {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;
using record::Record;
using record::Value;
using shard::KeyedRecord;

constexpr Micros kSessionTtl = 60'000'000;

config::Config MakeConfig() {
  config::Config c;
  c.source = "engine_test";
  c.server.shards = 4;
  c.limits.max_key_bytes = 16;
  c.limits.max_record_bytes = 256;
  c.limits.max_batch_size = 8;
  c.storage.ram_max_bytes = 0;
  c.tables.push_back({.name = "profile",
                      .key_field = "user_id",
                      .fields = {{"age", ValueType::kInt64}, {"country", ValueType::kString}},
                      .free_form = false,
                      .ttl_micros = 0});
  c.tables.push_back({.name = "features",
                      .key_field = "user_id",
                      .fields = {},
                      .free_form = true,
                      .ttl_micros = 0});
  c.tables.push_back({.name = "session",
                      .key_field = "sid",
                      .fields = {},
                      .free_form = true,
                      .ttl_micros = kSessionTtl});
  return c;
}

Record Profile(int64_t age, std::string country = "NZ") {
  Record r;
  r.fields = {{"age", age}, {"country", std::move(country)}};
  return r;
}

// Records and the KeyedRecord views of them, kept together so the views stay valid.
struct Batch {
  std::vector<std::string> keys;
  std::vector<Record> records;
  std::vector<KeyedRecord> Items() const {
    std::vector<KeyedRecord> items;
    for (size_t i = 0; i < keys.size(); ++i) items.push_back({keys[i], &records[i]});
    return items;
  }
  void Add(std::string key, Record r) {
    keys.push_back(std::move(key));
    records.push_back(std::move(r));
  }
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(MakeConfig()); }

  void Start(const config::Config& c) {
    engine_.reset();
    Result<std::unique_ptr<Engine>> e = Engine::Create(c, clock_);
    ASSERT_THAT(e, IsOk());
    engine_ = std::move(e).value();
  }

  Result<std::vector<uint64_t>> Put(std::string_view table, const Batch& batch) {
    const std::vector<KeyedRecord> items = batch.Items();
    return engine_->Put(table, items);
  }
  Result<std::vector<uint64_t>> Put1(std::string_view table, std::string key, Record r) {
    Batch b;
    b.Add(std::move(key), std::move(r));
    return Put(table, b);
  }

  std::optional<Record> Get1(std::string_view table, std::string_view key,
                             std::vector<std::string_view> fields = {}) {
    std::vector<std::optional<Record>> out;
    const std::string_view keys[] = {key};
    Status s = engine_->Get(table, keys, fields, out);
    EXPECT_THAT(s, IsOk());
    if (!s.ok() || out.size() != 1) return std::nullopt;
    return out[0];
  }

  // Keys of `table` present now, via Get.
  std::vector<std::string> Present(std::string_view table, const std::vector<std::string>& keys) {
    std::vector<std::string> present;
    for (const std::string& k : keys) {
      if (Get1(table, k).has_value()) present.push_back(k);
    }
    return present;
  }

  FakeClock clock_;
  std::unique_ptr<Engine> engine_;
};

// --- Create ------------------------------------------------------------------------------------

TEST_F(EngineTest, CreateFromConfigBuiltInCode) {
  EXPECT_EQ(engine_->config().source, "engine_test");
  EXPECT_EQ(engine_->config().tables.size(), 3u);
  const EngineStats s = engine_->Stats();
  EXPECT_EQ(s.shards, 4u);
  EXPECT_EQ(s.records, 0u);
  EXPECT_EQ(s.memory_bytes, 0u);
}

TEST_F(EngineTest, CreateFromTheEmbeddedDefaultConfig) {
  Result<config::Config> c = config::LoadString(config::EmbeddedDefaultYaml(), "<embedded>");
  ASSERT_THAT(c, IsOk());
  ::ods::testing::TempDir data;  // The shipped config is durable (async): keep its data here.
  c->storage.data_dir = data.path();
  Start(*c);
  EXPECT_EQ(engine_->Stats().shards, 16u);
  EXPECT_THAT(Put1("user_profile", "u1", Profile(30)), IsOk());
  engine_.reset();  // Closes the durable tier before `data` is removed.
}

TEST_F(EngineTest, CreateRejectsZeroShards) {
  config::Config c = MakeConfig();
  c.server.shards = 0;
  EXPECT_THAT(Engine::Create(c, clock_), StatusIs(StatusCode::kInvalidArgument));
}

// --- Put / Get / Delete ------------------------------------------------------------------------

TEST_F(EngineTest, PutThenGetReturnsTheRecord) {
  Record in = Profile(30, "NZ");
  in.event_time_micros = 555;
  Result<std::vector<uint64_t>> v = Put1("profile", "u1", in);
  ASSERT_THAT(v, IsOk());
  ASSERT_EQ(v->size(), 1u);
  std::optional<Record> out = Get1("profile", "u1");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->fields, in.fields);  // already sorted by name: age, country
  EXPECT_EQ(out->event_time_micros, 555);
  EXPECT_EQ(out->version, (*v)[0]);
}

TEST_F(EngineTest, BatchGetAnswersEveryPositionAcrossShards) {
  Batch b;
  for (int i = 0; i < 8; ++i) b.Add("u" + std::to_string(i), Profile(i));
  Result<std::vector<uint64_t>> v = Put("profile", b);
  ASSERT_THAT(v, IsOk());
  ASSERT_EQ(v->size(), 8u);
  for (uint64_t version : *v) EXPECT_GT(version, 0u);

  const std::vector<std::string_view> keys = {"u7", "nope", "u0", "u3", "u7"};
  std::vector<std::optional<Record>> out;
  ASSERT_THAT(engine_->Get("profile", keys, {}, out), IsOk());
  ASSERT_EQ(out.size(), keys.size());
  ASSERT_TRUE(out[0].has_value());
  EXPECT_EQ(*out[0]->Find("age"), Value(int64_t{7}));
  EXPECT_FALSE(out[1].has_value());
  ASSERT_TRUE(out[2].has_value());
  EXPECT_EQ(*out[2]->Find("age"), Value(int64_t{0}));
  ASSERT_TRUE(out[3].has_value());
  EXPECT_EQ(*out[3]->Find("age"), Value(int64_t{3}));
  ASSERT_TRUE(out[4].has_value());
  EXPECT_EQ(*out[4]->Find("age"), Value(int64_t{7}));
}

TEST_F(EngineTest, DeleteRemovesAndReportsWhatWasLive) {
  ASSERT_THAT(Put1("profile", "u1", Profile(1)), IsOk());
  ASSERT_THAT(Put1("profile", "u2", Profile(2)), IsOk());
  const std::vector<std::string_view> keys = {"u1", "ghost"};
  Result<std::vector<uint8_t>> deleted = engine_->Delete("profile", keys);
  ASSERT_THAT(deleted, IsOk());
  EXPECT_EQ(*deleted, (std::vector<uint8_t>{1, 0}));
  EXPECT_FALSE(Get1("profile", "u1").has_value());
  EXPECT_TRUE(Get1("profile", "u2").has_value());
}

TEST_F(EngineTest, SameKeyInDifferentTablesIsIndependent) {
  ASSERT_THAT(Put1("profile", "u1", Profile(1)), IsOk());
  EXPECT_FALSE(Get1("features", "u1").has_value());
}

TEST_F(EngineTest, DuplicateKeyInOneBatchLastWins) {
  Batch b;
  b.Add("u1", Profile(1, "AA"));
  b.Add("u2", Profile(2));
  b.Add("u1", Profile(3, "BB"));
  Result<std::vector<uint64_t>> v = Put("profile", b);
  ASSERT_THAT(v, IsOk());
  ASSERT_EQ(v->size(), 3u);
  EXPECT_LT((*v)[0], (*v)[2]);
  std::optional<Record> out = Get1("profile", "u1");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out->Find("country"), Value(std::string("BB")));
  EXPECT_EQ(out->version, (*v)[2]);
  EXPECT_EQ(engine_->Stats().records, 2u);
}

TEST_F(EngineTest, VersionsOfAKeyStrictlyIncrease) {
  uint64_t last = 0;
  for (int i = 0; i < 5; ++i) {
    Result<std::vector<uint64_t>> v = Put1("profile", "u1", Profile(i));
    ASSERT_THAT(v, IsOk());
    EXPECT_GT((*v)[0], last);
    last = (*v)[0];
  }
}

TEST_F(EngineTest, FreeFormTableAcceptsAnyFields) {
  Record r;
  r.fields = {{"clicks", int64_t{3}}, {"embedding", std::vector<float>{0.5f}}, {"vip", true}};
  ASSERT_THAT(Put1("features", "u1", r), IsOk());
  std::optional<Record> out = Get1("features", "u1");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->fields, r.fields);
}

// --- Projection --------------------------------------------------------------------------------

TEST_F(EngineTest, ProjectionReturnsOnlyTheRequestedFields) {
  ASSERT_THAT(Put1("profile", "u1", Profile(30, "NZ")), IsOk());
  std::optional<Record> out = Get1("profile", "u1", {"country"});
  ASSERT_TRUE(out.has_value());
  ASSERT_EQ(out->fields.size(), 1u);
  EXPECT_EQ(out->fields[0].name, "country");
}

TEST_F(EngineTest, ProjectionOfUndeclaredFieldOnTypedTableIsInvalid) {
  ASSERT_THAT(Put1("profile", "u1", Profile(30)), IsOk());
  std::vector<std::optional<Record>> out;
  const std::string_view keys[] = {"u1"};
  const std::string_view fields[] = {"age", "height"};
  Status s = engine_->Get("profile", keys, fields, out);
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(s.message(), ::testing::HasSubstr("height"));
}

TEST_F(EngineTest, ProjectionOfNeverWrittenFieldOnFreeFormTableIsEmpty) {
  Record r;
  r.fields = {{"clicks", int64_t{3}}};
  ASSERT_THAT(Put1("features", "u1", r), IsOk());
  std::optional<Record> out = Get1("features", "u1", {"never"});
  ASSERT_TRUE(out.has_value());
  EXPECT_TRUE(out->fields.empty());
}

// --- Errors ------------------------------------------------------------------------------------

TEST_F(EngineTest, FreeFormTableStopsAtMaxFieldNamesAndTheRejectedBatchWritesNothing) {
  config::Config c = MakeConfig();
  c.server.shards = 1;
  c.limits.max_record_bytes = 1 << 20;
  Start(c);
  constexpr size_t kPerRecord = 512;
  size_t name = 0;
  for (size_t r = 0; r < shard::Shard::kMaxFieldNames / kPerRecord; ++r) {
    Record rec;
    for (size_t f = 0; f < kPerRecord; ++f)
      rec.fields.push_back({"f" + std::to_string(name++), int64_t{1}});
    ASSERT_THAT(Put1("features", "k" + std::to_string(r), rec), IsOk());
  }
  Record one_more;
  one_more.fields.push_back({"brand_new", int64_t{1}});
  EXPECT_THAT(Put1("features", "over", one_more), StatusIs(StatusCode::kResourceExhausted));
  EXPECT_FALSE(Get1("features", "over").has_value());
  // Known names still work.
  Record known;
  known.fields.push_back({"f0", int64_t{2}});
  EXPECT_THAT(Put1("features", "again", known), IsOk());
}

TEST_F(EngineTest, UnknownTableIsNotFound) {
  const std::string_view keys[] = {"u1"};
  std::vector<std::optional<Record>> out;
  EXPECT_THAT(Put1("nope", "u1", Profile(1)), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(engine_->Get("nope", keys, {}, out), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(engine_->Delete("nope", keys), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(engine_->ScanKeys("nope", "", "", 0), StatusIs(StatusCode::kNotFound));
}

TEST_F(EngineTest, UnknownFieldIsInvalidArgument) {
  Record r = Profile(1);
  r.fields.push_back({"height", int64_t{180}});
  Result<std::vector<uint64_t>> v = Put1("profile", "u1", r);
  EXPECT_THAT(v, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(v.status().message(), ::testing::HasSubstr("height"));
}

TEST_F(EngineTest, WrongFieldTypeIsInvalidArgument) {
  Record r;
  r.fields = {{"age", std::string("thirty")}};
  EXPECT_THAT(Put1("profile", "u1", r), StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(EngineTest, EmptyKeyIsInvalidArgument) {
  const std::string_view keys[] = {""};
  std::vector<std::optional<Record>> out;
  EXPECT_THAT(Put1("profile", "", Profile(1)), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(engine_->Get("profile", keys, {}, out), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(engine_->Delete("profile", keys), StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(EngineTest, KeyOverMaxKeyBytesIsInvalidArgument) {
  const std::string at_limit(16, 'k');
  const std::string over(17, 'k');
  EXPECT_THAT(Put1("profile", at_limit, Profile(1)), IsOk());
  EXPECT_THAT(Put1("profile", over, Profile(1)), StatusIs(StatusCode::kInvalidArgument));
  const std::string_view keys[] = {over};
  std::vector<std::optional<Record>> out;
  EXPECT_THAT(engine_->Get("profile", keys, {}, out), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(engine_->Delete("profile", keys), StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(EngineTest, BatchOverMaxBatchSizeIsInvalidArgument) {
  Batch b;
  for (int i = 0; i < 9; ++i) b.Add("u" + std::to_string(i), Profile(i));
  EXPECT_THAT(Put("profile", b), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(engine_->Stats().records, 0u);
  std::vector<std::string_view> keys(b.keys.begin(), b.keys.end());
  std::vector<std::optional<Record>> out;
  EXPECT_THAT(engine_->Get("profile", keys, {}, out), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(engine_->Delete("profile", keys), StatusIs(StatusCode::kInvalidArgument));
  keys.pop_back();
  EXPECT_THAT(engine_->Get("profile", keys, {}, out), IsOk());
}

TEST_F(EngineTest, RecordOverMaxRecordBytesIsInvalidArgument) {
  EXPECT_THAT(Put1("profile", "u1", Profile(1, std::string(200, 'x'))), IsOk());
  EXPECT_THAT(Put1("profile", "u2", Profile(1, std::string(300, 'x'))),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_FALSE(Get1("profile", "u2").has_value());
}

TEST_F(EngineTest, NanIsInvalidArgument) {
  Record r;
  r.fields = {{"score", std::numeric_limits<double>::quiet_NaN()}};
  EXPECT_THAT(Put1("features", "u1", r), StatusIs(StatusCode::kInvalidArgument));
}

// --- A rejected request changes nothing ---------------------------------------------------------

Batch GoodThenBad(Record bad, std::string bad_key = "zz") {
  Batch b;
  for (int i = 0; i < 7; ++i) b.Add("u" + std::to_string(i), Profile(i));
  b.Add(std::move(bad_key), std::move(bad));
  return b;
}

TEST_F(EngineTest, BatchWithOneSchemaViolationAtTheEndWritesNothing) {
  Record bad;
  bad.fields = {{"age", 1.5}};
  const Batch b = GoodThenBad(bad);
  EXPECT_THAT(Put("profile", b), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_TRUE(Present("profile", b.keys).empty());
  EXPECT_EQ(engine_->Stats().records, 0u);
  EXPECT_EQ(engine_->Stats().puts, 0u);
}

TEST_F(EngineTest, BatchWithOneOverlongKeyAtTheEndWritesNothing) {
  const Batch b = GoodThenBad(Profile(1), std::string(17, 'k'));
  EXPECT_THAT(Put("profile", b), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_TRUE(Present("profile", {b.keys.begin(), b.keys.end() - 1}).empty());
  EXPECT_EQ(engine_->Stats().records, 0u);
}

TEST_F(EngineTest, BatchWithOneOversizedRecordAtTheEndWritesNothing) {
  const Batch b = GoodThenBad(Profile(1, std::string(300, 'x')));
  EXPECT_THAT(Put("profile", b), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_TRUE(Present("profile", b.keys).empty());
  EXPECT_EQ(engine_->Stats().records, 0u);
}

TEST_F(EngineTest, RejectedBatchLeavesExistingRecordsUntouched) {
  ASSERT_THAT(Put1("profile", "u0", Profile(100, "OLD")), IsOk());
  const std::optional<Record> before = Get1("profile", "u0");
  ASSERT_TRUE(before.has_value());
  Record bad;
  bad.fields = {{"bogus", true}};
  EXPECT_THAT(Put("profile", GoodThenBad(bad)), StatusIs(StatusCode::kInvalidArgument));
  const std::optional<Record> after = Get1("profile", "u0");
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->fields, before->fields);
  EXPECT_EQ(after->version, before->version);
}

// --- RAM budget --------------------------------------------------------------------------------

class EngineBudgetTest : public EngineTest {
 protected:
  static constexpr uint64_t kBudget = 8192;
  void SetUp() override {
    config::Config c = MakeConfig();
    c.server.shards = 1;
    c.limits.max_record_bytes = 1024;
    c.storage.ram_max_bytes = kBudget;
    Start(c);
  }
};

TEST_F(EngineBudgetTest, PutOverTheRamBudgetIsResourceExhaustedAndWritesNothing) {
  int accepted = 0;
  Status last;
  for (int i = 0; i < 100; ++i) {
    Result<std::vector<uint64_t>> v =
        Put1("profile", "u" + std::to_string(i), Profile(i, std::string(500, 'x')));
    if (!v.ok()) {
      last = v.status();
      break;
    }
    ++accepted;
  }
  ASSERT_THAT(last, StatusIs(StatusCode::kResourceExhausted));
  ASSERT_GT(accepted, 0);
  const EngineStats at_limit = engine_->Stats();
  EXPECT_EQ(at_limit.records, static_cast<uint64_t>(accepted));
  EXPECT_FALSE(Get1("profile", "u" + std::to_string(accepted)).has_value());

  // Deleting makes room again.
  const std::string first = "u0";
  const std::string_view keys[] = {first};
  ASSERT_THAT(engine_->Delete("profile", keys), IsOk());
  EXPECT_THAT(Put1("profile", "again", Profile(1, std::string(500, 'x'))), IsOk());
}

TEST_F(EngineBudgetTest, BatchThatWouldExceedTheBudgetWritesNothing) {
  Batch b;
  for (int i = 0; i < 8; ++i) b.Add("u" + std::to_string(i), Profile(i, std::string(1000, 'x')));
  EXPECT_THAT(Put("profile", b), StatusIs(StatusCode::kResourceExhausted));
  EXPECT_TRUE(Present("profile", b.keys).empty());
  EXPECT_EQ(engine_->Stats().memory_bytes, 0u);
}

// Small records, where the per-entry overhead dominates: the shard's memory must stay within its
// share however the records fall, not only when the payload estimate happens to be close.
TEST_F(EngineBudgetTest, MemoryNeverExceedsTheBudget) {
  for (int i = 0; i < 10'000; ++i) {
    Record r;
    r.fields = {{"c", int64_t{i}}};
    if (!Put1("features", "k" + std::to_string(i), r).ok()) break;
    ASSERT_LE(engine_->Stats().memory_bytes, kBudget) << "after " << i + 1 << " records";
  }
  EXPECT_GT(engine_->Stats().records, 0u);
}

TEST_F(EngineTest, ZeroRamBudgetIsUnlimited) {
  Batch b;
  for (int i = 0; i < 8; ++i) b.Add("u" + std::to_string(i), Profile(i, std::string(200, 'x')));
  EXPECT_THAT(Put("profile", b), IsOk());
}

// --- ScanKeys ----------------------------------------------------------------------------------

class EngineScanTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    for (int start = 0; start < 40; start += 8) {
      Batch b;
      for (int i = start; i < start + 8; ++i) {
        char key[16];
        std::snprintf(key, sizeof key, "user:%02d", i);
        b.Add(key, Profile(i));
      }
      ASSERT_THAT(Put("profile", b), IsOk());
    }
    ASSERT_THAT(Put1("profile", "item:1", Profile(0)), IsOk());
  }
};

TEST_F(EngineScanTest, ReturnsSortedKeysWithThePrefixFromAllShards) {
  Result<std::vector<std::string>> keys = engine_->ScanKeys("profile", "user:1", "", 8);
  ASSERT_THAT(keys, IsOk());
  std::vector<std::string> expected;  // user:10 .. user:19 exist; the limit keeps the first 8
  for (int i = 10; i < 18; ++i) expected.push_back("user:" + std::to_string(i));
  EXPECT_EQ(*keys, expected);
}

TEST_F(EngineScanTest, LimitZeroMeansMaxBatchSize) {
  Result<std::vector<std::string>> keys = engine_->ScanKeys("profile", "user:", "", 0);
  ASSERT_THAT(keys, IsOk());
  ASSERT_EQ(keys->size(), 8u);
  EXPECT_EQ(keys->front(), "user:00");
  EXPECT_EQ(keys->back(), "user:07");
}

TEST_F(EngineScanTest, LimitOverMaxBatchSizeIsInvalidArgument) {
  EXPECT_THAT(engine_->ScanKeys("profile", "", "", 9), StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(EngineScanTest, OverlongPrefixIsInvalidArgument) {
  EXPECT_THAT(engine_->ScanKeys("profile", std::string(17, 'u'), "", 1),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(engine_->ScanKeys("profile", "", std::string(17, 'u'), 1),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(EngineScanTest, PagingWithStartAfterVisitsEveryKeyOnce) {
  std::vector<std::string> all;
  std::string after;
  for (int page = 0; page < 20; ++page) {
    Result<std::vector<std::string>> keys = engine_->ScanKeys("profile", "", after, 3);
    ASSERT_THAT(keys, IsOk());
    if (keys->empty()) break;
    EXPECT_LE(keys->size(), 3u);
    all.insert(all.end(), keys->begin(), keys->end());
    after = keys->back();
  }
  ASSERT_EQ(all.size(), 41u);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), 41u);
  EXPECT_EQ(all.front(), "item:1");
}

TEST_F(EngineScanTest, DeletedKeysAreNotScanned) {
  const std::string_view keys[] = {"user:11"};
  ASSERT_THAT(engine_->Delete("profile", keys), IsOk());
  Result<std::vector<std::string>> scanned = engine_->ScanKeys("profile", "user:1", "", 0);
  ASSERT_THAT(scanned, IsOk());
  EXPECT_EQ(std::count(scanned->begin(), scanned->end(), "user:11"), 0);
  EXPECT_EQ(scanned->size(), 8u);
}

// --- TTL ---------------------------------------------------------------------------------------

TEST_F(EngineTest, ExpiredRecordsAreHiddenThenSwept) {
  Batch b;
  for (int i = 0; i < 6; ++i) b.Add("s" + std::to_string(i), Profile(i));
  ASSERT_THAT(Put("session", b), IsOk());
  ASSERT_THAT(Put1("features", "forever", Profile(0)), IsOk());
  clock_.Advance(kSessionTtl - 1);
  EXPECT_EQ(Present("session", b.keys).size(), 6u);
  clock_.Advance(1);
  EXPECT_TRUE(Present("session", b.keys).empty());
  Result<std::vector<std::string>> scanned = engine_->ScanKeys("session", "", "", 0);
  ASSERT_THAT(scanned, IsOk());
  EXPECT_TRUE(scanned->empty());

  engine_->SweepExpiredOnce();
  // The background sweeper (real time, same fake clock) may have swept some first; either way
  // all six are gone and counted exactly once.
  const EngineStats s = engine_->Stats();
  EXPECT_EQ(s.records, 1u);
  EXPECT_EQ(s.expired, 6u);
  EXPECT_EQ(engine_->SweepExpiredOnce(), 0u);
  EXPECT_TRUE(Get1("features", "forever").has_value());
}

TEST_F(EngineTest, SweepBeforeExpiryRemovesNothing) {
  ASSERT_THAT(Put1("session", "s1", Profile(1)), IsOk());
  EXPECT_EQ(engine_->SweepExpiredOnce(), 0u);
  EXPECT_EQ(engine_->Stats().records, 1u);
  EXPECT_EQ(engine_->Stats().expired, 0u);
}

// --- Routing -----------------------------------------------------------------------------------

TEST_F(EngineTest, ShardOfIsDeterministicAcrossEngines) {
  Result<std::unique_ptr<Engine>> other = Engine::Create(MakeConfig(), clock_);
  ASSERT_THAT(other, IsOk());
  for (int i = 0; i < 200; ++i) {
    const std::string key = "user:" + std::to_string(i);
    const uint32_t s = engine_->ShardOf("profile", key);
    EXPECT_LT(s, 4u);
    EXPECT_EQ(s, engine_->ShardOf("profile", key));
    EXPECT_EQ(s, (*other)->ShardOf("profile", key));
  }
}

TEST_F(EngineTest, ShardOfSpreadsKeysOverAllShards) {
  int counts[4] = {};
  for (int i = 0; i < 4000; ++i) ++counts[engine_->ShardOf("profile", "user:" + std::to_string(i))];
  for (int s = 0; s < 4; ++s) {
    EXPECT_GT(counts[s], 800) << "shard " << s;
    EXPECT_LT(counts[s], 1200) << "shard " << s;
  }
}

TEST_F(EngineTest, ShardOfDependsOnTheTable) {
  int differ = 0;
  for (int i = 0; i < 100; ++i) {
    const std::string key = "user:" + std::to_string(i);
    differ += engine_->ShardOf("profile", key) != engine_->ShardOf("features", key) ? 1 : 0;
  }
  EXPECT_GT(differ, 50);
}

// Placement is a promise (clients and, later, other nodes route by it): pinned for 16 shards.
TEST_F(EngineTest, ShardOfIsPinned) {
  config::Config c = MakeConfig();
  c.server.shards = 16;
  c.tables.push_back({.name = "user_profile",
                      .key_field = "user_id",
                      .fields = {},
                      .free_form = true,
                      .ttl_micros = 0});
  Start(c);
  EXPECT_EQ(engine_->ShardOf("user_profile", "user:42"), 5u);
  EXPECT_EQ(engine_->ShardOf("user_profile", "user:43"), 9u);
  EXPECT_EQ(engine_->ShardOf("user_profile", "user:44"), 2u);
  EXPECT_EQ(engine_->ShardOf("features", "user:42"), 12u);
}

TEST_F(EngineTest, ShardOfFollowsTheDocumentedFormula) {
  for (int i = 0; i < 100; ++i) {
    const std::string key = "k" + std::to_string(i);
    EXPECT_EQ(engine_->ShardOf("profile", key),
              StableHash64(key, StableHash64("profile", 0x6f6473)) % 4);
  }
}

// --- Stats -------------------------------------------------------------------------------------

TEST_F(EngineTest, StatsSumOverShards) {
  Batch b;
  for (int i = 0; i < 8; ++i) b.Add("u" + std::to_string(i), Profile(i));
  ASSERT_THAT(Put("profile", b), IsOk());
  ASSERT_THAT(Put1("features", "f1", Profile(1)), IsOk());
  const std::vector<std::string_view> get_keys = {"u0", "u1", "u2", "missing"};
  std::vector<std::optional<Record>> out;
  ASSERT_THAT(engine_->Get("profile", get_keys, {}, out), IsOk());
  const std::vector<std::string_view> del_keys = {"u0", "u1", "missing"};
  ASSERT_THAT(engine_->Delete("profile", del_keys), IsOk());

  const EngineStats s = engine_->Stats();
  EXPECT_EQ(s.shards, 4u);
  EXPECT_EQ(s.records, 7u);
  EXPECT_EQ(s.puts, 9u);
  EXPECT_EQ(s.gets, 4u);
  EXPECT_EQ(s.get_hits, 3u);
  EXPECT_EQ(s.deletes, 2u);
  EXPECT_EQ(s.expired, 0u);
  EXPECT_GT(s.memory_bytes, 0u);

  Result<std::vector<std::string>> rest = engine_->ScanKeys("profile", "", "", 0);
  ASSERT_THAT(rest, IsOk());
  std::vector<std::string_view> rest_views(rest->begin(), rest->end());
  ASSERT_THAT(engine_->Delete("profile", rest_views), IsOk());
  const std::string_view f1[] = {"f1"};
  ASSERT_THAT(engine_->Delete("features", f1), IsOk());
  EXPECT_EQ(engine_->Stats().records, 0u);
  EXPECT_EQ(engine_->Stats().memory_bytes, 0u);
}

// --- Concurrency -------------------------------------------------------------------------------

TEST_F(EngineTest, ConcurrentWritersOfDisjointKeysLoseNothing) {
  constexpr int kPerThread = 500;
  auto writer = [&](char tag) {
    for (int i = 0; i < kPerThread; ++i) {
      const std::string key = std::string(1, tag) + std::to_string(i);
      ASSERT_THAT(Put1("profile", key, Profile(i)), IsOk());
      std::optional<Record> out = Get1("profile", key);
      ASSERT_TRUE(out.has_value());
      ASSERT_EQ(*out->Find("age"), Value(int64_t{i}));
    }
  };
  std::thread a(writer, 'a');
  std::thread b(writer, 'b');
  a.join();
  b.join();
  EXPECT_EQ(engine_->Stats().records, 2u * kPerThread);
}

}  // namespace
}  // namespace ods::engine
