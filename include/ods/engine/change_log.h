#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ods/aggregate/aggregate.h"
#include "ods/common/clock.h"
#include "ods/common/mutex.h"
#include "ods/common/status.h"
#include "ods/common/thread_annotations.h"
#include "ods/engine/features.h"
#include "ods/record/value.h"

// The change log behind Features.Subscribe (docs/architecture.md, "Subscriptions"): a bounded
// ring of the newest changes of the store, each with a global sequence number, and the
// subscriptions that read it.
namespace ods::engine {

class Engine;

enum class ChangeKind : uint8_t {
  kPut,     // a record was written (Put, a procedure, a read-through cache fill)
  kDelete,  // a record was deleted (whether or not it existed)
  kExpire,  // the TTL sweep removed an expired record
  kEvent,   // an event was applied to its template's aggregations
};

// "put", "delete", "expire", "event".
std::string_view ChangeKindName(ChangeKind kind);

// One change. Immutable once published; shared by every reader (std::shared_ptr<const Change>).
struct Change {
  uint64_t sequence = 0;  // global, strictly increasing, from 1
  ChangeKind kind = ChangeKind::kPut;
  std::string source;  // the table (put, delete, expire) or event template (event)
  std::string key;     // the record key or entity key
  // kPut: the new record (fields, event time, version). kEvent: the event's fields as pushed and
  // its event time. kDelete, kExpire: empty.
  record::Record record;
  Micros at_micros = 0;  // when it was published (the engine's clock)
};

enum class GapReason : uint8_t {
  kOverflow,     // the subscriber fell more than subscriptions.queue_size changes behind
  kNotRetained,  // the changes had left the retained window (subscriptions.retained_changes)
};

// "overflow", "not_retained".
std::string_view GapReasonName(GapReason reason);

// Changes [from_sequence, to_sequence) that a subscriber will never receive.
struct Gap {
  uint64_t from_sequence = 0;
  uint64_t to_sequence = 0;  // exclusive
  GapReason reason = GapReason::kOverflow;
};

// The new value of a subscribed feature for one entity, read when the subscriber took the
// changes that touched it (several changes of one entity in one batch give one update).
struct FeatureUpdate {
  uint64_t sequence = 0;  // the newest change behind it
  std::string feature;    // the ref as subscribed
  std::string entity;
  aggregate::Output value;
  FeatureStatus status = FeatureStatus::kNotFound;
  Micros event_time = 0;
};

// What to follow. At least one of tables, templates, features.
struct SubscribeRequest {
  std::vector<std::string> tables = {};  // record changes (put, delete, expire) of these tables
  std::vector<std::string> templates = {};  // events applied to these templates
  // Feature refs as GetOnlineFeatures takes them (TABLE:FIELD, NAME@WINDOW, NAME, derived):
  // each change of a table or template behind one gives a FeatureUpdate for its entity.
  std::vector<std::string> features = {};
  std::vector<std::string> keys = {};  // non-empty: only changes of these record/entity keys
  // First sequence wanted; nullopt: from the next change published. A sequence no longer
  // retained first gives a gap up to the oldest retained one.
  std::optional<uint64_t> from_sequence = {};
};

// What Subscription::Next took.
struct SubscriptionBatch {
  std::optional<Gap> gap;  // changes skipped before these; at most one per batch
  std::vector<std::shared_ptr<const Change>> changes;  // in sequence order, filtered
  std::vector<FeatureUpdate> features;
  uint64_t next_sequence = 0;  // the cursor after this batch: resume from here
};

// Figures for /metrics.
struct ChangeLogStats {
  bool enabled = false;
  uint64_t next_sequence = 1;    // the sequence the next change gets
  uint64_t oldest_sequence = 1;  // the oldest retained (== next_sequence when empty)
  uint64_t published = 0;        // changes appended since start
  uint64_t subscribers = 0;      // open subscriptions
  uint64_t gaps = 0;             // gap notices given
  uint64_t skipped = 0;          // changes skipped by those gaps
  uint64_t max_lag = 0;          // most changes a subscriber is behind the newest
};

class ChangeLog;

// One subscriber's cursor and filter over the change log. Thread-compatible: one reader at a
// time (the server's stream); the log may be appended concurrently. Must not outlive the
// engine. Destroying it unregisters it.
class Subscription {
 public:
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // Takes up to `max_changes` log entries after the cursor (fewer when nothing more is there;
  // the filter may leave fewer still), without waiting: first a gap if the cursor fell out of
  // the retained window or more than queue_size behind the newest change (changes replayed
  // from an older from_sequence count only once live changes fill the queue), then the matching
  // changes, then the subscribed features' new values for the entities those changes touched.
  // Never blocks writers for more than copying `max_changes` pointers. Errors: a feature
  // lookup's (e.g. its aggregation was replaced); the cursor has then still advanced.
  Status Next(size_t max_changes, SubscriptionBatch& out);

  // Whether Next would return something new (a change after the cursor, or a gap). Lock-free.
  bool HasPending() const;
  uint64_t cursor() const { return cursor_.load(std::memory_order_relaxed); }

 private:
  friend class Engine;
  friend class ChangeLog;
  struct Filter;
  Subscription(Engine& engine, ChangeLog& log, std::unique_ptr<Filter> filter, uint64_t cursor);

  Engine& engine_;
  ChangeLog& log_;
  const std::unique_ptr<const Filter> filter_;
  // The next sequence when it subscribed: a replay from an older from_sequence is bounded by
  // the retained window, not by queue_size, until live changes overflow the queue.
  const uint64_t replay_end_;
  std::atomic<uint64_t> cursor_;
  bool registered_ = true;  // false when ChangeLog::Register refused it
  bool first_ = true;  // the first Next reports a cursor below the window as kNotRetained
  std::vector<std::shared_ptr<const Change>> scratch_;
};

// The ring of retained changes. Thread-safe: writers append under a short lock (pointer swaps
// only; the changes are built before it); readers copy pointers under the same lock.
class ChangeLog {
 public:
  // `capacity` > 0 changes retained; `queue_size` <= capacity.
  ChangeLog(size_t capacity, uint64_t queue_size, uint32_t max_subscribers);
  ChangeLog(const ChangeLog&) = delete;
  ChangeLog& operator=(const ChangeLog&) = delete;

  // Publishes `changes` (their sequence fields are assigned here, consecutively, in order).
  // O(changes) under the lock, plus freeing changes evicted from the ring after it; never
  // waits for a reader.
  void Append(std::vector<Change> changes) ODS_EXCLUDES(mu_);

  // Copies into `out` (cleared) pointers to at most `max` consecutive retained changes from
  // the first sequence >= `from` that is retained and, unless it is below `replay_end` (the
  // next sequence when the reader subscribed) while the queue reaches back that far, at most
  // queue_size behind the newest; returns that first sequence (== `next` when there is none).
  // Sets `oldest` to the oldest retained sequence and `next` to the next one to be published.
  uint64_t Read(uint64_t from, uint64_t replay_end, size_t max,
                std::vector<std::shared_ptr<const Change>>& out, uint64_t& oldest,
                uint64_t& next) const ODS_EXCLUDES(mu_);

  uint64_t next_sequence() const { return next_.load(std::memory_order_acquire); }
  // Whether writers publish: false until the first subscription registers, so that a server
  // nobody subscribes to pays nothing for the log on its writes (publishing costs each write
  // an allocation and a copy); then true until the engine stops, so sequences never skip a
  // change. One atomic load.
  bool recording() const { return recording_.load(std::memory_order_acquire); }
  uint64_t queue_size() const { return queue_size_; }
  ChangeLogStats Stats() const ODS_EXCLUDES(subscribers_mu_);

 private:
  friend class Subscription;
  friend class Engine;
  // kResourceExhausted when max_subscribers are open.
  Status Register(Subscription* s) ODS_EXCLUDES(subscribers_mu_);
  void Unregister(Subscription* s) ODS_EXCLUDES(subscribers_mu_);

  const size_t capacity_;
  const uint64_t queue_size_;
  const uint32_t max_subscribers_;
  mutable Mutex mu_;
  std::vector<std::shared_ptr<const Change>> ring_ ODS_GUARDED_BY(mu_);  // [seq % capacity_]
  uint64_t head_ ODS_GUARDED_BY(mu_) = 1;  // the next sequence
  std::atomic<uint64_t> next_{1};           // head_, readable without the lock
  mutable Mutex subscribers_mu_;
  std::vector<Subscription*> subscribers_ ODS_GUARDED_BY(subscribers_mu_);
  std::atomic<uint64_t> gaps_{0};
  std::atomic<uint64_t> skipped_{0};
  std::atomic<bool> recording_{false};
};

}  // namespace ods::engine
