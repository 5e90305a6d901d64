// ods_bench: gRPC load generator for odsd (ods.v1.Store Get/Put, ods.v1.Features PushEvents,
// StreamEvents, GetOnlineFeatures) and for the bare echo server (ods.bench.Echo). Each client
// thread owns one channel (its own TCP connection) and one CompletionQueue and keeps a fixed
// number of calls outstanding (the concurrency, split over the threads). Closed loop (default): a
// call is restarted as soon as it completes. Open loop (--rate): calls start on a fixed schedule,
// each client thread's pacer thread sleeping until a call's start time (clock_nanosleep with a
// 1 ns timer slack, so within tens of microseconds: gRPC alarms fire on a millisecond timer) and
// starting it on a free slot, and latency is measured from the scheduled start, so a slow server
// cannot hide its queueing (no coordinated omission). Calls
// completing inside the measurement window (after --warmup, for --duration) are counted and their
// latency recorded in a per-thread, per-operation LatencyHistogram (no allocation per call).
// The stream workload instead writes one StreamEvents call per thread with a blocking writer.
//
// Exit codes: 0 all calls succeeded; 1 at least one call failed (errors are counted and
// reported, never ignored); 2 bad usage.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <sys/prctl.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "latency_histogram.h"
#include "machine_probe.h"
#include "ods/bench/echo.grpc.pb.h"
#include "ods/common/absl_cpu_frequency.h"
#include "ods/common/vcpu_idle.h"
#include "ods/v1/features.grpc.pb.h"
#include "ods/v1/functions.grpc.pb.h"
#include "ods/v1/store.grpc.pb.h"

namespace ods::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr std::string_view kUsage = R"(Usage: ods_bench [options]

gRPC load against odsd (ods.v1.Store, ods.v1.Features, ods.v1.Functions) or ods_echo_server
(ods.bench.Echo).

Options:
  --addr HOST:PORT       server address (default 127.0.0.1:7070)
  --workload W           one of (default get):
                           get, put, mixed  Store Get / Put / both (--get-percent)
                           all              Put, Get, GetOnlineFeatures (--entities x
                                            --features) and PushEvents (--batch events) in
                                            the shares of --mix, over the same key space
                           echo             ods.bench.Echo
                           load             only Puts keys 0..N-1, each once (the preload),
                                            prints the time and exits
                           features         GetOnlineFeatures of --entities random keys x
                                            --features; keys/s = feature values/s
                           push             PushEvents of --batch events; keys/s = events/s
                           stream           one StreamEvents call per thread writing messages of
                                            --batch events for the whole run (--concurrency is
                                            ignored); keys/s = events the server applied / s
                           load-events      only pushes one event for each of keys 0..N-1 (the
                                            features preload), prints the time and exits
                           execute          ods.v1.Functions Execute of procedure --function on
                                            --batch random keys of --table with args {by: 1};
                                            keys/s = records the procedure ran on
  --concurrency N        calls kept outstanding in total (default 16)
  --threads N            client threads, each with its own channel and queue (default 1)
  --rate R               open loop: start R calls/s in total (split over the threads) on a fixed
                         schedule instead of restarting calls as they complete; latency counts
                         from each call's scheduled start, so it includes waiting for one of the
                         --concurrency slots. Default: closed loop
  --duration SECONDS     measurement window (default 10)
  --warmup SECONDS       load before the window, not measured (default 2)
  --keys N               key space: keys key:000000000000 .. N-1 (default 100000)
  --key-prefix P         prefix of the keys instead of 'key:' (the 12 digits follow)
  --field-names A,B,C,D  names of the four fields instead of f0,f1,f2,f3 (same types, in order)
  --numeric-fields K     records of K numeric fields f0..fK-1 instead of the four fields:
                         even j int64 = i + j, odd j double = i/3.0 + j/10.0 (i: the key's
                         index), e.g. 10 for the memory comparison with redis hashes
  --value-bytes N        size of the string field f0 of a record, and of the echo payload
                         (default 16)
  --table NAME           table for get/put/mixed (default user_features, free-form)
  --batch N              keys per Get, records per Put, events per PushEvents call or
                         StreamEvents message (default 1; 100 for push and stream)
  --get-percent P        share of Get calls in the mixed workload (default 90)
  --mix P,G,F,E          percent of Put, Get, GetOnlineFeatures and PushEvents calls of the all
                         workload (summing to 100; default 20,50,20,10)
  --entities N           entity keys per GetOnlineFeatures call (default 100)
  --features A,B,C       feature refs of GetOnlineFeatures, e.g. tx_count@1h,amount_sum@24h
                         (required for the features workload)
  --function NAME        procedure of the execute workload (register it first, e.g. with
                         ods register NAME procedure FILE)
  --template NAME        event template of pushed events (default tx)
  --event-key-field F    event field holding the entity key (default user)
  --event-time-field F   event field holding the event time, sent as now (default ts)
  --no-preload           do not Put the key space before a get or mixed workload, nor push one
                         event per key before a features workload
  --json FILE            also write the results as JSON to FILE
  --help                 this help

Records have four fields: f0 string (--value-bytes), f1 int64, f2 double, f3 bool (or, with
--numeric-fields K, K int64 and double fields).
For the typed table user_profile: --field-names country,age,score,premium.
Events have the key field (a random key of the key space), the time field (now), amount
(double) and merchant (string, one of 500). A features response must have one column per
feature of --entities values, and PushEvents must apply every event, else the call is an error.
Prints per operation: calls/s, keys/s and latency p50/p99/p99.9/max in microseconds, and one
machine-readable line per operation starting with "RESULT". Misses: keys not found (get), and
feature values answered NOT_FOUND (features).
)";

enum class Workload {
  kGet,
  kPut,
  kMixed,
  kAll,
  kEcho,
  kLoad,
  kFeatures,
  kPush,
  kStream,
  kLoadEvents,
  kExecute
};
enum Op : int {
  kOpGet = 0,
  kOpPut = 1,
  kOpEcho = 2,
  kOpFeatures = 3,
  kOpPush = 4,
  kOpStream = 5,
  kOpExecute = 6,
  kOpCount = 7
};
constexpr std::string_view kOpNames[kOpCount] = {"get",  "put",    "echo",   "features",
                                                 "push", "stream", "execute"};

struct Options {
  std::string addr = "127.0.0.1:7070";
  Workload workload = Workload::kGet;
  std::string workload_name = "get";
  int concurrency = 16;
  int threads = 1;
  double duration_s = 10;
  double warmup_s = 2;
  uint64_t keys = 100'000;
  std::string key_prefix = "key:";
  std::string field_names[4] = {"f0", "f1", "f2", "f3"};
  int numeric_fields = 0;  // > 0: records of that many numeric fields instead of the four
  size_t value_bytes = 16;
  std::string table = "user_features";
  int batch = 1;
  bool batch_set = false;  // --batch given; else push and stream use 100
  int get_percent = 90;
  int mix[4] = {20, 50, 20, 10};  // all workload: percent of put, get, features, push calls
  bool preload = true;
  std::string json_path;
  double rate = 0;  // calls/s over all threads; 0: closed loop
  int entities = 100;
  std::vector<std::string> features;
  std::string event_template = "tx";
  std::string event_key_field = "user";
  std::string event_time_field = "ts";
  std::string function;  // execute workload
};

std::vector<std::string> SplitCommas(const std::string& v) {
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t comma = v.find(',', start);
    parts.push_back(v.substr(start, comma == std::string::npos ? comma : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return parts;
}

// Returns -1 to continue, or an exit code.
int ParseOptions(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (arg == "--no-preload") {
      o.preload = false;
      continue;
    }
    if (i + 1 >= argc) {
      std::cerr << "ods_bench: " << arg << " needs a value (see --help)\n";
      return 2;
    }
    const std::string v = argv[++i];
    char* end = nullptr;
    const double num = std::strtod(v.c_str(), &end);
    const bool numeric = end != v.c_str() && *end == '\0' && num >= 0;
    auto need_number = [&](double min) {
      if (!numeric || num < min) {
        std::cerr << "ods_bench: " << arg << " wants a number >= " << min << ", got '" << v
                  << "'\n";
        return false;
      }
      return true;
    };
    if (arg == "--addr") {
      o.addr = v;
    } else if (arg == "--workload") {
      o.workload_name = v;
      if (v == "get") {
        o.workload = Workload::kGet;
      } else if (v == "put") {
        o.workload = Workload::kPut;
      } else if (v == "mixed") {
        o.workload = Workload::kMixed;
      } else if (v == "all") {
        o.workload = Workload::kAll;
      } else if (v == "echo") {
        o.workload = Workload::kEcho;
      } else if (v == "load") {
        o.workload = Workload::kLoad;
      } else if (v == "execute") {
        o.workload = Workload::kExecute;
      } else if (v == "features") {
        o.workload = Workload::kFeatures;
      } else if (v == "push") {
        o.workload = Workload::kPush;
      } else if (v == "stream") {
        o.workload = Workload::kStream;
      } else if (v == "load-events") {
        o.workload = Workload::kLoadEvents;
      } else {
        std::cerr << "ods_bench: --workload wants get|put|mixed|all|echo|load|features|push|"
                     "stream|load-events|execute, got '"
                  << v << "'\n";
        return 2;
      }
    } else if (arg == "--concurrency") {
      if (!need_number(1)) return 2;
      o.concurrency = static_cast<int>(num);
    } else if (arg == "--threads") {
      if (!need_number(1)) return 2;
      o.threads = static_cast<int>(num);
    } else if (arg == "--duration") {
      if (!need_number(0.1)) return 2;
      o.duration_s = num;
    } else if (arg == "--warmup") {
      if (!need_number(0)) return 2;
      o.warmup_s = num;
    } else if (arg == "--keys") {
      if (!need_number(1)) return 2;
      o.keys = static_cast<uint64_t>(num);
    } else if (arg == "--key-prefix") {
      o.key_prefix = v;
    } else if (arg == "--field-names") {
      const std::vector<std::string> names = SplitCommas(v);
      if (names.size() != 4 ||
          std::any_of(names.begin(), names.end(), [](const std::string& n) { return n.empty(); })) {
        std::cerr << "ods_bench: --field-names wants four comma-separated names, got '" << v
                  << "'\n";
        return 2;
      }
      for (int f = 0; f < 4; ++f) o.field_names[f] = names[static_cast<size_t>(f)];
    } else if (arg == "--numeric-fields") {
      if (!need_number(1) || num > 1000) return 2;
      o.numeric_fields = static_cast<int>(num);
    } else if (arg == "--value-bytes") {
      if (!need_number(0)) return 2;
      o.value_bytes = static_cast<size_t>(num);
    } else if (arg == "--table") {
      o.table = v;
    } else if (arg == "--batch") {
      if (!need_number(1)) return 2;
      o.batch = static_cast<int>(num);
      o.batch_set = true;
    } else if (arg == "--get-percent") {
      if (!need_number(0) || num > 100) return 2;
      o.get_percent = static_cast<int>(num);
    } else if (arg == "--mix") {
      const std::vector<std::string> parts = SplitCommas(v);
      int sum = 0;
      bool ok = parts.size() == 4;
      for (size_t k = 0; ok && k < 4; ++k) {
        char* e = nullptr;
        const long p = std::strtol(parts[k].c_str(), &e, 10);
        ok = !parts[k].empty() && *e == '\0' && p >= 0 && p <= 100;
        o.mix[k] = static_cast<int>(p);
        sum += o.mix[k];
      }
      if (!ok || sum != 100) {
        std::cerr << "ods_bench: --mix wants four percentages PUT,GET,FEATURES,PUSH summing to "
                     "100, got '"
                  << v << "'\n";
        return 2;
      }
    } else if (arg == "--json") {
      o.json_path = v;
    } else if (arg == "--rate") {
      if (!need_number(0.001)) return 2;
      o.rate = num;
    } else if (arg == "--entities") {
      if (!need_number(1)) return 2;
      o.entities = static_cast<int>(num);
    } else if (arg == "--function") {
      o.function = v;
    } else if (arg == "--features") {
      o.features = SplitCommas(v);
      if (std::any_of(o.features.begin(), o.features.end(),
                      [](const std::string& f) { return f.empty(); })) {
        std::cerr << "ods_bench: --features wants comma-separated feature refs, got '" << v
                  << "'\n";
        return 2;
      }
    } else if (arg == "--template") {
      o.event_template = v;
    } else if (arg == "--event-key-field") {
      o.event_key_field = v;
    } else if (arg == "--event-time-field") {
      o.event_time_field = v;
    } else {
      std::cerr << "ods_bench: unknown option " << arg << " (see --help)\n";
      return 2;
    }
  }
  if (o.workload == Workload::kExecute && o.function.empty()) {
    std::cerr << "ods_bench: --workload execute needs --function (see --help)\n";
    return 2;
  }
  if ((o.workload == Workload::kFeatures || o.workload == Workload::kAll) && o.features.empty()) {
    std::cerr << "ods_bench: --workload " << o.workload_name << " needs --features (see --help)\n";
    return 2;
  }
  if (!o.batch_set && (o.workload == Workload::kPush || o.workload == Workload::kStream)) {
    o.batch = 100;
  }
  if (o.workload == Workload::kStream) {
    o.concurrency = o.threads;  // one stream per thread
  }
  if (o.threads > o.concurrency) o.threads = o.concurrency;
  return -1;
}

// Writes key i (the prefix, then i zero-padded to at least 12 digits, as "%012llu" without
// printf's cost: a features call sets 100 keys) into `out`, reusing its buffer.
void SetKey(const Options& o, uint64_t i, std::string& out) {
  char digits[20];
  const size_t n =
      static_cast<size_t>(std::to_chars(digits, digits + sizeof(digits), i).ptr - digits);
  out.assign(o.key_prefix);
  if (n < 12) out.append(12 - n, '0');
  out.append(digits, n);
}

std::string KeyOf(const Options& o, uint64_t i) {
  std::string key;
  SetKey(o, i, key);
  return key;
}

// A record of the benchmark: f0 string of `value_bytes`, f1 int64, f2 double, f3 bool (the
// names are o.field_names); or, with --numeric-fields K, fields f0..fK-1 where even j is int64
// i + j and odd j is double i / 3.0 + j / 10.0 (memory_compare.sh writes the same values to
// redis, so keep the two in step).
void FillRecord(const Options& o, uint64_t i, ods::v1::Record& r) {
  SetKey(o, i, *r.mutable_key());
  auto& fields = *r.mutable_fields();
  if (o.numeric_fields > 0) {
    for (int j = 0; j < o.numeric_fields; ++j) {
      ods::v1::Value& v = fields["f" + std::to_string(j)];
      if (j % 2 == 0) {
        v.set_int64_value(static_cast<int64_t>(i) + j);
      } else {
        v.set_double_value(static_cast<double>(i) / 3.0 + static_cast<double>(j) / 10.0);
      }
    }
    return;
  }
  fields[o.field_names[0]].set_string_value(
      std::string(o.value_bytes, static_cast<char>('a' + i % 26)));
  fields[o.field_names[1]].set_int64_value(static_cast<int64_t>(i));
  fields[o.field_names[2]].set_double_value(static_cast<double>(i) / 3.0);
  fields[o.field_names[3]].set_bool_value(i % 2 == 0);
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The values of one event inside a PushEventsRequest, so that a call rewrites them without map
// lookups (protobuf map values keep their address until the map changes).
struct EventRefs {
  ods::v1::Value* key;
  ods::v1::Value* time;
  ods::v1::Value* amount;
  ods::v1::Value* merchant;
};

// Appends an event of the benchmark's template to `req` and returns where its values are.
EventRefs AddEvent(const Options& o, ods::v1::PushEventsRequest& req) {
  ods::v1::Event& e = *req.add_events();
  e.set_template_(o.event_template);
  auto& fields = *e.mutable_fields();
  EventRefs refs{&fields[o.event_key_field], &fields[o.event_time_field], &fields["amount"],
                 &fields["merchant"]};
  refs.key->set_string_value(KeyOf(o, 0));
  refs.time->set_timestamp_micros_value(0);
  refs.amount->set_double_value(0);
  refs.merchant->set_string_value("m0");
  return refs;
}

// Sets an event to entity `entity`, stamped `now_micros`, with amount and merchant from `r`.
void SetEvent(const Options& o, const EventRefs& e, uint64_t entity, int64_t now_micros,
              uint64_t r) {
  SetKey(o, entity, *e.key->mutable_string_value());
  e.time->set_timestamp_micros_value(now_micros);
  e.amount->set_double_value(static_cast<double>(r % 100'000) / 100.0);
  std::string& merchant = *e.merchant->mutable_string_value();
  merchant.assign("m");
  merchant.append(std::to_string((r >> 20) % 500));
}

class Random {
 public:
  explicit Random(uint64_t seed) : x_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t Next() {
    x_ ^= x_ << 13;
    x_ ^= x_ >> 7;
    x_ ^= x_ << 17;
    return x_;
  }

 private:
  uint64_t x_;
};

// Figures of one operation kind, per thread, merged at the end.
struct OpStats {
  LatencyHistogram latency;  // calls that completed OK inside the window
  uint64_t keys = 0;         // keys of those calls
  uint64_t misses = 0;       // Get results with found=false, inside the window
  uint64_t errors = 0;       // failed calls, whenever they completed (warm-up included)
  std::map<std::string, uint64_t> error_kinds;  // "CODE: message" -> count; touched on error only

  void Merge(const OpStats& o) {
    latency.Merge(o.latency);
    keys += o.keys;
    misses += o.misses;
    errors += o.errors;
    for (const auto& [k, n] : o.error_kinds) error_kinds[k] += n;
  }
};

// How long a channel may take to connect before ods_bench gives up on the server.
constexpr auto kConnectTimeout = std::chrono::seconds(10);

// A channel with a connection of its own, connected: waits until it is READY, for at most
// kConnectTimeout. Returns nullptr, with `error` set, if it is not ready by then.
//
// Waiting for READY rides out a first connection that fails for no reason of the server's: gRPC
// 1.51 can report a connect in progress as failed with whatever errno its mutexes left
// (ods/common/absl_cpu_frequency.h: main() primes the one known case; CI's load test failed on it
// on 2026-12-04, "No such file or directory", four preload threads connecting at once). Calls
// on such a channel fail UNAVAILABLE until it reconnects after its ~1 s backoff.
std::shared_ptr<grpc::Channel> ConnectChannel(const std::string& addr, int index,
                                              std::string& error) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  // A distinct argument per thread keeps gRPC from sharing one connection between channels.
  args.SetInt("ods_bench.channel_index", index);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel = grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + kConnectTimeout)) {
    error = "could not connect to " + addr + " within " + std::to_string(kConnectTimeout.count()) +
            " s";
    return nullptr;
  }
  return channel;
}

// One outstanding call; reused for the next call as soon as it completes.
struct Slot {
  Op op = kOpGet;
  // Latency counts from here: when the call started (closed loop), or its scheduled start (open
  // loop; the pacer starts no call early): a call that started late, waiting for the pacer's
  // wake-up or a free slot, counts the wait.
  SteadyClock::time_point start;
  std::optional<grpc::ClientContext> ctx;  // a ClientContext serves one call only
  grpc::Status status;
  ods::v1::GetRequest get_req;
  ods::v1::GetResponse get_resp;
  ods::v1::PutRequest put_req;
  ods::v1::PutResponse put_resp;
  ods::bench::EchoRequest echo_req;
  ods::bench::EchoResponse echo_resp;
  std::unique_ptr<grpc::ClientAsyncResponseReader<ods::v1::GetResponse>> get_rpc;
  std::unique_ptr<grpc::ClientAsyncResponseReader<ods::v1::PutResponse>> put_rpc;
  std::unique_ptr<grpc::ClientAsyncResponseReader<ods::bench::EchoResponse>> echo_rpc;
  ods::v1::GetOnlineFeaturesRequest features_req;
  // Features answers arrive as bytes and are checked by a walk over their wire format
  // (FeaturesAnswer), not parsed into 2,000 messages: on a 2-core box the client's CPU is taken
  // from odsd, and parsing was most of it.
  grpc::ByteBuffer features_answer;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> features_raw_rpc;
  ods::v1::PushEventsRequest push_req;
  std::vector<EventRefs> push_events;  // the events of push_req
  ods::v1::PushEventsResponse push_resp;
  std::unique_ptr<grpc::ClientAsyncResponseReader<ods::v1::PushEventsResponse>> push_rpc;
  ods::v1::ExecuteRequest exec_req;
  ods::v1::ExecuteResponse exec_resp;
  std::unique_ptr<grpc::ClientAsyncResponseReader<ods::v1::ExecuteResponse>> exec_rpc;
};

// What CheckFeatures needs of a FeaturesResponse, read off its wire format without building
// messages: per column, how many values, statuses (and of them NOT_FOUND) and event times.
struct FeaturesAnswer {
  struct Column {
    int values = 0;
    int statuses = 0;
    int event_times = 0;
    uint64_t not_found = 0;
  };
  std::vector<Column> columns;
  std::string error;  // non-empty: the bytes are not a FeaturesResponse
};

// Protobuf wire format: a varint from `p` (advanced), false past `end` or over 10 bytes.
bool ReadVarint(const char*& p, const char* end, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    const auto b = static_cast<uint8_t>(*p++);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

// Skips a field of wire type `type` (its tag read); false if malformed.
bool SkipField(const char*& p, const char* end, uint64_t type) {
  uint64_t v = 0;
  switch (type) {
    case 0:
      return ReadVarint(p, end, v);
    case 1:
      if (end - p < 8) return false;
      p += 8;
      return true;
    case 2:
      if (!ReadVarint(p, end, v) || v > static_cast<uint64_t>(end - p)) return false;
      p += v;
      return true;
    case 5:
      if (end - p < 4) return false;
      p += 4;
      return true;
    default:
      return false;
  }
}

FeaturesAnswer WalkFeaturesAnswer(std::string_view bytes) {
  FeaturesAnswer out;
  auto fail = [&out](const char* why) {
    out.error = why;
    return out;
  };
  const char* p = bytes.data();
  const char* const end = p + bytes.size();
  uint64_t tag = 0;
  uint64_t len = 0;
  while (p < end) {
    if (!ReadVarint(p, end, tag)) return fail("bad tag");
    if (tag != ((1 << 3) | 2)) {  // columns = 1, length-delimited
      if (!SkipField(p, end, tag & 7)) return fail("bad field");
      continue;
    }
    if (!ReadVarint(p, end, len) || len > static_cast<uint64_t>(end - p)) {
      return fail("bad column length");
    }
    const char* c = p;
    const char* const column_end = p + len;
    p = column_end;
    FeaturesAnswer::Column& col = out.columns.emplace_back();
    // One status (field 3) or event time (field 4).
    auto count = [&col](uint64_t field, uint64_t v) {
      if (field == 3) {
        ++col.statuses;
        col.not_found += v == ods::v1::NOT_FOUND ? 1 : 0;
      } else {
        ++col.event_times;
      }
    };
    while (c < column_end) {
      if (!ReadVarint(c, column_end, tag)) return fail("bad column tag");
      const uint64_t field = tag >> 3;
      const uint64_t type = tag & 7;
      uint64_t v = 0;
      if ((field == 3 || field == 4) && type == 2) {  // packed
        if (!ReadVarint(c, column_end, len) || len > static_cast<uint64_t>(column_end - c)) {
          return fail("bad packed length");
        }
        const char* const packed_end = c + len;
        while (c < packed_end) {
          if (!ReadVarint(c, packed_end, v)) return fail("bad packed varint");
          count(field, v);
        }
      } else if ((field == 3 || field == 4) && type == 0) {  // unpacked
        if (!ReadVarint(c, column_end, v)) return fail("bad varint");
        count(field, v);
      } else {
        if (field == 2 && type == 2) ++col.values;
        if (!SkipField(c, column_end, type)) return fail("bad column field");
      }
    }
  }
  return out;
}

class ClientThread {
 public:
  // `begin`: when the run (warm-up included) starts; open-loop schedules count from there.
  // `channel`: connected (ConnectChannel), this thread's alone.
  ClientThread(const Options& o, int index, std::shared_ptr<grpc::Channel> channel, int slots,
               SteadyClock::time_point begin, SteadyClock::time_point window_start,
               SteadyClock::time_point window_end)
      : o_(o),
        channel_(std::move(channel)),
        store_(ods::v1::Store::NewStub(channel_)),
        echo_(ods::bench::Echo::NewStub(channel_)),
        features_(ods::v1::Features::NewStub(channel_)),
        functions_(ods::v1::Functions::NewStub(channel_)),
        generic_(channel_),
        random_(static_cast<uint64_t>(index) + 7),
        slots_(static_cast<size_t>(slots)),
        window_start_(window_start),
        window_end_(window_end) {
    if (o.rate > 0) {
      // Thread t of T starts calls at begin + (t + k*T) / rate: the threads interleave.
      interval_s_ = static_cast<double>(o.threads) / o.rate;
      schedule_origin_ = begin + ToDuration(static_cast<double>(index) / o.rate);
    }
    for (Slot& s : slots_) {
      switch (o.workload) {
        case Workload::kFeatures:
          for (int k = 0; k < o.entities; ++k) s.features_req.add_entities(KeyOf(o, 0));
          for (const std::string& f : o.features) s.features_req.add_features(f);
          break;
        case Workload::kPush:
          for (int k = 0; k < o.batch; ++k) s.push_events.push_back(AddEvent(o, s.push_req));
          break;
        case Workload::kEcho:
          s.echo_req.set_payload(std::string(o.value_bytes, 'e'));
          break;
        case Workload::kExecute:
          s.exec_req.set_function(o.function);
          s.exec_req.set_table(o.table);
          (*s.exec_req.mutable_args())["by"].set_int64_value(1);
          for (int k = 0; k < o.batch; ++k) s.exec_req.add_keys(KeyOf(o, 0));
          break;
        case Workload::kAll:
          for (int k = 0; k < o.entities; ++k) s.features_req.add_entities(KeyOf(o, 0));
          for (const std::string& f : o.features) s.features_req.add_features(f);
          for (int k = 0; k < o.batch; ++k) s.push_events.push_back(AddEvent(o, s.push_req));
          [[fallthrough]];
        default:
          s.get_req.set_table(o.table);
          for (int k = 0; k < o.batch; ++k) s.get_req.add_keys(KeyOf(o, 0));
          s.put_req.set_table(o.table);
          for (int k = 0; k < o.batch; ++k) FillRecord(o, 0, *s.put_req.add_records());
          break;
      }
    }
  }

  void Run() {
    if (o_.workload == Workload::kStream) {
      RunStream();
      return;
    }
    if (o_.rate > 0) {
      RunOpenLoop();
      return;
    }
    for (Slot& s : slots_) Start(s, SteadyClock::now());
    size_t outstanding = slots_.size();
    void* tag = nullptr;
    bool ok = false;
    while (outstanding > 0 && cq_.Next(&tag, &ok)) {
      Slot& s = *static_cast<Slot*>(tag);
      const SteadyClock::time_point now = SteadyClock::now();
      Complete(s, now);
      if (now < window_end_) {
        Start(s, SteadyClock::now());
      } else {
        --outstanding;
      }
    }
    cq_.Shutdown();
    while (cq_.Next(&tag, &ok)) {
    }
  }

  const OpStats& stats(Op op) const { return stats_[op]; }
  // Open loop: how late calls of the window started after their scheduled time (the pacer's
  // wake-up, or waiting for a free slot).
  const LatencyHistogram& start_lag() const { return start_lag_; }
  // Stream: events the server applied, and seconds from opening the stream to its answer.
  uint64_t stream_applied() const { return stream_applied_; }
  double stream_seconds() const { return stream_seconds_; }

 private:
  static SteadyClock::duration ToDuration(double seconds) {
    return std::chrono::duration_cast<SteadyClock::duration>(
        std::chrono::duration<double>(seconds));
  }

  // Open loop: this thread completes calls while a pacer thread starts them on schedule. A slot
  // is the pacer's while on free_slots_, gRPC's while its call runs, and this thread's while it
  // completes; the hand-overs go through free_mu_ and the completion queue.
  // Both threads ask for a short scheduler slice: a late start or a late completion would count
  // in the call's latency, and on a 2-core box a woken client thread could otherwise wait ~1.4 ms
  // behind an odsd thread's slice, a delay a client on its own machine would not have.
  void RunOpenLoop() {
    RequestShortSlice();
    for (Slot& s : slots_) free_slots_.push_back(&s);
    std::thread pacer([this] { Pace(); });
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) {  // until the pacer shuts the queue down
      Slot& s = *static_cast<Slot*>(tag);
      Complete(s, SteadyClock::now());
      {
        const std::lock_guard<std::mutex> lock(free_mu_);
        free_slots_.push_back(&s);
      }
      free_cv_.notify_one();
    }
    pacer.join();
  }

  // The pacer: sleeps until each call's scheduled start (call k at schedule_origin_ + k *
  // interval_s_), takes a free slot (waiting for one if all are out) and starts the call. Once
  // the schedule passes the window's end and every call has completed, shuts the queue down.
  void Pace() {
    // The default 50 us timer slack would make every wake-up late by up to that much.
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    RequestShortSlice();  // see RunOpenLoop
    for (uint64_t k = 0;; ++k) {
      const SteadyClock::time_point at =
          schedule_origin_ + ToDuration(static_cast<double>(k) * interval_s_);
      if (at >= window_end_) break;
      SleepUntil(at);
      Slot* s = nullptr;
      {
        std::unique_lock<std::mutex> lock(free_mu_);
        free_cv_.wait(lock, [this] { return !free_slots_.empty(); });
        s = free_slots_.back();
        free_slots_.pop_back();
      }
      const SteadyClock::time_point now = SteadyClock::now();
      if (now >= window_start_ && now < window_end_) {
        start_lag_.Record(static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - at).count()));
      }
      Start(*s, at);
    }
    {
      std::unique_lock<std::mutex> lock(free_mu_);
      free_cv_.wait(lock, [this] { return free_slots_.size() == slots_.size(); });
    }
    cq_.Shutdown();
  }

  Op PickOp() {
    switch (o_.workload) {
      case Workload::kGet:
        return kOpGet;
      case Workload::kPut:
        return kOpPut;
      case Workload::kFeatures:
        return kOpFeatures;
      case Workload::kPush:
        return kOpPush;
      case Workload::kExecute:
        return kOpExecute;
      case Workload::kEcho:
      case Workload::kLoad:        // never reaches the client threads
      case Workload::kLoadEvents:  // never reaches the client threads
      case Workload::kStream:      // RunStream()
        return kOpEcho;
      case Workload::kMixed:
        return static_cast<int>(random_.Next() % 100) < o_.get_percent ? kOpGet : kOpPut;
      case Workload::kAll: {
        int r = static_cast<int>(random_.Next() % 100);
        constexpr Op kMixOps[4] = {kOpPut, kOpGet, kOpFeatures, kOpPush};
        for (int k = 0; k < 3; ++k) {
          if (r < o_.mix[k]) return kMixOps[k];
          r -= o_.mix[k];
        }
        return kMixOps[3];
      }
    }
    return kOpGet;
  }

  // Starts the slot's next call; its latency counts from `start` (see Slot::start).
  void Start(Slot& s, SteadyClock::time_point start) {
    s.op = PickOp();
    s.ctx.reset();
    s.ctx.emplace();
    s.ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    s.start = start;
    switch (s.op) {
      case kOpGet:
        for (int k = 0; k < o_.batch; ++k)
          SetKey(o_, random_.Next() % o_.keys, *s.get_req.mutable_keys(k));
        s.get_rpc = store_->PrepareAsyncGet(&*s.ctx, s.get_req, &cq_);
        s.get_rpc->StartCall();
        s.get_rpc->Finish(&s.get_resp, &s.status, &s);
        break;
      case kOpPut:
        for (int k = 0; k < o_.batch; ++k) {
          SetKey(o_, random_.Next() % o_.keys, *s.put_req.mutable_records(k)->mutable_key());
        }
        s.put_rpc = store_->PrepareAsyncPut(&*s.ctx, s.put_req, &cq_);
        s.put_rpc->StartCall();
        s.put_rpc->Finish(&s.put_resp, &s.status, &s);
        break;
      case kOpFeatures:
        for (int k = 0; k < o_.entities; ++k)
          SetKey(o_, random_.Next() % o_.keys, *s.features_req.mutable_entities(k));
        {
          const std::string request = s.features_req.SerializeAsString();
          grpc::Slice slice(request);
          const grpc::ByteBuffer buffer(&slice, 1);
          s.features_raw_rpc = generic_.PrepareUnaryCall(
              &*s.ctx, "/ods.v1.Features/GetOnlineFeatures", buffer, &cq_);
          s.features_raw_rpc->StartCall();
          s.features_raw_rpc->Finish(&s.features_answer, &s.status, &s);
        }
        break;
      case kOpPush: {
        const int64_t now_micros = NowMicros();
        for (const EventRefs& e : s.push_events) {
          const uint64_t r = random_.Next();
          SetEvent(o_, e, r % o_.keys, now_micros, random_.Next());
        }
        s.push_rpc = features_->PrepareAsyncPushEvents(&*s.ctx, s.push_req, &cq_);
        s.push_rpc->StartCall();
        s.push_rpc->Finish(&s.push_resp, &s.status, &s);
        break;
      }
      case kOpExecute:
        for (int k = 0; k < o_.batch; ++k)
          SetKey(o_, random_.Next() % o_.keys, *s.exec_req.mutable_keys(k));
        s.exec_rpc = functions_->PrepareAsyncExecute(&*s.ctx, s.exec_req, &cq_);
        s.exec_rpc->StartCall();
        s.exec_rpc->Finish(&s.exec_resp, &s.status, &s);
        break;
      default:
        s.echo_rpc = echo_->PrepareAsyncEcho(&*s.ctx, s.echo_req, &cq_);
        s.echo_rpc->StartCall();
        s.echo_rpc->Finish(&s.echo_resp, &s.status, &s);
        break;
    }
  }

  // Why the features answer of `s` is not one column per feature of one value per entity;
  // empty if it is. Counts NOT_FOUND values into `misses`. The first answer of each thread is
  // also parsed as a FeaturesResponse, and the two readings must agree.
  std::string CheckFeatures(const Slot& s, uint64_t& misses) {
    std::vector<grpc::Slice> slices;
    if (!s.features_answer.Dump(&slices).ok()) return "GetOnlineFeatures answer unreadable";
    answer_bytes_.clear();
    for (const grpc::Slice& slice : slices) {
      answer_bytes_.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
    const FeaturesAnswer answer = WalkFeaturesAnswer(answer_bytes_);
    if (!answer.error.empty()) return "GetOnlineFeatures answer: " + answer.error;
    if (!checked_parse_) {
      checked_parse_ = true;
      ods::v1::FeaturesResponse r;
      if (!r.ParseFromString(answer_bytes_)) return "GetOnlineFeatures answer does not parse";
      bool agree = r.columns_size() == static_cast<int>(answer.columns.size());
      for (int c = 0; agree && c < r.columns_size(); ++c) {
        const FeaturesAnswer::Column& w = answer.columns[static_cast<size_t>(c)];
        agree = r.columns(c).values_size() == w.values &&
                r.columns(c).statuses_size() == w.statuses &&
                r.columns(c).event_times_micros_size() == w.event_times;
      }
      if (!agree) return "GetOnlineFeatures answer: the wire walk disagrees with protobuf";
    }
    if (answer.columns.size() != o_.features.size()) {
      return "GetOnlineFeatures returned " + std::to_string(answer.columns.size()) +
             " columns for " + std::to_string(o_.features.size()) + " features";
    }
    for (size_t c = 0; c < answer.columns.size(); ++c) {
      const FeaturesAnswer::Column& col = answer.columns[c];
      if (col.values != o_.entities || col.statuses != o_.entities) {
        return "GetOnlineFeatures column " + o_.features[c] + " has " + std::to_string(col.values) +
               " values and " + std::to_string(col.statuses) + " statuses for " +
               std::to_string(o_.entities) + " entities";
      }
      misses += col.not_found;
    }
    return {};
  }

  void Complete(Slot& s, SteadyClock::time_point now) {
    OpStats& st = stats_[s.op];
    std::string problem;
    uint64_t misses = 0;
    if (!s.status.ok()) {
      problem = std::to_string(s.status.error_code()) + " " + s.status.error_message();
    } else if (s.op == kOpGet && s.get_resp.results_size() != o_.batch) {
      problem = "Get returned " + std::to_string(s.get_resp.results_size()) + " results for " +
                std::to_string(o_.batch) + " keys";
    } else if (s.op == kOpPut && s.put_resp.versions_size() != o_.batch) {
      problem = "Put returned " + std::to_string(s.put_resp.versions_size()) + " versions for " +
                std::to_string(o_.batch) + " records";
    } else if (s.op == kOpEcho && s.echo_resp.payload().size() != o_.value_bytes) {
      problem = "Echo returned a payload of the wrong size";
    } else if (s.op == kOpFeatures) {
      problem = CheckFeatures(s, misses);
    } else if (s.op == kOpExecute) {
      if (s.exec_resp.results_size() != o_.batch) {
        problem = "Execute returned " + std::to_string(s.exec_resp.results_size()) +
                  " results for " + std::to_string(o_.batch) + " keys";
      }
      for (const ods::v1::ExecuteResult& r : s.exec_resp.results()) {
        if (problem.empty() && r.code() != 0) {
          problem = "Execute key failed: " + std::to_string(r.code()) + " " + r.message();
        }
      }
    } else if (s.op == kOpPush && s.push_resp.applied() != static_cast<uint64_t>(o_.batch)) {
      problem = "PushEvents applied " + std::to_string(s.push_resp.applied()) + " of " +
                std::to_string(o_.batch) + " events" +
                (s.push_resp.rejected_size() > 0
                     ? " (first rejected: " + s.push_resp.rejected(0).message() + ")"
                     : std::string());
    }
    if (!problem.empty()) {
      ++st.errors;
      ++st.error_kinds[problem];
      return;
    }
    if (now < window_start_ || now >= window_end_) return;
    st.latency.Record(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - s.start).count()));
    switch (s.op) {
      case kOpEcho:
        st.keys += 1;
        break;
      case kOpFeatures:
        st.keys += static_cast<uint64_t>(o_.entities) * o_.features.size();
        st.misses += misses;
        break;
      default:
        st.keys += static_cast<uint64_t>(o_.batch);
        break;
    }
    if (s.op == kOpGet) {
      for (const ods::v1::GetResult& r : s.get_resp.results()) st.misses += r.found() ? 0 : 1;
    }
  }

  // One StreamEvents call for the whole run: writes messages of o_.batch events until the
  // window ends, then half-closes and checks that the server applied every event. Write latency
  // (until the blocking writer accepts the message) goes into the stream histogram.
  void RunStream() {
    OpStats& st = stats_[kOpStream];
    ods::v1::PushEventsRequest req;
    std::vector<EventRefs> events;
    for (int k = 0; k < o_.batch; ++k) events.push_back(AddEvent(o_, req));
    grpc::ClientContext ctx;
    ods::v1::PushEventsResponse resp;
    const SteadyClock::time_point opened = SteadyClock::now();
    std::unique_ptr<grpc::ClientWriter<ods::v1::PushEventsRequest>> writer =
        features_->StreamEvents(&ctx, &resp);
    uint64_t written = 0;
    for (SteadyClock::time_point now = opened; now < window_end_;) {
      const int64_t now_micros = NowMicros();
      for (const EventRefs& e : events) {
        const uint64_t r = random_.Next();
        SetEvent(o_, e, r % o_.keys, now_micros, random_.Next());
      }
      const SteadyClock::time_point start = SteadyClock::now();
      if (!writer->Write(req)) break;  // the stream is broken; Finish() says why
      now = SteadyClock::now();
      written += static_cast<uint64_t>(o_.batch);
      if (now >= window_start_ && now < window_end_) {
        st.latency.Record(static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - start).count()));
        st.keys += static_cast<uint64_t>(o_.batch);
      }
    }
    writer->WritesDone();
    const grpc::Status status = writer->Finish();
    stream_seconds_ = std::chrono::duration<double>(SteadyClock::now() - opened).count();
    std::string problem;
    if (!status.ok()) {
      problem =
          "StreamEvents: " + std::to_string(status.error_code()) + " " + status.error_message();
    } else if (resp.applied() != written) {
      problem = "StreamEvents applied " + std::to_string(resp.applied()) + " of " +
                std::to_string(written) + " events" +
                (resp.rejected_size() > 0 ? " (first rejected: " + resp.rejected(0).message() + ")"
                                          : std::string());
    }
    if (!problem.empty()) {
      ++st.errors;
      ++st.error_kinds[problem];
    }
    stream_applied_ = resp.applied();
  }

  const Options& o_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<ods::v1::Store::Stub> store_;
  std::unique_ptr<ods::bench::Echo::Stub> echo_;
  std::unique_ptr<ods::v1::Features::Stub> features_;
  std::unique_ptr<ods::v1::Functions::Stub> functions_;
  grpc::GenericStub generic_;  // GetOnlineFeatures as bytes (Slot::features_answer)
  std::string answer_bytes_;   // CheckFeatures' copy of an answer's slices
  bool checked_parse_ = false;
  grpc::CompletionQueue cq_;
  Random random_;
  std::vector<Slot> slots_;
  const SteadyClock::time_point window_start_;
  const SteadyClock::time_point window_end_;
  // Open loop: call k of this thread is scheduled at schedule_origin_ + k * interval_s_.
  SteadyClock::time_point schedule_origin_;
  double interval_s_ = 0;
  std::mutex free_mu_;
  std::condition_variable free_cv_;
  std::vector<Slot*> free_slots_;  // open loop: slots without a call, guarded by free_mu_
  OpStats stats_[kOpCount];
  LatencyHistogram start_lag_;
  uint64_t stream_applied_ = 0;
  double stream_seconds_ = 0;
};

// Runs `body(channel, w, workers, report)` on `workers` synchronous threads (at most 4, at most
// --concurrency), each with its own connected channel; `body` calls `report(problem)` once per
// failed call. A thread whose channel does not connect counts one failure. Prints each thread's
// first failure as "preload WHAT failed: PROBLEM". Returns the failures of all threads.
template <typename Body>
uint64_t RunPreloadWorkers(const Options& o, const char* what, Body body) {
  const int workers = std::max(1, std::min(o.concurrency, 4));
  std::vector<uint64_t> failures(static_cast<size_t>(workers), 0);
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&o, &failures, &body, what, w, workers] {
      uint64_t& failed = failures[static_cast<size_t>(w)];
      auto report = [&failed, what](const std::string& problem) {
        if (failed++ == 0) {
          std::cerr << "ods_bench: preload " << what << " failed: " << problem << "\n";
        }
      };
      std::string error;
      auto channel = ConnectChannel(o.addr, 1000 + w, error);
      if (channel == nullptr) {
        report(error);
        return;
      }
      body(channel, w, workers, report);
    });
  }
  for (std::thread& t : threads) t.join();
  uint64_t total = 0;
  for (uint64_t f : failures) total += f;
  return total;
}

// Puts keys 0..keys-1 in batches, `concurrency`-wide via a few synchronous threads. Returns the
// number of failed calls (and prints the first failure).
uint64_t Preload(const Options& o) {
  constexpr uint64_t kBatch = 500;
  return RunPreloadWorkers(o, "Put", [&o](const auto& channel, int w, int workers, auto& report) {
    auto stub = ods::v1::Store::NewStub(channel);
    ods::v1::PutRequest req;
    ods::v1::PutResponse resp;
    req.set_table(o.table);
    for (uint64_t start = static_cast<uint64_t>(w) * kBatch; start < o.keys;
         start += kBatch * static_cast<uint64_t>(workers)) {
      req.clear_records();
      for (uint64_t i = start; i < std::min(start + kBatch, o.keys); ++i) {
        FillRecord(o, i, *req.add_records());
      }
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      grpc::Status s = stub->Put(&ctx, req, &resp);
      if (!s.ok()) report(std::to_string(s.error_code()) + " " + s.error_message());
    }
  });
}

// Pushes one event for each of keys 0..keys-1 (stamped now) in batches, via a few synchronous
// threads, so that every entity of a features workload has values. Returns the number of failed
// calls, counting a call that did not apply every event (and prints the first failure).
uint64_t PreloadEvents(const Options& o) {
  constexpr uint64_t kBatch = 500;
  return RunPreloadWorkers(
      o, "PushEvents", [&o](const auto& channel, int w, int workers, auto& report) {
        auto stub = ods::v1::Features::NewStub(channel);
        Random random(static_cast<uint64_t>(w) + 1000);
        ods::v1::PushEventsRequest req;
        std::vector<EventRefs> events;
        ods::v1::PushEventsResponse resp;
        for (uint64_t start = static_cast<uint64_t>(w) * kBatch; start < o.keys;
             start += kBatch * static_cast<uint64_t>(workers)) {
          const uint64_t n = std::min(start + kBatch, o.keys) - start;
          while (events.size() < n) events.push_back(AddEvent(o, req));
          if (events.size() > n) {  // the last, shorter batch
            req.mutable_events()->DeleteSubrange(static_cast<int>(n),
                                                 static_cast<int>(events.size() - n));
            events.resize(n);
          }
          const int64_t now_micros = NowMicros();
          for (uint64_t i = 0; i < n; ++i)
            SetEvent(o, events[i], start + i, now_micros, random.Next());
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
          grpc::Status s = stub->PushEvents(&ctx, req, &resp);
          if (!s.ok()) {
            report(std::to_string(s.error_code()) + " " + s.error_message());
          } else if (resp.applied() != n) {
            report("applied " + std::to_string(resp.applied()) + " of " + std::to_string(n) +
                   " events" +
                   (resp.rejected_size() > 0
                        ? " (first rejected: " + resp.rejected(0).message() + ")"
                        : std::string()));
          }
        }
      });
}

// Bytes of one GetResponse for one key (for comparing with the echo payload size).
size_t SampleGetResponseBytes(const Options& o) {
  std::string error;
  auto channel = ConnectChannel(o.addr, 2000, error);
  if (channel == nullptr) return 0;
  auto stub = ods::v1::Store::NewStub(channel);
  ods::v1::GetRequest req;
  req.set_table(o.table);
  req.add_keys(KeyOf(o, 0));
  ods::v1::GetResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!stub->Get(&ctx, req, &resp).ok()) return 0;
  return resp.ByteSizeLong();
}

double Micros(uint64_t nanos) { return static_cast<double>(nanos) / 1000.0; }

}  // namespace
}  // namespace ods::bench

int main(int argc, char** argv) {
  using namespace ods::bench;
  Options o;
  if (int rc = ParseOptions(argc, argv, o); rc >= 0) return rc;
  ods::PrimeAbslCpuFrequency();  // before any channel: see ConnectChannel

  uint64_t preload_failures = 0;
  size_t get_response_bytes = 0;
  const bool events_workload = o.workload == Workload::kFeatures || o.workload == Workload::kPush ||
                               o.workload == Workload::kStream ||
                               o.workload == Workload::kLoadEvents;
  if ((o.preload && (o.workload == Workload::kFeatures || o.workload == Workload::kAll)) ||
      o.workload == Workload::kLoadEvents) {
    const SteadyClock::time_point t0 = SteadyClock::now();
    preload_failures = PreloadEvents(o);
    std::cout << "preloaded one " << o.event_template << " event for each of " << o.keys
              << " keys in " << std::chrono::duration<double>(SteadyClock::now() - t0).count()
              << " s" << (preload_failures ? " WITH FAILURES" : "") << "\n";
    if (o.workload == Workload::kLoadEvents) return preload_failures ? 1 : 0;
  }
  if (o.workload != Workload::kEcho && !events_workload) {
    if ((o.preload && o.workload != Workload::kPut) || o.workload == Workload::kLoad) {
      const SteadyClock::time_point t0 = SteadyClock::now();
      preload_failures += Preload(o);
      std::cout << "preloaded " << o.keys << " keys into " << o.table << " in "
                << std::chrono::duration<double>(SteadyClock::now() - t0).count() << " s"
                << (preload_failures ? " WITH FAILURES" : "") << "\n";
    }
    if (o.workload == Workload::kLoad) return preload_failures ? 1 : 0;
    get_response_bytes = SampleGetResponseBytes(o);
  }

  // Every client's connection first, so that no run's warm-up goes into connecting.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int t = 0; t < o.threads; ++t) {
    std::string error;
    channels.push_back(ConnectChannel(o.addr, t, error));
    if (channels.back() == nullptr) {
      std::cerr << "ods_bench: " << error << "\n";
      return 1;
    }
  }

  const SteadyClock::time_point begin = SteadyClock::now();
  const auto to_duration = [](double s) {
    return std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(s));
  };
  const SteadyClock::time_point window_start = begin + to_duration(o.warmup_s);
  const SteadyClock::time_point window_end = window_start + to_duration(o.duration_s);

  std::vector<std::unique_ptr<ClientThread>> clients;
  for (int t = 0; t < o.threads; ++t) {
    const int slots = o.concurrency / o.threads + (t < o.concurrency % o.threads ? 1 : 0);
    clients.push_back(std::make_unique<ClientThread>(
        o, t, std::move(channels[static_cast<size_t>(t)]), slots, begin, window_start, window_end));
  }
  MachineProbe machine(window_start, window_end);
  std::vector<std::thread> threads;
  for (auto& c : clients) threads.emplace_back([&c] { c->Run(); });
  for (std::thread& t : threads) t.join();
  machine.Join();

  OpStats total[kOpCount];
  LatencyHistogram start_lag;
  uint64_t stream_applied = 0;
  double stream_seconds = 0;
  for (auto& c : clients) {
    for (int op = 0; op < kOpCount; ++op) total[op].Merge(c->stats(static_cast<Op>(op)));
    start_lag.Merge(c->start_lag());
    stream_applied += c->stream_applied();
    stream_seconds = std::max(stream_seconds, c->stream_seconds());
  }

  std::printf(
      "ods_bench workload=%s addr=%s table=%s concurrency=%d threads=%d batch=%d "
      "duration=%gs warmup=%gs keys=%llu value_bytes=%zu get_response_bytes=%zu\n",
      o.workload_name.c_str(), o.addr.c_str(), o.table.c_str(), o.concurrency, o.threads, o.batch,
      o.duration_s, o.warmup_s, static_cast<unsigned long long>(o.keys), o.value_bytes,
      get_response_bytes);
  if (o.workload == Workload::kAll) {
    std::printf("all: put %d%%, get %d%%, features %d%%, push %d%% of calls\n", o.mix[0], o.mix[1],
                o.mix[2], o.mix[3]);
  }
  if (o.workload == Workload::kFeatures || o.workload == Workload::kAll) {
    std::printf("features: %d entities x %zu features per call (keys = feature values)\n",
                o.entities, o.features.size());
  }
  if (o.rate > 0) {
    std::printf(
        "open loop: rate=%g calls/s scheduled; start lag behind schedule p50=%.1fus p99=%.1fus "
        "max=%.1fus\n",
        o.rate, static_cast<double>(start_lag.Percentile(0.50)) / 1000.0,
        static_cast<double>(start_lag.Percentile(0.99)) / 1000.0,
        static_cast<double>(start_lag.max_nanos()) / 1000.0);
  }
  std::printf(
      "machine: a 1 ms sleeper woke late by p50=%.1fus p99=%.1fus max=%.1fus; %llu stalls >= 1 "
      "ms, %.1f ms in all; %s (see machine_probe.h)\n",
      Micros(machine.lateness().Percentile(0.50)), Micros(machine.lateness().Percentile(0.99)),
      Micros(machine.lateness().max_nanos()), static_cast<unsigned long long>(machine.stalls()),
      static_cast<double>(machine.stalled_nanos()) / 1e6, ods::ReadVcpuIdle().Describe().c_str());
  if (o.workload == Workload::kStream) {
    std::printf(
        "stream: %d stream(s); the server applied %llu events in %.2f s (warm-up included); "
        "keys/s below = applied events / s, calls = messages written in the window\n",
        o.threads, static_cast<unsigned long long>(stream_applied), stream_seconds);
  }
  std::printf("%-8s %10s %11s %11s %9s %9s %9s %9s %9s %8s %7s\n", "op", "calls", "calls/s",
              "keys/s", "mean_us", "p50_us", "p99_us", "p999_us", "max_us", "misses", "errors");
  uint64_t errors = preload_failures;
  std::string json =
      "{\"workload\":\"" + o.workload_name + "\",\"addr\":\"" + o.addr + "\",\"table\":\"" +
      o.table + "\",\"concurrency\":" + std::to_string(o.concurrency) +
      ",\"threads\":" + std::to_string(o.threads) + ",\"batch\":" + std::to_string(o.batch) +
      ",\"duration_s\":" + std::to_string(o.duration_s) + ",\"keys\":" + std::to_string(o.keys) +
      ",\"value_bytes\":" + std::to_string(o.value_bytes) +
      ",\"get_response_bytes\":" + std::to_string(get_response_bytes) +
      ",\"preload_failures\":" + std::to_string(preload_failures) +
      ",\"rate\":" + std::to_string(o.rate) + ",\"entities\":" + std::to_string(o.entities) +
      ",\"features\":" + std::to_string(o.features.size()) +
      ",\"start_lag_p99_us\":" + std::to_string(Micros(start_lag.Percentile(0.99))) +
      ",\"machine_late_p99_us\":" + std::to_string(Micros(machine.lateness().Percentile(0.99))) +
      ",\"machine_stalls\":" + std::to_string(machine.stalls()) + ",\"machine_stalled_ms\":" +
      std::to_string(static_cast<double>(machine.stalled_nanos()) / 1e6) +
      ",\"stream_applied\":" + std::to_string(stream_applied) +
      ",\"stream_seconds\":" + std::to_string(stream_seconds) + ",\"ops\":{";
  bool first = true;
  for (int op = 0; op < kOpCount; ++op) {
    const OpStats& s = total[op];
    errors += s.errors;
    if (s.latency.count() == 0 && s.errors == 0) continue;
    const double calls_per_s = static_cast<double>(s.latency.count()) / o.duration_s;
    // A stream's events count once the server confirmed them: applied over the stream's life.
    const double keys_per_s =
        op == kOpStream
            ? (stream_seconds > 0 ? static_cast<double>(stream_applied) / stream_seconds : 0.0)
            : static_cast<double>(s.keys) / o.duration_s;
    const double p50 = Micros(s.latency.Percentile(0.50));
    const double p99 = Micros(s.latency.Percentile(0.99));
    const double p999 = Micros(s.latency.Percentile(0.999));
    const double max = Micros(s.latency.max_nanos());
    const double mean = s.latency.mean_nanos() / 1000.0;
    const char* name = kOpNames[op].data();
    std::printf("%-8s %10llu %11.0f %11.0f %9.1f %9.1f %9.1f %9.1f %9.1f %8llu %7llu\n", name,
                static_cast<unsigned long long>(s.latency.count()), calls_per_s, keys_per_s, mean,
                p50, p99, p999, max, static_cast<unsigned long long>(s.misses),
                static_cast<unsigned long long>(s.errors));
    std::printf(
        "RESULT op=%s calls_per_s=%.0f keys_per_s=%.0f p50_us=%.1f p99_us=%.1f "
        "p999_us=%.1f max_us=%.1f misses=%llu errors=%llu\n",
        name, calls_per_s, keys_per_s, p50, p99, p999, max,
        static_cast<unsigned long long>(s.misses), static_cast<unsigned long long>(s.errors));
    for (const auto& [kind, n] : s.error_kinds) {
      std::printf("  %s errors: %llu x %s\n", name, static_cast<unsigned long long>(n),
                  kind.c_str());
    }
    char buf[512];
    std::snprintf(buf, sizeof(buf),
                  "%s\"%s\":{\"calls\":%llu,\"calls_per_s\":%.1f,\"keys_per_s\":%.1f,"
                  "\"mean_us\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
                  "\"max_us\":%.1f,\"misses\":%llu,\"errors\":%llu}",
                  first ? "" : ",", name, static_cast<unsigned long long>(s.latency.count()),
                  calls_per_s, keys_per_s, mean, p50, p99, p999, max,
                  static_cast<unsigned long long>(s.misses),
                  static_cast<unsigned long long>(s.errors));
    json += buf;
    first = false;
  }
  json += "},\"errors\":" + std::to_string(errors) + "}\n";
  if (!o.json_path.empty()) {
    std::ofstream out(o.json_path);
    out << json;
    if (!out) {
      std::cerr << "ods_bench: cannot write " << o.json_path << "\n";
      return 1;
    }
  }
  if (errors > 0) {
    std::fprintf(stderr, "ods_bench: %llu calls failed\n", static_cast<unsigned long long>(errors));
    return 1;
  }
  return 0;
}
