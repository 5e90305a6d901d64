// ods.v1.Store against a real odsd process over gRPC: behaviour, limits and bad input.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <string>

#include "ods/v1/store.grpc.pb.h"
#include "support/odsd_process.h"

namespace ods {
namespace {

using ::ods::testing::OdsdProcess;
using ::ods::testing::TempDir;

constexpr char kConfig[] = R"(
server: {shards: 8}
logging: {level: warn}
limits: {max_key_bytes: 64, max_record_bytes: 1KiB, max_batch_size: 100, max_message_bytes: 64KiB}
tables:
  profile:
    key: user_id
    fields: {age: int64, country: string, score: double, premium: bool, emb: float_vector,
             signup: timestamp, avatar: bytes}
  features:
    key: user_id
)";

class StoreServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string path = dir_->path() + "/odsd.yaml";
    std::ofstream(path) << kConfig;
    odsd_ = new OdsdProcess();
    ASSERT_TRUE(odsd_->Start({"--config", path})) << odsd_->error();
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(odsd_->Stop(SIGTERM, 5000), 0) << odsd_->Stderr();
    delete odsd_;
    delete dir_;
  }

  void SetUp() override {
    ASSERT_NE(odsd_, nullptr);
    stub_ = v1::Store::NewStub(
        grpc::CreateChannel(odsd_->grpc_address(), grpc::InsecureChannelCredentials()));
  }

  static v1::Value Int(int64_t v) {
    v1::Value x;
    x.set_int64_value(v);
    return x;
  }
  static v1::Value Str(const std::string& v) {
    v1::Value x;
    x.set_string_value(v);
    return x;
  }

  grpc::Status Put(const v1::PutRequest& req, v1::PutResponse* resp = nullptr) {
    grpc::ClientContext ctx;
    v1::PutResponse ignored;
    return stub_->Put(&ctx, req, resp != nullptr ? resp : &ignored);
  }
  grpc::Status Get(const std::string& table, const std::vector<std::string>& keys,
                   v1::GetResponse* resp, const std::vector<std::string>& fields = {}) {
    v1::GetRequest req;
    req.set_table(table);
    for (const auto& k : keys) req.add_keys(k);
    for (const auto& f : fields) req.add_fields(f);
    grpc::ClientContext ctx;
    return stub_->Get(&ctx, req, resp);
  }
  // Reads a whole scan; returns its keys in order.
  grpc::Status Scan(const v1::ScanRequest& req, std::vector<std::string>* keys,
                    int* pages = nullptr) {
    grpc::ClientContext ctx;
    auto reader = stub_->Scan(&ctx, req);
    v1::ScanResponse page;
    int n = 0;
    while (reader->Read(&page)) {
      ++n;
      for (const auto& r : page.records()) keys->push_back(r.key());
    }
    if (pages != nullptr) *pages = n;
    return reader->Finish();
  }
  static v1::PutRequest OneRecord(const std::string& table, const std::string& key,
                                  const std::string& field, const v1::Value& value) {
    v1::PutRequest req;
    req.set_table(table);
    v1::Record* r = req.add_records();
    r->set_key(key);
    (*r->mutable_fields())[field] = value;
    return req;
  }
  bool Exists(const std::string& table, const std::string& key) {
    v1::GetResponse resp;
    EXPECT_TRUE(Get(table, {key}, &resp).ok());
    return resp.results_size() == 1 && resp.results(0).found();
  }

  static TempDir* dir_;
  static OdsdProcess* odsd_;
  std::unique_ptr<v1::Store::Stub> stub_;
};

TempDir* StoreServiceTest::dir_ = nullptr;
OdsdProcess* StoreServiceTest::odsd_ = nullptr;

TEST_F(StoreServiceTest, PutThenGetReturnsEveryTypedValue) {
  v1::PutRequest req;
  req.set_table("profile");
  v1::Record* r = req.add_records();
  r->set_key("u1");
  r->set_event_time_micros(1234);
  auto& f = *r->mutable_fields();
  f["age"] = Int(42);
  f["country"] = Str("NZ");
  f["score"].set_double_value(0.75);
  f["premium"].set_bool_value(true);
  f["emb"].mutable_float_vector_value()->add_values(0.5f);
  f["emb"].mutable_float_vector_value()->add_values(-1.25f);
  f["signup"].set_timestamp_micros_value(1'700'000'000'000'000);
  f["avatar"].set_bytes_value(std::string("\0\x01\xff", 3));
  v1::PutResponse put;
  ASSERT_TRUE(Put(req, &put).ok());
  ASSERT_EQ(put.versions_size(), 1);
  EXPECT_GT(put.versions(0), 0u);

  v1::GetResponse resp;
  ASSERT_TRUE(Get("profile", {"u1", "nobody"}, &resp).ok());
  ASSERT_EQ(resp.results_size(), 2);
  const v1::GetResult& hit = resp.results(0);
  EXPECT_TRUE(hit.found());
  EXPECT_EQ(hit.key(), "u1");
  EXPECT_EQ(hit.record().version(), put.versions(0));
  EXPECT_EQ(hit.record().event_time_micros(), 1234);
  const auto& got = hit.record().fields();
  EXPECT_EQ(got.at("age").int64_value(), 42);
  EXPECT_EQ(got.at("country").string_value(), "NZ");
  EXPECT_EQ(got.at("score").double_value(), 0.75);
  EXPECT_TRUE(got.at("premium").bool_value());
  ASSERT_EQ(got.at("emb").float_vector_value().values_size(), 2);
  EXPECT_EQ(got.at("emb").float_vector_value().values(1), -1.25f);
  EXPECT_EQ(got.at("signup").timestamp_micros_value(), 1'700'000'000'000'000);
  EXPECT_EQ(got.at("avatar").bytes_value(), std::string("\0\x01\xff", 3));
  EXPECT_FALSE(resp.results(1).found());
  EXPECT_EQ(resp.results(1).key(), "nobody");
}

TEST_F(StoreServiceTest, OverwriteReplacesRecordAndRaisesVersion) {
  v1::PutResponse first;
  v1::PutResponse second;
  ASSERT_TRUE(Put(OneRecord("features", "ow", "a", Int(1)), &first).ok());
  ASSERT_TRUE(Put(OneRecord("features", "ow", "b", Int(2)), &second).ok());
  EXPECT_GT(second.versions(0), first.versions(0));
  v1::GetResponse resp;
  ASSERT_TRUE(Get("features", {"ow"}, &resp).ok());
  EXPECT_EQ(resp.results(0).record().fields().count("a"), 0u);
  EXPECT_EQ(resp.results(0).record().fields().at("b").int64_value(), 2);
}

TEST_F(StoreServiceTest, FreeFormTableAcceptsNewFieldsOnTheFly) {
  ASSERT_TRUE(Put(OneRecord("features", "ff", "clicks_7d", Int(5))).ok());
  ASSERT_TRUE(Put(OneRecord("features", "ff2", "brand_new_feature", Str("x"))).ok());
  v1::GetResponse resp;
  ASSERT_TRUE(Get("features", {"ff2"}, &resp).ok());
  EXPECT_EQ(resp.results(0).record().fields().at("brand_new_feature").string_value(), "x");
}

TEST_F(StoreServiceTest, GetWithFieldsReturnsOnlyThoseFields) {
  v1::PutRequest req = OneRecord("profile", "proj", "age", Int(30));
  (*req.mutable_records(0)->mutable_fields())["country"] = Str("DE");
  ASSERT_TRUE(Put(req).ok());
  v1::GetResponse resp;
  ASSERT_TRUE(Get("profile", {"proj"}, &resp, {"country"}).ok());
  const auto& fields = resp.results(0).record().fields();
  EXPECT_EQ(fields.size(), 1u);
  EXPECT_EQ(fields.at("country").string_value(), "DE");
}

TEST_F(StoreServiceTest, DeleteRemovesAndReportsPerKey) {
  ASSERT_TRUE(Put(OneRecord("features", "del1", "a", Int(1))).ok());
  v1::DeleteRequest req;
  req.set_table("features");
  req.add_keys("del1");
  req.add_keys("never-there");
  v1::DeleteResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Delete(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.deleted_size(), 2);
  EXPECT_TRUE(resp.deleted(0));
  EXPECT_FALSE(resp.deleted(1));
  EXPECT_EQ(resp.deleted_count(), 1u);
  EXPECT_FALSE(Exists("features", "del1"));
}

TEST_F(StoreServiceTest, ScanStreamsPrefixInKeyOrderAcrossPagesWithLimitAndResume) {
  // 300 records over several Puts (max_batch_size is 100) spill into more than one page (256).
  for (int batch = 0; batch < 3; ++batch) {
    v1::PutRequest req;
    req.set_table("features");
    for (int i = 0; i < 100; ++i) {
      v1::Record* r = req.add_records();
      char key[32];
      std::snprintf(key, sizeof key, "scan:%04d", batch * 100 + i);
      r->set_key(key);
      (*r->mutable_fields())["n"] = Int(batch * 100 + i);
    }
    ASSERT_TRUE(Put(req).ok());
  }
  ASSERT_TRUE(Put(OneRecord("features", "scanx", "n", Int(0))).ok());

  v1::ScanRequest req;
  req.set_table("features");
  req.set_prefix("scan:");
  req.set_limit(100);
  std::vector<std::string> keys;
  ASSERT_TRUE(Scan(req, &keys).ok());
  ASSERT_EQ(keys.size(), 100u);
  EXPECT_EQ(keys.front(), "scan:0000");
  EXPECT_EQ(keys.back(), "scan:0099");
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));

  req.set_start_after(keys.back());
  req.set_limit(0);  // the server maximum (100 here)
  std::vector<std::string> rest;
  ASSERT_TRUE(Scan(req, &rest).ok());
  ASSERT_EQ(rest.size(), 100u);
  EXPECT_EQ(rest.front(), "scan:0100");
}

TEST_F(StoreServiceTest, ScanOverTheLimitIsInvalidArgument) {
  v1::ScanRequest req;
  req.set_table("features");
  req.set_limit(101);
  std::vector<std::string> keys;
  grpc::Status s = Scan(req, &keys);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("max_batch_size"), std::string::npos) << s.error_message();
}

TEST_F(StoreServiceTest, UnknownTableIsNotFoundNamingTheTable) {
  grpc::Status s = Put(OneRecord("no_such_table", "k", "a", Int(1)));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("no_such_table"), std::string::npos);
  v1::GetResponse resp;
  EXPECT_EQ(Get("no_such_table", {"k"}, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(StoreServiceTest, MissingTableNameIsInvalidArgument) {
  v1::GetResponse resp;
  EXPECT_EQ(Get("", {"k"}, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(StoreServiceTest, UnknownFieldOnTypedTableIsRejectedNamingTableKeyAndField) {
  grpc::Status s = Put(OneRecord("profile", "bad1", "shoe_size", Int(44)));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("profile"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("bad1"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("shoe_size"), std::string::npos) << s.error_message();
  EXPECT_FALSE(Exists("profile", "bad1"));
}

TEST_F(StoreServiceTest, WrongTypeOnTypedTableIsRejectedNamingBothTypes) {
  grpc::Status s = Put(OneRecord("profile", "bad2", "age", Str("forty")));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("age"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("string"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("int64"), std::string::npos) << s.error_message();
}

TEST_F(StoreServiceTest, ValueWithNoTypeSetIsInvalidArgument) {
  grpc::Status s = Put(OneRecord("features", "unset", "a", v1::Value()));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("'a'"), std::string::npos) << s.error_message();
}

TEST_F(StoreServiceTest, RejectedBatchChangesNothing) {
  v1::PutRequest req;
  req.set_table("profile");
  for (int i = 0; i < 5; ++i) {
    v1::Record* r = req.add_records();
    r->set_key("atomic" + std::to_string(i));
    (*r->mutable_fields())["age"] = Int(i);
  }
  (*req.mutable_records(4)->mutable_fields())["age"] = Str("not a number");
  EXPECT_EQ(Put(req).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(Exists("profile", "atomic" + std::to_string(i)));
}

TEST_F(StoreServiceTest, EmptyKeyIsInvalidArgument) {
  EXPECT_EQ(Put(OneRecord("features", "", "a", Int(1))).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(StoreServiceTest, KeyOverMaxKeyBytesIsInvalidArgumentNamingTheLimit) {
  const std::string key(65, 'k');
  grpc::Status s = Put(OneRecord("features", key, "a", Int(1)));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("max_key_bytes"), std::string::npos) << s.error_message();
  v1::GetResponse resp;
  EXPECT_EQ(Get("features", {key}, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(StoreServiceTest, RecordOverMaxRecordBytesIsInvalidArgument) {
  grpc::Status s = Put(OneRecord("features", "big", "blob", Str(std::string(2000, 'x'))));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("max_record_bytes"), std::string::npos) << s.error_message();
  EXPECT_FALSE(Exists("features", "big"));
}

TEST_F(StoreServiceTest, BatchOverMaxBatchSizeIsInvalidArgumentAndWritesNothing) {
  v1::PutRequest req;
  req.set_table("features");
  for (int i = 0; i < 101; ++i) {
    v1::Record* r = req.add_records();
    r->set_key("batch" + std::to_string(i));
    (*r->mutable_fields())["a"] = Int(i);
  }
  grpc::Status s = Put(req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("max_batch_size"), std::string::npos) << s.error_message();
  EXPECT_FALSE(Exists("features", "batch0"));
}

TEST_F(StoreServiceTest, MessageOverMaxMessageBytesIsResourceExhausted) {
  v1::PutRequest req;
  req.set_table("features");
  for (int i = 0; i < 90; ++i) {
    v1::Record* r = req.add_records();
    r->set_key("msg" + std::to_string(i));
    (*r->mutable_fields())["blob"] = Str(std::string(900, 'x'));  // ~81 KiB > 64 KiB
  }
  EXPECT_EQ(Put(req).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_FALSE(Exists("features", "msg0"));
}

TEST_F(StoreServiceTest, ProjectingAnUndeclaredFieldOfTypedTableIsInvalidArgument) {
  v1::GetResponse resp;
  grpc::Status s = Get("profile", {"u1"}, &resp, {"shoe_size"});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("shoe_size"), std::string::npos) << s.error_message();
}

TEST_F(StoreServiceTest, GetWhoseAnswerExceedsMaxMessageBytesIsResourceExhausted) {
  for (int batch = 0; batch < 2; ++batch) {
    v1::PutRequest req;
    req.set_table("features");
    for (int i = 0; i < 50; ++i) {
      v1::Record* r = req.add_records();
      r->set_key("large:" + std::to_string(100 + batch * 50 + i));
      (*r->mutable_fields())["blob"] = Str(std::string(900, 'x'));
    }
    ASSERT_TRUE(Put(req).ok());
  }
  std::vector<std::string> keys;
  for (int i = 0; i < 100; ++i) keys.push_back("large:" + std::to_string(100 + i));
  v1::GetResponse resp;
  grpc::Status s = Get("features", keys, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("max_message_bytes"), std::string::npos) << s.error_message();
  // The same key asked for 100 times is no way around the limit.
  std::vector<std::string> same(100, "large:100");
  EXPECT_EQ(Get("features", same, &resp).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Fewer keys fit.
  keys.resize(20);
  EXPECT_TRUE(Get("features", keys, &resp).ok());

  // A scan of the same records pages by bytes: every record arrives, in order, in >1 page.
  v1::ScanRequest scan;
  scan.set_table("features");
  scan.set_prefix("large:");
  std::vector<std::string> scanned;
  int pages = 0;
  ASSERT_TRUE(Scan(scan, &scanned, &pages).ok());
  EXPECT_EQ(scanned.size(), 100u);
  EXPECT_GE(pages, 2);
  EXPECT_TRUE(std::is_sorted(scanned.begin(), scanned.end()));
}

TEST_F(StoreServiceTest, HugeTableNameIsNotFoundWithAShortMessage) {
  v1::GetResponse resp;
  grpc::Status s = Get(std::string(20000, 't'), {"k"}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_LT(s.error_message().size(), 300u);
}

TEST_F(StoreServiceTest, HugeFieldNameIsInvalidArgumentWithAShortMessage) {
  grpc::Status s = Put(OneRecord("features", "k", std::string(5000, 'f'), Int(1)));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_LT(s.error_message().size(), 400u);
}

TEST_F(StoreServiceTest, ScanProjectingAnUndeclaredFieldIsInvalidArgumentEvenWhenNothingMatches) {
  v1::ScanRequest req;
  req.set_table("profile");
  req.set_prefix("no-such-prefix");
  req.add_fields("shoe_size");
  std::vector<std::string> keys;
  EXPECT_EQ(Scan(req, &keys).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(StoreServiceTest, NanIsRejected) {
  v1::Value nan;
  nan.set_double_value(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(Put(OneRecord("profile", "nan", "score", nan)).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace ods
