// What only the postgres store does: losing its server after open (for good, or for a
// restart), and what it tells the operator then. The shared contract is in backing_store_test.cc.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "ods/record/value.h"
#include "ods/tier/backing_store.h"
#include "support/postgres_server.h"
#include "support/test_util.h"

namespace ods::tier {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::PostgresServer;
using ::ods::testing::StatusIs;
using record::Record;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(PostgresStoreTest, ServerGoneAfterOpenGivesUnavailableNamingTargetNotPassword) {
  PostgresServer server;  // its own: this test stops it
  ASSERT_TRUE(server.Start()) << "PostgreSQL test server did not start: " << server.error();
  Result<std::unique_ptr<BackingStore>> store =
      OpenPostgresStore({.conninfo = server.conninfo() + " password=hunter2"});
  ASSERT_THAT(store, IsOk());
  const Record r{{{"n", int64_t{1}}}, 0, 0};
  const BackingPut put{"t", "k", &r, 0, 1};
  ASSERT_THAT((*store)->Put({&put, 1}), IsOk());
  EXPECT_THAT((*store)->Describe(), Not(HasSubstr("hunter2")));
  const std::string socket_dir = server.dir();

  server.Stop();
  const Status put_status = (*store)->Put({&put, 1});
  EXPECT_THAT(put_status, StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(put_status.message(), HasSubstr("host=" + socket_dir));
  EXPECT_THAT(put_status.message(), Not(HasSubstr("hunter2")));
  // The next call tries to reconnect, and fails the same way.
  EXPECT_THAT((*store)->Get("t", "k"), StatusIs(StatusCode::kUnavailable));
}

TEST(PostgresStoreTest, ServerRestartIsInvisibleToTheNextCall) {
  PostgresServer server;  // its own: this test restarts it
  ASSERT_TRUE(server.Start()) << "PostgreSQL test server did not start: " << server.error();
  Result<std::unique_ptr<BackingStore>> store = OpenPostgresStore({.conninfo = server.conninfo()});
  ASSERT_THAT(store, IsOk());
  const Record r{{{"n", int64_t{1}}}, 0, 0};
  const BackingPut put{"t", "k", &r, 0, 1};
  ASSERT_THAT((*store)->Put({&put, 1}), IsOk());

  ASSERT_TRUE(server.Restart()) << server.error();
  // The store's connection died with the old server process; the call reconnects and retries.
  Result<std::optional<BackingEntry>> got = (*store)->Get("t", "k");
  ASSERT_THAT(got, IsOk());
  EXPECT_TRUE(got->has_value());
  EXPECT_THAT((*store)->Put({&put, 1}), IsOk());
}

TEST(PostgresStoreTest, BadOptionsAreInvalidArgumentWithoutTheConninfo) {
  EXPECT_THAT(OpenPostgresStore({.conninfo = ""}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(OpenPostgresStore({.conninfo = "host=/tmp", .table = "bad-name"}),
              StatusIs(StatusCode::kInvalidArgument));
  Result<std::unique_ptr<BackingStore>> unparsable =
      OpenPostgresStore({.conninfo = "host=/tmp password=hunter2 nonsense"});
  ASSERT_THAT(unparsable, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(unparsable.status().message(), Not(HasSubstr("hunter2")));
}

}  // namespace
}  // namespace ods::tier
