#pragma once

#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <thread>

#include "latency_histogram.h"

namespace ods::bench {

// Sleeps until `at` on CLOCK_MONOTONIC (the clock of std::chrono::steady_clock on Linux), to the
// kernel's precision: call PR_SET_TIMERSLACK 1 first, else each wake-up is up to 50 us late.
inline void SleepUntil(std::chrono::steady_clock::time_point at) {
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count();
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// Asks the scheduler to give the calling thread a 100 us slice (Linux >= 6.12, EEVDF; ignored or
// refused before): a thread that wakes with a short slice runs at once instead of waiting for a
// busy thread's default ~1.4 ms slice to end. For threads that wake often and work briefly.
inline void RequestShortSlice() {
  // The kernel's struct sched_attr (<linux/sched/types.h> clashes with <sched.h>).
  struct {
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
    uint32_t sched_util_min, sched_util_max;
  } attr{};
  attr.size = sizeof(attr);
  attr.sched_policy = SCHED_OTHER;
  attr.sched_runtime = 100'000;             // ns: the slice on EEVDF kernels
  syscall(SYS_sched_setattr, 0, &attr, 0);  // best effort
}

// The machine's own noise during a measurement window: a thread that sleeps 1 ms at a time and
// records how late each wake-up is. On a VM a vCPU can lose milliseconds: the hypervisor
// preempts it, or it halted when idle and the host is slow to run it again on the next
// interrupt. Every call in flight then waits, so a latency p99 cannot be below those stalls,
// however fast the server. On the 2-core CI VM (cpuidle haltpoll with guest_halt_poll_ns=0) most
// stalls under a benchmark's load are halted vCPUs woken late: at 4,500 feature calls/s an 8 s
// run counted 9-70 stalls with polling off and 0-6 with 200 us (an idle machine, ~10 per 10 s
// either way). The output line names the setting (ods/common/vcpu_idle.h).
// The thread asks for a 100 us scheduler slice (Linux >= 6.12, EEVDF; ignored before) so that it
// runs as soon as it wakes instead of waiting behind a busy benchmark thread's slice: what it
// measures is then mostly the host, not the benchmark's own CPU contention. ~1,000 wake-ups/s.
//
// Thread-safety: the figures may be read only after Join().
class MachineProbe {
 public:
  static constexpr std::chrono::microseconds kPeriod{1000};
  static constexpr uint64_t kStallNanos = 1'000'000;  // a wake-up this late counts as a stall

  using Clock = std::chrono::steady_clock;

  // Starts probing; wake-ups between `window_start` and `window_end` are recorded.
  MachineProbe(Clock::time_point window_start, Clock::time_point window_end)
      : thread_([this, window_start, window_end] { Run(window_start, window_end); }) {}
  ~MachineProbe() { Join(); }
  MachineProbe(const MachineProbe&) = delete;
  MachineProbe& operator=(const MachineProbe&) = delete;

  // Waits for the window's end.
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

  const LatencyHistogram& lateness() const { return lateness_; }
  uint64_t stalls() const { return stalls_; }                // wake-ups >= kStallNanos late
  uint64_t stalled_nanos() const { return stalled_nanos_; }  // their lateness, summed

 private:
  void Run(Clock::time_point window_start, Clock::time_point window_end) {
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);  // else each wake-up is up to 50 us late
    RequestShortSlice();
    for (Clock::time_point now = Clock::now(); now < window_end;) {
      const Clock::time_point target = now + kPeriod;
      SleepUntil(target);
      now = Clock::now();
      if (target < window_start || target >= window_end) continue;
      const auto late = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - target).count());
      lateness_.Record(late);
      if (late >= kStallNanos) {
        ++stalls_;
        stalled_nanos_ += late;
      }
    }
  }

  LatencyHistogram lateness_;
  uint64_t stalls_ = 0;
  uint64_t stalled_nanos_ = 0;
  std::thread thread_;  // last: starts after the figures above are constructed
};

}  // namespace ods::bench
