#pragma once

#include <lua.hpp>

namespace ods::sandbox {

// Opens the allowed standard libraries in `L`, builds the allow-list table every function
// environment reads through, and keeps it in the registry. A lua_CFunction: run it through
// lua_pcall (it raises on allocation failure). Pushes nothing.
//
// After it: string.dump is gone, the string metatable is protected (getmetatable("") is false),
// the library tables reachable from Lua are read-only proxies, and pcall/xpcall re-raise any
// error once the run's Budget has tripped.
int OpenAllowList(lua_State* L);

// Pushes a new, empty global table whose reads fall back to the allow-list (through a protected
// metatable) and whose _G is itself, with room for `globals` more entries (what the chunk defines,
// so that running it does not grow the table). Raises on allocation failure: call in protected
// mode only.
void PushFreshEnvironment(lua_State* L, int globals);

}  // namespace ods::sandbox
