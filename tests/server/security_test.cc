// TLS, mutual TLS and API keys (server.tls, security.api_keys) against a real odsd over real
// gRPC. Certificates are made with the openssl command at test time (support/tls_files.h).

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "ods/common/sha256.h"
#include "ods/v1/admin.grpc.pb.h"
#include "ods/v1/features.grpc.pb.h"
#include "ods/v1/functions.grpc.pb.h"
#include "ods/v1/store.grpc.pb.h"
#include "support/odsd_process.h"
#include "support/tls_files.h"

namespace ods {
namespace {

using ::ods::testing::HttpGet;
using ::ods::testing::OdsdProcess;
using ::ods::testing::TempDir;
using ::ods::testing::TlsFiles;
using ::ods::testing::WriteFileText;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// The keys the server knows (by digest or key file) and one it does not.
constexpr char kReaderKey[] = "reader-key-3f9a1c0d5e7b2a64";
constexpr char kWriterKey[] = "writer-key-8d2e6b1f4a9c0357";  // given as a key_file
constexpr char kAdminKey[] = "admin-key-5c7e0a2d9b4f1863";
constexpr char kScopedKey[] = "scoped-key-1b6d9f3a7e0c2548";  // write, user_profile and txn only
constexpr char kWrongKey[] = "wrong-key-0000000000000000";

std::string Hex(const Sha256Digest& d) {
  std::string out;
  char buf[3];
  for (uint8_t b : d) {
    std::snprintf(buf, sizeof buf, "%02x", b);
    out += buf;
  }
  return out;
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A config with two tables, two event templates (one aggregation each), a procedure, TLS (no
// client certificates), the four keys, and debug logging (so the log shows everything it would).
std::string Config(const std::string& dir, const TlsFiles& tls) {
  WriteFileText(dir + "/writer.key", std::string(kWriterKey) + "\n");
  WriteFileText(dir + "/bump.lua",
                "function execute(record, args, key)\n"
                "  local n = (record and record.n or 0) + 1\n"
                "  return n, {n = n}\n"
                "end\n");
  return "server:\n"
         "  shards: 2\n"
         "  tls: {cert: " +
         tls.server_cert + ", key: " + tls.server_key +
         "}\n"
         "logging: {level: debug}\n"
         "storage: {durability: none}\n"
         "tables:\n"
         "  user_profile: {key: user_id, fields: {age: int64}}\n"
         "  orders: {key: order_id}\n"
         "event_templates:\n"
         "  txn: {key: user_id, timestamp: ts, fields: {amount: int64}}\n"
         "  clicks: {key: user_id, timestamp: ts}\n"
         "aggregations:\n"
         "  txn_count: {template: txn, fn: count, window: 1h}\n"
         "  click_count: {template: clicks, fn: count, window: 1h}\n"
         "functions:\n"
         "  bump: {kind: procedure, source: bump.lua}\n"
         "security:\n"
         "  api_keys:\n"
         "    reader: {key_sha256: " +
         Hex(Sha256(kReaderKey)) +
         ", role: read}\n"
         "    writer: {key_file: writer.key, role: write}\n"
         "    admin: {key_sha256: " +
         Hex(Sha256(kAdminKey)) +
         ", role: admin}\n"
         "    scoped: {key_sha256: " +
         Hex(Sha256(kScopedKey)) + ", role: write, tables: [user_profile, txn]}\n";
}

std::shared_ptr<grpc::Channel> TlsChannel(const std::string& address, const std::string& ca,
                                          const std::string& cert = "",
                                          const std::string& key = "") {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = testing::ReadFileText(ca);
  if (!cert.empty()) {
    options.pem_cert_chain = testing::ReadFileText(cert);
    options.pem_private_key = testing::ReadFileText(key);
  }
  return grpc::CreateChannel(address, grpc::SslCredentials(options));
}

// A client context with a 10 s deadline and, unless `key` is empty, `authorization: Bearer key`.
std::unique_ptr<grpc::ClientContext> Context(const std::string& key) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!key.empty()) ctx->AddMetadata("authorization", "Bearer " + key);
  return ctx;
}

v1::Event Event(const std::string& template_name, const std::string& user) {
  v1::Event e;
  e.set_template_(template_name);
  (*e.mutable_fields())["user_id"].set_string_value(user);
  (*e.mutable_fields())["ts"].set_timestamp_micros_value(NowMicros());
  if (template_name == "txn") (*e.mutable_fields())["amount"].set_int64_value(5);
  return e;
}

// The caller's view of odsd: one TLS channel, stubs, and one call per method with a given key.
class Client {
 public:
  explicit Client(std::shared_ptr<grpc::Channel> channel)
      : store_(v1::Store::NewStub(channel)),
        features_(v1::Features::NewStub(channel)),
        functions_(v1::Functions::NewStub(channel)),
        admin_(v1::Admin::NewStub(channel)),
        health_(grpc::health::v1::Health::NewStub(channel)) {}

  grpc::Status Get(const std::string& key, const std::string& table) {
    v1::GetRequest req;
    req.set_table(table);
    req.add_keys("k1");
    v1::GetResponse resp;
    return store_->Get(Context(key).get(), req, &resp);
  }
  grpc::Status Put(const std::string& key, const std::string& table) {
    v1::PutRequest req;
    req.set_table(table);
    v1::Record* r = req.add_records();
    r->set_key("k1");
    if (table == "user_profile") (*r->mutable_fields())["age"].set_int64_value(7);
    v1::PutResponse resp;
    return store_->Put(Context(key).get(), req, &resp);
  }
  grpc::Status Delete(const std::string& key, const std::string& table) {
    v1::DeleteRequest req;
    req.set_table(table);
    req.add_keys("k1");
    v1::DeleteResponse resp;
    return store_->Delete(Context(key).get(), req, &resp);
  }
  grpc::Status Scan(const std::string& key, const std::string& table) {
    v1::ScanRequest req;
    req.set_table(table);
    auto ctx = Context(key);
    auto reader = store_->Scan(ctx.get(), req);
    v1::ScanResponse page;
    while (reader->Read(&page)) {
    }
    return reader->Finish();
  }
  grpc::Status Push(const std::string& key, const std::string& template_name) {
    v1::PushEventsRequest req;
    *req.add_events() = Event(template_name, "u1");
    v1::PushEventsResponse resp;
    grpc::Status s = features_->PushEvents(Context(key).get(), req, &resp);
    if (s.ok()) {
      EXPECT_EQ(resp.applied(), 1u) << resp.DebugString();
    }
    return s;
  }
  grpc::Status Stream(const std::string& key, const std::string& template_name) {
    auto ctx = Context(key);
    v1::PushEventsResponse resp;
    auto writer = features_->StreamEvents(ctx.get(), &resp);
    v1::PushEventsRequest req;
    *req.add_events() = Event(template_name, "u1");
    writer->Write(req);
    writer->WritesDone();
    return writer->Finish();
  }
  grpc::Status Online(const std::string& key, const std::string& feature) {
    v1::GetOnlineFeaturesRequest req;
    req.add_entities("u1");
    req.add_features(feature);
    v1::FeaturesResponse resp;
    return features_->GetOnlineFeatures(Context(key).get(), req, &resp);
  }
  grpc::Status Historical(const std::string& key, const std::string& feature) {
    v1::GetHistoricalFeaturesRequest req;
    v1::EntityRow* row = req.add_rows();
    row->set_entity("u1");
    row->set_timestamp_micros(NowMicros());
    req.add_features(feature);
    v1::FeaturesResponse resp;
    return features_->GetHistoricalFeatures(Context(key).get(), req, &resp);
  }
  grpc::Status Execute(const std::string& key, const std::string& table) {
    v1::ExecuteRequest req;
    req.set_function("bump");
    req.set_table(table);
    req.add_keys("k1");
    v1::ExecuteResponse resp;
    return functions_->Execute(Context(key).get(), req, &resp);
  }
  grpc::Status Apply(const std::string& key) {
    v1::ApplyDefinitionsRequest req;
    req.set_yaml("event_templates:\n  views: {key: user_id, timestamp: ts}\n");
    v1::ApplyDefinitionsResponse resp;
    return admin_->ApplyDefinitions(Context(key).get(), req, &resp);
  }
  grpc::Status Register(const std::string& key) {
    v1::RegisterFunctionRequest req;
    req.set_name("other");
    req.set_kind("procedure");
    req.set_source("function execute() return 1 end");
    v1::RegisterFunctionResponse resp;
    return admin_->RegisterFunction(Context(key).get(), req, &resp);
  }
  grpc::Status ListDefinitions(const std::string& key) {
    v1::ListDefinitionsRequest req;
    v1::ListDefinitionsResponse resp;
    return admin_->ListDefinitions(Context(key).get(), req, &resp);
  }
  grpc::Status Health() {
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    return health_->Check(Context("").get(), req, &resp);
  }
  v1::Store::Stub& store() { return *store_; }

 private:
  std::unique_ptr<v1::Store::Stub> store_;
  std::unique_ptr<v1::Features::Stub> features_;
  std::unique_ptr<v1::Functions::Stub> functions_;
  std::unique_ptr<v1::Admin::Stub> admin_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

MATCHER_P(HasCode, code, "has gRPC code " + std::to_string(static_cast<int>(code))) {
  *result_listener << "status is " << static_cast<int>(arg.error_code()) << ": "
                   << arg.error_message();
  return arg.error_code() == code;
}

MATCHER(Ok, "is OK") {
  *result_listener << "status is " << static_cast<int>(arg.error_code()) << ": "
                   << arg.error_message();
  return arg.ok();
}

// odsd with TLS (no client certificates) and API keys.
class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(MakeTlsFiles(dir_.path(), tls_, error)) << error;
    const std::string config = dir_.path() + "/odsd.yaml";
    WriteFileText(config, Config(dir_.path(), tls_));
    ASSERT_TRUE(odsd_.Start({"--config", config})) << odsd_.error();
    client_ = std::make_unique<Client>(TlsChannel(odsd_.grpc_address(), tls_.ca_cert));
  }
  void TearDown() override {
    client_.reset();
    if (odsd_.pid() > 0) {
      EXPECT_EQ(odsd_.Stop(SIGTERM, 10000), 0) << odsd_.Stderr();
    }
  }

  TempDir dir_;
  TlsFiles tls_;
  OdsdProcess odsd_;
  std::unique_ptr<Client> client_;
};

TEST_F(SecurityTest, TlsClientTrustingTheCaIsServed) {
  EXPECT_THAT(client_->Get(kReaderKey, "user_profile"), Ok());
}

TEST_F(SecurityTest, PlaintextClientToTlsServerFails) {
  Client plain(grpc::CreateChannel(odsd_.grpc_address(), grpc::InsecureChannelCredentials()));
  EXPECT_THAT(plain.Get(kReaderKey, "user_profile"), HasCode(grpc::StatusCode::UNAVAILABLE));
}

TEST_F(SecurityTest, ClientTrustingAnotherCaFails) {
  Client wrong_ca(TlsChannel(odsd_.grpc_address(), tls_.other_ca_cert));
  EXPECT_THAT(wrong_ca.Get(kReaderKey, "user_profile"), HasCode(grpc::StatusCode::UNAVAILABLE));
}

TEST_F(SecurityTest, CallWithoutKeyIsUnauthenticated) {
  const grpc::Status s = client_->Get("", "user_profile");
  EXPECT_THAT(s, HasCode(grpc::StatusCode::UNAUTHENTICATED));
  EXPECT_THAT(s.error_message(), AllOf(HasSubstr("ods.v1.Store/Get"), HasSubstr("no API key")));
}

TEST_F(SecurityTest, UnknownKeyIsUnauthenticated) {
  const grpc::Status s = client_->Get(kWrongKey, "user_profile");
  EXPECT_THAT(s, HasCode(grpc::StatusCode::UNAUTHENTICATED));
  EXPECT_THAT(s.error_message(), HasSubstr("unknown API key"));
  EXPECT_THAT(s.error_message(), Not(HasSubstr(kWrongKey)));
  EXPECT_THAT(HttpGet(odsd_.admin_address(), "/metrics"),
              HasSubstr("ods_auth_unauthenticated_total 1"));
}

TEST_F(SecurityTest, AuthorizationThatIsNotBearerIsUnauthenticated) {
  v1::GetRequest req;
  req.set_table("user_profile");
  req.add_keys("k1");
  v1::GetResponse resp;
  auto ctx = Context("");
  ctx->AddMetadata("authorization", std::string("Basic ") + kReaderKey);
  EXPECT_THAT(client_->store().Get(ctx.get(), req, &resp),
              HasCode(grpc::StatusCode::UNAUTHENTICATED));
}

TEST_F(SecurityTest, KeyInXApiKeyMetadataIsAccepted) {
  v1::GetRequest req;
  req.set_table("user_profile");
  req.add_keys("k1");
  v1::GetResponse resp;
  auto ctx = Context("");
  ctx->AddMetadata("x-api-key", kReaderKey);
  EXPECT_THAT(client_->store().Get(ctx.get(), req, &resp), Ok());
}

TEST_F(SecurityTest, RawFeatureLookupsNeedAKey) {
  EXPECT_THAT(client_->Online("", "txn_count"), HasCode(grpc::StatusCode::UNAUTHENTICATED));
  EXPECT_THAT(client_->Historical("", "txn_count"), HasCode(grpc::StatusCode::UNAUTHENTICATED));
  EXPECT_THAT(client_->Online(kWrongKey, "txn_count"), HasCode(grpc::StatusCode::UNAUTHENTICATED));
}

TEST_F(SecurityTest, EveryMethodNeedsAKey) {
  const auto unauthenticated = HasCode(grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(client_->Put("", "user_profile"), unauthenticated);
  EXPECT_THAT(client_->Delete("", "user_profile"), unauthenticated);
  EXPECT_THAT(client_->Scan("", "user_profile"), unauthenticated);
  EXPECT_THAT(client_->Push("", "txn"), unauthenticated);
  EXPECT_THAT(client_->Stream("", "txn"), unauthenticated);
  EXPECT_THAT(client_->Execute("", "user_profile"), unauthenticated);
  EXPECT_THAT(client_->Apply(""), unauthenticated);
  EXPECT_THAT(client_->Register(""), unauthenticated);
  EXPECT_THAT(client_->ListDefinitions(""), unauthenticated);
}

TEST_F(SecurityTest, HealthStaysOpenWithoutAKey) { EXPECT_THAT(client_->Health(), Ok()); }

TEST_F(SecurityTest, ReflectionStaysOpenWithoutAKey) {
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(
      TlsChannel(odsd_.grpc_address(), tls_.ca_cert));
  auto ctx = Context("");
  auto stream = stub->ServerReflectionInfo(ctx.get());
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_list_services("");
  ASSERT_TRUE(stream->Write(req));
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  stream->WritesDone();
  EXPECT_THAT(stream->Finish(), Ok());
  bool store_listed = false;
  for (const auto& service : resp.list_services_response().service()) {
    store_listed = store_listed || service.name() == "ods.v1.Store";
  }
  EXPECT_TRUE(store_listed);
}

TEST_F(SecurityTest, ReadKeyReadsRecordsAndFeatures) {
  EXPECT_THAT(client_->Get(kReaderKey, "orders"), Ok());
  EXPECT_THAT(client_->Scan(kReaderKey, "orders"), Ok());
  EXPECT_THAT(client_->Online(kReaderKey, "txn_count"), Ok());
  EXPECT_THAT(client_->Online(kReaderKey, "user_profile:age"), Ok());
  EXPECT_THAT(client_->Historical(kReaderKey, "click_count"), Ok());
  EXPECT_THAT(client_->ListDefinitions(kReaderKey), Ok());
}

TEST_F(SecurityTest, ReadKeyIsDeniedWritesNamingMethodKeyAndRole) {
  const grpc::Status put = client_->Put(kReaderKey, "user_profile");
  EXPECT_THAT(put, HasCode(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_EQ(put.error_message(),
            "ods.v1.Store/Put needs role write; API key 'reader' has role read");
  const auto denied = HasCode(grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(client_->Delete(kReaderKey, "user_profile"), denied);
  EXPECT_THAT(client_->Push(kReaderKey, "txn"), denied);
  EXPECT_THAT(client_->Stream(kReaderKey, "txn"), denied);
  EXPECT_THAT(client_->Execute(kReaderKey, "user_profile"), denied);
  EXPECT_THAT(client_->Apply(kReaderKey), denied);
}

TEST_F(SecurityTest, WriteKeyFromAKeyFileWritesButCannotAdminister) {
  EXPECT_THAT(client_->Put(kWriterKey, "user_profile"), Ok());
  EXPECT_THAT(client_->Get(kWriterKey, "user_profile"), Ok());
  EXPECT_THAT(client_->Delete(kWriterKey, "user_profile"), Ok());
  EXPECT_THAT(client_->Push(kWriterKey, "clicks"), Ok());
  EXPECT_THAT(client_->Stream(kWriterKey, "txn"), Ok());
  EXPECT_THAT(client_->Execute(kWriterKey, "orders"), Ok());
  const grpc::Status apply = client_->Apply(kWriterKey);
  EXPECT_THAT(apply, HasCode(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_EQ(apply.error_message(),
            "ods.v1.Admin/ApplyDefinitions needs role admin; API key 'writer' has role write");
  EXPECT_THAT(client_->Register(kWriterKey), HasCode(grpc::StatusCode::PERMISSION_DENIED));
}

TEST_F(SecurityTest, AdminKeyMayCallEveryMethod) {
  EXPECT_THAT(client_->Apply(kAdminKey), Ok());
  EXPECT_THAT(client_->Register(kAdminKey), Ok());
  EXPECT_THAT(client_->Put(kAdminKey, "orders"), Ok());
  EXPECT_THAT(client_->Get(kAdminKey, "orders"), Ok());
  EXPECT_THAT(client_->Push(kAdminKey, "txn"), Ok());
  EXPECT_THAT(client_->Online(kAdminKey, "click_count"), Ok());
  EXPECT_THAT(client_->Execute(kAdminKey, "user_profile"), Ok());
}

TEST_F(SecurityTest, TableScopedKeyUsesItsTables) {
  EXPECT_THAT(client_->Put(kScopedKey, "user_profile"), Ok());
  EXPECT_THAT(client_->Get(kScopedKey, "user_profile"), Ok());
  EXPECT_THAT(client_->Scan(kScopedKey, "user_profile"), Ok());
  EXPECT_THAT(client_->Execute(kScopedKey, "user_profile"), Ok());
  EXPECT_THAT(client_->Push(kScopedKey, "txn"), Ok());
  EXPECT_THAT(client_->Stream(kScopedKey, "txn"), Ok());
  EXPECT_THAT(client_->Online(kScopedKey, "txn_count"), Ok());
  EXPECT_THAT(client_->Online(kScopedKey, "user_profile:age"), Ok());
  EXPECT_THAT(client_->Historical(kScopedKey, "txn_count@1h"), Ok());
}

TEST_F(SecurityTest, TableScopedKeyIsDeniedAnotherTableNamingMethodKeyAndTable) {
  const grpc::Status get = client_->Get(kScopedKey, "orders");
  EXPECT_THAT(get, HasCode(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_EQ(get.error_message(),
            "ods.v1.Store/Get: API key 'scoped' may not use table or template 'orders'; it is "
            "restricted to: user_profile, txn");
  const auto denied = HasCode(grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(client_->Put(kScopedKey, "orders"), denied);
  EXPECT_THAT(client_->Delete(kScopedKey, "orders"), denied);
  EXPECT_THAT(client_->Scan(kScopedKey, "orders"), denied);
  EXPECT_THAT(client_->Execute(kScopedKey, "orders"), denied);
}

TEST_F(SecurityTest, TableScopedKeyIsDeniedFeaturesOfOtherTemplatesAndTables) {
  const grpc::Status online = client_->Online(kScopedKey, "click_count");
  EXPECT_THAT(online, HasCode(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_THAT(online.error_message(), AllOf(HasSubstr("ods.v1.Features/GetOnlineFeatures"),
                                            HasSubstr("'scoped'"), HasSubstr("'clicks'")));
  const auto denied = HasCode(grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(client_->Online(kScopedKey, "orders:total"), denied);
  EXPECT_THAT(client_->Historical(kScopedKey, "click_count"), denied);
  // An unknown feature is answered as for any key, naming it.
  EXPECT_THAT(client_->Online(kScopedKey, "no_such_feature"),
              HasCode(grpc::StatusCode::INVALID_ARGUMENT));
}

TEST_F(SecurityTest, TableScopedKeyIsDeniedEventsOfOtherTemplates) {
  const grpc::Status push = client_->Push(kScopedKey, "clicks");
  EXPECT_THAT(push, HasCode(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_THAT(push.error_message(),
              AllOf(HasSubstr("ods.v1.Features/PushEvents"), HasSubstr("'clicks'")));
  EXPECT_THAT(client_->Stream(kScopedKey, "clicks"), HasCode(grpc::StatusCode::PERMISSION_DENIED));
}

TEST_F(SecurityTest, TableScopedKeyIsDeniedNodeWideAdminMethods) {
  const grpc::Status list = client_->ListDefinitions(kScopedKey);
  EXPECT_THAT(list, HasCode(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_THAT(list.error_message(), HasSubstr("acts on the whole node"));
}

TEST_F(SecurityTest, KeysNeverAppearInTheLog) {
  for (const char* key : {kReaderKey, kWriterKey, kAdminKey, kScopedKey, kWrongKey}) {
    client_->Get(key, "user_profile").ok();
    client_->Put(key, "orders").ok();
    client_->Online(key, "click_count").ok();
    client_->Apply(key).ok();
  }
  ASSERT_EQ(odsd_.Stop(SIGTERM, 10000), 0);
  const std::string log = odsd_.Stderr();
  EXPECT_THAT(log, HasSubstr("4 API keys"));  // the log is there, at debug level
  for (const char* key : {kReaderKey, kWriterKey, kAdminKey, kScopedKey, kWrongKey}) {
    EXPECT_THAT(log, Not(HasSubstr(key)));
    EXPECT_THAT(log, Not(HasSubstr(Hex(Sha256(key)))));
  }
}

// odsd requiring client certificates signed by the test CA (mutual TLS), keys off.
class MutualTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(MakeTlsFiles(dir_.path(), tls_, error)) << error;
    const std::string config = dir_.path() + "/odsd.yaml";
    WriteFileText(config, "server:\n  tls: {cert: " + tls_.server_cert +
                              ", key: " + tls_.server_key + ", client_ca: " + tls_.ca_cert +
                              ", require_client_cert: true}\n"
                              "tables: {user_profile: {key: user_id}}\n");
    ASSERT_TRUE(odsd_.Start({"--config", config})) << odsd_.error();
  }
  void TearDown() override { EXPECT_EQ(odsd_.Stop(SIGTERM, 10000), 0) << odsd_.Stderr(); }

  TempDir dir_;
  TlsFiles tls_;
  OdsdProcess odsd_;
};

TEST_F(MutualTlsTest, ClientWithoutCertificateIsRefused) {
  Client client(TlsChannel(odsd_.grpc_address(), tls_.ca_cert));
  EXPECT_THAT(client.Get("", "user_profile"), HasCode(grpc::StatusCode::UNAVAILABLE));
}

TEST_F(MutualTlsTest, ClientWithCertificateOfTheCaIsServed) {
  Client client(TlsChannel(odsd_.grpc_address(), tls_.ca_cert, tls_.client_cert, tls_.client_key));
  EXPECT_THAT(client.Get("", "user_profile"), Ok());
}

TEST_F(MutualTlsTest, ClientCertificateOfAnotherCaIsRefused) {
  Client client(TlsChannel(odsd_.grpc_address(), tls_.ca_cert, tls_.other_ca_cert, tls_.other_key));
  EXPECT_THAT(client.Get("", "user_profile"), HasCode(grpc::StatusCode::UNAVAILABLE));
}

}  // namespace
}  // namespace ods
