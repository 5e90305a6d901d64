// Tiering of records (issue #6 points 3, 4): SLA rules move records RAM -> SSD (RocksDB) ->
// backing store (the directory store, and PostgreSQL in the randomized test), and one read path
// serves them from wherever they are. Real RocksDB and backing stores under a temp dir; only
// the clock is fake. Moves are driven by Engine::SweepTiersOnce and Engine::MoveRecords (the
// background sweeper also runs, which the assertions allow for).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/predicate.h"
#include "ods/engine/engine.h"
#include "support/odsd_process.h"
#include "support/postgres_server.h"
#include "support/test_util.h"

namespace ods::engine {
namespace {

using config::Durability;
using ::ods::testing::IsOk;
using ::ods::testing::IsOkAndHolds;
using ::ods::testing::StatusIs;
using ::ods::testing::TempDir;
using record::Record;
using record::Value;
using shard::KeyedRecord;
using ::testing::HasSubstr;

constexpr Micros kSecond = 1'000'000;
constexpr Micros kHour = 3600 * kSecond;
constexpr Micros kDay = 24 * kHour;

config::TierRuleConfig Rule(StorageTier to, Micros idle_for, Micros age,
                            std::string field = "") {
  config::TierRuleConfig r;
  r.to = to;
  r.idle_for_micros = idle_for;
  r.age_micros = age;
  if (!field.empty()) {
    size_t offset = 0;
    Result<Predicate> p = ParsePredicate(field, offset);
    EXPECT_THAT(p, IsOk());
    if (p.ok()) r.field = *p;
    r.field_text = field;
  }
  return r;
}

class TieringTest : public ::testing::Test {
 protected:
  // Table `t` (async, free-form, TTL `ttl`) with `rules`; a directory backing store.
  config::Config MakeConfig(std::vector<config::TierRuleConfig> rules,
                            config::Promote promote = config::Promote::kOnAccess,
                            uint32_t after_hits = 0, Micros ttl = 0) const {
    config::Config c;
    c.source = "tiering_test";
    c.server.shards = 4;
    c.storage.data_dir = data_.path();
    c.storage.durability = Durability::kAsync;
    c.storage.ram_max_bytes = 0;
    c.storage.backing = config::BackingConfig{};
    config::TableConfig t;
    t.name = "t";
    t.key_field = "id";
    t.ttl_micros = ttl;
    t.tiering = std::move(rules);
    t.promote = promote;
    t.promote_after_hits = after_hits;
    c.tables.push_back(std::move(t));
    return c;
  }

  void Start(const config::Config& c) {
    engine_.reset();
    Result<std::unique_ptr<Engine>> e = Engine::Create(c, clock_);
    ASSERT_THAT(e, IsOk());
    engine_ = std::move(e).value();
  }

  uint64_t Put1(std::string_view key, int64_t x, std::string plan = "free",
                Micros event_time = 0) {
    Record r;
    r.fields = {{"x", x}, {"plan", std::move(plan)}};
    r.event_time_micros = event_time;
    const KeyedRecord items[] = {{key, &r}};
    Result<std::vector<uint64_t>> v = engine_->Put("t", items);
    EXPECT_THAT(v, IsOk());
    return v.ok() ? (*v)[0] : 0;
  }
  std::optional<Record> Get1(std::string_view key) {
    std::vector<std::optional<Record>> out;
    const std::string_view keys[] = {key};
    EXPECT_THAT(engine_->Get("t", keys, {}, out), IsOk());
    return out.empty() ? std::nullopt : out[0];
  }
  int64_t X(std::string_view key) {
    std::optional<Record> r = Get1(key);
    if (!r) return -1;
    const Value* v = r->Find("x");
    return v == nullptr ? -2 : std::get<int64_t>(*v);
  }

  TempDir data_;
  FakeClock clock_;
  std::unique_ptr<Engine> engine_;  // Last: closed before data_ is removed.
};

TEST_F(TieringTest, IdleRecordsMoveToSsdAndComeBackOnRead) {
  Start(MakeConfig({Rule(StorageTier::kSsd, kHour, 0)}));
  const uint64_t v = Put1("a", 1);
  Put1("b", 2);
  engine_->SweepTiersOnce();
  EXPECT_EQ(engine_->Stats().records_ssd, 0u) << "nothing is idle yet";

  clock_.Advance(30 * 60 * kSecond);
  EXPECT_EQ(X("b"), 2);  // b was read: its idle time restarts
  clock_.Advance(40 * 60 * kSecond);
  engine_->SweepTiersOnce();
  EngineStats s = engine_->Stats();
  EXPECT_EQ(s.records_ssd, 1u);  // a only
  EXPECT_EQ(s.records, 2u);

  std::optional<Record> a = Get1("a");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->version, v);
  EXPECT_EQ(*a->Find("plan"), Value(std::string("free")));
  s = engine_->Stats();
  EXPECT_EQ(s.reads_ssd, 1u);
  EXPECT_EQ(s.promotions, 1u);
  EXPECT_EQ(s.records_ssd, 0u);
}

TEST_F(TieringTest, OldRecordsGoToTheBackingStoreAndAreServedFromThere) {
  Start(MakeConfig({Rule(StorageTier::kBacking, 0, 30 * kDay)}));
  Put1("old", 7, "pro", clock_.NowMicros() - 31 * kDay);
  Put1("new", 8, "pro", clock_.NowMicros() - 1 * kDay);
  Put1("unknown_age", 9, "pro");  // no event time: age 0
  engine_->SweepTiersOnce();
  EngineStats s = engine_->Stats();
  EXPECT_EQ(s.records_backing, 1u);
  EXPECT_EQ(s.demotions_backing, 1u);
  EXPECT_EQ(X("old"), 7);
  s = engine_->Stats();
  EXPECT_EQ(s.reads_backing, 1u);
  EXPECT_EQ(s.records_backing, 0u) << "promoted on access";
  EXPECT_EQ(X("new"), 8);
  EXPECT_EQ(X("unknown_age"), 9);
}

TEST_F(TieringTest, FieldPredicatesAndFirstMatchDecide) {
  // Pro records stay in RAM however idle; idle free ones go to SSD.
  Start(MakeConfig({Rule(StorageTier::kRam, 0, 0, "plan == 'pro'"),
                    Rule(StorageTier::kSsd, kHour, 0),
                    }));
  Put1("p", 1, "pro");
  Put1("f", 2, "free");
  Put1("g", 3, "gold");
  clock_.Advance(2 * kHour);
  engine_->SweepTiersOnce();
  EXPECT_EQ(engine_->Stats().records_ssd, 2u);
  const std::string_view keys[] = {"p"};
  EXPECT_THAT(engine_->MoveRecords("t", keys, StorageTier::kRam), IsOkAndHolds(0u));
}

TEST_F(TieringTest, SsdRecordsWhoseFieldsDecideAreReadToDecide) {
  Start(MakeConfig({Rule(StorageTier::kBacking, 0, 0, "x >= 10 and plan in ['free', 'gold']")}));
  Put1("small", 1);
  Put1("big", 10);
  Put1("big_pro", 10, "pro");
  const std::string_view keys[] = {"small", "big", "big_pro"};
  ASSERT_THAT(engine_->MoveRecords("t", keys, StorageTier::kSsd), IsOkAndHolds(3u));
  engine_->SweepTiersOnce();
  EngineStats s = engine_->Stats();
  EXPECT_EQ(s.records_backing, 1u);
  EXPECT_EQ(s.records_ssd, 2u);
  EXPECT_EQ(X("big"), 10);
  EXPECT_EQ(X("small"), 1);
  EXPECT_EQ(X("big_pro"), 10);
}

TEST_F(TieringTest, PromoteNeverServesFromBelowAndAfterHitsCountsReads) {
  Start(MakeConfig({Rule(StorageTier::kSsd, kHour, 0)}, config::Promote::kNever));
  Put1("a", 1);
  const std::string_view keys[] = {"a"};
  ASSERT_THAT(engine_->MoveRecords("t", keys, StorageTier::kSsd), IsOkAndHolds(1u));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(X("a"), 1);
  EXPECT_EQ(engine_->Stats().records_ssd, 1u);
  EXPECT_EQ(engine_->Stats().promotions, 0u);

  engine_.reset();
  Start(MakeConfig({Rule(StorageTier::kSsd, kHour, 0)}, config::Promote::kAfterHits, 3));
  EXPECT_EQ(engine_->Stats().records_ssd, 1u) << "recovered below RAM";
  EXPECT_EQ(X("a"), 1);
  EXPECT_EQ(X("a"), 1);
  EXPECT_EQ(engine_->Stats().records_ssd, 1u);
  EXPECT_EQ(X("a"), 1);
  EXPECT_EQ(engine_->Stats().records_ssd, 0u) << "the third read promotes";
}

TEST_F(TieringTest, WritesDeletesAndScansSeeEveryTier) {
  Start(MakeConfig({Rule(StorageTier::kSsd, kHour, 0)}));
  for (const char* k : {"a", "b", "c", "d"}) Put1(k, 1);
  const std::string_view ssd[] = {"a", "b"};
  const std::string_view backing[] = {"c", "d"};
  ASSERT_THAT(engine_->MoveRecords("t", ssd, StorageTier::kSsd), IsOkAndHolds(2u));
  ASSERT_THAT(engine_->MoveRecords("t", backing, StorageTier::kBacking), IsOkAndHolds(2u));
  EXPECT_THAT(engine_->ScanKeys("t", "", "", 10),
              IsOkAndHolds(::testing::ElementsAre("a", "b", "c", "d")));
  Put1("a", 2);  // overwrite below RAM
  Put1("c", 2);
  const std::string_view gone[] = {"b", "d", "zz"};
  Result<std::vector<uint8_t>> deleted = engine_->Delete("t", gone);
  ASSERT_THAT(deleted, IsOk());
  EXPECT_THAT(*deleted, ::testing::ElementsAre(1, 1, 0));
  EXPECT_EQ(X("a"), 2);
  EXPECT_EQ(X("c"), 2);
  EXPECT_EQ(X("b"), -1);
  EXPECT_EQ(X("d"), -1);
  EXPECT_THAT(engine_->ScanKeys("t", "", "", 10),
              IsOkAndHolds(::testing::ElementsAre("a", "c")));
  // Restart: what is below RAM stays below, the rest too; garbage in the backing store goes.
  engine_->SweepTiersOnce();
  const std::string_view c[] = {"c"};
  ASSERT_THAT(engine_->MoveRecords("t", c, StorageTier::kBacking), IsOkAndHolds(1u));
  Start(MakeConfig({Rule(StorageTier::kSsd, kHour, 0)}));
  EXPECT_EQ(engine_->Stats().records_backing, 1u);
  EXPECT_EQ(X("a"), 2);
  EXPECT_EQ(X("c"), 2);
  EXPECT_EQ(X("b"), -1);
  EXPECT_EQ(X("d"), -1);
}

TEST_F(TieringTest, TtlRemovesRecordsFromEveryTier) {
  Start(MakeConfig({Rule(StorageTier::kSsd, kHour, 0)}, config::Promote::kOnAccess, 0, kDay));
  Put1("ram", 1);
  Put1("ssd", 2);
  Put1("backing", 3);
  const std::string_view ssd[] = {"ssd"};
  const std::string_view backing[] = {"backing"};
  ASSERT_THAT(engine_->MoveRecords("t", ssd, StorageTier::kSsd), IsOkAndHolds(1u));
  ASSERT_THAT(engine_->MoveRecords("t", backing, StorageTier::kBacking), IsOkAndHolds(1u));
  clock_.Advance(kDay + kSecond);
  EXPECT_EQ(X("ssd"), -1) << "expired below RAM reads as absent at once";
  engine_->SweepExpiredOnce();
  engine_->SweepTiersOnce();  // deletes the backing copy
  EngineStats s = engine_->Stats();
  EXPECT_EQ(s.records, 0u);
  EXPECT_EQ(s.records_ssd, 0u);
  EXPECT_EQ(s.records_backing, 0u);
  // Nothing comes back after a restart: the SSD tier and the backing store dropped them too.
  Start(MakeConfig({Rule(StorageTier::kSsd, kHour, 0)}, config::Promote::kOnAccess, 0, kDay));
  EXPECT_EQ(engine_->Stats().recovered_records, 0u);
}

TEST_F(TieringTest, MoveRecordsRejectsWhatCannotMove) {
  Start(MakeConfig({Rule(StorageTier::kSsd, kHour, 0)}));
  const std::string_view keys[] = {"a"};
  EXPECT_THAT(engine_->MoveRecords("nope", keys, StorageTier::kSsd),
              StatusIs(StatusCode::kNotFound));
  const std::string_view bad[] = {""};
  EXPECT_THAT(engine_->MoveRecords("t", bad, StorageTier::kSsd),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(engine_->MoveRecords("t", keys, StorageTier::kSsd), IsOkAndHolds(0u))
      << "absent keys are skipped";
}

TEST_F(TieringTest, ProceduresSeeRecordsBelowRam) {
  Start(MakeConfig({Rule(StorageTier::kSsd, kHour, 0)}));
  FunctionSpec spec;
  spec.name = "read_x";
  spec.kind = FunctionKind::kProcedure;
  spec.source = "function execute(record, args, key) return record and record.x end";
  ASSERT_THAT(engine_->RegisterFunction(spec), IsOk());
  Put1("a", 41);
  const std::string_view keys[] = {"a"};
  ASSERT_THAT(engine_->MoveRecords("t", keys, StorageTier::kBacking), IsOkAndHolds(1u));
  Result<ExecuteReport> report = engine_->Execute("read_x", "t", keys, {});
  ASSERT_THAT(report, IsOk());
  ASSERT_THAT(report->results[0].status, IsOk());
  ASSERT_TRUE(report->results[0].value.has_value());
  EXPECT_EQ(*report->results[0].value, Value(int64_t{41}));
}

// Two tiered tables under a small RAM budget: over 90% of a shard's share, the least recently
// used records of the lower-priority table go to SSD first.
TEST_F(TieringTest, OverTheRamBudgetLeastRecentlyUsedRecordsOfLowPriorityTablesMoveFirst) {
  config::Config c = MakeConfig({Rule(StorageTier::kSsd, 365 * kDay, 0)});
  c.server.shards = 1;
  c.storage.ram_max_bytes = 64 << 10;
  c.tables[0].priority = 10;
  config::TableConfig low = c.tables[0];
  low.name = "low";
  low.priority = 1;
  c.tables.push_back(low);
  Start(c);
  auto put = [&](std::string_view table, std::string_view key) {
    Record r;
    r.fields = {{"x", int64_t{1}}, {"pad", std::string(200, 'p')}};
    const KeyedRecord items[] = {{key, &r}};
    return engine_->Put(table, items).status();
  };
  // Fill to ~70% with `t`, old accesses first.
  int n = 0;
  while (engine_->Stats().memory_bytes < (64u << 10) * 7 / 10) {
    ASSERT_THAT(put("t", "t" + std::to_string(n++)), IsOk());
    clock_.Advance(kSecond);
  }
  // Then `low` past 90%.
  int m = 0;
  while (engine_->Stats().memory_bytes < (64u << 10) * 95 / 100) {
    ASSERT_THAT(put("low", "l" + std::to_string(m++)), IsOk());
    clock_.Advance(kSecond);
  }
  // A quarter of `low` (its oldest) is read now: it is the most recently used. Getting down to
  // 80% takes ~60% of `low`, so the rest of it goes first.
  for (int i = 0; i < m / 4; ++i) {
    const std::string key = "l" + std::to_string(i);
    const std::string_view keys[] = {key};
    std::vector<std::optional<Record>> out;
    ASSERT_THAT(engine_->Get("low", keys, {}, out), IsOk());
  }
  engine_->SweepTiersOnce();
  EXPECT_LE(engine_->Stats().memory_bytes, (64u << 10) * 9 / 10);
  const std::vector<TableTierReport> tiers = engine_->TierStats();
  EXPECT_EQ(tiers[0].records[1], 0u) << "the higher-priority table is untouched";
  EXPECT_GT(tiers[1].records[1], 0u);
  // Demoted: the least recently used of `low`, never one just read.
  for (int i = 0; i < m / 4; ++i) {
    EXPECT_THAT(engine_->TierOf("low", "l" + std::to_string(i)),
                IsOkAndHolds(std::optional<StorageTier>(StorageTier::kRam)))
        << i;
  }
  EXPECT_THAT(engine_->TierOf("low", "l" + std::to_string(m / 4)),
              IsOkAndHolds(std::optional<StorageTier>(StorageTier::kSsd)));
  // Everything is still readable.
  for (int i = 0; i < m; ++i) {
    const std::string key = "l" + std::to_string(i);
    const std::string_view keys[] = {key};
    std::vector<std::optional<Record>> out;
    ASSERT_THAT(engine_->Get("low", keys, {}, out), IsOk());
    EXPECT_TRUE(out[0].has_value()) << key;
  }
}

TEST_F(TieringTest, RecordsPinnedToRamStayOverBudgetAndPutsAreRefusedThen) {
  config::Config c = MakeConfig({Rule(StorageTier::kRam, 0, 0, "plan == 'pro'")});
  c.server.shards = 1;
  c.storage.ram_max_bytes = 16 << 10;
  Start(c);
  Status last;
  int n = 0;
  while (last.ok() && n < 10'000) {
    Record r;
    r.fields = {{"x", int64_t{1}}, {"plan", std::string("pro")}};
    const std::string key = "k" + std::to_string(n++);
    const KeyedRecord items[] = {{key, &r}};
    last = engine_->Put("t", items).status();
  }
  EXPECT_THAT(last, StatusIs(StatusCode::kResourceExhausted, HasSubstr("tiering rules")));
  engine_->SweepTiersOnce();
  EXPECT_EQ(engine_->TierStats()[0].records[1], 0u) << "pinned by the `to: ram` rule";
}

TEST_F(TieringTest, OverTheSsdBudgetLeastRecentlyUsedRecordsMoveToTheBackingStore) {
  config::Config c = MakeConfig({Rule(StorageTier::kSsd, kHour, 0)});
  c.storage.ssd_max_bytes = 2 << 10;
  Start(c);
  for (int i = 0; i < 200; ++i) {
    Put1("k" + std::to_string(i), i);
    clock_.Advance(kSecond);
  }
  clock_.Advance(2 * kHour);
  engine_->SweepTiersOnce();  // all idle: to SSD (~2.7 KiB), then over budget: some to backing
  engine_->SweepTiersOnce();
  const TableTierReport t = engine_->TierStats()[0];
  EXPECT_GT(t.records[2], 0u) << t.records[1] << " on SSD, " << t.bytes[1] << " bytes";
  EXPECT_LE(t.bytes[1], (2u << 10) * 9 / 10);
  EXPECT_THAT(engine_->TierOf("t", "k0"),
              IsOkAndHolds(std::optional<StorageTier>(StorageTier::kBacking)))
      << "the least recently used";
  for (int i = 0; i < 200; ++i) EXPECT_EQ(X("k" + std::to_string(i)), i);
}

TEST_F(TieringTest, ReloadAppliesRulesTtlAndBudgetsAndListsWhatNeedsARestart) {
  config::Config c = MakeConfig({Rule(StorageTier::kSsd, 365 * kDay, 0)});
  Start(c);
  EXPECT_EQ(engine_->SettingsGeneration(), 1u);
  Put1("a", 1);
  clock_.Advance(2 * kHour);
  engine_->SweepTiersOnce();
  EXPECT_EQ(engine_->TierStats()[0].records[1], 0u) << "not idle for a year";

  config::Config next = c;
  next.tables[0].tiering = {Rule(StorageTier::kSsd, kHour, 0)};
  next.tables[0].ttl_micros = kDay;
  next.tables[0].sla_read_p99_micros = 1000;
  next.storage.ram_max_bytes = 1 << 30;
  config::TableConfig extra;
  extra.name = "extra";
  extra.key_field = "id";
  next.tables.push_back(extra);
  Result<ReloadReport> report = engine_->Reload(next);
  ASSERT_THAT(report, IsOk());
  EXPECT_EQ(report->generation, 2u);
  EXPECT_THAT(report->changes,
              ::testing::UnorderedElementsAre(
                  "tables.t.tiering: to ssd when idle_for 365d -> to ssd when idle_for 1h",
                  "tables.t.ttl: 0s -> 1d (for records written from now)",
                  "tables.t.sla.read_p99: 0s -> 1ms", "storage.ram.max_bytes: 0B -> 1GiB"));
  EXPECT_THAT(report->needs_restart, ::testing::ElementsAre("tables.extra (new table)"));
  EXPECT_EQ(engine_->SettingsGeneration(), 2u);
  EXPECT_GT(engine_->ReloadedAtMicros(), 0);
  const TableTierReport t = engine_->TierStats()[0];
  EXPECT_THAT(t.rules, ::testing::ElementsAre("to ssd when idle_for 1h"));
  EXPECT_EQ(t.sla_read_p99_micros, 1000);

  engine_->SweepTiersOnce();
  EXPECT_EQ(engine_->TierStats()[0].records[1], 1u) << "the new rule moved the idle record";
  Put1("b", 2);  // written with the new TTL
  clock_.Advance(kDay + kSecond);
  EXPECT_EQ(X("b"), -1) << "expired by the reloaded TTL";
  EXPECT_EQ(X("a"), 1) << "written before: keeps no expiry";

  // The same config again changes nothing.
  report = engine_->Reload(next);
  ASSERT_THAT(report, IsOk());
  EXPECT_THAT(report->changes, ::testing::IsEmpty());
  EXPECT_EQ(report->generation, 2u);
}

TEST_F(TieringTest, ReloadRefusesRulesForATableThatHadNoneAtStart) {
  config::Config c = MakeConfig({});
  Start(c);
  config::Config next = c;
  next.tables[0].tiering = {Rule(StorageTier::kSsd, kHour, 0)};
  EXPECT_THAT(engine_->Reload(next),
              StatusIs(StatusCode::kFailedPrecondition,
                       HasSubstr("tables.t.tiering: the table had no tiering rules at start")));
  EXPECT_EQ(engine_->SettingsGeneration(), 1u);
}

TEST_F(TieringTest, ReloadRefusesRulesTheRunningEngineCannotServe) {
  config::Config c = MakeConfig({Rule(StorageTier::kRam, 0, 0, "plan == 'pro'")});
  c.tables[0].durability = Durability::kNone;
  c.storage.backing.reset();
  Start(c);
  config::Config next = c;
  next.tables[0].durability = Durability::kAsync;
  next.tables[0].tiering = {Rule(StorageTier::kSsd, kHour, 0)};
  EXPECT_THAT(engine_->Reload(next),
              StatusIs(StatusCode::kFailedPrecondition,
                       HasSubstr("tables.t.tiering: moves records below RAM, but the running "
                                 "table is not durable")));
  EXPECT_EQ(engine_->SettingsGeneration(), 1u);
  EXPECT_THAT(engine_->TierStats()[0].rules,
              ::testing::ElementsAre("to ram when field \"plan == 'pro'\""));
}

TEST_F(TieringTest, TransientRecordsStayInRamAndAreNotPersisted) {
  config::TierRuleConfig transient = Rule(StorageTier::kRam, 0, 0, "plan == 'scratch'");
  transient.transient = true;
  // The idle rule comes first, yet a transient record never leaves RAM.
  const config::Config c = MakeConfig({Rule(StorageTier::kSsd, kHour, 0), transient});
  Start(c);
  Put1("durable", 1, "free");
  Put1("scratch", 2, "scratch");
  Put1("was_durable", 3, "free");
  Put1("was_durable", 4, "scratch");  // now transient: its durable copy goes
  clock_.Advance(2 * kHour);
  engine_->SweepTiersOnce();
  EXPECT_THAT(engine_->TierOf("t", "durable"),
              IsOkAndHolds(std::optional<StorageTier>(StorageTier::kSsd)));
  EXPECT_THAT(engine_->TierOf("t", "scratch"),
              IsOkAndHolds(std::optional<StorageTier>(StorageTier::kRam)));
  const std::string_view keys[] = {"scratch", "was_durable"};
  EXPECT_THAT(engine_->MoveRecords("t", keys, StorageTier::kSsd), IsOkAndHolds(0u))
      << "a transient record cannot go below RAM, even by hand";
  EXPECT_EQ(X("scratch"), 2);
  Start(c);  // restart: transient records are gone, durable ones are back
  EXPECT_EQ(X("durable"), 1);
  EXPECT_EQ(X("scratch"), -1);
  EXPECT_EQ(X("was_durable"), -1);
}

// Random Put/Delete/Get/Scan/GetOnlineFeatures and random moves between tiers, every answer
// checked against a reference map. Parameter: the backing store.
class RandomTieringTest : public TieringTest,
                          public ::testing::WithParamInterface<config::BackingStoreKind> {};

TEST_P(RandomTieringTest, EveryAnswerMatchesAReferenceMap) {
  config::Config c = MakeConfig({Rule(StorageTier::kSsd, 10 * kSecond, 0),
                                 Rule(StorageTier::kBacking, 0, 0, "x > 90")});
  if (GetParam() == config::BackingStoreKind::kPostgres) {
    testing::PostgresServer& pg = testing::PostgresServer::Shared();
    ASSERT_TRUE(pg.ok()) << pg.error();
    c.storage.backing->kind = config::BackingStoreKind::kPostgres;
    c.storage.backing->postgres_conninfo = pg.conninfo();
    c.storage.backing->postgres_table = "tiering_random";
  }
  Start(c);
  std::mt19937 rng(20261202);
  std::map<std::string, int64_t> reference;
  auto key_of = [](int k) { return "k" + std::to_string(k); };
  const int kKeys = 60;
  const int kSteps = GetParam() == config::BackingStoreKind::kPostgres ? 1500 : 3000;
  for (int step = 0; step < kSteps; ++step) {
    const int op = static_cast<int>(rng() % 100);
    const std::string key = key_of(static_cast<int>(rng() % kKeys));
    const std::string_view keys[] = {key};
    if (op < 30) {
      const auto x = static_cast<int64_t>(rng() % 100);
      Put1(key, x);
      reference[key] = x;
    } else if (op < 38) {
      ASSERT_THAT(engine_->Delete("t", keys), IsOk());
      reference.erase(key);
    } else if (op < 48) {
      const auto to = static_cast<StorageTier>(rng() % 3);
      ASSERT_THAT(engine_->MoveRecords("t", keys, to), IsOk()) << step;
    } else if (op < 52) {
      clock_.Advance(static_cast<Micros>(rng() % 20) * kSecond);
      engine_->SweepTiersOnce();
    } else if (op < 55) {
      Result<std::vector<std::string>> scan = engine_->ScanKeys("t", "", "", 100);
      ASSERT_THAT(scan, IsOk());
      std::vector<std::string> want;
      for (const auto& [k, x] : reference) want.push_back(k);
      ASSERT_EQ(*scan, want) << "scan at step " << step;
    } else if (op < 60) {
      const std::string_view entities[] = {key};
      const std::string_view features[] = {"t:x"};
      Result<std::vector<FeatureColumn>> f =
          engine_->GetOnlineFeatures(entities, features, std::nullopt);
      ASSERT_THAT(f, IsOk());
      auto it = reference.find(key);
      const FeatureColumn& col = (*f)[0];
      if (it == reference.end()) {
        EXPECT_NE(col.statuses[0], FeatureStatus::kPresent) << key << " at step " << step;
      } else {
        ASSERT_EQ(col.statuses[0], FeatureStatus::kPresent) << key << " at step " << step;
        EXPECT_EQ(std::get<Value>(col.values[0]), Value(it->second)) << key << " at step " << step;
      }
    } else {
      auto it = reference.find(key);
      EXPECT_EQ(X(key), it == reference.end() ? -1 : it->second) << key << " at step " << step;
    }
  }
  // Every tier was used.
  const EngineStats s = engine_->Stats();
  EXPECT_GT(s.demotions_ssd, 0u);
  EXPECT_GT(s.demotions_backing, 0u);
  EXPECT_GT(s.reads_ssd, 0u);
  EXPECT_GT(s.reads_backing, 0u);
  EXPECT_GT(s.promotions, 0u);
  // And a restart recovers the same answers.
  Start(c);
  for (int k = 0; k < kKeys; ++k) {
    auto it = reference.find(key_of(k));
    EXPECT_EQ(X(key_of(k)), it == reference.end() ? -1 : it->second) << key_of(k);
  }
}

INSTANTIATE_TEST_SUITE_P(Backing, RandomTieringTest,
                         ::testing::Values(config::BackingStoreKind::kDirectory,
                                           config::BackingStoreKind::kPostgres),
                         [](const auto& info) {
                           return info.param == config::BackingStoreKind::kDirectory
                                      ? std::string("Directory")
                                      : std::string("Postgres");
                         });

}  // namespace
}  // namespace ods::engine
