#pragma once

// Private to tier/: argument checks and message pieces shared by the backing stores.

#include <string>
#include <string_view>

#include "ods/common/status.h"

namespace ods::tier::internal {

inline constexpr size_t kMaxBackingTableBytes = 255;
inline constexpr size_t kMaxBackingKeyBytes = 65535;

// kInvalidArgument unless `table` is 1..255 bytes of printable ASCII other than space.
Status CheckBackingTable(std::string_view table);
// kInvalidArgument unless `key` is 1..65535 bytes.
Status CheckBackingKey(std::string_view table, std::string_view key);
// kInvalidArgument unless limit is in [1, BackingStore::kMaxScanLimit].
Status CheckScanLimit(size_t limit);

// "table 'T' key 'K'", both quoted safely (QuoteForMessage).
std::string NameKey(std::string_view table, std::string_view key);

}  // namespace ods::tier::internal
