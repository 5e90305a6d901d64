#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/value_type.h"

namespace ods::record {

// Opaque binary data (distinct from text so that each keeps its wire type).
struct Bytes {
  std::string data;
  friend bool operator==(const Bytes&, const Bytes&) = default;
};

// A point in time, microseconds since the Unix epoch (distinct from a plain int64).
struct Timestamp {
  Micros micros = 0;
  friend bool operator==(const Timestamp&, const Timestamp&) = default;
};

// One typed field value. The alternative index + 1 equals the ValueType: keep them in step.
using Value = std::variant<int64_t, double, bool, std::string, Bytes, std::vector<float>, Timestamp>;

inline ValueType TypeOf(const Value& v) { return static_cast<ValueType>(v.index() + 1); }

// A named field of a record.
struct Field {
  std::string name;
  Value value;
  friend bool operator==(const Field&, const Field&) = default;
};

// A record as callers see it: fields plus event time and version. Field order is unspecified on
// input; records returned by the store list fields sorted by name. Thread-compatible.
struct Record {
  std::vector<Field> fields;
  // When the fact the record describes happened (set by the producer); 0 if unknown.
  Micros event_time_micros = 0;
  // Assigned by the store on every write; strictly increases for a key within a process.
  uint64_t version = 0;

  // The field named `name`, or nullptr. O(fields).
  const Value* Find(std::string_view name) const;
};

}  // namespace ods::record
