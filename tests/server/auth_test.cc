// Unit tests of the server's private API-key checks (src/server/auth.h): the whole method x role
// matrix, table limits and messages, without a server (security_test covers the wire).

#include "auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/sha256.h"
#include "ods/config/config.h"
#include "support/test_util.h"

namespace ods::server {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr Method kAllMethods[] = {
    Method::kStorePut,
    Method::kStoreGet,
    Method::kStoreDelete,
    Method::kStoreScan,
    Method::kFeaturesPushEvents,
    Method::kFeaturesStreamEvents,
    Method::kFeaturesGetOnlineFeatures,
    Method::kFeaturesGetHistoricalFeatures,
    Method::kFeaturesSubscribe,
    Method::kFunctionsExecute,
    Method::kAdminApplyDefinitions,
    Method::kAdminListDefinitions,
    Method::kAdminRegisterFunction,
    Method::kAdminListFunctions,
    Method::kAdminGetTierStats,
    Method::kAdminMoveRecords,
    Method::kAdminReloadConfig,
    Method::kAdminGetServerStats,
};

config::ApiKeyConfig Key(std::string name, std::string_view secret, config::Role role,
                         std::vector<std::string> tables = {}) {
  config::ApiKeyConfig k;
  k.name = std::move(name);
  k.key_sha256 = Sha256(secret);
  k.role = role;
  k.tables = std::move(tables);
  return k;
}

std::unique_ptr<Authenticator> MakeAuth() {
  config::SecurityConfig security;
  security.api_keys = {Key("r", "read-secret-0123456789", config::Role::kRead),
                       Key("w", "write-secret-0123456789", config::Role::kWrite),
                       Key("a", "admin-secret-0123456789", config::Role::kAdmin),
                       Key("t", "table-secret-0123456789", config::Role::kWrite, {"users", "tx"})};
  return Authenticator::Create(security);
}

TEST(AuthTest, NoKeysMeansNoAuthenticator) {
  EXPECT_EQ(Authenticator::Create(config::SecurityConfig{}), nullptr);
}

TEST(AuthTest, EveryMethodHasItsOwnName) {
  std::set<std::string_view> names;
  for (Method m : kAllMethods) {
    EXPECT_TRUE(names.insert(MethodName(m)).second) << MethodName(m);
    EXPECT_NE(MethodName(m), "?");
  }
}

TEST(AuthTest, EachRoleMayCallExactlyTheMethodsAtOrBelowIt) {
  const auto auth = MakeAuth();
  const struct {
    const char* secret;
    config::Role role;
  } keys[] = {{"read-secret-0123456789", config::Role::kRead},
              {"write-secret-0123456789", config::Role::kWrite},
              {"admin-secret-0123456789", config::Role::kAdmin}};
  for (const auto& k : keys) {
    for (Method m : kAllMethods) {
      const ApiKey* key = nullptr;
      const Status s = auth->AuthorizeKey(k.secret, false, m, key);
      if (k.role >= RequiredRole(m)) {
        EXPECT_THAT(s, IsOk()) << MethodName(m) << " " << config::RoleName(k.role);
        ASSERT_NE(key, nullptr);
        EXPECT_EQ(key->role, k.role);
      } else {
        EXPECT_THAT(s, StatusIs(StatusCode::kPermissionDenied))
            << MethodName(m) << " " << config::RoleName(k.role);
        EXPECT_EQ(key, nullptr);
      }
    }
  }
}

TEST(AuthTest, ReadersReadAndWritersWrite) {
  EXPECT_EQ(RequiredRole(Method::kStoreGet), config::Role::kRead);
  EXPECT_EQ(RequiredRole(Method::kFeaturesGetOnlineFeatures), config::Role::kRead);
  EXPECT_EQ(RequiredRole(Method::kAdminListDefinitions), config::Role::kRead);
  EXPECT_EQ(RequiredRole(Method::kStorePut), config::Role::kWrite);
  EXPECT_EQ(RequiredRole(Method::kFeaturesStreamEvents), config::Role::kWrite);
  EXPECT_EQ(RequiredRole(Method::kFunctionsExecute), config::Role::kWrite);
  EXPECT_EQ(RequiredRole(Method::kAdminApplyDefinitions), config::Role::kAdmin);
  EXPECT_EQ(RequiredRole(Method::kAdminRegisterFunction), config::Role::kAdmin);
}

TEST(AuthTest, MissingMalformedUnknownAndOverlongKeysAreUnauthenticated) {
  const auto auth = MakeAuth();
  const ApiKey* key = nullptr;
  EXPECT_THAT(auth->AuthorizeKey("", false, Method::kStoreGet, key),
              StatusIs(StatusCode::kUnauthenticated));
  EXPECT_THAT(auth->AuthorizeKey("", true, Method::kStoreGet, key),
              StatusIs(StatusCode::kUnauthenticated));
  const Status unknown = auth->AuthorizeKey("not-a-key-0123456789", false, Method::kStoreGet, key);
  EXPECT_THAT(unknown, StatusIs(StatusCode::kUnauthenticated));
  EXPECT_EQ(unknown.message(), "ods.v1.Store/Get: unknown API key");
  const std::string overlong(Authenticator::kMaxKeyBytes + 1, 'k');
  EXPECT_THAT(auth->AuthorizeKey(overlong, false, Method::kStoreGet, key),
              StatusIs(StatusCode::kUnauthenticated));
  EXPECT_EQ(auth->unauthenticated(), 4u);
}

TEST(AuthTest, TableLimitedKeyMayUseOnlyItsTablesAndNoAdminMethod) {
  const auto auth = MakeAuth();
  const ApiKey* key = nullptr;
  ASSERT_THAT(auth->AuthorizeKey("table-secret-0123456789", false, Method::kStorePut, key), IsOk());
  EXPECT_THAT(CheckTable(auth.get(), key, Method::kStorePut, "users"), IsOk());
  EXPECT_THAT(CheckTable(auth.get(), key, Method::kStorePut, "tx"), IsOk());
  const Status other = CheckTable(auth.get(), key, Method::kStorePut, "orders");
  EXPECT_THAT(other, StatusIs(StatusCode::kPermissionDenied));
  EXPECT_EQ(other.message(),
            "ods.v1.Store/Put: API key 't' may not use table or template 'orders'; it is "
            "restricted to: users, tx");
  EXPECT_THAT(CheckTable(auth.get(), key, Method::kStorePut, "user"),
              StatusIs(StatusCode::kPermissionDenied));
  for (Method m : kAllMethods) {
    if (!IsNodeWide(m)) continue;
    const Status s = auth->AuthorizeKey("table-secret-0123456789", false, m, key);
    if (RequiredRole(m) <= config::Role::kWrite) {
      EXPECT_THAT(s, StatusIs(StatusCode::kPermissionDenied)) << MethodName(m);
      EXPECT_THAT(s.message(), HasSubstr("acts on the whole node"));
    }
  }
}

TEST(AuthTest, UnlimitedKeyAndKeysOffPassEveryTable) {
  const auto auth = MakeAuth();
  const ApiKey* key = nullptr;
  ASSERT_THAT(auth->AuthorizeKey("write-secret-0123456789", false, Method::kStorePut, key), IsOk());
  EXPECT_THAT(CheckTable(auth.get(), key, Method::kStorePut, "anything"), IsOk());
  EXPECT_THAT(CheckTable(nullptr, nullptr, Method::kStorePut, "anything"), IsOk());
}

TEST(AuthTest, MessagesNeverCarryTheKey) {
  const auto auth = MakeAuth();
  const ApiKey* key = nullptr;
  const Status denied =
      auth->AuthorizeKey("read-secret-0123456789", false, Method::kAdminApplyDefinitions, key);
  EXPECT_EQ(denied.message(),
            "ods.v1.Admin/ApplyDefinitions needs role admin; API key 'r' has role read");
  EXPECT_THAT(denied.message(), Not(HasSubstr("read-secret")));
  EXPECT_EQ(auth->denied(), 1u);
}

}  // namespace
}  // namespace ods::server
