#include "ods/common/vcpu_idle.h"

#include <charconv>
#include <fstream>

namespace ods {
namespace {

// The file's first line without trailing whitespace; "" when it cannot be read.
std::string ReadLine(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return "";
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
    line.pop_back();
  }
  return line;
}

}  // namespace

bool VcpuIdle::HaltsWithoutPolling() const {
  return cpuidle_driver == "haltpoll" && halt_poll_ns.has_value() && *halt_poll_ns == 0;
}

std::string VcpuIdle::Describe() const {
  if (cpuidle_driver.empty()) return "cpuidle driver unknown";
  if (cpuidle_driver != "haltpoll") return "cpuidle driver " + cpuidle_driver;
  if (!halt_poll_ns.has_value()) return "vCPU halt polling unknown (cpuidle haltpoll)";
  return std::string("vCPU halt polling ") + (*halt_poll_ns == 0 ? "off" : "on") +
         " (cpuidle haltpoll, guest_halt_poll_ns=" + std::to_string(*halt_poll_ns) + ")";
}

VcpuIdle ReadVcpuIdle(const std::filesystem::path& sys_root) {
  VcpuIdle idle;
  idle.cpuidle_driver = ReadLine(sys_root / "devices/system/cpu/cpuidle/current_driver");
  const std::string poll = ReadLine(sys_root / "module/haltpoll/parameters/guest_halt_poll_ns");
  int64_t ns = 0;
  const auto [end, error] = std::from_chars(poll.data(), poll.data() + poll.size(), ns);
  if (!poll.empty() && error == std::errc() && end == poll.data() + poll.size() && ns >= 0) {
    idle.halt_poll_ns = ns;
  }
  return idle;
}

}  // namespace ods
