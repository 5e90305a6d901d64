// Lua in feature serving against a real odsd over gRPC (issue #5): a Lua aggregator and a Lua
// derived feature defined in the config file (functions: with source files beside it), events
// pushed through ods.v1.Features, values read online and as of past times, a failing aggregator
// reported by index, and a new aggregator version through ods.v1.Admin.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "ods/v1/admin.grpc.pb.h"
#include "ods/v1/features.grpc.pb.h"
#include "support/odsd_process.h"

namespace ods {
namespace {

using ::ods::testing::OdsdProcess;
using ::ods::testing::TempDir;

constexpr int64_t kSecond = 1'000'000;
constexpr int64_t kMinute = 60 * kSecond;

constexpr char kConfig[] = R"(
server: {shards: 4}
logging: {level: warn}
event_templates:
  txn:
    key: user_id
    timestamp: ts
    fields: {amount: double, merchant: string}
    allowed_lateness: 1h
    history_retention: 1d
functions:
  avg_amount: {kind: aggregator, source: avg_amount.lua, limits: {instructions: 100000}}
  ratio: {kind: derived, source: ratio.lua}
aggregations:
  txn_avg: {template: txn, function: avg_amount, field: amount, window: 1h}
  txn_count: {template: txn, fn: count, window: 1h}
features:
  avg_per_event: {function: ratio, inputs: [txn_avg, txn_count]}
)";

constexpr char kAvg[] = R"(-- mean of the amounts; refuses negative ones
function init() return {sum = 0.0, n = 0} end
function update(s, v, t)
  if v < 0 then error("negative amount") end
  s.sum = s.sum + v
  s.n = s.n + 1
  return s
end
function merge(a, b) return {sum = a.sum + b.sum, n = a.n + b.n} end
function finalize(s) if s.n == 0 then return nil end return s.sum / s.n end
)";

constexpr char kRatio[] = R"(
function compute(x, entity)
  if x.txn_avg == nil or x.txn_count == nil then return nil end
  return x.txn_avg / x.txn_count
end
)";

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

v1::Event Txn(const std::string& user, double amount, int64_t ts) {
  v1::Event e;
  e.set_template_("txn");
  auto& f = *e.mutable_fields();
  f["user_id"].set_string_value(user);
  f["ts"].set_timestamp_micros_value(ts);
  f["amount"].set_double_value(amount);
  f["merchant"].set_string_value("m");
  return e;
}

class LuaFeaturesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_.path() + "/odsd.yaml") << kConfig;
    std::ofstream(dir_.path() + "/avg_amount.lua") << kAvg;
    std::ofstream(dir_.path() + "/ratio.lua") << kRatio;
    ASSERT_TRUE(odsd_.Start({"--config", dir_.path() + "/odsd.yaml"})) << odsd_.error();
    auto channel = grpc::CreateChannel(odsd_.grpc_address(), grpc::InsecureChannelCredentials());
    features_ = v1::Features::NewStub(channel);
    admin_ = v1::Admin::NewStub(channel);
  }
  void TearDown() override { EXPECT_EQ(odsd_.Stop(SIGTERM, 5000), 0) << odsd_.Stderr(); }

  v1::PushEventsResponse Push(const std::vector<v1::Event>& events) {
    v1::PushEventsRequest req;
    for (const v1::Event& e : events) *req.add_events() = e;
    v1::PushEventsResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status s = features_->PushEvents(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }
  // The double value of each feature for `entity` (-1 when not PRESENT).
  std::vector<double> Online(const std::string& entity, const std::vector<std::string>& names) {
    v1::GetOnlineFeaturesRequest req;
    req.add_entities(entity);
    for (const auto& n : names) req.add_features(n);
    v1::FeaturesResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status s = features_->GetOnlineFeatures(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<double> out;
    for (const auto& c : resp.columns()) {
      if (c.statuses(0) != v1::PRESENT) {
        out.push_back(-1);
      } else if (c.values(0).value().has_int64_value()) {
        out.push_back(static_cast<double>(c.values(0).value().int64_value()));
      } else {
        out.push_back(c.values(0).value().double_value());
      }
    }
    return out;
  }

  TempDir dir_;
  OdsdProcess odsd_;
  std::unique_ptr<v1::Features::Stub> features_;
  std::unique_ptr<v1::Admin::Stub> admin_;
};

TEST_F(LuaFeaturesTest, LuaAggregatorAndDerivedFeatureServeOverGrpc) {
  const int64_t now = NowMicros();
  v1::PushEventsResponse pushed = Push({Txn("alice", 10, now - 20 * kMinute),
                                        Txn("alice", -5, now - 15 * kMinute),
                                        Txn("alice", 20, now - 10 * kMinute),
                                        Txn("bob", 7, now - kMinute)});
  EXPECT_EQ(pushed.applied(), 3u);
  ASSERT_EQ(pushed.rejected_size(), 1);
  EXPECT_EQ(pushed.rejected(0).index(), 1u);
  EXPECT_EQ(pushed.rejected(0).code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(pushed.rejected(0).message().find("function avg_amount v1: line 4"),
            std::string::npos)
      << pushed.rejected(0).message();
  EXPECT_NE(pushed.rejected(0).message().find("negative amount"), std::string::npos);

  // Online: the rejected event counts nowhere.
  EXPECT_EQ(Online("alice", {"txn_avg", "txn_count", "avg_per_event"}),
            (std::vector<double>{15, 2, 7.5}));
  EXPECT_EQ(Online("bob", {"txn_avg", "avg_per_event"}), (std::vector<double>{7, 7}));
  EXPECT_EQ(Online("nobody", {"txn_avg", "avg_per_event"}), (std::vector<double>{-1, -1}));

  // Point in time: alice as of 12 minutes ago saw only her first event.
  v1::GetHistoricalFeaturesRequest past;
  v1::EntityRow* row = past.add_rows();
  row->set_entity("alice");
  row->set_timestamp_micros(now - 12 * kMinute);
  past.add_features("txn_avg");
  past.add_features("avg_per_event");
  v1::FeaturesResponse past_resp;
  grpc::ClientContext past_ctx;
  ASSERT_TRUE(features_->GetHistoricalFeatures(&past_ctx, past, &past_resp).ok());
  EXPECT_EQ(past_resp.columns(0).values(0).value().double_value(), 10);
  EXPECT_EQ(past_resp.columns(1).values(0).value().double_value(), 10);

  // The definitions list names the function.
  v1::ListDefinitionsResponse defs;
  grpc::ClientContext list_ctx;
  ASSERT_TRUE(admin_->ListDefinitions(&list_ctx, v1::ListDefinitionsRequest(), &defs).ok());
  bool listed = false;
  for (const auto& a : defs.aggregations()) {
    if (a.name() == "txn_avg") listed = a.function() == "avg_amount" && a.fn().empty();
  }
  EXPECT_TRUE(listed);

  // A new version (the maximum instead of the mean) is rebuilt from the retained events.
  v1::RegisterFunctionRequest reg;
  reg.set_name("avg_amount");
  reg.set_kind("aggregator");
  reg.set_source(R"(
function init() return nil end
function update(s, v) if s == nil or v > s then return v end return s end
function merge(a, b) if a == nil or (b ~= nil and b > a) then return b end return a end
function finalize(s) return s end
)");
  v1::RegisterFunctionResponse reg_resp;
  grpc::ClientContext reg_ctx;
  const grpc::Status registered = admin_->RegisterFunction(&reg_ctx, reg, &reg_resp);
  ASSERT_TRUE(registered.ok()) << registered.error_message();
  EXPECT_EQ(reg_resp.function().version(), 2u);
  EXPECT_EQ(Online("alice", {"txn_avg", "avg_per_event"}), (std::vector<double>{20, 10}));
}

}  // namespace
}  // namespace ods
