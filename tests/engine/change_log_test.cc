#include "ods/engine/change_log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ods/common/clock.h"
#include "ods/engine/engine.h"
#include "support/test_util.h"

namespace ods::engine {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using record::Field;
using record::Record;
using shard::KeyedRecord;

constexpr Micros kSecond = 1'000'000;
constexpr Micros kHour = 3600 * kSecond;

config::Config MakeConfig(uint64_t retained = 16, uint64_t queue = 16) {
  config::Config c;
  c.source = "change_log_test";
  c.server.shards = 4;
  c.storage.ram_max_bytes = 0;
  c.subscriptions.retained_changes = retained;
  c.subscriptions.queue_size = queue;
  c.subscriptions.max_subscribers = 2;
  c.tables.push_back({.name = "profile",
                      .key_field = "user_id",
                      .fields = {{"age", ValueType::kInt64}},
                      .free_form = false,
                      .ttl_micros = 0});
  c.tables.push_back({.name = "session",
                      .key_field = "sid",
                      .fields = {},
                      .free_form = true,
                      .ttl_micros = 60 * kSecond});
  config::EventTemplateConfig t;
  t.name = "tx";
  t.key_field = "user";
  t.timestamp_field = "ts";
  t.fields = {{"amount", ValueType::kDouble}};
  t.allowed_lateness_micros = kHour;
  t.max_future_micros = kHour;
  t.history_retention_micros = kHour;
  t.position = "change_log_test:1:1";
  c.definitions.event_templates.push_back(t);
  config::AggregationConfig a;
  a.name = "amount_sum";
  a.template_name = "tx";
  a.fn = "sum";
  a.field = "amount";
  a.windows = {kHour};
  a.position = "change_log_test:1:1";
  c.definitions.aggregations.push_back(a);
  return c;
}

class ChangeLogTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(MakeConfig()); }
  // `recording`: as if a subscriber had come and gone, so writes are published from the start
  // (the log records from the first subscription on).
  void Open(const config::Config& c, bool recording = true) {
    engine_.reset();
    Result<std::unique_ptr<Engine>> e = Engine::Create(c, clock_);
    ASSERT_THAT(e, IsOk());
    engine_ = std::move(e).value();
    if (recording) {
      ASSERT_THAT(engine_->Subscribe({.tables = {"profile"}}), IsOk());
    }
  }
  void Put(std::string key, int64_t age) {
    Record r;
    r.fields = {{"age", age}};
    const KeyedRecord item{key, &r};
    ASSERT_THAT(engine_->Put("profile", std::span<const KeyedRecord>(&item, 1)), IsOk());
  }
  void PushTx(std::string user, double amount) {
    const std::vector<Field> fields = {
        {"user", user}, {"ts", record::Timestamp{clock_.NowMicros()}}, {"amount", amount}};
    const EventInput in{"tx", fields, {}};
    Result<PushResult> r = engine_->PushEvents(std::span<const EventInput>(&in, 1));
    ASSERT_THAT(r, IsOk());
    ASSERT_EQ(r->applied, 1u);
  }
  std::unique_ptr<Subscription> Subscribe(SubscribeRequest req) {
    Result<std::unique_ptr<Subscription>> s = engine_->Subscribe(req);
    EXPECT_THAT(s, IsOk());
    return s.ok() ? std::move(s).value() : nullptr;
  }
  // (kind, key, sequence) of each change of a Next(100).
  static std::vector<std::string> Take(Subscription& s, SubscriptionBatch& batch) {
    EXPECT_THAT(s.Next(100, batch), IsOk());
    std::vector<std::string> out;
    for (const auto& c : batch.changes) {
      out.push_back(std::string(ChangeKindName(c->kind)) + " " + c->key + " " +
                    std::to_string(c->sequence));
    }
    return out;
  }

  FakeClock clock_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(ChangeLogTest, DeliversPutsAndDeletesInOrderWithSequences) {
  auto sub = Subscribe({.tables = {"profile"}});
  Put("a", 1);
  Put("b", 2);
  const std::string_view keys[] = {"a", "missing"};
  ASSERT_THAT(engine_->Delete("profile", keys), IsOk());
  SubscriptionBatch batch;
  EXPECT_THAT(Take(*sub, batch), ElementsAre("put a 1", "put b 2", "delete a 3"));
  EXPECT_FALSE(batch.gap.has_value());
  EXPECT_EQ(batch.next_sequence, 4u);
  EXPECT_EQ(std::get<int64_t>(*batch.changes[1]->record.Find("age")), 2);
  EXPECT_GT(batch.changes[1]->record.version, 0u);
  EXPECT_FALSE(sub->HasPending());
}

// Writers pay for the log only once someone subscribed: before that, nothing is published and
// no sequence is given, so no client can hold a sequence of a change that was not recorded.
TEST_F(ChangeLogTest, NothingIsRecordedBeforeTheFirstSubscription) {
  Open(MakeConfig(), /*recording=*/false);
  Put("early", 1);
  EXPECT_EQ(engine_->SubscriptionStats().published, 0u);
  EXPECT_EQ(engine_->SubscriptionStats().next_sequence, 1u);
  EXPECT_THAT(engine_->Subscribe({.tables = {"profile"}, .from_sequence = 2}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("from_sequence 2")));
  auto sub = Subscribe({.tables = {"profile"}});
  Put("late", 2);
  sub.reset();
  Put("later", 3);  // still recorded with no subscriber: a client may resume
  auto resumed = Subscribe({.tables = {"profile"}, .from_sequence = 1});
  SubscriptionBatch batch;
  EXPECT_THAT(Take(*resumed, batch), ElementsAre("put late 1", "put later 2"));
}

TEST_F(ChangeLogTest, StartsAtTheNextChangeWithoutFromSequence) {
  Put("before", 1);
  auto sub = Subscribe({.tables = {"profile"}});
  Put("after", 2);
  SubscriptionBatch batch;
  EXPECT_THAT(Take(*sub, batch), ElementsAre("put after 2"));
}

TEST_F(ChangeLogTest, FiltersByTableTemplateAndKey) {
  auto only_b = Subscribe({.tables = {"profile"}, .keys = {"b"}});
  auto events = Subscribe({.templates = {"tx"}});
  Put("a", 1);
  Put("b", 2);
  PushTx("b", 5.0);
  SubscriptionBatch batch;
  EXPECT_THAT(Take(*only_b, batch), ElementsAre("put b 2"));
  EXPECT_EQ(batch.next_sequence, 4u);  // the cursor passed the changes the filter left out
  EXPECT_THAT(Take(*events, batch), ElementsAre("event b 3"));
  EXPECT_EQ(batch.changes[0]->source, "tx");
  EXPECT_EQ(batch.changes[0]->record.event_time_micros, clock_.NowMicros());
  EXPECT_EQ(std::get<double>(*batch.changes[0]->record.Find("amount")), 5.0);
}

TEST_F(ChangeLogTest, SubscriberFurtherBehindThanItsQueueGetsAGapThenTheNewest) {
  Open(MakeConfig(/*retained=*/16, /*queue=*/4));
  auto sub = Subscribe({.tables = {"profile"}});
  for (int i = 0; i < 10; ++i) Put("k" + std::to_string(i), i);
  SubscriptionBatch batch;
  EXPECT_THAT(Take(*sub, batch), ElementsAre("put k6 7", "put k7 8", "put k8 9", "put k9 10"));
  ASSERT_TRUE(batch.gap.has_value());
  EXPECT_EQ(batch.gap->from_sequence, 1u);
  EXPECT_EQ(batch.gap->to_sequence, 7u);
  EXPECT_EQ(batch.gap->reason, GapReason::kOverflow);
  Put("live", 1);
  EXPECT_THAT(Take(*sub, batch), ElementsAre("put live 11"));
  EXPECT_FALSE(batch.gap.has_value());
  const ChangeLogStats stats = engine_->SubscriptionStats();
  EXPECT_EQ(stats.gaps, 1u);
  EXPECT_EQ(stats.skipped, 6u);
  EXPECT_EQ(stats.published, 11u);
}

TEST_F(ChangeLogTest, ResumeFromARetainedSequenceGetsExactlyTheChangesFromThere) {
  for (int i = 0; i < 6; ++i) Put("k" + std::to_string(i), i);
  auto sub = Subscribe({.tables = {"profile"}, .from_sequence = 4});
  SubscriptionBatch batch;
  EXPECT_THAT(Take(*sub, batch), ElementsAre("put k3 4", "put k4 5", "put k5 6"));
  EXPECT_FALSE(batch.gap.has_value());
}

TEST_F(ChangeLogTest, FromSequenceNoLongerRetainedGivesANotRetainedGapFirst) {
  for (int i = 0; i < 20; ++i) Put("k" + std::to_string(i), i);  // 16 retained: 5..20
  auto sub = Subscribe({.tables = {"profile"}, .from_sequence = 2});
  SubscriptionBatch batch;
  const std::vector<std::string> changes = Take(*sub, batch);
  ASSERT_TRUE(batch.gap.has_value());
  EXPECT_EQ(batch.gap->from_sequence, 2u);
  EXPECT_EQ(batch.gap->to_sequence, 5u);
  EXPECT_EQ(batch.gap->reason, GapReason::kNotRetained);
  ASSERT_EQ(changes.size(), 16u);
  EXPECT_EQ(changes.front(), "put k4 5");
  EXPECT_EQ(changes.back(), "put k19 20");
}

TEST_F(ChangeLogTest, ResumeFurtherBackThanTheQueueGetsTheWholeRetainedReplay) {
  Open(MakeConfig(/*retained=*/16, /*queue=*/4));
  for (int i = 0; i < 10; ++i) Put("k" + std::to_string(i), i);
  auto sub = Subscribe({.tables = {"profile"}, .from_sequence = 2});
  SubscriptionBatch batch;
  ASSERT_THAT(sub->Next(3, batch), IsOk());
  EXPECT_FALSE(batch.gap.has_value());
  EXPECT_EQ(batch.changes.front()->sequence, 2u);
  // Live changes beyond the queue while it replays: it skips to the newest queue_size.
  for (int i = 0; i < 5; ++i) Put("live" + std::to_string(i), i);
  EXPECT_THAT(Take(*sub, batch), ElementsAre("put live1 12", "put live2 13", "put live3 14",
                                             "put live4 15"));
  ASSERT_TRUE(batch.gap.has_value());
  EXPECT_EQ(batch.gap->from_sequence, 5u);
  EXPECT_EQ(batch.gap->to_sequence, 12u);
}

TEST_F(ChangeLogTest, NextTakesAtMostMaxChangesAndContinuesFromThere) {
  auto sub = Subscribe({.tables = {"profile"}});
  for (int i = 0; i < 5; ++i) Put("k" + std::to_string(i), i);
  SubscriptionBatch batch;
  ASSERT_THAT(sub->Next(2, batch), IsOk());
  EXPECT_EQ(batch.changes.size(), 2u);
  EXPECT_EQ(batch.next_sequence, 3u);
  EXPECT_TRUE(sub->HasPending());
  EXPECT_THAT(Take(*sub, batch), ElementsAre("put k2 3", "put k3 4", "put k4 5"));
}

TEST_F(ChangeLogTest, FeatureSubscriptionDeliversTheNewValueOncePerEntityAndBatch) {
  auto sub = Subscribe({.features = {"amount_sum"}});
  PushTx("u1", 2.0);
  PushTx("u1", 3.0);
  PushTx("u2", 7.0);
  SubscriptionBatch batch;
  EXPECT_THAT(Take(*sub, batch), ::testing::IsEmpty());  // only features were asked for
  ASSERT_EQ(batch.features.size(), 2u);
  EXPECT_EQ(batch.features[0].entity, "u1");
  EXPECT_EQ(batch.features[0].sequence, 2u);
  EXPECT_EQ(batch.features[0].status, FeatureStatus::kPresent);
  EXPECT_EQ(std::get<double>(std::get<record::Value>(batch.features[0].value)), 5.0);
  EXPECT_EQ(batch.features[1].entity, "u2");
  EXPECT_EQ(std::get<double>(std::get<record::Value>(batch.features[1].value)), 7.0);
}

TEST_F(ChangeLogTest, TableFieldFeatureFollowsItsTable) {
  auto sub = Subscribe({.features = {"profile:age"}, .keys = {"a"}});
  Put("a", 41);
  Put("b", 1);
  SubscriptionBatch batch;
  ASSERT_THAT(sub->Next(100, batch), IsOk());
  ASSERT_EQ(batch.features.size(), 1u);
  EXPECT_EQ(batch.features[0].feature, "profile:age");
  EXPECT_EQ(std::get<int64_t>(std::get<record::Value>(batch.features[0].value)), 41);
}

TEST_F(ChangeLogTest, TtlExpiryIsPublished) {
  auto sub = Subscribe({.tables = {"session"}});
  Record r;
  r.fields = {{"x", int64_t{1}}};
  const KeyedRecord item{"s1", &r};
  ASSERT_THAT(engine_->Put("session", std::span<const KeyedRecord>(&item, 1)), IsOk());
  clock_.Advance(61 * kSecond);
  engine_->SweepExpiredOnce();
  SubscriptionBatch batch;
  EXPECT_THAT(Take(*sub, batch), ElementsAre("put s1 1", "expire s1 2"));
}

TEST_F(ChangeLogTest, BadRequestsNameWhatIsWrong) {
  Put("a", 1);
  EXPECT_THAT(engine_->Subscribe({}), StatusIs(StatusCode::kInvalidArgument,
                                               HasSubstr("at least one table")));
  EXPECT_THAT(engine_->Subscribe({.tables = {"nope"}}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("'nope'")));
  EXPECT_THAT(engine_->Subscribe({.templates = {"nope_tx"}}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("'nope_tx'")));
  EXPECT_THAT(engine_->Subscribe({.features = {"nope_sum"}}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("'nope_sum'")));
  EXPECT_THAT(engine_->Subscribe({.tables = {"profile"}, .from_sequence = 0}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("from_sequence 0")));
  EXPECT_THAT(engine_->Subscribe({.tables = {"profile"}, .from_sequence = 3}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("from_sequence 3")));
  EXPECT_THAT(engine_->Subscribe({.tables = {"profile"}, .keys = {""}}),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(engine_->Subscribe({.tables = {"profile"}, .from_sequence = 2}), IsOk());
}

TEST_F(ChangeLogTest, MoreThanMaxSubscribersIsResourceExhaustedUntilOneCloses) {
  auto a = Subscribe({.tables = {"profile"}});
  auto b = Subscribe({.tables = {"profile"}});
  EXPECT_THAT(engine_->Subscribe({.tables = {"profile"}}),
              StatusIs(StatusCode::kResourceExhausted));
  EXPECT_EQ(engine_->SubscriptionStats().subscribers, 2u);
  b.reset();
  EXPECT_THAT(engine_->Subscribe({.tables = {"profile"}}), IsOk());
}

TEST_F(ChangeLogTest, RetainedZeroTurnsSubscriptionsOff) {
  Open(MakeConfig(/*retained=*/0, /*queue=*/1), /*recording=*/false);
  Put("a", 1);
  EXPECT_THAT(engine_->Subscribe({.tables = {"profile"}}),
              StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_FALSE(engine_->SubscriptionStats().enabled);
}

TEST_F(ChangeLogTest, LagIsTheDistanceToTheNewestChange) {
  auto sub = Subscribe({.tables = {"profile"}});
  for (int i = 0; i < 5; ++i) Put("k" + std::to_string(i), i);
  EXPECT_EQ(engine_->SubscriptionStats().max_lag, 5u);
  SubscriptionBatch batch;
  ASSERT_THAT(sub->Next(3, batch), IsOk());
  EXPECT_EQ(engine_->SubscriptionStats().max_lag, 2u);
}

// Concurrent writers of the same keys: the log has each key's versions in increasing order,
// as the shard applied them.
TEST_F(ChangeLogTest, ConcurrentWritesOfAKeyAppearInVersionOrder) {
  Open(MakeConfig(/*retained=*/100'000, /*queue=*/100'000));
  auto sub = Subscribe({.tables = {"profile"}});
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < 2000; ++i) Put("k" + std::to_string(i % 8), w);
    });
  }
  for (std::thread& t : writers) t.join();
  std::map<std::string, uint64_t> last_version;
  size_t seen = 0;
  uint64_t expected_sequence = 1;
  SubscriptionBatch batch;
  while (sub->HasPending()) {
    ASSERT_THAT(sub->Next(1000, batch), IsOk());
    for (const auto& c : batch.changes) {
      EXPECT_EQ(c->sequence, expected_sequence++);
      EXPECT_GT(c->record.version, last_version[c->key]) << c->key;
      last_version[c->key] = c->record.version;
      ++seen;
    }
  }
  EXPECT_EQ(seen, 8000u);
}

}  // namespace
}  // namespace ods::engine
