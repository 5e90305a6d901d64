// ods.v1.Features/Subscribe against a real odsd over gRPC: a subscriber that reads nothing
// during a write load (every write succeeds; when it reads it gets a gap with the exact range,
// then the newest changes, then live ones), resuming from a retained sequence, feature
// updates, bad requests, metrics, a clean shutdown with a stream open, and a stopped client
// with gRPC's default (multi-MB) receive window that must not fill odsd's socket.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <fstream>
#include <memory>
#include <thread>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "ods/v1/features.grpc.pb.h"
#include "ods/v1/store.grpc.pb.h"
#include "support/odsd_process.h"
#include "support/test_util.h"

namespace ods {
namespace {

using ::ods::testing::HttpGet;
using ::ods::testing::OdsdProcess;
using ::ods::testing::TempDir;
using ::ods::testing::WaitUntil;

constexpr uint64_t kQueue = 500;
constexpr uint64_t kRetained = 2000;

constexpr char kConfig[] = R"(
# A long grace: a stream that held the drain would make SIGTERM time out.
server: {shards: 4, shutdown_grace: 30s}
logging: {level: warn}
limits: {max_batch_size: 100}
subscriptions: {retained_changes: 2000, queue_size: 500, max_subscribers: 3}
tables:
  profile:
    key: user_id
    fields: {age: int64, bio: string}
event_templates:
  txn:
    key: user_id
    timestamp: ts
    fields: {amount: int64}
    allowed_lateness: 1h
aggregations:
  txn_sum: {template: txn, fn: sum, field: amount, window: 1h}
)";

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class SubscribeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string path = dir_.path() + "/odsd.yaml";
    std::ofstream(path) << kConfig;
    ASSERT_TRUE(odsd_.Start({"--config", path})) << odsd_.error();
    // A client that buffers little: without it, gRPC's receive window (grown by BDP probing)
    // would hold the whole write load and the server would never see the subscriber stall.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 << 10);
    auto channel = grpc::CreateCustomChannel(odsd_.grpc_address(),
                                             grpc::InsecureChannelCredentials(), args);
    features_ = v1::Features::NewStub(channel);
    store_ = v1::Store::NewStub(channel);
  }
  void TearDown() override {
    // Closes the connection first: odsd's drain otherwise waits seconds for the client to go.
    features_.reset();
    store_.reset();
    EXPECT_EQ(odsd_.Stop(SIGTERM, 15000), 0) << odsd_.Stderr();
  }

  // Puts profile records `first`..`first + n - 1` (keys "u<i>"), 100 per call.
  void PutProfiles(int first, int n) {
    for (int i = first; i < first + n;) {
      v1::PutRequest req;
      req.set_table("profile");
      for (int j = 0; j < 100 && i < first + n; ++j, ++i) {
        v1::Record* r = req.add_records();
        r->set_key("u" + std::to_string(i));
        (*r->mutable_fields())["age"].set_int64_value(i);
        (*r->mutable_fields())["bio"].set_string_value(std::string(200, 'b'));
      }
      grpc::ClientContext ctx;
      v1::PutResponse resp;
      const grpc::Status s = store_->Put(&ctx, req, &resp);
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
  }

  struct Stream {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader;
  };
  std::unique_ptr<Stream> Open(const v1::SubscribeRequest& req) {
    auto s = std::make_unique<Stream>();
    s->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    s->reader = features_->Subscribe(&s->ctx, req);
    return s;
  }
  // The first message of a stream that opened: no changes, the start sequence.
  uint64_t ReadHeader(Stream& s) {
    v1::SubscribeResponse m;
    EXPECT_TRUE(s.reader->Read(&m));
    EXPECT_EQ(m.changes_size(), 0);
    return m.next_sequence();
  }
  grpc::Status Refused(const v1::SubscribeRequest& req) {
    auto s = Open(req);
    v1::SubscribeResponse m;
    EXPECT_FALSE(s->reader->Read(&m));
    return s->reader->Finish();
  }
  std::string Metrics() { return HttpGet(odsd_.admin_address(), "/metrics"); }

  TempDir dir_;
  OdsdProcess odsd_;
  std::unique_ptr<v1::Features::Stub> features_;
  std::unique_ptr<v1::Store::Stub> store_;
};

v1::SubscribeRequest Tables(std::vector<std::string> tables) {
  v1::SubscribeRequest req;
  for (const std::string& t : tables) req.add_tables(t);
  return req;
}

TEST_F(SubscribeTest, StalledSubscriberGetsAnExactGapThenTheNewestThenLiveChanges) {
  auto stalled = Open(Tables({"profile"}));
  ASSERT_EQ(ReadHeader(*stalled), 1u);
  // It reads nothing more while 5000 records are written: each Put succeeds.
  constexpr int kWrites = 5000;
  PutProfiles(0, kWrites);
  const std::string metrics = Metrics();
  EXPECT_NE(metrics.find("ods_subscribers 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("ods_changes_published_total 5000\n"), std::string::npos);
  EXPECT_NE(metrics.find("ods_change_log_next_sequence 5001\n"), std::string::npos);
  EXPECT_NE(metrics.find("ods_change_log_oldest_sequence 3001\n"), std::string::npos);

  // Now it reads: what gRPC had buffered, contiguous from 1; then a gap that ends where the
  // newest kQueue changes begin; then exactly those. (Under load the stream may fall behind
  // earlier too, before flow control holds its write: an earlier gap, exact as well, then more
  // changes in order.)
  uint64_t expected = 1;
  uint64_t gaps = 0;
  std::set<std::string> after_gap;  // within a Put, changes come shard by shard
  v1::SubscribeResponse m;
  while (expected <= kWrites && stalled->reader->Read(&m)) {
    if (m.has_gap()) {
      ++gaps;
      EXPECT_EQ(m.gap().from_sequence(), expected);
      EXPECT_LE(m.gap().to_sequence(), kWrites + 1 - kQueue);
      EXPECT_EQ(m.gap().reason(), v1::GAP_OVERFLOW);
      expected = m.gap().to_sequence();
      after_gap.clear();
    }
    for (const v1::Change& c : m.changes()) {
      ASSERT_EQ(c.sequence(), expected);
      EXPECT_EQ(c.kind(), v1::CHANGE_PUT);
      EXPECT_EQ(c.record().key(), c.key());
      EXPECT_EQ("u" + std::to_string(c.record().fields().at("age").int64_value()), c.key());
      if (gaps > 0) after_gap.insert(c.key());
      ++expected;
    }
    EXPECT_EQ(m.next_sequence(), expected);
  }
  EXPECT_GE(gaps, 1u);
  EXPECT_EQ(expected, kWrites + 1u);
  // The newest kQueue changes (the last kQueue / 100 Puts) came after the last gap.
  std::set<std::string> newest;
  for (int i = kWrites - static_cast<int>(kQueue); i < kWrites; ++i) {
    newest.insert("u" + std::to_string(i));
  }
  EXPECT_EQ(after_gap, newest);
  EXPECT_NE(Metrics().find("ods_subscription_gaps_total " + std::to_string(gaps) + "\n"),
            std::string::npos);

  // Live.
  PutProfiles(kWrites, 1);
  ASSERT_TRUE(stalled->reader->Read(&m));
  ASSERT_EQ(m.changes_size(), 1);
  EXPECT_EQ(m.changes(0).sequence(), kWrites + 1u);
  EXPECT_FALSE(m.has_gap());

  // A new stream resuming from a retained sequence gets exactly the changes from there.
  v1::SubscribeRequest resume = Tables({"profile"});
  resume.set_from_sequence(kWrites - 9);
  auto again = Open(resume);
  expected = kWrites - 9;
  while (expected <= kWrites + 1 && again->reader->Read(&m)) {
    EXPECT_FALSE(m.has_gap());
    for (const v1::Change& c : m.changes()) ASSERT_EQ(c.sequence(), expected++);
  }
  EXPECT_EQ(expected, kWrites + 2u);
  stalled->ctx.TryCancel();
  again->ctx.TryCancel();
}

TEST_F(SubscribeTest, ResumeFromASequenceNoLongerRetainedStartsWithANotRetainedGap) {
  {
    // The log records from the first subscription on.
    auto first = Open(Tables({"profile"}));
    ReadHeader(*first);
    first->ctx.TryCancel();
  }
  PutProfiles(0, 2500);  // retained: 501..2500
  v1::SubscribeRequest req = Tables({"profile"});
  req.set_from_sequence(10);
  req.add_keys("u600");
  auto s = Open(req);
  v1::SubscribeResponse m;
  ASSERT_TRUE(s->reader->Read(&m));
  ASSERT_TRUE(m.has_gap());
  EXPECT_EQ(m.gap().from_sequence(), 10u);
  EXPECT_EQ(m.gap().to_sequence(), 2501 - kRetained);
  EXPECT_EQ(m.gap().reason(), v1::GAP_NOT_RETAINED);
  std::vector<std::string> keys;
  for (const v1::Change& c : m.changes()) keys.push_back(c.key());
  while (keys.empty() && s->reader->Read(&m)) {
    EXPECT_FALSE(m.has_gap());
    for (const v1::Change& c : m.changes()) keys.push_back(c.key());
  }
  EXPECT_EQ(keys, std::vector<std::string>{"u600"});
  s->ctx.TryCancel();
}

TEST_F(SubscribeTest, FeatureSubscriptionDeliversTheUpdatedAggregate) {
  v1::SubscribeRequest req;
  req.add_features("txn_sum");
  req.add_templates("txn");
  auto s = Open(req);
  ReadHeader(*s);
  v1::PushEventsRequest push;
  const int64_t now = NowMicros();
  for (int64_t amount : {5, 7}) {
    v1::Event* e = push.add_events();
    e->set_template_("txn");
    (*e->mutable_fields())["user_id"].set_string_value("alice");
    (*e->mutable_fields())["ts"].set_timestamp_micros_value(now);
    (*e->mutable_fields())["amount"].set_int64_value(amount);
  }
  grpc::ClientContext ctx;
  v1::PushEventsResponse resp;
  ASSERT_TRUE(features_->PushEvents(&ctx, push, &resp).ok());
  ASSERT_EQ(resp.applied(), 2u);
  int events = 0;
  int64_t last_sum = 0;
  v1::SubscribeResponse m;
  while ((events < 2 || last_sum != 12) && s->reader->Read(&m)) {
    for (const v1::Change& c : m.changes()) {
      EXPECT_EQ(c.kind(), v1::CHANGE_EVENT);
      EXPECT_EQ(c.source(), "txn");
      EXPECT_EQ(c.event_time_micros(), now);
      ++events;
    }
    for (const v1::FeatureUpdate& u : m.features()) {
      EXPECT_EQ(u.feature(), "txn_sum");
      EXPECT_EQ(u.entity(), "alice");
      EXPECT_EQ(u.status(), v1::PRESENT);
      last_sum = u.value().value().int64_value();
    }
  }
  EXPECT_EQ(events, 2);
  EXPECT_EQ(last_sum, 12);
  s->ctx.TryCancel();
}

TEST_F(SubscribeTest, BadRequestsAreRefusedWithTheirReason) {
  grpc::Status s = Refused(v1::SubscribeRequest());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = Refused(Tables({"nope"}));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("'nope'"), std::string::npos) << s.error_message();
  v1::SubscribeRequest feature;
  feature.add_features("nope_sum");
  s = Refused(feature);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("'nope_sum'"), std::string::npos) << s.error_message();
  v1::SubscribeRequest zero = Tables({"profile"});
  zero.set_from_sequence(0);
  EXPECT_EQ(Refused(zero).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::SubscribeRequest future = Tables({"profile"});
  future.set_from_sequence(1000);
  s = Refused(future);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("from_sequence 1000"), std::string::npos);
}

TEST_F(SubscribeTest, MoreThanMaxSubscribersIsResourceExhausted) {
  std::vector<std::unique_ptr<Stream>> open;
  for (int i = 0; i < 3; ++i) {
    open.push_back(Open(Tables({"profile"})));
    ReadHeader(*open.back());
  }
  EXPECT_EQ(Refused(Tables({"profile"})).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  for (auto& s : open) s->ctx.TryCancel();
}

// A stream whose client reads nothing must not hold the drain: SIGTERM exits at once, 0.
TEST_F(SubscribeTest, ShutdownEndsOpenStreams) {
  auto stalled = Open(Tables({"profile"}));
  ASSERT_EQ(ReadHeader(*stalled), 1u);
  PutProfiles(0, 3000);
  // Below the 30 s grace: a stream that held the drain would time this out.
  EXPECT_EQ(odsd_.Stop(SIGTERM, 15000), 0);
  v1::SubscribeResponse m;
  while (stalled->reader->Read(&m)) {
  }
  const grpc::Status s = stalled->reader->Finish();
  EXPECT_TRUE(s.error_code() == grpc::StatusCode::UNAVAILABLE ||
              s.error_code() == grpc::StatusCode::CANCELLED)
      << s.error_code() << " " << s.error_message();
  ASSERT_TRUE(odsd_.Start({"--config", dir_.path() + "/odsd.yaml"})) << odsd_.error();
}

// A child process with stdout and stderr to `out_path`; SIGKILLed by the destructor.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& out_path) {
    // Built before fork: between fork and exec only async-signal-safe calls (gRPC's threads).
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (out >= 0) {
        dup2(out, STDOUT_FILENO);
        dup2(out, STDERR_FILENO);
      }
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Child() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The value of an unlabelled metric in a /metrics answer; -1 if absent.
double MetricValue(const std::string& metrics, const std::string& name) {
  const size_t at = metrics.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(metrics.substr(at + name.size() + 2));
}

// Bytes the kernel holds to send (sent and unacknowledged, or not yet sent) on every TCP socket
// whose local port is `port`: the tx_queue column of /proc/net/tcp and /proc/net/tcp6 (gRPC
// listens dual-stack, so IPv4 clients show in tcp6 as v4-mapped addresses).
uint64_t SendQueueBytes(uint16_t port) {
  uint64_t total = 0;
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      // "  1: 0100007F:1F90 0100007F:D2A4 01 00000000:00000000 ..."
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues;
      fields >> slot >> local >> remote >> state >> queues;
      const size_t colon = local.rfind(':');
      if (colon == std::string::npos || queues.find(':') == std::string::npos ||
          std::stoul(local.substr(colon + 1), nullptr, 16) != port) {
        continue;
      }
      total += std::stoull(queues.substr(0, queues.find(':')), nullptr, 16);
    }
  }
  return total;
}

// A client that stops reading while keeping gRPC C-core's default window (BDP probing, several
// MB) would let odsd write until its TCP write blocks, and a blocked write makes gRPC run a
// backup poller that slows every writer. odsd holds the stream instead once the connection's
// send queue backs up, so its socket never holds more than about kMaxUnsentBytes and a message;
// the client, when it reads again, gets a gap notice for what it missed.
TEST_F(SubscribeTest, StoppedClientWithADefaultWindowDoesNotFillOdsdsSocket) {
  const std::string out = dir_.path() + "/subscriber.out";
  Child subscriber({ODS_PYTHON3, ODS_PYTHON_SUBSCRIBER, "--stubs", ODS_PYTHON_STUBS_DIR,
                    "--target", odsd_.grpc_address(), "--table", "profile", "--bdp-probe"},
                   out);
  ASSERT_GT(subscriber.pid(), 0);
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(out).find("subscribed") != std::string::npos; },
                        std::chrono::seconds(30)))
      << ReadFile(out);
  ASSERT_EQ(kill(subscriber.pid(), SIGSTOP), 0);

  const auto port = static_cast<uint16_t>(
      std::stoul(odsd_.grpc_address().substr(odsd_.grpc_address().rfind(':') + 1)));
  PutProfiles(0, 20000);  // ~5 MB of changes, more than the client's window
  // The write of each message completes (or is held) within the pump's poll interval.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const uint64_t queued = SendQueueBytes(port);
  EXPECT_LT(queued, 1u << 20) << "odsd's socket holds what the stopped client did not read";
  const std::string metrics = Metrics();
  EXPECT_GE(MetricValue(metrics, "ods_subscriber_socket_holds_total"), 1) << metrics;
  EXPECT_EQ(MetricValue(metrics, "ods_subscribers"), 1) << metrics;

  // Reading again, it learns what it missed.
  ASSERT_EQ(kill(subscriber.pid(), SIGCONT), 0);
  EXPECT_TRUE(WaitUntil(
      [&] { return ReadFile(out).find("reason=GAP_OVERFLOW") != std::string::npos; },
      std::chrono::seconds(30)))
      << ReadFile(out).substr(0, 2000);
}

}  // namespace
}  // namespace ods
