#pragma once

#include <string>
#include <string_view>

#include "ods/common/status.h"
#include "ods/v1/store.pb.h"

namespace ods::cli {

// One parsed `FIELD=VALUE` or `FIELD:TYPE=VALUE` command-line argument.
struct FieldAssignment {
  std::string name;
  ods::v1::Value value;
};

// Parses one `FIELD=VALUE` argument of `ods put` into a typed value. Pure; thread-safe.
//
// Without a type suffix the type is inferred from VALUE:
//   true / false                          -> bool
//   an integer that fits int64 (42, -7)   -> int64 (but 0-led digits such as 02134 -> string)
//   a decimal number (1.5, -2e3, .5)      -> double
//   anything else, including empty       -> string
// `FIELD:TYPE=VALUE` forces TYPE, one of:
//   int64, double (finite), bool (true|false), string (verbatim), bytes (base64, RFC 4648
//   standard alphabet, '=' padding optional: the same encoding the JSON output uses),
//   float_vector (comma-separated finite floats, e.g. 0.1,0.2; empty VALUE = empty vector),
//   timestamp (integer microseconds since the Unix epoch).
// The field name is everything before the last ':' ahead of the first '='; it can't be empty
// or contain '='. Returns kInvalidArgument naming `arg` on any malformed input.
[[nodiscard]] Result<FieldAssignment> ParseFieldAssignment(std::string_view arg);

// Strict scalar parsers shared with the option parsing. Each rejects surrounding spaces and
// trailing junk with kInvalidArgument; `what` names the input in the message.
[[nodiscard]] Result<int64_t> ParseInt64(std::string_view text, std::string_view what);
[[nodiscard]] Result<uint32_t> ParseUint32(std::string_view text, std::string_view what);
[[nodiscard]] Result<double> ParseFiniteDouble(std::string_view text, std::string_view what);

// Decodes base64 (standard alphabet, padding optional). kInvalidArgument on a bad character
// or length.
[[nodiscard]] Result<std::string> DecodeBase64(std::string_view text);

}  // namespace ods::cli
