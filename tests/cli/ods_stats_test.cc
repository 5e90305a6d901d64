// What an operator sees of a running odsd (issue #7 points 1 and 6): `ods stats`
// (Admin.GetServerStats) and the admin endpoint's /metrics, whose whole text must follow the
// Prometheus text format strictly, with the durable tier's RocksDB figures and the failed calls
// of Lua functions by kind moving when they should. A real odsd with a durable table (RocksDB
// under a temp data dir) and procedures registered and run through the `ods` CLI.

#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ods/v1/admin.pb.h"
#include "support/odsd_process.h"

namespace ods {
namespace {

using ::ods::testing::CommandResult;
using ::ods::testing::HttpGet;
using ::ods::testing::OdsdProcess;
using ::ods::testing::RunCommand;
using ::ods::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

template <typename T>
T ParseJson(const std::string& text) {
  T message;
  const auto status = google::protobuf::util::JsonStringToMessage(text, &message);
  EXPECT_TRUE(status.ok()) << "not a " << T::descriptor()->full_name() << ": " << text;
  return message;
}

constexpr const char* kConfig = R"(server: {shards: 2}
storage: {durability: none}
tables:
  users: {key: id, durability: async}
  scratch: {key: id}
)";

// A procedure that fails the way its argument `mode` says.
constexpr const char* kFailing = R"(
function execute(record, args, key)
  if args.mode == "runtime" then error("asked to fail") end
  if args.mode == "memory" then return #string.rep("x", 8000000) end
  if args.mode == "spin" then while true do end end
  if args.mode == "bad_return" then return 1, 5 end
  return 1
end
)";

// --- A strict reader of the Prometheus text format (version 0.0.4) ---------------------------

struct Scrape {
  std::map<std::string, double> samples;     // "name{labels as rendered}" -> value
  std::map<std::string, std::string> types;  // family -> type
};

// [a-zA-Z_:][a-zA-Z0-9_:]* (metric names), or without ':' (label names). Hand-written: GCC 12
// warns inside the standard regex header under the sanitizers.
bool IsName(const std::string& s, bool colon) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool ParseValue(const std::string& text, double& out) {
  if (text == "+Inf" || text == "Inf") {
    out = HUGE_VAL;
    return true;
  }
  if (text == "-Inf") {
    out = -HUGE_VAL;
    return true;
  }
  if (text == "NaN") {
    out = NAN;
    return true;
  }
  char* end = nullptr;
  out = std::strtod(text.c_str(), &end);
  return !text.empty() && end == text.c_str() + text.size();
}

// Parses `body` (the HTTP body of /metrics) into `scrape`, adding a gtest failure per violation:
// HELP and TYPE at most once per family and before its samples, a family's samples together, every
// sample in a TYPEd family under a name the type allows, valid metric and label names, label
// values quoted with only \\, \" and \n escapes, no label twice, numeric values, no series
// twice, histograms' buckets cumulative in le order with le="+Inf" equal to _count.
void ParseStrictly(const std::string& body, Scrape& scrape) {
  static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                               "untyped"};
  std::set<std::string> helped, typed, finished;
  std::string current;  // the family whose lines come now
  // Histogram series without le: the buckets (le, value) in order, and the count.
  std::map<std::string, std::vector<std::pair<double, double>>> buckets;
  std::map<std::string, double> counts;
  size_t start = 0;
  int line_no = 0;
  EXPECT_FALSE(body.empty());
  EXPECT_EQ(body.back(), '\n') << "the text must end with a newline";
  while (start < body.size()) {
    size_t end = body.find('\n', start);
    if (end == std::string::npos) end = body.size();
    const std::string line = body.substr(start, end - start);
    start = end + 1;
    ++line_no;
    const std::string where = "line " + std::to_string(line_no) + ": '" + line + "'";
    if (line.empty()) continue;
    auto enter = [&](const std::string& family) {
      if (family == current) return;
      EXPECT_FALSE(finished.contains(family)) << where << ": family's lines are not together";
      if (!current.empty()) finished.insert(current);
      current = family;
    };
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
      const std::string rest = line.substr(7);
      const size_t space = rest.find(' ');
      const std::string family = rest.substr(0, space);
      EXPECT_TRUE(IsName(family, true)) << where;
      ASSERT_NE(space, std::string::npos) << where;
      enter(family);
      EXPECT_FALSE(scrape.types.contains(family) && line[2] == 'T') << where << ": TYPE twice";
      EXPECT_FALSE(helped.contains(family) && line[2] == 'H') << where << ": HELP twice";
      if (line[2] == 'H') {
        helped.insert(family);
      } else {
        const std::string type = rest.substr(space + 1);
        EXPECT_TRUE(kTypes.contains(type)) << where;
        EXPECT_FALSE(typed.contains(family)) << where << ": TYPE after the family's samples";
        scrape.types[family] = type;
      }
      continue;
    }
    if (line[0] == '#') continue;  // another comment
    // name{labels} value [timestamp]
    size_t pos = 0;
    while (pos < line.size() && line[pos] != '{' && line[pos] != ' ') ++pos;
    const std::string name = line.substr(0, pos);
    EXPECT_TRUE(IsName(name, true)) << where;
    std::map<std::string, std::string> labels;
    std::string le;
    if (pos < line.size() && line[pos] == '{') {
      ++pos;
      while (pos < line.size() && line[pos] != '}') {
        const size_t eq = line.find('=', pos);
        ASSERT_NE(eq, std::string::npos) << where;
        const std::string label = line.substr(pos, eq - pos);
        EXPECT_TRUE(IsName(label, false)) << where;
        EXPECT_FALSE(label.starts_with("__")) << where << ": reserved label name";
        ASSERT_LT(eq + 1, line.size()) << where;
        ASSERT_EQ(line[eq + 1], '"') << where << ": label value not quoted";
        std::string value;
        size_t i = eq + 2;
        for (; i < line.size() && line[i] != '"'; ++i) {
          if (line[i] == '\\') {
            ASSERT_LT(i + 1, line.size()) << where;
            const char e = line[++i];
            EXPECT_TRUE(e == '\\' || e == '"' || e == 'n') << where << ": bad escape \\" << e;
            value += e == 'n' ? '\n' : e;
          } else {
            value += line[i];
          }
        }
        ASSERT_LT(i, line.size()) << where << ": unterminated label value";
        EXPECT_FALSE(labels.contains(label)) << where << ": label twice";
        labels[label] = value;
        pos = i + 1;
        if (pos < line.size() && line[pos] == ',') ++pos;
      }
      ASSERT_LT(pos, line.size()) << where << ": unterminated label set";
      ++pos;  // '}'
    }
    ASSERT_LT(pos, line.size()) << where << ": no value";
    ASSERT_EQ(line[pos], ' ') << where;
    const std::string rest = line.substr(pos + 1);
    const std::string value_text = rest.substr(0, rest.find(' '));
    double value = 0;
    EXPECT_TRUE(ParseValue(value_text, value)) << where << ": value is not a number";
    if (rest.find(' ') != std::string::npos) {
      double timestamp = 0;
      EXPECT_TRUE(ParseValue(rest.substr(rest.find(' ') + 1), timestamp)) << where;
    }
    // The family: the current one, which the name must fit.
    ASSERT_FALSE(current.empty()) << where << ": sample before any HELP/TYPE";
    ASSERT_TRUE(scrape.types.contains(current))
        << where << ": family " << current << " has no TYPE";
    const std::string& type = scrape.types[current];
    typed.insert(current);
    if (type == "histogram") {
      EXPECT_TRUE(name == current + "_bucket" || name == current + "_sum" ||
                  name == current + "_count")
          << where << ": not a series of histogram " << current;
    } else if (type == "summary") {
      EXPECT_TRUE(name == current || name == current + "_sum" || name == current + "_count")
          << where;
    } else {
      EXPECT_EQ(name, current) << where << ": sample outside its family";
    }
    if (type == "counter") {
      EXPECT_GE(value, 0) << where << ": negative counter";
    }
    std::string series_labels;  // without le
    for (const auto& [k, v] : labels) {
      if (k == "le" && name == current + "_bucket") {
        le = v;
        continue;
      }
      series_labels += k + "=" + v + ",";
    }
    const std::string rendered = line.substr(0, pos);
    EXPECT_FALSE(scrape.samples.contains(rendered)) << where << ": series twice";
    scrape.samples[rendered] = value;
    if (type == "histogram") {
      const std::string series = current + "{" + series_labels + "}";
      if (name == current + "_bucket") {
        double bound = 0;
        EXPECT_TRUE(ParseValue(le, bound)) << where << ": bucket without a numeric le";
        buckets[series].push_back({bound, value});
      } else if (name == current + "_count") {
        counts[series] = value;
      }
    }
  }
  for (const auto& [series, list] : buckets) {
    ASSERT_FALSE(list.empty());
    for (size_t i = 1; i < list.size(); ++i) {
      EXPECT_LT(list[i - 1].first, list[i].first) << series << ": le not increasing";
      EXPECT_LE(list[i - 1].second, list[i].second) << series << ": buckets not cumulative";
    }
    EXPECT_TRUE(std::isinf(list.back().first)) << series << ": no le=\"+Inf\" bucket last";
    ASSERT_TRUE(counts.contains(series)) << series << ": no _count";
    EXPECT_EQ(list.back().second, counts[series]) << series << ": +Inf bucket != _count";
  }
}

// The body of an HTTP response, after checking its status and content type.
std::string Body(const std::string& response) {
  EXPECT_THAT(response, HasSubstr(" 200 "));
  EXPECT_THAT(response, HasSubstr("text/plain"));
  const size_t split = response.find("\r\n\r\n");
  EXPECT_NE(split, std::string::npos);
  return split == std::string::npos ? "" : response.substr(split + 4);
}

class CliStatsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(config_) << kConfig;
    std::ofstream(failing_) << kFailing;
    ASSERT_TRUE(odsd_.Start({"--config", config_, "--data-dir", data_.path()})) << odsd_.error();
  }
  void TearDown() override { EXPECT_EQ(odsd_.Stop(SIGTERM, 10000), 0) << odsd_.Stderr(); }

  CommandResult Ods(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {ODS_CLI_PATH, "--addr", odsd_.grpc_address()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }
  Scrape Metrics() {
    Scrape scrape;
    ParseStrictly(Body(HttpGet(odsd_.admin_address(), "/metrics")), scrape);
    return scrape;
  }
  // Runs procedure `function` on one key with --arg mode=MODE; the key fails.
  void RunFailing(const std::string& function, const std::string& mode) {
    const CommandResult r = Ods({"exec", function, "scratch", "k", "--arg", "mode=" + mode});
    EXPECT_EQ(r.exit_code, 1) << mode << ": " << r.out << r.err;
  }

  TempDir dir_;
  TempDir data_;
  const std::string config_ = dir_.path() + "/odsd.yaml";
  const std::string failing_ = dir_.path() + "/failing.lua";
  OdsdProcess odsd_;
};

TEST_F(CliStatsTest, StatsReportsVersionUptimeTablesAndCounters) {
  ASSERT_EQ(Ods({"put", "users", "u1", "plan=free"}).exit_code, 0);
  ASSERT_EQ(Ods({"get", "users", "u1", "u2"}).exit_code, 0);
  const CommandResult r = Ods({"stats"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto stats = ParseJson<ods::v1::GetServerStatsResponse>(r.out);
  EXPECT_THAT(stats.version(), ::testing::MatchesRegex("[0-9]+\\.[0-9]+\\.[0-9]+.*"));
  EXPECT_GT(stats.uptime_micros(), 0);
  EXPECT_GT(stats.started_at_micros(), 1'600'000'000'000'000);
  EXPECT_EQ(stats.shards(), 2u);
  EXPECT_THAT(stats.tables(), ::testing::ElementsAre("users", "scratch"));
  EXPECT_EQ(stats.records(), 1u);
  EXPECT_GT(stats.memory_bytes(), 0u);
  EXPECT_EQ(stats.puts(), 1u);
  EXPECT_EQ(stats.gets(), 2u);
  EXPECT_EQ(stats.get_hits(), 1u);
  EXPECT_EQ(stats.durable_batches(), 1u) << "users is durable (async)";
  EXPECT_EQ(stats.settings_generation(), 1u);
  EXPECT_THAT(stats.function_errors(), IsEmpty());

  const auto later = ParseJson<ods::v1::GetServerStatsResponse>(Ods({"stats"}).out);
  EXPECT_GT(later.uptime_micros(), stats.uptime_micros());
  EXPECT_EQ(later.started_at_micros(), stats.started_at_micros());
}

TEST_F(CliStatsTest, StatsCountsFailedFunctionCallsByKind) {
  ASSERT_EQ(Ods({"register", "failing", "procedure", failing_}).exit_code, 0);
  RunFailing("failing", "runtime");
  RunFailing("failing", "runtime");
  RunFailing("failing", "bad_return");
  const auto stats = ParseJson<ods::v1::GetServerStatsResponse>(Ods({"stats"}).out);
  ASSERT_EQ(stats.function_errors_size(), 1);
  const ods::v1::FunctionErrorStats& f = stats.function_errors(0);
  EXPECT_EQ(f.function(), "failing");
  EXPECT_EQ(f.runtime(), 2u);
  EXPECT_EQ(f.bad_return(), 1u);
  EXPECT_EQ(f.instructions() + f.wall_time() + f.memory() + f.other(), 0u);
}

TEST_F(CliStatsTest, StatsTakesNoArguments) {
  const CommandResult r = Ods({"stats", "extra"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("stats takes no arguments"));
}

TEST_F(CliStatsTest, MetricsAreStrictPrometheusTextWithEveryFamilyTyped) {
  ASSERT_EQ(Ods({"put", "users", "u1", "plan=free"}).exit_code, 0);
  ASSERT_EQ(Ods({"get", "users", "u1"}).exit_code, 0);
  ASSERT_EQ(Ods({"register", "failing", "procedure", failing_}).exit_code, 0);
  RunFailing("failing", "runtime");
  const Scrape scrape = Metrics();
  if (HasFailure()) return;  // the parser said what is wrong
  for (const char* family :
       {"ods_gets_total", "ods_rocksdb_bytes_written_total", "ods_rocksdb_memtable_bytes",
        "ods_rocksdb_sst_files", "ods_rocksdb_block_cache_hits_total", "ods_function_errors_total",
        "ods_rpc_handler_seconds", "ods_table_read_seconds"}) {
    EXPECT_TRUE(scrape.types.contains(family)) << family;
  }
  EXPECT_EQ(scrape.types.at("ods_function_errors_total"), "counter");
  EXPECT_EQ(scrape.types.at("ods_rocksdb_memtable_bytes"), "gauge");
  EXPECT_EQ(scrape.types.at("ods_rpc_handler_seconds"), "histogram");
}

TEST_F(CliStatsTest, RocksDbFiguresMoveWithDurableWrites) {
  const Scrape before = Metrics();
  ASSERT_FALSE(HasFailure());
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(
        Ods({"put", "users", "u" + std::to_string(i), "plan=" + std::string(100, 'p')}).exit_code,
        0);
  }
  ASSERT_EQ(Ods({"put", "scratch", "s1", "plan=free"}).exit_code, 0);
  const Scrape after = Metrics();
  ASSERT_FALSE(HasFailure());
  // 20 records of > 100 bytes each went to RocksDB; scratch (durability none) did not.
  EXPECT_GE(after.samples.at("ods_rocksdb_bytes_written_total") -
                before.samples.at("ods_rocksdb_bytes_written_total"),
            2000);
  EXPECT_GT(after.samples.at("ods_rocksdb_memtable_bytes"),
            before.samples.at("ods_rocksdb_memtable_bytes"));
  EXPECT_GT(after.samples.at("ods_rocksdb_wal_bytes_total"),
            before.samples.at("ods_rocksdb_wal_bytes_total"));
  EXPECT_EQ(after.samples.at("ods_durable_batches_total") -
                before.samples.at("ods_durable_batches_total"),
            20);
}

TEST_F(CliStatsTest, FunctionErrorMetricsCountEachKindOnce) {
  ASSERT_EQ(Ods({"register", "failing", "procedure", failing_, "--instructions", "1000000000000",
                 "--wall-micros", "20000"})
                .exit_code,
            0);
  ASSERT_EQ(Ods({"register", "spinner", "procedure", failing_, "--instructions", "100000",
                 "--wall-micros", "10000000"})
                .exit_code,
            0);
  auto series = [](const std::string& function, const std::string& kind) {
    return "ods_function_errors_total{function=\"" + function + "\",kind=\"" + kind + "\"}";
  };
  const std::vector<std::string> kinds = {"runtime", "instructions", "wall_time",
                                          "memory",  "bad_return",   "other"};
  Scrape last = Metrics();
  ASSERT_FALSE(HasFailure());
  for (const std::string function : {"failing", "spinner"}) {
    for (const std::string& kind : kinds) {
      EXPECT_EQ(last.samples.at(series(function, kind)), 0) << "registered: 0 until a failure";
    }
  }
  // Each step fails one call of one kind; exactly that series moves, by one.
  const std::vector<std::pair<std::string, std::string>> steps = {
      {"failing", "runtime"}, {"failing", "memory"},     {"failing", "spin"},
      {"spinner", "spin"},    {"failing", "bad_return"},
  };
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"failing", "runtime"},      {"failing", "memory"},     {"failing", "wall_time"},
      {"spinner", "instructions"}, {"failing", "bad_return"},
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    RunFailing(steps[i].first, steps[i].second);
    const Scrape now = Metrics();
    ASSERT_FALSE(HasFailure());
    for (const std::string function : {"failing", "spinner"}) {
      for (const std::string& kind : kinds) {
        const double delta =
            now.samples.at(series(function, kind)) - last.samples.at(series(function, kind));
        const bool moved = function == expected[i].first && kind == expected[i].second;
        EXPECT_EQ(delta, moved ? 1 : 0) << "step " << steps[i].first << " mode=" << steps[i].second
                                        << ": " << function << " " << kind;
      }
    }
    last = now;
  }
  // A call that succeeds counts nothing.
  const CommandResult ok = Ods({"exec", "failing", "scratch", "k", "--arg", "mode=none"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  const Scrape end = Metrics();
  ASSERT_FALSE(HasFailure());
  for (const std::string function : {"failing", "spinner"}) {
    for (const std::string& kind : kinds) {
      EXPECT_EQ(end.samples.at(series(function, kind)), last.samples.at(series(function, kind)))
          << function << " " << kind;
    }
  }
}

}  // namespace
}  // namespace ods
