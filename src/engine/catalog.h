#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ods/config/config.h"
#include "ods/engine/engine.h"
#include "ods/shard/shard.h"

namespace ods::engine {

// An event template as the engine validates events against it.
struct TemplateDef {
  config::EventTemplateConfig config;
  std::shared_ptr<const shard::TemplateSpec> spec;

  // Index of declared field `name` in config.fields, or nullopt. O(fields).
  std::optional<uint32_t> FieldIndex(std::string_view name) const {
    for (uint32_t i = 0; i < config.fields.size(); ++i) {
      if (config.fields[i].name == name) return i;
    }
    return std::nullopt;
  }
};

struct AggregationDef {
  config::AggregationConfig config;
  std::shared_ptr<const shard::AggregationSpec> spec;
};

// A derived feature (config `features:`): its inputs passed ExtendCatalog's checks (each a
// numeric aggregation window or typed table field, none derived).
struct DerivedDef {
  config::DerivedFeatureConfig config;
};

// One immutable version of the event templates, aggregations and derived features. Ids are
// positions.
struct Engine::Catalog {
  std::vector<TemplateDef> templates;
  std::vector<AggregationDef> aggregations;
  std::vector<DerivedDef> derived;
  std::map<std::string, uint32_t, std::less<>> template_ids;
  std::map<std::string, uint32_t, std::less<>> aggregation_ids;
  std::map<std::string, uint32_t, std::less<>> derived_ids;
  const DerivedDef* FindDerived(std::string_view name) const {
    auto it = derived_ids.find(name);
    return it == derived_ids.end() ? nullptr : &derived[it->second];
  }

  const TemplateDef* FindTemplate(std::string_view name) const {
    auto it = template_ids.find(name);
    return it == template_ids.end() ? nullptr : &templates[it->second];
  }
  const AggregationDef* FindAggregation(std::string_view name) const {
    auto it = aggregation_ids.find(name);
    return it == aggregation_ids.end() ? nullptr : &aggregations[it->second];
  }
};

// A feature lookup resolved against the catalog and the tables.
struct Engine::FeaturePlan {
  struct TableRef {
    uint32_t table = 0;
    std::string_view field;  // borrowed from the request
    Micros max_age_micros = 0;
  };
  struct AggregationRef {
    uint32_t aggregation = 0;
    uint32_t window = 0;
  };
  // Per requested feature, in request order: exactly one of the two is set.
  std::vector<std::optional<TableRef>> table_refs;
  std::vector<std::optional<AggregationRef>> aggregation_refs;
};

}  // namespace ods::engine
