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

}  // namespace

RecordMap::~RecordMap() {
  for (const Slot& s : set_) std::free(s.block);
}

uint64_t RecordMap::EntryBytes(size_t key_bytes, size_t value_bytes) {
  return kSlotBytes + MallocChunkBytes(kHeaderBytes + key_bytes + value_bytes);
}

char* RecordMap::NewBlock(std::string_view key, std::string_view value) {
  ODS_CHECK(key.size() <= UINT32_MAX && value.size() <= UINT32_MAX);
  auto* block = static_cast<char*>(std::malloc(kHeaderBytes + key.size() + value.size()));
  ODS_CHECK(block != nullptr);
  const uint32_t header[3] = {static_cast<uint32_t>(key.size()), static_cast<uint32_t>(value.size()),
                              static_cast<uint32_t>(value.size())};
  std::memcpy(block, header, kHeaderBytes);
  std::memcpy(block + kHeaderBytes, key.data(), key.size());
  if (!value.empty()) std::memcpy(block + kHeaderBytes + key.size(), value.data(), value.size());
  return block;
}

std::string_view RecordMap::Find(std::string_view key) const {
  auto it = set_.find(Absl(key));
  if (it == set_.end()) return {};
  return ValueOf(it->block);
}

int64_t RecordMap::Upsert(std::string_view key, std::string_view value) {
  auto it = set_.find(Absl(key));
  if (it == set_.end()) {
    set_.insert(Slot{NewBlock(key, value)});
    return static_cast<int64_t>(EntryBytes(key.size(), value.size()));
  }
  char* block = it->block;
  const uint32_t capacity = Field(block, 2);
  // Reuse the block when the new value fits and would not leave more than half of it idle.
  if (value.size() <= capacity && value.size() * 2 >= capacity) {
    const auto size = static_cast<uint32_t>(value.size());
    std::memcpy(block + 4, &size, 4);
    if (!value.empty()) std::memcpy(block + kHeaderBytes + key.size(), value.data(), value.size());
    return 0;
  }
  const uint64_t old_bytes = AccountedBytes(block);
  it->block = NewBlock(key, value);
  std::free(block);
  return static_cast<int64_t>(EntryBytes(key.size(), value.size())) -
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
