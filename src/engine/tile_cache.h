#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "ods/shard/cold_tiles.h"

namespace ods::engine {

// Decoded aggregation tiles below RAM (shard::DecodedTiles), most recently used first, within a
// byte budget (their rows' MemoryBytes()). Blob ids are never reused within a shard, so an
// entry keyed by (shard, template, blob id) is never stale: a moved blob is simply not asked
// for again and ages out.
//
// Thread-safe (one mutex; every call is O(1) but an Insert that evicts).
class TileCache {
 public:
  struct Key {
    uint32_t shard = 0;
    uint32_t template_id = 0;
    uint64_t blob_id = 0;
    bool operator==(const Key&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.shard, k.template_id, k.blob_id);
    }
  };
  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t bytes = 0;
    uint64_t entries = 0;
  };

  explicit TileCache(uint64_t budget_bytes) : budget_bytes_(budget_bytes) {}

  // The entry of `key` (now the most recently used), or null (counted as a miss).
  std::shared_ptr<const shard::DecodedTiles> Find(const Key& key);
  // Adds (or replaces) `key`, then evicts least recently used entries while over budget; an
  // entry larger than the whole budget is not kept.
  void Insert(const Key& key, std::shared_ptr<const shard::DecodedTiles> tiles);
  Stats stats() const;

 private:
  struct Entry {
    Key key;
    std::shared_ptr<const shard::DecodedTiles> tiles;
    uint64_t bytes = 0;
  };
  static uint64_t BytesOf(const shard::DecodedTiles& tiles);

  const uint64_t budget_bytes_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // front: most recently used
  absl::flat_hash_map<Key, std::list<Entry>::iterator> index_;
  Stats stats_;
};

}  // namespace ods::engine
