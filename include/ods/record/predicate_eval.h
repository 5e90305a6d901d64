#pragma once

#include "ods/common/predicate.h"
#include "ods/record/value.h"

namespace ods::record {

// True if `record` satisfies `predicate`. A comparison holds only when the field is present and
// its value is comparable with the literal: numbers (int64, double, timestamp as microseconds)
// with numbers, text (string, bytes) with text by bytes, bool with bool (== and != only). A
// missing field or an incomparable value makes a comparison false, `!=` included (as SQL's
// NULL). `in` holds when `==` holds for one of the literals. Thread-safe; no allocation.
bool Matches(const Predicate& predicate, const Record& record);

}  // namespace ods::record
