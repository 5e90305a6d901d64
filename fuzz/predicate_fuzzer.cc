// Fuzzes ods::ParsePredicate (tiering rules' `field:` expressions, parsed from config files) on
// arbitrary text, then evaluates whatever parses on a record of every value type
// (record::Matches) and checks PredicateComparable against each type. A rejected text must name
// an offset inside it; deep nesting must fail cleanly rather than overflow the stack.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/predicate.h"
#include "ods/common/value_type.h"
#include "ods/record/predicate_eval.h"
#include "ods/record/value.h"

namespace {

void Require(bool condition) {
  if (!condition) std::abort();
}

const ods::record::Record& SampleRecord() {
  static const auto* const kRecord = [] {
    auto* r = new ods::record::Record;
    r->fields = {{"age", int64_t{42}},
                 {"avatar", ods::record::Bytes{"\x01\x02"}},
                 {"country", std::string("NZ")},
                 {"embedding", std::vector<float>{0.5F, -1.0F}},
                 {"premium", true},
                 {"score", 0.9},
                 {"signup", ods::record::Timestamp{1'700'000'000'000'000}}};
    return r;
  }();
  return *kRecord;
}

// Walks the tree: every node is well-formed (and/or have two or more children, comparisons one
// literal, `in` at least one) and every literal is checked against every type.
void Check(const ods::Predicate& p, std::string_view text, int depth) {
  Require(depth <= 1000);
  Require(p.offset <= text.size());
  switch (p.op) {
    case ods::Predicate::Op::kAnd:
    case ods::Predicate::Op::kOr:
      Require(p.children.size() >= 2);
      for (const ods::Predicate& c : p.children) Check(c, text, depth + 1);
      return;
    case ods::Predicate::Op::kIn:
      Require(!p.literals.empty() && !p.field.empty());
      break;
    default:
      Require(p.literals.size() == 1 && !p.field.empty());
      break;
  }
  (void)ods::PredicateOpName(p.op);
  for (const ods::Predicate::Literal& literal : p.literals) {
    for (int t = 1; t <= 7; ++t) {
      (void)ods::PredicateComparable(static_cast<ods::ValueType>(t), p.op, literal);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  size_t error_offset = 0;
  ods::Result<ods::Predicate> p = ods::ParsePredicate(text, error_offset);
  if (!p.ok()) {
    Require(p.status().code() == ods::StatusCode::kInvalidArgument);
    Require(error_offset <= text.size());
    return 0;
  }
  Check(*p, text, 0);
  (void)ods::record::Matches(*p, SampleRecord());
  return 0;
}
