#include "admin_service.h"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "ods/common/value_type.h"
#include "ods/config/config.h"
#include "ods/engine/features.h"
#include "ods/engine/functions.h"
#include "ods/sandbox/sandbox.h"
#include "ods/shard/shard.h"
#include "status_mapping.h"

namespace ods::server {
namespace {

// The source name of applied YAML in error positions: "<request>:LINE:COLUMN: ...".
constexpr std::string_view kRequestSource = "<request>";
// Longest error message sent: gRPC carries it in a header, which clients cap (8 KiB by default).
constexpr size_t kMaxMessageBytes = 4096;

// Admin methods act on the whole node: only the role matters (no table is involved).
Status AuthorizeCaller(const Authenticator* auth, const grpc::ServerContextBase& ctx,
                       Method method) {
  const ApiKey* key = nullptr;
  return Authorize(auth, ctx, method, key);
}

// `status` with its message cut at a line boundary to kMaxMessageBytes, saying how many lines
// (problems) were left out.
Status CapMessage(const Status& status) {
  const std::string& m = status.message();
  if (m.size() <= kMaxMessageBytes) return status;
  size_t cut = m.rfind('\n', kMaxMessageBytes);
  if (cut == std::string::npos) cut = kMaxMessageBytes;
  size_t omitted = 1;
  for (size_t i = cut + 1; i < m.size(); ++i) omitted += m[i] == '\n' ? 1 : 0;
  return {status.code(),
          m.substr(0, cut) + "\n... and " + std::to_string(omitted) + " more line(s) not shown"};
}

void ToProto(const config::EventTemplateConfig& in, ods::v1::EventTemplateDefinition& out) {
  out.set_name(in.name);
  out.set_key_field(in.key_field);
  out.set_timestamp_field(in.timestamp_field);
  for (const config::FieldConfig& f : in.fields) {
    ods::v1::EventTemplateField* field = out.add_fields();
    field->set_name(f.name);
    field->set_type(std::string(ValueTypeName(f.type)));
  }
  out.set_allowed_lateness_micros(in.allowed_lateness_micros);
  out.set_max_future_micros(in.max_future_micros);
  out.set_history_retention_micros(in.history_retention_micros);
  out.set_dedup_window_micros(in.dedup_window_micros);
}

void ToProto(const config::AggregationConfig& in, ods::v1::AggregationDefinition& out) {
  out.set_name(in.name);
  out.set_template_(in.template_name);
  out.set_fn(in.fn);
  out.set_function(in.function);
  out.set_field(in.field);
  out.set_n(in.n);
  out.mutable_windows_micros()->Add(in.windows.begin(), in.windows.end());
  out.set_tile_micros(in.tile_micros);
  out.set_max_age_micros(in.max_age_micros);
}

void ToProto(const engine::FunctionInfo& in, ods::v1::FunctionDefinition& out) {
  out.set_name(in.name);
  out.set_kind(std::string(engine::FunctionKindName(in.kind)));
  out.set_version(in.version);
  out.set_max_instructions(in.limits.instructions);
  out.set_max_memory_bytes(in.limits.memory_bytes);
  out.set_max_wall_micros(in.limits.wall_micros);
  out.set_source_bytes(in.source_bytes);
}

}  // namespace

void AdminService::ServeOn(CallQueue& queue) {
  constexpr CallQueue::Runs kBlocking = CallQueue::Runs::kBlocking;
  queue.Serve(this, &AdminService::RequestApplyDefinitions, this,
              &AdminService::HandleApplyDefinitions, kBlocking);
  queue.Serve(this, &AdminService::RequestListDefinitions, this,
              &AdminService::HandleListDefinitions, kBlocking);
  queue.Serve(this, &AdminService::RequestRegisterFunction, this,
              &AdminService::HandleRegisterFunction, kBlocking);
  queue.Serve(this, &AdminService::RequestListFunctions, this, &AdminService::HandleListFunctions,
              kBlocking);
  queue.Serve(this, &AdminService::RequestGetTierStats, this, &AdminService::HandleGetTierStats,
              kBlocking);
  queue.Serve(this, &AdminService::RequestGetServerStats, this, &AdminService::HandleGetServerStats,
              kBlocking);
  queue.Serve(this, &AdminService::RequestMoveRecords, this, &AdminService::HandleMoveRecords,
              kBlocking);
  queue.Serve(this, &AdminService::RequestReloadConfig, this, &AdminService::HandleReloadConfig,
              kBlocking);
}

Status AdminService::HandleRegisterFunction(const grpc::ServerContextBase& ctx,
                                            const ods::v1::RegisterFunctionRequest& req,
                                            ods::v1::RegisterFunctionResponse& resp) {
  if (Status s = AuthorizeCaller(auth_, ctx, Method::kAdminRegisterFunction); !s.ok()) {
    return s;
  }
  const std::optional<engine::FunctionKind> kind = engine::ParseFunctionKind(req.kind());
  if (!kind) {
    return InvalidArgumentError("function '" + QuoteForMessage(req.name()) + "': unknown kind '" +
                                QuoteForMessage(req.kind()) +
                                "'; expected one of: aggregator, derived, procedure");
  }
  if (req.max_wall_micros() < 0) {
    return InvalidArgumentError("function '" + QuoteForMessage(req.name()) +
                                "': max_wall_micros must not be negative");
  }
  engine::FunctionSpec spec;
  spec.name = req.name();
  spec.kind = *kind;
  spec.source = req.source();
  if (req.max_instructions() != 0) spec.limits.instructions = req.max_instructions();
  if (req.max_memory_bytes() != 0) spec.limits.memory_bytes = req.max_memory_bytes();
  if (req.max_wall_micros() != 0) spec.limits.wall_micros = req.max_wall_micros();
  spec.keep_state = req.keep_state();
  Result<engine::FunctionInfo> info = engine_.RegisterFunction(spec);
  if (!info.ok()) return CapMessage(info.status());
  ToProto(*info, *resp.mutable_function());
  return OkStatus();
}

Status AdminService::HandleListFunctions(const grpc::ServerContextBase& ctx,
                                         const ods::v1::ListFunctionsRequest& /*req*/,
                                         ods::v1::ListFunctionsResponse& resp) {
  if (Status s = AuthorizeCaller(auth_, ctx, Method::kAdminListFunctions); !s.ok()) {
    return s;
  }
  for (const engine::FunctionInfo& info : engine_.ListFunctions()) {
    ToProto(info, *resp.add_functions());
  }
  return OkStatus();
}

Status AdminService::HandleApplyDefinitions(const grpc::ServerContextBase& ctx,
                                            const ods::v1::ApplyDefinitionsRequest& req,
                                            ods::v1::ApplyDefinitionsResponse& resp) {
  if (Status s = AuthorizeCaller(auth_, ctx, Method::kAdminApplyDefinitions); !s.ok()) {
    return s;
  }
  Result<engine::ApplyReport> report = [&]() -> Result<engine::ApplyReport> {
    MutexLock lock(apply_mu_);
    const config::Definitions current = engine_.ListDefinitions();
    ODS_ASSIGN_OR_RETURN(
        const config::Definitions definitions,
        config::LoadDefinitions(req.yaml(), kRequestSource, current.event_templates));
    return engine_.ApplyDefinitions(definitions);
  }();
  if (!report.ok()) return CapMessage(report.status());
  for (const std::string& name : report->templates_added) resp.add_templates_added(name);
  for (const std::string& name : report->aggregations_added) resp.add_aggregations_added(name);
  resp.set_entities_backfilled(report->entities_backfilled);
  resp.set_events_replayed(report->events_replayed);
  for (const std::string& name : report->features_added) resp.add_features_added(name);
  return OkStatus();
}

Status AdminService::HandleListDefinitions(const grpc::ServerContextBase& ctx,
                                           const ods::v1::ListDefinitionsRequest& /*req*/,
                                           ods::v1::ListDefinitionsResponse& resp) {
  if (Status s = AuthorizeCaller(auth_, ctx, Method::kAdminListDefinitions); !s.ok()) {
    return s;
  }
  const config::Definitions definitions = engine_.ListDefinitions();
  for (const config::EventTemplateConfig& t : definitions.event_templates) {
    ToProto(t, *resp.add_templates());
  }
  for (const config::AggregationConfig& a : definitions.aggregations) {
    ToProto(a, *resp.add_aggregations());
  }
  for (const config::DerivedFeatureConfig& d : definitions.features) {
    ods::v1::DerivedFeatureDefinition& out = *resp.add_features();
    out.set_name(d.name);
    out.set_fn(d.fn);
    out.set_function(d.function);
    for (const config::DerivedInputConfig& in : d.inputs) {
      ods::v1::DerivedInput& i = *out.add_inputs();
      i.set_ref(in.ref);
      i.set_weight(in.weight);
    }
  }
  return OkStatus();
}

Status AdminService::HandleGetTierStats(const grpc::ServerContextBase& ctx,
                                        const ods::v1::GetTierStatsRequest& /*req*/,
                                        ods::v1::GetTierStatsResponse& resp) {
  if (Status s = AuthorizeCaller(auth_, ctx, Method::kAdminGetTierStats); !s.ok()) {
    return s;
  }
  for (const engine::TableTierReport& r : engine_.TierStats()) {
    ods::v1::TableTierStats* t = resp.add_tables();
    t->set_table(r.table);
    t->set_tiered(r.tiered);
    ods::v1::TierFigures* figures[3] = {t->mutable_ram(), t->mutable_ssd(), t->mutable_backing()};
    for (size_t tier = 0; tier < 3; ++tier) {
      figures[tier]->set_records(r.records[tier]);
      figures[tier]->set_bytes(r.bytes[tier]);
      figures[tier]->set_reads(r.reads[tier]);
      figures[tier]->set_demotions(r.demotions[tier]);
    }
    t->set_promotions(r.promotions);
    t->set_read_calls(r.read_calls);
    t->set_read_p50_micros(r.read_p50_micros);
    t->set_read_p99_micros(r.read_p99_micros);
    t->set_sla_read_p99_micros(r.sla_read_p99_micros);
    t->set_sla_met(r.sla_met);
    t->set_monthly_cost(r.monthly_cost);
    for (const std::string& rule : r.rules) t->add_rules(rule);
    t->set_promote(r.promote);
    t->set_priority(r.priority);
  }
  resp.set_tier_move_errors(engine_.Stats().tier_move_errors);
  resp.set_settings_generation(engine_.SettingsGeneration());
  resp.set_reloaded_at_micros(engine_.ReloadedAtMicros());
  return OkStatus();
}

Status AdminService::HandleGetServerStats(const grpc::ServerContextBase& ctx,
                                          const ods::v1::GetServerStatsRequest& /*req*/,
                                          ods::v1::GetServerStatsResponse& resp) {
  if (Status s = AuthorizeCaller(auth_, ctx, Method::kAdminGetServerStats); !s.ok()) {
    return s;
  }
  using std::chrono::duration_cast;
  using std::chrono::microseconds;
  const engine::EngineStats s = engine_.Stats();
  resp.set_version(ODS_VERSION);
  resp.set_started_at_micros(duration_cast<microseconds>(started_at_.time_since_epoch()).count());
  resp.set_uptime_micros(
      duration_cast<microseconds>(std::chrono::steady_clock::now() - started_).count());
  resp.set_shards(s.shards);
  for (const engine::TableTierReport& t : engine_.TierStats()) resp.add_tables(t.table);
  resp.set_records(s.records);
  resp.set_memory_bytes(s.memory_bytes);
  resp.set_gets(s.gets);
  resp.set_get_hits(s.get_hits);
  resp.set_puts(s.puts);
  resp.set_deletes(s.deletes);
  resp.set_expired(s.expired);
  resp.set_events_applied(s.events_applied);
  resp.set_events_duplicate(s.events_duplicate);
  resp.set_events_rejected(s.events_rejected);
  resp.set_events_late(s.events_late);
  resp.set_entities(s.entities);
  resp.set_event_state_bytes(s.event_state_bytes);
  resp.set_recovered_records(s.recovered_records);
  resp.set_durable_batches(s.durable_batches);
  resp.set_durable_syncs(s.durable_syncs);
  resp.set_records_ssd(s.records_ssd);
  resp.set_records_backing(s.records_backing);
  resp.set_reads_ssd(s.reads_ssd);
  resp.set_reads_backing(s.reads_backing);
  resp.set_promotions(s.promotions);
  resp.set_demotions_ssd(s.demotions_ssd);
  resp.set_demotions_backing(s.demotions_backing);
  resp.set_tier_move_errors(s.tier_move_errors);
  resp.set_sor_reads(s.sor_reads);
  resp.set_sor_misses(s.sor_misses);
  resp.set_sor_negative_hits(s.sor_negative_hits);
  resp.set_sor_errors(s.sor_errors);
  resp.set_sor_cached(s.sor_cached);
  resp.set_sor_negative_keys(s.sor_negative_keys);
  for (const shard::FunctionErrorCount& f : engine_.FunctionErrors()) {
    ods::v1::FunctionErrorStats* e = resp.add_function_errors();
    e->set_function(f.function);
    auto count = [&f](sandbox::ErrorKind kind) { return f.by_kind[static_cast<size_t>(kind)]; };
    e->set_runtime(count(sandbox::ErrorKind::kRuntime));
    e->set_instructions(count(sandbox::ErrorKind::kInstructions));
    e->set_wall_time(count(sandbox::ErrorKind::kWallTime));
    e->set_memory(count(sandbox::ErrorKind::kMemory));
    e->set_bad_return(count(sandbox::ErrorKind::kBadReturn));
    e->set_other(count(sandbox::ErrorKind::kOther));
  }
  resp.set_settings_generation(engine_.SettingsGeneration());
  return OkStatus();
}

Status AdminService::HandleMoveRecords(const grpc::ServerContextBase& ctx,
                                       const ods::v1::MoveRecordsRequest& req,
                                       ods::v1::MoveRecordsResponse& resp) {
  const ApiKey* key = nullptr;
  if (Status s = Authorize(auth_, ctx, Method::kAdminMoveRecords, key); !s.ok()) {
    return s;
  }
  if (Status s = CheckTable(auth_, key, Method::kAdminMoveRecords, req.table()); !s.ok()) {
    return s;
  }
  std::optional<StorageTier> to;
  for (StorageTier t : {StorageTier::kRam, StorageTier::kSsd, StorageTier::kBacking}) {
    if (req.to() == StorageTierName(t)) to = t;
  }
  if (!to) {
    return InvalidArgumentError("MoveRecords: unknown tier '" + QuoteForMessage(req.to()) +
                                "'; expected ram, ssd or backing");
  }
  std::vector<std::string_view> keys(req.keys().begin(), req.keys().end());
  Result<size_t> moved = engine_.MoveRecords(req.table(), keys, *to);
  if (!moved.ok()) return moved.status();
  resp.set_moved(*moved);
  return OkStatus();
}

Status AdminService::HandleReloadConfig(const grpc::ServerContextBase& ctx,
                                        const ods::v1::ReloadConfigRequest& /*req*/,
                                        ods::v1::ReloadConfigResponse& resp) {
  if (Status s = AuthorizeCaller(auth_, ctx, Method::kAdminReloadConfig); !s.ok()) {
    return s;
  }
  if (reload_ == nullptr) {
    return FailedPreconditionError(
        "ReloadConfig: this server has no config to "
        "reload");
  }
  Result<engine::ReloadReport> report = reload_();
  if (!report.ok()) return CapMessage(report.status());
  for (const std::string& c : report->changes) resp.add_changes(c);
  for (const std::string& c : report->needs_restart) resp.add_needs_restart(c);
  resp.set_settings_generation(report->generation);
  return OkStatus();
}

}  // namespace ods::server
