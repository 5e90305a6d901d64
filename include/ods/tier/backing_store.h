#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/record/value.h"

// The backing store (issue #6 point 2): the slowest, largest tier below RAM and the RocksDB SSD
// tier. Records are kept by (table, key) with their version and expiry, in the stored record
// format of the SSD tier (src/tier/stored_codec.h). Two implementations: `directory` (compressed
// append-only segment files, the embedded default) and `postgres` (one PostgreSQL table).
// docs/architecture.md, "Backing store". Neither the engine's read path nor demotion uses it yet
// (issue #6 point 4). No third-party header is included here.
namespace ods::tier {

// One record to store. Views and the record are borrowed for the duration of the call only.
struct BackingPut {
  std::string_view table;
  std::string_view key;
  const record::Record* record = nullptr;  // required; its `version` field is ignored
  Micros expire_at_micros = 0;             // 0 = never
  uint64_t version = 0;                    // the version the RAM store assigned
};

// The address of one record. Views borrowed for the call.
struct BackingKey {
  std::string_view table;
  std::string_view key;
};

// A record read back from the store (owned by the caller).
struct BackingEntry {
  record::Record record;        // fields sorted by name; event time and version as written
  Micros expire_at_micros = 0;  // as written; 0 = never
};

// One page of a table's keys in byte order (unsigned, shorter first on a common prefix).
struct BackingScanPage {
  std::vector<std::string> keys;
  // Pass as `start_after` to get the next page; meaningful only when `more`.
  std::string next_start_after;
  // False when the page holds the table's last key (or the table is empty).
  bool more = false;
};

// Live contents of a store.
struct BackingStats {
  uint64_t records = 0;
  // Sum over live records of table + key + stored value bytes, uncompressed: the same figure in
  // every implementation (on-disk bytes differ by compression and per-entry overhead).
  uint64_t bytes = 0;
};

// A store of records by (table, key). Implementations are thread-safe: any method may be called
// from any thread concurrently; calls may block on I/O (disk or network) for as long as that
// takes, so shard threads must not call them (the tier pool does).
//
// Arguments: a table is 1..255 bytes of printable ASCII other than space (ODS table names are
// identifiers); a key is 1..65535 bytes of any value. Other
// values fail with kInvalidArgument and change nothing.
//
// Errors, common to every method: kUnavailable when the storage cannot be reached or an I/O
// operation fails (disk error, PostgreSQL down; the message names the file or the connection
// target, never a password); kDataLoss when stored bytes are corrupt (the message names table
// and key where known, and the file and offset for the directory store).
//
// The store does not interpret expiry: it returns expired records like any other. Dropping them
// is the caller's job (it owns the clock).
class BackingStore {
 public:
  virtual ~BackingStore() = default;

  // Stores every record of `batch`, replacing what is stored under the same (table, key). A
  // later entry for the same key in the batch wins. All or nothing: on error nothing of the
  // batch is visible, before or after a restart. Durable when it returns OK (fsync, or
  // PostgreSQL commit). Cost: one disk write + fsync, or one transaction, per call.
  virtual Status Put(std::span<const BackingPut> batch) = 0;

  // Removes every key of `keys` (a missing key is not an error). All or nothing, durable when
  // it returns OK, as Put.
  virtual Status Delete(std::span<const BackingKey> keys) = 0;

  // The record stored under (table, key), or nullopt if there is none.
  virtual Result<std::optional<BackingEntry>> Get(std::string_view table, std::string_view key) = 0;

  // The records of `keys` in `table`, one answer per key at the key's position (nullopt for a
  // miss). Any error fails the whole call.
  virtual Result<std::vector<std::optional<BackingEntry>>> GetMany(
      std::string_view table, std::span<const std::string_view> keys) = 0;

  // At most `limit` keys of `table` greater than `start_after` ("" = from the first key), in
  // byte order. limit in [1, kMaxScanLimit], else kInvalidArgument. A page reflects one moment;
  // keys written or deleted between pages may or may not appear in later pages.
  virtual Result<BackingScanPage> ScanKeys(std::string_view table, std::string_view start_after,
                                           size_t limit) = 0;

  // Counts of live records. Directory: O(1). PostgreSQL: one aggregate query over the table.
  virtual Result<BackingStats> Stats() = 0;

  // "directory DIR" or "postgres host=... dbname=..." (no password), for logs and messages.
  virtual std::string Describe() const = 0;

  static constexpr size_t kMaxScanLimit = 100'000;
};

enum class BackingKind : uint8_t {
  kDirectory,  // compressed segment files under a directory (DirectoryStore)
  kPostgres,   // one table in a PostgreSQL database (libpqxx)
};

// "directory", "postgres".
std::string_view BackingKindName(BackingKind kind);

struct DirectoryStoreOptions {
  // Directory of the segment files; created (with parents) if missing. Required.
  std::string dir;
  // A new segment is started when the current one reaches this size. A batch is never split,
  // so a segment may exceed it by one batch. Default: 64 MiB. Range: [4 KiB, 4 GiB].
  uint64_t segment_max_bytes = uint64_t{64} << 20;
  // fsync each Put/Delete before returning. Off only for tests and bulk loads that can be
  // redone: then a crash may lose recent batches (whole batches only). Default: true.
  bool sync = true;
  // zstd level of values (1 = fastest). Default: 3. Range: [1, 19].
  int compression_level = 3;
};

struct PostgresStoreOptions {
  // libpq connection string, "host=/tmp port=5432 dbname=ods user=ods" or a postgresql:// URI.
  // Required. Its password (if any) never appears in a message or log.
  std::string conninfo;
  // Name of the table holding the records, created if missing: letters, digits and _, starting
  // with a letter or _, at most 63 bytes. Default: ods_backing.
  std::string table = "ods_backing";
};

struct BackingStoreOptions {
  BackingKind kind = BackingKind::kDirectory;
  DirectoryStoreOptions directory;  // used when kind == kDirectory
  PostgresStoreOptions postgres;    // used when kind == kPostgres
};

// Opens the directory store of `options` (see directory_store.h). Errors: kInvalidArgument bad
// options; kUnavailable directory not usable or locked by another process; kDataLoss a corrupt
// segment (other than a torn tail of the newest one, which is cut off).
Result<std::unique_ptr<BackingStore>> OpenDirectoryStore(const DirectoryStoreOptions& options);

// Connects to PostgreSQL, creates the table if missing and prepares the statements. Errors:
// kInvalidArgument bad options; kUnavailable the server cannot be reached or refuses (the
// message names host, port, database and user, never the password).
Result<std::unique_ptr<BackingStore>> OpenPostgresStore(const PostgresStoreOptions& options);

// Opens the store chosen by options.kind.
Result<std::unique_ptr<BackingStore>> OpenBackingStore(const BackingStoreOptions& options);

}  // namespace ods::tier
