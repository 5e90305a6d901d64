#include "sandbox/allow_list.h"

#include <array>
#include <cstdint>
#include <lua.hpp>

#include "sandbox/budget.h"

// Every function here is entered from Lua and may raise (longjmp): they keep only trivially
// destructible locals, so unwinding past them skips no destructor.
namespace ods::sandbox {
namespace {

// Registry key (by address) of the metatable of function environments.
const char kEnvMetatableKey = 0;

constexpr std::array<const char*, 13> kSafeBaseFunctions = {
    "assert", "error",  "getmetatable", "ipairs",   "next",     "pairs", "rawequal",
    "rawget", "rawlen", "select",       "tonumber", "tostring", "type"};

// Raises if the current run's budget is spent: a pcall must not even start then.
void RaiseIfTripped(lua_State* L) {
  if (GetBudget(L).trip != Trip::kNone) {
    lua_pushliteral(L, "budget exhausted");
    lua_error(L);
  }
}

// As lbaselib's finishpcall, except that an error after which the budget is spent (or that is
// itself a memory failure) is raised again instead of returned.
int FinishPcall(lua_State* L, int status, int extra) {
  if (status == LUA_OK) {
    return lua_gettop(L) - extra;
  }
  Budget& budget = GetBudget(L);
  if (budget.trip == Trip::kNone && IsMemoryFailure(status)) {
    budget.trip = Trip::kMemory;
  }
  if (budget.trip != Trip::kNone) {
    return lua_error(L);
  }
  lua_pushboolean(L, 0);
  lua_pushvalue(L, -2);
  return 2;
}

int SafePcall(lua_State* L) {
  luaL_checkany(L, 1);
  RaiseIfTripped(L);
  lua_pushboolean(L, 1);
  lua_insert(L, 1);
  const int status = lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 0);
  return FinishPcall(L, status, 0);
}

// xpcall's message handler, guarded: once the budget is spent the user's handler does not run.
// (An error raised by the count hook reaches the handler while Lua still has hooks disabled, so
// a looping handler would never be stopped.)
int GuardedMessageHandler(lua_State* L) {
  if (GetBudget(L).trip != Trip::kNone) {
    return 1;
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

int SafeXpcall(lua_State* L) {
  const int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  RaiseIfTripped(L);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, GuardedMessageHandler, 1);
  lua_replace(L, 2);
  lua_pushboolean(L, 1);
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2);
  const int status = lua_pcall(L, n - 2, LUA_MULTRET, 2);
  return FinishPcall(L, status, 2);
}

int ReadOnlyNewIndex(lua_State* L) { return luaL_error(L, "attempt to modify a read-only table"); }

// __pairs of a read-only proxy: iterates the library table behind it.
int ReadOnlyPairs(lua_State* L) {
  lua_pushvalue(L, lua_upvalueindex(1));  // next
  lua_pushvalue(L, lua_upvalueindex(2));  // the library table
  lua_pushnil(L);
  return 3;
}

bool IsReadOnly(lua_State* L, int index) {
  if (lua_getmetatable(L, index) == 0) {
    return false;
  }
  lua_pushliteral(L, "__newindex");
  lua_rawget(L, -2);
  const bool read_only = lua_tocfunction(L, -1) == ReadOnlyNewIndex;
  lua_pop(L, 2);
  return read_only;
}

// rawset, refusing the read-only library proxies (whose raw fields would shadow the library).
int SafeRawset(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  luaL_checkany(L, 3);
  if (IsReadOnly(L, 1)) {
    return luaL_error(L, "attempt to modify a read-only table");
  }
  lua_settop(L, 3);
  lua_rawset(L, 1);
  return 1;
}

// setmetatable, refusing __gc: a finalizer would run during some later allocation or at close,
// outside the budgets of the call that set it.
int SafeSetmetatable(lua_State* L) {
  const int type = lua_type(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argexpected(L, type == LUA_TNIL || type == LUA_TTABLE, 2, "nil or table");
  if (type == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    const bool has_gc = lua_rawget(L, 2) != LUA_TNIL;
    lua_pop(L, 1);
    if (has_gc) {
      return luaL_error(L, "__gc metamethods are not allowed in the sandbox");
    }
  }
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL) {
    return luaL_error(L, "cannot change a protected metatable");
  }
  lua_settop(L, 2);
  lua_setmetatable(L, 1);
  return 1;
}

// Library functions whose work in C is not bounded by the memory cap get it charged to the
// instruction budget (the count hook sees only VM instructions, so one such call could otherwise
// run for hours). Charges `units` and raises once the budget is spent.
void Charge(lua_State* L, uint64_t units) {
  Budget& budget = GetBudget(L);
  budget.instructions_used =
      units > UINT64_MAX - budget.instructions_used ? UINT64_MAX : budget.instructions_used + units;
  if (budget.trip == Trip::kNone && budget.instructions_used >= budget.instruction_limit) {
    budget.trip = Trip::kInstructions;
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) != 0 && lua_getinfo(L, "l", &ar) != 0) {
      budget.trip_line = ar.currentline;
    }
  }
  RaiseIfTripped(L);
}

// Calls the wrapped library function (upvalue 1) with this call's arguments.
int CallWrapped(lua_State* L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

// string.rep: n copies of an empty string would loop n times (up to 2^63) producing nothing;
// any other result is linear in its size, which the memory cap bounds.
int StringRep(lua_State* L) {
  size_t length = 0;
  size_t separator_length = 0;
  luaL_checklstring(L, 1, &length);
  luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &separator_length);
  if (length + separator_length == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  return CallWrapped(L);
}

// string.find: plain search only (a Lua pattern can backtrack exponentially inside one C call),
// charged one instruction per 1000 byte comparisons of its worst case.
// TODO(#5): a matcher that counts its steps against the budget, to allow patterns again.
int StringFind(lua_State* L) {
  size_t subject_length = 0;
  size_t pattern_length = 0;
  luaL_checklstring(L, 1, &subject_length);
  const char* pattern = luaL_checklstring(L, 2, &pattern_length);
  bool plain = lua_toboolean(L, 4) != 0;
  if (!plain) {
    plain = true;
    for (size_t i = 0; i < pattern_length; ++i) {
      const char c = pattern[i];
      if (c == '^' || c == '$' || c == '*' || c == '+' || c == '?' || c == '.' || c == '(' ||
          c == '[' || c == '%' || c == '-') {
        plain = false;
        break;
      }
    }
  }
  if (!plain) {
    return luaL_error(L,
                      "patterns are not available in the sandbox (use string.find(s, p, 1, true))");
  }
  Charge(L, static_cast<uint64_t>(subject_length) * pattern_length / 1000);
  return CallWrapped(L);
}

// table.move: charged per element moved; a range up to 2^63 needs no memory at all.
int TableMove(lua_State* L) {
  const lua_Integer first = luaL_checkinteger(L, 2);
  const lua_Integer last = luaL_checkinteger(L, 3);
  if (last >= first) {
    Charge(L, static_cast<lua_Unsigned>(last) - static_cast<lua_Unsigned>(first) + 1);
  }
  return CallWrapped(L);
}

// table.insert(t, pos, v) and table.remove(t, pos) shift up to #t elements, and __len may claim
// any length: charged #t. Appending and removing the last element shift nothing.
int ChargeLengthAndCall(lua_State* L) {
  const lua_Integer length = luaL_len(L, 1);
  if (length > 0) {
    Charge(L, static_cast<uint64_t>(length));
  }
  return CallWrapped(L);
}
int TableInsert(lua_State* L) {
  return lua_gettop(L) >= 3 ? ChargeLengthAndCall(L) : CallWrapped(L);
}
int TableRemove(lua_State* L) {
  return lua_gettop(L) >= 2 ? ChargeLengthAndCall(L) : CallWrapped(L);
}

// Replaces lib[name] with `wrapper` closing over the original.
void Wrap(lua_State* L, int lib, const char* name, lua_CFunction wrapper) {
  lua_getfield(L, lib, name);
  lua_pushcclosure(L, wrapper, 1);
  lua_setfield(L, lib, name);
}

// Replaces the table at `lib` with a read-only proxy of it (reads, pairs and method lookups pass
// through; writes raise; its metatable is hidden). `next_fn` is the index of base `next`.
void ReplaceWithReadOnlyProxy(lua_State* L, int lib, int next_fn) {
  lib = lua_absindex(L, lib);
  lua_createtable(L, 0, 0);
  lua_createtable(L, 0, 4);
  lua_pushvalue(L, lib);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, ReadOnlyNewIndex);
  lua_setfield(L, -2, "__newindex");
  lua_pushvalue(L, next_fn);
  lua_pushvalue(L, lib);
  lua_pushcclosure(L, ReadOnlyPairs, 2);
  lua_setfield(L, -2, "__pairs");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_replace(L, lib);
}

}  // namespace

int OpenAllowList(lua_State* L) {
  lua_settop(L, 0);
  luaL_requiref(L, LUA_GNAME, luaopen_base, 0);         // 1: the state's own global table
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);  // 2
  luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 0);   // 3
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 0);   // 4
  luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 0);   // 5
  constexpr int kBase = 1;
  constexpr int kString = 2;
  lua_getfield(L, kBase, "next");  // 6
  constexpr int kNext = 6;

  constexpr int kTable = 3;
  for (const char* name : {"dump", "gmatch", "gsub", "match"}) {
    lua_pushnil(L);
    lua_setfield(L, kString, name);
  }
  Wrap(L, kString, "rep", StringRep);
  Wrap(L, kString, "find", StringFind);
  Wrap(L, kTable, "move", TableMove);
  Wrap(L, kTable, "insert", TableInsert);
  Wrap(L, kTable, "remove", TableRemove);
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 2);

  lua_createtable(L, 0, 24);  // the allow-list
  const int allowed = lua_gettop(L);
  for (const char* name : kSafeBaseFunctions) {
    lua_getfield(L, kBase, name);
    lua_setfield(L, allowed, name);
  }
  lua_getfield(L, kBase, "_VERSION");
  lua_setfield(L, allowed, "_VERSION");
  lua_pushcfunction(L, SafePcall);
  lua_setfield(L, allowed, "pcall");
  lua_pushcfunction(L, SafeXpcall);
  lua_setfield(L, allowed, "xpcall");
  lua_pushcfunction(L, SafeRawset);
  lua_setfield(L, allowed, "rawset");
  lua_pushcfunction(L, SafeSetmetatable);
  lua_setfield(L, allowed, "setmetatable");
  constexpr std::array<const char*, 4> kLibraries = {LUA_STRLIBNAME, LUA_TABLIBNAME,
                                                     LUA_MATHLIBNAME, LUA_UTF8LIBNAME};
  for (int i = 0; i < static_cast<int>(kLibraries.size()); ++i) {
    lua_pushvalue(L, kString + i);
    ReplaceWithReadOnlyProxy(L, -1, kNext);
    lua_setfield(L, allowed, kLibraries[i]);
  }

  lua_createtable(L, 0, 2);  // the environments' metatable
  lua_pushvalue(L, allowed);
  lua_setfield(L, -2, "__index");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kEnvMetatableKey);
  lua_settop(L, 0);
  return 0;
}

void PushFreshEnvironment(lua_State* L, int globals) {
  lua_createtable(L, 0, globals + 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kEnvMetatableKey);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, LUA_GNAME);
}

}  // namespace ods::sandbox
