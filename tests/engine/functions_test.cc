// Engine::RegisterFunction, ListFunctions and Execute: the function registry and procedures.

#include "ods/engine/functions.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ods/common/clock.h"
#include "ods/engine/engine.h"
#include "support/odsd_process.h"
#include "support/test_util.h"

namespace ods::engine {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;
using ::ods::testing::WaitUntil;
using record::Field;
using record::Record;
using record::Value;
using ::testing::HasSubstr;
using ::testing::StartsWith;

config::Config MakeConfig() {
  config::Config c;
  c.source = "functions_test";
  c.server.shards = 4;
  c.limits.max_record_bytes = 4096;
  c.limits.max_batch_size = 16;
  c.storage.ram_max_bytes = 0;
  c.tables.push_back({.name = "profile",
                      .key_field = "user_id",
                      .fields = {{"age", ValueType::kInt64}, {"score", ValueType::kDouble}},
                      .free_form = false,
                      .ttl_micros = 0});
  c.tables.push_back(
      {.name = "counters", .key_field = "id", .fields = {}, .free_form = true, .ttl_micros = 0});
  return c;
}

FunctionSpec Procedure(std::string name, std::string source) {
  FunctionSpec spec;
  spec.name = std::move(name);
  spec.kind = FunctionKind::kProcedure;
  spec.source = std::move(source);
  return spec;
}

constexpr std::string_view kBump = R"(
function execute(record, args)
  local n = (record and record.n or 0) + (args.by or 1)
  return n, {n = n}
end)";

class FunctionsTest : public ::testing::Test {
 protected:
  FunctionsTest() : FunctionsTest(MakeConfig()) {}
  explicit FunctionsTest(const config::Config& config, const Clock* clock = nullptr) {
    auto engine = Engine::Create(config, clock ? *clock : clock_);
    EXPECT_THAT(engine, IsOk());
    if (engine.ok()) engine_ = std::move(*engine);
  }

  Result<ExecuteReport> Exec(std::string_view fn, std::string_view table,
                             std::vector<std::string_view> keys, std::vector<Field> args = {}) {
    return engine_->Execute(fn, table, keys, args);
  }

  std::optional<Record> Get(std::string_view table, std::string_view key) {
    std::vector<std::optional<Record>> out;
    const std::vector<std::string_view> keys = {key};
    EXPECT_THAT(engine_->Get(table, keys, {}, out), IsOk());
    return out.empty() ? std::nullopt : out[0];
  }

  void Put(std::string_view table, std::string_view key, Record r) {
    const shard::KeyedRecord item{key, &r};
    EXPECT_THAT(engine_->Put(table, std::span(&item, 1)), IsOk());
  }

  FakeClock clock_;
  std::unique_ptr<Engine> engine_;
};

// --- Registration -------------------------------------------------------------------------------

TEST_F(FunctionsTest, EachRegistrationOfANameIsANewVersion) {
  auto v1 = engine_->RegisterFunction(Procedure("bump", std::string(kBump)));
  ASSERT_THAT(v1, IsOk());
  EXPECT_EQ(v1->version, 1u);
  auto v2 = engine_->RegisterFunction(Procedure("bump", std::string(kBump)));
  ASSERT_THAT(v2, IsOk());
  EXPECT_EQ(v2->version, 2u);
  const std::vector<FunctionInfo> listed = engine_->ListFunctions();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].name, "bump");
  EXPECT_EQ(listed[0].version, 2u);
  EXPECT_EQ(listed[0].kind, FunctionKind::kProcedure);
  EXPECT_EQ(listed[0].source_bytes, kBump.size());
}

TEST_F(FunctionsTest, SyntaxErrorNamesFunctionVersionAndLineAndChangesNothing) {
  ASSERT_THAT(engine_->RegisterFunction(Procedure("bump", std::string(kBump))), IsOk());
  auto bad = engine_->RegisterFunction(Procedure("bump", "function execute()\n  return 1 +\nend"));
  EXPECT_THAT(bad, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(bad.status().message(), StartsWith("function bump v2: line 3: "));
  EXPECT_EQ(engine_->ListFunctions()[0].version, 1u);
  auto run = Exec("bump", "counters", {"c"});
  ASSERT_THAT(run, IsOk());
  EXPECT_EQ(run->function_version, 1u);
}

TEST_F(FunctionsTest, TopLevelErrorIsInvalidArgument) {
  auto bad = engine_->RegisterFunction(Procedure("p", "local x = nil\nx.y = 1"));
  EXPECT_THAT(bad, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(bad.status().message(), StartsWith("function p v1: line 2: "));
  EXPECT_TRUE(engine_->ListFunctions().empty());
}

TEST_F(FunctionsTest, MissingEntryPointsOfTheKindAreNamed) {
  FunctionSpec agg;
  agg.name = "my_sum";
  agg.kind = FunctionKind::kAggregator;
  agg.source = "function init() return 0 end\nfunction update(s, e) return s + e end";
  auto r = engine_->RegisterFunction(agg);
  EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(r.status().message(),
              HasSubstr("function my_sum v1: defines no global function 'merge', 'finalize'; an "
                        "aggregator defines init, update, merge, finalize"));
  agg.source += "\nfunction merge(a, b) return a + b end\nfunction finalize(s) return s end";
  EXPECT_THAT(engine_->RegisterFunction(agg), IsOk());

  FunctionSpec derived;
  derived.name = "blend";
  derived.kind = FunctionKind::kDerived;
  derived.source = "function execute() end";
  EXPECT_THAT(engine_->RegisterFunction(derived), StatusIs(StatusCode::kInvalidArgument));
  derived.source = "function compute(a, b) return 0.7 * a + 0.3 * b end";
  EXPECT_THAT(engine_->RegisterFunction(derived), IsOk());

  EXPECT_THAT(engine_->RegisterFunction(Procedure("p", "function run() end")),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(engine_->ListFunctions().size(), 2u);
}

TEST_F(FunctionsTest, ANewVersionMustKeepTheKind) {
  FunctionSpec derived;
  derived.name = "f";
  derived.kind = FunctionKind::kDerived;
  derived.source = "function compute() return 1 end";
  ASSERT_THAT(engine_->RegisterFunction(derived), IsOk());
  auto r = engine_->RegisterFunction(Procedure("f", std::string(kBump)));
  EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(r.status().message(), HasSubstr("function f v1 is a derived"));
}

TEST_F(FunctionsTest, BadNameOrLimitsAreInvalidArgument) {
  EXPECT_THAT(engine_->RegisterFunction(Procedure("no-dash", std::string(kBump))),
              StatusIs(StatusCode::kInvalidArgument));
  FunctionSpec spec = Procedure("p", std::string(kBump));
  spec.limits.instructions = 0;
  EXPECT_THAT(engine_->RegisterFunction(spec), StatusIs(StatusCode::kInvalidArgument));
  spec = Procedure("p", std::string(kBump));
  spec.limits.wall_micros = 3'600'000'000;  // an hour: over the 60 s config allows
  auto hour = engine_->RegisterFunction(spec);
  EXPECT_THAT(hour, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(hour.status().message(), HasSubstr("function p v1: limits out of range"));
  spec = Procedure("p", std::string(kBump));
  spec.limits.memory_bytes = uint64_t{2} << 30;
  EXPECT_THAT(engine_->RegisterFunction(spec), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_TRUE(engine_->ListFunctions().empty());
}

TEST(FunctionsConfigTest, ConfigFunctionsAreRegisteredAsVersionOne) {
  config::Config config = MakeConfig();
  config.functions.push_back({.name = "bump",
                              .kind = "procedure",
                              .source_path = "bump.lua",
                              .source = std::string(kBump),
                              .position = "odsd.yaml:30:3"});
  FakeClock clock;
  auto engine = Engine::Create(config, clock);
  ASSERT_THAT(engine, IsOk());
  ASSERT_EQ((*engine)->ListFunctions().size(), 1u);
  EXPECT_EQ((*engine)->ListFunctions()[0].version, 1u);
  const std::vector<std::string_view> keys = {"c1"};
  auto run = (*engine)->Execute("bump", "counters", keys, {});
  ASSERT_THAT(run, IsOk());
  EXPECT_EQ(run->results[0].value, Value(int64_t{1}));
}

TEST(FunctionsConfigTest, BadLuaInConfigIsReportedAtFileLineColumn) {
  config::Config config = MakeConfig();
  config.functions.push_back({.name = "bump",
                              .kind = "procedure",
                              .source_path = "bump.lua",
                              .source = "function execute(\n",
                              .position = "odsd.yaml:30:3"});
  config.functions.push_back({.name = "agg",
                              .kind = "aggregator",
                              .source_path = "agg.lua",
                              .source = "function init() end",
                              .position = "odsd.yaml:33:3"});
  Status check = Engine::CheckConfig(config);
  EXPECT_THAT(check, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(check.message(),
              StartsWith("odsd.yaml:30:3: functions.bump: function bump v1: line "));
  EXPECT_THAT(check.message(),
              HasSubstr("\nodsd.yaml:33:3: functions.agg: function agg v1: defines no global "
                        "function 'update', 'merge', 'finalize'"));
  FakeClock clock;
  auto engine = Engine::Create(config, clock);
  EXPECT_THAT(engine, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(engine.status().message(), check.message());
}

// --- Execute ------------------------------------------------------------------------------------

TEST_F(FunctionsTest, ExecuteUpdatesEachRecordAndReturnsAValuePerKey) {
  ASSERT_THAT(engine_->RegisterFunction(Procedure("bump", std::string(kBump))), IsOk());
  Record existing;
  existing.fields = {{"n", int64_t{10}}};
  Put("counters", "a", existing);
  auto run = Exec("bump", "counters", {"a", "b", "c", "a"}, {{"by", int64_t{5}}});
  ASSERT_THAT(run, IsOk());
  ASSERT_EQ(run->results.size(), 4u);
  EXPECT_EQ(run->function_version, 1u);
  for (const ExecuteResult& r : run->results) {
    EXPECT_THAT(r.status, IsOk());
    EXPECT_TRUE(r.written);
  }
  EXPECT_EQ(run->results[0].value, Value(int64_t{15}));
  EXPECT_EQ(run->results[1].value, Value(int64_t{5}));
  EXPECT_EQ(run->results[3].value, Value(int64_t{20}));  // the same key runs twice, in order
  EXPECT_EQ(*Get("counters", "a")->Find("n"), Value(int64_t{20}));
  EXPECT_EQ(Get("counters", "c")->version, run->results[2].version);
}

// A durable table's writes go through the RocksDB tier, which a procedure's write does not
// reach yet: a procedure may read a durable record, and its new record is refused, leaving the
// record as it was (in RAM, and after a restart).
TEST(FunctionsDurableTest, ProceduresOnlyReadDurableTables) {
  ::ods::testing::TempDir data;
  config::Config config = MakeConfig();
  config.storage.data_dir = data.path();
  config.tables[1].durability = config::Durability::kSync;
  FakeClock clock;
  auto engine = Engine::Create(config, clock);
  ASSERT_THAT(engine, IsOk());
  Record r;
  r.fields = {{"n", int64_t{10}}};
  const shard::KeyedRecord item{"a", &r};
  ASSERT_THAT((*engine)->Put("counters", std::span(&item, 1)), IsOk());
  ASSERT_THAT((*engine)->RegisterFunction(Procedure("bump", std::string(kBump))), IsOk());
  ASSERT_THAT((*engine)->RegisterFunction(Procedure("peek", R"(
function execute(record) return record and record.n end)")),
              IsOk());
  const std::vector<std::string_view> keys = {"a"};
  auto peek = (*engine)->Execute("peek", "counters", keys, {});
  ASSERT_THAT(peek, IsOk());
  EXPECT_THAT(peek->results[0].status, IsOk());
  EXPECT_EQ(peek->results[0].value, Value(int64_t{10}));
  auto bump = (*engine)->Execute("bump", "counters", keys, {});
  ASSERT_THAT(bump, IsOk());
  EXPECT_THAT(bump->results[0].status, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(bump->results[0].status.message(),
              HasSubstr("function bump v1: table 'counters', key 'a': the table is durable"));
  EXPECT_FALSE(bump->results[0].written);
  engine->reset();  // restart on the same data dir: the record is the one Put wrote
  auto again = Engine::Create(config, clock);
  ASSERT_THAT(again, IsOk());
  std::vector<std::optional<Record>> out;
  ASSERT_THAT((*again)->Get("counters", keys, {}, out), IsOk());
  ASSERT_TRUE(out[0].has_value());
  EXPECT_EQ(*out[0]->Find("n"), Value(int64_t{10}));
}

TEST_F(FunctionsTest, TypedTableRefusesWrongTypeForThatKeyOnly) {
  ASSERT_THAT(engine_->RegisterFunction(Procedure("set_age", R"(
function execute(r, args, key)
  if key == "bad" then return nil, {age = "old"} end
  return nil, {age = args.age, score = 1}
end)")),
              IsOk());
  auto run = Exec("set_age", "profile", {"good", "bad"}, {{"age", int64_t{41}}});
  ASSERT_THAT(run, IsOk());
  EXPECT_THAT(run->results[0].status, IsOk());
  EXPECT_THAT(run->results[1].status, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(run->results[1].status.message(),
              AllOf(HasSubstr("function set_age v1"), HasSubstr("'profile'"), HasSubstr("bad"),
                    HasSubstr("age")));
  EXPECT_FALSE(Get("profile", "bad").has_value());
  // A Lua integer went into the double field `score`.
  EXPECT_EQ(*Get("profile", "good")->Find("score"), Value(1.0));
  EXPECT_EQ(*Get("profile", "good")->Find("age"), Value(int64_t{41}));
}

TEST_F(FunctionsTest, WholeCallErrorsRunNothing) {
  ASSERT_THAT(engine_->RegisterFunction(Procedure("bump", std::string(kBump))), IsOk());
  FunctionSpec derived;
  derived.name = "blend";
  derived.kind = FunctionKind::kDerived;
  derived.source = "function compute() return 1 end";
  ASSERT_THAT(engine_->RegisterFunction(derived), IsOk());

  auto unknown = Exec("nope", "counters", {"a"});
  EXPECT_THAT(unknown, StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(unknown.status().message(), HasSubstr("unknown function 'nope'; procedures: bump"));
  auto not_procedure = Exec("blend", "counters", {"a"});
  EXPECT_THAT(not_procedure, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(not_procedure.status().message(), HasSubstr("function blend v1 is a derived"));
  EXPECT_THAT(Exec("bump", "nope", {"a"}), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(Exec("bump", "counters", {}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(Exec("bump", "counters", {"a", ""}), StatusIs(StatusCode::kInvalidArgument));
  const std::vector<std::string> many(17, "m");
  auto too_many = Exec("bump", "counters", std::vector<std::string_view>(many.begin(), many.end()));
  EXPECT_THAT(too_many, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(too_many.status().message(), HasSubstr("limits.max_batch_size"));
  EXPECT_FALSE(Get("counters", "m").has_value());
  auto twice = Exec("bump", "counters", {"a"}, {{"by", int64_t{1}}, {"by", int64_t{2}}});
  EXPECT_THAT(twice, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(twice.status().message(), HasSubstr("argument 'by' given twice"));
  auto big = Exec("bump", "counters", {"a"}, {{"blob", std::string(8192, 'x')}});
  EXPECT_THAT(big, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_FALSE(Get("counters", "a").has_value());
}

TEST_F(FunctionsTest, RuntimeErrorIsPerKeyAndNamesTheLine) {
  ASSERT_THAT(engine_->RegisterFunction(Procedure("picky", R"(
function execute(r, args, key)
  if key == "x" then error("no x here") end
  return key
end)")),
              IsOk());
  auto run = Exec("picky", "counters", {"x", "y"});
  ASSERT_THAT(run, IsOk());
  EXPECT_THAT(run->results[0].status, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(run->results[0].status.message(), HasSubstr("function picky v1: line 3: no x here"));
  EXPECT_THAT(run->results[1].status, IsOk());
  EXPECT_EQ(run->results[1].value, Value(std::string("y")));
}

TEST_F(FunctionsTest, BudgetOverrunLeavesRecordsUnchangedAndSkipsTheRestOfTheCall) {
  FunctionSpec spec = Procedure("spin", "function execute(r)\n  while true do end\nend");
  spec.limits.instructions = 50'000;
  ASSERT_THAT(engine_->RegisterFunction(spec), IsOk());
  Record existing;
  existing.fields = {{"n", int64_t{7}}};
  Put("counters", "a", existing);
  const uint64_t version = Get("counters", "a")->version;
  auto run = Exec("spin", "counters", {"a", "b", "c", "d", "e"});
  ASSERT_THAT(run, IsOk());
  int spent = 0;
  int skipped = 0;
  for (const ExecuteResult& r : run->results) {
    EXPECT_FALSE(r.written);
    if (r.status.code() == StatusCode::kResourceExhausted) {
      ++spent;
      EXPECT_THAT(r.status.message(), HasSubstr("function spin v1: line 2: instruction budget"));
    } else {
      EXPECT_THAT(r.status, StatusIs(StatusCode::kAborted));
      EXPECT_THAT(r.status.message(), HasSubstr("not run"));
      ++skipped;
    }
  }
  EXPECT_EQ(spent, 1);
  EXPECT_EQ(skipped, 4);
  EXPECT_EQ(Get("counters", "a")->version, version);
  EXPECT_FALSE(Get("counters", "b").has_value());
  // The shards keep serving, the function too.
  ASSERT_THAT(engine_->RegisterFunction(Procedure("bump", std::string(kBump))), IsOk());
  auto ok = Exec("bump", "counters", {"a"});
  ASSERT_THAT(ok, IsOk());
  EXPECT_EQ(ok->results[0].value, Value(int64_t{8}));
}

// A fake clock that moves 1 ms forward at every read: the sandbox reads it as each key's run
// starts, so a call's keys see time pass without any waiting.
class SteppingClock final : public Clock {
 public:
  Micros NowMicros() const override { return now_.fetch_add(1'000); }

 private:
  mutable std::atomic<Micros> now_{1'700'000'000'000'000};
};

TEST(FunctionsDeadlineTest, KeysAfterTheCallsDeadlineAreNotRun) {
  SteppingClock clock;
  auto engine = Engine::Create(MakeConfig(), clock);
  ASSERT_THAT(engine, IsOk());
  ASSERT_THAT((*engine)->RegisterFunction(Procedure("bump", std::string(kBump))), IsOk());
  const std::vector<std::string_view> keys = {"d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7",
                                              "d8", "d9", "da", "db", "dc", "dd", "de", "df"};
  const Micros deadline = clock.NowMicros() + 8'000;
  auto run = (*engine)->Execute("bump", "counters", keys, {}, deadline);
  ASSERT_THAT(run, IsOk());
  int ran = 0;
  int not_run = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const ExecuteResult& r = run->results[i];
    if (r.status.ok()) {
      ++ran;
      continue;
    }
    ++not_run;
    EXPECT_THAT(r.status, StatusIs(StatusCode::kDeadlineExceeded));
    EXPECT_THAT(r.status.message(), HasSubstr("not run: the call's deadline passed"));
    std::vector<std::optional<Record>> out;
    const std::vector<std::string_view> one = {keys[i]};
    ASSERT_THAT((*engine)->Get("counters", one, {}, out), IsOk());
    EXPECT_FALSE(out[0].has_value());
  }
  EXPECT_GT(ran, 0);
  EXPECT_GT(not_run, 0);
  auto no_deadline = (*engine)->Execute("bump", "counters", keys, {});
  ASSERT_THAT(no_deadline, IsOk());
  for (const ExecuteResult& r : no_deadline->results) EXPECT_THAT(r.status, IsOk());
}

// --- Hot replacement ----------------------------------------------------------------------------

// A fake clock that, once armed for a thread, parks that thread at its next read (the sandbox
// reads the clock when a call starts, inside the call) until released. Other threads pass.
class GateClock final : public Clock {
 public:
  Micros NowMicros() const override {
    if (armed_.load() && std::this_thread::get_id() == target_.load()) {
      armed_.store(false);
      parked_.store(true);
      while (!released_.load()) std::this_thread::yield();
    }
    return 1'700'000'000'000'000;
  }
  void ArmFor(std::thread::id id) {
    target_.store(id);
    armed_.store(true);
  }
  bool parked() const { return parked_.load(); }
  void Release() { released_.store(true); }

 private:
  mutable std::atomic<bool> armed_{false};
  mutable std::atomic<bool> parked_{false};
  std::atomic<bool> released_{false};
  std::atomic<std::thread::id> target_{};
};

class HotReplacementTest : public ::testing::Test {
 protected:
  HotReplacementTest() {
    auto engine = Engine::Create(MakeConfig(), clock_);
    EXPECT_THAT(engine, IsOk());
    engine_ = std::move(*engine);
  }
  std::optional<Record> Get(std::string_view key) {
    std::vector<std::optional<Record>> out;
    const std::vector<std::string_view> keys = {key};
    EXPECT_THAT(engine_->Get("counters", keys, {}, out), IsOk());
    return out.empty() ? std::nullopt : out[0];
  }
  GateClock clock_;
  std::unique_ptr<Engine> engine_;
};

// Releases the clock and joins the thread however the test ends.
struct JoinOnExit {
  GateClock& clock;
  std::thread& thread;
  ~JoinOnExit() {
    clock.Release();
    if (thread.joinable()) thread.join();
  }
};

TEST_F(HotReplacementTest, InFlightCallFinishesOnOldVersionWhileNewCallsGetTheNewOne) {
  auto version_source = [](int v) {
    return "function execute(r) return 'v" + std::to_string(v) + "', {by = 'v" + std::to_string(v) +
           "'} end";
  };
  ASSERT_THAT(engine_->RegisterFunction(Procedure("tag", version_source(1))), IsOk());

  Result<ExecuteReport> in_flight = InternalError("not run");
  std::thread caller([&] {
    clock_.ArmFor(std::this_thread::get_id());
    const std::vector<std::string_view> keys = {"slow"};
    in_flight = engine_->Execute("tag", "counters", keys, {});
  });
  JoinOnExit join{clock_, caller};
  ASSERT_TRUE(WaitUntil([&] { return clock_.parked(); }, std::chrono::seconds(10)));

  // v1 is running (parked inside its call). Replacing it neither waits for it nor disturbs it.
  auto v2 = engine_->RegisterFunction(Procedure("tag", version_source(2)));
  ASSERT_THAT(v2, IsOk());
  EXPECT_EQ(v2->version, 2u);
  const std::vector<std::string_view> keys = {"slow", "other"};
  auto now = engine_->Execute("tag", "counters", keys, {});
  ASSERT_THAT(now, IsOk());
  EXPECT_EQ(now->function_version, 2u);
  EXPECT_EQ(now->results[0].value, Value(std::string("v2")));
  EXPECT_EQ(now->results[1].value, Value(std::string("v2")));

  clock_.Release();
  caller.join();
  ASSERT_THAT(in_flight, IsOk());
  EXPECT_EQ(in_flight->function_version, 1u);
  ASSERT_THAT(in_flight->results[0].status, IsOk());
  EXPECT_EQ(in_flight->results[0].value, Value(std::string("v1")));
  // v1 read the record before v2 wrote it, so its write lost the race and it ran again on v2's
  // record -- still as v1: a call never changes version midway.
  ASSERT_TRUE(Get("slow").has_value());
  EXPECT_EQ(*Get("slow")->Find("by"), Value(std::string("v1")));
}

}  // namespace
}  // namespace ods::engine
