#pragma once

#include <chrono>
#include <functional>

#include "auth.h"
#include "call_queue.h"
#include "ods/common/mutex.h"
#include "ods/engine/engine.h"
#include "ods/v1/admin.grpc.pb.h"

namespace ods::server {

// ods.v1.Admin: definitions applied and listed at run time, stats, tier moves, reloads. Served
// from a CallQueue on its blocking workers: ApplyDefinitions waits while the engine backfills
// new aggregations (O(retained events of their templates)), MoveRecords and ReloadConfig do I/O,
// and none of that may hold the queue's thread. Every call is first checked against `auth`
// (null: keys off). Thread-safe; `engine` and `auth` must outlive the service.
class AdminService final : public ods::v1::Admin::AsyncService {
 public:
  // Reads the config again and applies it (main's reload: the file, overrides, Engine::Reload).
  using ReloadFn = std::function<Result<engine::ReloadReport>()>;

  // `reload` null: ReloadConfig answers FAILED_PRECONDITION (no config file to read).
  AdminService(engine::Engine& engine, const Authenticator* auth, ReloadFn reload = nullptr)
      : engine_(engine), auth_(auth), reload_(std::move(reload)) {}

  // Serves every method on `queue` (before it starts).
  void ServeOn(CallQueue& queue);

  // The methods: the answer's status; `resp` holds the answer when it is OK.

  // Parses the YAML against the templates in effect, then applies it. Errors: INVALID_ARGUMENT
  // "<request>:LINE:COLUMN: ..." (one line per problem), ALREADY_EXISTS for a name defined
  // differently; nothing is applied on any error.
  Status HandleApplyDefinitions(const grpc::ServerContextBase& ctx,
                                const ods::v1::ApplyDefinitionsRequest& req,
                                ods::v1::ApplyDefinitionsResponse& resp);
  Status HandleListDefinitions(const grpc::ServerContextBase& ctx,
                               const ods::v1::ListDefinitionsRequest& req,
                               ods::v1::ListDefinitionsResponse& resp);
  // Engine::RegisterFunction. INVALID_ARGUMENT also for an unknown kind or a negative wall time.
  // Compiles the source once per shard for a procedure (~0.1 ms each) on the calling thread.
  Status HandleRegisterFunction(const grpc::ServerContextBase& ctx,
                                const ods::v1::RegisterFunctionRequest& req,
                                ods::v1::RegisterFunctionResponse& resp);
  Status HandleListFunctions(const grpc::ServerContextBase& ctx,
                             const ods::v1::ListFunctionsRequest& req,
                             ods::v1::ListFunctionsResponse& resp);
  // Engine::TierStats.
  Status HandleGetTierStats(const grpc::ServerContextBase& ctx,
                            const ods::v1::GetTierStatsRequest& req,
                            ods::v1::GetTierStatsResponse& resp);
  // Engine::Stats and FunctionErrors, the version, uptime (since this service was made, when
  // odsd starts serving), shards and tables. O(tables x shards).
  Status HandleGetServerStats(const grpc::ServerContextBase& ctx,
                              const ods::v1::GetServerStatsRequest& req,
                              ods::v1::GetServerStatsResponse& resp);
  // Engine::MoveRecords, on the calling thread (reads and writes the tiers: may block on I/O).
  Status HandleMoveRecords(const grpc::ServerContextBase& ctx,
                           const ods::v1::MoveRecordsRequest& req,
                           ods::v1::MoveRecordsResponse& resp);
  // The reload function given at construction, on the calling thread (reads the file).
  Status HandleReloadConfig(const grpc::ServerContextBase& ctx,
                            const ods::v1::ReloadConfigRequest& req,
                            ods::v1::ReloadConfigResponse& resp);

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
