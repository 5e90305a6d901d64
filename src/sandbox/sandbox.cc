#include "ods/sandbox/sandbox.h"

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/record/value.h"
#include "sandbox/lua_function.h"

namespace ods::sandbox {
namespace {

constexpr size_t kMaxNameBytes = 128;

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    return false;
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

}  // namespace

Sandbox::Sandbox(const Clock& clock) : clock_(clock) {}

Result<LuaFunction*> Sandbox::Find(FunctionId id) const {
  auto it = functions_.find(id.value);
  if (it == functions_.end()) {
    return NotFoundError("no function with id " + std::to_string(id.value));
  }
  return it->second.get();
}

Sandbox::~Sandbox() = default;

Result<FunctionId> Sandbox::Load(std::string_view name, uint32_t version, std::string_view source,
                                 const Limits& limits) {
  if (!IsValidName(name)) {
    return InvalidArgumentError("function name '" + QuoteForMessage(name) +
                                "' must be 1 to 128 characters of A-Z a-z 0-9 _ . -");
  }
  const std::string function = "function " + std::string(name) + " v" + std::to_string(version);
  if (limits.instructions == 0 || limits.memory_bytes == 0 || limits.wall_micros <= 0) {
    return InvalidArgumentError(function +
                                ": limits on instructions, memory and wall time must be positive");
  }
  ODS_ASSIGN_OR_RETURN(std::unique_ptr<LuaFunction> loaded,
                       LuaFunction::Create(name, version, source, limits, clock_));
  const FunctionId id{next_id_++};
  functions_.emplace(id.value, std::move(loaded));
  return id;
}

Status Sandbox::Unload(FunctionId id) {
  if (functions_.erase(id.value) == 0) {
    return NotFoundError("no function with id " + std::to_string(id.value));
  }
  return OkStatus();
}

Result<std::optional<record::Value>> Sandbox::Call(FunctionId id, std::string_view entry,
                                                   std::span<const record::Value> args) {
  ODS_ASSIGN_OR_RETURN(LuaFunction* const function, Find(id));
  if (entry.empty()) {
    return InvalidArgumentError("the entry function name is empty");
  }
  return function->Call(entry, args);
}

Result<ProcedureResult> Sandbox::CallProcedure(FunctionId id, std::string_view entry,
                                               std::string_view key,
                                               const std::vector<record::Field>* record,
                                               std::span<const record::Field> args) {
  ODS_ASSIGN_OR_RETURN(LuaFunction* const function, Find(id));
  if (entry.empty()) {
    return InvalidArgumentError("the entry function name is empty");
  }
  return function->CallProcedure(entry, key, record, args);
}

Result<std::optional<record::Value>> Sandbox::CallDerived(FunctionId id, std::string_view entry,
                                                          std::span<const record::Field> inputs,
                                                          std::string_view entity) {
  ODS_ASSIGN_OR_RETURN(LuaFunction* const function, Find(id));
  if (entry.empty()) {
    return InvalidArgumentError("the entry function name is empty");
  }
  return function->CallDerived(entry, inputs, entity);
}

Status Sandbox::AggregatorUpdate(FunctionId id, std::string& state,
                                 const AggregatorEvent& event) {
  ODS_ASSIGN_OR_RETURN(LuaFunction* const function, Find(id));
  return function->AggregatorUpdate(state, event);
}

Result<std::optional<record::Value>> Sandbox::AggregatorFinish(
    FunctionId id, std::span<const std::string_view> tiles) {
  ODS_ASSIGN_OR_RETURN(LuaFunction* const function, Find(id));
  return function->AggregatorFinish(tiles);
}

Status Sandbox::CheckEntries(FunctionId id, std::span<const std::string_view> entries) {
  ODS_ASSIGN_OR_RETURN(LuaFunction* const function, Find(id));
  return function->CheckEntries(entries);
}

std::string_view ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kRuntime:
      return "runtime";
    case ErrorKind::kInstructions:
      return "instructions";
    case ErrorKind::kWallTime:
      return "wall_time";
    case ErrorKind::kMemory:
      return "memory";
    case ErrorKind::kBadReturn:
      return "bad_return";
    case ErrorKind::kOther:
      break;
  }
  return "other";
}

ErrorKind Sandbox::ErrorKindOf(FunctionId id, const Status& error) const {
  // Unknown id, empty entry name, or no such entry: the caller's mistake, not the function's run.
  if (error.code() == StatusCode::kNotFound || error.code() == StatusCode::kInvalidArgument) {
    return ErrorKind::kOther;
  }
  auto it = functions_.find(id.value);
  return it == functions_.end() ? ErrorKind::kOther : it->second->last_error_kind();
}

Result<uint64_t> Sandbox::MemoryInUse(FunctionId id) const {
  ODS_ASSIGN_OR_RETURN(LuaFunction* const function, Find(id));
  return function->memory_in_use();
}

}  // namespace ods::sandbox
