#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/common/value_type.h"

// Typed, validated odsd configuration. A Config is immutable after Load*(): pass it as const&,
// never re-validate. Reference: docs/configuration.md. Every field states unit, default, range.
namespace ods::config {

struct ServerConfig {
  // gRPC listen address host:port; port 0 picks a free port (printed in the readiness line).
  // Default: 127.0.0.1:7070.
  std::string grpc_listen = "127.0.0.1:7070";
  // Admin HTTP (health, metrics) listen address host:port; empty disables. Port 0 picks a free
  // port. Default: 127.0.0.1:9464.
  std::string admin_listen = "127.0.0.1:9464";
  // Number of shards the key space is split into. Default: 16. Range: [1, 1024].
  uint32_t shards = 16;
  // Time given to in-flight calls on SIGINT/SIGTERM before they are cancelled. Default: 3s.
  // Range: [0, 60s].
  Micros shutdown_grace_micros = 3'000'000;
};

struct LoggingConfig {
  // trace | debug | info | warn | error | off. Default: info.
  std::string level = "info";
  // text (human-readable) | json (one object per line). Default: text.
  std::string format = "text";
};

// Request limits. A request over a limit is rejected whole (INVALID_ARGUMENT or
// RESOURCE_EXHAUSTED) and changes nothing.
struct LimitsConfig {
  // Longest key, in bytes. Default: 1 KiB. Range: [1, 64 KiB].
  uint32_t max_key_bytes = 1024;
  // Largest record (encoded field values), in bytes. Default: 1 MiB. Range: [64 B, 64 MiB],
  // and at most half of max_message_bytes.
  uint64_t max_record_bytes = uint64_t{1} << 20;
  // Most records or keys in one Put, Get or Delete, and the largest Scan limit.
  // Default: 10000. Range: [1, 1000000].
  uint32_t max_batch_size = 10000;
  // Largest gRPC message received or sent, in bytes. Default: 64 MiB. Range: [4 KiB, 1 GiB].
  uint64_t max_message_bytes = uint64_t{64} << 20;
};

struct StorageConfig {
  // Directory for all persistent state; created if missing. Default: ./data.
  std::string data_dir = "./data";
  // RAM budget for records across all shards, split evenly per shard. A Put that would take a
  // shard past its share is rejected with RESOURCE_EXHAUSTED (until tiering moves cold records
  // out, #6). 0 = unlimited. Default: 2 GiB.
  uint64_t ram_max_bytes = uint64_t{2} << 30;
};

struct FieldConfig {
  std::string name;
  ValueType type = ValueType::kString;
};

struct TableConfig {
  std::string name;
  // Name of the key (entity id) of the table, e.g. user_id. Required.
  std::string key_field;
  // Declared fields in file order. Empty when free_form.
  std::vector<FieldConfig> fields;
  // True when `fields` was omitted: any field name and type is accepted, per record.
  bool free_form = true;
  // A record expires this long after it was last written; 0 = never. Default: 0.
  Micros ttl_micros = 0;
};

struct Config {
  // Where the config came from (a path, or "<embedded>"), for messages.
  std::string source;
  ServerConfig server;
  LoggingConfig logging;
  LimitsConfig limits;
  StorageConfig storage;
  // Tables in file order; names are unique.
  std::vector<TableConfig> tables;
};

// Parses and validates the YAML file at `path`. On any problem returns kInvalidArgument whose
// message lists every problem found, one per line, as "FILE:LINE:COLUMN: what is wrong, what was
// expected". kNotFound if the file cannot be read. Thread-safe.
Result<Config> LoadFile(const std::string& path);

// As LoadFile, for YAML text; `source_name` stands for FILE in messages.
Result<Config> LoadString(std::string_view yaml, std::string_view source_name);

// Command-line values that replace config values (odsd --grpc-listen etc.). Unset = keep.
struct Overrides {
  std::optional<std::string> grpc_listen;
  std::optional<std::string> admin_listen;
  std::optional<std::string> data_dir;
};

// Validates and applies `overrides` to `config`. kInvalidArgument naming the flag on a bad value
// (config unchanged).
Status ApplyOverrides(const Overrides& overrides, Config& config);

// The default config compiled into odsd (config/odsd.yaml at build time).
std::string_view EmbeddedDefaultYaml();

}  // namespace ods::config
