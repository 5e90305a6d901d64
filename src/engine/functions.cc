// The function registry (RegisterFunction, ListFunctions) and procedure calls (Execute).

#include "ods/engine/functions.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "catalog.h"
#include "group_by_shard.h"
#include "ods/common/logging.h"
#include "ods/common/status.h"
#include "ods/engine/engine.h"
#include "ods/record/codec.h"
#include "ods/sandbox/sandbox.h"
#include "ods/shard/shard.h"

namespace ods::engine {
namespace {

constexpr size_t kMaxFunctionNameBytes = 64;
// Most bytes of one function's source text (as config's functions.*.source).
constexpr size_t kMaxSourceBytes = size_t{1} << 20;
// Ranges of a function's limits, as config's functions.*.limits.
constexpr uint64_t kMaxInstructions = 1'000'000'000'000;
constexpr uint64_t kMinMemoryBytes = uint64_t{1} << 10;
constexpr uint64_t kMaxMemoryBytes = uint64_t{1} << 30;
constexpr Micros kMinWallMicros = 1'000;
constexpr Micros kMaxWallMicros = 60'000'000;

bool IsValidFunctionName(std::string_view name) {
  if (name.empty() || name.size() > kMaxFunctionNameBytes) return false;
  if (!(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// "FILE:LINE:COLUMN: functions.NAME: " for a config definition, else "".
std::string Where(const FunctionSpec& spec) {
  return spec.position.empty() ? std::string() : spec.position + ": functions." + spec.name + ": ";
}

Status WithWhere(const FunctionSpec& spec, const Status& status) {
  if (status.ok() || spec.position.empty()) return status;
  return {status.code(), Where(spec) + status.message()};
}

std::string Label(std::string_view name, uint32_t version) {
  return "function " + std::string(name) + " v" + std::to_string(version);
}

}  // namespace

std::string_view FunctionKindName(FunctionKind kind) {
  switch (kind) {
    case FunctionKind::kAggregator:
      return "aggregator";
    case FunctionKind::kDerived:
      return "derived";
    case FunctionKind::kProcedure:
      return "procedure";
  }
  return "unknown";
}

std::optional<FunctionKind> ParseFunctionKind(std::string_view name) {
  for (FunctionKind k :
       {FunctionKind::kAggregator, FunctionKind::kDerived, FunctionKind::kProcedure}) {
    if (FunctionKindName(k) == name) return k;
  }
  return std::nullopt;
}

std::vector<std::string_view> FunctionEntries(FunctionKind kind) {
  switch (kind) {
    case FunctionKind::kAggregator:
      return {"init", "update", "merge", "finalize"};
    case FunctionKind::kDerived:
      return {"compute"};
    case FunctionKind::kProcedure:
      return {"execute"};
  }
  return {};
}

// One registered version. Immutable once published. A procedure or derived function is loaded
// into every shard (shard_ids[s] on shard s) and unloaded when the last snapshot or call holding
// it lets go; an aggregator is compiled by each shard per aggregation that runs it.
struct Engine::FunctionVersion {
  FunctionInfo info;
  std::string source;
  // Kind aggregator: what aggregations naming it run (each shard compiles it per aggregation).
  std::shared_ptr<const shard::AggregatorFunction> aggregator;
  std::string label;  // "function NAME vVERSION"
  std::vector<sandbox::FunctionId> shard_ids;
  const std::vector<std::unique_ptr<shard::Shard>>* shards = nullptr;

  FunctionVersion() = default;
  FunctionVersion(const FunctionVersion&) = delete;
  FunctionVersion& operator=(const FunctionVersion&) = delete;
  ~FunctionVersion() {
    for (size_t s = 0; s < shard_ids.size(); ++s) (*shards)[s]->UnloadFunction(shard_ids[s]);
  }
};

// One immutable snapshot of the registry: the newest version of each name.
struct Engine::FunctionRegistry {
  std::map<std::string, std::shared_ptr<const FunctionVersion>, std::less<>> functions;
};

FunctionSpec Engine::SpecFromConfig(const config::FunctionConfig& f) {
  FunctionSpec spec;
  spec.name = f.name;
  // config accepts only the three kind names.
  spec.kind = ParseFunctionKind(f.kind).value_or(FunctionKind::kProcedure);
  spec.source = f.source;
  spec.limits.instructions = f.max_instructions;
  spec.limits.memory_bytes = f.max_memory_bytes;
  spec.limits.wall_micros = f.max_wall_micros;
  spec.position = f.position;
  return spec;
}

Status Engine::CheckConfigFunctions(const config::Config& config) {
  std::string errors;
  for (const config::FunctionConfig& f : config.functions) {
    const FunctionSpec spec = SpecFromConfig(f);
    if (Status s = WithWhere(spec, CheckFunction(spec, 1)); !s.ok()) {
      errors += (errors.empty() ? "" : "\n") + s.message();
    }
  }
  return errors.empty() ? OkStatus() : InvalidArgumentError(std::move(errors));
}

Status Engine::CheckFunction(const FunctionSpec& spec, uint32_t version) {
  if (!IsValidFunctionName(spec.name)) {
    return InvalidArgumentError("bad function name '" + QuoteForMessage(spec.name) +
                                "'; expected letters, digits and _, starting with a letter or _, "
                                "at most 64 bytes");
  }
  const std::string label = Label(spec.name, version);
  if (spec.source.size() > kMaxSourceBytes) {
    return InvalidArgumentError(label + ": source of " + std::to_string(spec.source.size()) +
                                " bytes exceeds the maximum of 1 MiB");
  }
  // The ranges config accepts (config.h, FunctionConfig): a registration through the Admin API
  // must not get a budget that holds a worker for an hour or a shard's memory.
  if (spec.limits.instructions < 1 || spec.limits.instructions > kMaxInstructions ||
      spec.limits.memory_bytes < kMinMemoryBytes || spec.limits.memory_bytes > kMaxMemoryBytes ||
      spec.limits.wall_micros < kMinWallMicros || spec.limits.wall_micros > kMaxWallMicros) {
    return InvalidArgumentError(
        label +
        ": limits out of range; expected instructions in [1, 10^12], memory in [1 KiB, "
        "1 GiB], wall time in [1ms, 60s], got " +
        std::to_string(spec.limits.instructions) + " instructions, " +
        std::to_string(spec.limits.memory_bytes) + " bytes, " +
        std::to_string(spec.limits.wall_micros) + " us");
  }
  sandbox::Sandbox scratch;
  ODS_ASSIGN_OR_RETURN(const sandbox::FunctionId id,
                       scratch.Load(spec.name, version, spec.source, spec.limits));
  const std::vector<std::string_view> entries = FunctionEntries(spec.kind);
  Status entries_ok = scratch.CheckEntries(id, entries);
  if (entries_ok.code() == StatusCode::kInvalidArgument &&
      entries_ok.message().find("defines no global function") != std::string::npos) {
    std::string wanted;
    for (std::string_view e : entries) wanted += (wanted.empty() ? "" : ", ") + std::string(e);
    const std::string_view kind = FunctionKindName(spec.kind);
    return InvalidArgumentError(entries_ok.message() + (kind[0] == 'a' ? "; an " : "; a ") +
                                std::string(kind) + " defines " + wanted);
  }
  return entries_ok;
}

Result<FunctionInfo> Engine::RegisterFunction(const FunctionSpec& spec) {
  MutexLock lock(register_mu_);
  const std::shared_ptr<const FunctionRegistry> current = functions_.load();
  uint32_t version = 1;
  if (current != nullptr) {
    if (auto it = current->functions.find(spec.name); it != current->functions.end()) {
      const FunctionInfo& existing = it->second->info;
      if (existing.kind != spec.kind) {
        return WithWhere(spec,
                         InvalidArgumentError(Label(existing.name, existing.version) + " is a " +
                                              std::string(FunctionKindName(existing.kind)) +
                                              "; a new version must keep its kind (register " +
                                              std::string(FunctionKindName(spec.kind)) +
                                              " code under a new name)"));
      }
      version = existing.version + 1;
    }
  }
  ODS_RETURN_IF_ERROR(WithWhere(spec, CheckFunction(spec, version)));

  auto next_version = std::make_shared<FunctionVersion>();
  next_version->info = {spec.name, spec.kind, version, spec.limits, spec.source.size()};
  next_version->source = spec.source;
  next_version->label = Label(spec.name, version);
  next_version->shards = &shards_;
  if (spec.kind == FunctionKind::kAggregator) next_version->aggregator = AggregatorOf(spec, version);
  if (spec.kind == FunctionKind::kProcedure || spec.kind == FunctionKind::kDerived) {
    for (auto& shard : shards_) {
      Result<sandbox::FunctionId> id =
          shard->LoadFunction(spec.name, version, spec.source, spec.limits);
      // The source just passed CheckFunction; a shard can still fail to get memory for a state.
      if (!id.ok()) return WithWhere(spec, id.status());  // ~FunctionVersion unloads the rest
      next_version->shard_ids.push_back(*id);
    }
  }
  if (spec.kind == FunctionKind::kAggregator && version > 1) {
    ODS_RETURN_IF_ERROR(ReplaceAggregator(*next_version->aggregator, spec.keep_state));
  }
  auto next = std::make_shared<FunctionRegistry>();
  if (current != nullptr) next->functions = current->functions;
  next->functions[spec.name] = next_version;
  functions_.store(std::move(next));
  return next_version->info;
}

Status Engine::ReplaceAggregator(const shard::AggregatorFunction& function, bool keep_state) {
  // Held so that no aggregation naming the function is added meanwhile with the old version.
  MutexLock lock(apply_mu_);
  const Catalog& catalog = CurrentCatalog();
  std::vector<const AggregationDef*> users;
  for (const AggregationDef& a : catalog.aggregations) {
    if (a.spec->function != nullptr && a.spec->function->name == function.name) {
      users.push_back(&a);
    }
  }
  // Every shard compiles the new version first; only then does any shard swap.
  for (const AggregationDef* a : users) {
    for (auto& shard : shards_) {
      Status loaded = shard->PrepareReplacement(a->spec->id, function);
      if (!loaded.ok()) {
        for (const AggregationDef* undo : users) {
          for (auto& s : shards_) s->DropPreparedAggregation(undo->spec->id);
        }
        return loaded;
      }
    }
  }
  for (const AggregationDef* a : users) {
    shard::Shard::Backfill total;
    for (auto& shard : shards_) {
      const shard::Shard::Backfill b = shard->ReplaceAggregator(a->spec->id, keep_state);
      total.entities += b.entities;
      total.events += b.events;
      total.failed += b.failed;
    }
    Logger("ods.engine")
        ->info("aggregation '{}' now runs function {} v{} ({}: {} entity states from {} retained "
               "events, {} failed)",
               a->config.name, function.name, function.version,
               keep_state ? "state kept" : "rebuilt", total.entities, total.events, total.failed);
  }
  return OkStatus();
}

std::shared_ptr<const shard::AggregatorFunction> Engine::AggregatorOf(const FunctionSpec& spec,
                                                                      uint32_t version) {
  auto f = std::make_shared<shard::AggregatorFunction>();
  f->name = spec.name;
  f->version = version;
  f->source = spec.source;
  f->limits = spec.limits;
  return f;
}

Status Engine::UnknownFunction(std::string_view name) {
  return NotFoundError("no function named '" + QuoteForMessage(name) +
                       "'; register it first (config functions:, or Admin.RegisterFunction)");
}

Engine::FunctionLookup Engine::RegisteredFunctions() const {
  return [this](std::string_view name) -> Result<FunctionRef> {
    const std::shared_ptr<const FunctionRegistry> registry = functions_.load();
    if (registry != nullptr) {
      if (auto it = registry->functions.find(name); it != registry->functions.end()) {
        const FunctionVersion& v = *it->second;
        return FunctionRef{v.info.kind, v.info.version, v.aggregator};
      }
    }
    return UnknownFunction(name);
  };
}

Status Engine::ComputeLuaDerived(const config::DerivedFeatureConfig& d,
                                 std::span<const FeatureColumn* const> inputs,
                                 std::span<const std::string_view> entities, FeatureColumn& out) {
  std::shared_ptr<const FunctionVersion> fn;
  if (const std::shared_ptr<const FunctionRegistry> registry = functions_.load()) {
    if (auto it = registry->functions.find(d.function); it != registry->functions.end()) {
      fn = it->second;  // held to the end of the call: a new version does not unload it
    }
  }
  if (fn == nullptr || fn->info.kind != FunctionKind::kDerived) {
    return FailedPreconditionError("feature '" + d.name + "': function '" + d.function +
                                   "' is not a registered derived function");
  }
  thread_local std::vector<record::Field> fields;
  for (size_t row = 0; row < entities.size(); ++row) {
    fields.clear();
    bool stale = false;
    bool out_of_retention = false;
    Micros newest = 0;
    for (size_t k = 0; k < inputs.size(); ++k) {
      const FeatureColumn& in = *inputs[k];
      const FeatureStatus status = in.statuses[row];
      if (status == FeatureStatus::kOutOfRetention) out_of_retention = true;
      if (status != FeatureStatus::kPresent && status != FeatureStatus::kStale) continue;
      // Lists (last_n, top_k) are not passed yet: the function sees nil for them.
      const auto* value = std::get_if<record::Value>(&in.values[row]);
      if (value == nullptr) continue;
      fields.push_back({d.inputs[k].ref, *value});
      stale = stale || status == FeatureStatus::kStale;
      newest = std::max(newest, in.event_times[row]);
    }
    if (out_of_retention) {
      out.statuses[row] = FeatureStatus::kOutOfRetention;
      continue;
    }
    const uint32_t s = ShardOf(d.name, entities[row]);
    Result<std::optional<record::Value>> value =
        shards_[s]->CallDerived(fn->shard_ids[s], "compute", fields, entities[row]);
    if (!value.ok()) {
      return Status(value.status().code(), "feature '" + d.name + "': " + value.status().message());
    }
    if (!value->has_value()) continue;  // NOT_FOUND
    // Built in place (moving a Value into an Output trips GCC 12's -Wmaybe-uninitialized under
    // the sanitizers).
    std::visit(
        [&out, row](auto&& x) {
          using T = std::decay_t<decltype(x)>;
          out.values[row].emplace<record::Value>(std::in_place_type<T>,
                                                 std::forward<decltype(x)>(x));
        },
        std::move(**value));
    out.statuses[row] = stale ? FeatureStatus::kStale : FeatureStatus::kPresent;
    out.event_times[row] = newest;
  }
  return OkStatus();
}

std::vector<shard::FunctionErrorCount> Engine::FunctionErrors() const {
  std::map<std::string, std::array<uint64_t, sandbox::kErrorKindCount>, std::less<>> sums;
  for (const auto& shard : shards_) {
    for (const shard::FunctionErrorCount& f : shard->FunctionErrors()) {
      auto& sum = sums[f.function];
      for (size_t k = 0; k < sum.size(); ++k) sum[k] += f.by_kind[k];
    }
  }
  std::vector<shard::FunctionErrorCount> out;
  out.reserve(sums.size());
  for (auto& [name, counts] : sums) out.push_back({name, counts});
  return out;
}

std::vector<FunctionInfo> Engine::ListFunctions() const {
  std::vector<FunctionInfo> out;
  const std::shared_ptr<const FunctionRegistry> current = functions_.load();
  if (current == nullptr) return out;
  for (const auto& [name, version] : current->functions) out.push_back(version->info);
  return out;
}

Result<ExecuteReport> Engine::Execute(std::string_view function, std::string_view table,
                                      std::span<const std::string_view> keys,
                                      std::span<const record::Field> args,
                                      std::optional<Micros> deadline_micros) {
  const std::shared_ptr<const FunctionRegistry> registry = functions_.load();
  std::shared_ptr<const FunctionVersion> fn;
  if (registry != nullptr) {
    if (auto it = registry->functions.find(function); it != registry->functions.end()) {
      fn = it->second;  // held to the end of the call: a new version does not unload it
    }
  }
  if (fn == nullptr) {
    std::string known;
    for (const FunctionInfo& info : ListFunctions()) {
      if (info.kind == FunctionKind::kProcedure) known += (known.empty() ? "" : ", ") + info.name;
    }
    return NotFoundError("unknown function '" + QuoteForMessage(function) + "'; procedures: " +
                         (known.empty() ? std::string("(none registered)") : known));
  }
  if (fn->info.kind != FunctionKind::kProcedure) {
    return InvalidArgumentError(fn->label + " is a " +
                                std::string(FunctionKindName(fn->info.kind)) +
                                "; only procedures can be executed");
  }
  ODS_ASSIGN_OR_RETURN(const uint32_t table_id, FindTable(table));
  const record::TableSchema& schema = *tables_[table_id];
  if (keys.empty()) {
    return InvalidArgumentError(fn->label + ", table '" + schema.name() + "': no keys given");
  }
  ODS_RETURN_IF_ERROR(CheckBatch(schema, keys.size(), "keys"));
  for (std::string_view key : keys) ODS_RETURN_IF_ERROR(CheckKey(schema, key));
  std::vector<std::string_view> names;
  for (const record::Field& a : args) {
    if (a.name.empty()) return InvalidArgumentError(fn->label + ": an argument has no name");
    names.push_back(a.name);
  }
  std::sort(names.begin(), names.end());
  if (auto dup = std::adjacent_find(names.begin(), names.end()); dup != names.end()) {
    return InvalidArgumentError(fn->label + ": argument '" + QuoteForMessage(*dup) +
                                "' given twice");
  }
  record::Record args_record;
  args_record.fields.assign(args.begin(), args.end());
  if (const size_t bytes = record::EncodedFieldBytes(args_record);
      bytes > config_.limits.max_record_bytes) {
    return InvalidArgumentError(fn->label + ": arguments of about " + std::to_string(bytes) +
                                " bytes exceed limits.max_record_bytes " +
                                std::to_string(config_.limits.max_record_bytes));
  }

  // Procedures run on RAM records: bring those below RAM up first.
  if (durability_[table_id] != config::Durability::kNone) {
    ODS_RETURN_IF_ERROR(MoveRecords(table, keys, StorageTier::kRam).status());
  }
  const ShardGroups& groups = GroupByShard(table, keys.size(), [&](size_t i) { return keys[i]; });
  ExecuteReport report;
  report.function_version = fn->info.version;
  report.results.resize(keys.size());
  std::optional<std::string> spent_on;  // key whose run spent a budget of the function
  for (size_t s = 0; s < shards_.size(); ++s) {
    for (uint32_t i : groups.Of(s)) {
      ExecuteResult& result = report.results[i];
      if (spent_on) {
        result.status =
            Status(StatusCode::kAborted, fn->label + ": table '" + schema.name() + "', key '" +
                                             QuoteForMessage(keys[i]) + "': not run: key '" +
                                             QuoteForMessage(*spent_on) +
                                             "' of this call spent the function's budget");
        continue;
      }
      if (deadline_micros && clock_.NowMicros() >= *deadline_micros) {
        result.status =
            Status(StatusCode::kDeadlineExceeded, fn->label + ": table '" + schema.name() +
                                                      "', key '" + QuoteForMessage(keys[i]) +
                                                      "': not run: the call's deadline passed");
        continue;
      }
      shard::ProcedureCall call;
      call.table = table_id;
      call.key = keys[i];
      call.function = fn->shard_ids[s];
      call.args = args;
      call.label = fn->label;
      call.max_record_bytes = config_.limits.max_record_bytes;
      call.read_only = durability_[table_id] != config::Durability::kNone;
      shard::ProcedureOutcome outcome = shards_[s]->Execute(call);
      if (outcome.budget_exhausted) spent_on = std::string(keys[i]);
      result.status = std::move(outcome.status);
      result.value = std::move(outcome.value);
      result.written = outcome.written;
      result.version = outcome.version;
    }
  }
  return report;
}

}  // namespace ods::engine
