#pragma once

#include <optional>
#include <string>
#include <string_view>

// Private to ods_tier: helpers shared by the PostgreSQL backing store and the PostgreSQL
// system of record. No libpqxx types here.
namespace ods::tier::internal {

// True for a name put into SQL unquoted or quoted: letters, digits and _, starting with a
// letter or _, at most 63 bytes (PostgreSQL's NAMEDATALEN - 1).
bool IsSqlIdentifier(std::string_view name);

// "host=H port=P dbname=D user=U" from `conninfo`, without its password; nullopt if libpq
// cannot parse it (its parse error may quote the string, so callers say only that it failed).
std::optional<std::string> DescribeTarget(const std::string& conninfo);

// The first line of a libpq/libpqxx message (the rest is context or a hint).
std::string FirstLine(std::string_view text);

}  // namespace ods::tier::internal
