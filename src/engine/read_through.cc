// Read-through from systems of record (tables.NAME.read_through; docs/architecture.md, "System
// of record read-through"): a Get miss asks the table's PostgreSQL source, and a record found
// may be stored into the table like a Put.

#include "read_through.h"

#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ods/common/logging.h"
#include "ods/common/units.h"
#include "ods/record/codec.h"
#include "ods/tier/rocksdb_tier.h"

namespace ods::engine {

bool NegativeCache::Contains(std::string_view key, Micros now) {
  MutexLock lock(mu_);
  auto it = expiry_.find(std::string(key));
  return it != expiry_.end() && it->second > now;
}

void NegativeCache::Add(std::string_view key, Micros expire_at) {
  MutexLock lock(mu_);
  auto [it, inserted] = expiry_.try_emplace(std::string(key), expire_at);
  if (!inserted) {
    it->second = expire_at;  // keeps its place in order_, so it may be forgotten early
    return;
  }
  order_.emplace_back(key);
  while (expiry_.size() > max_keys_ && !order_.empty()) {
    expiry_.erase(order_.front());
    order_.pop_front();
  }
}

size_t NegativeCache::size() const {
  MutexLock lock(mu_);
  return expiry_.size();
}

Status Engine::OpenReadThrough() {
  read_through_.resize(tables_.size());
  auto log = Logger("ods.engine");
  for (uint32_t t = 0; t < config_.tables.size(); ++t) {
    const config::TableConfig& table = config_.tables[t];
    if (!table.read_through.has_value()) continue;
    const config::ReadThroughConfig& rt = *table.read_through;
    const std::string where = rt.position + ": tables." + table.name + ".read_through: ";
    tier::PostgresSorOptions options;
    options.conninfo = rt.postgres_conninfo;
    options.table = rt.postgres_table;
    options.key_column = rt.postgres_key_column;
    for (const auto& [field, column] : rt.columns) {
      ValueType type = ValueType::kString;
      for (const config::FieldConfig& f : table.fields) {
        if (f.name == field) type = f.type;
      }
      options.columns.push_back({field, type, column});
    }
    Result<std::unique_ptr<tier::SystemOfRecord>> source =
        tier::OpenPostgresSystemOfRecord(options);
    if (!source.ok()) return InvalidArgumentError(where + source.status().message());
    if (Status s = (*source)->Check(); !s.ok()) {
      if (s.code() != StatusCode::kUnavailable) {
        return Status(s.code(), where + s.message());
      }
      log->warn("table {}: system of record {} is unreachable at start: {}; reads that miss RAM "
                "fail with UNAVAILABLE until it is back",
                table.name, (*source)->Describe(), s.message());
    } else {
      log->info("table {}: reads through to {} (cache: {}, negative_ttl: {})", table.name,
                (*source)->Describe(), rt.cache, FormatDuration(rt.negative_ttl_micros));
    }
    read_through_[t] = std::make_unique<ReadThroughSource>(rt, std::move(*source));
  }
  return OkStatus();
}

Result<bool> Engine::ReadThrough(uint32_t table_id, std::span<const std::string_view> keys,
                                 std::span<const std::string_view> fields,
                                 std::vector<std::optional<record::Record>>& out,
                                 uint64_t& budget_bytes) {
  ReadThroughSource& rt = *read_through_[table_id];
  const record::TableSchema& schema = *tables_[table_id];
  const Micros negative_ttl = rt.config.negative_ttl_micros;
  const Micros now = clock_.NowMicros();
  std::vector<uint32_t> positions;
  std::vector<std::string_view> ask;
  for (uint32_t i = 0; i < keys.size(); ++i) {
    if (out[i].has_value()) continue;
    if (negative_ttl > 0 && rt.negative.Contains(keys[i], now)) {
      rt.negative_hits.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    positions.push_back(i);
    ask.push_back(keys[i]);
  }
  if (ask.empty()) return true;
  Result<std::vector<std::optional<record::Record>>> found = rt.source->Read(ask);
  if (!found.ok()) {
    rt.errors.fetch_add(1, std::memory_order_relaxed);
    return Status(found.status().code(), "table '" + schema.name() + "': read-through: " +
                                             found.status().message());
  }
  // Checked before anything is cached, so a refused call caches nothing.
  for (size_t j = 0; j < ask.size(); ++j) {
    if (!(*found)[j].has_value()) continue;
    const size_t bytes = record::EncodedFieldBytes(*(*found)[j]);
    if (bytes > config_.limits.max_record_bytes) {
      rt.errors.fetch_add(1, std::memory_order_relaxed);
      return FailedPreconditionError(
          "table '" + schema.name() + "', key '" + QuoteForMessage(ask[j]) +
          "': the row read through from " + rt.source->Describe() + " is about " +
          std::to_string(bytes) + " bytes, over limits.max_record_bytes " +
          std::to_string(config_.limits.max_record_bytes));
    }
    if (Status s = schema.Validate(ask[j], *(*found)[j]); !s.ok()) {
      rt.errors.fetch_add(1, std::memory_order_relaxed);
      return FailedPreconditionError("read-through from " + rt.source->Describe() + ": " +
                                     s.message());
    }
  }
  for (size_t j = 0; j < ask.size(); ++j) {
    std::optional<record::Record>& rec = (*found)[j];
    const uint32_t i = positions[j];
    if (!rec.has_value()) {
      rt.misses.fetch_add(1, std::memory_order_relaxed);
      if (negative_ttl > 0) rt.negative.Add(keys[i], now + negative_ttl);
      continue;
    }
    rt.reads.fetch_add(1, std::memory_order_relaxed);
    if (rt.config.cache) {
      rec->version = CacheReadThrough(table_id, keys[i], *rec);
      if (rec->version != 0) rt.cached.fetch_add(1, std::memory_order_relaxed);
    }
    if (!fields.empty()) {
      std::erase_if(rec->fields, [&](const record::Field& f) {
        for (std::string_view name : fields) {
          if (name == f.name) return false;
        }
        return true;
      });
    }
    const uint64_t bytes = record::EncodedFieldBytes(*rec);
    if (bytes > budget_bytes) return false;
    budget_bytes -= bytes;
    out[i] = std::move(rec);
  }
  return true;
}

uint64_t Engine::CacheReadThrough(uint32_t table_id, std::string_view key,
                                  const record::Record& record) {
  const record::TableSchema& schema = *tables_[table_id];
  const uint32_t s = ShardOf(schema.name(), key);
  if (ram_max_bytes_.load(std::memory_order_relaxed) != 0 &&
      shards_[s]->WouldExceedMemory(shard::Shard::MaxEntryBytes(key, record))) {
    WakeSweeper();  // tiering may make room; this read is answered without caching
    return 0;
  }
  if (durability_[table_id] == config::Durability::kNone) {
    return shards_[s]->PutIfAbsent(table_id, key, record);
  }
  // Durable: as PutDurable, under the shard's write-order lock, which every durable write of
  // the shard takes: the key checked absent stays absent until the record is in.
  uint64_t version = 0;
  Result<uint64_t> ticket = uint64_t{0};
  {
    std::lock_guard<std::mutex> order(write_order_mu_[s]);
    if (shards_[s]->Locate(table_id, key).has_value()) return 0;
    const Micros ttl = ttl_[table_id].load(std::memory_order_relaxed);
    const Micros expire_at = ttl > 0 ? clock_.NowMicros() + ttl : 0;
    version = shards_[s]->ReserveVersions(1);
    tier::WriteBatch batch;
    batch.Put(schema.name(), key, record, expire_at, version);
    if (markers_[table_id].load(std::memory_order_relaxed)) batch.DeleteMarker(schema.name(), key);
    ticket = tier_->Write(batch);
    if (!ticket.ok()) {
      Logger("ods.engine")
          ->debug("table {}: read-through record not cached: {}", schema.name(),
                  ticket.status().message());
      return 0;
    }
    const shard::KeyedRecord item{key, &record};
    const uint32_t index = 0;
    shards_[s]->PutReserved(table_id, std::span(&item, 1), std::span(&index, 1),
                            std::span(&version, 1), expire_at);
  }
  if (durability_[table_id] == config::Durability::kSync) {
    if (Status st = tier_->WaitDurable(*ticket); !st.ok()) {
      Logger("ods.engine")
          ->debug("table {}: read-through record cached but not made durable: {}",
                  schema.name(), st.message());
    }
  }
  return version;
}

void Engine::AddReadThroughStats(EngineStats& total) const {
  for (const auto& rt : read_through_) {
    if (rt == nullptr) continue;
    total.sor_reads += rt->reads.load(std::memory_order_relaxed);
    total.sor_misses += rt->misses.load(std::memory_order_relaxed);
    total.sor_negative_hits += rt->negative_hits.load(std::memory_order_relaxed);
    total.sor_errors += rt->errors.load(std::memory_order_relaxed);
    total.sor_cached += rt->cached.load(std::memory_order_relaxed);
    total.sor_negative_keys += rt->negative.size();
  }
}

bool Engine::HasReadThrough() const {
  for (const std::unique_ptr<ReadThroughSource>& source : read_through_) {
    if (source != nullptr) return true;
  }
  return false;
}

bool Engine::ReadsThrough(std::string_view table) const {
  const Result<uint32_t> table_id = FindTable(table);
  return table_id.ok() && read_through_[*table_id] != nullptr;
}

}  // namespace ods::engine
