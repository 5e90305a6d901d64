// Unit test of src/server/features_wire: the hand-written encoding of ods.v1.FeaturesResponse must
// be byte for byte what protobuf writes for the same columns built as messages (convert.h), and
// parse back to them; the in-place reading of GetOnlineFeaturesRequest must give what protobuf's
// parse gives whenever it accepts the bytes, and leave every other shape to protobuf.
#include "features_wire.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "convert.h"  // the message-building conversion, as the reference
#include "ods/v1/features.pb.h"

namespace ods::server {
namespace {

using engine::FeatureColumn;
using engine::FeatureStatus;
using record::Value;

std::string Protobuf(const std::vector<FeatureColumn>& columns) {
  ods::v1::FeaturesResponse m;
  for (const FeatureColumn& c : columns) ToProto(c, *m.add_columns());
  return m.SerializeAsString();
}

std::string Ours(const std::vector<FeatureColumn>& columns) {
  const FeaturesResponseEncoder encoder(columns);
  std::string out(encoder.size() + 1, '\xAA');  // one guard byte: Write stops at size()
  encoder.Write(out.data());
  EXPECT_EQ(out.back(), '\xAA');
  out.pop_back();
  return out;
}

void Add(FeatureColumn& c, aggregate::Output v, FeatureStatus s, Micros t) {
  c.values.push_back(std::move(v));
  c.statuses.push_back(s);
  c.event_times.push_back(t);
}

TEST(FeaturesWireTest, EveryValueTypeAndEdgeIsWrittenAsProtobufWritesIt) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  FeatureColumn c;
  c.feature = "amount_sum@24h";
  Add(c, Value(int64_t{0}), FeatureStatus::kPresent, 0);
  Add(c, Value(int64_t{-1}), FeatureStatus::kPresent, -1);
  Add(c, Value(kMin), FeatureStatus::kStale, kMin);
  Add(c, Value(kMax), FeatureStatus::kPresent, kMax);
  Add(c, Value(int64_t{127}), FeatureStatus::kPresent, 128);
  Add(c, Value(0.0), FeatureStatus::kPresent, 1);
  Add(c, Value(-0.0), FeatureStatus::kPresent, 1);
  Add(c, Value(std::nan("")), FeatureStatus::kPresent, 1);
  Add(c, Value(1e308), FeatureStatus::kPresent, 1);
  Add(c, Value(false), FeatureStatus::kPresent, 1);
  Add(c, Value(true), FeatureStatus::kPresent, 1);
  Add(c, Value(std::string()), FeatureStatus::kPresent, 1);
  Add(c, Value(std::string(300, 's')), FeatureStatus::kPresent, 1);  // two-byte length
  Add(c, Value(record::Bytes{std::string("\0\xff", 2)}), FeatureStatus::kPresent, 1);
  Add(c, Value(record::Bytes{}), FeatureStatus::kPresent, 1);
  Add(c, Value(std::vector<float>{}), FeatureStatus::kPresent, 1);
  Add(c, Value(std::vector<float>{1.5f, -0.0f, 3e38f}), FeatureStatus::kPresent, 1);
  Add(c, Value(std::vector<float>(40, 0.25f)), FeatureStatus::kPresent, 1);
  Add(c, Value(record::Timestamp{kMin}), FeatureStatus::kPresent, 1);
  Add(c, Value(record::Timestamp{1'700'000'000'000'000}), FeatureStatus::kPresent, 1);
  Add(c, std::monostate{}, FeatureStatus::kNotFound, 0);
  Add(c, std::monostate{}, FeatureStatus::kOutOfRetention, 0);
  Add(c, std::vector<Value>{}, FeatureStatus::kPresent, 5);
  Add(c, std::vector<Value>{Value(1.0), Value(std::string("m1")), Value(int64_t{-3})},
      FeatureStatus::kPresent, 5);
  FeatureColumn empty_name;  // proto3 omits an empty string
  Add(empty_name, Value(int64_t{1}), FeatureStatus::kPresent, 2);
  FeatureColumn no_rows;
  no_rows.feature = "n@1h";
  const std::vector<FeatureColumn> columns = {c, empty_name, no_rows};

  const std::string want = Protobuf(columns);
  EXPECT_EQ(Ours(columns), want);
  ods::v1::FeaturesResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(Ours(columns)));
  EXPECT_EQ(parsed.SerializeAsString(), want);
  EXPECT_EQ(Ours({}), "");
}

// Large answers: lengths of columns past 2^14 and 2^21 bytes need 3- and 4-byte varints.
TEST(FeaturesWireTest, LongColumnsAndRandomValuesMatchProtobuf) {
  std::mt19937_64 rng(7);
  std::vector<FeatureColumn> columns(3);
  for (size_t f = 0; f < columns.size(); ++f) {
    columns[f].feature = "f" + std::to_string(f);
    const size_t rows = f == 0 ? 10 : (f == 1 ? 2'000 : 200'000);
    for (size_t i = 0; i < rows; ++i) {
      const uint64_t r = rng();
      switch (r % 5) {
        case 0:
          Add(columns[f], Value(static_cast<int64_t>(rng())), FeatureStatus::kPresent,
              static_cast<Micros>(rng()));
          break;
        case 1:
          Add(columns[f], Value(static_cast<double>(rng()) / 7.0), FeatureStatus::kStale,
              static_cast<Micros>(r >> 20));
          break;
        case 2:
          Add(columns[f], Value(std::string(r % 40, 'x')), FeatureStatus::kPresent, 3);
          break;
        case 3:
          Add(columns[f], std::monostate{}, FeatureStatus::kNotFound, 0);
          break;
        default:
          Add(columns[f], std::vector<Value>{Value(static_cast<int64_t>(r % 1000))},
              FeatureStatus::kPresent, 9);
      }
    }
  }
  EXPECT_EQ(Ours(columns), Protobuf(columns));
}

// What protobuf's parse of `bytes` gives, as a view into its message; nullopt if it fails.
std::optional<OnlineRequestView> ProtobufRequest(const std::string& bytes,
                                                 ods::v1::GetOnlineFeaturesRequest& m) {
  if (!m.ParseFromString(bytes)) return std::nullopt;
  OnlineRequestView v;
  v.entities.assign(m.entities().begin(), m.entities().end());
  v.features.assign(m.features().begin(), m.features().end());
  if (m.has_as_of_micros()) v.as_of = m.as_of_micros();
  return v;
}

void ExpectSame(const OnlineRequestView& ours, const OnlineRequestView& theirs) {
  EXPECT_EQ(ours.entities, theirs.entities);
  EXPECT_EQ(ours.features, theirs.features);
  EXPECT_EQ(ours.as_of, theirs.as_of);
}

std::string RandomAscii(std::mt19937_64& rng, size_t max_size) {
  std::string s(rng() % (max_size + 1), ' ');
  for (char& c : s) c = static_cast<char>(rng() % 128);  // control bytes and NUL included
  return s;
}

// Requests as clients write them: any number of keys (long ones need 2- and 3-byte lengths),
// as_of unset, zero, negative (a 10-byte varint) or at the int64 limits; requests that are
// several messages one after the other, which protobuf merges (lists concatenated, the last
// as_of wins); an as_of varint with bits past the 64th.
TEST(FeaturesWireTest, ClientRequestsAreReadInPlaceAsProtobufParsesThem) {
  std::mt19937_64 rng(11);
  const int64_t times[] = {0,
                           1,
                           -1,
                           1'700'000'000'000'000,
                           std::numeric_limits<int64_t>::min(),
                           std::numeric_limits<int64_t>::max()};
  for (int round = 0; round < 500; ++round) {
    std::string bytes;
    const int parts = 1 + static_cast<int>(rng() % 3);
    for (int part = 0; part < parts; ++part) {
      ods::v1::GetOnlineFeaturesRequest m;
      const size_t entities = rng() % 120;
      for (size_t i = 0; i < entities; ++i) {
        m.add_entities(RandomAscii(rng, i % 17 == 0 ? 20'000 : 40));
      }
      for (size_t i = rng() % 12; i > 0; --i) m.add_features(RandomAscii(rng, 30));
      if (rng() % 2 == 0) m.set_as_of_micros(times[rng() % std::size(times)]);
      bytes += m.SerializeAsString();
    }
    ods::v1::GetOnlineFeaturesRequest m;
    const std::optional<OnlineRequestView> theirs = ProtobufRequest(bytes, m);
    ASSERT_TRUE(theirs.has_value());
    OnlineRequestView ours;
    ASSERT_TRUE(ReadOnlineRequest(bytes, ours)) << "round " << round;
    ExpectSame(ours, *theirs);
  }
  // A 10-byte as_of whose last byte has bits past the 64th: dropped, as protobuf drops them.
  const std::string wide = "\x18" + std::string(9, '\xff') + "\x7f";
  ods::v1::GetOnlineFeaturesRequest m;
  const std::optional<OnlineRequestView> theirs = ProtobufRequest(wide, m);
  ASSERT_TRUE(theirs.has_value());
  OnlineRequestView ours;
  ASSERT_TRUE(ReadOnlineRequest(wide, ours));
  ExpectSame(ours, *theirs);
  EXPECT_EQ(ours.as_of, -1);

  OnlineRequestView empty;
  empty.entities = {"stale"};
  empty.as_of = 5;
  ASSERT_TRUE(ReadOnlineRequest("", empty));  // an empty message: nothing set
  EXPECT_TRUE(empty.entities.empty());
  EXPECT_FALSE(empty.as_of.has_value());
}

// Every other shape is left to protobuf (false), valid or not: protobuf then decides, so odsd
// accepts and refuses exactly what it did before.
TEST(FeaturesWireTest, OtherRequestShapesAreLeftToProtobuf) {
  using namespace std::string_literals;
  struct Case {
    const char* what;
    std::string bytes;
    bool protobuf_parses;
  };
  const Case cases[] = {
      // (Hex escapes end where a non-hex character follows: "\x01" "a", not "\x01a".)
      {"an unknown field",
       "\x0a\x01"
       "a\x20\x05"s,
       true},
      {"entities as a varint (unknown wire type for it)", "\x08\x05"s, true},
      {"a two-byte tag for field 1",
       "\x8a\x00\x01"
       "a"s,
       true},
      {"a UTF-8 key that is not ASCII", "\x0a\x04Zo\xc3\xab"s, true},
      {"invalid UTF-8", "\x0a\x02\xc3\x28"s, false},
      {"a length past the end",
       "\x0a\x05"
       "ali"s,
       false},
      {"a truncated length", "\x0a\x80"s, false},
      {"a 6-byte length",
       "\x0a\x81\x80\x80\x80\x80\x00"
       "a"s,
       false},
      {"a truncated as_of", "\x18\xff"s, false},
      {"an 11-byte as_of", "\x18"s + std::string(10, '\xff') + "\x01"s, false},
      {"a group end", "\x0c"s, false},
      {"tag zero", "\x00"s, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    OnlineRequestView ours;
    EXPECT_FALSE(ReadOnlineRequest(c.bytes, ours));
    ods::v1::GetOnlineFeaturesRequest m;
    EXPECT_EQ(ProtobufRequest(c.bytes, m).has_value(), c.protobuf_parses);
  }
}

// Damaged requests (bytes flipped, cut, inserted): whenever the in-place reading accepts them,
// protobuf accepts them too and reads the same request.
TEST(FeaturesWireTest, DamagedRequestsAreNeverReadDifferentlyFromProtobuf) {
  std::mt19937_64 rng(13);
  ods::v1::GetOnlineFeaturesRequest base;
  for (int i = 0; i < 20; ++i) base.add_entities("key:" + std::to_string(1'000'000 + i * 7));
  base.add_features("amount_sum@1h");
  base.add_features("merchants@24h");
  base.set_as_of_micros(-12345);
  const std::string original = base.SerializeAsString();
  int accepted = 0;
  for (int round = 0; round < 20'000; ++round) {
    std::string bytes = original;
    for (int edits = 1 + static_cast<int>(rng() % 3); edits > 0; --edits) {
      const size_t at = rng() % bytes.size();
      switch (rng() % 3) {
        case 0:
          bytes[at] = static_cast<char>(rng());
          break;
        case 1:
          bytes.resize(at);
          break;
        default:
          bytes.insert(at, 1, static_cast<char>(rng()));
      }
      if (bytes.empty()) bytes = original;
    }
    OnlineRequestView ours;
    if (!ReadOnlineRequest(bytes, ours)) continue;
    ++accepted;
    ods::v1::GetOnlineFeaturesRequest m;
    const std::optional<OnlineRequestView> theirs = ProtobufRequest(bytes, m);
    ASSERT_TRUE(theirs.has_value()) << "round " << round;
    ExpectSame(ours, *theirs);
  }
  EXPECT_GT(accepted, 1'000);  // the check above ran on many damaged-but-valid requests
}

}  // namespace
}  // namespace ods::server
