#include "ods/common/crash_point.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace ods {
namespace {

// The configured point, or null when none (the usual case).
const std::string* Configured() {
  static const std::string* const point = [] {
    const char* v = std::getenv("ODS_CRASH_POINT");
    return v == nullptr || *v == '\0' ? nullptr : new std::string(v);
  }();
  return point;
}

}  // namespace

void CrashPoint(std::string_view point) {
  const std::string* configured = Configured();
  if (configured == nullptr || *configured != point) return;
  const std::string line = "ODS_CRASH_POINT: killing the process at " + std::string(point) + "\n";
  (void)!write(STDERR_FILENO, line.data(), line.size());
  raise(SIGKILL);
}

}  // namespace ods
