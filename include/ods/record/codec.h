#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/record/value.h"

// Compact record encoding. A stored record is one byte string:
//   varint expire_at_micros (0 = never) | varint version | zigzag-varint event_time_micros |
//   per field, ascending field id: varint field_id | type byte | payload
// Payloads: int64/timestamp zigzag varint; double 8 bytes; bool 1 byte; string/bytes varint length
// + bytes; float vector varint count + 4 bytes each. Field names are never stored: a
// FieldDictionary maps them to small ids once per table (per shard).
namespace ods::record {

// Interns field names of one table to dense ids. Typed tables pre-register their declared fields
// (ids = schema order); free-form tables add names as they first appear. Shard-confined: each
// shard owns one dictionary per table, so interning needs no lock of its own.
class FieldDictionary {
 public:
  FieldDictionary() = default;
  explicit FieldDictionary(const std::vector<std::string>& initial_names);

  // The id of `name`, adding it if new. Amortized O(1).
  uint32_t Intern(std::string_view name);
  // The id of `name`, or nullopt if never interned. O(1), no allocation.
  std::optional<uint32_t> Find(std::string_view name) const;
  // The name of `id`; `id` must come from this dictionary.
  const std::string& Name(uint32_t id) const { return names_[id]; }
  size_t size() const { return names_.size(); }
  // Approximate heap bytes held by the dictionary.
  size_t memory_bytes() const;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>> ids_;
};

// Encodes `record` with field ids from `dict` (interning new names) into `out` (replaced).
// `record` must already be validated. O(fields + bytes).
void Encode(const Record& record, Micros expire_at_micros, uint64_t version, FieldDictionary& dict,
            std::string& out);

// Bytes Encode would produce for the field payloads of `record` (excluding the header), used to
// enforce max_record_bytes before anything is written. Field ids are estimated as 2 bytes.
size_t EncodedFieldBytes(const Record& record);

// Header of an encoded record, readable without decoding the fields.
struct EncodedHeader {
  Micros expire_at_micros = 0;
  uint64_t version = 0;
  Micros event_time_micros = 0;
};
// kDataLoss if `encoded` is truncated or malformed.
Result<EncodedHeader> DecodeHeader(std::string_view encoded);

// Decodes `encoded` into `out` (fields sorted by name). With `projection` non-null, only fields
// whose ids are in it are decoded (`projection` sorted ascending). kDataLoss on corrupt input,
// including field ids out of Encode's strictly ascending order (a repeated field).
Status Decode(std::string_view encoded, const FieldDictionary& dict,
              const std::vector<uint32_t>* projection, Record& out);

// Encode with positional ids: field i of `record` gets id i (names unique; the caller stores
// them beside the bytes). The same bytes as Encode with a fresh dictionary that interned
// record.fields in order, without building one. Appends to `out`.
void EncodePositional(const Record& record, Micros expire_at_micros, uint64_t version,
                      std::string& out);
// Decode with the field names by id in `names` (each unique) instead of a dictionary. Same
// errors as Decode.
Status DecodeNamed(std::string_view encoded, std::span<const std::string_view> names, Record& out);

// A row of optional values by position (e.g. an event's fields in template order) and a time,
// for storing retained events below RAM: `zigzag time | varint count` then per position a type
// byte (0 = absent) and its payload. EncodeRow replaces `out`; DecodeRow replaces `values`
// (kDataLoss on truncated or malformed input). O(values + bytes).
void EncodeRow(Micros time, std::span<const std::optional<Value>> values, std::string& out);
Status DecodeRow(std::string_view encoded, Micros& time, std::vector<std::optional<Value>>& values);

}  // namespace ods::record
