// Engine::Reload: applies the reloadable parts of a new config (tiering rules, promote,
// priority, SLA, TTL, budgets, costs) to the running engine. docs/tiering.md, "Reloading".

#include <string>
#include <utility>
#include <vector>

#include "ods/common/logging.h"
#include "ods/common/units.h"
#include "ods/engine/engine.h"

namespace ods::engine {
namespace {

std::string RulesText(const config::TableConfig& t) {
  if (t.tiering.empty()) return "none";
  std::string out;
  for (const config::TierRuleConfig& r : t.tiering) {
    if (!out.empty()) out += "; ";
    out += DescribeTierRule(r);
  }
  return out;
}

std::string PromoteText(const config::TableConfig& t) {
  switch (t.promote) {
    case config::Promote::kOnAccess: return "on_access";
    case config::Promote::kNever: return "never";
    case config::Promote::kAfterHits: return "after_hits " + std::to_string(t.promote_after_hits);
  }
  return "?";
}

bool SameShape(const config::TableConfig& a, const config::TableConfig& b) {
  if (a.key_field != b.key_field || a.free_form != b.free_form ||
      a.fields.size() != b.fields.size() || a.max_age_micros != b.max_age_micros ||
      a.durability != b.durability) {
    return false;
  }
  for (size_t i = 0; i < a.fields.size(); ++i) {
    if (a.fields[i].name != b.fields[i].name || a.fields[i].type != b.fields[i].type) return false;
  }
  return true;
}

bool SameReadThrough(const std::optional<config::ReadThroughConfig>& a,
                     const std::optional<config::ReadThroughConfig>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a.has_value()) return true;
  return a->postgres_conninfo == b->postgres_conninfo && a->postgres_table == b->postgres_table &&
         a->postgres_key_column == b->postgres_key_column && a->columns == b->columns &&
         a->cache == b->cache && a->negative_ttl_micros == b->negative_ttl_micros &&
         a->max_negative_keys == b->max_negative_keys;
}

bool SameBacking(const std::optional<config::BackingConfig>& a,
                 const std::optional<config::BackingConfig>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a.has_value()) return true;
  return a->kind == b->kind && a->dir == b->dir && a->postgres_conninfo == b->postgres_conninfo &&
         a->postgres_table == b->postgres_table;
}

}  // namespace

std::string DescribeTierRule(const config::TierRuleConfig& r) {
  std::string out =
      r.transient ? std::string("transient") : "to " + std::string(StorageTierName(r.to));
  std::string when;
  auto add = [&](const std::string& part) { when += (when.empty() ? "" : ", ") + part; };
  if (r.idle_for_micros != 0) add("idle_for " + FormatDuration(r.idle_for_micros));
  if (r.age_micros != 0) add("age " + FormatDuration(r.age_micros));
  if (r.field.has_value()) add("field \"" + r.field_text + "\"");
  return when.empty() ? out : out + " when " + when;
}

Result<ReloadReport> Engine::Reload(const config::Config& next) {
  MutexLock lock(reload_mu_);
  const std::shared_ptr<const TierSettings> current = Settings();
  const config::Config& old = current->config;
  ReloadReport report;

  // What a reload cannot change: the tables' shapes and storage. Refused whole if a reloadable
  // part depends on one of them; otherwise listed and left for a restart.
  const config::StorageConfig& os = old.storage;
  const config::StorageConfig& ns = next.storage;
  if (os.data_dir != ns.data_dir) report.needs_restart.push_back("storage.data_dir");
  if (os.durability != ns.durability) report.needs_restart.push_back("storage.durability");
  if (os.durability_window_micros != ns.durability_window_micros) {
    report.needs_restart.push_back("storage.durability_window");
  }
  if (!SameBacking(os.backing, ns.backing)) report.needs_restart.push_back("storage.backing");
  if (old.subscriptions.retained_changes != next.subscriptions.retained_changes ||
      old.subscriptions.max_subscribers != next.subscriptions.max_subscribers ||
      old.subscriptions.queue_size != next.subscriptions.queue_size) {
    report.needs_restart.push_back("subscriptions");
  }
  std::vector<int> old_index(next.tables.size(), -1);  // next table -> running table
  for (size_t i = 0; i < next.tables.size(); ++i) {
    for (size_t j = 0; j < old.tables.size(); ++j) {
      if (old.tables[j].name == next.tables[i].name) old_index[i] = static_cast<int>(j);
    }
    if (old_index[i] < 0) {
      report.needs_restart.push_back("tables." + next.tables[i].name + " (new table)");
    }
  }
  for (const config::TableConfig& t : old.tables) {
    bool kept = false;
    for (const config::TableConfig& n : next.tables) kept = kept || n.name == t.name;
    if (!kept) report.needs_restart.push_back("tables." + t.name + " (removed)");
  }

  // The running tables with their reloadable parts from `next`.
  config::Config applied = old;
  for (size_t i = 0; i < next.tables.size(); ++i) {
    if (old_index[i] < 0) continue;
    const config::TableConfig& n = next.tables[i];
    config::TableConfig& t = applied.tables[static_cast<size_t>(old_index[i])];
    const std::string path = "tables." + n.name;
    if (!SameShape(t, n)) {
      report.needs_restart.push_back(path + " (key, fields, max_age or durability)");
    }
    if (!SameReadThrough(t.read_through, n.read_through)) {
      report.needs_restart.push_back(path + ".read_through");
    }
    const bool below_ram = std::any_of(n.tiering.begin(), n.tiering.end(), [](const auto& r) {
      return r.to != StorageTier::kRam;
    });
    if (!n.tiering.empty() && !tiered_at_start_[static_cast<size_t>(old_index[i])]) {
      return FailedPreconditionError(
          next.source + ": " + path +
          ".tiering: the table had no tiering rules at start, so it keeps no access times; "
          "giving it rules needs a restart (changing rules a table has works); nothing was "
          "reloaded");
    }
    if (below_ram && config::DurabilityOf(old, t) == config::Durability::kNone) {
      return FailedPreconditionError(
          next.source + ": " + path +
          ".tiering: moves records below RAM, but the running table is not durable (a change "
          "of durability needs a restart); nothing was reloaded");
    }
    const bool to_backing = std::any_of(n.tiering.begin(), n.tiering.end(), [](const auto& r) {
      return r.to == StorageTier::kBacking;
    });
    if (to_backing && backing_ == nullptr) {
      return FailedPreconditionError(next.source + ": " + path +
                                     ".tiering: to: backing, but odsd runs without a backing "
                                     "store (storage.backing needs a restart); nothing was "
                                     "reloaded");
    }
    if (RulesText(t) != RulesText(n)) {
      report.changes.push_back(path + ".tiering: " + RulesText(t) + " -> " + RulesText(n));
    }
    if (PromoteText(t) != PromoteText(n)) {
      report.changes.push_back(path + ".promote: " + PromoteText(t) + " -> " + PromoteText(n));
    }
    if (t.priority != n.priority) {
      report.changes.push_back(path + ".priority: " + std::to_string(t.priority) + " -> " +
                               std::to_string(n.priority));
    }
    if (t.sla_read_p99_micros != n.sla_read_p99_micros) {
      report.changes.push_back(path + ".sla.read_p99: " + FormatDuration(t.sla_read_p99_micros) +
                               " -> " + FormatDuration(n.sla_read_p99_micros));
    }
    if (t.ttl_micros != n.ttl_micros) {
      report.changes.push_back(path + ".ttl: " + FormatDuration(t.ttl_micros) + " -> " +
                               FormatDuration(n.ttl_micros) + " (for records written from now)");
    }
    t.tiering = n.tiering;
    t.promote = n.promote;
    t.promote_after_hits = n.promote_after_hits;
    t.priority = n.priority;
    t.sla_read_p99_micros = n.sla_read_p99_micros;
    t.ttl_micros = n.ttl_micros;
  }
  auto change_bytes = [&](const char* path, uint64_t a, uint64_t b) {
    if (a != b) {
      report.changes.push_back(std::string(path) + ": " + FormatBytes(a) + " -> " + FormatBytes(b));
    }
  };
  auto change_cost = [&](const char* path, double a, double b) {
    if (a != b) {
      report.changes.push_back(std::string(path) + ": " + std::to_string(a) + " -> " +
                               std::to_string(b));
    }
  };
  change_bytes("storage.ram.max_bytes", os.ram_max_bytes, ns.ram_max_bytes);
  change_bytes("storage.ssd.max_bytes", os.ssd_max_bytes, ns.ssd_max_bytes);
  change_cost("storage.ram.cost_per_gib_month", os.ram_cost_per_gib_month,
              ns.ram_cost_per_gib_month);
  change_cost("storage.ssd.cost_per_gib_month", os.ssd_cost_per_gib_month,
              ns.ssd_cost_per_gib_month);
  applied.storage.ram_max_bytes = ns.ram_max_bytes;
  applied.storage.ssd_max_bytes = ns.ssd_max_bytes;
  applied.storage.ram_cost_per_gib_month = ns.ram_cost_per_gib_month;
  applied.storage.ssd_cost_per_gib_month = ns.ssd_cost_per_gib_month;
  if (os.backing.has_value() && ns.backing.has_value()) {
    change_cost("storage.backing.cost_per_gib_month", os.backing->cost_per_gib_month,
                ns.backing->cost_per_gib_month);
    applied.storage.backing->cost_per_gib_month = ns.backing->cost_per_gib_month;
  }

  report.generation = current->generation;
  auto log = Logger("ods.engine");
  for (const std::string& c : report.needs_restart) {
    log->warn("config reload: {} changed; not applied until a restart", c);
  }
  if (report.changes.empty()) {
    log->info("config reload: no reloadable change (tiering, promote, priority, sla, ttl, "
              "budgets, costs)");
    return report;
  }
  // Apply: shards first (each under its own lock), then the engine's snapshot and atomics.
  std::shared_ptr<const TierSettings> settings =
      MakeTierSettings(std::move(applied), current->generation + 1, clock_.NowMicros());
  for (uint32_t t = 0; t < settings->config.tables.size(); ++t) {
    for (auto& shard : shards_) {
      shard->SetTiering(t, settings->policies[t]);
      shard->SetTtl(t, settings->config.tables[t].ttl_micros);
    }
    ttl_[t].store(settings->config.tables[t].ttl_micros, std::memory_order_relaxed);
    if (settings->policies[t] != nullptr &&
        settings->policies[t]->Targets(StorageTier::kBacking)) {
      markers_[t].store(true, std::memory_order_relaxed);
    }
    transient_[t].store(
        settings->policies[t] != nullptr && settings->policies[t]->HasTransient(),
        std::memory_order_relaxed);
  }
  const uint64_t ram_max = settings->config.storage.ram_max_bytes;
  ram_max_bytes_.store(ram_max, std::memory_order_relaxed);
  for (auto& shard : shards_) {
    shard->SetMaxMemoryBytes(ram_max == 0 ? 0 : std::max<uint64_t>(ram_max / shards_.size(), 1));
  }
  report.generation = settings->generation;
  tier_settings_.store(std::move(settings), std::memory_order_release);
  for (const std::string& c : report.changes) log->info("config reload: {}", c);
  WakeSweeper();  // new rules and budgets act now
  return report;
}

}  // namespace ods::engine
