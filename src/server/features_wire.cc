#include "features_wire.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <variant>
#include <vector>

#include "ods/common/check.h"
#include "ods/common/varint.h"

namespace ods::server {
namespace {

// Wire types and tags (field number << 3 | wire type) of the messages written here.
constexpr uint8_t kVarint = 0;
constexpr uint8_t kFixed64 = 1;
constexpr uint8_t kLengthDelimited = 2;
constexpr uint8_t Tag(uint32_t field, uint8_t wire_type) {
  return static_cast<uint8_t>(field << 3 | wire_type);
}

// ceil(significant bits / 7), as (bits * 9 + 64) / 64: a multiply and a shift.
size_t VarintSize(uint64_t v) { return (static_cast<size_t>(std::bit_width(v | 1)) * 9 + 64) / 64; }

// A length-delimited field of `body` bytes: tag, length, body.
size_t Delimited(size_t body) { return 1 + VarintSize(body) + body; }

char* PutVarint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

char* PutTag(char* p, uint32_t field, uint8_t wire_type) {
  *p++ = static_cast<char>(Tag(field, wire_type));
  return p;
}

char* PutBytes(char* p, uint32_t field, const std::string& bytes) {
  p = PutTag(p, field, kLengthDelimited);
  p = PutVarint(p, bytes.size());
  std::memcpy(p, bytes.data(), bytes.size());
  return p + bytes.size();
}

// ods.v1.Value: a oneof, so the member is written even when it holds its default. Inlined
// (as PutValue) into the per-value loops: a call per value was a fifth of the encoding's time.
[[gnu::always_inline]] inline size_t ValueSize(const record::Value& v) {
  static_assert(std::variant_size_v<record::Value> == 7, "a new Value type needs a case here");
  switch (v.index()) {
    case 0:  // int64_value = 1
      return 1 + VarintSize(static_cast<uint64_t>(*std::get_if<0>(&v)));
    case 1:  // double_value = 2
      return 1 + 8;
    case 2:  // bool_value = 3
      return 1 + 1;
    case 3:  // string_value = 4
      return Delimited(std::get_if<3>(&v)->size());
    case 4:  // bytes_value = 5
      return Delimited(std::get_if<4>(&v)->data.size());
    case 5: {  // float_vector_value = 6: FloatVector{packed floats = 1}
      const size_t floats = std::get_if<5>(&v)->size() * sizeof(float);
      return Delimited(floats == 0 ? 0 : Delimited(floats));
    }
    case 6:  // timestamp_micros_value = 7
      return 1 + VarintSize(static_cast<uint64_t>(std::get_if<6>(&v)->micros));
  }
  return 0;
}

[[gnu::always_inline]] inline char* PutValue(char* p, const record::Value& v) {
  switch (v.index()) {
    case 0:
      p = PutTag(p, 1, kVarint);
      return PutVarint(p, static_cast<uint64_t>(*std::get_if<0>(&v)));
    case 1: {
      p = PutTag(p, 2, kFixed64);
      uint64_t bits;
      std::memcpy(&bits, std::get_if<1>(&v), sizeof(bits));
      if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(p, &bits, sizeof(bits));
        return p + sizeof(bits);
      }
      for (int i = 0; i < 8; ++i) *p++ = static_cast<char>(bits >> (8 * i));  // little endian
      return p;
    }
    case 2:
      p = PutTag(p, 3, kVarint);
      *p++ = *std::get_if<2>(&v) ? 1 : 0;
      return p;
    case 3:
      return PutBytes(p, 4, *std::get_if<3>(&v));
    case 4:
      return PutBytes(p, 5, std::get_if<4>(&v)->data);
    case 5: {
      const std::vector<float>& floats = *std::get_if<5>(&v);
      const size_t bytes = floats.size() * sizeof(float);
      p = PutTag(p, 6, kLengthDelimited);
      if (bytes == 0) return PutVarint(p, 0);
      p = PutVarint(p, Delimited(bytes));
      p = PutTag(p, 1, kLengthDelimited);
      p = PutVarint(p, bytes);
      for (float f : floats) {
        uint32_t bits;
        std::memcpy(&bits, &f, sizeof(bits));
        for (int i = 0; i < 4; ++i) *p++ = static_cast<char>(bits >> (8 * i));
      }
      return p;
    }
    case 6:
      p = PutTag(p, 7, kVarint);
      return PutVarint(p, static_cast<uint64_t>(std::get_if<6>(&v)->micros));
  }
  return p;
}

// ods.v1.FeatureValue: value = 1 (scalar), list = 2 (ValueList{repeated Value values = 1}), or
// nothing for an unset value.
size_t ListBodySize(const std::vector<record::Value>& list) {
  size_t n = 0;
  for (const record::Value& v : list) n += Delimited(ValueSize(v));
  return n;
}

size_t FeatureValueSize(const aggregate::Output& out) {
  if (const auto* scalar = std::get_if<record::Value>(&out)) return Delimited(ValueSize(*scalar));
  if (const auto* list = std::get_if<std::vector<record::Value>>(&out)) {
    return Delimited(ListBodySize(*list));
  }
  return 0;
}

char* PutFeatureValue(char* p, const aggregate::Output& out) {
  if (const auto* scalar = std::get_if<record::Value>(&out)) {
    p = PutTag(p, 1, kLengthDelimited);
    p = PutVarint(p, ValueSize(*scalar));
    return PutValue(p, *scalar);
  }
  if (const auto* list = std::get_if<std::vector<record::Value>>(&out)) {
    p = PutTag(p, 2, kLengthDelimited);
    p = PutVarint(p, ListBodySize(*list));
    for (const record::Value& v : *list) {
      p = PutTag(p, 1, kLengthDelimited);
      p = PutVarint(p, ValueSize(v));
      p = PutValue(p, v);
    }
  }
  return p;
}

// ods.v1.FeatureStatus numbers; each is a one-byte varint.
char StatusNumber(engine::FeatureStatus s) {
  switch (s) {
    case engine::FeatureStatus::kPresent:
      return 1;
    case engine::FeatureStatus::kNotFound:
      return 2;
    case engine::FeatureStatus::kStale:
      return 3;
    case engine::FeatureStatus::kOutOfRetention:
      return 4;
  }
  return 0;
}

size_t TimesBodySize(const engine::FeatureColumn& c) {
  size_t n = 0;
  for (Micros t : c.event_times) n += VarintSize(static_cast<uint64_t>(t));
  return n;
}

// True if every byte of [p, p + n) is below 0x80, eight at a time.
bool IsAscii(const char* p, size_t n) {
  uint64_t bits = 0;
  size_t i = 0;
  for (; i + sizeof(uint64_t) <= n; i += sizeof(uint64_t)) {
    uint64_t word;
    std::memcpy(&word, p + i, sizeof(word));
    bits |= word;
  }
  for (; i < n; ++i) bits |= static_cast<uint8_t>(p[i]);
  return (bits & 0x8080808080808080u) == 0;
}

}  // namespace

// ods.v1.GetOnlineFeaturesRequest: entities = 1 (repeated string), features = 2 (repeated
// string), as_of_micros = 3 (optional int64).
bool ReadOnlineRequest(std::string_view bytes, OnlineRequestView& out) {
  out.entities.clear();
  out.features.clear();
  out.as_of.reset();
  // A 100-key request has ~18 bytes per key: one allocation for the usual request.
  out.entities.reserve(std::min<size_t>(bytes.size() / 16, 4096));
  std::string_view in = bytes;
  while (!in.empty()) {
    const auto tag = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    if (tag == Tag(3, kVarint)) {
      // As protobuf reads an int64: up to 10 bytes, bits past the 64th dropped.
      uint64_t v = 0;
      if (!GetVarint(in, v)) return false;
      out.as_of = static_cast<Micros>(v);
      continue;
    }
    std::vector<std::string_view>* list = tag == Tag(1, kLengthDelimited)   ? &out.entities
                                          : tag == Tag(2, kLengthDelimited) ? &out.features
                                                                            : nullptr;
    if (list == nullptr) return false;
    // protobuf reads a length in at most 5 bytes; past the end is truncation.
    const size_t before = in.size();
    uint64_t size = 0;
    if (!GetVarint(in, size) || before - in.size() > 5 || size > in.size()) return false;
    if (!IsAscii(in.data(), size)) return false;
    list->push_back(in.substr(0, size));
    in.remove_prefix(size);
  }
  return true;
}

// ods.v1.FeatureColumn: feature = 1, values = 2 (repeated FeatureValue), statuses = 3 (packed),
// event_times_micros = 4 (packed).
FeaturesResponseEncoder::FeaturesResponseEncoder(std::span<const engine::FeatureColumn> columns)
    : columns_(columns) {
  size_t values = 0;
  for (const engine::FeatureColumn& c : columns) values += c.values.size();
  value_sizes_.reserve(values);
  column_sizes_.reserve(columns.size());
  for (const engine::FeatureColumn& c : columns) {
    size_t n = c.feature.empty() ? 0 : Delimited(c.feature.size());
    for (const aggregate::Output& v : c.values) {
      const size_t bytes = FeatureValueSize(v);
      ODS_CHECK(bytes <= UINT32_MAX);
      value_sizes_.push_back(static_cast<uint32_t>(bytes));
      n += Delimited(bytes);
    }
    if (!c.statuses.empty()) n += Delimited(c.statuses.size());
    const size_t times = TimesBodySize(c);
    if (!c.event_times.empty()) n += Delimited(times);
    ODS_CHECK(n <= UINT32_MAX);
    column_sizes_.push_back({static_cast<uint32_t>(n), static_cast<uint32_t>(times)});
    size_ += Delimited(n);
  }
}

void FeaturesResponseEncoder::Write(char* p) const {
  const uint32_t* value_size = value_sizes_.data();
  for (size_t i = 0; i < columns_.size(); ++i) {  // FeaturesResponse: columns = 1
    const engine::FeatureColumn& c = columns_[i];
    p = PutTag(p, 1, kLengthDelimited);
    p = PutVarint(p, column_sizes_[i].body);
    if (!c.feature.empty()) p = PutBytes(p, 1, c.feature);
    for (const aggregate::Output& v : c.values) {
      p = PutTag(p, 2, kLengthDelimited);
      p = PutVarint(p, *value_size++);
      p = PutFeatureValue(p, v);
    }
    if (!c.statuses.empty()) {
      p = PutTag(p, 3, kLengthDelimited);
      p = PutVarint(p, c.statuses.size());
      for (engine::FeatureStatus s : c.statuses) *p++ = StatusNumber(s);
    }
    if (!c.event_times.empty()) {
      p = PutTag(p, 4, kLengthDelimited);
      p = PutVarint(p, column_sizes_[i].times);
      for (Micros t : c.event_times) p = PutVarint(p, static_cast<uint64_t>(t));
    }
  }
}

}  // namespace ods::server
