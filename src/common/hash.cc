#include "ods/common/hash.h"

#include <cstring>

namespace ods {
namespace {

// 64-bit finalizer from MurmurHash3 (public domain): full avalanche of a 64-bit lane.
inline uint64_t Mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

inline uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;  // Little-endian hosts only (x86_64, aarch64), which is all ODS builds for.
}

}  // namespace

uint64_t StableHash64(std::string_view data, uint64_t seed) {
  constexpr uint64_t kMul = 0x9e3779b97f4a7c15ULL;
  uint64_t h = seed ^ (data.size() * kMul);
  const char* p = data.data();
  size_t n = data.size();
  while (n >= 8) {
    h = (h ^ Mix(Load64(p))) * kMul;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t tail = 0;
    std::memcpy(&tail, p, n);
    h = (h ^ Mix(tail ^ (uint64_t{n} << 56))) * kMul;
  }
  return Mix(h);
}

}  // namespace ods
