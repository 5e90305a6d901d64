// Fuzzes record decoding on arbitrary bytes: record::DecodeHeader and record::Decode (all fields
// and a projection) against a small FieldDictionary, and the RocksDB tier's stored formats
// (tier/stored_codec.h: DecodeValue, DecodeKey, DecodeMarker), as a corrupt disk or a bug
// elsewhere would hand them. Decoders may reject the input; whatever they accept must be a
// well-formed record (field names unique) that encodes to a canonical form which re-decodes to
// the same bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ods/record/codec.h"
#include "ods/record/value.h"
#include "tier/stored_codec.h"

namespace {

void Require(bool condition) {
  if (!condition) std::abort();
}

// Field names of a decoded record are sorted by name (the decoders' contract) and unique.
void RequireWellFormed(const ods::record::Record& r) {
  for (size_t i = 1; i < r.fields.size(); ++i) {
    Require(r.fields[i - 1].name < r.fields[i].name);
  }
}

void FuzzRecordDecode(std::string_view in) {
  static const auto* const kDict = new ods::record::FieldDictionary(std::vector<std::string>{
      "age", "country", "score", "premium", "embedding", "signup", "avatar", ""});
  static const auto* const kProjection = new std::vector<uint32_t>{1, 3, 5, 7};
  ods::Result<ods::record::EncodedHeader> header = ods::record::DecodeHeader(in);
  ods::record::Record all;
  const ods::Status full = ods::record::Decode(in, *kDict, nullptr, all);
  ods::record::Record some;
  const ods::Status projected = ods::record::Decode(in, *kDict, kProjection, some);
  // A projection skips payloads it does not want but still checks their framing.
  Require(full.ok() == projected.ok());
  if (!full.ok()) return;
  Require(header.ok());
  RequireWellFormed(all);
  RequireWellFormed(some);
  Require(some.fields.size() <= all.fields.size());

  ods::record::FieldDictionary dict(std::vector<std::string>{"age", "country", "score", "premium",
                                                             "embedding", "signup", "avatar", ""});
  std::string canonical;
  ods::record::Encode(all, header->expire_at_micros, header->version, dict, canonical);
  ods::record::Record again;
  Require(ods::record::Decode(canonical, dict, nullptr, again).ok());
  std::string canonical_again;
  ods::record::Encode(again, header->expire_at_micros, header->version, dict, canonical_again);
  Require(canonical == canonical_again);
}

void FuzzStored(std::string_view in) {
  namespace internal = ods::tier::internal;
  ods::record::Record record;
  ods::Micros expire_at = 0;
  if (internal::DecodeValue(in, record, expire_at)) {
    RequireWellFormed(record);
    std::string stored;
    internal::EncodeValue(record, expire_at, record.version, stored);
    ods::record::Record again;
    ods::Micros expire_again = 0;
    Require(internal::DecodeValue(stored, again, expire_again));
    Require(expire_again == expire_at && again.version == record.version &&
            again.event_time_micros == record.event_time_micros);
    std::string stored_again;
    internal::EncodeValue(again, expire_again, again.version, stored_again);
    Require(stored == stored_again);
  }

  std::string_view table;
  std::string_view key;
  if (internal::DecodeKey(in, table, key)) {
    // Not a byte comparison: the reader accepts non-minimal varints, the writer never makes one.
    std::string stored;
    if (internal::IsMarkerTable(table)) {
      internal::EncodeMarkerKey(table.substr(1), key, stored);
    } else {
      internal::EncodeKey(table, key, stored);
    }
    std::string_view table_again;
    std::string_view key_again;
    Require(internal::DecodeKey(stored, table_again, key_again));
    Require(table_again == table && key_again == key);
  }

  uint64_t version = 0;
  ods::Micros marker_expire = 0;
  ods::Micros event_time = 0;
  uint64_t bytes = 0;
  if (internal::DecodeMarker(in, version, marker_expire, event_time, bytes)) {
    std::string stored;
    internal::EncodeMarker(version, marker_expire, event_time, bytes, stored);
    uint64_t version_again = 0;
    ods::Micros expire_again = 0;
    ods::Micros event_again = 0;
    uint64_t bytes_again = 0;
    Require(internal::DecodeMarker(stored, version_again, expire_again, event_again, bytes_again));
    Require(version_again == version && expire_again == marker_expire &&
            event_again == event_time && bytes_again == bytes);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  FuzzRecordDecode(in);
  FuzzStored(in);
  return 0;
}
