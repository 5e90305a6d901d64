// docs/configuration.md against the parser: every key path config::Load accepts
// (config::KnownKeyPaths) must be documented, and every listed path must really be accepted.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/status.h"
#include "ods/config/config.h"
#include "ods/config/key_paths.h"
#include "support/odsd_process.h"

namespace ods::config {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// GitHub's anchor of a Markdown heading: lower case, spaces to '-', other punctuation dropped.
std::string Anchor(std::string_view heading) {
  std::string anchor;
  for (char c : heading) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '_' || c == '-') {
      anchor += static_cast<char>(std::tolower(u));
    } else if (c == ' ') {
      anchor += '-';
    }
  }
  return anchor;
}

// The lines of the section (heading of any level up to the next heading) whose anchor is
// `anchor`; empty if there is none.
std::vector<std::string> Section(const std::vector<std::string>& lines, std::string_view anchor) {
  std::vector<std::string> section;
  bool inside = false;
  for (const std::string& line : lines) {
    if (line.starts_with("#")) {
      const size_t text = line.find_first_not_of('#');
      inside = text != std::string::npos && Anchor(line.substr(text + 1)) == anchor;
      continue;
    }
    if (inside) section.push_back(line);
  }
  return section;
}

// True if `path` is documented in the Markdown `doc`: either `path` appears in backticks, or a
// table row names a prefix of it as `PREFIX.*` and links to a section (#anchor) whose table has
// a row for the rest of the path (| `REST` | ...), as for `event_templates.NAME.*`.
bool Documents(const std::string& doc, const std::string& path) {
  if (doc.find("`" + path + "`") != std::string::npos) return true;
  const std::vector<std::string> lines = Lines(doc);
  for (size_t dot = path.rfind('.'); dot != std::string::npos && dot > 0;
       dot = path.rfind('.', dot - 1)) {
    const std::string prefix_row = "`" + path.substr(0, dot) + ".*`";
    const std::string rest_row = "| `" + path.substr(dot + 1) + "` |";
    for (const std::string& line : lines) {
      if (!line.starts_with("|") || line.find(prefix_row) == std::string::npos) continue;
      const size_t link = line.find("](#");
      if (link == std::string::npos) continue;
      const size_t end = line.find(')', link);
      if (end == std::string::npos) continue;
      const std::string anchor = line.substr(link + 3, end - link - 3);
      for (const std::string& row : Section(lines, anchor)) {
        if (row.starts_with(rest_row)) return true;
      }
    }
  }
  return false;
}

std::vector<std::string> Undocumented(const std::string& doc) {
  std::vector<std::string> missing;
  for (const std::string& path : KnownKeyPaths()) {
    if (!Documents(doc, path)) missing.push_back(path);
  }
  return missing;
}

// A config that sets `path` (NAME replaced by "x") to null: a complete config only in shape, it
// exercises the key check of every mapping on the way.
std::string ConfigSetting(const std::string& path) {
  std::string yaml;
  std::string indent;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part == "NAME") part = "x";
    // A list's entries (PATH[].KEY): the next key opens the list's first item.
    const bool list = part.ends_with("[]");
    if (list) part.resize(part.size() - 2);
    yaml += indent + part + ":\n";
    if (dot == std::string::npos) break;
    indent += "  ";
    if (list) {
      yaml += indent + "- ";
      indent += "  ";
      const size_t next = path.find('.', dot + 1);
      std::string first = path.substr(dot + 1, next == std::string::npos ? std::string::npos
                                                                         : next - dot - 1);
      yaml += first + ":\n";
      if (next == std::string::npos) break;
      indent += "  ";
      start = next + 1;
      continue;
    }
    start = dot + 1;
  }
  return yaml;
}

std::string LoadMessage(const std::string& yaml) {
  Result<Config> r = LoadString(yaml, "test.yaml");
  return r.ok() ? std::string() : r.status().message();
}

TEST(ConfigReferenceTest, KnownKeyPathsListsLeavesOfEverySection) {
  const std::vector<std::string> paths = KnownKeyPaths();
  EXPECT_THAT(paths, Contains("server.grpc_listen"));
  EXPECT_THAT(paths, Contains("server.tls.require_client_cert"));
  EXPECT_THAT(paths, Contains("storage.backing.postgres.conninfo"));
  EXPECT_THAT(paths, Contains("security.api_keys.NAME.role"));
  EXPECT_THAT(paths, Contains("tables.NAME.ttl"));
  EXPECT_THAT(paths, Contains("event_templates.NAME.dedup_window"));
  EXPECT_THAT(paths, Contains("aggregations.NAME.windows"));
  EXPECT_THAT(paths, Contains("features.NAME.inputs"));
  EXPECT_THAT(paths, Contains("functions.NAME.limits.wall_time"));
  // Mappings of fixed keys are represented by their keys.
  EXPECT_THAT(paths, Not(Contains("server.tls")));
  EXPECT_THAT(paths, Not(Contains("storage")));
  EXPECT_THAT(paths, Not(Contains("tables")));
  EXPECT_TRUE(std::is_sorted(paths.begin(), paths.end()));
}

TEST(ConfigReferenceTest, ParserAcceptsEveryKnownKeyPath) {
  for (const std::string& path : KnownKeyPaths()) {
    SCOPED_TRACE(path);
    EXPECT_THAT(LoadMessage(ConfigSetting(path)), Not(HasSubstr("unknown key")));
    // The same place with a key nobody accepts is refused: the check above is not vacuous.
    const std::string bogus = path.substr(0, path.rfind('.') + 1) + "zz_bogus";
    EXPECT_THAT(LoadMessage(ConfigSetting(bogus)), HasSubstr("unknown key 'zz_bogus'"));
  }
}

TEST(ConfigReferenceTest, DocumentsFindsBacktickedPathsAndLinkedSectionRows) {
  const std::string doc =
      "| key | meaning |\n"
      "|---|---|\n"
      "| `server.shards` | shards |\n"
      "| `event_templates.NAME.*` | see [Event templates](#event-templates) |\n"
      "## Event templates\n"
      "| `key` | the key field |\n"
      "## Aggregations\n"
      "| `dedup_window` | not in the linked section |\n";
  EXPECT_TRUE(Documents(doc, "server.shards"));
  EXPECT_TRUE(Documents(doc, "event_templates.NAME.key"));
  EXPECT_FALSE(Documents(doc, "server.grpc_listen"));
  EXPECT_FALSE(Documents(doc, "event_templates.NAME.dedup_window"));
  EXPECT_FALSE(Documents(doc, "aggregations.NAME.key"));
}

TEST(ConfigReferenceTest, ConfigurationMdDocumentsEveryKey) {
  const std::string path = ::ods::testing::SourceDir() + "/docs/configuration.md";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "cannot read " << path;
  std::ostringstream doc;
  doc << in.rdbuf();
  EXPECT_THAT(Undocumented(doc.str()), IsEmpty())
      << "document these keys in docs/configuration.md (as `full.path` in the Keys table, or as "
         "a | `key` | row of the section a `PREFIX.*` row links to)";
}

}  // namespace
}  // namespace ods::config
