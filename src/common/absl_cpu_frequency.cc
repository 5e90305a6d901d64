#include "ods/common/absl_cpu_frequency.h"

#include <absl/base/internal/sysinfo.h>

namespace ods {

// An internal abseil function: the one that Mutex::Block calls (absl 20220623, Debian 12).
void PrimeAbslCpuFrequency() { (void)absl::base_internal::NominalCPUFrequency(); }

}  // namespace ods
