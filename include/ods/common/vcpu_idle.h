#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace ods {

// How an idle vCPU of this machine waits for work, as Linux's sysfs tells it.
//
// On KVM guests whose cpuidle driver is haltpoll, an idle vCPU polls for up to
// guest_halt_poll_ns, then halts: it exits to the hypervisor, and the next interrupt or wake-up
// IPI has to get the host to run it again, which on a busy or nested host takes up to
// milliseconds. A server that idles between calls then pays that wake-up on many of them, and
// its client on the replies. With polling off (guest_halt_poll_ns=0, as on our CI VMs), 100x10
// feature lookups at 4,500 calls/s had a p99 of 1.9-5.1 ms; with 200 us of polling, 0.5-1.5 ms
// (docs/benchmarks.md, "2026-12-04 (night)"; docs/operations.md says how to set it).
struct VcpuIdle {
  std::string cpuidle_driver;           // "" when sysfs does not tell (no cpuidle)
  std::optional<int64_t> halt_poll_ns;  // haltpoll's guest_halt_poll_ns, when it can be read

  // True when idle vCPUs halt at once: the haltpoll driver with guest_halt_poll_ns 0.
  bool HaltsWithoutPolling() const;
  // One phrase for logs and benchmark output, e.g. "vCPU halt polling off (cpuidle haltpoll,
  // guest_halt_poll_ns=0)".
  std::string Describe() const;
};

// Reads `sys_root`/devices/system/cpu/cpuidle/current_driver and
// `sys_root`/module/haltpoll/parameters/guest_halt_poll_ns. Never fails: what cannot be read or
// parsed stays empty. Thread-safe.
VcpuIdle ReadVcpuIdle(const std::filesystem::path& sys_root = "/sys");

}  // namespace ods
