#pragma once

// Private to shard/. The hash map from key to encoded record of one table in one shard.

#include <absl/container/flat_hash_set.h>
#include <absl/hash/hash.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

namespace ods::shard {

// Key -> encoded record, with ONE heap block per entry holding both:
//   [varint key_bytes][varint value_bytes][key][value]
// The table slot is a single pointer. Compared with a map of two std::strings this halves the
// bytes per record (no 64-byte slot, one allocation instead of up to two) and a lookup touches
// two cache lines (slot, block) instead of three. The header is 2 bytes for keys and records
// under 128 bytes: with 16-byte malloc steps, every byte of header decides whether a small
// record takes a 64- or an 80-byte chunk. Thread-compatible; the owning shard's lock serializes
// access.
class RecordMap {
 public:
  RecordMap() = default;
  ~RecordMap();
  RecordMap(const RecordMap&) = delete;
  RecordMap& operator=(const RecordMap&) = delete;

  // The encoded record under `key`, or a view with data() == nullptr. Valid until the next
  // mutating call. O(1) expected, no allocation.
  std::string_view Find(std::string_view key) const;

  // Inserts or replaces the record under `key`. Returns the change in accounted bytes.
  // Replacing with a value of the same size (fixed-width typed records) reuses the block.
  int64_t Upsert(std::string_view key, std::string_view value);

  // Removes `key`; returns the accounted bytes freed (0 if absent).
  uint64_t Erase(std::string_view key);

  // Calls fn(key, value) for every entry, in unspecified order. fn must not mutate the map.
  template <typename Fn>
  void ForEach(Fn fn) const {
    for (const Slot& s : set_) fn(KeyOf(s.block), ValueOf(s.block));
  }

  // Visits up to `max_visits` entries, starting at the entry of key `resume_key` (the first
  // entry if it is empty or no longer present), and removes those for which pred(key, value)
  // holds. Sets `resume_key` to the key of the entry to visit next, or clears it when the walk
  // reached the end. Adds the accounted bytes freed to `freed_bytes`. Returns {removed, visited}.
  // An entry inserted meanwhile, or moved by the table's growth, may be missed by this pass.
  template <typename Pred>
  std::pair<size_t, size_t> EraseIfFrom(std::string& resume_key, Pred pred, size_t max_visits,
                                        uint64_t& freed_bytes) {
    auto it = set_.begin();
    if (!resume_key.empty()) {
      it = set_.find(Absl(resume_key));
      if (it == set_.end()) it = set_.begin();
    }
    size_t removed = 0;
    size_t visited = 0;
    for (; it != set_.end() && visited < max_visits; ++visited) {
      char* block = it->block;
      if (pred(KeyOf(block), ValueOf(block))) {
        freed_bytes += AccountedBytes(block);
        set_.erase(it++);  // abseil: erase leaves other iterators valid.
        std::free(block);
        ++removed;
      } else {
        ++it;
      }
    }
    if (it == set_.end()) {
      resume_key.clear();
    } else {
      resume_key.assign(KeyOf(it->block));
    }
    return {removed, visited};
  }

  size_t size() const { return set_.size(); }

  // Bytes accounted for an entry of this key and value size: the block as malloc rounds it,
  // plus the slot and control byte at the table's maximum load.
  static uint64_t EntryBytes(size_t key_bytes, size_t value_bytes);

 private:
  // Parsed block header.
  struct Layout {
    uint32_t key_bytes;
    uint32_t value_bytes;
    uint32_t header_bytes;
  };
  static Layout Parse(const char* block) {
    Layout l{0, 0, 0};
    const auto* p = reinterpret_cast<const unsigned char*>(block);
    for (uint32_t* field : {&l.key_bytes, &l.value_bytes}) {
      uint32_t v = 0;
      for (int shift = 0;; shift += 7) {
        const unsigned char b = p[l.header_bytes++];
        v |= static_cast<uint32_t>(b & 0x7f) << shift;
        if ((b & 0x80) == 0) break;
      }
      *field = v;
    }
    return l;
  }

  struct Slot {
    mutable char* block;  // Owned. Mutable: a replacement swaps in a block with the same key.
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(absl::string_view key) const { return absl::Hash<absl::string_view>()(key); }
    size_t operator()(const Slot& s) const { return (*this)(Absl(KeyOf(s.block))); }
  };
  struct Eq {
    using is_transparent = void;
    bool operator()(const Slot& a, const Slot& b) const { return KeyOf(a.block) == KeyOf(b.block); }
    bool operator()(const Slot& a, absl::string_view b) const {
      return KeyOf(a.block) == std::string_view(b.data(), b.size());
    }
    bool operator()(absl::string_view a, const Slot& b) const { return (*this)(b, a); }
  };

  static std::string_view KeyOf(const char* block) {
    const Layout l = Parse(block);
    return {block + l.header_bytes, l.key_bytes};
  }
  static std::string_view ValueOf(const char* block) {
    const Layout l = Parse(block);
    return {block + l.header_bytes + l.key_bytes, l.value_bytes};
  }
  static uint64_t AccountedBytes(const char* block) {
    const Layout l = Parse(block);
    return EntryBytes(l.key_bytes, l.value_bytes);
  }
  // Debian's abseil has its own string_view type; heterogeneous lookups must use it.
  static absl::string_view Absl(std::string_view s) { return {s.data(), s.size()}; }
  static char* NewBlock(std::string_view key, std::string_view value);

  absl::flat_hash_set<Slot, Hash, Eq> set_;
};

}  // namespace ods::shard
