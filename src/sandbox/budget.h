#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <lua.hpp>
#include <utility>

#include "ods/common/clock.h"

namespace ods::sandbox {

// Which budget ended a run. Once set it stays set until the next run: the count hook and the
// sandbox's pcall/xpcall re-raise, so Lua code cannot catch its way past a spent budget.
enum class Trip : uint8_t { kNone, kInstructions, kWallTime, kMemory };

// Free lists of small blocks by 16-byte size class (1 to 256 bytes) for one Lua state's allocator.
// Every call allocates and frees the same few small objects (its environment, closures, a table
// or two), and glibc's malloc and free cost about a quarter of a short call. Cached blocks are
// ordinary malloc blocks of their class's size, so free() may release any of them; at most
// kMaxCachedBytes are held back. Confined to the state's thread.
class BlockCache {
 public:
  static constexpr size_t kClassBytes = 16;
  static constexpr size_t kMaxSmall = 256;
  static constexpr size_t kMaxCachedBytes = 32 << 10;

  BlockCache() = default;
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;
  ~BlockCache() {
    for (Node*& head : heads_) {
      while (head != nullptr) std::free(std::exchange(head, head->next));
    }
  }

  static bool Small(size_t n) { return n > 0 && n <= kMaxSmall; }
  static size_t ClassOf(size_t n) { return (n - 1) / kClassBytes; }  // n in [1, kMaxSmall]

  // A block of at least n bytes (n small), or null if malloc fails.
  void* Take(size_t n) {
    const size_t c = ClassOf(n);
    if (Node* node = heads_[c]) {
      heads_[c] = node->next;
      cached_bytes_ -= (c + 1) * kClassBytes;
      return node;
    }
    return std::malloc((c + 1) * kClassBytes);
  }
  // Takes back a block that Take returned for a request of n bytes (n small).
  void Give(void* block, size_t n) {
    const size_t c = ClassOf(n);
    const size_t bytes = (c + 1) * kClassBytes;
    if (cached_bytes_ + bytes > kMaxCachedBytes) {
      std::free(block);
      return;
    }
    auto* node = static_cast<Node*>(block);
    node->next = heads_[c];
    heads_[c] = node;
    cached_bytes_ += bytes;
  }

 private:
  struct Node {
    Node* next;
  };
  Node* heads_[kMaxSmall / kClassBytes] = {};
  size_t cached_bytes_ = 0;
};

// Accounting of one function's Lua state, shared by the allocator, the count hook, pcall/xpcall
// and the message handler. Owned by the LuaFunction (stable address); the state's extra space
// points to it. Confined to the thread running the state.
struct Budget {
  // Memory, kept by the allocator over the state's whole life (requested bytes; the class
  // rounding and the cached free blocks of `blocks` are not counted).
  uint64_t bytes_in_use = 0;
  BlockCache blocks;
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
