#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ods/common/clock.h"
#include "ods/common/status.h"

namespace ods {

// Parses a byte size: a non-negative integer with an optional unit B, KiB, MiB, GiB, TiB
// (powers of 1024) or KB, MB, GB, TB (powers of 1000), e.g. "2GiB", "512", "64 KiB".
// kInvalidArgument naming the accepted forms on anything else, including overflow.
Result<uint64_t> ParseBytes(std::string_view text);

// Parses a duration: a non-negative integer with a unit us, ms, s, m, h, d or w, e.g. "90d",
// "1h", "250ms". Several parts may be joined: "1h30m". A bare "0" is zero. Returns microseconds.
// kInvalidArgument naming the accepted forms on anything else, including overflow.
Result<Micros> ParseDuration(std::string_view text);

// "2GiB" style rendering of `bytes` (largest exact binary unit), for messages and logs.
std::string FormatBytes(uint64_t bytes);

// "1h" style rendering of a duration in the largest unit of d, h, m, s, ms, us that divides it
// exactly (so ParseDuration(FormatDuration(x)) == x for x >= 0), e.g. 90m -> "90m", 0 -> "0s".
// Negative durations get a leading '-'.
std::string FormatDuration(Micros micros);

}  // namespace ods
