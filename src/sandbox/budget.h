#pragma once

#include <cstdint>
#include <lua.hpp>

#include "ods/common/clock.h"

namespace ods::sandbox {

// Which budget ended a run. Once set it stays set until the next run: the count hook and the
// sandbox's pcall/xpcall re-raise, so Lua code cannot catch its way past a spent budget.
enum class Trip : uint8_t { kNone, kInstructions, kWallTime, kMemory };

// Accounting of one function's Lua state, shared by the allocator, the count hook, pcall/xpcall
// and the message handler. Owned by the LuaFunction (stable address); the state's extra space
// points to it. Confined to the thread running the state.
struct Budget {
  // Memory, kept by the allocator over the state's whole life.
  uint64_t bytes_in_use = 0;
  uint64_t bytes_limit = UINT64_MAX;
  // Reset at the start of each run (LuaFunction::RunProtected).
  const Clock* clock = nullptr;
  uint64_t instruction_limit = 0;
  uint64_t instructions_used = 0;
  int hook_interval = 1;  // instructions between two calls of the count hook
  Micros wall_limit_micros = 0;
  Micros start_micros = 0;
  Trip trip = Trip::kNone;
  int trip_line = -1;   // Lua line where the budget ran out; -1 if unknown
  int error_line = -1;  // innermost Lua line when the error reached the message handler
};

inline Budget& GetBudget(lua_State* L) { return **static_cast<Budget**>(lua_getextraspace(L)); }

// True if a run ending in `status` failed for lack of memory. Lua 5.4 raises every allocation
// failure as LUA_ERRMEM, including lauxlib's buffers (lua_error turns its "not enough memory"
// message into LUA_ERRMEM), so Lua code calling error("not enough memory") is treated alike.
inline bool IsMemoryFailure(int status) { return status == LUA_ERRMEM; }

}  // namespace ods::sandbox
