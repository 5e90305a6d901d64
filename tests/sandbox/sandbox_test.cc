#include "ods/sandbox/sandbox.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/record/value.h"
#include "support/test_util.h"

namespace ods::sandbox {
namespace {

using ::ods::record::Bytes;
using ::ods::record::Timestamp;
using ::ods::record::Value;
using ::ods::testing::IsOk;
using ::ods::testing::IsOkAndHolds;
using ::ods::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Optional;

// A clock that moves `step` forward every time it is read, so a running function sees time pass
// without any real waiting.
class TickingClock final : public Clock {
 public:
  explicit TickingClock(Micros step) : step_(step) {}
  Micros NowMicros() const override { return now_.fetch_add(step_, std::memory_order_relaxed); }

 private:
  const Micros step_;
  mutable std::atomic<Micros> now_{1'700'000'000'000'000};
};

// Every function under test also defines ok(), so a test can show that the function that just
// failed still answers.
constexpr std::string_view kOk = "\nfunction ok() return 42 end\n";

class SandboxTest : public ::testing::Test {
 protected:
  SandboxTest() : SandboxTest(clock_) {}
  explicit SandboxTest(const Clock& clock) : sandbox_(clock) {
    auto normal = sandbox_.Load("normal", 1, "function double(x) return 2 * x end", Limits{});
    EXPECT_THAT(normal, IsOk());
    normal_ = *normal;
  }

  FunctionId MustLoad(std::string_view source, const Limits& limits = Limits{},
                      std::string_view name = "f", uint32_t version = 1) {
    auto id = sandbox_.Load(name, version, std::string(source) + std::string(kOk), limits);
    EXPECT_THAT(id, IsOk());
    return id.ok() ? *id : FunctionId{};
  }

  Result<std::optional<Value>> Run(FunctionId id, std::vector<Value> args = {},
                                   std::string_view entry = "run") {
    return sandbox_.Call(id, entry, args);
  }

  // The failed function and an unrelated one both still work.
  void ExpectHealthy(FunctionId id) {
    auto same = sandbox_.Call(id, "ok", {});
    ASSERT_THAT(same, IsOk());
    EXPECT_THAT(*same, Optional(Value(int64_t{42})));
    const std::vector<Value> args = {int64_t{21}};
    auto other = sandbox_.Call(normal_, "double", args);
    ASSERT_THAT(other, IsOk());
    EXPECT_THAT(*other, Optional(Value(int64_t{42})));
  }

  FakeClock clock_;
  Sandbox sandbox_;
  FunctionId normal_;
};

// --- Budgets -------------------------------------------------------------------------------

TEST_F(SandboxTest, InfiniteLoopExhaustsInstructionBudget) {
  const FunctionId id = MustLoad("function run()\n  while true do end\nend", Limits{}, "spin", 3);
  auto r = Run(id);
  EXPECT_THAT(r, StatusIs(StatusCode::kResourceExhausted));
  EXPECT_THAT(r.status().message(),
              HasSubstr("function spin v3: line 2: instruction budget of 1000000 exhausted"));
  ExpectHealthy(id);
}

TEST_F(SandboxTest, InstructionBudgetIsPerCall) {
  Limits limits;
  limits.instructions = 100'000;
  // ~4 instructions per iteration: about 40% of the budget per call.
  const FunctionId id =
      MustLoad("function run() local s = 0 for i = 1, 10000 do s = s + i end return s end", limits);
  for (int call = 0; call < 5; ++call) {
    auto r = Run(id);
    ASSERT_THAT(r, IsOk());
    EXPECT_THAT(*r, Optional(Value(int64_t{50'005'000})));
  }
}

TEST_F(SandboxTest, TinyInstructionBudgetIsEnforced) {
  Limits limits;
  limits.instructions = 10;
  const FunctionId id =
      MustLoad("function run() local s = 0 for i = 1, 100 do s = s + i end end", limits);
  EXPECT_THAT(Run(id), StatusIs(StatusCode::kResourceExhausted));
}

TEST_F(SandboxTest, MemoryBombHitsMemoryCap) {
  Limits limits;
  limits.instructions = std::numeric_limits<uint64_t>::max();
  const FunctionId id = MustLoad(R"(
function run()
  local t = {}
  local i = 0
  while true do
    i = i + 1
    t[i] = {i, i, i}
  end
end)",
                                 limits, "bomb", 2);
  auto r = Run(id);
  EXPECT_THAT(r, StatusIs(StatusCode::kResourceExhausted));
  EXPECT_THAT(r.status().message(), HasSubstr("function bomb v2: "));
  EXPECT_THAT(r.status().message(), HasSubstr("memory limit of 1MiB exceeded"));
  auto in_use = sandbox_.MemoryInUse(id);
  ASSERT_THAT(in_use, IsOk());
  EXPECT_LT(*in_use, 256u << 10) << "a failed call's garbage is collected";
  ExpectHealthy(id);
}

TEST_F(SandboxTest, StringRepBombHitsMemoryCap) {
  const FunctionId id = MustLoad("function run()\n  return string.rep('x', 1e9)\nend");
  auto r = Run(id);
  EXPECT_THAT(r, StatusIs(StatusCode::kResourceExhausted));
  EXPECT_EQ(r.status().message(), "function f v1: memory limit of 1MiB exceeded");
  ExpectHealthy(id);
}

TEST_F(SandboxTest, StringRepMethodBombHitsMemoryCap) {
  const FunctionId id = MustLoad("function run() return ('xy'):rep(1e8, ',') end");
  EXPECT_THAT(Run(id), StatusIs(StatusCode::kResourceExhausted));
  ExpectHealthy(id);
}

TEST_F(SandboxTest, GarbageOfEarlierCallsNeverFailsALaterOne) {
  // Each call builds ~0.5 MiB under a 1 MiB cap: only collection makes ten calls fit.
  const FunctionId id = MustLoad(R"(
function run()
  local t = {}
  for i = 1, 30000 do t[i] = i end
  return #t
end)");
  for (int call = 0; call < 10; ++call) {
    auto r = Run(id);
    ASSERT_THAT(r, IsOk()) << "call " << call;
    EXPECT_THAT(*r, Optional(Value(int64_t{30000})));
  }
}

TEST_F(SandboxTest, EachFunctionHasItsOwnMemoryCap) {
  Limits small;
  small.memory_bytes = 64 << 10;
  small.instructions = std::numeric_limits<uint64_t>::max();
  const FunctionId hog =
      MustLoad("function run() local t = {} while true do t[#t + 1] = {} end end", small);
  EXPECT_THAT(Run(hog), StatusIs(StatusCode::kResourceExhausted));
  // 0.5 MiB would not fit in the hog's cap but fits in the default one.
  const FunctionId big =
      MustLoad("function run() local t = {} for i = 1, 30000 do t[i] = i end return #t end");
  EXPECT_THAT(Run(big), IsOk());
}

TEST_F(SandboxTest, DeepRecursionHitsMemoryCap) {
  const FunctionId id = MustLoad(R"(
local function depth(n) return 1 + depth(n + 1) end
function run() return depth(1) end)");
  EXPECT_THAT(Run(id), StatusIs(StatusCode::kResourceExhausted));
  ExpectHealthy(id);
}

TEST_F(SandboxTest, DeepRecursionWithRoomHitsLuaStackLimit) {
  Limits limits;
  limits.memory_bytes = 256u << 20;
  limits.instructions = 1'000'000'000;
  const FunctionId id = MustLoad(R"(
local function depth(n) return 1 + depth(n + 1) end
function run() return depth(1) end)",
                                 limits);
  auto r = Run(id);
  EXPECT_THAT(r, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(r.status().message(), HasSubstr("stack overflow"));
  ExpectHealthy(id);
}

TEST_F(SandboxTest, TailCallLoopExhaustsInstructionBudget) {
  const FunctionId id = MustLoad(R"(
local function forever(n) return forever(n + 1) end
function run() return forever(1) end)");
  EXPECT_THAT(Run(id), StatusIs(StatusCode::kResourceExhausted));
  ExpectHealthy(id);
}

TEST_F(SandboxTest, RecursionThroughCFunctionsStops) {
  // Each level nests a C call (pcall); Lua's C-stack limit ends the descent with an error that
  // the pcall at the level above catches.
  const FunctionId id = MustLoad(R"(
local function f() pcall(f) end
function run() f() return 1 end)");
  auto r = Run(id);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(*r, Optional(Value(int64_t{1})));
}

TEST_F(SandboxTest, PatternsAreRefused) {
  // A backtracking pattern would run for hours inside one C call, out of the hook's reach.
  const FunctionId id =
      MustLoad("function run() return string.find(string.rep('a', 2000), '.-.-.-b') end");
  auto r = Run(id);
  EXPECT_THAT(r, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(r.status().message(), HasSubstr("patterns are not available"));
  ExpectHealthy(id);
}

TEST_F(SandboxTest, PlainFindIsChargedToInstructionBudget) {
  Limits limits;
  limits.memory_bytes = 8u << 20;
  const FunctionId id = MustLoad(R"(
function run()
  return string.find(string.rep('a', 1e6), string.rep('a', 5e5) .. 'b', 1, true)
end)",
                                 limits);
  EXPECT_THAT(Run(id), StatusIs(StatusCode::kResourceExhausted));
  ExpectHealthy(id);
}

TEST_F(SandboxTest, RepeatingEmptyStringReturnsAtOnce) {
  const FunctionId id =
      MustLoad("function run() return string.rep('', 2^62) .. ('').rep('', 2^62, '') end");
  auto r = Run(id);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(*r, Optional(Value(std::string())));
}

TEST_F(SandboxTest, HugeTableMoveIsChargedToInstructionBudget) {
  const FunctionId id =
      MustLoad("function run()\n  table.move({}, 1, math.maxinteger - 1, 1)\nend", Limits{}, "mv");
  auto r = Run(id);
  EXPECT_THAT(r, StatusIs(StatusCode::kResourceExhausted));
  EXPECT_THAT(r.status().message(), HasSubstr("function mv v1: line 2: instruction budget"));
  ExpectHealthy(id);
}

TEST_F(SandboxTest, InsertIntoHugeLengthIsChargedToInstructionBudget) {
  const FunctionId id = MustLoad(R"(
function run()
  local t = setmetatable({}, {__len = function() return 2^53 end})
  table.insert(t, 1, 'x')
end)");
  EXPECT_THAT(Run(id), StatusIs(StatusCode::kResourceExhausted));
  ExpectHealthy(id);
}

// --- Budgets cannot be caught ----------------------------------------------------------------

TEST_F(SandboxTest, ErrorInsidePcallLoopExhaustsInstructionBudget) {
  const FunctionId id = MustLoad("function run() while true do pcall(error, 'x') end end");
  EXPECT_THAT(Run(id), StatusIs(StatusCode::kResourceExhausted));
  ExpectHealthy(id);
}

TEST_F(SandboxTest, PcallCannotCatchInstructionBudget) {
  const FunctionId id =
      MustLoad("function run() while true do pcall(function() while true do end end) end end");
  EXPECT_THAT(Run(id), StatusIs(StatusCode::kResourceExhausted));
  ExpectHealthy(id);
}

TEST_F(SandboxTest, RecursivePcallLoopExhaustsInstructionBudget) {
  // Re-enters as deep as Lua allows after every caught error: only a budget that stays spent
  // through every level ends it.
  const FunctionId id = MustLoad(R"(
local function f() while true do pcall(f) end end
function run() f() end)");
  EXPECT_THAT(Run(id), StatusIs(StatusCode::kResourceExhausted));
  ExpectHealthy(id);
}

TEST_F(SandboxTest, XpcallCannotCatchInstructionBudget) {
  const FunctionId id = MustLoad(R"(
function run()
  while true do
    xpcall(function() while true do end end, function(m) while true do end end)
  end
end)");
  EXPECT_THAT(Run(id), StatusIs(StatusCode::kResourceExhausted));
  ExpectHealthy(id);
}

TEST_F(SandboxTest, PcallCannotCatchMemoryCap) {
  const FunctionId id = MustLoad(R"(
function run()
  while true do pcall(string.rep, 'x', 1e9) end
end)");
  auto r = Run(id);
  EXPECT_THAT(r, StatusIs(StatusCode::kResourceExhausted));
  EXPECT_THAT(r.status().message(), HasSubstr("memory limit"));
  ExpectHealthy(id);
}

TEST_F(SandboxTest, BudgetRunsOutInsideCallbackOfCFunction) {
  const FunctionId id = MustLoad(R"(
function run()
  table.sort({3, 2, 1}, function(a, b) while true do end end)
end)");
  EXPECT_THAT(Run(id), StatusIs(StatusCode::kResourceExhausted));
  ExpectHealthy(id);
}

TEST_F(SandboxTest, LoopingCloseHandlerStillStops) {
  const FunctionId id = MustLoad(R"(
function run()
  local guard <close> = setmetatable({}, {__close = function() while true do end end})
  while true do end
end)");
  EXPECT_THAT(Run(id), StatusIs(StatusCode::kResourceExhausted));
  ExpectHealthy(id);
}

TEST_F(SandboxTest, PcallStillCatchesOrdinaryErrors) {
  const FunctionId id = MustLoad(R"(
function run()
  local ok, message = pcall(error, 'boom', 0)
  return tostring(ok) .. ' ' .. message
end)");
  auto r = Run(id);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(*r, Optional(Value(std::string("false boom"))));
}

// --- Wall-clock budget (FakeClock / TickingClock: no real time involved) ---------------------

TEST_F(SandboxTest, FrozenClockNeverExceedsWallBudget) {
  Limits limits;
  limits.instructions = 100'000'000;
  limits.wall_micros = 1;
  const FunctionId id = MustLoad(
      "function run() local s = 0 for i = 1, 1000000 do s = s + 1 end return s end", limits);
  auto r = Run(id);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(*r, Optional(Value(int64_t{1'000'000})));
}

TEST_F(SandboxTest, ClockMovingBetweenCallsDoesNotCount) {
  Limits limits;
  limits.wall_micros = 1000;
  const FunctionId id =
      MustLoad("function run() local s = 0 for i = 1, 10000 do s = s + 1 end return s end", limits);
  ASSERT_THAT(Run(id), IsOk());
  clock_.Advance(3'600'000'000);
  EXPECT_THAT(Run(id), IsOk());
}

class SandboxWallClockTest : public SandboxTest {
 protected:
  SandboxWallClockTest() : SandboxTest(ticking_) {}
  // Declared before the base's Sandbox is used; outlives it as a static.
  static inline TickingClock ticking_{10'000};  // 10 ms per clock read
};

TEST_F(SandboxWallClockTest, LongRunningCallExceedsWallBudget) {
  Limits limits;
  limits.instructions = std::numeric_limits<uint64_t>::max();
  limits.wall_micros = 100'000;
  const FunctionId id = MustLoad("function run()\n  while true do end\nend", limits, "slow", 5);
  auto r = Run(id);
  EXPECT_THAT(r, StatusIs(StatusCode::kDeadlineExceeded));
  EXPECT_THAT(r.status().message(),
              HasSubstr("function slow v5: line 2: wall-clock budget of 100ms exceeded"));
  ExpectHealthy(id);
}

TEST_F(SandboxWallClockTest, ErrorKindOfASpentWallBudgetIsWallTime) {
  Limits limits;
  limits.instructions = std::numeric_limits<uint64_t>::max();
  limits.wall_micros = 100'000;
  const FunctionId id = MustLoad("function run() while true do end end", limits);
  auto r = Run(id);
  ASSERT_THAT(r, StatusIs(StatusCode::kDeadlineExceeded));
  EXPECT_EQ(sandbox_.ErrorKindOf(id, r.status()), ErrorKind::kWallTime);
}

// --- Error kinds (ErrorKindOf, for metrics) -----------------------------------------------------

TEST_F(SandboxTest, ErrorKindOfSaysWhyTheLastCallFailed) {
  Limits limits;
  limits.memory_bytes = 64 << 10;
  const FunctionId id = MustLoad(R"(
function boom() error("asked to") end
function spin() while true do end end
function hog() return string.rep("x", 1e7) end
function two() return 1, 2 end
)",
                                 limits);
  auto kind_of = [&](std::string_view entry) {
    auto r = Run(id, {}, entry);
    EXPECT_FALSE(r.ok()) << entry;
    return r.ok() ? ErrorKind::kOther : sandbox_.ErrorKindOf(id, r.status());
  };
  EXPECT_EQ(kind_of("boom"), ErrorKind::kRuntime);
  EXPECT_EQ(kind_of("spin"), ErrorKind::kInstructions);
  EXPECT_EQ(kind_of("hog"), ErrorKind::kMemory);
  EXPECT_EQ(kind_of("two"), ErrorKind::kBadReturn);
  EXPECT_EQ(kind_of("boom"), ErrorKind::kRuntime) << "each call sets the kind afresh";
  EXPECT_EQ(kind_of("missing"), ErrorKind::kOther);
  EXPECT_EQ(ErrorKindName(ErrorKind::kWallTime), "wall_time");
  EXPECT_EQ(ErrorKindName(ErrorKind::kBadReturn), "bad_return");
}

TEST_F(SandboxWallClockTest, PcallCannotCatchWallBudget) {
  Limits limits;
  limits.instructions = std::numeric_limits<uint64_t>::max();
  const FunctionId id = MustLoad(
      "function run() while true do pcall(function() while true do end end) end end", limits);
  EXPECT_THAT(Run(id), StatusIs(StatusCode::kDeadlineExceeded));
  ExpectHealthy(id);
}

// --- The allow-list -------------------------------------------------------------------------

class ForbiddenTest : public SandboxTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(ForbiddenTest, IsNotReachable) {
  const FunctionId id = MustLoad(std::string("function run() return ") + GetParam() + " end");
  auto r = Run(id);
  EXPECT_THAT(r, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(r.status().message(), HasSubstr("nil value"));
  ExpectHealthy(id);
}

INSTANTIATE_TEST_SUITE_P(
    SandboxTest, ForbiddenTest,
    ::testing::Values("io.open('/etc/passwd')", "io.write('x')", "os.exit(1)", "os.execute('true')",
                      "os.getenv('HOME')", "require('os')", "package.loaded", "debug.sethook()",
                      "debug.getregistry()", "load('return 1')", "loadstring('return 1')",
                      "dofile('/etc/passwd')", "loadfile('/etc/passwd')", "collectgarbage('stop')",
                      "string.dump(run)", "('').dump(run)", "string.gsub('a', 'a', 'b')",
                      "string.match('a', 'a')", "('a'):gmatch('a')", "print('x')", "warn('x')",
                      "coroutine.create(run)"));

TEST_F(SandboxTest, AllowedLibrariesWork) {
  const FunctionId id = MustLoad(R"(
function run()
  local parts = {}
  for _, word in ipairs({'a', 'b', 'c'}) do table.insert(parts, word:upper()) end
  table.insert(parts, 1, 'Z')
  assert(table.remove(parts, 1) == 'Z' and table.remove({1}) == 1)
  assert(string.find('hello world', 'o w') == 5 and ('a.b'):find('.', 1, true) == 2)
  assert(string.rep('ab', 3, ',') == 'ab,ab,ab' and #table.move({1, 2, 3}, 1, 3, 2) == 4)
  local n = 0
  for _ in pairs(math) do n = n + 1 end
  assert(n > 10, 'pairs over a library')
  assert(_G == _ENV and select('#', 1, 2) == 2 and tonumber('7') == 7)
  assert(utf8.len('h\u{e9}') == 2 and math.type(1) == 'integer' and rawlen({1}) == 1)
  local t = setmetatable({}, {__index = function() return 5 end})
  assert(t.x == 5 and rawget(t, 'x') == nil and rawequal(t, t) and next({}) == nil)
  rawset(t, 'y', 1)
  return table.concat(parts, ',') .. string.format(' %d', math.floor(math.pi))
end)");
  auto r = Run(id);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(*r, Optional(Value(std::string("A,B,C 3"))));
}

TEST_F(SandboxTest, LibraryTablesAreReadOnly) {
  for (const char* write :
       {"string.upper = nil", "math.pi = 3", "table.insert = print", "utf8.x = 1",
        "rawset(string, 'upper', nil)", "table.insert(math, 1)"}) {
    const FunctionId id = MustLoad(std::string("function run() ") + write + " end");
    auto r = Run(id);
    EXPECT_THAT(r, StatusIs(StatusCode::kFailedPrecondition)) << write;
    EXPECT_THAT(r.status().message(), HasSubstr("read-only")) << write;
  }
  const FunctionId id = MustLoad("function run() return ('x'):upper() .. math.pi end");
  auto r = Run(id);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(*r, Optional(Value(std::string("X3.1415926535898"))));
}

TEST_F(SandboxTest, StringMetatableIsHidden) {
  const FunctionId id = MustLoad("function run() return getmetatable('') end");
  auto r = Run(id);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(*r, Optional(Value(false)));
}

TEST_F(SandboxTest, EnvironmentMetatableIsProtected) {
  const FunctionId id = MustLoad("function run() setmetatable(_G, nil) end");
  EXPECT_THAT(Run(id), StatusIs(StatusCode::kFailedPrecondition));
  const FunctionId peek = MustLoad("function run() return getmetatable(_G) end");
  auto r = Run(peek);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(*r, Optional(Value(false)));
}

TEST_F(SandboxTest, GcMetamethodIsRefused) {
  const FunctionId id =
      MustLoad("function run() setmetatable({}, {__gc = function() while true do end end}) end");
  auto r = Run(id);
  EXPECT_THAT(r, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(r.status().message(), HasSubstr("__gc"));
}

// --- No state across calls ------------------------------------------------------------------

TEST_F(SandboxTest, GlobalsDoNotPersistAcrossCalls) {
  const FunctionId id = MustLoad("function run() counter = (counter or 0) + 1 return counter end");
  for (int call = 0; call < 3; ++call) {
    auto r = Run(id);
    ASSERT_THAT(r, IsOk());
    EXPECT_THAT(*r, Optional(Value(int64_t{1})));
  }
}

TEST_F(SandboxTest, UpvaluesDoNotPersistAcrossCalls) {
  const FunctionId id =
      MustLoad("local counter = 0\nfunction run() counter = counter + 1 return counter end");
  for (int call = 0; call < 3; ++call) {
    auto r = Run(id);
    ASSERT_THAT(r, IsOk());
    EXPECT_THAT(*r, Optional(Value(int64_t{1})));
  }
}

TEST_F(SandboxTest, OverwrittenGlobalFunctionIsRestoredNextCall) {
  const FunctionId id = MustLoad(R"(
function run()
  local before = type(tostring)
  tostring = nil
  ok = nil
  return before
end)");
  ASSERT_THAT(Run(id), IsOk());
  auto r = Run(id);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(*r, Optional(Value(std::string("function"))));
  ExpectHealthy(id);
}

// --- Loading --------------------------------------------------------------------------------

TEST_F(SandboxTest, BytecodeIsRejected) {
  auto r = sandbox_.Load("bin", 1, std::string_view("\x1bLuaT\x00\x19\x93\r\n", 10), Limits{});
  EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(r.status().message(), HasSubstr("binary chunk"));
}

TEST_F(SandboxTest, SyntaxErrorReportsLine) {
  auto r = sandbox_.Load("typo", 4, "function run()\n  return 1 +\nend\n", Limits{});
  EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(r.status().message(), HasSubstr("function typo v4: line 3: "));
}

TEST_F(SandboxTest, TopLevelErrorFailsLoad) {
  auto r = sandbox_.Load("top", 1, "local x = nil\nlocal y = x.field", Limits{});
  EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(r.status().message(), HasSubstr("function top v1: line 2: attempt to index"));
}

TEST_F(SandboxTest, TopLevelLoopFailsLoadWithBudget) {
  EXPECT_THAT(sandbox_.Load("top", 1, "while true do end", Limits{}),
              StatusIs(StatusCode::kResourceExhausted));
}

TEST_F(SandboxTest, SourceLargerThanMemoryCapFailsLoad) {
  Limits limits;
  limits.memory_bytes = 4 << 10;
  std::string source = "return {";
  for (int i = 0; i < 10000; ++i) {
    source += std::to_string(i) + ",";
  }
  source += "}";
  EXPECT_THAT(sandbox_.Load("huge", 1, source, limits), StatusIs(StatusCode::kResourceExhausted));
}

TEST_F(SandboxTest, BadNameOrLimitsAreRejected) {
  EXPECT_THAT(sandbox_.Load("", 1, "", Limits{}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(sandbox_.Load("a b", 1, "", Limits{}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(sandbox_.Load(std::string(129, 'a'), 1, "", Limits{}),
              StatusIs(StatusCode::kInvalidArgument));
  Limits zero;
  zero.instructions = 0;
  EXPECT_THAT(sandbox_.Load("f", 1, "", zero), StatusIs(StatusCode::kInvalidArgument));
  zero = Limits{};
  zero.memory_bytes = 0;
  EXPECT_THAT(sandbox_.Load("f", 1, "", zero), StatusIs(StatusCode::kInvalidArgument));
  zero = Limits{};
  zero.wall_micros = 0;
  EXPECT_THAT(sandbox_.Load("f", 1, "", zero), StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(SandboxTest, UnknownOrUnloadedFunctionIsNotFound) {
  const FunctionId id = MustLoad("function run() return 1 end");
  EXPECT_THAT(sandbox_.Unload(id), IsOk());
  EXPECT_THAT(Run(id), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(sandbox_.Unload(id), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(sandbox_.MemoryInUse(id), StatusIs(StatusCode::kNotFound));
  EXPECT_EQ(sandbox_.function_count(), 1u);  // normal
}

TEST_F(SandboxTest, MissingEntryIsNotFound) {
  const FunctionId id = MustLoad("local function run() return 1 end\nanswer = 42");
  EXPECT_THAT(Run(id), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(Run(id, {}, "answer"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(Run(id, {}, ""), StatusIs(StatusCode::kInvalidArgument));
  ExpectHealthy(id);
}

// --- Runtime errors and results -------------------------------------------------------------

TEST_F(SandboxTest, RuntimeErrorNamesFunctionVersionAndLine) {
  const FunctionId id =
      MustLoad("function run()\n  local x = nil\n  return x.y\nend", Limits{}, "decayed_spend", 2);
  auto r = Run(id);
  EXPECT_THAT(r, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_EQ(r.status().message(),
            "function decayed_spend v2: line 3: attempt to index a nil value (local 'x')");
  ExpectHealthy(id);
}

TEST_F(SandboxTest, ErrorWithoutPositionGetsLineOfRaisingCode) {
  const FunctionId id = MustLoad("function run()\n  error('boom', 0)\nend");
  auto r = Run(id);
  EXPECT_THAT(r, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_EQ(r.status().message(), "function f v1: line 2: boom");
}

TEST_F(SandboxTest, NonStringErrorIsDescribedWithoutRunningIt) {
  const FunctionId id = MustLoad(R"(
function run()
  error(setmetatable({}, {__tostring = function() while true do end end}))
end)");
  auto r = Run(id);
  EXPECT_THAT(r, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(r.status().message(), HasSubstr("error object is a table value"));
}

TEST_F(SandboxTest, HugeErrorMessageIsTruncated) {
  const FunctionId id = MustLoad("function run() error(string.rep('x', 100000) .. '\\n') end");
  auto r = Run(id);
  EXPECT_THAT(r, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_LT(r.status().message().size(), 400u);
}

class WrongReturnTest : public SandboxTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(WrongReturnTest, IsFailedPrecondition) {
  const FunctionId id =
      MustLoad(std::string("function run() return ") + GetParam() + " end", Limits{}, "score", 9);
  auto r = Run(id);
  EXPECT_THAT(r, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(r.status().message(), HasSubstr("function score v9: 'run' returned "));
  ExpectHealthy(id);
}

INSTANTIATE_TEST_SUITE_P(SandboxTest, WrongReturnTest,
                         ::testing::Values("function() end", "{a = 1}", "{1, 'two'}",
                                           "{1, 2, nil, 4}", "1, 2", "0/0", "math.huge", "{1e39}",
                                           "{[0] = 1}", "string.upper"));

TEST_F(SandboxTest, ValuesRoundTrip) {
  const FunctionId id = MustLoad("function echo(x) return x end");
  const std::vector<Value> same = {
      int64_t{0},
      std::numeric_limits<int64_t>::min(),
      std::numeric_limits<int64_t>::max(),
      0.5,
      -1e300,
      true,
      false,
      std::string("text"),
      std::string("nul\0inside", 10),
      std::vector<float>{1.5f, -2.0f, 3.25f},
      std::vector<float>{},
  };
  for (const Value& value : same) {
    auto r = sandbox_.Call(id, "echo", std::vector<Value>{value});
    ASSERT_THAT(r, IsOk());
    EXPECT_THAT(*r, Optional(value));
  }
  // Lua has one string type and integers for times: these come back as their Lua form.
  auto bytes = sandbox_.Call(id, "echo", std::vector<Value>{Bytes{"\x01\x02"}});
  ASSERT_THAT(bytes, IsOk());
  EXPECT_THAT(*bytes, Optional(Value(std::string("\x01\x02"))));
  auto time = sandbox_.Call(id, "echo", std::vector<Value>{Timestamp{1234}});
  ASSERT_THAT(time, IsOk());
  EXPECT_THAT(*time, Optional(Value(int64_t{1234})));
}

TEST_F(SandboxTest, ArgumentsHaveTheirLuaTypes) {
  const FunctionId id = MustLoad(R"(
function kinds(...)
  local out = {}
  for i = 1, select('#', ...) do
    local v = select(i, ...)
    out[#out + 1] = math.type(v) or type(v)
  end
  return table.concat(out, ',')
end)");
  const std::vector<Value> args = {
      int64_t{1}, 1.0, true, std::string("s"), Bytes{"b"}, Timestamp{2}, std::vector<float>{1.0f}};
  auto r = sandbox_.Call(id, "kinds", args);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(*r,
              Optional(Value(std::string("integer,float,boolean,string,string,integer,table"))));
}

TEST_F(SandboxTest, NilOrNothingIsNoValue) {
  const FunctionId id = MustLoad("function none() end\nfunction null() return nil end");
  for (const char* entry : {"none", "null"}) {
    auto r = Run(id, {}, entry);
    ASSERT_THAT(r, IsOk());
    EXPECT_EQ(*r, std::nullopt);
  }
}

TEST_F(SandboxTest, ComputesWithArguments) {
  const FunctionId id = MustLoad(R"(
local half_life = 3600 * 1e6
function decayed(amount, at, now) return amount * 0.5 ^ ((now - at) / half_life) end)");
  auto r = Run(id, {100.0, Timestamp{0}, Timestamp{3'600'000'000}}, "decayed");
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(*r, Optional(Value(50.0)));
}

TEST_F(SandboxTest, ManyFunctionsLoadIndependently) {
  std::vector<FunctionId> ids;
  for (int i = 0; i < 50; ++i) {
    ids.push_back(MustLoad("function run() return " + std::to_string(i) + " end"));
  }
  for (int i = 0; i < 50; ++i) {
    auto r = Run(ids[i]);
    ASSERT_THAT(r, IsOk());
    EXPECT_THAT(*r, Optional(Value(int64_t{i})));
  }
  EXPECT_EQ(sandbox_.function_count(), 51u);
}

// --- Procedures: execute(record, args, key) -> result, new record ---

using ::ods::record::Field;

// Field `name` of `fields`, or nullptr.
const Value* FieldOf(const std::vector<Field>& fields, std::string_view name) {
  for (const Field& f : fields) {
    if (f.name == name) return &f.value;
  }
  return nullptr;
}

TEST_F(SandboxTest, ProcedureSeesRecordArgsAndKeyAndReturnsNewRecord) {
  const FunctionId id = MustLoad(R"(
function execute(record, args, key)
  record.n = record.n + args.by
  record.who = key
  return record.n, record
end)");
  const std::vector<Field> record = {{"n", int64_t{40}}, {"name", std::string("ann")}};
  const std::vector<Field> args = {{"by", int64_t{2}}};
  auto r = sandbox_.CallProcedure(id, "execute", "user-1", &record, args);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->value, Optional(Value(int64_t{42})));
  ASSERT_TRUE(r->record.has_value());
  EXPECT_EQ(r->record->size(), 3u);
  EXPECT_EQ(*FieldOf(*r->record, "n"), Value(int64_t{42}));
  EXPECT_EQ(*FieldOf(*r->record, "name"), Value(std::string("ann")));
  EXPECT_EQ(*FieldOf(*r->record, "who"), Value(std::string("user-1")));
}

TEST_F(SandboxTest, ProcedureGetsNilForAbsentRecordAndMayLeaveItAlone) {
  const FunctionId id =
      MustLoad("function execute(record, args) return record == nil and #args == 0 end");
  auto r = sandbox_.CallProcedure(id, "execute", "k", nullptr, {});
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->value, Optional(Value(true)));
  EXPECT_EQ(r->record, std::nullopt);
}

TEST_F(SandboxTest, ProcedureNewRecordKeepsVectorsAndDropsNothing) {
  const FunctionId id = MustLoad("function execute(r) return nil, {v = {1.5, 2}, e = {}} end");
  const std::vector<Field> record;
  auto r = sandbox_.CallProcedure(id, "execute", "k", &record, {});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->value, std::nullopt);
  ASSERT_TRUE(r->record.has_value());
  EXPECT_EQ(*FieldOf(*r->record, "v"), Value(std::vector<float>{1.5f, 2.0f}));
  EXPECT_EQ(*FieldOf(*r->record, "e"), Value(std::vector<float>{}));
}

struct BadProcedureCase {
  const char* name;
  const char* source;
  const char* message_part;
};

// Keeps ctest's test names stable (gtest would print the struct's bytes).
void PrintTo(const BadProcedureCase& c, std::ostream* os) { *os << c.name; }

class BadProcedureReturnTest : public SandboxTest,
                               public ::testing::WithParamInterface<BadProcedureCase> {};

TEST_P(BadProcedureReturnTest, IsFailedPreconditionNamingWhatIsWrong) {
  const FunctionId id = MustLoad(GetParam().source);
  const std::vector<Field> record = {{"n", int64_t{1}}};
  auto r = sandbox_.CallProcedure(id, "execute", "k", &record, {});
  EXPECT_THAT(r, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(r.status().message(), HasSubstr("function f v1: "));
  EXPECT_THAT(r.status().message(), HasSubstr(GetParam().message_part));
  ExpectHealthy(id);
}

INSTANTIATE_TEST_SUITE_P(
    Returns, BadProcedureReturnTest,
    ::testing::Values(
        BadProcedureCase{"RecordIsANumber", "function execute() return 1, 2 end",
                         "new record that is a number"},
        BadProcedureCase{"ThreeValues", "function execute() return 1, {}, 3 end",
                         "returned 3 values"},
        BadProcedureCase{"NumberKey", "function execute() return 1, {[1] = 2} end", "a number key"},
        BadProcedureCase{"NestedTable", "function execute() return 1, {n = {a = 1}} end",
                         "field 'n' is a table that is not a list of numbers"},
        BadProcedureCase{"FunctionField", "function execute() return 1, {n = execute} end",
                         "field 'n' is a function"},
        BadProcedureCase{"ResultIsAMap", "function execute() return {x = 1} end",
                         "returned a table that is not a list of numbers"}),
    [](const ::testing::TestParamInfo<BadProcedureCase>& info) { return info.param.name; });

TEST_F(SandboxTest, ProcedureInfiniteLoopExhaustsBudgetNamingLine) {
  const FunctionId id = MustLoad("function execute(r)\n  while true do end\nend");
  const std::vector<Field> record = {{"n", int64_t{1}}};
  auto r = sandbox_.CallProcedure(id, "execute", "k", &record, {});
  EXPECT_THAT(r, StatusIs(StatusCode::kResourceExhausted));
  EXPECT_THAT(r.status().message(), HasSubstr("function f v1: line 2: instruction budget"));
  ExpectHealthy(id);
}

TEST_F(SandboxTest, ProcedureRecordCountsAgainstMemoryCap) {
  Limits limits;
  limits.memory_bytes = 64 << 10;
  const FunctionId id = MustLoad("function execute(r) return 1 end", limits);
  const std::vector<Field> record = {{"blob", std::string(256 << 10, 'x')}};
  auto r = sandbox_.CallProcedure(id, "execute", "k", &record, {});
  EXPECT_THAT(r, StatusIs(StatusCode::kResourceExhausted));
  ExpectHealthy(id);
}

TEST_F(SandboxTest, ProcedureMissingEntryIsNotFound) {
  const FunctionId id = MustLoad("function other() end");
  auto r = sandbox_.CallProcedure(id, "execute", "k", nullptr, {});
  EXPECT_THAT(r, StatusIs(StatusCode::kNotFound));
}

TEST_F(SandboxTest, CheckEntriesNamesEveryMissingEntry) {
  const FunctionId id = MustLoad("function init() end\nfunction update() end\nmerge = 3");
  const std::vector<std::string_view> wanted = {"init", "update", "merge", "finalize"};
  Status s = sandbox_.CheckEntries(id, wanted);
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(s.message(), HasSubstr("function f v1: defines no global function 'merge', "
                                     "'finalize'"));
  const std::vector<std::string_view> present = {"init", "update", "ok"};
  EXPECT_THAT(sandbox_.CheckEntries(id, present), IsOk());
  EXPECT_THAT(sandbox_.CheckEntries(FunctionId{999}, present), StatusIs(StatusCode::kNotFound));
}


// ---- Aggregators ------------------------------------------------------------------------------

class AggregatorTest : public SandboxTest {
 protected:
  // Folds `values` (as the aggregated field, times 1, 2, ...) into one fresh state.
  std::string Fold(FunctionId id, const std::vector<Value>& values) {
    std::string state;
    Micros t = 0;
    for (const Value& v : values) {
      AggregatorEvent e;
      e.value = &v;
      e.time = ++t;
      EXPECT_THAT(sandbox_.AggregatorUpdate(id, state, e), IsOk());
    }
    return state;
  }
  Result<std::optional<Value>> Finish(FunctionId id, const std::vector<std::string>& tiles) {
    std::vector<std::string_view> views(tiles.begin(), tiles.end());
    return sandbox_.AggregatorFinish(id, views);
  }
};

constexpr std::string_view kMeanAggregator = R"(
function init() return {sum = 0, n = 0} end
function update(s, v, t) s.sum = s.sum + v; s.n = s.n + 1; return s end
function merge(a, b) return {sum = a.sum + b.sum, n = a.n + b.n} end
function finalize(s) if s.n == 0 then return nil end return s.sum / s.n end
)";

TEST_F(AggregatorTest, FoldsMergesAndFinalizesTableStates) {
  const FunctionId id = MustLoad(kMeanAggregator);
  const std::string a = Fold(id, {Value(int64_t{1}), Value(int64_t{2})});
  const std::string b = Fold(id, {Value(6.0)});
  EXPECT_THAT(Finish(id, {a, b}), IsOkAndHolds(Optional(Value(3.0))));
  EXPECT_THAT(Finish(id, {a}), IsOkAndHolds(Optional(Value(1.5))));
  // No tiles: finalize(init()).
  EXPECT_THAT(Finish(id, {}), IsOkAndHolds(std::optional<Value>()));
}

TEST_F(AggregatorTest, StatesKeepIntegersFloatsStringsBooleansAndNesting) {
  const FunctionId id = MustLoad(R"(
function init() return nil end
function update(s, v) return {i = 7, f = 0.5, s = "x\0y", b = false, nested = {{1}, {k = true}}} end
function merge(a, b) return a end
function finalize(s)
  assert(math.type(s.i) == "integer" and s.i == 7)
  assert(math.type(s.f) == "float" and s.f == 0.5)
  assert(s.s == "x\0y" and s.b == false and s.nested[1][1] == 1 and s.nested[2].k == true)
  return "ok"
end
)");
  const std::string state = Fold(id, {Value(int64_t{1})});
  EXPECT_THAT(Finish(id, {state}), IsOkAndHolds(Optional(Value(std::string("ok")))));
}

TEST_F(AggregatorTest, WholeEventTableWhenNoFieldIsNamed) {
  const FunctionId id = MustLoad(R"(
function init() return 0 end
function update(s, e, t) return s + e.amount * (e.vip and 2 or 1) + t end
function merge(a, b) return a + b end
function finalize(s) return s end
)");
  const std::vector<std::string> names = {"amount", "vip", "note"};
  const Value amount(10.0);
  const Value vip(true);
  const std::vector<const Value*> values = {&amount, &vip, nullptr};
  AggregatorEvent e;
  e.names = names;
  e.values = values;
  e.time = 5;
  std::string state;
  ASSERT_THAT(sandbox_.AggregatorUpdate(id, state, e), IsOk());
  EXPECT_THAT(Finish(id, {state}), IsOkAndHolds(Optional(Value(25.0))));
}

TEST_F(AggregatorTest, UnstorableStateIsFailedPreconditionNamingWhereAndStateIsKept) {
  const FunctionId id = MustLoad(R"(
function init() return 1 end
function update(s, v) if v == 0 then return {a = {cb = print or function() end}} end return s + v end
function merge(a, b) return a + b end
function finalize(s) return s end
)");
  std::string state = Fold(id, {Value(int64_t{2})});
  const std::string before = state;
  const Value zero(int64_t{0});
  AggregatorEvent e;
  e.value = &zero;
  EXPECT_THAT(sandbox_.AggregatorUpdate(id, state, e),
              StatusIs(StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("function f v1"), HasSubstr("holds a function at state.a.cb"))));
  EXPECT_EQ(state, before);
  EXPECT_THAT(Finish(id, {state}), IsOkAndHolds(Optional(Value(int64_t{3}))));
}

TEST_F(AggregatorTest, StateOverSizeLimitIsRefused) {
  const FunctionId id = MustLoad(R"(
function init() return "" end
function update(s, v) return s .. string.rep("x", 40000) end
function merge(a, b) return a end
function finalize(s) return #s end
)", Limits{.instructions = 1'000'000, .memory_bytes = 8 << 20, .wall_micros = 1'000'000});
  std::string state = Fold(id, {Value(int64_t{1})});
  const Value one(int64_t{1});
  AggregatorEvent e;
  e.value = &one;
  EXPECT_THAT(sandbox_.AggregatorUpdate(id, state, e),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("larger than 64 KiB")));
}

TEST_F(AggregatorTest, RuntimeErrorAndBudgetNameFunctionAndLine) {
  const FunctionId id = MustLoad(R"(
function init() return 0 end
function update(s, v)
  if v < 0 then error("negative amount") end
  if v == 0 then while true do end end
  return s + v
end
function merge(a, b) return a + b end
function finalize(s) return s end
)",
                                 Limits{.instructions = 100'000});
  std::string state;
  const Value negative(int64_t{-1});
  const Value zero(int64_t{0});
  AggregatorEvent e;
  e.value = &negative;
  EXPECT_THAT(sandbox_.AggregatorUpdate(id, state, e),
              StatusIs(StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("function f v1: line 4"), HasSubstr("negative amount"))));
  e.value = &zero;
  EXPECT_THAT(sandbox_.AggregatorUpdate(id, state, e),
              StatusIs(StatusCode::kResourceExhausted, HasSubstr("line 5")));
  EXPECT_TRUE(state.empty());
  ExpectHealthy(id);
}

TEST_F(AggregatorTest, NoStateLeaksBetweenCallsThroughGlobals) {
  const FunctionId id = MustLoad(R"(
calls = 0
function init() return 0 end
function update(s, v) calls = calls + 1; return s + calls end
function merge(a, b) return a + b end
function finalize(s) return s end
)");
  // Every update sees calls == 0 before it: the state grows by exactly 1 per event.
  const std::string state =
      Fold(id, {Value(int64_t{1}), Value(int64_t{1}), Value(int64_t{1}), Value(int64_t{1})});
  EXPECT_THAT(Finish(id, {state}), IsOkAndHolds(Optional(Value(int64_t{4}))));
}

TEST_F(AggregatorTest, CorruptStateIsAnErrorNotACrash) {
  const FunctionId id = MustLoad(kMeanAggregator);
  for (std::string bad : {std::string("T\xff\xff\xff\x7f"), std::string("s\x10\0\0\0ab", 7),
                          std::string("q"), std::string("i123")}) {
    EXPECT_THAT(Finish(id, {bad}), StatusIs(StatusCode::kFailedPrecondition,
                                            HasSubstr("corrupt aggregator state")));
  }
  ExpectHealthy(id);
}


TEST_F(SandboxTest, DerivedGetsItsInputsByRefAndTheEntity) {
  const FunctionId id = MustLoad(R"(
function compute(inputs, entity)
  if inputs["spend@24h"] == nil then return nil end
  return inputs["spend@24h"] / (inputs["count@24h"] or 1) + #entity
end
)");
  const std::vector<record::Field> inputs = {{"spend@24h", Value(10.0)},
                                             {"count@24h", Value(int64_t{4})}};
  EXPECT_THAT(sandbox_.CallDerived(id, "compute", inputs, "abc"),
              IsOkAndHolds(Optional(Value(5.5))));
  EXPECT_THAT(sandbox_.CallDerived(id, "compute", {}, "abc"),
              IsOkAndHolds(std::optional<Value>()));
  EXPECT_THAT(sandbox_.CallDerived(id, "nope", inputs, "abc"), StatusIs(StatusCode::kNotFound));
}

}  // namespace
}  // namespace ods::sandbox
