// Fuzzes config parsing: config::LoadString and config::LoadDefinitions on arbitrary YAML bytes.
// Either may reject the input (any Status); neither may crash, leak or hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ods/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  ods::Result<ods::config::Config> config = ods::config::LoadString(yaml, "fuzz.yaml");
  ods::Result<ods::config::Definitions> definitions =
      ods::config::LoadDefinitions(yaml, "fuzz.yaml", {});
  if (config.ok() && !config->definitions.event_templates.empty()) {
    // Definitions naming templates declared elsewhere (as ApplyDefinitions does at run time).
    (void)ods::config::LoadDefinitions(yaml, "fuzz.yaml", config->definitions.event_templates);
  }
  return 0;
}
