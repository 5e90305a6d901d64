#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/common/value_type.h"
#include "ods/record/value.h"

namespace ods::record {

// The shape of one table: key name, declared fields (or free-form) and TTL. Immutable after
// construction; thread-compatible (shared read-only by all shards).
class TableSchema {
 public:
  struct FieldSpec {
    std::string name;
    ValueType type;
  };

  // `fields` empty with `free_form` true: any field accepted. Field ids are indices in `fields`.
  TableSchema(std::string name, std::string key_field, std::vector<FieldSpec> fields,
              bool free_form, Micros ttl_micros);

  const std::string& name() const { return name_; }
  const std::string& key_field() const { return key_field_; }
  const std::vector<FieldSpec>& fields() const { return fields_; }
  bool free_form() const { return free_form_; }
  Micros ttl_micros() const { return ttl_micros_; }

  // Index of the declared field `name`, or nullopt. O(log fields); no allocation.
  std::optional<uint32_t> FieldIndex(std::string_view name) const;

  // Checks `record` (stored under `key`) against the schema: every field declared with the
  // declared type (typed tables), field names well-formed and not repeated, float vectors and
  // doubles finite. kInvalidArgument naming table, key and field otherwise.
  Status Validate(std::string_view key, const Record& record) const;

 private:
  std::string name_;
  std::string key_field_;
  std::vector<FieldSpec> fields_;
  std::vector<std::pair<std::string, uint32_t>> sorted_index_;  // name -> field id, by name
  bool free_form_;
  Micros ttl_micros_;
};

// Longest field name accepted in a record, in bytes.
inline constexpr size_t kMaxFieldNameBytes = 64;

}  // namespace ods::record
