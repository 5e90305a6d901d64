#pragma once

#include <grpcpp/server_context.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ods/common/sha256.h"
#include "ods/common/status.h"
#include "ods/config/config.h"

namespace ods::server {

// Every RPC method behind API keys. Health and reflection are not here: they stay open.
enum class Method : uint8_t {
  kStorePut,
  kStoreGet,
  kStoreDelete,
  kStoreScan,
  kFeaturesPushEvents,
  kFeaturesStreamEvents,
  kFeaturesGetOnlineFeatures,
  kFeaturesGetHistoricalFeatures,
  kFeaturesSubscribe,
  kFunctionsExecute,
  kAdminApplyDefinitions,
  kAdminListDefinitions,
  kAdminRegisterFunction,
  kAdminListFunctions,
  kAdminGetTierStats,
  kAdminMoveRecords,
  kAdminReloadConfig,
  kAdminGetServerStats,
};

// "ods.v1.Store/Put" etc.
std::string_view MethodName(Method method);
// The least role that may call `method` (docs/security.md, "Roles").
config::Role RequiredRole(Method method);
// True for methods that act on the whole node (Admin): a key restricted to tables may not call
// them.
bool IsNodeWide(Method method);

// One configured API key as the server checks it. Immutable.
struct ApiKey {
  std::string name;
  config::Role role = config::Role::kRead;
  std::vector<std::string> tables;  // tables and event templates it may use; empty = all
};

// Checks the API key a call carries (metadata `authorization: Bearer KEY` or `x-api-key: KEY`)
// against security.api_keys. Keys are known only by their SHA-256, so a call costs one SHA-256
// of the key it sends and one hash-map lookup (BM_Auth_AuthorizeKey: ~70 ns); nothing is allocated
// on success. Messages name the method, the key's name and the table, never the key itself; nothing
// is logged. Thread-safe; immutable after Create apart from its counters.
class Authenticator {
 public:
  // nullptr when `security` lists no API keys: authentication is off and callers skip it.
  static std::unique_ptr<Authenticator> Create(const config::SecurityConfig& security);

  // Authenticates the caller of `ctx` and checks that its key's role may call `method`; sets
  // `key` to that key (valid for the Authenticator's life). UNAUTHENTICATED: no key, an unknown
  // key, or one longer than kMaxKeyBytes. PERMISSION_DENIED: the role is below the method's, or
  // the method is node-wide and the key is restricted to tables.
  Status Authorize(const grpc::ServerContextBase& ctx, Method method, const ApiKey*& key) const;

  // Authorize for a key already taken from the metadata: `presented` is the key ("" for none);
  // `malformed` says an authorization value was not "Bearer KEY".
  Status AuthorizeKey(std::string_view presented, bool malformed, Method method,
                      const ApiKey*& key) const;

  // OkStatus if `key` may use `table` (a table or an event template): always for a key without
  // `tables`. Else PERMISSION_DENIED naming method, key and table. O(key's tables).
  Status CheckTable(const ApiKey& key, Method method, std::string_view table) const;

  // Calls refused with UNAUTHENTICATED / PERMISSION_DENIED since start.
  uint64_t unauthenticated() const { return unauthenticated_.load(std::memory_order_relaxed); }
  uint64_t denied() const { return denied_.load(std::memory_order_relaxed); }

  // Longest key accepted (as config's key_file): a longer one is refused before hashing.
  static constexpr size_t kMaxKeyBytes = 4096;

 private:
  struct DigestHash {
    size_t operator()(const Sha256Digest& d) const;
  };

  Authenticator() = default;

  std::unordered_map<Sha256Digest, ApiKey, DigestHash> keys_;  // constant after Create
  mutable std::atomic<uint64_t> unauthenticated_{0};
  mutable std::atomic<uint64_t> denied_{0};
};

// The check every handler starts with: OkStatus and `key` = nullptr when `auth` is null (keys
// off: one branch, nothing else), else Authenticator::Authorize.
inline Status Authorize(const Authenticator* auth, const grpc::ServerContextBase& ctx,
                        Method method, const ApiKey*& key) {
  key = nullptr;
  if (auth == nullptr) return OkStatus();
  return auth->Authorize(ctx, method, key);
}

// OkStatus when keys are off or `key` has no table restriction, else CheckTable.
inline Status CheckTable(const Authenticator* auth, const ApiKey* key, Method method,
                         std::string_view table) {
  if (key == nullptr || key->tables.empty()) return OkStatus();
  return auth->CheckTable(*key, method, table);
}

}  // namespace ods::server
