#include "cli/commands.h"

#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

#include "cli/help_text.h"
#include "cli/requests.h"
#include "cli/value_parser.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "ods/common/absl_cpu_frequency.h"
#include "ods/common/status.h"
#include "ods/v1/admin.grpc.pb.h"
#include "ods/v1/features.grpc.pb.h"
#include "ods/v1/functions.grpc.pb.h"
#include "ods/v1/store.grpc.pb.h"

namespace ods::cli {
namespace {

std::shared_ptr<grpc::Channel> MakeChannel(const GlobalOptions& global,
                                          grpc::ChannelArguments channel_args) {
  PrimeAbslCpuFrequency();  // before the first connect: see absl_cpu_frequency.h
  // The server bounds responses (limits.max_message_bytes); the CLI shouldn't add a lower one.
  channel_args.SetMaxReceiveMessageSize(-1);
  if (!global.tls) {
    return grpc::CreateCustomChannel(global.addr, grpc::InsecureChannelCredentials(),
                                     channel_args);
  }
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = global.tls_ca_pem;
  tls.pem_cert_chain = global.tls_cert_pem;
  tls.pem_private_key = global.tls_key_pem;
  return grpc::CreateCustomChannel(global.addr, grpc::SslCredentials(tls), channel_args);
}

std::shared_ptr<grpc::Channel> MakeChannel(const GlobalOptions& global) {
  return MakeChannel(global, grpc::ChannelArguments());
}

// A Subscribe stream's channel keeps HTTP/2's initial 64 KiB stream window. With BDP probing
// (gRPC's default) a C-core client announces a 4 MiB window whatever it reads, so once this
// process stops reading (stopped, paused, slow) the server writes ~4 MiB at it, more than the
// two kernel socket buffers hold: the server's TCP write then blocks, and while it is blocked
// gRPC 1.51 runs a backup poller thread in odsd that takes epoll events from the threads serving
// writers, costing every Put extra context switches (issue #7 point 2; docs/benchmarks.md,
// "Subscriptions"). 64 KiB fits in the receive buffer, so the server's write completes and only
// HTTP/2 flow control holds the stream. The cost: at most 64 KiB in flight per round trip (tens of
// MB/s on a LAN, ~1 MB/s at 50 ms).
std::shared_ptr<grpc::Channel> MakeSubscriberChannel(const GlobalOptions& global) {
  grpc::ChannelArguments channel_args;
  channel_args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  return MakeChannel(global, std::move(channel_args));
}

// Sets the call's deadline and, with an API key, its authorization metadata.
void SetDeadline(const GlobalOptions& global, grpc::ClientContext& context) {
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::duration_cast<std::chrono::system_clock::duration>(
                           std::chrono::duration<double>(global.timeout_seconds)));
  if (!global.api_key.empty()) context.AddMetadata("authorization", "Bearer " + global.api_key);
}

std::string GrpcCodeName(grpc::StatusCode code) {
  const int n = static_cast<int>(code);
  // gRPC codes and ods::StatusCode both mirror google.rpc.Code.
  if (n >= 0 && n <= static_cast<int>(StatusCode::kUnauthenticated)) {
    return std::string(StatusCodeName(static_cast<StatusCode>(n)));
  }
  return "CODE_" + std::to_string(n);
}

int ReportUsage(const Status& status, std::string_view command, const Io& io) {
  io.err << "ods: " << status.message() << "\nTry 'ods " << command << " --help'.\n";
  return kExitUsage;
}

int ReportRpcError(const grpc::Status& status, const Io& io) {
  io.err << "ods: " << GrpcCodeName(status.error_code()) << ": " << status.error_message() << "\n";
  const bool unreachable = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                           status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
  return unreachable ? kExitUnreachable : kExitRpcError;
}

// Prints `message` as one line of proto3 JSON. False (reported on io.err) if it can't.
bool PrintJson(const google::protobuf::Message& message, const Io& io) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  // Operators should see found=false, deleted_count=0 and event_time_micros=0, not nothing.
  options.always_print_primitive_fields = true;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    io.err << "ods: INTERNAL: can't print the response as JSON: " << std::string(status.message())
           << "\n";
    return false;
  }
  io.out << json << "\n" << std::flush;
  return true;
}

// Sends one unary call through `call(context, response)` and prints its response.
template <typename Response, typename Call>
int RunUnary(const GlobalOptions& global, const Io& io, Call call) {
  grpc::ClientContext context;
  SetDeadline(global, context);
  Response response;
  const grpc::Status status = call(&context, &response);
  if (!status.ok()) {
    return ReportRpcError(status, io);
  }
  return PrintJson(response, io) ? kExitOk : kExitRpcError;
}

int RunPut(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  Result<ods::v1::PutRequest> request = BuildPutRequest(args, io.in);
  if (!request.ok()) {
    return ReportUsage(request.status(), "put", io);
  }
  const auto stub = ods::v1::Store::NewStub(MakeChannel(global));
  return RunUnary<ods::v1::PutResponse>(
      global, io, [&](grpc::ClientContext* context, ods::v1::PutResponse* response) {
        return stub->Put(context, *request, response);
      });
}

int RunGet(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  Result<ods::v1::GetRequest> request = BuildGetRequest(args);
  if (!request.ok()) {
    return ReportUsage(request.status(), "get", io);
  }
  const auto stub = ods::v1::Store::NewStub(MakeChannel(global));
  return RunUnary<ods::v1::GetResponse>(
      global, io, [&](grpc::ClientContext* context, ods::v1::GetResponse* response) {
        return stub->Get(context, *request, response);
      });
}

int RunDelete(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  Result<ods::v1::DeleteRequest> request = BuildDeleteRequest(args);
  if (!request.ok()) {
    return ReportUsage(request.status(), "delete", io);
  }
  const auto stub = ods::v1::Store::NewStub(MakeChannel(global));
  return RunUnary<ods::v1::DeleteResponse>(
      global, io, [&](grpc::ClientContext* context, ods::v1::DeleteResponse* response) {
        return stub->Delete(context, *request, response);
      });
}

int RunScan(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  Result<ods::v1::ScanRequest> request = BuildScanRequest(args);
  if (!request.ok()) {
    return ReportUsage(request.status(), "scan", io);
  }
  const auto stub = ods::v1::Store::NewStub(MakeChannel(global));
  grpc::ClientContext context;
  SetDeadline(global, context);
  const auto reader = stub->Scan(&context, *request);
  ods::v1::ScanResponse page;
  bool printed_all = true;
  int pages = 0;
  while (reader->Read(&page)) {
    ++pages;
    if (!PrintJson(page, io)) {
      printed_all = false;
      context.TryCancel();
      break;
    }
  }
  const grpc::Status status = reader->Finish();
  if (!printed_all) {
    return kExitRpcError;
  }
  if (!status.ok()) {
    return ReportRpcError(status, io);
  }
  // The server sends no page when nothing matches; scripts still get one document to parse.
  if (pages == 0 && !PrintJson(ods::v1::ScanResponse(), io)) {
    return kExitRpcError;
  }
  return kExitOk;
}

int RunSubscribe(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  Result<ods::v1::SubscribeRequest> request = BuildSubscribeRequest(args);
  if (!request.ok()) {
    return ReportUsage(request.status(), "subscribe", io);
  }
  uint32_t max = 0;
  if (const std::string* m = args.Find("--max")) {
    Result<uint32_t> n = ParseUint32(*m, "--max");
    if (!n.ok()) return ReportUsage(n.status(), "subscribe", io);
    max = *n;
  }
  const auto stub = ods::v1::Features::NewStub(MakeSubscriberChannel(global));
  grpc::ClientContext context;
  SetDeadline(global, context);
  const auto reader = stub->Subscribe(&context, *request);
  ods::v1::SubscribeResponse message;
  uint64_t printed = 0;
  bool reached_max = false;
  while (reader->Read(&message)) {
    if (!PrintJson(message, io)) {
      context.TryCancel();
      reader->Finish();
      return kExitRpcError;
    }
    printed += static_cast<uint64_t>(message.changes_size()) +
               static_cast<uint64_t>(message.features_size());
    if (max != 0 && printed >= max) {
      reached_max = true;
      context.TryCancel();
      break;
    }
  }
  const grpc::Status status = reader->Finish();
  if (reached_max || status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return kExitOk;  // the end the caller asked for
  }
  if (!status.ok()) {
    return ReportRpcError(status, io);
  }
  return kExitOk;
}

int RunPush(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  Result<ods::v1::PushEventsRequest> request = BuildPushRequest(args, io.in);
  if (!request.ok()) {
    return ReportUsage(request.status(), "push", io);
  }
  const auto stub = ods::v1::Features::NewStub(MakeChannel(global));
  grpc::ClientContext context;
  SetDeadline(global, context);
  ods::v1::PushEventsResponse response;
  const grpc::Status status = stub->PushEvents(&context, *request, &response);
  if (!status.ok()) {
    return ReportRpcError(status, io);
  }
  if (!PrintJson(response, io)) {
    return kExitRpcError;
  }
  // The call succeeds even when events are rejected; scripts must still notice.
  for (const ods::v1::EventError& e : response.rejected()) {
    io.err << "ods: event " << e.index() << ": "
           << GrpcCodeName(static_cast<grpc::StatusCode>(e.code())) << ": " << e.message() << "\n";
  }
  const uint64_t rejected = std::max<uint64_t>(response.rejected_count(),
                                               static_cast<uint64_t>(response.rejected_size()));
  if (rejected > static_cast<uint64_t>(response.rejected_size())) {
    io.err << "ods: " << rejected - static_cast<uint64_t>(response.rejected_size())
           << " more rejected events not listed\n";
  }
  return rejected == 0 ? kExitOk : kExitRpcError;
}

int RunFeatures(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  Result<ods::v1::GetOnlineFeaturesRequest> request = BuildFeaturesRequest(args);
  if (!request.ok()) {
    return ReportUsage(request.status(), "features", io);
  }
  const auto stub = ods::v1::Features::NewStub(MakeChannel(global));
  return RunUnary<ods::v1::FeaturesResponse>(
      global, io, [&](grpc::ClientContext* context, ods::v1::FeaturesResponse* response) {
        return stub->GetOnlineFeatures(context, *request, response);
      });
}

int RunHistory(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  Result<ods::v1::GetHistoricalFeaturesRequest> request = BuildHistoryRequest(args);
  if (!request.ok()) {
    return ReportUsage(request.status(), "history", io);
  }
  const auto stub = ods::v1::Features::NewStub(MakeChannel(global));
  return RunUnary<ods::v1::FeaturesResponse>(
      global, io, [&](grpc::ClientContext* context, ods::v1::FeaturesResponse* response) {
        return stub->GetHistoricalFeatures(context, *request, response);
      });
}

int RunApply(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  Result<ods::v1::ApplyDefinitionsRequest> request = BuildApplyRequest(args, io.in);
  if (!request.ok()) {
    return ReportUsage(request.status(), "apply", io);
  }
  const auto stub = ods::v1::Admin::NewStub(MakeChannel(global));
  return RunUnary<ods::v1::ApplyDefinitionsResponse>(
      global, io, [&](grpc::ClientContext* context, ods::v1::ApplyDefinitionsResponse* response) {
        return stub->ApplyDefinitions(context, *request, response);
      });
}

int RunDefinitions(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  Result<ods::v1::ListDefinitionsRequest> request = BuildDefinitionsRequest(args);
  if (!request.ok()) {
    return ReportUsage(request.status(), "definitions", io);
  }
  const auto stub = ods::v1::Admin::NewStub(MakeChannel(global));
  return RunUnary<ods::v1::ListDefinitionsResponse>(
      global, io, [&](grpc::ClientContext* context, ods::v1::ListDefinitionsResponse* response) {
        return stub->ListDefinitions(context, *request, response);
      });
}

int RunHealth(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  using grpc::health::v1::HealthCheckResponse;
  Result<grpc::health::v1::HealthCheckRequest> request = BuildHealthRequest(args);
  if (!request.ok()) {
    return ReportUsage(request.status(), "health", io);
  }
  const auto stub = grpc::health::v1::Health::NewStub(MakeChannel(global));
  grpc::ClientContext context;
  SetDeadline(global, context);
  HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, *request, &response);
  if (!status.ok()) {
    return ReportRpcError(status, io);
  }
  if (!PrintJson(response, io)) {
    return kExitRpcError;
  }
  if (response.status() != HealthCheckResponse::SERVING) {
    io.err << "ods: service '" << request->service() << "' is "
           << HealthCheckResponse::ServingStatus_Name(response.status()) << "\n";
    return kExitRpcError;
  }
  return kExitOk;
}

int RunExec(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  Result<ods::v1::ExecuteRequest> request = BuildExecuteRequest(args);
  if (!request.ok()) {
    return ReportUsage(request.status(), "exec", io);
  }
  const auto stub = ods::v1::Functions::NewStub(MakeChannel(global));
  grpc::ClientContext context;
  SetDeadline(global, context);
  ods::v1::ExecuteResponse response;
  const grpc::Status status = stub->Execute(&context, *request, &response);
  if (!status.ok()) {
    return ReportRpcError(status, io);
  }
  if (!PrintJson(response, io)) {
    return kExitRpcError;
  }
  // The call succeeds even when keys fail; scripts must still notice.
  bool failed = false;
  for (const ods::v1::ExecuteResult& r : response.results()) {
    if (r.code() == 0) continue;
    failed = true;
    io.err << "ods: key " << r.key() << ": "
           << GrpcCodeName(static_cast<grpc::StatusCode>(r.code())) << ": " << r.message() << "\n";
  }
  return failed ? kExitRpcError : kExitOk;
}

int RunRegister(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  Result<ods::v1::RegisterFunctionRequest> request = BuildRegisterRequest(args, io.in);
  if (!request.ok()) {
    return ReportUsage(request.status(), "register", io);
  }
  const auto stub = ods::v1::Admin::NewStub(MakeChannel(global));
  return RunUnary<ods::v1::RegisterFunctionResponse>(
      global, io, [&](grpc::ClientContext* context, ods::v1::RegisterFunctionResponse* response) {
        return stub->RegisterFunction(context, *request, response);
      });
}

int RunFunctions(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  Result<ods::v1::ListFunctionsRequest> request = BuildFunctionsRequest(args);
  if (!request.ok()) {
    return ReportUsage(request.status(), "functions", io);
  }
  const auto stub = ods::v1::Admin::NewStub(MakeChannel(global));
  return RunUnary<ods::v1::ListFunctionsResponse>(
      global, io, [&](grpc::ClientContext* context, ods::v1::ListFunctionsResponse* response) {
        return stub->ListFunctions(context, *request, response);
      });
}

int RunTiers(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  Result<ods::v1::GetTierStatsRequest> request = BuildTiersRequest(args);
  if (!request.ok()) return ReportUsage(request.status(), "tiers", io);
  const auto stub = ods::v1::Admin::NewStub(MakeChannel(global));
  return RunUnary<ods::v1::GetTierStatsResponse>(
      global, io, [&](grpc::ClientContext* context, ods::v1::GetTierStatsResponse* response) {
        return stub->GetTierStats(context, *request, response);
      });
}

int RunStats(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  Result<ods::v1::GetServerStatsRequest> request = BuildStatsRequest(args);
  if (!request.ok()) return ReportUsage(request.status(), "stats", io);
  const auto stub = ods::v1::Admin::NewStub(MakeChannel(global));
  return RunUnary<ods::v1::GetServerStatsResponse>(
      global, io, [&](grpc::ClientContext* context, ods::v1::GetServerStatsResponse* response) {
        return stub->GetServerStats(context, *request, response);
      });
}

int RunReload(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  Result<ods::v1::ReloadConfigRequest> request = BuildReloadRequest(args);
  if (!request.ok()) return ReportUsage(request.status(), "reload", io);
  const auto stub = ods::v1::Admin::NewStub(MakeChannel(global));
  return RunUnary<ods::v1::ReloadConfigResponse>(
      global, io, [&](grpc::ClientContext* context, ods::v1::ReloadConfigResponse* response) {
        return stub->ReloadConfig(context, *request, response);
      });
}

int RunMove(const GlobalOptions& global, const ParsedArgs& args, const Io& io) {
  Result<ods::v1::MoveRecordsRequest> request = BuildMoveRequest(args);
  if (!request.ok()) return ReportUsage(request.status(), "move", io);
  const auto stub = ods::v1::Admin::NewStub(MakeChannel(global));
  return RunUnary<ods::v1::MoveRecordsResponse>(
      global, io, [&](grpc::ClientContext* context, ods::v1::MoveRecordsResponse* response) {
        return stub->MoveRecords(context, *request, response);
      });
}

}  // namespace

std::span<const Command> Commands() {
  static const Command kCommands[] = {
      {"put", "Upsert records into a table", kPutHelp, {"--event-time", "--json"}, RunPut},
      {"get", "Read records by key", kGetHelp, {"--fields"}, RunGet},
      {"delete", "Remove records by key", kDeleteHelp, {}, RunDelete},
      {"scan",
       "List records in key order",
       kScanHelp,
       {"--prefix", "--start-after", "--limit", "--fields"},
       RunScan},
      {"push",
       "Send events to an event template (ods.v1.Features)",
       kPushHelp,
       {"--event-id", "--json"},
       RunPush},
      {"features", "Read feature values of entities", kFeaturesHelp, {"--as-of"}, RunFeatures},
      {"subscribe",
       "Follow changes of tables, templates or features (ods.v1.Features)",
       kSubscribeHelp,
       {"--table...", "--template...", "--feature...", "--key...", "--from", "--max"},
       RunSubscribe},
      {"history",
       "Read feature values of entities as of given times",
       kHistoryHelp,
       {},
       RunHistory},
      {"apply",
       "Add event templates and aggregations from YAML (ods.v1.Admin)",
       kApplyHelp,
       {},
       RunApply},
      {"definitions",
       "List the event templates and aggregations in effect",
       kDefinitionsHelp,
       {},
       RunDefinitions},
      {"exec",
       "Run a procedure on records by key (ods.v1.Functions)",
       kExecHelp,
       {"--arg..."},
       RunExec},
      {"register",
       "Register a new version of a Lua function (ods.v1.Admin)",
       kRegisterHelp,
       {"--instructions", "--memory", "--wall-micros", "--keep-state!"},
       RunRegister},
      {"functions", "List the registered functions", kFunctionsHelp, {}, RunFunctions},
      {"tiers",
       "Per-table records, bytes and reads by tier, read p99 against the SLA, monthly cost",
       kTiersHelp,
       {},
       RunTiers},
      {"stats",
       "Server figures: version, uptime, records, gets, puts, events, function errors",
       kStatsHelp,
       {},
       RunStats},
      {"move",
       "Move records of a table to a tier now (ods.v1.Admin)",
       kMoveHelp,
       {"--to"},
       RunMove},
      {"reload",
       "Re-read odsd's config: tiering rules, budgets, TTLs (as SIGHUP)",
       kReloadHelp,
       {},
       RunReload},
      {"health", "Check the server's health (grpc.health.v1)", kHealthHelp, {}, RunHealth},
  };
  return kCommands;
}

const Command* FindCommand(std::string_view name) {
  for (const Command& command : Commands()) {
    if (command.name == name) {
      return &command;
    }
  }
  return nullptr;
}

}  // namespace ods::cli
