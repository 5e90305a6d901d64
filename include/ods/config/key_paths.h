#pragma once

#include <string>
#include <vector>

namespace ods::config {

// Every key path a config file accepts (config::Load), dotted, with NAME standing for a name the
// user chooses: "server.grpc_listen", "tables.NAME.ttl", "functions.NAME.limits.wall_time".
// Only leaves are listed: a key whose value is a mapping of fixed keys ("server.tls",
// "storage.ram") is not, its keys are; a key whose value is a mapping of user-chosen names
// ("tables.NAME.fields", "features.NAME.inputs") is. Sorted, no duplicates. Comes from the same
// lists the parser checks keys against, so a key the parser accepts is always here; for tests
// and tools (docs/configuration.md must mention each). Thread-safe; allocates the result.
std::vector<std::string> KnownKeyPaths();

}  // namespace ods::config
