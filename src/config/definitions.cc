// Parsing of the `event_templates`, `aggregations` and `features` sections (config files and
// LoadDefinitions).

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/keys.h"
#include "config/parser.h"
#include "ods/common/clock.h"
#include "ods/common/units.h"
#include "ods/config/config.h"

namespace ods::config::internal {
namespace {

// The aggregation functions, as aggregate::FnName spells them. Config checks only the name; which
// field types each fn accepts is checked when the engine is built (aggregate::CheckInputType).
constexpr std::string_view kFns[] = {"count",  "sum",   "min",  "max",    "mean",
                                     "stddev", "first", "last", "last_n", "distinct_count",
                                     "top_k"};
// Range of last_n's n and top_k's k (aggregate::kMaxN).
constexpr uint32_t kMaxN = 1000;
// Most tiles one window may span (aggregate::kMaxTilesPerWindow).
constexpr int64_t kMaxTilesPerWindow = 100'000;
constexpr Micros kMaxFuture = kMicrosPerDay;
constexpr Micros kMaxDedupWindow = 7 * kMicrosPerDay;

constexpr std::string_view kNameRule =
    "expected letters, digits and _, starting with a letter or _, at most 64 bytes";

// Reads a field name (key:, timestamp:) at `path` into `out`. False if it is not a string; a
// string that is not a valid name is reported but still stored (and true returned), so that the
// caller does not also report it missing.
bool FieldName(Parser& p, const YAML::Node& node, const std::string& path, std::string& out) {
  if (!p.String(node, path, out)) return false;
  if (!IsValidName(out)) {
    p.Error(node, path + ": bad field name '" + out +
                      "'; expected letters, digits and _, starting with a letter or _");
  }
  return true;
}

// "; expected one of: amount, merchant" (the fields an aggregation of `t` may name).
std::string ExpectedFields(const EventTemplateConfig& t) {
  std::vector<std::string_view> names;
  for (const FieldConfig& f : t.fields) names.push_back(f.name);
  if (names.empty()) return "; the template declares no fields, so only fn count applies";
  return "; expected one of: " + Parser::Join(names);
}

}  // namespace

void DefinitionsParser::ParseEventTemplates(const YAML::Node& node) {
  if (node.IsNull()) return;
  p_.ForEachKey(node, "event_templates", {},
                [&](const std::string& name, const YAML::Node& name_node, const YAML::Node& v) {
                  const size_t errors_before = p_.errors().size();
                  EventTemplateConfig t;
                  ParseEventTemplate(name, name_node, v, t);
                  definitions_.event_templates.push_back(std::move(t));
                  template_clean_.push_back(p_.errors().size() == errors_before);
                });
}

void DefinitionsParser::ParseEventTemplate(const std::string& name, const YAML::Node& name_node,
                                           const YAML::Node& node, EventTemplateConfig& out) {
  out.name = name;
  out.position = p_.Position(name_node.Mark());
  const std::string path = "event_templates." + name;
  if (!IsValidName(name)) {
    p_.Error(name_node, "bad event template name '" + name + "'; " + std::string(kNameRule));
  }
  bool has_key = false;        // given (valid or not)
  bool has_timestamp = false;  // given (valid or not)
  YAML::Mark timestamp_mark;
  std::optional<YAML::Mark> ssd_after_mark;
  std::optional<YAML::Mark> tiles_after_mark;
  std::vector<YAML::Mark> field_marks;  // parallel to out.fields
  p_.ForEachKey(
      node, path, kEventTemplateKeys,
      [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
        if (key == "key") {
          has_key = true;
          FieldName(p_, v, path + ".key", out.key_field);
        } else if (key == "timestamp") {
          has_timestamp = true;
          FieldName(p_, v, path + ".timestamp", out.timestamp_field);
          timestamp_mark = v.Mark();
        } else if (key == "fields") {
          ParseFieldMap(p_, v, path + ".fields", out.fields, field_marks);
        } else if (key == "allowed_lateness") {
          p_.Duration(v, path + ".allowed_lateness", kMaxLongDuration, out.allowed_lateness_micros);
        } else if (key == "max_future") {
          p_.Duration(v, path + ".max_future", kMaxFuture, out.max_future_micros);
        } else if (key == "history_retention") {
          p_.Duration(v, path + ".history_retention", kMaxLongDuration,
                      out.history_retention_micros);
        } else if (key == "dedup_window") {
          p_.Duration(v, path + ".dedup_window", kMaxDedupWindow, out.dedup_window_micros);
        } else if (key == "history_ssd_after") {
          ssd_after_mark = v.Mark();
          p_.Duration(v, path + ".history_ssd_after", kMaxLongDuration,
                      out.history_ssd_after_micros);
        } else if (key == "tiles_ssd_after") {
          tiles_after_mark = v.Mark();
          p_.Duration(v, path + ".tiles_ssd_after", kMaxLongDuration, out.tiles_ssd_after_micros);
        }
      });
  if (!node.IsMap()) return;
  // Checked after the loop: the keys may come in any order.
  if (!has_key) {
    p_.Error(name_node,
             path + ": missing 'key' (the event field holding the entity key, e.g. key: user_id)");
  }
  if (!has_timestamp) {
    p_.Error(name_node, path +
                            ": missing 'timestamp' (the event field holding the event time, "
                            "e.g. timestamp: ts)");
  }
  if (ssd_after_mark && out.history_ssd_after_micros != 0) {
    if (out.history_ssd_after_micros < 1'000'000) {
      p_.Error(*ssd_after_mark, path + ".history_ssd_after: too short; expected at least 1s");
    } else if (out.history_ssd_after_micros >= out.history_retention_micros) {
      p_.Error(*ssd_after_mark,
               path + ".history_ssd_after: must be shorter than history_retention (" +
                   FormatDuration(out.history_retention_micros) +
                   "): events older than the retention are not kept anywhere");
    }
  }
  if (tiles_after_mark && out.tiles_ssd_after_micros != 0) {
    if (out.tiles_ssd_after_micros < 1'000'000) {
      p_.Error(*tiles_after_mark, path + ".tiles_ssd_after: too short; expected at least 1s");
    } else if (out.tiles_ssd_after_micros <= out.allowed_lateness_micros) {
      p_.Error(*tiles_after_mark,
               path + ".tiles_ssd_after: must be longer than allowed_lateness (" +
                   FormatDuration(out.allowed_lateness_micros) +
                   "): a late event must never land in a tile already below RAM");
    }
  }
  if (has_key && has_timestamp && !out.key_field.empty() && out.key_field == out.timestamp_field) {
    p_.Error(timestamp_mark, path + ".timestamp: '" + out.timestamp_field +
                                 "' is also the key; expected a field other than the key");
  }
  for (size_t i = 0; i < out.fields.size(); ++i) {
    const std::string& field = out.fields[i].name;
    if (has_key && field == out.key_field) {
      p_.Error(field_marks[i], path + ".fields." + field +
                                   ": the key field must not be declared again among fields");
    } else if (has_timestamp && field == out.timestamp_field) {
      p_.Error(field_marks[i], path + ".fields." + field +
                                   ": the timestamp field must not be declared again among fields");
    }
  }
}

void DefinitionsParser::ParseAggregations(const YAML::Node& node) {
  if (node.IsNull()) return;
  p_.ForEachKey(node, "aggregations", {},
                [&](const std::string& name, const YAML::Node& name_node, const YAML::Node& v) {
                  AggregationConfig a;
                  AggregationMarks marks;
                  ParseAggregation(name, name_node, v, a, marks);
                  definitions_.aggregations.push_back(std::move(a));
                  aggregation_marks_.push_back(marks);
                });
}

void DefinitionsParser::ParseFeatures(const YAML::Node& node) {
  if (node.IsNull()) return;
  p_.ForEachKey(node, "features", {}, [&](const std::string& name, const YAML::Node& name_node,
                                          const YAML::Node& v) {
    DerivedFeatureConfig d;
    d.name = name;
    d.position = p_.Position(name_node.Mark());
    const std::string path = "features." + name;
    if (!IsValidName(name)) {
      p_.Error(name_node, "bad feature name '" + name + "'; " + std::string(kNameRule));
    }
    bool has_fn = false;
    bool has_function = false;
    bool has_inputs = false;
    YAML::Node inputs_node;
    YAML::Mark function_key;
    p_.ForEachKey(v, path, kDerivedFeatureKeys,
                  [&](const std::string& key, const YAML::Node& key_node,
                      const YAML::Node& value) {
                    if (key == "fn") {
                      has_fn = true;
                      p_.OneOf(value, path + ".fn", {"weighted"}, d.fn);
                    } else if (key == "function") {
                      has_function = true;
                      function_key = key_node.Mark();
                      if (p_.String(value, path + ".function", d.function) &&
                          !IsValidName(d.function)) {
                        p_.Error(value, path + ".function: bad function name '" + d.function +
                                            "'; " + std::string(kNameRule));
                      }
                    } else {
                      has_inputs = true;
                      inputs_node = value;
                    }
                  });
    if (!v.IsMap()) return;
    if (has_fn && has_function) {
      p_.Error(function_key, path + ".function: both 'fn' (weighted) and 'function' (a Lua "
                                    "function) are given; expected exactly one");
    } else if (!has_fn && !has_function) {
      p_.Error(name_node, path + ": missing 'fn' (expected weighted) or 'function' (a "
                                 "registered Lua function of kind derived)");
    }
    if (has_fn && has_function) {
      // Which form `inputs` should have is unknown: say nothing more.
    } else if (!has_inputs) {
      p_.Error(name_node, path + (has_function ? ": missing 'inputs' (a list of feature refs)"
                                               : ": missing 'inputs' (a map of feature refs to "
                                                 "weights)"));
    } else if (has_function && !has_fn) {
      if (!inputs_node.IsSequence() || inputs_node.size() == 0) {
        p_.Error(inputs_node, path + ".inputs: expected a list of feature refs such as "
                                     "[txn_count@1h, merchants@30d]");
      } else {
        for (size_t i = 0; i < inputs_node.size(); ++i) {
          DerivedInputConfig in;
          in.position = p_.Position(inputs_node[i].Mark());
          if (p_.String(inputs_node[i], path + ".inputs[" + std::to_string(i) + "]", in.ref)) {
            d.inputs.push_back(std::move(in));
          }
        }
      }
    } else if (!inputs_node.IsMap() || inputs_node.size() == 0) {
      p_.Error(inputs_node, path + ".inputs: expected a map of feature refs to weights such as "
                                   "{txn_count@1h: 0.7, merchants@30d: 0.3}");
    } else {
      p_.ForEachKey(inputs_node, path + ".inputs", {},
                    [&](const std::string& ref, const YAML::Node& ref_node,
                        const YAML::Node& weight) {
                      DerivedInputConfig in;
                      in.ref = ref;
                      in.position = p_.Position(ref_node.Mark());
                      if (p_.Number(weight, path + ".inputs." + ref, in.weight)) {
                        d.inputs.push_back(std::move(in));
                      }
                    });
    }
    definitions_.features.push_back(std::move(d));
  });
}

bool DefinitionsParser::Window(const YAML::Node& node, const std::string& path, Micros& out) {
  Micros v = 0;
  if (!p_.Duration(node, path, kMaxLongDuration, v)) return false;
  if (v == 0) {
    p_.Error(node, path + ": '" + node.Scalar() + "' is zero; expected a duration of at least 1s");
    return false;
  }
  if (v % kMicrosPerSecond != 0) {
    p_.Error(node, path + ": '" + node.Scalar() +
                       "' is not a whole number of seconds; expected a duration such as 90s");
    return false;
  }
  out = v;
  return true;
}

void DefinitionsParser::WindowList(const YAML::Node& node, const std::string& path,
                                   std::vector<Micros>& windows,
                                   std::vector<YAML::Node>& window_nodes) {
  if (!node.IsSequence()) {
    p_.Error(node, path + ": expected a list of durations such as [1h, 24h], found " +
                       Parser::KindName(node));
    return;
  }
  if (node.size() == 0) {
    p_.Error(node, path + ": is empty; expected at least one duration such as [1h]");
    return;
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string wpath = path + "[" + std::to_string(i) + "]";
    Micros w = 0;
    if (!Window(node[i], wpath, w)) continue;
    auto same = std::find(windows.begin(), windows.end(), w);
    if (same != windows.end()) {
      const YAML::Node& first = window_nodes[same - windows.begin()];
      p_.Error(node[i], wpath + ": duplicate window '" + node[i].Scalar() + "' (same length as '" +
                            first.Scalar() + "'); expected distinct windows");
      continue;
    }
    windows.push_back(w);
    window_nodes.push_back(node[i]);
  }
}

void DefinitionsParser::ParseAggregation(const std::string& name, const YAML::Node& name_node,
                                         const YAML::Node& node, AggregationConfig& out,
                                         AggregationMarks& marks) {
  out.name = name;
  out.position = p_.Position(name_node.Mark());
  const std::string path = "aggregations." + name;
  if (!IsValidName(name)) {
    p_.Error(name_node, "bad aggregation name '" + name + "'; " + std::string(kNameRule));
  }
  bool has_template = false;  // given (valid or not)
  bool has_fn = false;        // given (valid or not)
  bool fn_ok = false;         // given and known: out.fn is set
  bool has_function = false;  // `function:` given (valid or not)
  YAML::Mark function_key;
  bool has_field_key = false;
  bool has_n = false;
  bool has_k = false;
  bool has_window = false;  // `window` or `windows`
  YAML::Mark field_key;
  YAML::Mark n_key;
  YAML::Mark k_key;
  uint32_t n = 0;
  uint32_t k = 0;
  bool has_tile = false;  // given and valid: out.tile_micros > 0
  YAML::Node tile_node;
  std::vector<YAML::Node> window_nodes;  // parallel to out.windows
  const std::vector<std::string_view> fns(std::begin(kFns), std::end(kFns));
  p_.ForEachKey(
      node, path, kAggregationKeys,
      [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& v) {
        if (key == "template") {
          has_template = true;
          marks.has_template = p_.String(v, path + ".template", out.template_name);
          marks.template_value = v.Mark();
        } else if (key == "fn") {
          has_fn = true;
          fn_ok = p_.OneOf(v, path + ".fn", fns, out.fn);
        } else if (key == "function") {
          has_function = true;
          function_key = key_node.Mark();
          if (p_.String(v, path + ".function", out.function) && !IsValidName(out.function)) {
            p_.Error(v, path + ".function: bad function name '" + out.function + "'; " +
                            std::string(kNameRule));
          }
        } else if (key == "field") {
          has_field_key = true;
          field_key = key_node.Mark();
          marks.has_field = p_.String(v, path + ".field", out.field);
          marks.field_value = v.Mark();
        } else if (key == "n") {
          has_n = true;
          n_key = key_node.Mark();
          p_.Integer(v, path + ".n", 1, kMaxN, n);
        } else if (key == "k") {
          has_k = true;
          k_key = key_node.Mark();
          p_.Integer(v, path + ".k", 1, kMaxN, k);
        } else if (key == "window" || key == "windows") {
          if (has_window) {
            p_.Error(key_node, path + "." + key +
                                   ": both 'window' and 'windows' are given; expected exactly one");
            return;
          }
          has_window = true;
          if (key == "window") {
            Micros w = 0;
            if (Window(v, path + ".window", w)) {
              out.windows.push_back(w);
              window_nodes.push_back(v);
            }
            return;
          }
          WindowList(v, path + ".windows", out.windows, window_nodes);
        } else if (key == "tile") {
          if (Window(v, path + ".tile", out.tile_micros)) {
            has_tile = true;
            tile_node = v;
          }
        } else if (key == "max_age") {
          p_.Duration(v, path + ".max_age", kMaxLongDuration, out.max_age_micros);
        }
      });
  if (!node.IsMap()) return;

  // Checked after the loop: the keys may come in any order.
  if (!has_template) {
    p_.Error(name_node, path +
                            ": missing 'template' (the event template whose events are "
                            "aggregated, e.g. template: transactions)");
  }
  if (has_fn && has_function) {
    p_.Error(function_key, path + ".function: both 'fn' (a built-in) and 'function' (a Lua "
                                  "aggregator) are given; expected exactly one");
  } else if (!has_fn && !has_function) {
    p_.Error(name_node, path + ": missing 'fn' (one of: " + Parser::Join(kFns) +
                            ") or 'function' (a registered Lua aggregator)");
  }
  if (has_function && !has_fn) {
    if (has_n) p_.Error(n_key, path + ".n: only fn last_n takes n; remove it");
    if (has_k) p_.Error(k_key, path + ".k: only fn top_k takes k; remove it");
  }
  if (!has_window) {
    p_.Error(name_node, path +
                            ": missing 'window' or 'windows' (e.g. window: 1h, or windows: "
                            "[1h, 24h, 7d])");
  }
  if (fn_ok) {
    if (out.fn == "count" && has_field_key) {
      p_.Error(field_key, path + ".field: fn count counts events and takes no field; remove it");
      out.field.clear();
      marks.has_field = false;
    } else if (out.fn != "count" && !has_field_key) {
      p_.Error(name_node, path + ": missing 'field' (the field of the template that fn " + out.fn +
                              " aggregates, e.g. field: amount)");
    }
    if (out.fn == "last_n") {
      if (!has_n) {
        p_.Error(name_node, path + ": missing 'n' (how many of the latest values last_n keeps, " +
                                "1 to " + std::to_string(kMaxN) + ")");
      }
      out.n = n;
    } else if (has_n) {
      p_.Error(n_key, path + ".n: only fn last_n takes n; " +
                          (out.fn == "top_k" ? "top_k takes k" : "remove it"));
    }
    if (out.fn == "top_k") {
      if (!has_k) {
        p_.Error(name_node, path + ": missing 'k' (how many of the most frequent values top_k " +
                                "keeps, 1 to " + std::to_string(kMaxN) + ")");
      }
      out.n = k;
    } else if (has_k) {
      p_.Error(k_key, path + ".k: only fn top_k takes k; " +
                          (out.fn == "last_n" ? "last_n takes n" : "remove it"));
    }
  }
  if (has_tile) {
    const std::string tile = tile_node.Scalar();
    for (size_t i = 0; i < out.windows.size(); ++i) {
      const Micros w = out.windows[i];
      const std::string window = window_nodes[i].Scalar();
      if (w % out.tile_micros != 0) {
        p_.Error(tile_node, path + ".tile: '" + tile + "' does not divide window '" + window +
                                "'; expected a tile that divides every window");
      } else if (w / out.tile_micros > kMaxTilesPerWindow) {
        p_.Error(tile_node, path + ".tile: '" + tile + "' splits window '" + window + "' into " +
                                std::to_string(w / out.tile_micros) + " tiles; expected at most " +
                                std::to_string(kMaxTilesPerWindow) + " (a longer tile)");
      }
    }
  }
}

Definitions DefinitionsParser::Finish(std::span<const EventTemplateConfig> known) {
  const std::vector<EventTemplateConfig>& parsed = definitions_.event_templates;
  for (size_t i = 0; i < definitions_.aggregations.size(); ++i) {
    const AggregationConfig& a = definitions_.aggregations[i];
    const AggregationMarks& marks = aggregation_marks_[i];
    if (!marks.has_template) continue;
    const std::string path = "aggregations." + a.name;
    const EventTemplateConfig* t = nullptr;
    bool clean = true;
    for (size_t j = 0; t == nullptr && j < parsed.size(); ++j) {
      if (parsed[j].name == a.template_name) {
        t = &parsed[j];
        clean = template_clean_[j];
      }
    }
    for (const EventTemplateConfig& k : known) {
      if (t == nullptr && k.name == a.template_name) t = &k;
    }
    if (t == nullptr) {
      std::vector<std::string_view> names;
      for (const EventTemplateConfig& pt : parsed) names.push_back(pt.name);
      for (const EventTemplateConfig& k : known) {
        if (std::find(names.begin(), names.end(), k.name) == names.end()) {
          names.push_back(k.name);
        }
      }
      p_.Error(marks.template_value,
               path + ".template: unknown event template '" + a.template_name + "'; " +
                   (names.empty() ? "no event templates are defined (add one under "
                                    "event_templates)"
                                  : "expected one of: " + Parser::Join(names)));
      continue;
    }
    // A template with errors of its own may lack fields it meant to declare; say nothing more.
    if (!marks.has_field || !clean) continue;
    const std::string prefix = path + ".field: '" + a.field + "' is the ";
    const std::string of = " of event template '" + t->name + "'";
    if (a.field == t->key_field) {
      p_.Error(marks.field_value,
               prefix + "key" + of + ", not an aggregatable field" + ExpectedFields(*t));
    } else if (a.field == t->timestamp_field) {
      p_.Error(marks.field_value,
               prefix + "timestamp" + of + ", not an aggregatable field" + ExpectedFields(*t));
    } else if (std::none_of(t->fields.begin(), t->fields.end(),
                            [&](const FieldConfig& f) { return f.name == a.field; })) {
      p_.Error(marks.field_value,
               path + ".field: unknown field '" + a.field + "'" + of + ExpectedFields(*t));
    }
  }
  return std::move(definitions_);
}

}  // namespace ods::config::internal
