#include "cli/help_text.h"

#include <string_view>

namespace ods::cli {

const std::string_view kTopLevelHelp =
    R"(Usage: ods [--addr HOST:PORT] [--timeout SECONDS] [--tls-ca FILE] [--api-key KEY]
           COMMAND [ARGS...]

Command-line client for odsd, the ODS server (gRPC services ods.v1.Store, ods.v1.Features,
ods.v1.Functions and ods.v1.Admin).

Commands:
%COMMANDS%

Options (also accepted after COMMAND):
  --addr HOST:PORT    Server address. Default: $ODS_ADDR, else 127.0.0.1:7070.
  --timeout SECONDS   Deadline for each call, fractions allowed. Default: 10.
  --tls-ca FILE       Use TLS; verify the server against the CA certificates in FILE (PEM).
  --tls-cert FILE     Use TLS with this client certificate (PEM; mutual TLS); needs --tls-key.
  --tls-key FILE      The client certificate's private key (PEM).
                      With --tls-cert but no --tls-ca, the system's CA roots are used.
  --api-key KEY       Send KEY as 'authorization: Bearer KEY'. Default: $ODS_API_KEY (prefer
                      the variable: a flag shows in the process list).
  -h, --help          Show this help; 'ods COMMAND --help' shows one command's.
  --version           Print the version.

Output: each response as one line of proto3 JSON on stdout, with proto field names; int64
values are quoted strings and bytes are base64, as proto3 JSON prescribes.

Exit status:
  0  success
  1  the server returned an error; stderr says 'ods: CODE: message' (e.g. NOT_FOUND);
     also when push had an event rejected ('ods: event N: CODE: message')
  2  bad usage (unknown command or option, malformed argument); nothing was sent
  3  server unreachable: UNAVAILABLE or DEADLINE_EXCEEDED
)";

const std::string_view kPutHelp =
    R"(Usage: ods put TABLE KEY FIELD=VALUE... [--event-time MICROS]
       ods put TABLE --json JSON
       ods put TABLE --json -

Upserts one record (KEY and its fields) or a batch (--json) into TABLE and prints the
PutResponse: {"versions":["<new version of each record>"]}.

FIELD=VALUE infers the type from VALUE:
  true, false             bool
  42, -7                  int64 (digits with a leading zero, such as 02134, stay strings)
  1.5, -2e3, .5           double
  anything else, or empty string
FIELD:TYPE=VALUE forces TYPE:
  int64, double, bool, string
  timestamp               microseconds since the Unix epoch: signup:timestamp=1700000000000000
  bytes                   base64 (standard alphabet, '=' padding optional), the encoding the
                          JSON output uses: avatar:bytes=aGVsbG8=
  float_vector            comma-separated floats: embedding:float_vector=0.1,0.2,0.3
FIELD can't contain '='. Put '--' before arguments that start with '-'.

Options:
  --event-time MICROS     When the fact happened, microseconds since the Unix epoch.
                          Default: 0 (unknown).
  --json JSON             A whole ods.v1.PutRequest in proto3 JSON, or '-' to read it from
                          stdin. Its "table", if set, must equal TABLE. Example:
                          '{"records":[{"key":"u1","fields":{"age":{"int64_value":"42"}}}]}'

Example:
  ods put user_profile u1 age=42 country=US score=1.5 premium=true
)";

const std::string_view kGetHelp =
    R"(Usage: ods get TABLE KEY... [--fields F1,F2,...]

Reads KEYs from TABLE and prints the GetResponse: one result per key, in order, with
"found" and, when found, the "record".

Options:
  --fields F1,F2,...      Return only these fields. Default: all.

Example:
  ods get user_profile u1 u2 --fields age,country
)";

const std::string_view kDeleteHelp =
    R"(Usage: ods delete TABLE KEY...

Removes KEYs from TABLE and prints the DeleteResponse: "deleted" (per key, whether it held
a record) and "deleted_count".

Example:
  ods delete user_profile u1 u2
)";

const std::string_view kScanHelp =
    R"(Usage: ods scan TABLE [--prefix P] [--start-after K] [--limit N] [--fields F1,F2,...]

Lists the records of TABLE in key (byte) order. The server streams pages; each page is
printed as it arrives, as one line of JSON: {"records":[...]}; if nothing matches, the
output is one {"records":[]}. To read past the limit, run again with --start-after set to
the last key printed.

Options:
  --prefix P              Only keys starting with P. Default: all keys.
  --start-after K         Only keys sorting after K. Default: from the first key.
  --limit N               At most N records. Default: 0, the server's
                          limits.max_batch_size (which is also the maximum).
  --fields F1,F2,...      Return only these fields. Default: all.

Example:
  ods scan user_profile --prefix u1 --limit 100
)";

const std::string_view kSubscribeHelp =
    R"(Usage: ods subscribe [--table T]... [--template E]... [--feature F]... [--key K]...
                     [--from SEQ] [--max N]

Follows changes (ods.v1.Features/Subscribe): record puts, deletes and TTL expiries of each
--table, events applied to each --template, and the new value of each --feature (a ref as
'ods features' takes: TABLE:FIELD, NAME@WINDOW, NAME) for every entity a change touches.
Each message is printed as it arrives, as one line of JSON:
  {"gap":{...},"changes":[...],"features":[...],"next_sequence":"N"}
The first message has no changes; its next_sequence is where the stream starts. A "gap"
{"from_sequence","to_sequence","reason"} lists changes this stream skipped (it fell more
than the server's subscriptions.queue_size behind, or --from is no longer retained).
Runs until N changes and feature values were printed (--max), the --timeout deadline passes
(then it exits 0), or the server ends the stream. Give each option once per name.

Options:
  --table T         Record changes of table T.
  --template E      Events applied to event template E.
  --feature F       The new value of feature F for each changed entity.
  --key K           Only changes of record or entity key K. Default: every key.
  --from SEQ        Start at sequence SEQ (a next_sequence printed before). Default: the
                    next change.
  --max N           Stop after N changes and feature values. Default: 0, no limit.

Example:
  ods --timeout 3600 subscribe --table user_profile --key u1 --feature txn_sum@1h
)";

const std::string_view kPushHelp =
    R"(Usage: ods push TEMPLATE FIELD=VALUE... [--event-id ID]
       ods push --json JSON
       ods push --json -

Sends one event of event template TEMPLATE (or a batch, --json) and prints the
PushEventsResponse: {"applied":"1","duplicates":"0","rejected":[],...}.

Give every field of the event as FIELD=VALUE, including the template's key field (string
or int64) and its timestamp field (timestamp, or int64 microseconds since the Unix epoch);
'ods definitions' shows them. Values are typed as in 'ods put' (see 'ods put --help'):
true/false is bool, 42 int64, 1.5 double, anything else string; FIELD:TYPE=VALUE forces
TYPE. Types must match the template exactly: for a double field write 12.0 or
amount:double=12, since 12 alone is int64. The timestamp must lie within the template's
allowed_lateness of the server's clock.

A rejected event (unknown template, missing or mistyped field, too late...) changes
nothing and the call still succeeds: the response lists it under "rejected", stderr says
'ods: event N: CODE: message' for each (N counts from 0 in the request), and the exit
status is 1.

Options:
  --event-id ID           De-duplication id: an event whose id was already seen for the
                          same template and entity within the template's dedup_window is
                          counted as a duplicate and not applied again. Default: none.
  --json JSON             A whole ods.v1.PushEventsRequest in proto3 JSON, or '-' to read it
                          from stdin; each event names its "template". Example:
                          '{"events":[{"template":"transactions","fields":{
                          "user_id":{"string_value":"u1"},"ts":{"int64_value":"1700000000000000"},
                          "amount":{"double_value":12.5}}}]}'

Examples:
  ods push transactions user_id=u1 ts:timestamp=$(date +%s%6N) amount=12.5 merchant=acme
  ods push transactions user_id=u1 ts=$(date +%s%6N) amount=3.0 --event-id order-17
  producer | ods push --json -
)";

const std::string_view kFeaturesHelp =
    R"(Usage: ods features ENTITY[,ENTITY...] FEATURE[,FEATURE...] [--as-of MICROS]

Reads the current values of FEATUREs for ENTITYs (entity keys) and prints the
FeaturesResponse. It is columnar: "columns" has one entry per FEATURE, in order, and each
column's "values", "statuses" and "event_times_micros" have one entry per ENTITY, in order.
A status is PRESENT, NOT_FOUND (no value), STALE (older than the feature's max_age) or
OUT_OF_RETENTION (--as-of reaches before the retained history; no value).

A FEATURE is NAME@WINDOW (one window of an aggregation, e.g. txn_count@1h), NAME (an
aggregation with one window) or TABLE:FIELD (a field of a table's current record).
An unknown FEATURE fails the call (exit 1, INVALID_ARGUMENT). Keys can't contain ','.

Options:
  --as-of MICROS          Answer as of this time, microseconds since the Unix epoch, from
                          retained history. Default: now.

Examples:
  ods features u1,u2 txn_count@1h,txn_amount@24h,merchants_7d
  ods features u1 txn_amount@1h --as-of 1700000000000000
)";

const std::string_view kHistoryHelp =
    R"(Usage: ods history ENTITY@MICROS[,ENTITY@MICROS...] FEATURE[,FEATURE...]

Point-in-time lookup (e.g. for training sets): each row is the entity ENTITY as of MICROS
(microseconds since the Unix epoch), answered from retained events. Prints the
FeaturesResponse, columnar as 'ods features' describes: "columns" has one entry per
FEATURE, each with one value, status and event time per row, in order. A row whose window
reaches before the template's history_retention is OUT_OF_RETENTION.

An entity may contain '@' (the last one separates MICROS) but not ','.

Example:
  ods history u1@1700000000000000,u1@1700003600000000,u2@1700000000000000 txn_count@1h
)";

const std::string_view kApplyHelp =
    R"(Usage: ods apply FILE
       ods apply -

Adds the event templates and aggregations defined in the YAML FILE ('-': stdin), written
as in a config file ('event_templates:' and/or 'aggregations:' sections; an aggregation may
name a template already in effect), and prints the ApplyDefinitionsResponse:
{"templates_added":[...],"aggregations_added":[...],"entities_backfilled":"N",
"events_replayed":"N"}. New aggregations are backfilled from retained events before the
call answers, so they serve correct values at once.

All or nothing: any problem applies nothing and exits 1 with INVALID_ARGUMENT, one problem
per line as '<request>:LINE:COLUMN: ...', LINE and COLUMN counting in FILE. A name already
defined identically is skipped (not in *_added); defined differently it is ALREADY_EXISTS.

Example:
  printf 'aggregations:
  txn_max: {template: transactions, fn: max, field: amount, window: 1h}
'     > txn_max.yaml
  ods apply txn_max.yaml
)";

const std::string_view kDefinitionsHelp =
    R"(Usage: ods definitions

Prints the ListDefinitionsResponse: the event templates and aggregations in effect (from
the config, then those applied, in definition order). A template has its key_field,
timestamp_field and fields; an aggregation its template, fn, field, n and windows_micros.
Durations are in microseconds.

Example:
  ods definitions
)";

const std::string_view kExecHelp =
    R"(Usage: ods exec FUNCTION TABLE KEY... [--arg NAME=VALUE]...

Runs the procedure FUNCTION (ods.v1.Functions/Execute) on the record of each KEY of TABLE, on
the shard that owns the key, and prints the ExecuteResponse: the function_version that ran and,
per key, code (0 = OK), message, value (the procedure's result), written and version (when
it stored a new record).

--arg NAME=VALUE passes an argument (repeat for more); VALUE is typed as put's FIELD=VALUE
(42 is int64, 1.5 double, NAME:TYPE=VALUE forces a type). The procedure sees them as the Lua
table `args`.

Exit status is 1 when the call fails or when any key failed; each failed key is also printed
on stderr as 'ods: key KEY: CODE: message'.

Example:
  ods exec bump counters c1 c2 --arg by=5
)";

const std::string_view kRegisterHelp =
    R"(Usage: ods register NAME KIND FILE [--instructions N] [--memory BYTES] [--wall-micros N]
                                      [--keep-state]
       ods register NAME KIND -

Registers the Lua source in FILE (or stdin for '-') as the next version of function NAME
(ods.v1.Admin/RegisterFunction) and prints the version now in effect. KIND is aggregator
(defines init, update, merge, finalize), derived (defines compute) or procedure (defines
execute(record, args, key), run by 'ods exec'). Calls already running finish on the old
version. Bad Lua is INVALID_ARGUMENT naming the function, version and line; nothing changes.

Options (budgets per call; default 1000000 instructions, 1048576 bytes, 100000 us):
  --instructions N        Lua VM instructions.
  --memory BYTES          Bytes the function's Lua state may allocate.
  --wall-micros N         Wall-clock microseconds.
  --keep-state            For a new version of an aggregator: the aggregations that run it keep
                          their tiles (same state shape). Without it they are rebuilt from the
                          retained events.

Example:
  ods register bump procedure functions/bump.lua --instructions 100000
)";

const std::string_view kFunctionsHelp =
    R"(Usage: ods functions

Prints the ListFunctionsResponse: the newest version of each registered function, with its
kind, limits and source size, sorted by name.
)";

const std::string_view kTiersHelp =
    R"(Usage: ods tiers

Prints the GetTierStatsResponse: for each table, records, bytes, reads and demotions in each
tier (ram, ssd, backing), promotions, Get latency p50/p99 (microseconds, bucket upper bounds)
against the table's sla.read_p99, and the estimated monthly cost of its bytes.
)";

const std::string_view kStatsHelp =
    R"(Usage: ods stats

Prints the GetServerStatsResponse (Admin.GetServerStats, role read): odsd's version, when it
started and its uptime (microseconds), shards and tables, records and their RAM, gets (and
hits), puts, deletes, expirations, events applied, duplicate, rejected and late, entity states
and their RAM, the durable tier's batches and fsyncs, tiering and read-through counters, failed
Lua function calls by kind, and the settings generation. Counters count since odsd started.
The same figures are on the admin endpoint's /metrics, per series.
)";

const std::string_view kReloadHelp =
    R"(Usage: ods reload

Has odsd read its config file again (Admin.ReloadConfig, as SIGHUP does) and apply the tables'
tiering rules, promote, priority, sla and ttl, and storage's RAM and SSD budgets and costs.
Prints the ReloadConfigResponse: each change applied ("PATH: OLD -> NEW"), the changed parts
that need a restart, and the settings generation. A file that does not load is
INVALID_ARGUMENT with FILE:LINE:COLUMN; the running settings stay. Needs the admin role.
)";

const std::string_view kMoveHelp =
    R"(Usage: ods move TABLE KEY... --to ram|ssd|backing

Moves the records of KEY... to the tier now, whatever the table's tiering rules say (the
rules may move them again at the next sweep). Keys that are absent, expired or already there
are skipped. Prints {"moved": N}. Needs the admin role.

Example:
  ods move users u1 u2 --to backing
)";

const std::string_view kHealthHelp =
    R"(Usage: ods health [SERVICE]

Asks grpc.health.v1.Health/Check about SERVICE (default: "", the whole server) and prints
the response, e.g. {"status":"SERVING"}. Exits 0 only if the status is SERVING, 1 otherwise
(also NOT_FOUND for a service the server doesn't know; odsd reports only ""), 3 if the
server is unreachable.

Example:
  ods --addr 127.0.0.1:7070 health
)";

}  // namespace ods::cli
