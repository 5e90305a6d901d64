#include "ods/shard/shard.h"

#include <absl/container/flat_hash_map.h>

#include <algorithm>
#include <utility>

#include "ods/common/check.h"
#include "ods/record/codec.h"

namespace ods::shard {
namespace {

// Estimated fixed cost of one entry beyond its key and encoded bytes: the hash-map slot (two
// std::string) plus allocator headers for out-of-line buffers.
constexpr uint64_t kEntryOverheadBytes = 2 * sizeof(std::string) + 16;

// Debian's abseil has its own string_view type; heterogeneous lookups must use it.
absl::string_view AbslView(std::string_view s) { return {s.data(), s.size()}; }

// Longest encoded header: three varints of at most 10 bytes each.
constexpr uint64_t kMaxHeaderBytes = 30;

uint64_t EntryBytes(std::string_view key, std::string_view encoded) {
  return kEntryOverheadBytes + key.size() + encoded.size();
}

}  // namespace

struct Shard::Table {
  std::shared_ptr<const record::TableSchema> schema;
  record::FieldDictionary dict;
  absl::flat_hash_map<std::string, std::string> records;  // key -> encoded record
  std::string scratch;                                    // reused encode buffer
};

Shard::Shard(uint32_t id, std::vector<std::shared_ptr<const record::TableSchema>> tables,
             const Clock& clock, uint64_t max_memory_bytes)
    : id_(id), clock_(clock), max_memory_bytes_(max_memory_bytes) {
  MutexLock lock(mu_);
  for (auto& schema : tables) {
    auto table = std::make_unique<Table>();
    std::vector<std::string> names;
    for (const auto& f : schema->fields()) names.push_back(f.name);
    table->dict = record::FieldDictionary(names);
    table->schema = std::move(schema);
    tables_.push_back(std::move(table));
  }
}

Shard::~Shard() = default;

uint64_t Shard::MaxEntryBytes(std::string_view key, const record::Record& record) {
  return kEntryOverheadBytes + key.size() + kMaxHeaderBytes + record::EncodedFieldBytes(record);
}

bool Shard::WouldExceedMemory(uint64_t incoming_bytes) const {
  if (max_memory_bytes_ == 0) return false;
  return memory_bytes_.load(std::memory_order_relaxed) + incoming_bytes > max_memory_bytes_;
}

void Shard::Put(uint32_t table, std::span<const KeyedRecord> items,
                std::span<const uint32_t> indices, std::span<uint64_t> versions) {
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  Table& t = *tables_[table];
  const Micros ttl = t.schema->ttl_micros();
  const Micros expire_at = ttl > 0 ? clock_.NowMicros() + ttl : 0;
  int64_t delta = 0;
  for (uint32_t i : indices) {
    const KeyedRecord& item = items[i];
    const uint64_t version = next_version_++;
    record::Encode(*item.record, expire_at, version, t.dict, t.scratch);
    auto [it, inserted] = t.records.try_emplace(AbslView(item.key));
    if (!inserted) delta -= static_cast<int64_t>(EntryBytes(it->first, it->second));
    // assign() reuses the old buffer when the new encoding fits: overwrites rarely allocate.
    it->second.assign(t.scratch);
    delta += static_cast<int64_t>(EntryBytes(it->first, it->second));
    versions[i] = version;
  }
  stats_.puts += indices.size();
  memory_bytes_.store(memory_bytes_.load(std::memory_order_relaxed) + delta,
                      std::memory_order_relaxed);
}

void Shard::Get(uint32_t table, std::span<const std::string_view> keys,
                std::span<const uint32_t> indices, std::span<const std::string_view> fields,
                std::span<std::optional<record::Record>> out) {
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  Table& t = *tables_[table];
  std::vector<uint32_t> projection;
  if (!fields.empty()) {
    for (std::string_view name : fields) {
      if (auto id = t.dict.Find(name)) projection.push_back(*id);
    }
    std::sort(projection.begin(), projection.end());
  }
  const Micros now = t.schema->ttl_micros() > 0 ? clock_.NowMicros() : 0;
  uint64_t hits = 0;
  for (uint32_t i : indices) {
    auto it = t.records.find(AbslView(keys[i]));
    out[i].reset();
    if (it == t.records.end()) continue;
    if (now != 0) {
      Result<record::EncodedHeader> header = record::DecodeHeader(it->second);
      ODS_CHECK(header.ok());
      if (header->expire_at_micros != 0 && header->expire_at_micros <= now) continue;
    }
    record::Record& r = out[i].emplace();
    Status s = record::Decode(it->second, t.dict, fields.empty() ? nullptr : &projection, r);
    ODS_CHECK(s.ok());  // Only this shard encodes what it stores.
    ++hits;
  }
  stats_.gets += indices.size();
  stats_.get_hits += hits;
}

void Shard::Delete(uint32_t table, std::span<const std::string_view> keys,
                   std::span<const uint32_t> indices, std::span<uint8_t> deleted) {
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  Table& t = *tables_[table];
  const Micros now = t.schema->ttl_micros() > 0 ? clock_.NowMicros() : 0;
  int64_t delta = 0;
  for (uint32_t i : indices) {
    deleted[i] = 0;
    auto it = t.records.find(AbslView(keys[i]));
    if (it == t.records.end()) continue;
    bool live = true;
    if (now != 0) {
      Result<record::EncodedHeader> header = record::DecodeHeader(it->second);
      ODS_CHECK(header.ok());
      live = header->expire_at_micros == 0 || header->expire_at_micros > now;
    }
    delta -= static_cast<int64_t>(EntryBytes(it->first, it->second));
    t.records.erase(it);
    deleted[i] = live ? 1 : 0;
    stats_.deletes += live ? 1 : 0;
  }
  memory_bytes_.store(memory_bytes_.load(std::memory_order_relaxed) + delta,
                      std::memory_order_relaxed);
}

void Shard::CollectKeys(uint32_t table, std::string_view prefix, std::string_view start_after,
                        size_t limit, std::vector<std::string>& out) {
  if (limit == 0) return;
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  Table& t = *tables_[table];
  const Micros now = t.schema->ttl_micros() > 0 ? clock_.NowMicros() : 0;
  const size_t first = out.size();
  for (const auto& [key, encoded] : t.records) {
    if (!key.starts_with(prefix)) continue;
    if (!start_after.empty() && key <= start_after) continue;
    if (now != 0) {
      Result<record::EncodedHeader> header = record::DecodeHeader(encoded);
      if (header.ok() && header->expire_at_micros != 0 && header->expire_at_micros <= now) {
        continue;
      }
    }
    out.push_back(key);
  }
  auto begin = out.begin() + static_cast<ptrdiff_t>(first);
  if (static_cast<size_t>(out.end() - begin) > limit) {
    std::nth_element(begin, begin + static_cast<ptrdiff_t>(limit), out.end());
    out.resize(first + limit);
  }
}

size_t Shard::SweepExpired(size_t max_entries) {
  MutexLock lock(mu_);
  const Micros now = clock_.NowMicros();
  size_t removed = 0;
  int64_t delta = 0;
  for (auto& table : tables_) {
    if (table->schema->ttl_micros() == 0) continue;
    auto& records = table->records;
    for (auto it = records.begin(); it != records.end() && removed < max_entries;) {
      Result<record::EncodedHeader> header = record::DecodeHeader(it->second);
      ODS_CHECK(header.ok());
      if (header->expire_at_micros != 0 && header->expire_at_micros <= now) {
        delta -= static_cast<int64_t>(EntryBytes(it->first, it->second));
        records.erase(it++);  // absl: erase leaves other iterators valid.
        ++removed;
      } else {
        ++it;
      }
    }
  }
  stats_.expired += removed;
  memory_bytes_.store(memory_bytes_.load(std::memory_order_relaxed) + delta,
                      std::memory_order_relaxed);
  return removed;
}

ShardStats Shard::Stats() {
  MutexLock lock(mu_);
  ShardStats s = stats_;
  s.records = 0;
  for (const auto& t : tables_) s.records += t->records.size();
  s.memory_bytes = memory_bytes_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace ods::shard
