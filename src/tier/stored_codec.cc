#include "tier/stored_codec.h"

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
  record::FieldDictionary dict;
  for (const record::Field& f : record.fields) dict.Intern(f.name);
  out.clear();
  PutVarint(dict.size(), out);
  for (uint32_t id = 0; id < dict.size(); ++id) {
    PutVarint(dict.Name(id).size(), out);
    out.append(dict.Name(id));
  }
  std::string encoded;
  record::Encode(record, expire_at_micros, version, dict, encoded);
  out.append(encoded);
}

bool DecodeValue(std::string_view stored, record::Record& out, Micros& expire_at_micros) {
  uint64_t count = 0;
  if (!GetVarint(stored, count) || count > stored.size()) return false;
  std::vector<std::string> names;
  names.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    std::string_view name;
    if (!GetString(stored, name)) return false;
    names.emplace_back(name);
  }
  const record::FieldDictionary dict(names);
  if (dict.size() != names.size()) return false;  // a repeated name
  Result<record::EncodedHeader> header = record::DecodeHeader(stored);
  if (!header.ok() || !record::Decode(stored, dict, nullptr, out).ok()) return false;
  expire_at_micros = header->expire_at_micros;
  return true;
}

}  // namespace ods::tier::internal
