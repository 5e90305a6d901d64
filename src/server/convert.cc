#include "convert.h"

#include <string>
#include <type_traits>

namespace ods::server {

Status FromProto(std::string_view table, const ods::v1::Record& in, record::Record& out) {
  out.fields.clear();
  out.fields.reserve(in.fields_size());
  out.event_time_micros = in.event_time_micros();
  out.version = 0;
  for (const auto& [name, value] : in.fields()) {
    record::Field& f = out.fields.emplace_back();
    f.name = name;
    switch (value.kind_case()) {
      case ods::v1::Value::kInt64Value: f.value = value.int64_value(); break;
      case ods::v1::Value::kDoubleValue: f.value = value.double_value(); break;
      case ods::v1::Value::kBoolValue: f.value = value.bool_value(); break;
      case ods::v1::Value::kStringValue: f.value = value.string_value(); break;
      case ods::v1::Value::kBytesValue: f.value = record::Bytes{value.bytes_value()}; break;
      case ods::v1::Value::kFloatVectorValue:
        f.value = std::vector<float>(value.float_vector_value().values().begin(),
                                     value.float_vector_value().values().end());
        break;
      case ods::v1::Value::kTimestampMicrosValue:
        f.value = record::Timestamp{value.timestamp_micros_value()};
        break;
      case ods::v1::Value::KIND_NOT_SET:
        return InvalidArgumentError("table '" + QuoteForMessage(table) + "', key '" +
                                    QuoteForMessage(in.key()) + "', field '" +
                                    QuoteForMessage(name) + "': value has no type set");
    }
  }
  return OkStatus();
}

void ToProto(std::string_view key, const record::Record& in, ods::v1::Record& out) {
  out.set_key(std::string(key));
  out.set_event_time_micros(in.event_time_micros);
  out.set_version(in.version);
  auto& fields = *out.mutable_fields();
  for (const record::Field& f : in.fields) {
    ods::v1::Value& v = fields[f.name];
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, int64_t>) {
            v.set_int64_value(x);
          } else if constexpr (std::is_same_v<T, double>) {
            v.set_double_value(x);
          } else if constexpr (std::is_same_v<T, bool>) {
            v.set_bool_value(x);
          } else if constexpr (std::is_same_v<T, std::string>) {
            v.set_string_value(x);
          } else if constexpr (std::is_same_v<T, record::Bytes>) {
            v.set_bytes_value(x.data);
          } else if constexpr (std::is_same_v<T, std::vector<float>>) {
            v.mutable_float_vector_value()->mutable_values()->Assign(x.begin(), x.end());
          } else if constexpr (std::is_same_v<T, record::Timestamp>) {
            v.set_timestamp_micros_value(x.micros);
          }
        },
        f.value);
  }
}

}  // namespace ods::server
