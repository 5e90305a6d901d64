#pragma once

#include <grpcpp/support/status.h>

#include "ods/common/status.h"

namespace ods::server {

// The one place ODS statuses become gRPC statuses: codes map 1:1. kInternal text is logged with a
// fresh error id and replaced by "internal error <id>" so internals never reach clients.
grpc::Status ToGrpcStatus(const Status& status);

}  // namespace ods::server
