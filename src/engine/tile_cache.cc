#include "tile_cache.h"

#include <utility>

namespace ods::engine {

uint64_t TileCache::BytesOf(const shard::DecodedTiles& tiles) {
  // The rows, their vector, and this entry's list and map nodes.
  return tiles.memory_bytes + sizeof(shard::DecodedTiles) +
         tiles.rows.capacity() * sizeof(aggregate::ColdRows) + sizeof(Entry) + 64;
}

std::shared_ptr<const shard::DecodedTiles> TileCache::Find(const Key& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++stats_.misses;
    return nullptr;
  }
  ++stats_.hits;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->tiles;
}

void TileCache::Insert(const Key& key, std::shared_ptr<const shard::DecodedTiles> tiles) {
  const uint64_t bytes = BytesOf(*tiles);
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = index_.find(key); it != index_.end()) {
    stats_.bytes -= it->second->bytes;
    lru_.erase(it->second);
    index_.erase(it);
  }
  if (bytes <= budget_bytes_) {
    lru_.push_front({key, std::move(tiles), bytes});
    index_[key] = lru_.begin();
    stats_.bytes += bytes;
  }
  while (stats_.bytes > budget_bytes_) {
    Entry& last = lru_.back();
    stats_.bytes -= last.bytes;
    index_.erase(last.key);
    lru_.pop_back();
  }
  stats_.entries = index_.size();
}

TileCache::Stats TileCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace ods::engine
