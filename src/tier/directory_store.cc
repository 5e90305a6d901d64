#include "ods/tier/directory_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "ods/common/logging.h"
#include "ods/common/mutex.h"
#include "ods/common/thread_annotations.h"
#include "tier/backing_internal.h"
#include "tier/stored_codec.h"

namespace ods::tier {
namespace {

namespace fs = std::filesystem;
using internal::NameKey;

// Segment file: kMagic, then entries. Entry: fixed32 body_bytes | fixed32 crc32(the 4 length
// bytes, then the body) | body. Body: flags byte (kind, end of batch) | codec byte |
// varint table_bytes | table | varint key_bytes | key | put only: varint raw_value_bytes |
// value (the stored codec's bytes, zstd-compressed when codec is kCodecZstd).
constexpr std::string_view kMagic = "ODSBSEG1";
constexpr size_t kEntryHeaderBytes = 8;
constexpr uint8_t kKindPut = 1;
constexpr uint8_t kKindDelete = 2;
constexpr uint8_t kKindMask = 0x03;
constexpr uint8_t kFlagEndOfBatch = 0x80;
constexpr uint8_t kCodecNone = 0;
constexpr uint8_t kCodecZstd = 1;
// Bodies beyond this are corrupt (records are at most 64 MiB, limits.max_record_bytes).
constexpr uint32_t kMaxBodyBytes = uint32_t{1} << 30;
// Values shorter than this are stored raw: zstd's frame overhead eats any gain.
constexpr size_t kMinCompressBytes = 64;

void PutFixed32(uint32_t v, std::string& out) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t GetFixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

using internal::GetString;
using internal::GetVarint;
using internal::PutVarint;

uint32_t EntryCrc(const char* entry, std::string_view body) {
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(entry), 4);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()));
  return static_cast<uint32_t>(crc);
}

// Appends one entry (header and body) to `out`.
void AppendEntry(uint8_t flags, std::string_view table, std::string_view key,
                 std::string_view value, size_t raw_value_bytes, uint8_t codec, std::string& out) {
  const size_t start = out.size();
  out.append(kEntryHeaderBytes, '\0');
  out.push_back(static_cast<char>(flags));
  out.push_back(static_cast<char>(codec));
  PutVarint(table.size(), out);
  out.append(table);
  PutVarint(key.size(), out);
  out.append(key);
  if ((flags & kKindMask) == kKindPut) {
    PutVarint(raw_value_bytes, out);
    out.append(value);
  }
  const auto body_bytes = static_cast<uint32_t>(out.size() - start - kEntryHeaderBytes);
  std::string len;
  PutFixed32(body_bytes, len);
  out.replace(start, 4, len);
  const uint32_t crc =
      EntryCrc(out.data() + start, std::string_view(out).substr(start + kEntryHeaderBytes));
  std::string crc_bytes;
  PutFixed32(crc, crc_bytes);
  out.replace(start + 4, 4, crc_bytes);
}

// A parsed entry body. Views point into the buffer that was parsed.
struct ParsedEntry {
  uint8_t kind = 0;
  bool end_of_batch = false;
  uint8_t codec = kCodecNone;
  std::string_view table;
  std::string_view key;
  uint64_t raw_value_bytes = 0;
  std::string_view value;  // as stored (compressed or not)
};

bool ParseBody(std::string_view body, ParsedEntry& out) {
  if (body.size() < 2) return false;
  const auto flags = static_cast<uint8_t>(body[0]);
  out.kind = flags & kKindMask;
  out.end_of_batch = (flags & kFlagEndOfBatch) != 0;
  out.codec = static_cast<uint8_t>(body[1]);
  body.remove_prefix(2);
  if (out.kind != kKindPut && out.kind != kKindDelete) return false;
  if (out.codec != kCodecNone && out.codec != kCodecZstd) return false;
  if (!GetString(body, out.table) || !GetString(body, out.key)) return false;
  if (out.table.empty() || out.key.empty()) return false;
  if (out.kind == kKindDelete) return body.empty();
  if (!GetVarint(body, out.raw_value_bytes) || out.raw_value_bytes > kMaxBodyBytes) return false;
  out.value = body;
  return out.codec != kCodecNone || out.value.size() == out.raw_value_bytes;
}

std::string ErrnoText(int err) { return std::strerror(err); }

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

Status IoError(const std::string& what, const std::string& path, int err) {
  return UnavailableError("backing store: cannot " + what + " '" + path + "': " + ErrnoText(err));
}

// Writes all of `data` at `offset`.
Status WriteAll(int fd, std::string_view data, uint64_t offset, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("write", path, errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return OkStatus();
}

// Reads exactly `n` bytes at `offset` into `out`; kDataLoss if the file is shorter.
Status ReadExact(int fd, uint64_t offset, size_t n, const std::string& path, std::string& out) {
  out.resize(n);
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, out.data() + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return IoError("read", path, errno);
    }
    if (r == 0) {
      return {StatusCode::kDataLoss, "backing store: '" + path + "' ends at offset " +
                                         std::to_string(offset + done) + ", expected " +
                                         std::to_string(n - done) + " more bytes"};
    }
    done += static_cast<size_t>(r);
  }
  return OkStatus();
}

Status SyncDir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return IoError("open directory", dir, errno);
  if (::fsync(fd.get()) != 0) return IoError("fsync directory", dir, errno);
  return OkStatus();
}

std::string SegmentName(uint64_t id) {
  char name[32];
  std::snprintf(name, sizeof(name), "%012" PRIu64 ".seg", id);
  return name;
}

// The id of a segment file name, or 0 if `name` is not one.
uint64_t SegmentIdOf(std::string_view name) {
  if (name.size() != 16 || name.substr(12) != ".seg") return 0;
  uint64_t id = 0;
  for (char c : name.substr(0, 12)) {
    if (c < '0' || c > '9') return 0;
    id = id * 10 + static_cast<uint64_t>(c - '0');
  }
  return id;
}

constexpr std::string_view kCompactSuffix = ".compact";

struct Location {
  uint64_t segment = 0;
  uint64_t offset = 0;
  uint32_t entry_bytes = 0;    // header + body
  uint64_t logical_bytes = 0;  // table + key + raw value
};

struct Segment {
  std::string path;
  Fd fd;
  uint64_t file_bytes = 0;
  uint64_t live_bytes = 0;
  uint64_t live_records = 0;
};

}  // namespace

struct DirectoryStore::Impl {
  // Constant after Open.
  DirectoryStoreOptions options;
  Fd lock_fd;
  std::shared_ptr<spdlog::logger> log = Logger("ods.tier");

  mutable Mutex mu;
  // Stored key (internal::EncodeKey) → where its newest put is. Ordered: scans walk it.
  std::map<std::string, Location, std::less<>> index ODS_GUARDED_BY(mu);
  std::map<uint64_t, Segment> segments ODS_GUARDED_BY(mu);
  uint64_t active_id ODS_GUARDED_BY(mu) = 0;
  uint64_t logical_bytes ODS_GUARDED_BY(mu) = 0;
  // Set when a failed append could not be cut off the file: later writes would land behind
  // garbage, so every write fails until a restart (which cuts the torn tail).
  Status broken ODS_GUARDED_BY(mu);
  std::string key_buf ODS_GUARDED_BY(mu);

  Status Recover() ODS_REQUIRES(mu);
  Status ReplaySegment(uint64_t id, bool newest) ODS_REQUIRES(mu);
  Status CreateSegment(uint64_t id) ODS_REQUIRES(mu);
  Status Append(const std::string& entries,
                const std::vector<std::pair<std::string, Location>>& puts,
                const std::vector<std::string>& deletes) ODS_REQUIRES(mu);
  void SetLocation(std::string stored_key, const Location& loc) ODS_REQUIRES(mu);
  void EraseLocation(std::string_view stored_key) ODS_REQUIRES(mu);
  void Unaccount(const Location& loc) ODS_REQUIRES(mu);
  Result<std::optional<BackingEntry>> ReadEntry(std::string_view table, std::string_view key,
                                                const Location& loc) ODS_REQUIRES(mu);
  Status Compact(uint64_t id) ODS_REQUIRES(mu);
  std::string SegmentPath(uint64_t id) const { return options.dir + "/" + SegmentName(id); }
};

void DirectoryStore::Impl::Unaccount(const Location& loc) {
  auto seg = segments.find(loc.segment);
  if (seg != segments.end()) {
    seg->second.live_bytes -= loc.entry_bytes;
    seg->second.live_records -= 1;
  }
  logical_bytes -= loc.logical_bytes;
}

void DirectoryStore::Impl::SetLocation(std::string stored_key, const Location& loc) {
  auto it = index.find(stored_key);
  if (it != index.end()) {
    Unaccount(it->second);
    it->second = loc;
  } else {
    index.emplace(std::move(stored_key), loc);
  }
  Segment& seg = segments.at(loc.segment);
  seg.live_bytes += loc.entry_bytes;
  seg.live_records += 1;
  logical_bytes += loc.logical_bytes;
}

void DirectoryStore::Impl::EraseLocation(std::string_view stored_key) {
  auto it = index.find(stored_key);
  if (it == index.end()) return;
  Unaccount(it->second);
  index.erase(it);
}

Status DirectoryStore::Impl::CreateSegment(uint64_t id) {
  // Only the newest segment may have a torn tail: make the one being sealed whole on disk.
  if (auto prev = segments.find(active_id); prev != segments.end()) {
    if (::fdatasync(prev->second.fd.get()) != 0) return IoError("fsync", prev->second.path, errno);
  }
  const std::string path = SegmentPath(id);
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return IoError("create segment", path, errno);
  ODS_RETURN_IF_ERROR(WriteAll(fd.get(), kMagic, 0, path));
  if (::fdatasync(fd.get()) != 0) return IoError("fsync", path, errno);
  ODS_RETURN_IF_ERROR(SyncDir(options.dir));
  Segment seg;
  seg.path = path;
  seg.fd = std::move(fd);
  seg.file_bytes = kMagic.size();
  segments[id] = std::move(seg);
  active_id = id;
  return OkStatus();
}

Status DirectoryStore::Impl::ReplaySegment(uint64_t id, bool newest) {
  Segment& seg = segments.at(id);
  struct stat st {};
  if (::fstat(seg.fd.get(), &st) != 0) return IoError("stat", seg.path, errno);
  std::string data;
  ODS_RETURN_IF_ERROR(ReadExact(seg.fd.get(), 0, static_cast<size_t>(st.st_size), seg.path, data));
  seg.file_bytes = data.size();

  // Where the file must be cut (a torn tail of the newest segment), and why.
  uint64_t cut_at = 0;
  std::string torn_reason;
  auto torn = [&](uint64_t at, const std::string& reason) -> Status {
    if (!newest) {
      return {StatusCode::kDataLoss, "backing store: '" + seg.path + "' offset " +
                                         std::to_string(at) + ": " + reason +
                                         " (not the newest segment, so not a torn tail)"};
    }
    cut_at = at;
    torn_reason = reason;
    return OkStatus();
  };

  if (data.size() < kMagic.size() || std::string_view(data).substr(0, kMagic.size()) != kMagic) {
    if (newest && data.size() < kMagic.size() &&
        kMagic.substr(0, data.size()) == std::string_view(data)) {
      // A crash while creating the segment: start it over.
      log->warn("backing store: '{}' has a torn header; rewriting it", seg.path);
      ODS_RETURN_IF_ERROR(WriteAll(seg.fd.get(), kMagic, 0, seg.path));
      if (::fdatasync(seg.fd.get()) != 0) return IoError("fsync", seg.path, errno);
      seg.file_bytes = kMagic.size();
      return OkStatus();
    }
    return {StatusCode::kDataLoss,
            "backing store: '" + seg.path + "' offset 0: not a segment file (bad magic)"};
  }

  // Entries of the batch being read, applied once its last entry is seen.
  std::vector<std::pair<ParsedEntry, Location>> batch;
  uint64_t batch_start = kMagic.size();
  uint64_t pos = kMagic.size();
  const std::string_view all(data);
  while (pos < data.size()) {
    if (data.size() - pos < kEntryHeaderBytes) {
      ODS_RETURN_IF_ERROR(torn(batch_start, "entry header cut short"));
      break;
    }
    const uint32_t body_bytes = GetFixed32(data.data() + pos);
    const uint32_t crc = GetFixed32(data.data() + pos + 4);
    if (body_bytes > kMaxBodyBytes || data.size() - pos - kEntryHeaderBytes < body_bytes) {
      ODS_RETURN_IF_ERROR(torn(batch_start, "entry runs past the end of the file"));
      break;
    }
    const std::string_view body = all.substr(pos + kEntryHeaderBytes, body_bytes);
    const uint64_t next = pos + kEntryHeaderBytes + body_bytes;
    if (EntryCrc(data.data() + pos, body) != crc) {
      if (next == data.size()) {
        ODS_RETURN_IF_ERROR(torn(batch_start, "last entry fails its checksum"));
        break;
      }
      return {StatusCode::kDataLoss, "backing store: '" + seg.path + "' offset " +
                                         std::to_string(pos) + ": entry fails its checksum"};
    }
    ParsedEntry e;
    if (!ParseBody(body, e)) {
      return {StatusCode::kDataLoss, "backing store: '" + seg.path + "' offset " +
                                         std::to_string(pos) + ": malformed entry"};
    }
    Location loc;
    loc.segment = id;
    loc.offset = pos;
    loc.entry_bytes = static_cast<uint32_t>(kEntryHeaderBytes + body_bytes);
    loc.logical_bytes = e.table.size() + e.key.size() + e.raw_value_bytes;
    batch.emplace_back(e, loc);
    pos = next;
    if (e.end_of_batch) {
      for (const auto& [entry, where] : batch) {
        internal::EncodeKey(entry.table, entry.key, key_buf);
        if (entry.kind == kKindPut) {
          SetLocation(key_buf, where);
        } else {
          EraseLocation(key_buf);
        }
      }
      batch.clear();
      batch_start = pos;
    }
  }
  if (cut_at == 0 && !batch.empty()) {
    ODS_RETURN_IF_ERROR(torn(batch_start, "last batch is incomplete"));
  }
  if (cut_at != 0) {
    log->warn("backing store: '{}': cutting a torn tail of {} bytes at offset {} ({})", seg.path,
              data.size() - cut_at, cut_at, torn_reason);
    if (::ftruncate(seg.fd.get(), static_cast<off_t>(cut_at)) != 0 ||
        ::fdatasync(seg.fd.get()) != 0) {
      return IoError("cut the torn tail of", seg.path, errno);
    }
    seg.file_bytes = cut_at;
  }
  return OkStatus();
}

Status DirectoryStore::Impl::Recover() {
  std::error_code ec;
  std::vector<uint64_t> ids;
  for (const fs::directory_entry& entry : fs::directory_iterator(options.dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(kCompactSuffix)) {
      // A compaction that did not finish: the segment it was rewriting is still whole.
      fs::remove(entry.path(), ec);
      continue;
    }
    if (const uint64_t id = SegmentIdOf(name); id != 0) ids.push_back(id);
  }
  if (ec) {
    return UnavailableError("backing store: cannot list '" + options.dir + "': " + ec.message());
  }
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) {
    const std::string path = SegmentPath(id);
    Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd.valid()) return IoError("open segment", path, errno);
    Segment seg;
    seg.path = path;
    seg.fd = std::move(fd);
    segments[id] = std::move(seg);
  }
  for (uint64_t id : ids) ODS_RETURN_IF_ERROR(ReplaySegment(id, id == ids.back()));
  if (ids.empty()) return CreateSegment(1);
  active_id = ids.back();
  return OkStatus();
}

Status DirectoryStore::Impl::Append(const std::string& entries,
                                    const std::vector<std::pair<std::string, Location>>& puts,
                                    const std::vector<std::string>& deletes) {
  ODS_RETURN_IF_ERROR(broken);
  if (segments.at(active_id).file_bytes >= options.segment_max_bytes) {
    ODS_RETURN_IF_ERROR(CreateSegment(active_id + 1));
  }
  Segment& seg = segments.at(active_id);
  const uint64_t start = seg.file_bytes;
  Status written = WriteAll(seg.fd.get(), entries, start, seg.path);
  if (written.ok() && options.sync && ::fdatasync(seg.fd.get()) != 0) {
    written = IoError("fsync", seg.path, errno);
  }
  if (!written.ok()) {
    if (::ftruncate(seg.fd.get(), static_cast<off_t>(start)) != 0) {
      broken = UnavailableError("backing store: '" + seg.path +
                                "' has a failed write that could not be cut off (" +
                                written.message() + "); writes refused until a restart");
    }
    return written;
  }
  seg.file_bytes += entries.size();
  for (const auto& [stored_key, loc] : puts) {
    Location at = loc;
    at.segment = active_id;
    at.offset += start;
    SetLocation(stored_key, at);
  }
  for (const std::string& stored_key : deletes) EraseLocation(stored_key);
  return OkStatus();
}

Result<std::optional<BackingEntry>> DirectoryStore::Impl::ReadEntry(std::string_view table,
                                                                    std::string_view key,
                                                                    const Location& loc) {
  const Segment& seg = segments.at(loc.segment);
  auto corrupt = [&](const std::string& what) -> Status {
    return {StatusCode::kDataLoss, "backing store: " + NameKey(table, key) + ": '" + seg.path +
                                       "' offset " + std::to_string(loc.offset) + ": " + what};
  };
  std::string entry;
  Status read = ReadExact(seg.fd.get(), loc.offset, loc.entry_bytes, seg.path, entry);
  if (read.code() == StatusCode::kDataLoss) return corrupt(read.message());
  ODS_RETURN_IF_ERROR(read);
  const std::string_view body = std::string_view(entry).substr(kEntryHeaderBytes);
  if (GetFixed32(entry.data()) != body.size() ||
      EntryCrc(entry.data(), body) != GetFixed32(entry.data() + 4)) {
    return corrupt("entry fails its checksum");
  }
  ParsedEntry e;
  if (!ParseBody(body, e) || e.kind != kKindPut || e.table != table || e.key != key) {
    return corrupt("malformed entry");
  }
  std::string raw;
  std::string_view value = e.value;
  if (e.codec == kCodecZstd) {
    raw.resize(e.raw_value_bytes);
    const size_t n = ZSTD_decompress(raw.data(), raw.size(), e.value.data(), e.value.size());
    if (ZSTD_isError(n) || n != raw.size()) return corrupt("value does not decompress");
    value = raw;
  }
  BackingEntry out;
  if (!internal::DecodeValue(value, out.record, out.expire_at_micros)) {
    return corrupt("stored value does not decode");
  }
  return std::optional<BackingEntry>(std::move(out));
}

Status DirectoryStore::Impl::Compact(uint64_t id) {
  auto it = segments.find(id);
  if (it == segments.end()) {
    return NotFoundError("backing store: no segment " + std::to_string(id) + " in '" + options.dir +
                         "'");
  }
  if (id == active_id) {
    ODS_RETURN_IF_ERROR(broken);
    ODS_RETURN_IF_ERROR(CreateSegment(active_id + 1));
  }
  Segment& seg = segments.at(id);
  std::string data;
  ODS_RETURN_IF_ERROR(ReadExact(seg.fd.get(), 0, seg.file_bytes, seg.path, data));
  const bool has_older = segments.begin()->first < id;

  std::string out(kMagic);
  std::vector<std::pair<std::string, Location>> moved;
  uint64_t pos = kMagic.size();
  const std::string_view all(data);
  while (pos < data.size()) {
    auto corrupt = [&](const std::string& what) -> Status {
      return {StatusCode::kDataLoss,
              "backing store: '" + seg.path + "' offset " + std::to_string(pos) + ": " + what};
    };
    if (data.size() - pos < kEntryHeaderBytes) return corrupt("entry header cut short");
    const uint32_t body_bytes = GetFixed32(data.data() + pos);
    if (data.size() - pos - kEntryHeaderBytes < body_bytes) {
      return corrupt("entry runs past the end of the file");
    }
    const std::string_view body = all.substr(pos + kEntryHeaderBytes, body_bytes);
    if (EntryCrc(data.data() + pos, body) != GetFixed32(data.data() + pos + 4)) {
      return corrupt("entry fails its checksum");
    }
    ParsedEntry e;
    if (!ParseBody(body, e)) return corrupt("malformed entry");
    internal::EncodeKey(e.table, e.key, key_buf);
    auto live = index.find(key_buf);
    const bool keep = e.kind == kKindPut ? (live != index.end() && live->second.segment == id &&
                                            live->second.offset == pos)
                                         : (live == index.end() && has_older);
    if (keep) {
      Location loc;
      loc.segment = id;
      loc.offset = out.size();
      loc.entry_bytes = static_cast<uint32_t>(kEntryHeaderBytes + body_bytes);
      loc.logical_bytes = e.table.size() + e.key.size() + e.raw_value_bytes;
      // Each kept entry is a batch of its own: its batch was whole, or it would not be here.
      const size_t start = out.size();
      out.append(all.substr(pos, kEntryHeaderBytes + body_bytes));
      if ((body[0] & kFlagEndOfBatch) == 0) {
        out[start + kEntryHeaderBytes] =
            static_cast<char>(static_cast<uint8_t>(body[0]) | kFlagEndOfBatch);
        std::string crc;
        PutFixed32(EntryCrc(out.data() + start,
                            std::string_view(out).substr(start + kEntryHeaderBytes, body_bytes)),
                   crc);
        out.replace(start + 4, 4, crc);
      }
      if (e.kind == kKindPut) moved.emplace_back(key_buf, loc);
    }
    pos += kEntryHeaderBytes + body_bytes;
  }

  if (out.size() == kMagic.size()) {
    if (::unlink(seg.path.c_str()) != 0) return IoError("remove", seg.path, errno);
    ODS_RETURN_IF_ERROR(SyncDir(options.dir));
    log->info("backing store: removed segment '{}' ({} bytes, nothing live)", seg.path,
              data.size());
    segments.erase(id);
    return OkStatus();
  }
  const std::string tmp = seg.path + std::string(kCompactSuffix);
  Fd fd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return IoError("create", tmp, errno);
  Status written = WriteAll(fd.get(), out, 0, tmp);
  if (written.ok() && ::fdatasync(fd.get()) != 0) written = IoError("fsync", tmp, errno);
  if (written.ok() && ::rename(tmp.c_str(), seg.path.c_str()) != 0) {
    written = IoError("rename over", seg.path, errno);
  }
  if (!written.ok()) {
    ::unlink(tmp.c_str());
    return written;
  }
  ODS_RETURN_IF_ERROR(SyncDir(options.dir));
  log->info("backing store: compacted segment '{}' from {} to {} bytes", seg.path, data.size(),
            out.size());
  seg.fd = std::move(fd);
  seg.file_bytes = out.size();
  for (const auto& [stored_key, loc] : moved) SetLocation(stored_key, loc);
  return OkStatus();
}

DirectoryStore::DirectoryStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DirectoryStore::~DirectoryStore() = default;

Result<std::unique_ptr<DirectoryStore>> DirectoryStore::Open(const DirectoryStoreOptions& options) {
  if (options.dir.empty()) {
    return InvalidArgumentError("backing store: directory: dir must not be empty");
  }
  if (options.segment_max_bytes < (uint64_t{4} << 10) ||
      options.segment_max_bytes > (uint64_t{4} << 30)) {
    return InvalidArgumentError("backing store: directory: segment_max_bytes " +
                                std::to_string(options.segment_max_bytes) +
                                " is out of range; expected 4KiB to 4GiB");
  }
  if (options.compression_level < 1 || options.compression_level > 19) {
    return InvalidArgumentError("backing store: directory: compression_level " +
                                std::to_string(options.compression_level) +
                                " is out of range; expected 1 to 19");
  }
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) {
    return UnavailableError("backing store: cannot create directory '" + options.dir +
                            "': " + ec.message());
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  const std::string lock_path = options.dir + "/LOCK";
  impl->lock_fd = Fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!impl->lock_fd.valid()) return IoError("open", lock_path, errno);
  if (::flock(impl->lock_fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return UnavailableError("backing store: '" + options.dir +
                              "' is locked by another open store (is another odsd using it?)");
    }
    return IoError("lock", lock_path, errno);
  }
  {
    MutexLock lock(impl->mu);
    ODS_RETURN_IF_ERROR(impl->Recover());
    impl->log->info("backing store: opened directory '{}': {} records in {} segments", options.dir,
                    impl->index.size(), impl->segments.size());
  }
  return std::unique_ptr<DirectoryStore>(new DirectoryStore(std::move(impl)));
}

Status DirectoryStore::Put(std::span<const BackingPut> batch) {
  for (const BackingPut& p : batch) {
    ODS_RETURN_IF_ERROR(internal::CheckBackingKey(p.table, p.key));
    if (p.record == nullptr) {
      return InvalidArgumentError("backing store: " + NameKey(p.table, p.key) + ": no record");
    }
  }
  if (batch.empty()) return OkStatus();
  std::string entries;
  std::string value;
  std::string compressed;
  std::vector<std::pair<std::string, Location>> puts;
  puts.reserve(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    const BackingPut& p = batch[i];
    internal::EncodeValue(*p.record, p.expire_at_micros, p.version, value);
    std::string_view stored = value;
    uint8_t codec = kCodecNone;
    if (value.size() >= kMinCompressBytes) {
      compressed.resize(ZSTD_compressBound(value.size()));
      const size_t n = ZSTD_compress(compressed.data(), compressed.size(), value.data(),
                                     value.size(), impl_->options.compression_level);
      if (!ZSTD_isError(n) && n < value.size()) {
        compressed.resize(n);
        stored = compressed;
        codec = kCodecZstd;
      }
    }
    const uint8_t flags = kKindPut | (i + 1 == batch.size() ? kFlagEndOfBatch : 0);
    Location loc;
    loc.offset = entries.size();  // relative to the batch; Append adds the file position
    AppendEntry(flags, p.table, p.key, stored, value.size(), codec, entries);
    if (entries.size() - loc.offset > kEntryHeaderBytes + kMaxBodyBytes) {
      return InvalidArgumentError("backing store: " + NameKey(p.table, p.key) +
                                  ": record too large");
    }
    loc.entry_bytes = static_cast<uint32_t>(entries.size() - loc.offset);
    loc.logical_bytes = p.table.size() + p.key.size() + value.size();
    std::string stored_key;
    internal::EncodeKey(p.table, p.key, stored_key);
    puts.emplace_back(std::move(stored_key), loc);
  }
  MutexLock lock(impl_->mu);
  return impl_->Append(entries, puts, {});
}

Status DirectoryStore::Delete(std::span<const BackingKey> keys) {
  for (const BackingKey& k : keys) ODS_RETURN_IF_ERROR(internal::CheckBackingKey(k.table, k.key));
  MutexLock lock(impl_->mu);
  std::vector<std::string> deletes;
  std::vector<const BackingKey*> present;
  for (const BackingKey& k : keys) {
    std::string stored_key;
    internal::EncodeKey(k.table, k.key, stored_key);
    // A key without a record needs no tombstone: nothing older of it is live.
    if (impl_->index.find(stored_key) == impl_->index.end()) continue;
    if (std::find(deletes.begin(), deletes.end(), stored_key) != deletes.end()) continue;
    deletes.push_back(std::move(stored_key));
    present.push_back(&k);
  }
  if (deletes.empty()) return OkStatus();
  std::string entries;
  for (size_t i = 0; i < present.size(); ++i) {
    const uint8_t flags = kKindDelete | (i + 1 == present.size() ? kFlagEndOfBatch : 0);
    AppendEntry(flags, present[i]->table, present[i]->key, {}, 0, kCodecNone, entries);
  }
  return impl_->Append(entries, {}, deletes);
}

Result<std::optional<BackingEntry>> DirectoryStore::Get(std::string_view table,
                                                        std::string_view key) {
  ODS_RETURN_IF_ERROR(internal::CheckBackingKey(table, key));
  MutexLock lock(impl_->mu);
  internal::EncodeKey(table, key, impl_->key_buf);
  auto it = impl_->index.find(impl_->key_buf);
  if (it == impl_->index.end()) return std::optional<BackingEntry>();
  return impl_->ReadEntry(table, key, it->second);
}

Result<std::vector<std::optional<BackingEntry>>> DirectoryStore::GetMany(
    std::string_view table, std::span<const std::string_view> keys) {
  for (std::string_view key : keys) ODS_RETURN_IF_ERROR(internal::CheckBackingKey(table, key));
  std::vector<std::optional<BackingEntry>> out;
  out.reserve(keys.size());
  MutexLock lock(impl_->mu);
  for (std::string_view key : keys) {
    internal::EncodeKey(table, key, impl_->key_buf);
    auto it = impl_->index.find(impl_->key_buf);
    if (it == impl_->index.end()) {
      out.emplace_back();
      continue;
    }
    ODS_ASSIGN_OR_RETURN(std::optional<BackingEntry> entry,
                         impl_->ReadEntry(table, key, it->second));
    out.push_back(std::move(entry));
  }
  return out;
}

Result<BackingScanPage> DirectoryStore::ScanKeys(std::string_view table,
                                                 std::string_view start_after, size_t limit) {
  ODS_RETURN_IF_ERROR(internal::CheckBackingTable(table));
  ODS_RETURN_IF_ERROR(internal::CheckScanLimit(limit));
  std::string prefix;
  internal::EncodeKey(table, "", prefix);
  std::string from = prefix;
  from.append(start_after);
  BackingScanPage page;
  MutexLock lock(impl_->mu);
  auto it = start_after.empty() ? impl_->index.lower_bound(from) : impl_->index.upper_bound(from);
  for (; it != impl_->index.end() && it->first.starts_with(prefix); ++it) {
    if (page.keys.size() == limit) {
      page.more = true;
      break;
    }
    page.keys.push_back(it->first.substr(prefix.size()));
  }
  if (page.more) page.next_start_after = page.keys.back();
  return page;
}

Result<BackingStats> DirectoryStore::Stats() {
  MutexLock lock(impl_->mu);
  BackingStats stats;
  stats.records = impl_->index.size();
  stats.bytes = impl_->logical_bytes;
  return stats;
}

std::string DirectoryStore::Describe() const { return "directory " + impl_->options.dir; }

std::vector<SegmentInfo> DirectoryStore::Segments() const {
  MutexLock lock(impl_->mu);
  std::vector<SegmentInfo> out;
  for (const auto& [id, seg] : impl_->segments) {
    SegmentInfo info;
    info.id = id;
    info.path = seg.path;
    info.file_bytes = seg.file_bytes;
    info.live_bytes = seg.live_bytes;
    info.live_records = seg.live_records;
    info.active = id == impl_->active_id;
    out.push_back(std::move(info));
  }
  return out;
}

Status DirectoryStore::CompactSegment(uint64_t id) {
  MutexLock lock(impl_->mu);
  return impl_->Compact(id);
}

Result<size_t> DirectoryStore::Compact(double min_dead_fraction) {
  if (!(min_dead_fraction >= 0 && min_dead_fraction <= 1)) {
    return InvalidArgumentError("backing store: min_dead_fraction must be in [0, 1]");
  }
  MutexLock lock(impl_->mu);
  std::vector<uint64_t> candidates;
  for (const auto& [id, seg] : impl_->segments) {
    const uint64_t dead = seg.file_bytes - kMagic.size() - seg.live_bytes;
    if (id != impl_->active_id && dead > 0 &&
        static_cast<double>(dead) >= min_dead_fraction * static_cast<double>(seg.file_bytes)) {
      candidates.push_back(id);
    }
  }
  for (uint64_t id : candidates) ODS_RETURN_IF_ERROR(impl_->Compact(id));
  return candidates.size();
}

const std::string& DirectoryStore::dir() const { return impl_->options.dir; }

}  // namespace ods::tier
