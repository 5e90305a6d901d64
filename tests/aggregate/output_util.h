#pragma once

// Comparing and printing aggregation outputs in tests of ods_aggregate.

#include <cstring>
#include <sstream>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "ods/aggregate/aggregate.h"
#include "ods/common/value_type.h"
#include "ods/record/value.h"

namespace ods::aggregate::test_util {

using ::ods::record::Bytes;
using ::ods::record::Timestamp;
using ::ods::record::Value;

// "type:value" for failure messages (doubles to 17 digits, bytes and float vectors in full).
inline std::string Describe(const Value& v) {
  std::ostringstream os;
  os << ValueTypeName(record::TypeOf(v)) << ":";
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Bytes>) {
          os << "bytes[" << x.data.size() << "]";
          for (unsigned char c : x.data) os << ' ' << static_cast<int>(c);
        } else if constexpr (std::is_same_v<T, Timestamp>) {
          os << x.micros;
        } else if constexpr (std::is_same_v<T, std::vector<float>>) {
          for (float f : x) os << ' ' << f;
        } else if constexpr (std::is_same_v<T, double>) {
          os.precision(17);
          os << x;
        } else {
          os << x;
        }
      },
      v);
  return os.str();
}

inline std::string Describe(const Output& out) {
  if (std::holds_alternative<std::monostate>(out)) return "none";
  if (const auto* v = std::get_if<Value>(&out)) return Describe(*v);
  std::string s = "[";
  for (const Value& v : std::get<std::vector<Value>>(out)) s += Describe(v) + ", ";
  return s + "]";
}

// Equal bit for bit: doubles and float vectors compared by their bytes.
inline bool BitIdentical(const Value& a, const Value& b) {
  if (a.index() != b.index()) return false;
  if (const auto* x = std::get_if<double>(&a)) {
    return std::memcmp(x, &std::get<double>(b), sizeof(double)) == 0;
  }
  if (const auto* x = std::get_if<std::vector<float>>(&a)) {
    const auto& y = std::get<std::vector<float>>(b);
    return x->size() == y.size() && std::memcmp(x->data(), y.data(), x->size() * 4) == 0;
  }
  return a == b;
}

inline bool BitIdentical(const Output& a, const Output& b) {
  if (a.index() != b.index()) return false;
  if (const auto* v = std::get_if<Value>(&a)) return BitIdentical(*v, std::get<Value>(b));
  if (const auto* l = std::get_if<std::vector<Value>>(&a)) {
    const auto& m = std::get<std::vector<Value>>(b);
    if (l->size() != m.size()) return false;
    for (size_t i = 0; i < l->size(); ++i) {
      if (!BitIdentical((*l)[i], m[i])) return false;
    }
  }
  return true;
}

}  // namespace ods::aggregate::test_util
