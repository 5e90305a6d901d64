#include "ods/server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "admin_http.h"
#include "admin_service.h"
#include "auth.h"
#include "call_queue.h"
#include "features_service.h"
#include "functions_service.h"
#include "health_service.h"
#include "ods/common/logging.h"
#include "ods/engine/engine.h"
#include "ods/sandbox/sandbox.h"
#include "ods/shard/shard.h"
#include "ods/tier/rocksdb_tier.h"
#include "store_service.h"

namespace ods::server {
namespace {

// A Prometheus label value: backslash, double quote and newline escaped.
std::string EscapeLabel(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string HostOf(const std::string& listen) { return listen.substr(0, listen.rfind(':')); }

// Per-table, per-tier series: records, bytes, reads, moves, read latency, SLA and cost.
void AppendTierMetrics(const engine::Engine& engine, std::ostringstream& out) {
  const std::vector<engine::TableTierReport> tables = engine.TierStats();
  struct Family {
    const char* name;
    const char* type;
    const char* help;
    const std::array<uint64_t, 3> engine::TableTierReport::*figures;
  };
  static constexpr Family kFamilies[] = {
      {"ods_tier_records", "gauge", "Records whose value is in the tier.",
       &engine::TableTierReport::records},
      {"ods_tier_bytes", "gauge",
       "RAM: bytes of the table's RAM entries; ssd, backing: encoded size of the records there.",
       &engine::TableTierReport::bytes},
      {"ods_tier_reads_total", "counter", "Get hits served by the tier.",
       &engine::TableTierReport::reads},
      {"ods_tier_demotions_total", "counter", "Records moved into the tier.",
       &engine::TableTierReport::demotions},
  };
  for (const Family& f : kFamilies) {
    out << "# HELP " << f.name << " " << f.help << "\n# TYPE " << f.name << " " << f.type << "\n";
    for (const engine::TableTierReport& t : tables) {
      for (StorageTier tier : {StorageTier::kRam, StorageTier::kSsd, StorageTier::kBacking}) {
        out << f.name << "{table=\"" << t.table << "\",tier=\"" << StorageTierName(tier) << "\"} "
            << (t.*f.figures)[static_cast<size_t>(tier)] << "\n";
      }
    }
  }
  out << "# HELP ods_tier_promotions_total Reads that brought a record back into RAM.\n"
      << "# TYPE ods_tier_promotions_total counter\n";
  for (const engine::TableTierReport& t : tables) {
    out << "ods_tier_promotions_total{table=\"" << t.table << "\"} " << t.promotions << "\n";
  }
  out << "# HELP ods_table_sla_read_p99_seconds The table's sla.read_p99 (0: none).\n"
      << "# TYPE ods_table_sla_read_p99_seconds gauge\n";
  for (const engine::TableTierReport& t : tables) {
    out << "ods_table_sla_read_p99_seconds{table=\"" << t.table << "\"} "
        << static_cast<double>(t.sla_read_p99_micros) / 1e6 << "\n";
  }
  out << "# HELP ods_table_monthly_cost Estimated monthly cost of the table's bytes "
         "(cost_per_gib_month of each tier).\n# TYPE ods_table_monthly_cost gauge\n";
  for (const engine::TableTierReport& t : tables) {
    out << "ods_table_monthly_cost{table=\"" << t.table << "\"} " << t.monthly_cost << "\n";
  }
  std::string histograms;
  for (size_t i = 0; i < tables.size(); ++i) {
    engine.ReadLatency(i).RenderLabeled("ods_table_read_seconds",
                                        "table=\"" + tables[i].table + "\"", histograms);
  }
  out << "# HELP ods_table_read_seconds Engine Get latency per table, every tier.\n"
      << "# TYPE ods_table_read_seconds histogram\n"
      << histograms;
}

// Failed Lua calls by function and kind: every registered function gets every kind (0 until
// one fails), so that a rate over the series works from the first failure on.
void AppendFunctionErrorMetrics(const engine::Engine& engine, std::ostringstream& out) {
  std::map<std::string, std::array<uint64_t, sandbox::kErrorKindCount>> counts;
  for (const engine::FunctionInfo& f : engine.ListFunctions()) counts[f.name];
  for (const shard::FunctionErrorCount& f : engine.FunctionErrors()) counts[f.function] = f.by_kind;
  out << "# HELP ods_function_errors_total Failed calls of sandboxed Lua functions (procedures, "
         "derived features, aggregators) by kind: runtime (a Lua error), instructions, "
         "wall_time, memory (a budget spent), bad_return (a result that does not convert), "
         "other (no such entry point).\n# TYPE ods_function_errors_total counter\n";
  for (const auto& [name, by_kind] : counts) {
    for (size_t k = 0; k < by_kind.size(); ++k) {
      out << "ods_function_errors_total{function=\"" << EscapeLabel(name) << "\",kind=\""
          << sandbox::ErrorKindName(static_cast<sandbox::ErrorKind>(k)) << "\"} " << by_kind[k]
          << "\n";
    }
  }
}

std::string RenderMetrics(engine::Engine& engine, const FeaturesService& features,
                          const StoreService& store, const FunctionsService& functions,
                          const CallQueue& calls, const Authenticator* auth) {
  // Events the Features service refused before the engine saw them.
  const uint64_t events_rejected_at_edge = features.events_rejected_at_edge();
  const engine::EngineStats s = engine.Stats();
  std::ostringstream out;
  auto gauge = [&](const char* name, const char* help, uint64_t v) {
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " gauge\n"
        << name << " " << v << "\n";
  };
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n"
        << name << " " << v << "\n";
  };
  gauge("ods_shards", "Shards in this node.", s.shards);
  gauge("ods_records", "Records held in RAM.", s.records);
  gauge("ods_ram_bytes", "Estimated RAM held by records (keys, encodings, entry overhead).",
        s.memory_bytes);
  counter("ods_gets_total", "Keys looked up.", s.gets);
  counter("ods_get_hits_total", "Keys looked up and found.", s.get_hits);
  counter("ods_puts_total", "Records written.", s.puts);
  counter("ods_deletes_total", "Records deleted.", s.deletes);
  counter("ods_expired_total", "Records removed because their TTL passed.", s.expired);
  counter("ods_events_applied_total", "Events folded into aggregations and history.",
          s.events_applied);
  counter("ods_events_duplicate_total", "Events skipped as already seen (same event_id).",
          s.events_duplicate);
  counter("ods_events_rejected_total", "Events rejected, for any reason (including late).",
          s.events_rejected + events_rejected_at_edge);
  counter("ods_events_late_total", "Events rejected as older than allowed_lateness.",
          s.events_late);
  gauge("ods_ready", "1 once odsd serves requests, 0 while it starts (loading data).", 1);
  gauge("ods_entities", "Entity states held (one per template and entity key).", s.entities);
  gauge("ods_event_state_bytes", "Estimated RAM held by aggregation tiles and retained events.",
        s.event_state_bytes);
  gauge("ods_history_events_ssd",
        "Retained events moved below RAM (event_templates.NAME.history_ssd_after).",
        s.history_events_ssd);
  counter("ods_history_moved_total", "Retained events moved from RAM to the SSD tier.",
          s.history_moved);
  gauge("ods_tiles_entities_ssd",
        "Entities with aggregation tiles below RAM (event_templates.NAME.tiles_ssd_after).",
        s.tiles_entities_ssd);
  gauge("ods_tiles_ssd_bytes", "Bytes of aggregation tiles below RAM.", s.tiles_bytes_ssd);
  counter("ods_tiles_moved_total", "Moves of an entity's aggregation tiles to the SSD tier.",
          s.tiles_moved);
  counter("ods_tiles_cache_hits_total",
          "Reads of tiles below RAM answered from decoded tiles in RAM.", s.tiles_cache_hits);
  counter("ods_tiles_cache_misses_total",
          "Reads of tiles below RAM that read and decoded a blob from the SSD tier.",
          s.tiles_cache_misses);
  gauge("ods_tiles_cache_bytes",
        "RAM held by decoded tiles below RAM (at most storage.ram.tile_cache_bytes).",
        s.tiles_cache_bytes);
  gauge("ods_recovered_records", "Records loaded from the durable tier at start.",
        s.recovered_records);
  counter("ods_durable_batches_total",
          "Put and Delete calls of durable (sync, async) tables written to the durable tier.",
          s.durable_batches);
  counter("ods_durable_fsyncs_total",
          "Fsyncs of the durable tier's log (group commits and async window flushes).",
          s.durable_syncs);
  counter("ods_tier_move_errors_total",
          "Tier moves that failed (I/O); the records stayed where they were.", s.tier_move_errors);
  counter("ods_sor_reads_total",
          "Keys a Get missed that a system of record (read_through) answered with a record.",
          s.sor_reads);
  counter("ods_sor_misses_total", "Keys a Get missed that the system of record did not have.",
          s.sor_misses);
  counter("ods_sor_negative_hits_total",
          "Read-through misses answered from remembered misses (negative_ttl), not asked.",
          s.sor_negative_hits);
  counter("ods_sor_errors_total",
          "Get calls failed because the system of record failed (unreachable, query error).",
          s.sor_errors);
  counter("ods_sor_cached_total", "Records read through and stored into their table (cache).",
          s.sor_cached);
  gauge("ods_sor_negative_keys", "Read-through misses remembered now, all tables.",
        s.sor_negative_keys);
  const engine::ChangeLogStats subs = engine.SubscriptionStats();
  gauge("ods_grpc_blocking_queued",
        "Calls waiting for one of the gRPC call queue's blocking workers (Admin methods, Gets "
        "of read-through tables, Scan pages).",
        calls.blocking_queued());
  counter("ods_grpc_blocking_refused_total",
          "Calls answered RESOURCE_EXHAUSTED because 1024 already waited for a blocking worker.",
          calls.blocking_refused());
  counter("ods_grpc_spilled_total",
          "Feature lookups a worker thread ran because the gRPC thread had been busy without a "
          "pause for longer than server.grpc_spill_after (a backlog).",
          calls.spilled());
  gauge("ods_subscribers", "Open Features.Subscribe streams.", features.subscribe_streams());
  gauge("ods_subscriber_max_lag",
        "Most changes any subscriber is behind the newest change (0 without subscribers).",
        subs.max_lag);
  counter("ods_subscription_gaps_total",
          "Gap notices given to subscribers (they fell behind or resumed from a sequence no "
          "longer retained).",
          subs.gaps);
  counter("ods_subscriber_socket_holds_total",
          "Times a subscriber's writes were held because its connection's kernel send queue was "
          "backed up (the client reads nothing and its HTTP/2 window exceeds the socket buffers).",
          features.subscribe_socket_holds());
  counter("ods_subscription_skipped_changes_total",
          "Changes subscribers skipped through gap notices.", subs.skipped);
  counter("ods_changes_published_total",
          "Changes (put, delete, expire, event) appended to the change log.", subs.published);
  gauge("ods_change_log_next_sequence", "The sequence the next change gets.", subs.next_sequence);
  gauge("ods_change_log_oldest_sequence",
        "The oldest change retained (a subscriber may resume from it).", subs.oldest_sequence);
  if (s.has_durable_tier) {
    const tier::TierStats& t = s.durable_tier;
    counter("ods_rocksdb_bytes_written_total",
            "Key and value bytes written to the durable tier's RocksDB database.", t.bytes_written);
    counter("ods_rocksdb_bytes_read_total",
            "Value bytes returned by the durable tier's RocksDB point lookups.", t.bytes_read);
    counter("ods_rocksdb_wal_bytes_total", "Bytes appended to RocksDB's write-ahead log.",
            t.wal_bytes);
    counter("ods_rocksdb_block_cache_hits_total", "RocksDB block reads served by the block cache.",
            t.block_cache_hits);
    counter("ods_rocksdb_block_cache_misses_total",
            "RocksDB block reads that missed the block cache (read from SST files).",
            t.block_cache_misses);
    counter("ods_rocksdb_flush_bytes_total", "Bytes RocksDB wrote flushing memtables to SST files.",
            t.flush_bytes);
    counter("ods_rocksdb_compaction_read_bytes_total", "Bytes RocksDB compactions read.",
            t.compaction_read_bytes);
    counter("ods_rocksdb_compaction_write_bytes_total", "Bytes RocksDB compactions wrote.",
            t.compaction_write_bytes);
    gauge("ods_rocksdb_live_data_bytes", "RocksDB's estimate of the live data's size.",
          t.live_data_bytes);
    gauge("ods_rocksdb_sst_bytes", "Size of RocksDB's SST files.", t.sst_bytes);
    gauge("ods_rocksdb_sst_files", "RocksDB SST files, all levels.", t.sst_files);
    gauge("ods_rocksdb_memtable_bytes",
          "RAM of RocksDB's memtables (active and immutable), bounded by its write buffers.",
          t.memtable_bytes);
    gauge("ods_rocksdb_pending_compaction_bytes",
          "RocksDB's estimate of the bytes compaction has yet to rewrite.",
          t.pending_compaction_bytes);
    gauge("ods_rocksdb_block_cache_bytes", "RAM of RocksDB's block cache in use.",
          t.block_cache_bytes);
  }
  AppendFunctionErrorMetrics(engine, out);
  AppendTierMetrics(engine, out);
  if (auth != nullptr) {
    counter("ods_auth_unauthenticated_total",
            "Calls refused with UNAUTHENTICATED (no API key, or an unknown one).",
            auth->unauthenticated());
    counter("ods_auth_denied_total",
            "Calls refused with PERMISSION_DENIED (role or table not allowed for the API key).",
            auth->denied());
  }
  std::string text = out.str();
  features.AppendMetrics(text);  // the family's HELP and TYPE, then every method's series
  store.AppendMetrics(text);
  functions.AppendMetrics(text);
  return text;
}

// gRPC credentials for config.server.tls (checked when the config was loaded), or insecure ones.
std::shared_ptr<grpc::ServerCredentials> Credentials(const config::ServerConfig& server) {
  if (!server.tls) return grpc::InsecureServerCredentials();
  const config::TlsConfig& tls = *server.tls;
  grpc_ssl_client_certificate_request_type request = GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
  if (tls.require_client_cert) {
    request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  } else if (!tls.client_ca_pem.empty()) {
    request = GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  grpc::SslServerCredentialsOptions options(request);
  options.pem_root_certs = tls.client_ca_pem;
  options.pem_key_cert_pairs.push_back({tls.key_pem, tls.cert_pem});
  return grpc::SslServerCredentials(options);
}

}  // namespace

struct Server::Impl {
  // Before the services, which borrow it (members are destroyed in reverse order).
  std::unique_ptr<Authenticator> auth;
  std::unique_ptr<StoreService> store;
  std::unique_ptr<FeaturesService> features;
  std::unique_ptr<AdminService> admin_service;
  std::unique_ptr<FunctionsService> functions;
  std::unique_ptr<HealthService> health;
  std::unique_ptr<grpc::Server> grpc_server;
  // Serves the services' unary methods; shut down after grpc_server (see Shutdown).
  std::unique_ptr<CallQueue> calls;
  std::unique_ptr<AdminHttp> admin;
  std::string grpc_address;
  std::string admin_address;
  std::once_flag shutdown_once;
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Shutdown(0); }

AdminEndpoint::AdminEndpoint(std::unique_ptr<AdminHttp> http, std::string address)
    : http_(std::move(http)), address_(std::move(address)) {}

AdminEndpoint::~AdminEndpoint() = default;

Result<std::unique_ptr<AdminEndpoint>> AdminEndpoint::Start(const std::string& listen) {
  ODS_ASSIGN_OR_RETURN(std::unique_ptr<AdminHttp> http, AdminHttp::Start(listen, [] {
                         return std::string(
                             "# HELP ods_ready 1 once odsd serves requests, 0 while it starts "
                             "(loading data).\n# TYPE ods_ready gauge\nods_ready 0\n");
                       }));
  const std::string address = HostOf(listen) + ":" + std::to_string(http->port());
  return std::unique_ptr<AdminEndpoint>(new AdminEndpoint(std::move(http), address));
}

Result<std::unique_ptr<Server>> Server::Start(
    engine::Engine& engine, const config::Config& config, std::unique_ptr<AdminEndpoint> admin,
    std::function<Result<engine::ReloadReport>()> reload) {
  auto impl = std::make_unique<Impl>();
  impl->auth = Authenticator::Create(config.security);
  const Authenticator* auth = impl->auth.get();
  impl->store = std::make_unique<StoreService>(engine, auth);
  impl->features = std::make_unique<FeaturesService>(engine, auth);
  impl->admin_service = std::make_unique<AdminService>(engine, auth, std::move(reload));
  // Enough workers that a few runaway procedures (each holding one for its wall budget) leave
  // others running; the threads sleep when idle.
  impl->functions = std::make_unique<FunctionsService>(
      engine, auth, std::max<size_t>(4, 2 * std::thread::hardware_concurrency()));

  impl->health = std::make_unique<HealthService>();
  // Ours instead (served from the call queue, like every other method).
  grpc::EnableDefaultHealthCheckService(false);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(config.server.grpc_listen, Credentials(config.server), &bound_port);
  builder.RegisterService(impl->store.get());
  builder.RegisterService(impl->features.get());
  builder.RegisterService(impl->admin_service.get());
  builder.RegisterService(impl->functions.get());
  builder.RegisterService(impl->health.get());
  // gRPC sets SO_REUSEPORT by default, which would let a second odsd silently share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  const int max_message = static_cast<int>(
      std::min<uint64_t>(config.limits.max_message_bytes, std::numeric_limits<int>::max()));
  builder.SetMaxReceiveMessageSize(max_message);
  builder.SetMaxSendMessageSize(max_message);
  // Announced in HTTP/2 SETTINGS: a client queues calls beyond it on its side.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             static_cast<int>(config.limits.max_concurrent_streams));
  std::unique_ptr<grpc::ServerCompletionQueue> cq = builder.AddCompletionQueue();
  impl->grpc_server = builder.BuildAndStart();
  if (impl->grpc_server == nullptr || bound_port == 0) {
    if (impl->grpc_server != nullptr) impl->grpc_server->Shutdown();
    if (cq != nullptr) CallQueue(std::move(cq)).Shutdown();
    return UnavailableError("cannot listen for gRPC on '" + config.server.grpc_listen +
                            "' (address in use or not local?)");
  }
  impl->calls = std::make_unique<CallQueue>(
      std::move(cq),
      CallQueue::Options{.threads = config.server.grpc_threads,
                         .spill_after_micros = config.server.grpc_spill_after_micros});
  impl->store->ServeOn(*impl->calls);
  impl->features->ServeOn(*impl->calls);
  impl->admin_service->ServeOn(*impl->calls);
  impl->functions->ServeOn(*impl->calls);
  impl->health->ServeOn(*impl->calls);
  impl->calls->Start();
  impl->grpc_address = HostOf(config.server.grpc_listen) + ":" + std::to_string(bound_port);

  if (admin == nullptr && !config.server.admin_listen.empty()) {
    Result<std::unique_ptr<AdminEndpoint>> started =
        AdminEndpoint::Start(config.server.admin_listen);
    if (!started.ok()) {
      impl->grpc_server->Shutdown();
      impl->calls->Shutdown();
      return started.status();
    }
    admin = std::move(started).value();
  }
  if (admin != nullptr) {
    engine::Engine* e = &engine;
    const FeaturesService* features = impl->features.get();
    const StoreService* store = impl->store.get();
    const FunctionsService* functions = impl->functions.get();
    const CallQueue* calls = impl->calls.get();
    impl->admin = std::move(admin->http_);
    impl->admin_address = admin->address();
    impl->admin->SetMetrics([e, features, store, functions, calls, auth] {
      return RenderMetrics(*e, *features, *store, *functions, *calls, auth);
    });
    impl->admin->SetReady();
  }
  Logger("ods.server")
      ->info("serving gRPC on {} ({}{}), admin HTTP on {}", impl->grpc_address,
             config.server.tls ? "TLS" : "plaintext",
             auth == nullptr ? ", no API keys: every call allowed"
                             : ", " + std::to_string(config.security.api_keys.size()) + " API keys",
             impl->admin_address.empty() ? std::string("(disabled)") : impl->admin_address);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

std::string Server::grpc_address() const { return impl_->grpc_address; }
std::string Server::admin_address() const { return impl_->admin_address; }

void Server::Shutdown(Micros grace_micros) {
  std::call_once(impl_->shutdown_once, [&] {
    if (impl_->admin) impl_->admin->SetDraining();
    impl_->health->SetNotServing();
    // Subscribe streams never end by themselves: end them first, or they hold the drain.
    impl_->features->StopSubscriptions();
    const auto deadline =
        std::chrono::system_clock::now() + std::chrono::microseconds(grace_micros);
    // Waits for in-flight calls up to the deadline, then cancels them and waits until each is
    // answered and freed (the call queue's thread keeps running meanwhile).
    impl_->grpc_server->Shutdown(deadline);
    impl_->grpc_server->Wait();
    impl_->calls->Shutdown();
    impl_->admin.reset();
    Logger("ods.server")->info("server stopped");
  });
}

}  // namespace ods::server
