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
//   [varint key_bytes][varint value_bytes][key][value][stamp]
// where the 4-byte `stamp` (an access time in seconds, for tiering's idle_for) is there only in
// a map built with access stamps.
// The table slot is a single pointer. Compared with a map of two std::strings this halves the
// bytes per record (no 64-byte slot, one allocation instead of up to two) and a lookup touches
// two cache lines (slot, block) instead of three. The header is 2 bytes for keys and records
// under 128 bytes: with 16-byte malloc steps, every byte of header decides whether a small
// record takes a 64- or an 80-byte chunk. Thread-compatible; the owning shard's lock serializes
// access.
class RecordMap {
 public:
  // With `access_stamps`, every entry carries a uint32 stamp (Upsert sets it, FindTouch
  // refreshes it, VisitFrom reports it); without, entries have none and stamps read as 0.
  explicit RecordMap(bool access_stamps = false) : trailer_bytes_(access_stamps ? 4 : 0) {}
  ~RecordMap();
  RecordMap(const RecordMap&) = delete;
  RecordMap& operator=(const RecordMap&) = delete;

  // The encoded record under `key`, or a view with data() == nullptr. Valid until the next
  // mutating call. O(1) expected, no allocation.
  std::string_view Find(std::string_view key) const;

  // As Find, and sets `stamp` to the entry's stamp (0 without access stamps or when absent).
  std::string_view FindStamped(std::string_view key, uint32_t& stamp) const {
    auto it = set_.find(Absl(key));
    if (it == set_.end()) {
      stamp = 0;
      return {};
    }
    stamp = StampOf(it->block);
    return ValueOf(it->block);
  }

  // As Find, and sets the entry's stamp to `stamp` (no-op without access stamps).
  std::string_view FindTouch(std::string_view key, uint32_t stamp);

  // Inserts or replaces the record under `key`, with stamp `stamp`. Returns the change in
  // accounted bytes. Replacing with a value of the same size (fixed-width typed records) reuses
  // the block.
  int64_t Upsert(std::string_view key, std::string_view value, uint32_t stamp = 0);

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

  // Visits up to `max_visits` entries as EraseIfFrom does (same resume contract), calling
  // fn(key, value, stamp) for each; fn must not mutate the map. Returns the entries visited.
  template <typename Fn>
  size_t VisitFrom(std::string& resume_key, Fn fn, size_t max_visits) const {
    auto it = set_.begin();
    if (!resume_key.empty()) {
      it = set_.find(Absl(resume_key));
      if (it == set_.end()) it = set_.begin();
    }
    size_t visited = 0;
    for (; it != set_.end() && visited < max_visits; ++it, ++visited) {
      fn(KeyOf(it->block), ValueOf(it->block), StampOf(it->block));
    }
    if (it == set_.end()) {
      resume_key.clear();
    } else {
      resume_key.assign(KeyOf(it->block));
    }
    return visited;
  }

  size_t size() const { return set_.size(); }
  bool access_stamps() const { return trailer_bytes_ != 0; }

  // Bytes accounted for an entry of this key and value size (plus `trailer_bytes` of stamp):
  // the block as malloc rounds it, plus the slot and control byte at the table's maximum load.
  static uint64_t EntryBytes(size_t key_bytes, size_t value_bytes, size_t trailer_bytes = 0);
  static constexpr size_t kStampBytes = 4;

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
  uint64_t AccountedBytes(const char* block) const {
    const Layout l = Parse(block);
    return EntryBytes(l.key_bytes, l.value_bytes, trailer_bytes_);
  }
  uint32_t StampOf(const char* block) const {
    if (trailer_bytes_ == 0) return 0;
    const Layout l = Parse(block);
    uint32_t stamp = 0;
    std::memcpy(&stamp, block + l.header_bytes + l.key_bytes + l.value_bytes, sizeof(stamp));
    return stamp;
  }
  void SetStamp(char* block, uint32_t stamp) const {
    if (trailer_bytes_ == 0) return;
    const Layout l = Parse(block);
    std::memcpy(block + l.header_bytes + l.key_bytes + l.value_bytes, &stamp, sizeof(stamp));
  }
  // Debian's abseil has its own string_view type; heterogeneous lookups must use it.
  static absl::string_view Absl(std::string_view s) { return {s.data(), s.size()}; }
  char* NewBlock(std::string_view key, std::string_view value, uint32_t stamp) const;

  const uint32_t trailer_bytes_;
  absl::flat_hash_set<Slot, Hash, Eq> set_;
};

}  // namespace ods::shard
