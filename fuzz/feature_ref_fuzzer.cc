// Fuzzes feature-ref parsing as GetOnlineFeatures, GetHistoricalFeatures and derived features
// read a ref: the split into TABLE:FIELD / NAME / NAME@WINDOW (engine/feature_ref.h) and the
// window's duration (ParseDuration), with ParseBytes alongside (config sizes use the same number
// reader). Checks the split reassembles the ref and that a parsed window formats back to itself
// (FormatDuration), so a window accepted in one spelling is found in the catalog in any.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "engine/feature_ref.h"
#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/common/units.h"

namespace {

void Require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view ref(reinterpret_cast<const char*>(data), size);
  const ods::engine::FeatureRef parsed = ods::engine::ParseFeatureRef(ref);
  if (parsed.table_field) {
    Require(std::string(parsed.table) + ":" + std::string(parsed.field) == ref);
    Require(parsed.table.find(':') == std::string_view::npos);
  } else {
    Require(ref.find(':') == std::string_view::npos);
    Require(parsed.name.find('@') == std::string_view::npos);
    if (parsed.has_window) {
      Require(std::string(parsed.name) + "@" + std::string(parsed.window) == ref);
    } else {
      Require(parsed.name == ref);
    }
  }

  // The window text, or the whole input when there is none: both reach ParseDuration.
  const std::string_view window = parsed.has_window ? parsed.window : ref;
  ods::Result<ods::Micros> micros = ods::ParseDuration(window);
  if (micros.ok()) {
    Require(*micros >= 0);
    ods::Result<ods::Micros> again = ods::ParseDuration(ods::FormatDuration(*micros));
    Require(again.ok() && *again == *micros);
  } else {
    Require(micros.status().code() == ods::StatusCode::kInvalidArgument);
  }
  ods::Result<uint64_t> bytes = ods::ParseBytes(ref);
  if (bytes.ok()) {
    ods::Result<uint64_t> again = ods::ParseBytes(ods::FormatBytes(*bytes));
    Require(again.ok() && *again == *bytes);
  }
  return 0;
}
