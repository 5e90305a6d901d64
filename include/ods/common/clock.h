#pragma once

#include <atomic>
#include <cstdint>

namespace ods {

// Microseconds since the Unix epoch: the one time unit of records, TTLs and the wire API.
using Micros = int64_t;

// Source of wall-clock time, injected everywhere time matters so tests can control it.
// Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  // Current wall time in microseconds since the Unix epoch.
  virtual Micros NowMicros() const = 0;
};

// The real clock (std::chrono::system_clock). Thread-safe; the returned reference lives forever.
Clock& SystemClock();

// A clock that moves only when told to. The one fake ODS tests may use. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(Micros start_micros = 1'700'000'000'000'000) : now_(start_micros) {}
  Micros NowMicros() const override { return now_.load(std::memory_order_relaxed); }
  void Advance(Micros delta_micros) { now_.fetch_add(delta_micros, std::memory_order_relaxed); }
  void Set(Micros now_micros) { now_.store(now_micros, std::memory_order_relaxed); }

 private:
  std::atomic<Micros> now_;
};

}  // namespace ods
