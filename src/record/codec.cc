#include "ods/record/codec.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "ods/common/varint.h"

namespace ods::record {
namespace {

// Bounds-checked reader over an encoded record; any overrun sets failed.
class Reader {
 public:
  explicit Reader(std::string_view data) : p_(data.data()), end_(data.data() + data.size()) {}

  bool Varint(uint64_t& out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      const auto b = static_cast<uint8_t>(*p_++);
      v |= uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) {
        out = v;
        return true;
      }
    }
    return false;
  }
  bool Raw(void* out, size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    std::memcpy(out, p_, n);
    p_ += n;
    return true;
  }
  bool View(size_t n, std::string_view& out) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    out = std::string_view(p_, n);
    p_ += n;
    return true;
  }
  bool Skip(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    p_ += n;
    return true;
  }
  bool done() const { return p_ == end_; }

 private:
  const char* p_;
  const char* end_;
};

size_t PayloadBytes(const Value& value) {
  return std::visit(
      [](const auto& v) -> size_t {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, int64_t>) return VarintSize(ZigZag(v));
        if constexpr (std::is_same_v<T, double>) return 8;
        if constexpr (std::is_same_v<T, bool>) return 1;
        if constexpr (std::is_same_v<T, std::string>) return VarintSize(v.size()) + v.size();
        if constexpr (std::is_same_v<T, Bytes>) return VarintSize(v.data.size()) + v.data.size();
        if constexpr (std::is_same_v<T, std::vector<float>>) {
          return VarintSize(v.size()) + 4 * v.size();
        }
        if constexpr (std::is_same_v<T, Timestamp>) return VarintSize(ZigZag(v.micros));
      },
      value);
}

void PutPayload(const Value& value, std::string& out) {
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, int64_t>) {
          PutVarint(ZigZag(v), out);
        } else if constexpr (std::is_same_v<T, double>) {
          out.append(reinterpret_cast<const char*>(&v), 8);
        } else if constexpr (std::is_same_v<T, bool>) {
          out.push_back(v ? 1 : 0);
        } else if constexpr (std::is_same_v<T, std::string>) {
          PutVarint(v.size(), out);
          out.append(v);
        } else if constexpr (std::is_same_v<T, Bytes>) {
          PutVarint(v.data.size(), out);
          out.append(v.data);
        } else if constexpr (std::is_same_v<T, std::vector<float>>) {
          PutVarint(v.size(), out);
          out.append(reinterpret_cast<const char*>(v.data()), 4 * v.size());
        } else if constexpr (std::is_same_v<T, Timestamp>) {
          PutVarint(ZigZag(v.micros), out);
        }
      },
      value);
}

Status Corrupt() { return Status(StatusCode::kDataLoss, "corrupt encoded record"); }

// Reads one payload of `type`; decodes into `out` when non-null, else skips it.
bool ReadPayload(Reader& r, ValueType type, Value* out) {
  switch (type) {
    case ValueType::kInt64:
    case ValueType::kTimestamp: {
      uint64_t v = 0;
      if (!r.Varint(v)) return false;
      if (out != nullptr) {
        if (type == ValueType::kInt64) {
          *out = UnZigZag(v);
        } else {
          *out = Timestamp{UnZigZag(v)};
        }
      }
      return true;
    }
    case ValueType::kDouble: {
      double d = 0;
      if (!r.Raw(&d, 8)) return false;
      if (out != nullptr) *out = d;
      return true;
    }
    case ValueType::kBool: {
      uint8_t b = 0;
      if (!r.Raw(&b, 1)) return false;
      if (out != nullptr) *out = (b != 0);
      return true;
    }
    case ValueType::kString:
    case ValueType::kBytes: {
      uint64_t n = 0;
      std::string_view s;
      if (!r.Varint(n) || !r.View(n, s)) return false;
      if (out != nullptr) {
        if (type == ValueType::kString) {
          *out = std::string(s);
        } else {
          *out = Bytes{std::string(s)};
        }
      }
      return true;
    }
    case ValueType::kFloatVector: {
      uint64_t n = 0;
      if (!r.Varint(n) || n > (uint64_t{1} << 40)) return false;
      if (out == nullptr) return r.Skip(4 * n);
      std::string_view s;
      if (!r.View(4 * n, s)) return false;
      std::vector<float> v(n);
      if (n > 0) std::memcpy(v.data(), s.data(), 4 * n);  // an empty vector's data() may be null
      *out = std::move(v);
      return true;
    }
  }
  return false;
}

bool ReadHeader(Reader& r, EncodedHeader& h) {
  uint64_t expire = 0;
  uint64_t event = 0;
  if (!r.Varint(expire) || !r.Varint(h.version) || !r.Varint(event)) return false;
  h.expire_at_micros = static_cast<Micros>(expire);
  h.event_time_micros = UnZigZag(event);
  return true;
}

}  // namespace

FieldDictionary::FieldDictionary(const std::vector<std::string>& initial_names) {
  for (const std::string& n : initial_names) Intern(n);
}

uint32_t FieldDictionary::Intern(std::string_view name) {
  if (auto it = ids_.find(name); it != ids_.end()) return it->second;
  const auto id = static_cast<uint32_t>(names_.size());
  names_.emplace_back(name);
  ids_.emplace(std::string(name), id);
  return id;
}

std::optional<uint32_t> FieldDictionary::Find(std::string_view name) const {
  if (auto it = ids_.find(name); it != ids_.end()) return it->second;
  return std::nullopt;
}

size_t FieldDictionary::memory_bytes() const {
  size_t bytes = names_.capacity() * sizeof(std::string) + ids_.size() * 64;
  for (const std::string& n : names_) bytes += 2 * n.size();
  return bytes;
}

void Encode(const Record& record, Micros expire_at_micros, uint64_t version, FieldDictionary& dict,
            std::string& out) {
  // Canonical order: fields by ascending id, so equal records encode to equal bytes.
  thread_local std::vector<std::pair<uint32_t, const Value*>> ids;  // reused: no allocation
  ids.clear();
  for (const Field& f : record.fields) ids.emplace_back(dict.Intern(f.name), &f.value);
  std::sort(ids.begin(), ids.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  out.clear();
  out.reserve(24 + EncodedFieldBytes(record));
  PutVarint(static_cast<uint64_t>(expire_at_micros), out);
  PutVarint(version, out);
  PutVarint(ZigZag(record.event_time_micros), out);
  for (const auto& [id, value] : ids) {
    PutVarint(id, out);
    out.push_back(static_cast<char>(TypeOf(*value)));
    PutPayload(*value, out);
  }
}

size_t EncodedFieldBytes(const Record& record) {
  size_t n = 0;
  for (const Field& f : record.fields) n += 3 + PayloadBytes(f.value);
  return n;
}

Result<EncodedHeader> DecodeHeader(std::string_view encoded) {
  Reader r(encoded);
  EncodedHeader h;
  if (!ReadHeader(r, h)) return Corrupt();
  return h;
}

namespace {

// Decode's body; name_of(id) gives field id's name (id < name_count).
template <class NameOf>
Status DecodeWith(std::string_view encoded, size_t name_count, const NameOf& name_of,
                  const std::vector<uint32_t>* projection, Record& out) {
  Reader r(encoded);
  EncodedHeader h;
  if (!ReadHeader(r, h)) return Corrupt();
  out.fields.clear();
  out.version = h.version;
  out.event_time_micros = h.event_time_micros;
  // Encode writes ids strictly ascending; a repeat would decode to a record naming a field twice.
  uint64_t next_id = 0;
  while (!r.done()) {
    uint64_t id = 0;
    uint8_t type_byte = 0;
    if (!r.Varint(id) || !r.Raw(&type_byte, 1)) return Corrupt();
    if (id < next_id || id >= name_count || type_byte < 1 || type_byte > 7) return Corrupt();
    next_id = id + 1;
    const bool wanted = projection == nullptr ||
                        std::binary_search(projection->begin(), projection->end(),
                                           static_cast<uint32_t>(id));
    const auto type = static_cast<ValueType>(type_byte);
    if (!wanted) {
      if (!ReadPayload(r, type, nullptr)) return Corrupt();
      continue;
    }
    Field& f = out.fields.emplace_back();
    f.name = name_of(static_cast<uint32_t>(id));
    if (!ReadPayload(r, type, &f.value)) return Corrupt();
  }
  std::sort(out.fields.begin(), out.fields.end(),
            [](const Field& a, const Field& b) { return a.name < b.name; });
  return OkStatus();
}

}  // namespace

Status Decode(std::string_view encoded, const FieldDictionary& dict,
              const std::vector<uint32_t>* projection, Record& out) {
  return DecodeWith(
      encoded, dict.size(), [&](uint32_t id) -> const std::string& { return dict.Name(id); },
      projection, out);
}

Status DecodeNamed(std::string_view encoded, std::span<const std::string_view> names,
                   Record& out) {
  return DecodeWith(
      encoded, names.size(), [&](uint32_t id) { return names[id]; }, nullptr, out);
}

void EncodePositional(const Record& record, Micros expire_at_micros, uint64_t version,
                      std::string& out) {
  out.reserve(out.size() + 24 + EncodedFieldBytes(record));
  PutVarint(static_cast<uint64_t>(expire_at_micros), out);
  PutVarint(version, out);
  PutVarint(ZigZag(record.event_time_micros), out);
  for (size_t id = 0; id < record.fields.size(); ++id) {
    const Value& value = record.fields[id].value;
    PutVarint(id, out);
    out.push_back(static_cast<char>(TypeOf(value)));
    PutPayload(value, out);
  }
}

void EncodeRow(Micros time, std::span<const std::optional<Value>> values, std::string& out) {
  out.clear();
  PutVarint(ZigZag(time), out);
  PutVarint(values.size(), out);
  for (const std::optional<Value>& v : values) {
    if (!v) {
      out.push_back(0);
      continue;
    }
    out.push_back(static_cast<char>(TypeOf(*v)));
    PutPayload(*v, out);
  }
}

Status DecodeRow(std::string_view encoded, Micros& time, std::vector<std::optional<Value>>& values) {
  Reader r(encoded);
  uint64_t zigzag = 0;
  uint64_t count = 0;
  // Each value takes at least its type byte: a count beyond the bytes left is corrupt.
  if (!r.Varint(zigzag) || !r.Varint(count) || count > encoded.size()) return Corrupt();
  time = UnZigZag(zigzag);
  values.assign(count, std::nullopt);
  for (uint64_t i = 0; i < count; ++i) {
    uint8_t type_byte = 0;
    if (!r.Raw(&type_byte, 1) || type_byte > 7) return Corrupt();
    if (type_byte == 0) continue;
    values[i].emplace();
    if (!ReadPayload(r, static_cast<ValueType>(type_byte), &*values[i])) return Corrupt();
  }
  return r.done() ? OkStatus() : Corrupt();
}

}  // namespace ods::record
