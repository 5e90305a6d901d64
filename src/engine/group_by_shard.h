#pragma once

#include <cstdint>
#include <string_view>

#include "ods/common/hash.h"
#include "ods/engine/engine.h"

namespace ods::engine {

// Routing seed of a table or event template (see Engine::ShardOf).
inline uint64_t TableSeed(std::string_view table) { return StableHash64(table, 0x6f6473); }

// Positions with owner_of(i) == shard count (no shard) are left out of every group.
template <typename OwnerOf>
const Engine::ShardGroups& Engine::GroupByOwner(size_t n, OwnerOf owner_of) const {
  ShardGroups& groups = ThreadShardGroups();
  const size_t shard_count = shards_.size();
  groups.owner.resize(n);
  groups.offsets.assign(shard_count + 2, 0);
  for (size_t i = 0; i < n; ++i) {
    groups.owner[i] = owner_of(i);
    ++groups.offsets[groups.owner[i] + 1];
  }
  for (size_t s = 0; s <= shard_count; ++s) groups.offsets[s + 1] += groups.offsets[s];
  groups.order.resize(n);
  groups.next.assign(groups.offsets.begin(), groups.offsets.end() - 1);
  // Stable: positions stay ascending within a shard, so a later duplicate key wins.
  for (size_t i = 0; i < n; ++i) {
    groups.order[groups.next[groups.owner[i]]++] = static_cast<uint32_t>(i);
  }
  return groups;
}

template <typename KeyOf>
const Engine::ShardGroups& Engine::GroupByShard(std::string_view table, size_t n,
                                                KeyOf key_of) const {
  const uint64_t seed = TableSeed(table);
  const size_t shard_count = shards_.size();
  return GroupByOwner(n, [&](size_t i) {
    return static_cast<uint32_t>(StableHash64(key_of(i), seed) % shard_count);
  });
}

}  // namespace ods::engine
