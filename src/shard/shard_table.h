#pragma once

// Private to shard/. One table's state in one shard, shared by shard.cc and tiering.cc.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/check.h"
#include "ods/record/codec.h"
#include "ods/shard/shard.h"
#include "record_map.h"

namespace ods::shard {

// True if `encoded` carries an expiry at or before `now`. `now` 0 means "table has no TTL".
inline bool IsExpired(std::string_view encoded, Micros now) {
  if (now == 0) return false;
  Result<record::EncodedHeader> header = record::DecodeHeader(encoded);
  ODS_CHECK(header.ok());  // Only this shard encodes what it stores.
  return header->expire_at_micros != 0 && header->expire_at_micros <= now;
}

// Access times are kept in whole seconds (4 bytes per entry).
inline uint32_t AccessStamp(Micros now) { return static_cast<uint32_t>(now / 1'000'000); }
inline Micros StampMicros(uint32_t stamp) { return Micros{stamp} * 1'000'000; }

// The RAM entry of a record below RAM, stored as the value of Table::below:
//   byte tier | varint version | varint expire_at | zigzag event_time | varint last access
//   (seconds) | varint reads since it left RAM | varint bytes
struct BelowEntry {
  StorageTier tier = StorageTier::kSsd;
  uint64_t version = 0;
  Micros expire_at_micros = 0;
  Micros event_time_micros = 0;
  uint32_t last_access = 0;  // AccessStamp
  uint32_t hits = 0;
  uint32_t bytes = 0;  // the record's encoded size (what it takes in its tier, about)

  bool ExpiredAt(Micros now) const {
    return now != 0 && expire_at_micros != 0 && expire_at_micros <= now;
  }
  void EncodeTo(std::string& out) const;
  static BelowEntry Decode(std::string_view encoded);
};

struct Shard::Table {
  explicit Table(bool access_stamps) : records(access_stamps) {}

  std::shared_ptr<const record::TableSchema> schema;
  std::shared_ptr<const TieringPolicy> tiering;  // null: every record stays in RAM
  Micros ttl = 0;         // the table's TTL now (SetTtl); new writes expire this long after
  bool ever_ttl = false;  // some record may carry an expiry: reads and sweeps check it
  record::FieldDictionary dict;
  RecordMap records;                 // key -> encoded record
  RecordMap below;                   // key -> BelowEntry, for records below RAM
  TableTierStats counters;           // records/bytes below RAM, RAM bytes, reads by tier
  std::string coldest_key[2];        // where CollectColdest resumes, for RAM and for SSD
  std::string scratch;               // reused encode buffer
  std::vector<uint32_t> projection;  // reused projection ids

  // Now, if records of the table may carry an expiry; else 0 (and no clock read).
  Micros ExpiryNow(const Clock& clock) const { return ever_ttl ? clock.NowMicros() : 0; }
  // Adds (sign +1) or removes (-1) entry `e` from the counts of its tier.
  void CountBelow(const BelowEntry& e, int sign) {
    const auto tier = static_cast<size_t>(e.tier);
    counters.records[tier] += static_cast<uint64_t>(sign);
    counters.bytes[tier] += static_cast<uint64_t>(sign) * e.bytes;
  }
};

}  // namespace ods::shard
