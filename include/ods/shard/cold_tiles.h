#pragma once

// Aggregation tiles below RAM (event_templates.NAME.tiles_ssd_after): what a shard hands the
// engine to store, what the engine hands back to read, and the stored form.
//
// An entity's tiles below RAM are one blob per entity: per layout of its template (by layout
// index), the rows SeriesGroup::SplitColdRows would split off, merged over every move so far
// (aggregate::ColdRows::MergeBlobs). Each move stores a new blob under a new id and only then
// lets the old one go, so a blob id names immutable bytes (safe to cache by id).

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ods/aggregate/aggregate.h"
#include "ods/common/clock.h"
#include "ods/common/status.h"

namespace ods::shard {

// The layouts of one template, by layout index, shared with the shards that own them: a decoded
// blob keeps its layouts alive however long a cache holds it.
using TileLayouts = std::vector<std::shared_ptr<const aggregate::GroupLayout>>;

// Tiles of one entity on their way below RAM (Shard::CollectTileMoves): the caller stores
// MergeTiles(layouts, <blob old_id>, moved, now) as blob new_id of (template_id, entity), then
// reports back with Shard::CommitTileMoves. The rows stay in RAM until then.
struct TileMove {
  uint32_t template_id = 0;
  std::string entity;
  uint64_t old_id = 0;  // the entity's blob below RAM now; 0: none
  uint64_t new_id = 0;
  Micros before = 0;  // the rows of tiles that end at or before this
  TileLayouts layouts;
  std::vector<std::string> moved;  // per layout: SeriesGroup::EncodeColdRows(before)
  // Set by the caller: the size of the blob it stored; 0 when the merge left no row (all past
  // every window), and then it stores nothing.
  uint64_t blob_bytes = 0;
};

// A blob below RAM that nothing reads any more: the caller deletes it.
struct TileGarbage {
  uint32_t template_id = 0;
  std::string entity;
  uint64_t blob_id = 0;
};

// An entity whose read needs its tiles below RAM (Shard::ColdTilesOf): entities[index], blob
// blob_id.
struct ColdTilesRef {
  uint32_t index = 0;
  uint64_t blob_id = 0;
};

// A blob decoded: rows[l] under layouts[l] (empty rows for a layout the blob has none of).
// Immutable once built; const use is thread-safe.
struct DecodedTiles {
  TileLayouts layouts;  // declared first: outlives the rows that borrow it
  std::vector<aggregate::ColdRows> rows;
  size_t blob_bytes = 0;
  size_t memory_bytes = 0;  // rows' MemoryBytes(), for a cache's budget
};

// Those tiles read back, for Shard::ReadOnline.
struct ColdTiles {
  ColdTilesRef ref;
  std::shared_ptr<const DecodedTiles> tiles;
};

// The blob of the rows of `older` (a blob below RAM; empty for none) and `moved` (per layout,
// SeriesGroup::EncodeColdRows), leaving out rows no window reads as of `now`. Errors as
// aggregate::ColdRows::MergeBlobs, and kDataLoss for a malformed `older`. O(bytes).
Result<std::string> MergeTiles(const TileLayouts& layouts, std::string_view older,
                               std::span<const std::string> moved, Micros now);

// Decodes a blob (MergeTiles) under `layouts`. A blob of fewer layouts than `layouts` (written
// before an aggregation was added) decodes with empty rows for the rest. Errors: kDataLoss
// malformed, kInvalidArgument for a blob of more layouts or another layout (as ColdRows::Decode).
Result<std::shared_ptr<const DecodedTiles>> DecodeTiles(const TileLayouts& layouts,
                                                        std::string_view blob);

}  // namespace ods::shard
