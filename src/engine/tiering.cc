// The engine's side of tiering: reading records below RAM, promotion, and the moves the sweep
// (or an operator) asks for. docs/architecture.md, "Tiering".
//
// Where a record is: the shard's RAM map, or an entry there saying "SSD" or "backing" with the
// version it was moved at. Durable tables write every record through to the SSD tier
// (RocksDB), so RAM -> SSD only drops the value from RAM. A move to the backing store writes
// the record there first (durably), then, under the shard's write-order lock and only if the
// record is still the version it read, replaces it in RocksDB with a marker in one batch, then
// updates the shard. A crash between any two steps leaves the record readable where it was (the
// backing copy is then garbage). Copies in the backing store that a write, delete, expiry or
// promotion has outdated are deleted by the sweep (CollectBackingGarbage).

#include <algorithm>
#include <tuple>
#include <mutex>
#include <utility>

#include "ods/common/crash_point.h"
#include "ods/common/logging.h"
#include "ods/engine/engine.h"
#include "ods/record/codec.h"
#include "ods/tier/backing_store.h"
#include "ods/tier/rocksdb_tier.h"

namespace ods::engine {
namespace {

// Records one tier sweep step visits per shard: the rules cost ~0.2 us a record (a decode
// when a rule tests fields), so a step holds a shard for well under a millisecond.
constexpr size_t kTierVisitsPerShard = 1024;
// Samples a budget step takes from one table of a shard before it moves on (or stops).
constexpr int kBudgetRounds = 4;
// Moves to the backing store written together (one backing write, one RocksDB batch per shard).
constexpr size_t kBackingBatch = 256;

// Keeps only the fields named in `fields` (all when empty).
void Project(std::span<const std::string_view> fields, record::Record& r) {
  if (fields.empty()) return;
  std::erase_if(r.fields, [&](const record::Field& f) {
    return std::find(fields.begin(), fields.end(), f.name) == fields.end();
  });
}

}  // namespace

Result<std::optional<record::Record>> Engine::ReadFromTier(uint32_t table_id,
                                                           std::string_view key,
                                                           StorageTier tier) {
  const std::string& table = tables_[table_id]->name();
  if (tier == StorageTier::kSsd) {
    ODS_ASSIGN_OR_RETURN(std::optional<tier::StoredEntry> entry, tier_->Get(table, key));
    if (!entry) return std::optional<record::Record>();
    return std::optional<record::Record>(std::move(entry->record));
  }
  if (backing_ == nullptr) {
    return InternalError("table '" + table + "', key '" + QuoteForMessage(key) +
                         "': in the backing store, but none is configured");
  }
  ODS_ASSIGN_OR_RETURN(std::optional<tier::BackingEntry> entry, backing_->Get(table, key));
  if (!entry) return std::optional<record::Record>();
  return std::optional<record::Record>(std::move(entry->record));
}

Result<bool> Engine::ReadBelowRam(uint32_t table_id, uint32_t s,
                                  std::span<const std::string_view> keys,
                                  std::span<const std::string_view> fields,
                                  std::span<const shard::BelowRam> below,
                                  std::span<std::optional<record::Record>> out,
                                  uint64_t& budget_bytes) {
  std::vector<shard::BelowRam> again;
  for (shard::BelowRam b : below) {
    const std::string_view key = keys[b.index];
    // A record may move between the shard's answer and the read; a few rounds settle it.
    for (int attempt = 0;; ++attempt) {
      ODS_ASSIGN_OR_RETURN(std::optional<record::Record> r, ReadFromTier(table_id, key, b.tier));
      if (r.has_value()) {
        if (b.promote) {
          ODS_RETURN_IF_ERROR(PromoteRecord(table_id, s, key, b.tier, *r).status());
        }
        const uint64_t bytes = record::EncodedFieldBytes(*r) + 30;
        if (bytes > budget_bytes) return false;
        budget_bytes -= bytes;
        Project(fields, *r);
        out[b.index] = std::move(r);
        break;
      }
      if (attempt == 3) {
        return Status(StatusCode::kAborted, "table '" + tables_[table_id]->name() + "', key '" +
                                                QuoteForMessage(key) +
                                                "': the record kept moving between tiers; retry");
      }
      // Moved (or deleted) meanwhile: ask the shard again, for this key only.
      again.clear();
      const uint32_t index[] = {b.index};
      uint64_t budget = budget_bytes;
      if (!shards_[s]->Get(table_id, keys, index, fields, out, budget, &again)) return false;
      if (again.empty()) {
        if (out[b.index].has_value()) budget_bytes = budget;
        break;  // in RAM now (out set), or gone
      }
      b = again.front();
    }
  }
  return true;
}

Result<bool> Engine::PromoteRecord(uint32_t table_id, uint32_t s, std::string_view key,
                                   StorageTier tier, const record::Record& record) {
  if (tier == StorageTier::kSsd) return shards_[s]->Promote(table_id, key, record);
  // From the backing store: the record goes back into the SSD tier (replacing its marker)
  // first, so that RAM never holds what the durable tier does not.
  std::lock_guard<std::mutex> order(write_order_mu_[s]);
  const std::optional<shard::Location> where = shards_[s]->Locate(table_id, key);
  if (!where || where->tier != StorageTier::kBacking || where->version != record.version) {
    return false;
  }
  const std::string& table = tables_[table_id]->name();
  tier::WriteBatch batch;
  batch.Put(table, key, record, where->expire_at_micros, record.version);
  batch.DeleteMarker(table, key);
  ODS_RETURN_IF_ERROR(tier_->Write(batch).status());
  CrashPoint("tier.promote.ssd_written");
  const bool promoted = shards_[s]->Promote(table_id, key, record);
  CrashPoint("tier.promote.done");
  return promoted;
}

Result<bool> Engine::CarryOut(const shard::TierMove& move) {
  const std::string& table = tables_[move.table]->name();
  const uint32_t s = ShardOf(table, move.key);
  if (move.to == StorageTier::kSsd) {
    if (move.from != StorageTier::kRam) return false;
    // Durable tables write through: the SSD tier already holds this version.
    const bool moved =
        shards_[s]->DemoteFromRam(move.table, move.key, move.version, StorageTier::kSsd);
    CrashPoint("tier.demote_ssd.done");
    return moved;
  }
  ODS_ASSIGN_OR_RETURN(const size_t moved,
                       MoveToBacking(std::span<const shard::TierMove>(&move, 1)));
  return moved == 1;
}

Result<size_t> Engine::MoveToBacking(std::span<const shard::TierMove> moves) {
  if (backing_ == nullptr) return size_t{0};
  // 1. Read each record from the SSD tier, which holds every record of the table that is not
  // in the backing store; drop those that changed meanwhile or whose fields now say otherwise.
  struct Candidate {
    const shard::TierMove* move;
    uint32_t shard;
    tier::StoredEntry stored;
    bool moved = false;
  };
  std::vector<Candidate> candidates;
  for (const shard::TierMove& move : moves) {
    if (move.to != StorageTier::kBacking || move.from == StorageTier::kBacking) continue;
    const std::string& table = tables_[move.table]->name();
    ODS_ASSIGN_OR_RETURN(std::optional<tier::StoredEntry> stored, tier_->Get(table, move.key));
    if (!stored || stored->record.version != move.version) continue;
    if (move.needs_record) {
      const shard::TierFacts facts{clock_.NowMicros(), move.event_time_micros,
                                   move.last_access_micros};
      const std::shared_ptr<const shard::TieringPolicy> policy =
          Settings()->policies[move.table];
      if (policy == nullptr ||
          shard::DecideTier(*policy, facts, &stored->record) != StorageTier::kBacking) {
        continue;
      }
    }
    candidates.push_back({&move, ShardOf(table, move.key), std::move(*stored)});
  }
  if (candidates.empty()) return size_t{0};
  // By shard, and one move per key (a key given twice moves once).
  std::stable_sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.shard, a.move->table, a.move->key) <
           std::tie(b.shard, b.move->table, b.move->key);
  });
  candidates.erase(std::unique(candidates.begin(), candidates.end(),
                               [](const Candidate& a, const Candidate& b) {
                                 return a.move->table == b.move->table && a.move->key == b.move->key;
                               }),
                   candidates.end());
  // 2. One durable write of all of them to the backing store.
  std::lock_guard<std::mutex> moving(backing_move_mu_);
  std::vector<tier::BackingPut> puts;
  puts.reserve(candidates.size());
  for (const Candidate& c : candidates) {
    puts.push_back({tables_[c.move->table]->name(), c.move->key, &c.stored.record,
                    c.stored.expire_at_micros, c.move->version});
  }
  ODS_RETURN_IF_ERROR(backing_->Put(puts));
  CrashPoint("tier.move.backing_written");
  // 3. Per shard, under its write-order lock: one RocksDB batch swaps each record that is still
  // the version read for a marker, then the shard's entries follow.
  Status error;
  size_t moved = 0;
  for (size_t begin = 0; begin < candidates.size() && error.ok();) {
    const uint32_t s = candidates[begin].shard;
    size_t end = begin;
    while (end < candidates.size() && candidates[end].shard == s) ++end;
    std::lock_guard<std::mutex> order(write_order_mu_[s]);
    tier::WriteBatch batch;
    for (size_t i = begin; i < end; ++i) {
      const shard::TierMove& move = *candidates[i].move;
      const std::optional<shard::Location> where = shards_[s]->Locate(move.table, move.key);
      if (!where || where->tier != move.from || where->version != move.version) continue;
      const std::string& table = tables_[move.table]->name();
      batch.Delete(table, move.key);
      batch.PutMarker(table, move.key, move.version, where->expire_at_micros,
                      where->event_time_micros, where->bytes);
      candidates[i].moved = true;
    }
    if (!batch.empty()) {
      if (Result<uint64_t> written = tier_->Write(batch); !written.ok()) {
        error = written.status();
        for (size_t i = begin; i < end; ++i) candidates[i].moved = false;
        break;
      }
      CrashPoint("tier.move.ssd_marked");
    }
    for (size_t i = begin; i < end; ++i) {
      if (!candidates[i].moved) continue;
      const shard::TierMove& move = *candidates[i].move;
      // Under the write-order lock no write got in between: the shard agrees.
      ODS_CHECK(move.from == StorageTier::kRam
                    ? shards_[s]->DemoteFromRam(move.table, move.key, move.version,
                                                StorageTier::kBacking)
                    : shards_[s]->MoveBelowRam(move.table, move.key, move.version,
                                               StorageTier::kSsd, StorageTier::kBacking));
      ++moved;
    }
    CrashPoint("tier.move.done");
    begin = end;
  }
  // 4. Copies of records that were written or deleted meanwhile (or not marked) are garbage; no
  // other move to the backing store runs while backing_move_mu_ is held.
  std::vector<tier::BackingKey> garbage;
  for (const Candidate& c : candidates) {
    if (!c.moved) garbage.push_back({tables_[c.move->table]->name(), c.move->key});
  }
  if (!garbage.empty()) {
    if (Status s = backing_->Delete(garbage); !s.ok() && error.ok()) error = s;
  }
  if (!error.ok()) return error;
  return moved;
}

Result<size_t> Engine::MoveRecords(std::string_view table, std::span<const std::string_view> keys,
                                   StorageTier to) {
  ODS_ASSIGN_OR_RETURN(const uint32_t table_id, FindTable(table));
  const record::TableSchema& schema = *tables_[table_id];
  ODS_RETURN_IF_ERROR(CheckBatch(schema, keys.size(), "keys"));
  for (std::string_view key : keys) ODS_RETURN_IF_ERROR(CheckKey(schema, key));
  if (to != StorageTier::kRam && durability_[table_id] == config::Durability::kNone) {
    return InvalidArgumentError("table '" + schema.name() + "': not durable, so its records " +
                                "stay in RAM (to: " + std::string(StorageTierName(to)) +
                                " needs durability sync or async)");
  }
  if (to == StorageTier::kBacking && backing_ == nullptr) {
    return InvalidArgumentError("table '" + schema.name() +
                                "': to: backing needs storage.backing");
  }
  size_t moved = 0;
  std::vector<shard::TierMove> to_backing;  // batched: one backing write for all
  for (std::string_view key : keys) {
    const uint32_t s = ShardOf(schema.name(), key);
    std::optional<shard::Location> where = shards_[s]->Locate(table_id, key);
    if (!where || where->tier == to) continue;
    if (static_cast<uint8_t>(to) < static_cast<uint8_t>(where->tier)) {
      // Up: into RAM (and from there down again when the target is the SSD tier).
      ODS_ASSIGN_OR_RETURN(std::optional<record::Record> r,
                           ReadFromTier(table_id, key, where->tier));
      if (!r || r->version != where->version) continue;
      ODS_ASSIGN_OR_RETURN(const bool promoted, PromoteRecord(table_id, s, key, where->tier, *r));
      if (!promoted) continue;
      if (to == StorageTier::kSsd) {
        shards_[s]->DemoteFromRam(table_id, key, r->version, StorageTier::kSsd);
      }
      ++moved;
      continue;
    }
    shard::TierMove move;
    move.table = table_id;
    move.key.assign(key);
    move.version = where->version;
    move.from = where->tier;
    move.to = to;
    move.expire_at_micros = where->expire_at_micros;
    move.event_time_micros = where->event_time_micros;
    if (to == StorageTier::kBacking) {
      to_backing.push_back(std::move(move));
      continue;
    }
    ODS_ASSIGN_OR_RETURN(const bool done, CarryOut(move));
    moved += done ? 1 : 0;
  }
  for (size_t begin = 0; begin < to_backing.size(); begin += kBackingBatch) {
    const size_t n = std::min(kBackingBatch, to_backing.size() - begin);
    ODS_ASSIGN_OR_RETURN(
        const size_t done,
        MoveToBacking(std::span<const shard::TierMove>(to_backing.data() + begin, n)));
    moved += done;
  }
  return moved;
}

std::vector<TableTierReport> Engine::TierStats() const {
  std::vector<TableTierReport> out(tables_.size());
  for (const auto& shard : shards_) {
    const std::vector<shard::TableTierStats> stats = shard->TableStats();
    for (size_t t = 0; t < out.size() && t < stats.size(); ++t) {
      for (size_t tier = 0; tier < 3; ++tier) {
        out[t].records[tier] += stats[t].records[tier];
        out[t].bytes[tier] += stats[t].bytes[tier];
        out[t].reads[tier] += stats[t].reads[tier];
        out[t].demotions[tier] += stats[t].demotions[tier];
      }
      out[t].promotions += stats[t].promotions;
    }
  }
  const std::shared_ptr<const TierSettings> settings = Settings();
  const config::StorageConfig& storage = settings->config.storage;
  const double cost[3] = {
      storage.ram_cost_per_gib_month, storage.ssd_cost_per_gib_month,
      storage.backing.has_value() ? storage.backing->cost_per_gib_month : 0.0};
  for (size_t t = 0; t < out.size(); ++t) {
    TableTierReport& r = out[t];
    const config::TableConfig& table = settings->config.tables[t];
    r.table = table.name;
    r.tiered = settings->policies[t] != nullptr;
    for (const config::TierRuleConfig& rule : table.tiering) {
      r.rules.push_back(DescribeTierRule(rule));
    }
    r.promote = table.promote == config::Promote::kOnAccess ? "on_access"
                : table.promote == config::Promote::kNever
                    ? "never"
                    : "after_hits " + std::to_string(table.promote_after_hits);
    r.priority = table.priority;
    const LatencyHistogram& h = read_latency_[t];
    r.read_calls = h.count();
    r.read_p50_micros = h.QuantileUpperMicros(0.5);
    r.read_p99_micros = h.QuantileUpperMicros(0.99);
    r.sla_read_p99_micros = table.sla_read_p99_micros;
    r.sla_met = r.sla_read_p99_micros == 0 || r.read_calls == 0 ||
                r.read_p99_micros <= static_cast<uint64_t>(r.sla_read_p99_micros);
    for (size_t tier = 0; tier < 3; ++tier) {
      r.monthly_cost += static_cast<double>(r.bytes[tier]) / double(uint64_t{1} << 30) * cost[tier];
    }
  }
  return out;
}

Result<std::optional<StorageTier>> Engine::TierOf(std::string_view table,
                                                  std::string_view key) const {
  ODS_ASSIGN_OR_RETURN(const uint32_t table_id, FindTable(table));
  ODS_RETURN_IF_ERROR(CheckKey(*tables_[table_id], key));
  const std::optional<shard::Location> where =
      shards_[ShardOf(table, key)]->Locate(table_id, key);
  if (!where) return std::optional<StorageTier>();
  return std::optional<StorageTier>(where->tier);
}

size_t Engine::CarryOutAll(const std::vector<shard::TierMove>& moves) {
  size_t moved = 0;
  Status first_error;
  std::vector<shard::TierMove> to_backing;
  for (const shard::TierMove& move : moves) {
    if (move.to == StorageTier::kBacking) {
      to_backing.push_back(move);
      continue;
    }
    Result<bool> done = CarryOut(move);
    if (!done.ok()) {
      tier_move_errors_.fetch_add(1, std::memory_order_relaxed);
      if (first_error.ok()) first_error = done.status();
      continue;
    }
    moved += *done ? 1 : 0;
  }
  // Moves to the backing store in batches: one backing write (one fsync or transaction) each.
  for (size_t begin = 0; begin < to_backing.size(); begin += kBackingBatch) {
    const size_t n = std::min(kBackingBatch, to_backing.size() - begin);
    Result<size_t> done =
        MoveToBacking(std::span<const shard::TierMove>(to_backing.data() + begin, n));
    if (!done.ok()) {
      tier_move_errors_.fetch_add(1, std::memory_order_relaxed);
      if (first_error.ok()) first_error = done.status();
      continue;
    }
    moved += *done;
  }
  if (!first_error.ok()) {
    Logger("ods.engine")->warn("tier sweep: moves failed, records stay where they were: {}",
                               first_error.message());
  }
  return moved;
}

size_t Engine::EnforceBudgets() {
  size_t moved = 0;
  std::vector<shard::TierMove> moves;
  // RAM, per shard: from 90% of the shard's share down towards 80%.
  const std::shared_ptr<const TierSettings> settings = Settings();
  const uint64_t share = ram_max_bytes_.load(std::memory_order_relaxed) / shards_.size();
  for (size_t s = 0; share > 0 && s < shards_.size(); ++s) {
    const uint64_t used = shards_[s]->MemoryBytes();
    if (used <= share / 10 * 9) continue;
    uint64_t wanted = used - share / 10 * 8;
    // Lower priorities give up their records first: a few rounds of samples each.
    for (uint32_t table : settings->budget_order) {
      for (int round = 0; wanted > 0 && round < kBudgetRounds; ++round) {
        moves.clear();
        const uint64_t proposed = shards_[s]->CollectColdest(table, StorageTier::kRam,
                                                             kTierVisitsPerShard, wanted, moves);
        moved += CarryOutAll(moves);
        wanted -= std::min(wanted, proposed);
        if (proposed == 0) break;
      }
    }
  }
  // SSD, over all shards: from 90% of storage.ssd.max_bytes towards 80%.
  const uint64_t ssd_max = settings->config.storage.ssd_max_bytes;
  if (ssd_max > 0 && backing_ != nullptr) {
    uint64_t used = 0;
    for (const TableTierReport& r : TierStats()) used += r.bytes[1];
    if (used > ssd_max / 10 * 9) {
      uint64_t wanted = used - ssd_max / 10 * 8;
      for (uint32_t table : settings->budget_order) {
        for (size_t s = 0; wanted > 0 && s < shards_.size(); ++s) {
          moves.clear();
          const uint64_t proposed = shards_[s]->CollectColdest(
              table, StorageTier::kSsd, kTierVisitsPerShard, wanted / (shards_.size() - s) + 1,
              moves);
          moved += CarryOutAll(moves);
          wanted -= std::min(wanted, proposed);
        }
        if (wanted == 0) break;
      }
    }
  }
  return moved;
}

size_t Engine::SweepTiersOnce() {
  if (tier_ == nullptr) return 0;
  size_t moved = EnforceBudgets();
  if (!Settings()->budget_order.empty()) {
    std::vector<shard::TierMove> moves;
    for (auto& shard : shards_) {
      moves.clear();
      shard->CollectTierMoves(kTierVisitsPerShard, moves);
      moved += CarryOutAll(moves);
    }
  }
  CollectBackingGarbage();
  return moved;
}

void Engine::CollectBackingGarbage() {
  if (backing_ == nullptr) return;
  std::vector<std::pair<uint32_t, std::string>> garbage;
  for (auto& shard : shards_) shard->TakeBackingGarbage(garbage);
  if (garbage.empty()) return;
  std::lock_guard<std::mutex> moving(backing_move_mu_);
  std::vector<tier::BackingKey> keys;
  for (const auto& [table_id, key] : garbage) {
    const std::string& table = tables_[table_id]->name();
    const std::optional<shard::Location> where =
        shards_[ShardOf(table, key)]->Locate(table_id, key);
    if (where && where->tier == StorageTier::kBacking) continue;  // back there: live copy
    keys.push_back({table, key});
  }
  if (keys.empty()) return;
  Status deleted = backing_->Delete(keys);
  CrashPoint("tier.garbage.deleted");
  if (Status s = std::move(deleted); !s.ok()) {
    // Left behind: harmless to reads (the durable tier says where each record is).
    tier_move_errors_.fetch_add(1, std::memory_order_relaxed);
    Logger("ods.engine")->warn("backing store: deleting {} outdated copies failed: {}",
                               keys.size(), s.message());
  }
}

}  // namespace ods::engine
