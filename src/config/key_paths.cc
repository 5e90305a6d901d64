#include "ods/config/key_paths.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/keys.h"

namespace ods::config {

std::vector<std::string> KnownKeyPaths() {
  // A path with a section at or below it holds a mapping: "storage" (storage.ram, ...), "tables"
  // (tables.NAME), "security.api_keys" (security.api_keys.NAME).
  auto is_inner = [](std::string_view path) {
    for (const internal::KeySection& s : internal::kKeySections) {
      if (s.path == path ||
          (s.path.starts_with(path) && s.path.size() > path.size() && s.path[path.size()] == '.')) {
        return true;
      }
    }
    return false;
  };
  std::vector<std::string> paths;
  for (const internal::KeySection& s : internal::kKeySections) {
    for (std::string_view key : s.keys) {
      std::string path =
          s.path.empty() ? std::string(key) : std::string(s.path) + "." + std::string(key);
      if (!is_inner(path)) paths.push_back(std::move(path));
    }
  }
  std::sort(paths.begin(), paths.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  return paths;
}

}  // namespace ods::config
