#include "ods/config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <limits>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "config/keys.h"
#include "config/parser.h"
#include "config/pem.h"
#include "ods/common/sha256.h"
#include "ods/common/units.h"

namespace ods::config {
namespace internal {

bool IsValidName(std::string_view name) {
  constexpr size_t kMaxNameBytes = 64;
  if (name.empty() || name.size() > kMaxNameBytes) return false;
  if (!(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

void ParseFieldMap(Parser& p, const YAML::Node& node, const std::string& path,
                   std::vector<FieldConfig>& out, std::vector<YAML::Mark>& marks) {
  p.ForEachKey(
      node, path, {},
      [&](const std::string& field, const YAML::Node& field_node, const YAML::Node& type_node) {
        const std::string fpath = path + "." + field;
        if (!IsValidName(field)) {
          p.Error(field_node,
                  "bad field name '" + field + "' in " + path + "; expected letters, digits and _");
          return;
        }
        std::string type_name;
        if (!p.String(type_node, fpath, type_name)) return;
        std::optional<ValueType> type = ParseValueType(type_name);
        if (!type) {
          p.Error(type_node, fpath + ": unknown field type '" + type_name +
                                 "'; expected one of: " + std::string(ValueTypeNameList()));
          return;
        }
        out.push_back({field, *type});
        marks.push_back(field_node.Mark());
      });
}

}  // namespace internal

namespace {

using internal::DefinitionsParser;
using internal::IsValidName;
using internal::kMaxLongDuration;
using internal::Parser;

bool IsListenAddress(std::string_view addr) {
  const size_t colon = addr.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == addr.size()) return false;
  const std::string_view port = addr.substr(colon + 1);
  if (port.size() > 5) return false;
  for (char c : port) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return std::stoul(std::string(port)) <= 65535;
}

void ParseListen(Parser& p, const YAML::Node& node, const std::string& path, bool allow_empty,
                 std::string& out) {
  std::string v;
  if (!p.String(node, path, v)) return;
  if (v.empty() && allow_empty) {
    out = v;
    return;
  }
  if (!IsListenAddress(v)) {
    p.Error(node, path + ": bad address '" + v + "'; expected host:port such as 127.0.0.1:7070" +
                      (allow_empty ? " (or \"\" to disable)" : ""));
    return;
  }
  out = v;
}

// Most bytes of one function's source file.
constexpr uint64_t kMaxFunctionSourceBytes = uint64_t{1} << 20;

// Reads `file` (relative to `base_dir` unless absolute), a `what` (e.g. "Lua source file"), into
// `out` and its resolved path into `resolved`; reports problems at `node` for key `path`. The
// file's contents never appear in a message.
bool ReadConfiguredFile(Parser& p, const YAML::Node& node, const std::string& path,
                        const std::string& base_dir, const std::string& file, uint64_t max_bytes,
                        std::string_view what, std::string& resolved, std::string& out) {
  resolved = file.empty() || file[0] == '/' || base_dir.empty() ? file : base_dir + "/" + file;
  std::ifstream in(resolved, std::ios::binary);
  if (!in) {
    p.Error(node, path + ": cannot read " + std::string(what) + " '" + resolved +
                      "'; expected a path relative to the config file");
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > max_bytes) {
    p.Error(node, path + ": '" + resolved + "' has " + std::to_string(text.str().size()) +
                      " bytes; expected at most " + FormatBytes(max_bytes));
    return false;
  }
  out = text.str();
  return true;
}

// Most bytes of a PEM file (a certificate chain or a CA bundle).
constexpr uint64_t kMaxPemBytes = uint64_t{1} << 20;

// `true` or `false`.
bool ParseBool(Parser& p, const YAML::Node& node, const std::string& path, bool& out) {
  std::string v;
  if (!p.OneOf(node, path, {"true", "false"}, v)) return false;
  out = v == "true";
  return true;
}

void ParseTls(Parser& p, const YAML::Node& key_node, const YAML::Node& node,
              const std::string& base_dir, std::optional<TlsConfig>& out) {
  TlsConfig tls;
  bool has_cert = false;
  bool has_key = false;
  bool cert_ok = false;
  bool key_ok = false;
  bool has_client_ca = false;
  YAML::Mark key_mark;      // of the `key:` value
  YAML::Mark require_mark;  // of the `require_client_cert:` value
  p.ForEachKey(
      node, "server.tls", internal::kTlsKeys,
      [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
        const std::string path = "server.tls." + key;
        std::string resolved;
        if (key == "cert") {
          has_cert = true;
          if (p.String(v, path, tls.cert_path) &&
              ReadConfiguredFile(p, v, path, base_dir, tls.cert_path, kMaxPemBytes,
                                 "certificate file", resolved, tls.cert_pem)) {
            const std::string problem = internal::CheckCertificates(tls.cert_pem);
            if (!problem.empty()) p.Error(v, path + ": '" + resolved + "' " + problem);
            cert_ok = problem.empty();
          }
        } else if (key == "key") {
          has_key = true;
          key_mark = v.Mark();
          if (p.String(v, path, tls.key_path) &&
              ReadConfiguredFile(p, v, path, base_dir, tls.key_path, kMaxPemBytes,
                                 "private key file", resolved, tls.key_pem)) {
            const std::string problem = internal::CheckPrivateKey(tls.key_pem);
            if (!problem.empty()) p.Error(v, path + ": '" + resolved + "' " + problem);
            key_ok = problem.empty();
          }
        } else if (key == "client_ca") {
          has_client_ca = true;
          if (p.String(v, path, tls.client_ca_path) &&
              ReadConfiguredFile(p, v, path, base_dir, tls.client_ca_path, kMaxPemBytes,
                                 "CA file", resolved, tls.client_ca_pem)) {
            const std::string problem = internal::CheckCertificates(tls.client_ca_pem);
            if (!problem.empty()) p.Error(v, path + ": '" + resolved + "' " + problem);
          }
        } else if (key == "require_client_cert") {
          require_mark = v.Mark();
          ParseBool(p, v, path, tls.require_client_cert);
        }
      });
  if (!node.IsMap()) return;
  if (!has_cert) {
    p.Error(key_node, "server.tls: missing 'cert' (the server's certificate chain, a PEM file)");
  }
  if (!has_key) {
    p.Error(key_node, "server.tls: missing 'key' (the certificate's private key, a PEM file)");
  }
  if (cert_ok && key_ok) {
    const std::string problem = internal::CheckKeyMatchesCertificate(tls.cert_pem, tls.key_pem);
    if (!problem.empty()) {
      p.Error(key_mark, "server.tls.key: '" + tls.key_path + "' " + problem + " ('" +
                             tls.cert_path + "')");
    }
  }
  if (tls.require_client_cert && !has_client_ca) {
    p.Error(require_mark,
            "server.tls.require_client_cert: needs server.tls.client_ca (the CA that client "
            "certificates are verified against)");
  }
  out = std::move(tls);
}

void ParseServer(Parser& p, const YAML::Node& node, const std::string& base_dir,
                 ServerConfig& out) {
  p.ForEachKey(node, "server", internal::kServerKeys,
               [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& v) {
                 if (key == "tls") {
                   ParseTls(p, key_node, v, base_dir, out.tls);
                 } else if (key == "grpc_listen") {
                   ParseListen(p, v, "server.grpc_listen", false, out.grpc_listen);
                 } else if (key == "admin_listen") {
                   ParseListen(p, v, "server.admin_listen", true, out.admin_listen);
                 } else if (key == "shards") {
                   p.Integer(v, "server.shards", 1, 1024, out.shards);
                 } else if (key == "grpc_threads") {
                   p.Integer(v, "server.grpc_threads", 1, 64, out.grpc_threads);
                 } else if (key == "grpc_spill_after") {
                   p.Duration(v, "server.grpc_spill_after", 1'000'000, out.grpc_spill_after_micros);
                 } else if (key == "shutdown_grace") {
                   p.Duration(v, "server.shutdown_grace", 60'000'000, out.shutdown_grace_micros);
                 }
               });
}

void ParseLogging(Parser& p, const YAML::Node& node, LoggingConfig& out) {
  p.ForEachKey(node, "logging", internal::kLoggingKeys,
               [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
                 if (key == "level") {
                   p.OneOf(v, "logging.level", {"trace", "debug", "info", "warn", "error", "off"},
                           out.level);
                 } else if (key == "format") {
                   p.OneOf(v, "logging.format", {"text", "json"}, out.format);
                 }
               });
}

void ParseLimits(Parser& p, const YAML::Node& node, LimitsConfig& out) {
  p.ForEachKey(
      node, "limits", internal::kLimitsKeys,
      [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
        if (key == "max_key_bytes") {
          uint64_t b = 0;
          if (p.Bytes(v, "limits.max_key_bytes", 1, 64 << 10, b)) {
            out.max_key_bytes = static_cast<uint32_t>(b);
          }
        } else if (key == "max_record_bytes") {
          p.Bytes(v, "limits.max_record_bytes", 64, uint64_t{64} << 20, out.max_record_bytes);
        } else if (key == "max_batch_size") {
          p.Integer(v, "limits.max_batch_size", 1, 1'000'000, out.max_batch_size);
        } else if (key == "max_message_bytes") {
          p.Bytes(v, "limits.max_message_bytes", 4 << 10, uint64_t{1} << 30,
                  out.max_message_bytes);
        } else if (key == "max_concurrent_streams") {
          p.Integer(v, "limits.max_concurrent_streams", 1, 1'000'000, out.max_concurrent_streams);
        }
      });
  // Any stored record must fit in a response (Get, Scan page) with room for the envelope.
  if (node.IsMap() && out.max_record_bytes > out.max_message_bytes / 2) {
    p.Error(node, "limits: max_record_bytes (" + FormatBytes(out.max_record_bytes) +
                      ") must be at most half of max_message_bytes (" +
                      FormatBytes(out.max_message_bytes) + ") so that any record fits in a reply");
  }
}

void ParseSubscriptions(Parser& p, const YAML::Node& node, SubscriptionsConfig& out) {
  p.ForEachKey(node, "subscriptions", internal::kSubscriptionsKeys,
               [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
                 if (key == "retained_changes") {
                   p.Integer(v, "subscriptions.retained_changes", 0, 100'000'000,
                             out.retained_changes);
                 } else if (key == "max_subscribers") {
                   p.Integer(v, "subscriptions.max_subscribers", 1, 100'000, out.max_subscribers);
                 } else if (key == "queue_size") {
                   p.Integer(v, "subscriptions.queue_size", 1, 100'000'000, out.queue_size);
                 }
               });
  if (node.IsMap() && out.retained_changes > 0 && out.queue_size > out.retained_changes) {
    p.Error(node, "subscriptions: queue_size (" + std::to_string(out.queue_size) +
                      ") must be at most retained_changes (" +
                      std::to_string(out.retained_changes) + ")");
  }
}

// Parses a durability mode at `path` into `out`.
bool ParseDurability(Parser& p, const YAML::Node& node, const std::string& path,
                     Durability& out) {
  std::string name;
  if (!p.OneOf(node, path, {"sync", "async", "none"}, name)) return false;
  out = name == "sync" ? Durability::kSync
                       : (name == "async" ? Durability::kAsync : Durability::kNone);
  return true;
}

// A PostgreSQL table name we put into SQL unquoted: an identifier of at most 63 bytes.
bool IsSqlTableName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// A cost per GiB-month: a finite number >= 0.
void ParseCost(Parser& p, const YAML::Node& node, const std::string& path, double& out) {
  double v = 0;
  if (!p.Number(node, path, v)) return;
  if (v < 0) {
    p.Error(node, path + ": " + node.Scalar() + " is negative; expected a cost >= 0");
    return;
  }
  out = v;
}

void ParseBacking(Parser& p, const YAML::Node& node, BackingConfig& out) {
  std::optional<YAML::Mark> postgres_mark;
  bool has_conninfo = false;
  p.ForEachKey(
      node, "storage.backing", internal::kBackingKeys,
      [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& v) {
        if (key == "cost_per_gib_month") {
          ParseCost(p, v, "storage.backing.cost_per_gib_month", out.cost_per_gib_month);
        } else if (key == "kind") {
          std::string kind;
          if (p.OneOf(v, "storage.backing.kind", {"directory", "postgres"}, kind)) {
            out.kind = kind == "postgres" ? BackingStoreKind::kPostgres
                                          : BackingStoreKind::kDirectory;
          }
        } else if (key == "dir") {
          if (p.String(v, "storage.backing.dir", out.dir) && out.dir.empty()) {
            p.Error(v, "storage.backing.dir: must not be empty; expected a directory path "
                       "(relative paths are under storage.data_dir)");
          }
        } else if (key == "postgres") {
          postgres_mark = key_node.Mark();
          p.ForEachKey(v, "storage.backing.postgres", internal::kPostgresKeys,
                       [&](const std::string& pkey, const YAML::Node&, const YAML::Node& pv) {
                         if (pkey == "conninfo") {
                           if (p.String(pv, "storage.backing.postgres.conninfo",
                                        out.postgres_conninfo)) {
                             has_conninfo = true;
                             if (out.postgres_conninfo.empty()) {
                               p.Error(pv, "storage.backing.postgres.conninfo: must not be "
                                           "empty; expected a libpq connection string such as "
                                           "\"host=/var/run/postgresql dbname=ods\"");
                             }
                           }
                         } else if (pkey == "table") {
                           if (p.String(pv, "storage.backing.postgres.table",
                                        out.postgres_table) &&
                               !IsSqlTableName(out.postgres_table)) {
                             p.Error(pv, "storage.backing.postgres.table: bad table name '" +
                                             out.postgres_table +
                                             "'; expected letters, digits and _, starting with "
                                             "a letter or _, at most 63 bytes");
                           }
                         }
                       });
        }
      });
  if (!node.IsMap()) return;
  if (out.kind == BackingStoreKind::kPostgres && !has_conninfo) {
    p.Error(node, "storage.backing: kind postgres needs postgres.conninfo (a libpq connection "
                  "string such as \"host=/var/run/postgresql dbname=ods\")");
  }
  if (out.kind == BackingStoreKind::kDirectory && postgres_mark.has_value()) {
    p.Error(*postgres_mark,
            "storage.backing.postgres: is only used with kind: postgres (kind is directory)");
  }
}

void ParseStorage(Parser& p, const YAML::Node& node, StorageConfig& out) {
  p.ForEachKey(node, "storage", internal::kStorageKeys,
               [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
                 if (key == "durability") {
                   ParseDurability(p, v, "storage.durability", out.durability);
                 } else if (key == "durability_window") {
                   Micros window = 0;
                   if (p.Duration(v, "storage.durability_window", 10'000'000, window)) {
                     if (window < 1'000) {
                       p.Error(v, "storage.durability_window: " + v.Scalar() +
                                      " is too short; expected 1ms to 10s");
                     } else {
                       out.durability_window_micros = window;
                     }
                   }
                 } else if (key == "data_dir") {
                   if (p.String(v, "storage.data_dir", out.data_dir) && out.data_dir.empty()) {
                     p.Error(v, "storage.data_dir: must not be empty; expected a directory path");
                   }
                 } else if (key == "backing") {
                   ParseBacking(p, v, out.backing.emplace());
                 } else if (key == "ram" || key == "ssd") {
                   const std::string path = "storage." + key;
                   p.ForEachKey(
                       v, path,
                       key == "ram" ? std::span<const std::string_view>(internal::kRamKeys)
                                    : std::span<const std::string_view>(internal::kSsdKeys),
                       [&](const std::string& k, const YAML::Node&, const YAML::Node& x) {
                         if (k == "max_bytes") {
                           p.Bytes(x, path + ".max_bytes", 0,
                                   std::numeric_limits<uint64_t>::max(),
                                   key == "ram" ? out.ram_max_bytes : out.ssd_max_bytes);
                         } else if (k == "tile_cache_bytes") {
                           p.Bytes(x, path + ".tile_cache_bytes", 0, uint64_t{1} << 40,
                                   out.tile_cache_bytes);
                         } else {
                           ParseCost(p, x, path + ".cost_per_gib_month",
                                     key == "ram" ? out.ram_cost_per_gib_month
                                                  : out.ssd_cost_per_gib_month);
                         }
                       });
                 }
               });
}

// Checks a `when.field` predicate against the table's declared fields (free-form: any field).
// Reports at `node`'s position plus the problem's offset in the text.
void CheckPredicate(Parser& p, const YAML::Node& node, const std::string& path,
                    const Predicate& pred, const TableConfig& table) {
  if (pred.op == Predicate::Op::kAnd || pred.op == Predicate::Op::kOr) {
    for (const Predicate& c : pred.children) CheckPredicate(p, node, path, c, table);
    return;
  }
  YAML::Mark mark = node.Mark();
  mark.column += static_cast<int>(pred.offset) + (node.Tag() == "!" ? 1 : 0);
  if (pred.field == table.key_field) {
    p.Error(mark, path + ": '" + pred.field +
                      "' is the table's key; rules test record fields (the key is not one)");
    return;
  }
  if (table.free_form) return;
  const FieldConfig* field = nullptr;
  for (const FieldConfig& f : table.fields) {
    if (f.name == pred.field) field = &f;
  }
  if (field == nullptr) {
    p.Error(mark, path + ": unknown field '" + pred.field + "' of table " + table.name);
    return;
  }
  for (const Predicate::Literal& l : pred.literals) {
    if (!PredicateComparable(field->type, pred.op, l)) {
      p.Error(mark, path + ": field '" + pred.field + "' is " +
                        std::string(ValueTypeName(field->type)) + "; '" +
                        std::string(PredicateOpName(pred.op)) +
                        "' with this value can never hold");
      return;
    }
  }
}

// A rule that moves records below RAM, for the checks that need other sections (durability,
// storage.backing).
struct TierCheck {
  YAML::Mark mark;
  size_t table = 0;  // index into Config::tables
  StorageTier to = StorageTier::kRam;
};

void ParseTiering(Parser& p, const YAML::Node& node, const std::string& path, TableConfig& out,
                  std::vector<std::pair<YAML::Mark, StorageTier>>& below_ram) {
  if (!node.IsSequence()) {
    p.Error(node, path + ": expected a list of rules ({to: TIER, when: {...}}), found " +
                      Parser::KindName(node));
    return;
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node rule_node = node[i];
    const std::string rpath = path + "[" + std::to_string(i) + "]";
    TierRuleConfig rule;
    rule.position = p.Position(rule_node.Mark());
    bool has_to = false;
    YAML::Node when;
    bool has_when = false;
    std::optional<YAML::Mark> transient_mark;
    p.ForEachKey(rule_node, rpath, internal::kTierRuleKeys,
                 [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
                   if (key == "transient") {
                     if (ParseBool(p, v, rpath + ".transient", rule.transient) && rule.transient) {
                       transient_mark = v.Mark();
                     }
                   } else if (key == "to") {
                     std::string to;
                     if (p.OneOf(v, rpath + ".to", {"ram", "ssd", "backing"}, to)) {
                       has_to = true;
                       rule.to = to == "ram"   ? StorageTier::kRam
                                 : to == "ssd" ? StorageTier::kSsd
                                               : StorageTier::kBacking;
                       if (rule.to != StorageTier::kRam) below_ram.emplace_back(v.Mark(), rule.to);
                     }
                   } else {
                     when = v;
                     has_when = true;
                   }
                 });
    if (rule_node.IsMap() && !has_to && !rule_node["to"] && !rule.transient) {
      p.Error(rule_node, rpath + ": missing 'to' (ram, ssd or backing)");
    }
    if (transient_mark && rule.to != StorageTier::kRam) {
      p.Error(*transient_mark, rpath + ".transient: a transient record stays in RAM; drop 'to: " +
                                   std::string(StorageTierName(rule.to)) + "' or transient");
    }
    if (has_when) {
      const std::string wpath = rpath + ".when";
      p.ForEachKey(when, wpath, internal::kTierWhenKeys,
                   [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
                     Micros d = 0;
                     if (key == "idle_for" || key == "age") {
                       if (!p.Duration(v, wpath + "." + key, kMaxLongDuration, d)) return;
                       if (d < internal::kMicrosPerSecond) {
                         p.Error(v, wpath + "." + key + ": " + v.Scalar() +
                                        " is too short; expected at least 1s");
                         return;
                       }
                       (key == "idle_for" ? rule.idle_for_micros : rule.age_micros) = d;
                       return;
                     }
                     if (!p.String(v, wpath + ".field", rule.field_text)) return;
                     size_t offset = 0;
                     Result<Predicate> pred = ParsePredicate(rule.field_text, offset);
                     if (!pred.ok()) {
                       YAML::Mark mark = v.Mark();
                       mark.column += static_cast<int>(offset) + (v.Tag() == "!" ? 1 : 0);
                       p.Error(mark, wpath + ".field: " + pred.status().message());
                       return;
                     }
                     CheckPredicate(p, v, wpath + ".field", *pred, out);
                     rule.field = std::move(*pred);
                   });
    }
    if (transient_mark && rule.idle_for_micros != 0) {
      // Decided when the record is written, when it has been idle for no time at all.
      p.Error(*transient_mark, rpath + ".transient: cannot be combined with when.idle_for (a "
                                       "write decides it; use age or field)");
    }
    out.tiering.push_back(std::move(rule));
  }
}

// `promote: on_access | never | {after_hits: N}`.
void ParsePromote(Parser& p, const YAML::Node& node, const std::string& path, TableConfig& out) {
  if (node.IsMap()) {
    p.ForEachKey(node, path, internal::kPromoteKeys,
                 [&](const std::string&, const YAML::Node&, const YAML::Node& v) {
                   uint64_t hits = 0;
                   if (p.Integer(v, path + ".after_hits", 1, 1'000'000, hits)) {
                     out.promote = Promote::kAfterHits;
                     out.promote_after_hits = static_cast<uint32_t>(hits);
                   }
                 });
    return;
  }
  std::string mode;
  if (!p.OneOf(node, path, {"on_access", "never"}, mode)) return;
  out.promote = mode == "never" ? Promote::kNever : Promote::kOnAccess;
}

// A PostgreSQL table to read from: `name` or `schema.name`, each part an identifier.
bool IsSqlQualifiedName(std::string_view name) {
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos) return IsSqlTableName(name);
  return IsSqlTableName(name.substr(0, dot)) && IsSqlTableName(name.substr(dot + 1));
}

// `read_through: {postgres: {...}, cache, negative_ttl, max_negative_keys}`. Checked against the
// table's declared fields, so parsed after them.
void ParseReadThrough(Parser& p, const YAML::Node& key_node, const YAML::Node& node,
                      const std::string& path, TableConfig& table) {
  ReadThroughConfig rt;
  rt.position = p.Position(key_node.Mark());
  bool has_postgres = false;
  bool has_conninfo = false;
  bool has_table = false;
  bool has_key_column = false;
  bool has_columns = false;
  YAML::Mark postgres_mark = key_node.Mark();
  p.ForEachKey(
      node, path, internal::kReadThroughKeys,
      [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
        if (key == "cache") {
          ParseBool(p, v, path + ".cache", rt.cache);
        } else if (key == "negative_ttl") {
          p.Duration(v, path + ".negative_ttl", internal::kMicrosPerDay, rt.negative_ttl_micros);
        } else if (key == "max_negative_keys") {
          p.Integer(v, path + ".max_negative_keys", 1, 100'000'000, rt.max_negative_keys);
        } else if (key == "postgres") {
          has_postgres = true;
          postgres_mark = k.Mark();
          const std::string pg = path + ".postgres";
          p.ForEachKey(v, pg, internal::kReadThroughPostgresKeys,
                       [&](const std::string& pkey, const YAML::Node&, const YAML::Node& pv) {
            const std::string ppath = pg + "." + pkey;
            if (pkey == "conninfo") {
              if (!p.String(pv, ppath, rt.postgres_conninfo)) return;
              has_conninfo = true;
              if (rt.postgres_conninfo.empty()) {
                p.Error(pv, ppath + ": must not be empty; expected a libpq connection string "
                                    "such as \"host=/var/run/postgresql dbname=crm\"");
              }
            } else if (pkey == "table") {
              if (!p.String(pv, ppath, rt.postgres_table)) return;
              has_table = true;
              if (!IsSqlQualifiedName(rt.postgres_table)) {
                p.Error(pv, ppath + ": bad table name '" + rt.postgres_table +
                                "'; expected name or schema.name, each letters, digits and _, "
                                "starting with a letter or _, at most 63 bytes");
              }
            } else if (pkey == "key_column") {
              if (!p.String(pv, ppath, rt.postgres_key_column)) return;
              has_key_column = true;
              if (!IsSqlTableName(rt.postgres_key_column)) {
                p.Error(pv, ppath + ": bad column name '" + rt.postgres_key_column +
                                "'; expected letters, digits and _, starting with a letter or "
                                "_, at most 63 bytes");
              }
            } else if (pkey == "columns") {
              has_columns = true;
              if (pv.IsMap() && pv.size() == 0) {
                p.Error(pv, ppath + ": is empty; map at least one field to a column, or omit "
                                    "columns to read every declared field from its own column");
                return;
              }
              p.ForEachKey(pv, ppath, {},
                           [&](const std::string& field, const YAML::Node& fnode,
                               const YAML::Node& cnode) {
                const std::string fpath = ppath + "." + field;
                const FieldConfig* declared = nullptr;
                for (const FieldConfig& f : table.fields) {
                  if (f.name == field) declared = &f;
                }
                if (declared == nullptr) {
                  p.Error(fnode, fpath + ": '" + field + "' is not a declared field of table " +
                                     table.name);
                  return;
                }
                if (declared->type == ValueType::kFloatVector) {
                  p.Error(fnode, fpath + ": field '" + field +
                                     "' is float_vector, which cannot be read from PostgreSQL");
                  return;
                }
                std::string column;
                if (!p.String(cnode, fpath, column)) return;
                if (!IsSqlTableName(column)) {
                  p.Error(cnode, fpath + ": bad column name '" + column +
                                     "'; expected letters, digits and _, starting with a letter "
                                     "or _, at most 63 bytes");
                  return;
                }
                rt.columns.emplace_back(field, column);
              });
            }
          });
        }
      });
  if (!node.IsMap()) return;
  if (table.free_form) {
    p.Error(key_node, path + ": needs declared fields (a typed table): the fields give the "
                             "types that PostgreSQL columns are read as");
    return;
  }
  if (!has_postgres) {
    p.Error(key_node, path + ": missing 'postgres' (conninfo, table, key_column)");
    return;
  }
  if (!has_conninfo) p.Error(postgres_mark, path + ".postgres: missing 'conninfo'");
  if (!has_table) p.Error(postgres_mark, path + ".postgres: missing 'table'");
  if (!has_key_column) p.Error(postgres_mark, path + ".postgres: missing 'key_column'");
  if (!has_columns) {
    for (const FieldConfig& f : table.fields) {
      if (f.type == ValueType::kFloatVector) {
        p.Error(postgres_mark, path + ".postgres: field '" + f.name +
                                   "' is float_vector, which cannot be read from PostgreSQL; "
                                   "list the fields to read in postgres.columns");
        return;
      }
      rt.columns.emplace_back(f.name, f.name);
    }
  }
  table.read_through = std::move(rt);
}

void ParseTable(Parser& p, const std::string& name, const YAML::Node& name_node,
                const YAML::Node& node, TableConfig& out,
                std::vector<std::pair<YAML::Mark, StorageTier>>& below_ram) {
  out.name = name;
  const std::string path = "tables." + name;
  if (!IsValidName(name)) {
    p.Error(name_node, "bad table name '" + name +
                           "'; expected letters, digits and _, starting with a letter or _, at "
                           "most 64 bytes");
  }
  bool has_key = false;
  YAML::Node tiering;
  bool has_tiering = false;
  bool has_read_through = false;
  YAML::Node read_through_key;
  YAML::Node read_through;
  std::vector<YAML::Mark> field_marks;  // parallel to out.fields
  p.ForEachKey(
      node, path, internal::kTableKeys,
      [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& v) {
        if (key == "read_through") {
          has_read_through = true;  // after the loop: columns are checked against `fields`
          read_through_key = key_node;
          read_through = v;
        } else if (key == "tiering") {
          tiering = v;  // after the loop: predicates are checked against `fields`
          has_tiering = true;
        } else if (key == "promote") {
          ParsePromote(p, v, path + ".promote", out);
        } else if (key == "priority") {
          uint64_t priority = 0;
          if (p.Integer(v, path + ".priority", 0, 100, priority)) {
            out.priority = static_cast<uint32_t>(priority);
          }
        } else if (key == "sla") {
          p.ForEachKey(v, path + ".sla", internal::kSlaKeys,
                       [&](const std::string&, const YAML::Node&, const YAML::Node& x) {
                         Micros d = 0;
                         if (!p.Duration(x, path + ".sla.read_p99", 10'000'000, d)) return;
                         if (d < 1) {
                           p.Error(x, path + ".sla.read_p99: must be at least 1us");
                           return;
                         }
                         out.sla_read_p99_micros = d;
                       });
        } else if (key == "durability") {
          Durability d = Durability::kNone;
          if (ParseDurability(p, v, path + ".durability", d)) out.durability = d;
        } else if (key == "key") {
          if (p.String(v, path + ".key", out.key_field)) {
            has_key = true;
            if (!IsValidName(out.key_field)) {
              p.Error(v, path + ".key: bad field name '" + out.key_field +
                             "'; expected letters, digits and _, starting with a letter or _");
            }
          }
        } else if (key == "ttl") {
          p.Duration(v, path + ".ttl", kMaxLongDuration, out.ttl_micros);
        } else if (key == "max_age") {
          p.Duration(v, path + ".max_age", kMaxLongDuration, out.max_age_micros);
        } else if (key == "fields") {
          out.free_form = false;
          if (v.IsMap() && v.size() == 0) {
            p.Error(v, path + ".fields: is empty; list at least one field, or omit fields for a "
                              "free-form table");
            return;
          }
          internal::ParseFieldMap(p, v, path + ".fields", out.fields, field_marks);
        }
      });
  if (!has_key && node.IsMap()) {
    p.Error(name_node, path + ": missing 'key' (the name of the table's key, e.g. key: user_id)");
  }
  // Checked after the loop: `key` may come after `fields` in the file.
  for (size_t i = 0; has_key && i < out.fields.size(); ++i) {
    if (out.fields[i].name == out.key_field) {
      p.Error(field_marks[i], path + ".fields." + out.fields[i].name +
                                  ": the key field must not be declared again among fields");
    }
  }
  if (has_tiering) ParseTiering(p, tiering, path + ".tiering", out, below_ram);
  if (has_read_through) {
    ParseReadThrough(p, read_through_key, read_through, path + ".read_through", out);
  }
}

void ParseTables(Parser& p, const YAML::Node& node, std::vector<TableConfig>& out,
                 std::vector<TierCheck>& tier_checks) {
  if (node.IsNull()) return;
  p.ForEachKey(node, "tables", {},
               [&](const std::string& name, const YAML::Node& name_node, const YAML::Node& v) {
                 TableConfig table;
                 std::vector<std::pair<YAML::Mark, StorageTier>> below_ram;
                 ParseTable(p, name, name_node, v, table, below_ram);
                 for (const auto& [mark, to] : below_ram) {
                   tier_checks.push_back({mark, out.size(), to});
                 }
                 out.push_back(std::move(table));
               });
}

// Rules that move records below RAM need a durable table (the SSD tier is the durable tier)
// and, for `to: backing`, a backing store.
void CheckTiering(Parser& p, const Config& config, const std::vector<TierCheck>& checks) {
  for (const TierCheck& c : checks) {
    const TableConfig& table = config.tables[c.table];
    const std::string path = "tables." + table.name + ".tiering";
    if (DurabilityOf(config, table) == Durability::kNone) {
      p.Error(c.mark, path + ": to: " + std::string(StorageTierName(c.to)) +
                          " needs the table to be durable (durability: sync or async); records "
                          "below RAM live in the durable tier");
    } else if (c.to == StorageTier::kBacking && !config.storage.backing.has_value()) {
      p.Error(c.mark, path + ": to: backing needs storage.backing (a directory or postgres "
                             "backing store)");
    }
  }
}

// Reads `path` (relative to `base_dir` unless absolute) into `out`; reports problems at `node`.
void ReadFunctionSource(Parser& p, const YAML::Node& node, const std::string& path,
                        const std::string& base_dir, const std::string& file, std::string& out) {
  std::string resolved;
  ReadConfiguredFile(p, node, path, base_dir, file, kMaxFunctionSourceBytes, "Lua source file",
                     resolved, out);
}

// Shortest key accepted from a key_file: a shorter secret is guessable.
constexpr size_t kMinApiKeyBytes = 16;
// Longest key accepted from a key_file (the server refuses longer keys from clients too).
constexpr uint64_t kMaxApiKeyBytes = 4096;

// API key names: letters, digits, `_`, `-`, `.`; 1 to 64 bytes.
bool IsValidKeyName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) {
      return false;
    }
  }
  return true;
}

// 64 hex digits (either case) into `out`.
bool ParseSha256Hex(std::string_view hex, Sha256Digest& out) {
  if (hex.size() != 2 * out.size()) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

void ParseApiKey(Parser& p, const std::string& name, const YAML::Node& name_node,
                 const YAML::Node& node, const std::string& base_dir, ApiKeyConfig& out,
                 bool& has_digest) {
  out.name = name;
  const std::string path = "security.api_keys." + name;
  if (!IsValidKeyName(name)) {
    p.Error(name_node, "bad API key name '" + name +
                           "'; expected letters, digits, _, - and ., at most 64 bytes");
  }
  bool has_role = false;
  int secrets = 0;
  bool has_tables = false;
  YAML::Mark tables_mark;
  p.ForEachKey(
      node, path, internal::kApiKeyKeys,
      [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
        const std::string kpath = path + "." + key;
        if (key == "key_sha256") {
          ++secrets;
          std::string hex;
          if (!p.String(v, kpath, hex)) return;
          if (!ParseSha256Hex(hex, out.key_sha256)) {
            p.Error(v, kpath + ": expected 64 hex digits (the SHA-256 of the key, e.g. from "
                               "`printf %s KEY | sha256sum`)");
            return;
          }
          has_digest = true;
        } else if (key == "key_file") {
          ++secrets;
          std::string file;
          std::string resolved;
          std::string secret;
          if (!p.String(v, kpath, file) ||
              !ReadConfiguredFile(p, v, kpath, base_dir, file, kMaxApiKeyBytes, "key file",
                                  resolved, secret)) {
            return;
          }
          if (secret.ends_with('\n')) secret.pop_back();
          if (secret.ends_with('\r')) secret.pop_back();
          if (secret.size() < kMinApiKeyBytes) {
            p.Error(v, kpath + ": the key in '" + resolved + "' has " +
                           std::to_string(secret.size()) + " bytes; expected at least " +
                           std::to_string(kMinApiKeyBytes));
          } else {
            out.key_sha256 = Sha256(secret);
            has_digest = true;
          }
          // The secret is not kept: only its digest is.
          std::fill(secret.begin(), secret.end(), '\0');
        } else if (key == "role") {
          has_role = true;
          std::string role;
          if (p.OneOf(v, kpath, {"read", "write", "admin"}, role)) {
            out.role = role == "read" ? Role::kRead
                                      : (role == "write" ? Role::kWrite : Role::kAdmin);
          }
        } else if (key == "tables") {
          has_tables = true;
          tables_mark = v.Mark();
          if (!v.IsSequence() || v.size() == 0) {
            p.Error(v, kpath + ": expected a non-empty list of table and event template names, "
                               "found " + Parser::KindName(v) + " (omit tables for all)");
            return;
          }
          for (const YAML::Node& t : v) {
            std::string table;
            if (!p.String(t, kpath, table)) continue;
            if (!IsValidName(table)) {
              p.Error(t, kpath + ": bad table name '" + table +
                             "'; expected letters, digits and _, starting with a letter or _");
              continue;
            }
            out.tables.push_back(table);
          }
        }
      });
  if (!node.IsMap()) return;
  if (secrets == 0) {
    p.Error(name_node, path + ": missing 'key_sha256' or 'key_file' (docs/security.md says how "
                              "to make a key and its digest)");
  } else if (secrets > 1) {
    p.Error(name_node, path + ": give one of 'key_sha256' and 'key_file', not both");
    has_digest = false;
  }
  if (!has_role) {
    p.Error(name_node, path + ": missing 'role' (one of: read, write, admin)");
  } else if (out.role == Role::kAdmin && has_tables) {
    p.Error(tables_mark, path + ".tables: not allowed for role admin (Admin methods act on the "
                                "whole node); use role write for a key limited to tables");
  }
}

void ParseSecurity(Parser& p, const YAML::Node& node, const std::string& base_dir,
                   SecurityConfig& out) {
  p.ForEachKey(node, "security", internal::kSecurityKeys,
               [&](const std::string&, const YAML::Node&, const YAML::Node& keys) {
                 if (keys.IsNull()) return;
                 p.ForEachKey(keys, "security.api_keys", {},
                              [&](const std::string& name, const YAML::Node& name_node,
                                  const YAML::Node& v) {
                                ApiKeyConfig key;
                                bool has_digest = false;
                                ParseApiKey(p, name, name_node, v, base_dir, key, has_digest);
                                if (!has_digest) return;
                                for (const ApiKeyConfig& other : out.api_keys) {
                                  if (other.key_sha256 == key.key_sha256) {
                                    p.Error(name_node, "security.api_keys." + name +
                                                           ": the same key as '" + other.name +
                                                           "'; each key must be distinct");
                                    return;
                                  }
                                }
                                out.api_keys.push_back(std::move(key));
                              });
               });
}

void ParseFunction(Parser& p, const std::string& name, const YAML::Node& name_node,
                   const YAML::Node& node, const std::string& base_dir, FunctionConfig& out) {
  out.name = name;
  out.position = p.Position(name_node.Mark());
  const std::string path = "functions." + name;
  if (!IsValidName(name)) {
    p.Error(name_node, "bad function name '" + name +
                           "'; expected letters, digits and _, starting with a letter or _, at "
                           "most 64 bytes");
  }
  bool has_kind = false;
  bool has_source = false;
  p.ForEachKey(
      node, path, internal::kFunctionKeys,
      [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
        if (key == "kind") {
          has_kind = true;
          p.OneOf(v, path + ".kind", {"aggregator", "derived", "procedure"}, out.kind);
        } else if (key == "source") {
          has_source = true;
          if (p.String(v, path + ".source", out.source_path)) {
            ReadFunctionSource(p, v, path + ".source", base_dir, out.source_path, out.source);
          }
        } else if (key == "limits") {
          p.ForEachKey(v, path + ".limits", internal::kFunctionLimitsKeys,
                       [&](const std::string& limit, const YAML::Node&, const YAML::Node& lv) {
                         const std::string lpath = path + ".limits." + limit;
                         if (limit == "instructions") {
                           p.Integer(lv, lpath, 1, 1'000'000'000'000, out.max_instructions);
                         } else if (limit == "memory") {
                           p.Bytes(lv, lpath, 1 << 10, uint64_t{1} << 30, out.max_memory_bytes);
                         } else if (limit == "wall_time") {
                           Micros wall = 0;
                           if (p.Duration(lv, lpath, 60'000'000, wall)) {
                             if (wall < 1000) {
                               p.Error(lv, lpath + ": '" + lv.Scalar() +
                                               "' is too short; expected at least 1ms");
                             } else {
                               out.max_wall_micros = wall;
                             }
                           }
                         }
                       });
        }
      });
  if (!node.IsMap()) return;
  if (!has_kind) {
    p.Error(name_node, path + ": missing 'kind' (one of: aggregator, derived, procedure)");
  }
  if (!has_source) {
    p.Error(name_node,
            path + ": missing 'source' (a Lua file, e.g. source: functions/" + name + ".lua)");
  }
}

void ParseFunctions(Parser& p, const YAML::Node& node, const std::string& base_dir,
                    std::vector<FunctionConfig>& out) {
  if (node.IsNull()) return;
  p.ForEachKey(node, "functions", {},
               [&](const std::string& name, const YAML::Node& name_node, const YAML::Node& v) {
                 FunctionConfig function;
                 ParseFunction(p, name, name_node, v, base_dir, function);
                 out.push_back(std::move(function));
               });
}

// LoadString with function sources read relative to `base_dir` ("" = current directory).
Result<Config> LoadStringIn(std::string_view yaml, std::string_view source_name,
                            const std::string& base_dir) {
  Parser p(source_name);
  Config config;
  config.source = std::string(source_name);
  YAML::Node root;
  if (!p.Load(yaml, root)) return InvalidArgumentError(p.errors().front());
  try {
    DefinitionsParser definitions(p);
    std::vector<TierCheck> tier_checks;
    if (!root.IsNull()) {
      p.ForEachKey(root, "the top level", internal::kTopLevelKeys,
                   [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
                     if (key == "server") ParseServer(p, v, base_dir, config.server);
                     if (key == "security") ParseSecurity(p, v, base_dir, config.security);
                     if (key == "logging") ParseLogging(p, v, config.logging);
                     if (key == "limits") ParseLimits(p, v, config.limits);
                     if (key == "subscriptions") {
                       ParseSubscriptions(p, v, config.subscriptions);
                     }
                     if (key == "storage") ParseStorage(p, v, config.storage);
                     if (key == "tables") ParseTables(p, v, config.tables, tier_checks);
                     if (key == "event_templates") definitions.ParseEventTemplates(v);
                     if (key == "aggregations") definitions.ParseAggregations(v);
                     if (key == "features") definitions.ParseFeatures(v);
                     if (key == "functions") ParseFunctions(p, v, base_dir, config.functions);
                   });
    }
    CheckTiering(p, config, tier_checks);
    config.definitions = definitions.Finish({});
  } catch (const YAML::Exception& e) {
    p.Error(e.mark, "invalid YAML: " + e.msg);
  }
  ODS_RETURN_IF_ERROR(p.ToStatus());
  return config;
}

}  // namespace

std::string_view DurabilityName(Durability durability) {
  switch (durability) {
    case Durability::kNone: return "none";
    case Durability::kAsync: return "async";
    case Durability::kSync: return "sync";
  }
  return "?";
}

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kRead: return "read";
    case Role::kWrite: return "write";
    case Role::kAdmin: return "admin";
  }
  return "?";
}

std::string_view BackingStoreKindName(BackingStoreKind kind) {
  switch (kind) {
    case BackingStoreKind::kDirectory: return "directory";
    case BackingStoreKind::kPostgres: return "postgres";
  }
  return "?";
}

Durability DurabilityOf(const Config& config, const TableConfig& table) {
  return table.durability.value_or(config.storage.durability);
}

std::string BackingDirOf(const StorageConfig& storage, const BackingConfig& backing) {
  if (!backing.dir.empty() && backing.dir.front() == '/') return backing.dir;
  return storage.data_dir + "/" + backing.dir;
}

Result<Config> LoadString(std::string_view yaml, std::string_view source_name) {
  return LoadStringIn(yaml, source_name, "");
}

Result<Definitions> LoadDefinitions(std::string_view yaml, std::string_view source_name,
                                    std::span<const EventTemplateConfig> known_templates) {
  Parser p(source_name);
  Definitions out;
  YAML::Node root;
  if (!p.Load(yaml, root)) return InvalidArgumentError(p.errors().front());
  try {
    DefinitionsParser definitions(p);
    std::vector<TierCheck> tier_checks;
    if (!root.IsNull()) {
      p.ForEachKey(root, "the top level", internal::kDefinitionsTopLevelKeys,
                   [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
                     if (key == "event_templates") definitions.ParseEventTemplates(v);
                     if (key == "aggregations") definitions.ParseAggregations(v);
                     if (key == "features") definitions.ParseFeatures(v);
                   });
    }
    out = definitions.Finish(known_templates);
  } catch (const YAML::Exception& e) {
    p.Error(e.mark, "invalid YAML: " + e.msg);
  }
  ODS_RETURN_IF_ERROR(p.ToStatus());
  return out;
}

Status ApplyOverrides(const Overrides& overrides, Config& config) {
  if (overrides.grpc_listen && !IsListenAddress(*overrides.grpc_listen)) {
    return InvalidArgumentError("--grpc-listen: bad address '" + *overrides.grpc_listen +
                                "'; expected host:port such as 127.0.0.1:7070");
  }
  if (overrides.admin_listen && !overrides.admin_listen->empty() &&
      !IsListenAddress(*overrides.admin_listen)) {
    return InvalidArgumentError("--admin-listen: bad address '" + *overrides.admin_listen +
                                "'; expected host:port such as 127.0.0.1:9464, or \"\" to disable");
  }
  if (overrides.data_dir && overrides.data_dir->empty()) {
    return InvalidArgumentError("--data-dir: must not be empty; expected a directory path");
  }
  if (overrides.grpc_listen) config.server.grpc_listen = *overrides.grpc_listen;
  if (overrides.admin_listen) config.server.admin_listen = *overrides.admin_listen;
  if (overrides.data_dir) config.storage.data_dir = *overrides.data_dir;
  return OkStatus();
}

Result<Config> LoadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot read config file '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  const size_t slash = path.rfind('/');
  const std::string base_dir =
      slash == std::string::npos ? std::string() : (slash == 0 ? "/" : path.substr(0, slash));
  return LoadStringIn(text.str(), path, base_dir);
}

}  // namespace ods::config
