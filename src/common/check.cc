#include "ods/common/check.h"

#include <cstdio>
#include <cstdlib>

namespace ods::internal {

void CheckFailed(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: ODS_CHECK failed: %s\n", file, line, condition);
  std::fflush(stderr);
  std::abort();
}

}  // namespace ods::internal
