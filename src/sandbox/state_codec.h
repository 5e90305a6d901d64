#pragma once

#include <cstddef>
#include <lua.hpp>
#include <string>
#include <string_view>

// The byte form of an aggregator's state (sandbox.h, "Aggregators"): a Lua value of nil,
// booleans, numbers, strings and tables of those, nested at most kMaxStateDepth deep. Private
// to ods_sandbox.
//
// Format, one tag byte per value: 'n' nil, 'f' false, 't' true, 'i' int64 (8 bytes, little
// endian), 'd' double (8 bytes), 's' string (uint32 length + bytes), 'T' table (uint32 entry
// count, then key and value of each entry). Table entries are written in lua_next order, so two
// equal tables may encode differently; decoding either gives an equal table.
namespace ods::sandbox {

constexpr int kMaxStateDepth = 16;
constexpr size_t kMaxStateBytes = size_t{64} << 10;

// Appends the value at `index` to `out` using raw reads only (raises nothing, runs no Lua, no
// metamethods). Returns an empty string on success, else why the value cannot be a state, e.g.
// "holds a function at state.cb" or "is larger than 64 KiB encoded". Needs 3 free stack slots per
// level of nesting; checks for them.
std::string EncodeState(lua_State* L, int index, std::string& out);

// Pushes the value `bytes` encodes. May raise (memory errors; a corrupt encoding raises "corrupt
// aggregator state"): call only inside lua_pcall. Keeps no C++ object alive across a raise.
void PushState(lua_State* L, std::string_view bytes);

}  // namespace ods::sandbox
