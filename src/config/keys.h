#pragma once

#include <array>
#include <span>
#include <string_view>

// Private to ods_config: the keys each mapping of a config file accepts. The parsers pass these
// lists to Parser::ForEachKey (anything else is an "unknown key" error), and KnownKeyPaths()
// lists them for the documentation check, so the two cannot drift apart. ForEachKey takes a
// span, which a braced list cannot build: a new mapping needs a list here, and an entry in
// kKeySections below.
namespace ods::config::internal {

inline constexpr std::array<std::string_view, 11> kTopLevelKeys = {
    "server", "logging",         "limits",       "storage",  "security",     "tables",
    "event_templates", "aggregations", "features", "functions", "subscriptions"};
// What Admin.ApplyDefinitions (LoadDefinitions) accepts at its top level: a subset of the above.
inline constexpr std::array<std::string_view, 3> kDefinitionsTopLevelKeys = {
    "event_templates", "aggregations", "features"};

inline constexpr std::array<std::string_view, 7> kServerKeys = {
    "grpc_listen",      "admin_listen",   "shards", "grpc_threads",
    "grpc_spill_after", "shutdown_grace", "tls"};
inline constexpr std::array<std::string_view, 4> kTlsKeys = {"cert", "key", "client_ca",
                                                             "require_client_cert"};
inline constexpr std::array<std::string_view, 2> kLoggingKeys = {"level", "format"};
inline constexpr std::array<std::string_view, 5> kLimitsKeys = {
    "max_key_bytes", "max_record_bytes", "max_batch_size", "max_message_bytes",
    "max_concurrent_streams"};
inline constexpr std::array<std::string_view, 6> kStorageKeys = {
    "data_dir", "durability", "durability_window", "ram", "ssd", "backing"};
inline constexpr std::array<std::string_view, 3> kSubscriptionsKeys = {
    "retained_changes", "max_subscribers", "queue_size"};
inline constexpr std::array<std::string_view, 3> kRamKeys = {"max_bytes", "cost_per_gib_month",
                                                             "tile_cache_bytes"};
inline constexpr std::array<std::string_view, 2> kSsdKeys = {"max_bytes", "cost_per_gib_month"};
inline constexpr std::array<std::string_view, 4> kBackingKeys = {"kind", "dir", "postgres",
                                                                 "cost_per_gib_month"};
inline constexpr std::array<std::string_view, 2> kPostgresKeys = {"conninfo", "table"};
inline constexpr std::array<std::string_view, 1> kSecurityKeys = {"api_keys"};
inline constexpr std::array<std::string_view, 4> kApiKeyKeys = {"key_sha256", "key_file", "role",
                                                                "tables"};
inline constexpr std::array<std::string_view, 10> kTableKeys = {
    "key",     "fields",   "ttl", "max_age",     "durability",
    "tiering", "promote",  "priority", "sla", "read_through"};
inline constexpr std::array<std::string_view, 4> kReadThroughKeys = {
    "postgres", "cache", "negative_ttl", "max_negative_keys"};
inline constexpr std::array<std::string_view, 4> kReadThroughPostgresKeys = {
    "conninfo", "table", "key_column", "columns"};
inline constexpr std::array<std::string_view, 1> kSlaKeys = {"read_p99"};
inline constexpr std::array<std::string_view, 3> kTierRuleKeys = {"to", "when", "transient"};
inline constexpr std::array<std::string_view, 3> kTierWhenKeys = {"idle_for", "age", "field"};
inline constexpr std::array<std::string_view, 1> kPromoteKeys = {"after_hits"};
inline constexpr std::array<std::string_view, 9> kEventTemplateKeys = {
    "key",        "timestamp",         "fields",       "allowed_lateness", "max_future",
    "history_retention", "dedup_window", "history_ssd_after", "tiles_ssd_after"};
inline constexpr std::array<std::string_view, 10> kAggregationKeys = {
    "template", "fn", "function", "field", "n", "k", "window", "windows", "tile", "max_age"};
inline constexpr std::array<std::string_view, 3> kDerivedFeatureKeys = {"fn", "function", "inputs"};
inline constexpr std::array<std::string_view, 3> kFunctionKeys = {"kind", "source", "limits"};
inline constexpr std::array<std::string_view, 3> kFunctionLimitsKeys = {"instructions", "memory",
                                                                        "wall_time"};

// One mapping with a fixed set of keys, at `path` (dotted; "" is the top level; a name the
// user chooses, such as a table's, is written NAME).
struct KeySection {
  std::string_view path;
  std::span<const std::string_view> keys;
};

// Every mapping of a config file with a fixed set of keys. Mappings whose keys the user names
// (`tables`, `security.api_keys`, `tables.NAME.fields`, `features.NAME.inputs`, ...) accept any
// valid name and are not listed; their entries are, under NAME.
inline constexpr std::array<KeySection, 25> kKeySections = {{
    {"", kTopLevelKeys},
    {"server", kServerKeys},
    {"server.tls", kTlsKeys},
    {"logging", kLoggingKeys},
    {"limits", kLimitsKeys},
    {"subscriptions", kSubscriptionsKeys},
    {"storage", kStorageKeys},
    {"storage.ram", kRamKeys},
    {"storage.ssd", kSsdKeys},
    {"storage.backing", kBackingKeys},
    {"storage.backing.postgres", kPostgresKeys},
    {"security", kSecurityKeys},
    {"security.api_keys.NAME", kApiKeyKeys},
    {"tables.NAME", kTableKeys},
    {"tables.NAME.tiering[]", kTierRuleKeys},
    {"tables.NAME.tiering[].when", kTierWhenKeys},
    {"tables.NAME.promote", kPromoteKeys},
    {"tables.NAME.sla", kSlaKeys},
    {"tables.NAME.read_through", kReadThroughKeys},
    {"tables.NAME.read_through.postgres", kReadThroughPostgresKeys},
    {"event_templates.NAME", kEventTemplateKeys},
    {"aggregations.NAME", kAggregationKeys},
    {"features.NAME", kDerivedFeatureKeys},
    {"functions.NAME", kFunctionKeys},
    {"functions.NAME.limits", kFunctionLimitsKeys},
}};

}  // namespace ods::config::internal
