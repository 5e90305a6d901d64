// Unit test of src/server/features_wire: the hand-written encoding of ods.v1.FeaturesResponse must
// be byte for byte what protobuf writes for the same columns built as messages (convert.h), and
// parse back to them.
#include "features_wire.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
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

}  // namespace
}  // namespace ods::server
