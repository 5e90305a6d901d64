#pragma once

#include <istream>

#include "cli/args.h"
#include "grpc/health/v1/health.pb.h"
#include "ods/common/status.h"
#include "ods/v1/admin.pb.h"
#include "ods/v1/features.pb.h"
#include "ods/v1/functions.pb.h"
#include "ods/v1/store.pb.h"

namespace ods::cli {

// Builders that turn one command's parsed arguments into its request message, without any I/O
// except reading stdin for `put --json -`, `push --json -` and `apply -`, and the FILE of
// `apply FILE`. Each returns kInvalidArgument, with a message naming
// the offending argument, for bad usage (the caller exits 2). Thread-compatible.

// `put TABLE KEY FIELD=VALUE... [--event-time MICROS]` or `put TABLE --json JSON|-`.
// `in` is read to its end only for `--json -`.
[[nodiscard]] Result<ods::v1::PutRequest> BuildPutRequest(const ParsedArgs& args, std::istream& in);

// `get TABLE KEY... [--fields F1,F2]`.
[[nodiscard]] Result<ods::v1::GetRequest> BuildGetRequest(const ParsedArgs& args);

// `delete TABLE KEY...`.
[[nodiscard]] Result<ods::v1::DeleteRequest> BuildDeleteRequest(const ParsedArgs& args);

// `scan TABLE [--prefix P] [--start-after K] [--limit N] [--fields F1,F2]`.
[[nodiscard]] Result<ods::v1::ScanRequest> BuildScanRequest(const ParsedArgs& args);

// `push TEMPLATE FIELD=VALUE... [--event-id ID]` (one event; the template's key and timestamp
// fields are FIELD=VALUEs like the others) or `push --json JSON|-` (a whole PushEventsRequest).
// `in` is read to its end only for `--json -`.
[[nodiscard]] Result<ods::v1::PushEventsRequest> BuildPushRequest(const ParsedArgs& args,
                                                                  std::istream& in);

// `features ENTITY[,ENTITY...] FEATURE[,FEATURE...] [--as-of MICROS]`.
[[nodiscard]] Result<ods::v1::GetOnlineFeaturesRequest> BuildFeaturesRequest(
    const ParsedArgs& args);

// `history ENTITY@MICROS[,ENTITY@MICROS...] FEATURE[,FEATURE...]`. An entity may itself contain
// '@': the last one splits it from MICROS.
[[nodiscard]] Result<ods::v1::GetHistoricalFeaturesRequest> BuildHistoryRequest(
    const ParsedArgs& args);

// `apply FILE|-`: the YAML text of FILE, or of `in` (read to its end) for '-'. A FILE that can't
// be read is kInvalidArgument too: nothing was sent.
[[nodiscard]] Result<ods::v1::ApplyDefinitionsRequest> BuildApplyRequest(const ParsedArgs& args,
                                                                         std::istream& in);

// `definitions` (no arguments).
[[nodiscard]] Result<ods::v1::ListDefinitionsRequest> BuildDefinitionsRequest(
    const ParsedArgs& args);

// `exec FUNCTION TABLE KEY... [--arg NAME=VALUE]...`: NAME=VALUE typed as put's FIELD=VALUE.
[[nodiscard]] Result<ods::v1::ExecuteRequest> BuildExecuteRequest(const ParsedArgs& args);

// `register NAME KIND FILE|- [--instructions N] [--memory BYTES] [--wall-micros N]`: the Lua
// source of FILE, or of `in` (read to its end) for '-'.
[[nodiscard]] Result<ods::v1::RegisterFunctionRequest> BuildRegisterRequest(const ParsedArgs& args,
                                                                            std::istream& in);

// `functions` (no arguments).
[[nodiscard]] Result<ods::v1::ListFunctionsRequest> BuildFunctionsRequest(const ParsedArgs& args);

// `ods tiers`: no arguments.
[[nodiscard]] Result<ods::v1::GetTierStatsRequest> BuildTiersRequest(const ParsedArgs& args);

// `ods stats`: no arguments.
[[nodiscard]] Result<ods::v1::GetServerStatsRequest> BuildStatsRequest(const ParsedArgs& args);

// `ods reload`: no arguments.
[[nodiscard]] Result<ods::v1::ReloadConfigRequest> BuildReloadRequest(const ParsedArgs& args);

// `ods move TABLE KEY... --to TIER`.
[[nodiscard]] Result<ods::v1::MoveRecordsRequest> BuildMoveRequest(const ParsedArgs& args);

// `subscribe [--table T]... [--template E]... [--feature F]... [--key K]... [--from SEQ]`
// (--max is the command's, not the request's). At least one --table, --template or --feature.
[[nodiscard]] Result<ods::v1::SubscribeRequest> BuildSubscribeRequest(const ParsedArgs& args);

// `health [SERVICE]`.
[[nodiscard]] Result<grpc::health::v1::HealthCheckRequest> BuildHealthRequest(
    const ParsedArgs& args);

}  // namespace ods::cli
