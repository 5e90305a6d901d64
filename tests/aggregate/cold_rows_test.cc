// Rows split off a SeriesGroup (SplitColdRows), decoded (ColdRows), queried with the rows in RAM,
// merged and restored: always the answers of the rows kept in RAM, and ComputeAsOf's, bit for bit.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "ods/aggregate/aggregate.h"
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

constexpr Micros kSec = 1'000'000;
constexpr Micros kMin = 60 * kSec;
constexpr Micros kHour = 60 * kMin;
constexpr Micros kDay = 24 * kHour;

// ---- helpers ----------------------------------------------------------------------------------

Value RandomValue(ValueType type, std::mt19937_64& rng) {
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  switch (type) {
    case ValueType::kInt64:
      return Value(pick(-40, 40) * (pick(0, 9) == 0 ? int64_t{1} << 40 : 1));
    case ValueType::kDouble:
      return Value(std::uniform_real_distribution<double>(-100, 100)(rng));
    case ValueType::kBool:
      return Value(std::in_place_type<bool>, pick(0, 1) == 1);
    case ValueType::kString: {
      std::string s = "k" + std::to_string(pick(0, 30));
      if (pick(0, 3) == 0) s += std::string(20, 'x');  // beyond the small-string buffer
      if (pick(0, 5) == 0) s += "\xe9";
      return Value(s);
    }
    case ValueType::kBytes: {
      std::string s(static_cast<size_t>(pick(0, 2)), '\0');
      for (char& c : s) c = static_cast<char>(pick(0, 3) * 85);
      return Value(Bytes{s});
    }
    case ValueType::kFloatVector:
      return Value(std::vector<float>{static_cast<float>(pick(0, 9)), 0.5f, -0.0f});
    case ValueType::kTimestamp:
      return Value(Timestamp{pick(-20, 20) * kSec});
  }
  return Value(int64_t{0});
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

// Windows 1h/1m, 7d/1h and 365d/1d: three runs.
Spec LongSpec(Fn fn, ValueType type) {
  Spec spec;
  spec.fn = fn;
  spec.input_type = type;
  spec.n = NeedsN(fn) ? 3 : 0;
  spec.windows = {kHour, 7 * kDay, 365 * kDay};
  spec.tiles = {kMin, kHour, kDay};
  return spec;
}

struct Event {
  Micros time;
  std::optional<Value> value;
};

std::vector<Sample> Samples(const std::vector<Event>& events, bool with_values) {
  std::vector<Sample> out;
  for (const Event& e : events) {
    out.push_back({e.time, with_values && e.value ? &*e.value : nullptr});
  }
  return out;
}

// A group of [the fn of the test, count] over field 0, fed random events, and what ComputeAsOf
// answers; the running total of the returned memory changes is checked against MemoryBytes().
class Fixture {
 public:
  Fixture(Fn fn, ValueType type, uint64_t seed)
      : layout_({Member{LongSpec(fn, type), fn == Fn::kCount ? -1 : 0},
                 Member{LongSpec(Fn::kCount, ValueType::kInt64), -1}}),
        group_(layout_),
        type_(type),
        rng_(seed) {
    tracked_ = static_cast<int64_t>(group_.MemoryBytes());
  }

  int64_t pick(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }

  // `count` events: bursts seconds apart, gaps of hours and days, some late by up to 30 days.
  void AddRandom(int count) {
    for (int i = 0; i < count; ++i) {
      const int64_t step = pick(0, 9);
      now_ += step < 5 ? pick(0, 120) * kSec : step < 9 ? pick(0, 3 * 60) * kMin : pick(0, 72) * kHour;
      const Micros time = now_ - (pick(0, 4) == 0 ? pick(0, 30 * 24 * 60) * kMin : pick(0, 90) * kSec);
      Add(time, pick(0, 5) == 0 ? std::nullopt : std::optional<Value>(RandomValue(type_, rng_)));
    }
  }

  void Add(Micros time, std::optional<Value> value) {
    events_.push_back({time, std::move(value)});
    const Value* values[] = {events_.back().value ? &*events_.back().value : nullptr};
    tracked_ += group_.Add(time, values, now_);
  }

  // As of now_ and a few later times.
  std::vector<Micros> QueryTimes() const { return {now_, now_ + 7 * kMin, now_ + 2 * kDay + kHour}; }

  Output Reference(size_t m, size_t w, Micros as_of) const {
    return ComputeAsOf(layout_.member(m).spec, w, Samples(events_, m == 0), as_of);
  }

  // Every member, window and query time against ComputeAsOf.
  void ExpectParity(const ColdRows* cold, const std::string& context) const {
    for (size_t m = 0; m < layout_.size(); ++m) {
      for (size_t w = 0; w < layout_.member(m).spec.windows.size(); ++w) {
        for (Micros t : QueryTimes()) {
          const Output expected = Reference(m, w, t);
          const Output actual = group_.Query(m, w, t, cold);
          ASSERT_TRUE(BitIdentical(actual, expected))
              << context << ": member " << m << " window " << w << " as of " << t << ": got "
              << Describe(actual) << ", expected " << Describe(expected);
        }
      }
    }
  }

  void Track(int64_t delta) {
    tracked_ += delta;
    ASSERT_EQ(tracked_, static_cast<int64_t>(group_.MemoryBytes()));
  }

  GroupLayout layout_;
  SeriesGroup group_;
  ValueType type_;
  std::mt19937_64 rng_;
  std::vector<Event> events_;
  Micros now_ = 1'700'000'000 * kSec;
  int64_t tracked_ = 0;
};

// ---- parity for every fn and type -------------------------------------------------------------

class ColdRowsParityTest : public ::testing::TestWithParam<std::tuple<Fn, ValueType>> {};

// At several checkpoints, split at cutoffs from none to all: the decoded cold rows with the
// RAM rows answer what the group answered before the split and ComputeAsOf, bit for bit; the
// memory deltas are exact; restoring gives the same answers back.
TEST_P(ColdRowsParityTest, SplitQueryRestoreEqualsComputeAsOf) {
  const auto [fn, type] = GetParam();
  Fixture f(fn, type, 7 + static_cast<uint64_t>(fn) * 16 + static_cast<uint64_t>(type));
  size_t cold_rows = 0;
  for (int checkpoint = 0; checkpoint < 5; ++checkpoint) {
    f.AddRandom(400);
    ASSERT_NO_FATAL_FAILURE(f.ExpectParity(nullptr, "in RAM"));
    const Micros cutoffs[] = {std::numeric_limits<Micros>::min(), f.now_ - 400 * kDay,
                              f.now_ - 30 * kDay,                 f.now_ - 3 * kDay - 7 * kMin,
                              f.now_ - kHour,                     f.now_ - 13 * kMin,
                              f.now_ + 3 * kDay,                  std::numeric_limits<Micros>::max()};
    for (Micros before : cutoffs) {
      const std::string context =
          "checkpoint " + std::to_string(checkpoint) + " cutoff " + std::to_string(before);
      const size_t bytes_before = f.group_.MemoryBytes();
      std::string blob;
      const int64_t delta = f.group_.SplitColdRows(before, blob);
      EXPECT_LE(delta, 0);
      ASSERT_NO_FATAL_FAILURE(f.Track(delta));
      Result<ColdRows> cold = ColdRows::Decode(f.layout_, blob);
      ASSERT_THAT(cold, IsOk()) << context;
      EXPECT_EQ(blob.empty(), cold->empty());
      cold_rows += cold->row_count();
      if (before == std::numeric_limits<Micros>::min()) {
        EXPECT_TRUE(blob.empty());
      }
      ASSERT_NO_FATAL_FAILURE(f.ExpectParity(&*cold, context + " split"));
      if (!cold->empty()) {
        EXPECT_LE(cold->newest_tile_end(), before);
      }

      Result<int64_t> restored = f.group_.RestoreColdRows(*cold);
      ASSERT_THAT(restored, IsOk());
      EXPECT_TRUE(cold->empty());
      ASSERT_NO_FATAL_FAILURE(f.Track(*restored));
      EXPECT_LE(f.group_.MemoryBytes(), bytes_before);
      ASSERT_NO_FATAL_FAILURE(f.ExpectParity(nullptr, context + " restored"));
    }
  }
  EXPECT_GT(cold_rows, 1000u);  // the cutoffs split off many rows of every run
}

// The tiering flow: split, keep ingesting new events, split again and merge the two blobs; the
// merged cold rows with RAM answer as ComputeAsOf, and restore into a group that kept folding.
TEST_P(ColdRowsParityTest, SecondSplitMergesIntoTheFirstBlob) {
  const auto [fn, type] = GetParam();
  Fixture f(fn, type, 99 + static_cast<uint64_t>(fn) * 16 + static_cast<uint64_t>(type));
  f.AddRandom(1000);
  std::string first;
  ASSERT_NO_FATAL_FAILURE(f.Track(f.group_.SplitColdRows(f.now_ - 2 * kDay, first)));
  ASSERT_FALSE(first.empty());
  // Later events only: the caller would restore the cold rows before a late event into them.
  const Micros split_at = f.now_;
  for (int i = 0; i < 300; ++i) {
    f.now_ += f.pick(20, 30) * kMin;
    f.Add(f.now_ - f.pick(0, 60) * kSec,
          std::optional<Value>(RandomValue(f.type_, f.rng_)));
  }
  ASSERT_GT(f.now_ - 2 * kDay, split_at);
  {
    Result<ColdRows> cold = ColdRows::Decode(f.layout_, first);
    ASSERT_THAT(cold, IsOk());
    ASSERT_NO_FATAL_FAILURE(f.ExpectParity(&*cold, "first blob"));
  }
  std::string second;
  ASSERT_NO_FATAL_FAILURE(f.Track(f.group_.SplitColdRows(f.now_ - 2 * kDay, second)));
  ASSERT_FALSE(second.empty());
  Result<std::string> merged = ColdRows::MergeBlobs(f.layout_, first, second, f.now_);
  ASSERT_THAT(merged, IsOk());
  Result<ColdRows> cold = ColdRows::Decode(f.layout_, *merged);
  ASSERT_THAT(cold, IsOk());
  ASSERT_NO_FATAL_FAILURE(f.ExpectParity(&*cold, "merged blob"));
  Result<int64_t> restored = f.group_.RestoreColdRows(*cold);
  ASSERT_THAT(restored, IsOk());
  ASSERT_NO_FATAL_FAILURE(f.Track(*restored));
  ASSERT_NO_FATAL_FAILURE(f.ExpectParity(nullptr, "restored"));
  f.AddRandom(200);  // the restored rows take events and age out as RAM rows do
  ASSERT_NO_FATAL_FAILURE(f.ExpectParity(nullptr, "restored, then more events"));
}

INSTANTIATE_TEST_SUITE_P(AllFns, ColdRowsParityTest, ::testing::ValuesIn(AllFnTypes()),
                         [](const auto& info) {
                           return std::string(FnName(std::get<0>(info.param))) + "_" +
                                  std::string(ValueTypeName(std::get<1>(info.param)));
                         });

// ---- distinct_count sketches past the sparse form ---------------------------------------------

// Tiles with thousands of distinct values hold dense sketches (both encodings: a few thousand
// registers set, and nearly all); they survive a split bit for bit.
TEST(ColdRowsTest, DenseSketchesRoundTrip) {
  for (const ValueType type : {ValueType::kInt64, ValueType::kString}) {
    Fixture f(Fn::kDistinctCount, type, 5);
    int64_t next = 0;
    for (const int distinct : {3, 2'000, 40'000, 7}) {
      f.now_ += kDay;
      for (int i = 0; i < distinct; ++i) {
        const int64_t x = next++;
        f.Add(f.now_ - i % 1000, type == ValueType::kInt64
                                     ? std::optional<Value>(Value(x))
                                     : std::optional<Value>(Value("v" + std::to_string(x))));
      }
    }
    std::string blob;
    ASSERT_NO_FATAL_FAILURE(f.Track(f.group_.SplitColdRows(f.now_ + kDay, blob)));
    Result<ColdRows> cold = ColdRows::Decode(f.layout_, blob);
    ASSERT_THAT(cold, IsOk());
    ASSERT_NO_FATAL_FAILURE(f.ExpectParity(&*cold, "dense"));
  }
}

// ---- cold and RAM rows of one tile ------------------------------------------------------------

// A late event into a cold tile (against the contract) makes a RAM row of an index the cold
// rows hold: queries still merge both (exact for these fns), restore refuses, merging blobs
// refuses.
TEST(ColdRowsTest, OverlappingRowsMergeColdFirstAndRestoreRefuses) {
  for (const auto& [fn, type] : AllFnTypes()) {
    SCOPED_TRACE(std::string(FnName(fn)) + " " + std::string(ValueTypeName(type)));
    const bool exact = !(type == ValueType::kDouble && fn == Fn::kSum) && fn != Fn::kMean &&
                       fn != Fn::kStddev && fn != Fn::kLastN;
    Fixture f(fn, type, 3);
    f.AddRandom(300);
    // A day boundary: every run's cold rows end there; make sure its last day and hour have one.
    const Micros before = (f.now_ - kDay) / kDay * kDay;
    f.Add(before - 30 * kSec, RandomValue(type, f.rng_));
    std::string blob;
    ASSERT_NO_FATAL_FAILURE(f.Track(f.group_.SplitColdRows(before, blob)));
    ASSERT_FALSE(blob.empty());
    for (int i = 0; i < 5; ++i) f.Add(before - 1 - f.pick(0, 59) * kSec, RandomValue(type, f.rng_));
    Result<ColdRows> cold = ColdRows::Decode(f.layout_, blob);
    ASSERT_THAT(cold, IsOk());
    if (exact) {
      ASSERT_NO_FATAL_FAILURE(f.ExpectParity(&*cold, "overlap"));
    }
    EXPECT_THAT(f.group_.RestoreColdRows(*cold), StatusIs(StatusCode::kFailedPrecondition));
    EXPECT_FALSE(cold->empty());
    std::string late;
    ASSERT_NO_FATAL_FAILURE(f.Track(f.group_.SplitColdRows(before, late)));
    EXPECT_THAT(ColdRows::MergeBlobs(f.layout_, blob, late, f.now_),
                StatusIs(StatusCode::kFailedPrecondition));
  }
}

// ---- layouts, expiry --------------------------------------------------------------------------

TEST(FingerprintTest, EqualForEqualMembersDifferentForAnyChange) {
  const Member base{LongSpec(Fn::kTopK, ValueType::kString), 2};
  const uint64_t fingerprint = GroupLayout({base}).Fingerprint();
  EXPECT_EQ(GroupLayout({base}).Fingerprint(), fingerprint);
  std::vector<Member> changed(6, base);
  changed[0].spec.fn = Fn::kDistinctCount;
  changed[0].spec.n = 0;
  changed[1].spec.input_type = ValueType::kInt64;
  changed[2].spec.n = 4;
  changed[3].spec.windows[0] = 2 * kHour;
  changed[4].spec.tiles[1] = kDay;
  changed[5].field = 3;
  for (const Member& member : changed) EXPECT_NE(GroupLayout({member}).Fingerprint(), fingerprint);
  EXPECT_NE(GroupLayout({base, base}).Fingerprint(), fingerprint);
}

TEST(ColdRowsTest, ABlobOfAnotherLayoutOrVersionIsRefused) {
  Fixture f(Fn::kSum, ValueType::kInt64, 1);
  f.AddRandom(200);
  std::string blob;
  ASSERT_NO_FATAL_FAILURE(f.Track(f.group_.SplitColdRows(f.now_, blob)));
  ASSERT_FALSE(blob.empty());
  Spec other = LongSpec(Fn::kSum, ValueType::kInt64);
  other.windows[2] = 364 * kDay;
  const GroupLayout changed({Member{other, 0}, Member{LongSpec(Fn::kCount, ValueType::kInt64), -1}});
  EXPECT_THAT(ColdRows::Decode(changed, blob), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ColdRows::BlobExpired(changed, blob, f.now_),
              StatusIs(StatusCode::kInvalidArgument));
  std::string version = blob;
  version[0] = 2;
  EXPECT_THAT(ColdRows::Decode(f.layout_, version), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ColdRows::Decode(f.layout_, blob + '\0'), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(ColdRows::Decode(f.layout_, ""), IsOk());
}

// A blob expires once its newest row of every run is past that run's longest window, as Add
// drops such rows from RAM.
TEST(ColdRowsTest, ExpiresWhenEveryRunsNewestRowIsPastItsLongestWindow) {
  Fixture f(Fn::kCount, ValueType::kInt64, 2);
  f.AddRandom(300);
  const Micros before = (f.now_ - kDay) / kDay * kDay;
  std::string blob;
  ASSERT_NO_FATAL_FAILURE(f.Track(f.group_.SplitColdRows(before, blob)));
  Result<ColdRows> cold = ColdRows::Decode(f.layout_, blob);
  ASSERT_THAT(cold, IsOk());
  ASSERT_LE(cold->newest_tile_end(), before);
  // Every event is in the day run too, so the newest row of the others lies in its newest day.
  const Micros day_end = (cold->newest_tile_end() + kDay - 1) / kDay * kDay;
  // The day run keeps 365 day-tiles: the newest cold day is read until 364 days after it ends.
  const Micros last_read = day_end + 364 * kDay - 1;
  EXPECT_FALSE(cold->Expired(last_read));
  ASSERT_THAT(ColdRows::BlobExpired(f.layout_, blob, last_read), IsOk());
  EXPECT_FALSE(*ColdRows::BlobExpired(f.layout_, blob, last_read));
  EXPECT_TRUE(cold->Expired(last_read + 1));
  EXPECT_TRUE(*ColdRows::BlobExpired(f.layout_, blob, last_read + 1));
  EXPECT_TRUE(*ColdRows::BlobExpired(f.layout_, "", 0));
  EXPECT_FALSE(std::holds_alternative<std::monostate>(f.group_.Query(1, 2, last_read, &*cold)));
  // Past that, the cold rows add nothing to any window.
  for (size_t w = 0; w < 3; ++w) {
    EXPECT_TRUE(BitIdentical(f.group_.Query(1, w, last_read + 1, &*cold),
                             f.group_.Query(1, w, last_read + 1)));
  }
}

// Encode then drop is the split in two steps: the same blob, nothing changed by the encode,
// the same memory change by the drop. (Twins of last_n: its encoding is deterministic across
// instances; top_k's follows its hash map's order, deterministic only within one instance.)
TEST(ColdRowsTest, EncodeThenDropEqualsSplit) {
  for (const Fn fn : {Fn::kLastN, Fn::kTopK}) {
    Fixture a(fn, ValueType::kString, 5);
    Fixture b(fn, ValueType::kString, 5);
    a.AddRandom(600);
    b.AddRandom(600);
    const Micros before = a.now_ - 3 * kDay;
    std::string split;
    const int64_t split_delta = a.group_.SplitColdRows(before, split);
    ASSERT_FALSE(split.empty());
    const size_t bytes = b.group_.MemoryBytes();
    std::string encoded;
    b.group_.EncodeColdRows(before, encoded);
    std::string again;
    b.group_.EncodeColdRows(before, again);
    EXPECT_EQ(again, encoded) << "one instance encodes alike";
    if (fn == Fn::kLastN) {
      EXPECT_EQ(encoded, split);
    } else {
      EXPECT_EQ(encoded.size(), split.size());
    }
    EXPECT_EQ(b.group_.MemoryBytes(), bytes);
    ASSERT_NO_FATAL_FAILURE(b.ExpectParity(nullptr, "encoded only"));
    const int64_t dropped = b.group_.DropColdRows(before);
    EXPECT_EQ(dropped, split_delta);
    ASSERT_NO_FATAL_FAILURE(b.Track(dropped));
    Result<ColdRows> cold = ColdRows::Decode(b.layout_, encoded);
    ASSERT_THAT(cold, IsOk());
    ASSERT_NO_FATAL_FAILURE(b.ExpectParity(&*cold, "encoded, then dropped"));
    b.group_.EncodeColdRows(before, again);
    EXPECT_TRUE(again.empty());
    EXPECT_EQ(b.group_.DropColdRows(before), 0);
  }
}

// A merge leaves out the rows no window reads any more, so a blob that takes a split a day
// stays as long as the longest window, not as long as the entity lives.
TEST(ColdRowsTest, MergeLeavesOutRowsPastEveryWindow) {
  Fixture f(Fn::kCount, ValueType::kInt64, 3);
  f.AddRandom(300);
  std::string first;
  ASSERT_NO_FATAL_FAILURE(f.Track(f.group_.SplitColdRows(f.now_ - kDay, first)));
  Result<ColdRows> old_rows = ColdRows::Decode(f.layout_, first);
  ASSERT_THAT(old_rows, IsOk());
  ASSERT_GT(old_rows->row_count(), 0u);
  // Far later: every row of `first` is past every window.
  const Micros later = f.now_ + 400 * kDay;
  ASSERT_TRUE(old_rows->Expired(later));
  f.now_ = later;
  f.AddRandom(50);
  std::string second;
  ASSERT_NO_FATAL_FAILURE(f.Track(f.group_.SplitColdRows(f.now_ - kHour, second)));
  ASSERT_FALSE(second.empty());
  Result<std::string> merged = ColdRows::MergeBlobs(f.layout_, first, second, f.now_);
  ASSERT_THAT(merged, IsOk());
  Result<ColdRows> new_rows = ColdRows::Decode(f.layout_, second);
  Result<ColdRows> both = ColdRows::Decode(f.layout_, *merged);
  ASSERT_THAT(both, IsOk());
  EXPECT_EQ(both->row_count(), new_rows->row_count());
  ASSERT_NO_FATAL_FAILURE(f.ExpectParity(&*both, "merged"));
  // Nothing left to read at all: the merge is the empty blob.
  Result<std::string> none = ColdRows::MergeBlobs(f.layout_, first, "", later);
  ASSERT_THAT(none, IsOk());
  EXPECT_TRUE(none->empty());
}

// ---- hostile blobs ----------------------------------------------------------------------------

// A blob of every fn and type after `events` events (two tile sizes, each over two runs: more
// than 64 slots).
struct AllFnsBlob {
  explicit AllFnsBlob(int events) : layout(Members()), group(layout) {
    std::mt19937_64 rng(11);
    auto pick = [&](int64_t lo, int64_t hi) {
      return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
    };
    Micros now = 1'000 * kDay;
    for (int i = 0; i < events; ++i) {
      now += pick(0, 90) * kMin;
      std::vector<std::optional<Value>> values(7);
      std::vector<const Value*> pointers(7, nullptr);
      for (int t = 0; t < 7; ++t) {
        if (pick(0, 3) == 0) continue;
        values[t] = RandomValue(static_cast<ValueType>(t + 1), rng);
        pointers[t] = &*values[t];
      }
      static_cast<void>(group.Add(now - pick(0, 3) * kHour, pointers, now));
    }
    last = now;
    static_cast<void>(group.SplitColdRows(now, blob));
  }
  static std::vector<Member> Members() {
    std::vector<Member> members;
    for (int copy = 0; copy < 2; ++copy) {
      for (const auto& [fn, type] : AllFnTypes()) {
        Spec spec = LongSpec(fn, type);
        spec.windows = {kDay, 30 * kDay};
        spec.tiles = {kHour, kDay};
        members.push_back({spec, fn == Fn::kCount ? -1 : static_cast<int32_t>(type) - 1});
      }
    }
    return members;
  }
  // Queries every member and window of what `blob` decodes to, if it does.
  void QueryAll(std::string_view bytes) const {
    Result<ColdRows> cold = ColdRows::Decode(layout, bytes);
    if (!cold.ok()) return;
    for (size_t m = 0; m < layout.size(); ++m) {
      for (size_t w = 0; w < layout.member(m).spec.windows.size(); ++w) {
        const Output out = group.Query(m, w, last, &*cold);
        static_cast<void>(OutputBytes(out));
      }
    }
  }
  GroupLayout layout;
  SeriesGroup group;
  std::string blob;
  Micros last = 0;
};

TEST(ColdRowsHostileTest, EveryTruncationIsAnError) {
  const AllFnsBlob all(60);  // every prefix is decoded: quadratic in the blob's size
  ASSERT_GT(all.blob.size(), 1000u);
  RecordProperty("blob_bytes", static_cast<int>(all.blob.size()));
  ASSERT_THAT(ColdRows::Decode(all.layout, all.blob), IsOk());
  for (size_t size = 1; size < all.blob.size(); ++size) {
    const Result<ColdRows> cold = ColdRows::Decode(all.layout, all.blob.substr(0, size));
    ASSERT_FALSE(cold.ok()) << "prefix of " << size << " of " << all.blob.size() << " bytes";
    ASSERT_TRUE(cold.status().code() == StatusCode::kDataLoss ||
                cold.status().code() == StatusCode::kInvalidArgument)
        << cold.status().ToString();
  }
}

// Flipped bytes either fail to decode or decode to rows every query can read (under ASan and
// UBSan: no overflow, no out-of-range register, no runaway allocation).
TEST(ColdRowsHostileTest, FlippedBytesNeverCrash) {
  const AllFnsBlob all(250);
  std::mt19937_64 rng(4);
  int decoded = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bytes = all.blob;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int i = 0; i < flips; ++i) {
      const size_t at = rng() % bytes.size();
      // Mostly near the front (header, first rows), where a flip changes the structure.
      const size_t where = trial % 2 == 0 ? at % std::min<size_t>(bytes.size(), 64) : at;
      bytes[where] = static_cast<char>(bytes[where] ^ static_cast<char>(1 + rng() % 255));
    }
    Result<ColdRows> cold = ColdRows::Decode(all.layout, bytes);
    decoded += cold.ok() ? 1 : 0;
    all.QueryAll(bytes);
  }
  // Most flips are caught; some land in values and decode to other values.
  EXPECT_LT(decoded, 3000);
}

TEST(ColdRowsHostileTest, RandomBytesAfterAValidHeaderNeverCrash) {
  const AllFnsBlob all(250);
  std::mt19937_64 rng(8);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bytes = all.blob.substr(0, 16 + rng() % 16);
    const size_t extra = rng() % 200;
    for (size_t i = 0; i < extra; ++i) bytes.push_back(static_cast<char>(rng()));
    all.QueryAll(bytes);
  }
}

}  // namespace
}  // namespace ods::aggregate
