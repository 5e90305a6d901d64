#include "ods/common/absl_cpu_frequency.h"

#include <absl/synchronization/mutex.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>

namespace ods {
namespace {

// The contract gRPC 1.51's connect depends on (absl_cpu_frequency.h): once primed, a thread that
// blocks on an absl::Mutex other threads already wait for does not leave ENOENT in errno. Such a
// thread reads its scheduling priority and, the first time in the process, the CPU's frequency
// (Mutex::Block, absl 20220623). On a VM without /sys/devices/system/cpu/cpu0/tsc_freq_khz this
// fails when the priming is left out; where the file exists, it passes either way. One case per
// process: abseil reads the frequency once.
TEST(PrimeAbslCpuFrequencyTest, ABlockedThreadJoiningOthersLeavesErrnoWithoutENOENT) {
  PrimeAbslCpuFrequency();

  absl::Mutex mu;
  std::atomic<bool> held{false};
  std::thread holder([&] {
    mu.Lock();
    held = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    mu.Unlock();
  });
  while (!held) std::this_thread::yield();
  std::thread waiter([&] {
    mu.Lock();
    mu.Unlock();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // `waiter` is queued on `mu`
  errno = EINPROGRESS;  // what a non-blocking connect() leaves before gRPC takes its mutexes
  mu.Lock();            // blocks behind `waiter`
  const int after = errno;
  mu.Unlock();
  holder.join();
  waiter.join();
  EXPECT_NE(after, ENOENT);
}

}  // namespace
}  // namespace ods
