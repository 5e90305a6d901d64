#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/predicate.h"
#include "ods/common/sha256.h"
#include "ods/common/status.h"
#include "ods/common/storage_tier.h"
#include "ods/common/value_type.h"

// Typed, validated odsd configuration. A Config is immutable after Load*(): pass it as const&,
// never re-validate. Reference: docs/configuration.md. Every field states unit, default, range.
namespace ods::config {

// TLS of the gRPC listener (`server.tls`). The files are read (and checked: PEM that parses,
// a key that matches the certificate) when the config is loaded; a change needs a restart.
struct TlsConfig {
  // `cert:` the server's certificate chain (PEM), leaf first. Required.
  std::string cert_path;
  // `key:` the private key of the leaf certificate (PEM). Required.
  std::string key_path;
  // `client_ca:` CA certificates (PEM) that client certificates are verified against. Empty: no
  // client certificate is asked for. Default: empty.
  std::string client_ca_path;
  // `require_client_cert:` refuse a connection without a client certificate that verifies
  // against client_ca (mutual TLS). Needs client_ca. Without it, a client certificate is
  // optional but, if sent, must verify. Default: false.
  bool require_client_cert = false;
  // The files' contents, read at load.
  std::string cert_pem;
  std::string key_pem;
  std::string client_ca_pem;
};

struct ServerConfig {
  // gRPC listen address host:port; port 0 picks a free port (printed in the readiness line).
  // Default: 127.0.0.1:7070.
  std::string grpc_listen = "127.0.0.1:7070";
  // Admin HTTP (health, metrics) listen address host:port; empty disables. Port 0 picks a free
  // port. Default: 127.0.0.1:9464.
  std::string admin_listen = "127.0.0.1:9464";
  // Number of shards the key space is split into. Default: 16. Range: [1, 1024].
  uint32_t shards = 16;
  // Threads serving gRPC calls (the call queue: every handler that does not block runs on one
  // of them). Each thread beyond the first raises the throughput ceiling by up to a core but
  // costs ~3 context switches per call at moderate rates (gRPC hands the poller role between
  // them). Default: 1. Range: [1, 64].
  uint32_t grpc_threads = 1;
  // How long a gRPC thread may be busy without a pause before feature lookups it takes run on
  // a worker thread instead (a backlog, as after the host stalled the process: a second core
  // helps drain it, one lookup at a time). 0 disables. Default: 1ms. Range: [0, 1s].
  Micros grpc_spill_after_micros = 1'000;
  // Time given to in-flight calls on SIGINT/SIGTERM before they are cancelled. Default: 3s.
  // Range: [0, 60s].
  Micros shutdown_grace_micros = 3'000'000;
  // TLS for gRPC; unset = plaintext. The admin HTTP endpoint stays plain HTTP. Default: unset.
  std::optional<TlsConfig> tls;
};

// What an API key may do. Each role includes the ones before it.
enum class Role : uint8_t {
  kRead,   // Store Get/Scan, Features GetOnlineFeatures/GetHistoricalFeatures, Admin List*
  kWrite,  // + Store Put/Delete, Features PushEvents/StreamEvents, Functions Execute
  kAdmin,  // + Admin ApplyDefinitions/RegisterFunction
};

// "read", "write", "admin".
std::string_view RoleName(Role role);

// One API key (`security.api_keys.NAME`). Only the SHA-256 of the key is kept.
struct ApiKeyConfig {
  // NAME: letters, digits, `_`, `-`, `.`; at most 64 bytes. Named in PERMISSION_DENIED messages.
  std::string name;
  // SHA-256 of the key's bytes: `key_sha256:` (64 hex digits), or computed from `key_file:` (a
  // file holding the key, one trailing newline ignored, at least 16 bytes). Distinct per key.
  Sha256Digest key_sha256{};
  // `role:` read | write | admin. Required.
  Role role = Role::kRead;
  // `tables:` the tables and event templates the key may use; empty = all. Not allowed for
  // admin (Admin methods act on the whole node). Default: empty.
  std::vector<std::string> tables;
};

// `security:`. No API keys = authentication off: every call is allowed, as before keys existed.
struct SecurityConfig {
  std::vector<ApiKeyConfig> api_keys;  // file order; names and digests unique
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
  // Most calls (HTTP/2 streams) one client connection may have open at once; the client holds
  // further calls until one ends. Bounds what one connection can pin (e.g. idle StreamEvents
  // calls, each with its buffers). Default: 1000. Range: [1, 1000000].
  uint32_t max_concurrent_streams = 1000;
};

// subscriptions: the change log behind Features.Subscribe (docs/architecture.md,
// "Subscriptions"). Read at start only (a reload lists changes as needing a restart).
struct SubscriptionsConfig {
  // Changes (Put, Delete, TTL expiry, applied event) kept in the log, newest first: a client
  // may resume from any sequence still in it. 0 turns the log off (Subscribe then answers
  // FAILED_PRECONDITION and writers append nothing). Default: 65536. Range: [0, 100000000].
  uint64_t retained_changes = 65536;
  // Most Subscribe streams open at once; more are refused with RESOURCE_EXHAUSTED.
  // Default: 64. Range: [1, 100000].
  uint32_t max_subscribers = 64;
  // Each subscriber's queue: the most changes it may be behind the newest. A subscriber further
  // behind skips the oldest of them and is told so with a gap notice. Default: 16384.
  // Range: [1, 100000000], at most retained_changes.
  uint64_t queue_size = 16384;
};

// How a table's record writes (Put, Delete) are made durable in the RocksDB tier under
// storage.data_dir. docs/architecture.md, "Durability".
enum class Durability : uint8_t {
  kNone,   // RAM only: nothing is written to disk; a restart starts empty.
  kAsync,  // Written to the tier's log without fsync; made durable within durability_window.
  kSync,   // Acknowledged only after the write is fsynced (group commit across writers).
};

// "none", "async", "sync".
std::string_view DurabilityName(Durability durability);

// Which backing store implementation (issue #6 point 2). docs/architecture.md, "Backing store".
enum class BackingStoreKind : uint8_t {
  kDirectory,  // compressed segment files under a directory (the embedded default)
  kPostgres,   // one table in a PostgreSQL database
};

// "directory", "postgres".
std::string_view BackingStoreKindName(BackingStoreKind kind);

// storage.backing: the store below the SSD tier. Only opened at start for now (odsd fails to
// start if it cannot be opened); the read path and demotion come with issue #6 point 4.
struct BackingConfig {
  // Default: directory.
  BackingStoreKind kind = BackingStoreKind::kDirectory;
  // Directory of the segment files (kind directory); a relative path is under
  // storage.data_dir. Default: backing (= data_dir/backing). Must not be empty.
  std::string dir = "backing";
  // libpq connection string (kind postgres; required there): key=value pairs or a postgresql://
  // URI. A password in it is never logged or shown in messages.
  std::string postgres_conninfo;
  // Table holding the records (kind postgres), created if missing. Letters, digits and _,
  // starting with a letter or _, at most 63 bytes. Default: ods_backing.
  std::string postgres_table = "ods_backing";
  // `cost_per_gib_month` of the backing store. Default: 0.023 (object-storage list price).
  double cost_per_gib_month = 0.023;
};

struct StorageConfig {
  // Directory for all persistent state; created if missing. Default: ./data.
  std::string data_dir = "./data";
  // Durability of every table that does not set its own `durability`. Default: none (a config
  // without the key writes nothing to disk; the shipped config/odsd.yaml sets async).
  Durability durability = Durability::kNone;
  // `async` writes are fsynced at least this often, so an acknowledged async write is lost by a
  // crash only if it was acknowledged within the last window. Default: 100ms. Range: [1ms, 10s].
  Micros durability_window_micros = 100'000;
  // RAM budget for records across all shards, split evenly per shard. A Put that would take a
  // shard past its share is rejected with RESOURCE_EXHAUSTED (until tiering moves cold records
  // out, #6). 0 = unlimited. Default: 2 GiB.
  uint64_t ram_max_bytes = uint64_t{2} << 30;
  // `ram.cost_per_gib_month`: what a GiB of RAM costs a month, for the cost estimate in tier
  // stats (any currency). Default: 4.0 (a rough cloud list price; set your own).
  double ram_cost_per_gib_month = 4.0;
  // `ram.tile_cache_bytes`: RAM for aggregation tiles read back from below RAM, kept decoded for
  // the next reads (event_templates.NAME.tiles_ssd_after); 0 = none kept. Not part of max_bytes.
  // Default: 64 MiB. Range: [0, 1 TiB].
  uint64_t tile_cache_bytes = uint64_t{64} << 20;
  // `ssd.max_bytes`: budget of the SSD tier for records of tiered tables (their encoded size);
  // over it, the least recently used SSD records of the lowest-priority tables move to the
  // backing store (where there is one). 0 = unlimited. Default: 0.
  uint64_t ssd_max_bytes = 0;
  // `ssd.cost_per_gib_month`. Default: 0.08.
  double ssd_cost_per_gib_month = 0.08;
  // The backing store; unset (no `storage.backing` key) = none is opened.
  std::optional<BackingConfig> backing = std::nullopt;
};

struct FieldConfig {
  std::string name;
  ValueType type = ValueType::kString;
};

// One tiering rule of a table (`tables.NAME.tiering[i]`): records that meet every condition of
// `when` belong in tier `to`. Rules are evaluated per record in file order; the first that
// matches decides, and a record no rule matches stays in RAM. docs/tiering.md.
struct TierRuleConfig {
  // `to:` ram (stay in RAM: ends the evaluation), ssd or backing. Required unless transient.
  StorageTier to = StorageTier::kRam;
  // `transient: true`: records this rule matches when written stay in RAM only: not written to
  // the durable tier (lost on restart), never moved down. `to` is ram; no idle_for.
  bool transient = false;
  // `when.idle_for:` not read or written for at least this long (1 s resolution). 0 = no
  // such condition. Range: [1s, 3650d].
  Micros idle_for_micros = 0;
  // `when.age:` the record's event time is at least this long ago (a record without an event
  // time has age 0). 0 = no such condition. Range: [1s, 3650d].
  Micros age_micros = 0;
  // `when.field:` a predicate over the record's fields (ods/common/predicate.h), checked
  // against the table's declared fields and types. Unset = no such condition.
  std::optional<Predicate> field;
  std::string field_text;  // as written, for stats and logs
  // "FILE:LINE:COLUMN" of the rule.
  std::string position;
};

// When a read brings a record from a lower tier back into RAM (`tables.NAME.promote`).
enum class Promote : uint8_t {
  kOnAccess,   // `on_access`: every read of a record below RAM promotes it (default)
  kAfterHits,  // `{after_hits: N}`: the Nth read since it left RAM promotes it
  kNever,      // `never`: reads are served from the lower tier; the record stays there
};

// `tables.NAME.read_through`: a system-of-record table in PostgreSQL that a Get miss reads
// through to (docs/architecture.md, "System of record read-through"). Typed tables only.
struct ReadThroughConfig {
  // `postgres.conninfo`: libpq connection string. Required, not empty. Its password is never
  // logged or shown in messages.
  std::string postgres_conninfo;
  // `postgres.table`: the table (or view) to read, `name` or `schema.name`; each part letters,
  // digits and _, at most 63 bytes, matched exactly (quoted). Required.
  std::string postgres_table;
  // `postgres.key_column`: the column holding the ODS key (text, varchar, char, smallint,
  // integer, bigint or bytea); should be unique (a primary key). Required.
  std::string postgres_key_column;
  // `postgres.columns`: {field: column}, the declared fields read and where from; fields not
  // listed stay absent. Empty (key omitted) = every declared field from the column of its name.
  std::vector<std::pair<std::string, std::string>> columns;
  // `cache`: store a record read through into the table (as a Put would: version assigned,
  // durable per the table's mode, subject to ttl and tiering). Default: true.
  bool cache = true;
  // `negative_ttl`: a key the system of record does not have answers not-found from memory
  // this long before it is asked again; 0 = always ask. Default: 30s. Range: [0, 1d].
  Micros negative_ttl_micros = 30'000'000;
  // `max_negative_keys`: most remembered misses per table; the oldest is forgotten first.
  // Default: 100000. Range: [1, 100000000].
  uint64_t max_negative_keys = 100'000;
  // "FILE:LINE:COLUMN" of the `read_through` key, for errors found when the engine connects.
  std::string position;
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
  // A field read through GetOnlineFeatures answers STALE when the record's event time is older
  // than this; 0 = never stale. Default: 0. Range: [0, 3650d].
  Micros max_age_micros = 0;
  // Overrides storage.durability for this table; unset = storage.durability.
  std::optional<Durability> durability = std::nullopt;
  // Tiering rules, first match wins; empty = every record stays in RAM. Rules moving records
  // below RAM need the table to be durable (sync or async: the SSD tier is the durable tier);
  // `to: backing` needs storage.backing. Default: empty.
  std::vector<TierRuleConfig> tiering = {};
  Promote promote = Promote::kOnAccess;
  // For Promote::kAfterHits: reads below RAM that promote. Range: [1, 1000000].
  uint32_t promote_after_hits = 0;
  // `priority`: over a tier's budget, records of lower-priority tables move down first (least
  // recently used first within a table). Default: 0. Range: [0, 100].
  uint32_t priority = 0;
  // `sla.read_p99`: the table's read latency goal; tier stats report the observed p99 against
  // it. 0 = none. Default: 0. Range: [1us, 10s].
  Micros sla_read_p99_micros = 0;
  // `read_through`: where a Get miss reads the record from; unset = nowhere (a miss is a miss).
  std::optional<ReadThroughConfig> read_through = std::nullopt;
};

// The shape of one kind of event producers push (PushEvents/StreamEvents).
struct EventTemplateConfig {
  std::string name;
  // Event field holding the entity key (a string or int64 value). Required.
  std::string key_field;
  // Event field holding the event time (a timestamp, or int64 microseconds). Required.
  std::string timestamp_field;
  // Declared typed fields in file order (key and timestamp fields excluded). May be empty
  // (count-only events). Events may carry only these fields, plus key and timestamp.
  std::vector<FieldConfig> fields;
  // An event stamped more than this before the server's clock is rejected ("too late"), counted
  // in ods_events_late_total and reported by index. Default: 1h. Range: [0, 3650d].
  Micros allowed_lateness_micros = 3'600'000'000;
  // An event stamped more than this after the server's clock is rejected ("in the future").
  // Default: 1m. Range: [0, 1d].
  Micros max_future_micros = 60'000'000;
  // Raw events are kept this long (by event time) for GetHistoricalFeatures and for backfilling
  // aggregations registered at run time; 0 keeps none. Default: 7d. Range: [0, 3650d].
  Micros history_retention_micros = Micros{7} * 86'400'000'000;
  // An event whose event_id was seen within this long (by arrival) is a duplicate and is not
  // applied again; 0 disables de-duplication. Default: 10m. Range: [0, 7d].
  Micros dedup_window_micros = 600'000'000;
  // Retained events whose event time is at least this long ago move from RAM to the SSD tier
  // (RocksDB under data_dir), where GetHistoricalFeatures and backfills read them back. 0 keeps
  // them all in RAM. Default: 0. Range: [1s, history_retention).
  Micros history_ssd_after_micros = 0;
  // Aggregation tiles (built-in fns) that end at least this long ago move from RAM to the SSD
  // tier, where online reads of long windows read them back. Longer than allowed_lateness, so no
  // accepted event lands in a tile below RAM. 0 keeps them all in RAM. Default: 0.
  // Range: (allowed_lateness, 3650d], at least 1s.
  Micros tiles_ssd_after_micros = 0;
  // "FILE:LINE:COLUMN" of the definition, for errors found after parsing.
  std::string position;
};

// A windowed aggregation over the events of one template.
struct AggregationConfig {
  std::string name;
  // The event template whose events are aggregated. Required; must exist.
  std::string template_name;
  // count | sum | min | max | mean | stddev | first | last | last_n | distinct_count | top_k.
  // Which fns accept which field types is checked when the engine is built (aggregate::
  // CheckInputType), reported at `position`.
  std::string fn;
  // Instead of fn: the name of a registered Lua aggregator (config `functions:` of kind
  // aggregator, or Admin.RegisterFunction); resolved when the engine is built. Exactly one of
  // fn and function is set.
  std::string function;
  // The aggregated field of the template; required for every fn but count, which takes none.
  // Optional with `function`: given, the aggregator's update gets that field's value (events
  // without it are skipped); omitted, a table of the whole event.
  std::string field;
  // last_n's n (`n:`) or top_k's k (`k:`); 0 for other fns. Range: [1, 1000].
  uint32_t n = 0;
  // `window: 1h` or `windows: [1h, 24h, 7d]`: at least one, each a whole number of seconds,
  // distinct. Feature refs name one as NAME@WINDOW.
  std::vector<Micros> windows;
  // Tile size for every window (must divide each); 0 = aggregate::DefaultTileFor per window.
  Micros tile_micros = 0;
  // GetOnlineFeatures answers STALE when the entity's newest event of the template is older
  // than this; 0 = never stale. Default: 0. Range: [0, 3650d].
  Micros max_age_micros = 0;
  // "FILE:LINE:COLUMN" of the definition, for errors found after parsing.
  std::string position;
};

// Event templates and aggregations: the part of a config that can also be applied at run time
// (Admin.Apply).
// One input of a derived feature: a feature ref and its weight.
struct DerivedInputConfig {
  // AGGREGATION, AGGREGATION@WINDOW or TABLE:FIELD; resolved (and checked numeric) when the
  // engine's catalog is built, reported at `position`.
  std::string ref;
  double weight = 0;  // finite
  std::string position;  // "FILE:LINE:COLUMN" of the ref
};

// A derived feature (`features:` section): computed at read time from other features of the same
// entity. fn `weighted`: the sum of weight x input over `inputs`, as a double.
struct DerivedFeatureConfig {
  std::string name;  // unique among aggregations and derived features
  std::string fn;    // "weighted", or empty when `function` is set
  // Instead of fn: a registered Lua function of kind derived; compute(inputs, entity) gets the
  // inputs' values by ref. Its inputs are a list of refs (`inputs: [a@1h, t:f]`, weights 0).
  std::string function;
  std::vector<DerivedInputConfig> inputs;  // file order; at least one; refs distinct
  std::string position;  // "FILE:LINE:COLUMN" of the definition
};

struct Definitions {
  std::vector<EventTemplateConfig> event_templates;  // file order; names unique
  std::vector<AggregationConfig> aggregations;       // file order; names unique
  std::vector<DerivedFeatureConfig> features;        // file order; names unique
};

// A sandboxed Lua function (`functions:` section). The config reads the source file; the engine
// compiles it, checks its entry points and registers it as version 1.
struct FunctionConfig {
  std::string name;
  // aggregator | derived | procedure. Required. Which global functions the source must define
  // is checked by the engine (docs/architecture.md, "Functions").
  std::string kind;
  // `source:` as written: a Lua text file, relative to the config file's directory (to the
  // current directory for a config given as text). Required.
  std::string source_path;
  // The file's text, read when the config is loaded. At most 1 MiB.
  std::string source;
  // `limits: {instructions: N, memory: SIZE, wall_time: DURATION}`, each optional.
  // Lua VM instructions per call. Default: 1000000. Range: [1, 10^12].
  uint64_t max_instructions = 1'000'000;
  // Bytes the function's Lua state may allocate. Default: 1 MiB. Range: [1 KiB, 1 GiB].
  uint64_t max_memory_bytes = uint64_t{1} << 20;
  // Wall-clock time per call. Default: 100ms. Range: [1ms, 60s].
  Micros max_wall_micros = 100'000;
  // "FILE:LINE:COLUMN" of the definition, for errors found after parsing (e.g. Lua syntax).
  std::string position;
};

struct Config {
  // Where the config came from (a path, or "<embedded>"), for messages.
  std::string source;
  ServerConfig server;
  LoggingConfig logging;
  LimitsConfig limits;
  StorageConfig storage;
  SubscriptionsConfig subscriptions = {};
  SecurityConfig security;
  // Tables in file order; names are unique.
  std::vector<TableConfig> tables;
  // event_templates and aggregations sections.
  Definitions definitions;
  // functions section, in file order; names unique.
  std::vector<FunctionConfig> functions;
};

// The durability in effect for `table` of `config`: its own, else storage.durability.
Durability DurabilityOf(const Config& config, const TableConfig& table);

// The directory of the directory backing store: backing.dir if absolute, else under
// storage.data_dir.
std::string BackingDirOf(const StorageConfig& storage, const BackingConfig& backing);

// Parses and validates the YAML file at `path`. On any problem returns kInvalidArgument whose
// message lists every problem found, one per line, as "FILE:LINE:COLUMN: what is wrong, what was
// expected". kNotFound if the file cannot be read. Thread-safe.
Result<Config> LoadFile(const std::string& path);

// As LoadFile, for YAML text; `source_name` stands for FILE in messages. Function sources are
// read relative to the current directory.
Result<Config> LoadString(std::string_view yaml, std::string_view source_name);

// Parses YAML text holding only `event_templates:` and/or `aggregations:` sections (as in a
// config file), for applying definitions at run time. An aggregation may name a template of the
// text or one of `known_templates` (the text's wins; its field is checked against that one).
// Whether a name already in use may be applied again is the engine's decision, not checked here.
// Errors as LoadString.
Result<Definitions> LoadDefinitions(std::string_view yaml, std::string_view source_name,
                                    std::span<const EventTemplateConfig> known_templates);

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
