#include "event_store.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <variant>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "ods/common/check.h"
#include "ods/record/codec.h"

namespace ods::shard {
namespace {

// Erases a consumed prefix of `v` once it is at least half of the vector (amortized O(1)).
// Returns the change of bytes_of(v), walked only when it erases (moving strings within a vector
// can keep a target's old capacity, so the change is measured, not derived).
template <typename T, typename BytesOf>
int64_t CompactFront(std::vector<T>& v, size_t& begin, const BytesOf& bytes_of) {
  if (begin < 16 || begin * 2 < v.size()) return 0;
  const auto before = static_cast<int64_t>(bytes_of(v));
  v.erase(v.begin(), v.begin() + static_cast<ptrdiff_t>(begin));
  begin = 0;
  return static_cast<int64_t>(bytes_of(v)) - before;
}

// Debian's abseil has its own string_view: heterogeneous lookups need it.
absl::string_view AsAbsl(std::string_view s) { return {s.data(), s.size()}; }

size_t ValueHeapBytes(const record::Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return s->capacity() > 15 ? s->capacity() : 0;
  if (const auto* b = std::get_if<record::Bytes>(&v)) {
    return b->data.capacity() > 15 ? b->data.capacity() : 0;
  }
  if (const auto* f = std::get_if<std::vector<float>>(&v)) return f->capacity() * sizeof(float);
  return 0;
}

// Charges `out` to `budget_bytes`; false if it does not fit. A missing value costs nothing.
bool Charge(const aggregate::Output& out, uint64_t& budget_bytes) {
  if (std::holds_alternative<std::monostate>(out)) return true;
  const uint64_t bytes = aggregate::OutputBytes(out);
  if (bytes > budget_bytes) return false;
  budget_bytes -= bytes;
  return true;
}

size_t IdHeapBytes(const std::string& id) { return id.capacity() > 15 ? 2 * id.capacity() : 0; }

}  // namespace

// The accounting below is what MemoryBytes() walks; bytes_ is kept equal to it by every change.
size_t Shard::EventStore::StoredEventBytes(const StoredEvent& e) {
  size_t bytes = e.values.capacity() * sizeof(std::optional<record::Value>);
  for (const auto& v : e.values) bytes += v ? ValueHeapBytes(*v) : 0;
  return bytes;
}

size_t Shard::EventStore::HistoryBytes(const std::vector<StoredEvent>& history) {
  size_t bytes = history.capacity() * sizeof(StoredEvent);
  for (const StoredEvent& e : history) bytes += StoredEventBytes(e);
  return bytes;
}

size_t Shard::EventStore::IdOrderBytes(const std::vector<std::pair<Micros, std::string>>& order) {
  size_t bytes = order.capacity() * sizeof(std::pair<Micros, std::string>);
  for (const auto& [arrived, id] : order) bytes += IdHeapBytes(id);
  return bytes;
}

size_t Shard::EventStore::EntityBytes(const EntityKey& key, const Entity& entity) {
  size_t bytes = key.heap_bytes();
  if (entity.groups.capacity() > 1) {
    bytes += entity.groups.capacity() * sizeof(aggregate::SeriesGroup);
  }
  for (const aggregate::SeriesGroup& group : entity.groups) bytes += group.MemoryBytes();
  if (entity.custom != nullptr) {
    bytes += sizeof(CustomTiles);
    if (entity.custom->capacity() > 2) {
      bytes += entity.custom->capacity() * sizeof(aggregate::CustomSeries);
    }
    for (const aggregate::CustomSeries& series : *entity.custom) bytes += series.MemoryBytes();
  }
  return bytes + HistoryBytes(entity.history);
}

// --- Lua aggregators ---

Status Shard::EventStore::LuaAggregator::Annotate(const Status& status) const {
  errors_.Count(spec_.function->name, sandbox_.ErrorKindOf(id_, status));
  return {status.code(), "aggregation '" + spec_.name + "': " + status.message()};
}

Status Shard::EventStore::LuaAggregator::Update(std::string& state, Micros event_time,
                                                std::span<const record::Value* const> values) {
  sandbox::AggregatorEvent e;
  e.time = event_time;
  if (spec_.field >= 0) {
    e.value = values[static_cast<size_t>(spec_.field)];
    ODS_DCHECK(e.value != nullptr);  // callers skip events without the field
  } else {
    e.names = template_.field_names;
    e.values = values.first(std::min(values.size(), template_.field_names.size()));
  }
  Status status = sandbox_.AggregatorUpdate(id_, state, e);
  return status.ok() ? status : Annotate(status);
}

Status Shard::EventStore::LuaAggregator::Finish(std::span<const std::string_view> tiles,
                                                aggregate::Output& out) {
  Result<std::optional<record::Value>> value = sandbox_.AggregatorFinish(id_, tiles);
  if (!value.ok()) return Annotate(value.status());
  if (!value->has_value()) {
    out = std::monostate{};
    return OkStatus();
  }
  // Built in place, alternative by alternative (see aggregate::CustomFn::Finish).
  std::visit(
      [&out](auto&& x) {
        using T = std::decay_t<decltype(x)>;
        out.emplace<record::Value>(std::in_place_type<T>, std::forward<decltype(x)>(x));
      },
      std::move(**value));
  return OkStatus();
}

Status Shard::EventStore::PrepareAggregation(const AggregationSpec& spec) {
  if (spec.function == nullptr) return OkStatus();
  const AggregatorFunction& f = *spec.function;
  ODS_ASSIGN_OR_RETURN(const sandbox::FunctionId id,
                       sandbox_.Load(f.name, f.version, f.source, f.limits));
  DropPreparedAggregation(spec.id);
  prepared_[spec.id] = id;
  return OkStatus();
}

Status Shard::EventStore::PrepareReplacement(uint32_t aggregation_id,
                                             const AggregatorFunction& f) {
  ODS_ASSIGN_OR_RETURN(const sandbox::FunctionId id,
                       sandbox_.Load(f.name, f.version, f.source, f.limits));
  DropPreparedAggregation(aggregation_id);
  prepared_[aggregation_id] = id;
  return OkStatus();
}

Shard::Backfill Shard::EventStore::ReplaceAggregator(uint32_t aggregation_id, bool keep_state,
                                                     Micros now) {
  Backfill backfill;
  auto prepared = prepared_.find(aggregation_id);
  if (prepared == prepared_.end() || aggregation_id >= aggregation_slots_.size()) return backfill;
  const auto [template_id, position] = aggregation_slots_[aggregation_id];
  Template& t = *templates_[template_id];
  const Placement where = t.placements[position];
  if (where.layout != kCustomLayout) return backfill;
  Custom& custom = t.customs[where.member];
  (void)sandbox_.Unload(custom.fn->id());
  custom.fn->set_id(prepared->second);
  prepared_.erase(prepared);
  if (keep_state) return backfill;
  return RebuildCustom(t, where.member, now);
}

Shard::Backfill Shard::EventStore::RebuildCustom(Template& t, uint32_t member, Micros now) {
  Backfill backfill;
  std::vector<const record::Value*> values(t.spec->field_count);
  std::vector<StoredEvent> cold;
  for (auto& slot : t.entities) {
    // Named, not a structured binding: clang 14 (the fuzzers' build) cannot capture one.
    const EntityKey& key = slot.first;
    Entity& entity = slot.second;
    if (entity.custom != nullptr && member < entity.custom->size()) {
      (*entity.custom)[member] = aggregate::CustomSeries();
    }
    backfill.failed += LoadCold(t, key, cold);
    ForEachRetained(&cold, entity, [&](const StoredEvent& e) {
      for (size_t f = 0; f < values.size(); ++f) values[f] = e.values[f] ? &*e.values[f] : nullptr;
      if (!StageCustom(t, &entity, e.event_time, values, now, member).ok()) {
        ++backfill.failed;
        return;
      }
      CommitCustom(t, entity, now, member);
      ++backfill.events;
    });
    ++backfill.entities;
  }
  bytes_ = static_cast<int64_t>(MemoryBytes());  // rare: series rebuilt everywhere
  return backfill;
}

void Shard::EventStore::DropPreparedAggregation(uint32_t aggregation_id) {
  auto it = prepared_.find(aggregation_id);
  if (it == prepared_.end()) return;
  (void)sandbox_.Unload(it->second);
  prepared_.erase(it);
}

Status Shard::EventStore::StageCustom(Template& t, const Entity* entity, Micros event_time,
                                      std::span<const record::Value* const> values, Micros now,
                                      size_t only) {
  static const aggregate::CustomSeries kEmpty;
  const size_t n = t.customs.size();
  if (staged_.size() < n) staged_.resize(n);
  const size_t begin = only == SIZE_MAX ? 0 : only;
  const size_t end = only == SIZE_MAX ? n : only + 1;
  for (size_t c = begin; c < end; ++c) {
    staged_[c].changes.clear();
    const Custom& custom = t.customs[c];
    if (custom.spec->field >= 0 && values[static_cast<size_t>(custom.spec->field)] == nullptr) {
      continue;  // as the built-ins: an event without the field is not folded
    }
    const aggregate::CustomSeries* series = &kEmpty;
    if (entity != nullptr && entity->custom != nullptr && c < entity->custom->size()) {
      series = &(*entity->custom)[c];
      if (c + 1 < n && c + 1 < entity->custom->size()) (*entity->custom)[c + 1].Prefetch();
    }
    ODS_RETURN_IF_ERROR(
        series->Stage(*custom.fn, custom.spec->spec, event_time, values, now, staged_[c]));
  }
  return OkStatus();
}

int64_t Shard::EventStore::CommitCustom(Template& t, Entity& entity, Micros now, size_t only) {
  int64_t delta = 0;
  const size_t n = t.customs.size();
  const size_t begin = only == SIZE_MAX ? 0 : only;
  const size_t end = only == SIZE_MAX ? n : only + 1;
  for (size_t c = begin; c < end; ++c) {
    if (staged_[c].changes.empty()) continue;
    if (entity.custom == nullptr) {
      entity.custom = std::make_unique<CustomTiles>();
      delta += static_cast<int64_t>(sizeof(CustomTiles));
    }
    if (entity.custom->size() <= c) {
      auto heap = [](const CustomTiles& v) {
        return v.capacity() > 2 ? v.capacity() * sizeof(aggregate::CustomSeries) : 0;
      };
      const size_t before = heap(*entity.custom);
      entity.custom->resize(n);
      delta += static_cast<int64_t>(heap(*entity.custom)) - static_cast<int64_t>(before);
    }
    delta += (*entity.custom)[c].Commit(t.customs[c].spec->spec, staged_[c], now);
  }
  return delta;
}

void Shard::EventStore::AddTemplate(std::shared_ptr<const TemplateSpec> spec) {
  ODS_CHECK(spec->id == templates_.size());
  auto t = std::make_unique<Template>();
  t->spec = std::move(spec);
  templates_.push_back(std::move(t));
}

void Shard::EventStore::LayOutBuiltIns(Template& t) {
  std::vector<aggregate::Member> members;
  members.reserve(t.aggregations.size());
  t.placements.clear();
  uint32_t custom = 0;
  for (const auto& agg : t.aggregations) {
    if (agg->function != nullptr) {
      t.placements.push_back({kCustomLayout, custom++});
      continue;
    }
    t.placements.push_back({0, static_cast<uint32_t>(members.size())});
    members.push_back({agg->spec, agg->field});
  }
  t.layouts.clear();
  if (!members.empty()) {
    t.layouts.push_back(std::make_shared<const aggregate::GroupLayout>(std::move(members)));
  }
}

Shard::Backfill Shard::EventStore::AddAggregation(std::shared_ptr<const AggregationSpec> spec,
                                                  Micros now) {
  ODS_CHECK(spec->id == aggregation_slots_.size());
  ODS_CHECK(spec->template_id < templates_.size());
  Template& t = *templates_[spec->template_id];
  aggregation_slots_.emplace_back(spec->template_id, static_cast<uint32_t>(t.aggregations.size()));
  t.aggregations.push_back(spec);
  Backfill backfill;
  std::vector<const record::Value*> values(t.spec->field_count);
  auto load = [&](const StoredEvent& e) {
    for (size_t f = 0; f < values.size(); ++f) values[f] = e.values[f] ? &*e.values[f] : nullptr;
  };
  if (spec->function != nullptr) {
    auto prepared = prepared_.find(spec->id);
    ODS_CHECK(prepared != prepared_.end());  // PrepareAggregation came first
    const auto index = static_cast<uint32_t>(t.customs.size());
    t.customs.push_back({spec, std::make_unique<LuaAggregator>(sandbox_, errors_, prepared->second,
                                                               *spec, *t.spec)});
    prepared_.erase(prepared);
    t.placements.push_back({kCustomLayout, index});
    return RebuildCustom(t, index, now);
  }
  if (t.entities.empty()) {
    LayOutBuiltIns(t);  // no group borrows a layout: lay every built-in out together
    return backfill;
  }
  // Entities exist: the new aggregation gets a layout of its own, backfilled from history.
  t.placements.push_back({static_cast<uint32_t>(t.layouts.size()), 0});
  const aggregate::GroupLayout& layout =
      *t.layouts.emplace_back(std::make_shared<const aggregate::GroupLayout>(
          std::vector<aggregate::Member>{{spec->spec, spec->field}}));
  std::vector<StoredEvent> cold;
  for (auto& [key, entity] : t.entities) {
    aggregate::SeriesGroup& group = entity.groups.emplace_back(layout);
    backfill.failed += LoadCold(t, key, cold);
    ForEachRetained(&cold, entity, [&](const StoredEvent& e) {
      load(e);
      group.Add(e.event_time, values, now);
      ++backfill.events;
    });
    ++backfill.entities;
  }
  bytes_ = static_cast<int64_t>(MemoryBytes());  // rare: new groups everywhere
  return backfill;
}

int64_t Shard::EventStore::TrimHistory(const TemplateSpec& spec, Entity& entity, Micros now) {
  const Micros cutoff = now - spec.history_retention_micros;
  while (entity.history_begin < entity.history.size() &&
         entity.history[entity.history_begin].event_time < cutoff) {
    ++entity.history_begin;
  }
  return CompactFront(entity.history, entity.history_begin, &HistoryBytes);
}

int64_t Shard::EventStore::ForgetOldIds(Template& t, Micros now) {
  const Micros cutoff = now - t.spec->dedup_window_micros;
  while (t.id_order_begin < t.id_order.size() && t.id_order[t.id_order_begin].first < cutoff) {
    auto& [arrived, id] = t.id_order[t.id_order_begin];
    auto it = t.seen_ids.find(id);
    // A re-sent id after expiry was re-inserted with a newer arrival: keep that one.
    if (it != t.seen_ids.end() && it->second == arrived) t.seen_ids.erase(it);
    ++t.id_order_begin;
  }
  return CompactFront(t.id_order, t.id_order_begin, &IdOrderBytes);
}

void Shard::EventStore::PrefetchEntity(uint32_t template_id, std::string_view key) const {
  templates_[template_id]->entities.prefetch(AsAbsl(key));
}

void Shard::EventStore::PrefetchTiles(uint32_t template_id, std::string_view key) const {
  const Template& t = *templates_[template_id];
  auto it = t.entities.find(AsAbsl(key));
  if (it == t.entities.end()) return;
  for (const aggregate::SeriesGroup& group : it->second.groups) group.Prefetch();
  if (it->second.custom != nullptr) __builtin_prefetch(it->second.custom.get());
}

EventOutcome Shard::EventStore::Apply(const ShardEvent& event, Micros now, Status& error) {
  ODS_CHECK(event.template_id < templates_.size());
  Template& t = *templates_[event.template_id];
  const TemplateSpec& spec = *t.spec;
  auto capacity_change = [](size_t before, size_t after, size_t unit) {
    return (static_cast<int64_t>(after) - static_cast<int64_t>(before)) *
           static_cast<int64_t>(unit);
  };
  const std::span<const record::Value* const> values(event.values, spec.field_count);
  const bool dedup = !event.event_id.empty() && spec.dedup_window_micros > 0;
  if (dedup) {
    bytes_ += ForgetOldIds(t, now);
    id_scratch_.clear();
    const auto key_size = static_cast<uint32_t>(event.key.size());
    id_scratch_.append(reinterpret_cast<const char*>(&key_size), sizeof(key_size));
    id_scratch_.append(event.key);
    id_scratch_.append(event.event_id);
    if (!t.customs.empty() && t.seen_ids.contains(id_scratch_)) return EventOutcome::kDuplicate;
  }
  if (!t.cold_tiles.empty()) {
    // Never while the clock runs forward: tiles_ssd_after > allowed_lateness keeps accepted
    // events out of tiles below RAM. A clock stepped back could let one in; refused, since the
    // rows below RAM cannot take it.
    auto c = t.cold_tiles.find(AsAbsl(event.key));
    if (c != t.cold_tiles.end() && c->second.id != 0 && event.event_time < c->second.boundary) {
      error = Status(StatusCode::kOutOfRange,
                     "event time " + std::to_string(event.event_time) +
                         "us falls in an aggregation tile of entity '" +
                         QuoteForMessage(event.key) +
                         "' already moved below RAM (tiles_ssd_after); not applied");
      return EventOutcome::kFailed;
    }
  }
  if (!t.customs.empty()) {
    // Lua first: a failing aggregator leaves everything as it was (id, tiles, history).
    auto found = t.entities.find(AsAbsl(event.key));
    error = StageCustom(t, found == t.entities.end() ? nullptr : &found->second,
                        event.event_time, values, now);
    if (!error.ok()) return EventOutcome::kFailed;
  }
  if (dedup) {
    const size_t ids = t.seen_ids.capacity();
    auto [it, inserted] = t.seen_ids.try_emplace(id_scratch_, now);
    bytes_ += capacity_change(ids, t.seen_ids.capacity(), kSeenIdSlotBytes);
    if (!inserted) return EventOutcome::kDuplicate;
    const size_t order = t.id_order.capacity();
    t.id_order.emplace_back(now, id_scratch_);
    bytes_ += capacity_change(order, t.id_order.capacity(), sizeof(t.id_order[0])) +
              static_cast<int64_t>(IdHeapBytes(t.id_order.back().second));
  }
  const size_t slots = t.entities.capacity();
  auto [it, fresh] = t.entities.try_emplace(AsAbsl(event.key));
  Entity& entity = it->second;
  if (fresh) {
    for (const auto& layout : t.layouts) entity.groups.emplace_back(*layout);
    entity.newest_event_time = event.event_time;
    bytes_ += capacity_change(slots, t.entities.capacity(), kEntitySlotBytes) +
              static_cast<int64_t>(EntityBytes(it->first, entity));
  }
  entity.newest_event_time = std::max(entity.newest_event_time, event.event_time);
  for (aggregate::SeriesGroup& group : entity.groups) {
    bytes_ += group.Add(event.event_time, values, now);
  }
  if (!t.customs.empty()) bytes_ += CommitCustom(t, entity, now);
  if (spec.history_retention_micros > 0 &&
      event.event_time >= now - spec.history_retention_micros) {
    const size_t history = entity.history.capacity();
    StoredEvent& stored = entity.history.emplace_back();
    stored.event_time = event.event_time;
    stored.values.resize(spec.field_count);
    for (uint32_t f = 0; f < spec.field_count; ++f) {
      if (event.values[f] != nullptr) stored.values[f] = *event.values[f];
    }
    bytes_ += capacity_change(history, entity.history.capacity(), sizeof(StoredEvent)) +
              static_cast<int64_t>(StoredEventBytes(stored));
    if (t.cold.empty() || !t.cold.contains(AsAbsl(event.key))) {
      bytes_ += TrimHistory(spec, entity, now);
    }
  }
  return EventOutcome::kApplied;
}

bool Shard::EventStore::ReadOnline(uint32_t template_id, std::span<const AggregationRead> reads,
                                   std::span<const std::string_view> entities,
                                   std::span<const uint32_t> indices, Micros now,
                                   uint64_t& budget_bytes, Status& error,
                                   std::span<const ColdTiles> cold) {
  ODS_CHECK(template_id < templates_.size());
  Template& t = *templates_[template_id];
  // Reads that reach below RAM: the windows of built-in aggregations starting before `reach`.
  Micros reach = std::numeric_limits<Micros>::min();
  if (!t.cold_tiles.empty()) {
    reach = std::numeric_limits<Micros>::max();
    for (const AggregationRead& r : reads) {
      const AggregationSpec& agg = *t.aggregations[aggregation_slots_[r.aggregation_id].second];
      if (agg.function == nullptr) {
        reach = std::min(reach, aggregate::WindowStart(agg.spec, r.window, now));
      }
    }
  }
  size_t next_cold = 0;  // cold is in index order, as ColdTilesOf made it from `indices`
  // Each read's window as of `now`, for every entity (built-in aggregations only); the
  // placements are checked here, once per call.
  absl::InlinedVector<aggregate::GroupLayout::WindowAt, 16> windows(reads.size());
  for (size_t k = 0; k < reads.size(); ++k) {
    const auto [tid, position] = aggregation_slots_[reads[k].aggregation_id];
    ODS_CHECK(tid == template_id);
    const Placement where = t.placements[position];
    if (where.layout != kCustomLayout) {
      windows[k] = t.layouts[where.layout]->At(where.member, reads[k].window, now);
    }
  }
  // Two passes (a read changes no entry, so an entity found first stays valid). First every
  // find, back to back: each misses the cache on its map slot, and with no reads between them
  // the CPU overlaps those misses (a read between finds filled its reorder window: the finds
  // waited one after the other); each find's control bytes are hinted kSlotAhead finds early,
  // and the found slot's lines (key and Entity span ~3) at once. Then the reads, each entity's
  // newest tile rows hinted kTilesAhead reads early.
  constexpr size_t kSlotAhead = 8;
  constexpr size_t kTilesAhead = 4;
  const size_t n = indices.size();
  auto key = [&](size_t k) { return AsAbsl(entities[indices[k]]); };
  absl::InlinedVector<Entity*, 128> found(n, nullptr);
  for (size_t k = 0; k < n && k < kSlotAhead; ++k) t.entities.prefetch(key(k));
  for (size_t k = 0; k < n; ++k) {
    if (k + kSlotAhead < n) t.entities.prefetch(key(k + kSlotAhead));
    auto it = t.entities.find(key(k));
    if (it == t.entities.end()) continue;
    found[k] = &it->second;
    const char* begin = reinterpret_cast<const char*>(&*it);
    for (size_t at = 64; at < sizeof(*it); at += 64) __builtin_prefetch(begin + at);
  }
  auto hint_tiles = [&](size_t k) {
    if (const Entity* entity = found[k]) {
      for (const aggregate::SeriesGroup& group : entity->groups) group.Prefetch();
    }
  };
  for (size_t k = 0; k < n && k < kTilesAhead; ++k) hint_tiles(k);
  for (size_t k = 0; k < n; ++k) {
    if (k + kTilesAhead < n) hint_tiles(k + kTilesAhead);
    Entity* entity = found[k];
    const uint32_t i = indices[k];
    const DecodedTiles* below = nullptr;
    if (entity != nullptr && !t.cold_tiles.empty()) {
      auto c = t.cold_tiles.find(key(k));
      if (c != t.cold_tiles.end() && c->second.id != 0 && reach < c->second.boundary) {
        while (next_cold < cold.size() && cold[next_cold].ref.index < i) ++next_cold;
        if (next_cold == cold.size() || cold[next_cold].ref.index != i ||
            cold[next_cold].ref.blob_id != c->second.id || cold[next_cold].tiles == nullptr) {
          error = Status(StatusCode::kAborted, "aggregation tiles below RAM moved; read again");
          return false;
        }
        below = cold[next_cold].tiles.get();
      }
    }
    for (size_t k = 0; k < reads.size(); ++k) {
      const AggregationRead& r = reads[k];
      const uint32_t position = aggregation_slots_[r.aggregation_id].second;
      if (entity == nullptr) {
        r.found[i] = 0;
        r.event_times[i] = 0;
        r.values[i] = std::monostate{};
        continue;
      }
      r.found[i] = 1;
      r.event_times[i] = entity->newest_event_time;
      const Placement where = t.placements[position];
      if (where.layout == kCustomLayout) {
        static const aggregate::CustomSeries kEmpty;
        const Custom& custom = t.customs[where.member];
        const aggregate::CustomSeries& series =
            entity->custom != nullptr && where.member < entity->custom->size()
                ? (*entity->custom)[where.member]
                : kEmpty;
        error = series.Query(*custom.fn, custom.spec->spec, r.window, now, r.values[i]);
        if (!error.ok()) return false;
      } else {
        const aggregate::ColdRows* rows =
            below != nullptr && where.layout < below->rows.size() ? &below->rows[where.layout]
                                                                   : nullptr;
        aggregate::SeriesGroup& group = entity->groups[where.layout];
        bytes_ += group.EnableAnswerCache(where.member, r.window);
        r.values[i] = group.Query(windows[k], rows);
      }
      if (!Charge(r.values[i], budget_bytes)) return false;
    }
  }
  return true;
}

bool Shard::EventStore::ReadHistorical(uint32_t template_id, std::span<const AggregationRead> reads,
                                       std::span<const std::string_view> entities,
                                       std::span<const Micros> as_of,
                                       std::span<const uint32_t> indices,
                                       uint64_t& budget_bytes, Status& error,
                                       std::span<const ColdHistory> cold) const {
  ODS_CHECK(template_id < templates_.size());
  const Template& t = *templates_[template_id];
  std::vector<aggregate::Sample> samples;
  std::vector<const record::Value*> pointers;  // user-defined: every event's values
  std::vector<aggregate::CustomEvent> custom_events;
  for (uint32_t i : indices) {
    auto it = t.entities.find(AsAbsl(entities[i]));
    const Entity* entity = it == t.entities.end() ? nullptr : &it->second;
    // Its events below RAM, as the caller read them: they must still be exactly those.
    const std::vector<StoredEvent>* below = nullptr;
    if (entity != nullptr && !t.cold.empty()) {
      auto c = t.cold.find(AsAbsl(entities[i]));
      if (c != t.cold.end() && c->second.events > 0) {
        auto given = std::lower_bound(
            cold.begin(), cold.end(), i,
            [](const ColdHistory& h, uint32_t index) { return h.ref.index < index; });
        if (given == cold.end() || given->ref.index != i ||
            given->ref.first_seq != c->second.first_seq ||
            given->ref.last_seq != c->second.last_seq) {
          error = Status(StatusCode::kAborted, "retained events of '" +
                                                   std::string(entities[i]) +
                                                   "' moved below RAM during the read");
          return false;
        }
        below = &given->events;
      }
    }
    Micros newest = std::numeric_limits<Micros>::min();
    size_t retained = 0;
    if (entity != nullptr) {
      ForEachRetained(below, *entity, [&](const StoredEvent& e) {
        if (e.event_time <= as_of[i]) newest = std::max(newest, e.event_time);
        ++retained;
      });
    }
    const bool found = newest != std::numeric_limits<Micros>::min();
    for (const AggregationRead& r : reads) {
      const auto [tid, position] = aggregation_slots_[r.aggregation_id];
      ODS_CHECK(tid == template_id);
      r.found[i] = found ? 1 : 0;
      r.event_times[i] = found ? newest : 0;
      if (!found) {
        r.values[i] = std::monostate{};
        continue;
      }
      const AggregationSpec& agg = *t.aggregations[position];
      if (const Placement where = t.placements[position]; where.layout == kCustomLayout) {
        // Every retained event with its values, by field index.
        const size_t fields = t.spec->field_count;
        pointers.clear();
        custom_events.clear();
        pointers.reserve(retained * fields);  // custom_events point into it: no reallocation
        ForEachRetained(below, *entity, [&](const StoredEvent& stored) {
          if (agg.field >= 0 && !stored.values[agg.field]) return;
          const size_t at = pointers.size();
          for (const auto& v : stored.values) pointers.push_back(v ? &*v : nullptr);
          custom_events.push_back({stored.event_time, {pointers.data() + at, fields}});
        });
        error = aggregate::ComputeCustomAsOf(*t.customs[where.member].fn, agg.spec, r.window,
                                             custom_events, as_of[i], r.values[i]);
        if (!error.ok()) return false;
        if (!Charge(r.values[i], budget_bytes)) return false;
        continue;
      }
      samples.clear();
      ForEachRetained(below, *entity, [&](const StoredEvent& stored) {
        if (agg.field >= 0 && !stored.values[agg.field]) return;
        samples.push_back(
            {stored.event_time, agg.field >= 0 ? &*stored.values[agg.field] : nullptr});
      });
      r.values[i] = aggregate::ComputeAsOf(agg.spec, r.window, samples, as_of[i]);
      if (!Charge(r.values[i], budget_bytes)) return false;
    }
  }
  return true;
}

size_t Shard::EventStore::SweepIdle(Micros now, size_t max_visits) {
  size_t removed = 0;
  size_t visits = 0;
  // Each template is entered at most twice, so a pass over small maps ends even when the
  // budget exceeds every entity (the wrap brings it back to where it started).
  for (size_t entered = 0; entered <= templates_.size() && visits < max_visits && !templates_.empty();
       ++entered) {
    if (sweep_template_ >= templates_.size()) sweep_template_ = 0;
    Template& t = *templates_[sweep_template_];
    Micros horizon = t.spec->history_retention_micros;
    for (const auto& agg : t.aggregations) {
      for (Micros w : agg->spec.windows) horizon = std::max(horizon, w);
    }
    const Micros cutoff = now - horizon;
    auto it = t.entities.begin();
    if (!sweep_resume_key_.empty()) {
      it = t.entities.find(AsAbsl(sweep_resume_key_));
      if (it == t.entities.end()) it = t.entities.begin();
    }
    for (; it != t.entities.end() && visits < max_visits; ++visits) {
      if (it->second.newest_event_time < cutoff) {
        if (!t.cold.empty()) DropCold(t, it->first);
        if (!t.cold_tiles.empty()) DropColdTiles(t, it->first);
        bytes_ -= static_cast<int64_t>(EntityBytes(it->first, it->second));
        t.entities.erase(it++);  // abseil: erase leaves other iterators valid
        ++removed;
      } else {
        ++it;
      }
    }
    if (it != t.entities.end()) {
      sweep_resume_key_.assign(it->first.view());
      break;
    }
    sweep_resume_key_.clear();
    ++sweep_template_;
  }
  return removed;
}

uint64_t Shard::EventStore::entities() const {
  uint64_t n = 0;
  for (const auto& t : templates_) n += t->entities.size();
  return n;
}

uint64_t Shard::EventStore::MemoryBytes() const {
  uint64_t bytes = 0;
  for (const auto& t : templates_) {
    bytes += t->entities.capacity() * kEntitySlotBytes;
    for (const auto& [key, entity] : t->entities) bytes += EntityBytes(key, entity);
    bytes += t->seen_ids.capacity() * kSeenIdSlotBytes;
    bytes += IdOrderBytes(t->id_order);
    bytes += t->cold.capacity() * kColdSlotBytes;
    for (const auto& [key, range] : t->cold) bytes += key.heap_bytes();
    bytes += t->cold_tiles.capacity() * kColdTilesSlotBytes;
    for (const auto& [key, range] : t->cold_tiles) bytes += key.heap_bytes();
  }
  return bytes;
}

// --- Retained events below RAM ---

uint64_t Shard::EventStore::LoadCold(const Template& t, const EntityKey& key,
                                     std::vector<StoredEvent>& out) const {
  out.clear();
  if (t.cold.empty()) return 0;
  auto c = t.cold.find(key);
  if (c == t.cold.end() || c->second.events == 0) return 0;
  if (cold_reader_ &&
      cold_reader_(t.spec->id, key.view(), c->second.first_seq, c->second.last_seq, out).ok()) {
    return 0;
  }
  out.clear();
  return c->second.events;
}

void Shard::EventStore::DropCold(Template& t, const EntityKey& key) {
  auto c = t.cold.find(key);
  if (c == t.cold.end()) return;
  garbage_.push_back({t.spec->id, std::string(key.view()), next_cold_seq_});
  cold_events_ -= c->second.events;
  bytes_ -= static_cast<int64_t>(key.heap_bytes());
  t.cold.erase(c);
}

void Shard::EventStore::ColdHistoryOf(uint32_t template_id,
                                      std::span<const std::string_view> entities,
                                      std::span<const uint32_t> indices,
                                      std::vector<ColdHistoryRef>& out) const {
  ODS_CHECK(template_id < templates_.size());
  const Template& t = *templates_[template_id];
  if (t.cold.empty()) return;
  for (uint32_t i : indices) {
    auto c = t.cold.find(AsAbsl(entities[i]));
    if (c == t.cold.end() || c->second.events == 0) continue;
    out.push_back({i, c->second.first_seq, c->second.last_seq});
  }
}

void Shard::EventStore::CollectHistoryMoves(Micros now, size_t max_visits,
                                            std::vector<HistoryMove>& out) {
  // At most this many events of one entity per move, so one step stays short.
  constexpr size_t kMaxEventsPerMove = 4096;
  size_t visits = 0;
  for (size_t entered = 0;
       entered <= templates_.size() && visits < max_visits && !templates_.empty(); ++entered) {
    if (move_template_ >= templates_.size()) move_template_ = 0;
    Template& t = *templates_[move_template_];
    if (t.spec->history_ssd_after_micros <= 0) {
      move_resume_key_.clear();
      ++move_template_;
      continue;
    }
    const Micros cutoff = now - t.spec->history_ssd_after_micros;
    const Micros retention_cutoff = now - t.spec->history_retention_micros;
    auto it = t.entities.begin();
    if (!move_resume_key_.empty()) {
      it = t.entities.find(AsAbsl(move_resume_key_));
      if (it == t.entities.end()) it = t.entities.begin();
    }
    for (; it != t.entities.end() && visits < max_visits; ++it, ++visits) {
      Entity& entity = it->second;
      auto c = t.cold.find(it->first);
      if (c != t.cold.end()) {
        ColdRange& range = c->second;
        if (range.pending > 0) continue;  // one move per entity at a time
        if (range.events > 0 && range.newest < retention_cutoff) {
          // All of them are past the retention: nothing reads them any more.
          garbage_.push_back({t.spec->id, std::string(it->first.view()), range.last_seq + 1});
          cold_events_ -= range.events;
          range.events = 0;
        }
      }
      size_t n = 0;
      while (n < kMaxEventsPerMove && entity.history_begin + n < entity.history.size() &&
             entity.history[entity.history_begin + n].event_time < cutoff) {
        ++n;
      }
      if (n == 0) {
        if (c != t.cold.end() && c->second.events == 0) {
          // Nothing below RAM: retention trims its RAM history again.
          bytes_ -= static_cast<int64_t>(it->first.heap_bytes());
          t.cold.erase(c);
        }
        continue;
      }
      if (c == t.cold.end()) {
        const size_t slots = t.cold.capacity();
        c = t.cold.try_emplace(it->first).first;
        bytes_ += static_cast<int64_t>((t.cold.capacity() - slots) * kColdSlotBytes +
                                       it->first.heap_bytes());
      }
      HistoryMove& move = out.emplace_back();
      move.template_id = t.spec->id;
      move.entity.assign(it->first.view());
      move.first_seq = next_cold_seq_;
      move.encoded.resize(n);
      for (size_t k = 0; k < n; ++k) {
        const StoredEvent& e = entity.history[entity.history_begin + k];
        record::EncodeRow(e.event_time, e.values, move.encoded[k]);
      }
      c->second.pending = static_cast<uint32_t>(n);
      c->second.pending_seq = next_cold_seq_;
      next_cold_seq_ += n;
    }
    if (it != t.entities.end()) {
      move_resume_key_.assign(it->first.view());
      break;
    }
    move_resume_key_.clear();
    ++move_template_;
  }
}

void Shard::EventStore::CommitHistoryMoves(std::span<const HistoryMove> moves, bool written) {
  for (const HistoryMove& move : moves) {
    Template& t = *templates_[move.template_id];
    auto c = t.cold.find(AsAbsl(move.entity));
    const auto n = static_cast<uint32_t>(move.encoded.size());
    // Not ours any more: the entity went (DropCold made every seq so far garbage).
    if (c == t.cold.end() || c->second.pending != n || c->second.pending_seq != move.first_seq) {
      continue;
    }
    ColdRange& range = c->second;
    range.pending = 0;
    if (!written) continue;  // the events stay in RAM; the next sweep tries again
    auto e = t.entities.find(AsAbsl(move.entity));
    ODS_CHECK(e != t.entities.end());  // an entity's cold entry goes with it (DropCold)
    Entity& entity = e->second;
    // The prefix is still the one encoded: nothing else removes the front of the RAM history of
    // an entity with a cold entry (Apply does not trim it).
    ODS_CHECK(entity.history_begin + n <= entity.history.size());
    Micros newest = range.events > 0 ? range.newest : std::numeric_limits<Micros>::min();
    for (uint32_t k = 0; k < n; ++k) {
      StoredEvent& stored = entity.history[entity.history_begin + k];
      newest = std::max(newest, stored.event_time);
      bytes_ -= static_cast<int64_t>(StoredEventBytes(stored));
      std::vector<std::optional<record::Value>>().swap(stored.values);  // frees its capacity
    }
    entity.history_begin += n;
    bytes_ += CompactFront(entity.history, entity.history_begin, &HistoryBytes);
    if (range.events == 0) range.first_seq = move.first_seq;
    range.last_seq = move.first_seq + n - 1;
    range.events += n;
    range.newest = newest;
    cold_events_ += n;
    cold_moved_ += n;
  }
}

}  // namespace ods::shard
