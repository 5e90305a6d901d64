#include "ods/common/clock.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

namespace ods {
namespace {

TEST(FakeClockTest, StartsAtGivenTime) {
  FakeClock clock(123);
  EXPECT_EQ(clock.NowMicros(), 123);
}

TEST(FakeClockTest, DefaultStartIsARecentRealisticTime) {
  FakeClock clock;
  EXPECT_EQ(clock.NowMicros(), 1'700'000'000'000'000);
}

TEST(FakeClockTest, MovesOnlyWhenAdvancedOrSet) {
  FakeClock clock(1000);
  EXPECT_EQ(clock.NowMicros(), 1000);
  EXPECT_EQ(clock.NowMicros(), 1000);
  clock.Advance(500);
  EXPECT_EQ(clock.NowMicros(), 1500);
  clock.Set(42);
  EXPECT_EQ(clock.NowMicros(), 42);
}

TEST(FakeClockTest, ConcurrentAdvancesAreAllCounted) {
  FakeClock clock(0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&clock] {
      for (int i = 0; i < 10000; ++i) clock.Advance(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(clock.NowMicros(), 20000);
}

TEST(SystemClockTest, ReadsWallTimeInMicros) {
  const Micros expected = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  const Micros now = SystemClock().NowMicros();
  // Within a minute of the wall clock: catches a wrong unit (ms or ns would be off by 1000x).
  EXPECT_LT(std::abs(now - expected), 60'000'000);
}

TEST(SystemClockTest, IsTheSameObjectEveryTime) { EXPECT_EQ(&SystemClock(), &SystemClock()); }

}  // namespace
}  // namespace ods
