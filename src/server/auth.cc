#include "auth.h"

#include <grpcpp/support/string_ref.h>

#include <cctype>
#include <cstring>
#include <string>
#include <utility>

namespace ods::server {
namespace {

Status Unauthenticated(std::string message) {
  return Status(StatusCode::kUnauthenticated, std::move(message));
}
Status PermissionDenied(std::string message) {
  return Status(StatusCode::kPermissionDenied, std::move(message));
}

std::string_view View(grpc::string_ref s) { return {s.data(), s.size()}; }

// The key a call carries, or "" if none. `authorization` wins over `x-api-key`. Sets
// `malformed` when an authorization header is not a Bearer token.
std::string_view PresentedKey(const grpc::ServerContextBase& ctx, bool& malformed) {
  malformed = false;
  const auto& metadata = ctx.client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    std::string_view value = View(it->second);
    constexpr std::string_view kBearer = "bearer ";
    if (value.size() < kBearer.size() ||
        strncasecmp(value.data(), kBearer.data(), kBearer.size()) != 0) {
      malformed = true;
      return {};
    }
    value.remove_prefix(kBearer.size());
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
    return value;
  }
  if (auto it = metadata.find("x-api-key"); it != metadata.end()) return View(it->second);
  return {};
}

std::string TableList(const std::vector<std::string>& tables) {
  std::string list;
  for (const std::string& t : tables) {
    if (!list.empty()) list += ", ";
    list += t;
  }
  return list;
}

}  // namespace

std::string_view MethodName(Method method) {
  switch (method) {
    case Method::kStorePut:
      return "ods.v1.Store/Put";
    case Method::kStoreGet:
      return "ods.v1.Store/Get";
    case Method::kStoreDelete:
      return "ods.v1.Store/Delete";
    case Method::kStoreScan:
      return "ods.v1.Store/Scan";
    case Method::kFeaturesPushEvents:
      return "ods.v1.Features/PushEvents";
    case Method::kFeaturesStreamEvents:
      return "ods.v1.Features/StreamEvents";
    case Method::kFeaturesGetOnlineFeatures:
      return "ods.v1.Features/GetOnlineFeatures";
    case Method::kFeaturesGetHistoricalFeatures:
      return "ods.v1.Features/GetHistoricalFeatures";
    case Method::kFeaturesSubscribe:
      return "ods.v1.Features/Subscribe";
    case Method::kFunctionsExecute:
      return "ods.v1.Functions/Execute";
    case Method::kAdminApplyDefinitions:
      return "ods.v1.Admin/ApplyDefinitions";
    case Method::kAdminListDefinitions:
      return "ods.v1.Admin/ListDefinitions";
    case Method::kAdminRegisterFunction:
      return "ods.v1.Admin/RegisterFunction";
    case Method::kAdminListFunctions:
      return "ods.v1.Admin/ListFunctions";
    case Method::kAdminGetTierStats:
      return "ods.v1.Admin/GetTierStats";
    case Method::kAdminMoveRecords:
      return "ods.v1.Admin/MoveRecords";
    case Method::kAdminReloadConfig:
      return "ods.v1.Admin/ReloadConfig";
    case Method::kAdminGetServerStats:
      return "ods.v1.Admin/GetServerStats";
  }
  return "?";
}

config::Role RequiredRole(Method method) {
  switch (method) {
    case Method::kStoreGet:
    case Method::kStoreScan:
    case Method::kFeaturesGetOnlineFeatures:
    case Method::kFeaturesGetHistoricalFeatures:
    case Method::kFeaturesSubscribe:
    case Method::kAdminListDefinitions:
    case Method::kAdminListFunctions:
    case Method::kAdminGetTierStats:
    case Method::kAdminGetServerStats:
      return config::Role::kRead;
    case Method::kStorePut:
    case Method::kStoreDelete:
    case Method::kFeaturesPushEvents:
    case Method::kFeaturesStreamEvents:
    case Method::kFunctionsExecute:
      return config::Role::kWrite;
    case Method::kAdminApplyDefinitions:
    case Method::kAdminRegisterFunction:
    case Method::kAdminMoveRecords:
    case Method::kAdminReloadConfig:
      return config::Role::kAdmin;
  }
  return config::Role::kAdmin;
}

bool IsNodeWide(Method method) {
  switch (method) {
    case Method::kAdminApplyDefinitions:
    case Method::kAdminListDefinitions:
    case Method::kAdminRegisterFunction:
    case Method::kAdminListFunctions:
    case Method::kAdminGetTierStats:
    case Method::kAdminReloadConfig:
    case Method::kAdminGetServerStats:
      return true;
    default:
      return false;
  }
}

size_t Authenticator::DigestHash::operator()(const Sha256Digest& d) const {
  size_t h = 0;
  std::memcpy(&h, d.data(), sizeof(h));  // a digest's bytes are already uniform
  return h;
}

std::unique_ptr<Authenticator> Authenticator::Create(const config::SecurityConfig& security) {
  if (security.api_keys.empty()) return nullptr;
  std::unique_ptr<Authenticator> auth(new Authenticator());
  for (const config::ApiKeyConfig& k : security.api_keys) {
    auth->keys_.emplace(k.key_sha256, ApiKey{k.name, k.role, k.tables});
  }
  return auth;
}

Status Authenticator::Authorize(const grpc::ServerContextBase& ctx, Method method,
                                const ApiKey*& key) const {
  bool malformed = false;
  const std::string_view presented = PresentedKey(ctx, malformed);
  return AuthorizeKey(presented, malformed, method, key);
}

Status Authenticator::AuthorizeKey(std::string_view presented, bool malformed, Method method,
                                   const ApiKey*& key) const {
  key = nullptr;
  if (presented.empty()) {
    unauthenticated_.fetch_add(1, std::memory_order_relaxed);
    return Unauthenticated(
        std::string(MethodName(method)) +
        (malformed ? ": the authorization metadata is not 'Bearer KEY'"
                   : ": no API key; send metadata 'authorization: Bearer KEY' or 'x-api-key: "
                     "KEY'"));
  }
  if (presented.size() > kMaxKeyBytes) {
    unauthenticated_.fetch_add(1, std::memory_order_relaxed);
    return Unauthenticated(std::string(MethodName(method)) + ": unknown API key");
  }
  const auto it = keys_.find(Sha256(presented));
  if (it == keys_.end()) {
    unauthenticated_.fetch_add(1, std::memory_order_relaxed);
    return Unauthenticated(std::string(MethodName(method)) + ": unknown API key");
  }
  const ApiKey& k = it->second;
  const config::Role needed = RequiredRole(method);
  if (k.role < needed) {
    denied_.fetch_add(1, std::memory_order_relaxed);
    return PermissionDenied(std::string(MethodName(method)) + " needs role " +
                            std::string(config::RoleName(needed)) + "; API key '" + k.name +
                            "' has role " + std::string(config::RoleName(k.role)));
  }
  if (IsNodeWide(method) && !k.tables.empty()) {
    denied_.fetch_add(1, std::memory_order_relaxed);
    return PermissionDenied(std::string(MethodName(method)) + " acts on the whole node; API key '" +
                            k.name + "' is restricted to tables: " + TableList(k.tables));
  }
  key = &k;
  return OkStatus();
}

Status Authenticator::CheckTable(const ApiKey& key, Method method, std::string_view table) const {
  if (key.tables.empty()) return OkStatus();
  for (const std::string& t : key.tables) {
    if (t == table) return OkStatus();
  }
  denied_.fetch_add(1, std::memory_order_relaxed);
  return PermissionDenied(std::string(MethodName(method)) + ": API key '" + key.name +
                          "' may not use table or template '" + QuoteForMessage(table) +
                          "'; it is restricted to: " + TableList(key.tables));
}

}  // namespace ods::server
