#include "status_mapping.h"

#include <atomic>
#include <string>

#include "ods/common/logging.h"

namespace ods::server {

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  if (status.code() == StatusCode::kInternal) {
    static std::atomic<uint64_t> next_error_id{1};
    const uint64_t id = next_error_id.fetch_add(1, std::memory_order_relaxed);
    Logger("ods.server")->error("internal error {}: {}", id, status.message());
    return {grpc::StatusCode::INTERNAL, "internal error " + std::to_string(id) +
                                            " (details in the server log)"};
  }
  return {static_cast<grpc::StatusCode>(status.code()), status.message()};
}

}  // namespace ods::server
