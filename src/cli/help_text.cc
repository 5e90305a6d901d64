#include "cli/help_text.h"

#include <string_view>

namespace ods::cli {

const std::string_view kTopLevelHelp =
    R"(Usage: ods [--addr HOST:PORT] [--timeout SECONDS] COMMAND [ARGS...]

Command-line client for odsd, the ODS server (gRPC service ods.v1.Store).

Commands:
%COMMANDS%

Options (also accepted after COMMAND):
  --addr HOST:PORT    Server address. Default: $ODS_ADDR, else 127.0.0.1:7070.
  --timeout SECONDS   Deadline for each call, fractions allowed. Default: 10.
  -h, --help          Show this help; 'ods COMMAND --help' shows one command's.
  --version           Print the version.

Output: each response as one line of proto3 JSON on stdout, with proto field names; int64
values are quoted strings and bytes are base64, as proto3 JSON prescribes.

Exit status:
  0  success
  1  the server returned an error; stderr says 'ods: CODE: message' (e.g. NOT_FOUND)
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
