#include "ods/engine/engine.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>

#include "ods/common/hash.h"
#include "ods/common/logging.h"
#include "ods/common/units.h"
#include "ods/record/codec.h"
#include "catalog.h"
#include "group_by_shard.h"

namespace ods::engine {
namespace {

// Most expired records one sweep removes per shard, so a sweep never holds a shard for long.
constexpr size_t kSweepBudgetPerShard = 4096;
constexpr auto kSweepInterval = std::chrono::seconds(1);

}  // namespace

// Background thread that removes expired records every kSweepInterval until destroyed.
struct Engine::Sweeper {
  explicit Sweeper(Engine& engine) : thread([this, &engine] { Run(engine); }) {}
  ~Sweeper() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
    thread.join();
  }
  void Run(Engine& engine) {
    std::unique_lock<std::mutex> lock(mu);
    while (!cv.wait_for(lock, kSweepInterval, [this] { return stop; })) {
      lock.unlock();
      engine.SweepExpiredOnce();
      lock.lock();
    }
  }
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::thread thread;  // Last: starts after the members above exist.
};

Engine::Engine(config::Config config, const Clock& clock)
    : config_(std::move(config)), clock_(clock) {}

Engine::~Engine() { sweeper_.reset(); }

Result<std::unique_ptr<Engine>> Engine::Create(const config::Config& config, const Clock& clock) {
  if (config.server.shards == 0) return InvalidArgumentError("server.shards must be at least 1");
  std::unique_ptr<Engine> engine(new Engine(config, clock));
  for (const config::TableConfig& t : config.tables) {
    std::vector<record::TableSchema::FieldSpec> fields;
    for (const config::FieldConfig& f : t.fields) fields.push_back({f.name, f.type});
    engine->tables_.push_back(std::make_shared<const record::TableSchema>(
        t.name, t.key_field, std::move(fields), t.free_form, t.ttl_micros));
  }
  const uint64_t per_shard_bytes = config.storage.ram_max_bytes / config.server.shards;
  const uint64_t shard_budget =
      config.storage.ram_max_bytes == 0 ? 0 : std::max<uint64_t>(per_shard_bytes, 1);
  for (uint32_t i = 0; i < config.server.shards; ++i) {
    engine->shards_.push_back(
        std::make_unique<shard::Shard>(i, engine->tables_, clock, shard_budget));
  }
  {
    MutexLock lock(engine->apply_mu_);
    engine->catalogs_.push_back(std::make_unique<const Catalog>());
    engine->catalog_.store(engine->catalogs_.back().get(), std::memory_order_release);
  }
  ODS_RETURN_IF_ERROR(engine->ApplyDefinitions(config.definitions).status());
  ODS_RETURN_IF_ERROR(CheckConfigFunctions(config));  // every problem at once, as config does
  for (const config::FunctionConfig& f : config.functions) {
    ODS_RETURN_IF_ERROR(engine->RegisterFunction(SpecFromConfig(f)).status());
  }
  // Always: event templates may be applied at run time, and their idle entities need sweeping.
  engine->sweeper_ = std::make_unique<Sweeper>(*engine);
  Logger("ods.engine")
      ->info("engine ready: {} tables, {} shards, RAM budget {}", engine->tables_.size(),
             engine->shards_.size(),
             config.storage.ram_max_bytes == 0 ? std::string("unlimited")
                                               : FormatBytes(config.storage.ram_max_bytes));
  return engine;
}

uint32_t Engine::ShardOf(std::string_view table, std::string_view key) const {
  return static_cast<uint32_t>(StableHash64(key, TableSeed(table)) % shards_.size());
}

Result<uint32_t> Engine::FindTable(std::string_view name) const {
  for (uint32_t i = 0; i < tables_.size(); ++i) {
    if (tables_[i]->name() == name) return i;
  }
  std::string known;
  for (const auto& t : tables_) {
    if (!known.empty()) known += ", ";
    known += t->name();
  }
  return NotFoundError("unknown table '" + QuoteForMessage(name) +
                       "'; tables: " + (known.empty() ? std::string("(none configured)") : known));
}

Status Engine::CheckKey(const record::TableSchema& table, std::string_view key) const {
  if (key.empty()) {
    return InvalidArgumentError("table '" + table.name() + "': empty key (" + table.key_field() +
                                ")");
  }
  if (key.size() > config_.limits.max_key_bytes) {
    return InvalidArgumentError("table '" + table.name() + "', key '" + QuoteForMessage(key) +
                                "': " + std::to_string(key.size()) +
                                " bytes exceeds limits.max_key_bytes " +
                                std::to_string(config_.limits.max_key_bytes));
  }
  return OkStatus();
}

Status Engine::CheckRequestSize(std::string_view table, size_t size, std::string_view what) const {
  ODS_ASSIGN_OR_RETURN(const uint32_t table_id, FindTable(table));
  return CheckBatch(*tables_[table_id], size, what);
}

Status Engine::CheckBatch(const record::TableSchema& table, size_t size,
                          std::string_view what) const {
  if (size > config_.limits.max_batch_size) {
    return InvalidArgumentError("table '" + table.name() + "': " + std::to_string(size) + " " +
                                std::string(what) + " in one call exceeds limits.max_batch_size " +
                                std::to_string(config_.limits.max_batch_size));
  }
  return OkStatus();
}

Engine::ShardGroups& Engine::ThreadShardGroups() {
  // One per thread, reused: a warm call allocates nothing. Safe because no engine call runs
  // another engine call on the same thread while it uses the groups.
  thread_local ShardGroups groups;
  return groups;
}

Result<std::vector<uint64_t>> Engine::Put(std::string_view table,
                                          std::span<const shard::KeyedRecord> records) {
  ODS_ASSIGN_OR_RETURN(const uint32_t table_id, FindTable(table));
  const record::TableSchema& schema = *tables_[table_id];
  ODS_RETURN_IF_ERROR(CheckBatch(schema, records.size(), "records"));
  for (const shard::KeyedRecord& item : records) {
    ODS_RETURN_IF_ERROR(CheckKey(schema, item.key));
    // Size first: it is O(fields) and bounds the work Validate may do.
    const size_t bytes = record::EncodedFieldBytes(*item.record);
    if (bytes > config_.limits.max_record_bytes) {
      return InvalidArgumentError("table '" + schema.name() + "', key '" +
                                  QuoteForMessage(item.key) + "': record of about " +
                                  std::to_string(bytes) +
                                  " bytes exceeds limits.max_record_bytes " +
                                  std::to_string(config_.limits.max_record_bytes));
    }
    ODS_RETURN_IF_ERROR(schema.Validate(item.key, *item.record));
  }
  const ShardGroups& groups =
      GroupByShard(table, records.size(), [&](size_t i) { return records[i].key; });
  // Without a RAM budget there is nothing to check: skip sizing every record a second time.
  for (size_t s = 0; config_.storage.ram_max_bytes != 0 && s < shards_.size(); ++s) {
    uint64_t incoming = 0;
    for (uint32_t i : groups.Of(s)) {
      // Counted as the shard will count it (entry overhead and header included): a payload-only
      // estimate let a batch of small records overshoot the budget many times over.
      incoming += shard::Shard::MaxEntryBytes(records[i].key, *records[i].record);
    }
    if (incoming > 0 && shards_[s]->WouldExceedMemory(incoming)) {
      return ResourceExhaustedError(
          "table '" + schema.name() + "': RAM budget reached (shard " + std::to_string(s) +
          " is at its share of storage.ram.max_bytes " +
          FormatBytes(config_.storage.ram_max_bytes) + "); delete records or raise the budget");
    }
  }
  if (schema.free_form()) {
    for (size_t s = 0; s < shards_.size(); ++s) {
      if (groups.Of(s).empty() ||
          shards_[s]->HasRoomForFieldNames(table_id, records, groups.Of(s))) {
        continue;
      }
      return ResourceExhaustedError(
          "table '" + schema.name() + "': a free-form table takes at most " +
          std::to_string(shard::Shard::kMaxFieldNames) +
          " distinct field names and this batch would add more; reuse field names or declare "
          "the table's fields");
    }
  }
  std::vector<uint64_t> versions(records.size());
  for (size_t s = 0; s < shards_.size(); ++s) {
    if (!groups.Of(s).empty()) shards_[s]->Put(table_id, records, groups.Of(s), versions);
  }
  return versions;
}

Status Engine::Get(std::string_view table, std::span<const std::string_view> keys,
                   std::span<const std::string_view> fields,
                   std::vector<std::optional<record::Record>>& out) {
  ODS_ASSIGN_OR_RETURN(const uint32_t table_id, FindTable(table));
  const record::TableSchema& schema = *tables_[table_id];
  ODS_RETURN_IF_ERROR(CheckBatch(schema, keys.size(), "keys"));
  for (std::string_view key : keys) ODS_RETURN_IF_ERROR(CheckKey(schema, key));
  if (!schema.free_form()) {
    for (std::string_view f : fields) {
      if (!schema.FieldIndex(f)) {
        return InvalidArgumentError("table '" + schema.name() + "', field '" + QuoteForMessage(f) +
                                    "': not a field of the table, cannot project it");
      }
    }
  }
  const ShardGroups& groups = GroupByShard(table, keys.size(), [&](size_t i) { return keys[i]; });
  out.resize(keys.size());  // Shards reuse existing records' buffers.
  uint64_t budget_bytes = config_.limits.max_message_bytes;
  for (size_t s = 0; s < shards_.size(); ++s) {
    if (groups.Of(s).empty()) continue;
    if (!shards_[s]->Get(table_id, keys, groups.Of(s), fields, out, budget_bytes)) {
      return ResourceExhaustedError(
          "table '" + schema.name() + "': the " + std::to_string(keys.size()) +
          " records asked for exceed limits.max_message_bytes " +
          FormatBytes(config_.limits.max_message_bytes) + "; ask for fewer keys or fields");
    }
  }
  return OkStatus();
}

Result<std::vector<uint8_t>> Engine::Delete(std::string_view table,
                                            std::span<const std::string_view> keys) {
  ODS_ASSIGN_OR_RETURN(const uint32_t table_id, FindTable(table));
  const record::TableSchema& schema = *tables_[table_id];
  ODS_RETURN_IF_ERROR(CheckBatch(schema, keys.size(), "keys"));
  for (std::string_view key : keys) ODS_RETURN_IF_ERROR(CheckKey(schema, key));
  const ShardGroups& groups = GroupByShard(table, keys.size(), [&](size_t i) { return keys[i]; });
  std::vector<uint8_t> deleted(keys.size(), 0);
  for (size_t s = 0; s < shards_.size(); ++s) {
    if (!groups.Of(s).empty()) shards_[s]->Delete(table_id, keys, groups.Of(s), deleted);
  }
  return deleted;
}

Result<std::vector<std::string>> Engine::ScanKeys(std::string_view table, std::string_view prefix,
                                                  std::string_view start_after, uint32_t limit) {
  ODS_ASSIGN_OR_RETURN(const uint32_t table_id, FindTable(table));
  const record::TableSchema& schema = *tables_[table_id];
  if (limit == 0) limit = config_.limits.max_batch_size;
  ODS_RETURN_IF_ERROR(CheckBatch(schema, limit, "records (scan limit)"));
  if (prefix.size() > config_.limits.max_key_bytes ||
      start_after.size() > config_.limits.max_key_bytes) {
    return InvalidArgumentError("table '" + schema.name() +
                                "': scan prefix or start_after exceeds limits.max_key_bytes " +
                                std::to_string(config_.limits.max_key_bytes));
  }
  std::vector<std::string> keys;
  for (auto& shard : shards_) shard->CollectKeys(table_id, prefix, start_after, limit, keys);
  if (keys.size() > limit) {
    std::partial_sort(keys.begin(), keys.begin() + limit, keys.end());
    keys.resize(limit);
  } else {
    std::sort(keys.begin(), keys.end());
  }
  return keys;
}

size_t Engine::SweepExpiredOnce() {
  size_t removed = 0;
  for (auto& shard : shards_) {
    removed += shard->SweepExpired(kSweepBudgetPerShard);
    removed += shard->SweepIdleEntities(kSweepBudgetPerShard);
  }
  if (removed > 0) Logger("ods.engine")->debug("swept {} expired records", removed);
  return removed;
}

EngineStats Engine::Stats() const {
  EngineStats total;
  total.shards = static_cast<uint32_t>(shards_.size());
  for (const auto& shard : shards_) {
    const shard::ShardStats s = shard->Stats();
    total.records += s.records;
    total.memory_bytes += s.memory_bytes;
    total.gets += s.gets;
    total.get_hits += s.get_hits;
    total.puts += s.puts;
    total.deletes += s.deletes;
    total.expired += s.expired;
    total.events_applied += s.events_applied;
    total.events_duplicate += s.events_duplicate;
    total.entities += s.entities;
    total.event_state_bytes += s.event_state_bytes;
  }
  total.events_rejected = events_rejected_.load(std::memory_order_relaxed);
  total.events_late = events_late_.load(std::memory_order_relaxed);
  return total;
}

}  // namespace ods::engine
