#include "ods/engine/engine.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "ods/common/hash.h"
#include "ods/common/logging.h"
#include "ods/common/varint.h"
#include "ods/common/units.h"
#include "ods/record/codec.h"
#include "ods/tier/backing_store.h"
#include "ods/tier/rocksdb_tier.h"
#include "catalog.h"
#include "group_by_shard.h"
#include "read_through.h"
#include "tile_cache.h"

namespace ods::engine {
namespace {

// Records and event states one sweep visits per shard each second (~0.1 ms under the lock with
// cold slots), resuming where the last one stopped. A full walk each second held every shard
// for ~0.6 ms at 6k entities a shard, and a lookup that followed the sweep through the shards
// waited behind it at each one: the p99 of lookups.
constexpr size_t kSweepVisitsPerShard = 1024;
constexpr auto kSweepInterval = std::chrono::seconds(1);

// The shard's view of a table's tiering config; null when it has no rules.
std::shared_ptr<const shard::TieringPolicy> TieringPolicyOf(const config::TableConfig& t) {
  if (t.tiering.empty()) return nullptr;
  auto policy = std::make_shared<shard::TieringPolicy>();
  for (const config::TierRuleConfig& r : t.tiering) {
    policy->rules.push_back({r.to, r.transient, r.idle_for_micros, r.age_micros, r.field});
  }
  switch (t.promote) {
    case config::Promote::kOnAccess: policy->promote = shard::PromotePolicy::kOnAccess; break;
    case config::Promote::kAfterHits: policy->promote = shard::PromotePolicy::kAfterHits; break;
    case config::Promote::kNever: policy->promote = shard::PromotePolicy::kNever; break;
  }
  policy->promote_after_hits = std::max<uint32_t>(t.promote_after_hits, 1);
  return policy;
}

}  // namespace

std::shared_ptr<const Engine::TierSettings> Engine::MakeTierSettings(config::Config config,
                                                                     uint64_t generation,
                                                                     Micros reloaded_at_micros) {
  auto s = std::make_shared<TierSettings>();
  for (const config::TableConfig& t : config.tables) s->policies.push_back(TieringPolicyOf(t));
  for (uint32_t t = 0; t < config.tables.size(); ++t) {
    if (s->policies[t] != nullptr) s->budget_order.push_back(t);
  }
  std::stable_sort(s->budget_order.begin(), s->budget_order.end(), [&](uint32_t a, uint32_t b) {
    return config.tables[a].priority < config.tables[b].priority;
  });
  s->config = std::move(config);
  s->generation = generation;
  s->reloaded_at_micros = reloaded_at_micros;
  return s;
}

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
    while (true) {
      cv.wait_for(lock, kSweepInterval, [this] { return stop || wake; });
      if (stop) break;
      wake = false;
      lock.unlock();
      engine.SweepExpiredOnce();
      engine.SweepTiersOnce();
      engine.SweepHistoryOnce();
      engine.SweepTilesOnce();
      lock.lock();
    }
  }
  // Runs a sweep now rather than at the next interval (a budget was hit). Never blocks long.
  void Wake() {
    {
      std::lock_guard<std::mutex> lock(mu);
      wake = true;
    }
    cv.notify_all();
  }
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  bool wake = false;
  std::thread thread;  // Last: starts after the members above exist.
};

class Engine::WriteOrderLocks {
 public:
  WriteOrderLocks(const Engine& engine, const ShardGroups& groups, size_t shard_count)
      : engine_(engine) {
    for (size_t s = 0; s < shard_count; ++s) {
      if (groups.Of(s).empty()) continue;
      engine_.write_order_mu_[s].lock();
      locked_.push_back(static_cast<uint32_t>(s));
    }
  }
  ~WriteOrderLocks() {
    for (uint32_t s : locked_) engine_.write_order_mu_[s].unlock();
  }
  WriteOrderLocks(const WriteOrderLocks&) = delete;
  WriteOrderLocks& operator=(const WriteOrderLocks&) = delete;
  const std::vector<uint32_t>& shards() const { return locked_; }

 private:
  const Engine& engine_;
  std::vector<uint32_t> locked_;  // ascending
};

void Engine::WakeSweeper() {
  if (sweeper_ != nullptr) sweeper_->Wake();
}

Engine::Engine(config::Config config, const Clock& clock)
    : config_(std::move(config)), clock_(clock) {}

Engine::~Engine() {
  sweeper_.reset();
  if (tier_ != nullptr) {
    const tier::TierStats t = tier_->Stats();
    Logger("ods.engine")
        ->info("durable tier {}: closing after {} batches written, {} fsyncs", tier_->dir(),
               t.batches_written, t.syncs);
  }
}

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
  engine->tier_settings_.store(MakeTierSettings(config, 1, 0));
  const std::shared_ptr<const TierSettings> settings = engine->Settings();
  engine->tile_cache_ = std::make_unique<TileCache>(config.storage.tile_cache_bytes);
  engine->read_latency_ = std::make_unique<LatencyHistogram[]>(config.tables.size());
  engine->ttl_ = std::make_unique<std::atomic<Micros>[]>(config.tables.size());
  engine->markers_ = std::make_unique<std::atomic<bool>[]>(config.tables.size());
  engine->transient_ = std::make_unique<std::atomic<bool>[]>(config.tables.size());
  engine->ram_max_bytes_.store(config.storage.ram_max_bytes);
  // Tables with tiering rules at start keep access times (4 bytes a record): a reload may
  // change their rules, not give rules to other tables (that needs a restart). Access times on
  // every durable table cost 16 B/record in the memory benchmark (records crossing a malloc
  // step), so they are paid only where rules use them.
  std::vector<std::shared_ptr<const shard::TieringPolicy>> may_tier(config.tables.size());
  for (uint32_t t = 0; t < config.tables.size(); ++t) {
    engine->ttl_[t].store(config.tables[t].ttl_micros);
    engine->markers_[t].store(settings->policies[t] != nullptr &&
                              settings->policies[t]->Targets(StorageTier::kBacking));
    engine->transient_[t].store(settings->policies[t] != nullptr &&
                                settings->policies[t]->HasTransient());
    may_tier[t] = settings->policies[t];
    engine->tiered_at_start_.push_back(may_tier[t] != nullptr);
  }
  for (uint32_t i = 0; i < config.server.shards; ++i) {
    engine->shards_.push_back(std::make_unique<shard::Shard>(i, engine->tables_, clock,
                                                             shard_budget, may_tier));
  }
  for (const config::TableConfig& t : config.tables) {
    engine->durability_.push_back(config::DurabilityOf(config, t));
  }
  ODS_RETURN_IF_ERROR(engine->OpenTierAndRecover());
  ODS_RETURN_IF_ERROR(engine->OpenBackingStore());
  ODS_RETURN_IF_ERROR(engine->OpenReadThrough());
  if (config.subscriptions.retained_changes > 0) {
    engine->change_log_ = std::make_unique<ChangeLog>(config.subscriptions.retained_changes,
                                                      config.subscriptions.queue_size,
                                                      config.subscriptions.max_subscribers);
    if (engine->write_order_mu_ == nullptr) {
      engine->write_order_mu_ = std::make_unique<std::mutex[]>(engine->shards_.size());
    }
  }
  {
    MutexLock lock(engine->apply_mu_);
    engine->catalogs_.push_back(std::make_unique<const Catalog>());
    engine->catalog_.store(engine->catalogs_.back().get(), std::memory_order_release);
  }
  // Functions first: aggregations may name Lua aggregators.
  ODS_RETURN_IF_ERROR(CheckConfigFunctions(config));  // every problem at once, as config does
  for (const config::FunctionConfig& f : config.functions) {
    ODS_RETURN_IF_ERROR(engine->RegisterFunction(SpecFromConfig(f)).status());
  }
  ODS_RETURN_IF_ERROR(engine->ApplyDefinitions(config.definitions).status());
  // Always: event templates may be applied at run time, and their idle entities need sweeping.
  engine->sweeper_ = std::make_unique<Sweeper>(*engine);
  Logger("ods.engine")
      ->info("engine ready: {} tables, {} shards, RAM budget {}", engine->tables_.size(),
             engine->shards_.size(),
             config.storage.ram_max_bytes == 0 ? std::string("unlimited")
                                               : FormatBytes(config.storage.ram_max_bytes));
  return engine;
}

Status Engine::OpenTierAndRecover() {
  const bool any_durable =
      std::any_of(durability_.begin(), durability_.end(),
                  [](config::Durability d) { return d != config::Durability::kNone; });
  const auto& templates = config_.definitions.event_templates;
  const bool events_below_ram =
      std::any_of(templates.begin(), templates.end(), [](const config::EventTemplateConfig& t) {
        return t.history_ssd_after_micros > 0 || t.tiles_ssd_after_micros > 0;
      });
  if (!any_durable && !events_below_ram) return OkStatus();
  auto log = Logger("ods.engine");
  const std::filesystem::path dir = std::filesystem::path(config_.storage.data_dir) / "records";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return UnavailableError("cannot create data dir '" + dir.string() + "': " + ec.message());
  }
  ODS_ASSIGN_OR_RETURN(tier_, tier::RocksDbTier::Open(
                                  {dir.string(), config_.storage.durability_window_micros}));
  for (auto& shard : shards_) {
    shard->SetColdHistoryReader([this](uint32_t template_id, std::string_view entity,
                                       uint64_t first_seq, uint64_t last_seq,
                                       std::vector<shard::HistoryEvent>& out) {
      return ReadColdEvents(template_id, entity, first_seq, last_seq, out);
    });
  }
  write_order_mu_ = std::make_unique<std::mutex[]>(shards_.size());

  const auto start = std::chrono::steady_clock::now();
  std::map<std::string, uint32_t, std::less<>> durable_tables;
  for (uint32_t i = 0; i < tables_.size(); ++i) {
    if (durability_[i] != config::Durability::kNone) durable_tables[tables_[i]->name()] = i;
  }
  uint64_t loaded = 0;
  uint64_t below_ram = 0;
  uint64_t expired = 0;
  uint64_t skipped = 0;
  uint64_t invalid = 0;
  tier::WriteBatch expired_batch;
  // Records of tiered tables stay below RAM until read: their fields are not decoded.
  auto fields_of = [&](std::string_view table) {
    auto it = durable_tables.find(table);
    return it == durable_tables.end() || Settings()->policies[it->second] == nullptr;
  };
  ODS_RETURN_IF_ERROR(tier_->ForEach([&](const tier::StoredRecord& r) {
    auto it = durable_tables.find(r.table);
    if (it == durable_tables.end()) {
      ++skipped;  // A table no longer configured, or now `none`: left on disk, not served.
      return;
    }
    const uint32_t shard = ShardOf(r.table, r.key);
    // A tiered table's records are loaded lazily: an entry says where each is, and the first
    // read brings it into RAM. A marker's record is in the backing store.
    if (r.in_backing || Settings()->policies[it->second] != nullptr) {
      const shard::Location where{r.in_backing ? StorageTier::kBacking : StorageTier::kSsd,
                                  r.record->version, r.expire_at_micros,
                                  r.record->event_time_micros,
                                  static_cast<uint32_t>(r.bytes)};
      if (shards_[shard]->RestoreBelowRam(it->second, r.key, where)) {
        ++below_ram;
      } else if (r.expire_at_micros != 0 && r.expire_at_micros <= clock_.NowMicros()) {
        ++expired;
        expired_batch.Delete(r.table, r.key);
      } else if (r.in_backing) {
        expired_batch.DeleteMarker(r.table, r.key);  // stale: the record was written since
      }
      return;
    }
    // The table's schema may have changed since the record was stored.
    if (!tables_[it->second]->Validate(r.key, *r.record).ok()) {
      ++invalid;  // Left on disk, not served: a later Put or Delete of the key replaces it.
      return;
    }
    if (shards_[shard]->Restore(it->second, r.key, *r.record, r.expire_at_micros)) {
      ++loaded;
    } else {
      ++expired;
      expired_batch.Delete(r.table, r.key);
    }
  }, fields_of));
  if (!expired_batch.empty()) ODS_RETURN_IF_ERROR(tier_->Write(expired_batch).status());
  recovered_records_ = loaded + below_ram;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  log->info(
      "durable tier {}: recovered {} records into RAM and {} below RAM (loaded on first read) "
      "in {} ms ({} expired removed, {} of tables not durable now left on disk)",
      dir.string(), loaded, below_ram, ms, expired, skipped);
  if (invalid > 0) {
    log->warn("durable tier {}: {} stored records do not fit their table's schema now; left on "
              "disk, not served",
              dir.string(), invalid);
  }
  return OkStatus();
}

Status Engine::OpenBackingStore() {
  if (!config_.storage.backing.has_value()) return OkStatus();
  const config::BackingConfig& backing = *config_.storage.backing;
  tier::BackingStoreOptions options;
  switch (backing.kind) {
    case config::BackingStoreKind::kDirectory:
      options.kind = tier::BackingKind::kDirectory;
      options.directory.dir = config::BackingDirOf(config_.storage, backing);
      break;
    case config::BackingStoreKind::kPostgres:
      options.kind = tier::BackingKind::kPostgres;
      options.postgres.conninfo = backing.postgres_conninfo;
      options.postgres.table = backing.postgres_table;
      break;
  }
  ODS_ASSIGN_OR_RETURN(backing_, tier::OpenBackingStore(options));
  ODS_ASSIGN_OR_RETURN(const tier::BackingStats stats, backing_->Stats());
  Logger("ods.engine")
      ->info("backing store {}: {} records, {}", backing_->Describe(), stats.records,
             FormatBytes(stats.bytes));
  return OkStatus();
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
  uint64_t sync_ticket = 0;
  uint32_t table_id = 0;
  Result<std::vector<uint64_t>> versions = PutApply(table, records, sync_ticket, table_id);
  if (!versions.ok() || sync_ticket == 0) return versions;
  if (Status s = tier_->WaitDurable(sync_ticket); !s.ok()) {
    return NotDurableError(table_id, "written", s);
  }
  return versions;
}

void Engine::PutThen(std::string_view table, std::span<const shard::KeyedRecord> records,
                     PutDone done) {
  uint64_t sync_ticket = 0;
  uint32_t table_id = 0;
  Result<std::vector<uint64_t>> versions = PutApply(table, records, sync_ticket, table_id);
  if (!versions.ok() || sync_ticket == 0) {
    done(std::move(versions));
    return;
  }
  tier_->OnDurable(sync_ticket, [this, table_id, versions = std::move(*versions),
                                 done = std::move(done)](const Status& s) mutable {
    if (!s.ok()) {
      done(NotDurableError(table_id, "written", s));
    } else {
      done(std::move(versions));
    }
  });
}

Status Engine::NotDurableError(uint32_t table_id, std::string_view what,
                               const Status& cause) const {
  return Status(cause.code(), "table '" + tables_[table_id]->name() + "': " + std::string(what) +
                                  " but not made durable (it may not survive a crash): " +
                                  cause.message());
}

Result<std::vector<uint64_t>> Engine::PutApply(std::string_view table,
                                               std::span<const shard::KeyedRecord> records,
                                               uint64_t& sync_ticket, uint32_t& table_id_out) {
  sync_ticket = 0;
  ODS_ASSIGN_OR_RETURN(const uint32_t table_id, FindTable(table));
  table_id_out = table_id;
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
  const uint64_t ram_max_bytes = ram_max_bytes_.load(std::memory_order_relaxed);
  for (size_t s = 0; ram_max_bytes != 0 && s < shards_.size(); ++s) {
    uint64_t incoming = 0;
    for (uint32_t i : groups.Of(s)) {
      // Counted as the shard will count it (entry overhead and header included): a payload-only
      // estimate let a batch of small records overshoot the budget many times over.
      incoming += shard::Shard::MaxEntryBytes(records[i].key, *records[i].record);
    }
    if (incoming > 0 && shards_[s]->WouldExceedMemory(incoming)) {
      WakeSweeper();  // tiering may make room
      return ResourceExhaustedError(
          "table '" + schema.name() + "': RAM budget reached (shard " + std::to_string(s) +
          " is at its share of storage.ram.max_bytes " +
          FormatBytes(ram_max_bytes) +
          "); delete records, raise the budget, or let tiering rules move cold records out");
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
  if (durability_[table_id] != config::Durability::kNone) {
    return PutDurable(table_id, records, groups, sync_ticket);
  }
  std::vector<uint64_t> versions(records.size());
  for (size_t s = 0; s < shards_.size(); ++s) {
    if (groups.Of(s).empty()) continue;
    if (!Recording()) {
      shards_[s]->Put(table_id, records, groups.Of(s), versions);
      continue;
    }
    // The write-order lock puts the log in the order the shard applied the writes of a key.
    std::lock_guard<std::mutex> order(write_order_mu_[s]);
    shards_[s]->Put(table_id, records, groups.Of(s), versions);
    PublishPuts(table_id, records, groups.Of(s), versions);
  }
  return versions;
}

void Engine::PublishPuts(uint32_t table_id, std::span<const shard::KeyedRecord> records,
                         std::span<const uint32_t> group, std::span<const uint64_t> versions) {
  std::vector<Change> changes(group.size());
  const Micros now = clock_.NowMicros();
  const std::string& table = tables_[table_id]->name();
  for (size_t j = 0; j < group.size(); ++j) {
    const uint32_t i = group[j];
    Change& c = changes[j];
    c.kind = ChangeKind::kPut;
    c.source = table;
    c.key = records[i].key;
    c.record = *records[i].record;
    c.record.version = versions[i];
    c.at_micros = now;
  }
  change_log_->Append(std::move(changes));
}

void Engine::PublishDeletes(uint32_t table_id, std::span<const std::string_view> keys,
                            std::span<const uint32_t> group, std::span<const uint8_t> deleted) {
  std::vector<Change> changes;
  const Micros now = clock_.NowMicros();
  for (uint32_t i : group) {
    if (deleted[i] == 0) continue;
    Change& c = changes.emplace_back();
    c.kind = ChangeKind::kDelete;
    c.source = tables_[table_id]->name();
    c.key = keys[i];
    c.at_micros = now;
  }
  change_log_->Append(std::move(changes));
}

// Ordering: tier first, then RAM, under the shards' write-order locks; the fsync after both,
// with no lock held (Put waits for it, PutThen is called back). A crash before the tier write loses an unacknowledged batch; between the
// tier write and the fsync it loses the batch (sync: never acknowledged; async: within the
// window) or keeps it whole (the log holds batches atomically); after the fsync the batch is
// recovered. Writing the tier first means a refused tier write leaves RAM untouched.
Result<std::vector<uint64_t>> Engine::PutDurable(uint32_t table_id,
                                                 std::span<const shard::KeyedRecord> records,
                                                 const ShardGroups& groups,
                                                 uint64_t& sync_ticket) {
  const record::TableSchema& schema = *tables_[table_id];
  const Micros ttl = ttl_[table_id].load(std::memory_order_relaxed);
  const Micros expire_at = ttl > 0 ? clock_.NowMicros() + ttl : 0;
  std::vector<uint64_t> versions(records.size());
  Result<uint64_t> ticket = uint64_t{0};
  {
    WriteOrderLocks locks(*this, groups, shards_.size());
    for (uint32_t s : locks.shards()) {
      const std::span<const uint32_t> group = groups.Of(s);
      uint64_t next = shards_[s]->ReserveVersions(static_cast<uint32_t>(group.size()));
      for (uint32_t i : group) versions[i] = next++;
    }
    tier::WriteBatch batch;
    // A record that was in the backing store leaves a marker that this write outdates.
    const bool markers = markers_[table_id].load(std::memory_order_relaxed);
    // Records a transient rule matches stay in RAM only: the durable tier drops its old copy.
    std::shared_ptr<const TierSettings> settings;
    const shard::TieringPolicy* transient = nullptr;
    if (transient_[table_id].load(std::memory_order_relaxed)) {
      settings = Settings();
      transient = settings->policies[table_id].get();
    }
    const Micros now = transient != nullptr ? clock_.NowMicros() : 0;
    for (size_t i = 0; i < records.size(); ++i) {
      if (transient != nullptr && shard::IsTransient(*transient, now, *records[i].record)) {
        batch.Delete(schema.name(), records[i].key);
        continue;
      }
      batch.Put(schema.name(), records[i].key, *records[i].record, expire_at, versions[i]);
      if (markers) batch.DeleteMarker(schema.name(), records[i].key);
    }
    ticket = tier_->Write(batch);
    if (ticket.ok()) {
      for (uint32_t s : locks.shards()) {
        shards_[s]->PutReserved(table_id, records, groups.Of(s), versions, expire_at);
        if (Recording()) PublishPuts(table_id, records, groups.Of(s), versions);
      }
    }
  }
  if (!ticket.ok()) {
    return Status(ticket.status().code(),
                  "table '" + schema.name() + "': nothing written: " + ticket.status().message());
  }
  if (durability_[table_id] == config::Durability::kSync) sync_ticket = *ticket;
  return versions;
}

Status Engine::Get(std::string_view table, std::span<const std::string_view> keys,
                   std::span<const std::string_view> fields,
                   std::vector<std::optional<record::Record>>& out) {
  ODS_ASSIGN_OR_RETURN(const uint32_t table_id, FindTable(table));
  const ScopedLatency timed(read_latency_[table_id]);
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
  // Records below RAM exist only in durable tables.
  std::vector<shard::BelowRam> below;
  std::vector<shard::BelowRam>* below_ram =
      durability_[table_id] != config::Durability::kNone ? &below : nullptr;
  auto too_large = [&] {
    return ResourceExhaustedError(
        "table '" + schema.name() + "': the " + std::to_string(keys.size()) +
        " records asked for exceed limits.max_message_bytes " +
        FormatBytes(config_.limits.max_message_bytes) + "; ask for fewer keys or fields");
  };
  for (size_t s = 0; s < shards_.size(); ++s) {
    if (groups.Of(s).empty()) continue;
    below.clear();
    bool fits = shards_[s]->Get(table_id, keys, groups.Of(s), fields, out, budget_bytes, below_ram);
    if (fits && !below.empty()) {
      ODS_ASSIGN_OR_RETURN(fits, ReadBelowRam(table_id, static_cast<uint32_t>(s), keys, fields,
                                              below, out, budget_bytes));
    }
    if (!fits) return too_large();
  }
  if (read_through_[table_id] != nullptr) {
    ODS_ASSIGN_OR_RETURN(const bool fits, ReadThrough(table_id, keys, fields, out, budget_bytes));
    if (!fits) return too_large();
  }
  return OkStatus();
}

Result<std::vector<uint8_t>> Engine::Delete(std::string_view table,
                                            std::span<const std::string_view> keys) {
  uint64_t sync_ticket = 0;
  uint32_t table_id = 0;
  Result<std::vector<uint8_t>> deleted = DeleteApply(table, keys, sync_ticket, table_id);
  if (!deleted.ok() || sync_ticket == 0) return deleted;
  if (Status s = tier_->WaitDurable(sync_ticket); !s.ok()) {
    return NotDurableError(table_id, "deleted", s);
  }
  return deleted;
}

void Engine::DeleteThen(std::string_view table, std::span<const std::string_view> keys,
                        DeleteDone done) {
  uint64_t sync_ticket = 0;
  uint32_t table_id = 0;
  Result<std::vector<uint8_t>> deleted = DeleteApply(table, keys, sync_ticket, table_id);
  if (!deleted.ok() || sync_ticket == 0) {
    done(std::move(deleted));
    return;
  }
  tier_->OnDurable(sync_ticket, [this, table_id, deleted = std::move(*deleted),
                                 done = std::move(done)](const Status& s) mutable {
    if (!s.ok()) {
      done(NotDurableError(table_id, "deleted", s));
    } else {
      done(std::move(deleted));
    }
  });
}

Result<std::vector<uint8_t>> Engine::DeleteApply(std::string_view table,
                                                 std::span<const std::string_view> keys,
                                                 uint64_t& sync_ticket, uint32_t& table_id_out) {
  sync_ticket = 0;
  ODS_ASSIGN_OR_RETURN(const uint32_t table_id, FindTable(table));
  table_id_out = table_id;
  const record::TableSchema& schema = *tables_[table_id];
  ODS_RETURN_IF_ERROR(CheckBatch(schema, keys.size(), "keys"));
  for (std::string_view key : keys) ODS_RETURN_IF_ERROR(CheckKey(schema, key));
  const ShardGroups& groups = GroupByShard(table, keys.size(), [&](size_t i) { return keys[i]; });
  if (durability_[table_id] != config::Durability::kNone) {
    return DeleteDurable(table_id, keys, groups, sync_ticket);
  }
  std::vector<uint8_t> deleted(keys.size(), 0);
  for (size_t s = 0; s < shards_.size(); ++s) {
    if (groups.Of(s).empty()) continue;
    if (!Recording()) {
      shards_[s]->Delete(table_id, keys, groups.Of(s), deleted);
      continue;
    }
    std::lock_guard<std::mutex> order(write_order_mu_[s]);
    shards_[s]->Delete(table_id, keys, groups.Of(s), deleted);
    PublishDeletes(table_id, keys, groups.Of(s), deleted);
  }
  return deleted;
}

// Same ordering as PutDurable.
Result<std::vector<uint8_t>> Engine::DeleteDurable(uint32_t table_id,
                                                   std::span<const std::string_view> keys,
                                                   const ShardGroups& groups,
                                                   uint64_t& sync_ticket) {
  const record::TableSchema& schema = *tables_[table_id];
  std::vector<uint8_t> deleted(keys.size(), 0);
  Result<uint64_t> ticket = uint64_t{0};
  {
    WriteOrderLocks locks(*this, groups, shards_.size());
    tier::WriteBatch batch;
    for (std::string_view key : keys) batch.Delete(schema.name(), key);
    ticket = tier_->Write(batch);
    if (ticket.ok()) {
      for (uint32_t s : locks.shards()) {
        shards_[s]->Delete(table_id, keys, groups.Of(s), deleted);
        if (Recording()) PublishDeletes(table_id, keys, groups.Of(s), deleted);
      }
    }
  }
  if (!ticket.ok()) {
    return Status(ticket.status().code(),
                  "table '" + schema.name() + "': nothing deleted: " + ticket.status().message());
  }
  if (durability_[table_id] == config::Durability::kSync) sync_ticket = *ticket;
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
  std::vector<std::pair<uint32_t, std::string>> expired;
  for (size_t s = 0; s < shards_.size(); ++s) {
    auto& shard = shards_[s];
    auto publish_expired = [&] {
      if (!Recording() || expired.empty()) return;
      std::vector<Change> changes(expired.size());
      const Micros now = clock_.NowMicros();
      for (size_t i = 0; i < expired.size(); ++i) {
        changes[i].kind = ChangeKind::kExpire;
        changes[i].source = tables_[expired[i].first]->name();
        changes[i].key = std::move(expired[i].second);
        changes[i].at_micros = now;
      }
      change_log_->Append(std::move(changes));
    };
    if (tier_ == nullptr && !Recording()) {
      removed += shard->SweepExpired(kSweepVisitsPerShard);
    } else if (tier_ == nullptr) {
      std::lock_guard<std::mutex> order(write_order_mu_[s]);
      expired.clear();
      removed += shard->SweepExpired(kSweepVisitsPerShard, &expired);
      publish_expired();
    } else {
      // Under the shard's write-order lock, so a Put of an expired key racing with the sweep
      // reaches the tier after this delete, not before it.
      std::lock_guard<std::mutex> order(write_order_mu_[s]);
      expired.clear();
      removed += shard->SweepExpired(kSweepVisitsPerShard, &expired);
      tier::WriteBatch batch;
      for (const auto& [table, key] : expired) {
        if (durability_[table] != config::Durability::kNone) {
          batch.Delete(tables_[table]->name(), key);
        }
      }
      if (!batch.empty()) {
        // RAM is already swept; a failed delete leaves an expired copy that the next start
        // skips and removes.
        if (Status st = tier_->Write(batch).status(); !st.ok()) {
          Logger("ods.engine")->warn("removing expired records from the durable tier: {}",
                                     st.message());
        }
      }
      publish_expired();
    }
    removed += shard->SweepIdleEntities(kSweepVisitsPerShard);
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
    total.history_events_ssd += s.history_events_ssd;
    total.history_moved += s.history_moved;
    total.tiles_entities_ssd += s.tiles_entities_ssd;
    total.tiles_bytes_ssd += s.tiles_bytes_ssd;
    total.tiles_moved += s.tiles_moved;
    total.records_ssd += s.records_ssd;
    total.records_backing += s.records_backing;
    total.reads_ssd += s.reads_ssd;
    total.reads_backing += s.reads_backing;
    total.promotions += s.promotions;
    total.demotions_ssd += s.demotions_ssd;
    total.demotions_backing += s.demotions_backing;
  }
  total.tier_move_errors = tier_move_errors_.load(std::memory_order_relaxed);
  const TileCache::Stats cache = tile_cache_->stats();
  total.tiles_cache_hits = cache.hits;
  total.tiles_cache_misses = cache.misses;
  total.tiles_cache_bytes = cache.bytes;
  AddReadThroughStats(total);
  total.events_rejected = events_rejected_.load(std::memory_order_relaxed);
  total.events_late = events_late_.load(std::memory_order_relaxed);
  total.recovered_records = recovered_records_;
  if (tier_ != nullptr) {
    const tier::TierStats t = tier_->Stats();
    total.durable_batches = t.batches_written;
    total.durable_syncs = t.syncs;
    total.has_durable_tier = true;
    total.durable_tier = t;
  }
  return total;
}

}  // namespace ods::engine
