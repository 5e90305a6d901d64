#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

#include "ods/common/status.h"

namespace ods {

// The named logger of a component ("ods.shard", "ods.server", ...), created on first use with
// the sinks, level and format set by ConfigureLogging. Thread-safe.
std::shared_ptr<spdlog::logger> Logger(const std::string& name);

// Sets level (trace|debug|info|warn|error|off) and format (text|json) for all ODS loggers,
// writing to stderr. kInvalidArgument on an unknown level or format. Call once at start-up,
// before other threads log.
Status ConfigureLogging(const std::string& level, const std::string& format);

}  // namespace ods
