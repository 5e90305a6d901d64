#include "ods/common/predicate.h"

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <utility>

namespace ods {
namespace {

constexpr size_t kMaxPredicateBytes = 4096;
constexpr int kMaxDepth = 64;

// Recursive descent over `text`; the first error stops the parse (error_ set).
class PredicateParser {
 public:
  explicit PredicateParser(std::string_view text) : text_(text) {}

  Result<Predicate> Parse(size_t& error_offset) {
    Predicate p = Expr(0);
    if (error_.empty()) {
      SkipSpace();
      if (pos_ < text_.size()) Fail("unexpected '" + std::string(Word()) + "'; expected 'and', 'or' or the end");
    }
    if (!error_.empty()) {
      error_offset = error_at_;
      return InvalidArgumentError(error_);
    }
    return p;
  }

 private:
  void Fail(std::string message) {
    if (!error_.empty()) return;
    error_ = std::move(message);
    error_at_ = pos_;
  }
  bool failed() const { return !error_.empty(); }

  void SkipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  static bool IsWordChar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' ||
           c == '+';
  }
  // The token at pos_ (for messages), without consuming it.
  std::string_view Word() const {
    size_t end = pos_;
    while (end < text_.size() && IsWordChar(text_[end])) ++end;
    if (end == pos_ && pos_ < text_.size()) end = pos_ + 1;
    return text_.substr(pos_, end - pos_);
  }
  // Consumes keyword `kw` if it is next as a whole word.
  bool Keyword(std::string_view kw) {
    SkipSpace();
    if (text_.substr(pos_, kw.size()) != kw) return false;
    const size_t end = pos_ + kw.size();
    if (end < text_.size() && IsWordChar(text_[end])) return false;
    pos_ = end;
    return true;
  }
  bool Punct(char c) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  Predicate Expr(int depth) {
    if (depth > kMaxDepth) {
      Fail("nested more than 64 levels deep");
      return {};
    }
    return Chain(depth, Predicate::Op::kOr);
  }

  // A run of terms joined by `op` ('or' over 'and' chains, 'and' over terms).
  Predicate Chain(int depth, Predicate::Op op) {
    SkipSpace();
    const size_t start = pos_;
    auto operand = [&] { return op == Predicate::Op::kOr ? Chain(depth, Predicate::Op::kAnd) : Term(depth); };
    Predicate first = operand();
    if (failed()) return {};
    const std::string_view kw = op == Predicate::Op::kOr ? "or" : "and";
    if (!Keyword(kw)) return first;
    Predicate joined;
    joined.op = op;
    joined.offset = start;
    joined.children.push_back(std::move(first));
    do {
      joined.children.push_back(operand());
      if (failed()) return {};
    } while (Keyword(kw));
    return joined;
  }

  Predicate Term(int depth) {
    SkipSpace();
    if (Punct('(')) {
      Predicate inner = Expr(depth + 1);
      if (failed()) return {};
      if (!Punct(')')) Fail("expected ')'");
      return inner;
    }
    Predicate p;
    p.offset = pos_;
    if (pos_ >= text_.size()) {
      Fail("expected a field name");
      return {};
    }
    const char c0 = text_[pos_];
    if (!(std::isalpha(static_cast<unsigned char>(c0)) || c0 == '_')) {
      Fail("expected a field name, found '" + std::string(Word()) + "'");
      return {};
    }
    size_t end = pos_;
    while (end < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[end])) || text_[end] == '_')) {
      ++end;
    }
    p.field.assign(text_.substr(pos_, end - pos_));
    pos_ = end;
    if (p.field == "and" || p.field == "or" || p.field == "in") {
      pos_ = p.offset;
      Fail("expected a field name, found the keyword '" + p.field + "'");
      return {};
    }
    SkipSpace();
    if (Keyword("in")) {
      p.op = Predicate::Op::kIn;
      if (!Punct('[')) {
        Fail("expected '[' after 'in'");
        return {};
      }
      do {
        p.literals.push_back(Literal());
        if (failed()) return {};
      } while (Punct(','));
      if (!Punct(']')) Fail("expected ',' or ']' in the list after 'in'");
      return p;
    }
    static constexpr std::pair<std::string_view, Predicate::Op> kOps[] = {
        {"==", Predicate::Op::kEq}, {"!=", Predicate::Op::kNe}, {"<=", Predicate::Op::kLe},
        {">=", Predicate::Op::kGe}, {"<", Predicate::Op::kLt},  {">", Predicate::Op::kGt}};
    bool found = false;
    for (const auto& [text, op] : kOps) {
      if (text_.substr(pos_, text.size()) == text) {
        p.op = op;
        pos_ += text.size();
        found = true;
        break;
      }
    }
    if (!found) {
      Fail("expected ==, !=, <, <=, >, >= or 'in' after '" + p.field + "'");
      return {};
    }
    p.literals.push_back(Literal());
    return p;
  }

  Predicate::Literal Literal() {
    SkipSpace();
    if (pos_ >= text_.size()) {
      Fail("expected a value");
      return false;
    }
    const char c = text_[pos_];
    if (c == '\'' || c == '"') {
      const size_t close = text_.find(c, pos_ + 1);
      if (close == std::string_view::npos) {
        Fail(std::string("unterminated string; expected a closing ") + c);
        return false;
      }
      std::string s(text_.substr(pos_ + 1, close - pos_ - 1));
      pos_ = close + 1;
      return s;
    }
    if (Keyword("true")) return true;
    if (Keyword("false")) return false;
    const std::string_view word = Word();
    const std::string token(word);
    int64_t i = 0;
    auto [iend, iec] = std::from_chars(token.data(), token.data() + token.size(), i);
    if (iec == std::errc() && iend == token.data() + token.size()) {
      pos_ += word.size();
      return i;
    }
    char* dend = nullptr;
    const double d = std::strtod(token.c_str(), &dend);
    if (!token.empty() && dend == token.c_str() + token.size() &&
        (std::isdigit(static_cast<unsigned char>(token[0])) || token[0] == '-' ||
         token[0] == '+' || token[0] == '.')) {
      pos_ += word.size();
      return d;
    }
    Fail("expected a value ('text', a number, true or false), found '" + token + "'");
    return false;
  }

  std::string_view text_;
  size_t pos_ = 0;
  std::string error_;
  size_t error_at_ = 0;
};

}  // namespace

std::string_view PredicateOpName(Predicate::Op op) {
  switch (op) {
    case Predicate::Op::kEq: return "==";
    case Predicate::Op::kNe: return "!=";
    case Predicate::Op::kLt: return "<";
    case Predicate::Op::kLe: return "<=";
    case Predicate::Op::kGt: return ">";
    case Predicate::Op::kGe: return ">=";
    case Predicate::Op::kIn: return "in";
    case Predicate::Op::kAnd: return "and";
    case Predicate::Op::kOr: return "or";
  }
  return "?";
}

Result<Predicate> ParsePredicate(std::string_view text, size_t& error_offset) {
  if (text.size() > kMaxPredicateBytes) {
    error_offset = kMaxPredicateBytes;
    return InvalidArgumentError("longer than 4096 bytes");
  }
  return PredicateParser(text).Parse(error_offset);
}

bool PredicateComparable(ValueType type, Predicate::Op op, const Predicate::Literal& literal) {
  const bool ordering = op != Predicate::Op::kEq && op != Predicate::Op::kNe &&
                        op != Predicate::Op::kIn;
  switch (type) {
    case ValueType::kInt64:
    case ValueType::kDouble:
    case ValueType::kTimestamp:
      return std::holds_alternative<int64_t>(literal) || std::holds_alternative<double>(literal);
    case ValueType::kString:
    case ValueType::kBytes:
      return std::holds_alternative<std::string>(literal);
    case ValueType::kBool:
      return !ordering && std::holds_alternative<bool>(literal);
    case ValueType::kFloatVector:
      return false;
  }
  return false;
}

}  // namespace ods
