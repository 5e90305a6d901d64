#include "ods/record/schema.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>
#include <utility>

namespace ods::record {
namespace {

bool IsValidFieldName(std::string_view name) {
  if (name.empty() || name.size() > kMaxFieldNameBytes) return false;
  if (!(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

bool IsFinite(const Value& v) {
  if (const auto* d = std::get_if<double>(&v)) return std::isfinite(*d);
  if (const auto* fv = std::get_if<std::vector<float>>(&v)) {
    return std::all_of(fv->begin(), fv->end(), [](float f) { return std::isfinite(f); });
  }
  return true;
}

}  // namespace

TableSchema::TableSchema(std::string name, std::string key_field, std::vector<FieldSpec> fields,
                         bool free_form, Micros ttl_micros)
    : name_(std::move(name)),
      key_field_(std::move(key_field)),
      fields_(std::move(fields)),
      free_form_(free_form),
      ttl_micros_(ttl_micros) {
  sorted_index_.reserve(fields_.size());
  for (uint32_t i = 0; i < fields_.size(); ++i) sorted_index_.emplace_back(fields_[i].name, i);
  std::sort(sorted_index_.begin(), sorted_index_.end());
}

std::optional<uint32_t> TableSchema::FieldIndex(std::string_view name) const {
  auto it = std::lower_bound(sorted_index_.begin(), sorted_index_.end(), name,
                             [](const auto& entry, std::string_view n) { return entry.first < n; });
  if (it == sorted_index_.end() || it->first != name) return std::nullopt;
  return it->second;
}

Status TableSchema::Validate(std::string_view key, const Record& record) const {
  auto where = [&](std::string_view field) {
    std::string s = "table '" + name_ + "', key '" + QuoteForMessage(key) + "'";
    if (!field.empty()) s += ", field '" + QuoteForMessage(field) + "'";
    return s;
  };
  for (size_t i = 0; i < record.fields.size(); ++i) {
    const Field& f = record.fields[i];
    if (!IsValidFieldName(f.name)) {
      return InvalidArgumentError(where(f.name) +
                                  ": bad field name; expected letters, digits and _, starting "
                                  "with a letter or _, at most 64 bytes");
    }
    if (!IsFinite(f.value)) {
      return InvalidArgumentError(where(f.name) + ": NaN and infinity are not stored");
    }
    if (free_form_) continue;
    std::optional<uint32_t> index = FieldIndex(f.name);
    if (!index) {
      std::string declared;
      for (const FieldSpec& spec : fields_) {
        if (!declared.empty()) declared += ", ";
        declared += spec.name;
      }
      return InvalidArgumentError(where(f.name) + ": unknown field; table declares: " + declared);
    }
    const ValueType want = fields_[*index].type;
    if (TypeOf(f.value) != want) {
      return InvalidArgumentError(where(f.name) + ": wrong type " +
                                  std::string(ValueTypeName(TypeOf(f.value))) + ", expected " +
                                  std::string(ValueTypeName(want)));
    }
  }
  // Duplicates: pairwise for the usual few fields, sorted beyond that (O(n log n), so a record
  // with many fields cannot cost quadratic time).
  const auto& fs = record.fields;
  if (fs.size() <= 16) {
    for (size_t i = 1; i < fs.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        if (fs[j].name == fs[i].name) {
          return InvalidArgumentError(where(fs[i].name) + ": field given twice");
        }
      }
    }
  } else {
    std::vector<std::string_view> names;
    names.reserve(fs.size());
    for (const Field& f : fs) names.push_back(f.name);
    std::sort(names.begin(), names.end());
    auto dup = std::adjacent_find(names.begin(), names.end());
    if (dup != names.end()) return InvalidArgumentError(where(*dup) + ": field given twice");
  }
  return OkStatus();
}

}  // namespace ods::record
