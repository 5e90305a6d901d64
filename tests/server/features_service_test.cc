// ods.v1.Features and ods.v1.Admin against a real odsd process over gRPC: per-event rejections,
// de-duplication, streams, columnar online and point-in-time answers, definitions at run time.
// Expected feature values are computed here from the events the test pushed.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <fstream>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ods/v1/admin.grpc.pb.h"
#include "ods/v1/features.grpc.pb.h"
#include "ods/v1/store.grpc.pb.h"
#include "support/odsd_process.h"

namespace ods {
namespace {

using ::ods::testing::HttpGet;
using ::ods::testing::OdsdProcess;
using ::ods::testing::TempDir;

constexpr int kMaxBatch = 50;
constexpr int64_t kSecond = 1'000'000;
constexpr int64_t kHour = 3600 * kSecond;

// txn aggregations: one 1h window each (txn_count also 24h), 1m tiles by default.
constexpr char kConfig[] = R"(
server: {shards: 4}
logging: {level: warn}
limits: {max_batch_size: 50, max_record_bytes: 64KiB, max_message_bytes: 1MiB}
tables:
  profile:
    key: user_id
    fields: {age: int64}
event_templates:
  txn:
    key: user_id
    timestamp: ts
    fields: {amount: int64, merchant: string}
    allowed_lateness: 1h
aggregations:
  txn_count: {template: txn, fn: count, windows: [1h, 24h]}
  txn_sum: {template: txn, fn: sum, field: amount, window: 1h}
  txn_last3: {template: txn, fn: last_n, field: merchant, n: 3, window: 1h}
  txn_top2: {template: txn, fn: top_k, field: merchant, k: 2, window: 1h}
)";

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One txn event as the test remembers it, to compute expected values.
struct Txn {
  std::string user;
  int64_t amount = 0;
  std::string merchant;
  int64_t ts = 0;
};

v1::Event ToEvent(const Txn& t, const std::string& event_id = "") {
  v1::Event e;
  e.set_template_("txn");
  auto& f = *e.mutable_fields();
  f["user_id"].set_string_value(t.user);
  f["ts"].set_timestamp_micros_value(t.ts);
  f["amount"].set_int64_value(t.amount);
  f["merchant"].set_string_value(t.merchant);
  e.set_event_id(event_id);
  return e;
}

// Expected values over the events of `txns` for `user` with ts <= as_of (all within 1h of it,
// so inside every 1h window), computed the way the aggregate contract defines them.
struct Expected {
  int64_t count = 0;
  int64_t sum = 0;
  int64_t newest_ts = 0;
  std::vector<std::string> last3;  // newest first; ties: later arrival first
  std::vector<std::string> top2;   // most frequent first; ties: smaller value first
};

Expected Compute(const std::vector<Txn>& txns, const std::string& user, int64_t as_of) {
  Expected x;
  std::vector<std::pair<int64_t, size_t>> by_time;  // (ts, arrival)
  std::map<std::string, int64_t> freq;
  for (size_t i = 0; i < txns.size(); ++i) {
    const Txn& t = txns[i];
    if (t.user != user || t.ts > as_of) continue;
    ++x.count;
    x.sum += t.amount;
    x.newest_ts = std::max(x.newest_ts, t.ts);
    by_time.emplace_back(t.ts, i);
    ++freq[t.merchant];
  }
  std::sort(by_time.rbegin(), by_time.rend());
  for (size_t i = 0; i < by_time.size() && i < 3; ++i) {
    x.last3.push_back(txns[by_time[i].second].merchant);
  }
  std::vector<std::pair<int64_t, std::string>> ranked;  // (-count, value)
  for (const auto& [m, c] : freq) ranked.emplace_back(-c, m);
  std::sort(ranked.begin(), ranked.end());
  for (size_t i = 0; i < ranked.size() && i < 2; ++i) x.top2.push_back(ranked[i].second);
  return x;
}

std::vector<std::string> Strings(const v1::FeatureValue& v) {
  std::vector<std::string> out;
  for (const v1::Value& x : v.list().values()) out.push_back(x.string_value());
  return out;
}

class FeaturesServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string path = dir_->path() + "/odsd.yaml";
    std::ofstream(path) << kConfig;
    odsd_ = new OdsdProcess();
    ASSERT_TRUE(odsd_->Start({"--config", path})) << odsd_->error();
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(odsd_->Stop(SIGTERM, 5000), 0) << odsd_->Stderr();
    delete odsd_;
    delete dir_;
  }

  void SetUp() override {
    ASSERT_NE(odsd_, nullptr);
    auto channel = grpc::CreateChannel(odsd_->grpc_address(), grpc::InsecureChannelCredentials());
    features_ = v1::Features::NewStub(channel);
    admin_ = v1::Admin::NewStub(channel);
    store_ = v1::Store::NewStub(channel);
  }

  grpc::Status Push(const std::vector<v1::Event>& events, v1::PushEventsResponse* resp) {
    v1::PushEventsRequest req;
    for (const v1::Event& e : events) *req.add_events() = e;
    grpc::ClientContext ctx;
    return features_->PushEvents(&ctx, req, resp);
  }
  // Pushes `txns`, expecting every one applied.
  void PushAll(const std::vector<Txn>& txns) {
    std::vector<v1::Event> events;
    for (const Txn& t : txns) events.push_back(ToEvent(t));
    v1::PushEventsResponse resp;
    ASSERT_TRUE(Push(events, &resp).ok());
    ASSERT_EQ(resp.applied(), txns.size());
    ASSERT_EQ(resp.rejected_size(), 0) << resp.rejected(0).message();
  }
  grpc::Status Online(const std::vector<std::string>& entities,
                      const std::vector<std::string>& features, v1::FeaturesResponse* resp,
                      std::optional<int64_t> as_of = std::nullopt) {
    v1::GetOnlineFeaturesRequest req;
    for (const auto& e : entities) req.add_entities(e);
    for (const auto& f : features) req.add_features(f);
    if (as_of) req.set_as_of_micros(*as_of);
    grpc::ClientContext ctx;
    return features_->GetOnlineFeatures(&ctx, req, resp);
  }
  grpc::Status Apply(const std::string& yaml, v1::ApplyDefinitionsResponse* resp) {
    v1::ApplyDefinitionsRequest req;
    req.set_yaml(yaml);
    grpc::ClientContext ctx;
    return admin_->ApplyDefinitions(&ctx, req, resp);
  }
  v1::ListDefinitionsResponse List() {
    v1::ListDefinitionsResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(admin_->ListDefinitions(&ctx, v1::ListDefinitionsRequest(), &resp).ok());
    return resp;
  }
  // txn_count@1h of `entity`: its value, or -1 when NOT_FOUND.
  int64_t Count(const std::string& entity) {
    v1::FeaturesResponse resp;
    EXPECT_TRUE(Online({entity}, {"txn_count@1h"}, &resp).ok());
    if (resp.columns_size() != 1 || resp.columns(0).statuses_size() != 1) return -2;
    if (resp.columns(0).statuses(0) == v1::NOT_FOUND) return -1;
    return resp.columns(0).values(0).value().int64_value();
  }
  uint64_t Metric(const std::string& name) {
    const std::string body = HttpGet(odsd_->admin_address(), "/metrics");
    const std::string line = "\n" + name + " ";
    const size_t at = body.find(line);
    if (at == std::string::npos) {
      ADD_FAILURE() << name << " not in /metrics:\n" << body;
      return 0;
    }
    return std::stoull(body.substr(at + line.size()));
  }

  static TempDir* dir_;
  static OdsdProcess* odsd_;
  std::unique_ptr<v1::Features::Stub> features_;
  std::unique_ptr<v1::Admin::Stub> admin_;
  std::unique_ptr<v1::Store::Stub> store_;
};

TempDir* FeaturesServiceTest::dir_ = nullptr;
OdsdProcess* FeaturesServiceTest::odsd_ = nullptr;

TEST_F(FeaturesServiceTest, BadEventsAreRejectedByIndexAndChangeNothing) {
  const int64_t now = NowMicros();
  const std::string user = "mixed";
  const Txn good1{user, 5, "shop", now - kSecond};
  const Txn good2{user, 7, "cafe", now - 2 * kSecond};

  v1::Event missing_key = ToEvent({user, 100, "x", now - kSecond});
  missing_key.mutable_fields()->erase("user_id");
  v1::Event wrong_type = ToEvent({user, 100, "x", now - kSecond});
  (*wrong_type.mutable_fields())["amount"].set_string_value("lots");
  v1::Event unknown_template = ToEvent({user, 100, "x", now - kSecond});
  unknown_template.set_template_("nosuch_template");
  const v1::Event too_late = ToEvent({user, 100, "x", now - 2 * kHour});
  v1::Event unset_value = ToEvent({user, 100, "x", now - kSecond});
  (*unset_value.mutable_fields())["amount"].Clear();

  const uint64_t rejected_before = Metric("ods_events_rejected_total");
  const uint64_t late_before = Metric("ods_events_late_total");
  const uint64_t applied_before = Metric("ods_events_applied_total");
  v1::PushEventsResponse resp;
  ASSERT_TRUE(Push({ToEvent(good1), missing_key, wrong_type, unknown_template, too_late,
                    unset_value, ToEvent(good2)},
                   &resp)
                  .ok());
  EXPECT_EQ(resp.applied(), 2u) << resp.DebugString();
  EXPECT_EQ(resp.duplicates(), 0u);
  EXPECT_EQ(resp.rejected_count(), 5u);
  EXPECT_FALSE(resp.rejected_truncated());
  ASSERT_EQ(resp.rejected_size(), 5);
  struct Want {
    uint32_t index;
    grpc::StatusCode code;
    std::vector<std::string> names;  // each must appear in the message
  };
  const Want want[] = {
      {1, grpc::StatusCode::INVALID_ARGUMENT, {"txn", "user_id"}},
      {2, grpc::StatusCode::INVALID_ARGUMENT, {"txn", "amount"}},
      {3, grpc::StatusCode::NOT_FOUND, {"nosuch_template"}},
      {4, grpc::StatusCode::OUT_OF_RANGE, {"txn"}},
      {5, grpc::StatusCode::INVALID_ARGUMENT, {"txn", "amount"}},
  };
  for (int i = 0; i < 5; ++i) {
    const v1::EventError& e = resp.rejected(i);
    EXPECT_EQ(e.index(), want[i].index);
    EXPECT_EQ(e.code(), static_cast<int>(want[i].code)) << e.message();
    for (const std::string& name : want[i].names) {
      EXPECT_NE(e.message().find(name), std::string::npos) << e.message();
    }
  }
  // The late event is well-formed, so its message names the key too.
  EXPECT_NE(resp.rejected(3).message().find(user), std::string::npos) << resp.rejected(3).message();

  // Only the good events count: the bad ones all named the same entity.
  const Expected x = Compute({good1, good2}, user, now);
  v1::FeaturesResponse f;
  ASSERT_TRUE(Online({user}, {"txn_count@1h", "txn_sum"}, &f).ok());
  ASSERT_EQ(f.columns_size(), 2);
  EXPECT_EQ(f.columns(0).values(0).value().int64_value(), x.count);
  EXPECT_EQ(f.columns(1).values(0).value().int64_value(), x.sum);

  EXPECT_EQ(Metric("ods_events_applied_total") - applied_before, 2u);
  EXPECT_EQ(Metric("ods_events_late_total") - late_before, 1u);
  EXPECT_EQ(Metric("ods_events_rejected_total") - rejected_before, 5u);
}

// Event times and as-of times at the int64 limits get a status, not arithmetic overflow: the
// server answers and stays up (under the sanitizers, an overflow would abort odsd).
TEST_F(FeaturesServiceTest, TimesAtTheInt64LimitsAreAnsweredAndTheServerStaysUp) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const std::string user = "int64_limits";
  v1::PushEventsResponse pushed;
  ASSERT_TRUE(Push({ToEvent({user, 1, "m", kMin}), ToEvent({user, 1, "m", kMax}),
                    ToEvent({user, 1, "m", NowMicros() - kSecond})},
                   &pushed)
                  .ok());
  EXPECT_EQ(pushed.applied(), 1u);
  ASSERT_EQ(pushed.rejected_size(), 2);
  for (const v1::EventError& e : pushed.rejected()) {
    EXPECT_EQ(e.code(), static_cast<int>(grpc::StatusCode::OUT_OF_RANGE)) << e.message();
    EXPECT_NE(e.message().find("txn"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find(user), std::string::npos) << e.message();
  }

  for (int64_t as_of : {kMin, kMin + 1, kMax - 1, kMax}) {
    SCOPED_TRACE(as_of);
    v1::FeaturesResponse online;
    const grpc::Status s =
        Online({user}, {"txn_count@24h", "txn_sum", "txn_last3"}, &online, as_of);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(online.columns_size(), 3);
    if (as_of < 0) {
      EXPECT_EQ(online.columns(0).statuses(0), v1::OUT_OF_RETENTION);
    }

    v1::GetHistoricalFeaturesRequest req;
    v1::EntityRow* row = req.add_rows();
    row->set_entity(user);
    row->set_timestamp_micros(as_of);
    req.add_features("txn_count@1h");
    req.add_features("txn_top2");
    grpc::ClientContext ctx;
    v1::FeaturesResponse historical;
    const grpc::Status h = features_->GetHistoricalFeatures(&ctx, req, &historical);
    ASSERT_TRUE(h.ok()) << h.error_message();
  }
  EXPECT_EQ(Count(user), 1);
}

TEST_F(FeaturesServiceTest, EventIdDeduplicatesWithinAndAcrossCalls) {
  const int64_t now = NowMicros();
  const Txn t{"dedup", 3, "shop", now - kSecond};
  const Txn other{"dedup", 4, "shop", now - kSecond};
  v1::PushEventsResponse resp;
  ASSERT_TRUE(Push({ToEvent(t, "e1"), ToEvent(t, "e1"), ToEvent(other, "e2")}, &resp).ok());
  EXPECT_EQ(resp.applied(), 2u);
  EXPECT_EQ(resp.duplicates(), 1u);
  EXPECT_EQ(resp.rejected_size(), 0);

  v1::PushEventsResponse again;
  ASSERT_TRUE(Push({ToEvent(t, "e1")}, &again).ok());
  EXPECT_EQ(again.applied(), 0u);
  EXPECT_EQ(again.duplicates(), 1u);

  // Without an event_id nothing is de-duplicated.
  v1::PushEventsResponse plain;
  ASSERT_TRUE(Push({ToEvent(t), ToEvent(t)}, &plain).ok());
  EXPECT_EQ(plain.applied(), 2u);
  EXPECT_EQ(Count("dedup"), Compute({t, other, t, t}, "dedup", now).count);
}

TEST_F(FeaturesServiceTest, StreamEventsTotalsAndStreamWideIndices) {
  const int64_t now = NowMicros();
  const std::string user = "streamer";
  std::vector<Txn> good;
  auto txn = [&](int64_t amount) {
    good.push_back({user, amount, "m" + std::to_string(amount % 3), now - kSecond - amount});
    return ToEvent(good.back());
  };
  v1::Event bad_template = ToEvent({user, 1, "x", now - kSecond});
  bad_template.set_template_("nosuch_template");
  v1::Event no_key = ToEvent({user, 1, "x", now - kSecond});
  no_key.mutable_fields()->erase("user_id");
  const std::vector<std::vector<v1::Event>> messages = {
      {txn(1), txn(2)},                // stream positions 0, 1
      {txn(3), bad_template, txn(4)},  // 2, 3, 4
      {},                              // an empty message is fine
      {no_key},                        // 5
      {txn(5), ToEvent(good[0], "")},  // 6, 7 (a repeat without event_id is applied)
  };
  good.push_back(good[0]);

  grpc::ClientContext ctx;
  v1::PushEventsResponse resp;
  auto writer = features_->StreamEvents(&ctx, &resp);
  for (const auto& events : messages) {
    v1::PushEventsRequest req;
    for (const v1::Event& e : events) *req.add_events() = e;
    ASSERT_TRUE(writer->Write(req));
  }
  ASSERT_TRUE(writer->WritesDone());
  const grpc::Status status = writer->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(resp.applied(), good.size());
  EXPECT_EQ(resp.duplicates(), 0u);
  ASSERT_EQ(resp.rejected_size(), 2);
  EXPECT_EQ(resp.rejected(0).index(), 3u);
  EXPECT_EQ(resp.rejected(0).code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(resp.rejected(1).index(), 5u);
  EXPECT_EQ(resp.rejected_count(), 2u);
  EXPECT_EQ(Count(user), Compute(good, user, now).count);
}

// A long stream of rejected events lists only as many rejections as fit the answer: the totals
// still reach the client (limits.max_message_bytes is 1MiB here, and 10000 listed messages naming
// a 64-byte key would take about 1.7MB), so applied events are never reported as a failed call.
TEST_F(FeaturesServiceTest, StreamEventsAnswerFitsTheMessageLimitWhateverIsRejected) {
  const int64_t now = NowMicros();
  const std::string user(64, 'k');
  grpc::ClientContext ctx;
  v1::PushEventsResponse resp;
  auto writer = features_->StreamEvents(&ctx, &resp);
  v1::PushEventsRequest first;
  *first.add_events() = ToEvent({user, 1, "m", now - kSecond});
  ASSERT_TRUE(writer->Write(first));
  v1::PushEventsRequest late;  // each rejected as older than allowed_lateness, naming the key
  for (int i = 0; i < kMaxBatch; ++i) *late.add_events() = ToEvent({user, 1, "m", now - 2 * kHour});
  constexpr int kMessages = 10'000 / kMaxBatch + 10;
  for (int m = 0; m < kMessages; ++m) ASSERT_TRUE(writer->Write(late));
  ASSERT_TRUE(writer->WritesDone());
  const grpc::Status status = writer->Finish();
  ASSERT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
  EXPECT_EQ(resp.applied(), 1u);
  EXPECT_EQ(resp.rejected_count(), static_cast<uint64_t>(kMessages) * kMaxBatch);
  EXPECT_TRUE(resp.rejected_truncated());
  EXPECT_GT(resp.rejected_size(), 0);
  EXPECT_LE(resp.ByteSizeLong(), size_t{1} << 20);
  EXPECT_EQ(resp.rejected(0).index(), 1u);
  EXPECT_EQ(Count(user), 1);
}

TEST_F(FeaturesServiceTest, StreamEventsFailsOnAnOversizedMessageKeepingEarlierOnes) {
  const int64_t now = NowMicros();
  const Txn t{"stream_big", 1, "m", now - kSecond};
  grpc::ClientContext ctx;
  v1::PushEventsResponse resp;
  auto writer = features_->StreamEvents(&ctx, &resp);
  v1::PushEventsRequest first;
  *first.add_events() = ToEvent(t);
  ASSERT_TRUE(writer->Write(first));
  v1::PushEventsRequest big;
  for (int i = 0; i <= kMaxBatch; ++i) *big.add_events() = ToEvent(t);
  writer->Write(big);  // may fail once the server has answered
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("max_batch_size"), std::string::npos)
      << status.error_message();
  EXPECT_EQ(Count("stream_big"), 1);
}

// Many full messages, so the server receives later messages while it applies earlier ones:
// every event is still applied once, in order, and a rejection deep in the stream carries its
// stream-wide index.
TEST_F(FeaturesServiceTest, StreamEventsLongStreamKeepsStreamWideIndices) {
  const int64_t now = NowMicros();
  const std::string user = "long_streamer";
  constexpr int kMessages = 40;
  constexpr int kBadMessage = 17;
  constexpr int kBadPosition = 23;
  grpc::ClientContext ctx;
  v1::PushEventsResponse resp;
  auto writer = features_->StreamEvents(&ctx, &resp);
  for (int m = 0; m < kMessages; ++m) {
    v1::PushEventsRequest req;
    for (int i = 0; i < kMaxBatch; ++i) {
      *req.add_events() = ToEvent({user, i, "m", now - kSecond - (m * kMaxBatch + i)});
    }
    if (m == kBadMessage) req.mutable_events(kBadPosition)->set_template_("nosuch_template");
    if (m == kMessages - 1) req.mutable_events(kMaxBatch - 1)->mutable_fields()->erase("user_id");
    ASSERT_TRUE(writer->Write(req));
  }
  ASSERT_TRUE(writer->WritesDone());
  const grpc::Status status = writer->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  constexpr uint64_t kEvents = uint64_t{kMessages} * kMaxBatch;
  EXPECT_EQ(resp.applied(), kEvents - 2);
  EXPECT_EQ(resp.rejected_count(), 2u);
  ASSERT_EQ(resp.rejected_size(), 2);
  EXPECT_EQ(resp.rejected(0).index(), uint32_t{kBadMessage * kMaxBatch + kBadPosition});
  EXPECT_EQ(resp.rejected(0).code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(resp.rejected(1).index(), kEvents - 1);
  EXPECT_EQ(Count(user), static_cast<int64_t>(kEvents - 2));
}

// The client keeps writing after a message fails the call: the call ends once with that error,
// nothing written after the failing message is applied, and the server serves the next stream.
TEST_F(FeaturesServiceTest, StreamEventsErrorWhileTheClientKeepsWritingEndsTheCallOnce) {
  const int64_t now = NowMicros();
  const Txn t{"stream_err", 1, "m", now - kSecond};
  {
    grpc::ClientContext ctx;
    v1::PushEventsResponse resp;
    auto writer = features_->StreamEvents(&ctx, &resp);
    v1::PushEventsRequest one;
    *one.add_events() = ToEvent(t);
    ASSERT_TRUE(writer->Write(one));
    v1::PushEventsRequest big;
    for (int i = 0; i <= kMaxBatch; ++i) *big.add_events() = ToEvent(t);
    writer->Write(big);  // may fail once the server has answered
    for (int m = 0; m < 200; ++m) {
      if (!writer->Write(one)) break;  // the server has answered
    }
    writer->WritesDone();
    const grpc::Status status = writer->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_NE(status.error_message().find("max_batch_size"), std::string::npos)
        << status.error_message();
  }
  EXPECT_EQ(Count("stream_err"), 1);

  grpc::ClientContext ctx;
  v1::PushEventsResponse resp;
  auto writer = features_->StreamEvents(&ctx, &resp);
  v1::PushEventsRequest next;
  *next.add_events() = ToEvent({"stream_err_next", 1, "m", now - kSecond});
  ASSERT_TRUE(writer->Write(next));
  ASSERT_TRUE(writer->WritesDone());
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_EQ(resp.applied(), 1u);
  EXPECT_EQ(Count("stream_err_next"), 1);
}

TEST_F(FeaturesServiceTest, OversizedPushIsRefusedWhole) {
  const int64_t now = NowMicros();
  std::vector<v1::Event> events;
  for (int i = 0; i <= kMaxBatch; ++i) {
    events.push_back(ToEvent({"too_many", 1, "m", now - kSecond}));
  }
  v1::PushEventsResponse resp;
  const grpc::Status s = Push(events, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("max_batch_size"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find(std::to_string(kMaxBatch)), std::string::npos);
  EXPECT_EQ(Count("too_many"), -1);
}

TEST_F(FeaturesServiceTest, OnlineFeaturesAreColumnarPerEntity) {
  const int64_t now = NowMicros();
  std::vector<Txn> txns;
  const char* merchants[] = {"b", "a", "c", "a", "b", "a", "d"};
  for (int i = 0; i < 7; ++i) {
    txns.push_back({"alice", 10 * i + 1, merchants[i], now - kSecond - (7 - i) * 1000});
  }
  for (int i = 0; i < 2; ++i) {
    txns.push_back({"bob", 100 + i, merchants[6 - i], now - 3 * kSecond + i * 1000});
  }
  PushAll(txns);

  v1::PutRequest put;
  put.set_table("profile");
  v1::Record* r = put.add_records();
  r->set_key("alice");
  r->set_event_time_micros(now - 5 * kSecond);
  (*r->mutable_fields())["age"].set_int64_value(41);
  v1::PutResponse put_resp;
  grpc::ClientContext put_ctx;
  ASSERT_TRUE(store_->Put(&put_ctx, put, &put_resp).ok());

  const std::vector<std::string> entities = {"alice", "nobody", "bob"};
  const std::vector<std::string> features = {"txn_count@1h", "txn_count@24h", "txn_sum",
                                             "txn_last3",    "txn_top2",      "profile:age"};
  v1::FeaturesResponse resp;
  const grpc::Status s = Online(entities, features, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.columns_size(), static_cast<int>(features.size()));
  for (int c = 0; c < resp.columns_size(); ++c) {
    const v1::FeatureColumn& col = resp.columns(c);
    EXPECT_EQ(col.feature(), features[c]);
    ASSERT_EQ(col.values_size(), 3);
    ASSERT_EQ(col.statuses_size(), 3);
    ASSERT_EQ(col.event_times_micros_size(), 3);
    // An entity with no events or record has no value.
    EXPECT_EQ(col.statuses(1), v1::NOT_FOUND) << col.feature();
    EXPECT_EQ(col.values(1).kind_case(), v1::FeatureValue::KIND_NOT_SET) << col.feature();
    EXPECT_EQ(col.event_times_micros(1), 0);
  }
  for (int e : {0, 2}) {
    const Expected x = Compute(txns, entities[e], now);
    SCOPED_TRACE(entities[e]);
    for (int c = 0; c < 5; ++c) {
      EXPECT_EQ(resp.columns(c).statuses(e), v1::PRESENT) << features[c];
      EXPECT_EQ(resp.columns(c).event_times_micros(e), x.newest_ts) << features[c];
    }
    EXPECT_EQ(resp.columns(0).values(e).value().int64_value(), x.count);
    EXPECT_EQ(resp.columns(1).values(e).value().int64_value(), x.count);
    EXPECT_EQ(resp.columns(2).values(e).value().int64_value(), x.sum);
    EXPECT_EQ(Strings(resp.columns(3).values(e)), x.last3);
    EXPECT_EQ(Strings(resp.columns(4).values(e)), x.top2);
  }
  EXPECT_EQ(resp.columns(5).statuses(0), v1::PRESENT);
  EXPECT_EQ(resp.columns(5).values(0).value().int64_value(), 41);
  EXPECT_EQ(resp.columns(5).event_times_micros(0), now - 5 * kSecond);
  EXPECT_EQ(resp.columns(5).statuses(2), v1::NOT_FOUND);

  // As of an earlier time, from retained history: later events are left out.
  const int64_t as_of = txns[3].ts;
  v1::FeaturesResponse past;
  ASSERT_TRUE(Online({"alice"}, {"txn_sum", "txn_last3"}, &past, as_of).ok());
  const Expected then = Compute(txns, "alice", as_of);
  EXPECT_EQ(past.columns(0).values(0).value().int64_value(), then.sum);
  EXPECT_EQ(Strings(past.columns(1).values(0)), then.last3);
}

TEST_F(FeaturesServiceTest, OnlineRequestErrorsNameTheProblem) {
  v1::FeaturesResponse resp;
  grpc::Status s = Online({"alice"}, {"txn_sum", "txn_summ"}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("txn_summ"), std::string::npos) << s.error_message();

  s = Online({"alice"}, {"txn_count@7d"}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("txn_count@7d"), std::string::npos) << s.error_message();

  // txn_count has two windows: a bare name is ambiguous.
  s = Online({"alice"}, {"txn_count"}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("txn_count"), std::string::npos) << s.error_message();

  std::vector<std::string> many(kMaxBatch + 1, "alice");
  s = Online(many, {"txn_sum"}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("max_batch_size"), std::string::npos) << s.error_message();
}

// Lookups parse their requests themselves (raw methods): bytes that are not the request message,
// or a string field that is not UTF-8, answer INVALID_ARGUMENT naming the call and the message
// type, and the server keeps serving.
TEST_F(FeaturesServiceTest, UnparsableLookupRequestsAreInvalidArguments) {
  grpc::GenericStub generic(
      grpc::CreateChannel(odsd_->grpc_address(), grpc::InsecureChannelCredentials()));
  auto call = [&](const std::string& method, const std::string& bytes) {
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    grpc::ClientContext ctx;
    std::promise<grpc::Status> done;
    generic.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                      [&](grpc::Status s) { done.set_value(std::move(s)); });
    return done.get_future().get();
  };
  // entities: 5 bytes announced, 3 sent
  const std::string truncated = std::string("\x0a\x05", 2) + "ali";
  const std::string not_utf8("\x0a\x02\xc3\x28", 4);  // entities: one invalid UTF-8 string
  const std::string bad_row("\x0a\x04\x0a\x02\xff\xfe", 6);  // rows[0].entity not UTF-8
  struct Case {
    std::string method, call, message, bytes;
  };
  const Case cases[] = {
      {"/ods.v1.Features/GetOnlineFeatures", "GetOnlineFeatures",
       "ods.v1.GetOnlineFeaturesRequest", truncated},
      {"/ods.v1.Features/GetOnlineFeatures", "GetOnlineFeatures",
       "ods.v1.GetOnlineFeaturesRequest", not_utf8},
      {"/ods.v1.Features/GetHistoricalFeatures", "GetHistoricalFeatures",
       "ods.v1.GetHistoricalFeaturesRequest", bad_row},
  };
  for (const Case& c : cases) {
    const grpc::Status s = call(c.method, c.bytes);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.method;
    EXPECT_NE(s.error_message().find(c.call + ": the request does not parse as " + c.message),
              std::string::npos)
        << s.error_message();
  }
  EXPECT_EQ(Count("nobody-at-all"), -1);  // still serving
}

// Lookups read the usual request in place and leave other valid shapes to protobuf: a non-ASCII
// key, an unknown field, a request written in two slices or as two concatenated messages all
// answer as the plain request does, and so does a request large enough to arrive in pieces.
TEST_F(FeaturesServiceTest, LookupRequestsOfEveryValidShapeAnswerAlike) {
  const int64_t now = NowMicros();
  const std::string zoe = "Zo\xc3\xab";  // "Zoë", UTF-8
  PushAll({{zoe, 5, "m", now - kSecond},
           {zoe, 7, "n", now - 2 * kSecond},
           {"ascii-key", 1, "m", now - kSecond}});
  grpc::GenericStub generic(
      grpc::CreateChannel(odsd_->grpc_address(), grpc::InsecureChannelCredentials()));
  auto call = [&](std::vector<std::string> parts, v1::FeaturesResponse& resp) {
    std::vector<grpc::Slice> slices(parts.begin(), parts.end());
    grpc::ByteBuffer request(slices.data(), slices.size());
    grpc::ByteBuffer response;
    grpc::ClientContext ctx;
    std::promise<grpc::Status> done;
    generic.UnaryCall(&ctx, "/ods.v1.Features/GetOnlineFeatures", grpc::StubOptions(), &request,
                      &response, [&](grpc::Status s) { done.set_value(std::move(s)); });
    const grpc::Status s = done.get_future().get();
    if (!s.ok()) return s;
    std::vector<grpc::Slice> out;
    EXPECT_TRUE(response.Dump(&out).ok());
    std::string bytes;
    for (const grpc::Slice& x : out)
      bytes.append(reinterpret_cast<const char*>(x.begin()), x.size());
    EXPECT_TRUE(resp.ParseFromString(bytes));
    return s;
  };
  v1::GetOnlineFeaturesRequest req;
  req.add_entities("ascii-key");
  req.add_entities(zoe);
  req.add_features("txn_count@1h");
  req.add_features("txn_sum");
  const std::string plain = req.SerializeAsString();
  v1::FeaturesResponse expected;
  ASSERT_TRUE(call({plain}, expected).ok());
  ASSERT_EQ(expected.columns_size(), 2);
  EXPECT_EQ(expected.columns(0).values(0).value().int64_value(), 1);
  EXPECT_EQ(expected.columns(0).values(1).value().int64_value(), 2);  // the non-ASCII key
  EXPECT_EQ(expected.columns(1).values(1).value().int64_value(), 12);

  v1::GetOnlineFeaturesRequest entities_only;
  entities_only.add_entities("ascii-key");
  entities_only.add_entities(zoe);
  v1::GetOnlineFeaturesRequest features_only;
  features_only.add_features("txn_count@1h");
  features_only.add_features("txn_sum");
  const std::string unknown_field("\x78\x01", 2);  // field 15, varint 1
  const std::vector<std::vector<std::string>> shapes = {
      {plain + unknown_field},
      {plain.substr(0, 7), plain.substr(7)},
      {entities_only.SerializeAsString() + features_only.SerializeAsString()},
  };
  for (size_t i = 0; i < shapes.size(); ++i) {
    v1::FeaturesResponse resp;
    const grpc::Status s = call(shapes[i], resp);
    ASSERT_TRUE(s.ok()) << "shape " << i << ": " << s.error_message();
    EXPECT_EQ(resp.SerializeAsString(), expected.SerializeAsString()) << "shape " << i;
  }

  // A 48 KB request, which reaches odsd in several slices: the two keys at its end answer.
  v1::GetOnlineFeaturesRequest large;
  for (int i = 0; i < 48; ++i)
    large.add_entities(std::string(1000, static_cast<char>('a' + i % 26)));
  large.add_entities("ascii-key");
  large.add_entities(zoe);
  large.add_features("txn_count@1h");
  v1::FeaturesResponse resp;
  ASSERT_TRUE(call({large.SerializeAsString()}, resp).ok());
  ASSERT_EQ(resp.columns_size(), 1);
  ASSERT_EQ(resp.columns(0).values_size(), 50);
  EXPECT_EQ(resp.columns(0).statuses(0), v1::NOT_FOUND);
  EXPECT_EQ(resp.columns(0).values(48).value().int64_value(), 1);
  EXPECT_EQ(resp.columns(0).values(49).value().int64_value(), 2);
}

// /metrics carries a histogram of handler time per Features method: cumulative buckets ending in
// +Inf, equal to _count, which counts every call.
TEST_F(FeaturesServiceTest, MetricsHaveAHandlerTimeHistogramPerMethod) {
  const std::string method = "ods.v1.Features/GetOnlineFeatures";
  auto series = [&](const std::string& body, const std::string& prefix) {
    std::vector<std::pair<std::string, double>> out;  // {labels after method, value}
    size_t at = 0;
    const std::string start = "\n" + prefix + "{method=\"" + method + "\"";
    while ((at = body.find(start, at)) != std::string::npos) {
      const size_t close = body.find("} ", at);
      const size_t end = body.find('\n', close);
      out.emplace_back(body.substr(at + start.size(), close - at - start.size()),
                       std::stod(body.substr(close + 2, end - close - 2)));
      at = end;
    }
    return out;
  };
  const std::string before = HttpGet(odsd_->admin_address(), "/metrics");
  const auto count_before = series(before, "ods_rpc_handler_seconds_count");
  ASSERT_EQ(count_before.size(), 1u) << before;
  v1::FeaturesResponse resp;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Online({"alice"}, {"txn_sum"}, &resp).ok());
  const std::string after = HttpGet(odsd_->admin_address(), "/metrics");
  EXPECT_NE(after.find("# TYPE ods_rpc_handler_seconds histogram\n"), std::string::npos);
  const auto count = series(after, "ods_rpc_handler_seconds_count");
  ASSERT_EQ(count.size(), 1u);
  EXPECT_GE(count[0].second, count_before[0].second + 5);
  const auto buckets = series(after, "ods_rpc_handler_seconds_bucket");
  ASSERT_EQ(buckets.size(), 19u);
  EXPECT_EQ(buckets.front().first, ",le=\"0.000025\"");
  EXPECT_EQ(buckets[5].first, ",le=\"0.001\"");
  EXPECT_EQ(buckets.back().first, ",le=\"+Inf\"");
  for (size_t b = 1; b < buckets.size(); ++b) EXPECT_LE(buckets[b - 1].second, buckets[b].second);
  EXPECT_EQ(buckets.back().second, count[0].second);
  const auto sum = series(after, "ods_rpc_handler_seconds_sum");
  ASSERT_EQ(sum.size(), 1u);
  EXPECT_GT(sum[0].second, 0);

  // Every other service's methods are in the same family, each counting its calls.
  for (const char* other : {"ods.v1.Store/Put", "ods.v1.Store/Delete", "ods.v1.Store/Scan",
                            "ods.v1.Functions/Execute", "ods.v1.Features/PushEvents"}) {
    EXPECT_NE(after.find(std::string("ods_rpc_handler_seconds_count{method=\"") + other + "\"} "),
              std::string::npos)
        << other;
  }
  const std::string get = "\nods_rpc_handler_seconds_count{method=\"ods.v1.Store/Get\"} ";
  auto get_count = [&](const std::string& body) {
    const size_t at = body.find(get);
    return at == std::string::npos ? -1.0 : std::stod(body.substr(at + get.size()));
  };
  const double gets_before = get_count(after);
  ASSERT_GE(gets_before, 0) << after;
  for (int i = 0; i < 3; ++i) {
    v1::GetRequest req;
    req.set_table("profile");
    req.add_keys("alice");
    v1::GetResponse resp_get;
    grpc::ClientContext ctx;
    ASSERT_TRUE(store_->Get(&ctx, req, &resp_get).ok());
  }
  EXPECT_EQ(get_count(HttpGet(odsd_->admin_address(), "/metrics")), gets_before + 3);
  // One TYPE line for the family, as the text format requires.
  const std::string type_line = "# TYPE ods_rpc_handler_seconds histogram\n";
  EXPECT_EQ(after.find(type_line), after.rfind(type_line));
}

TEST_F(FeaturesServiceTest, HistoricalFeaturesAnswerEachRowAsOfItsTime) {
  const int64_t now = NowMicros();
  std::vector<Txn> txns;
  for (int i = 0; i < 4; ++i) {
    txns.push_back({"hist", i * i + 2, "m" + std::to_string(i % 2), now - (40 - 10 * i) * kSecond});
  }
  PushAll(txns);

  v1::GetHistoricalFeaturesRequest req;
  std::vector<int64_t> times;
  for (const Txn& t : txns) times.push_back(t.ts);
  times.push_back(txns[1].ts + 5 * kSecond);  // between two events
  for (int64_t t : times) {
    v1::EntityRow* row = req.add_rows();
    row->set_entity("hist");
    row->set_timestamp_micros(t);
  }
  req.add_features("txn_count@1h");
  req.add_features("txn_sum");
  req.add_features("txn_last3");
  grpc::ClientContext ctx;
  v1::FeaturesResponse resp;
  const grpc::Status s = features_->GetHistoricalFeatures(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.columns_size(), 3);
  for (size_t i = 0; i < times.size(); ++i) {
    SCOPED_TRACE(i);
    const Expected x = Compute(txns, "hist", times[i]);
    const int row = static_cast<int>(i);
    EXPECT_EQ(resp.columns(0).statuses(row), v1::PRESENT);
    EXPECT_EQ(resp.columns(0).values(row).value().int64_value(), x.count);
    EXPECT_EQ(resp.columns(0).event_times_micros(row), x.newest_ts);
    EXPECT_EQ(resp.columns(1).values(row).value().int64_value(), x.sum);
    EXPECT_EQ(Strings(resp.columns(2).values(row)), x.last3);
  }

  v1::GetHistoricalFeaturesRequest unknown;
  unknown.add_rows()->set_entity("hist");
  unknown.add_features("no_such_feature");
  grpc::ClientContext ctx2;
  const grpc::Status bad = features_->GetHistoricalFeatures(&ctx2, unknown, &resp);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.error_message().find("no_such_feature"), std::string::npos);
}

// A derived feature applied over gRPC answers the weighted sum of its inputs in the same call;
// a bad input is refused with its position in the request's YAML.
TEST_F(FeaturesServiceTest, AppliedDerivedFeatureAnswersTheWeightedSumOfItsInputs) {
  const int64_t now = NowMicros();
  PushAll({{"blend", 7, "m1", now - 2 * kSecond}, {"blend", 5, "m2", now - kSecond}});
  v1::ApplyDefinitionsResponse resp;
  grpc::Status s =
      Apply("features:\n  bad_blend: {fn: weighted, inputs: {txn_sum: 1, nope: 2}}\n", &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find(":2:50: features.bad_blend.inputs.nope: no aggregation named "
                                   "'nope'"),
            std::string::npos)
      << s.error_message();
  s = Apply("features:\n  spend_blend: {fn: weighted, inputs: {txn_sum: 0.5, txn_count@1h: 10}}\n",
            &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.features_added_size(), 1);
  EXPECT_EQ(resp.features_added(0), "spend_blend");

  v1::FeaturesResponse f;
  ASSERT_TRUE(Online({"blend", "nobody"}, {"spend_blend", "txn_sum", "txn_count@1h"}, &f).ok());
  ASSERT_EQ(f.columns_size(), 3);
  EXPECT_EQ(f.columns(0).feature(), "spend_blend");
  EXPECT_EQ(f.columns(0).statuses(0), v1::PRESENT);
  const double sum = static_cast<double>(f.columns(1).values(0).value().int64_value());
  const double count = static_cast<double>(f.columns(2).values(0).value().int64_value());
  EXPECT_EQ(sum, 12);
  EXPECT_EQ(f.columns(0).values(0).value().double_value(), 0.5 * sum + 10 * count);
  EXPECT_EQ(f.columns(0).event_times_micros(0), now - kSecond);
  EXPECT_EQ(f.columns(0).statuses(1), v1::NOT_FOUND);
  bool listed = false;
  const v1::ListDefinitionsResponse definitions = List();
  for (const v1::DerivedFeatureDefinition& d : definitions.features()) {
    if (d.name() != "spend_blend") continue;
    listed = true;
    EXPECT_EQ(d.fn(), "weighted");
    ASSERT_EQ(d.inputs_size(), 2);
    EXPECT_EQ(d.inputs(1).ref(), "txn_count@1h");
    EXPECT_EQ(d.inputs(1).weight(), 10);
  }
  EXPECT_TRUE(listed);
}

TEST_F(FeaturesServiceTest, AppliedAggregationServesBackfilledValuesAtOnce) {
  const int64_t now = NowMicros();
  std::vector<Txn> txns;
  for (int i = 0; i < 5; ++i) {
    txns.push_back({"backfill", (i * 37) % 11, "m", now - (i + 1) * kSecond});
  }
  PushAll(txns);

  v1::ApplyDefinitionsResponse resp;
  const grpc::Status s = Apply(R"(
aggregations:
  txn_max_amount: {template: txn, fn: max, field: amount, window: 1h}
)",
                               &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.aggregations_added_size(), 1);
  EXPECT_EQ(resp.aggregations_added(0), "txn_max_amount");
  EXPECT_EQ(resp.templates_added_size(), 0);
  EXPECT_GE(resp.entities_backfilled(), 1u);
  EXPECT_GE(resp.events_replayed(), txns.size());

  int64_t max_amount = txns[0].amount;
  for (const Txn& t : txns) max_amount = std::max(max_amount, t.amount);
  v1::FeaturesResponse f;
  ASSERT_TRUE(Online({"backfill"}, {"txn_max_amount"}, &f).ok());
  EXPECT_EQ(f.columns(0).statuses(0), v1::PRESENT);
  EXPECT_EQ(f.columns(0).values(0).value().int64_value(), max_amount);

  // Applying the same definition again is a no-op; a different one under the name is refused.
  v1::ApplyDefinitionsResponse again;
  ASSERT_TRUE(Apply("aggregations:\n  txn_max_amount: {template: txn, fn: max, field: amount, "
                    "window: 1h}\n",
                    &again)
                  .ok());
  EXPECT_EQ(again.aggregations_added_size(), 0);
  const grpc::Status clash = Apply(
      "aggregations:\n  txn_max_amount: {template: txn, fn: min, field: amount, window: 1h}\n",
      &again);
  EXPECT_EQ(clash.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_NE(clash.error_message().find("txn_max_amount"), std::string::npos);

  const v1::ListDefinitionsResponse list = List();
  const v1::AggregationDefinition* found = nullptr;
  for (const auto& a : list.aggregations()) {
    if (a.name() == "txn_max_amount") found = &a;
  }
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->template_(), "txn");
  EXPECT_EQ(found->fn(), "max");
  EXPECT_EQ(found->field(), "amount");
  ASSERT_EQ(found->windows_micros_size(), 1);
  EXPECT_EQ(found->windows_micros(0), kHour);
}

TEST_F(FeaturesServiceTest, AppliedTemplateAcceptsEventsAndListsStructured) {
  v1::ApplyDefinitionsResponse resp;
  const grpc::Status s = Apply(R"(
event_templates:
  click:
    key: session
    timestamp: at
    fields: {page: string}
    dedup_window: 5m
aggregations:
  click_pages: {template: click, fn: distinct_count, field: page, windows: [10m, 1h]}
)",
                               &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.templates_added_size(), 1);
  EXPECT_EQ(resp.templates_added(0), "click");
  ASSERT_EQ(resp.aggregations_added_size(), 1);

  const int64_t now = NowMicros();
  const std::vector<std::string> pages = {"home", "cart", "home", "pay"};
  v1::PushEventsRequest req;
  for (size_t i = 0; i < pages.size(); ++i) {
    v1::Event* e = req.add_events();
    e->set_template_("click");
    (*e->mutable_fields())["session"].set_string_value("s1");
    (*e->mutable_fields())["at"].set_timestamp_micros_value(now - kSecond -
                                                            static_cast<int64_t>(i));
    (*e->mutable_fields())["page"].set_string_value(pages[i]);
  }
  grpc::ClientContext ctx;
  v1::PushEventsResponse pushed;
  ASSERT_TRUE(features_->PushEvents(&ctx, req, &pushed).ok());
  EXPECT_EQ(pushed.applied(), pages.size());

  std::vector<std::string> distinct = pages;
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  v1::FeaturesResponse f;
  ASSERT_TRUE(Online({"s1"}, {"click_pages@10m"}, &f).ok());
  EXPECT_EQ(f.columns(0).values(0).value().int64_value(), static_cast<int64_t>(distinct.size()));

  const v1::ListDefinitionsResponse list = List();
  const v1::EventTemplateDefinition* click = nullptr;
  for (const auto& t : list.templates()) {
    if (t.name() == "click") click = &t;
  }
  ASSERT_NE(click, nullptr);
  EXPECT_EQ(click->key_field(), "session");
  EXPECT_EQ(click->timestamp_field(), "at");
  ASSERT_EQ(click->fields_size(), 1);
  EXPECT_EQ(click->fields(0).name(), "page");
  EXPECT_EQ(click->fields(0).type(), "string");
  EXPECT_EQ(click->dedup_window_micros(), 300 * kSecond);
  // The config's templates and aggregations come first, in definition order.
  ASSERT_GE(list.templates_size(), 2);
  EXPECT_EQ(list.templates(0).name(), "txn");
  ASSERT_GE(list.aggregations_size(), 4);
  EXPECT_EQ(list.aggregations(0).name(), "txn_count");
  ASSERT_EQ(list.aggregations(0).windows_micros_size(), 2);
  EXPECT_EQ(list.aggregations(0).windows_micros(1), 24 * kHour);
  EXPECT_EQ(list.aggregations(3).name(), "txn_top2");
  EXPECT_EQ(list.aggregations(3).n(), 2u);
}

TEST_F(FeaturesServiceTest, BadDefinitionsAreRefusedWithPositionsAndApplyNothing) {
  v1::ApplyDefinitionsResponse resp;
  // An unknown fn on line 3 and, in the same request, a good aggregation: neither is applied.
  grpc::Status s = Apply(R"(aggregations:
  fine_one: {template: txn, fn: count, window: 1h}
  broken: {template: txn, fn: nosuch_fn, window: 1h}
)",
                         &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("<request>:3:"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("nosuch_fn"), std::string::npos) << s.error_message();

  s = Apply("aggregations:\n  orphan: {template: nosuch_template, fn: count, window: 1h}\n", &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("<request>:2:"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("nosuch_template"), std::string::npos) << s.error_message();

  s = Apply("aggregations: {unclosed: [1h\n", &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("<request>:"), std::string::npos) << s.error_message();

  const v1::ListDefinitionsResponse list = List();
  for (const auto& a : list.aggregations()) {
    EXPECT_NE(a.name(), "fine_one");
    EXPECT_NE(a.name(), "broken");
    EXPECT_NE(a.name(), "orphan");
  }
  v1::FeaturesResponse f;
  EXPECT_EQ(Online({"alice"}, {"fine_one"}, &f).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace ods
