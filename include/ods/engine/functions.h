#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/status.h"
#include "ods/record/value.h"
#include "ods/sandbox/sandbox.h"

// Types of the function registry and of procedure calls (Engine::RegisterFunction,
// Engine::ListFunctions, Engine::Execute). Reference: docs/architecture.md, "Functions".
namespace ods::engine {

// What a function is for, and so which global Lua functions its source must define:
//   kAggregator  init, update, merge, finalize (a custom aggregation fn; not run yet, #5);
//   kDerived     compute (a feature computed from other features; not run yet, #5);
//   kProcedure   execute(record, args, key) -> result, new record (Engine::Execute).
enum class FunctionKind : uint8_t { kAggregator, kDerived, kProcedure };

// "aggregator", "derived", "procedure".
std::string_view FunctionKindName(FunctionKind kind);
// Inverse of FunctionKindName; nullopt for any other text.
std::optional<FunctionKind> ParseFunctionKind(std::string_view name);
// The global functions a source of `kind` must define, e.g. {"execute"}.
std::vector<std::string_view> FunctionEntries(FunctionKind kind);

// A function to register: from config (`functions:`) or the Admin API.
struct FunctionSpec {
  // Letters, digits and _, starting with a letter or _, at most 64 bytes.
  std::string name;
  FunctionKind kind = FunctionKind::kProcedure;
  // Lua 5.4 source text (binary chunks are refused).
  std::string source;
  sandbox::Limits limits;
  // A new version of an aggregator that aggregations use: true declares that it reads and
  // writes the same state shape as the version it replaces, so their tiles are kept; false
  // rebuilds them from the retained events. Ignored for other kinds and first versions.
  bool keep_state = false;
  // "FILE:LINE:COLUMN" of a config definition: errors then read "FILE:LINE:COLUMN: functions.NAME:
  // ...", like other config errors. Empty for the Admin API.
  std::string position;
};

// One registered version of a function, as listed.
struct FunctionInfo {
  std::string name;
  FunctionKind kind = FunctionKind::kProcedure;
  // 1 for the first registration of the name, +1 for each later one.
  uint32_t version = 0;
  sandbox::Limits limits;
  uint64_t source_bytes = 0;
};

// What a procedure did to one key (Engine::Execute).
struct ExecuteResult {
  // OK, or why this key's record is unchanged (codes in Engine::Execute).
  Status status;
  // The procedure's result; nullopt for nil and on error.
  std::optional<record::Value> value;
  // True if a new record was stored for the key, with `version`.
  bool written = false;
  uint64_t version = 0;
};

struct ExecuteReport {
  // The version of the function that ran (the one in effect when the call started).
  uint32_t function_version = 0;
  // results[i] answers keys[i].
  std::vector<ExecuteResult> results;
};

}  // namespace ods::engine
