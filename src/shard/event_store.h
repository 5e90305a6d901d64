#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "entity_key.h"
#include "ods/aggregate/aggregate.h"
#include "ods/record/value.h"
#include "ods/sandbox/sandbox.h"
#include "ods/shard/shard.h"

namespace ods::shard {

// The event state of one shard: per template, per entity, the tiles of every aggregation of the
// template and the retained raw events; per template, the recently seen event ids.
//
// Thread-compatible: the owning Shard calls it under its lock only.
class Shard::EventStore {
 public:
  // `clock` (the shard's) times the Lua aggregators' wall-clock budgets.
  // `errors` (the shard's, outliving the store) counts the Lua aggregators' failed calls.
  EventStore(const Clock& clock, FunctionErrorTally& errors) : sandbox_(clock), errors_(errors) {}

  void AddTemplate(std::shared_ptr<const TemplateSpec> spec);
  Status PrepareAggregation(const AggregationSpec& spec);
  void DropPreparedAggregation(uint32_t aggregation_id);
  Backfill AddAggregation(std::shared_ptr<const AggregationSpec> spec, Micros now);
  Status PrepareReplacement(uint32_t aggregation_id, const AggregatorFunction& function);
  Backfill ReplaceAggregator(uint32_t aggregation_id, bool keep_state, Micros now);
  // As Shard::ApplyEvents for one event; on kFailed, `error` says why.
  EventOutcome Apply(const ShardEvent& event, Micros now, Status& error);
  // Cache hints for a coming Apply or read of `key` (no effect on state): PrefetchEntity loads
  // the entity map's slot; PrefetchTiles, issued once that slot is likely loaded, the entity's
  // newest tile rows. Pipelining a batch this way overlaps its cache misses.
  void PrefetchEntity(uint32_t template_id, std::string_view key) const;
  void PrefetchTiles(uint32_t template_id, std::string_view key) const;
  // Runs step(k) for k in [0, n) in order, first hinting the cache for the entity slot of step
  // k + 8 and the tiles of step k + 4; key_of(k) returns step k's {template id, entity key}.
  // Stops at the first step that returns false; returns whether every step ran and returned true.
  template <class KeyOf, class Step>
  bool Pipelined(size_t n, const KeyOf& key_of, const Step& step) const {
    constexpr size_t kSlotAhead = 8;
    constexpr size_t kTilesAhead = 4;
    for (size_t k = 0; k < n && k < kSlotAhead; ++k) {
      const auto [template_id, key] = key_of(k);
      PrefetchEntity(template_id, key);
    }
    for (size_t k = 0; k < n; ++k) {
      if (k + kSlotAhead < n) {
        const auto [template_id, key] = key_of(k + kSlotAhead);
        PrefetchEntity(template_id, key);
      }
      if (k + kTilesAhead < n) {
        const auto [template_id, key] = key_of(k + kTilesAhead);
        PrefetchTiles(template_id, key);
      }
      if (!step(k)) return false;
    }
    return true;
  }
  // As Shard::ReadOnline / ReadHistorical: false once a value exceeds `budget_bytes`.
  // ReadOnline changes no value but readies the answer caches of the groups it reads
  // (aggregate::SeriesGroup::EnableAnswerCache), counted in TrackedBytes().
  bool ReadOnline(uint32_t template_id, std::span<const AggregationRead> reads,
                  std::span<const std::string_view> entities, std::span<const uint32_t> indices,
                  Micros now, uint64_t& budget_bytes, Status& error,
                  std::span<const ColdTiles> cold);
  bool ReadHistorical(uint32_t template_id, std::span<const AggregationRead> reads,
                      std::span<const std::string_view> entities, std::span<const Micros> as_of,
                      std::span<const uint32_t> indices, uint64_t& budget_bytes, Status& error,
                      std::span<const ColdHistory> cold) const;

  // As the Shard methods of the same names (retained events below RAM).
  void ColdHistoryOf(uint32_t template_id, std::span<const std::string_view> entities,
                     std::span<const uint32_t> indices, std::vector<ColdHistoryRef>& out) const;
  void CollectHistoryMoves(Micros now, size_t max_visits, std::vector<HistoryMove>& out);
  void CommitHistoryMoves(std::span<const HistoryMove> moves, bool written);
  void TakeHistoryGarbage(std::vector<HistoryGarbage>& out) {
    out.insert(out.end(), std::make_move_iterator(garbage_.begin()),
               std::make_move_iterator(garbage_.end()));
    garbage_.clear();
  }
  void SetColdHistoryReader(ColdHistoryReader reader) { cold_reader_ = std::move(reader); }
  uint64_t cold_events() const { return cold_events_; }
  uint64_t cold_moved() const { return cold_moved_; }

  // As the Shard methods of the same names (aggregation tiles below RAM; event_tiles.cc).
  void ColdTilesOf(uint32_t template_id, std::span<const AggregationRead> reads,
                   std::span<const std::string_view> entities, std::span<const uint32_t> indices,
                   Micros now, std::vector<ColdTilesRef>& out, TileLayouts& layouts) const;
  void CollectTileMoves(Micros now, size_t max_visits, std::vector<TileMove>& out);
  void CommitTileMoves(std::span<const TileMove> moves, bool written);
  void TakeTileGarbage(std::vector<TileGarbage>& out) {
    out.insert(out.end(), std::make_move_iterator(tile_garbage_.begin()),
               std::make_move_iterator(tile_garbage_.end()));
    tile_garbage_.clear();
  }
  uint64_t cold_tile_entities() const { return cold_tile_entities_; }
  uint64_t cold_tile_bytes() const { return cold_tile_bytes_; }
  uint64_t tile_moves() const { return tile_moves_; }

  // Visits up to `max_visits` entities from where the previous call stopped (wrapping around
  // over the templates) and removes those whose newest event is older than every window and the
  // retention of their template (nothing left to answer from). Returns how many it removed.
  size_t SweepIdle(Micros now, size_t max_visits);

  uint64_t entities() const;
  // Estimated heap bytes of tiles, retained events and event ids, walked: O(entities).
  uint64_t MemoryBytes() const;
  // The same figure kept up to date by every change: O(1).
  uint64_t TrackedBytes() const { return static_cast<uint64_t>(bytes_); }

 private:
  // One retained event: its time and the template's values (absent ones disengaged).
  using StoredEvent = HistoryEvent;
  // The tiles of the template's user-defined aggregations, parallel to Template::customs (may
  // be shorter: a series not yet touched is empty).
  // Inline for up to two (one heap block with the entity's pointer to it).
  using CustomTiles = absl::InlinedVector<aggregate::CustomSeries, 2>;
  struct Entity {
    // Parallel to Template::layouts; inline for the usual single layout (no pointer chase).
    absl::InlinedVector<aggregate::SeriesGroup, 1> groups;
    std::unique_ptr<CustomTiles> custom;  // null until a user-defined aggregation takes an event
    std::vector<StoredEvent> history;  // arrival order; [history_begin, end) is live
    size_t history_begin = 0;
    Micros newest_event_time = 0;
  };
  // Where an aggregation's tiles live: member `member` of layouts[layout], or for a
  // user-defined aggregation (layout == kCustomLayout) customs[member].
  struct Placement {
    uint32_t layout = 0;
    uint32_t member = 0;
  };
  static constexpr uint32_t kCustomLayout = UINT32_MAX;

  // A Lua aggregator loaded into this store's sandbox, as an aggregate::CustomFn. Calls run under
  // the shard lock (the sandbox is thread-compatible).
  class LuaAggregator final : public aggregate::CustomFn {
   public:
    LuaAggregator(sandbox::Sandbox& sandbox, FunctionErrorTally& errors, sandbox::FunctionId id,
                  const AggregationSpec& spec, const TemplateSpec& template_spec)
        : sandbox_(sandbox), errors_(errors), id_(id), spec_(spec), template_(template_spec) {}
    Status Update(std::string& state, Micros event_time,
                  std::span<const record::Value* const> values) override;
    Status Finish(std::span<const std::string_view> tiles, aggregate::Output& out) override;
    sandbox::FunctionId id() const { return id_; }
    void set_id(sandbox::FunctionId id) { id_ = id; }

   private:
    // Counts the failure, and returns "aggregation 'NAME': " + the sandbox's message.
    Status Annotate(const Status& status) const;
    sandbox::Sandbox& sandbox_;
    FunctionErrorTally& errors_;
    sandbox::FunctionId id_;
    const AggregationSpec& spec_;     // owned by the Template's aggregations
    const TemplateSpec& template_;
  };
  // An entity's events below RAM: seqs [first_seq, last_seq] when events > 0 (other seqs in
  // that range belong to other entities), plus `pending` more (seqs from pending_seq) written
  // and not yet committed.
  struct ColdRange {
    uint64_t first_seq = 0;
    uint64_t last_seq = 0;
    uint64_t pending_seq = 0;
    uint32_t events = 0;
    uint32_t pending = 0;
    Micros newest = 0;  // newest event time of the committed events
  };
  // An entity's aggregation tiles below RAM: blob `id` (0: none yet) holds every row of tiles
  // that end at or before `boundary`; a move to blob `pending` is in flight (0: none).
  struct TileRange {
    uint64_t id = 0;
    uint64_t pending = 0;
    Micros boundary = std::numeric_limits<Micros>::min();
    uint64_t blob_bytes = 0;
  };
  struct Custom {
    std::shared_ptr<const AggregationSpec> spec;
    std::unique_ptr<LuaAggregator> fn;
  };
  struct Template {
    std::shared_ptr<const TemplateSpec> spec;
    std::vector<std::shared_ptr<const AggregationSpec>> aggregations;
    std::vector<Placement> placements;  // parallel to aggregations
    // The aggregations known before the first entity share layouts[0]; one registered while
    // entities exist gets a layout of its own (existing groups cannot change shape). Declared
    // before `entities`, whose groups borrow them.
    TileLayouts layouts;
    std::vector<Custom> customs;  // the user-defined aggregations, in the order added
    absl::flat_hash_map<EntityKey, Entity, EntityKeyHash, EntityKeyEq> entities;
    // Event ids (keyed by entity key + id) and when they arrived; expired in arrival order.
    absl::flat_hash_map<std::string, Micros> seen_ids;
    std::vector<std::pair<Micros, std::string>> id_order;
    size_t id_order_begin = 0;
    // Entities with retained events below RAM (or a move of some in flight): only for a
    // template with history_ssd_after. Such an entity's RAM history is not trimmed by
    // retention: its events move below RAM, which the move sweep trims as a whole.
    absl::flat_hash_map<EntityKey, ColdRange, EntityKeyHash, EntityKeyEq> cold;
    // Entities with tiles below RAM (or a move of some in flight): only for a template with
    // tiles_ssd_after.
    absl::flat_hash_map<EntityKey, TileRange, EntityKeyHash, EntityKeyEq> cold_tiles;
  };

  // Drops history older than the retention and event ids older than the dedup window; each
  // returns the change of MemoryBytes() it made.
  static int64_t TrimHistory(const TemplateSpec& spec, Entity& entity, Micros now);
  static int64_t ForgetOldIds(Template& t, Micros now);

  // Parts of MemoryBytes(). A map slot is its key and value plus one control byte.
  static constexpr size_t kEntitySlotBytes = sizeof(EntityKey) + sizeof(Entity) + 1;
  static constexpr size_t kSeenIdSlotBytes = sizeof(std::string) + sizeof(Micros) + 1;
  static constexpr size_t kColdSlotBytes = sizeof(EntityKey) + sizeof(ColdRange) + 1;
  static constexpr size_t kColdTilesSlotBytes = sizeof(EntityKey) + sizeof(TileRange) + 1;
  static size_t StoredEventBytes(const StoredEvent& e);
  static size_t HistoryBytes(const std::vector<StoredEvent>& history);
  static size_t IdOrderBytes(const std::vector<std::pair<Micros, std::string>>& order);
  static size_t EntityBytes(const EntityKey& key, const Entity& entity);

  // The entity's events below RAM (read through cold_reader_) into `out`, replaced; empty when
  // it has none. A read error leaves them out; returns how many were expected then, else 0.
  uint64_t LoadCold(const Template& t, const EntityKey& key, std::vector<StoredEvent>& out) const;
  // Calls fn(event) for `cold` then the live RAM history of `entity`, in arrival order.
  template <class Fn>
  static void ForEachRetained(const std::vector<StoredEvent>* cold, const Entity& entity,
                              const Fn& fn) {
    if (cold != nullptr) {
      for (const StoredEvent& e : *cold) fn(e);
    }
    for (size_t i = entity.history_begin; i < entity.history.size(); ++i) fn(entity.history[i]);
  }
  // Forgets the events below RAM of `key` (its entity is going): garbage up to every seq
  // given so far, in-flight moves included.
  void DropCold(Template& t, const EntityKey& key);
  // Forgets the tiles below RAM of `key` (its entity is going): its blob, and one in flight,
  // become garbage.
  void DropColdTiles(Template& t, const EntityKey& key);
  // The first instant any window of a built-in aggregation of `t` covers as of `now`: tiles
  // below RAM that end at or before it are read by nothing. O(aggregations).
  static Micros EarliestWindowStart(const Template& t, Micros now);

  // Rebuilds layouts[0] from the built-in aggregations (only while no entity borrows it).
  static void LayOutBuiltIns(Template& t);
  // Folding an event into the user-defined aggregations of `t` (all, or only customs[only] for
  // a backfill), in two steps so that a failing Lua call changes nothing: StageCustom runs the
  // updates into staged_ (`entity` null: not created yet) and returns the first failure;
  // CommitCustom stores them and returns the change of bytes.
  Status StageCustom(Template& t, const Entity* entity, Micros event_time,
                     std::span<const record::Value* const> values, Micros now,
                     size_t only = SIZE_MAX);
  int64_t CommitCustom(Template& t, Entity& entity, Micros now, size_t only = SIZE_MAX);
  // Rebuilds customs[member]'s tiles of every entity of `t` from its retained events (a new
  // user-defined aggregation, or a new version of its function); events the function fails on
  // are left out and counted.
  Backfill RebuildCustom(Template& t, uint32_t member, Micros now);

  // Lua aggregators of every template, each function in its own Lua state; guarded by the
  // shard lock like everything here.
  sandbox::Sandbox sandbox_;
  FunctionErrorTally& errors_;
  // Loaded by PrepareAggregation (PrepareReplacement), taken by AddAggregation
  // (ReplaceAggregator): aggregation id -> function.
  absl::flat_hash_map<uint32_t, sandbox::FunctionId> prepared_;
  std::vector<aggregate::CustomSeries::Staged> staged_;  // scratch of FoldCustom
  std::vector<std::unique_ptr<Template>> templates_;  // by template id
  // By aggregation id: {template id, position in that template's aggregations}.
  std::vector<std::pair<uint32_t, uint32_t>> aggregation_slots_;
  std::string id_scratch_;
  int64_t bytes_ = 0;  // == MemoryBytes(), kept by every change
  // Where SweepIdle resumes: a template, and the key of the entity visited next (empty: the
  // template's first). A key erased in between restarts that template's walk.
  size_t sweep_template_ = 0;
  std::string sweep_resume_key_;
  // Retained events below RAM: the next seq to give (shard-wide, so an entity that goes and
  // comes back never reuses one), events below RAM now and moved since start, ranges to
  // delete, and where CollectHistoryMoves resumes (as the idle sweep's cursor).
  uint64_t next_cold_seq_ = 1;
  uint64_t cold_events_ = 0;
  uint64_t cold_moved_ = 0;
  std::vector<HistoryGarbage> garbage_;
  ColdHistoryReader cold_reader_;
  size_t move_template_ = 0;
  std::string move_resume_key_;
  // Aggregation tiles below RAM: the next blob id (shard-wide, never reused), figures, blobs to
  // delete, and where CollectTileMoves resumes.
  uint64_t next_tiles_id_ = 1;
  uint64_t cold_tile_entities_ = 0;
  uint64_t cold_tile_bytes_ = 0;
  uint64_t tile_moves_ = 0;
  std::vector<TileGarbage> tile_garbage_;
  size_t tiles_template_ = 0;
  std::string tiles_resume_key_;
};

}  // namespace ods::shard
