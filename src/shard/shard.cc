#include "ods/shard/shard.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <variant>

#include "event_store.h"
#include "ods/common/check.h"
#include "ods/record/codec.h"
#include "record_map.h"
#include "shard_table.h"

namespace ods::shard {
namespace {

// Longest encoded header: three varints of at most 10 bytes each.
constexpr uint64_t kMaxHeaderBytes = 30;

// Attempts of one Execute before a record that keeps changing under it is given up (kAborted).
constexpr int kMaxProcedureAttempts = 4;

// The value a Lua procedure returned for a field, as the type the field is stored as: Lua has no
// double/int, timestamp or bytes distinction, so an integer goes back into a double or timestamp
// field and a string into a bytes field. Other mismatches are left for validation to report.
void CoerceToStoredType(std::optional<ValueType> stored, record::Value& value) {
  if (!stored) return;
  if (const auto* i = std::get_if<int64_t>(&value)) {
    if (*stored == ValueType::kDouble) {
      value = static_cast<double>(*i);
    } else if (*stored == ValueType::kTimestamp) {
      value = record::Timestamp{*i};
    }
  } else if (auto* text = std::get_if<std::string>(&value)) {
    if (*stored == ValueType::kBytes) value = record::Bytes{std::move(*text)};
  }
}

ProcedureOutcome Failed(Status status, bool budget_exhausted = false) {
  ProcedureOutcome outcome;
  outcome.status = std::move(status);
  outcome.budget_exhausted = budget_exhausted;
  return outcome;
}

}  // namespace

Shard::Shard(uint32_t id, std::vector<std::shared_ptr<const record::TableSchema>> tables,
             const Clock& clock, uint64_t max_memory_bytes,
             std::vector<std::shared_ptr<const TieringPolicy>> tiering)
    : id_(id), clock_(clock), max_memory_bytes_(max_memory_bytes) {
  field_names_ = std::make_unique<std::atomic<size_t>[]>(tables.size());
  MutexLock lock(mu_);
  events_ = std::make_unique<EventStore>(clock_, function_errors_);
  for (auto& schema : tables) {
    const bool may_tier = tables_.size() < tiering.size() && tiering[tables_.size()] != nullptr;
    auto table = std::make_unique<Table>(/*access_stamps=*/may_tier);
    if (may_tier && !tiering[tables_.size()]->rules.empty()) table->tiering = tiering[tables_.size()];
    table->ttl = schema->ttl_micros();
    table->ever_ttl = table->ttl > 0;
    std::vector<std::string> names;
    for (const auto& f : schema->fields()) names.push_back(f.name);
    table->dict = record::FieldDictionary(names);
    table->schema = std::move(schema);
    field_names_[tables_.size()].store(table->dict.size(), std::memory_order_relaxed);
    tables_.push_back(std::move(table));
  }
}

Shard::~Shard() = default;

uint64_t Shard::MaxEntryBytes(std::string_view key, const record::Record& record) {
  return RecordMap::EntryBytes(key.size(), kMaxHeaderBytes + record::EncodedFieldBytes(record),
                               RecordMap::kStampBytes);
}

bool Shard::WouldExceedMemory(uint64_t incoming_bytes) const {
  const uint64_t max = max_memory_bytes_.load(std::memory_order_relaxed);
  if (max == 0) return false;
  return memory_bytes_.load(std::memory_order_relaxed) +
             event_bytes_.load(std::memory_order_relaxed) + incoming_bytes >
         max;
}

bool Shard::HasRoomForFieldNames(uint32_t table, std::span<const KeyedRecord> items,
                                 std::span<const uint32_t> indices) {
  // Fast path without the lock: even if every field of the batch were new, it would fit.
  size_t fields = 0;
  for (uint32_t i : indices) fields += items[i].record->fields.size();
  if (field_names_[table].load(std::memory_order_relaxed) + fields <= kMaxFieldNames) return true;
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  const Table& t = *tables_[table];
  std::vector<std::string_view> fresh;
  for (uint32_t i : indices) {
    for (const record::Field& f : items[i].record->fields) {
      if (!t.dict.Find(f.name)) fresh.push_back(f.name);
    }
  }
  if (fresh.empty()) return true;
  std::sort(fresh.begin(), fresh.end());
  const auto distinct =
      static_cast<size_t>(std::unique(fresh.begin(), fresh.end()) - fresh.begin());
  return t.dict.size() + distinct <= kMaxFieldNames;
}

void Shard::Put(uint32_t table, std::span<const KeyedRecord> items,
                std::span<const uint32_t> indices, std::span<uint64_t> versions) {
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  Table& t = *tables_[table];
  const Micros ttl = t.ttl;
  const Micros now = ttl > 0 || t.records.access_stamps() ? clock_.NowMicros() : 0;
  const Micros expire_at = ttl > 0 ? now + ttl : 0;
  const uint32_t stamp = AccessStamp(now);
  int64_t delta = 0;
  for (uint32_t i : indices) {
    const KeyedRecord& item = items[i];
    const uint64_t version = next_version_++;
    record::Encode(*item.record, expire_at, version, t.dict, t.scratch);
    delta += t.records.Upsert(item.key, t.scratch, stamp);
    if (t.below.size() != 0) delta -= static_cast<int64_t>(ForgetBelow(table, t, item.key));
    versions[i] = version;
  }
  field_names_[table].store(t.dict.size(), std::memory_order_relaxed);
  stats_.puts += indices.size();
  Account(t, delta);
}

uint64_t Shard::PutIfAbsent(uint32_t table, std::string_view key, const record::Record& record) {
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  Table& t = *tables_[table];
  const Micros now = t.ExpiryNow(clock_);
  const std::string_view encoded = t.records.Find(key);
  if (encoded.data() != nullptr && !IsExpired(encoded, now)) return 0;
  if (t.below.size() != 0) {
    const std::string_view entry = t.below.Find(key);
    if (entry.data() != nullptr && !BelowEntry::Decode(entry).ExpiredAt(now)) return 0;
  }
  const Micros clock_now = t.ttl > 0 || t.records.access_stamps() ? clock_.NowMicros() : 0;
  const Micros expire_at = t.ttl > 0 ? clock_now + t.ttl : 0;
  const uint64_t version = next_version_++;
  record::Encode(record, expire_at, version, t.dict, t.scratch);
  int64_t delta = t.records.Upsert(key, t.scratch, AccessStamp(clock_now));
  if (t.below.size() != 0) delta -= static_cast<int64_t>(ForgetBelow(table, t, key));
  field_names_[table].store(t.dict.size(), std::memory_order_relaxed);
  stats_.puts += 1;
  Account(t, delta);
  return version;
}

uint64_t Shard::ReserveVersions(uint32_t count) {
  MutexLock lock(mu_);
  const uint64_t first = next_version_;
  next_version_ += count;
  return first;
}

void Shard::PutReserved(uint32_t table, std::span<const KeyedRecord> items,
                        std::span<const uint32_t> indices, std::span<const uint64_t> versions,
                        Micros expire_at_micros) {
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  Table& t = *tables_[table];
  const uint32_t stamp = t.tiering != nullptr ? AccessStamp(clock_.NowMicros()) : 0;
  int64_t delta = 0;
  for (uint32_t i : indices) {
    const KeyedRecord& item = items[i];
    ODS_DCHECK(versions[i] < next_version_);
    record::Encode(*item.record, expire_at_micros, versions[i], t.dict, t.scratch);
    delta += t.records.Upsert(item.key, t.scratch, stamp);
    if (t.below.size() != 0) delta -= static_cast<int64_t>(ForgetBelow(table, t, item.key));
  }
  field_names_[table].store(t.dict.size(), std::memory_order_relaxed);
  stats_.puts += indices.size();
  Account(t, delta);
}

bool Shard::Restore(uint32_t table, std::string_view key, const record::Record& record,
                    Micros expire_at_micros) {
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  next_version_ = std::max(next_version_, record.version + 1);
  if (expire_at_micros != 0 && expire_at_micros <= clock_.NowMicros()) return false;
  Table& t = *tables_[table];
  record::Encode(record, expire_at_micros, record.version, t.dict, t.scratch);
  int64_t delta = t.records.Upsert(key, t.scratch, AccessStamp(clock_.NowMicros()));
  if (t.below.size() != 0) delta -= static_cast<int64_t>(ForgetBelow(table, t, key));
  field_names_[table].store(t.dict.size(), std::memory_order_relaxed);
  Account(t, delta);
  return true;
}

bool Shard::Get(uint32_t table, std::span<const std::string_view> keys,
                std::span<const uint32_t> indices, std::span<const std::string_view> fields,
                std::span<std::optional<record::Record>> out, uint64_t& budget_bytes,
                std::vector<BelowRam>* below_ram) {
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  Table& t = *tables_[table];
  t.projection.clear();
  for (std::string_view name : fields) {
    if (auto id = t.dict.Find(name)) t.projection.push_back(*id);
  }
  std::sort(t.projection.begin(), t.projection.end());
  const bool tiered = t.tiering != nullptr;
  const Micros now = tiered ? clock_.NowMicros() : t.ExpiryNow(clock_);
  const Micros expiry_now = t.ever_ttl ? now : 0;
  const uint32_t stamp = AccessStamp(now);
  uint64_t hits = 0;
  uint64_t ram_hits = 0;
  for (uint32_t i : indices) {
    const std::string_view encoded =
        tiered ? t.records.FindTouch(keys[i], stamp) : t.records.Find(keys[i]);
    if (encoded.data() == nullptr || IsExpired(encoded, expiry_now)) {
      out[i].reset();
      if (encoded.data() == nullptr && below_ram != nullptr && t.below.size() != 0) {
        if (NoteReadBelow(t, keys[i], i, expiry_now, stamp, *below_ram)) ++hits;
      }
      continue;
    }
    if (encoded.size() > budget_bytes) {
      stats_.gets += indices.size();
      stats_.get_hits += hits;
      t.counters.reads[0] += ram_hits;
      return false;
    }
    budget_bytes -= encoded.size();
    // Decoding into a record the caller passed back in reuses its buffers.
    record::Record& r = out[i] ? *out[i] : out[i].emplace();
    Status s = record::Decode(encoded, t.dict, fields.empty() ? nullptr : &t.projection, r);
    ODS_CHECK(s.ok());  // Only this shard encodes what it stores.
    ++hits;
    ++ram_hits;
  }
  stats_.gets += indices.size();
  stats_.get_hits += hits;
  t.counters.reads[0] += ram_hits;
  return true;
}

void Shard::Delete(uint32_t table, std::span<const std::string_view> keys,
                   std::span<const uint32_t> indices, std::span<uint8_t> deleted) {
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  Table& t = *tables_[table];
  const Micros now = t.ExpiryNow(clock_);
  int64_t delta = 0;
  for (uint32_t i : indices) {
    deleted[i] = 0;
    const std::string_view encoded = t.records.Find(keys[i]);
    if (encoded.data() == nullptr) {
      if (t.below.size() == 0) continue;
      const std::string_view entry = t.below.Find(keys[i]);
      if (entry.data() == nullptr) continue;
      const bool live = !BelowEntry::Decode(entry).ExpiredAt(now);
      delta -= static_cast<int64_t>(ForgetBelow(table, t, keys[i]));
      deleted[i] = live ? 1 : 0;
      stats_.deletes += live ? 1 : 0;
      continue;
    }
    const bool live = !IsExpired(encoded, now);
    delta -= static_cast<int64_t>(t.records.Erase(keys[i]));
    deleted[i] = live ? 1 : 0;
    stats_.deletes += live ? 1 : 0;
  }
  Account(t, delta);
}

void Shard::CollectKeys(uint32_t table, std::string_view prefix, std::string_view start_after,
                        size_t limit, std::vector<std::string>& out) {
  if (limit == 0) return;
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  Table& t = *tables_[table];
  const Micros now = t.ExpiryNow(clock_);
  const size_t first = out.size();
  t.records.ForEach([&](std::string_view key, std::string_view encoded) {
    if (!key.starts_with(prefix)) return;
    if (!start_after.empty() && key <= start_after) return;
    if (IsExpired(encoded, now)) return;
    out.emplace_back(key);
  });
  t.below.ForEach([&](std::string_view key, std::string_view entry) {
    if (!key.starts_with(prefix)) return;
    if (!start_after.empty() && key <= start_after) return;
    if (BelowEntry::Decode(entry).ExpiredAt(now)) return;
    out.emplace_back(key);
  });
  auto begin = out.begin() + static_cast<ptrdiff_t>(first);
  if (static_cast<size_t>(out.end() - begin) > limit) {
    std::nth_element(begin, begin + static_cast<ptrdiff_t>(limit), out.end());
    out.resize(first + limit);
  }
}

size_t Shard::SweepExpired(size_t max_visits,
                           std::vector<std::pair<uint32_t, std::string>>* removed_keys) {
  MutexLock lock(mu_);
  const Micros now = clock_.NowMicros();
  size_t removed = 0;
  size_t visits = 0;
  // Each table is entered at most twice, so a budget larger than every table ends the call.
  for (size_t entered = 0; !tables_.empty() && entered <= tables_.size() && visits < max_visits;
       ++entered) {
    if (sweep_table_ >= tables_.size()) sweep_table_ = 0;
    const auto id = static_cast<uint32_t>(sweep_table_);
    Table& t = *tables_[id];
    uint64_t freed = 0;
    if (t.ever_ttl && !sweep_below_) {
      auto expired = [now, id, removed_keys](std::string_view key, std::string_view encoded) {
        if (!IsExpired(encoded, now)) return false;
        if (removed_keys != nullptr) removed_keys->emplace_back(id, key);
        return true;
      };
      const auto [r, v] = t.records.EraseIfFrom(sweep_key_, expired, max_visits - visits, freed);
      removed += r;
      visits += v;
      Account(t, -static_cast<int64_t>(freed));
      freed = 0;
      if (!sweep_key_.empty()) break;  // the budget ran out inside this table
      sweep_below_ = true;
    }
    if (t.ever_ttl && t.below.size() != 0) {
      sweep_below_ = true;
      auto expired = [&](std::string_view key, std::string_view entry) {
        const BelowEntry e = BelowEntry::Decode(entry);
        if (!e.ExpiredAt(now)) return false;
        if (removed_keys != nullptr) removed_keys->emplace_back(id, key);
        t.CountBelow(e, -1);
        if (e.tier == StorageTier::kBacking) backing_garbage_.emplace_back(id, key);
        return true;
      };
      const auto [r, v] = t.below.EraseIfFrom(sweep_key_, expired, max_visits - visits, freed);
      removed += r;
      visits += v;
      Account(t, -static_cast<int64_t>(freed));
      if (!sweep_key_.empty()) break;
    }
    sweep_below_ = false;
    sweep_key_.clear();
    ++sweep_table_;
  }
  stats_.expired += removed;
  return removed;
}

ShardStats Shard::Stats() {
  MutexLock lock(mu_);
  ShardStats s = stats_;
  s.records = 0;
  for (const auto& t : tables_) {
    const TableTierStats& c = t->counters;
    s.records += t->records.size() + t->below.size();
    s.records_ssd += c.records[1];
    s.records_backing += c.records[2];
    s.reads_ssd += c.reads[1];
    s.reads_backing += c.reads[2];
    s.promotions += c.promotions;
    s.demotions_ssd += c.demotions[1];
    s.demotions_backing += c.demotions[2];
  }
  s.memory_bytes = memory_bytes_.load(std::memory_order_relaxed);
  s.entities = events_->entities();
  s.event_state_bytes = events_->TrackedBytes();
  s.history_events_ssd = events_->cold_events();
  s.history_moved = events_->cold_moved();
  s.tiles_entities_ssd = events_->cold_tile_entities();
  s.tiles_bytes_ssd = events_->cold_tile_bytes();
  s.tiles_moved = events_->tile_moves();
  return s;
}

std::vector<TableTierStats> Shard::TableStats() {
  MutexLock lock(mu_);
  std::vector<TableTierStats> out;
  out.reserve(tables_.size());
  for (const auto& t : tables_) {
    out.push_back(t->counters);
    out.back().records[0] = t->records.size();
  }
  return out;
}

void Shard::Account(Table& t, int64_t delta) {
  t.counters.bytes[0] += static_cast<uint64_t>(delta);
  memory_bytes_.store(memory_bytes_.load(std::memory_order_relaxed) + static_cast<uint64_t>(delta),
                      std::memory_order_relaxed);
}

uint64_t Shard::CountEventStateBytes() {
  MutexLock lock(mu_);
  return events_->MemoryBytes();
}

size_t Shard::SweepIdleEntities(size_t max_visits) {
  MutexLock lock(mu_);
  const size_t removed = events_->SweepIdle(clock_.NowMicros(), max_visits);
  event_bytes_.store(events_->TrackedBytes(), std::memory_order_relaxed);
  return removed;
}

void Shard::AddTemplate(std::shared_ptr<const TemplateSpec> spec) {
  MutexLock lock(mu_);
  events_->AddTemplate(std::move(spec));
}

Status Shard::PrepareAggregation(const AggregationSpec& spec) {
  MutexLock lock(mu_);
  return events_->PrepareAggregation(spec);
}

void Shard::DropPreparedAggregation(uint32_t aggregation_id) {
  MutexLock lock(mu_);
  events_->DropPreparedAggregation(aggregation_id);
}

Status Shard::PrepareReplacement(uint32_t aggregation_id, const AggregatorFunction& function) {
  MutexLock lock(mu_);
  return events_->PrepareReplacement(aggregation_id, function);
}

Shard::Backfill Shard::ReplaceAggregator(uint32_t aggregation_id, bool keep_state) {
  MutexLock lock(mu_);
  Backfill backfill = events_->ReplaceAggregator(aggregation_id, keep_state, clock_.NowMicros());
  event_bytes_.store(events_->TrackedBytes(), std::memory_order_relaxed);
  return backfill;
}

Shard::Backfill Shard::AddAggregation(std::shared_ptr<const AggregationSpec> spec) {
  MutexLock lock(mu_);
  auto added = events_->AddAggregation(std::move(spec), clock_.NowMicros());
  event_bytes_.store(events_->TrackedBytes(), std::memory_order_relaxed);
  return added;
}

void Shard::ApplyEvents(std::span<const ShardEvent> events, std::span<const uint32_t> indices,
                        std::span<EventOutcome> outcomes,
                        std::vector<std::pair<uint32_t, Status>>* failures) {
  MutexLock lock(mu_);
  const Micros now = clock_.NowMicros();
  uint64_t applied = 0;
  uint64_t failed = 0;
  Status error;
  auto key_of = [&](size_t k) {
    const ShardEvent& e = events[indices[k]];
    return std::pair(e.template_id, e.key);
  };
  events_->Pipelined(indices.size(), key_of, [&](size_t k) {
    const uint32_t i = indices[k];
    outcomes[i] = events_->Apply(events[i], now, error);
    applied += outcomes[i] == EventOutcome::kApplied ? 1 : 0;
    if (outcomes[i] == EventOutcome::kFailed) {
      ++failed;
      if (failures != nullptr) failures->emplace_back(i, std::move(error));
      error = OkStatus();
    }
    return true;
  });
  stats_.events_applied += applied;
  stats_.events_failed += failed;
  stats_.events_duplicate += indices.size() - applied - failed;
  event_bytes_.store(events_->TrackedBytes(), std::memory_order_relaxed);
}

bool Shard::ReadOnline(uint32_t template_id, std::span<const AggregationRead> reads,
                       std::span<const std::string_view> entities,
                       std::span<const uint32_t> indices, Micros now, uint64_t& budget_bytes,
                       Status& error, std::span<const ColdTiles> cold) {
  MutexLock lock(mu_);
  const bool read = events_->ReadOnline(template_id, reads, entities, indices, now, budget_bytes,
                                        error, cold);
  event_bytes_.store(events_->TrackedBytes(), std::memory_order_relaxed);  // answer caches
  return read;
}

bool Shard::ReadHistorical(uint32_t template_id, std::span<const AggregationRead> reads,
                           std::span<const std::string_view> entities,
                           std::span<const Micros> as_of, std::span<const uint32_t> indices,
                           uint64_t& budget_bytes, Status& error,
                           std::span<const ColdHistory> cold) {
  MutexLock lock(mu_);
  return events_->ReadHistorical(template_id, reads, entities, as_of, indices, budget_bytes,
                                 error, cold);
}

void Shard::ColdHistoryOf(uint32_t template_id, std::span<const std::string_view> entities,
                          std::span<const uint32_t> indices, std::vector<ColdHistoryRef>& out) {
  MutexLock lock(mu_);
  events_->ColdHistoryOf(template_id, entities, indices, out);
}

void Shard::CollectHistoryMoves(size_t max_visits, std::vector<HistoryMove>& out) {
  MutexLock lock(mu_);
  events_->CollectHistoryMoves(clock_.NowMicros(), max_visits, out);
}

void Shard::CommitHistoryMoves(std::span<const HistoryMove> moves, bool written) {
  MutexLock lock(mu_);
  events_->CommitHistoryMoves(moves, written);
  event_bytes_.store(events_->TrackedBytes(), std::memory_order_relaxed);
}

void Shard::TakeHistoryGarbage(std::vector<HistoryGarbage>& out) {
  MutexLock lock(mu_);
  events_->TakeHistoryGarbage(out);
}

void Shard::SetColdHistoryReader(ColdHistoryReader reader) {
  MutexLock lock(mu_);
  events_->SetColdHistoryReader(std::move(reader));
}

void Shard::ColdTilesOf(uint32_t template_id, std::span<const AggregationRead> reads,
                        std::span<const std::string_view> entities,
                        std::span<const uint32_t> indices, Micros now,
                        std::vector<ColdTilesRef>& out, TileLayouts& layouts) {
  MutexLock lock(mu_);
  events_->ColdTilesOf(template_id, reads, entities, indices, now, out, layouts);
}

void Shard::CollectTileMoves(size_t max_visits, std::vector<TileMove>& out) {
  MutexLock lock(mu_);
  events_->CollectTileMoves(clock_.NowMicros(), max_visits, out);
}

void Shard::CommitTileMoves(std::span<const TileMove> moves, bool written) {
  MutexLock lock(mu_);
  events_->CommitTileMoves(moves, written);
  event_bytes_.store(events_->TrackedBytes(), std::memory_order_relaxed);
}

void Shard::TakeTileGarbage(std::vector<TileGarbage>& out) {
  MutexLock lock(mu_);
  events_->TakeTileGarbage(out);
}

void FunctionErrorTally::Count(std::string_view function, sandbox::ErrorKind kind) {
  MutexLock lock(mu_);
  auto it = counts_.find(function);
  if (it == counts_.end()) {
    it = counts_.emplace(std::string(function), decltype(it->second){}).first;
  }
  ++it->second[static_cast<size_t>(kind)];
}

std::vector<FunctionErrorCount> FunctionErrorTally::Snapshot() const {
  MutexLock lock(mu_);
  std::vector<FunctionErrorCount> out;
  out.reserve(counts_.size());
  for (const auto& [name, counts] : counts_) out.push_back({name, counts});
  return out;
}

struct Shard::FunctionSlot {
  FunctionSlot(const Clock& clock, std::string_view name) : sandbox(clock), name(name) {}
  Mutex mu;  // held for a whole call of the function, Lua included
  sandbox::Sandbox sandbox ODS_GUARDED_BY(mu);
  sandbox::FunctionId id;  // in `sandbox`; constant after LoadFunction
  const std::string name;  // the function's name, for FunctionErrors
};

Result<sandbox::FunctionId> Shard::LoadFunction(std::string_view name, uint32_t version,
                                                std::string_view source,
                                                const sandbox::Limits& limits) {
  auto slot = std::make_shared<FunctionSlot>(clock_, name);
  {
    MutexLock lock(slot->mu);
    ODS_ASSIGN_OR_RETURN(slot->id, slot->sandbox.Load(name, version, source, limits));
  }
  MutexLock lock(functions_mu_);
  const sandbox::FunctionId id{next_function_id_++};
  functions_.emplace(id.value, std::move(slot));
  return id;
}

void Shard::UnloadFunction(sandbox::FunctionId id) {
  std::shared_ptr<FunctionSlot> slot;
  {
    MutexLock lock(functions_mu_);
    auto it = functions_.find(id.value);
    if (it == functions_.end()) return;
    slot = std::move(it->second);
    functions_.erase(it);
  }
  // `slot` (a Lua state) is freed here, outside the lock, unless a call still holds it.
}

Result<std::optional<record::Value>> Shard::CallDerived(sandbox::FunctionId function,
                                                        std::string_view entry,
                                                        std::span<const record::Field> inputs,
                                                        std::string_view entity) {
  std::shared_ptr<FunctionSlot> slot;
  {
    MutexLock lock(functions_mu_);
    auto it = functions_.find(function.value);
    if (it == functions_.end()) {
      return NotFoundError("shard " + std::to_string(id_) + " has no function " +
                           std::to_string(function.value));
    }
    slot = it->second;
  }
  MutexLock lock(slot->mu);
  Result<std::optional<record::Value>> value =
      slot->sandbox.CallDerived(slot->id, entry, inputs, entity);
  if (!value.ok()) {
    function_errors_.Count(slot->name, slot->sandbox.ErrorKindOf(slot->id, value.status()));
  }
  return value;
}

ProcedureOutcome Shard::Execute(const ProcedureCall& call) {
  std::shared_ptr<FunctionSlot> slot;
  {
    MutexLock lock(functions_mu_);
    auto it = functions_.find(call.function.value);
    if (it != functions_.end()) slot = it->second;
  }
  if (slot == nullptr) {
    return Failed(
        NotFoundError(std::string(call.label) + ": not loaded on shard " + std::to_string(id_)));
  }
  MutexLock run(slot->mu);
  std::shared_ptr<const record::TableSchema> schema;
  {
    MutexLock lock(mu_);
    ODS_CHECK(call.table < tables_.size());
    schema = tables_[call.table]->schema;
  }
  const std::string where = std::string(call.label) + ": table '" + schema->name() + "', key '" +
                            QuoteForMessage(call.key) + "'";
  ProcedureOutcome outcome;
  std::optional<record::Record> current;
  for (int attempt = 0; attempt < kMaxProcedureAttempts; ++attempt) {
    // 1. Read the record and its version (0 = absent) under the record lock, briefly.
    uint64_t read_version = 0;
    {
      MutexLock lock(mu_);
      Table& t = *tables_[call.table];
      const std::string_view encoded = t.records.Find(call.key);
      if (encoded.data() == nullptr && t.below.size() != 0 &&
          t.below.Find(call.key).data() != nullptr &&
          !BelowEntry::Decode(t.below.Find(call.key)).ExpiredAt(t.ExpiryNow(clock_))) {
        // The engine brings records into RAM before it calls; this one left again meanwhile.
        return Failed(Status(StatusCode::kAborted,
                             where + ": the record moved below RAM during the call; retry"));
      }
      if (encoded.data() == nullptr || IsExpired(encoded, t.ExpiryNow(clock_))) {
        current.reset();
      } else {
        record::Record& r = current ? *current : current.emplace();
        Status s = record::Decode(encoded, t.dict, nullptr, r);
        ODS_CHECK(s.ok());  // Only this shard encodes what it stores.
        read_version = r.version;
      }
      ++stats_.gets;
      stats_.get_hits += current ? 1 : 0;
    }
    // 2. Run the procedure with no record lock held: other calls on this shard go on.
    Result<sandbox::ProcedureResult> result = slot->sandbox.CallProcedure(
        slot->id, call.entry, call.key, current ? &current->fields : nullptr, call.args);
    if (!result.ok()) {
      function_errors_.Count(slot->name, slot->sandbox.ErrorKindOf(slot->id, result.status()));
      const StatusCode code = result.status().code();
      return Failed(result.status(), code == StatusCode::kResourceExhausted ||
                                         code == StatusCode::kDeadlineExceeded);
    }
    outcome.value = std::move(result->value);
    if (!result->record) return outcome;
    if (call.read_only) {
      return Failed(FailedPreconditionError(
          where + ": the table is durable and a procedure's new record would not reach the "
                  "durable tier; procedures may only read durable tables for now"));
    }

    // 3. Validate the new record as a Put would.
    record::Record next;
    next.fields = std::move(*result->record);
    next.event_time_micros = current ? current->event_time_micros : 0;
    for (record::Field& f : next.fields) {
      std::optional<ValueType> stored;
      if (auto index = schema->FieldIndex(f.name)) {
        stored = schema->fields()[*index].type;
      } else if (const record::Value* old = current ? current->Find(f.name) : nullptr) {
        stored = record::TypeOf(*old);
      }
      CoerceToStoredType(stored, f.value);
    }
    const size_t bytes = record::EncodedFieldBytes(next);
    if (call.max_record_bytes != 0 && bytes > call.max_record_bytes) {
      return Failed(FailedPreconditionError(
          where + ": new record of about " + std::to_string(bytes) +
          " bytes exceeds limits.max_record_bytes " + std::to_string(call.max_record_bytes)));
    }
    if (Status s = schema->Validate(call.key, next); !s.ok()) {
      return Failed(
          FailedPreconditionError(std::string(call.label) + ": new record: " + s.message()));
    }
    if (WouldExceedMemory(MaxEntryBytes(call.key, next))) {
      return Failed(ResourceExhaustedError(where + ": RAM budget reached (shard " +
                                           std::to_string(id_) +
                                           " is at its share of storage.ram.max_bytes)"));
    }
    const KeyedRecord item{call.key, &next};
    const uint32_t only = 0;
    if (!HasRoomForFieldNames(call.table, std::span(&item, 1), std::span(&only, 1))) {
      return Failed(ResourceExhaustedError(where + ": a free-form table takes at most " +
                                           std::to_string(kMaxFieldNames) +
                                           " distinct field names"));
    }

    // 4. Commit if the record is still the version the procedure saw.
    MutexLock lock(mu_);
    Table& t = *tables_[call.table];
    const std::string_view encoded = t.records.Find(call.key);
    uint64_t live_version = 0;
    if (encoded.data() != nullptr && !IsExpired(encoded, t.ExpiryNow(clock_))) {
      Result<record::EncodedHeader> header = record::DecodeHeader(encoded);
      ODS_CHECK(header.ok());
      live_version = header->version;
    }
    if (live_version != read_version) continue;  // a Put or Delete got in: run again
    const Micros ttl = t.ttl;
    const uint64_t version = next_version_++;
    record::Encode(next, ttl > 0 ? clock_.NowMicros() + ttl : 0, version, t.dict, t.scratch);
    const int64_t delta =
        t.records.Upsert(call.key, t.scratch, AccessStamp(clock_.NowMicros()));
    field_names_[call.table].store(t.dict.size(), std::memory_order_relaxed);
    ++stats_.puts;
    Account(t, delta);
    outcome.written = true;
    outcome.version = version;
    return outcome;
  }
  return Failed(Status(StatusCode::kAborted, where + ": the record changed during each of " +
                                                 std::to_string(kMaxProcedureAttempts) +
                                                 " runs of the procedure; try again"));
}

}  // namespace ods::shard
