// The admin endpoint's readiness (issue #7 point 1): started before the engine, /healthz answers
// and /readyz says "starting" until the server takes the endpoint over; then /readyz is 200 and
// /metrics serves every figure; on shutdown both answer 503 "draining".

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "admin_http.h"
#include "ods/common/clock.h"
#include "ods/config/config.h"
#include "ods/engine/engine.h"
#include "ods/server/server.h"
#include "support/odsd_process.h"

namespace ods::server {
namespace {

using ::ods::testing::HttpGet;

// The status line's code and the body of a raw HTTP response ("" parts when malformed).
struct Answer {
  std::string status;
  std::string body;
};
Answer Get(const std::string& address, const std::string& path) {
  const std::string raw = HttpGet(address, path);
  Answer a;
  const size_t space = raw.find(' ');
  if (space != std::string::npos) a.status = raw.substr(space + 1, 3);
  const size_t blank = raw.find("\r\n\r\n");
  if (blank != std::string::npos) a.body = raw.substr(blank + 4);
  return a;
}

TEST(AdminEndpointTest, NotReadyUntilTheServerTakesOverThenDraining) {
  Result<std::unique_ptr<AdminEndpoint>> admin = AdminEndpoint::Start("127.0.0.1:0");
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();
  const std::string address = (*admin)->address();

  EXPECT_EQ(Get(address, "/healthz").status, "200");
  const Answer starting = Get(address, "/readyz");
  EXPECT_EQ(starting.status, "503");
  EXPECT_EQ(starting.body, "starting: loading data (recovery)\n");
  const Answer early_metrics = Get(address, "/metrics");
  EXPECT_EQ(early_metrics.status, "200");
  EXPECT_NE(early_metrics.body.find("\nods_ready 0\n"), std::string::npos) << early_metrics.body;

  config::Config config;
  config.source = "admin_endpoint_test";
  config.server.shards = 2;
  config.server.grpc_listen = "127.0.0.1:0";
  config.server.admin_listen = "127.0.0.1:0";  // not bound again: the endpoint above is used
  Result<std::unique_ptr<engine::Engine>> engine = engine::Engine::Create(config, SystemClock());
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  Result<std::unique_ptr<Server>> server = Server::Start(**engine, config, std::move(*admin));
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  EXPECT_EQ((*server)->admin_address(), address);

  const Answer ready = Get(address, "/readyz");
  EXPECT_EQ(ready.status, "200");
  EXPECT_EQ(ready.body, "ready\n");
  const Answer metrics = Get(address, "/metrics");
  EXPECT_NE(metrics.body.find("\nods_ready 1\n"), std::string::npos);
  EXPECT_NE(metrics.body.find("ods_rpc_handler_seconds_count{method=\"ods.v1.Store/Get\"}"),
            std::string::npos);
  EXPECT_NE(Get(address, "/nope").body.find("/readyz"), std::string::npos);

  (*server)->Shutdown(0);
  // Shutdown stops the endpoint once drained; before that both said "draining" (checked by
  // SetDraining's order in Shutdown), after it nothing listens.
  EXPECT_EQ(HttpGet(address, "/readyz"), "");
}

TEST(AdminHttpTest, DrainingTurnsHealthAndReadinessTo503) {
  Result<std::unique_ptr<AdminHttp>> http =
      AdminHttp::Start("127.0.0.1:0", [] { return std::string("x 1\n"); });
  ASSERT_TRUE(http.ok()) << http.status().ToString();
  const std::string address = "127.0.0.1:" + std::to_string((*http)->port());
  EXPECT_EQ(Get(address, "/readyz").status, "503");
  (*http)->SetReady();
  EXPECT_EQ(Get(address, "/readyz").status, "200");
  (*http)->SetMetrics([] { return std::string("y 2\n"); });
  EXPECT_EQ(Get(address, "/metrics").body, "y 2\n");
  (*http)->SetDraining();
  const Answer ready = Get(address, "/readyz");
  EXPECT_EQ(ready.status, "503");
  EXPECT_EQ(ready.body, "draining\n");
  EXPECT_EQ(Get(address, "/healthz").status, "503");
}

}  // namespace
}  // namespace ods::server
