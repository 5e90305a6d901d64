#pragma once

#include <cstdint>
#include <lua.hpp>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/record/value.h"
#include "ods/sandbox/sandbox.h"
#include "sandbox/budget.h"

namespace ods::sandbox {

// One loaded function: a Lua state of its own (so the allocator caps exactly this function's
// memory), the compiled chunk, and its Limits. Sandbox's contract (sandbox.h) applies; this class
// implements it. Confined to one thread at a time; never copied or moved (the Lua state points
// at budget_).
class LuaFunction {
 public:
  // Use Create.
  LuaFunction(std::string_view name, uint32_t version, const Limits& limits, const Clock& clock);
  ~LuaFunction();
  LuaFunction(const LuaFunction&) = delete;
  LuaFunction& operator=(const LuaFunction&) = delete;

  // New state, allow-list, compile `source` (text only), run its top level once.
  static Result<std::unique_ptr<LuaFunction>> Create(std::string_view name, uint32_t version,
                                                     std::string_view source, const Limits& limits,
                                                     const Clock& clock);

  Result<std::optional<record::Value>> Call(std::string_view entry,
                                            std::span<const record::Value> args);

  Result<ProcedureResult> CallProcedure(std::string_view entry, std::string_view key,
                                        const std::vector<record::Field>* record,
                                        std::span<const record::Field> args);

  Result<std::optional<record::Value>> CallDerived(std::string_view entry,
                                                   std::span<const record::Field> inputs,
                                                   std::string_view entity);

  Status AggregatorUpdate(std::string& state, const AggregatorEvent& event);

  Result<std::optional<record::Value>> AggregatorFinish(std::span<const std::string_view> tiles);

  Status CheckEntries(std::span<const std::string_view> entries);

  uint64_t memory_in_use() const { return budget_.bytes_in_use; }

  // Why the last run failed: set by RunError for a Lua error or a spent budget; a call that
  // failed without one (its results did not convert) is a bad return.
  ErrorKind last_error_kind() const { return last_error_kind_; }

 private:
  struct LuaCloser {
    void operator()(lua_State* L) const { lua_close(L); }
  };

  Status Init(std::string_view source);
  // Resets the per-run budget and runs `fn(arg)` through lua_pcall with the message handler at
  // stack index 1; results stay above it. Returns the Lua status.
  int RunProtected(lua_CFunction fn, void* arg);
  // The Status of a failed run (error object on top of the stack). `at_load`: a runtime error is
  // the source's fault (kInvalidArgument) rather than the call's (kFailedPrecondition).
  Status RunError(int lua_status, bool at_load);
  // Converts the value at `index` (raw reads only: raises nothing, runs no Lua). `subject` starts
  // the error message: "'run' returned".
  Result<std::optional<record::Value>> ToValue(int index, std::string_view subject);
  // Converts a table of field name -> value at `index` (raw reads only). `entry` names the entry
  // point in errors.
  Result<std::vector<record::Field>> ToFields(int index, std::string_view entry);
  // Clears the last call's environment and collects garbage after a failed run.
  void FinishCall(int lua_status);
  // "function NAME vVERSION: " plus "line N: " when `line` > 0.
  std::string Prefix(int line) const;

  const std::string name_;
  std::string chunk_name_;  // "=" + name_: Lua's messages then say "NAME:LINE:"
  const uint32_t version_;
  const Limits limits_;
  Budget budget_;
  std::unique_ptr<lua_State, LuaCloser> state_;
  std::string scratch_;  // an encoded state, reused across calls
  int env_slots_ = 4;    // globals the chunk defines (measured at load): a fresh env's size
  ErrorKind last_error_kind_ = ErrorKind::kBadReturn;
};

}  // namespace ods::sandbox
