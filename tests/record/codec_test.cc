#include "ods/record/codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "support/test_util.h"

namespace ods::record {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;

Record SortedByName(Record r) {
  std::sort(r.fields.begin(), r.fields.end(),
            [](const Field& a, const Field& b) { return a.name < b.name; });
  return r;
}

// Encodes `in` and decodes it back with the same dictionary.
Record RoundTrip(const Record& in, Micros expire_at = 0, uint64_t version = 1) {
  FieldDictionary dict;
  std::string encoded;
  Encode(in, expire_at, version, dict, encoded);
  Record out;
  Status s = Decode(encoded, dict, nullptr, out);
  EXPECT_THAT(s, IsOk());
  return out;
}

Record EveryType() {
  Record r;
  r.event_time_micros = 1'700'000'000'123'456;
  r.fields = {
      {"i", int64_t{-42}},
      {"d", -3.25},
      {"b", true},
      {"s", std::string("hello")},
      {"y", Bytes{std::string("\x00\x01\xff", 3)}},
      {"v", std::vector<float>{1.5f, -2.0f, 0.0f}},
      {"t", Timestamp{1'600'000'000'000'000}},
  };
  return r;
}

TEST(CodecTest, EveryValueTypeRoundTrips) {
  const Record in = EveryType();
  const Record out = RoundTrip(in, 0, 9);
  EXPECT_EQ(out.fields, SortedByName(in).fields);
  EXPECT_EQ(out.event_time_micros, in.event_time_micros);
  EXPECT_EQ(out.version, 9u);
}

TEST(CodecTest, RowsOfOptionalValuesRoundTripAndCorruptRowsAreDataLoss) {
  const std::vector<std::optional<Value>> row = {Value(int64_t{-3}), std::nullopt,
                                                 Value(std::string("m1")), Value(2.5),
                                                 Value(std::vector<float>{1.0f}), std::nullopt};
  std::string encoded;
  EncodeRow(-42, row, encoded);
  Micros time = 0;
  std::vector<std::optional<Value>> back = {Value(true)};  // replaced
  ASSERT_THAT(DecodeRow(encoded, time, back), IsOk());
  EXPECT_EQ(time, -42);
  EXPECT_EQ(back, row);
  EncodeRow(7, {}, encoded);
  ASSERT_THAT(DecodeRow(encoded, time, back), IsOk());
  EXPECT_TRUE(back.empty());
  EncodeRow(-42, row, encoded);
  for (size_t cut = 0; cut < encoded.size(); ++cut) {
    EXPECT_THAT(DecodeRow(encoded.substr(0, cut), time, back), StatusIs(StatusCode::kDataLoss))
        << cut;
  }
  EXPECT_THAT(DecodeRow(encoded + "x", time, back), StatusIs(StatusCode::kDataLoss));
  std::string bad_type = encoded;
  bad_type[2] = 9;  // the first value's type byte
  EXPECT_THAT(DecodeRow(bad_type, time, back), StatusIs(StatusCode::kDataLoss));
}

TEST(CodecTest, EmptyValuesRoundTrip) {
  Record in;
  in.fields = {{"s", std::string()}, {"y", Bytes{}}, {"v", std::vector<float>{}},
               {"b", false},         {"i", int64_t{0}}, {"d", 0.0}};
  EXPECT_EQ(RoundTrip(in).fields, SortedByName(in).fields);
}

TEST(CodecTest, IntegerExtremesRoundTrip) {
  for (int64_t v : {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::min() + 1,
                    int64_t{-1}, int64_t{0}, int64_t{1}, int64_t{63}, int64_t{-64}, int64_t{64},
                    std::numeric_limits<int64_t>::max()}) {
    Record in;
    in.fields = {{"i", v}, {"t", Timestamp{v}}};
    in.event_time_micros = v;
    const Record out = RoundTrip(in);
    EXPECT_EQ(out.fields, SortedByName(in).fields) << v;
    EXPECT_EQ(out.event_time_micros, v);
  }
}

TEST(CodecTest, DoubleExtremesRoundTripBitExactly) {
  for (double v : {std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest(),
                   std::numeric_limits<double>::denorm_min(), -0.0}) {
    Record in;
    in.fields = {{"d", v}};
    const Record out = RoundTrip(in);
    ASSERT_EQ(out.fields.size(), 1u);
    const double got = std::get<double>(out.fields[0].value);
    EXPECT_EQ(std::memcmp(&got, &v, sizeof v), 0) << v;
  }
}

TEST(CodecTest, LongStringAndVectorRoundTrip) {
  Record in;
  in.fields = {{"s", std::string(100'000, 'x')},
               {"v", std::vector<float>(4096, 0.25f)},
               {"y", Bytes{std::string(300, '\0')}}};
  EXPECT_EQ(RoundTrip(in).fields, SortedByName(in).fields);
}

TEST(CodecTest, EmptyRecordRoundTrips) {
  Record in;
  const Record out = RoundTrip(in, 0, 3);
  EXPECT_TRUE(out.fields.empty());
  EXPECT_EQ(out.version, 3u);
}

TEST(CodecTest, DecodedFieldsAreSortedByName) {
  Record in;
  in.fields = {{"zeta", int64_t{1}}, {"alpha", int64_t{2}}, {"mid", int64_t{3}}};
  const Record out = RoundTrip(in);
  ASSERT_EQ(out.fields.size(), 3u);
  EXPECT_EQ(out.fields[0].name, "alpha");
  EXPECT_EQ(out.fields[1].name, "mid");
  EXPECT_EQ(out.fields[2].name, "zeta");
}

TEST(CodecTest, DecodeReplacesPreviousContentsOfOut) {
  FieldDictionary dict;
  std::string encoded;
  Record in;
  in.fields = {{"a", int64_t{1}}};
  Encode(in, 0, 1, dict, encoded);
  Record out;
  out.fields = {{"stale", true}, {"older", false}};
  ASSERT_THAT(Decode(encoded, dict, nullptr, out), IsOk());
  EXPECT_EQ(out.fields, in.fields);
}

TEST(CodecTest, HeaderIsReadableWithoutFields) {
  FieldDictionary dict;
  std::string encoded;
  Record in = EveryType();
  in.event_time_micros = -5;
  Encode(in, 1'700'000'000'000'000, 77, dict, encoded);
  Result<EncodedHeader> h = DecodeHeader(encoded);
  ASSERT_THAT(h, IsOk());
  EXPECT_EQ(h->expire_at_micros, 1'700'000'000'000'000);
  EXPECT_EQ(h->version, 77u);
  EXPECT_EQ(h->event_time_micros, -5);
}

TEST(CodecTest, NeverExpiringRecordHasZeroExpiry) {
  FieldDictionary dict;
  std::string encoded;
  Encode(EveryType(), 0, 1, dict, encoded);
  Result<EncodedHeader> h = DecodeHeader(encoded);
  ASSERT_THAT(h, IsOk());
  EXPECT_EQ(h->expire_at_micros, 0);
}

TEST(CodecTest, ProjectionDecodesOnlyRequestedIds) {
  FieldDictionary dict;
  std::string encoded;
  const Record in = EveryType();
  Encode(in, 0, 1, dict, encoded);
  const std::vector<uint32_t> projection = {*dict.Find("b"), *dict.Find("v")};
  std::vector<uint32_t> sorted = projection;
  std::sort(sorted.begin(), sorted.end());
  Record out;
  ASSERT_THAT(Decode(encoded, dict, &sorted, out), IsOk());
  ASSERT_EQ(out.fields.size(), 2u);
  EXPECT_EQ(out.fields[0].name, "b");
  EXPECT_EQ(out.fields[0].value, Value(true));
  EXPECT_EQ(out.fields[1].name, "v");
  EXPECT_EQ(out.fields[1].value, Value(std::vector<float>{1.5f, -2.0f, 0.0f}));
  EXPECT_EQ(out.event_time_micros, in.event_time_micros);
}

TEST(CodecTest, EmptyProjectionDecodesNoFields) {
  FieldDictionary dict;
  std::string encoded;
  Encode(EveryType(), 0, 4, dict, encoded);
  const std::vector<uint32_t> none;
  Record out;
  ASSERT_THAT(Decode(encoded, dict, &none, out), IsOk());
  EXPECT_TRUE(out.fields.empty());
  EXPECT_EQ(out.version, 4u);
}

TEST(CodecTest, ProjectionOfAbsentFieldOmitsIt) {
  FieldDictionary dict({"a", "b", "c"});
  std::string encoded;
  Record in;
  in.fields = {{"a", int64_t{1}}};
  Encode(in, 0, 1, dict, encoded);
  const std::vector<uint32_t> projection = {1, 2};
  Record out;
  ASSERT_THAT(Decode(encoded, dict, &projection, out), IsOk());
  EXPECT_TRUE(out.fields.empty());
}

TEST(CodecTest, EncodeInternsNewNamesAndReusesKnownOnes) {
  FieldDictionary dict({"a"});
  std::string encoded;
  Record in;
  in.fields = {{"b", int64_t{1}}, {"a", int64_t{2}}};
  Encode(in, 0, 1, dict, encoded);
  EXPECT_EQ(dict.size(), 2u);
  EXPECT_EQ(dict.Find("a"), 0u);
  EXPECT_EQ(dict.Find("b"), 1u);
}

TEST(CodecTest, EncodedFieldBytesBoundsTheFieldPayload) {
  FieldDictionary dict;
  std::string header_only;
  Record empty;
  empty.event_time_micros = 12345;
  Encode(empty, 999, 7, dict, header_only);
  Record in = EveryType();
  in.event_time_micros = 12345;
  std::string encoded;
  Encode(in, 999, 7, dict, encoded);
  // Field ids here are 1 byte, estimated as 2: the estimate is exact but for that byte per field.
  EXPECT_EQ(EncodedFieldBytes(in), encoded.size() - header_only.size() + in.fields.size());
  EXPECT_EQ(EncodedFieldBytes(empty), 0u);
}

TEST(CodecTest, EncodedFieldBytesGrowsWithPayload) {
  Record small;
  small.fields = {{"s", std::string(10, 'x')}};
  Record large;
  large.fields = {{"s", std::string(1000, 'x')}};
  EXPECT_EQ(EncodedFieldBytes(large) - EncodedFieldBytes(small), 990u + 1u);  // +1 varint byte
}

// A truncated record either fails with kDataLoss or, when cut exactly between fields, decodes to
// the fields before the cut (the format has no field count). It must never crash or read past
// the end (ASan checks the latter).
TEST(CodecTest, EveryTruncationIsDataLossOrAFieldPrefix) {
  FieldDictionary dict;
  Record in = EveryType();
  std::string full;
  Encode(in, 1'700'000'000'000'000, 300, dict, full);
  // Lengths at which a prefix of the (id-ordered) fields ends: encode each prefix.
  std::vector<size_t> boundaries;
  for (size_t k = 0; k <= in.fields.size(); ++k) {
    Record prefix = in;
    prefix.fields.resize(k);  // fields were interned in this order, so ids are ascending
    std::string enc;
    Encode(prefix, 1'700'000'000'000'000, 300, dict, enc);
    ASSERT_EQ(full.compare(0, enc.size(), enc), 0) << "prefix " << k << " is not a prefix";
    boundaries.push_back(enc.size());
  }
  ASSERT_EQ(boundaries.back(), full.size());
  for (size_t len = 0; len < full.size(); ++len) {
    // A separate heap copy of exactly `len` bytes, so ASan catches any read past the end.
    const std::string cut = full.substr(0, len);
    Record out;
    Status s = Decode(cut, dict, nullptr, out);
    auto at = std::find(boundaries.begin(), boundaries.end(), len);
    if (at == boundaries.end()) {
      EXPECT_THAT(s, StatusIs(StatusCode::kDataLoss)) << "length " << len;
    } else {
      ASSERT_THAT(s, IsOk()) << "length " << len;
      Record expected = in;
      expected.fields.resize(static_cast<size_t>(at - boundaries.begin()));
      EXPECT_EQ(out.fields, SortedByName(expected).fields) << "length " << len;
    }
    const std::vector<uint32_t> projection = {0, 3, 5};
    Status projected = Decode(cut, dict, &projection, out);
    EXPECT_EQ(projected.code(), s.code()) << "length " << len;
    if (len < boundaries.front()) {
      EXPECT_THAT(DecodeHeader(cut), StatusIs(StatusCode::kDataLoss)) << "length " << len;
    } else {
      EXPECT_THAT(DecodeHeader(cut), IsOk()) << "length " << len;
    }
  }
}

TEST(CodecTest, EmptyInputIsDataLoss) {
  FieldDictionary dict;
  Record out;
  EXPECT_THAT(Decode("", dict, nullptr, out), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(DecodeHeader(""), StatusIs(StatusCode::kDataLoss));
}

TEST(CodecTest, UnknownTypeByteIsDataLoss) {
  FieldDictionary dict({"a"});
  Record out;
  // Header (0, 1, 0), then field id 0 with type 0 and type 8.
  EXPECT_THAT(Decode(std::string("\x00\x01\x00\x00\x00\x00", 6), dict, nullptr, out),
              StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(Decode(std::string("\x00\x01\x00\x00\x08\x00", 6), dict, nullptr, out),
              StatusIs(StatusCode::kDataLoss));
}

TEST(CodecTest, FieldIdOutsideTheDictionaryIsDataLoss) {
  FieldDictionary dict({"a"});
  Record out;
  // Field id 1 (only id 0 exists), type int64, value 0.
  EXPECT_THAT(Decode(std::string("\x00\x01\x00\x01\x01\x00", 6), dict, nullptr, out),
              StatusIs(StatusCode::kDataLoss));
}

// Found by fuzz/record_codec_fuzzer: a repeated id decoded to a record naming a field twice.
TEST(CodecTest, RepeatedFieldIdIsDataLoss) {
  FieldDictionary dict({"a", "b"});
  Record out;
  // Field id 1 twice, type int64, values 1 and 2 (zigzag 2 and 4).
  EXPECT_THAT(Decode(std::string("\x00\x01\x00\x01\x01\x02\x01\x01\x04", 9), dict, nullptr, out),
              StatusIs(StatusCode::kDataLoss));
}

TEST(CodecTest, DescendingFieldIdsAreDataLoss) {
  FieldDictionary dict({"a", "b"});
  Record out;
  // Field id 1, then id 0: Encode writes ids ascending.
  EXPECT_THAT(Decode(std::string("\x00\x01\x00\x01\x01\x02\x00\x01\x04", 9), dict, nullptr, out),
              StatusIs(StatusCode::kDataLoss));
  std::vector<uint32_t> projection = {0};
  EXPECT_THAT(
      Decode(std::string("\x00\x01\x00\x01\x01\x02\x00\x01\x04", 9), dict, &projection, out),
      StatusIs(StatusCode::kDataLoss));
}

TEST(CodecTest, LengthPastTheEndIsDataLoss) {
  FieldDictionary dict({"a"});
  Record out;
  // String claiming 100 bytes with 2 present.
  EXPECT_THAT(Decode(std::string("\x00\x01\x00\x00\x04\x64xy", 8), dict, nullptr, out),
              StatusIs(StatusCode::kDataLoss));
  // Float vector claiming 2^62 elements: must not allocate or overflow 4 * n.
  std::string huge("\x00\x01\x00\x00\x06", 5);
  huge += std::string("\x80\x80\x80\x80\x80\x80\x80\x80\x40", 9);
  EXPECT_THAT(Decode(huge, dict, nullptr, out), StatusIs(StatusCode::kDataLoss));
  const std::vector<uint32_t> none;
  EXPECT_THAT(Decode(huge, dict, &none, out), StatusIs(StatusCode::kDataLoss));
  // Bytes claiming 2^64-1 bytes.
  std::string max_len("\x00\x01\x00\x00\x05", 5);
  max_len += std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10);
  EXPECT_THAT(Decode(max_len, dict, nullptr, out), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(Decode(max_len, dict, &none, out), StatusIs(StatusCode::kDataLoss));
}

TEST(CodecTest, OverlongVarintIsDataLoss) {
  FieldDictionary dict;
  Record out;
  const std::string overlong(11, '\xff');
  EXPECT_THAT(DecodeHeader(overlong), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(Decode(overlong, dict, nullptr, out), StatusIs(StatusCode::kDataLoss));
}

// Flipping any bit of a valid encoding yields OK or kDataLoss, never a crash or an overread.
TEST(CodecTest, CorruptedBytesNeverCrash) {
  FieldDictionary dict;
  std::string full;
  Encode(EveryType(), 1'700'000'000'000'000, 300, dict, full);
  for (size_t i = 0; i < full.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string corrupt = full;
      corrupt[i] = static_cast<char>(corrupt[i] ^ (1 << bit));
      Record out;
      Status s = Decode(corrupt, dict, nullptr, out);
      EXPECT_TRUE(s.ok() || s.code() == StatusCode::kDataLoss) << s.ToString();
    }
  }
}

TEST(FieldDictionaryTest, InternAssignsDenseIdsInOrder) {
  FieldDictionary dict;
  EXPECT_EQ(dict.Intern("a"), 0u);
  EXPECT_EQ(dict.Intern("b"), 1u);
  EXPECT_EQ(dict.Intern("c"), 2u);
  EXPECT_EQ(dict.size(), 3u);
}

TEST(FieldDictionaryTest, InternOfKnownNameReturnsItsId) {
  FieldDictionary dict;
  const uint32_t id = dict.Intern("country");
  dict.Intern("age");
  EXPECT_EQ(dict.Intern("country"), id);
  EXPECT_EQ(dict.size(), 2u);
}

TEST(FieldDictionaryTest, InitialNamesGetSchemaOrderIds) {
  FieldDictionary dict({"age", "country", "score"});
  EXPECT_EQ(dict.size(), 3u);
  EXPECT_EQ(dict.Find("age"), 0u);
  EXPECT_EQ(dict.Find("country"), 1u);
  EXPECT_EQ(dict.Find("score"), 2u);
  EXPECT_EQ(dict.Name(1), "country");
}

TEST(FieldDictionaryTest, FindDoesNotAdd) {
  FieldDictionary dict({"a"});
  EXPECT_EQ(dict.Find("b"), std::nullopt);
  EXPECT_EQ(dict.size(), 1u);
}

TEST(FieldDictionaryTest, NameIsInverseOfIntern) {
  FieldDictionary dict;
  for (const char* n : {"x", "y", "a_long_field_name_beyond_sso_capacity_of_std_string"}) {
    EXPECT_EQ(dict.Name(dict.Intern(n)), n);
  }
}

TEST(FieldDictionaryTest, MemoryGrowsWithNames) {
  FieldDictionary dict;
  const size_t empty = dict.memory_bytes();
  dict.Intern("a_long_field_name_beyond_sso_capacity_of_std_string");
  EXPECT_GT(dict.memory_bytes(), empty);
}

}  // namespace
}  // namespace ods::record
