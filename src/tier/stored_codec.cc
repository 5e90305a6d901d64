#include "tier/stored_codec.h"

#include <algorithm>
#include <vector>

#include "ods/record/codec.h"

namespace ods::tier::internal {
void PutVarint(uint64_t v, std::string& out) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty()) return false;
    const auto b = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

// A length-prefixed string at the front of `in`.
bool GetString(std::string_view& in, std::string_view& out) {
  uint64_t n = 0;
  if (!GetVarint(in, n) || n > in.size()) return false;
  out = in.substr(0, n);
  in.remove_prefix(n);
  return true;
}


void EncodeKey(std::string_view table, std::string_view key, std::string& out) {
  out.clear();
  PutVarint(table.size(), out);
  out.append(table);
  out.append(key);
}

void EncodeMarkerKey(std::string_view table, std::string_view key, std::string& out) {
  out.clear();
  PutVarint(table.size() + 1, out);
  out.push_back('\0');
  out.append(table);
  out.append(key);
}

void EncodeMarker(uint64_t version, Micros expire_at_micros, Micros event_time_micros,
                  uint64_t bytes, std::string& out) {
  out.clear();
  PutVarint(version, out);
  PutVarint(static_cast<uint64_t>(expire_at_micros), out);
  const auto t = static_cast<uint64_t>(event_time_micros);
  PutVarint((t << 1) ^ static_cast<uint64_t>(event_time_micros >> 63), out);
  PutVarint(bytes, out);
}

bool DecodeMarker(std::string_view stored, uint64_t& version, Micros& expire_at_micros,
                  Micros& event_time_micros, uint64_t& bytes) {
  uint64_t expire = 0;
  uint64_t zigzag = 0;
  if (!GetVarint(stored, version) || !GetVarint(stored, expire) || !GetVarint(stored, zigzag) ||
      !GetVarint(stored, bytes) || !stored.empty()) {
    return false;
  }
  expire_at_micros = static_cast<Micros>(expire);
  event_time_micros = static_cast<Micros>(zigzag >> 1) ^ -static_cast<Micros>(zigzag & 1);
  return true;
}

bool DecodeKey(std::string_view stored, std::string_view& table, std::string_view& key) {
  if (!GetString(stored, table) || table.empty()) return false;
  key = stored;
  return !key.empty();
}

void EncodeValue(const record::Record& record, Micros expire_at_micros, uint64_t version,
                 std::string& out) {
  // Field i is named i-th: the same bytes as interning the names in order.
  out.clear();
  PutVarint(record.fields.size(), out);
  for (const record::Field& f : record.fields) {
    PutVarint(f.name.size(), out);
    out.append(f.name);
  }
  record::EncodePositional(record, expire_at_micros, version, out);
}

bool DecodeValueHeader(std::string_view stored, record::Record& out, Micros& expire_at_micros,
                       uint64_t& encoded_bytes) {
  uint64_t count = 0;
  if (!GetVarint(stored, count) || count > stored.size()) return false;
  for (uint64_t i = 0; i < count; ++i) {
    std::string_view name;
    if (!GetString(stored, name)) return false;
  }
  Result<record::EncodedHeader> header = record::DecodeHeader(stored);
  if (!header.ok()) return false;
  out.version = header->version;
  out.event_time_micros = header->event_time_micros;
  expire_at_micros = header->expire_at_micros;
  encoded_bytes = stored.size();
  return true;
}

bool DecodeValue(std::string_view stored, record::Record& out, Micros& expire_at_micros) {
  uint64_t count = 0;
  if (!GetVarint(stored, count) || count > stored.size()) return false;
  thread_local std::vector<std::string_view> names;  // reused: no allocation per record
  thread_local std::vector<std::string_view> sorted;
  names.clear();
  for (uint64_t i = 0; i < count; ++i) {
    std::string_view name;
    if (!GetString(stored, name)) return false;
    names.push_back(name);
  }
  sorted.assign(names.begin(), names.end());
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) return false;  // repeated
  Result<record::EncodedHeader> header = record::DecodeHeader(stored);
  if (!header.ok() || !record::DecodeNamed(stored, names, out).ok()) return false;
  expire_at_micros = header->expire_at_micros;
  return true;
}

}  // namespace ods::tier::internal
