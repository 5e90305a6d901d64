#pragma once

#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/status.h"

namespace ods::cli {

// The arguments after a command name, split into positionals and flags.
struct ParsedArgs {
  std::vector<std::string> positional;
  // Value of each given flag, keyed by its name with the dashes: {"--limit", "10"}.
  std::map<std::string, std::string, std::less<>> flags;
  // Values of each given repeatable flag, in command-line order: {"--arg", {"a=1", "b=2"}}.
  std::map<std::string, std::vector<std::string>, std::less<>> repeated;
  bool help = false;  // -h or --help was given.

  // The value of `flag`, or nullptr if it wasn't given.
  const std::string* Find(std::string_view flag) const;
};

// Splits `args`. Every flag in `value_flags` (spelled "--name") takes a value, as `--name V` or
// `--name=V`; a flag spelled "--name..." there may be given many times (values collected in
// `repeated`); a flag spelled "--name!" there is a switch that takes no value (present in
// `flags` with an empty value when given); -h/--help set `help`; "--" ends the flags. Any other argument starting with '-'
// (and longer than "-") is an unknown flag. Returns kInvalidArgument naming the argument for an
// unknown or repeated flag, or a missing value. Pure; thread-safe.
[[nodiscard]] Result<ParsedArgs> ParseArgs(std::span<const std::string> args,
                                           std::span<const std::string_view> value_flags);

// Reads the flag at args[i], spelled `--name=V` or `--name V`, into `name` and `value`; for the
// second spelling advances `i` past the value. kInvalidArgument if the value is missing. Does not
// judge the name: callers check it against their own flags. Pure; thread-safe.
[[nodiscard]] Status TakeFlag(std::span<const std::string> args, size_t& i, std::string& name,
                              std::string& value);

// Splits "a,b,c" into {"a","b","c"}; kInvalidArgument if any item is empty, its message
// starting with `what` (e.g. "option '--fields'", "ENTITY list").
[[nodiscard]] Result<std::vector<std::string>> SplitList(std::string_view list,
                                                         std::string_view what);

}  // namespace ods::cli
