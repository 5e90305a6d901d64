#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ods/aggregate/aggregate.h"
#include "ods/common/clock.h"
#include "ods/common/mutex.h"
#include "ods/common/predicate.h"
#include "ods/common/storage_tier.h"
#include "ods/record/schema.h"
#include "ods/record/value.h"
#include "ods/sandbox/sandbox.h"
#include "ods/shard/cold_tiles.h"

namespace ods::shard {

// A record to write under `key`. Borrowed for the duration of the call.
struct KeyedRecord {
  std::string_view key;
  const record::Record* record = nullptr;
};

// An event template as a shard sees it. Immutable; shared by the engine's catalog and shards.
struct TemplateSpec {
  uint32_t id = 0;                          // dense: templates are 0..N-1 in definition order
  uint32_t field_count = 0;                 // values per event (the template's declared fields)
  Micros history_retention_micros = 0;      // raw events kept this long by event time; 0 none
  Micros dedup_window_micros = 0;           // event ids remembered this long; 0 = no dedup
  // Retained events whose event time is this long ago move below RAM (CollectHistoryMoves);
  // 0 = all stay in RAM.
  Micros history_ssd_after_micros = 0;
  // Tiles of built-in aggregations that end this long ago move below RAM (CollectTileMoves);
  // 0 = all stay in RAM. Longer than the template's allowed lateness: no accepted event lands in
  // a tile below RAM.
  Micros tiles_ssd_after_micros = 0;
  // The declared field names, by field index: what a Lua aggregator without a field sees.
  std::vector<std::string> field_names;
};

// The Lua aggregator of a user-defined aggregation: one registered version of a function of
// kind aggregator (init, update, merge, finalize). Immutable.
struct AggregatorFunction {
  std::string name;
  uint32_t version = 0;
  std::string source;
  sandbox::Limits limits;
};

// An aggregation as a shard runs it. Immutable; shared by the engine's catalog and shards.
struct AggregationSpec {
  uint32_t id = 0;           // dense: aggregations are 0..N-1 in definition order
  uint32_t template_id = 0;
  int32_t field = -1;        // index into an event's values; -1 for count (and whole-event Lua)
  aggregate::Spec spec;      // a Lua aggregator's: windows and tiles only (fn kCount)
  std::string name;          // for error messages
  // Set: a user-defined aggregation run by this Lua aggregator (update gets the field's value,
  // or with field -1 a table of the whole event). Null: the built-in spec.fn.
  std::shared_ptr<const AggregatorFunction> function;
};

// A validated event routed to this shard. Borrowed for the duration of the call.
struct ShardEvent {
  uint32_t template_id = 0;
  std::string_view key;
  Micros event_time = 0;
  // The template's field_count values in declaration order; nullptr = absent from the event.
  const record::Value* const* values = nullptr;
  std::string_view event_id;  // empty = no de-duplication
};

// kFailed: a Lua aggregator of the template failed on the event; nothing was changed.
enum class EventOutcome : uint8_t { kApplied, kDuplicate, kFailed };

// One aggregation window to read for many entities. Arrays are indexed by request position and
// written only at the positions the call is given.
struct AggregationRead {
  uint32_t aggregation_id = 0;
  uint32_t window = 0;                  // index into the aggregation's spec.windows
  aggregate::Output* values = nullptr;
  Micros* event_times = nullptr;  // the entity's newest event (at or before the as-of time)
  uint8_t* found = nullptr;       // 1 if the entity had any event (at or before the as-of time)
};

// A retained event: its time and the template's values by field index (absent: disengaged).
struct HistoryEvent {
  Micros event_time = 0;
  std::vector<std::optional<record::Value>> values;
};

// Retained events of one entity on their way below RAM (Shard::CollectHistoryMoves): the caller
// stores encoded[k] as event first_seq + k of (template_id, entity), then reports back with
// Shard::CommitHistoryMoves. Events are an arrival-order prefix of the entity's RAM history.
struct HistoryMove {
  uint32_t template_id = 0;
  std::string entity;
  uint64_t first_seq = 0;
  std::vector<std::string> encoded;  // record::EncodeRow(event_time, values), arrival order
};

// Events below RAM that nothing reads any more: the caller deletes every event of
// (template_id, entity) with seq < seq_end.
struct HistoryGarbage {
  uint32_t template_id = 0;
  std::string entity;
  uint64_t seq_end = 0;
};

// Where the events below RAM of entities[index] are (Shard::ColdHistoryOf): seqs in
// [first_seq, last_seq] of (template, entity), older in arrival than its RAM history.
struct ColdHistoryRef {
  uint32_t index = 0;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
};

// Those events read back, for Shard::ReadHistorical.
struct ColdHistory {
  ColdHistoryRef ref;
  std::vector<HistoryEvent> events;  // arrival order
};

// Reads back the events below RAM of (template_id, entity) with seq in [first_seq, last_seq]
// into `out` (replaced, arrival order). Set by the engine; called under the shard lock, by
// backfills only (which hold the lock for their whole replay anyway).
using ColdHistoryReader = std::function<Status(uint32_t template_id, std::string_view entity,
                                               uint64_t first_seq, uint64_t last_seq,
                                               std::vector<HistoryEvent>& out)>;

// A procedure to run on one record of this shard (Shard::Execute). Borrowed for the call.
struct ProcedureCall {
  uint32_t table = 0;
  std::string_view key;
  sandbox::FunctionId function;         // loaded into this shard by LoadFunction
  std::string_view entry = "execute";   // the global Lua function to call
  std::span<const record::Field> args;  // the call's named arguments
  std::string_view label;               // "function NAME vVERSION": starts errors found after Lua
  uint64_t max_record_bytes = 0;        // limits.max_record_bytes for a new record; 0 = none
  // The table's writes go to the durable tier, which a procedure's write does not reach yet: a
  // new record is refused (kFailedPrecondition) and the procedure may only read.
  bool read_only = false;
};

// Failed calls of one sandboxed function (Shard::FunctionErrors), by sandbox::ErrorKind.
struct FunctionErrorCount {
  std::string function;                                      // the function's name
  std::array<uint64_t, sandbox::kErrorKindCount> by_kind{};  // indexed by sandbox::ErrorKind
};

// Counts failed calls of sandboxed functions by name and kind. Thread-safe: Count takes a small
// lock of its own, on error paths only (a successful call costs nothing).
class FunctionErrorTally {
 public:
  void Count(std::string_view function, sandbox::ErrorKind kind) ODS_EXCLUDES(mu_);
  // Every function with a failed call so far, sorted by name. O(functions).
  std::vector<FunctionErrorCount> Snapshot() const ODS_EXCLUDES(mu_);

 private:
  mutable Mutex mu_;
  std::map<std::string, std::array<uint64_t, sandbox::kErrorKindCount>, std::less<>> counts_
      ODS_GUARDED_BY(mu_);
};

// What Shard::Execute did to one record.
struct ProcedureOutcome {
  // OK, or why the record was left unchanged (codes in Shard::Execute).
  Status status;
  // The procedure's result (nullopt for nil, and on error).
  std::optional<record::Value> value;
  // True if the procedure returned a new record and it was stored, with `version`.
  bool written = false;
  uint64_t version = 0;
  // True when the error is a spent instruction, memory or wall-clock budget of the function.
  bool budget_exhausted = false;
};

// --- Tiering (docs/architecture.md, "Tiering") ---

// One rule of a table's tiering (config::TierRuleConfig): records meeting every set condition
// belong in `to`. Immutable.
struct TierRule {
  StorageTier to = StorageTier::kRam;
  bool transient = false;         // RAM only, not durable (to is kRam)
  Micros idle_for_micros = 0;     // 0 = no condition
  Micros age_micros = 0;          // by event time; 0 = no condition
  std::optional<Predicate> field;  // unset = no condition
};

enum class PromotePolicy : uint8_t { kOnAccess, kAfterHits, kNever };

// How one table tiers. Immutable; shared by the engine and shards.
struct TieringPolicy {
  std::vector<TierRule> rules;  // first match wins; no match = RAM
  PromotePolicy promote = PromotePolicy::kOnAccess;
  uint32_t promote_after_hits = 1;  // kAfterHits: reads below RAM that promote
  // True if some rule moves records to `tier`.
  bool Targets(StorageTier tier) const;
  // True if some rule is transient.
  bool HasTransient() const;
};

// What the rules decide from, besides the record's fields.
struct TierFacts {
  Micros now = 0;
  Micros event_time = 0;   // the record's; 0 = unknown (age 0)
  Micros last_access = 0;  // last read or write (1 s resolution)
};

// The tier `policy` puts a record in: the `to` of the first rule whose conditions all hold, RAM
// if none does. nullopt when a field predicate decides and `record` is null (the caller reads
// the record and asks again). `pinned`, when given, is set to whether a rule with `to: ram`
// matched (the record must stay in RAM even over budget). Pure; O(rules + predicate size).
std::optional<StorageTier> DecideTier(const TieringPolicy& policy, const TierFacts& facts,
                                      const record::Record* record, bool* pinned = nullptr);

// True if a transient rule of `policy` holds for `record` (its age and fields; transient rules
// have no idle_for): the record stays in RAM only and is not written to the durable tier.
// DecideTier pins such records whatever the order of the rules. Pure.
bool IsTransient(const TieringPolicy& policy, Micros now, const record::Record& record);

// A record below RAM that Shard::Get found: the caller reads it from `tier` and, when `promote`
// (the table's promote policy says this read brings it back), hands it to Shard::Promote.
struct BelowRam {
  uint32_t index = 0;  // request position
  StorageTier tier = StorageTier::kSsd;
  uint64_t version = 0;
  bool promote = false;
};

// Where a record of this shard is (Shard::Locate).
struct Location {
  StorageTier tier = StorageTier::kRam;
  uint64_t version = 0;
  Micros expire_at_micros = 0;  // 0 = never
  Micros event_time_micros = 0;
  uint32_t bytes = 0;  // the record's encoded size
};

// A move the tier sweep proposes (Shard::CollectTierMoves); the engine carries it out.
struct TierMove {
  uint32_t table = 0;
  std::string key;
  uint64_t version = 0;
  StorageTier from = StorageTier::kRam;
  StorageTier to = StorageTier::kSsd;
  Micros expire_at_micros = 0;
  Micros event_time_micros = 0;
  Micros last_access_micros = 0;
  // A record below RAM whose rules test its fields: the caller reads it and decides with
  // DecideTier before moving it (`to` is then only where it might go).
  bool needs_record = false;
  // The record, for a move out of RAM to the backing store (decoded under the lock).
  std::optional<record::Record> record;
};

// One table's tier figures in one shard (Shard::TableStats), indexed by StorageTier.
struct TableTierStats {
  std::array<uint64_t, 3> records{};    // live and expired-but-unswept, by tier
  // RAM: accounted bytes of the table's RAM entries (records and below-RAM entries); SSD and
  // backing: the encoded size of the records there (about what they take before compression).
  std::array<uint64_t, 3> bytes{};
  std::array<uint64_t, 3> reads{};      // Get hits served by each tier
  std::array<uint64_t, 3> demotions{};  // moves into each tier (RAM: none)
  uint64_t promotions = 0;              // reads that brought a record back into RAM
};

// Counters of one shard, summed by the engine for server stats.
struct ShardStats {
  uint64_t records = 0;       // live entries (expired-but-unswept included)
  uint64_t memory_bytes = 0;  // keys + encoded records + per-entry overhead estimate
  uint64_t gets = 0;
  uint64_t get_hits = 0;
  uint64_t puts = 0;
  uint64_t deletes = 0;
  uint64_t expired = 0;  // entries removed because their TTL passed
  uint64_t events_applied = 0;
  uint64_t events_duplicate = 0;
  uint64_t events_failed = 0;      // refused because a Lua aggregator failed on them
  uint64_t entities = 0;           // (template, entity) event states
  uint64_t event_state_bytes = 0;  // tiles, retained events and event ids (kept up to date)
  uint64_t history_events_ssd = 0;  // retained events below RAM (CollectHistoryMoves)
  uint64_t history_moved = 0;       // retained events moved below RAM since start
  uint64_t tiles_entities_ssd = 0;  // entities with aggregation tiles below RAM
  uint64_t tiles_bytes_ssd = 0;     // bytes of their blobs
  uint64_t tiles_moved = 0;         // tile moves (one entity each) since start
  // Tiering: records below RAM (each keeps a small entry in RAM, counted in memory_bytes).
  uint64_t records_ssd = 0;
  uint64_t records_backing = 0;
  uint64_t reads_ssd = 0;       // Get hits found below RAM, by tier
  uint64_t reads_backing = 0;
  uint64_t promotions = 0;      // records brought back into RAM by reads
  uint64_t demotions_ssd = 0;   // moves into the SSD tier
  uint64_t demotions_backing = 0;
};

// The records of every table for one slice of the key space.
//
// Thread-safe. Every public method holds this shard's own lock for the whole call, and only this
// shard's: a call costs microseconds (hashing, a map probe, encode/decode) and does no I/O, so
// callers on other shards never wait. Batch methods take the lock once for all their keys.
//
// Batch methods receive the caller's whole request (`keys`/`items`) plus `indices`, the positions
// that belong to this shard, and write results at those same positions, so the engine can gather
// results from all shards without copying.
//
// Cache-line aligned, and the lock sits with the counters it guards, so that two threads working
// on two different shards never write to the same cache line.
class alignas(64) Shard {
 public:
  // `tables` is the catalog: table ids are indices into it. `max_memory_bytes` 0 = unlimited.
  // `tiering[t]`, when given and non-null, marks table t as one that may tier (its RAM entries
  // carry an access time, 4 bytes each) and is its policy (no rules: none yet).
  Shard(uint32_t id, std::vector<std::shared_ptr<const record::TableSchema>> tables,
        const Clock& clock, uint64_t max_memory_bytes,
        std::vector<std::shared_ptr<const TieringPolicy>> tiering = {});
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  uint32_t id() const { return id_; }

  // True when adding `incoming_bytes` would take the shard past its memory budget, which
  // records and event state share. Lock-free (relaxed reads); used to reject a whole batch
  // before any shard is written.
  bool WouldExceedMemory(uint64_t incoming_bytes) const;
  // True when the shard is at or past its memory budget (events to it are then refused: an
  // event's growth is known only once applied, so a shard under budget may overshoot by one
  // batch). Lock-free.
  bool AtMemoryBudget() const { return WouldExceedMemory(1); }

  // Most bytes a Put of `record` under a new `key` adds to memory_bytes (an overwrite adds
  // less), counted the way the shard counts them: entry overhead, key, header and fields. For
  // budget checks before anything is written. Assumes field ids below 16384 (see
  // record::EncodedFieldBytes). O(fields); no allocation. Thread-safe.
  static uint64_t MaxEntryBytes(std::string_view key, const record::Record& record);

  // Most distinct field names one table may have in one shard. Bounds the per-table field
  // dictionary a free-form table grows as new names arrive (at most ~0.6 MiB per table and
  // shard; not counted in memory_bytes, which counts records), and keeps field ids within
  // 2-byte varints. Typed tables have their declared fields only.
  static constexpr size_t kMaxFieldNames = 4096;

  // False if writing items[i] for i in `indices` would take `table` past kMaxFieldNames here.
  // Checked by the engine before any shard is written; concurrent Puts may overshoot by at most
  // one batch each. O(fields of the items).
  bool HasRoomForFieldNames(uint32_t table, std::span<const KeyedRecord> items,
                            std::span<const uint32_t> indices);

  // Upserts items[i] for each i in `indices` (validated by the caller) and stores each assigned
  // version in versions[i]. Sets each record's expiry from the table TTL and the clock.
  void Put(uint32_t table, std::span<const KeyedRecord> items, std::span<const uint32_t> indices,
           std::span<uint64_t> versions);

  // Inserts `record` under `key` as Put does (new version, expiry from the table TTL), only if
  // the key holds no live record in RAM or below it; returns the version, or 0 when the key was
  // taken (then nothing changes). For filling a cache without overwriting a newer write.
  uint64_t PutIfAbsent(uint32_t table, std::string_view key, const record::Record& record);

  // Reserves `count` consecutive versions and returns the first, for a write that goes to the
  // durable tier before it is applied here (PutReserved). Versions stay strictly increasing.
  uint64_t ReserveVersions(uint32_t count);

  // As Put, but the versions come from the caller (versions[i], from ReserveVersions) and so
  // does the expiry (`expire_at_micros`, 0 = never), so that RAM holds exactly what the durable
  // tier was given.
  void PutReserved(uint32_t table, std::span<const KeyedRecord> items,
                   std::span<const uint32_t> indices, std::span<const uint64_t> versions,
                   Micros expire_at_micros);

  // Loads a record recovered from the durable tier under `key`, with its own version and
  // `expire_at_micros`, and raises the version counter past it. Skips (returns false) a record
  // already expired by the clock. Does not check the memory budget: what was stored is loaded.
  bool Restore(uint32_t table, std::string_view key, const record::Record& record,
               Micros expire_at_micros);

  // For each i in `indices`: out[i] = the record under keys[i], limited to `fields` when
  // non-empty (missing fields are omitted), or nullopt if absent or expired. Each hit's encoded
  // size is taken from `budget_bytes`; returns false, without decoding that record or any after
  // it, when the budget would go below zero. A live record below RAM leaves out[i] nullopt and
  // is appended to `below_ram` (for the caller to read from its tier; its read counts as an
  // access), or counts as absent when `below_ram` is null.
  bool Get(uint32_t table, std::span<const std::string_view> keys,
           std::span<const uint32_t> indices, std::span<const std::string_view> fields,
           std::span<std::optional<record::Record>> out, uint64_t& budget_bytes,
           std::vector<BelowRam>* below_ram = nullptr);

  // For each i in `indices`: removes keys[i]; deleted[i] = 1 if a live record was removed.
  void Delete(uint32_t table, std::span<const std::string_view> keys,
              std::span<const uint32_t> indices, std::span<uint8_t> deleted);

  // Appends to `out` the up-to-`limit` smallest live keys of `table` that start with `prefix` and
  // sort after `start_after` (byte order). O(records of the table in this shard).
  void CollectKeys(uint32_t table, std::string_view prefix, std::string_view start_after,
                   size_t limit, std::vector<std::string>& out);

  // Visits up to `max_visits` records of the tables that have a TTL, resuming where the
  // previous call stopped and wrapping around, and removes the expired ones; returns how many.
  // Holds the lock for O(max_visits), not for a pass over the shard.
  // When `removed_keys` is non-null, appends (table, key) of each removed record to it, for the
  // caller to remove them from the durable tier too.
  size_t SweepExpired(size_t max_visits,
                      std::vector<std::pair<uint32_t, std::string>>* removed_keys = nullptr);

  ShardStats Stats();

  // Tier figures of every table, by table id. O(tables).
  std::vector<TableTierStats> TableStats();

  // --- Tiering. A record below RAM keeps an entry here (key, tier, version, expiry, event time,
  // last access, reads since it left RAM): Get reports it (BelowRam), CollectKeys lists it,
  // Delete and SweepExpired remove it like a RAM record, and a Put replaces it. The engine
  // moves the record's bytes between tiers; these calls change only what this shard believes,
  // each checking the version it is given so that a move racing with a write is dropped. ---

  // Where `key` of `table` is, or nullopt if absent or expired.
  std::optional<Location> Locate(uint32_t table, std::string_view key);

  // Visits up to `max_visits` RAM records and below-RAM entries of tables with tiering rules,
  // resuming where the previous call stopped, and appends to `out` each whose rules put it in
  // a lower tier than where it is (or, below RAM, that needs its fields to decide). Holds the
  // lock for O(max_visits) (a RAM record is decoded only when a rule tests its fields or it
  // goes to the backing store). Returns the entries visited.
  size_t CollectTierMoves(size_t max_visits, std::vector<TierMove>& out);

  // For a tier over its budget: visits up to `max_visits` entries of `table` in `tier` (RAM
  // records, or below-RAM entries in the SSD tier), resuming where the previous call for that
  // table and tier stopped, and appends to `out` moves one tier down (RAM -> SSD, SSD ->
  // backing) of the least recently accessed of them (at or before the visited entries' median
  // access time, oldest first) until their bytes reach `bytes_wanted`. Skips records a `to: ram`
  // rule pins; when the visit covers the whole table, oldest first with no median cut. Holds
  // the lock for O(max_visits log max_visits). Returns the bytes proposed.
  uint64_t CollectColdest(uint32_t table, StorageTier tier, size_t max_visits,
                          uint64_t bytes_wanted, std::vector<TierMove>& out);

  // RAM this shard accounts for records and event state (what the budget compares). Lock-free.
  uint64_t MemoryBytes() const {
    return memory_bytes_.load(std::memory_order_relaxed) +
           event_bytes_.load(std::memory_order_relaxed);
  }

  // If `key` is in RAM at `version`: drops its value, keeping an entry in tier `to` (ssd or
  // backing), and returns true; else false (written, deleted or moved meanwhile).
  bool DemoteFromRam(uint32_t table, std::string_view key, uint64_t version, StorageTier to);

  // If `key` is in tier `from` (below RAM) at `version`: records that it is now in `to` and
  // returns true; else false.
  bool MoveBelowRam(uint32_t table, std::string_view key, uint64_t version, StorageTier from,
                    StorageTier to);

  // If `key` is still below RAM at record.version: stores `record` in RAM (expiry kept from the
  // entry) and returns true; else false (written, deleted or moved meanwhile).
  bool Promote(uint32_t table, std::string_view key, const record::Record& record);

  // Loads an entry for a record stored below RAM (recovery), raising the version counter past
  // it. A newer entry (RAM or below) for the same key wins; returns false when this one lost or
  // is already expired by the clock.
  bool RestoreBelowRam(uint32_t table, std::string_view key, const Location& where);

  // Replaces `table`'s tiering policy (null or no rules: none; a table not marked as one that
  // may tier at construction keeps none). Takes effect for the next call of any method.
  void SetTiering(uint32_t table, std::shared_ptr<const TieringPolicy> policy);

  // Sets `table`'s TTL for records written from now on (0 = none); records written before
  // keep their expiry.
  void SetTtl(uint32_t table, Micros ttl_micros);

  // Sets the RAM budget (0 = unlimited). Lock-free.
  void SetMaxMemoryBytes(uint64_t max_memory_bytes);

  // Moves to `out` the (table, key) of records that were in the backing store and have since
  // been overwritten, deleted, expired or promoted: their copies there are garbage. A key may
  // be back in the backing store by now; the caller checks Locate before deleting.
  void TakeBackingGarbage(std::vector<std::pair<uint32_t, std::string>>& out);

  // Event state bytes counted by walking every entity, O(entities) under the lock: for tests,
  // which check that the running figure in Stats().event_state_bytes equals it.
  uint64_t CountEventStateBytes();

  // Visits up to `max_visits` event states (template, entity), resuming where the previous call
  // stopped and wrapping around, and removes those whose newest event is older than all of
  // their template's windows and its history retention. Returns how many it removed. Holds the
  // lock for O(max_visits), so a sweep never stalls readers for long; an entity added during a
  // pass, or moved by the map's growth, may wait for the next pass.
  size_t SweepIdleEntities(size_t max_visits);

  // --- Sandboxed functions. Each function loaded here has its own Lua state and its own lock:
  // calls of one function on this shard run one at a time, calls of different functions may
  // overlap. The record lock is never held while Lua runs. ---

  // Compiles `source` into a new Lua state of this shard (sandbox::Sandbox::Load, same errors:
  // kInvalidArgument bad source, kResourceExhausted budget spent by the top level, ...). The
  // function stays loaded until UnloadFunction. Never waits for a running procedure.
  Result<sandbox::FunctionId> LoadFunction(std::string_view name, uint32_t version,
                                           std::string_view source, const sandbox::Limits& limits);

  // Runs `entry(inputs, entity)` of a derived-feature function loaded by LoadFunction, under the
  // function's lock only (sandbox::Sandbox::CallDerived: result and errors). kNotFound if the
  // function is not loaded. Waits while the same function runs on this shard for another call.
  Result<std::optional<record::Value>> CallDerived(sandbox::FunctionId function,
                                                   std::string_view entry,
                                                   std::span<const record::Field> inputs,
                                                   std::string_view entity);

  // Forgets a function loaded by LoadFunction; a call of it in flight finishes first (its state
  // is freed when that call ends). No-op for an unknown id. Never waits.
  void UnloadFunction(sandbox::FunctionId id);

  // Runs procedure `call.function` on the record of `call.key` (read-modify-write, atomic for
  // that record): reads the record (nil when absent or expired), calls
  // `entry(record, args, key)` in the function's sandbox with no record lock held, and, if it
  // returns a new record, validates it like a Put (schema, limits.max_record_bytes, the shard's
  // RAM share and field-name cap) and stores it only if the record is still the version it read;
  // if a Put, Delete or another function got in between, runs the procedure again on the new
  // record (at most 4 runs in all). The new record replaces the old one whole and keeps its event
  // time. A Lua integer is stored as a double or timestamp, and a Lua string as bytes, where the
  // table declares (or, free-form, the old record held) that type.
  // Errors (record unchanged): the sandbox's (kResourceExhausted, kDeadlineExceeded: budget;
  // kFailedPrecondition: runtime error or bad return; kNotFound: missing entry or function not
  // loaded); kFailedPrecondition for a new record the table refuses (message names function,
  // table, key, field); kResourceExhausted when the new record would take the shard past its RAM
  // share or the table past kMaxFieldNames; kAborted when the record changed under every run.
  // Cost: the Lua call (~2 us for a small record) plus a decode and an encode; waits while the
  // same function runs on this shard for another call.
  ProcedureOutcome Execute(const ProcedureCall& call);

  // Failed calls of sandboxed functions on this shard since it started, by function name and
  // sandbox::ErrorKind: procedures, derived features and Lua aggregators alike. Counts only go
  // up: a function registered again under the same name adds to them. Thread-safe; O(names).
  std::vector<FunctionErrorCount> FunctionErrors() const { return function_errors_.Snapshot(); }

  // --- Events and aggregations. Templates and aggregations are added, never removed; ids are
  // dense and the engine adds them to every shard in the same order. ---

  // Makes template `spec->id` (== number of templates added so far) known to this shard.
  void AddTemplate(std::shared_ptr<const TemplateSpec> spec);

  // For a user-defined aggregation (spec.function set): compiles its Lua aggregator into this
  // shard's aggregator sandbox, ready for AddAggregation; no-op for a built-in. Errors: the
  // sandbox's Load errors. Two phases, so the engine can load into every shard before any shard
  // takes the aggregation (and unload with DropPreparedAggregation if one shard fails).
  Status PrepareAggregation(const AggregationSpec& spec);
  void DropPreparedAggregation(uint32_t aggregation_id);

  // What rebuilding an aggregation's state from retained events did: entities rebuilt, events
  // replayed, events a Lua aggregator failed on (left out).
  struct Backfill {
    uint64_t entities = 0;
    uint64_t events = 0;
    uint64_t failed = 0;
  };

  // Hot replacement of a Lua aggregator: from now on user-defined aggregation `aggregation_id`
  // runs `function` (a new version, compiled by PrepareReplacement first; kInvalidArgument or
  // kResourceExhausted if it does not load). With `keep_state`, the tiles built by the old
  // version stay (the new version declares the same state shape); otherwise every entity's tiles
  // of the aggregation are rebuilt from the retained events (what is older than the template's
  // history retention is gone). The swap happens under the shard lock: a call in flight finishes
  // on the old version, the next runs the new one; the old Lua state is freed. Returns the
  // backfill figures (zero with keep_state).
  Status PrepareReplacement(uint32_t aggregation_id, const AggregatorFunction& function);
  Backfill ReplaceAggregator(uint32_t aggregation_id, bool keep_state);

  // Registers aggregation `spec->id` (== number of aggregations added so far; a user-defined
  // one prepared first) and builds its state for every entity of its template from the
  // retained events, under the lock, so no event is missed or counted twice. A retained event
  // that a Lua aggregator fails on is left out of that aggregation (counted in the third
  // figure). Returns {entities built, events replayed, events a Lua aggregator failed on}.
  Backfill AddAggregation(std::shared_ptr<const AggregationSpec> spec);

  // Applies events[i] for each i in `indices` (validated by the caller: template known, values
  // typed as declared, time within bounds): skips duplicates (event_id seen within the
  // template's dedup window), else folds it into every aggregation of its template and appends
  // it to the template's history. outcomes[i] tells which. When a Lua aggregator of the
  // template fails on an event (budget, runtime error, unstorable state), the event changes
  // nothing (no aggregation, no history, its id not remembered): outcomes[i] = kFailed and
  // (i, the error naming the aggregation, function, version and Lua line) is appended to
  // `failures` when given. Lua runs under this shard's lock, within the function's budgets.
  void ApplyEvents(std::span<const ShardEvent> events, std::span<const uint32_t> indices,
                   std::span<EventOutcome> outcomes,
                   std::vector<std::pair<uint32_t, Status>>* failures = nullptr);

  // For each i in `indices` and each read: the window's value for entities[i] of template
  // `template_id` from the live tiles as of `now`. Each value built (but std::monostate) is
  // charged to `budget_bytes` (aggregate::OutputBytes); returns false, with the rest unread, as
  // soon as one does not fit, so an oversized answer is refused rather than built. A Lua
  // aggregator's merge or finalize that fails also stops the read (false) and sets `error`
  // (naming aggregation, function, version and Lua line); `error` stays OK otherwise.
  // An entity with tiles below RAM that a read's window reaches needs them in `cold` (sorted by
  // index, as ColdTilesOf described them; `indices` ascending); if they are missing or have moved
  // since, the read stops (false) with `error` kAborted and the caller asks ColdTilesOf again.
  [[nodiscard]] bool ReadOnline(uint32_t template_id, std::span<const AggregationRead> reads,
                                std::span<const std::string_view> entities,
                                std::span<const uint32_t> indices, Micros now,
                                uint64_t& budget_bytes, Status& error,
                                std::span<const ColdTiles> cold = {});

  // As ReadOnline, but each entity i as of as_of[i], computed from the retained events
  // (aggregate::ComputeAsOf, ComputeCustomAsOf). O(retained events of the entity) per read.
  // An entity with events below RAM needs them in `cold` (sorted by index, as ColdHistoryOf
  // described them); if they are missing or have moved since (another move or a trim), the read
  // stops (false) with `error` kAborted and the caller asks ColdHistoryOf again.
  [[nodiscard]] bool ReadHistorical(uint32_t template_id, std::span<const AggregationRead> reads,
                                    std::span<const std::string_view> entities,
                                    std::span<const Micros> as_of,
                                    std::span<const uint32_t> indices, uint64_t& budget_bytes,
                                    Status& error, std::span<const ColdHistory> cold = {});

  // --- Retained events below RAM (templates with history_ssd_after). ---

  // Appends to `out` where the events below RAM of each entities[i], i in `indices`, are (only
  // entities that have some), in index order. O(indices).
  void ColdHistoryOf(uint32_t template_id, std::span<const std::string_view> entities,
                     std::span<const uint32_t> indices, std::vector<ColdHistoryRef>& out);

  // Visits up to `max_visits` entities of templates with history_ssd_after, resuming where the
  // previous call stopped, and appends to `out` the arrival-order prefix of each one's RAM
  // history older than that (by event time), encoded; those events stay in RAM, marked in
  // flight, until CommitHistoryMoves. Entities whose events below RAM are all past the
  // retention give them up (TakeHistoryGarbage). Holds the lock for O(max_visits + events).
  void CollectHistoryMoves(size_t max_visits, std::vector<HistoryMove>& out);
  // After the caller stored `moves` (written) or failed to (not written): drops the stored
  // events from RAM and makes them readable below RAM, or keeps them in RAM. A move whose
  // entity is gone meanwhile becomes garbage.
  void CommitHistoryMoves(std::span<const HistoryMove> moves, bool written);
  void TakeHistoryGarbage(std::vector<HistoryGarbage>& out);
  // For backfills of aggregations added at run time (see ColdHistoryReader).
  void SetColdHistoryReader(ColdHistoryReader reader);

  // --- Aggregation tiles below RAM (templates with tiles_ssd_after). ---

  // Appends to `out` the entities[i], i in `indices`, whose tiles below RAM a read of `reads` as
  // of `now` reaches, in index order, and sets `layouts` to the template's. O(indices + reads).
  void ColdTilesOf(uint32_t template_id, std::span<const AggregationRead> reads,
                   std::span<const std::string_view> entities, std::span<const uint32_t> indices,
                   Micros now, std::vector<ColdTilesRef>& out, TileLayouts& layouts);
  // Visits up to `max_visits` entities of templates with tiles_ssd_after, resuming where the
  // previous call stopped, and appends a TileMove for each one with tiles old enough (one move
  // per entity at a time); their rows stay in RAM until CommitTileMoves. Entities whose tiles
  // below RAM no window reads any more give them up (TakeTileGarbage). Holds the lock for
  // O(max_visits + encoded bytes), the bytes bounded at 256 KiB a call.
  void CollectTileMoves(size_t max_visits, std::vector<TileMove>& out);
  // After the caller stored `moves` (written) or failed to: drops the stored rows from RAM and
  // makes the new blob the one read, or keeps the rows in RAM. A move whose rows changed
  // meanwhile (rows aged out), or whose entity went, is dropped and its blob becomes garbage.
  void CommitTileMoves(std::span<const TileMove> moves, bool written);
  void TakeTileGarbage(std::vector<TileGarbage>& out);

 private:
  struct Table;
  class EventStore;

  // Adds `delta` to the accounted RAM bytes of `t` and of the shard.
  void Account(Table& t, int64_t delta) ODS_REQUIRES(mu_);
  // Removes `key`'s below-RAM entry of table `table` (`t`), if any; returns the accounted bytes
  // freed. A record that was in the backing store leaves its copy there as garbage.
  uint64_t ForgetBelow(uint32_t table, Table& t, std::string_view key) ODS_REQUIRES(mu_);
  // Get's handling of a RAM miss: if `key` has a live below-RAM entry, counts the read (access
  // time, reads since demotion), appends it to `out` with whether to promote, returns true.
  bool NoteReadBelow(Table& t, std::string_view key, uint32_t index, Micros expiry_now,
                     uint32_t stamp, std::vector<BelowRam>& out) ODS_REQUIRES(mu_);

  const uint32_t id_;
  const Clock& clock_;
  std::atomic<uint64_t> max_memory_bytes_;  // SetMaxMemoryBytes; read lock-free
  std::atomic<uint64_t> memory_bytes_{0};  // written under mu_, read lock-free
  std::atomic<uint64_t> event_bytes_{0};   // events_->TrackedBytes(); written under mu_
  // Field names per table (dictionary sizes), written under mu_, read lock-free. Fixed length.
  std::unique_ptr<std::atomic<size_t>[]> field_names_;

  struct FunctionSlot;  // one loaded function: its Sandbox and the lock its calls take
  FunctionErrorTally function_errors_;  // before events_, which borrows it
  Mutex functions_mu_;  // guards the map only; held for a lookup, never across Lua
  uint64_t next_function_id_ ODS_GUARDED_BY(functions_mu_) = 1;
  std::map<uint64_t, std::shared_ptr<FunctionSlot>> functions_ ODS_GUARDED_BY(functions_mu_);

  alignas(64) Mutex mu_;
  uint64_t next_version_ ODS_GUARDED_BY(mu_) = 1;
  ShardStats stats_ ODS_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Table>> tables_ ODS_GUARDED_BY(mu_);
  std::unique_ptr<EventStore> events_ ODS_GUARDED_BY(mu_);
  // Where SweepExpired resumes: a table and the key visited next (empty: its first record);
  // `sweep_below_` says it is in the table's below-RAM entries.
  size_t sweep_table_ ODS_GUARDED_BY(mu_) = 0;
  std::string sweep_key_ ODS_GUARDED_BY(mu_);
  bool sweep_below_ ODS_GUARDED_BY(mu_) = false;
  // Where CollectTierMoves resumes, likewise.
  size_t tier_table_ ODS_GUARDED_BY(mu_) = 0;
  std::string tier_key_ ODS_GUARDED_BY(mu_);
  bool tier_below_ ODS_GUARDED_BY(mu_) = false;
  std::vector<std::pair<uint32_t, std::string>> backing_garbage_ ODS_GUARDED_BY(mu_);
};

}  // namespace ods::shard
