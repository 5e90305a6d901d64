#pragma once

// The wire encoding of ods.v1.FeaturesResponse, written straight from engine columns. Private to
// server/. Thread-safe (pure functions).
//
// Building a FeaturesResponse message and serializing it walked every value three times (build,
// size, write) and allocated a message per value: ~30% of odsd's CPU for 100x10 lookups. These
// functions size and write the same bytes as `ColumnsToProto(columns, m); m.SerializeAsString()`
// (fields in number order, proto3 rules: an empty `feature` string and empty packed lists are
// omitted, an unset FeatureValue is an empty message, oneof members are always written).

#include <cstddef>
#include <span>

#include "ods/engine/features.h"

namespace ods::server {

// Bytes WriteFeaturesResponse writes for `columns`.
size_t FeaturesResponseSize(std::span<const engine::FeatureColumn> columns);

// Writes the encoding of FeaturesResponse{columns} to out[0, FeaturesResponseSize(columns)).
void WriteFeaturesResponse(std::span<const engine::FeatureColumn> columns, char* out);

}  // namespace ods::server
