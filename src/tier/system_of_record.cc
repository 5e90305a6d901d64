// The PostgreSQL system of record: reads rows of another system's table by key, through
// libpqxx (6.4 in Debian 12). libpqxx stays in this file (STYLE.md §1); its exceptions are caught
// here and turned into Status (§4).

#include "ods/tier/system_of_record.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ods/common/logging.h"
#include "ods/common/mutex.h"
#include "ods/common/thread_annotations.h"
#include "tier/postgres_util.h"

namespace ods::tier {
namespace {

using internal::DescribeTarget;
using internal::FirstLine;
using internal::IsSqlIdentifier;

// Type OIDs of the PostgreSQL built-in types we read (pg_type.dat; fixed across versions).
constexpr unsigned kBoolOid = 16;
constexpr unsigned kByteaOid = 17;
constexpr unsigned kNameOid = 19;
constexpr unsigned kInt8Oid = 20;
constexpr unsigned kInt2Oid = 21;
constexpr unsigned kInt4Oid = 23;
constexpr unsigned kTextOid = 25;
constexpr unsigned kFloat4Oid = 700;
constexpr unsigned kFloat8Oid = 701;
constexpr unsigned kBpcharOid = 1042;
constexpr unsigned kVarcharOid = 1043;
constexpr unsigned kTimestampOid = 1114;
constexpr unsigned kTimestamptzOid = 1184;
constexpr unsigned kNumericOid = 1700;

bool IsIntOid(unsigned oid) { return oid == kInt2Oid || oid == kInt4Oid || oid == kInt8Oid; }
bool IsTextOid(unsigned oid) {
  return oid == kTextOid || oid == kVarcharOid || oid == kBpcharOid || oid == kNameOid;
}

// Whether a column of type `oid` can be read as `type`, and if not, what could.
bool Accepts(ValueType type, unsigned oid) {
  switch (type) {
    case ValueType::kInt64: return IsIntOid(oid);
    case ValueType::kDouble:
      return oid == kFloat4Oid || oid == kFloat8Oid || oid == kNumericOid || IsIntOid(oid);
    case ValueType::kBool: return oid == kBoolOid;
    case ValueType::kString: return IsTextOid(oid);
    case ValueType::kBytes: return oid == kByteaOid;
    case ValueType::kTimestamp: return oid == kTimestampOid || oid == kTimestamptzOid;
    case ValueType::kFloatVector: return false;
  }
  return false;
}

std::string_view Expected(ValueType type) {
  switch (type) {
    case ValueType::kInt64: return "smallint, integer or bigint";
    case ValueType::kDouble: return "real, double precision, numeric, smallint, integer or bigint";
    case ValueType::kBool: return "boolean";
    case ValueType::kString: return "text, varchar, char or name";
    case ValueType::kBytes: return "bytea";
    case ValueType::kTimestamp: return "timestamptz or timestamp";
    case ValueType::kFloatVector: return "nothing (float_vector cannot be read from PostgreSQL)";
  }
  return "?";
}

// How keys are sent and matched, by the key column's type.
enum class KeyKind : uint8_t { kText, kInt, kBytea };

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;  // PostgreSQL text cannot hold NUL
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c >> 5) == 0x6) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c >> 4) == 0xe) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c >> 3) == 0x1e) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 0x2) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    const uint32_t min = n == 1 ? 0x80 : (n == 2 ? 0x800 : 0x10000);
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

// "42", "-7", "0": the text PostgreSQL prints for an integer, and only that.
bool IsCanonicalInt(std::string_view s) {
  std::string_view digits = s.starts_with('-') ? s.substr(1) : s;
  if (digits.empty() || digits.size() > 19) return false;
  if (digits.size() > 1 && digits[0] == '0') return false;
  if (s == "-0") return false;
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && end == s.data() + s.size();
}

// Whether `key` can be a value of the key column (else it is a miss without asking).
bool Queryable(KeyKind kind, std::string_view key) {
  switch (kind) {
    case KeyKind::kText: return IsValidUtf8(key);
    case KeyKind::kInt: return IsCanonicalInt(key);
    case KeyKind::kBytea: return true;
  }
  return false;
}

// Appends `key` as one element of a PostgreSQL array literal of the key column's type.
void AppendArrayElement(KeyKind kind, std::string_view key, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  switch (kind) {
    case KeyKind::kInt: out += key; return;
    case KeyKind::kText:
      out += '"';
      for (char c : key) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
      }
      out += '"';
      return;
    case KeyKind::kBytea:
      out += "\"\\\\x";  // "\\x..." in the literal is the element \x... (bytea hex input)
      for (char c : key) {
        const auto b = static_cast<unsigned char>(c);
        out += kHex[b >> 4];
        out += kHex[b & 0xf];
      }
      out += '"';
      return;
  }
}

std::string Quoted(std::string_view identifier) { return "\"" + std::string(identifier) + "\""; }

// "schema"."name" or "name".
std::string QuotedTable(std::string_view table) {
  const size_t dot = table.find('.');
  if (dot == std::string_view::npos) return Quoted(table);
  return Quoted(table.substr(0, dot)) + "." + Quoted(table.substr(dot + 1));
}

class PostgresSystemOfRecord final : public SystemOfRecord {
 public:
  PostgresSystemOfRecord(PostgresSorOptions options, std::string target)
      : options_(std::move(options)), target_(std::move(target)) {}

  Result<std::vector<std::optional<record::Record>>> Read(
      std::span<const std::string_view> keys) override {
    std::vector<std::optional<record::Record>> out(keys.size());
    if (keys.empty()) return out;
    MutexLock lock(mu_);
    Status s = Run([&](pqxx::connection& conn) -> Status {
      for (auto& r : out) r.reset();
      // The first position of each distinct key: rows fill it, later duplicates copy it.
      std::unordered_map<std::string_view, size_t> first;
      std::string array = "{";
      for (size_t i = 0; i < keys.size(); ++i) {
        if (!Queryable(key_kind_, keys[i])) continue;
        if (!first.emplace(keys[i], i).second) continue;
        if (array.size() > 1) array += ',';
        AppendArrayElement(key_kind_, keys[i], array);
      }
      array += '}';
      if (first.empty()) return OkStatus();
      pqxx::nontransaction txn(conn);
      const pqxx::result rows = txn.exec_prepared("ods_sor_read", array);
      std::string key;
      for (const pqxx::row& row : rows) {
        if (row[0].is_null()) continue;
        if (key_kind_ == KeyKind::kBytea) {
          const pqxx::binarystring b(row[0]);
          key.assign(b.get(), b.size());
        } else {
          key.assign(row[0].c_str(), row[0].size());
        }
        auto it = first.find(key);
        if (it == first.end() || out[it->second].has_value()) continue;  // a duplicate row
        ODS_ASSIGN_OR_RETURN(out[it->second], Convert(row));
      }
      for (size_t i = 0; i < keys.size(); ++i) {
        auto it = first.find(keys[i]);
        if (it != first.end() && it->second != i) out[i] = out[it->second];
      }
      return OkStatus();
    });
    if (!s.ok()) return s;
    return out;
  }

  Status Check() override {
    MutexLock lock(mu_);
    Status s = EnsureConnected();
    if (s.code() == StatusCode::kFailedPrecondition) {
      return InvalidArgumentError(std::string(s.message()));
    }
    return s;
  }

  std::string Describe() const override {
    return "postgres " + target_ + " table=" + options_.table;
  }

 private:
  Result<record::Record> Convert(const pqxx::row& row) const {
    record::Record rec;
    for (size_t c = 0; c < columns_.size(); ++c) {
      const pqxx::field f = row[static_cast<pqxx::row::size_type>(c + 1)];
      if (f.is_null()) continue;
      const SorColumn& col = columns_[c];
      const std::string_view text(f.c_str(), f.size());
      record::Value value;
      bool ok = true;
      switch (col.type) {
        case ValueType::kInt64:
        case ValueType::kTimestamp: {
          int64_t v = 0;
          const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
          ok = ec == std::errc() && end == text.data() + text.size();
          if (col.type == ValueType::kInt64) {
            value = v;
          } else {
            value = record::Timestamp{v};
          }
          break;
        }
        case ValueType::kDouble: {
          char* end = nullptr;
          const double v = std::strtod(f.c_str(), &end);
          ok = end == f.c_str() + f.size() && !text.empty();
          value = v;
          break;
        }
        case ValueType::kBool:
          ok = text == "t" || text == "f";
          value = text == "t";
          break;
        case ValueType::kString: value = std::string(text); break;
        case ValueType::kBytes: {
          const pqxx::binarystring b(f);
          value = record::Bytes{std::string(b.get(), b.size())};
          break;
        }
        case ValueType::kFloatVector: ok = false; break;
      }
      if (!ok) {
        return FailedPreconditionError("system of record " + Describe() + ": column '" +
                                       col.column + "' value does not convert to field '" +
                                       col.field + "' (" + std::string(ValueTypeName(col.type)) +
                                       ")");
      }
      rec.fields.push_back({col.field, std::move(value)});
    }
    std::sort(rec.fields.begin(), rec.fields.end(),
              [](const record::Field& a, const record::Field& b) { return a.name < b.name; });
    return rec;
  }

  // Connects, checks the columns' types against the fields and prepares the read. A table
  // that does not fit is kFailedPrecondition and leaves no connection, so the next call
  // checks again (the table may have been fixed meanwhile).
  Status EnsureConnected() ODS_REQUIRES(mu_) {
    if (conn_ != nullptr && conn_->is_open()) return OkStatus();
    conn_.reset();
    const std::string table = QuotedTable(options_.table);
    std::string probe = "SELECT " + Quoted(options_.key_column);
    for (const SorColumn& c : options_.columns) probe += ", " + Quoted(c.column);
    probe += " FROM " + table + " WHERE false";
    std::unique_ptr<pqxx::connection> conn;
    try {
      conn = std::make_unique<pqxx::connection>(options_.conninfo);
    } catch (const std::exception& e) {
      return UnavailableError("system of record " + Describe() +
                              ": cannot connect: " + FirstLine(e.what()));
    }
    try {
      pqxx::result r;
      {
        pqxx::nontransaction txn(*conn);
        r = txn.exec(probe);
      }
      const unsigned key_oid = r.column_type(0);
      if (IsTextOid(key_oid)) {
        key_kind_ = KeyKind::kText;
      } else if (IsIntOid(key_oid)) {
        key_kind_ = KeyKind::kInt;
      } else if (key_oid == kByteaOid) {
        key_kind_ = KeyKind::kBytea;
      } else {
        return FailedPreconditionError(
            "system of record " + Describe() + ": key column '" + options_.key_column + "' is " +
            TypeName(*conn, key_oid) + "; expected text, varchar, char, smallint, integer, bigint "
            "or bytea");
      }
      std::string select = "SELECT " + Quoted(options_.key_column);
      for (size_t c = 0; c < options_.columns.size(); ++c) {
        const SorColumn& col = options_.columns[c];
        const unsigned oid = r.column_type(static_cast<pqxx::row::size_type>(c + 1));
        if (!Accepts(col.type, oid)) {
          return FailedPreconditionError(
              "system of record " + Describe() + ": column '" + col.column + "' is " +
              TypeName(*conn, oid) + " but field '" + col.field + "' is " +
              std::string(ValueTypeName(col.type)) + "; expected " +
              std::string(Expected(col.type)));
        }
        const std::string q = Quoted(col.column);
        if (col.type == ValueType::kTimestamp) {
          // Microseconds since the epoch, exactly (EXTRACT gives numeric); infinity: absent.
          select += ", CASE WHEN isfinite(" + q + ") THEN (EXTRACT(EPOCH FROM " + q +
                    ") * 1000000)::int8 END";
        } else if (col.type == ValueType::kDouble) {
          select += ", " + q + "::float8";
        } else {
          select += ", " + q;
        }
      }
      const char* array_type =
          key_kind_ == KeyKind::kText ? "text[]" : (key_kind_ == KeyKind::kInt ? "int8[]" : "bytea[]");
      select += " FROM " + table + " WHERE " + Quoted(options_.key_column) + " = ANY($1::" +
                array_type + ")";
      conn->prepare("ods_sor_read", select);
      columns_ = options_.columns;
      conn_ = std::move(conn);
      return OkStatus();
    } catch (const pqxx::sql_error& e) {
      // Class 42: syntax error or access rule violation (no such table or column, no
      // privilege): the table does not fit the config.
      if (e.sqlstate().starts_with("42")) {
        return FailedPreconditionError("system of record " + Describe() + ": " +
                                       FirstLine(e.what()) + " (checking key_column and columns)");
      }
      return UnavailableError("system of record " + Describe() + ": SQL error " + e.sqlstate() +
                              ": " + FirstLine(e.what()));
    } catch (const std::exception& e) {
      return UnavailableError("system of record " + Describe() + ": " + FirstLine(e.what()));
    }
  }

  // "jsonb" for a type's OID, for messages; "type oid N" if it cannot be looked up.
  static std::string TypeName(pqxx::connection& conn, unsigned oid) {
    try {
      pqxx::nontransaction txn(conn);
      const pqxx::result r =
          txn.exec("SELECT format_type(" + std::to_string(oid) + ", NULL)");
      if (!r.empty() && !r[0][0].is_null()) return r[0][0].c_str();
    } catch (const std::exception&) {
    }
    return "type oid " + std::to_string(oid);
  }

  // Runs `fn`, connecting first if needed; as PostgresStore::Run, a read that finds its
  // connection lost is run once more on a new connection before giving up.
  template <typename Fn>
  Status Run(Fn&& fn) ODS_REQUIRES(mu_) {
    bool lost = false;
    Status status = RunOnce(fn, lost);
    if (lost) status = RunOnce(fn, lost);
    return status;
  }

  template <typename Fn>
  Status RunOnce(Fn& fn, bool& lost) ODS_REQUIRES(mu_) {
    lost = false;
    ODS_RETURN_IF_ERROR(EnsureConnected());
    try {
      return fn(*conn_);
    } catch (const pqxx::broken_connection& e) {
      conn_.reset();
      lost = true;
      return UnavailableError("system of record " + Describe() +
                              ": read: connection lost: " + FirstLine(e.what()));
    } catch (const pqxx::sql_error& e) {
      if (conn_ != nullptr && !conn_->is_open()) conn_.reset();
      // The table changed under the prepared read (a column dropped or retyped): check again.
      if (e.sqlstate().starts_with("42") || e.sqlstate() == "0A000") conn_.reset();
      return UnavailableError("system of record " + Describe() + ": read: SQL error " +
                              e.sqlstate() + ": " + FirstLine(e.what()));
    } catch (const std::exception& e) {
      if (conn_ != nullptr && !conn_->is_open()) conn_.reset();
      return UnavailableError("system of record " + Describe() + ": read: " +
                              FirstLine(e.what()));
    }
  }

  const PostgresSorOptions options_;
  const std::string target_;  // conninfo without the password
  Mutex mu_;
  std::unique_ptr<pqxx::connection> conn_ ODS_GUARDED_BY(mu_);
  KeyKind key_kind_ ODS_GUARDED_BY(mu_) = KeyKind::kText;
  std::vector<SorColumn> columns_ ODS_GUARDED_BY(mu_);
};

}  // namespace

Result<std::unique_ptr<SystemOfRecord>> OpenPostgresSystemOfRecord(
    const PostgresSorOptions& options) {
  if (options.conninfo.empty()) {
    return InvalidArgumentError("system of record: postgres: conninfo must not be empty");
  }
  const size_t dot = options.table.find('.');
  const bool table_ok =
      dot == std::string::npos
          ? IsSqlIdentifier(options.table)
          : IsSqlIdentifier(std::string_view(options.table).substr(0, dot)) &&
                IsSqlIdentifier(std::string_view(options.table).substr(dot + 1));
  if (!table_ok) {
    return InvalidArgumentError("system of record: postgres: bad table name '" +
                                QuoteForMessage(options.table) +
                                "'; expected name or schema.name of letters, digits and _");
  }
  if (!IsSqlIdentifier(options.key_column)) {
    return InvalidArgumentError("system of record: postgres: bad key column '" +
                                QuoteForMessage(options.key_column) + "'");
  }
  if (options.columns.empty()) {
    return InvalidArgumentError("system of record: postgres: no columns to read");
  }
  for (const SorColumn& c : options.columns) {
    if (!IsSqlIdentifier(c.column)) {
      return InvalidArgumentError("system of record: postgres: bad column '" +
                                  QuoteForMessage(c.column) + "' for field '" + c.field + "'");
    }
    if (c.type == ValueType::kFloatVector) {
      return InvalidArgumentError("system of record: postgres: field '" + c.field +
                                  "' is float_vector, which cannot be read from PostgreSQL");
    }
  }
  std::optional<std::string> target = DescribeTarget(options.conninfo);
  if (!target) {
    return InvalidArgumentError(
        "system of record: postgres: conninfo does not parse; expected key=value pairs "
        "(host=... dbname=...) or a postgresql:// URI");
  }
  return std::unique_ptr<SystemOfRecord>(
      std::make_unique<PostgresSystemOfRecord>(options, *target));
}

}  // namespace ods::tier
