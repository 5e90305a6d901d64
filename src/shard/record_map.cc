#include "record_map.h"

#include <cstdlib>

#include "ods/common/check.h"

namespace ods::shard {
namespace {

// glibc malloc: 8 bytes of chunk header, chunks in 16-byte steps, 32 bytes minimum.
uint64_t MallocChunkBytes(uint64_t request) {
  const uint64_t chunk = (request + 8 + 15) & ~uint64_t{15};
  return chunk < 32 ? 32 : chunk;
}

// Slot pointer + control byte, divided by abseil's maximum load factor (7/8).
constexpr uint64_t kSlotBytes = (sizeof(char*) + 1) * 8 / 7 + 1;

size_t VarintBytes(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

char* PutVarint(uint64_t v, char* out) {
  while (v >= 0x80) {
    *out++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *out++ = static_cast<char>(v);
  return out;
}

}  // namespace

RecordMap::~RecordMap() {
  for (const Slot& s : set_) std::free(s.block);
}

uint64_t RecordMap::EntryBytes(size_t key_bytes, size_t value_bytes, size_t trailer_bytes) {
  return kSlotBytes + MallocChunkBytes(VarintBytes(key_bytes) + VarintBytes(value_bytes) +
                                       key_bytes + value_bytes + trailer_bytes);
}

char* RecordMap::NewBlock(std::string_view key, std::string_view value, uint32_t stamp) const {
  ODS_CHECK(key.size() <= UINT32_MAX && value.size() <= UINT32_MAX);
  const size_t header = VarintBytes(key.size()) + VarintBytes(value.size());
  auto* block =
      static_cast<char*>(std::malloc(header + key.size() + value.size() + trailer_bytes_));
  ODS_CHECK(block != nullptr);
  char* p = PutVarint(value.size(), PutVarint(key.size(), block));
  std::memcpy(p, key.data(), key.size());
  if (!value.empty()) std::memcpy(p + key.size(), value.data(), value.size());
  if (trailer_bytes_ != 0) std::memcpy(p + key.size() + value.size(), &stamp, sizeof(stamp));
  return block;
}

std::string_view RecordMap::FindTouch(std::string_view key, uint32_t stamp) {
  auto it = set_.find(Absl(key));
  if (it == set_.end()) return {};
  SetStamp(it->block, stamp);
  return ValueOf(it->block);
}

std::string_view RecordMap::Find(std::string_view key) const {
  auto it = set_.find(Absl(key));
  if (it == set_.end()) return {};
  return ValueOf(it->block);
}

int64_t RecordMap::Upsert(std::string_view key, std::string_view value, uint32_t stamp) {
  auto it = set_.find(Absl(key));
  if (it == set_.end()) {
    set_.insert(Slot{NewBlock(key, value, stamp)});
    return static_cast<int64_t>(EntryBytes(key.size(), value.size(), trailer_bytes_));
  }
  char* block = it->block;
  const Layout layout = Parse(block);
  if (value.size() == layout.value_bytes) {
    if (!value.empty()) {
      std::memcpy(block + layout.header_bytes + layout.key_bytes, value.data(), value.size());
    }
    SetStamp(block, stamp);
    return 0;
  }
  const uint64_t old_bytes = AccountedBytes(block);
  it->block = NewBlock(key, value, stamp);
  std::free(block);
  return static_cast<int64_t>(EntryBytes(key.size(), value.size(), trailer_bytes_)) -
         static_cast<int64_t>(old_bytes);
}

uint64_t RecordMap::Erase(std::string_view key) {
  auto it = set_.find(Absl(key));
  if (it == set_.end()) return 0;
  char* block = it->block;
  const uint64_t freed = AccountedBytes(block);
  set_.erase(it);
  std::free(block);
  return freed;
}

}  // namespace ods::shard
