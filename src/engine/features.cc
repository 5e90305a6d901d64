// Engine: event ingestion, feature lookups and run-time definitions (the Features and Admin
// halves of the engine; Store lives in engine.cc).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <utility>

#include "catalog.h"
#include "feature_ref.h"
#include "group_by_shard.h"
#include "ods/common/logging.h"
#include "ods/common/units.h"
#include "ods/engine/engine.h"

namespace ods::engine {
namespace {

// Most features one lookup may ask for.
constexpr size_t kMaxFeaturesPerCall = 1000;
// Longest event_id.
constexpr size_t kMaxEventIdBytes = 256;
// Answer bytes of one (entity, feature) cell besides its value: its status, event time and value
// wrapper on the wire (an event time takes up to 10 bytes as a varint).
constexpr uint64_t kCellBytes = 12;

bool SameTemplate(const config::EventTemplateConfig& a, const config::EventTemplateConfig& b) {
  if (a.fields.size() != b.fields.size()) return false;
  for (size_t i = 0; i < a.fields.size(); ++i) {
    if (a.fields[i].name != b.fields[i].name || a.fields[i].type != b.fields[i].type) return false;
  }
  return a.name == b.name && a.key_field == b.key_field && a.timestamp_field == b.timestamp_field &&
         a.allowed_lateness_micros == b.allowed_lateness_micros &&
         a.max_future_micros == b.max_future_micros &&
         a.history_retention_micros == b.history_retention_micros &&
         a.dedup_window_micros == b.dedup_window_micros &&
         a.history_ssd_after_micros == b.history_ssd_after_micros &&
         a.tiles_ssd_after_micros == b.tiles_ssd_after_micros;
}

bool SameAggregation(const config::AggregationConfig& a, const config::AggregationConfig& b) {
  return a.name == b.name && a.template_name == b.template_name && a.fn == b.fn &&
         a.function == b.function && a.field == b.field && a.n == b.n && a.windows == b.windows &&
         a.tile_micros == b.tile_micros && a.max_age_micros == b.max_age_micros;
}

bool SameDerived(const config::DerivedFeatureConfig& a, const config::DerivedFeatureConfig& b) {
  if (a.name != b.name || a.fn != b.fn || a.function != b.function ||
      a.inputs.size() != b.inputs.size()) {
    return false;
  }
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    if (a.inputs[i].ref != b.inputs[i].ref || a.inputs[i].weight != b.inputs[i].weight) {
      return false;
    }
  }
  return true;
}

// Whether an aggregation's values are numbers (int64 or double), as a weighted input needs.
bool NumericOutput(const aggregate::Spec& spec) {
  switch (spec.fn) {
    case aggregate::Fn::kCount:
    case aggregate::Fn::kDistinctCount:
    case aggregate::Fn::kMean:
    case aggregate::Fn::kStddev:
      return true;
    case aggregate::Fn::kSum:
    case aggregate::Fn::kMin:
    case aggregate::Fn::kMax:
    case aggregate::Fn::kFirst:
    case aggregate::Fn::kLast:
      return spec.input_type == ValueType::kInt64 || spec.input_type == ValueType::kDouble;
    case aggregate::Fn::kLastN:
    case aggregate::Fn::kTopK:
      return false;
  }
  return false;
}

// A derived feature's value for one row, from its inputs' columns (`inputs[k]` weighs
// `weights[k]`): the weighted sum as a double, STALE if any input is; no value (NOT_FOUND, or
// OUT_OF_RETENTION if any input is so) when an input has none; the newest input event time.
void ComputeWeighted(std::span<const FeatureColumn* const> inputs, std::span<const double> weights,
                     size_t row, FeatureColumn& out) {
  double sum = 0;
  bool stale = false;
  Micros newest = 0;
  FeatureStatus missing = FeatureStatus::kPresent;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const FeatureColumn& in = *inputs[k];
    const FeatureStatus status = in.statuses[row];
    const auto* value = std::get_if<record::Value>(&in.values[row]);
    const int64_t* i = value == nullptr ? nullptr : std::get_if<int64_t>(value);
    const double* d = value == nullptr ? nullptr : std::get_if<double>(value);
    if (status == FeatureStatus::kOutOfRetention) {
      missing = FeatureStatus::kOutOfRetention;
      continue;
    }
    if (status == FeatureStatus::kNotFound || (i == nullptr && d == nullptr)) {
      if (missing == FeatureStatus::kPresent) missing = FeatureStatus::kNotFound;
      continue;
    }
    stale = stale || status == FeatureStatus::kStale;
    sum += weights[k] * (i != nullptr ? static_cast<double>(*i) : *d);
    newest = std::max(newest, in.event_times[row]);
  }
  if (missing != FeatureStatus::kPresent) {
    out.statuses[row] = missing;
    return;
  }
  out.values[row] = record::Value(sum);
  out.statuses[row] = stale ? FeatureStatus::kStale : FeatureStatus::kPresent;
  out.event_times[row] = newest;
}

std::string WindowList(const aggregate::Spec& spec) {
  std::string out;
  for (Micros w : spec.windows) {
    if (!out.empty()) out += ", ";
    out += FormatDuration(w);
  }
  return out;
}

constexpr Micros kMinMicros = std::numeric_limits<Micros>::min();
constexpr Micros kMaxMicros = std::numeric_limits<Micros>::max();

// a - b, clamped to the int64 range instead of overflowing (times come from clients: event times,
// as_of, record times may be anywhere in the range).
Micros ClampedSub(Micros a, Micros b) {
  Micros out = 0;
  if (__builtin_sub_overflow(a, b, &out)) return b < 0 ? kMaxMicros : kMinMicros;
  return out;
}

// Whether `event_time` lies more than `max_age` (> 0) before `at`.
bool OlderThan(Micros event_time, Micros max_age, Micros at) {
  if (event_time >= at) return false;
  const uint64_t age = static_cast<uint64_t>(at) - static_cast<uint64_t>(event_time);  // exact
  return age > static_cast<uint64_t>(max_age);
}

// False for a NaN or infinite double or float_vector element: refused as in records, since it
// would make min/max depend on arrival order and mean/stddev NaN for whole windows.
bool IsFinite(const record::Value& v) {
  if (const auto* d = std::get_if<double>(&v)) return std::isfinite(*d);
  if (const auto* fv = std::get_if<std::vector<float>>(&v)) {
    return std::all_of(fv->begin(), fv->end(), [](float f) { return std::isfinite(f); });
  }
  return true;
}

}  // namespace

std::string_view FeatureStatusName(FeatureStatus status) {
  switch (status) {
    case FeatureStatus::kPresent: return "PRESENT";
    case FeatureStatus::kNotFound: return "NOT_FOUND";
    case FeatureStatus::kStale: return "STALE";
    case FeatureStatus::kOutOfRetention: return "OUT_OF_RETENTION";
  }
  return "UNKNOWN";
}

// --- Definitions ---

Status Engine::CheckConfig(const config::Config& config) {
  ApplyReport report;
  // Definitions may name the config's functions (version 1 of each, as at start).
  FunctionLookup functions = [&config](std::string_view name) -> Result<FunctionRef> {
    for (const config::FunctionConfig& f : config.functions) {
      if (f.name != name) continue;
      const FunctionSpec spec = SpecFromConfig(f);
      return FunctionRef{spec.kind, 1,
                         spec.kind == FunctionKind::kAggregator ? AggregatorOf(spec, 1) : nullptr};
    }
    return UnknownFunction(name);
  };
  ODS_RETURN_IF_ERROR(
      ExtendCatalog(Catalog{}, config.definitions, config.tables, functions, report).status());
  return CheckConfigFunctions(config);
}

Result<std::unique_ptr<Engine::Catalog>> Engine::ExtendCatalog(
    const Catalog& base, const config::Definitions& definitions,
    std::span<const config::TableConfig> tables, const FunctionLookup& functions,
    ApplyReport& report) {
  auto next = std::make_unique<Catalog>(base);
  std::vector<std::string> errors;
  for (const config::EventTemplateConfig& t : definitions.event_templates) {
    if (const TemplateDef* existing = next->FindTemplate(t.name)) {
      if (!SameTemplate(existing->config, t)) {
        return AlreadyExistsError(t.position + ": event template '" + t.name +
                                  "' already exists with a different definition; templates "
                                  "cannot be changed, use a new name");
      }
      continue;
    }
    auto spec = std::make_shared<shard::TemplateSpec>();
    spec->id = static_cast<uint32_t>(next->templates.size());
    spec->field_count = static_cast<uint32_t>(t.fields.size());
    spec->history_retention_micros = t.history_retention_micros;
    spec->dedup_window_micros = t.dedup_window_micros;
    spec->history_ssd_after_micros = t.history_ssd_after_micros;
    spec->tiles_ssd_after_micros = t.tiles_ssd_after_micros;
    for (const config::FieldConfig& f : t.fields) spec->field_names.push_back(f.name);
    next->template_ids.emplace(t.name, spec->id);
    next->templates.push_back({t, std::move(spec)});
    report.templates_added.push_back(t.name);
  }
  for (const config::AggregationConfig& a : definitions.aggregations) {
    const std::string where = a.position + ": aggregations." + a.name + ": ";
    if (const AggregationDef* existing = next->FindAggregation(a.name)) {
      if (!SameAggregation(existing->config, a)) {
        return AlreadyExistsError(where +
                                  "already exists with a different definition; aggregations "
                                  "cannot be changed, register one under a new name");
      }
      continue;
    }
    if (next->FindDerived(a.name) != nullptr) {
      errors.push_back(where + "a derived feature has this name; names of aggregations and "
                               "derived features must differ");
      continue;
    }
    const TemplateDef* t = next->FindTemplate(a.template_name);
    if (t == nullptr) {
      errors.push_back(where + "unknown event template '" + a.template_name + "'");
      continue;
    }
    auto spec = std::make_shared<shard::AggregationSpec>();
    spec->name = a.name;
    if (!a.function.empty()) {
      // A Lua aggregator: any field type (or the whole event); windows as a built-in's.
      Result<FunctionRef> function = functions(a.function);
      if (!function.ok()) {
        errors.push_back(where + function.status().message());
        continue;
      }
      if (function->kind != FunctionKind::kAggregator) {
        errors.push_back(where + "function " + a.function + " v" +
                         std::to_string(function->version) + " is a " +
                         std::string(FunctionKindName(function->kind)) +
                         "; an aggregation's function must be an aggregator (init, update, merge, "
                         "finalize)");
        continue;
      }
      spec->function = function->aggregator;
      spec->spec.fn = aggregate::Fn::kCount;
      if (!a.field.empty()) {
        std::optional<uint32_t> field = t->FieldIndex(a.field);
        if (!field) {
          errors.push_back(where + "event template '" + t->config.name + "' has no field '" +
                           a.field + "' to aggregate");
          continue;
        }
        spec->field = static_cast<int32_t>(*field);
      }
    } else {
      std::optional<aggregate::Fn> fn = aggregate::ParseFn(a.fn);
      if (!fn) {
        errors.push_back(where + "unknown fn '" + a.fn + "'; expected one of: " +
                         std::string(aggregate::FnNameList()));
        continue;
      }
      spec->spec.fn = *fn;
      if (aggregate::NeedsField(*fn)) {
        std::optional<uint32_t> field = t->FieldIndex(a.field);
        if (!field) {
          errors.push_back(where + "event template '" + t->config.name + "' has no field '" +
                           a.field + "' to aggregate");
          continue;
        }
        spec->field = static_cast<int32_t>(*field);
        spec->spec.input_type = t->config.fields[*field].type;
        Status type_ok = aggregate::CheckInputType(*fn, spec->spec.input_type);
        if (!type_ok.ok()) {
          errors.push_back(where + "field '" + a.field + "': " + type_ok.message());
          continue;
        }
      }
    }
    spec->spec.n = a.n;
    spec->spec.windows = a.windows;
    for (Micros w : a.windows) {
      spec->spec.tiles.push_back(a.tile_micros > 0 ? a.tile_micros : aggregate::DefaultTileFor(w));
    }
    Status valid = aggregate::Validate(spec->spec);
    if (!valid.ok()) {
      errors.push_back(where + valid.message());
      continue;
    }
    spec->id = static_cast<uint32_t>(next->aggregations.size());
    spec->template_id = t->spec->id;
    next->aggregation_ids.emplace(a.name, spec->id);
    next->aggregations.push_back({a, std::move(spec)});
    report.aggregations_added.push_back(a.name);
  }
  for (const config::DerivedFeatureConfig& d : definitions.features) {
    const std::string where = d.position + ": features." + d.name + ": ";
    if (const DerivedDef* existing = next->FindDerived(d.name)) {
      if (!SameDerived(existing->config, d)) {
        return AlreadyExistsError(where +
                                  "already exists with a different definition; derived features "
                                  "cannot be changed, register one under a new name");
      }
      continue;
    }
    if (next->FindAggregation(d.name) != nullptr) {
      errors.push_back(where + "an aggregation has this name; names of aggregations and derived "
                               "features must differ");
      continue;
    }
    // A Lua function takes inputs of any type; `weighted` only numbers.
    const bool lua = !d.function.empty();
    if (lua) {
      Result<FunctionRef> function = functions(d.function);
      if (!function.ok()) {
        errors.push_back(where + function.status().message());
        continue;
      }
      if (function->kind != FunctionKind::kDerived) {
        errors.push_back(where + "function " + d.function + " v" +
                         std::to_string(function->version) +
                         (function->kind == FunctionKind::kAggregator ? " is an " : " is a ") +
                         std::string(FunctionKindName(function->kind)) +
                         "; a derived feature's function must be of kind derived (compute)");
        continue;
      }
    } else if (d.fn != "weighted") {
      errors.push_back(where + "unknown fn '" + d.fn + "'; expected weighted");
      continue;
    }
    if (d.inputs.empty()) {
      errors.push_back(where + "no inputs; expected at least one feature ref");
      continue;
    }
    bool inputs_ok = true;
    std::set<std::string_view> seen_refs;
    for (const config::DerivedInputConfig& in : d.inputs) {
      const std::string input = in.position + ": features." + d.name + ".inputs." + in.ref + ": ";
      std::string problem;
      if (!seen_refs.insert(in.ref).second) {
        errors.push_back(input + "listed twice; each input once");
        inputs_ok = false;
        continue;
      }
      const FeatureRef parsed = ParseFeatureRef(in.ref);
      if (parsed.table_field) {
        const std::string_view table = parsed.table;
        const std::string_view field = parsed.field;
        auto t = std::find_if(tables.begin(), tables.end(),
                              [&](const config::TableConfig& c) { return c.name == table; });
        if (t == tables.end()) {
          problem = "no table '" + std::string(table) + "'";
        } else if (t->free_form && lua) {
          // Any field, any type: a Lua function sees nil for a field a record lacks.
        } else if (t->free_form) {
          problem = "table '" + t->name +
                    "' is free-form, so the type of its fields is not known; a weighted input "
                    "must be a number (use a typed table's int64 or double field)";
        } else {
          auto f = std::find_if(t->fields.begin(), t->fields.end(),
                                [&](const config::FieldConfig& c) { return c.name == field; });
          if (f == t->fields.end()) {
            problem = "table '" + t->name + "' has no field '" + std::string(field) + "'";
          } else if (!lua && f->type != ValueType::kInt64 && f->type != ValueType::kDouble) {
            problem = "field '" + f->name + "' is " + std::string(ValueTypeName(f->type)) +
                      "; a weighted input must be int64 or double";
          }
        }
      } else {
        const std::string name(parsed.name);
        const AggregationDef* agg = next->FindAggregation(name);
        if (next->FindDerived(name) != nullptr) {
          problem = "'" + name + "' is a derived feature; inputs must be aggregations or table "
                    "fields";
        } else if (agg == nullptr) {
          problem = "no aggregation named '" + name + "'";
        } else {
          const aggregate::Spec& spec = agg->spec->spec;
          Result<Micros> w = !parsed.has_window ? Result<Micros>(spec.windows[0])
                                                 : ParseDuration(parsed.window);
          if (!parsed.has_window && spec.windows.size() != 1) {
            problem = "aggregation '" + name + "' has " + std::to_string(spec.windows.size()) +
                      " windows (" + WindowList(spec) + "); name one, e.g. " + name + "@" +
                      FormatDuration(spec.windows[0]);
          } else if (!w.ok() ||
                     std::find(spec.windows.begin(), spec.windows.end(), *w) == spec.windows.end()) {
            problem = "aggregation '" + name + "' has no window '" + std::string(parsed.window) +
                      "'; its windows: " + WindowList(spec);
          } else if (!lua && !NumericOutput(spec)) {
            problem = "aggregation '" + name + "' (" + agg->config.fn + " of " +
                      std::string(ValueTypeName(spec.input_type)) +
                      ") does not give a number; a weighted input must";
          }
        }
      }
      if (!problem.empty()) {
        errors.push_back(input + problem);
        inputs_ok = false;
      }
    }
    if (!inputs_ok) continue;
    next->derived_ids.emplace(d.name, static_cast<uint32_t>(next->derived.size()));
    next->derived.push_back({d});
    report.features_added.push_back(d.name);
  }
  if (!errors.empty()) {
    std::string message;
    for (const std::string& e : errors) message += (message.empty() ? "" : "\n") + e;
    return InvalidArgumentError(std::move(message));
  }
  return next;
}

Result<ApplyReport> Engine::ApplyDefinitions(const config::Definitions& definitions) {
  MutexLock lock(apply_mu_);
  ApplyReport report;
  const Catalog* base = catalog_.load(std::memory_order_acquire);
  ODS_ASSIGN_OR_RETURN(
      std::unique_ptr<Catalog> next,
      ExtendCatalog(*base, definitions, config_.tables, RegisteredFunctions(), report));
  for (size_t id = base->templates.size(); id < next->templates.size(); ++id) {
    const config::EventTemplateConfig& t = next->templates[id].config;
    if (t.history_ssd_after_micros > 0 && tier_ == nullptr) {
      return FailedPreconditionError(
          t.position + ": event_templates." + t.name +
          ".history_ssd_after: no SSD tier is open (odsd opens it at start when a table is "
          "durable or a template in the config file has history_ssd_after)");
    }
    if (t.tiles_ssd_after_micros > 0 && tier_ == nullptr) {
      return FailedPreconditionError(
          t.position + ": event_templates." + t.name +
          ".tiles_ssd_after: no SSD tier is open (odsd opens it at start when a table is "
          "durable or a template in the config file has history_ssd_after or tiles_ssd_after)");
    }
  }
  // A Lua aggregator is compiled into every shard before any shard takes its aggregation, so a
  // shard that cannot load it (memory) fails the apply with nothing changed.
  for (size_t id = base->aggregations.size(); id < next->aggregations.size(); ++id) {
    const shard::AggregationSpec& spec = *next->aggregations[id].spec;
    if (spec.function == nullptr) continue;
    for (size_t s = 0; s < shards_.size(); ++s) {
      Status loaded = shards_[s]->PrepareAggregation(spec);
      if (!loaded.ok()) {
        for (size_t undo = base->aggregations.size(); undo <= id; ++undo) {
          for (auto& shard : shards_) shard->DropPreparedAggregation(static_cast<uint32_t>(undo));
        }
        return Status(loaded.code(), next->aggregations[id].config.position + ": aggregations." +
                                         spec.name + ": " + loaded.message());
      }
    }
  }
  // Shards learn new definitions before the catalog publishes them, so no lookup can name an
  // aggregation a shard does not hold. Each shard backfills under its own lock: an event that
  // reached the shard earlier is in the history it replays, a later one is folded directly.
  for (size_t id = base->templates.size(); id < next->templates.size(); ++id) {
    for (auto& shard : shards_) shard->AddTemplate(next->templates[id].spec);
  }
  for (size_t id = base->aggregations.size(); id < next->aggregations.size(); ++id) {
    uint64_t failed = 0;
    for (auto& shard : shards_) {
      const shard::Shard::Backfill backfill = shard->AddAggregation(next->aggregations[id].spec);
      report.entities_backfilled += backfill.entities;
      report.events_replayed += backfill.events;
      failed += backfill.failed;
    }
    if (failed > 0) {
      Logger("ods.engine")
          ->warn("aggregation '{}': {} retained events are left out of its backfill (its Lua "
                 "aggregator failed on them, or they are below RAM and could not be read)",
                 next->aggregations[id].config.name, failed);
    }
  }
  catalog_.store(next.get(), std::memory_order_release);
  catalogs_.push_back(std::move(next));
  if (!report.templates_added.empty() || !report.aggregations_added.empty() ||
      !report.features_added.empty()) {
    Logger("ods.engine")
        ->info("definitions applied: {} templates, {} aggregations ({} entity states backfilled "
               "from {} retained events), {} derived features",
               report.templates_added.size(), report.aggregations_added.size(),
               report.entities_backfilled, report.events_replayed, report.features_added.size());
  }
  return report;
}

config::Definitions Engine::ListDefinitions() const {
  const Catalog& catalog = CurrentCatalog();
  config::Definitions out;
  for (const TemplateDef& t : catalog.templates) out.event_templates.push_back(t.config);
  for (const AggregationDef& a : catalog.aggregations) out.aggregations.push_back(a.config);
  for (const DerivedDef& d : catalog.derived) out.features.push_back(d.config);
  return out;
}

// --- Events ---

Result<PushResult> Engine::PushEvents(std::span<const EventInput> events) {
  if (events.size() > config_.limits.max_batch_size) {
    return InvalidArgumentError(std::to_string(events.size()) +
                                " events in one call exceeds limits.max_batch_size " +
                                std::to_string(config_.limits.max_batch_size));
  }
  const Catalog& catalog = CurrentCatalog();
  const Micros now = clock_.NowMicros();
  PushResult result;
  uint64_t late = 0;
  const auto none = static_cast<uint32_t>(shards_.size());

  // Validate every event; valid ones become ShardEvents whose values point into `values`.
  std::vector<shard::ShardEvent> shard_events(events.size());
  std::vector<uint32_t> owners(events.size(), none);
  std::vector<size_t> value_offsets(events.size(), 0);
  std::vector<const record::Value*> values;
  std::vector<std::string> int_keys;  // int64 keys rendered as text; reserved: never moves
  int_keys.reserve(events.size());
  const TemplateDef* t = nullptr;
  for (size_t i = 0; i < events.size(); ++i) {
    const EventInput& in = events[i];
    auto reject = [&](StatusCode code, std::string reason) {
      result.rejected.push_back({static_cast<uint32_t>(i), code, std::move(reason)});
    };
    if (t == nullptr || t->config.name != in.template_name) {
      t = catalog.FindTemplate(in.template_name);
    }
    if (t == nullptr) {
      reject(StatusCode::kNotFound,
             "unknown event template '" + QuoteForMessage(in.template_name) + "'");
      continue;
    }
    const config::EventTemplateConfig& tc = t->config;
    const size_t offset = values.size();
    values.resize(offset + tc.fields.size(), nullptr);
    const record::Value* key_value = nullptr;
    const record::Value* time_value = nullptr;
    std::string problem;
    std::string_view key;
    for (const record::Field& f : in.fields) {  // the key first: every message names it
      if (f.name != tc.key_field) continue;
      if (const auto* s = std::get_if<std::string>(&f.value)) {
        key = *s;
      } else if (const auto* n = std::get_if<int64_t>(&f.value)) {
        key = int_keys.emplace_back(std::to_string(*n));
      }
      break;
    }
    for (const record::Field& f : in.fields) {
      const record::Value** slot = nullptr;
      std::optional<uint32_t> index;
      if (f.name == tc.key_field) {
        slot = &key_value;
      } else if (f.name == tc.timestamp_field) {
        slot = &time_value;
      } else if ((index = t->FieldIndex(f.name))) {
        slot = &values[offset + *index];
        if (record::TypeOf(f.value) != tc.fields[*index].type) {
          problem = "field '" + f.name + "' is " +
                    std::string(ValueTypeName(record::TypeOf(f.value))) + ", expected " +
                    std::string(ValueTypeName(tc.fields[*index].type));
          break;
        }
        if (!IsFinite(f.value)) {
          problem = "field '" + f.name + "': NaN and infinity are not stored";
          break;
        }
      } else {
        problem = "no field '" + QuoteForMessage(f.name) + "' in the template";
        break;
      }
      if (*slot != nullptr) {
        problem = "field '" + f.name + "' given twice";
        break;
      }
      *slot = &f.value;
    }
    if (problem.empty()) {
      if (key_value == nullptr) {
        problem = "missing key field '" + tc.key_field + "'";
      } else if (!std::holds_alternative<std::string>(*key_value) &&
                 !std::holds_alternative<int64_t>(*key_value)) {
        problem = "key field '" + tc.key_field + "' is " +
                  std::string(ValueTypeName(record::TypeOf(*key_value))) +
                  ", expected string or int64";
      }
    }
    if (problem.empty() && key.empty()) problem = "empty key field '" + tc.key_field + "'";
    if (problem.empty() && key.size() > config_.limits.max_key_bytes) {
      problem = "key of " + std::to_string(key.size()) + " bytes exceeds limits.max_key_bytes " +
                std::to_string(config_.limits.max_key_bytes);
    }
    Micros event_time = 0;
    if (problem.empty()) {
      if (time_value == nullptr) {
        problem = "missing event time field '" + tc.timestamp_field + "'";
      } else if (const auto* ts = std::get_if<record::Timestamp>(time_value)) {
        event_time = ts->micros;
      } else if (const auto* n = std::get_if<int64_t>(time_value)) {
        event_time = *n;
      } else {
        problem = "event time field '" + tc.timestamp_field + "' is " +
                  std::string(ValueTypeName(record::TypeOf(*time_value))) +
                  ", expected timestamp or int64 microseconds";
      }
    }
    if (problem.empty() && in.event_id.size() > kMaxEventIdBytes) {
      problem = "event_id of " + std::to_string(in.event_id.size()) + " bytes exceeds " +
                std::to_string(kMaxEventIdBytes);
    }
    if (!problem.empty()) {
      values.resize(offset);
      reject(StatusCode::kInvalidArgument,
             "template '" + tc.name + "'" +
                 (key.empty() ? "" : ", key '" + QuoteForMessage(key) + "'") + ": " + problem);
      continue;
    }
    // Saturating: lateness and future bounds near the int64 limits must not overflow.
    const Micros earliest = ClampedSub(now, tc.allowed_lateness_micros);
    const Micros latest = ClampedSub(now, -tc.max_future_micros);
    if (event_time < earliest) {
      values.resize(offset);
      ++late;
      reject(StatusCode::kOutOfRange,
             "template '" + tc.name + "', key '" + QuoteForMessage(key) + "': event time " +
                 std::to_string(event_time) + " is " + FormatDuration(ClampedSub(now, event_time)) +
                 " old, more than the template's allowed_lateness " +
                 FormatDuration(tc.allowed_lateness_micros) + "; not applied");
      continue;
    }
    if (event_time > latest) {
      values.resize(offset);
      reject(StatusCode::kOutOfRange,
             "template '" + tc.name + "', key '" + QuoteForMessage(key) + "': event time " +
                 std::to_string(event_time) + " is " +
                 FormatDuration(ClampedSub(event_time, now)) +
                 " in the future, more than the template's max_future " +
                 FormatDuration(tc.max_future_micros) + "; not applied");
      continue;
    }
    shard::ShardEvent& e = shard_events[i];
    e.template_id = t->spec->id;
    e.key = key;
    e.event_time = event_time;
    e.event_id = in.event_id;
    value_offsets[i] = offset;
    owners[i] = ShardOf(tc.name, key);
  }
  // `values` is complete: now point the events into it.
  for (size_t i = 0; i < events.size(); ++i) {
    if (owners[i] != none) shard_events[i].values = values.data() + value_offsets[i];
  }
  const ShardGroups& groups = GroupByOwner(events.size(), [&](size_t i) { return owners[i]; });
  std::vector<shard::EventOutcome> outcomes(events.size());
  std::vector<std::pair<uint32_t, Status>> failures;  // Lua aggregators that failed
  bool refused = false;
  for (size_t s = 0; s < shards_.size(); ++s) {
    if (groups.Of(s).empty()) continue;
    if (!shards_[s]->AtMemoryBudget()) {
      shards_[s]->ApplyEvents(shard_events, groups.Of(s), outcomes, &failures);
      continue;
    }
    // Records and event state share the budget; until tiering (#6) moves state out, a full
    // shard takes no events (its idle entities age out and are swept).
    refused = true;
    for (uint32_t i : groups.Of(s)) {
      owners[i] = none;
      result.rejected.push_back(
          {i, StatusCode::kResourceExhausted,
           "template '" + catalog.templates[shard_events[i].template_id].config.name +
               "', key '" + QuoteForMessage(shard_events[i].key) + "': RAM budget reached (shard " +
               std::to_string(s) + " is at its share of storage.ram.max_bytes " +
               FormatBytes(config_.storage.ram_max_bytes) + "); not applied"});
    }
  }
  for (const auto& [i, error] : failures) {
    owners[i] = none;
    refused = true;
    result.rejected.push_back(
        {i, error.code(),
         "template '" + catalog.templates[shard_events[i].template_id].config.name + "', key '" +
             QuoteForMessage(shard_events[i].key) + "': " + error.message() + "; not applied"});
  }
  if (refused) {  // keep the rejections in index order
    std::stable_sort(result.rejected.begin(), result.rejected.end(),
                     [](const EventRejection& a, const EventRejection& b) {
                       return a.index < b.index;
                     });
  }
  for (size_t i = 0; i < events.size(); ++i) {
    if (owners[i] == none) continue;
    if (outcomes[i] == shard::EventOutcome::kApplied) {
      ++result.applied;
    } else {
      ++result.duplicates;
    }
  }
  if (Recording() && result.applied > 0) {
    // After every shard applied its events: a subscriber reading the feature then sees them.
    std::vector<Change> changes;
    changes.reserve(result.applied);
    for (size_t i = 0; i < events.size(); ++i) {
      if (owners[i] == none || outcomes[i] != shard::EventOutcome::kApplied) continue;
      const shard::ShardEvent& e = shard_events[i];
      Change& c = changes.emplace_back();
      c.kind = ChangeKind::kEvent;
      c.source = catalog.templates[e.template_id].config.name;
      c.key = e.key;
      c.record.fields.assign(events[i].fields.begin(), events[i].fields.end());
      c.record.event_time_micros = e.event_time;
      c.at_micros = now;
    }
    change_log_->Append(std::move(changes));
  }
  if (!result.rejected.empty()) {
    events_rejected_.fetch_add(result.rejected.size(), std::memory_order_relaxed);
    events_late_.fetch_add(late, std::memory_order_relaxed);
  }
  return result;
}

// --- Features ---

Status Engine::CheckFeatureRef(std::string_view ref) const {
  return PlanFeatures(CurrentCatalog(), std::span<const std::string_view>(&ref, 1), 1).status();
}

Status Engine::FeatureSources(std::span<const std::string_view> features,
                              std::vector<std::string_view>& out) const {
  const Catalog& catalog = CurrentCatalog();
  auto add_ref = [&](std::string_view ref) -> Status {
    const FeatureRef parsed = ParseFeatureRef(ref);
    if (parsed.table_field) {
      Result<uint32_t> table_id = FindTable(parsed.table);
      if (!table_id.ok()) {
        return InvalidArgumentError("feature '" + QuoteForMessage(ref) +
                                    "': " + table_id.status().message());
      }
      out.push_back(tables_[*table_id]->name());
      return OkStatus();
    }
    const std::string_view name = parsed.name;
    if (const AggregationDef* agg = catalog.FindAggregation(name)) {
      out.push_back(agg->config.template_name);
      return OkStatus();
    }
    return InvalidArgumentError("feature '" + QuoteForMessage(ref) +
                                "': no aggregation or derived feature named '" +
                                QuoteForMessage(name) + "'");
  };
  for (const std::string_view ref : features) {
    if (const DerivedDef* d = catalog.derived.empty() ? nullptr : catalog.FindDerived(ref)) {
      for (const config::DerivedInputConfig& in : d->config.inputs) {
        ODS_RETURN_IF_ERROR(add_ref(in.ref));
      }
      continue;
    }
    ODS_RETURN_IF_ERROR(add_ref(ref));
  }
  return OkStatus();
}

Result<Engine::FeaturePlan> Engine::PlanFeatures(const Catalog& catalog,
                                                 std::span<const std::string_view> features,
                                                 size_t rows) const {
  if (features.empty()) return InvalidArgumentError("no features requested");
  if (features.size() > kMaxFeaturesPerCall) {
    return InvalidArgumentError(std::to_string(features.size()) +
                                " features in one call exceeds the limit of " +
                                std::to_string(kMaxFeaturesPerCall));
  }
  if (rows > config_.limits.max_batch_size) {
    return InvalidArgumentError(std::to_string(rows) +
                                " entities in one call exceeds limits.max_batch_size " +
                                std::to_string(config_.limits.max_batch_size));
  }
  FeaturePlan plan;
  plan.table_refs.resize(features.size());
  plan.aggregation_refs.resize(features.size());
  for (size_t f = 0; f < features.size(); ++f) {
    const std::string_view ref = features[f];
    const std::string quoted = "feature '" + QuoteForMessage(ref) + "': ";
    const FeatureRef parsed = ParseFeatureRef(ref);
    if (parsed.table_field) {
      const std::string_view table = parsed.table;
      const std::string_view field = parsed.field;
      Result<uint32_t> table_id = FindTable(table);
      if (!table_id.ok()) return InvalidArgumentError(quoted + table_id.status().message());
      const record::TableSchema& schema = *tables_[*table_id];
      if (field.empty() || (!schema.free_form() && !schema.FieldIndex(field))) {
        return InvalidArgumentError(quoted + "table '" + schema.name() + "' has no field '" +
                                    QuoteForMessage(field) + "'");
      }
      plan.table_refs[f] =
          FeaturePlan::TableRef{*table_id, field, config_.tables[*table_id].max_age_micros};
      continue;
    }
    const std::string_view name = parsed.name;
    const AggregationDef* agg = catalog.FindAggregation(name);
    if (agg == nullptr) {
      return InvalidArgumentError(quoted + "no aggregation or derived feature named '" +
                                  QuoteForMessage(name) +
                                  "' (features are AGGREGATION, AGGREGATION@WINDOW, TABLE:FIELD "
                                  "or DERIVED_FEATURE)");
    }
    const aggregate::Spec& spec = agg->spec->spec;
    uint32_t window = 0;
    if (!parsed.has_window) {
      if (spec.windows.size() != 1) {
        return InvalidArgumentError(quoted + "aggregation '" + agg->config.name + "' has " +
                                    std::to_string(spec.windows.size()) + " windows (" +
                                    WindowList(spec) + "); name one, e.g. " + agg->config.name +
                                    "@" + FormatDuration(spec.windows[0]));
      }
    } else {
      Result<Micros> w = ParseDuration(parsed.window);
      auto it = w.ok() ? std::find(spec.windows.begin(), spec.windows.end(), *w)
                       : spec.windows.end();
      if (it == spec.windows.end()) {
        return InvalidArgumentError(quoted + "aggregation '" + agg->config.name +
                                    "' has no window '" + QuoteForMessage(parsed.window) +
                                    "'; its windows: " + WindowList(spec));
      }
      window = static_cast<uint32_t>(it - spec.windows.begin());
    }
    plan.aggregation_refs[f] = FeaturePlan::AggregationRef{agg->spec->id, window};
  }
  return plan;
}

Status Engine::ReadFeatures(const Catalog& catalog, const FeaturePlan& plan,
                            std::span<const std::string_view> entities,
                            std::span<const Micros> as_of, Micros now,
                            std::vector<FeatureColumn>& columns) {
  const size_t rows = entities.size();
  for (std::string_view e : entities) {
    if (e.empty()) return InvalidArgumentError("empty entity key");
    if (e.size() > config_.limits.max_key_bytes) {
      return InvalidArgumentError("entity key '" + QuoteForMessage(e) + "': " +
                                  std::to_string(e.size()) + " bytes exceeds limits.max_key_bytes " +
                                  std::to_string(config_.limits.max_key_bytes));
    }
  }
  auto over_budget = [&] {
    return ResourceExhaustedError("the features asked for (" + std::to_string(rows) +
                                  " entities x " + std::to_string(columns.size()) +
                                  " features) exceed limits.max_message_bytes " +
                                  FormatBytes(config_.limits.max_message_bytes) +
                                  "; ask for fewer entities or features");
  };
  // Every cell is answered, found or not: checked before the columns are allocated.
  uint64_t answer_bytes = uint64_t{rows} * columns.size() * kCellBytes;
  if (answer_bytes > config_.limits.max_message_bytes) return over_budget();
  for (FeatureColumn& c : columns) {
    c.values.assign(rows, std::monostate{});
    c.statuses.assign(rows, FeatureStatus::kNotFound);
    c.event_times.assign(rows, 0);
  }
  auto row_time = [&](size_t i) { return as_of.empty() ? now : as_of[i]; };

  // Table fields: one Get per table, projected to the fields asked for.
  std::vector<bool> table_done(tables_.size(), false);
  std::vector<std::string_view> fields;
  std::vector<std::optional<record::Record>> records;
  for (size_t f = 0; f < columns.size(); ++f) {
    if (!plan.table_refs[f] || table_done[plan.table_refs[f]->table]) continue;
    const uint32_t table = plan.table_refs[f]->table;
    table_done[table] = true;
    fields.clear();
    for (size_t g = f; g < columns.size(); ++g) {
      if (plan.table_refs[g] && plan.table_refs[g]->table == table) {
        fields.push_back(plan.table_refs[g]->field);
      }
    }
    ODS_RETURN_IF_ERROR(Get(tables_[table]->name(), entities, fields, records));
    for (size_t g = f; g < columns.size(); ++g) {
      if (!plan.table_refs[g] || plan.table_refs[g]->table != table) continue;
      const FeaturePlan::TableRef& ref = *plan.table_refs[g];
      FeatureColumn& c = columns[g];
      for (size_t i = 0; i < rows; ++i) {
        if (!records[i]) continue;
        const Micros t = records[i]->event_time_micros;
        if (!as_of.empty() && t > as_of[i]) continue;  // written after the row's time
        const record::Value* v = records[i]->Find(ref.field);
        if (v == nullptr) continue;
        answer_bytes += aggregate::ValueBytes(*v);
        c.values[i] = *v;
        c.event_times[i] = t;
        c.statuses[i] = ref.max_age_micros > 0 && OlderThan(t, ref.max_age_micros, row_time(i))
                            ? FeatureStatus::kStale
                            : FeatureStatus::kPresent;
      }
    }
    if (answer_bytes > config_.limits.max_message_bytes) return over_budget();
  }

  // Aggregations: per template, the entities grouped by owning shard, each shard read once.
  std::vector<uint8_t> found(rows * columns.size(), 0);
  std::vector<bool> template_done(catalog.templates.size(), false);
  std::vector<shard::AggregationRead> reads;
  for (size_t f = 0; f < columns.size(); ++f) {
    if (!plan.aggregation_refs[f]) continue;
    const uint32_t template_id =
        catalog.aggregations[plan.aggregation_refs[f]->aggregation].spec->template_id;
    if (template_done[template_id]) continue;
    template_done[template_id] = true;
    const TemplateDef& t = catalog.templates[template_id];
    reads.clear();
    for (size_t g = f; g < columns.size(); ++g) {
      if (!plan.aggregation_refs[g]) continue;
      const AggregationDef& agg = catalog.aggregations[plan.aggregation_refs[g]->aggregation];
      if (agg.spec->template_id != template_id) continue;
      reads.push_back({agg.spec->id, plan.aggregation_refs[g]->window, columns[g].values.data(),
                       columns[g].event_times.data(), found.data() + g * rows});
    }
    const ShardGroups& groups =
        GroupByShard(t.config.name, rows, [&](size_t i) { return entities[i]; });
    // The shards charge each value as they build it, so an oversized answer stops early instead
    // of being built in full (a short request can repeat one entity and one list feature).
    uint64_t budget = config_.limits.max_message_bytes - answer_bytes;  // <= limit: checked
    const bool below_ram = !as_of.empty() && t.spec->history_ssd_after_micros > 0;
    // Reused by the calls of a thread (events keep their buffers); only this call's shard
    // entries are passed on.
    thread_local std::vector<shard::ColdHistory> cold;
    const bool tiles_below_ram = as_of.empty() && t.spec->tiles_ssd_after_micros > 0;
    std::vector<shard::ColdTiles> cold_tiles;
    for (size_t s = 0; s < shards_.size(); ++s) {
      if (groups.Of(s).empty()) continue;
      Status error;
      bool fits = false;
      if (!tiles_below_ram && as_of.empty()) {
        fits = shards_[s]->ReadOnline(template_id, reads, entities, groups.Of(s), now, budget,
                                      error);
      } else if (as_of.empty()) {
        // Tiles below RAM are read without the shard lock, then checked under it: a move in
        // between (at most one per entity per sweep) makes the shard ask again.
        const uint64_t budget_before = budget;
        for (int attempt = 0;; ++attempt) {
          ODS_RETURN_IF_ERROR(ReadColdTiles(static_cast<uint32_t>(s), template_id, reads,
                                            entities, groups.Of(s), now, cold_tiles));
          error = OkStatus();
          budget = budget_before;
          fits = shards_[s]->ReadOnline(template_id, reads, entities, groups.Of(s), now, budget,
                                        error, cold_tiles);
          if (error.code() != StatusCode::kAborted || attempt == 7) break;
        }
      } else {
        // Events below RAM are read without the shard lock, then checked under it: a move or
        // trim in between (at most one per sweep, each second) makes the shard ask again.
        const uint64_t budget_before = budget;
        for (int attempt = 0;; ++attempt) {
          if (below_ram) {
            ODS_RETURN_IF_ERROR(ReadColdHistory(static_cast<uint32_t>(s), template_id, entities,
                                                groups.Of(s), cold));
          }
          error = OkStatus();
          budget = budget_before;
          fits = shards_[s]->ReadHistorical(
              template_id, reads, entities, as_of, groups.Of(s), budget, error,
              below_ram ? std::span<const shard::ColdHistory>(cold)
                        : std::span<const shard::ColdHistory>());
          if (error.code() != StatusCode::kAborted || attempt == 7) break;
        }
      }
      if (!error.ok()) return error;
      if (!fits) return over_budget();
    }
    for (size_t g = f; g < columns.size(); ++g) {
      if (!plan.aggregation_refs[g]) continue;
      const AggregationDef& agg = catalog.aggregations[plan.aggregation_refs[g]->aggregation];
      if (agg.spec->template_id != template_id) continue;
      const aggregate::Spec& spec = agg.spec->spec;
      const uint32_t window = plan.aggregation_refs[g]->window;
      FeatureColumn& c = columns[g];
      for (size_t i = 0; i < rows; ++i) {
        if (!as_of.empty()) {
          // The window's first tile must lie within the retained history.
          if (aggregate::WindowStart(spec, window, as_of[i]) <
              ClampedSub(now, t.config.history_retention_micros)) {
            c.values[i] = std::monostate{};
            c.statuses[i] = FeatureStatus::kOutOfRetention;
            continue;
          }
        }
        if (found[g * rows + i] == 0 || std::holds_alternative<std::monostate>(c.values[i])) {
          c.statuses[i] = FeatureStatus::kNotFound;
          continue;
        }
        answer_bytes += aggregate::OutputBytes(c.values[i]);
        const Micros max_age = agg.config.max_age_micros;
        c.statuses[i] = max_age > 0 && OlderThan(c.event_times[i], max_age, row_time(i))
                            ? FeatureStatus::kStale
                            : FeatureStatus::kPresent;
      }
    }
    if (answer_bytes > config_.limits.max_message_bytes) return over_budget();
  }
  return OkStatus();
}

Result<std::vector<FeatureColumn>> Engine::Lookup(const Catalog& catalog,
                                                  std::span<const std::string_view> entities,
                                                  std::span<const std::string_view> features,
                                                  std::span<const Micros> as_of) {
  // Derived features are read through their inputs: `reads` are the requested refs that are
  // read directly, then the inputs of derived ones not read already (each ref read once).
  std::vector<std::string_view> reads;
  std::vector<int64_t> read_of(features.size(), -1);  // direct: its read; derived: -1
  std::vector<const DerivedDef*> derived(features.size(), nullptr);
  std::map<std::string_view, size_t, std::less<>> inputs;  // ref -> its read
  for (size_t f = 0; f < features.size(); ++f) {
    derived[f] = catalog.derived.empty() ? nullptr : catalog.FindDerived(features[f]);
    if (derived[f] == nullptr) {
      read_of[f] = static_cast<int64_t>(reads.size());
      if (!catalog.derived.empty()) inputs.emplace(features[f], reads.size());
      reads.push_back(features[f]);
    }
  }
  const size_t direct = reads.size();
  for (const DerivedDef* d : derived) {
    if (d == nullptr) continue;
    for (const config::DerivedInputConfig& in : d->config.inputs) {
      if (inputs.emplace(in.ref, reads.size()).second) reads.push_back(in.ref);
    }
  }
  std::vector<FeatureColumn> columns(reads.size());
  ODS_ASSIGN_OR_RETURN(const FeaturePlan plan, PlanFeatures(catalog, reads, entities.size()));
  for (size_t r = 0; r < reads.size(); ++r) columns[r].feature = std::string(reads[r]);
  if (!entities.empty()) {
    ODS_RETURN_IF_ERROR(ReadFeatures(catalog, plan, entities, as_of, clock_.NowMicros(), columns));
  }
  if (direct == features.size()) return columns;  // nothing derived: the reads are the answer

  // Derived columns first: they read input columns that the direct ones then move out.
  std::vector<FeatureColumn> out(features.size());
  std::vector<const FeatureColumn*> input_columns;
  std::vector<double> weights;
  for (size_t f = 0; f < features.size(); ++f) {
    FeatureColumn& c = out[f];
    if (derived[f] == nullptr) continue;
    c.feature = std::string(features[f]);
    c.values.assign(entities.size(), std::monostate{});
    c.statuses.assign(entities.size(), FeatureStatus::kNotFound);
    c.event_times.assign(entities.size(), 0);
    input_columns.clear();
    weights.clear();
    for (const config::DerivedInputConfig& in : derived[f]->config.inputs) {
      input_columns.push_back(&columns[inputs.find(in.ref)->second]);
      weights.push_back(in.weight);
    }
    if (!derived[f]->config.function.empty()) {
      ODS_RETURN_IF_ERROR(ComputeLuaDerived(derived[f]->config, input_columns, entities, c));
      continue;
    }
    for (size_t row = 0; row < entities.size(); ++row) {
      ComputeWeighted(input_columns, weights, row, c);
    }
  }
  for (size_t f = 0; f < features.size(); ++f) {
    if (derived[f] == nullptr) out[f] = std::move(columns[static_cast<size_t>(read_of[f])]);
  }
  return out;
}

Result<std::vector<FeatureColumn>> Engine::GetOnlineFeatures(
    std::span<const std::string_view> entities, std::span<const std::string_view> features,
    std::optional<Micros> as_of) {
  std::vector<Micros> times;
  if (as_of) times.assign(entities.size(), *as_of);
  return Lookup(CurrentCatalog(), entities, features, times);
}

Result<std::vector<FeatureColumn>> Engine::GetHistoricalFeatures(
    std::span<const EntityRow> rows, std::span<const std::string_view> features) {
  std::vector<std::string_view> entities(rows.size());
  std::vector<Micros> times(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    entities[i] = rows[i].entity;
    times[i] = rows[i].timestamp;
  }
  return Lookup(CurrentCatalog(), entities, features, times);
}

}  // namespace ods::engine
