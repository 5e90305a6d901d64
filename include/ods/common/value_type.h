#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace ods {

// The field types a record may hold. Shared vocabulary of config (schemas) and record (values).
// The numeric values are stored in encoded records: never renumber.
enum class ValueType : uint8_t {
  kInt64 = 1,
  kDouble = 2,
  kBool = 3,
  kString = 4,
  kBytes = 5,
  kFloatVector = 6,
  kTimestamp = 7,
};

// "int64", "double", "bool", "string", "bytes", "float_vector", "timestamp".
std::string_view ValueTypeName(ValueType type);

// Inverse of ValueTypeName; nullopt for any other text.
std::optional<ValueType> ParseValueType(std::string_view name);

// "int64, double, bool, string, bytes, float_vector, timestamp": for error messages.
std::string_view ValueTypeNameList();

}  // namespace ods
