#include "ods/common/value_type.h"

#include <array>

namespace ods {
namespace {

constexpr std::array<std::string_view, 8> kNames = {
    "", "int64", "double", "bool", "string", "bytes", "float_vector", "timestamp"};

}  // namespace

std::string_view ValueTypeName(ValueType type) {
  const auto i = static_cast<size_t>(type);
  return i < kNames.size() ? kNames[i] : std::string_view("unknown");
}

std::optional<ValueType> ParseValueType(std::string_view name) {
  for (size_t i = 1; i < kNames.size(); ++i) {
    if (kNames[i] == name) return static_cast<ValueType>(i);
  }
  return std::nullopt;
}

std::string_view ValueTypeNameList() {
  return "int64, double, bool, string, bytes, float_vector, timestamp";
}

}  // namespace ods
