// The stored form of an entity's tiles below RAM:
//   varint layouts | per layout: varint length | that layout's ColdRows blob (may be empty).
#include "ods/shard/cold_tiles.h"

#include <string>
#include <utility>
#include <vector>

#include "ods/common/varint.h"

namespace ods::shard {
namespace {

Status Malformed(std::string what) {
  return Status(StatusCode::kDataLoss, "aggregation tiles below RAM: " + std::move(what));
}

// Splits `blob` into its per-layout parts (views into it).
Status SplitParts(std::string_view blob, std::vector<std::string_view>& parts) {
  parts.clear();
  if (blob.empty()) return OkStatus();
  uint64_t count;
  if (!GetVarint(blob, count)) return Malformed("truncated in the layout count");
  if (count > blob.size()) return Malformed(std::to_string(count) + " layouts announced");
  for (uint64_t l = 0; l < count; ++l) {
    uint64_t length;
    if (!GetVarint(blob, length) || length > blob.size()) {
      return Malformed("truncated in layout " + std::to_string(l));
    }
    parts.push_back(blob.substr(0, length));
    blob.remove_prefix(length);
  }
  if (!blob.empty()) return Malformed(std::to_string(blob.size()) + " trailing bytes");
  return OkStatus();
}

}  // namespace

Result<std::string> MergeTiles(const TileLayouts& layouts, std::string_view older,
                               std::span<const std::string> moved, Micros now) {
  std::vector<std::string_view> old_parts;
  ODS_RETURN_IF_ERROR(SplitParts(older, old_parts));
  if (old_parts.size() > layouts.size() || moved.size() > layouts.size()) {
    return InvalidArgumentError("aggregation tiles below RAM: more layouts than the template has");
  }
  std::vector<std::string> merged(layouts.size());
  size_t used = 0;  // layouts up to the last non-empty one
  for (size_t l = 0; l < layouts.size(); ++l) {
    const std::string_view a = l < old_parts.size() ? old_parts[l] : std::string_view();
    const std::string_view b = l < moved.size() ? std::string_view(moved[l]) : std::string_view();
    ODS_ASSIGN_OR_RETURN(merged[l], aggregate::ColdRows::MergeBlobs(*layouts[l], a, b, now));
    if (!merged[l].empty()) used = l + 1;
  }
  std::string out;
  if (used == 0) return out;
  PutVarint(used, out);
  for (size_t l = 0; l < used; ++l) {
    PutVarint(merged[l].size(), out);
    out.append(merged[l]);
  }
  return out;
}

Result<std::shared_ptr<const DecodedTiles>> DecodeTiles(const TileLayouts& layouts,
                                                        std::string_view blob) {
  std::vector<std::string_view> parts;
  ODS_RETURN_IF_ERROR(SplitParts(blob, parts));
  if (parts.size() > layouts.size()) {
    return InvalidArgumentError("aggregation tiles below RAM: the blob has " +
                                std::to_string(parts.size()) + " layouts, the template " +
                                std::to_string(layouts.size()));
  }
  auto decoded = std::make_shared<DecodedTiles>();
  decoded->layouts = layouts;
  decoded->blob_bytes = blob.size();
  decoded->rows.resize(layouts.size());
  for (size_t l = 0; l < parts.size(); ++l) {
    ODS_ASSIGN_OR_RETURN(decoded->rows[l], aggregate::ColdRows::Decode(*layouts[l], parts[l]));
    decoded->memory_bytes += decoded->rows[l].MemoryBytes();
  }
  return std::shared_ptr<const DecodedTiles>(std::move(decoded));
}

}  // namespace ods::shard
