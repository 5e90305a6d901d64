#include "ods/record/predicate_eval.h"

#include <optional>
#include <string_view>
#include <variant>

namespace ods::record {
namespace {

// -1, 0, 1, or nullopt when the two cannot be compared.
template <typename T>
std::optional<int> Order(const T& a, const T& b) {
  if (a < b) return -1;
  if (b < a) return 1;
  return 0;
}

std::optional<int> Compare(const Value& value, const Predicate::Literal& literal) {
  std::optional<double> number;
  std::optional<std::string_view> text;
  std::optional<bool> flag;
  if (const auto* i = std::get_if<int64_t>(&value)) {
    if (const auto* li = std::get_if<int64_t>(&literal)) return Order(*i, *li);
    number = static_cast<double>(*i);
  } else if (const auto* t = std::get_if<Timestamp>(&value)) {
    if (const auto* li = std::get_if<int64_t>(&literal)) return Order(t->micros, *li);
    number = static_cast<double>(t->micros);
  } else if (const auto* d = std::get_if<double>(&value)) {
    number = *d;
  } else if (const auto* s = std::get_if<std::string>(&value)) {
    text = *s;
  } else if (const auto* b = std::get_if<Bytes>(&value)) {
    text = b->data;
  } else if (const auto* f = std::get_if<bool>(&value)) {
    flag = *f;
  }
  if (number) {
    if (const auto* li = std::get_if<int64_t>(&literal)) return Order(*number, static_cast<double>(*li));
    if (const auto* ld = std::get_if<double>(&literal)) {
      if (*number != *number || *ld != *ld) return std::nullopt;  // NaN
      return Order(*number, *ld);
    }
    return std::nullopt;
  }
  if (text) {
    if (const auto* ls = std::get_if<std::string>(&literal)) return Order(*text, std::string_view(*ls));
    return std::nullopt;
  }
  if (flag) {
    if (const auto* lb = std::get_if<bool>(&literal)) return *flag == *lb ? 0 : 1;
  }
  return std::nullopt;
}

bool Holds(Predicate::Op op, int order) {
  switch (op) {
    case Predicate::Op::kEq: return order == 0;
    case Predicate::Op::kNe: return order != 0;
    case Predicate::Op::kLt: return order < 0;
    case Predicate::Op::kLe: return order <= 0;
    case Predicate::Op::kGt: return order > 0;
    case Predicate::Op::kGe: return order >= 0;
    default: return false;
  }
}

}  // namespace

bool Matches(const Predicate& predicate, const Record& record) {
  switch (predicate.op) {
    case Predicate::Op::kAnd:
      for (const Predicate& c : predicate.children) {
        if (!Matches(c, record)) return false;
      }
      return true;
    case Predicate::Op::kOr:
      for (const Predicate& c : predicate.children) {
        if (Matches(c, record)) return true;
      }
      return false;
    default:
      break;
  }
  const Value* value = record.Find(predicate.field);
  if (value == nullptr) return false;
  if (predicate.op == Predicate::Op::kIn) {
    for (const Predicate::Literal& l : predicate.literals) {
      const std::optional<int> order = Compare(*value, l);
      if (order && *order == 0) return true;
    }
    return false;
  }
  if (predicate.literals.empty()) return false;
  // bool orders only by equality: <, > on bools never hold.
  if (std::holds_alternative<bool>(*value) && predicate.op != Predicate::Op::kEq &&
      predicate.op != Predicate::Op::kNe) {
    return false;
  }
  const std::optional<int> order = Compare(*value, predicate.literals.front());
  return order && Holds(predicate.op, *order);
}

}  // namespace ods::record
