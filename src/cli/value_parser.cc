#include "cli/value_parser.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace ods::cli {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// std::from_chars takes no leading '+'; a sign-less view is what it wants.
std::string_view StripPlus(std::string_view text) {
  if (text.size() > 1 && text[0] == '+' && text[1] != '-' && text[1] != '+') {
    text.remove_prefix(1);
  }
  return text;
}

// [+-]digits
bool LooksLikeInteger(std::string_view s) {
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    s.remove_prefix(1);
  }
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (!IsDigit(c)) {
      return false;
    }
  }
  return true;
}

// "02134" or "-007": digits whose leading zero an int64 would drop.
bool HasSignificantLeadingZero(std::string_view s) {
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    s.remove_prefix(1);
  }
  return s.size() > 1 && s[0] == '0';
}

// [+-](digits[.digits*] | .digits)([eE][+-]digits)? -- plain decimal only, so words like "inf"
// or "nan" stay strings.
bool LooksLikeDecimal(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    ++i;
  }
  size_t mantissa_digits = 0;
  while (i < s.size() && IsDigit(s[i])) {
    ++i;
    ++mantissa_digits;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && IsDigit(s[i])) {
      ++i;
      ++mantissa_digits;
    }
  }
  if (mantissa_digits == 0) {
    return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
      ++i;
    }
    size_t exponent_digits = 0;
    while (i < s.size() && IsDigit(s[i])) {
      ++i;
      ++exponent_digits;
    }
    if (exponent_digits == 0) {
      return false;
    }
  }
  return i == s.size();
}

Result<bool> ParseBool(std::string_view text) {
  if (text == "true") {
    return true;
  }
  if (text == "false") {
    return false;
  }
  return InvalidArgumentError("'" + std::string(text) + "' is not a bool (true or false)");
}

Result<std::vector<float>> ParseFloatVector(std::string_view text) {
  std::vector<float> values;
  if (text.empty()) {
    return values;
  }
  size_t begin = 0;
  while (true) {
    const size_t comma = text.find(',', begin);
    const std::string_view item =
        StripPlus(text.substr(begin, comma == std::string_view::npos ? comma : comma - begin));
    float v = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size() ||
        !std::isfinite(v)) {
      return InvalidArgumentError("element " + std::to_string(values.size()) + " ('" +
                                  std::string(item) + "') is not a finite float");
    }
    values.push_back(v);
    if (comma == std::string_view::npos) {
      break;
    }
    begin = comma + 1;
  }
  return values;
}

// Fills `out` from `text` as `type`; the message of an error describes only the value.
Status ParseTyped(std::string_view type, std::string_view text, ods::v1::Value& out) {
  if (type == "int64") {
    ODS_ASSIGN_OR_RETURN(const int64_t v, ParseInt64(text, "value"));
    out.set_int64_value(v);
  } else if (type == "double") {
    ODS_ASSIGN_OR_RETURN(const double v, ParseFiniteDouble(text, "value"));
    out.set_double_value(v);
  } else if (type == "bool") {
    ODS_ASSIGN_OR_RETURN(const bool v, ParseBool(text));
    out.set_bool_value(v);
  } else if (type == "string") {
    out.set_string_value(std::string(text));
  } else if (type == "bytes") {
    ODS_ASSIGN_OR_RETURN(std::string v, DecodeBase64(text));
    out.set_bytes_value(std::move(v));
  } else if (type == "float_vector") {
    ODS_ASSIGN_OR_RETURN(const std::vector<float> v, ParseFloatVector(text));
    out.mutable_float_vector_value()->mutable_values()->Assign(v.begin(), v.end());
  } else if (type == "timestamp") {
    ODS_ASSIGN_OR_RETURN(const int64_t v, ParseInt64(text, "timestamp (microseconds)"));
    out.set_timestamp_micros_value(v);
  } else {
    return InvalidArgumentError("unknown type '" + std::string(type) +
                                "' (int64, double, bool, string, bytes, float_vector, "
                                "timestamp)");
  }
  return OkStatus();
}

void ParseInferred(std::string_view text, ods::v1::Value& out) {
  if (text == "true" || text == "false") {
    out.set_bool_value(text == "true");
    return;
  }
  if (LooksLikeInteger(text) && !HasSignificantLeadingZero(text)) {
    if (Result<int64_t> v = ParseInt64(text, "value"); v.ok()) {
      out.set_int64_value(*v);
      return;
    }
  }
  if (LooksLikeDecimal(text) && !LooksLikeInteger(text)) {
    if (Result<double> v = ParseFiniteDouble(text, "value"); v.ok()) {
      out.set_double_value(*v);
      return;
    }
  }
  out.set_string_value(std::string(text));
}

}  // namespace

Result<int64_t> ParseInt64(std::string_view text, std::string_view what) {
  const std::string_view digits = StripPlus(text);
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec == std::errc::result_out_of_range) {
    return InvalidArgumentError(std::string(what) + " '" + std::string(text) +
                                "' is out of the int64 range");
  }
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) {
    return InvalidArgumentError(std::string(what) + " '" + std::string(text) +
                                "' is not an integer");
  }
  return v;
}

Result<uint32_t> ParseUint32(std::string_view text, std::string_view what) {
  uint32_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    return InvalidArgumentError(std::string(what) + " '" + std::string(text) +
                                "' is not an integer in [0, 4294967295]");
  }
  return v;
}

Result<double> ParseFiniteDouble(std::string_view text, std::string_view what) {
  const std::string_view number = StripPlus(text);
  double v = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), v);
  if (number.empty() || ec != std::errc() || end != number.data() + number.size() ||
      !std::isfinite(v)) {
    return InvalidArgumentError(std::string(what) + " '" + std::string(text) +
                                "' is not a finite number");
  }
  return v;
}

Result<std::string> DecodeBase64(std::string_view text) {
  constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string_view body = text;
  size_t padding = 0;
  while (!body.empty() && body.back() == '=' && padding < 2) {
    body.remove_suffix(1);
    ++padding;
  }
  if ((padding > 0 && text.size() % 4 != 0) || body.size() % 4 == 1) {
    return InvalidArgumentError("'" + std::string(text) + "' is not base64: bad length");
  }
  std::string out;
  out.reserve(body.size() * 3 / 4);
  uint32_t bits = 0;
  int bit_count = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    const size_t index = kAlphabet.find(body[i]);
    if (index == std::string_view::npos) {
      return InvalidArgumentError("'" + std::string(text) + "' is not base64: bad character at " +
                                  std::to_string(i));
    }
    bits = (bits << 6) | static_cast<uint32_t>(index);
    bit_count += 6;
    if (bit_count >= 8) {
      bit_count -= 8;
      out.push_back(static_cast<char>((bits >> bit_count) & 0xFF));
    }
  }
  return out;
}

Result<FieldAssignment> ParseFieldAssignment(std::string_view arg) {
  const auto bad = [&](std::string_view why) {
    return InvalidArgumentError("bad FIELD=VALUE '" + std::string(arg) + "': " + std::string(why));
  };
  const size_t eq = arg.find('=');
  if (eq == std::string_view::npos) {
    return bad("missing '='");
  }
  std::string_view name = arg.substr(0, eq);
  const std::string_view text = arg.substr(eq + 1);
  FieldAssignment result;
  const size_t colon = name.rfind(':');
  if (colon != std::string_view::npos) {
    const std::string_view type = name.substr(colon + 1);
    name = name.substr(0, colon);
    if (Status s = ParseTyped(type, text, result.value); !s.ok()) {
      return bad(s.message());
    }
  } else {
    ParseInferred(text, result.value);
  }
  if (name.empty()) {
    return bad("empty field name");
  }
  result.name = std::string(name);
  return result;
}

}  // namespace ods::cli
