#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/record/value.h"

// Sandboxed user functions: Lua 5.4 source text run under per-call budgets.
//
// What a function can reach: its own globals and an allow-list of the standard library:
//   string, table, math, utf8 — read-only, shared by all calls; without string.dump and, until
//   pattern matching counts its steps, without string.match/gmatch/gsub (string.find searches
//   plain text only);
//   assert, error, getmetatable, ipairs, next, pairs, pcall, rawequal, rawget, rawlen, rawset,
//   select, setmetatable, tonumber, tostring, type, xpcall, _G, _VERSION.
// Not reachable: io, os, package, require, debug, coroutine, load, loadstring, dofile, loadfile,
// collectgarbage, print, warn, and the string metatable (getmetatable("") is false).
// rawset refuses the read-only library tables; setmetatable refuses a metatable with __gc (a
// finalizer would run outside any call's budget). Library calls whose C work the memory cap does
// not bound (string.find, table.move, table.insert/remove at a position) are charged to the
// instruction budget.
//
// Freshness: every call runs the function's chunk again in a new, empty global table, then calls
// the entry point. Nothing a call does — globals, module-level locals, library tables — is seen by
// a later call; a function cannot keep state across calls.
namespace ods::sandbox {

// Budgets of one function. Checked per call, except memory_bytes, which caps the function's Lua
// state (its compiled code, and whatever a call allocates, live or not yet collected).
struct Limits {
  // Lua VM instructions per call, enforced to within min(instructions, 1000). A library call
  // counts as one, plus a charge for the few whose work is not bounded by memory. Range: >= 1.
  // Default: 1'000'000.
  uint64_t instructions = 1'000'000;
  // Bytes the function's state may allocate beyond the empty sandbox (~16 KiB of standard
  // library, not counted). Range: >= 1. Default: 1 MiB.
  uint64_t memory_bytes = uint64_t{1} << 20;
  // Wall-clock time per call on the Sandbox's Clock, checked with the instruction budget (so a
  // single long C library call is not interrupted). Range: >= 1. Default: 100 ms.
  Micros wall_micros = 100'000;
};

// Names a function loaded into one Sandbox. Ids are never reused within a Sandbox.
struct FunctionId {
  uint64_t value = 0;
  friend bool operator==(FunctionId, FunctionId) = default;
};

class LuaFunction;  // one function's Lua state; private to src/sandbox/

// Why a call of a function failed (Sandbox::ErrorKindOf), for metrics.
enum class ErrorKind : uint8_t {
  kRuntime = 0,   // a Lua error in the call: error(), a bad operation (kFailedPrecondition)
  kInstructions,  // instruction budget exhausted (kResourceExhausted)
  kWallTime,      // wall-clock budget exceeded (kDeadlineExceeded)
  kMemory,        // memory cap reached (kResourceExhausted)
  kBadReturn,     // returned something that cannot be converted (kFailedPrecondition)
  kOther,         // unknown id, empty or missing entry point
};
inline constexpr size_t kErrorKindCount = 6;

// "runtime", "instructions", "wall_time", "memory", "bad_return", "other".
std::string_view ErrorKindName(ErrorKind kind);

// What a procedure call returned (Sandbox::CallProcedure).
struct ProcedureResult {
  // The first return value, converted as Call converts its result; nullopt for nil or nothing.
  std::optional<record::Value> value;
  // The second return value: nullopt when nil or absent (leave the record as it is), else the
  // fields of the table returned, in unspecified order (the record to store in place of the old).
  std::optional<std::vector<record::Field>> record;
};

// One event as an aggregator's update sees it (Sandbox::AggregatorUpdate). Borrowed for the call.
struct AggregatorEvent {
  // The aggregated field's value: update's `event` argument is this value. When null, `event` is
  // a table of names[i] -> *values[i] over the non-null values (the whole event).
  const record::Value* value = nullptr;
  std::span<const std::string> names;
  std::span<const record::Value* const> values;  // parallel to names; null = absent
  // update's `time` argument: the event time in microseconds.
  Micros time = 0;
};

// Holds compiled Lua functions, each in its own Lua state, and calls them under their Limits.
// One Sandbox per shard is the intended use.
//
// Thread-compatible: Load, Unload and Call change the Sandbox and its Lua states, so the owner
// (a shard) serializes them; only the const accessors may run concurrently with each other.
// Lua runs only inside Load and Call, always through lua_pcall; Lua can never abort the process.
//
// Error codes of Load and Call. Messages name the function, its version and the Lua line:
// "function decayed_spend v2: line 3: attempt to ..." (no line for the memory cap: Lua reports
// an allocation failure without a position):
//   kInvalidArgument     bad name or limits, syntax error, bytecode, or an error in the chunk's
//                        top level when Load runs it;
//   kResourceExhausted   instruction budget or memory cap exceeded;
//   kDeadlineExceeded    wall-clock budget exceeded;
//   kFailedPrecondition  runtime error in a call, or a return value that cannot be converted;
//   kNotFound            unknown FunctionId, or the chunk defines no global function `entry`.
// Budget errors cannot be caught by pcall/xpcall inside the function: once a budget is gone the
// call is aborted. After any error the Sandbox, and the failing function, keep working.
class Sandbox {
 public:
  // `clock` must outlive the Sandbox; tests pass a FakeClock.
  explicit Sandbox(const Clock& clock = SystemClock());
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // Compiles `source` (Lua text; a binary chunk is rejected) in a new Lua state and runs its top
  // level once under `limits` to surface errors early. `name` ([A-Za-z0-9_.-], 1 to 128 bytes) and
  // `version` appear in every error message; they need not be unique. Costs one Lua state
  // (~16 KiB plus the compiled code) until Unload.
  Result<FunctionId> Load(std::string_view name, uint32_t version, std::string_view source,
                          const Limits& limits);

  // Frees the function's state. kNotFound if `id` is not loaded.
  Status Unload(FunctionId id);

  // Runs the function's chunk in a fresh global table, then calls its global function `entry`
  // with `args` and returns its result. Arguments map to Lua as: int64 -> integer, double ->
  // float, bool -> boolean, string and bytes -> string, timestamp -> integer microseconds,
  // float vector -> sequence table of floats. Results map back as: nil or nothing -> nullopt,
  // integer -> int64, float -> double (finite), boolean -> bool, string -> string, a sequence of
  // numbers (including {}) -> float vector (each finite as float). Anything else, or more than
  // one value, is kFailedPrecondition. Cost: ~1 us plus the chunk's top level and the entry's work.
  Result<std::optional<record::Value>> Call(FunctionId id, std::string_view entry,
                                            std::span<const record::Value> args);

  // Runs the chunk in a fresh global table, then calls `entry(record, args, key)` where `record` is
  // a table of field name -> value (nil when `record` is nullptr), `args` a table of name -> value
  // (always a table, maybe empty) and `key` a string; values map to Lua as in Call. The entry may
  // return up to two values: a result (converted as Call converts its result) and a new record
  // (nil, or a table of string field names to values convertible as a result: the record to
  // store). Errors as Call; a second value that is neither nil nor such a table, or a third value,
  // is kFailedPrecondition naming the field at fault. The record and args tables count against
  // the memory cap. Cost: ~1 us plus ~0.1 us per field, plus the entry's work.
  Result<ProcedureResult> CallProcedure(FunctionId id, std::string_view entry, std::string_view key,
                                        const std::vector<record::Field>* record,
                                        std::span<const record::Field> args);

  // Derived features: runs the chunk in a fresh global table, then `entry(inputs, entity)` where
  // `inputs` is a table of feature ref -> value (absent refs are nil) and `entity` a string. The
  // result converts as Call's. Errors as Call. Cost: ~0.5 us plus ~0.1 us per input.
  Result<std::optional<record::Value>> CallDerived(FunctionId id, std::string_view entry,
                                                   std::span<const record::Field> inputs,
                                                   std::string_view entity);

  // --- Aggregators: functions that define init(), update(state, event, time) -> state,
  // merge(a, b) -> state and finalize(state) -> value. A state lives outside Lua between calls as
  // opaque bytes: a Lua value of nil, booleans, numbers, strings and tables of those (string,
  // number or boolean keys), nested at most 16 deep, at most 64 KiB encoded; a state holding
  // anything else (a function, say) is kFailedPrecondition naming where ("holds a function at
  // state.cb"). Each call below runs the chunk in a fresh global table once, under one budget.

  // Folds one event into a tile's state: `state` empty means a new tile, whose state starts as
  // init(); then state = update(state, event, time). On success `state` holds the new state; on
  // error it is unchanged. Errors as Call. Cost: ~1-2 us plus decoding and encoding the state.
  Status AggregatorUpdate(FunctionId id, std::string& state, const AggregatorEvent& event);

  // The value of a window from its tiles' states in ascending time order: acc = tiles[0], then
  // acc = merge(acc, tiles[i]) for each later tile, then finalize(acc), converted as Call
  // converts a result; with no tiles, finalize(init()). Errors as Call.
  Result<std::optional<record::Value>> AggregatorFinish(FunctionId id,
                                                        std::span<const std::string_view> tiles);

  // Runs the chunk once in a fresh global table (under the function's budgets) and checks that it
  // defines each of `entries` as a global function. kInvalidArgument naming the missing ones
  // ("function f v2: defines no global function 'merge'"); budget and runtime errors of the top
  // level as in Load; kNotFound for an unknown id.
  Status CheckEntries(FunctionId id, std::span<const std::string_view> entries);

  // Bytes the function's Lua state holds now, including garbage not yet collected (counted
  // against Limits::memory_bytes beyond the empty-sandbox baseline). kNotFound if not loaded.
  Result<uint64_t> MemoryInUse(FunctionId id) const;

  // Why the last call of `id` (Call, CallProcedure, CallDerived, AggregatorUpdate,
  // AggregatorFinish) failed with `error`, the status it returned. Meaningful only right after
  // that call, before the next call of `id`. O(1); allocates nothing.
  ErrorKind ErrorKindOf(FunctionId id, const Status& error) const;

  size_t function_count() const { return functions_.size(); }

 private:
  // The loaded function `id`, or kNotFound.
  Result<LuaFunction*> Find(FunctionId id) const;

  const Clock& clock_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<LuaFunction>> functions_;
};

}  // namespace ods::sandbox
