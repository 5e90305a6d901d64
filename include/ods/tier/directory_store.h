#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/status.h"
#include "ods/tier/backing_store.h"

// The `directory` backing store: records in append-only segment files under one directory,
// values compressed with zstd, a CRC32 per entry, and an in-memory index rebuilt from the
// segments at open. Format and recovery rules: docs/architecture.md, "Backing store".
namespace ods::tier {

// One segment file, as DirectoryStore::Segments reports it.
struct SegmentInfo {
  uint64_t id = 0;  // segments are replayed in id order; newer writes have larger ids
  std::string path;
  uint64_t file_bytes = 0;  // size on disk
  uint64_t live_bytes = 0;  // bytes of the entries the index points to (the rest is dead)
  uint64_t live_records = 0;
  bool active = false;  // the segment new batches are appended to
};

// Thread-safe: one mutex serializes every call, including its disk I/O (a Get waits for a
// concurrent Put's fsync). Open takes an exclusive lock on DIR/LOCK (flock): a second Open of
// the same directory, from this or another process, fails with kUnavailable until this store
// is destroyed. The index holds every live key in RAM (about key + 64 bytes per record).
class DirectoryStore final : public BackingStore {
 public:
  // Opens or creates the store in options.dir: reads every segment in id order, checking each
  // entry's checksum, and rebuilds the index. A torn tail of the newest segment (an entry cut
  // short, a final entry whose checksum fails, or a batch whose last entry is missing: what a
  // crash during an append leaves) is cut off the file and logged at warn. Errors:
  // kInvalidArgument bad options; kUnavailable directory not usable, locked, or an I/O error;
  // kDataLoss any other bad entry (names the file and offset).
  static Result<std::unique_ptr<DirectoryStore>> Open(const DirectoryStoreOptions& options);

  ~DirectoryStore() override;
  DirectoryStore(const DirectoryStore&) = delete;
  DirectoryStore& operator=(const DirectoryStore&) = delete;

  // BackingStore. A batch is appended as one write to the active segment, then fsynced when
  // options.sync; a failed write is cut off the file again (kUnavailable). Get reads one entry
  // with one pread and checks its checksum (kDataLoss naming file, offset, table and key).
  Status Put(std::span<const BackingPut> batch) override;
  Status Delete(std::span<const BackingKey> keys) override;
  Result<std::optional<BackingEntry>> Get(std::string_view table, std::string_view key) override;
  Result<std::vector<std::optional<BackingEntry>>> GetMany(
      std::string_view table, std::span<const std::string_view> keys) override;
  Result<BackingScanPage> ScanKeys(std::string_view table, std::string_view start_after,
                                   size_t limit) override;
  Result<BackingStats> Stats() override;
  std::string Describe() const override;

  // Every segment file, in id order. O(segments).
  std::vector<SegmentInfo> Segments() const;

  // Rewrites segment `id` with only what is still needed: the records the index points to and
  // the deletes that hide an older segment's record. The new file is written beside the old
  // one, fsynced, then renamed over it (a crash leaves either file whole; a leftover temporary
  // file is removed at open); a segment left with nothing is removed. Compacting the active
  // segment first starts a new active one. Holds the store's mutex throughout: other calls wait
  // (O(segment bytes)). Errors: kNotFound no such segment; kUnavailable I/O error (the old
  // segment stays in use); kDataLoss an entry of the segment is corrupt.
  Status CompactSegment(uint64_t id);

  // Compacts every segment other than the active one whose dead bytes are at least
  // `min_dead_fraction` (in [0, 1]) of its file. Returns the number of segments rewritten.
  Result<size_t> Compact(double min_dead_fraction = 0.5);

  const std::string& dir() const;

 private:
  struct Impl;
  explicit DirectoryStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ods::tier
