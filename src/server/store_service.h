#pragma once

#include <string>

#include "auth.h"
#include "ods/common/latency_histogram.h"
#include "ods/engine/engine.h"
#include "ods/v1/store.grpc.pb.h"

namespace ods::server {

// ods.v1.Store over the callback API: validates wire input, calls the engine, maps statuses.
// Handlers run inline on gRPC's callback threads (engine calls hold a shard lock for
// microseconds and never block on I/O). Every call is first checked against `auth` (null: keys
// off), for the method's role and the request's table. Thread-safe; `engine` and `auth` must
// outlive the service.
class StoreService final : public ods::v1::Store::CallbackService {
 public:
  StoreService(engine::Engine& engine, const Authenticator* auth)
      : engine_(engine), auth_(auth) {}

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const ods::v1::PutRequest* req,
                                ods::v1::PutResponse* resp) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx, const ods::v1::GetRequest* req,
                                ods::v1::GetResponse* resp) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* ctx,
                                   const ods::v1::DeleteRequest* req,
                                   ods::v1::DeleteResponse* resp) override;
  grpc::ServerWriteReactor<ods::v1::ScanResponse>* Scan(grpc::CallbackServerContext* ctx,
                                                        const ods::v1::ScanRequest* req) override;

  // Appends this service's series of `ods_rpc_handler_seconds` (FeaturesService::AppendMetrics
  // writes the family's HELP and TYPE lines; these follow it). Put and Delete count until the
  // answer is sent (a sync table's fsync included), Scan the whole stream.
  void AppendMetrics(std::string& out) const;

 private:
  engine::Engine& engine_;
  const Authenticator* const auth_;
  LatencyHistogram put_latency_;
  LatencyHistogram get_latency_;
  LatencyHistogram delete_latency_;
  LatencyHistogram scan_latency_;
};

}  // namespace ods::server
