#include "sandbox/lua_function.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <lua.hpp>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/common/units.h"
#include "ods/record/value.h"
#include "ods/sandbox/sandbox.h"
#include "sandbox/allow_list.h"
#include "sandbox/budget.h"
#include "sandbox/state_codec.h"

// Functions that Lua calls (allocator, hook, message handler, trampolines) may be unwound by a
// Lua error (longjmp): they keep only trivially destructible locals, so no destructor is skipped.
// Everything that allocates Lua memory runs inside lua_pcall; outside it, only raw reads.
namespace ods::sandbox {
namespace {

// Count hook period: the precision of the instruction budget and how often the clock is read.
constexpr uint64_t kHookIntervalInstructions = 1000;
// Registry key (by address) of the compiled chunk.
const char kChunkKey = 0;
// Lua error text is quoted into Status messages up to this many bytes.
constexpr size_t kMaxLuaMessageBytes = 256;

// lua_Alloc that counts bytes and refuses growth past budget.bytes_limit. Shrinking never fails.
// Small blocks come from and go back to budget.blocks; larger ones are plain malloc blocks.
void* Allocate(void* ud, void* ptr, size_t old_size, size_t new_size) {
  Budget& budget = *static_cast<Budget*>(ud);
  const uint64_t old_bytes = ptr != nullptr ? old_size : 0;
  auto release = [&budget](void* block, size_t bytes) {
    if (BlockCache::Small(bytes)) {
      budget.blocks.Give(block, bytes);
    } else {
      std::free(block);
    }
  };
  if (new_size == 0) {
    if (ptr != nullptr) release(ptr, old_bytes);
    budget.bytes_in_use -= old_bytes;
    return nullptr;
  }
  if (new_size > old_bytes && (budget.bytes_in_use >= budget.bytes_limit ||
                               new_size - old_bytes > budget.bytes_limit - budget.bytes_in_use)) {
    return nullptr;
  }
  void* block = nullptr;
  if (ptr != nullptr && BlockCache::Small(old_bytes) && BlockCache::Small(new_size) &&
      BlockCache::ClassOf(old_bytes) == BlockCache::ClassOf(new_size)) {
    block = ptr;  // fits the block it has
  } else if (ptr != nullptr && !BlockCache::Small(old_bytes) && !BlockCache::Small(new_size)) {
    block = std::realloc(ptr, new_size);
  } else {
    block = BlockCache::Small(new_size) ? budget.blocks.Take(new_size) : std::malloc(new_size);
    if (block != nullptr && ptr != nullptr) {
      std::memcpy(block, ptr, std::min<size_t>(old_bytes, new_size));
      release(ptr, old_bytes);
    }
  }
  if (block == nullptr) {
    if (ptr != nullptr && new_size <= old_bytes) {
      return ptr;  // keep the larger block (and its count); Lua assumes shrinking succeeds
    }
    return nullptr;
  }
  budget.bytes_in_use = budget.bytes_in_use - old_bytes + new_size;
  return block;
}

// Count hook: charges the interval, checks the instruction and wall-clock budgets, and raises
// while any budget of this run is spent (so an error caught by Lua comes back at once).
void CountHook(lua_State* L, lua_Debug* ar) {
  Budget& budget = GetBudget(L);
  budget.instructions_used += static_cast<uint64_t>(budget.hook_interval);
  if (budget.trip == Trip::kNone) {
    if (budget.instructions_used >= budget.instruction_limit) {
      budget.trip = Trip::kInstructions;
    } else if (budget.clock->NowMicros() - budget.start_micros > budget.wall_limit_micros) {
      budget.trip = Trip::kWallTime;
    }
    if (budget.trip != Trip::kNone && lua_getinfo(L, "l", ar) != 0) {
      budget.trip_line = ar->currentline;
    }
  }
  if (budget.trip != Trip::kNone) {
    lua_pushliteral(L, "budget exhausted");
    lua_error(L);
  }
}

// Message handler of every run: notes the innermost Lua line for errors that carry none.
int MessageHandler(lua_State* L) {
  Budget& budget = GetBudget(L);
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar) != 0; ++level) {
    if (lua_getinfo(L, "l", &ar) != 0 && ar.currentline > 0) {
      budget.error_line = ar.currentline;
      break;
    }
  }
  return 1;
}

struct CompileArgs {
  std::string_view source;
  const char* chunk_name;
  bool syntax_error = false;
};

const char* ReadWhole(lua_State*, void* data, size_t* size) {
  auto* remaining = static_cast<std::string_view*>(data);
  *size = remaining->size();
  const char* text = remaining->data();
  *remaining = {};
  return *size == 0 ? nullptr : text;
}

// Compiles the source (mode "t": a binary chunk is refused) into registry[&kChunkKey].
int CompileTrampoline(lua_State* L) {
  auto* args = static_cast<CompileArgs*>(lua_touserdata(L, 1));
  std::string_view remaining = args->source;
  const int status = lua_load(L, ReadWhole, &remaining, args->chunk_name, "t");
  if (status != LUA_OK) {
    args->syntax_error = status == LUA_ERRSYNTAX;
    return lua_error(L);
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kChunkKey);
  return 0;
}

struct CallArgs {
  int env_slots = 4;       // PushFreshEnvironment's `globals`
  int* globals_defined = nullptr;  // set: receives how many globals the chunk defined
  std::string_view entry;  // empty: run the chunk only
  std::span<const record::Value> args;
  bool entry_missing = false;
  // Procedure calls: entry(record or nil, args table, key). Derived calls: entry(named_args
  // table, key).
  bool procedure = false;
  bool derived = false;
  std::string_view key;
  const std::vector<record::Field>* record = nullptr;
  std::span<const record::Field> named_args;
  // Entry checks (entry empty): names the chunk must define as global functions.
  std::span<const std::string_view> required;
  std::vector<std::string_view>* missing = nullptr;
};

void PushValue(lua_State* L, const record::Value& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) {
    lua_pushinteger(L, *i);
  } else if (const auto* d = std::get_if<double>(&value)) {
    lua_pushnumber(L, *d);
  } else if (const auto* b = std::get_if<bool>(&value)) {
    lua_pushboolean(L, *b ? 1 : 0);
  } else if (const auto* s = std::get_if<std::string>(&value)) {
    lua_pushlstring(L, s->data(), s->size());
  } else if (const auto* bytes = std::get_if<record::Bytes>(&value)) {
    lua_pushlstring(L, bytes->data.data(), bytes->data.size());
  } else if (const auto* t = std::get_if<record::Timestamp>(&value)) {
    lua_pushinteger(L, t->micros);
  } else if (const auto* v = std::get_if<std::vector<float>>(&value)) {
    const int n = static_cast<int>(std::min<size_t>(v->size(), std::numeric_limits<int>::max()));
    lua_createtable(L, n, 0);
    for (int k = 0; k < n; ++k) {
      lua_pushnumber(L, static_cast<lua_Number>((*v)[k]));
      lua_rawseti(L, -2, k + 1);
    }
  }
}

// Pushes a table of field name -> value.
void PushFields(lua_State* L, std::span<const record::Field> fields) {
  lua_createtable(L, 0, static_cast<int>(std::min<size_t>(fields.size(), 1 << 20)));
  for (const record::Field& field : fields) {
    lua_pushlstring(L, field.name.data(), field.name.size());
    PushValue(L, field.value);
    lua_rawset(L, -3);
  }
}

// Runs the chunk in a fresh environment (new globals, new upvalues), then the entry with the
// arguments. Returns the entry's results.
int CallTrampoline(lua_State* L) {
  auto* call = static_cast<CallArgs*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  PushFreshEnvironment(L, call->env_slots);  // 1
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kChunkKey);
  lua_pushvalue(L, 1);
  lua_setupvalue(L, -2, 1);  // a main chunk's only upvalue is _ENV
  lua_call(L, 0, 0);
  if (call->globals_defined != nullptr) {
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
      ++n;
      lua_pop(L, 1);
    }
    *call->globals_defined = n - 1;  // not _G
  }
  if (call->entry.empty()) {
    for (std::string_view name : call->required) {
      lua_pushlstring(L, name.data(), name.size());
      if (lua_rawget(L, 1) != LUA_TFUNCTION) {
        call->missing->push_back(name);
      }
      lua_pop(L, 1);
    }
    return 0;
  }
  lua_pushlstring(L, call->entry.data(), call->entry.size());
  if (lua_rawget(L, 1) != LUA_TFUNCTION) {
    call->entry_missing = true;
    return 0;
  }
  if (call->derived) {
    PushFields(L, call->named_args);
    lua_pushlstring(L, call->key.data(), call->key.size());
    lua_call(L, 2, LUA_MULTRET);
    return lua_gettop(L) - 1;
  }
  if (call->procedure) {
    if (call->record == nullptr) {
      lua_pushnil(L);
    } else {
      PushFields(L, *call->record);
    }
    PushFields(L, call->named_args);
    lua_pushlstring(L, call->key.data(), call->key.size());
    lua_call(L, 3, LUA_MULTRET);
    return lua_gettop(L) - 1;
  }
  luaL_checkstack(L, static_cast<int>(std::min<size_t>(call->args.size(), 1'000'000)) + 1,
                  "too many arguments");
  for (const record::Value& value : call->args) {
    PushValue(L, value);
  }
  lua_call(L, static_cast<int>(call->args.size()), LUA_MULTRET);
  return lua_gettop(L) - 1;
}

struct AggregateArgs {
  int env_slots = 4;                       // PushFreshEnvironment's `globals`
  const AggregatorEvent* event = nullptr;  // set: update; null: finish
  std::string_view state;                  // update: the tile's state; empty = init() first
  std::span<const std::string_view> tiles;  // finish: the window's tile states, oldest first
};

// Pushes global function `name` of the environment at index 1; raises if there is none.
void PushEntry(lua_State* L, const char* name) {
  lua_pushstring(L, name);
  if (lua_rawget(L, 1) != LUA_TFUNCTION) {
    luaL_error(L, "defines no global function '%s'", name);
  }
}

// Aggregator calls in a fresh environment: update(state or init(), event, time), or finalize
// of the tiles merged in order (finalize(init()) for none). Returns the last call's results.
int AggregateTrampoline(lua_State* L) {
  auto* a = static_cast<AggregateArgs*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  PushFreshEnvironment(L, a->env_slots);  // 1
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kChunkKey);
  lua_pushvalue(L, 1);
  lua_setupvalue(L, -2, 1);
  lua_call(L, 0, 0);
  if (a->event != nullptr) {
    PushEntry(L, "update");  // 2
    if (a->state.empty()) {
      PushEntry(L, "init");
      lua_call(L, 0, 1);
    } else {
      PushState(L, a->state);
    }
    const AggregatorEvent& e = *a->event;
    if (e.value != nullptr) {
      PushValue(L, *e.value);
    } else {
      lua_createtable(L, 0, static_cast<int>(std::min<size_t>(e.names.size(), 1 << 10)));
      for (size_t i = 0; i < e.names.size() && i < e.values.size(); ++i) {
        if (e.values[i] == nullptr) continue;
        lua_pushlstring(L, e.names[i].data(), e.names[i].size());
        PushValue(L, *e.values[i]);
        lua_rawset(L, -3);
      }
    }
    lua_pushinteger(L, e.time);
    lua_call(L, 3, LUA_MULTRET);
    return lua_gettop(L) - 1;
  }
  if (a->tiles.empty()) {
    PushEntry(L, "init");
    lua_call(L, 0, 1);  // 2: the accumulator
  } else {
    PushState(L, a->tiles[0]);
    for (size_t i = 1; i < a->tiles.size(); ++i) {
      PushEntry(L, "merge");
      lua_pushvalue(L, 2);
      PushState(L, a->tiles[i]);
      lua_call(L, 2, 1);
      lua_replace(L, 2);
    }
  }
  PushEntry(L, "finalize");
  lua_pushvalue(L, 2);
  lua_call(L, 1, LUA_MULTRET);
  return lua_gettop(L) - 2;
}

// A present Value of type T, built in place (moving a temporary Value into the optional trips
// GCC 12's -Wmaybe-uninitialized under the sanitizers).
template <class T, class... Args>
std::optional<record::Value> Some(Args&&... args) {
  return std::optional<record::Value>(std::in_place, std::in_place_type<T>,
                                      std::forward<Args>(args)...);
}

// Splits Lua's "NAME:LINE: text" into LINE and text when NAME is this chunk's.
std::string_view StripPosition(std::string_view message, std::string_view name, int& line) {
  if (message.size() <= name.size() + 1 || message.substr(0, name.size()) != name ||
      message[name.size()] != ':') {
    return message;
  }
  const char* digits = message.data() + name.size() + 1;
  const char* end = message.data() + message.size();
  int parsed = 0;
  auto [rest, error] = std::from_chars(digits, end, parsed);
  if (error != std::errc() || rest == digits || end - rest < 2 || rest[0] != ':' ||
      rest[1] != ' ') {
    return message;
  }
  line = parsed;
  return std::string_view(rest + 2, static_cast<size_t>(end - rest - 2));
}

}  // namespace

LuaFunction::LuaFunction(std::string_view name, uint32_t version, const Limits& limits,
                         const Clock& clock)
    : name_(name), version_(version), limits_(limits) {
  // Built by append: GCC 12 at -O3 reports a false -Wrestrict on `"=" + std::string(name)`.
  chunk_name_.reserve(name.size() + 1);
  chunk_name_.append("=").append(name);
  budget_.clock = &clock;
  budget_.instruction_limit = limits.instructions;
  budget_.hook_interval =
      static_cast<int>(std::min<uint64_t>(limits.instructions, kHookIntervalInstructions));
  budget_.wall_limit_micros = limits.wall_micros;
}

LuaFunction::~LuaFunction() = default;

Result<std::unique_ptr<LuaFunction>> LuaFunction::Create(std::string_view name, uint32_t version,
                                                         std::string_view source,
                                                         const Limits& limits, const Clock& clock) {
  auto function = std::make_unique<LuaFunction>(name, version, limits, clock);
  ODS_RETURN_IF_ERROR(function->Init(source));
  return function;
}

Status LuaFunction::Init(std::string_view source) {
  lua_State* L = lua_newstate(Allocate, &budget_);
  if (L == nullptr) {
    return ResourceExhaustedError(Prefix(0) + "cannot allocate a Lua state");
  }
  state_.reset(L);
  *static_cast<Budget**>(lua_getextraspace(L)) = &budget_;
  lua_sethook(L, CountHook, LUA_MASKCOUNT, budget_.hook_interval);

  int status = RunProtected(OpenAllowList, nullptr);
  if (status != LUA_OK) {
    Status error = RunError(status, /*at_load=*/true);
    return {StatusCode::kInternal, "cannot set up the sandbox: " + error.message()};
  }
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  // The empty sandbox is not charged to the function: its cap starts here.
  budget_.bytes_limit =
      budget_.bytes_in_use + std::min(limits_.memory_bytes, UINT64_MAX - budget_.bytes_in_use);

  CompileArgs compile{source, chunk_name_.c_str()};
  status = RunProtected(CompileTrampoline, &compile);
  if (status != LUA_OK) {
    if (compile.syntax_error) {
      int line = -1;
      const std::string_view text = StripPosition(lua_tostring(L, -1), name_, line);
      Status error(StatusCode::kInvalidArgument,
                   Prefix(line) + QuoteForMessage(text, kMaxLuaMessageBytes));
      lua_settop(L, 0);
      return error;
    }
    Status error = RunError(status, /*at_load=*/true);
    if (error.code() == StatusCode::kFailedPrecondition || error.code() == StatusCode::kInternal) {
      error = Status(StatusCode::kInvalidArgument, error.message());  // e.g. binary chunk
    }
    lua_settop(L, 0);
    return error;
  }
  lua_settop(L, 0);

  CallArgs call;
  int globals = 0;
  call.globals_defined = &globals;
  status = RunProtected(CallTrampoline, &call);
  if (status != LUA_OK) {
    Status error = RunError(status, /*at_load=*/true);
    lua_settop(L, 0);
    return error;
  }
  env_slots_ = std::clamp(globals, 0, 64);
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  return OkStatus();
}

int LuaFunction::RunProtected(lua_CFunction fn, void* arg) {
  lua_State* L = state_.get();
  budget_.instructions_used = 0;
  budget_.trip = Trip::kNone;
  budget_.trip_line = -1;
  budget_.error_line = -1;
  budget_.start_micros = budget_.clock->NowMicros();
  last_error_kind_ = ErrorKind::kBadReturn;
  lua_settop(L, 0);
  // Pushing C functions and light userdata allocates nothing, so this cannot raise.
  lua_pushcfunction(L, MessageHandler);
  lua_pushcfunction(L, fn);
  lua_pushlightuserdata(L, arg);
  return lua_pcall(L, 1, LUA_MULTRET, 1);
}

std::string LuaFunction::Prefix(int line) const {
  std::string prefix = "function " + name_ + " v" + std::to_string(version_) + ": ";
  if (line > 0) {
    prefix += "line " + std::to_string(line) + ": ";
  }
  return prefix;
}

Status LuaFunction::RunError(int lua_status, bool at_load) {
  lua_State* L = state_.get();
  switch (budget_.trip) {
    case Trip::kInstructions:
      last_error_kind_ = ErrorKind::kInstructions;
      return ResourceExhaustedError(Prefix(budget_.trip_line) + "instruction budget of " +
                                    std::to_string(limits_.instructions) + " exhausted");
    case Trip::kWallTime:
      last_error_kind_ = ErrorKind::kWallTime;
      return {StatusCode::kDeadlineExceeded, Prefix(budget_.trip_line) + "wall-clock budget of " +
                                                 FormatDuration(limits_.wall_micros) + " exceeded"};
    case Trip::kMemory:
      break;
    case Trip::kNone:
      if (!IsMemoryFailure(lua_status)) {
        int line = budget_.error_line;
        std::string text;
        if (lua_type(L, -1) == LUA_TSTRING) {
          text =
              QuoteForMessage(StripPosition(lua_tostring(L, -1), name_, line), kMaxLuaMessageBytes);
        } else {
          text = std::string("error object is a ") + luaL_typename(L, -1) + " value";
        }
        last_error_kind_ = ErrorKind::kRuntime;
        return {at_load ? StatusCode::kInvalidArgument : StatusCode::kFailedPrecondition,
                Prefix(line) + text};
      }
      break;
  }
  // Lua raises allocation failures without running the message handler: no line is known.
  last_error_kind_ = ErrorKind::kMemory;
  return ResourceExhaustedError(Prefix(0) + "memory limit of " + FormatBytes(limits_.memory_bytes) +
                                " exceeded");
}

Result<std::optional<record::Value>> LuaFunction::Call(std::string_view entry,
                                                       std::span<const record::Value> args) {
  lua_State* L = state_.get();
  CallArgs call;
  call.env_slots = env_slots_;
  call.entry = entry;
  call.args = args;
  const int status = RunProtected(CallTrampoline, &call);

  Result<std::optional<record::Value>> result = std::optional<record::Value>();
  if (status != LUA_OK) {
    result = RunError(status, /*at_load=*/false);
  } else if (call.entry_missing) {
    result =
        NotFoundError(Prefix(0) + "defines no global function '" + QuoteForMessage(entry) + "'");
  } else if (const int results = lua_gettop(L) - 1; results > 1) {
    result = FailedPreconditionError(Prefix(0) + "'" + QuoteForMessage(entry) + "' returned " +
                                     std::to_string(results) + " values; expected at most one");
  } else if (results == 1) {
    result = ToValue(2, "'" + QuoteForMessage(entry) + "' returned");
  }
  FinishCall(status);
  return result;
}

Result<std::optional<record::Value>> LuaFunction::CallDerived(std::string_view entry,
                                                              std::span<const record::Field> inputs,
                                                              std::string_view entity) {
  lua_State* L = state_.get();
  CallArgs call;
  call.env_slots = env_slots_;
  call.entry = entry;
  call.derived = true;
  call.named_args = inputs;
  call.key = entity;
  const int status = RunProtected(CallTrampoline, &call);
  Result<std::optional<record::Value>> result = std::optional<record::Value>();
  const std::string quoted = "'" + QuoteForMessage(entry) + "'";
  if (status != LUA_OK) {
    result = RunError(status, /*at_load=*/false);
  } else if (call.entry_missing) {
    result = NotFoundError(Prefix(0) + "defines no global function " + quoted);
  } else if (const int results = lua_gettop(L) - 1; results > 1) {
    result = FailedPreconditionError(Prefix(0) + quoted + " returned " + std::to_string(results) +
                                     " values; expected at most one");
  } else if (results == 1) {
    result = ToValue(2, quoted + " returned");
  }
  FinishCall(status);
  return result;
}

void LuaFunction::FinishCall(int lua_status) {
  lua_State* L = state_.get();
  lua_settop(L, 0);
  // Drop the last environment now rather than at the next call, so it is garbage already.
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kChunkKey);
  lua_pushnil(L);
  lua_setupvalue(L, -2, 1);
  lua_settop(L, 0);
  if (lua_status != LUA_OK) {
    lua_gc(L, LUA_GCCOLLECT);  // a failed run may have filled the cap with garbage
  }
}

Result<ProcedureResult> LuaFunction::CallProcedure(std::string_view entry, std::string_view key,
                                                   const std::vector<record::Field>* record,
                                                   std::span<const record::Field> args) {
  lua_State* L = state_.get();
  CallArgs call;
  call.env_slots = env_slots_;
  call.entry = entry;
  call.procedure = true;
  call.key = key;
  call.record = record;
  call.named_args = args;
  const int status = RunProtected(CallTrampoline, &call);

  Result<ProcedureResult> result = ProcedureResult{};
  const std::string quoted = "'" + QuoteForMessage(entry) + "'";
  if (status != LUA_OK) {
    result = RunError(status, /*at_load=*/false);
  } else if (call.entry_missing) {
    result = NotFoundError(Prefix(0) + "defines no global function " + quoted);
  } else if (const int results = lua_gettop(L) - 1; results > 2) {
    result = FailedPreconditionError(Prefix(0) + quoted + " returned " + std::to_string(results) +
                                     " values; expected at most two (result, new record)");
  } else {
    ProcedureResult out;
    Status error;
    if (results >= 1) {
      Result<std::optional<record::Value>> value = ToValue(2, quoted + " returned");
      if (value.ok()) {
        out.value = std::move(*value);
      } else {
        error = value.status();
      }
    }
    if (error.ok() && results == 2 && lua_type(L, 3) != LUA_TNIL) {
      if (lua_type(L, 3) != LUA_TTABLE) {
        error = FailedPreconditionError(Prefix(0) + quoted + " returned a new record that is a " +
                                        luaL_typename(L, 3) +
                                        "; expected nil (keep the record) or a table of fields");
      } else {
        Result<std::vector<record::Field>> fields = ToFields(3, entry);
        if (fields.ok()) {
          out.record = std::move(*fields);
        } else {
          error = fields.status();
        }
      }
    }
    if (error.ok()) {
      result = std::move(out);
    } else {
      result = error;
    }
  }
  FinishCall(status);
  return result;
}

Status LuaFunction::AggregatorUpdate(std::string& state, const AggregatorEvent& event) {
  lua_State* L = state_.get();
  AggregateArgs args;
  args.env_slots = env_slots_;
  args.event = &event;
  args.state = state;
  const int status = RunProtected(AggregateTrampoline, &args);
  Status result;
  if (status != LUA_OK) {
    result = RunError(status, /*at_load=*/false);
  } else if (const int results = lua_gettop(L) - 1; results != 1) {
    result = FailedPreconditionError(Prefix(0) + "'update' returned " + std::to_string(results) +
                                     " values; expected one, the new state");
  } else {
    scratch_.clear();
    const std::string why = EncodeState(L, 2, scratch_);
    if (why.empty()) {
      state.assign(scratch_);
    } else {
      result = FailedPreconditionError(Prefix(0) + "'update' returned a state that " + why +
                                       "; a state is nil, booleans, numbers, strings and tables "
                                       "of those");
    }
  }
  FinishCall(status);
  return result;
}

Result<std::optional<record::Value>> LuaFunction::AggregatorFinish(
    std::span<const std::string_view> tiles) {
  lua_State* L = state_.get();
  AggregateArgs args;
  args.env_slots = env_slots_;
  args.tiles = tiles;
  const int status = RunProtected(AggregateTrampoline, &args);
  Result<std::optional<record::Value>> result = std::optional<record::Value>();
  if (status != LUA_OK) {
    result = RunError(status, /*at_load=*/false);
  } else if (const int results = lua_gettop(L) - 1; results > 1) {
    result = FailedPreconditionError(Prefix(0) + "'finalize' returned " +
                                     std::to_string(results) + " values; expected at most one");
  } else if (results == 1) {
    result = ToValue(2, "'finalize' returned");
  }
  FinishCall(status);
  return result;
}

Status LuaFunction::CheckEntries(std::span<const std::string_view> entries) {
  std::vector<std::string_view> missing;
  CallArgs call;
  call.env_slots = env_slots_;
  call.required = entries;
  call.missing = &missing;
  const int status = RunProtected(CallTrampoline, &call);
  Status result;
  if (status != LUA_OK) {
    result = RunError(status, /*at_load=*/true);
  } else if (!missing.empty()) {
    std::string names;
    for (std::string_view name : missing) {
      names += (names.empty() ? "'" : ", '") + QuoteForMessage(name) + "'";
    }
    result = InvalidArgumentError(Prefix(0) + "defines no global function " + names);
  }
  FinishCall(status);
  return result;
}

Result<std::vector<record::Field>> LuaFunction::ToFields(int index, std::string_view entry) {
  lua_State* L = state_.get();
  index = lua_absindex(L, index);
  const std::string quoted = "'" + QuoteForMessage(entry) + "'";
  if (lua_checkstack(L, 3) == 0) {
    return FailedPreconditionError(Prefix(0) + quoted + " returned a record too large to convert");
  }
  std::vector<record::Field> fields;
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      const std::string type = luaL_typename(L, -2);
      lua_pop(L, 2);
      return FailedPreconditionError(Prefix(0) + quoted + " returned a new record with a " + type +
                                     " key; expected field names (strings)");
    }
    size_t size = 0;
    const char* name = lua_tolstring(L, -2, &size);
    std::string field_name(name, size);
    Result<std::optional<record::Value>> value = ToValue(
        -1, quoted + " returned a new record whose field '" + QuoteForMessage(field_name) + "' is");
    lua_pop(L, 1);
    if (!value.ok()) {
      lua_pop(L, 1);
      return value.status();
    }
    if (value->has_value()) {
      fields.push_back({std::move(field_name), std::move(**value)});
    }
  }
  return fields;
}

Result<std::optional<record::Value>> LuaFunction::ToValue(int index, std::string_view subject) {
  lua_State* L = state_.get();
  index = lua_absindex(L, index);
  auto bad = [&](std::string_view what) -> Status {
    return FailedPreconditionError(Prefix(0) + std::string(subject) + " " + std::string(what) +
                                   "; expected nil, a number, a boolean, a string or a list of "
                                   "numbers");
  };
  switch (lua_type(L, index)) {
    case LUA_TNIL:
      return std::optional<record::Value>();
    case LUA_TBOOLEAN:
      return Some<bool>(lua_toboolean(L, index) != 0);
    case LUA_TSTRING: {
      size_t size = 0;
      const char* data = lua_tolstring(L, index, &size);
      return Some<std::string>(data, size);
    }
    case LUA_TNUMBER: {
      if (lua_isinteger(L, index) != 0) {
        return Some<int64_t>(lua_tointeger(L, index));
      }
      const double d = lua_tonumber(L, index);
      if (!std::isfinite(d)) {
        return bad("a number that is not finite");
      }
      return Some<double>(d);
    }
    case LUA_TTABLE: {
      const lua_Unsigned n = lua_rawlen(L, index);
      if (n > (uint64_t{1} << 28) || lua_checkstack(L, 2) == 0) {
        return bad("a table too large to convert");
      }
      std::vector<float> list(static_cast<size_t>(n));
      lua_Unsigned entries = 0;
      lua_pushnil(L);
      while (lua_next(L, index) != 0) {
        ++entries;
        const bool key_ok = lua_isinteger(L, -2) != 0 && lua_tointeger(L, -2) >= 1 &&
                            static_cast<lua_Unsigned>(lua_tointeger(L, -2)) <= n;
        if (!key_ok || lua_type(L, -1) != LUA_TNUMBER) {
          lua_pop(L, 2);
          return bad("a table that is not a list of numbers");
        }
        const double d = lua_tonumber(L, -1);
        if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max()) {
          lua_pop(L, 2);
          return bad("a list with a number that is not a finite float");
        }
        list[static_cast<size_t>(lua_tointeger(L, -2) - 1)] = static_cast<float>(d);
        lua_pop(L, 1);
      }
      if (entries != n) {
        return bad("a table that is not a list of numbers");
      }
      return Some<std::vector<float>>(std::move(list));
    }
    default:
      return bad(std::string("a ") + luaL_typename(L, index));
  }
}

}  // namespace ods::sandbox
