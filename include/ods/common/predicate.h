#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ods/common/status.h"
#include "ods/common/value_type.h"

// A boolean expression over a record's named fields, as tiering rules write them
// (`field: "plan == 'free' and score >= 3"`). The tree is plain data: config parses and checks
// it, record evaluates it on a record (record::Matches). Grammar:
//
//   expr   := and ('or' and)*
//   and    := term ('and' term)*
//   term   := '(' expr ')' | FIELD OP literal | FIELD 'in' '[' literal (',' literal)* ']'
//   OP     := '==' | '!=' | '<' | '<=' | '>' | '>='
//   literal:= 'text' | "text" | integer | decimal | true | false
//
// FIELD is letters, digits and _, starting with a letter or _. Keywords are lower case.
namespace ods {

struct Predicate {
  enum class Op : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kAnd, kOr };
  using Literal = std::variant<bool, int64_t, double, std::string>;

  Op op = Op::kEq;
  std::string field;                // comparisons and kIn
  std::vector<Literal> literals;    // one for a comparison; the list for kIn
  std::vector<Predicate> children;  // kAnd / kOr: two or more
  size_t offset = 0;                // where the term starts in the source text (0-based)
};

// "==", "!=", "<", "<=", ">", ">=", "in", "and", "or".
std::string_view PredicateOpName(Predicate::Op op);

// Parses `text`. On error returns kInvalidArgument with a message saying what was expected,
// and sets `error_offset` to the 0-based byte offset in `text` where the problem is. At most
// 64 levels of nesting and 4096 bytes of text.
Result<Predicate> ParsePredicate(std::string_view text, size_t& error_offset);

// True if a field of type `type` can ever satisfy `op` against `literal`: numbers (int64,
// double, timestamp) against numbers, string/bytes against text, bool against bool with == and
// != only; a float vector never. Config checks declared fields with it, so a rule that could
// never match is an error rather than a silent no-op.
bool PredicateComparable(ValueType type, Predicate::Op op, const Predicate::Literal& literal);

}  // namespace ods
