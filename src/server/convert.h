#pragma once

// Conversions between wire messages and ODS records, at the edge of the server. Private to
// server/. Thread-safe (pure functions).

#include <cstddef>
#include <string_view>
#include <vector>

#include "ods/aggregate/aggregate.h"
#include "ods/common/status.h"
#include "ods/engine/features.h"
#include "ods/record/value.h"
#include "ods/v1/features.pb.h"
#include "ods/v1/store.pb.h"

namespace ods::server {

// Converts `in` into `out`. kInvalidArgument naming table, key and field if a value is unset.
Status FromProto(std::string_view table, const ods::v1::Record& in, record::Record& out);

// Writes `in` (stored under `key`) into `out`.
void ToProto(std::string_view key, const record::Record& in, ods::v1::Record& out);

// Converts `in` into `out`; false (out unspecified) if no kind is set.
bool FromProto(const ods::v1::Value& in, record::Value& out);

// Writes `in` into `out`, replacing its kind.
void ToProto(const record::Value& in, ods::v1::Value& out);

// Writes the fields of `in` to out[used, used + in.fields_size()) and advances `used`, growing
// `out` when it is too short and otherwise assigning over the fields already there, so a reused
// `out` keeps the capacity of its strings. kInvalidArgument naming template, event_id and field if
// a value is unset (the event is then rejected alone, as the engine rejects a bad field); `used`
// is then unspecified.
Status AppendEventFields(const ods::v1::Event& in, std::vector<record::Field>& out, size_t& used);

// Writes `in` into `out`: a scalar as `value`, a list as `list`, nothing for std::monostate.
void ToProto(const aggregate::Output& in, ods::v1::FeatureValue& out);

ods::v1::FeatureStatus ToProto(engine::FeatureStatus status);

// Appends `in` to `out` (row for row).
void ToProto(const engine::FeatureColumn& in, ods::v1::FeatureColumn& out);

}  // namespace ods::server
