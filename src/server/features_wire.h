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
#include <cstdint>
#include <span>
#include <vector>

#include "ods/engine/features.h"

namespace ods::server {

// Encodes FeaturesResponse{columns}: the constructor sizes every value once (kept for Write).
// `columns` must outlive the encoder and not change. Thread-compatible.
class FeaturesResponseEncoder {
 public:
  explicit FeaturesResponseEncoder(std::span<const engine::FeatureColumn> columns);

  // Bytes Write writes.
  size_t size() const { return size_; }
  // Writes the encoding to out[0, size()).
  void Write(char* out) const;

 private:
  std::span<const engine::FeatureColumn> columns_;
  struct ColumnSizes {
    uint32_t body = 0;   // bytes of the FeatureColumn message's body
    uint32_t times = 0;  // bytes of its packed event times
  };
  std::vector<ColumnSizes> column_sizes_;  // one per column
  std::vector<uint32_t> value_sizes_;      // body bytes of each FeatureValue, column after column
  size_t size_ = 0;
};

}  // namespace ods::server
