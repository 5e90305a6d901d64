#pragma once

// Private to tier/. How records are laid out in RocksDB.
//
// Key:   varint table_bytes | table | key        (so one table's records are contiguous)
// Value: varint field_count | field_count x (varint name_bytes | name) | record::Encode bytes
//
// The shard's encoding numbers fields with a per-shard dictionary that is not persisted (a
// free-form table numbers names in order of first sight), so the stored value carries its own
// names: field i of the encoded part has id i. The encoded part's header keeps expiry, version
// and event time.

#include <cstdint>
#include <string>
#include <string_view>

#include "ods/common/clock.h"
#include "ods/record/value.h"

namespace ods::tier::internal {

// LEB128 varints and varint-length-prefixed strings, shared by the stored key and value formats
// here and the directory store's segment entries. The readers consume from the front of `in` and
// return false on truncated or overlong input.
void PutVarint(uint64_t v, std::string& out);
bool GetVarint(std::string_view& in, uint64_t& v);
bool GetString(std::string_view& in, std::string_view& out);

// Replaces `out` with the stored key of (table, key).
void EncodeKey(std::string_view table, std::string_view key, std::string& out);

// Replaces `out` with the key of (table, key)'s backing-store marker: a stored key whose table
// part is a NUL byte followed by the table name (no table name starts with NUL).
void EncodeMarkerKey(std::string_view table, std::string_view key, std::string& out);
// True if a decoded stored key's table part marks a marker (see EncodeMarkerKey).
inline bool IsMarkerTable(std::string_view table) { return !table.empty() && table[0] == '\0'; }

// Marker value: varint version | varint expire_at | zigzag-varint event_time | varint bytes
// (the record's encoded size, for tier statistics).
void EncodeMarker(uint64_t version, Micros expire_at_micros, Micros event_time_micros,
                  uint64_t bytes, std::string& out);
bool DecodeMarker(std::string_view stored, uint64_t& version, Micros& expire_at_micros,
                  Micros& event_time_micros, uint64_t& bytes);

// Splits a stored key; false if malformed. Views point into `stored`.
bool DecodeKey(std::string_view stored, std::string_view& table, std::string_view& key);

// Replaces `out` with the stored value of `record` (validated: field names unique).
void EncodeValue(const record::Record& record, Micros expire_at_micros, uint64_t version,
                 std::string& out);

// Decodes a stored value into `out` (fields sorted by name, version and event time set) and its
// expiry; false if malformed.
bool DecodeValue(std::string_view stored, record::Record& out, Micros& expire_at_micros);
// As DecodeValue for version, event time and expiry only (out.fields untouched), plus the size
// of the encoded record without its names; false if the names or the header are malformed.
bool DecodeValueHeader(std::string_view stored, record::Record& out, Micros& expire_at_micros,
                       uint64_t& encoded_bytes);

}  // namespace ods::tier::internal
