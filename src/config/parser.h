#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/common/units.h"
#include "ods/config/config.h"

// Private to ods_config: the YAML walker shared by config.cc (server, limits, tables, ...) and
// definitions.cc (event_templates, aggregations). Not thread-safe; one Parser per document.
namespace ods::config::internal {

inline constexpr Micros kMicrosPerSecond = 1'000'000;
inline constexpr Micros kMicrosPerDay = Micros{86'400} * kMicrosPerSecond;
// Upper bound of the long durations (ttl, max_age, windows, retention): ten years.
inline constexpr Micros kMaxLongDuration = Micros{3650} * kMicrosPerDay;

using ::ods::FormatDuration;

// Walks a YAML document, recording every problem instead of stopping at the first. Each problem
// reads "FILE:LINE:COLUMN: what is wrong, what was expected".
class Parser {
 public:
  explicit Parser(std::string_view source) : source_(source) {}

  // "FILE:LINE:COLUMN" of `mark` (1-based), as errors start and as definitions' `position`.
  std::string Position(const YAML::Mark& mark) const {
    std::ostringstream out;
    out << source_ << ":" << (mark.line + 1) << ":" << (mark.column + 1);
    return out.str();
  }

  void Error(const YAML::Mark& mark, const std::string& what) {
    errors_.push_back(Position(mark) + ": " + what);
    error_marks_.push_back(mark);
  }
  void Error(const YAML::Node& node, const std::string& what) { Error(node.Mark(), what); }

  const std::vector<std::string>& errors() const { return errors_; }

  // kInvalidArgument with every error, one per line in file order (checks across sections run
  // last); OkStatus if there is none.
  Status ToStatus() const {
    if (errors_.empty()) return OkStatus();
    std::vector<size_t> order(errors_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const YAML::Mark& ma = error_marks_[a];
      const YAML::Mark& mb = error_marks_[b];
      return ma.line != mb.line ? ma.line < mb.line : ma.column < mb.column;
    });
    std::string message;
    for (size_t i : order) {
      if (!message.empty()) message += "\n";
      message += errors_[i];
    }
    return InvalidArgumentError(std::move(message));
  }

  // Parses `yaml` into `root`. On a syntax error records it and returns false.
  bool Load(std::string_view yaml, YAML::Node& root) {
    try {
      root = YAML::Load(std::string(yaml));
      return true;
    } catch (const YAML::Exception& e) {
      Error(e.mark, "YAML syntax error: " + e.msg);
      return false;
    }
  }

  // Calls `on_key(key, key_node, value)` for each entry of mapping `node` at `path`. Reports
  // keys not in `allowed` (when non-empty; the lists are in config/keys.h), duplicate keys and
  // non-scalar keys.
  void ForEachKey(const YAML::Node& node, const std::string& path,
                  std::span<const std::string_view> allowed,
                  const std::function<void(const std::string&, const YAML::Node&,
                                           const YAML::Node&)>& on_key) {
    if (!node.IsMap()) {
      Error(node, path + ": expected a mapping (key: value entries), found " + KindName(node));
      return;
    }
    std::set<std::string, std::less<>> seen;
    for (const auto& entry : node) {
      const YAML::Node& key_node = entry.first;
      if (!key_node.IsScalar()) {
        Error(key_node, path + ": keys must be plain names");
        continue;
      }
      const std::string key = key_node.Scalar();
      if (!seen.insert(key).second) {
        Error(key_node, "duplicate key '" + key + "' in " + path);
        continue;
      }
      if (!allowed.empty()) {
        bool known = false;
        for (std::string_view a : allowed) known = known || a == key;
        if (!known) {
          Error(key_node,
                "unknown key '" + key + "' in " + path + "; expected one of: " + Join(allowed));
          continue;
        }
      }
      on_key(key, key_node, entry.second);
    }
  }

  bool String(const YAML::Node& node, const std::string& path, std::string& out) {
    if (!node.IsScalar()) {
      Error(node, path + ": expected a string, found " + KindName(node));
      return false;
    }
    out = node.Scalar();
    return true;
  }

  // A finite decimal number such as 0.7, -2 or 1e-3.
  bool Number(const YAML::Node& node, const std::string& path, double& out) {
    if (!node.IsScalar()) {
      Error(node, path + ": expected a number, found " + KindName(node));
      return false;
    }
    const std::string& s = node.Scalar();
    char* end = nullptr;
    const double v = s.empty() ? 0 : std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v) ||
        std::isspace(static_cast<unsigned char>(s.front()))) {
      Error(node, path + ": expected a finite number such as 0.5, found '" + s + "'");
      return false;
    }
    out = v;
    return true;
  }

  template <typename Int>
  bool Integer(const YAML::Node& node, const std::string& path, uint64_t min, uint64_t max,
               Int& out) {
    if (!node.IsScalar()) {
      Error(node, path + ": expected an integer, found " + KindName(node));
      return false;
    }
    const std::string& s = node.Scalar();
    uint64_t v = 0;
    bool ok = !s.empty() && s.size() <= 19;
    for (char c : s) ok = ok && std::isdigit(static_cast<unsigned char>(c));
    if (ok) v = std::stoull(s);
    if (!ok || v < min || v > max) {
      Error(node, path + ": expected an integer in [" + std::to_string(min) + ", " +
                      std::to_string(max) + "], found '" + s + "'");
      return false;
    }
    out = static_cast<Int>(v);
    return true;
  }

  bool Bytes(const YAML::Node& node, const std::string& path, uint64_t min, uint64_t max,
             uint64_t& out) {
    if (!node.IsScalar()) {
      Error(node, path + ": expected a size such as 2GiB, found " + KindName(node));
      return false;
    }
    Result<uint64_t> v = ParseBytes(node.Scalar());
    if (!v.ok()) {
      Error(node, path + ": " + v.status().message());
      return false;
    }
    if (*v < min || *v > max) {
      Error(node, path + ": " + node.Scalar() + " is out of range; expected " + FormatBytes(min) +
                      " to " + FormatBytes(max));
      return false;
    }
    out = *v;
    return true;
  }

  bool Duration(const YAML::Node& node, const std::string& path, Micros max, Micros& out) {
    if (!node.IsScalar()) {
      Error(node, path + ": expected a duration such as 90d, found " + KindName(node));
      return false;
    }
    Result<Micros> v = ParseDuration(node.Scalar());
    if (!v.ok()) {
      Error(node, path + ": " + v.status().message());
      return false;
    }
    if (*v > max) {
      Error(node,
            path + ": " + node.Scalar() + " is too long; expected at most " + FormatDuration(max));
      return false;
    }
    out = *v;
    return true;
  }

  bool OneOf(const YAML::Node& node, const std::string& path,
             const std::vector<std::string_view>& choices, std::string& out) {
    std::string v;
    if (!String(node, path, v)) return false;
    for (std::string_view c : choices) {
      if (c == v) {
        out = v;
        return true;
      }
    }
    Error(node, path + ": unknown value '" + v + "'; expected one of: " + Join(choices));
    return false;
  }

  static std::string KindName(const YAML::Node& node) {
    switch (node.Type()) {
      case YAML::NodeType::Null: return "nothing";
      case YAML::NodeType::Scalar: return "'" + node.Scalar() + "'";
      case YAML::NodeType::Sequence: return "a list";
      case YAML::NodeType::Map: return "a mapping";
      case YAML::NodeType::Undefined: return "nothing";
    }
    return "something else";
  }

  // "a, b, c".
  template <typename Strings>
  static std::string Join(const Strings& items) {
    std::string list;
    for (const auto& item : items) {
      if (!list.empty()) list += ", ";
      list += item;
    }
    return list;
  }

 private:
  std::string source_;
  std::vector<std::string> errors_;
  std::vector<YAML::Mark> error_marks_;  // parallel to errors_
};

// Letters, digits and _, starting with a letter or _, at most 64 bytes: tables, templates,
// aggregations and their fields.
bool IsValidName(std::string_view name);

// Parses a `{field: type}` mapping at `path` into `out` (file order), and the position of each
// parsed field's name into `marks` (parallel to `out`). Reports bad names and unknown types.
void ParseFieldMap(Parser& p, const YAML::Node& node, const std::string& path,
                   std::vector<FieldConfig>& out, std::vector<YAML::Mark>& marks);

// Parses the `event_templates` and `aggregations` sections (in either order), then checks what
// spans both: each aggregation's template and field.
class DefinitionsParser {
 public:
  explicit DefinitionsParser(Parser& p) : p_(p) {}

  void ParseEventTemplates(const YAML::Node& node);
  void ParseAggregations(const YAML::Node& node);
  // The `features:` section (derived features).
  void ParseFeatures(const YAML::Node& node);

  // Resolves each aggregation's template among the parsed ones, then `known` (the parsed one
  // wins), reporting unknown templates and fields. Call once, after both sections; returns the
  // definitions (complete only if p.errors() is empty).
  Definitions Finish(std::span<const EventTemplateConfig> known);

 private:
  // Where the parts of an aggregation checked by Finish were found.
  struct AggregationMarks {
    YAML::Mark template_value;
    YAML::Mark field_value;
    bool has_template = false;
    bool has_field = false;
  };

  void ParseEventTemplate(const std::string& name, const YAML::Node& name_node,
                          const YAML::Node& node, EventTemplateConfig& out);
  void ParseAggregation(const std::string& name, const YAML::Node& name_node,
                        const YAML::Node& node, AggregationConfig& out, AggregationMarks& marks);
  // Parses one window of `window:` or `windows:`: > 0, whole seconds, at most 3650d.
  bool Window(const YAML::Node& node, const std::string& path, Micros& out);
  // Parses `windows:` (a non-empty list of distinct windows), appending each window and its node.
  void WindowList(const YAML::Node& node, const std::string& path, std::vector<Micros>& windows,
                  std::vector<YAML::Node>& window_nodes);

  Parser& p_;
  Definitions definitions_;
  // Parallel to definitions_.event_templates: true if the template parsed without errors (only
  // then are aggregations' fields checked against it, so one mistake is reported once).
  std::vector<bool> template_clean_;
  // Parallel to definitions_.aggregations.
  std::vector<AggregationMarks> aggregation_marks_;
};

}  // namespace ods::config::internal
