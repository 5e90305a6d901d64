#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/status.h"
#include "ods/common/value_type.h"
#include "ods/record/value.h"

// A system of record (issue #6 point 2): a table owned by another system that ODS reads records
// from when a Get misses (docs/architecture.md, "System of record read-through"). Read-only:
// ODS never writes it. One implementation, PostgreSQL through libpqxx; no third-party header is
// included here.
namespace ods::tier {

// One ODS field and the column it is read from.
struct SorColumn {
  std::string field;                     // the table's declared field
  ValueType type = ValueType::kString;   // its declared type; float_vector is refused
  std::string column;                    // the PostgreSQL column
};

// A source of records by key. Thread-safe: any method may be called from any thread; calls
// block on the network (a shard thread must not call them). Implementations serialize their
// calls on one connection.
//
// Errors, common to every method: kUnavailable when the source cannot be reached or a query
// fails (the message names host, port, database, user and table, never a password);
// kFailedPrecondition when the source's table no longer fits the columns (a column missing or
// of a type its field cannot take), naming table, column and field.
class SystemOfRecord {
 public:
  virtual ~SystemOfRecord() = default;

  // The records of `keys`: out[i] for keys[i], nullopt when the source has no row for it (or
  // the key cannot be one of its keys, e.g. "abc" for an integer key column). A record holds
  // the configured fields sorted by name; a NULL column leaves its field out. Version and event
  // time are 0. One query for the whole batch. A key given twice is answered twice.
  virtual Result<std::vector<std::optional<record::Record>>> Read(
      std::span<const std::string_view> keys) = 0;

  // Connects now if not connected and checks the columns against the fields. kInvalidArgument
  // (rather than kFailedPrecondition) when they do not fit, for start-up checks.
  virtual Status Check() = 0;

  // "postgres host=... port=... dbname=... user=... table=..." (no password).
  virtual std::string Describe() const = 0;
};

struct PostgresSorOptions {
  // libpq connection string; required. Its password never appears in a message or log.
  std::string conninfo;
  // `name` or `schema.name`; each part letters, digits and _, at most 63 bytes. Quoted in SQL,
  // so matched exactly (case-sensitive).
  std::string table;
  // The key column: text, varchar, char, smallint, integer, bigint or bytea. An integer column
  // matches keys that are canonical decimal numbers ("42", not "042" or "+42").
  std::string key_column;
  // At least one. Column types a field type takes: int64 <- smallint, integer, bigint;
  // double <- real, double precision, numeric, smallint, integer, bigint; bool <- boolean;
  // string <- text, varchar, char, name; bytes <- bytea; timestamp <- timestamptz, timestamp
  // (without time zone: read as UTC; +-infinity: field absent).
  std::vector<SorColumn> columns;
};

// Validates `options` (kInvalidArgument naming the problem); does not connect: the first Read
// or Check does, and every read after a lost connection reconnects.
Result<std::unique_ptr<SystemOfRecord>> OpenPostgresSystemOfRecord(
    const PostgresSorOptions& options);

}  // namespace ods::tier
