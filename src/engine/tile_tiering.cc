// Aggregation tiles below RAM (event_templates.NAME.tiles_ssd_after): the move sweep and the
// reads back for GetOnlineFeatures.
#include <optional>
#include <string>
#include <vector>

#include "catalog.h"
#include "ods/common/logging.h"
#include "ods/engine/engine.h"
#include "ods/tier/rocksdb_tier.h"
#include "tile_cache.h"

namespace ods::engine {
namespace {

// Entities each shard visits per sweep (as the other sweeps: a bounded hold of the lock).
constexpr size_t kTileVisitsPerShard = 1024;

}  // namespace

size_t Engine::SweepTilesOnce() {
  if (tier_ == nullptr) return 0;
  size_t moved = 0;
  std::vector<shard::TileMove> moves;
  std::vector<shard::TileMove> failed;
  std::vector<shard::TileGarbage> garbage;
  for (auto& shard : shards_) {
    moves.clear();
    failed.clear();
    shard->CollectTileMoves(kTileVisitsPerShard, moves);
    if (!moves.empty()) {
      const Micros now = clock_.NowMicros();
      tier::WriteBatch batch;
      // The blob to store for a move: its entity's blob below RAM now merged with the rows
      // moving. A move whose old blob cannot be read or merged keeps its rows in RAM.
      auto merged_blob = [&](const shard::TileMove& m) -> Result<std::string> {
        std::string old;
        if (m.old_id != 0) {
          ODS_ASSIGN_OR_RETURN(std::optional<std::string> stored,
                               tier_->ReadTiles(m.template_id, m.entity, m.old_id));
          if (!stored.has_value()) {
            return Status(StatusCode::kDataLoss, "its blob below RAM is missing");
          }
          old = std::move(*stored);
        }
        return shard::MergeTiles(m.layouts, old, m.moved, now);
      };
      size_t kept = 0;
      for (shard::TileMove& m : moves) {
        Result<std::string> merged = merged_blob(m);
        if (!merged.ok()) {
          tier_move_errors_.fetch_add(1, std::memory_order_relaxed);
          Logger("ods.engine")
              ->warn("moving aggregation tiles of entity '{}' below RAM: {}",
                     QuoteForMessage(m.entity), merged.status().message());
          failed.push_back(std::move(m));
          continue;
        }
        m.blob_bytes = merged->size();
        if (!merged->empty()) batch.PutTiles(m.template_id, m.entity, m.new_id, *merged);
        if (&moves[kept] != &m) moves[kept] = std::move(m);
        ++kept;
      }
      moves.resize(kept);
      Status written = OkStatus();
      if (!batch.empty()) written = tier_->WriteEvents(batch);
      if (!written.ok()) {
        tier_move_errors_.fetch_add(1, std::memory_order_relaxed);
        Logger("ods.engine")
            ->warn("moving aggregation tiles of {} entities below RAM: {}", moves.size(),
                   written.message());
      }
      shard->CommitTileMoves(moves, written.ok());
      shard->CommitTileMoves(failed, false);
      if (written.ok()) moved += moves.size();
    }
    // After this shard's moves are written: a blob deleted here was written before, if at all.
    shard->TakeTileGarbage(garbage);
  }
  if (!garbage.empty()) {
    tier::WriteBatch batch;
    for (const shard::TileGarbage& g : garbage)
      batch.DeleteTiles(g.template_id, g.entity, g.blob_id);
    if (Status s = tier_->WriteEvents(batch); !s.ok()) {
      // Left behind: never read (no entity points at those ids); cleared at the next start.
      Logger("ods.engine")->warn("deleting aggregation tiles below RAM: {}", s.message());
    }
  }
  return moved;
}

Status Engine::ReadColdTiles(uint32_t s, uint32_t template_id,
                             std::span<const shard::AggregationRead> reads,
                             std::span<const std::string_view> entities,
                             std::span<const uint32_t> indices, Micros now,
                             std::vector<shard::ColdTiles>& out) const {
  thread_local std::vector<shard::ColdTilesRef> refs;
  shard::TileLayouts layouts;  // not kept by the thread: a cached decode holds its own
  refs.clear();
  shards_[s]->ColdTilesOf(template_id, reads, entities, indices, now, refs, layouts);
  out.resize(refs.size());
  for (size_t k = 0; k < refs.size(); ++k) {
    const shard::ColdTilesRef& ref = refs[k];
    out[k].ref = ref;
    const TileCache::Key key{s, template_id, ref.blob_id};
    out[k].tiles = tile_cache_->Find(key);
    if (out[k].tiles != nullptr) continue;
    const std::string_view entity = entities[ref.index];
    ODS_ASSIGN_OR_RETURN(std::optional<std::string> blob,
                         tier_->ReadTiles(template_id, entity, ref.blob_id));
    if (!blob.has_value()) continue;  // moved on meanwhile: the shard asks again
    Result<std::shared_ptr<const shard::DecodedTiles>> decoded = shard::DecodeTiles(layouts, *blob);
    if (!decoded.ok()) {
      return Status(StatusCode::kDataLoss, "aggregation tiles below RAM of entity '" +
                                               QuoteForMessage(entity) + "' of event template " +
                                               CurrentCatalog().templates[template_id].config.name +
                                               ": " + std::string(decoded.status().message()));
    }
    tile_cache_->Insert(key, *decoded);
    out[k].tiles = std::move(*decoded);
  }
  return OkStatus();
}

}  // namespace ods::engine
