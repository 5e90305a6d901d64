#pragma once

// How a feature ref names its value: the grammar shared by GetOnlineFeatures,
// GetHistoricalFeatures, FeatureSources and derived features' inputs. Private to engine/ (and
// the fuzzers). Pure functions, thread-safe.
//
//   TABLE:FIELD          a table's field; split at the first ':' (FIELD may hold more)
//   NAME                 an aggregation with one window, or a derived feature
//   NAME@WINDOW          one window of an aggregation; split at the first '@', WINDOW is a
//                        duration for ParseDuration ("24h", "1h30m")
//
// Splitting never fails: whether the table, field, aggregation or window exists, or WINDOW
// parses, is the caller's check against its catalog.

#include <string_view>

namespace ods::engine {

struct FeatureRef {
  bool table_field = false;  // TABLE:FIELD
  std::string_view table;    // table_field only; may be empty
  std::string_view field;    // table_field only; may be empty
  std::string_view name;     // !table_field: the aggregation or derived feature
  bool has_window = false;   // !table_field: an '@' follows `name`
  std::string_view window;   // has_window: the text after '@' (may be empty)
};

// Splits `ref`; the views point into `ref`. O(size).
inline FeatureRef ParseFeatureRef(std::string_view ref) {
  FeatureRef out;
  if (const size_t colon = ref.find(':'); colon != std::string_view::npos) {
    out.table_field = true;
    out.table = ref.substr(0, colon);
    out.field = ref.substr(colon + 1);
    return out;
  }
  const size_t at = ref.find('@');
  out.name = ref.substr(0, at);
  if (at != std::string_view::npos) {
    out.has_window = true;
    out.window = ref.substr(at + 1);
  }
  return out;
}

}  // namespace ods::engine
