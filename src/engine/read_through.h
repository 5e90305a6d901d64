#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "ods/common/clock.h"
#include "ods/common/mutex.h"
#include "ods/common/thread_annotations.h"
#include "ods/config/config.h"
#include "ods/engine/engine.h"
#include "ods/tier/system_of_record.h"

// Private to ods_engine: the read-through state of one table (tables.NAME.read_through).
namespace ods::engine {

// Keys the system of record did not have, each remembered until an expiry. At most
// `max_keys`; past that the oldest is forgotten first. Thread-safe (one lock, held for a map
// operation; never across I/O).
class NegativeCache {
 public:
  explicit NegativeCache(uint64_t max_keys) : max_keys_(max_keys) {}

  // True if `key` was remembered as missing and its expiry is after `now`.
  bool Contains(std::string_view key, Micros now) ODS_EXCLUDES(mu_);
  // Remembers `key` as missing until `expire_at`.
  void Add(std::string_view key, Micros expire_at) ODS_EXCLUDES(mu_);
  size_t size() const ODS_EXCLUDES(mu_);

 private:
  const uint64_t max_keys_;
  mutable Mutex mu_;
  std::unordered_map<std::string, Micros> expiry_ ODS_GUARDED_BY(mu_);
  // The keys of expiry_, oldest first.
  std::deque<std::string> order_ ODS_GUARDED_BY(mu_);
};

struct Engine::ReadThroughSource {
  config::ReadThroughConfig config;
  std::unique_ptr<tier::SystemOfRecord> source;
  NegativeCache negative;
  std::atomic<uint64_t> reads{0};           // keys answered with a record by the source
  std::atomic<uint64_t> misses{0};          // keys the source did not have
  std::atomic<uint64_t> negative_hits{0};   // misses answered from the negative cache
  std::atomic<uint64_t> errors{0};          // Get calls failed by the source
  std::atomic<uint64_t> cached{0};          // records stored into the table

  ReadThroughSource(config::ReadThroughConfig c, std::unique_ptr<tier::SystemOfRecord> s)
      : config(std::move(c)), source(std::move(s)), negative(config.max_negative_keys) {}
};

}  // namespace ods::engine
