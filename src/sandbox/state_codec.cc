#include "sandbox/state_codec.h"

#include <cstdint>
#include <cstring>
#include <lua.hpp>
#include <string>
#include <string_view>

namespace ods::sandbox {
namespace {

void PutU32(std::string& out, uint32_t v) {
  char bytes[4];
  std::memcpy(bytes, &v, 4);
  out.append(bytes, 4);
}

template <class T>
void PutFixed(std::string& out, char tag, T v) {
  char bytes[1 + sizeof(T)];
  bytes[0] = tag;
  std::memcpy(bytes + 1, &v, sizeof(T));
  out.append(bytes, sizeof bytes);
}

// How a table key reads in an error path: .name, [3] or [?].
std::string KeyText(lua_State* L, int key) {
  if (lua_type(L, key) == LUA_TSTRING) {
    size_t size = 0;
    const char* s = lua_tolstring(L, key, &size);
    return "." + std::string(s, std::min<size_t>(size, 32));
  }
  if (lua_isinteger(L, key) != 0) return "[" + std::to_string(lua_tointeger(L, key)) + "]";
  return "[?]";
}

// Encodes the value at absolute index `index`; on failure sets `why` and `path` (the location
// below this value, e.g. ".a[2]").
bool Encode(lua_State* L, int index, int depth, std::string& out, std::string& why,
            std::string& path) {
  if (out.size() > kMaxStateBytes) {
    why = "is larger than " + std::to_string(kMaxStateBytes >> 10) + " KiB encoded";
    return false;
  }
  switch (lua_type(L, index)) {
    case LUA_TNIL:
      out.push_back('n');
      return true;
    case LUA_TBOOLEAN:
      out.push_back(lua_toboolean(L, index) != 0 ? 't' : 'f');
      return true;
    case LUA_TNUMBER:
      if (lua_isinteger(L, index) != 0) {
        PutFixed<int64_t>(out, 'i', lua_tointeger(L, index));
      } else {
        PutFixed<double>(out, 'd', lua_tonumber(L, index));
      }
      return true;
    case LUA_TSTRING: {
      size_t size = 0;
      const char* s = lua_tolstring(L, index, &size);
      if (size > kMaxStateBytes) {
        why = "is larger than " + std::to_string(kMaxStateBytes >> 10) + " KiB encoded";
        return false;
      }
      out.push_back('s');
      PutU32(out, static_cast<uint32_t>(size));
      out.append(s, size);
      return true;
    }
    case LUA_TTABLE: {
      if (depth >= kMaxStateDepth) {
        why = "nests tables more than " + std::to_string(kMaxStateDepth) + " deep";
        return false;
      }
      if (lua_checkstack(L, 3) == 0) {
        why = "is too large to convert";
        return false;
      }
      out.push_back('T');
      const size_t count_at = out.size();
      PutU32(out, 0);
      uint32_t count = 0;
      lua_pushnil(L);
      while (lua_next(L, index) != 0) {
        const int key = lua_gettop(L) - 1;
        const int type = lua_type(L, key);
        if (type != LUA_TSTRING && type != LUA_TNUMBER && type != LUA_TBOOLEAN) {
          why = std::string("has a ") + lua_typename(L, type) + " key";
          path = "";
          lua_pop(L, 2);
          return false;
        }
        if (!Encode(L, key, depth + 1, out, why, path) ||
            !Encode(L, key + 1, depth + 1, out, why, path)) {
          path = KeyText(L, key) + path;
          lua_pop(L, 2);
          return false;
        }
        ++count;
        lua_pop(L, 1);
      }
      std::memcpy(out.data() + count_at, &count, 4);
      return true;
    }
    default:
      why = std::string("holds a ") + lua_typename(L, lua_type(L, index));
      return false;
  }
}

// Reads one value at `at` (advanced past it) and pushes it. Raises on a corrupt encoding.
void Decode(lua_State* L, const char*& at, const char* end, int depth) {
  auto corrupt = [&]() { luaL_error(L, "corrupt aggregator state"); };
  if (at >= end || depth > kMaxStateDepth) corrupt();
  const char tag = *at++;
  switch (tag) {
    case 'n':
      lua_pushnil(L);
      return;
    case 'f':
    case 't':
      lua_pushboolean(L, tag == 't' ? 1 : 0);
      return;
    case 'i':
    case 'd': {
      if (end - at < 8) corrupt();
      if (tag == 'i') {
        int64_t v;
        std::memcpy(&v, at, 8);
        lua_pushinteger(L, v);
      } else {
        double v;
        std::memcpy(&v, at, 8);
        lua_pushnumber(L, v);
      }
      at += 8;
      return;
    }
    case 's': {
      uint32_t size;
      if (end - at < 4) corrupt();
      std::memcpy(&size, at, 4);
      at += 4;
      if (static_cast<size_t>(end - at) < size) corrupt();
      lua_pushlstring(L, at, size);
      at += size;
      return;
    }
    case 'T': {
      uint32_t count;
      if (end - at < 4) corrupt();
      std::memcpy(&count, at, 4);
      at += 4;
      luaL_checkstack(L, 3, "aggregator state");
      lua_createtable(L, 0, static_cast<int>(count < 64 ? count : 64));
      for (uint32_t i = 0; i < count; ++i) {
        Decode(L, at, end, depth + 1);
        Decode(L, at, end, depth + 1);
        if (lua_isnil(L, -2)) corrupt();
        lua_rawset(L, -3);
      }
      return;
    }
    default:
      corrupt();
  }
}

}  // namespace

std::string EncodeState(lua_State* L, int index, std::string& out) {
  std::string why;
  std::string path;
  if (Encode(L, lua_absindex(L, index), 0, out, why, path)) {
    if (out.size() <= kMaxStateBytes) return "";
    why = "is larger than " + std::to_string(kMaxStateBytes >> 10) + " KiB encoded";
  }
  return why + (path.empty() ? "" : " at state" + path);
}

void PushState(lua_State* L, std::string_view bytes) {
  const char* at = bytes.data();
  const char* end = at + bytes.size();
  Decode(L, at, end, 0);
  if (at != end) luaL_error(L, "corrupt aggregator state");
}

}  // namespace ods::sandbox
