// Shard's side of tiering: the RAM entries of records below RAM, the rules that decide where a
// record belongs, and the version-checked steps the engine's moves take.

#include <algorithm>
#include <utility>

#include "ods/common/check.h"
#include "ods/common/varint.h"
#include "ods/record/predicate_eval.h"
#include "ods/shard/shard.h"
#include "shard_table.h"

namespace ods::shard {
namespace {

// A varint of a below-RAM entry (written by this shard: never truncated).
uint64_t ReadVarint(std::string_view& in) {
  uint64_t v = 0;
  ODS_CHECK(GetVarint(in, v));
  return v;
}

}  // namespace

void BelowEntry::EncodeTo(std::string& out) const {
  out.clear();
  out.push_back(static_cast<char>(tier));
  PutVarint(version, out);
  PutVarint(static_cast<uint64_t>(expire_at_micros), out);
  PutVarint(ZigZag(event_time_micros), out);
  PutVarint(last_access, out);
  PutVarint(hits, out);
  PutVarint(bytes, out);
}

BelowEntry BelowEntry::Decode(std::string_view in) {
  ODS_CHECK(!in.empty());  // Only the shard encodes these.
  BelowEntry e;
  e.tier = static_cast<StorageTier>(in.front());
  in.remove_prefix(1);
  e.version = ReadVarint(in);
  e.expire_at_micros = static_cast<Micros>(ReadVarint(in));
  e.event_time_micros = UnZigZag(ReadVarint(in));
  e.last_access = static_cast<uint32_t>(ReadVarint(in));
  e.hits = static_cast<uint32_t>(ReadVarint(in));
  e.bytes = static_cast<uint32_t>(ReadVarint(in));
  return e;
}

bool TieringPolicy::Targets(StorageTier tier) const {
  return std::any_of(rules.begin(), rules.end(), [tier](const TierRule& r) { return r.to == tier; });
}

bool TieringPolicy::HasTransient() const {
  return std::any_of(rules.begin(), rules.end(), [](const TierRule& r) { return r.transient; });
}

namespace {

// Whether every condition of `rule` holds; nullopt when a field predicate decides and `record`
// is null.
std::optional<bool> RuleHolds(const TierRule& rule, const TierFacts& facts,
                              const record::Record* record) {
  if (rule.idle_for_micros != 0 && facts.now - facts.last_access < rule.idle_for_micros) {
    return false;
  }
  if (rule.age_micros != 0 &&
      (facts.event_time == 0 || facts.now - facts.event_time < rule.age_micros)) {
    return false;
  }
  if (rule.field.has_value()) {
    if (record == nullptr) return std::nullopt;
    return record::Matches(*rule.field, *record);
  }
  return true;
}

}  // namespace

bool IsTransient(const TieringPolicy& policy, Micros now, const record::Record& record) {
  const TierFacts facts{now, record.event_time_micros, now};
  for (const TierRule& rule : policy.rules) {
    if (rule.transient && RuleHolds(rule, facts, &record).value_or(false)) return true;
  }
  return false;
}

std::optional<StorageTier> DecideTier(const TieringPolicy& policy, const TierFacts& facts,
                                      const record::Record* record, bool* pinned) {
  if (pinned != nullptr) *pinned = false;
  // Transient records (never written to the durable tier) must not leave RAM, whichever rule
  // comes first.
  for (const TierRule& rule : policy.rules) {
    if (!rule.transient) continue;
    const std::optional<bool> holds = RuleHolds(rule, facts, record);
    if (!holds.has_value()) return std::nullopt;
    if (*holds) {
      if (pinned != nullptr) *pinned = true;
      return StorageTier::kRam;
    }
  }
  for (const TierRule& rule : policy.rules) {
    if (rule.idle_for_micros != 0 && facts.now - facts.last_access < rule.idle_for_micros) continue;
    if (rule.age_micros != 0 &&
        (facts.event_time == 0 || facts.now - facts.event_time < rule.age_micros)) {
      continue;
    }
    if (rule.field.has_value()) {
      if (record == nullptr) return std::nullopt;
      if (!record::Matches(*rule.field, *record)) continue;
    }
    if (pinned != nullptr) *pinned = rule.to == StorageTier::kRam;
    return rule.to;
  }
  return StorageTier::kRam;
}

uint64_t Shard::ForgetBelow(uint32_t table, Table& t, std::string_view key) {
  const std::string_view entry = t.below.Find(key);
  if (entry.data() == nullptr) return 0;
  const BelowEntry e = BelowEntry::Decode(entry);
  t.CountBelow(e, -1);
  if (e.tier == StorageTier::kBacking) backing_garbage_.emplace_back(table, std::string(key));
  return t.below.Erase(key);
}

bool Shard::NoteReadBelow(Table& t, std::string_view key, uint32_t index, Micros expiry_now,
                          uint32_t stamp, std::vector<BelowRam>& out) {
  const std::string_view entry = t.below.Find(key);
  if (entry.data() == nullptr) return false;
  BelowEntry e = BelowEntry::Decode(entry);
  if (e.ExpiredAt(expiry_now)) return false;
  e.last_access = stamp;
  e.hits = e.hits == UINT32_MAX ? e.hits : e.hits + 1;
  bool promote = t.tiering == nullptr;  // a table without rules now: bring it back
  switch (t.tiering == nullptr ? PromotePolicy::kOnAccess : t.tiering->promote) {
    case PromotePolicy::kOnAccess: promote = true; break;
    case PromotePolicy::kAfterHits: promote = e.hits >= t.tiering->promote_after_hits; break;
    case PromotePolicy::kNever: promote = false; break;
  }
  e.EncodeTo(t.scratch);
  const int64_t delta = t.below.Upsert(key, t.scratch);
  Account(t, delta);
  t.counters.reads[static_cast<size_t>(e.tier)] += 1;
  out.push_back({index, e.tier, e.version, promote});
  return true;
}

std::optional<Location> Shard::Locate(uint32_t table, std::string_view key) {
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  Table& t = *tables_[table];
  const Micros now = t.ExpiryNow(clock_);
  const std::string_view encoded = t.records.Find(key);
  if (encoded.data() != nullptr) {
    if (IsExpired(encoded, now)) return std::nullopt;
    Result<record::EncodedHeader> h = record::DecodeHeader(encoded);
    ODS_CHECK(h.ok());
    return Location{StorageTier::kRam, h->version, h->expire_at_micros, h->event_time_micros,
                    static_cast<uint32_t>(encoded.size())};
  }
  const std::string_view entry = t.below.Find(key);
  if (entry.data() == nullptr) return std::nullopt;
  const BelowEntry e = BelowEntry::Decode(entry);
  if (e.ExpiredAt(now)) return std::nullopt;
  return Location{e.tier, e.version, e.expire_at_micros, e.event_time_micros, e.bytes};
}

size_t Shard::CollectTierMoves(size_t max_visits, std::vector<TierMove>& out) {
  MutexLock lock(mu_);
  const Micros now = clock_.NowMicros();
  size_t visits = 0;
  for (size_t entered = 0; !tables_.empty() && entered <= tables_.size() && visits < max_visits;
       ++entered) {
    if (tier_table_ >= tables_.size()) tier_table_ = 0;
    const auto id = static_cast<uint32_t>(tier_table_);
    Table& t = *tables_[id];
    if (t.tiering != nullptr) {
      const TieringPolicy& policy = *t.tiering;
      const Micros expiry_now = t.ever_ttl ? now : 0;
      if (!tier_below_) {
        record::Record decoded;
        visits += t.records.VisitFrom(
            tier_key_,
            [&](std::string_view key, std::string_view encoded, uint32_t stamp) {
              Result<record::EncodedHeader> h = record::DecodeHeader(encoded);
              ODS_CHECK(h.ok());
              if (h->expire_at_micros != 0 && h->expire_at_micros <= expiry_now) return;
              const TierFacts facts{now, h->event_time_micros, StampMicros(stamp)};
              std::optional<StorageTier> to = DecideTier(policy, facts, nullptr);
              bool have_record = false;
              if (!to.has_value()) {
                ODS_CHECK(record::Decode(encoded, t.dict, nullptr, decoded).ok());
                have_record = true;
                to = DecideTier(policy, facts, &decoded);
              }
              if (*to == StorageTier::kRam) return;
              TierMove move;
              move.table = id;
              move.key.assign(key);
              move.version = h->version;
              move.from = StorageTier::kRam;
              move.to = *to;
              move.expire_at_micros = h->expire_at_micros;
              move.event_time_micros = h->event_time_micros;
              move.last_access_micros = facts.last_access;
              if (*to == StorageTier::kBacking) {
                if (!have_record) ODS_CHECK(record::Decode(encoded, t.dict, nullptr, decoded).ok());
                move.record = std::move(decoded);
                decoded = record::Record();
              }
              out.push_back(std::move(move));
            },
            max_visits - visits);
        if (!tier_key_.empty()) break;  // the budget ran out inside this table's RAM records
        tier_below_ = true;
      }
      if (policy.Targets(StorageTier::kBacking) && t.counters.records[1] != 0) {
        visits += t.below.VisitFrom(
            tier_key_,
            [&](std::string_view key, std::string_view entry, uint32_t) {
              const BelowEntry e = BelowEntry::Decode(entry);
              if (e.tier != StorageTier::kSsd || e.ExpiredAt(expiry_now)) return;
              const TierFacts facts{now, e.event_time_micros, StampMicros(e.last_access)};
              const std::optional<StorageTier> to = DecideTier(policy, facts, nullptr);
              if (to.has_value() && *to != StorageTier::kBacking) return;
              TierMove move;
              move.table = id;
              move.key.assign(key);
              move.version = e.version;
              move.from = StorageTier::kSsd;
              move.to = StorageTier::kBacking;
              move.expire_at_micros = e.expire_at_micros;
              move.event_time_micros = e.event_time_micros;
              move.last_access_micros = facts.last_access;
              move.needs_record = !to.has_value();
              out.push_back(std::move(move));
            },
            max_visits - visits);
        if (!tier_key_.empty()) break;
      }
    }
    tier_below_ = false;
    tier_key_.clear();
    ++tier_table_;
  }
  return visits;
}

uint64_t Shard::CollectColdest(uint32_t table, StorageTier tier, size_t max_visits,
                               uint64_t bytes_wanted, std::vector<TierMove>& out) {
  ODS_CHECK(tier == StorageTier::kRam || tier == StorageTier::kSsd);
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  Table& t = *tables_[table];
  if (t.tiering == nullptr) return 0;
  const Micros now = clock_.NowMicros();
  const Micros expiry_now = t.ever_ttl ? now : 0;
  struct Candidate {
    uint32_t stamp;
    TierMove move;
    uint32_t bytes;
  };
  std::vector<Candidate> seen;
  record::Record decoded;
  std::string& resume = t.coldest_key[tier == StorageTier::kRam ? 0 : 1];
  const bool whole_table = resume.empty() && max_visits >= (tier == StorageTier::kRam
                                                                 ? t.records.size()
                                                                 : t.below.size());
  auto consider = [&](std::string_view key, uint32_t stamp, uint64_t version, Micros expire_at,
                      Micros event_time, uint32_t bytes) {
    Candidate c{stamp, {}, bytes};
    c.move.table = table;
    c.move.key.assign(key);
    c.move.version = version;
    c.move.from = tier;
    c.move.to = tier == StorageTier::kRam ? StorageTier::kSsd : StorageTier::kBacking;
    c.move.expire_at_micros = expire_at;
    c.move.event_time_micros = event_time;
    c.move.last_access_micros = StampMicros(stamp);
    seen.push_back(std::move(c));
  };
  if (tier == StorageTier::kRam) {
    t.records.VisitFrom(
        resume,
        [&](std::string_view key, std::string_view encoded, uint32_t stamp) {
          Result<record::EncodedHeader> h = record::DecodeHeader(encoded);
          ODS_CHECK(h.ok());
          if (h->expire_at_micros != 0 && h->expire_at_micros <= expiry_now) return;
          const TierFacts facts{now, h->event_time_micros, StampMicros(stamp)};
          bool pinned = false;
          if (!DecideTier(*t.tiering, facts, nullptr, &pinned).has_value()) {
            ODS_CHECK(record::Decode(encoded, t.dict, nullptr, decoded).ok());
            DecideTier(*t.tiering, facts, &decoded, &pinned);
          }
          if (pinned) return;
          consider(key, stamp, h->version, h->expire_at_micros, h->event_time_micros,
                   static_cast<uint32_t>(encoded.size()));
        },
        max_visits);
  } else {
    t.below.VisitFrom(
        resume,
        [&](std::string_view key, std::string_view entry, uint32_t) {
          const BelowEntry e = BelowEntry::Decode(entry);
          if (e.tier != StorageTier::kSsd || e.ExpiredAt(expiry_now)) return;
          consider(key, e.last_access, e.version, e.expire_at_micros, e.event_time_micros,
                   e.bytes);
        },
        max_visits);
  }
  if (seen.empty()) return 0;
  std::sort(seen.begin(), seen.end(),
            [](const Candidate& a, const Candidate& b) { return a.stamp < b.stamp; });
  // A sample of a larger table gives up its older half; a whole table, as much as is wanted.
  const uint32_t median = whole_table ? UINT32_MAX : seen[(seen.size() - 1) / 2].stamp;
  uint64_t proposed = 0;
  for (Candidate& c : seen) {
    if (proposed >= bytes_wanted || c.stamp > median) break;
    proposed += c.bytes;
    out.push_back(std::move(c.move));
  }
  return proposed;
}

bool Shard::DemoteFromRam(uint32_t table, std::string_view key, uint64_t version, StorageTier to) {
  ODS_CHECK(to != StorageTier::kRam);
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  Table& t = *tables_[table];
  uint32_t stamp = 0;
  const std::string_view encoded = t.records.FindStamped(key, stamp);
  if (encoded.data() == nullptr) return false;
  Result<record::EncodedHeader> h = record::DecodeHeader(encoded);
  ODS_CHECK(h.ok());
  if (h->version != version) return false;
  if (t.tiering != nullptr && t.tiering->HasTransient()) {
    // A transient record has no copy in the durable tier: it cannot leave RAM.
    record::Record r;
    ODS_CHECK(record::Decode(encoded, t.dict, nullptr, r).ok());
    if (IsTransient(*t.tiering, clock_.NowMicros(), r)) return false;
  }
  BelowEntry e;
  e.tier = to;
  e.version = version;
  e.expire_at_micros = h->expire_at_micros;
  e.event_time_micros = h->event_time_micros;
  // Keeps the record's last access: idle_for and the budgets' LRU order continue below RAM.
  e.last_access = t.records.access_stamps() ? stamp : AccessStamp(clock_.NowMicros());
  e.bytes = static_cast<uint32_t>(encoded.size());
  e.EncodeTo(t.scratch);
  int64_t delta = -static_cast<int64_t>(t.records.Erase(key));
  delta += t.below.Upsert(key, t.scratch);
  t.CountBelow(e, +1);
  t.counters.demotions[static_cast<size_t>(to)] += 1;
  Account(t, delta);
  return true;
}

bool Shard::MoveBelowRam(uint32_t table, std::string_view key, uint64_t version, StorageTier from,
                         StorageTier to) {
  ODS_CHECK(from != StorageTier::kRam && to != StorageTier::kRam);
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  Table& t = *tables_[table];
  const std::string_view entry = t.below.Find(key);
  if (entry.data() == nullptr) return false;
  BelowEntry e = BelowEntry::Decode(entry);
  if (e.version != version || e.tier != from) return false;
  t.CountBelow(e, -1);
  e.tier = to;
  t.CountBelow(e, +1);
  e.EncodeTo(t.scratch);
  const int64_t delta = t.below.Upsert(key, t.scratch);
  t.counters.demotions[static_cast<size_t>(to)] += 1;
  Account(t, delta);
  return true;
}

bool Shard::Promote(uint32_t table, std::string_view key, const record::Record& record) {
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  Table& t = *tables_[table];
  const std::string_view entry = t.below.Find(key);
  if (entry.data() == nullptr) return false;
  const BelowEntry e = BelowEntry::Decode(entry);
  if (e.version != record.version) return false;
  record::Encode(record, e.expire_at_micros, e.version, t.dict, t.scratch);
  int64_t delta = t.records.Upsert(key, t.scratch, AccessStamp(clock_.NowMicros()));
  delta -= static_cast<int64_t>(ForgetBelow(table, t, key));
  field_names_[table].store(t.dict.size(), std::memory_order_relaxed);
  ++t.counters.promotions;
  Account(t, delta);
  return true;
}

bool Shard::RestoreBelowRam(uint32_t table, std::string_view key, const Location& where) {
  ODS_CHECK(where.tier != StorageTier::kRam);
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  next_version_ = std::max(next_version_, where.version + 1);
  if (where.expire_at_micros != 0 && where.expire_at_micros <= clock_.NowMicros()) return false;
  Table& t = *tables_[table];
  int64_t delta = 0;
  const std::string_view encoded = t.records.Find(key);
  if (encoded.data() != nullptr) {
    Result<record::EncodedHeader> h = record::DecodeHeader(encoded);
    ODS_CHECK(h.ok());
    if (h->version >= where.version) return false;
    delta -= static_cast<int64_t>(t.records.Erase(key));
  }
  const std::string_view entry = t.below.Find(key);
  if (entry.data() != nullptr) {
    const BelowEntry old = BelowEntry::Decode(entry);
    if (old.version >= where.version) return false;
    t.CountBelow(old, -1);
  }
  BelowEntry e;
  e.tier = where.tier;
  e.version = where.version;
  e.expire_at_micros = where.expire_at_micros;
  e.event_time_micros = where.event_time_micros;
  e.last_access = AccessStamp(clock_.NowMicros());
  e.bytes = where.bytes;
  e.EncodeTo(t.scratch);
  delta += t.below.Upsert(key, t.scratch);
  t.CountBelow(e, +1);
  Account(t, delta);
  return true;
}

void Shard::SetTiering(uint32_t table, std::shared_ptr<const TieringPolicy> policy) {
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  Table& t = *tables_[table];
  // A table that cannot tier (not durable: no access times) has only `to: ram` rules, if any,
  // which change nothing.
  const bool keep = policy != nullptr && !policy->rules.empty() && t.records.access_stamps();
  t.tiering = keep ? std::move(policy) : nullptr;
}

void Shard::SetTtl(uint32_t table, Micros ttl_micros) {
  MutexLock lock(mu_);
  ODS_CHECK(table < tables_.size());
  Table& t = *tables_[table];
  t.ttl = ttl_micros;
  t.ever_ttl = t.ever_ttl || ttl_micros > 0;
}

void Shard::SetMaxMemoryBytes(uint64_t max_memory_bytes) {
  max_memory_bytes_.store(max_memory_bytes, std::memory_order_relaxed);
}

void Shard::TakeBackingGarbage(std::vector<std::pair<uint32_t, std::string>>& out) {
  MutexLock lock(mu_);
  for (auto& g : backing_garbage_) out.push_back(std::move(g));
  backing_garbage_.clear();
}

}  // namespace ods::shard
