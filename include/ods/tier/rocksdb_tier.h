#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/record/value.h"

// The SSD tier: records kept in a RocksDB database under the data dir, written through its
// write-ahead log. Every record of a durable table is here (write-through), except those moved
// on to the backing store: for each of those a small marker (version, expiry, event time) takes
// the record's place, so that recovery knows where every record is. RocksDB stays behind this
// header (pimpl): nothing here includes it.
namespace ods::tier {

// Upserts and deletes of records, applied to the tier all together or not at all.
// Thread-compatible. Encodes each record when it is added (O(fields + bytes), a few
// allocations), so the caller's records need not outlive the call.
class WriteBatch {
 public:
  WriteBatch();
  ~WriteBatch();
  WriteBatch(WriteBatch&&) noexcept;
  WriteBatch& operator=(WriteBatch&&) noexcept;
  WriteBatch(const WriteBatch&) = delete;
  WriteBatch& operator=(const WriteBatch&) = delete;

  // Adds an upsert of `key` in `table`: `record`'s fields and event time, with the version and
  // expiry (0 = never) the store assigned. A later entry for the same key wins.
  void Put(std::string_view table, std::string_view key, const record::Record& record,
           Micros expire_at_micros, uint64_t version);
  // Adds a removal of `key` in `table` (whether or not it exists), its backing-store marker
  // included.
  void Delete(std::string_view table, std::string_view key);

  // Adds a marker saying that `key` of `table` is in the backing store at `version` (replacing
  // the record, if the batch also Deletes it first).
  void PutMarker(std::string_view table, std::string_view key, uint64_t version,
                 Micros expire_at_micros, Micros event_time_micros, uint64_t bytes);
  // Adds a removal of `key`'s marker only (the record, if any, stays).
  void DeleteMarker(std::string_view table, std::string_view key);

  // Adds retained event `seq` of `entity` of template `template_id`, encoded by the caller
  // (record::EncodeRow). Events are the running process's state moved below RAM: RocksDbTier::Open
  // clears them (see WriteEvents).
  void PutEvent(uint32_t template_id, std::string_view entity, uint64_t seq,
                std::string_view encoded);
  // Adds a removal of every event of `entity` of template `template_id` with seq < seq_end (a
  // range tombstone: O(1) to write however many there are).
  void DeleteEvents(uint32_t template_id, std::string_view entity, uint64_t seq_end);
  // Adds the aggregation tiles of `entity` of template `template_id` moved below RAM, stored as
  // blob `blob_id` (the caller's encoding; ids never reused within a process), and the removal of
  // one. Like events, cleared by RocksDbTier::Open.
  void PutTiles(uint32_t template_id, std::string_view entity, uint64_t blob_id,
                std::string_view blob);
  void DeleteTiles(uint32_t template_id, std::string_view entity, uint64_t blob_id);

  size_t size() const;
  bool empty() const { return size() == 0; }

 private:
  friend class RocksDbTier;
  struct Rep;
  std::unique_ptr<Rep> rep_;
};

// A record read back from the tier (recovery). Views valid only during the callback.
struct StoredRecord {
  std::string_view table;
  std::string_view key;
  // Fields sorted by name, event time and version set. For a marker, or a record of a table
  // ForEach was told to read headers of only: no fields.
  const record::Record* record = nullptr;
  Micros expire_at_micros = 0;  // 0 = never
  bool in_backing = false;      // a marker: the record is in the backing store
  // The record's encoded size without its field names (a marker's: as it was).
  uint64_t bytes = 0;
};

// A record read by key (RocksDbTier::Get).
struct StoredEntry {
  record::Record record;        // fields sorted by name, event time and version set
  Micros expire_at_micros = 0;  // 0 = never
};

struct TierOptions {
  // Directory of the RocksDB database; created if missing. Required.
  std::string dir;
  // The committer thread fsyncs the log at least this often when something was written since
  // the last fsync, so an unsynced (async) write is durable within about this long. 0 = only
  // on demand (WaitDurable, OnDurable, close). Default: 100ms.
  Micros sync_interval_micros = 100'000;
};

// Counters since Open, and gauges as of the Stats() call.
struct TierStats {
  uint64_t batches_written = 0;  // Write calls that succeeded
  uint64_t syncs = 0;            // log fsyncs (group commits and background flushes)
  uint64_t synced_batches = 0;   // batches made durable by those fsyncs
  // RocksDB's own counters (its statistics tickers) since Open.
  uint64_t bytes_written = 0;           // key and value bytes written (Write)
  uint64_t bytes_read = 0;              // value bytes returned by point lookups (Get)
  uint64_t wal_bytes = 0;               // bytes appended to the write-ahead log
  uint64_t block_cache_hits = 0;        // block reads served by the block cache
  uint64_t block_cache_misses = 0;      // block reads that went to the SST files
  uint64_t flush_bytes = 0;             // bytes written by memtable flushes
  uint64_t compaction_read_bytes = 0;   // bytes read by compactions
  uint64_t compaction_write_bytes = 0;  // bytes written by compactions
  // RocksDB's properties, as of the call.
  uint64_t live_data_bytes = 0;           // estimate of the live data's size
  uint64_t sst_bytes = 0;                 // size of every SST file
  uint64_t sst_files = 0;                 // SST files, all levels
  uint64_t memtable_bytes = 0;            // memtables (active, immutable, pinned)
  uint64_t pending_compaction_bytes = 0;  // estimate of the bytes compaction has to rewrite
  uint64_t block_cache_bytes = 0;         // block cache in use
};

// A RocksDB database of records keyed by (table, key), with group commit.
//
// Writes go to RocksDB's write-ahead log with manual_wal_flush: Write() appends a batch to the
// log buffer in the process (no syscall, no fsync) and returns a ticket; WaitDurable(ticket)
// blocks until that batch is fsynced, OnDurable(ticket, done) calls back instead. Concurrent
// waiters share fsyncs: one fsync runs at a time and covers every batch written before it
// started; the waiters and callbacks that arrive meanwhile are covered together by the next one
// (group commit). A crash (kill -9) loses exactly the batches written after the last completed
// fsync.
//
// Thread-safe. Open holds RocksDB's LOCK file: a second Open on the same directory (this or
// another process) fails with kUnavailable.
class RocksDbTier {
 public:
  // Opens (creating if missing) the database in options.dir and starts the committer thread.
  // Errors: kInvalidArgument empty dir; kUnavailable directory locked by another process or
  // not usable (I/O error, permissions); kDataLoss corrupt database.
  static Result<std::unique_ptr<RocksDbTier>> Open(const TierOptions& options);

  // Completes queued OnDurable callbacks, stops the committer thread, fsyncs what is written,
  // closes the database.
  ~RocksDbTier();
  RocksDbTier(const RocksDbTier&) = delete;
  RocksDbTier& operator=(const RocksDbTier&) = delete;

  // Applies `batch` atomically to the database and the (unsynced) log; returns its ticket,
  // increasing with every call. Not durable until WaitDurable(ticket) returns ok or the
  // committer thread fsyncs it. Errors (nothing applied): kUnavailable on an I/O error or when a
  // previous I/O error stopped the database (RocksDB refuses writes after one); kDataLoss on
  // corruption. Cost: encoding done, an in-memory log append and memtable insert (~µs).
  Result<uint64_t> Write(const WriteBatch& batch);

  // Blocks until every batch with a ticket <= `ticket` is fsynced. Group commit: at most one
  // fsync runs at a time, and each covers every batch written before it started. Errors:
  // kUnavailable if the fsync failed (sticky: every later WaitDurable fails as well).
  Status WaitDurable(uint64_t ticket);

  // Calls done(status) once every batch with a ticket <= `ticket` is fsynced (OkStatus), or
  // with the fsync's error (kUnavailable). Never blocks: `done` runs on the tier's committer
  // thread, or on the calling thread if the answer is already known. The committer groups the
  // callbacks queued while an fsync runs into the next one (group commit). `done` must be quick
  // and must not call back into this tier's WaitDurable. Every queued callback runs before the
  // destructor returns.
  void OnDurable(uint64_t ticket, std::function<void(const Status&)> done);

  // The record stored under (table, key), or nullopt if there is none (a marker is not a
  // record). Sees every Write that returned before it. kDataLoss corrupt value (names table and
  // key), kUnavailable I/O error. Cost: one RocksDB point lookup (bloom filter, block cache).
  Result<std::optional<StoredEntry>> Get(std::string_view table, std::string_view key) const;

  // Applies a batch of PutEvent/DeleteEvents/PutTiles/DeleteTiles without the write-ahead log (events below RAM are
  // not durable: Open clears them, since the RAM part of the event state is not durable either).
  // Errors as Write.
  Status WriteEvents(const WriteBatch& batch);

  // Calls fn(seq, encoded) for each event of `entity` of template `template_id` with seq in
  // [first_seq, last_seq], in seq order. Sees every WriteEvents that returned before it.
  // kUnavailable on an I/O error (names template id and entity). Cost: one seek, then a
  // sequential read.
  Status ReadEvents(uint32_t template_id, std::string_view entity, uint64_t first_seq,
                    uint64_t last_seq,
                    const std::function<void(uint64_t seq, std::string_view encoded)>& fn) const;

  // The tiles blob `blob_id` of `entity` of template `template_id` (WriteBatch::PutTiles), or
  // nullopt if there is none. Sees every WriteEvents that returned before it. kUnavailable on an
  // I/O error (names template id and entity). Cost: one RocksDB point lookup.
  Result<std::optional<std::string>> ReadTiles(uint32_t template_id, std::string_view entity,
                                               uint64_t blob_id) const;

  // Calls fn for every stored record and marker, ordered by stored key. Not a snapshot of concurrent
  // writes; meant for start-up, before writes begin. kDataLoss if a stored value is corrupt
  // (message names table and key); kUnavailable on an I/O error.
  // With `fields_of` given, a record of a table for which it returns false is read without its
  // fields (expiry, version, event time and size only: a fraction of the decode).
  Status ForEach(const std::function<void(const StoredRecord&)>& fn,
                 const std::function<bool(std::string_view table)>& fields_of = {}) const;

  // The counters and gauges above. Cheap (a lock, RocksDB's per-core counters summed and a
  // few property reads; no I/O): meant for every /metrics scrape.
  TierStats Stats() const;
  const std::string& dir() const;

 private:
  struct Impl;
  explicit RocksDbTier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ods::tier
