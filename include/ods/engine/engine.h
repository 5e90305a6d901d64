#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/config/config.h"
#include "ods/record/schema.h"
#include "ods/record/value.h"
#include "ods/shard/shard.h"

namespace ods::engine {

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
};

// The store: the catalog of tables, N shards and the router between them. The only component
// that sees catalog, shards and limits together; the gRPC layer calls only this.
//
// Thread-safe. No global lock: Put/Get/Delete lock only the shards their keys route to, one at
// a time, each for microseconds; ScanKeys, Stats and the TTL sweep visit every shard, one at a
// time, each for O(records of that shard). Every call validates the whole request before writing anything, so a
// rejected request changes nothing.
class Engine {
 public:
  // Builds catalog and shards from `config` and starts the TTL sweeper (when a table has a TTL).
  // `config` is copied; `clock` must outlive the engine. kInvalidArgument on an unusable config.
  static Result<std::unique_ptr<Engine>> Create(const config::Config& config, const Clock& clock);
  ~Engine();  // Stops the sweeper.
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
  // (message names table, key, field); kResourceExhausted RAM budget reached.
  Result<std::vector<uint64_t>> Put(std::string_view table,
                                    std::span<const shard::KeyedRecord> records);

  // Looks up `keys` of `table`; out[i] is keys[i]'s record or nullopt (absent or expired).
  // `fields` non-empty projects to those fields. Errors: kNotFound unknown table;
  // kInvalidArgument bad key, too many keys, a projected field the table does not declare;
  // kResourceExhausted if the records found exceed limits.max_message_bytes (checked while
  // reading, so an oversized answer is never built).
  Status Get(std::string_view table, std::span<const std::string_view> keys,
             std::span<const std::string_view> fields, std::vector<std::optional<record::Record>>& out);

  // kInvalidArgument (or kNotFound for an unknown table) if a request of `size` records or keys
  // ("records", "keys") would exceed limits.max_batch_size: lets the server refuse an oversized
  // request before converting it. O(tables).
  Status CheckRequestSize(std::string_view table, size_t size, std::string_view what) const;

  // Removes `keys` of `table`; deleted[i] = 1 if keys[i] held a live record. Errors as Get.
  Result<std::vector<uint8_t>> Delete(std::string_view table, std::span<const std::string_view> keys);

  // The up-to-`limit` smallest live keys of `table` starting with `prefix` and sorting after
  // `start_after` (byte order), sorted. `limit` 0 means limits.max_batch_size; larger is
  // kInvalidArgument. Visits every shard: O(records of the table).
  Result<std::vector<std::string>> ScanKeys(std::string_view table, std::string_view prefix,
                                            std::string_view start_after, uint32_t limit);

  // Removes expired records now (the background sweeper does this every second).
  size_t SweepExpiredOnce();

  EngineStats Stats() const;

 private:
  Engine(config::Config config, const Clock& clock);
  struct Sweeper;

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

  const config::Config config_;
  const Clock& clock_;
  std::vector<std::shared_ptr<const record::TableSchema>> tables_;  // constant after Create
  std::vector<std::unique_ptr<shard::Shard>> shards_;               // constant after Create
  std::unique_ptr<Sweeper> sweeper_;
};

}  // namespace ods::engine
