#include "ods/record/value.h"

namespace ods::record {

const Value* Record::Find(std::string_view name) const {
  for (const Field& f : fields) {
    if (f.name == name) return &f.value;
  }
  return nullptr;
}

}  // namespace ods::record
