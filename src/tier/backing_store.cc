#include "ods/tier/backing_store.h"

#include <utility>

#include "ods/tier/directory_store.h"
#include "tier/backing_internal.h"

namespace ods::tier {
namespace internal {

Status CheckBackingTable(std::string_view table) {
  bool printable = true;
  for (char c : table) printable = printable && c > ' ' && c <= '~';
  if (table.empty() || table.size() > kMaxBackingTableBytes || !printable) {
    return InvalidArgumentError("backing store: bad table name '" + QuoteForMessage(table) +
                                "'; expected 1 to 255 printable ASCII bytes, no spaces");
  }
  return OkStatus();
}

Status CheckBackingKey(std::string_view table, std::string_view key) {
  ODS_RETURN_IF_ERROR(CheckBackingTable(table));
  if (key.empty() || key.size() > kMaxBackingKeyBytes) {
    return InvalidArgumentError("backing store: bad key of " + std::to_string(key.size()) +
                                " bytes in table '" + QuoteForMessage(table) +
                                "'; expected 1 to 65535 bytes");
  }
  return OkStatus();
}

Status CheckScanLimit(size_t limit) {
  if (limit == 0 || limit > BackingStore::kMaxScanLimit) {
    return InvalidArgumentError("backing store: scan limit " + std::to_string(limit) +
                                " is out of range; expected 1 to " +
                                std::to_string(BackingStore::kMaxScanLimit));
  }
  return OkStatus();
}

std::string NameKey(std::string_view table, std::string_view key) {
  return "table '" + QuoteForMessage(table) + "' key '" + QuoteForMessage(key) + "'";
}

}  // namespace internal

std::string_view BackingKindName(BackingKind kind) {
  switch (kind) {
    case BackingKind::kDirectory:
      return "directory";
    case BackingKind::kPostgres:
      return "postgres";
  }
  return "?";
}

Result<std::unique_ptr<BackingStore>> OpenDirectoryStore(const DirectoryStoreOptions& options) {
  ODS_ASSIGN_OR_RETURN(std::unique_ptr<DirectoryStore> store, DirectoryStore::Open(options));
  return std::unique_ptr<BackingStore>(std::move(store));
}

Result<std::unique_ptr<BackingStore>> OpenBackingStore(const BackingStoreOptions& options) {
  switch (options.kind) {
    case BackingKind::kDirectory:
      return OpenDirectoryStore(options.directory);
    case BackingKind::kPostgres:
      return OpenPostgresStore(options.postgres);
  }
  return InvalidArgumentError("backing store: unknown kind");
}

}  // namespace ods::tier
