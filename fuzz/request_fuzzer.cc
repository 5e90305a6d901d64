// Fuzzes request validation as odsd's handlers do it, without a server: the first input byte
// picks a method, the rest is parsed as that method's request message (as gRPC would hand it to
// the handler), converted at the edge (server/convert.h) and passed to a real in-process Engine
// (two shards, a typed and a free-form table, an event template, aggregations and a derived
// feature). Any error Status is fine; a crash, leak, hang or sanitizer report is not. Feature
// answers are also written by the raw-method encoder (server/features_wire.h), which must give
// exactly the bytes of the equivalent FeaturesResponse message, and a lookup request read in place
// (features_wire.h) must be what protobuf parses from the same bytes.
#include <google/protobuf/stubs/logging.h>
#include <stdlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/logging.h"
#include "ods/common/status.h"
#include "ods/config/config.h"
#include "ods/engine/engine.h"
#include "ods/engine/features.h"
#include "ods/record/value.h"
#include "ods/v1/features.pb.h"
#include "ods/v1/store.pb.h"
#include "server/convert.h"
#include "server/features_wire.h"

namespace {

// Small limits, so the fuzzer reaches them: batches of 16, 64-byte keys, 4 KiB records and 1 MiB
// answers; 16 MiB of RAM caps what a long run accumulates.
constexpr std::string_view kConfig = R"(server: {shards: 2}
logging: {level: off}
limits: {max_key_bytes: 64, max_record_bytes: 4KiB, max_batch_size: 16, max_message_bytes: 1MiB}
storage: {durability: none, ram: {max_bytes: 16MiB}}
tables:
  user_profile:
    key: user_id
    fields: {age: int64, country: string, score: double, premium: bool, embedding: float_vector,
             signup: timestamp, avatar: bytes}
    ttl: 90d
  user_features: {key: user_id}
event_templates:
  transactions:
    key: user_id
    timestamp: ts
    fields: {amount: double, merchant: string}
    allowed_lateness: 1h
    history_retention: 7d
    dedup_window: 5m
aggregations:
  txn_count:    {template: transactions, fn: count, windows: [1h, 24h, 7d]}
  txn_amount:   {template: transactions, fn: sum, field: amount, windows: [1h, 24h]}
  merchants_7d: {template: transactions, fn: distinct_count, field: merchant, window: 7d}
  last_merchants: {template: transactions, fn: last_n, field: merchant, n: 3, window: 1d}
features:
  risk: {fn: weighted, inputs: {txn_count@1h: 0.7, "user_profile:age": -2, merchants_7d: 1e-3}}
)";

void Require(bool condition) {
  if (!condition) std::abort();
}

struct Fixture {
  ods::FakeClock clock{1'700'000'000'000'000};
  std::unique_ptr<ods::engine::Engine> engine;
};

// Built once and kept for the whole run (as odsd keeps its engine), so state accumulates across
// inputs: a Put by one input is read back by a later Get.
ods::engine::Engine& TheEngine() {
  static Fixture* const fixture = [] {
    Require(ods::ConfigureLogging("off", "text").ok());
    // Invalid UTF-8 in a string field fails the parse (as in odsd); protobuf's log line about it
    // would drown libFuzzer's output.
    google::protobuf::SetLogHandler(
        [](google::protobuf::LogLevel, const char*, int, const std::string&) {});
    auto* f = new Fixture;
    char dir[] = "/tmp/ods-request-fuzzer.XXXXXX";
    Require(mkdtemp(dir) != nullptr);
    std::string yaml(kConfig);
    ods::Result<ods::config::Config> config = ods::config::LoadString(yaml, "fuzz.yaml");
    Require(config.ok());
    config->storage.data_dir = dir;
    ods::Result<std::unique_ptr<ods::engine::Engine>> engine =
        ods::engine::Engine::Create(*config, f->clock);
    if (!engine.ok()) {
      fprintf(stderr, "request_fuzzer: %s\n", engine.status().ToString().c_str());
      std::abort();
    }
    f->engine = std::move(engine).value();
    // Durability none writes nothing under data_dir: remove it now rather than leave one per run.
    std::error_code ignored;
    std::filesystem::remove(dir, ignored);
    return f;
  }();
  return *fixture->engine;
}

std::vector<std::string_view> Views(const google::protobuf::RepeatedPtrField<std::string>& field) {
  return {field.begin(), field.end()};
}

void Put(ods::engine::Engine& engine, const ods::v1::PutRequest& req) {
  if (req.table().empty()) return;
  if (!engine.CheckRequestSize(req.table(), req.records_size(), "records").ok()) return;
  std::vector<ods::record::Record> records(req.records_size());
  std::vector<ods::shard::KeyedRecord> items(req.records_size());
  for (int i = 0; i < req.records_size(); ++i) {
    if (!ods::server::FromProto(req.table(), req.records(i), records[i]).ok()) return;
    items[i] = {req.records(i).key(), &records[i]};
  }
  ods::Result<std::vector<uint64_t>> versions = engine.Put(req.table(), items);
  if (versions.ok()) Require(versions->size() == items.size());
}

void Get(ods::engine::Engine& engine, const ods::v1::GetRequest& req) {
  if (req.table().empty()) return;
  if (!engine.CheckRequestSize(req.table(), req.keys_size(), "keys").ok()) return;
  std::vector<std::optional<ods::record::Record>> found;
  if (!engine.Get(req.table(), Views(req.keys()), Views(req.fields()), found).ok()) return;
  Require(found.size() == static_cast<size_t>(req.keys_size()));
  ods::v1::GetResponse resp;
  for (int i = 0; i < req.keys_size(); ++i) {
    if (found[i])
      ods::server::ToProto(req.keys(i), *found[i], *resp.add_results()->mutable_record());
  }
}

void Delete(ods::engine::Engine& engine, const ods::v1::DeleteRequest& req) {
  if (req.table().empty()) return;
  if (!engine.CheckRequestSize(req.table(), req.keys_size(), "keys").ok()) return;
  ods::Result<std::vector<uint8_t>> deleted = engine.Delete(req.table(), Views(req.keys()));
  if (deleted.ok()) Require(deleted->size() == static_cast<size_t>(req.keys_size()));
}

void Scan(ods::engine::Engine& engine, const ods::v1::ScanRequest& req) {
  if (req.table().empty()) return;
  const std::vector<std::string_view> fields = Views(req.fields());
  std::vector<std::optional<ods::record::Record>> none;
  if (!engine.Get(req.table(), {}, fields, none).ok()) return;
  ods::Result<std::vector<std::string>> keys =
      engine.ScanKeys(req.table(), req.prefix(), req.start_after(), req.limit());
  if (!keys.ok()) return;
  const std::vector<std::string_view> batch(keys->begin(), keys->end());
  std::vector<std::optional<ods::record::Record>> found;
  (void)engine.Get(req.table(), batch, fields, found);
}

void PushEvents(ods::engine::Engine& engine, const ods::v1::PushEventsRequest& req) {
  if (static_cast<uint64_t>(req.events_size()) > engine.config().limits.max_batch_size) return;
  std::vector<ods::record::Field> fields;
  std::vector<size_t> starts;
  std::vector<int> positions;
  size_t used = 0;
  for (int i = 0; i < req.events_size(); ++i) {
    const size_t start = used;
    if (!ods::server::AppendEventFields(req.events(i), fields, used).ok()) {
      used = start;
      continue;
    }
    starts.push_back(start);
    positions.push_back(i);
  }
  starts.push_back(used);
  std::vector<ods::engine::EventInput> inputs(positions.size());
  for (size_t j = 0; j < positions.size(); ++j) {
    const ods::v1::Event& e = req.events(positions[j]);
    inputs[j].template_name = e.template_();
    inputs[j].fields =
        std::span<const ods::record::Field>(fields.data() + starts[j], starts[j + 1] - starts[j]);
    inputs[j].event_id = e.event_id();
  }
  if (inputs.empty()) return;
  ods::Result<ods::engine::PushResult> result = engine.PushEvents(inputs);
  if (!result.ok()) return;
  Require(result->applied + result->duplicates + result->rejected.size() == inputs.size());
  for (const ods::engine::EventRejection& r : result->rejected) Require(r.index < inputs.size());
}

// The raw-method answer must equal the message built with ToProto, byte for byte.
void CheckAnswer(const std::vector<ods::engine::FeatureColumn>& columns, size_t rows) {
  ods::v1::FeaturesResponse message;
  for (const ods::engine::FeatureColumn& c : columns) {
    Require(c.values.size() == rows && c.statuses.size() == rows && c.event_times.size() == rows);
    ods::server::ToProto(c, *message.add_columns());
  }
  const ods::server::FeaturesResponseEncoder encoder(columns);
  std::string wire(encoder.size(), '\0');
  encoder.Write(wire.data());
  Require(wire == message.SerializeAsString());
}

void GetOnlineFeatures(ods::engine::Engine& engine, const ods::v1::GetOnlineFeaturesRequest& req) {
  if (static_cast<uint64_t>(req.entities_size()) > engine.config().limits.max_batch_size) return;
  const std::vector<std::string_view> entities = Views(req.entities());
  const std::vector<std::string_view> features = Views(req.features());
  std::vector<std::string_view> sources;
  (void)engine.FeatureSources(features, sources);
  const std::optional<ods::Micros> as_of =
      req.has_as_of_micros() ? std::optional<ods::Micros>(req.as_of_micros()) : std::nullopt;
  ods::Result<std::vector<ods::engine::FeatureColumn>> columns =
      engine.GetOnlineFeatures(entities, features, as_of);
  if (!columns.ok()) return;
  Require(columns->size() == features.size());
  CheckAnswer(*columns, entities.size());
}

void GetHistoricalFeatures(ods::engine::Engine& engine,
                           const ods::v1::GetHistoricalFeaturesRequest& req) {
  if (static_cast<uint64_t>(req.rows_size()) > engine.config().limits.max_batch_size) return;
  std::vector<ods::engine::EntityRow> rows(req.rows_size());
  for (int i = 0; i < req.rows_size(); ++i) {
    rows[i].entity = req.rows(i).entity();
    rows[i].timestamp = req.rows(i).timestamp_micros();
  }
  const std::vector<std::string_view> features = Views(req.features());
  ods::Result<std::vector<ods::engine::FeatureColumn>> columns =
      engine.GetHistoricalFeatures(rows, features);
  if (!columns.ok()) return;
  Require(columns->size() == features.size());
  CheckAnswer(*columns, rows.size());
}

// Whatever the in-place reading of a lookup request accepts, protobuf parses (`parsed` is its
// result, nullptr if it failed) to the same request.
void CheckReadInPlace(const uint8_t* data, size_t size,
                      const ods::v1::GetOnlineFeaturesRequest* parsed) {
  ods::server::OnlineRequestView view;
  if (!ods::server::ReadOnlineRequest(std::string_view(reinterpret_cast<const char*>(data), size),
                                      view)) {
    return;
  }
  Require(parsed != nullptr);
  Require(std::equal(view.entities.begin(), view.entities.end(), parsed->entities().begin(),
                     parsed->entities().end()));
  Require(std::equal(view.features.begin(), view.features.end(), parsed->features().begin(),
                     parsed->features().end()));
  Require(view.as_of.has_value() == parsed->has_as_of_micros());
  Require(!view.as_of.has_value() || *view.as_of == parsed->as_of_micros());
}

template <class Message>
bool Parse(const uint8_t* data, size_t size, Message& out) {
  return out.ParseFromArray(data, static_cast<int>(size));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > (1 << 20)) return 0;
  ods::engine::Engine& engine = TheEngine();
  const uint8_t method = data[0] % 7;
  ++data;
  --size;
  switch (method) {
    case 0: {
      ods::v1::PutRequest req;
      if (Parse(data, size, req)) Put(engine, req);
      break;
    }
    case 1: {
      ods::v1::GetRequest req;
      if (Parse(data, size, req)) Get(engine, req);
      break;
    }
    case 2: {
      ods::v1::DeleteRequest req;
      if (Parse(data, size, req)) Delete(engine, req);
      break;
    }
    case 3: {
      ods::v1::ScanRequest req;
      if (Parse(data, size, req)) Scan(engine, req);
      break;
    }
    case 4: {
      ods::v1::PushEventsRequest req;
      if (Parse(data, size, req)) PushEvents(engine, req);
      break;
    }
    case 5: {
      ods::v1::GetOnlineFeaturesRequest req;
      const bool parsed = Parse(data, size, req);
      CheckReadInPlace(data, size, parsed ? &req : nullptr);
      if (parsed) GetOnlineFeatures(engine, req);
      break;
    }
    default: {
      ods::v1::GetHistoricalFeaturesRequest req;
      if (Parse(data, size, req)) GetHistoricalFeatures(engine, req);
      break;
    }
  }
  return 0;
}
