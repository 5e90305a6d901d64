#include "tier/postgres_util.h"

#include <libpq-fe.h>

namespace ods::tier::internal {

bool IsSqlIdentifier(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::optional<std::string> DescribeTarget(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (error != nullptr) PQfreemem(error);
  if (options == nullptr) return std::nullopt;
  std::string host, hostaddr, port, dbname, user;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const std::string_view k = o->keyword;
    if (k == "host") host = o->val;
    if (k == "hostaddr") hostaddr = o->val;
    if (k == "port") port = o->val;
    if (k == "dbname") dbname = o->val;
    if (k == "user") user = o->val;
  }
  PQconninfoFree(options);
  std::string out = "host=" + (host.empty() ? (hostaddr.empty() ? "(default)" : hostaddr) : host);
  out += " port=" + (port.empty() ? std::string("(default)") : port);
  out += " dbname=" + (dbname.empty() ? std::string("(default)") : dbname);
  out += " user=" + (user.empty() ? std::string("(default)") : user);
  return out;
}

std::string FirstLine(std::string_view text) {
  const size_t nl = text.find('\n');
  return std::string(text.substr(0, nl));
}

}  // namespace ods::tier::internal
