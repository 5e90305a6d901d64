#include "ods/engine/change_log.h"

#include <algorithm>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "catalog.h"
#include "ods/common/check.h"
#include "ods/engine/engine.h"

namespace ods::engine {

std::string_view ChangeKindName(ChangeKind kind) {
  switch (kind) {
    case ChangeKind::kPut: return "put";
    case ChangeKind::kDelete: return "delete";
    case ChangeKind::kExpire: return "expire";
    case ChangeKind::kEvent: return "event";
  }
  return "?";
}

std::string_view GapReasonName(GapReason reason) {
  switch (reason) {
    case GapReason::kOverflow: return "overflow";
    case GapReason::kNotRetained: return "not_retained";
  }
  return "?";
}

// --- ChangeLog ---

ChangeLog::ChangeLog(size_t capacity, uint64_t queue_size, uint32_t max_subscribers)
    : capacity_(capacity),
      queue_size_(std::min<uint64_t>(queue_size, capacity)),
      max_subscribers_(max_subscribers) {
  ODS_CHECK(capacity_ > 0);
  MutexLock lock(mu_);
  ring_.resize(capacity_);
}

void ChangeLog::Append(std::vector<Change> changes) {
  if (changes.empty()) return;
  // One allocation for the whole batch: each slot points into it (aliasing shared_ptr), and
  // the batch is freed when its last change leaves the ring and every reader let go of it.
  auto block = std::make_shared<std::vector<Change>>(std::move(changes));
  // Evicted changes are released after the lock: freeing a batch must not delay other writers.
  thread_local std::vector<std::shared_ptr<const Change>> evicted;
  {
    MutexLock lock(mu_);
    for (Change& c : *block) {
      c.sequence = head_;
      std::shared_ptr<const Change>& slot = ring_[head_ % capacity_];
      if (slot != nullptr) evicted.push_back(std::move(slot));
      slot = std::shared_ptr<const Change>(block, &c);
      ++head_;
    }
    next_.store(head_, std::memory_order_release);
  }
  evicted.clear();
}

uint64_t ChangeLog::Read(uint64_t from, uint64_t replay_end, size_t max,
                         std::vector<std::shared_ptr<const Change>>& out, uint64_t& oldest,
                         uint64_t& next) const {
  out.clear();
  MutexLock lock(mu_);
  next = head_;
  oldest = head_ > capacity_ ? head_ - capacity_ : 1;
  uint64_t newest_queued = head_ > queue_size_ ? head_ - queue_size_ : 1;
  // A replay the subscriber asked for is bounded by the retained window only, until the
  // changes published since it subscribed overflow its queue.
  if (newest_queued <= replay_end) newest_queued = 1;
  const uint64_t start = std::max({from, oldest, newest_queued});
  const uint64_t n = std::min<uint64_t>(max, head_ > start ? head_ - start : 0);
  out.reserve(n);
  for (uint64_t seq = start; seq < start + n; ++seq) out.push_back(ring_[seq % capacity_]);
  return start;
}

Status ChangeLog::Register(Subscription* s) {
  MutexLock lock(subscribers_mu_);
  if (subscribers_.size() >= max_subscribers_) {
    return ResourceExhaustedError("subscriptions.max_subscribers (" +
                                  std::to_string(max_subscribers_) +
                                  ") subscriptions are open; close one or raise the limit");
  }
  subscribers_.push_back(s);
  recording_.store(true, std::memory_order_release);
  return OkStatus();
}

void ChangeLog::Unregister(Subscription* s) {
  MutexLock lock(subscribers_mu_);
  std::erase(subscribers_, s);
}

ChangeLogStats ChangeLog::Stats() const {
  ChangeLogStats stats;
  stats.enabled = true;
  const uint64_t next = next_.load(std::memory_order_acquire);
  stats.next_sequence = next;
  stats.oldest_sequence = next > capacity_ ? next - capacity_ : 1;
  stats.published = next - 1;
  stats.gaps = gaps_.load(std::memory_order_relaxed);
  stats.skipped = skipped_.load(std::memory_order_relaxed);
  MutexLock lock(subscribers_mu_);
  stats.subscribers = subscribers_.size();
  for (const Subscription* s : subscribers_) {
    const uint64_t cursor = s->cursor();
    if (next > cursor) stats.max_lag = std::max(stats.max_lag, next - cursor);
  }
  return stats;
}

// --- Subscription ---

// Names are few (a handful of tables and templates): linear search beats hashing.
struct Subscription::Filter {
  std::vector<std::string> tables;
  std::vector<std::string> templates;
  struct FeatureSub {
    std::string ref;
    std::vector<std::string> sources;  // tables and templates it reads
  };
  std::vector<FeatureSub> features;
  std::vector<std::string> keys;  // sorted; empty: every key

  static bool Has(const std::vector<std::string>& names, std::string_view name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  }
  bool KeyMatches(std::string_view key) const {
    return keys.empty() || std::binary_search(keys.begin(), keys.end(), key);
  }
  bool Wants(const Change& c) const {
    return c.kind == ChangeKind::kEvent ? Has(templates, c.source) : Has(tables, c.source);
  }
};

Subscription::Subscription(Engine& engine, ChangeLog& log, std::unique_ptr<Filter> filter,
                           uint64_t cursor)
    : engine_(engine),
      log_(log),
      filter_(std::move(filter)),
      replay_end_(log.next_sequence()),
      cursor_(cursor) {}

Subscription::~Subscription() {
  if (registered_) log_.Unregister(this);
}

bool Subscription::HasPending() const {
  return cursor_.load(std::memory_order_relaxed) < log_.next_sequence();
}

Status Subscription::Next(size_t max_changes, SubscriptionBatch& out) {
  out.gap.reset();
  out.changes.clear();
  out.features.clear();
  const uint64_t cursor = cursor_.load(std::memory_order_relaxed);
  uint64_t oldest = 0;
  uint64_t next = 0;
  const uint64_t start = log_.Read(cursor, replay_end_, max_changes, scratch_, oldest, next);
  const bool first = first_;
  first_ = false;
  if (start > cursor) {
    out.gap = Gap{cursor, start,
                  first && cursor < oldest ? GapReason::kNotRetained : GapReason::kOverflow};
    log_.gaps_.fetch_add(1, std::memory_order_relaxed);
    log_.skipped_.fetch_add(start - cursor, std::memory_order_relaxed);
  }
  const uint64_t new_cursor = start + scratch_.size();
  cursor_.store(new_cursor, std::memory_order_relaxed);
  out.next_sequence = new_cursor;

  // (feature index, entity) -> newest sequence behind it; ordered so updates come out stable.
  std::map<std::pair<size_t, std::string_view>, uint64_t> touched;
  for (const std::shared_ptr<const Change>& c : scratch_) {
    if (!filter_->KeyMatches(c->key)) continue;
    if (filter_->Wants(*c)) out.changes.push_back(c);
    for (size_t f = 0; f < filter_->features.size(); ++f) {
      if (Filter::Has(filter_->features[f].sources, c->source)) {
        touched[{f, c->key}] = c->sequence;
      }
    }
  }
  Status status;
  for (auto it = touched.begin(); it != touched.end();) {
    const size_t f = it->first.first;
    std::vector<std::string_view> entities;
    std::vector<uint64_t> sequences;
    for (; it != touched.end() && it->first.first == f; ++it) {
      entities.push_back(it->first.second);
      sequences.push_back(it->second);
    }
    const std::string_view ref = filter_->features[f].ref;
    Result<std::vector<FeatureColumn>> columns =
        engine_.GetOnlineFeatures(entities, std::span<const std::string_view>(&ref, 1),
                                  std::nullopt);
    if (!columns.ok()) {
      status = columns.status();
      continue;
    }
    FeatureColumn& column = columns->front();
    for (size_t i = 0; i < entities.size(); ++i) {
      FeatureUpdate& u = out.features.emplace_back();
      u.sequence = sequences[i];
      u.feature = filter_->features[f].ref;
      u.entity = std::string(entities[i]);
      u.value = std::move(column.values[i]);
      u.status = column.statuses[i];
      u.event_time = column.event_times[i];
    }
  }
  // The batch keeps the changes alive; the scratch list need not.
  scratch_.clear();
  return status;
}

// --- Engine ---

Result<std::unique_ptr<Subscription>> Engine::Subscribe(const SubscribeRequest& request) {
  if (change_log_ == nullptr) {
    return FailedPreconditionError(
        "subscriptions are off: subscriptions.retained_changes is 0 in the server's config");
  }
  if (request.tables.empty() && request.templates.empty() && request.features.empty()) {
    return InvalidArgumentError("subscribe: name at least one table, template or feature");
  }
  auto filter = std::make_unique<Subscription::Filter>();
  for (const std::string& t : request.tables) {
    Result<uint32_t> id = FindTable(t);
    if (!id.ok()) return InvalidArgumentError("subscribe: " + id.status().message());
    filter->tables.push_back(t);
  }
  const Catalog& catalog = CurrentCatalog();
  for (const std::string& t : request.templates) {
    if (catalog.FindTemplate(t) == nullptr) {
      return InvalidArgumentError("subscribe: unknown event template '" + QuoteForMessage(t) +
                                  "'");
    }
    filter->templates.push_back(t);
  }
  for (const std::string& f : request.features) {
    const std::string_view ref = f;
    std::vector<std::string_view> sources;
    Status s = FeatureSources(std::span<const std::string_view>(&ref, 1), sources);
    if (!s.ok()) return InvalidArgumentError("subscribe: " + s.message());
    // The same checks a lookup makes (e.g. NAME of an aggregation with several windows).
    if (Status checked = CheckFeatureRef(ref); !checked.ok()) {
      return InvalidArgumentError("subscribe: " + checked.message());
    }
    Subscription::Filter::FeatureSub& sub = filter->features.emplace_back();
    sub.ref = f;
    sub.sources.assign(sources.begin(), sources.end());
  }
  if (request.keys.size() > config_.limits.max_batch_size) {
    return InvalidArgumentError("subscribe: " + std::to_string(request.keys.size()) +
                                " keys exceed limits.max_batch_size " +
                                std::to_string(config_.limits.max_batch_size));
  }
  for (const std::string& k : request.keys) {
    if (k.empty() || k.size() > config_.limits.max_key_bytes) {
      return InvalidArgumentError("subscribe: key '" + QuoteForMessage(k) +
                                  "' is empty or longer than limits.max_key_bytes " +
                                  std::to_string(config_.limits.max_key_bytes));
    }
    filter->keys.push_back(k);
  }
  std::sort(filter->keys.begin(), filter->keys.end());
  const uint64_t next = change_log_->next_sequence();
  uint64_t cursor = next;
  if (request.from_sequence) {
    cursor = *request.from_sequence;
    if (cursor == 0 || cursor > next) {
      return InvalidArgumentError("subscribe: from_sequence " + std::to_string(cursor) +
                                  " is not a sequence yet: sequences start at 1 and the next "
                                  "change gets " +
                                  std::to_string(next));
    }
  }
  std::unique_ptr<Subscription> sub(
      new Subscription(*this, *change_log_, std::move(filter), cursor));
  if (Status s = change_log_->Register(sub.get()); !s.ok()) {
    sub->registered_ = false;
    return s;
  }
  return sub;
}

ChangeLogStats Engine::SubscriptionStats() const {
  if (change_log_ == nullptr) return ChangeLogStats{};
  return change_log_->Stats();
}

}  // namespace ods::engine
