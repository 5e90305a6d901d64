#include "convert.h"

#include <string>
#include <variant>
#include <vector>

namespace ods::server {

Status FromProto(std::string_view table, const ods::v1::Record& in, record::Record& out) {
  out.fields.clear();
  out.fields.reserve(in.fields_size());
  out.event_time_micros = in.event_time_micros();
  out.version = 0;
  for (const auto& [name, value] : in.fields()) {
    record::Field& f = out.fields.emplace_back();
    f.name = name;
    if (!FromProto(value, f.value)) {
      return InvalidArgumentError("table '" + QuoteForMessage(table) + "', key '" +
                                  QuoteForMessage(in.key()) + "', field '" + QuoteForMessage(name) +
                                  "': value has no type set");
    }
  }
  return OkStatus();
}

void ToProto(std::string_view key, const record::Record& in, ods::v1::Record& out) {
  out.set_key(std::string(key));
  out.set_event_time_micros(in.event_time_micros);
  out.set_version(in.version);
  auto& fields = *out.mutable_fields();
  for (const record::Field& f : in.fields) ToProto(f.value, fields[f.name]);
}

bool FromProto(const ods::v1::Value& in, record::Value& out) {
  switch (in.kind_case()) {
    case ods::v1::Value::kInt64Value:
      out = in.int64_value();
      return true;
    case ods::v1::Value::kDoubleValue:
      out = in.double_value();
      return true;
    case ods::v1::Value::kBoolValue:
      out = in.bool_value();
      return true;
    case ods::v1::Value::kStringValue:
      out = in.string_value();
      return true;
    case ods::v1::Value::kBytesValue:
      out = record::Bytes{in.bytes_value()};
      return true;
    case ods::v1::Value::kFloatVectorValue:
      out = std::vector<float>(in.float_vector_value().values().begin(),
                               in.float_vector_value().values().end());
      return true;
    case ods::v1::Value::kTimestampMicrosValue:
      out = record::Timestamp{in.timestamp_micros_value()};
      return true;
    case ods::v1::Value::KIND_NOT_SET:
      return false;
  }
  return false;
}

void ToProto(const record::Value& in, ods::v1::Value& out) {
  // A switch on the index instead of std::visit: this runs once per value of every answer, and
  // visit's table of function pointers is not inlined.
  static_assert(std::variant_size_v<record::Value> == 7, "a new Value type needs a case here");
  switch (in.index()) {
    case 0:
      out.set_int64_value(*std::get_if<0>(&in));
      return;
    case 1:
      out.set_double_value(*std::get_if<1>(&in));
      return;
    case 2:
      out.set_bool_value(*std::get_if<2>(&in));
      return;
    case 3:
      out.set_string_value(*std::get_if<3>(&in));
      return;
    case 4:
      out.set_bytes_value(std::get_if<4>(&in)->data);
      return;
    case 5: {
      const std::vector<float>& v = *std::get_if<5>(&in);
      out.mutable_float_vector_value()->mutable_values()->Assign(v.begin(), v.end());
      return;
    }
    case 6:
      out.set_timestamp_micros_value(std::get_if<6>(&in)->micros);
      return;
  }
}

Status AppendEventFields(const ods::v1::Event& in, std::vector<record::Field>& out, size_t& used) {
  if (out.size() < used + in.fields_size()) out.resize(used + in.fields_size());
  for (const auto& [name, value] : in.fields()) {
    record::Field& f = out[used++];
    f.name.assign(name);
    if (!FromProto(value, f.value)) {
      return InvalidArgumentError("template '" + QuoteForMessage(in.template_()) + "'" +
                                  (in.event_id().empty()
                                       ? std::string()
                                       : ", event_id '" + QuoteForMessage(in.event_id()) + "'") +
                                  ", field '" + QuoteForMessage(name) + "': value has no type set");
    }
  }
  return OkStatus();
}

void ToProto(const aggregate::Output& in, ods::v1::FeatureValue& out) {
  if (const auto* scalar = std::get_if<record::Value>(&in)) {
    ToProto(*scalar, *out.mutable_value());
  } else if (const auto* list = std::get_if<std::vector<record::Value>>(&in)) {
    auto& values = *out.mutable_list()->mutable_values();
    values.Reserve(static_cast<int>(list->size()));
    for (const record::Value& v : *list) ToProto(v, *values.Add());
  }
}

ods::v1::FeatureStatus ToProto(engine::FeatureStatus status) {
  switch (status) {
    case engine::FeatureStatus::kPresent:
      return ods::v1::PRESENT;
    case engine::FeatureStatus::kNotFound:
      return ods::v1::NOT_FOUND;
    case engine::FeatureStatus::kStale:
      return ods::v1::STALE;
    case engine::FeatureStatus::kOutOfRetention:
      return ods::v1::OUT_OF_RETENTION;
  }
  return ods::v1::FEATURE_STATUS_UNSPECIFIED;
}

void ToProto(const engine::FeatureColumn& in, ods::v1::FeatureColumn& out) {
  out.set_feature(in.feature);
  const int rows = static_cast<int>(in.values.size());
  auto& values = *out.mutable_values();
  values.Reserve(values.size() + rows);
  for (const aggregate::Output& v : in.values) ToProto(v, *values.Add());
  auto& statuses = *out.mutable_statuses();
  statuses.Reserve(statuses.size() + static_cast<int>(in.statuses.size()));
  for (engine::FeatureStatus s : in.statuses) statuses.AddAlreadyReserved(ToProto(s));
  out.mutable_event_times_micros()->Add(in.event_times.begin(), in.event_times.end());
}

}  // namespace ods::server
