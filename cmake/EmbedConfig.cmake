# Writes OUTPUT, a C++ file defining ods::config::EmbeddedDefaultYaml() from the text of INPUT.
file(READ ${INPUT} text)
set(delim "ODS_YAML_")
file(WRITE ${OUTPUT}
  "// Generated from config/odsd.yaml by cmake/EmbedConfig.cmake. Do not edit.\n"
  "#include \"ods/config/config.h\"\n"
  "namespace ods::config {\n"
  "std::string_view EmbeddedDefaultYaml() {\n"
  "  static constexpr char kText[] = R\"${delim}(${text})${delim}\";\n"
  "  return {kText, sizeof(kText) - 1};\n"
  "}\n"
  "}  // namespace ods::config\n")
