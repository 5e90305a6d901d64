#include "cli/args.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ods::cli {

const std::string* ParsedArgs::Find(std::string_view flag) const {
  const auto it = flags.find(flag);
  return it == flags.end() ? nullptr : &it->second;
}

Status TakeFlag(std::span<const std::string> args, size_t& i, std::string& name,
                std::string& value) {
  const std::string& arg = args[i];
  const size_t eq = arg.find('=');
  name = arg.substr(0, eq);
  if (eq != std::string::npos) {
    value = arg.substr(eq + 1);
  } else if (i + 1 < args.size()) {
    value = args[++i];
  } else {
    return InvalidArgumentError("option '" + name + "' needs a value");
  }
  return OkStatus();
}

Result<ParsedArgs> ParseArgs(std::span<const std::string> args,
                             std::span<const std::string_view> value_flags) {
  ParsedArgs parsed;
  bool flags_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_ended || arg.size() < 2 || arg[0] != '-') {
      parsed.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_ended = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      parsed.help = true;
      continue;
    }
    const std::string unknown = arg.substr(0, arg.find('='));
    if (std::find(value_flags.begin(), value_flags.end(), unknown + "!") != value_flags.end()) {
      if (arg.size() != unknown.size()) {
        return InvalidArgumentError("option '" + unknown + "' takes no value");
      }
      if (!parsed.flags.emplace(unknown, std::string()).second) {
        return InvalidArgumentError("option '" + unknown + "' given more than once");
      }
      continue;
    }
    const bool repeatable =
        std::find(value_flags.begin(), value_flags.end(), unknown + "...") != value_flags.end();
    if (!repeatable &&
        std::find(value_flags.begin(), value_flags.end(), unknown) == value_flags.end()) {
      return InvalidArgumentError("unknown option '" + unknown + "'");
    }
    std::string name;
    std::string value;
    ODS_RETURN_IF_ERROR(TakeFlag(args, i, name, value));
    if (repeatable) {
      parsed.repeated[name].push_back(std::move(value));
      continue;
    }
    if (!parsed.flags.emplace(name, std::move(value)).second) {
      return InvalidArgumentError("option '" + name + "' given more than once");
    }
  }
  return parsed;
}

Result<std::vector<std::string>> SplitList(std::string_view list, std::string_view what) {
  std::vector<std::string> items;
  size_t begin = 0;
  while (true) {
    const size_t comma = list.find(',', begin);
    const std::string_view item =
        list.substr(begin, comma == std::string_view::npos ? comma : comma - begin);
    if (item.empty()) {
      return InvalidArgumentError(std::string(what) + " has an empty item in '" +
                                  std::string(list) + "'");
    }
    items.emplace_back(item);
    if (comma == std::string_view::npos) {
      break;
    }
    begin = comma + 1;
  }
  return items;
}

}  // namespace ods::cli
