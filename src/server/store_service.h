#pragma once

#include <string>

#include "auth.h"
#include "call_queue.h"
#include "ods/common/latency_histogram.h"
#include "ods/engine/engine.h"
#include "ods/v1/store.grpc.pb.h"

namespace ods::server {

// ods.v1.Store: validates wire input, calls the engine, maps statuses. The unary methods are
// served from a CallQueue and run inline on its thread (engine calls hold a shard lock for
// microseconds; a sync table's Put answers from the durable tier's committer), except a Get of
// a table that reads through to a system of record, which runs on the queue's blocking workers,
// as does Scan's key listing and page reading. Every call is first checked against `auth` (null:
// keys off), for the method's role and the request's table. Thread-safe; `engine` and `auth` must
// outlive the service.
using StoreServiceBase = ods::v1::Store::WithAsyncMethod_Put<
    ods::v1::Store::WithAsyncMethod_Get<ods::v1::Store::WithAsyncMethod_Delete<
        ods::v1::Store::WithAsyncMethod_Scan<ods::v1::Store::Service>>>>;

class StoreService final : public StoreServiceBase {
 public:
  StoreService(engine::Engine& engine, const Authenticator* auth) : engine_(engine), auth_(auth) {}

  using PutCall = UnaryCall<ods::v1::PutRequest, ods::v1::PutResponse>;
  using GetCall = UnaryCall<ods::v1::GetRequest, ods::v1::GetResponse>;
  using DeleteCall = UnaryCall<ods::v1::DeleteRequest, ods::v1::DeleteResponse>;

  // Serves the unary methods on `queue` (before it starts), which must outlive the service's
  // calls.
  void ServeOn(CallQueue& queue);

  void HandlePut(PutCall& call);
  void HandleGet(GetCall& call);
  void HandleDelete(DeleteCall& call);
  // Appends this service's series of `ods_rpc_handler_seconds` (FeaturesService::AppendMetrics
  // writes the family's HELP and TYPE lines; these follow it). Put and Delete count until the
  // answer is sent (a sync table's fsync included), Scan the whole stream.
  void AppendMetrics(std::string& out) const;

 private:
  class ScanCall;

  Status LookUp(const grpc::ServerContextBase& ctx, const ods::v1::GetRequest& req,
                ods::v1::GetResponse& resp);

  engine::Engine& engine_;
  const Authenticator* const auth_;
  CallQueue* queue_ = nullptr;  // set by ServeOn
  LatencyHistogram put_latency_;
  LatencyHistogram get_latency_;
  LatencyHistogram delete_latency_;
  LatencyHistogram scan_latency_;
};

}  // namespace ods::server
