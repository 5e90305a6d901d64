#include "ods/tier/rocksdb_tier.h"

#include <malloc.h>
#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/iterator.h>
#include <rocksdb/listener.h>
#include <rocksdb/options.h>
#include <rocksdb/statistics.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "ods/common/logging.h"
#include "tier/stored_codec.h"

namespace ods::tier {
namespace {

// After a memtable flush, hands the memory it freed back to the OS. A memtable's arena blocks
// (1/8 of the 64 MiB write buffer each) come from the heap once glibc's dynamic mmap threshold
// has risen past them, and a flush frees them all at once; untrimmed they stay resident as free
// heap until the next memtable grows into them, so RSS stays up to a memtable above what odsd
// holds. One malloc_trim per flush (a minute or more apart under write load), on RocksDB's
// flush thread.
class TrimAfterFlush final : public rocksdb::EventListener {
 public:
  void OnFlushCompleted(rocksdb::DB* /*db*/, const rocksdb::FlushJobInfo& /*info*/) override {
    malloc_trim(0);
  }
};

// RocksDB's status as ours: I/O problems are kUnavailable (the store cannot take writes now),
// corruption kDataLoss, anything else kInternal.
Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  std::string message = std::string(what) + ": " + s.ToString();
  if (s.IsCorruption()) return {StatusCode::kDataLoss, std::move(message)};
  if (s.IsIOError() || s.IsNoSpace() || s.IsBusy() || s.IsTryAgain() || s.IsShutdownInProgress() ||
      s.IsTimedOut() || s.IsIncomplete()) {
    return UnavailableError(std::move(message));
  }
  return InternalError(std::move(message));
}

// Retained events live in the default column family under keys that start with a 0 byte, which no
// record or marker key does (those start with the varint length of a non-empty table name):
// 0 | template id (4 bytes, big-endian) | varint len(entity) | entity | seq (8 bytes, big-endian).
// Big-endian numbers keep one entity's events in seq order and contiguous.
// Tiles blobs (PutTiles) share that space, their template id with the top bit set (template ids
// are far below 2^31), so an event range deletion never reaches them:
// 0 | template id | 2^31 (4 bytes, big-endian) | varint len(entity) | entity | blob id (8 bytes).
constexpr uint32_t kTilesBit = uint32_t{1} << 31;
constexpr char kEventsBegin[] = {'\0'};
constexpr char kEventsEnd[] = {'\1'};

void AppendBigEndian(uint64_t v, int bytes, std::string& out) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void EncodeEventPrefix(uint32_t template_id, std::string_view entity, std::string& out) {
  out.clear();
  out.push_back('\0');
  AppendBigEndian(template_id, 4, out);
  internal::PutVarint(entity.size(), out);
  out.append(entity);
}

void EncodeEventKey(uint32_t template_id, std::string_view entity, uint64_t seq, std::string& out) {
  EncodeEventPrefix(template_id, entity, out);
  AppendBigEndian(seq, 8, out);
}

void EncodeTilesKey(uint32_t template_id, std::string_view entity, uint64_t blob_id,
                    std::string& out) {
  ODS_CHECK(template_id < kTilesBit);
  EncodeEventKey(template_id | kTilesBit, entity, blob_id, out);
}

uint64_t ReadBigEndian64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

}  // namespace

struct WriteBatch::Rep {
  rocksdb::WriteBatch batch;
  std::string key;    // reused
  std::string value;  // reused
  size_t count = 0;
};

WriteBatch::WriteBatch() : rep_(std::make_unique<Rep>()) {}
WriteBatch::~WriteBatch() = default;
WriteBatch::WriteBatch(WriteBatch&&) noexcept = default;
WriteBatch& WriteBatch::operator=(WriteBatch&&) noexcept = default;

void WriteBatch::Put(std::string_view table, std::string_view key, const record::Record& record,
                     Micros expire_at_micros, uint64_t version) {
  internal::EncodeKey(table, key, rep_->key);
  internal::EncodeValue(record, expire_at_micros, version, rep_->value);
  ODS_CHECK(rep_->batch.Put(rep_->key, rep_->value).ok());
  ++rep_->count;
}

void WriteBatch::Delete(std::string_view table, std::string_view key) {
  internal::EncodeKey(table, key, rep_->key);
  ODS_CHECK(rep_->batch.Delete(rep_->key).ok());
  internal::EncodeMarkerKey(table, key, rep_->key);
  ODS_CHECK(rep_->batch.Delete(rep_->key).ok());
  ++rep_->count;
}

void WriteBatch::PutMarker(std::string_view table, std::string_view key, uint64_t version,
                           Micros expire_at_micros, Micros event_time_micros, uint64_t bytes) {
  internal::EncodeMarkerKey(table, key, rep_->key);
  internal::EncodeMarker(version, expire_at_micros, event_time_micros, bytes, rep_->value);
  ODS_CHECK(rep_->batch.Put(rep_->key, rep_->value).ok());
  ++rep_->count;
}

void WriteBatch::DeleteMarker(std::string_view table, std::string_view key) {
  internal::EncodeMarkerKey(table, key, rep_->key);
  ODS_CHECK(rep_->batch.Delete(rep_->key).ok());
  ++rep_->count;
}

void WriteBatch::PutEvent(uint32_t template_id, std::string_view entity, uint64_t seq,
                          std::string_view encoded) {
  EncodeEventKey(template_id, entity, seq, rep_->key);
  ODS_CHECK(rep_->batch.Put(rep_->key, rocksdb::Slice(encoded.data(), encoded.size())).ok());
  ++rep_->count;
}

void WriteBatch::DeleteEvents(uint32_t template_id, std::string_view entity, uint64_t seq_end) {
  EncodeEventKey(template_id, entity, 0, rep_->key);
  EncodeEventKey(template_id, entity, seq_end, rep_->value);
  ODS_CHECK(rep_->batch.DeleteRange(rep_->key, rep_->value).ok());
  ++rep_->count;
}

void WriteBatch::PutTiles(uint32_t template_id, std::string_view entity, uint64_t blob_id,
                          std::string_view blob) {
  EncodeTilesKey(template_id, entity, blob_id, rep_->key);
  ODS_CHECK(rep_->batch.Put(rep_->key, rocksdb::Slice(blob.data(), blob.size())).ok());
  ++rep_->count;
}

void WriteBatch::DeleteTiles(uint32_t template_id, std::string_view entity, uint64_t blob_id) {
  EncodeTilesKey(template_id, entity, blob_id, rep_->key);
  ODS_CHECK(rep_->batch.Delete(rep_->key).ok());
  ++rep_->count;
}

size_t WriteBatch::size() const { return rep_->count; }

struct RocksDbTier::Impl {
  std::string dir;
  // RocksDB's counters (tickers only: no histograms nor timers on the write path).
  std::shared_ptr<rocksdb::Statistics> statistics;
  std::unique_ptr<rocksdb::DB> db;
  std::shared_ptr<spdlog::logger> log = Logger("ods.tier");

  // Tickets: written_ is the newest ticket handed out by Write; durable_ the newest covered by
  // a completed fsync. A ticket is taken after its batch is in the log buffer, so an fsync that
  // starts after reading written_ == t covers every batch with a ticket <= t.
  std::atomic<uint64_t> written{0};
  std::atomic<uint64_t> batches_written{0};

  // Guards every member below (the fsync itself runs without it).
  std::mutex sync_mu;
  std::condition_variable sync_cv;  // an fsync finished
  uint64_t durable = 0;             // newest ticket covered by a completed fsync
  bool syncing = false;             // an fsync is in flight (its leader holds no lock)
  Status sync_error;                // sticky
  uint64_t syncs = 0;
  uint64_t synced_batches = 0;
  // OnDurable callbacks waiting for their ticket, run by the committer thread.
  std::vector<std::pair<uint64_t, std::function<void(const Status&)>>> pending;
  std::condition_variable work_cv;  // pending grew, or stop
  bool stop = false;

  // The committer: completes OnDurable callbacks (an fsync per round, covering every batch
  // written before it started) and fsyncs every interval_micros when something is unsynced.
  Micros interval_micros = 0;
  std::thread committer;

  // Makes every batch up to ticket `target` durable, leading an fsync or joining one.
  Status SyncTo(uint64_t target) {
    std::unique_lock<std::mutex> lock(sync_mu);
    while (durable < target) {
      if (!sync_error.ok()) return sync_error;
      if (syncing) {
        sync_cv.wait(lock);
        continue;
      }
      syncing = true;
      const uint64_t covered = written.load(std::memory_order_acquire);
      lock.unlock();
      // FlushWAL(true) writes the log buffer to the file and fsyncs it (SyncWAL).
      const rocksdb::Status s = db->FlushWAL(/*sync=*/true);
      lock.lock();
      syncing = false;
      if (s.ok()) {
        synced_batches += covered - std::min(durable, covered);
        durable = std::max(durable, covered);
        ++syncs;
      } else {
        sync_error = FromRocks(s, "durable tier '" + dir + "': fsync of the log failed");
        log->error("{}", sync_error.message());
      }
      sync_cv.notify_all();
    }
    return OkStatus();
  }

  void RunCommitter() {
    using Steady = std::chrono::steady_clock;
    const auto interval = std::chrono::microseconds(interval_micros);
    auto next_tick = Steady::now() + interval;
    std::unique_lock<std::mutex> lock(sync_mu);
    while (true) {
      auto has_work = [this] { return stop || !pending.empty(); };
      if (interval_micros > 0) {
        work_cv.wait_until(lock, next_tick, has_work);
      } else {
        work_cv.wait(lock, has_work);
      }
      if (stop && pending.empty()) break;
      const bool tick = interval_micros > 0 && Steady::now() >= next_tick;
      if (tick) next_tick = Steady::now() + interval;
      // Every pending ticket was taken before it was queued, so it is <= target.
      const uint64_t target = written.load(std::memory_order_acquire);
      if ((!pending.empty() || tick) && durable < target && sync_error.ok()) {
        lock.unlock();
        SyncTo(target).IgnoreError();  // A failure is kept in sync_error and answered below.
        lock.lock();
      }
      std::vector<std::pair<uint64_t, std::function<void(const Status&)>>> ready;
      std::vector<std::pair<uint64_t, std::function<void(const Status&)>>> waiting;
      for (auto& entry : pending) {
        (entry.first <= durable || !sync_error.ok() ? ready : waiting).push_back(std::move(entry));
      }
      pending.swap(waiting);
      const uint64_t durable_now = durable;
      const Status error = sync_error;
      lock.unlock();
      for (auto& [ticket, done] : ready) done(ticket <= durable_now ? OkStatus() : error);
      lock.lock();
    }
  }
};

RocksDbTier::RocksDbTier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<RocksDbTier>> RocksDbTier::Open(const TierOptions& options) {
  if (options.dir.empty()) return InvalidArgumentError("durable tier: empty directory");
  auto impl = std::make_unique<Impl>();
  impl->dir = options.dir;
  impl->interval_micros = options.sync_interval_micros;
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  // Writes only fill the log buffer; SyncTo (group commit) and the committer write and fsync it.
  // Without this every Write would be a write(2), and async would cost a syscall per batch.
  db_options.manual_wal_flush = true;
  // Keep RocksDB's own info log small: it lives in the data dir next to the data.
  db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  db_options.keep_log_file_num = 2;
  db_options.max_log_file_size = 1 << 20;
  // RocksDB does its own compaction and flushes on its own threads; two of each suffice here.
  db_options.IncreaseParallelism(2);
  impl->statistics = rocksdb::CreateDBStatistics();
  impl->statistics->set_stats_level(rocksdb::StatsLevel::kExceptHistogramOrTimers);
  db_options.statistics = impl->statistics;
  // Reads of records below RAM are point lookups: a bloom filter spares a miss the disk, and
  // index and filter blocks stay cached.
  rocksdb::BlockBasedTableOptions table_options;
  table_options.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table_options.cache_index_and_filter_blocks = true;
  table_options.block_cache = rocksdb::NewLRUCache(64 << 20);
  db_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table_options));
  db_options.listeners.push_back(std::make_shared<TrimAfterFlush>());
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(db_options, options.dir, &raw);
  if (!s.ok()) {
    std::string what = "durable tier: cannot open '" + options.dir + "'";
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      what += " (locked: is another odsd using this data_dir?)";
    }
    return FromRocks(s, what);
  }
  impl->db.reset(raw);
  // Events below RAM belonged to the previous process's event state, which is gone.
  if (rocksdb::Status cleared =
          impl->db->DeleteRange(rocksdb::WriteOptions(), impl->db->DefaultColumnFamily(),
                                rocksdb::Slice(kEventsBegin, 1), rocksdb::Slice(kEventsEnd, 1));
      !cleared.ok()) {
    return FromRocks(cleared, "durable tier '" + options.dir + "': clearing old events failed");
  }
  impl->committer = std::thread([p = impl.get()] { p->RunCommitter(); });
  return std::unique_ptr<RocksDbTier>(new RocksDbTier(std::move(impl)));
}

RocksDbTier::~RocksDbTier() {
  {
    std::lock_guard<std::mutex> lock(impl_->sync_mu);
    impl_->stop = true;
  }
  impl_->work_cv.notify_all();
  impl_->committer.join();  // after completing every queued OnDurable callback
  if (Status s = impl_->SyncTo(impl_->written.load(std::memory_order_acquire)); !s.ok()) {
    impl_->log->error("closing durable tier '{}': {}", impl_->dir, s.message());
  }
  if (rocksdb::Status s = impl_->db->Close(); !s.ok()) {
    impl_->log->error("closing durable tier '{}': {}", impl_->dir, s.ToString());
  }
}

Result<uint64_t> RocksDbTier::Write(const WriteBatch& batch) {
  rocksdb::WriteOptions options;
  options.sync = false;
  // WriteBatch::Data() is const-correct but DB::Write wants a mutable batch.
  const rocksdb::Status s =
      impl_->db->Write(options, const_cast<rocksdb::WriteBatch*>(&batch.rep_->batch));
  if (!s.ok()) return FromRocks(s, "durable tier '" + impl_->dir + "': write failed");
  impl_->batches_written.fetch_add(1, std::memory_order_relaxed);
  return impl_->written.fetch_add(1, std::memory_order_acq_rel) + 1;
}

Status RocksDbTier::WriteEvents(const WriteBatch& batch) {
  rocksdb::WriteOptions options;
  options.disableWAL = true;
  const rocksdb::Status s =
      impl_->db->Write(options, const_cast<rocksdb::WriteBatch*>(&batch.rep_->batch));
  if (!s.ok()) return FromRocks(s, "durable tier '" + impl_->dir + "': writing events failed");
  return OkStatus();
}

Status RocksDbTier::ReadEvents(
    uint32_t template_id, std::string_view entity, uint64_t first_seq, uint64_t last_seq,
    const std::function<void(uint64_t seq, std::string_view encoded)>& fn) const {
  std::string prefix;
  EncodeEventPrefix(template_id, entity, prefix);
  std::string begin = prefix;
  AppendBigEndian(first_seq, 8, begin);
  rocksdb::ReadOptions options;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(options));
  for (it->Seek(begin); it->Valid(); it->Next()) {
    const rocksdb::Slice k = it->key();
    if (k.size() != prefix.size() + 8 || !k.starts_with(prefix)) break;
    const uint64_t seq = ReadBigEndian64(k.data() + prefix.size());
    if (seq > last_seq) break;
    fn(seq, {it->value().data(), it->value().size()});
  }
  if (!it->status().ok()) {
    return FromRocks(it->status(), "durable tier '" + impl_->dir +
                                       "': reading events of template " +
                                       std::to_string(template_id) + ", entity '" +
                                       QuoteForMessage(entity) + "'");
  }
  return OkStatus();
}

Result<std::optional<std::string>> RocksDbTier::ReadTiles(uint32_t template_id,
                                                          std::string_view entity,
                                                          uint64_t blob_id) const {
  std::string key;
  EncodeTilesKey(template_id, entity, blob_id, key);
  std::string value;
  const rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) {
    return FromRocks(s, "durable tier '" + impl_->dir + "': reading tiles of template " +
                            std::to_string(template_id) + ", entity '" + QuoteForMessage(entity) +
                            "'");
  }
  return std::optional<std::string>(std::move(value));
}

Status RocksDbTier::WaitDurable(uint64_t ticket) { return impl_->SyncTo(ticket); }

void RocksDbTier::OnDurable(uint64_t ticket, std::function<void(const Status&)> done) {
  {
    std::lock_guard<std::mutex> lock(impl_->sync_mu);
    if (ticket > impl_->durable && impl_->sync_error.ok()) {
      impl_->pending.emplace_back(ticket, std::move(done));
      impl_->work_cv.notify_one();
      return;
    }
  }
  const Status error = [&] {
    std::lock_guard<std::mutex> lock(impl_->sync_mu);
    return ticket <= impl_->durable ? OkStatus() : impl_->sync_error;
  }();
  done(error);
}

Status RocksDbTier::ForEach(const std::function<void(const StoredRecord&)>& fn,
                            const std::function<bool(std::string_view table)>& fields_of) const {
  rocksdb::ReadOptions options;
  options.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(options));
  record::Record record;
  // Records and markers only: the events' keys sort first (see kEventsBegin).
  for (it->Seek(rocksdb::Slice(kEventsEnd, 1)); it->Valid(); it->Next()) {
    const rocksdb::Slice k = it->key();
    const rocksdb::Slice v = it->value();
    StoredRecord stored;
    bool ok = internal::DecodeKey({k.data(), k.size()}, stored.table, stored.key);
    if (ok && internal::IsMarkerTable(stored.table)) {
      stored.table.remove_prefix(1);
      stored.in_backing = true;
      record.fields.clear();
      ok = internal::DecodeMarker({v.data(), v.size()}, record.version, stored.expire_at_micros,
                                  record.event_time_micros, stored.bytes);
    } else if (ok && fields_of && !fields_of(stored.table)) {
      record.fields.clear();
      ok = internal::DecodeValueHeader({v.data(), v.size()}, record, stored.expire_at_micros,
                                       stored.bytes);
    } else if (ok) {
      ok = internal::DecodeValueHeader({v.data(), v.size()}, record, stored.expire_at_micros,
                                       stored.bytes) &&
           internal::DecodeValue({v.data(), v.size()}, record, stored.expire_at_micros);
    }
    if (!ok) {
      return {StatusCode::kDataLoss, "durable tier '" + impl_->dir +
                                         "': corrupt record under key '" +
                                         QuoteForMessage({k.data(), k.size()}) + "'"};
    }
    stored.record = &record;
    fn(stored);
  }
  if (!it->status().ok()) {
    return FromRocks(it->status(), "durable tier '" + impl_->dir + "': reading records failed");
  }
  return OkStatus();
}

Result<std::optional<StoredEntry>> RocksDbTier::Get(std::string_view table,
                                                    std::string_view key) const {
  std::string stored_key;
  internal::EncodeKey(table, key, stored_key);
  rocksdb::PinnableSlice value;
  const rocksdb::Status s =
      impl_->db->Get(rocksdb::ReadOptions(), impl_->db->DefaultColumnFamily(), stored_key, &value);
  if (s.IsNotFound()) return std::optional<StoredEntry>();
  if (!s.ok()) {
    return FromRocks(s, "durable tier '" + impl_->dir + "': reading table '" + std::string(table) +
                            "', key '" + QuoteForMessage(key) + "'");
  }
  StoredEntry entry;
  if (!internal::DecodeValue({value.data(), value.size()}, entry.record, entry.expire_at_micros)) {
    return Status(StatusCode::kDataLoss, "durable tier '" + impl_->dir +
                                             "': corrupt record of table '" + std::string(table) +
                                             "', key '" + QuoteForMessage(key) + "'");
  }
  return std::optional<StoredEntry>(std::move(entry));
}

TierStats RocksDbTier::Stats() const {
  TierStats out;
  out.batches_written = impl_->batches_written.load(std::memory_order_relaxed);
  const rocksdb::Statistics& st = *impl_->statistics;
  out.bytes_written = st.getTickerCount(rocksdb::BYTES_WRITTEN);
  out.bytes_read = st.getTickerCount(rocksdb::BYTES_READ);
  out.wal_bytes = st.getTickerCount(rocksdb::WAL_FILE_BYTES);
  out.block_cache_hits = st.getTickerCount(rocksdb::BLOCK_CACHE_HIT);
  out.block_cache_misses = st.getTickerCount(rocksdb::BLOCK_CACHE_MISS);
  out.flush_bytes = st.getTickerCount(rocksdb::FLUSH_WRITE_BYTES);
  out.compaction_read_bytes = st.getTickerCount(rocksdb::COMPACT_READ_BYTES);
  out.compaction_write_bytes = st.getTickerCount(rocksdb::COMPACT_WRITE_BYTES);
  rocksdb::DB& db = *impl_->db;
  auto property = [&db](const std::string& name) {
    uint64_t v = 0;
    return db.GetIntProperty(name, &v) ? v : 0;
  };
  out.live_data_bytes = property(rocksdb::DB::Properties::kEstimateLiveDataSize);
  out.sst_bytes = property(rocksdb::DB::Properties::kTotalSstFilesSize);
  out.memtable_bytes = property(rocksdb::DB::Properties::kCurSizeAllMemTables);
  out.pending_compaction_bytes = property(rocksdb::DB::Properties::kEstimatePendingCompactionBytes);
  out.block_cache_bytes = property(rocksdb::DB::Properties::kBlockCacheUsage);
  for (int level = 0; level < db.NumberLevels(); ++level) {
    std::string files;
    if (db.GetProperty(rocksdb::DB::Properties::kNumFilesAtLevelPrefix + std::to_string(level),
                       &files)) {
      out.sst_files += std::strtoull(files.c_str(), nullptr, 10);
    }
  }
  std::lock_guard<std::mutex> lock(impl_->sync_mu);
  out.syncs = impl_->syncs;
  out.synced_batches = impl_->synced_batches;
  return out;
}

const std::string& RocksDbTier::dir() const { return impl_->dir; }

}  // namespace ods::tier
