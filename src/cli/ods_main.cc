// `ods`: the operators' command-line client for odsd. See help_text.cc for the contract.

#include <cstdlib>
#include <exception>
#include <fstream>
#include <iterator>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/help_text.h"
#include "cli/value_parser.h"
#include "ods/common/status.h"

namespace ods::cli {
namespace {

std::string TopLevelHelp() {
  std::string commands;
  for (const Command& command : Commands()) {
    constexpr size_t kNameColumn = 13;
    commands += "  " + std::string(command.name);
    commands.append(command.name.size() < kNameColumn ? kNameColumn - command.name.size() : 1, ' ');
    commands += std::string(command.summary) + "\n";
  }
  std::string help(kTopLevelHelp);
  constexpr std::string_view kPlaceholder = "%COMMANDS%\n";
  help.replace(help.find(kPlaceholder), kPlaceholder.size(), commands);
  return help;
}

int UsageError(std::string_view message) {
  std::cerr << "ods: " << message << "\nTry 'ods --help'.\n";
  return kExitUsage;
}

// Flags every command accepts, before or after its name.
constexpr std::string_view kGlobalFlags[] = {"--addr",     "--timeout", "--tls-ca",
                                             "--tls-cert", "--tls-key", "--api-key"};

bool IsGlobalFlag(std::string_view flag) {
  for (std::string_view f : kGlobalFlags) {
    if (f == flag) return true;
  }
  return false;
}

// The contents of `path`, named by `flag` in the error.
Result<std::string> ReadFlagFile(std::string_view flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgumentError(std::string(flag) + ": cannot read '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Applies a global flag (`name` with its dashes) to `global`.
Status ApplyGlobalFlag(std::string_view name, const std::string& value, GlobalOptions& global) {
  if (name == "--tls-ca" || name == "--tls-cert" || name == "--tls-key") {
    ODS_ASSIGN_OR_RETURN(std::string pem, ReadFlagFile(name, value));
    std::string& out = name == "--tls-ca"
                           ? global.tls_ca_pem
                           : (name == "--tls-cert" ? global.tls_cert_pem : global.tls_key_pem);
    out = std::move(pem);
    global.tls = true;
    return OkStatus();
  }
  if (name == "--api-key") {
    if (value.empty()) return InvalidArgumentError("--api-key is empty");
    global.api_key = value;
    return OkStatus();
  }
  if (name == "--addr") {
    if (value.empty()) {
      return InvalidArgumentError("--addr is empty");
    }
    global.addr = value;
    return OkStatus();
  }
  ODS_ASSIGN_OR_RETURN(const double seconds, ParseFiniteDouble(value, "--timeout"));
  if (seconds <= 0) {
    return InvalidArgumentError("--timeout must be > 0, got '" + value + "'");
  }
  global.timeout_seconds = seconds;
  return OkStatus();
}

int Main(const std::vector<std::string>& args) {
  GlobalOptions global;
  if (const char* env = std::getenv("ODS_ADDR"); env != nullptr && *env != '\0') {
    global.addr = env;
  }
  if (const char* env = std::getenv("ODS_API_KEY"); env != nullptr && *env != '\0') {
    global.api_key = env;
  }
  size_t i = 0;
  for (; i < args.size() && args[i].size() > 1 && args[i][0] == '-'; ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << TopLevelHelp();
      return kExitOk;
    }
    if (arg == "--version") {
      std::cout << "ods " << ODS_VERSION << "\n";
      return kExitOk;
    }
    const std::string flag = arg.substr(0, arg.find('='));
    if (!IsGlobalFlag(flag)) {
      return UsageError("unknown option '" + flag + "'");
    }
    std::string name;
    std::string value;
    if (Status s = TakeFlag(args, i, name, value); !s.ok()) return UsageError(s.message());
    if (Status s = ApplyGlobalFlag(name, value, global); !s.ok()) {
      return UsageError(s.message());
    }
  }
  if (i == args.size()) {
    return UsageError("missing COMMAND");
  }
  std::string_view name = args[i];
  if (name == "help") {
    if (i + 1 == args.size()) {
      std::cout << TopLevelHelp();
      return kExitOk;
    }
    name = args[i + 1];
    const Command* command = FindCommand(name);
    if (command == nullptr) {
      return UsageError("unknown command '" + std::string(name) + "'");
    }
    std::cout << command->help;
    return kExitOk;
  }
  const Command* command = FindCommand(name);
  if (command == nullptr) {
    return UsageError("unknown command '" + std::string(name) + "'");
  }

  std::vector<std::string_view> flags = command->value_flags;
  flags.insert(flags.end(), std::begin(kGlobalFlags), std::end(kGlobalFlags));
  const std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                                      args.end());
  Result<ParsedArgs> parsed = ParseArgs(rest, flags);
  const std::string retry = "Try 'ods " + std::string(name) + " --help'.\n";
  if (!parsed.ok()) {
    std::cerr << "ods: " << parsed.status().message() << "\n" << retry;
    return kExitUsage;
  }
  if (parsed->help) {
    std::cout << command->help;
    return kExitOk;
  }
  for (const std::string_view global_flag : kGlobalFlags) {
    if (const std::string* value = parsed->Find(global_flag)) {
      if (Status s = ApplyGlobalFlag(global_flag, *value, global); !s.ok()) {
        std::cerr << "ods: " << s.message() << "\n" << retry;
        return kExitUsage;
      }
    }
  }
  if (global.tls_cert_pem.empty() != global.tls_key_pem.empty()) {
    std::cerr << "ods: --tls-cert and --tls-key go together (a client certificate and its key)\n"
              << retry;
    return kExitUsage;
  }
  return command->run(global, *parsed, Io{std::cin, std::cout, std::cerr});
}

}  // namespace
}  // namespace ods::cli

int main(int argc, char** argv) {
  // ODS code doesn't throw, but protobuf/gRPC may (std::bad_alloc); report rather than abort.
  try {
    return ods::cli::Main(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cerr << "ods: INTERNAL: " << e.what() << "\n";
    return ods::cli::kExitRpcError;
  }
}
