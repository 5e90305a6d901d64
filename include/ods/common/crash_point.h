#pragma once

#include <string_view>

namespace ods {

// Fault injection for crash tests: when the environment variable ODS_CRASH_POINT names
// `point`, the process kills itself with SIGKILL right there (as a power cut or kill -9 would),
// after writing one line to stderr. Otherwise a no-op costing one relaxed load and a branch.
// The variable is read once, at the first call. Points are named COMPONENT.STEP, e.g.
// "tier.move.backing_written"; docs/architecture.md lists them.
void CrashPoint(std::string_view point);

}  // namespace ods
