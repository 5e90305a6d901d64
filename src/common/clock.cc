#include "ods/common/clock.h"

#include <chrono>

namespace ods {
namespace {

class RealClock final : public Clock {
 public:
  Micros NowMicros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace

Clock& SystemClock() {
  static RealClock* clock = new RealClock();  // Never destroyed: usable during shutdown.
  return *clock;
}

}  // namespace ods
