#pragma once

#include <cstdint>
#include <string_view>

namespace ods {

// Where a record lives, fastest first: the shard's RAM map, the RocksDB SSD tier, the backing
// store. A record below RAM keeps a small entry in RAM (key, tier, expiry, version, event time,
// last access), so lookups, scans and TTLs never search the slower tiers blindly. The numeric
// values order the tiers: never renumber.
enum class StorageTier : uint8_t { kRam = 0, kSsd = 1, kBacking = 2 };

// "ram", "ssd", "backing".
constexpr std::string_view StorageTierName(StorageTier tier) {
  switch (tier) {
    case StorageTier::kRam: return "ram";
    case StorageTier::kSsd: return "ssd";
    case StorageTier::kBacking: return "backing";
  }
  return "?";
}

}  // namespace ods
