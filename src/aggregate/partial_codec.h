#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aggregate/hll.h"
#include "aggregate/partial.h"
#include "ods/aggregate/aggregate.h"
#include "ods/common/varint.h"

// Byte encoding of the partials of partial.h (private to ods_aggregate), for tiles kept below
// RAM. Integers are LEB128 varints (signed ones zigzag), doubles and floats their IEEE bits in
// fixed little-endian bytes, so a decoded partial is bit for bit the encoded one and merges to
// the same answer. Per partial type P:
//   static void Encode(const P&, std::string& out);                    // appends
//   static bool Decode(std::string_view& in, P& p, const Spec& s);    // consumes; false on
//                                                                      // truncated/invalid bytes
// Decode accepts only what a stored partial can hold (counts in [1, kMaxTileCount], last_n at
// most n entries newest first, top_k distinct keys, valid HyperLogLog state), so hostile bytes
// give an error, never undefined behaviour later (a signed overflow in a merge, an out-of-range
// register). Its allocations are bounded by the input's length (last_n: by n).
namespace ods::aggregate::codec {

// Most events one tile's partial may claim: window sums of up to kMaxTilesPerWindow such tiles
// stay far from int64 overflow. (A tile of 2^40 events is beyond any real stream.)
inline constexpr int64_t kMaxTileCount = int64_t{1} << 40;

inline void PutI64(int64_t v, std::string& out) { PutVarint(ZigZag(v), out); }
inline bool GetI64(std::string_view& in, int64_t& v) {
  uint64_t u;
  if (!GetVarint(in, u)) return false;
  v = UnZigZag(u);
  return true;
}

inline void PutFixed64(uint64_t v, std::string& out) {
  char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(v >> (8 * i));
  out.append(bytes, sizeof bytes);
}
inline bool GetFixed64(std::string_view& in, uint64_t& v) {
  if (in.size() < 8) return false;
  v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<unsigned char>(in[i])} << (8 * i);
  in.remove_prefix(8);
  return true;
}

inline void PutF64(double x, std::string& out) { PutFixed64(std::bit_cast<uint64_t>(x), out); }
inline bool GetF64(std::string_view& in, double& x) {
  uint64_t bits;
  if (!GetFixed64(in, bits)) return false;
  x = std::bit_cast<double>(bits);
  return true;
}

// A count in [1, kMaxTileCount].
inline bool GetCount(std::string_view& in, int64_t& n) {
  uint64_t u;
  if (!GetVarint(in, u) || u == 0 || u > static_cast<uint64_t>(kMaxTileCount)) return false;
  n = static_cast<int64_t>(u);
  return true;
}

// ---- slot values ------------------------------------------------------------------------------

inline void PutSlot(int64_t x, std::string& out) { PutI64(x, out); }
inline bool GetSlot(std::string_view& in, int64_t& x) { return GetI64(in, x); }

inline void PutSlot(double x, std::string& out) { PutF64(x, out); }
inline bool GetSlot(std::string_view& in, double& x) { return GetF64(in, x); }

inline void PutSlot(const std::string& x, std::string& out) {
  PutVarint(x.size(), out);
  out.append(x);
}
inline bool GetSlot(std::string_view& in, std::string& x) {
  uint64_t size;
  if (!GetVarint(in, size) || size > in.size()) return false;
  x = std::string(in.data(), static_cast<size_t>(size));  // exact capacity, as a fold's copy
  in.remove_prefix(static_cast<size_t>(size));
  return true;
}

inline void PutSlot(const std::vector<float>& x, std::string& out) {
  PutVarint(x.size(), out);
  for (float f : x) {
    const auto bits = std::bit_cast<uint32_t>(f);
    char bytes[4];
    for (int i = 0; i < 4; ++i) bytes[i] = static_cast<char>(bits >> (8 * i));
    out.append(bytes, sizeof bytes);
  }
}
inline bool GetSlot(std::string_view& in, std::vector<float>& x) {
  uint64_t size;
  if (!GetVarint(in, size) || size > in.size() / 4) return false;
  x.resize(static_cast<size_t>(size));
  for (float& f : x) {
    uint32_t bits = 0;
    for (int i = 0; i < 4; ++i) bits |= uint32_t{static_cast<unsigned char>(in[i])} << (8 * i);
    in.remove_prefix(4);
    f = std::bit_cast<float>(bits);
  }
  return true;
}

// ---- partials ---------------------------------------------------------------------------------

template <class P>
struct Codec;

template <>
struct Codec<CountPartial> {
  static void Encode(const CountPartial& p, std::string& out) {
    PutVarint(static_cast<uint64_t>(p.n), out);
  }
  static bool Decode(std::string_view& in, CountPartial& p, const Spec&) {
    return GetCount(in, p.n);
  }
};

template <>
struct Codec<SumIntPartial> {
  static void Encode(const SumIntPartial& p, std::string& out) {
    PutI64(static_cast<int64_t>(p.sum), out);
  }
  static bool Decode(std::string_view& in, SumIntPartial& p, const Spec&) {
    int64_t sum;
    if (!GetI64(in, sum)) return false;
    p.sum = static_cast<uint64_t>(sum);
    return true;
  }
};

template <>
struct Codec<SumDoublePartial> {
  static void Encode(const SumDoublePartial& p, std::string& out) { PutF64(p.sum, out); }
  static bool Decode(std::string_view& in, SumDoublePartial& p, const Spec&) {
    return GetF64(in, p.sum);
  }
};

template <>
struct Codec<MeanPartial> {
  static void Encode(const MeanPartial& p, std::string& out) {
    PutVarint(static_cast<uint64_t>(p.n), out);
    PutF64(p.sum, out);
  }
  static bool Decode(std::string_view& in, MeanPartial& p, const Spec&) {
    return GetCount(in, p.n) && GetF64(in, p.sum);
  }
};

template <>
struct Codec<StddevPartial> {
  static void Encode(const StddevPartial& p, std::string& out) {
    PutVarint(static_cast<uint64_t>(p.n), out);
    PutF64(p.mean, out);
    PutF64(p.m2, out);
  }
  static bool Decode(std::string_view& in, StddevPartial& p, const Spec&) {
    return GetCount(in, p.n) && GetF64(in, p.mean) && GetF64(in, p.m2);
  }
};

template <class S, bool kMax>
struct Codec<ExtremePartial<S, kMax>> {
  static void Encode(const ExtremePartial<S, kMax>& p, std::string& out) { PutSlot(p.value, out); }
  static bool Decode(std::string_view& in, ExtremePartial<S, kMax>& p, const Spec&) {
    return GetSlot(in, p.value);
  }
};

template <class S, bool kLast>
struct Codec<EdgePartial<S, kLast>> {
  static void Encode(const EdgePartial<S, kLast>& p, std::string& out) {
    PutI64(p.time, out);
    PutSlot(p.value, out);
  }
  static bool Decode(std::string_view& in, EdgePartial<S, kLast>& p, const Spec&) {
    return GetI64(in, p.time) && GetSlot(in, p.value);
  }
};

// Entries, then the list's spare capacity (so a restored tile's HeapBytes is the same); times
// after the first as the (non-negative) step back from the previous entry's.
template <class S>
struct Codec<LastNPartial<S>> {
  using P = LastNPartial<S>;
  static void Encode(const P& p, std::string& out) {
    const auto& list = p.newest_first;
    PutVarint(list.size(), out);
    PutVarint(list.capacity() - list.size(), out);
    for (size_t i = 0; i < list.size(); ++i) {
      if (i == 0) {
        PutI64(list[i].time, out);
      } else {
        PutVarint(static_cast<uint64_t>(list[i - 1].time) - static_cast<uint64_t>(list[i].time),
                  out);
      }
      PutSlot(list[i].value, out);
    }
  }
  static bool Decode(std::string_view& in, P& p, const Spec& s) {
    uint64_t size;
    uint64_t spare;
    if (!GetVarint(in, size) || size == 0 || size > s.n) return false;
    if (!GetVarint(in, spare) || spare > s.n) return false;
    auto& list = p.newest_first;
    list.reserve(static_cast<size_t>(size + spare));
    Micros time = 0;
    for (uint64_t i = 0; i < size; ++i) {
      if (i == 0) {
        if (!GetI64(in, time)) return false;
      } else {
        uint64_t back;
        // Newest first: each time at or before the previous one, without wrapping below int64.
        if (!GetVarint(in, back) ||
            back > static_cast<uint64_t>(time) - static_cast<uint64_t>(std::numeric_limits<Micros>::min())) {
          return false;
        }
        time = static_cast<Micros>(static_cast<uint64_t>(time) - back);
      }
      S value{};
      if (!GetSlot(in, value)) return false;
      list.push_back(typename P::Entry{time, std::move(value)});
    }
    return true;
  }
};

template <class S>
struct Codec<DistinctPartial<S>> {
  static void Encode(const DistinctPartial<S>& p, std::string& out) { p.sketch.Encode(out); }
  static bool Decode(std::string_view& in, DistinctPartial<S>& p, const Spec&) {
    return p.sketch.Decode(in);
  }
};

// Entry count, then (value, count) pairs in the map's iteration order. Decoding inserts them one
// by one as the fold did (distinct keys, no erase), so the map ends at the same capacity.
template <class S>
struct Codec<TopKPartial<S>> {
  using P = TopKPartial<S>;
  static void Encode(const P& p, std::string& out) {
    PutVarint(p.counts->size(), out);
    for (const auto& [value, count] : *p.counts) {
      PutSlot(value, out);
      PutVarint(static_cast<uint64_t>(count), out);
    }
  }
  static bool Decode(std::string_view& in, P& p, const Spec&) {
    uint64_t size;
    if (!GetVarint(in, size) || size == 0 || size > in.size() / 2) return false;
    p.counts = std::make_unique<typename P::Counts>();
    for (uint64_t i = 0; i < size; ++i) {
      S value{};
      int64_t count;
      if (!GetSlot(in, value) || !GetCount(in, count)) return false;
      if (!p.counts->try_emplace(std::move(value), count).second) return false;  // duplicate
    }
    return true;
  }
};

}  // namespace ods::aggregate::codec
