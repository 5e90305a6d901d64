#pragma once

#include <chrono>
#include <functional>

#include "auth.h"
#include "ods/common/mutex.h"
#include "ods/engine/engine.h"
#include "ods/v1/admin.grpc.pb.h"

namespace ods::server {

// ods.v1.Admin over the callback API: definitions applied and listed at run time. Handlers run
// inline on gRPC's callback threads; ApplyDefinitions blocks its thread while the engine
// backfills new aggregations (O(retained events of their templates)). Every call is first
// checked against `auth` (null: keys off). Thread-safe; `engine` and `auth` must outlive the
// service.
class AdminService final : public ods::v1::Admin::CallbackService {
 public:
  // Reads the config again and applies it (main's reload: the file, overrides, Engine::Reload).
  using ReloadFn = std::function<Result<engine::ReloadReport>()>;

  // `reload` null: ReloadConfig answers FAILED_PRECONDITION (no config file to read).
  AdminService(engine::Engine& engine, const Authenticator* auth, ReloadFn reload = nullptr)
      : engine_(engine), auth_(auth), reload_(std::move(reload)) {}

  // Parses the YAML against the templates in effect, then applies it. Errors: INVALID_ARGUMENT
  // "<request>:LINE:COLUMN: ..." (one line per problem), ALREADY_EXISTS for a name defined
  // differently; nothing is applied on any error.
  grpc::ServerUnaryReactor* ApplyDefinitions(grpc::CallbackServerContext* ctx,
                                             const ods::v1::ApplyDefinitionsRequest* req,
                                             ods::v1::ApplyDefinitionsResponse* resp) override;
  grpc::ServerUnaryReactor* ListDefinitions(grpc::CallbackServerContext* ctx,
                                            const ods::v1::ListDefinitionsRequest* req,
                                            ods::v1::ListDefinitionsResponse* resp) override;
  // Engine::RegisterFunction. INVALID_ARGUMENT also for an unknown kind or a negative wall time.
  // Compiles the source once per shard for a procedure (~0.1 ms each) on the calling thread.
  grpc::ServerUnaryReactor* RegisterFunction(grpc::CallbackServerContext* ctx,
                                             const ods::v1::RegisterFunctionRequest* req,
                                             ods::v1::RegisterFunctionResponse* resp) override;
  grpc::ServerUnaryReactor* ListFunctions(grpc::CallbackServerContext* ctx,
                                          const ods::v1::ListFunctionsRequest* req,
                                          ods::v1::ListFunctionsResponse* resp) override;
  // Engine::TierStats.
  grpc::ServerUnaryReactor* GetTierStats(grpc::CallbackServerContext* ctx,
                                         const ods::v1::GetTierStatsRequest* req,
                                         ods::v1::GetTierStatsResponse* resp) override;
  // Engine::Stats and FunctionErrors, the version, uptime (since this service was made, when
  // odsd starts serving), shards and tables. O(tables x shards).
  grpc::ServerUnaryReactor* GetServerStats(grpc::CallbackServerContext* ctx,
                                           const ods::v1::GetServerStatsRequest* req,
                                           ods::v1::GetServerStatsResponse* resp) override;
  // Engine::MoveRecords, on the calling thread (reads and writes the tiers: may block on I/O).
  grpc::ServerUnaryReactor* MoveRecords(grpc::CallbackServerContext* ctx,
                                        const ods::v1::MoveRecordsRequest* req,
                                        ods::v1::MoveRecordsResponse* resp) override;
  // The reload function given at construction, on the calling thread (reads the file).
  grpc::ServerUnaryReactor* ReloadConfig(grpc::CallbackServerContext* ctx,
                                         const ods::v1::ReloadConfigRequest* req,
                                         ods::v1::ReloadConfigResponse* resp) override;

 private:
  engine::Engine& engine_;
  const Authenticator* const auth_;
  const ReloadFn reload_;
  // When the service was made (odsd starts serving right after): GetServerStats' uptime.
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  const std::chrono::system_clock::time_point started_at_ = std::chrono::system_clock::now();
  // Held from reading the templates in effect to applying: so a YAML that names a template
  // applied by a concurrent call either sees it or runs first, never a stale list.
  Mutex apply_mu_;
};

}  // namespace ods::server
