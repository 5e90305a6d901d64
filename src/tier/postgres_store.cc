// The `postgres` backing store: every record in one PostgreSQL table, through libpqxx (6.4 in
// Debian 12). libpqxx and libpq stay in this file (STYLE.md §1); their exceptions are caught
// here and turned into Status (§4).

#include <exception>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ods/common/logging.h"
#include "ods/common/mutex.h"
#include "ods/common/thread_annotations.h"
#include "ods/tier/backing_store.h"
#include "tier/backing_internal.h"
#include "tier/postgres_util.h"
#include "tier/stored_codec.h"

namespace ods::tier {
namespace {

using internal::NameKey;

using internal::DescribeTarget;
using internal::FirstLine;
using internal::IsSqlIdentifier;

class PostgresStore final : public BackingStore {
 public:
  PostgresStore(PostgresStoreOptions options, std::string target)
      : options_(std::move(options)), target_(std::move(target)) {}

  Status Connect() {
    MutexLock lock(mu_);
    return EnsureConnected();
  }

  Status Put(std::span<const BackingPut> batch) override {
    for (const BackingPut& p : batch) {
      ODS_RETURN_IF_ERROR(internal::CheckBackingKey(p.table, p.key));
      if (p.record == nullptr) {
        return InvalidArgumentError("backing store: " + NameKey(p.table, p.key) + ": no record");
      }
    }
    if (batch.empty()) return OkStatus();
    MutexLock lock(mu_);
    return Run("put", [&](pqxx::connection& conn) {
      pqxx::work txn(conn);
      std::string value;
      for (const BackingPut& p : batch) {
        internal::EncodeValue(*p.record, p.expire_at_micros, p.version, value);
        txn.exec_prepared0("ods_put", std::string(p.table), Binary(p.key),
                           static_cast<int64_t>(p.version),
                           static_cast<int64_t>(p.expire_at_micros), Binary(value));
      }
      txn.commit();
      return OkStatus();
    });
  }

  Status Delete(std::span<const BackingKey> keys) override {
    for (const BackingKey& k : keys) {
      ODS_RETURN_IF_ERROR(internal::CheckBackingKey(k.table, k.key));
    }
    if (keys.empty()) return OkStatus();
    MutexLock lock(mu_);
    return Run("delete", [&](pqxx::connection& conn) {
      pqxx::work txn(conn);
      for (const BackingKey& k : keys) {
        txn.exec_prepared0("ods_delete", std::string(k.table), Binary(k.key));
      }
      txn.commit();
      return OkStatus();
    });
  }

  Result<std::optional<BackingEntry>> Get(std::string_view table, std::string_view key) override {
    const std::string_view keys[] = {key};
    ODS_ASSIGN_OR_RETURN(std::vector<std::optional<BackingEntry>> found, GetMany(table, keys));
    return std::move(found.front());
  }

  Result<std::vector<std::optional<BackingEntry>>> GetMany(
      std::string_view table, std::span<const std::string_view> keys) override {
    for (std::string_view key : keys) ODS_RETURN_IF_ERROR(internal::CheckBackingKey(table, key));
    std::vector<std::optional<BackingEntry>> out;
    MutexLock lock(mu_);
    ODS_RETURN_IF_ERROR(Run("get", [&](pqxx::connection& conn) {
      out.clear();
      out.reserve(keys.size());
      pqxx::read_transaction txn(conn);
      for (std::string_view key : keys) {
        const pqxx::result r = txn.exec_prepared("ods_get", std::string(table), Binary(key));
        if (r.empty()) {
          out.emplace_back();
          continue;
        }
        const pqxx::binarystring stored(r[0][0]);
        BackingEntry entry;
        if (!internal::DecodeValue(std::string_view(stored.get(), stored.size()), entry.record,
                                   entry.expire_at_micros)) {
          return Status(StatusCode::kDataLoss, "backing store: postgres " + options_.table + ": " +
                                                   NameKey(table, key) +
                                                   ": stored value does not decode");
        }
        out.emplace_back(std::move(entry));
      }
      return OkStatus();
    }));
    return out;
  }

  Result<BackingScanPage> ScanKeys(std::string_view table, std::string_view start_after,
                                   size_t limit) override {
    ODS_RETURN_IF_ERROR(internal::CheckBackingTable(table));
    ODS_RETURN_IF_ERROR(internal::CheckScanLimit(limit));
    BackingScanPage page;
    MutexLock lock(mu_);
    ODS_RETURN_IF_ERROR(Run("scan", [&](pqxx::connection& conn) {
      page = BackingScanPage();
      pqxx::read_transaction txn(conn);
      // One more than asked: whether it exists says whether there is a next page.
      const auto fetch = static_cast<int64_t>(limit + 1);
      const pqxx::result r =
          start_after.empty()
              ? txn.exec_prepared("ods_scan_first", std::string(table), fetch)
              : txn.exec_prepared("ods_scan_after", std::string(table), Binary(start_after), fetch);
      for (const pqxx::row& row : r) {
        if (page.keys.size() == limit) {
          page.more = true;
          break;
        }
        const pqxx::binarystring key(row[0]);
        page.keys.emplace_back(key.get(), key.size());
      }
      return OkStatus();
    }));
    if (page.more) page.next_start_after = page.keys.back();
    return page;
  }

  Result<BackingStats> Stats() override {
    BackingStats stats;
    MutexLock lock(mu_);
    ODS_RETURN_IF_ERROR(Run("stats", [&](pqxx::connection& conn) {
      pqxx::read_transaction txn(conn);
      const pqxx::row row = txn.exec_prepared1("ods_stats");
      stats.records = row[0].as<uint64_t>();
      stats.bytes = row[1].as<uint64_t>();
      return OkStatus();
    }));
    return stats;
  }

  std::string Describe() const override {
    return "postgres " + target_ + " table=" + options_.table;
  }

 private:
  static pqxx::binarystring Binary(std::string_view bytes) {
    return pqxx::binarystring(bytes.data(), bytes.size());
  }

  // Connects and prepares the statements if there is no open connection.
  Status EnsureConnected() ODS_REQUIRES(mu_) {
    if (conn_ != nullptr && conn_->is_open()) return OkStatus();
    conn_.reset();
    try {
      auto conn = std::make_unique<pqxx::connection>(options_.conninfo);
      const std::string& t = options_.table;
      {
        pqxx::work txn(*conn);
        txn.exec0("CREATE TABLE IF NOT EXISTS " + t +
                  " (tbl text NOT NULL, key bytea NOT NULL, version bigint NOT NULL,"
                  " expire_at_micros bigint NOT NULL, value bytea NOT NULL,"
                  " PRIMARY KEY (tbl, key))");
        txn.commit();
      }
      conn->prepare("ods_put", "INSERT INTO " + t +
                                   " (tbl, key, version, expire_at_micros, value)"
                                   " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tbl, key) DO UPDATE"
                                   " SET version = EXCLUDED.version,"
                                   " expire_at_micros = EXCLUDED.expire_at_micros,"
                                   " value = EXCLUDED.value");
      conn->prepare("ods_delete", "DELETE FROM " + t + " WHERE tbl = $1 AND key = $2");
      conn->prepare("ods_get", "SELECT value FROM " + t + " WHERE tbl = $1 AND key = $2");
      conn->prepare("ods_scan_first",
                    "SELECT key FROM " + t + " WHERE tbl = $1 ORDER BY key LIMIT $2");
      conn->prepare("ods_scan_after",
                    "SELECT key FROM " + t + " WHERE tbl = $1 AND key > $2 ORDER BY key LIMIT $3");
      conn->prepare("ods_stats",
                    "SELECT count(*), coalesce(sum(octet_length(tbl) + octet_length(key) +"
                    " octet_length(value)), 0) FROM " +
                        t);
      conn_ = std::move(conn);
      return OkStatus();
    } catch (const std::exception& e) {
      return UnavailableError("backing store: postgres " + target_ +
                              ": cannot connect: " + FirstLine(e.what()));
    }
  }

  // Runs `fn` on the connection, connecting first if needed; libpqxx exceptions become
  // kUnavailable naming the target. Every operation here is idempotent (upserts and deletes by
  // key, reads), so one that finds its connection lost (the server restarted, an idle
  // connection was cut) is run once more on a new connection before giving up. `fn` must start
  // from scratch when called again.
  // LeakSanitizer sees libpqxx 6.4 leak about 2 KiB (a PGresult) each time a query meets a
  // broken connection: bounded by the number of connection losses, so left as is.
  template <typename Fn>
  Status Run(const char* what, Fn&& fn) ODS_REQUIRES(mu_) {
    bool lost = false;
    Status status = RunOnce(what, fn, lost);
    if (lost) status = RunOnce(what, fn, lost);
    return status;
  }

  template <typename Fn>
  Status RunOnce(const char* what, Fn& fn, bool& lost) ODS_REQUIRES(mu_) {
    lost = false;
    ODS_RETURN_IF_ERROR(EnsureConnected());
    try {
      return fn(*conn_);
    } catch (const pqxx::broken_connection& e) {
      conn_.reset();
      lost = true;
      return UnavailableError("backing store: postgres " + target_ + ": " + what +
                              ": connection lost: " + FirstLine(e.what()));
    } catch (const pqxx::in_doubt_error& e) {
      conn_.reset();
      lost = true;
      return UnavailableError("backing store: postgres " + target_ + ": " + what +
                              ": commit outcome unknown: " + FirstLine(e.what()));
    } catch (const pqxx::sql_error& e) {
      if (conn_ != nullptr && !conn_->is_open()) conn_.reset();
      return UnavailableError("backing store: postgres " + target_ + ": " + what + ": SQL error " +
                              e.sqlstate() + ": " + FirstLine(e.what()));
    } catch (const std::exception& e) {
      if (conn_ != nullptr && !conn_->is_open()) conn_.reset();
      return UnavailableError("backing store: postgres " + target_ + ": " + what + ": " +
                              FirstLine(e.what()));
    }
  }

  const PostgresStoreOptions options_;
  const std::string target_;  // conninfo without the password
  Mutex mu_;
  std::unique_ptr<pqxx::connection> conn_ ODS_GUARDED_BY(mu_);
};

}  // namespace

Result<std::unique_ptr<BackingStore>> OpenPostgresStore(const PostgresStoreOptions& options) {
  if (options.conninfo.empty()) {
    return InvalidArgumentError("backing store: postgres: conninfo must not be empty");
  }
  if (!IsSqlIdentifier(options.table)) {
    return InvalidArgumentError("backing store: postgres: bad table name '" +
                                QuoteForMessage(options.table) +
                                "'; expected letters, digits and _, at most 63 bytes");
  }
  std::optional<std::string> target = DescribeTarget(options.conninfo);
  if (!target) {
    // libpq's parse error may quote the string, password included: say only that it failed.
    return InvalidArgumentError(
        "backing store: postgres: conninfo does not parse; expected key=value pairs "
        "(host=... dbname=...) or a postgresql:// URI");
  }
  auto store = std::make_unique<PostgresStore>(options, *target);
  ODS_RETURN_IF_ERROR(store->Connect());
  Logger("ods.tier")->info("backing store: opened {}", store->Describe());
  return std::unique_ptr<BackingStore>(std::move(store));
}

}  // namespace ods::tier
