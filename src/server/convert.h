#pragma once

// Conversions between wire messages and ODS records, at the edge of the server. Private to
// server/. Thread-safe (pure functions).

#include <string_view>

#include "ods/common/status.h"
#include "ods/record/value.h"
#include "ods/v1/store.pb.h"

namespace ods::server {

// Converts `in` into `out`. kInvalidArgument naming table, key and field if a value is unset.
Status FromProto(std::string_view table, const ods::v1::Record& in, record::Record& out);

// Writes `in` (stored under `key`) into `out`.
void ToProto(std::string_view key, const record::Record& in, ods::v1::Record& out);

}  // namespace ods::server
