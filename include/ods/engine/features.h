#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ods/aggregate/aggregate.h"
#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/record/value.h"

// Request and answer types of the engine's event and feature calls (Engine::PushEvents,
// GetOnlineFeatures, GetHistoricalFeatures, ApplyDefinitions). Plain data, thread-compatible.
namespace ods::engine {

// One event to ingest. Borrowed for the duration of the call.
struct EventInput {
  std::string_view template_name;
  // All fields of the event, including the template's key and timestamp fields.
  std::span<const record::Field> fields;
  // Empty: no de-duplication. Else an event with an event_id already seen for the same template
  // and entity key within the template's dedup_window is a duplicate and is not applied again.
  std::string_view event_id;
};

// Why one event of a batch was not applied.
struct EventRejection {
  uint32_t index = 0;    // position in the request
  StatusCode code = StatusCode::kInvalidArgument;  // kInvalidArgument, kNotFound (template),
                                                    // kOutOfRange (too late / in the future),
                                                    // a Lua aggregator's error code
  std::string reason;    // names template, key, field and what was expected
};

// What PushEvents did. applied + duplicates + rejected.size() == events given.
struct PushResult {
  uint32_t applied = 0;     // events folded into aggregations and history
  uint32_t duplicates = 0;  // events skipped as already seen (event_id), counted as success
  std::vector<EventRejection> rejected;  // in index order
};

// Per-value status of a feature lookup.
enum class FeatureStatus : uint8_t {
  kPresent,   // the value is set and fresh
  kNotFound,  // no value: unknown entity, no record/field, or an aggregate undefined over an
              // empty window (min, max, mean, stddev, first, last)
  kStale,     // the value is set, but older than the feature's max_age
  kOutOfRetention,  // historical: the window reaches before the template's retained history
};

// "PRESENT", "NOT_FOUND", "STALE", "OUT_OF_RETENTION".
std::string_view FeatureStatusName(FeatureStatus status);

// One feature's values for every requested entity (row), aligned with the request's rows.
struct FeatureColumn {
  std::string feature;                  // the ref as requested, e.g. "txn_sum@24h"
  std::vector<aggregate::Output> values;  // monostate when the status is kNotFound
  std::vector<FeatureStatus> statuses;
  // The newest event (aggregations) or the record's event time (table fields) behind the
  // value; 0 when not found.
  std::vector<Micros> event_times;
};

// One row of a point-in-time lookup.
struct EntityRow {
  std::string_view entity;
  Micros timestamp = 0;
};

// What applying definitions did.
struct ApplyReport {
  std::vector<std::string> templates_added;     // names, in order
  std::vector<std::string> aggregations_added;  // names, in order; each backfilled and serving
  std::vector<std::string> features_added;      // derived features, names in order
  uint64_t entities_backfilled = 0;             // (entity, new aggregation) states built
  uint64_t events_replayed = 0;                 // retained events folded into them
};

}  // namespace ods::engine
