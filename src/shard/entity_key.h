#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"

namespace ods::shard {

// The key of an entity as stored in an entity map: keys of up to kInlineBytes live inside the
// map slot, so a lookup's key comparison reads the slot it has already fetched. (A std::string
// keeps only 15 bytes inline; every longer key cost one more cache miss per lookup, 12-15% of
// odsd's CPU in a GetOnlineFeatures profile with 16-byte keys.) Longer keys take one heap block.
//
// 48 bytes; holds a 36-character UUID inline. Thread-compatible; a value type.
class EntityKey {
 public:
  static constexpr size_t kInlineBytes = 44;

  explicit EntityKey(absl::string_view key) { Assign(key.data(), key.size()); }
  explicit EntityKey(std::string_view key) { Assign(key.data(), key.size()); }
  EntityKey(const EntityKey& other) { Assign(other.data(), other.size_); }
  EntityKey(EntityKey&& other) noexcept : size_(other.size_) {
    std::memcpy(bytes_, other.bytes_, sizeof(bytes_));
    other.size_ = 0;  // a moved-from heap key no longer owns its block
  }
  EntityKey& operator=(const EntityKey& other) {
    if (this != &other) {
      Release();
      Assign(other.data(), other.size_);
    }
    return *this;
  }
  EntityKey& operator=(EntityKey&& other) noexcept {
    if (this != &other) {
      Release();
      size_ = other.size_;
      std::memcpy(bytes_, other.bytes_, sizeof(bytes_));
      other.size_ = 0;
    }
    return *this;
  }
  ~EntityKey() { Release(); }

  std::string_view view() const { return {data(), size_}; }
  size_t size() const { return size_; }
  // Heap bytes beyond the object (0 for an inline key).
  size_t heap_bytes() const { return size_ > kInlineBytes ? size_ : 0; }

 private:
  const char* data() const { return size_ > kInlineBytes ? heap() : bytes_; }
  char* heap() const {
    char* p;
    std::memcpy(&p, bytes_, sizeof(p));
    return p;
  }
  void Assign(const char* data, size_t size) {
    size_ = static_cast<uint32_t>(size);
    if (size <= kInlineBytes) {
      std::memcpy(bytes_, data, size);
      return;
    }
    char* p = new char[size];
    std::memcpy(p, data, size);
    std::memcpy(bytes_, &p, sizeof(p));
  }
  void Release() {
    if (size_ > kInlineBytes) delete[] heap();
    size_ = 0;
  }

  // size_ <= kInlineBytes: the key is bytes_[0, size_); otherwise bytes_ holds a char* to a
  // block of size_ bytes owned by this object.
  char bytes_[kInlineBytes];
  uint32_t size_ = 0;
};

// Transparent hash and equality: maps keyed by EntityKey are probed with absl::string_view.
struct EntityKeyHash {
  using is_transparent = void;
  size_t operator()(absl::string_view key) const { return absl::Hash<absl::string_view>()(key); }
  size_t operator()(const EntityKey& key) const {
    const std::string_view v = key.view();
    return (*this)(absl::string_view(v.data(), v.size()));
  }
};

struct EntityKeyEq {
  using is_transparent = void;
  static std::string_view View(const EntityKey& key) { return key.view(); }
  static std::string_view View(absl::string_view key) { return {key.data(), key.size()}; }
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    return View(a) == View(b);
  }
};

}  // namespace ods::shard
