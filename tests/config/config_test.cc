#include "ods/config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/units.h"
#include "support/test_util.h"

namespace ods::config {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr Micros kDay = Micros{86'400} * 1'000'000;

// The error message of loading `yaml` as "test.yaml"; fails the test if it loads.
std::string LoadError(std::string_view yaml) {
  Result<Config> r = LoadString(yaml, "test.yaml");
  EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  return r.ok() ? std::string() : r.status().message();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = text.find('\n', start);
    out.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

// A file under the test temp dir, removed when the test ends.
class TempFile {
 public:
  explicit TempFile(std::string_view contents)
      : path_(std::filesystem::path(::testing::TempDir()) /
              ("ods_config_test_" + std::to_string(::getpid()) + "_" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".yaml")) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << contents;
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// --- Defaults and the shipped files ----------------------------------------------------------

TEST(ConfigTest, EmptyDocumentGivesDefaults) {
  Result<Config> r = LoadString("", "test.yaml");
  ASSERT_THAT(r, IsOk());
  const Config defaults;
  EXPECT_EQ(r->source, "test.yaml");
  EXPECT_EQ(r->server.grpc_listen, defaults.server.grpc_listen);
  EXPECT_EQ(r->server.shards, defaults.server.shards);
  EXPECT_EQ(r->limits.max_record_bytes, defaults.limits.max_record_bytes);
  EXPECT_EQ(r->storage.ram_max_bytes, defaults.storage.ram_max_bytes);
  EXPECT_TRUE(r->tables.empty());
}

TEST(ConfigTest, EmbeddedDefaultLoadsAndIsValid) {
  ASSERT_FALSE(EmbeddedDefaultYaml().empty());
  Result<Config> r = LoadString(EmbeddedDefaultYaml(), "<embedded>");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->server.shards, 16u);
  EXPECT_EQ(r->server.grpc_listen, "127.0.0.1:7070");
  EXPECT_EQ(r->server.admin_listen, "127.0.0.1:9464");
  EXPECT_EQ(r->server.shutdown_grace_micros, 3'000'000);
  EXPECT_EQ(r->server.grpc_spill_after_micros, 1'000);
  EXPECT_EQ(r->limits.max_key_bytes, 1024u);
  EXPECT_EQ(r->limits.max_record_bytes, uint64_t{1} << 20);
  EXPECT_EQ(r->limits.max_batch_size, 10000u);
  EXPECT_EQ(r->limits.max_message_bytes, uint64_t{64} << 20);
  EXPECT_EQ(r->limits.max_concurrent_streams, 1000u);
  EXPECT_EQ(r->storage.ram_max_bytes, uint64_t{2} << 30);
  ASSERT_EQ(r->tables.size(), 2u);
  const TableConfig& profile = r->tables[0];
  EXPECT_EQ(profile.name, "user_profile");
  EXPECT_EQ(profile.key_field, "user_id");
  EXPECT_FALSE(profile.free_form);
  EXPECT_EQ(profile.ttl_micros, 90 * kDay);
  ASSERT_EQ(profile.fields.size(), 7u);
  EXPECT_EQ(profile.fields[0].name, "age");
  EXPECT_EQ(profile.fields[0].type, ValueType::kInt64);
  EXPECT_EQ(profile.fields[4].name, "embedding");
  EXPECT_EQ(profile.fields[4].type, ValueType::kFloatVector);
  const TableConfig& features = r->tables[1];
  EXPECT_EQ(features.name, "user_features");
  EXPECT_TRUE(features.free_form);
  EXPECT_TRUE(features.fields.empty());
  EXPECT_EQ(features.ttl_micros, 0);
}

TEST(ConfigTest, ShippedOdsdYamlLoadsAndMatchesTheEmbeddedDefault) {
  const std::string path = std::string(ODS_SOURCE_DIR) + "/config/odsd.yaml";
  Result<Config> file = LoadFile(path);
  ASSERT_THAT(file, IsOk());
  EXPECT_EQ(file->source, path);
  Result<Config> embedded = LoadString(EmbeddedDefaultYaml(), "<embedded>");
  ASSERT_THAT(embedded, IsOk());
  EXPECT_EQ(file->server.shards, embedded->server.shards);
  ASSERT_EQ(file->tables.size(), embedded->tables.size());
  for (size_t i = 0; i < file->tables.size(); ++i) {
    EXPECT_EQ(file->tables[i].name, embedded->tables[i].name);
    EXPECT_EQ(file->tables[i].fields.size(), embedded->tables[i].fields.size());
  }
}

TEST(ConfigTest, EveryKeyIsParsedIntoItsField) {
  Result<Config> r = LoadString(R"(server:
  grpc_listen: "0.0.0.0:0"
  admin_listen: ""
  shards: 3
  grpc_threads: 2
  grpc_spill_after: 250us
  shutdown_grace: 1500ms
logging: {level: debug, format: json}
limits: {max_key_bytes: 2KiB, max_record_bytes: 64KiB, max_batch_size: 7, max_message_bytes: 8MiB,
         max_concurrent_streams: 20}
storage:
  data_dir: /var/lib/ods
  ram: {max_bytes: 0, tile_cache_bytes: 1GiB}
tables:
  events:
    key: event_id
    fields: {ts: timestamp, payload: bytes, ok: bool}
    ttl: 1h30m
)",
                                "test.yaml");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->server.grpc_listen, "0.0.0.0:0");
  EXPECT_EQ(r->server.admin_listen, "");
  EXPECT_EQ(r->server.shards, 3u);
  EXPECT_EQ(r->server.grpc_threads, 2u);
  EXPECT_EQ(r->server.grpc_spill_after_micros, 250);
  EXPECT_EQ(r->server.shutdown_grace_micros, 1'500'000);
  EXPECT_EQ(r->logging.level, "debug");
  EXPECT_EQ(r->logging.format, "json");
  EXPECT_EQ(r->limits.max_key_bytes, 2048u);
  EXPECT_EQ(r->limits.max_record_bytes, 64u << 10);
  EXPECT_EQ(r->limits.max_batch_size, 7u);
  EXPECT_EQ(r->limits.max_message_bytes, uint64_t{8} << 20);
  EXPECT_EQ(r->limits.max_concurrent_streams, 20u);
  EXPECT_EQ(r->storage.data_dir, "/var/lib/ods");
  EXPECT_EQ(r->storage.ram_max_bytes, 0u);
  EXPECT_EQ(r->storage.tile_cache_bytes, uint64_t{1} << 30);
  ASSERT_EQ(r->tables.size(), 1u);
  const TableConfig& t = r->tables[0];
  EXPECT_EQ(t.name, "events");
  EXPECT_EQ(t.key_field, "event_id");
  EXPECT_FALSE(t.free_form);
  EXPECT_EQ(t.ttl_micros, Micros{5400} * 1'000'000);
  ASSERT_EQ(t.fields.size(), 3u);
  EXPECT_EQ(t.fields[0].name, "ts");
  EXPECT_EQ(t.fields[0].type, ValueType::kTimestamp);
  EXPECT_EQ(t.fields[1].name, "payload");
  EXPECT_EQ(t.fields[1].type, ValueType::kBytes);
  EXPECT_EQ(t.fields[2].name, "ok");
  EXPECT_EQ(t.fields[2].type, ValueType::kBool);
}

TEST(ConfigTest, TablesKeepFileOrder) {
  Result<Config> r = LoadString(R"(tables:
  zebra: {key: id}
  alpha: {key: id}
  mid: {key: id}
)",
                                "test.yaml");
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->tables.size(), 3u);
  EXPECT_EQ(r->tables[0].name, "zebra");
  EXPECT_EQ(r->tables[1].name, "alpha");
  EXPECT_EQ(r->tables[2].name, "mid");
}

// --- Errors: each names FILE:LINE:COLUMN: and the offending name ------------------------------

TEST(ConfigTest, UnknownTopLevelKeyIsRejectedWithItsPosition) {
  const std::string e = LoadError(R"(server:
  shards: 4
bogus: 1
)");
  EXPECT_THAT(e, StartsWith("test.yaml:3:1: "));
  EXPECT_THAT(e, HasSubstr("'bogus'"));
}

TEST(ConfigTest, UnknownNestedKeyIsRejectedWithItsPosition) {
  const std::string e = LoadError(R"(server:
  shards: 4
  bogus: 1
)");
  EXPECT_THAT(e, StartsWith("test.yaml:3:3: "));
  EXPECT_THAT(e, HasSubstr("'bogus'"));
  EXPECT_THAT(e, HasSubstr("server"));
}

TEST(ConfigTest, UnknownKeyInTableIsRejectedWithItsPosition) {
  const std::string e = LoadError(R"(tables:
  t:
    key: id
    tll: 1d
)");
  EXPECT_THAT(e, StartsWith("test.yaml:4:5: "));
  EXPECT_THAT(e, HasSubstr("'tll'"));
  EXPECT_THAT(e, HasSubstr("tables.t"));
}

TEST(ConfigTest, NonIntegerShardsIsRejectedWithItsPosition) {
  const std::string e = LoadError(R"(server:
  shards: abc
)");
  EXPECT_THAT(e, StartsWith("test.yaml:2:11: "));
  EXPECT_THAT(e, HasSubstr("server.shards"));
  EXPECT_THAT(e, HasSubstr("'abc'"));
}

TEST(ConfigTest, GrpcThreadsOutOfRangeIsRejectedWithItsPosition) {
  const std::string e = LoadError(R"(server:
  grpc_threads: 0
)");
  EXPECT_THAT(e, StartsWith("test.yaml:2:17: "));
  EXPECT_THAT(e, HasSubstr("server.grpc_threads"));
  EXPECT_THAT(e, HasSubstr("[1, 64]"));
}

TEST(ConfigTest, ListWhereIntegerExpectedIsRejectedWithItsPosition) {
  const std::string e = LoadError(R"(server:
  shards: [1]
)");
  EXPECT_THAT(e, StartsWith("test.yaml:2:11: "));
  EXPECT_THAT(e, HasSubstr("server.shards"));
}

TEST(ConfigTest, ScalarWhereSectionExpectedIsRejectedWithItsPosition) {
  const std::string e = LoadError("server: 5\n");
  EXPECT_THAT(e, StartsWith("test.yaml:1:9: "));
  EXPECT_THAT(e, HasSubstr("server"));
}

TEST(ConfigTest, ScalarTopLevelIsRejected) {
  const std::string e = LoadError("just a string\n");
  EXPECT_THAT(e, StartsWith("test.yaml:1:1: "));
}

TEST(ConfigTest, NegativeShardsIsRejected) {
  const std::string e = LoadError("server: {shards: -1}\n");
  EXPECT_THAT(e, StartsWith("test.yaml:1:18: "));
  EXPECT_THAT(e, HasSubstr("server.shards"));
}

TEST(ConfigTest, BadSizeIsRejectedWithItsPosition) {
  const std::string e = LoadError(R"(limits:
  max_record_bytes: 2XB
)");
  EXPECT_THAT(e, StartsWith("test.yaml:2:21: "));
  EXPECT_THAT(e, HasSubstr("limits.max_record_bytes"));
  EXPECT_THAT(e, HasSubstr("'2XB'"));
}

TEST(ConfigTest, ZeroMaxConcurrentStreamsIsRejectedWithItsPosition) {
  const std::string e = LoadError("limits:\n  max_concurrent_streams: 0\n");
  EXPECT_THAT(e, StartsWith("test.yaml:2:27: "));
  EXPECT_THAT(e, HasSubstr("limits.max_concurrent_streams"));
}

TEST(ConfigTest, SizeOutOfRangeIsRejectedWithItsPosition) {
  const std::string e = LoadError(R"(limits:
  max_key_bytes: 65KiB
)");
  EXPECT_THAT(e, StartsWith("test.yaml:2:18: "));
  EXPECT_THAT(e, HasSubstr("limits.max_key_bytes"));
}

TEST(ConfigTest, BadDurationIsRejectedWithItsPosition) {
  const std::string e = LoadError(R"(tables:
  t:
    key: id
    ttl: 90x
)");
  EXPECT_THAT(e, StartsWith("test.yaml:4:10: "));
  EXPECT_THAT(e, HasSubstr("tables.t.ttl"));
  EXPECT_THAT(e, HasSubstr("'90x'"));
}

TEST(ConfigTest, DurationOverItsMaximumIsRejected) {
  const std::string e = LoadError("server: {shutdown_grace: 61s}\n");
  EXPECT_THAT(e, StartsWith("test.yaml:1:26: "));
  EXPECT_THAT(e, HasSubstr("server.shutdown_grace"));
  const std::string spill = LoadError("server: {grpc_spill_after: 2s}\n");
  EXPECT_THAT(spill, StartsWith("test.yaml:1:28: "));
  EXPECT_THAT(spill, HasSubstr("server.grpc_spill_after"));
}

TEST(ConfigTest, UnknownFieldTypeIsRejectedWithItsPosition) {
  const std::string e = LoadError(R"(tables:
  t:
    key: id
    fields: {age: int}
)");
  EXPECT_THAT(e, StartsWith("test.yaml:4:19: "));
  EXPECT_THAT(e, HasSubstr("tables.t.fields.age"));
  EXPECT_THAT(e, HasSubstr("'int'"));
}

TEST(ConfigTest, DuplicateTableIsRejectedAtTheSecondOccurrence) {
  const std::string e = LoadError(R"(tables:
  t:
    key: id
  t:
    key: other_id
)");
  EXPECT_THAT(e, StartsWith("test.yaml:4:3: "));
  EXPECT_THAT(e, HasSubstr("duplicate"));
  EXPECT_THAT(e, HasSubstr("'t'"));
}

TEST(ConfigTest, DuplicateFieldIsRejectedAtTheSecondOccurrence) {
  const std::string e = LoadError(R"(tables:
  t:
    key: id
    fields:
      a: int64
      a: string
)");
  EXPECT_THAT(e, StartsWith("test.yaml:6:7: "));
  EXPECT_THAT(e, HasSubstr("'a'"));
}

TEST(ConfigTest, TableWithoutKeyIsRejectedAtTheTableName) {
  const std::string e = LoadError(R"(tables:
  t:
    fields: {a: int64}
)");
  EXPECT_THAT(e, StartsWith("test.yaml:2:3: "));
  EXPECT_THAT(e, HasSubstr("tables.t"));
  EXPECT_THAT(e, HasSubstr("'key'"));
}

TEST(ConfigTest, EmptyFieldsMapIsRejectedWithItsPosition) {
  const std::string e = LoadError(R"(tables:
  t:
    key: id
    fields: {}
)");
  EXPECT_THAT(e, StartsWith("test.yaml:4:13: "));
  EXPECT_THAT(e, HasSubstr("tables.t.fields"));
}

TEST(ConfigTest, FieldsAsListIsRejected) {
  const std::string e = LoadError(R"(tables:
  t:
    key: id
    fields: [a, b]
)");
  EXPECT_THAT(e, StartsWith("test.yaml:4:13: "));
  EXPECT_THAT(e, HasSubstr("tables.t.fields"));
}

TEST(ConfigTest, BadTableNameIsRejectedWithItsPosition) {
  const std::string e = LoadError(R"(tables:
  9lives:
    key: id
)");
  EXPECT_THAT(e, StartsWith("test.yaml:2:3: "));
  EXPECT_THAT(e, HasSubstr("'9lives'"));
}

TEST(ConfigTest, TableNameWithDashIsRejected) {
  const std::string e = LoadError("tables: {user-profile: {key: id}}\n");
  EXPECT_THAT(e, StartsWith("test.yaml:1:10: "));
  EXPECT_THAT(e, HasSubstr("'user-profile'"));
}

TEST(ConfigTest, OverlongTableNameIsRejected) {
  const std::string name(65, 'a');
  const std::string e = LoadError("tables:\n  " + name + ": {key: id}\n");
  EXPECT_THAT(e, StartsWith("test.yaml:2:3: "));
  EXPECT_THAT(e, HasSubstr(name));
  EXPECT_THAT(LoadString("tables:\n  " + std::string(64, 'a') + ": {key: id}\n", "test.yaml"),
              IsOk());
}

TEST(ConfigTest, BadFieldNameIsRejectedWithItsPosition) {
  const std::string e = LoadError(R"(tables:
  t:
    key: id
    fields: {"bad field": int64}
)");
  EXPECT_THAT(e, StartsWith("test.yaml:4:14: "));
  EXPECT_THAT(e, HasSubstr("'bad field'"));
}

TEST(ConfigTest, BadKeyFieldNameIsRejectedWithItsPosition) {
  const std::string e = LoadError(R"(tables:
  t:
    key: user.id
)");
  EXPECT_THAT(e, StartsWith("test.yaml:3:10: "));
  EXPECT_THAT(e, HasSubstr("'user.id'"));
}

TEST(ConfigTest, KeyFieldRedeclaredAmongFieldsIsRejected) {
  const std::string e = LoadError(R"(tables:
  t:
    key: id
    fields: {id: string, a: int64}
)");
  EXPECT_THAT(e, StartsWith("test.yaml:4:14: "));
  EXPECT_THAT(e, HasSubstr("tables.t.fields.id"));
}

TEST(ConfigTest, KeyFieldRedeclaredAmongFieldsIsRejectedWhateverTheKeyOrder) {
  const std::string e = LoadError(R"(tables:
  t:
    fields: {id: string, a: int64}
    key: id
)");
  EXPECT_THAT(e, StartsWith("test.yaml:3:14: "));
  EXPECT_THAT(e, HasSubstr("tables.t.fields.id"));
}

TEST(ConfigTest, ListenAddressWithoutPortIsRejectedWithItsPosition) {
  const std::string e = LoadError(R"(server:
  grpc_listen: "localhost"
)");
  EXPECT_THAT(e, StartsWith("test.yaml:2:16: "));
  EXPECT_THAT(e, HasSubstr("server.grpc_listen"));
  EXPECT_THAT(e, HasSubstr("'localhost'"));
}

TEST(ConfigTest, MalformedListenAddressesAreRejected) {
  for (const char* addr : {"127.0.0.1:", ":7070", "127.0.0.1:70700", "127.0.0.1:65536",
                           "127.0.0.1:http", "127.0.0.1:-1"}) {
    const std::string e = LoadError(std::string("server: {admin_listen: \"") + addr + "\"}\n");
    EXPECT_THAT(e, StartsWith("test.yaml:1:24: ")) << addr;
    EXPECT_THAT(e, HasSubstr(std::string("'") + addr + "'")) << addr;
  }
}

TEST(ConfigTest, EmptyAdminListenDisablesButEmptyGrpcListenIsRejected) {
  EXPECT_THAT(LoadString("server: {admin_listen: \"\"}\n", "test.yaml"), IsOk());
  const std::string e = LoadError("server: {grpc_listen: \"\"}\n");
  EXPECT_THAT(e, StartsWith("test.yaml:1:23: "));
  EXPECT_THAT(e, HasSubstr("server.grpc_listen"));
}

TEST(ConfigTest, Ipv6ListenAddressIsAccepted) {
  Result<Config> r = LoadString("server: {grpc_listen: \"[::1]:7070\"}\n", "test.yaml");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->server.grpc_listen, "[::1]:7070");
}

TEST(ConfigTest, ZeroShardsIsRejected) {
  const std::string e = LoadError("server:\n  shards: 0\n");
  EXPECT_THAT(e, StartsWith("test.yaml:2:11: "));
  EXPECT_THAT(e, HasSubstr("server.shards"));
  EXPECT_THAT(e, HasSubstr("[1, 1024]"));
}

TEST(ConfigTest, TooManyShardsIsRejected) {
  const std::string e = LoadError("server:\n  shards: 5000\n");
  EXPECT_THAT(e, StartsWith("test.yaml:2:11: "));
  EXPECT_THAT(e, HasSubstr("server.shards"));
  EXPECT_THAT(e, HasSubstr("'5000'"));
}

TEST(ConfigTest, ShardBoundsAreInclusive) {
  EXPECT_THAT(LoadString("server: {shards: 1}\n", "test.yaml"), IsOk());
  EXPECT_THAT(LoadString("server: {shards: 1024}\n", "test.yaml"), IsOk());
  EXPECT_THAT(LoadString("server: {shards: 1025}\n", "test.yaml"),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(ConfigTest, HugeIntegerIsRejectedNotWrapped) {
  const std::string e = LoadError("server: {shards: 18446744073709551617}\n");
  EXPECT_THAT(e, StartsWith("test.yaml:1:18: "));
  EXPECT_THAT(e, HasSubstr("server.shards"));
}

TEST(ConfigTest, UnknownLogLevelIsRejectedWithItsPosition) {
  const std::string e = LoadError("logging:\n  level: loud\n");
  EXPECT_THAT(e, StartsWith("test.yaml:2:10: "));
  EXPECT_THAT(e, HasSubstr("logging.level"));
  EXPECT_THAT(e, HasSubstr("'loud'"));
}

TEST(ConfigTest, DurabilityIsGlobalWithAPerTableOverride) {
  Result<Config> r = LoadString(R"(storage:
  durability: sync
  durability_window: 250ms
tables:
  a: {key: id}
  b: {key: id, durability: none}
  c: {key: id, durability: async}
)",
                                "test.yaml");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->storage.durability, Durability::kSync);
  EXPECT_EQ(r->storage.durability_window_micros, 250'000);
  ASSERT_EQ(r->tables.size(), 3u);
  EXPECT_FALSE(r->tables[0].durability.has_value());
  EXPECT_EQ(DurabilityOf(*r, r->tables[0]), Durability::kSync);
  EXPECT_EQ(DurabilityOf(*r, r->tables[1]), Durability::kNone);
  EXPECT_EQ(DurabilityOf(*r, r->tables[2]), Durability::kAsync);
}

TEST(ConfigTest, DurabilityDefaultsToNoneAndTheShippedConfigIsAsync) {
  Result<Config> empty = LoadString("", "test.yaml");
  ASSERT_THAT(empty, IsOk());
  EXPECT_EQ(empty->storage.durability, Durability::kNone);
  EXPECT_EQ(empty->storage.durability_window_micros, 100'000);
  Result<Config> shipped = LoadString(EmbeddedDefaultYaml(), "<embedded>");
  ASSERT_THAT(shipped, IsOk());
  EXPECT_EQ(shipped->storage.durability, Durability::kAsync);
  EXPECT_EQ(shipped->storage.durability_window_micros, 100'000);
}

TEST(ConfigTest, UnknownDurabilityIsRejectedWithItsPosition) {
  const std::string e = LoadError(R"(storage:
  durability: fast
)");
  EXPECT_THAT(e, StartsWith("test.yaml:2:15: "));
  EXPECT_THAT(e, HasSubstr("storage.durability"));
  EXPECT_THAT(e, HasSubstr("sync, async, none"));
}

TEST(ConfigTest, UnknownTableDurabilityIsRejectedWithItsPosition) {
  const std::string e = LoadError(R"(tables:
  t:
    key: id
    durability: [sync]
)");
  EXPECT_THAT(e, StartsWith("test.yaml:4:17: "));
  EXPECT_THAT(e, HasSubstr("tables.t.durability"));
}

TEST(ConfigTest, DurabilityWindowOutOfRangeIsRejectedWithItsPosition) {
  const std::string too_short = LoadError("storage: {durability_window: 500us}\n");
  EXPECT_THAT(too_short, StartsWith("test.yaml:1:30: "));
  EXPECT_THAT(too_short, HasSubstr("storage.durability_window"));
  const std::string too_long = LoadError("storage: {durability_window: 11s}\n");
  EXPECT_THAT(too_long, StartsWith("test.yaml:1:30: "));
  EXPECT_THAT(too_long, HasSubstr("storage.durability_window"));
}

TEST(ConfigTest, BackingStoreIsUnsetByDefault) {
  Result<Config> empty = LoadString("", "test.yaml");
  ASSERT_THAT(empty, IsOk());
  EXPECT_FALSE(empty->storage.backing.has_value());
}

TEST(ConfigTest, DirectoryBackingStoreDefaultsUnderDataDir) {
  Result<Config> r = LoadString("storage: {data_dir: /var/lib/ods, backing: {}}\n", "test.yaml");
  ASSERT_THAT(r, IsOk());
  ASSERT_TRUE(r->storage.backing.has_value());
  EXPECT_EQ(r->storage.backing->kind, BackingStoreKind::kDirectory);
  EXPECT_EQ(BackingDirOf(r->storage, *r->storage.backing), "/var/lib/ods/backing");
  Result<Config> absolute =
      LoadString("storage: {backing: {kind: directory, dir: /mnt/cold}}\n", "test.yaml");
  ASSERT_THAT(absolute, IsOk());
  EXPECT_EQ(BackingDirOf(absolute->storage, *absolute->storage.backing), "/mnt/cold");
}

TEST(ConfigTest, PostgresBackingStoreTakesConninfoAndTable) {
  Result<Config> r = LoadString(R"(storage:
  backing:
    kind: postgres
    postgres:
      conninfo: "host=/var/run/postgresql dbname=ods"
      table: cold_records
)",
                                "test.yaml");
  ASSERT_THAT(r, IsOk());
  ASSERT_TRUE(r->storage.backing.has_value());
  EXPECT_EQ(r->storage.backing->kind, BackingStoreKind::kPostgres);
  EXPECT_EQ(r->storage.backing->postgres_conninfo, "host=/var/run/postgresql dbname=ods");
  EXPECT_EQ(r->storage.backing->postgres_table, "cold_records");
}

TEST(ConfigTest, UnknownBackingKindIsRejectedWithItsPosition) {
  const std::string e = LoadError("storage:\n  backing: {kind: s3}\n");
  EXPECT_THAT(e, StartsWith("test.yaml:2:19: "));
  EXPECT_THAT(e, HasSubstr("storage.backing.kind"));
  EXPECT_THAT(e, HasSubstr("directory, postgres"));
}

TEST(ConfigTest, PostgresBackingWithoutConninfoIsRejectedWithItsPosition) {
  const std::string e = LoadError("storage:\n  backing:\n    kind: postgres\n");
  EXPECT_THAT(e, StartsWith("test.yaml:3:5: "));
  EXPECT_THAT(e, HasSubstr("postgres.conninfo"));
}

TEST(ConfigTest, BadBackingValuesAreEachRejectedWithTheirPositions) {
  const std::vector<std::string> lines = Lines(LoadError(R"(storage:
  backing:
    dir: ""
    colour: blue
    postgres: {conninfo: "", table: "drop table"}
)"));
  ASSERT_EQ(lines.size(), 5u) << ::testing::PrintToString(lines);
  EXPECT_THAT(lines[0], StartsWith("test.yaml:3:10: storage.backing.dir"));
  EXPECT_THAT(lines[1], StartsWith("test.yaml:4:5: unknown key 'colour' in storage.backing"));
  // postgres: with kind directory, then its two bad values
  EXPECT_THAT(lines[2], StartsWith("test.yaml:5:5: storage.backing.postgres"));
  EXPECT_THAT(lines[3], StartsWith("test.yaml:5:26: storage.backing.postgres.conninfo"));
  EXPECT_THAT(lines[4], StartsWith("test.yaml:5:37: storage.backing.postgres.table"));
}

TEST(ConfigTest, EmptyDataDirIsRejected) {
  const std::string e = LoadError("storage:\n  data_dir: \"\"\n");
  EXPECT_THAT(e, StartsWith("test.yaml:2:13: "));
  EXPECT_THAT(e, HasSubstr("storage.data_dir"));
}

TEST(ConfigTest, YamlSyntaxErrorReportsItsPosition) {
  const std::string e = LoadError(R"(server:
  shards: 4
  grpc_listen: [unclosed
logging:
  level: info
)");
  EXPECT_THAT(e, StartsWith("test.yaml:"));
  EXPECT_THAT(e, HasSubstr("YAML syntax error"));
  // The position is a real one (1-based), not yaml-cpp's "no mark" sentinel.
  EXPECT_THAT(e, ::testing::Not(StartsWith("test.yaml:0:")));
  EXPECT_THAT(e, ::testing::ContainsRegex("^test\\.yaml:[1-9][0-9]*:[1-9][0-9]*: "));
}

TEST(ConfigTest, BadIndentationIsASyntaxErrorAtTheBadLine) {
  const std::string e = LoadError("server:\n  shards: 4\n bogus: 1\n");
  EXPECT_THAT(e, StartsWith("test.yaml:3:"));
  EXPECT_THAT(e, HasSubstr("YAML syntax error"));
}

TEST(ConfigTest, EveryProblemIsReportedOnItsOwnLine) {
  const std::string e = LoadError(R"(server:
  shards: 0
limits:
  max_record_bytes: 2XB
)");
  const std::vector<std::string> lines = Lines(e);
  ASSERT_EQ(lines.size(), 2u) << e;
  EXPECT_THAT(lines[0], StartsWith("test.yaml:2:11: "));
  EXPECT_THAT(lines[0], HasSubstr("server.shards"));
  EXPECT_THAT(lines[1], StartsWith("test.yaml:4:21: "));
  EXPECT_THAT(lines[1], HasSubstr("limits.max_record_bytes"));
}

TEST(ConfigTest, ProblemsInSeveralTablesAreAllReported) {
  const std::string e = LoadError(R"(tables:
  a:
    key: id
    fields: {x: int}
  b:
    fields: {y: int64}
  c:
    key: id
    ttl: soon
)");
  const std::vector<std::string> lines = Lines(e);
  ASSERT_EQ(lines.size(), 3u) << e;
  EXPECT_THAT(lines[0], StartsWith("test.yaml:4:17: "));
  EXPECT_THAT(lines[1], StartsWith("test.yaml:5:3: "));
  EXPECT_THAT(lines[2], StartsWith("test.yaml:9:10: "));
}

// --- LoadFile ----------------------------------------------------------------------------------

TEST(ConfigTest, LoadFileReadsAFile) {
  TempFile file("server: {shards: 5}\ntables: {t: {key: id}}\n");
  Result<Config> r = LoadFile(file.path());
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->source, file.path());
  EXPECT_EQ(r->server.shards, 5u);
  ASSERT_EQ(r->tables.size(), 1u);
  EXPECT_EQ(r->tables[0].name, "t");
}

TEST(ConfigTest, LoadFileErrorsCarryThePath) {
  TempFile file("server:\n  shards: 0\n");
  Result<Config> r = LoadFile(file.path());
  ASSERT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(r.status().message(), StartsWith(file.path() + ":2:11: "));
}

TEST(ConfigTest, LoadFileOnMissingFileIsNotFound) {
  const std::string path = std::string(::testing::TempDir()) + "/ods_no_such_config_" +
                           std::to_string(::getpid()) + ".yaml";
  Result<Config> r = LoadFile(path);
  EXPECT_THAT(r, StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(r.status().message(), HasSubstr(path));
}

// --- ApplyOverrides ----------------------------------------------------------------------------

TEST(ConfigTest, OverridesReplaceOnlyWhatIsSet) {
  Config c;
  c.server.admin_listen = "127.0.0.1:1";
  Overrides o;
  o.grpc_listen = "0.0.0.0:0";
  o.data_dir = "/tmp/ods";
  ASSERT_THAT(ApplyOverrides(o, c), IsOk());
  EXPECT_EQ(c.server.grpc_listen, "0.0.0.0:0");
  EXPECT_EQ(c.server.admin_listen, "127.0.0.1:1");
  EXPECT_EQ(c.storage.data_dir, "/tmp/ods");
}

TEST(ConfigTest, OverrideCanDisableAdminListen) {
  Config c;
  Overrides o;
  o.admin_listen = "";
  ASSERT_THAT(ApplyOverrides(o, c), IsOk());
  EXPECT_EQ(c.server.admin_listen, "");
}

TEST(ConfigTest, BadOverrideIsRejectedNamingTheFlagAndChangesNothing) {
  const struct {
    Overrides overrides;
    const char* flag;
  } cases[] = {
      {{.grpc_listen = "0.0.0.0:1", .admin_listen = "nope", .data_dir = "/x"}, "--admin-listen"},
      {{.grpc_listen = "", .admin_listen = "0.0.0.0:2", .data_dir = "/x"}, "--grpc-listen"},
      {{.grpc_listen = "0.0.0.0:1", .admin_listen = "0.0.0.0:2", .data_dir = ""}, "--data-dir"},
  };
  for (const auto& c : cases) {
    Config config;
    const Config before = config;
    Status s = ApplyOverrides(c.overrides, config);
    EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument)) << c.flag;
    EXPECT_THAT(s.message(), HasSubstr(c.flag));
    EXPECT_EQ(config.server.grpc_listen, before.server.grpc_listen) << c.flag;
    EXPECT_EQ(config.server.admin_listen, before.server.admin_listen) << c.flag;
    EXPECT_EQ(config.storage.data_dir, before.storage.data_dir) << c.flag;
  }
}

// --- functions -----------------------------------------------------------------------------------

// A directory with a config file and a Lua file beside it, removed when the test ends.
class FunctionFiles {
 public:
  FunctionFiles()
      : dir_(std::filesystem::path(::testing::TempDir()) /
             ("ods_config_fn_" + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    std::filesystem::create_directories(dir_ / "lua");
  }
  ~FunctionFiles() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string Write(const std::string& name, std::string_view contents) const {
    std::ofstream out(dir_ / name, std::ios::binary | std::ios::trunc);
    out << contents;
    return (dir_ / name).string();
  }

 private:
  std::filesystem::path dir_;
};

TEST(ConfigTest, FunctionSourceIsReadRelativeToTheConfigFile) {
  FunctionFiles files;
  files.Write("lua/bump.lua", "function execute(r) return 1 end");
  const std::string path = files.Write("odsd.yaml", R"(
functions:
  bump:
    kind: procedure
    source: lua/bump.lua
    limits: {instructions: 5000, memory: 64KiB, wall_time: 20ms}
  plain: {kind: derived, source: lua/bump.lua}
)");
  Result<Config> r = LoadFile(path);
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->functions.size(), 2u);
  const FunctionConfig& f = r->functions[0];
  EXPECT_EQ(f.name, "bump");
  EXPECT_EQ(f.kind, "procedure");
  EXPECT_EQ(f.source_path, "lua/bump.lua");
  EXPECT_EQ(f.source, "function execute(r) return 1 end");
  EXPECT_EQ(f.max_instructions, 5000u);
  EXPECT_EQ(f.max_memory_bytes, 64u << 10);
  EXPECT_EQ(f.max_wall_micros, 20'000);
  EXPECT_EQ(f.position, path + ":3:3");
  EXPECT_EQ(r->functions[1].max_instructions, 1'000'000u);
  EXPECT_EQ(r->functions[1].max_wall_micros, 100'000);
}

TEST(ConfigTest, FunctionErrorsCarryFileLineColumn) {
  FunctionFiles files;
  files.Write("x.lua", "function compute() end");
  const std::string path = files.Write("odsd.yaml", R"(functions:
  missing_file: {kind: procedure, source: lua/nope.lua}
  bad_kind: {kind: macro, source: x.lua}
  no_kind: {source: x.lua}
  bad_limit: {kind: derived, limits: {instructions: 0, wall_time: 10us, stack: 3}}
  bad-name: {kind: derived}
)");
  Result<Config> r = LoadFile(path);
  ASSERT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  const std::vector<std::string> lines = Lines(r.status().message());
  ASSERT_EQ(lines.size(), 9u) << r.status().message();
  EXPECT_THAT(lines[0], StartsWith(path + ":2:43: functions.missing_file.source: cannot read Lua "
                                          "source file"));
  EXPECT_THAT(lines[1], StartsWith(path + ":3:20: functions.bad_kind.kind: unknown value 'macro'"));
  EXPECT_THAT(lines[2], StartsWith(path + ":4:3: functions.no_kind: missing 'kind'"));
  EXPECT_THAT(lines[3], StartsWith(path + ":5:3: functions.bad_limit: missing 'source'"));
  EXPECT_THAT(lines[4], StartsWith(path + ":5:53: functions.bad_limit.limits.instructions:"));
  EXPECT_THAT(lines[5], StartsWith(path + ":5:67: functions.bad_limit.limits.wall_time: '10us' "
                                          "is too short"));
  EXPECT_THAT(lines[6], StartsWith(path + ":5:73: unknown key 'stack'"));
  EXPECT_THAT(lines[7], StartsWith(path + ":6:3: bad function name 'bad-name'"));
  EXPECT_THAT(lines[8], StartsWith(path + ":6:3: functions.bad-name: missing 'source'"));
}

}  // namespace
}  // namespace ods::config

namespace ods::config {
namespace {

TEST(ConfigReadThroughTest, ParsesEveryKeyAndDefaultsColumnsToFieldNames) {
  Result<Config> r = LoadString(R"(
tables:
  customers:
    key: id
    fields: {name: string, limit: double}
    read_through:
      postgres: {conninfo: "host=/tmp dbname=crm", table: crm.customers, key_column: cid}
      cache: false
      negative_ttl: 5m
      max_negative_keys: 10
)",
                                "test.yaml");
  ASSERT_THAT(r, ::ods::testing::IsOk());
  const std::optional<ReadThroughConfig>& rt = r->tables[0].read_through;
  ASSERT_TRUE(rt.has_value());
  EXPECT_EQ(rt->postgres_conninfo, "host=/tmp dbname=crm");
  EXPECT_EQ(rt->postgres_table, "crm.customers");
  EXPECT_EQ(rt->postgres_key_column, "cid");
  EXPECT_FALSE(rt->cache);
  EXPECT_EQ(rt->negative_ttl_micros, 300'000'000);
  EXPECT_EQ(rt->max_negative_keys, 10u);
  const std::vector<std::pair<std::string, std::string>> columns = {{"name", "name"},
                                                                    {"limit", "limit"}};
  EXPECT_EQ(rt->columns, columns);
  EXPECT_EQ(rt->position, "test.yaml:6:5");
}

TEST(ConfigReadThroughTest, BadReadThroughIsReportedWithPositions) {
  const std::string message = LoadError(R"(
tables:
  free:
    key: id
    read_through: {postgres: {conninfo: "host=/tmp", table: t, key_column: id}}
  typed:
    key: id
    fields: {n: int64, v: float_vector}
    read_through:
      postgres:
        conninfo: ""
        table: "bad-name"
        columns: {n: "x y", nope: c, v: v}
      negative_ttl: 2d
)");
  const std::vector<std::string> lines = Lines(message);
  EXPECT_THAT(message, HasSubstr("test.yaml:5:5: tables.free.read_through: needs declared "
                                 "fields"));
  EXPECT_THAT(message, HasSubstr("test.yaml:11:19: tables.typed.read_through.postgres.conninfo: "
                                 "must not be empty"));
  EXPECT_THAT(message, HasSubstr("test.yaml:12:16: tables.typed.read_through.postgres.table: bad "
                                 "table name 'bad-name'"));
  EXPECT_THAT(message, HasSubstr("test.yaml:13:22: tables.typed.read_through.postgres.columns.n: "
                                 "bad column name 'x y'"));
  EXPECT_THAT(message, HasSubstr("tables.typed.read_through.postgres.columns.nope: 'nope' is not "
                                 "a declared field of table typed"));
  EXPECT_THAT(message, HasSubstr("tables.typed.read_through.postgres.columns.v: field 'v' is "
                                 "float_vector"));
  EXPECT_THAT(message, HasSubstr("tables.typed.read_through.postgres: missing 'key_column'"));
  EXPECT_THAT(message, HasSubstr("tables.typed.read_through.negative_ttl"));
  EXPECT_EQ(lines.size(), 8u) << message;
}

}  // namespace
}  // namespace ods::config
