#include "ods/common/units.h"

#include <array>
#include <cctype>
#include <limits>
#include <string>
#include <utility>

namespace ods {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Reads leading decimal digits into `out`; false when there are none or on overflow.
bool ReadNumber(std::string_view& s, uint64_t& out) {
  size_t i = 0;
  uint64_t v = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    const uint64_t d = static_cast<uint64_t>(s[i] - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
    ++i;
  }
  if (i == 0) return false;
  s.remove_prefix(i);
  out = v;
  return true;
}

bool MulOverflows(uint64_t a, uint64_t b) {
  return b != 0 && a > std::numeric_limits<uint64_t>::max() / b;
}

}  // namespace

Result<uint64_t> ParseBytes(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, uint64_t>, 9> kUnits = {{
      {"B", 1},
      {"KiB", uint64_t{1} << 10},
      {"MiB", uint64_t{1} << 20},
      {"GiB", uint64_t{1} << 30},
      {"TiB", uint64_t{1} << 40},
      {"KB", 1000},
      {"MB", 1000 * 1000},
      {"GB", 1000 * 1000 * 1000},
      {"TB", uint64_t{1000} * 1000 * 1000 * 1000},
  }};
  auto bad = [&] {
    return InvalidArgumentError("bad size '" + std::string(text) +
                                "': expected an integer with an optional unit B, KiB, MiB, GiB, "
                                "TiB, KB, MB, GB or TB, e.g. 2GiB");
  };
  std::string_view s = Trim(text);
  uint64_t n = 0;
  if (!ReadNumber(s, n)) return bad();
  s = Trim(s);
  if (s.empty()) return n;
  for (const auto& [unit, factor] : kUnits) {
    if (s == unit) {
      if (MulOverflows(n, factor)) return bad();
      return n * factor;
    }
  }
  return bad();
}

Result<Micros> ParseDuration(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, uint64_t>, 7> kUnits = {{
      {"us", 1},
      {"ms", 1000},
      {"s", 1000 * 1000},
      {"m", uint64_t{60} * 1000 * 1000},
      {"h", uint64_t{3600} * 1000 * 1000},
      {"d", uint64_t{86400} * 1000 * 1000},
      {"w", uint64_t{7} * 86400 * 1000 * 1000},
  }};
  auto bad = [&] {
    return InvalidArgumentError("bad duration '" + std::string(text) +
                                "': expected integers with units us, ms, s, m, h, d or w, "
                                "e.g. 90d, 1h30m, 250ms");
  };
  std::string_view s = Trim(text);
  if (s.empty()) return bad();
  if (s == "0") return Micros{0};  // zero needs no unit ("history_retention: 0")
  uint64_t total = 0;
  while (!s.empty()) {
    uint64_t n = 0;
    if (!ReadNumber(s, n)) return bad();
    size_t unit_len = 0;
    while (unit_len < s.size() && std::isalpha(static_cast<unsigned char>(s[unit_len]))) {
      ++unit_len;
    }
    const std::string_view unit = s.substr(0, unit_len);
    s.remove_prefix(unit_len);
    bool matched = false;
    for (const auto& [name, factor] : kUnits) {
      if (unit == name) {
        if (MulOverflows(n, factor)) return bad();
        const uint64_t part = n * factor;
        // Micros is signed: a part that fits in uint64 may still not fit in the result.
        constexpr auto kMax = static_cast<uint64_t>(std::numeric_limits<Micros>::max());
        if (part > kMax || total > kMax - part) return bad();
        total += part;
        matched = true;
        break;
      }
    }
    if (!matched) return bad();
  }
  return static_cast<Micros>(total);
}

std::string FormatBytes(uint64_t bytes) {
  static constexpr std::array<std::string_view, 5> kNames = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t unit = 0;
  while (unit + 1 < kNames.size() && bytes != 0 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++unit;
  }
  return std::to_string(bytes) + std::string(kNames[unit]);
}

std::string FormatDuration(Micros micros) {
  static constexpr std::array<std::pair<std::string_view, Micros>, 6> kUnits = {{
      {"d", Micros{86400} * 1000 * 1000},
      {"h", Micros{3600} * 1000 * 1000},
      {"m", Micros{60} * 1000 * 1000},
      {"s", 1000 * 1000},
      {"ms", 1000},
      {"us", 1},
  }};
  if (micros == 0) return "0s";
  // Magnitude as unsigned: -INT64_MIN does not fit in int64.
  const uint64_t magnitude =
      micros < 0 ? uint64_t{0} - static_cast<uint64_t>(micros) : static_cast<uint64_t>(micros);
  const std::string sign = micros < 0 ? "-" : "";
  for (const auto& [name, factor] : kUnits) {
    const auto f = static_cast<uint64_t>(factor);
    if (magnitude % f == 0) return sign + std::to_string(magnitude / f) + std::string(name);
  }
  return sign + std::to_string(magnitude) + "us";
}

}  // namespace ods
