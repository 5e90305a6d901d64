#pragma once

#include <istream>

#include "cli/args.h"
#include "grpc/health/v1/health.pb.h"
#include "ods/common/status.h"
#include "ods/v1/store.pb.h"

namespace ods::cli {

// Builders that turn one command's parsed arguments into its request message, without any I/O
// except the stdin read of `put --json -`. Each returns kInvalidArgument, with a message naming
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

// `health [SERVICE]`.
[[nodiscard]] Result<grpc::health::v1::HealthCheckRequest> BuildHealthRequest(
    const ParsedArgs& args);

}  // namespace ods::cli
