// Aggregation tiles below RAM (event_templates.NAME.tiles_ssd_after): which entities' rows move,
// the commit of a move, and which reads need the rows back. See cold_tiles.h for the protocol.
#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "event_store.h"
#include "ods/common/check.h"

namespace ods::shard {
namespace {

absl::string_view AsAbsl(std::string_view s) { return {s.data(), s.size()}; }

// Encoded bytes one CollectTileMoves call gathers at most (the commit re-encodes as many): what
// bounds its hold of the shard lock when many entities have a lot to move (the first sweeps
// after tiles_ssd_after is set on a template with long windows), besides its visits.
constexpr size_t kMaxMoveBytesPerCall = 256 << 10;

}  // namespace

Micros Shard::EventStore::EarliestWindowStart(const Template& t, Micros now) {
  Micros earliest = std::numeric_limits<Micros>::max();
  for (const auto& agg : t.aggregations) {
    if (agg->function != nullptr) continue;
    for (size_t w = 0; w < agg->spec.windows.size(); ++w) {
      earliest = std::min(earliest, aggregate::WindowStart(agg->spec, w, now));
    }
  }
  return earliest;
}

void Shard::EventStore::ColdTilesOf(uint32_t template_id, std::span<const AggregationRead> reads,
                                    std::span<const std::string_view> entities,
                                    std::span<const uint32_t> indices, Micros now,
                                    std::vector<ColdTilesRef>& out, TileLayouts& layouts) const {
  ODS_CHECK(template_id < templates_.size());
  const Template& t = *templates_[template_id];
  layouts = t.layouts;
  if (t.cold_tiles.empty()) return;
  // As ReadOnline decides which entities need them.
  Micros reach = std::numeric_limits<Micros>::max();
  for (const AggregationRead& r : reads) {
    const AggregationSpec& agg = *t.aggregations[aggregation_slots_[r.aggregation_id].second];
    if (agg.function == nullptr)
      reach = std::min(reach, aggregate::WindowStart(agg.spec, r.window, now));
  }
  for (uint32_t i : indices) {
    auto c = t.cold_tiles.find(AsAbsl(entities[i]));
    if (c == t.cold_tiles.end() || c->second.id == 0 || reach >= c->second.boundary) continue;
    out.push_back({i, c->second.id});
  }
}

void Shard::EventStore::DropColdTiles(Template& t, const EntityKey& key) {
  auto c = t.cold_tiles.find(key);
  if (c == t.cold_tiles.end()) return;
  const TileRange& range = c->second;
  if (range.id != 0) {
    tile_garbage_.push_back({t.spec->id, std::string(key.view()), range.id});
    --cold_tile_entities_;
    cold_tile_bytes_ -= range.blob_bytes;
  }
  // Written or not: the move's commit finds the entry gone and leaves the blob to this.
  if (range.pending != 0)
    tile_garbage_.push_back({t.spec->id, std::string(key.view()), range.pending});
  bytes_ -= static_cast<int64_t>(key.heap_bytes());
  t.cold_tiles.erase(c);
}

void Shard::EventStore::CollectTileMoves(Micros now, size_t max_visits,
                                         std::vector<TileMove>& out) {
  size_t visits = 0;
  size_t bytes = 0;
  for (size_t entered = 0; entered <= templates_.size() && visits < max_visits &&
                           bytes < kMaxMoveBytesPerCall && !templates_.empty();
       ++entered) {
    if (tiles_template_ >= templates_.size()) tiles_template_ = 0;
    Template& t = *templates_[tiles_template_];
    if (t.spec->tiles_ssd_after_micros <= 0 || t.layouts.empty()) {
      tiles_resume_key_.clear();
      ++tiles_template_;
      continue;
    }
    const Micros before = now - t.spec->tiles_ssd_after_micros;
    const Micros earliest = EarliestWindowStart(t, now);
    auto it = t.entities.begin();
    if (!tiles_resume_key_.empty()) {
      it = t.entities.find(AsAbsl(tiles_resume_key_));
      if (it == t.entities.end()) it = t.entities.begin();
    }
    for (; it != t.entities.end() && visits < max_visits && bytes < kMaxMoveBytesPerCall;
         ++it, ++visits) {
      auto c = t.cold_tiles.find(it->first);
      if (c != t.cold_tiles.end()) {
        TileRange& range = c->second;
        if (range.pending != 0) continue;  // one move per entity at a time
        if (range.id != 0 && range.boundary <= earliest) {
          // No window reaches below RAM any more.
          tile_garbage_.push_back({t.spec->id, std::string(it->first.view()), range.id});
          --cold_tile_entities_;
          cold_tile_bytes_ -= range.blob_bytes;
          range = TileRange{};
        }
      }
      TileMove move;
      bool any = false;
      move.moved.resize(it->second.groups.size());
      for (size_t l = 0; l < it->second.groups.size(); ++l) {
        it->second.groups[l].EncodeColdRows(before, move.moved[l]);
        any = any || !move.moved[l].empty();
        bytes += move.moved[l].size();
      }
      if (!any) {
        if (c != t.cold_tiles.end() && c->second.id == 0) {
          bytes_ -= static_cast<int64_t>(it->first.heap_bytes());
          t.cold_tiles.erase(c);
        }
        continue;
      }
      if (c == t.cold_tiles.end()) {
        const size_t slots = t.cold_tiles.capacity();
        c = t.cold_tiles.try_emplace(it->first).first;
        bytes_ += static_cast<int64_t>((t.cold_tiles.capacity() - slots) * kColdTilesSlotBytes +
                                       it->first.heap_bytes());
      }
      move.template_id = t.spec->id;
      move.entity.assign(it->first.view());
      move.old_id = c->second.id;
      move.new_id = next_tiles_id_++;
      move.before = before;
      move.layouts = t.layouts;
      c->second.pending = move.new_id;
      out.push_back(std::move(move));
    }
    if (it != t.entities.end()) {
      tiles_resume_key_.assign(it->first.view());
      break;
    }
    tiles_resume_key_.clear();
    ++tiles_template_;
  }
}

void Shard::EventStore::CommitTileMoves(std::span<const TileMove> moves, bool written) {
  std::string again;
  for (const TileMove& move : moves) {
    Template& t = *templates_[move.template_id];
    auto c = t.cold_tiles.find(AsAbsl(move.entity));
    // Not ours any more: the entity went (DropColdTiles made the blob garbage).
    if (c == t.cold_tiles.end() || c->second.pending != move.new_id) continue;
    TileRange& range = c->second;
    range.pending = 0;
    auto e = t.entities.find(AsAbsl(move.entity));
    ODS_CHECK(e != t.entities.end());  // an entity's cold_tiles entry goes with it
    Entity& entity = e->second;
    // The rows stored must be the rows dropped: Add may have let some age out meanwhile.
    bool same = written && entity.groups.size() >= move.moved.size();
    for (size_t l = 0; same && l < entity.groups.size(); ++l) {
      entity.groups[l].EncodeColdRows(move.before, again);
      same =
          again == (l < move.moved.size() ? std::string_view(move.moved[l]) : std::string_view());
    }
    if (!same) {
      if (written) tile_garbage_.push_back({move.template_id, move.entity, move.new_id});
      if (range.id == 0) {
        bytes_ -= static_cast<int64_t>(c->first.heap_bytes());
        t.cold_tiles.erase(c);
      }
      continue;
    }
    for (aggregate::SeriesGroup& group : entity.groups) bytes_ += group.DropColdRows(move.before);
    if (range.id != 0) {
      tile_garbage_.push_back({move.template_id, move.entity, range.id});
      cold_tile_bytes_ -= range.blob_bytes;
    } else {
      ++cold_tile_entities_;
    }
    if (move.blob_bytes == 0) {
      // Every row (moved or below RAM) was past every window: nothing stored, nothing to keep.
      --cold_tile_entities_;
      bytes_ -= static_cast<int64_t>(c->first.heap_bytes());
      t.cold_tiles.erase(c);
      ++tile_moves_;
      continue;
    }
    range.id = move.new_id;
    range.boundary = std::max(range.boundary, move.before);
    range.blob_bytes = move.blob_bytes;
    cold_tile_bytes_ += move.blob_bytes;
    ++tile_moves_;
  }
}

}  // namespace ods::shard
