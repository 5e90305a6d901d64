#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/latency_histogram.h"
#include "ods/common/mutex.h"
#include "ods/common/status.h"
#include "ods/config/config.h"
#include "ods/engine/change_log.h"
#include "ods/engine/features.h"
#include "ods/engine/functions.h"
#include "ods/record/schema.h"
#include "ods/record/value.h"
#include "ods/shard/shard.h"
#include "ods/tier/rocksdb_tier.h"

namespace ods::tier {
class BackingStore;
class SystemOfRecord;
}  // namespace ods::tier

namespace ods::engine {

class TileCache;

// Totals over all shards (per-shard counters summed on read).
struct EngineStats {
  uint32_t shards = 0;
  uint64_t records = 0;
  uint64_t memory_bytes = 0;
  uint64_t gets = 0;
  uint64_t get_hits = 0;
  uint64_t puts = 0;
  uint64_t deletes = 0;
  uint64_t expired = 0;
  uint64_t events_applied = 0;
  uint64_t events_duplicate = 0;
  uint64_t events_rejected = 0;  // all reasons, including late
  uint64_t events_late = 0;      // rejected as older than allowed_lateness
  uint64_t entities = 0;         // (template, entity) states held
  uint64_t event_state_bytes = 0;  // tiles + retained events, estimated
  uint64_t history_events_ssd = 0;  // retained events below RAM (history_ssd_after)
  uint64_t history_moved = 0;       // retained events moved below RAM since start
  uint64_t tiles_entities_ssd = 0;  // entities with aggregation tiles below RAM (tiles_ssd_after)
  uint64_t tiles_bytes_ssd = 0;     // bytes of their blobs below RAM
  uint64_t tiles_moved = 0;         // tile moves (one entity each) since start
  uint64_t tiles_cache_hits = 0;    // reads of tiles below RAM served decoded from RAM
  uint64_t tiles_cache_misses = 0;  // ... read from the SSD tier and decoded
  uint64_t tiles_cache_bytes = 0;   // RAM held by decoded tiles (storage.ram.tile_cache_bytes)
  // Durable tier (tables whose durability is not none); all 0 when no table is durable.
  uint64_t recovered_records = 0;  // records loaded from the tier at start
  uint64_t durable_batches = 0;    // Put/Delete calls written to the tier since start
  uint64_t durable_syncs = 0;      // fsyncs of the tier's log (group commits + background)
  bool has_durable_tier = false;   // some table is durable: durable_tier below is its figures
  tier::TierStats durable_tier;    // the RocksDB database's counters and gauges (all tables)
  // Tiering (tables with tiering rules); records counts every tier.
  uint64_t records_ssd = 0;      // records whose value is only on the SSD tier
  uint64_t records_backing = 0;  // records whose value is only in the backing store
  uint64_t reads_ssd = 0;        // Get hits served from the SSD tier
  uint64_t reads_backing = 0;    // Get hits served from the backing store
  uint64_t promotions = 0;       // records brought back into RAM by reads
  uint64_t demotions_ssd = 0;    // records moved to the SSD tier
  uint64_t demotions_backing = 0;
  uint64_t tier_move_errors = 0;  // moves that failed (I/O); the record stayed where it was
  // Read-through from systems of record (tables.NAME.read_through); all 0 without any.
  uint64_t sor_reads = 0;          // keys a Get missed that the system of record answered
  uint64_t sor_misses = 0;         // keys a Get missed that the system of record did not have
  uint64_t sor_negative_hits = 0;  // misses answered from remembered misses, without asking
  uint64_t sor_errors = 0;         // Get calls failed because the system of record failed
  uint64_t sor_cached = 0;         // records read through and stored into their table
  uint64_t sor_negative_keys = 0;  // misses remembered now (all tables)
};

// One table's tiers (Engine::TierStats). Arrays are indexed by StorageTier (ram, ssd, backing).
struct TableTierReport {
  std::string table;
  bool tiered = false;                  // has tiering rules
  std::array<uint64_t, 3> records{};    // records whose value is in each tier
  // RAM: accounted bytes of the table's RAM entries; SSD and backing: the records' encoded
  // size there (before the tier's compression).
  std::array<uint64_t, 3> bytes{};
  std::array<uint64_t, 3> reads{};      // Get hits served by each tier
  std::array<uint64_t, 3> demotions{};  // moves into each tier
  uint64_t promotions = 0;
  // Engine::Get latency of the table (every key of a call, whichever tier answered), as bucket
  // upper bounds (LatencyHistogram): p50 and p99 over everything since start.
  uint64_t read_calls = 0;
  uint64_t read_p50_micros = 0;
  uint64_t read_p99_micros = 0;
  Micros sla_read_p99_micros = 0;  // the table's goal; 0 = none
  bool sla_met = true;             // read_p99 <= the goal (true without a goal or reads)
  // bytes[tier] in GiB times the tier's cost_per_gib_month, summed.
  double monthly_cost = 0;
  std::vector<std::string> rules;  // the tiering rules in effect (DescribeTierRule)
  std::string promote;             // "on_access", "never" or "after_hits N"
  uint32_t priority = 0;
};

// What Engine::Reload did.
struct ReloadReport {
  // Each applied change, "PATH: OLD -> NEW", e.g. "tables.users.ttl: 0s -> 1d".
  std::vector<std::string> changes;
  // Changed parts a reload cannot apply (they need a restart), e.g. "storage.backing".
  std::vector<std::string> needs_restart;
  uint64_t generation = 0;  // of the settings in effect after the call
};

// "to ssd when idle_for 1h, field \"plan == 'free'\"": one tiering rule, for logs and stats.
std::string DescribeTierRule(const config::TierRuleConfig& rule);

// The store: the catalog of tables, N shards and the router between them. The only component
// that sees catalog, shards and limits together; the gRPC layer calls only this.
//
// Thread-safe. No global lock: Put/Get/Delete lock only the shards their keys route to, one at
// a time, each for microseconds; ScanKeys, Stats and the TTL sweep visit every shard, one at a
// time, each for O(records of that shard). Every call validates the whole request before writing anything, so a
// rejected request changes nothing.
class Engine {
 public:
  // Builds catalogs and shards from `config` and starts the background sweeper (TTLs, idle event
  // states). If any table's durability is not none, opens the durable tier in
  // `storage.data_dir`/records and loads every stored, unexpired record of those tables into
  // the shards before returning (O(stored records)). If storage.backing is set, opens that
  // backing store (nothing reads or writes it yet, #6 point 4).
  // `config` is copied; `clock` must outlive the engine. Errors: kInvalidArgument on an unusable
  // config; kUnavailable if the data dir cannot be created, opened or is locked by another
  // process, or the backing store cannot be opened (message starts "backing store"); kDataLoss
  // if a stored record is corrupt.
  static Result<std::unique_ptr<Engine>> Create(const config::Config& config, const Clock& clock);
  ~Engine();  // Stops the sweeper; fsyncs and closes the durable tier.

  // The checks Create makes of `config` beyond what config::Load* checks (each aggregation's fn
  // against its field's type, windows against tiles), without building anything: for
  // odsd --check-config. kInvalidArgument with FILE:LINE:COLUMN per problem.
  static Status CheckConfig(const config::Config& config);
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const config::Config& config() const { return config_; }

  // The shard that owns `key` of `table`:
  //   StableHash64(key, /*seed=*/StableHash64(table, 0x6f6473)) mod shard count.
  // Part of the contract (clients may route by it); changing it moves keys between shards.
  uint32_t ShardOf(std::string_view table, std::string_view key) const;

  // Upserts `records` of `table`; returns each record's new version, in order. A key given
  // twice: the later record wins. Errors (nothing written): kNotFound unknown table;
  // kInvalidArgument empty batch entry key, key/record/batch over its limit, schema violation
  // (message names table, key, field); kResourceExhausted RAM budget reached; kUnavailable or
  // kDataLoss if the durable tier refused the write.
  // Durability (the table's mode): none: RAM only. async: the batch is written to the tier's
  // log, then RAM, and returns; the log is fsynced within storage.durability_window. sync: as
  // async, then waits for the fsync (shared with concurrent writers). If that fsync fails the
  // call returns kUnavailable although RAM already holds the batch (it may or may not survive a
  // crash). A record is readable as soon as it is in RAM, before its fsync.
  Result<std::vector<uint64_t>> Put(std::string_view table,
                                    std::span<const shard::KeyedRecord> records);

  // As Put, but never waits for an fsync: `done` receives what Put would return. It runs on the
  // calling thread before PutThen returns, except for a successful write to a `sync` table: then
  // it runs on the durable tier's committer thread once the write is fsynced (group commit
  // across every writer waiting at that moment). `records` is read only during the call. `done`
  // must be quick (it delays other writers' acknowledgements) and must not call the engine.
  // For the gRPC server, whose threads must not block on disk.
  using PutDone = std::function<void(Result<std::vector<uint64_t>>)>;
  void PutThen(std::string_view table, std::span<const shard::KeyedRecord> records,
               PutDone done);

  // Looks up `keys` of `table`; out[i] is keys[i]'s record or nullopt (absent or expired).
  // `fields` non-empty projects to those fields. Errors: kNotFound unknown table;
  // kInvalidArgument bad key, too many keys, a projected field the table does not declare;
  // kResourceExhausted if the records found exceed limits.max_message_bytes (checked while
  // reading, so an oversized answer is never built).
  // A table with `read_through` asks its system of record for the keys RAM and the lower tiers
  // miss (one query per call, except keys remembered as missing within negative_ttl) and, with
  // `cache: true`, stores what it finds into the table (a newer write of the key wins). Then
  // also: kUnavailable the system of record cannot be reached or its query fails (the whole
  // call fails; nothing is cached; the message names the source, never a password);
  // kFailedPrecondition its table no longer fits the configured columns, or a row exceeds
  // limits.max_record_bytes. Blocks on the network for such misses.
  Status Get(std::string_view table, std::span<const std::string_view> keys,
             std::span<const std::string_view> fields, std::vector<std::optional<record::Record>>& out);
  // True if a Get of `table` may ask a system of record (tables.NAME.read_through), and so block
  // on the network. False for an unknown table. O(tables), lock-free.
  bool ReadsThrough(std::string_view table) const;
  // True if any table reads through (then a feature lookup of a table's fields may block too).
  bool HasReadThrough() const;

  // kInvalidArgument (or kNotFound for an unknown table) if a request of `size` records or keys
  // ("records", "keys") would exceed limits.max_batch_size: lets the server refuse an oversized
  // request before converting it. O(tables).
  Status CheckRequestSize(std::string_view table, size_t size, std::string_view what) const;

  // Removes `keys` of `table`; deleted[i] = 1 if keys[i] held a live record. Errors as Get,
  // plus the durable tier's as Put; durability as Put.
  Result<std::vector<uint8_t>> Delete(std::string_view table, std::span<const std::string_view> keys);

  // As Delete, calling back as PutThen does.
  using DeleteDone = std::function<void(Result<std::vector<uint8_t>>)>;
  void DeleteThen(std::string_view table, std::span<const std::string_view> keys,
                  DeleteDone done);

  // The up-to-`limit` smallest live keys of `table` starting with `prefix` and sorting after
  // `start_after` (byte order), sorted. `limit` 0 means limits.max_batch_size; larger is
  // kInvalidArgument. Visits every shard: O(records of the table).
  Result<std::vector<std::string>> ScanKeys(std::string_view table, std::string_view prefix,
                                            std::string_view start_after, uint32_t limit);

  // Removes expired records and idle event states (entities whose newest event is older than
  // every window and the history retention of their template) now; returns how many. The
  // background sweeper does this every second.
  size_t SweepExpiredOnce();

  EngineStats Stats() const;

  // --- Tiering (docs/tiering.md) ---

  // Moves `keys` of `table` to tier `to` now, whatever the rules say (the sweep applies the
  // rules every second; this is for operators and tests). A key moves down RAM -> SSD ->
  // backing, or up into RAM; a key already there, absent or expired is skipped. Returns how
  // many moved. Errors: kNotFound unknown table; kInvalidArgument bad key, or `to` below RAM
  // for a table that is not durable, or backing without storage.backing; kUnavailable /
  // kDataLoss from the tier or backing store (the record stays readable where it was).
  Result<size_t> MoveRecords(std::string_view table, std::span<const std::string_view> keys,
                             StorageTier to);

  // The tier holding `key` of `table`, or nullopt if absent or expired. Errors: kNotFound
  // unknown table; kInvalidArgument bad key. One shard lock; no I/O.
  Result<std::optional<StorageTier>> TierOf(std::string_view table, std::string_view key) const;

  // Applies the reloadable parts of `next` (validated by config::Load*): per table its tiering
  // rules, promote, priority, sla and ttl (for records written from now on); storage's RAM and
  // SSD budgets and costs. Tables are matched by name. Other changes (tables added, removed or
  // reshaped, durability, storage.backing, server, limits, security, definitions, functions)
  // are listed in needs_restart and not applied. All or nothing: kFailedPrecondition, with
  // nothing applied, when a new rule needs what only a restart gives (a durable table, a
  // backing store). Each change is logged. Shard by shard, each under its lock: a sweep or read
  // in flight finishes with the old rules. Serialized with other reloads.
  Result<ReloadReport> Reload(const config::Config& next);

  // The settings generation: 1 at start, +1 per reload that changed something; and when the
  // last such reload happened (0: never).
  uint64_t SettingsGeneration() const { return Settings()->generation; }
  Micros ReloadedAtMicros() const { return Settings()->reloaded_at_micros; }

  // Per-table tier figures, in table order. O(tables x shards).
  std::vector<TableTierReport> TierStats() const;
  // Engine::Get latencies of table `table_id` (its index in TierStats and the config).
  const LatencyHistogram& ReadLatency(size_t table_id) const { return read_latency_[table_id]; }

  // One step of the tier sweep on every shard (what the background sweeper runs each second,
  // and at once when a Put finds a shard's RAM share full): first the budgets (a shard over
  // 90% of its share of storage.ram.max_bytes moves the least recently used records of its
  // tiered tables to SSD, lowest priority first, towards 80%; the SSD tier over 90% of
  // storage.ssd.max_bytes moves its least recently used records to the backing store), then
  // the tables' rules on a bounded slice of each shard; last, deletes backing-store copies
  // left as garbage. Each shard is locked for a bounded slice at a time. Returns the moves.
  size_t SweepTiersOnce();
  // One pass of the retained-events sweep (run by the sweeper after SweepTiersOnce): on a
  // bounded slice of each shard, moves retained events older than their template's
  // history_ssd_after to the SSD tier (written outside the shard lock, then dropped from RAM)
  // and deletes events below RAM that are past the retention or whose entity went. Returns
  // the events moved.
  size_t SweepHistoryOnce();
  // One pass of the aggregation-tiles sweep (run by the sweeper after SweepHistoryOnce): on a
  // bounded slice of each shard, moves the rows of tiles that ended more than their template's
  // tiles_ssd_after ago to the SSD tier (one blob per entity, merged with what is there, written
  // outside the shard lock, then dropped from RAM) and deletes blobs no window reads any more or
  // whose entity went. Returns the entities whose tiles moved.
  size_t SweepTilesOnce();

  // --- Events and features (docs/api.md, "Features") ---

  // Applies every valid event and reports each invalid one by index with the reason; a rejected
  // event changes nothing. An event is folded, on the shard that owns its entity, into every
  // aggregation of its template and into the template's retained history. Errors (nothing
  // applied): kInvalidArgument when the batch exceeds limits.max_batch_size.
  Result<PushResult> PushEvents(std::span<const EventInput> events);

  // The value of each of `features` for each of `entities`, as of now (or as of `as_of`, which
  // reads from retained history like GetHistoricalFeatures). A feature ref is TABLE:FIELD (the
  // record's current field), NAME@WINDOW (an aggregation's window, e.g. txn_sum@24h) or NAME (an
  // aggregation with one window). Errors: kInvalidArgument unknown/ambiguous feature ref (named),
  // empty or oversized request, bad entity key; kResourceExhausted if the answer would exceed
  // limits.max_message_bytes.
  Result<std::vector<FeatureColumn>> GetOnlineFeatures(std::span<const std::string_view> entities,
                                                       std::span<const std::string_view> features,
                                                       std::optional<Micros> as_of);

  // Point-in-time values: row i answered as of rows[i].timestamp from retained events, by the
  // same window definitions GetOnlineFeatures uses (bit-identical for the same events). Table
  // fields answer the current record if its event time is at or before the row's timestamp,
  // else NOT_FOUND. Errors as GetOnlineFeatures.
  Result<std::vector<FeatureColumn>> GetHistoricalFeatures(std::span<const EntityRow> rows,
                                                           std::span<const std::string_view> features);

  // Appends to `out` the name of every table (TABLE:FIELD refs) and event template
  // (aggregations) that a lookup of `features` reads; a derived feature reads its inputs'. A
  // name may repeat. Views point into `features` or into catalogs the engine keeps for its
  // lifetime. For access checks before a lookup. Errors: kInvalidArgument for a ref that names no
  // table, aggregation or derived feature (as GetOnlineFeatures would answer). Lock-free;
  // O(features) map lookups.
  Status FeatureSources(std::span<const std::string_view> features,
                        std::vector<std::string_view>& out) const;

  // Adds event templates and aggregations at run time. New aggregations are backfilled from
  // retained events on every shard before this returns, so they serve correct values at once.
  // A name already defined identically is skipped; defined differently is kAlreadyExists.
  // Errors (nothing applied): kInvalidArgument (message as config errors, FILE:LINE:COLUMN).
  Result<ApplyReport> ApplyDefinitions(const config::Definitions& definitions);

  // The event templates and aggregations in effect (config plus applied), in definition order.
  config::Definitions ListDefinitions() const;

  // --- Subscriptions (docs/architecture.md, "Subscriptions") ---

  // Opens a subscription to the changes `request` names, starting at request.from_sequence
  // (nullopt: the next change). Every Put, Delete, TTL expiry and applied event is published to
  // the change log once applied to RAM (for a durable table: after the durable tier accepted
  // it), under the owning shard's write-order lock, so the log has the changes of one key in
  // the order they were applied. Errors: kFailedPrecondition subscriptions.retained_changes is
  // 0; kInvalidArgument no table, template or feature named, an unknown table, template or
  // feature (named), a bad key, from_sequence 0 or after the newest change;
  // kResourceExhausted subscriptions.max_subscribers are open. O(names).
  Result<std::unique_ptr<Subscription>> Subscribe(const SubscribeRequest& request);

  // Change log figures (all 0, enabled false, when subscriptions are off). O(subscribers).
  ChangeLogStats SubscriptionStats() const;

  // --- Sandboxed functions (docs/architecture.md, "Functions") ---

  // Registers `spec` as the next version of its name (1 if new): compiles the source, runs its
  // top level once under its limits, checks the entry points of its kind, loads a procedure or
  // derived function into every shard, swaps a new aggregator version into every aggregation
  // that runs it (keeping or rebuilding its state, spec.keep_state; shard by shard, each under its
  // lock), then publishes the new registry snapshot atomically. Calls already running keep
  // the version they started with; later calls get the new one. Errors (registry unchanged):
  // kInvalidArgument bad name, limits out of config's ranges (instructions [1, 10^12], memory
  // [1 KiB, 1 GiB], wall time [1ms, 60s]), Lua syntax or top-level error (message names function,
  // version and Lua line), missing entry point, or a kind other than the name's current one;
  // kResourceExhausted the top level exceeds its budget. Config definitions' errors start with
  // "FILE:LINE:COLUMN: functions.NAME: ". Cost: one Lua load (~0.1 ms) per shard for a
  // procedure, one otherwise; serialized with other registrations.
  Result<FunctionInfo> RegisterFunction(const FunctionSpec& spec);

  // The newest version of every registered function, sorted by name. Lock-free snapshot read.
  std::vector<FunctionInfo> ListFunctions() const;

  // Failed calls of sandboxed functions since start (procedures, derived features, Lua
  // aggregators), by function name and sandbox::ErrorKind, summed over the shards; only
  // functions with a failure, sorted by name. Counts never go down. Thread-safe;
  // O(shards x functions), a small lock per shard.
  std::vector<shard::FunctionErrorCount> FunctionErrors() const;

  // Runs procedure `function` (its newest version when the call starts) on each of `keys` of
  // `table`, on the shard that owns the key (Shard::Execute: read, call
  // execute(record, args, key), validate and store the new record if one is returned, atomically
  // for that record). Keys run shard by shard, in request order within a shard; a key given twice
  // runs twice. `args` reach Lua as the table `args` (name -> value).
  // Whole-call errors (nothing runs): kNotFound unknown function or table; kInvalidArgument the
  // function is not a procedure, no keys, too many keys (limits.max_batch_size), a bad key, an
  // empty or repeated argument name, or arguments larger than limits.max_record_bytes.
  // Per-key errors (that key's record unchanged; other keys unaffected), in results[i].status:
  // kResourceExhausted / kDeadlineExceeded a budget of the function (message names function,
  // version, Lua line) or the RAM budget; kFailedPrecondition a Lua runtime error, a bad return
  // value, or a new record the table refuses (names table, key, field); kAborted the record kept
  // changing under the procedure, or the key was not run because an earlier key of the same call
  // spent the function's instruction, memory or wall-clock budget (so a runaway function costs a
  // call one budget, not one per key).
  // `deadline_micros` (on the engine's Clock; nullopt = none) bounds the whole call: a key is not
  // started once it has passed, and answers kDeadlineExceeded ("not run"), record unchanged; a
  // key already running finishes within its own budget.
  Result<ExecuteReport> Execute(std::string_view function, std::string_view table,
                                std::span<const std::string_view> keys,
                                std::span<const record::Field> args,
                                std::optional<Micros> deadline_micros = std::nullopt);

 private:
  Engine(config::Config config, const Clock& clock);
  struct Sweeper;
  // Has the background sweeper run a pass now rather than at its next second. Never blocks.
  void WakeSweeper();

  Result<uint32_t> FindTable(std::string_view name) const;
  Status CheckKey(const record::TableSchema& table, std::string_view key) const;
  Status CheckBatch(const record::TableSchema& table, size_t size, std::string_view what) const;
  // Request positions grouped by owning shard.
  struct ShardGroups {
    std::vector<uint32_t> owner;    // owner[i]: shard of request position i
    std::vector<uint32_t> order;    // positions, grouped by shard, ascending within a group
    std::vector<uint32_t> offsets;  // group s is order[offsets[s] .. offsets[s+1])
    std::vector<uint32_t> next;     // scratch
    std::span<const uint32_t> Of(size_t s) const {
      return {order.data() + offsets[s], offsets[s + 1] - offsets[s]};
    }
  };
  // Groups positions 0..n-1 (keys key_of(i)) by shard. Returns this thread's reused groups,
  // valid until the thread's next GroupByShard call.
  static ShardGroups& ThreadShardGroups();
  template <typename KeyOf>
  const ShardGroups& GroupByShard(std::string_view table, size_t n, KeyOf key_of) const;
  // Groups positions 0..n-1 by owner_of(i), a shard index or shard count (= leave out).
  template <typename OwnerOf>
  const ShardGroups& GroupByOwner(size_t n, OwnerOf owner_of) const;
  // Opens the durable tier and loads its records of durable tables into the shards.
  Status OpenTierAndRecover();
  // Opens storage.backing, if set, into backing_.
  Status OpenBackingStore();
  // --- Read-through (read_through.cc) ---
  struct ReadThroughSource;
  // Opens the system of record of each table with read_through and checks its columns if it
  // can be reached (unreachable: a warning; reads retry).
  Status OpenReadThrough();
  // Fills the nullopt entries of `out` for `keys` of read-through table `table_id` from its
  // system of record (see Get). False when over `budget_bytes`, as Shard::Get.
  Result<bool> ReadThrough(uint32_t table_id, std::span<const std::string_view> keys,
                           std::span<const std::string_view> fields,
                           std::vector<std::optional<record::Record>>& out,
                           uint64_t& budget_bytes);
  // Stores `record` under `key` unless the key holds a record (RAM or below) or the RAM budget
  // is reached; durable per the table's mode. Returns its version, or 0 if not stored.
  uint64_t CacheReadThrough(uint32_t table_id, std::string_view key,
                            const record::Record& record);
  void AddReadThroughStats(EngineStats& total) const;
  // Reads the records shard `s`'s Get found below RAM (`below`) into out[i], projected to
  // `fields`, each charged to `budget_bytes` (false when over, as Shard::Get); promotes those
  // flagged. A record that moved meanwhile is looked up again.
  Result<bool> ReadBelowRam(uint32_t table_id, uint32_t s, std::span<const std::string_view> keys,
                            std::span<const std::string_view> fields,
                            std::span<const shard::BelowRam> below,
                            std::span<std::optional<record::Record>> out, uint64_t& budget_bytes);
  // The retained events below RAM of `entity` of template `template_id` with seq in
  // [first_seq, last_seq] into `out` (replaced, reusing its elements), in arrival order
  // (kDataLoss corrupt, kUnavailable).
  Status ReadColdEvents(uint32_t template_id, std::string_view entity, uint64_t first_seq,
                        uint64_t last_seq, std::vector<shard::HistoryEvent>& out) const;
  // Those of every entities[i], i in `indices`, of shard `s` that has some, for
  // Shard::ReadHistorical, into `out` (replaced, reusing its elements).
  Status ReadColdHistory(uint32_t s, uint32_t template_id,
                         std::span<const std::string_view> entities,
                         std::span<const uint32_t> indices,
                         std::vector<shard::ColdHistory>& out) const;
  // The tiles below RAM that a read of `reads` of entities[i], i in `indices`, of shard `s` as
  // of `now` needs, for Shard::ReadOnline, into `out` (replaced): from the decoded-tiles cache,
  // else read from the SSD tier and decoded. A blob gone meanwhile (moved on) is left null: the
  // shard then asks for a new read (kAborted). kDataLoss corrupt, kUnavailable I/O.
  Status ReadColdTiles(uint32_t s, uint32_t template_id,
                       std::span<const shard::AggregationRead> reads,
                       std::span<const std::string_view> entities,
                       std::span<const uint32_t> indices, Micros now,
                       std::vector<shard::ColdTiles>& out) const;
  // Reads `key` from `tier` (at any version); nullopt if not there (moved or gone).
  Result<std::optional<record::Record>> ReadFromTier(uint32_t table_id, std::string_view key,
                                                     StorageTier tier);
  // Brings `key` (below RAM at `version` in `tier`, value `record`) into RAM; false if it
  // changed meanwhile. From the backing store, the record goes back into the SSD tier first.
  Result<bool> PromoteRecord(uint32_t table_id, uint32_t s, std::string_view key, StorageTier tier,
                             const record::Record& record);
  // Carries out one move (from the sweep or MoveRecords). Returns whether it moved.
  Result<bool> CarryOut(const shard::TierMove& move);
  // Carries out moves to the backing store together: one backing write for all, then per shard
  // one RocksDB batch of markers under its write-order lock. Skips moves not to the backing
  // store and records that changed meanwhile. Returns how many moved.
  Result<size_t> MoveToBacking(std::span<const shard::TierMove> moves);
  // Deletes backing-store copies the shards reported as garbage, unless the key is back there.
  void CollectBackingGarbage();
  // The budget part of SweepTiersOnce; returns the moves.
  size_t EnforceBudgets();
  // Carries out `moves`, counting failures; returns how many moved.
  size_t CarryOutAll(const std::vector<shard::TierMove>& moves);
  // Put/Delete up to, not including, the wait for durability: validates, writes the tier (for
  // a durable table) and RAM. `sync_ticket` is set to the tier ticket to wait for when the
  // table is `sync`, else 0. `table_id` is set once the table is known.
  Result<std::vector<uint64_t>> PutApply(std::string_view table,
                                         std::span<const shard::KeyedRecord> records,
                                         uint64_t& sync_ticket, uint32_t& table_id);
  Result<std::vector<uint8_t>> DeleteApply(std::string_view table,
                                           std::span<const std::string_view> keys,
                                           uint64_t& sync_ticket, uint32_t& table_id);
  // Put/Delete of a table whose durability is not none (see Put), without the wait.
  Result<std::vector<uint64_t>> PutDurable(uint32_t table_id,
                                           std::span<const shard::KeyedRecord> records,
                                           const ShardGroups& groups, uint64_t& sync_ticket);
  Result<std::vector<uint8_t>> DeleteDurable(uint32_t table_id,
                                             std::span<const std::string_view> keys,
                                             const ShardGroups& groups, uint64_t& sync_ticket);
  // The error answered when the fsync of a sync write to `table_id` failed.
  Status NotDurableError(uint32_t table_id, std::string_view what, const Status& cause) const;
  // Locks the write-order mutex of every shard with a group in `groups`, in shard order (so
  // two batches never deadlock), and unlocks them in the destructor.
  class WriteOrderLocks;

  struct Catalog;
  struct FeaturePlan;
  const Catalog& CurrentCatalog() const { return *catalog_.load(std::memory_order_acquire); }
  // Validates `definitions` against `base`; on success returns the catalog with them added.
  // Compiles spec in a scratch sandbox and checks its entry points (no shard involved).
  static Status CheckFunction(const FunctionSpec& spec, uint32_t version);
  static FunctionSpec SpecFromConfig(const config::FunctionConfig& function);
  // CheckFunction of every config function; kInvalidArgument listing each problem, one per line.
  static Status CheckConfigFunctions(const config::Config& config);
  // A registered function as definitions see it: its kind and version, and for an aggregator
  // what its aggregations run.
  struct FunctionRef {
    FunctionKind kind = FunctionKind::kProcedure;
    uint32_t version = 0;
    std::shared_ptr<const shard::AggregatorFunction> aggregator;  // kind aggregator only
  };
  // The function a definition's `function:` names, or kNotFound naming it.
  using FunctionLookup = std::function<Result<FunctionRef>(std::string_view name)>;
  // The newest registered version of each function.
  FunctionLookup RegisteredFunctions() const;
  // The AggregatorFunction of `spec` as version `version` (spec.kind is aggregator).
  static std::shared_ptr<const shard::AggregatorFunction> AggregatorOf(const FunctionSpec& spec,
                                                                       uint32_t version);
  static Status UnknownFunction(std::string_view name);
  // Makes every aggregation that runs an aggregator named function.name run `function` (a new
  // version) on every shard, keeping or rebuilding its state (Shard::ReplaceAggregator).
  Status ReplaceAggregator(const shard::AggregatorFunction& function, bool keep_state);
  // Derived features' table inputs are checked against `tables`, the functions that
  // aggregations and derived features name through `functions`.
  static Result<std::unique_ptr<Catalog>> ExtendCatalog(const Catalog& base,
                                                        const config::Definitions& definitions,
                                                        std::span<const config::TableConfig> tables,
                                                        const FunctionLookup& functions,
                                                        ApplyReport& report);
  // GetOnlineFeatures and GetHistoricalFeatures: reads `features` (derived ones through their
  // inputs) for rows (entities[i], as of as_of[i] or now when `as_of` is empty).
  Result<std::vector<FeatureColumn>> Lookup(const Catalog& catalog,
                                            std::span<const std::string_view> entities,
                                            std::span<const std::string_view> features,
                                            std::span<const Micros> as_of);
  // Fills `out` (sized to the rows) with the Lua derived feature `d` computed from its inputs'
  // columns (`inputs`, parallel to d's refs) for each row, on the newest version of its function
  // (held for the call). Errors: the function's, as "feature 'NAME': function F vN: line L: ...".
  Status ComputeLuaDerived(const config::DerivedFeatureConfig& d,
                           std::span<const FeatureColumn* const> inputs,
                           std::span<const std::string_view> entities, FeatureColumn& out);
  Result<FeaturePlan> PlanFeatures(const Catalog& catalog,
                                   std::span<const std::string_view> features,
                                   size_t rows) const;
  // Fills `columns` for rows (entities[i], as of as_of[i] or now when `as_of` is empty).
  Status ReadFeatures(const Catalog& catalog, const FeaturePlan& plan,
                      std::span<const std::string_view> entities, std::span<const Micros> as_of,
                      Micros now, std::vector<FeatureColumn>& columns);

  const config::Config config_;
  const Clock& clock_;
  std::vector<std::shared_ptr<const record::TableSchema>> tables_;  // constant after Create
  std::vector<std::unique_ptr<shard::Shard>> shards_;               // constant after Create
  std::unique_ptr<Sweeper> sweeper_;

  // Durability of each table (index = table id); constant after Create.
  std::vector<config::Durability> durability_;
  // The durable tier; null when every table is `none`. Constant after Create.
  std::unique_ptr<tier::RocksDbTier> tier_;
  std::unique_ptr<TileCache> tile_cache_;  // decoded tiles below RAM (tiles_ssd_after)
  uint64_t recovered_records_ = 0;  // constant after Create
  // The backing store of storage.backing; null when unset. Constant after Create.
  std::unique_ptr<tier::BackingStore> backing_;
  // Per table (index = table id): its read-through source, null without read_through.
  // Constant after Create.
  std::vector<std::unique_ptr<ReadThroughSource>> read_through_;
  // Per shard: serializes the durable writes of that shard from the tier write to the RAM
  // apply, so the tier's log and RAM see the writes of a key in the same (version) order. Held
  // across the tier's in-memory log append, never across an fsync; readers never take it, and
  // the shard's own lock is taken inside it only for the RAM apply.
  std::unique_ptr<std::mutex[]> write_order_mu_;
  // What a config reload may change of tiering (Engine::Reload): an immutable snapshot,
  // swapped whole. Read by the sweeper, moves and stats, never on the Put/Get fast path.
  struct TierSettings {
    // The config the settings come from (the running config with reloaded parts applied).
    config::Config config;
    std::vector<std::shared_ptr<const shard::TieringPolicy>> policies;  // per table; null: none
    // Tiered tables by ascending priority (then id): the order budgets move records down in.
    std::vector<uint32_t> budget_order;
    uint64_t generation = 1;  // 1 at start, +1 per applied reload
    Micros reloaded_at_micros = 0;
  };
  static std::shared_ptr<const TierSettings> MakeTierSettings(config::Config config,
                                                              uint64_t generation,
                                                              Micros reloaded_at_micros);
  std::shared_ptr<const TierSettings> Settings() const {
    return tier_settings_.load(std::memory_order_acquire);
  }
  std::atomic<std::shared_ptr<const TierSettings>> tier_settings_;
  Mutex reload_mu_;  // serializes Reload
  // Per table, read on the write path (lock-free): the TTL now, and whether records may have a
  // marker in the SSD tier (the table has had `to: backing` rules), which a Put then removes.
  std::unique_ptr<std::atomic<Micros>[]> ttl_;
  std::unique_ptr<std::atomic<bool>[]> markers_;
  std::unique_ptr<std::atomic<bool>[]> transient_;  // the table has transient rules
  // Per table: it had tiering rules at start, so its RAM entries carry access times and a
  // reload may give it rules. Constant after Create.
  std::vector<bool> tiered_at_start_;
  std::atomic<uint64_t> ram_max_bytes_{0};  // storage.ram.max_bytes now
  // Serializes moves into the backing store with the deletion of garbage copies there, so that
  // a garbage delete never removes a copy a concurrent move just wrote.
  std::mutex backing_move_mu_;
  std::atomic<uint64_t> tier_move_errors_{0};
  // Get latency per table (index = table id); fixed length after Create.
  std::unique_ptr<LatencyHistogram[]> read_latency_;

  // Event templates and aggregations: immutable snapshots. The newest is published in
  // catalog_ (lock-free reads); older ones stay alive until the engine is destroyed, so a
  // reader's snapshot never dangles (definitions are small and applied rarely).
  Mutex apply_mu_;
  std::vector<std::unique_ptr<const Catalog>> catalogs_ ODS_GUARDED_BY(apply_mu_);
  std::atomic<const Catalog*> catalog_{nullptr};
  // Functions: immutable registry snapshots, the newest published atomically; a snapshot (and
  // each function version in it, which holds its Lua states on the shards) lives while a call
  // uses it. Declared after shards_: destroyed first, while the shards it unloads from exist.
  struct FunctionVersion;
  struct FunctionRegistry;
  Mutex register_mu_;  // serializes RegisterFunction; never held by readers
  std::atomic<std::shared_ptr<const FunctionRegistry>> functions_;
  // The change log; null when subscriptions.retained_changes is 0. Constant after Create.
  std::unique_ptr<ChangeLog> change_log_;
  // Whether writes are published to the change log (ChangeLog::recording).
  bool Recording() const { return change_log_ != nullptr && change_log_->recording(); }
  // The checks a lookup of feature `ref` makes (kInvalidArgument), without reading anything.
  Status CheckFeatureRef(std::string_view ref) const;
  // Publishes records[i] for i in `group` (written with versions[i]) as kPut changes.
  void PublishPuts(uint32_t table_id, std::span<const shard::KeyedRecord> records,
                   std::span<const uint32_t> group, std::span<const uint64_t> versions);
  // Publishes keys[i] for i in `group` with deleted[i] set as `kind` changes.
  void PublishDeletes(uint32_t table_id, std::span<const std::string_view> keys,
                      std::span<const uint32_t> group, std::span<const uint8_t> deleted);

  // Rejections are counted here (the shards see only valid events); touched only on rejection.
  std::atomic<uint64_t> events_rejected_{0};
  std::atomic<uint64_t> events_late_{0};
};

}  // namespace ods::engine
