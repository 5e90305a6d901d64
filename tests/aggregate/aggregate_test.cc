#include "ods/aggregate/aggregate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/common/value_type.h"
#include "ods/record/value.h"
#include "output_util.h"
#include "support/test_util.h"

namespace ods::aggregate {
namespace {

using ::ods::record::Bytes;
using ::ods::record::Timestamp;
using ::ods::record::Value;
using ::ods::aggregate::test_util::BitIdentical;
using ::ods::aggregate::test_util::Describe;
using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;
using ::testing::HasSubstr;

constexpr Micros kSec = 1'000'000;
constexpr Micros kMin = 60 * kSec;
constexpr Micros kHour = 60 * kMin;
constexpr Micros kDay = 24 * kHour;

// ---- helpers ----------------------------------------------------------------------------------

struct Event {
  Micros time;
  std::optional<Value> value;  // nullopt: the record lacks the field
};

std::vector<Sample> Samples(const std::vector<Event>& events) {
  std::vector<Sample> out;
  out.reserve(events.size());
  for (const Event& e : events) out.push_back({e.time, e.value ? &*e.value : nullptr});
  return out;
}

// One spec as a one-member SeriesGroup, the shape most tests need.
class OneSeries {
 public:
  explicit OneSeries(const Spec& spec) : layout_({Member{spec, 0}}), group_(layout_) {}
  void Add(Micros t, const Value* v, Micros now) {
    const Value* values[] = {v};
    group_.Add(t, values, now);
  }
  Output Query(size_t window, Micros now) const { return group_.Query(0, window, now); }
  size_t MemoryBytes() const { return group_.MemoryBytes(); }

 private:
  GroupLayout layout_;
  SeriesGroup group_;
};

// Equal, except doubles (sums, means, deviations), which may differ by rounding.
bool Equivalent(const Output& actual, const Output& expected) {
  const auto* a = std::get_if<Value>(&actual);
  const auto* e = std::get_if<Value>(&expected);
  if (a != nullptr && e != nullptr && std::holds_alternative<double>(*a) &&
      std::holds_alternative<double>(*e)) {
    const double x = std::get<double>(*a);
    const double y = std::get<double>(*e);
    return std::abs(x - y) <= 1e-9 * std::max({1.0, std::abs(x), std::abs(y)});
  }
  return BitIdentical(actual, expected);
}

bool Less(const Value& a, const Value& b) {
  return std::visit(
      [&](const auto& x) -> bool {
        using T = std::decay_t<decltype(x)>;
        const T& y = std::get<T>(b);
        if constexpr (std::is_same_v<T, Bytes>) {
          return x.data < y.data;
        } else if constexpr (std::is_same_v<T, Timestamp>) {
          return x.micros < y.micros;
        } else {
          return x < y;
        }
      },
      a);
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - (a % b != 0 && a < 0 ? 1 : 0); }

// Brute force, straight from the documented semantics: no tiles, no partials.
Output Reference(const Spec& spec, size_t window, const std::vector<Event>& events, Micros t) {
  const Micros g = spec.tiles[window];
  const Micros start = FloorDiv(t, g) * g + g - spec.windows[window];
  struct In {
    Micros time;
    size_t arrival;
    const Value* value;
  };
  std::vector<In> in;
  for (size_t i = 0; i < events.size(); ++i) {
    const Event& e = events[i];
    if (e.time < start || e.time > t) continue;
    const Value* v = e.value ? &*e.value : nullptr;
    if (spec.fn != Fn::kCount && (v == nullptr || record::TypeOf(*v) != spec.input_type)) continue;
    in.push_back({e.time, i, v});
  }
  const bool is_double = spec.input_type == ValueType::kDouble;
  auto as_double = [](const Value* v) {
    if (const auto* i = std::get_if<int64_t>(v)) return static_cast<double>(*i);
    return std::get<double>(*v);
  };
  switch (spec.fn) {
    case Fn::kCount:
      return Value(static_cast<int64_t>(in.size()));
    case Fn::kSum: {
      if (is_double) {
        double sum = 0;
        for (const In& e : in) sum += std::get<double>(*e.value);
        return Value(sum);
      }
      uint64_t sum = 0;
      for (const In& e : in) sum += static_cast<uint64_t>(std::get<int64_t>(*e.value));
      return Value(static_cast<int64_t>(sum));
    }
    case Fn::kMin:
    case Fn::kMax: {
      if (in.empty()) return std::monostate{};
      const Value* best = in[0].value;
      for (const In& e : in) {
        if (spec.fn == Fn::kMin ? Less(*e.value, *best) : Less(*best, *e.value)) best = e.value;
      }
      return *best;
    }
    case Fn::kMean:
    case Fn::kStddev: {
      if (in.empty()) return std::monostate{};
      double sum = 0;
      for (const In& e : in) sum += as_double(e.value);
      const double mean = sum / static_cast<double>(in.size());
      if (spec.fn == Fn::kMean) return Value(mean);
      double squares = 0;
      for (const In& e : in) squares += (as_double(e.value) - mean) * (as_double(e.value) - mean);
      return Value(std::sqrt(squares / static_cast<double>(in.size())));
    }
    case Fn::kFirst:
    case Fn::kLast:
    case Fn::kLastN: {
      // Newest first; equal times: later arrival first.
      std::sort(in.begin(), in.end(), [](const In& a, const In& b) {
        return a.time != b.time ? a.time > b.time : a.arrival > b.arrival;
      });
      if (spec.fn == Fn::kLastN) {
        std::vector<Value> out;
        for (size_t i = 0; i < in.size() && i < spec.n; ++i) out.push_back(*in[i].value);
        return out;
      }
      if (in.empty()) return std::monostate{};
      return spec.fn == Fn::kLast ? *in.front().value : *in.back().value;
    }
    case Fn::kDistinctCount: {
      std::vector<Value> distinct;
      for (const In& e : in) distinct.push_back(*e.value);
      std::sort(distinct.begin(), distinct.end(), Less);
      distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
      return Value(static_cast<int64_t>(distinct.size()));
    }
    case Fn::kTopK: {
      std::vector<std::pair<Value, int64_t>> counts;
      for (const In& e : in) {
        auto it = std::find_if(counts.begin(), counts.end(),
                               [&](const auto& c) { return c.first == *e.value; });
        if (it == counts.end()) {
          counts.emplace_back(*e.value, 1);
        } else {
          ++it->second;
        }
      }
      std::sort(counts.begin(), counts.end(), [](const auto& a, const auto& b) {
        return a.second != b.second ? a.second > b.second : Less(a.first, b.first);
      });
      std::vector<Value> out;
      for (size_t i = 0; i < counts.size() && i < spec.n; ++i) out.push_back(counts[i].first);
      return out;
    }
  }
  return std::monostate{};
}

Value RandomValue(ValueType type, std::mt19937_64& rng) {
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  switch (type) {
    case ValueType::kInt64:
      return Value(pick(-40, 40));
    case ValueType::kDouble:
      return Value(std::uniform_real_distribution<double>(-100, 100)(rng));
    case ValueType::kBool:
      return Value(std::in_place_type<bool>, pick(0, 1) == 1);
    case ValueType::kString: {
      // Some longer than the small-string buffer, and bytes above 0x7f for the byte order.
      std::string s = "k" + std::to_string(pick(0, 30));
      if (pick(0, 3) == 0) s += std::string(20, 'x');
      if (pick(0, 5) == 0) s += "\xe9";
      return Value(s);
    }
    case ValueType::kBytes: {
      std::string s(static_cast<size_t>(pick(0, 2)), '\0');
      for (char& c : s) c = static_cast<char>(pick(0, 3) * 85);  // 0, 85, 170, 255
      return Value(Bytes{s});
    }
    case ValueType::kFloatVector:
      return Value(std::vector<float>{static_cast<float>(pick(0, 9)), 0.5f});
    case ValueType::kTimestamp:
      return Value(Timestamp{pick(-20, 20) * kSec});
  }
  return Value(int64_t{0});
}

struct Layout {
  std::string name;
  std::vector<Micros> windows;
  std::vector<Micros> tiles;
  Micros time_grain;  // event times are multiples of it, so that times tie
};

std::vector<Layout> Layouts() {
  return {
      // Two windows share the 1s tiles (kept for the longer one); the 10s window has 6 tiles.
      {"seconds", {10 * kSec, 60 * kSec, 60 * kSec}, {kSec, 10 * kSec, kSec}, 250'000},
      {"days", {kHour, 24 * kHour, 7 * kDay}, {kMin, kHour, kHour}, kSec},
      // Microsecond tiles: many events share a time; one window is a single tile.
      {"micros", {7, 12, 6}, {1, 3, 6}, 1},
  };
}

std::string ValueTypeParamName(ValueType t) { return std::string(ValueTypeName(t)); }

// ---- Fn names, validation, default tiles ------------------------------------------------------

TEST(FnTest, NamesRoundTrip) {
  for (int i = 0; i <= static_cast<int>(Fn::kTopK); ++i) {
    const auto fn = static_cast<Fn>(i);
    ASSERT_EQ(ParseFn(FnName(fn)), fn) << FnName(fn);
    EXPECT_THAT(std::string(FnNameList()), HasSubstr(std::string(FnName(fn))));
  }
  EXPECT_EQ(FnName(Fn::kDistinctCount), "distinct_count");
  EXPECT_EQ(FnName(Fn::kLastN), "last_n");
  EXPECT_EQ(ParseFn("avg"), std::nullopt);
  EXPECT_EQ(ParseFn(""), std::nullopt);
  EXPECT_EQ(ParseFn("Count"), std::nullopt);
}

TEST(FnTest, NeedsFieldAndN) {
  EXPECT_FALSE(NeedsField(Fn::kCount));
  EXPECT_TRUE(NeedsField(Fn::kSum));
  EXPECT_TRUE(NeedsField(Fn::kTopK));
  EXPECT_TRUE(NeedsN(Fn::kLastN));
  EXPECT_TRUE(NeedsN(Fn::kTopK));
  EXPECT_FALSE(NeedsN(Fn::kLast));
  EXPECT_FALSE(NeedsN(Fn::kCount));
}

TEST(CheckInputTypeTest, AcceptsDocumentedTypes) {
  const std::vector<std::pair<Fn, std::vector<ValueType>>> accepted = {
      {Fn::kSum, {ValueType::kInt64, ValueType::kDouble}},
      {Fn::kMean, {ValueType::kInt64, ValueType::kDouble}},
      {Fn::kStddev, {ValueType::kInt64, ValueType::kDouble}},
      {Fn::kMin,
       {ValueType::kInt64, ValueType::kDouble, ValueType::kTimestamp, ValueType::kString}},
      {Fn::kMax,
       {ValueType::kInt64, ValueType::kDouble, ValueType::kTimestamp, ValueType::kString}},
      {Fn::kDistinctCount,
       {ValueType::kInt64, ValueType::kBool, ValueType::kString, ValueType::kBytes,
        ValueType::kTimestamp}},
      {Fn::kTopK,
       {ValueType::kInt64, ValueType::kBool, ValueType::kString, ValueType::kBytes,
        ValueType::kTimestamp}},
  };
  for (const auto& [fn, types] : accepted) {
    for (int t = 1; t <= 7; ++t) {
      const auto type = static_cast<ValueType>(t);
      const bool ok = std::find(types.begin(), types.end(), type) != types.end();
      EXPECT_EQ(CheckInputType(fn, type).ok(), ok) << FnName(fn) << " " << ValueTypeName(type);
    }
  }
  for (Fn fn : {Fn::kCount, Fn::kFirst, Fn::kLast, Fn::kLastN}) {
    for (int t = 1; t <= 7; ++t) {
      EXPECT_THAT(CheckInputType(fn, static_cast<ValueType>(t)), IsOk()) << FnName(fn);
    }
  }
}

TEST(CheckInputTypeTest, RejectionNamesFnTypeAndAcceptedTypes) {
  const Status s = CheckInputType(Fn::kSum, ValueType::kString);
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(s.message(), HasSubstr("sum"));
  EXPECT_THAT(s.message(), HasSubstr("string"));
  EXPECT_THAT(s.message(), HasSubstr("int64, double"));
  EXPECT_THAT(CheckInputType(Fn::kTopK, ValueType::kDouble).message(),
              HasSubstr("int64, bool, string, bytes, timestamp"));
  EXPECT_THAT(CheckInputType(Fn::kMax, ValueType::kBool).message(),
              HasSubstr("int64, double, timestamp, string"));
}

Spec ValidSpec() {
  Spec spec;
  spec.fn = Fn::kSum;
  spec.input_type = ValueType::kDouble;
  spec.windows = {kHour, 24 * kHour};
  spec.tiles = {kMin, kHour};
  return spec;
}

TEST(ValidateTest, AcceptsWellFormedSpecs) {
  EXPECT_THAT(Validate(ValidSpec()), IsOk());
  Spec top = ValidSpec();
  top.fn = Fn::kTopK;
  top.input_type = ValueType::kString;
  top.n = kMaxN;
  EXPECT_THAT(Validate(top), IsOk());
  Spec one_tile = ValidSpec();
  one_tile.tiles = {kHour, 24 * kHour};
  EXPECT_THAT(Validate(one_tile), IsOk());
  Spec most = ValidSpec();
  most.windows = {kMaxTilesPerWindow * kSec};
  most.tiles = {kSec};
  EXPECT_THAT(Validate(most), IsOk());
}

TEST(ValidateTest, RejectsEachProblemWithAMessageSayingWhat) {
  struct Case {
    std::string what;
    Spec spec;
    std::string message_part;
  };
  std::vector<Case> cases;
  auto add = [&](std::string what, auto mutate, std::string part) {
    Spec spec = ValidSpec();
    mutate(spec);
    cases.push_back({std::move(what), std::move(spec), std::move(part)});
  };
  add(
      "type", [](Spec& s) { s.input_type = ValueType::kBytes; }, "accepts int64, double");
  add(
      "unknown fn", [](Spec& s) { s.fn = static_cast<Fn>(42); }, "count, sum");
  add(
      "n missing", [](Spec& s) { s.fn = Fn::kLastN; }, "needs n in [1, 1000]");
  add(
      "n too big",
      [](Spec& s) {
        s.fn = Fn::kTopK;
        s.input_type = ValueType::kString;
        s.n = kMaxN + 1;
      },
      "got 1001");
  add(
      "n not taken", [](Spec& s) { s.n = 3; }, "takes no n");
  add(
      "no window",
      [](Spec& s) {
        s.windows.clear();
        s.tiles.clear();
      },
      "at least one window");
  add(
      "tile count", [](Spec& s) { s.tiles.pop_back(); }, "2 windows but 1 tile sizes");
  add(
      "negative window", [](Spec& s) { s.windows[1] = -kHour; }, "must be positive");
  add(
      "zero tile", [](Spec& s) { s.tiles[0] = 0; }, "tile size must be positive");
  add(
      "not dividing", [](Spec& s) { s.tiles[1] = 7 * kMin; }, "tile size 7m does not divide");
  add(
      "too many tiles",
      [](Spec& s) {
        s.windows[0] = 2 * kDay;
        s.tiles[0] = kSec;
      },
      "at most 100000");
  for (const Case& c : cases) {
    const Status s = Validate(c.spec);
    EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument)) << c.what;
    EXPECT_THAT(s.message(), HasSubstr(c.message_part)) << c.what;
  }
}

TEST(DefaultTileForTest, DocumentedExamples) {
  EXPECT_EQ(DefaultTileFor(kHour), kMin);
  EXPECT_EQ(DefaultTileFor(24 * kHour), kHour);
  EXPECT_EQ(DefaultTileFor(7 * kDay), kHour);
  EXPECT_EQ(DefaultTileFor(30 * kDay), kDay);
  EXPECT_EQ(DefaultTileFor(365 * kDay), kDay);
  EXPECT_EQ(DefaultTileFor(10 * kSec), kSec);
  EXPECT_EQ(DefaultTileFor(90 * kMin), kMin);
  EXPECT_EQ(DefaultTileFor(2 * kHour), kMin);
  EXPECT_EQ(DefaultTileFor(kDay + kSec), kSec);
  EXPECT_EQ(DefaultTileFor(kMin), kSec);
}

TEST(DefaultTileForTest, DefaultTilesValidate) {
  for (Micros w : {kSec, 10 * kSec, kMin, kHour, 90 * kMin, kDay, 7 * kDay, 365 * kDay}) {
    Spec spec;
    spec.windows = {w};
    spec.tiles = {DefaultTileFor(w)};
    EXPECT_THAT(Validate(spec), IsOk()) << w;
  }
}

// ---- randomized: every fn against the brute-force reference ------------------------------------

class RandomizedTest : public ::testing::TestWithParam<std::tuple<Fn, ValueType>> {};

TEST_P(RandomizedTest, QueryEqualsComputeAsOfAndReference) {
  const auto [fn, type] = GetParam();
  std::mt19937_64 rng(static_cast<uint64_t>(fn) * 131 + static_cast<uint64_t>(type));
  for (const Layout& layout : Layouts()) {
    SCOPED_TRACE(layout.name);
    Spec spec;
    spec.fn = fn;
    spec.input_type = type;
    spec.n = NeedsN(fn) ? 3 : 0;
    spec.windows = layout.windows;
    spec.tiles = layout.tiles;
    ASSERT_THAT(Validate(spec), IsOk());
    const Micros longest = *std::max_element(spec.windows.begin(), spec.windows.end());
    const Micros grain = layout.time_grain;
    auto pick = [&](int64_t lo, int64_t hi) {
      return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
    };

    OneSeries series(spec);
    std::vector<Event> events;
    // Start before zero so that tile indices and window starts go negative.
    Micros now = -3 * longest - pick(0, longest / grain) * grain;
    int checks = 0;
    for (int step = 0; step < 1500; ++step) {
      // Time moves on: by a little, or to a tile edge (exactly on it or just before), or by a
      // whole window and more so that tiles fall out.
      const int64_t move = pick(0, 9);
      if (move < 6) {
        now += pick(0, 3) * grain;
      } else if (move < 9) {
        const Micros g = spec.tiles[static_cast<size_t>(pick(0, 2))];
        now = (FloorDiv(now, g) + 1) * g - pick(0, 1);
      } else if (pick(0, 10) == 0) {
        now += longest + pick(0, longest / grain) * grain;
      }
      // Out-of-order arrival: the event time lags `now`, sometimes past every window.
      const Micros lag =
          pick(0, 4) == 0 ? pick(0, longest * 5 / 4 / grain) * grain : pick(0, 5) * grain;
      Event e{now - lag, RandomValue(type, rng)};
      if (pick(0, 19) == 0) e.value.reset();
      if (pick(0, 29) == 0) e.value = Value(std::vector<float>{1.0f});  // a value of another type
      if (type == ValueType::kFloatVector && !e.value) e.value = Value(int64_t{1});
      series.Add(e.time, e.value ? &*e.value : nullptr, now);
      events.push_back(std::move(e));

      if (step % 7 != 0) continue;
      const std::vector<Sample> samples = Samples(events);
      for (size_t w = 0; w < spec.windows.size(); ++w) {
        const Output online = series.Query(w, now);
        const Output replay = ComputeAsOf(spec, w, samples, now);
        ASSERT_TRUE(BitIdentical(online, replay))
            << "window " << w << " now " << now << ": online " << Describe(online) << " replay "
            << Describe(replay);
        const Output expected = Reference(spec, w, events, now);
        ASSERT_TRUE(Equivalent(replay, expected))
            << "window " << w << " now " << now << ": got " << Describe(replay) << " expected "
            << Describe(expected);
        ++checks;
        // Point in time at earlier as-of times, on and next to tile edges.
        const Micros g = spec.tiles[w];
        const Micros edge = FloorDiv(now, g) * g - pick(0, 3) * g;
        for (Micros as_of : {edge - 1, edge, edge + 1, now - pick(0, longest / grain) * grain}) {
          const Output past = ComputeAsOf(spec, w, samples, as_of);
          const Output past_expected = Reference(spec, w, events, as_of);
          ASSERT_TRUE(Equivalent(past, past_expected))
              << "window " << w << " as of " << as_of << ": got " << Describe(past) << " expected "
              << Describe(past_expected);
        }
      }
    }
    EXPECT_GT(checks, 100);
  }
}

std::vector<std::tuple<Fn, ValueType>> AllFnTypes() {
  std::vector<std::tuple<Fn, ValueType>> out;
  for (int f = 0; f <= static_cast<int>(Fn::kTopK); ++f) {
    for (int t = 1; t <= 7; ++t) {
      const auto fn = static_cast<Fn>(f);
      const auto type = static_cast<ValueType>(t);
      if (fn == Fn::kCount && type != ValueType::kInt64) continue;
      if (CheckInputType(fn, type).ok()) out.emplace_back(fn, type);
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllFns, RandomizedTest, ::testing::ValuesIn(AllFnTypes()),
                         [](const auto& info) {
                           return std::string(FnName(std::get<0>(info.param))) + "_" +
                                  ValueTypeParamName(std::get<1>(info.param));
                         });

// ---- groups: many aggregations sharing rows ---------------------------------------------------

// Every fn x type twice (92 members: more than the 64 one row holds, so the 1s tiles span two
// runs), over one field per value type, with out-of-order and missing values: each member of the
// group answers bit for bit what ComputeAsOf computes from that member's events alone. The group
// is moved halfway, as an entity map moves its values.
TEST(SeriesGroupTest, EveryMemberEqualsComputeAsOfOverSharedRows) {
  std::mt19937_64 rng(2026);
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  constexpr int kTypes = 7;  // field t - 1 holds ValueType t
  std::vector<Member> members;
  for (const auto& [fn, type] : AllFnTypes()) {
    Spec spec;
    spec.fn = fn;
    spec.input_type = type;
    spec.n = NeedsN(fn) ? 2 : 0;
    const int32_t field = fn == Fn::kCount ? -1 : static_cast<int32_t>(type) - 1;
    spec.windows = {10 * kSec, 60 * kSec};
    spec.tiles = {kSec, 10 * kSec};
    members.push_back({spec, field});
    spec.windows = {60 * kSec};
    spec.tiles = {kSec};
    members.push_back({spec, field});
  }
  ASSERT_GT(members.size(), 64u);
  const GroupLayout layout(members);
  ASSERT_EQ(layout.size(), members.size());
  std::optional<SeriesGroup> group(std::in_place, layout);
  // The running total of Add's returned changes must always equal a full MemoryBytes() walk.
  auto tracked = static_cast<int64_t>(group->MemoryBytes());
  // With the answer cache on: each check below reads twice, the second from the cache.
  for (size_t m = 0; m < members.size(); ++m) {
    for (size_t w = 0; w < members[m].spec.windows.size(); ++w) {
      tracked += group->EnableAnswerCache(m, w);
    }
  }
  ASSERT_GT(tracked, 0);
  ASSERT_EQ(tracked, static_cast<int64_t>(group->MemoryBytes()));

  // events[f]: the events as field f's members see them.
  std::vector<std::vector<Event>> events(kTypes);
  std::vector<Event> all;  // for count
  Micros now = -2 * kMin;
  int checks = 0;
  for (int step = 0; step < 600; ++step) {
    now += pick(0, 3) * 250'000;
    const Micros time = now - (pick(0, 4) == 0 ? pick(0, 80) : pick(0, 2)) * 250'000;
    std::vector<std::optional<Value>> values(kTypes);
    std::vector<const Value*> pointers(kTypes, nullptr);
    for (int f = 0; f < kTypes; ++f) {
      if (pick(0, 4) == 0) continue;  // the event lacks this field
      values[f] = RandomValue(static_cast<ValueType>(f + 1), rng);
      pointers[f] = &*values[f];
    }
    tracked += group->Add(time, pointers, now);
    ASSERT_EQ(tracked, static_cast<int64_t>(group->MemoryBytes())) << "step " << step;
    for (int f = 0; f < kTypes; ++f) events[f].push_back({time, values[f]});
    all.push_back({time, std::nullopt});
    if (step == 300) {
      SeriesGroup moved(std::move(*group));
      group.emplace(std::move(moved));
    }
    if (step % 5 != 0) continue;
    for (size_t m = 0; m < members.size(); ++m) {
      const Member& member = members[m];
      const std::vector<Sample> samples =
          Samples(member.field < 0 ? all : events[static_cast<size_t>(member.field)]);
      for (size_t w = 0; w < member.spec.windows.size(); ++w) {
        const Output online = group->Query(m, w, now);
        const Output replay = ComputeAsOf(member.spec, w, samples, now);
        ASSERT_TRUE(BitIdentical(online, replay))
            << "member " << m << " (" << FnName(member.spec.fn) << " "
            << ValueTypeName(member.spec.input_type) << ") window " << w << " now " << now
            << ": online " << Describe(online) << " replay " << Describe(replay);
        ASSERT_TRUE(BitIdentical(group->Query(m, w, now), replay)) << "read again, member " << m;
        ++checks;
      }
    }
  }
  EXPECT_GT(checks, 10'000);
  EXPECT_GT(group->MemoryBytes(), 0u);
}

// ---- window edges, negative times, future events ----------------------------------------------

Spec CountSpec(Micros window, Micros tile) {
  Spec spec;
  spec.fn = Fn::kCount;
  spec.windows = {window};
  spec.tiles = {tile};
  return spec;
}

int64_t CountOf(const Output& out) { return std::get<int64_t>(std::get<Value>(out)); }

// A cached distinct_count answer is dropped by every change of the rows and by the window
// moving to other tiles; the cache counts in MemoryBytes().
TEST(SeriesGroupTest, CachedDistinctAnswersFollowEveryChange) {
  Spec distinct;
  distinct.fn = Fn::kDistinctCount;
  distinct.input_type = ValueType::kInt64;
  distinct.windows = {kHour, kDay};
  distinct.tiles = {kMin, kHour};
  const GroupLayout layout({Member{CountSpec(kHour, kMin), -1}, Member{distinct, 0}});
  SeriesGroup group(layout);
  EXPECT_EQ(group.EnableAnswerCache(0, 0), 0) << "count is not cached";
  EXPECT_EQ(group.MemoryBytes(), 0u);
  const int64_t cache = group.EnableAnswerCache(1, 0);
  EXPECT_GT(cache, 0);
  EXPECT_EQ(group.EnableAnswerCache(1, 1), 0) << "ready already";
  EXPECT_EQ(static_cast<int64_t>(group.MemoryBytes()), cache);

  Micros now = 10 * kDay;
  auto add = [&](Micros t, int64_t v) {
    const Value value(v);
    const Value* values[] = {&value};
    group.Add(t, values, now);
  };
  auto distinct_1h = [&] { return CountOf(group.Query(1, 0, now)); };
  for (int64_t v = 0; v < 100; ++v) add(now - (v % 4) * kMin, v);  // 4 tiles of 25 values
  EXPECT_EQ(distinct_1h(), 100);
  EXPECT_EQ(distinct_1h(), 100);
  add(now, 100);  // the newest tile
  EXPECT_EQ(distinct_1h(), 101);
  add(now - 30 * kMin, 101);  // an older tile of the window
  EXPECT_EQ(distinct_1h(), 102);
  add(now, 5);  // a value already counted
  EXPECT_EQ(distinct_1h(), 102);
  // The window moves past the tiles of now - 3 min (values 3, 7, ..., 99) and now - 30 min (101).
  now += kHour - 3 * kMin;
  EXPECT_EQ(distinct_1h(), 76);
  EXPECT_EQ(CountOf(group.Query(1, 1, now)), 102);

  // Rows below RAM: the RAM rows alone answer fewer, with the cold ones all again.
  std::string blob;
  group.SplitColdRows(now - 10 * kMin, blob);
  ASSERT_FALSE(blob.empty());
  EXPECT_EQ(distinct_1h(), 0) << "every minute tile is below RAM";
  Result<ColdRows> cold = ColdRows::Decode(layout, blob);
  ASSERT_THAT(cold.status(), IsOk());
  EXPECT_EQ(CountOf(group.Query(1, 0, now, &*cold)), 76);
  EXPECT_EQ(distinct_1h(), 0);
  ASSERT_THAT(group.RestoreColdRows(*cold).status(), IsOk());
  EXPECT_EQ(distinct_1h(), 76);
}

TEST(WindowTest, StartMovesInTileStepsAtNegativeTimes) {
  // 10s window of 1s tiles. As of -1us the head tile is [-1s, 0), so the window is [-10s, -1us].
  const Spec spec = CountSpec(10 * kSec, kSec);
  const std::vector<Event> events = {{-10 * kSec - 1, std::nullopt},
                                     {-10 * kSec, std::nullopt},
                                     {-1, std::nullopt},
                                     {0, std::nullopt}};
  const auto samples = Samples(events);
  EXPECT_EQ(CountOf(ComputeAsOf(spec, 0, samples, -1)), 2);
  // As of 0 the head tile is [0, 1s): the window is [-9s, 0].
  EXPECT_EQ(CountOf(ComputeAsOf(spec, 0, samples, 0)), 2);
  // As of -1s: [-10s, -1s]. As of -1s-1us (head tile [-2s, -1s)): [-11s, -1s-1us].
  EXPECT_EQ(CountOf(ComputeAsOf(spec, 0, samples, -kSec)), 1);
  EXPECT_EQ(CountOf(ComputeAsOf(spec, 0, samples, -kSec - 1)), 2);
  EXPECT_EQ(CountOf(ComputeAsOf(spec, 0, samples, -kSec / 2)), 1);

  OneSeries series(spec);
  for (const Event& e : events) series.Add(e.time, nullptr, -11 * kSec);
  EXPECT_EQ(CountOf(series.Query(0, -1)), 2);
  EXPECT_EQ(CountOf(series.Query(0, -kSec - 1)), 2);
  // -1us is after now but in the head tile [-1s, 0): Query includes it, ComputeAsOf does not.
  EXPECT_EQ(CountOf(series.Query(0, -kSec / 2)), 2);
}

TEST(WindowTest, QueryIncludesLaterEventsOfTheHeadTileOnly) {
  const Spec spec = CountSpec(kMin, kSec);
  OneSeries series(spec);
  const Micros now = 100 * kSec + 10;
  series.Add(now, nullptr, now);
  series.Add(now + 5, nullptr, now);        // same tile, after now: included
  series.Add(101 * kSec, nullptr, now);     // next tile: excluded
  series.Add(41 * kSec, nullptr, now);      // oldest tile of the window
  series.Add(41 * kSec - 1, nullptr, now);  // just before the window: not stored
  EXPECT_EQ(CountOf(series.Query(0, now)), 3);
  EXPECT_EQ(CountOf(series.Query(0, 101 * kSec)), 3);  // 41s has left, 101s has come
}

TEST(WindowTest, WholeWindowTileIsTumbling) {
  const Spec spec = CountSpec(kHour, kHour);
  const std::vector<Event> events = {{kHour - 1, std::nullopt}, {kHour, std::nullopt}};
  EXPECT_EQ(CountOf(ComputeAsOf(spec, 0, Samples(events), kHour - 1)), 1);
  EXPECT_EQ(CountOf(ComputeAsOf(spec, 0, Samples(events), kHour)), 1);
  EXPECT_EQ(CountOf(ComputeAsOf(spec, 0, Samples(events), 2 * kHour - 1)), 1);
}

// ---- empty windows and output types ------------------------------------------------------------

TEST(OutputTest, EmptyWindowValues) {
  for (const auto& [fn, type] : AllFnTypes()) {
    Spec spec;
    spec.fn = fn;
    spec.input_type = type;
    spec.n = NeedsN(fn) ? 2 : 0;
    spec.windows = {kMin};
    spec.tiles = {kSec};
    const Output out = OneSeries(spec).Query(0, 0);
    EXPECT_TRUE(BitIdentical(out, ComputeAsOf(spec, 0, {}, 0)));
    SCOPED_TRACE(std::string(FnName(fn)) + " " + std::string(ValueTypeName(type)));
    switch (fn) {
      case Fn::kCount:
      case Fn::kDistinctCount:
        EXPECT_TRUE(BitIdentical(out, Value(int64_t{0}))) << Describe(out);
        break;
      case Fn::kSum:
        EXPECT_TRUE(BitIdentical(out, type == ValueType::kDouble ? Value(0.0) : Value(int64_t{0})))
            << Describe(out);
        break;
      case Fn::kLastN:
      case Fn::kTopK:
        EXPECT_TRUE(BitIdentical(out, std::vector<Value>{})) << Describe(out);
        break;
      default:
        EXPECT_TRUE(std::holds_alternative<std::monostate>(out)) << Describe(out);
    }
  }
}

Output RunAll(const Spec& spec, const std::vector<Event>& events, Micros now) {
  OneSeries series(spec);
  for (const Event& e : events) series.Add(e.time, e.value ? &*e.value : nullptr, now);
  const Output out = series.Query(0, now);
  EXPECT_TRUE(BitIdentical(out, ComputeAsOf(spec, 0, Samples(events), now)));
  return out;
}

Spec OneWindow(Fn fn, ValueType type, uint32_t n = 0) {
  Spec spec;
  spec.fn = fn;
  spec.input_type = type;
  spec.n = n;
  spec.windows = {kMin};
  spec.tiles = {kSec};
  return spec;
}

TEST(OutputTest, SumOfInt64WrapsAround) {
  const int64_t max = std::numeric_limits<int64_t>::max();
  const Output out = RunAll(OneWindow(Fn::kSum, ValueType::kInt64),
                            {{1, Value(max)}, {kSec + 1, Value(int64_t{2})}}, 2 * kSec);
  EXPECT_TRUE(BitIdentical(out, Value(std::numeric_limits<int64_t>::min() + 1))) << Describe(out);
}

TEST(OutputTest, MeanAndStddevArePopulationDoubles) {
  const std::vector<Event> events = {{1, Value(int64_t{2})},        {2, Value(int64_t{4})},
                                     {kSec, Value(int64_t{4})},     {kSec, Value(int64_t{4})},
                                     {2 * kSec, Value(int64_t{5})}, {2 * kSec, Value(int64_t{5})},
                                     {3 * kSec, Value(int64_t{7})}, {5 * kSec, Value(int64_t{9})}};
  EXPECT_TRUE(
      Equivalent(RunAll(OneWindow(Fn::kMean, ValueType::kInt64), events, 6 * kSec), Value(5.0)));
  EXPECT_TRUE(
      Equivalent(RunAll(OneWindow(Fn::kStddev, ValueType::kInt64), events, 6 * kSec), Value(2.0)));
  EXPECT_TRUE(BitIdentical(
      RunAll(OneWindow(Fn::kStddev, ValueType::kDouble), {{1, Value(3.5)}}, kSec), Value(0.0)));
}

TEST(OutputTest, FirstLastKeepTheInputType) {
  const std::vector<Event> events = {{5, Value(Timestamp{7})}, {3, Value(Timestamp{8})}};
  EXPECT_TRUE(BitIdentical(RunAll(OneWindow(Fn::kFirst, ValueType::kTimestamp), events, 10),
                           Value(Timestamp{8})));
  EXPECT_TRUE(BitIdentical(RunAll(OneWindow(Fn::kLast, ValueType::kTimestamp), events, 10),
                           Value(Timestamp{7})));
  const std::vector<Event> flags = {{5, Value(std::in_place_type<bool>, true)},
                                    {3, Value(std::in_place_type<bool>, false)}};
  EXPECT_TRUE(BitIdentical(RunAll(OneWindow(Fn::kLast, ValueType::kBool), flags, 10),
                           Value(std::in_place_type<bool>, true)));
  const std::vector<Event> blobs = {{5, Value(Bytes{"a"})}, {3, Value(Bytes{"b"})}};
  EXPECT_TRUE(BitIdentical(RunAll(OneWindow(Fn::kMin, ValueType::kString),
                                  {{1, Value("b")}, {2, Value("\xff")}, {3, Value("a")}}, 10),
                           Value("a")));
  EXPECT_TRUE(BitIdentical(RunAll(OneWindow(Fn::kMax, ValueType::kString),
                                  {{1, Value("b")}, {2, Value("\xff")}, {3, Value("a")}}, 10),
                           Value("\xff")));  // byte order: 0xff sorts last
  EXPECT_TRUE(
      BitIdentical(RunAll(OneWindow(Fn::kFirst, ValueType::kBytes), blobs, 10), Value(Bytes{"b"})));
}

TEST(OutputTest, EqualTimesBreakByArrival) {
  const std::vector<Event> events = {{kSec, Value(int64_t{1})},
                                     {kSec, Value(int64_t{2})},
                                     {kSec, Value(int64_t{3})},
                                     {0, Value(int64_t{0})},
                                     {2 * kSec, Value(int64_t{9})}};
  // Ties at 1s: 1, 2, 3 arrived in that order.
  std::vector<Event> ties(events.begin(), events.begin() + 3);
  EXPECT_TRUE(BitIdentical(RunAll(OneWindow(Fn::kFirst, ValueType::kInt64), ties, 3 * kSec),
                           Value(int64_t{1})));
  EXPECT_TRUE(BitIdentical(RunAll(OneWindow(Fn::kLast, ValueType::kInt64), ties, 3 * kSec),
                           Value(int64_t{3})));
  const Output last3 = RunAll(OneWindow(Fn::kLastN, ValueType::kInt64, 3), events, 3 * kSec);
  EXPECT_TRUE(BitIdentical(
      last3, std::vector<Value>{Value(int64_t{9}), Value(int64_t{3}), Value(int64_t{2})}))
      << Describe(last3);
  const Output last9 = RunAll(OneWindow(Fn::kLastN, ValueType::kInt64, 9), events, 3 * kSec);
  EXPECT_TRUE(BitIdentical(
      last9, std::vector<Value>{Value(int64_t{9}), Value(int64_t{3}), Value(int64_t{2}),
                                Value(int64_t{1}), Value(int64_t{0})}))
      << Describe(last9);
}

TEST(OutputTest, TopKMostFrequentFirstTiesBySmallerValue) {
  std::vector<Event> events;
  auto add = [&](const std::string& v, int times, Micros t) {
    for (int i = 0; i < times; ++i) events.push_back({t, Value(v)});
  };
  add("pear", 2, kSec);
  add("fig", 3, 2 * kSec);
  add("apple", 2, 3 * kSec);
  add("kiwi", 1, 3 * kSec);
  add("date", 3, 4 * kSec);  // ties with fig across tiles
  const Output top = RunAll(OneWindow(Fn::kTopK, ValueType::kString, 4), events, 5 * kSec);
  EXPECT_TRUE(BitIdentical(
      top, std::vector<Value>{Value("date"), Value("fig"), Value("apple"), Value("pear")}))
      << Describe(top);
  const Output all = RunAll(OneWindow(Fn::kTopK, ValueType::kString, 10), events, 5 * kSec);
  EXPECT_EQ(std::get<std::vector<Value>>(all).size(), 5u);
  const Output ints = RunAll(OneWindow(Fn::kTopK, ValueType::kInt64, 2),
                             {{1, Value(int64_t{5})},
                              {2, Value(int64_t{-3})},
                              {kSec, Value(int64_t{7})},
                              {kSec, Value(int64_t{5})},
                              {kSec, Value(int64_t{-3})}},
                             2 * kSec);
  EXPECT_TRUE(BitIdentical(ints, std::vector<Value>{Value(int64_t{-3}), Value(int64_t{5})}))
      << Describe(ints);
}

TEST(OutputTest, EventsWithoutTheFieldOrOfAnotherTypeAreSkipped) {
  const Output out = RunAll(OneWindow(Fn::kSum, ValueType::kInt64),
                            {{1, Value(int64_t{4})}, {2, std::nullopt}, {3, Value(2.5)}}, kSec);
  EXPECT_TRUE(BitIdentical(out, Value(int64_t{4}))) << Describe(out);
  const Output count = RunAll(OneWindow(Fn::kCount, ValueType::kInt64),
                              {{1, Value(int64_t{4})}, {2, std::nullopt}, {3, Value(2.5)}}, kSec);
  EXPECT_TRUE(BitIdentical(count, Value(int64_t{3}))) << Describe(count);
}

// ---- distinct_count ---------------------------------------------------------------------------

TEST(DistinctCountTest, RelativeErrorWithinTwoPercentAcrossTiles) {
  Spec spec;
  spec.fn = Fn::kDistinctCount;
  spec.input_type = ValueType::kInt64;
  spec.windows = {kHour, kHour};
  spec.tiles = {kMin, kHour};  // 60 tiles merged; one tile holding everything
  for (int64_t distinct : {1'000, 5'000, 100'000}) {
    OneSeries series(spec);
    const Micros now = kHour - 1;
    std::mt19937_64 rng(static_cast<uint64_t>(distinct));
    std::vector<Value> values;
    for (int64_t i = 0; i < distinct * 2; ++i) {
      // Each value twice, in different tiles.
      const Value v(static_cast<int64_t>(i % distinct) * 7919 + 13);
      series.Add(static_cast<Micros>(rng() % static_cast<uint64_t>(kHour)), &v, now);
    }
    const int64_t merged = CountOf(series.Query(0, now));
    const int64_t single = CountOf(series.Query(1, now));
    EXPECT_EQ(merged, single) << distinct;  // merging tiles equals one sketch of all values
    const double error = std::abs(static_cast<double>(merged - distinct)) / distinct;
    EXPECT_LE(error, 0.02) << distinct << " distinct, estimated " << merged;
  }
}

TEST(DistinctCountTest, StringsAndBytesOfEqualContentCountOnce) {
  std::vector<Event> events;
  for (int i = 0; i < 500; ++i) {
    events.push_back({(i % 30) * kSec, Value("user-" + std::to_string(i % 250))});
  }
  EXPECT_TRUE(
      BitIdentical(RunAll(OneWindow(Fn::kDistinctCount, ValueType::kString), events, 59 * kSec),
                   Value(int64_t{250})));
}

// ---- memory and eviction ----------------------------------------------------------------------

TEST(MemoryTest, OldTilesAreDroppedAsTimeMovesOn) {
  Spec spec;
  spec.fn = Fn::kDistinctCount;
  spec.input_type = ValueType::kInt64;
  spec.windows = {kMin, 10 * kMin};
  spec.tiles = {kSec, kMin};
  OneSeries series(spec);
  const size_t empty = series.MemoryBytes();
  Micros now = 0;
  for (int64_t i = 0; i < 6000; ++i) {
    now = i * 100'000;  // 10 minutes
    const Value v(i);
    series.Add(now, &v, now);
  }
  const size_t full = series.MemoryBytes();
  EXPECT_GT(full, empty + 60 * 100 * sizeof(uint64_t));
  // An hour later one event arrives: every earlier tile is out of every window.
  now += kHour;
  const Value v(int64_t{1});
  series.Add(now, &v, now);
  const size_t later = series.MemoryBytes();
  EXPECT_LT(later * 10, full);
  EXPECT_EQ(CountOf(series.Query(1, now)), 1);
  // A late event older than every window is not stored.
  series.Add(now - 20 * kMin, &v, now);
  EXPECT_EQ(series.MemoryBytes(), later);
}

TEST(MemoryTest, ScalarTilesAreSmall) {
  // One entity, 5 aggregations x windows 1h/24h/7d over a week of one event a minute: the
  // figures reported per entity. Dense tiles: 60 of 1m, 168 of 1h, each a row shared by the 5.
  const std::vector<std::pair<Fn, ValueType>> aggs = {{Fn::kCount, ValueType::kInt64},
                                                      {Fn::kSum, ValueType::kDouble},
                                                      {Fn::kMean, ValueType::kDouble},
                                                      {Fn::kMax, ValueType::kDouble},
                                                      {Fn::kLast, ValueType::kDouble}};
  std::vector<Member> members;
  for (const auto& [fn, type] : aggs) {
    Spec spec;
    spec.fn = fn;
    spec.input_type = type;
    spec.windows = {kHour, 24 * kHour, 7 * kDay};
    spec.tiles = {kMin, kHour, kHour};
    members.push_back({spec, fn == Fn::kCount ? -1 : 0});
  }
  const GroupLayout layout(members);
  SeriesGroup group(layout);
  const Value v(1.5);
  const Value* values[] = {&v};
  for (Micros t = 0; t < 7 * kDay; t += kMin) group.Add(t, values, t);
  const size_t bytes = group.MemoryBytes() + sizeof(SeriesGroup);
  RecordProperty("bytes_per_entity", std::to_string(bytes));
  std::printf("5 aggregations 1h/24h/7d, one event a minute: %zu bytes per entity\n", bytes);
  // Rows of 16 bytes of header + count 8 + sum 8 + mean 16 + max 8 + last 16, and no slack
  // once a run is full.
  EXPECT_LE(bytes, (60 + 168) * (16 + 8 + 8 + 16 + 8 + 16) + sizeof(SeriesGroup));
  EXPECT_EQ(CountOf(group.Query(0, 2, 7 * kDay - 1)), 7 * 24 * 60);
}

TEST(WindowStartTest, IsTheOldEdgeOfTheWindowAndClampsAtTheInt64Limit) {
  Spec spec;
  spec.windows = {60};
  spec.tiles = {10};
  EXPECT_EQ(WindowStart(spec, 0, 125), 70);  // tiles 70..120, the last holding 125
  EXPECT_EQ(WindowStart(spec, 0, 120), 70);
  EXPECT_EQ(WindowStart(spec, 0, -5), -60);  // floor, not truncation: -5 is in tile [-10, 0)
  EXPECT_EQ(WindowStart(spec, 0, std::numeric_limits<Micros>::min() + 3),
            std::numeric_limits<Micros>::min());
}


// ---- user-defined fns -------------------------------------------------------------------------

// A test fn: the sum of int64 values as 8 state bytes; fails on the value 13. Counts its calls.
class SumFn final : public CustomFn {
 public:
  Status Update(std::string& state, Micros, std::span<const Value* const> values) override {
    ++updates;
    const int64_t v = std::get<int64_t>(*values[0]);
    if (v == 13) return FailedPreconditionError("13 is refused");
    int64_t sum = 0;
    if (!state.empty()) std::memcpy(&sum, state.data(), sizeof sum);
    sum = static_cast<int64_t>(static_cast<uint64_t>(sum) + static_cast<uint64_t>(v));
    state.assign(reinterpret_cast<const char*>(&sum), sizeof sum);
    return OkStatus();
  }
  Status Finish(std::span<const std::string_view> tiles, Output& out) override {
    int64_t total = 0;
    for (std::string_view t : tiles) {
      int64_t sum = 0;
      std::memcpy(&sum, t.data(), sizeof sum);
      total = static_cast<int64_t>(static_cast<uint64_t>(total) + static_cast<uint64_t>(sum));
    }
    out.emplace<Value>(std::in_place_type<int64_t>, total);
    return OkStatus();
  }
  int updates = 0;
};

// An order-sensitive test fn: the state is the event times it saw, in order; Finish joins the
// tiles' lists in the order given. Catches a tile folded out of arrival order or merged out of
// time order.
class TraceFn final : public CustomFn {
 public:
  Status Update(std::string& state, Micros t, std::span<const Value* const>) override {
    state += std::to_string(t) + ",";
    return OkStatus();
  }
  Status Finish(std::span<const std::string_view> tiles, Output& out) override {
    std::string all;
    for (std::string_view t : tiles) all += std::string(t) + "|";
    out.emplace<Value>(std::in_place_type<std::string>, std::move(all));
    return OkStatus();
  }
};

TEST(CustomSeriesTest, EqualsBuiltInSumAndComputeCustomAsOfUnderRandomArrival) {
  std::mt19937_64 rng(77);
  for (const Layout& layout : Layouts()) {
    SCOPED_TRACE(layout.name);
    Spec spec;
    spec.fn = Fn::kSum;
    spec.input_type = ValueType::kInt64;
    spec.windows = layout.windows;
    spec.tiles = layout.tiles;
    ASSERT_THAT(Validate(spec), IsOk());
    const Micros longest = *std::max_element(spec.windows.begin(), spec.windows.end());
    auto pick = [&](int64_t lo, int64_t hi) {
      return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
    };
    OneSeries builtin(spec);
    CustomSeries custom;
    CustomSeries trace;
    SumFn sum;
    TraceFn tracer;
    std::vector<Value> values;
    values.reserve(3000);
    std::vector<Micros> times;
    Micros now = -2 * longest;
    int checks = 0;
    for (int step = 0; step < 2000; ++step) {
      now += pick(0, 3) * layout.time_grain;
      if (pick(0, 50) == 0) now += longest;
      const Micros t = now - (pick(0, 4) == 0 ? pick(0, longest / layout.time_grain) : pick(0, 2)) *
                                 layout.time_grain;
      int64_t v = pick(-100, 100);
      if (v == 13) v = 14;
      values.emplace_back(v);
      times.push_back(t);
      const Value* one[] = {&values.back()};
      builtin.Add(t, one[0], now);
      CustomSeries::Staged staged;
      ASSERT_THAT(custom.Stage(sum, spec, t, one, now, staged), IsOk());
      custom.Commit(spec, staged, now);
      ASSERT_THAT(trace.Stage(tracer, spec, t, one, now, staged), IsOk());
      trace.Commit(spec, staged, now);
      if (step % 11 != 0) continue;
      std::vector<std::vector<const Value*>> pointers;
      std::vector<CustomEvent> events;
      pointers.reserve(values.size());
      for (size_t i = 0; i < values.size(); ++i) {
        pointers.push_back({&values[i]});
        events.push_back({times[i], pointers.back()});
      }
      for (size_t w = 0; w < spec.windows.size(); ++w) {
        Output online;
        ASSERT_THAT(custom.Query(sum, spec, w, now, online), IsOk());
        Output expected = builtin.Query(w, now);
        if (std::holds_alternative<std::monostate>(expected)) expected = Value(int64_t{0});
        ASSERT_TRUE(BitIdentical(online, expected))
            << "window " << w << ": " << Describe(online) << " vs " << Describe(expected);
        Output replay;
        ASSERT_THAT(ComputeCustomAsOf(sum, spec, w, events, now, replay), IsOk());
        ASSERT_TRUE(BitIdentical(online, replay));
        Output online_trace;
        Output replay_trace;
        ASSERT_THAT(trace.Query(tracer, spec, w, now, online_trace), IsOk());
        ASSERT_THAT(ComputeCustomAsOf(tracer, spec, w, events, now, replay_trace), IsOk());
        ASSERT_TRUE(BitIdentical(online_trace, replay_trace))
            << Describe(online_trace) << " vs " << Describe(replay_trace);
        ++checks;
      }
    }
    EXPECT_GT(checks, 100);
    // Tiles no window needs are dropped: memory stays bounded by the windows, not the history.
    EXPECT_LT(custom.MemoryBytes(), 64 * 1024);
  }
}

TEST(CustomSeriesTest, AFailedUpdateChangesNothing) {
  Spec spec;
  spec.fn = Fn::kCount;
  spec.windows = {kHour, kDay};
  spec.tiles = {kMin, kHour};
  ASSERT_THAT(Validate(spec), IsOk());
  SumFn sum;
  CustomSeries series;
  const Micros now = 100 * kDay;
  const Value five(int64_t{5});
  const Value bad(int64_t{13});
  const Value* ok_event[] = {&five};
  const Value* bad_event[] = {&bad};
  CustomSeries::Staged staged;
  ASSERT_THAT(series.Stage(sum, spec, now - kSec, ok_event, now, staged), IsOk());
  EXPECT_EQ(staged.changes.size(), 2u);  // one tile per tile size
  series.Commit(spec, staged, now);
  const size_t bytes = series.MemoryBytes();
  EXPECT_THAT(series.Stage(sum, spec, now - kSec, bad_event, now, staged),
              StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(series.Stage(sum, spec, now - 2 * kHour, bad_event, now, staged),
              StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_EQ(series.MemoryBytes(), bytes);
  for (size_t w = 0; w < 2; ++w) {
    Output value;
    ASSERT_THAT(series.Query(sum, spec, w, now, value), IsOk());
    EXPECT_TRUE(BitIdentical(value, Output(Value(int64_t{5}))));
  }
  // An event older than every window is not folded (no call).
  sum.updates = 0;
  ASSERT_THAT(series.Stage(sum, spec, now - 2 * kDay, ok_event, now, staged), IsOk());
  EXPECT_TRUE(staged.changes.empty());
  EXPECT_EQ(sum.updates, 0);
}

}  // namespace
}  // namespace ods::aggregate
