#include "ods/common/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>

namespace ods {
namespace {

std::mutex& RegistryMutex() {
  static std::mutex* mu = new std::mutex();
  return *mu;
}

}  // namespace

std::shared_ptr<spdlog::logger> Logger(const std::string& name) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = std::make_shared<spdlog::logger>(name, spdlog::default_logger()->sinks().begin(),
                                                 spdlog::default_logger()->sinks().end());
  logger->set_level(spdlog::default_logger()->level());
  spdlog::register_logger(logger);
  return logger;
}

Status ConfigureLogging(const std::string& level, const std::string& format) {
  const spdlog::level::level_enum lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    return InvalidArgumentError("unknown log level '" + level +
                                "'; expected trace, debug, info, warn, error or off");
  }
  std::string pattern;
  if (format == "text") {
    pattern = "%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ [%n] %v";
  } else if (format == "json") {
    pattern = R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","logger":"%n","msg":"%v"})";
  } else {
    return InvalidArgumentError("unknown log format '" + format + "'; expected text or json");
  }
  std::lock_guard<std::mutex> lock(RegistryMutex());
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto root = std::make_shared<spdlog::logger>("ods", sink);
  spdlog::set_default_logger(root);
  spdlog::drop_all();
  spdlog::set_default_logger(root);
  spdlog::set_pattern(pattern, spdlog::pattern_time_type::utc);
  spdlog::set_level(lvl);
  return OkStatus();
}

}  // namespace ods
