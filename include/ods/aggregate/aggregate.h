#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ods/common/clock.h"
#include "ods/common/status.h"
#include "ods/common/value_type.h"
#include "ods/record/value.h"

// Windowed aggregations over event streams, kept as time tiles (partial aggregates).
//
// Window semantics (the contract online and historical reads share): a window of length W with
// tile size G (G divides W), read as of time t, covers the events whose event time lies in
//   [AlignDown(t, G) + G - W, t]
// i.e. the W/G tiles ending with the tile that holds t, cut at t. The start edge moves in steps
// of G, so G bounds the window's precision at its old end. Within a tile, events are folded in
// arrival order; tiles are merged in time order. Computing from raw events (ComputeAsOf) folds
// the same events in the same order, so online and point-in-time values are bit-identical.
namespace ods::aggregate {

enum class Fn : uint8_t {
  kCount,          // events in the window: int64; 0 for an empty window
  kSum,            // int64 input -> int64 (wraps on overflow); double input -> double; 0 if empty
  kMin,            // smallest value (int64, double, timestamp or string, byte order); none if empty
  kMax,            // largest value, as kMin
  kMean,           // arithmetic mean (int64 or double input) as double; none if empty
  kStddev,         // population standard deviation as double; none if empty, 0 for one event
  kFirst,          // value of the earliest event (ties: first to arrive); any type; none if empty
  kLast,           // value of the latest event (ties: last to arrive); any type; none if empty
  kLastN,          // values of the n latest events, newest first (ties: later arrival first)
  kDistinctCount,  // distinct values (HyperLogLog, ~0.8% standard error): int64; 0 if empty
  kTopK,           // the k most frequent values, most frequent first (ties: smaller value first)
};

// "count", "sum", "min", "max", "mean", "stddev", "first", "last", "last_n", "distinct_count",
// "top_k".
std::string_view FnName(Fn fn);
// Inverse of FnName; nullopt for any other text.
std::optional<Fn> ParseFn(std::string_view name);
// "count, sum, ..., top_k": for error messages.
std::string_view FnNameList();

// True for every fn but kCount (which counts events and reads no field).
bool NeedsField(Fn fn);
// True for kLastN (n) and kTopK (k).
bool NeedsN(Fn fn);
// OkStatus if `fn` can aggregate a field of `type`; else kInvalidArgument saying which types it
// accepts. sum/mean/stddev: int64, double. min/max: int64, double, timestamp, string.
// distinct_count/top_k: int64, bool, string, bytes, timestamp. first/last/last_n: any type.
Status CheckInputType(Fn fn, ValueType type);

// Largest n of last_n and k of top_k.
constexpr uint32_t kMaxN = 1000;
// Most tiles one window may span (W / G).
constexpr int64_t kMaxTilesPerWindow = 100'000;

// The default tile size for a window (a whole number of seconds): the largest of 1d, 1h, 1m, 1s
// that divides it into at least 24 tiles, else the largest of those that divides it. Examples:
// 1h -> 1m, 24h -> 1h, 7d -> 1h, 30d -> 1d, 365d -> 1d, 10s -> 1s. So old time is held only in
// the coarse tiles of long windows, and recent time is kept fine for short ones. A window that is
// not a whole number of seconds gets itself (one tile); a non-positive one is returned as is.
Micros DefaultTileFor(Micros window_micros);

// One aggregation: what to compute and over which windows. Immutable once built; shared by all
// entity states of the aggregation (they do not copy it).
struct Spec {
  Fn fn = Fn::kCount;
  ValueType input_type = ValueType::kInt64;  // type of the aggregated field; unused by kCount
  uint32_t n = 0;                            // last_n's n, top_k's k: [1, kMaxN]; else 0
  std::vector<Micros> windows;               // each > 0, in the order the definition names them
  std::vector<Micros> tiles;                 // tiles[i]: tile size of windows[i], divides it
};

// OkStatus if `spec` is usable (fn/type/n as documented, windows non-empty, each tile divides
// its window, at most kMaxTilesPerWindow tiles); else kInvalidArgument saying what is wrong.
Status Validate(const Spec& spec);

// The value of an aggregation over one window: nothing (std::monostate: no value defined, e.g.
// min of an empty window), a scalar, or a list (last_n, top_k).
using Output = std::variant<std::monostate, record::Value, std::vector<record::Value>>;

// One aggregation of a group: what it computes and which of an event's values it reads.
struct Member {
  Spec spec;           // passed Validate()
  int32_t field = -1;  // index into an event's values; -1 for kCount (reads no field)
};

// The shape shared by the SeriesGroups of many entities: the members (the aggregations of one
// event template) and how their tiles are laid out. Tiles of the same size share one row
// {tile index, which members are present, each member's partial}, so an event touches one row
// per distinct tile size, not one tile vector per aggregation and tile size.
//
// Immutable after construction; thread-safe. Every SeriesGroup built on a layout must be
// destroyed before it.
class GroupLayout {
 public:
  // At least one member; each spec passed Validate() (else ODS_CHECK may abort).
  explicit GroupLayout(std::vector<Member> members);
  ~GroupLayout();
  GroupLayout(const GroupLayout&) = delete;
  GroupLayout& operator=(const GroupLayout&) = delete;

  size_t size() const { return members_.size(); }
  const Member& member(size_t m) const { return members_[m]; }

  // A 64-bit hash of the members (fn, input type, n, windows, tiles, field, in order), stable
  // across processes, builds and machines: two layouts with equal fingerprints lay out rows
  // alike, so cold rows written under one (SeriesGroup::SplitColdRows) are refused under any
  // other (ColdRows::Decode). O(1), computed at construction.
  uint64_t Fingerprint() const { return fingerprint_; }

  // Member m's windows[window] as of one `now`: its tiles [first, last] (two 64-bit divisions).
  // A reader of many groups of this layout as of one `now` computes it once
  // (SeriesGroup::Query(const WindowAt&, ...)) instead of per group.
  struct WindowAt {
    uint32_t m = 0;
    uint32_t window = 0;
    int64_t first = 0;
    int64_t last = 0;
  };
  WindowAt At(size_t m, size_t window, Micros now) const;

  // Defined and used only inside ods_aggregate.
  struct Slot;
  struct Run;

 private:
  friend class SeriesGroup;
  friend class ColdRows;
  struct WindowSlot {
    uint32_t run = 0;
    uint32_t slot = 0;
  };

  std::vector<Member> members_;
  std::vector<Run> runs_;  // one per distinct tile size (more if over 64 members share one)
  std::vector<std::vector<WindowSlot>> windows_;  // [member][window]: where its tiles live
  // [member][window]: its place among a SeriesGroup's cached answers, -1 if not cached
  // (only distinct_count's, whose merge is a union of sets; the others merge a tile in O(1)).
  std::vector<std::vector<int32_t>> answer_slots_;
  uint32_t answer_count_ = 0;
  uint64_t fingerprint_ = 0;
};

class ColdRows;

// The partial aggregates of one entity for every member of a GroupLayout: per run of the
// layout, the non-empty rows sorted by tile index, each kept only as far back as the longest
// window of its tile size needs.
//
// Thread-compatible: the owning shard serializes access. Borrows the layout (see GroupLayout).
// `now` must not go back between calls: rows dropped as of a later `now` are gone for an
// earlier one.
class SeriesGroup {
 public:
  explicit SeriesGroup(const GroupLayout& layout);
  ~SeriesGroup();
  SeriesGroup(SeriesGroup&& other) noexcept;
  SeriesGroup& operator=(SeriesGroup&& other) noexcept;
  SeriesGroup(const SeriesGroup&) = delete;
  SeriesGroup& operator=(const SeriesGroup&) = delete;

  // Folds one event into the row of each tile size that holds `event_time`, for each member
  // that takes it: kCount takes every event, other fns an event whose value at member.field is
  // non-null and of spec.input_type. `values` are the event's values by field index (each
  // member's field is in range). Starting a new row drops the rows of that tile size that have
  // fallen out of every window as of `now` (until then they cost memory but are never read);
  // an event older than every window is not stored. Events in tiles after the one holding `now`
  // are kept for later queries. O(tile sizes + members) amortized for the newest tile (kTopK,
  // kLastN: plus O(n) / a hash-map update), O(log tiles + tiles) for an older one. Returns the
  // change of MemoryBytes() it made (so owners can keep a running total without walking).
  int64_t Add(Micros event_time, std::span<const record::Value* const> values, Micros now);

  // The value of member `m`'s windows[window] as of `now` (see the window semantics above).
  // O(log tiles + tiles in the window). Events stamped after `now` but inside the tile that
  // holds `now` are included. Once EnableAnswerCache ran, a distinct_count window's answer is
  // kept until the group changes (Add, the cold-row calls below) or the window spans other
  // tiles, so re-reading an unchanged entity costs O(log tiles) instead of a union of its
  // tiles' sets. Query is const but writes that cache: serialize it as Add (thread-compatible).
  Output Query(size_t m, size_t window, Micros now) const;

  // Readies the answer cache of Query if member `m`'s windows[window] uses it: allocates it once
  // per group (24 bytes for each distinct_count window of the layout) and returns the change of
  // MemoryBytes() (0 if already ready or that window is not cached). For an owner about to
  // read; without it Query computes every answer. O(1), O(cached windows) the first time.
  int64_t EnableAnswerCache(size_t m, size_t window);

  // Query over the rows in RAM and the rows of `cold` (null or empty: as above), which must be
  // decoded under this group's layout (ODS_CHECK). Rows are merged in ascending tile index, so
  // while cold and RAM rows of a run have disjoint indices (the contract: the caller restores a
  // cold row before adding a late event to its tile) the answer is, bit for bit, the one before
  // the rows were split off, and ComputeAsOf's. If both hold a row of one index anyway, the cold
  // partial merges before the RAM one; count, int64 sum, min, max, first, last, distinct_count
  // and top_k stay exact, double sum/mean/stddev may differ from the point-in-time value in the
  // last bits, and last_n may list that tile's late events before older ones of the same tile.
  // O(log tiles + tiles in the window) over both; allocates nothing beyond the fn's Finish.
  Output Query(size_t m, size_t window, Micros now, const ColdRows* cold) const;
  // The same for at = layout.At(m, window, now) of this group's layout.
  Output Query(const GroupLayout::WindowAt& at, const ColdRows* cold) const;

  // Moves every row (of every run) whose tile ends at or before `before` ((index + 1) * tile
  // <= before) out of RAM into `out`, which it overwrites with a self-describing blob (format
  // version, the layout's Fingerprint(), per run the rows with their partials; see
  // ColdRows::Decode); `out` is left empty if no row qualifies. Returns the change of
  // MemoryBytes() (<= 0: the row buffers shrink to what remains). Decoding the blob and
  // restoring or querying it gives the same answers as the rows had in RAM. Combine with an
  // older blob through ColdRows::MergeBlobs. O(rows + encoded bytes).
  int64_t SplitColdRows(Micros before, std::string& out);
  // SplitColdRows in two steps, for an owner that stores the blob before it lets the rows go:
  // EncodeColdRows writes the blob SplitColdRows would, changing nothing; DropColdRows removes
  // those rows and returns the change of MemoryBytes(). An owner that encodes again just before
  // dropping, and compares, knows that what it stored is what it drops.
  void EncodeColdRows(Micros before, std::string& out) const;
  int64_t DropColdRows(Micros before);

  // Moves the rows of `cold` (decoded under this layout) back into RAM, the inverse of
  // SplitColdRows, leaving `cold` empty, and returns the change of MemoryBytes() (restored
  // strings, lists and buffers hold no spare capacity, so MemoryBytes() may end below what it
  // was before the split). Refuses, changing nothing, with kFailedPrecondition if a run has a
  // row of the same index in RAM and in `cold` (the rows cannot be merged without changing the
  // order of folds; query them together instead), kInvalidArgument if `cold` is of another
  // layout. Rows past every window stay until Add drops them. O(rows).
  Result<int64_t> RestoreColdRows(ColdRows& cold);

  // Hints the CPU to load the newest rows of each tile size (up to 512 bytes per size), what
  // the next Add or a short window's Query reads; changes nothing. For pipelining many
  // entities. O(runs).
  void Prefetch() const;

  // Heap bytes held (row buffers by capacity, and payloads: strings, last_n lists, sketches,
  // top_k maps), for memory accounting. Excludes sizeof(SeriesGroup) and malloc's overhead.
  // O(rows) for layouts with payload-carrying fns, O(runs) for the others.
  size_t MemoryBytes() const;

 private:
  // The rows of one run: `size` rows of the run's row_bytes each in a buffer of `capacity`.
  struct Rows {
    std::byte* data = nullptr;
    uint32_t size = 0;
    uint32_t capacity = 0;
  };
  static constexpr size_t kInlineRuns = 2;

  Rows& rows(size_t run) { return run < kInlineRuns ? inline_[run] : more_[run - kInlineRuns]; }
  const Rows& rows(size_t run) const {
    return run < kInlineRuns ? inline_[run] : more_[run - kInlineRuns];
  }
  void Release();
  std::vector<size_t> RowsBefore(Micros before) const;
  // Makes every cached answer miss (the rows changed).
  void ForgetAnswers();

  // A cached Query answer: the value of the window over tiles [first, last].
  struct Answer {
    int64_t first = 0;
    int64_t last = std::numeric_limits<int64_t>::min();  // none yet
    int64_t value = 0;
  };

  const GroupLayout* layout_;
  Rows inline_[kInlineRuns];      // runs 0 and 1: most layouts have at most two tile sizes
  std::unique_ptr<Rows[]> more_;  // runs 2.., if the layout has more
  // layout_->answer_count_ answers once EnableAnswerCache ran, else null. Written by Query.
  std::unique_ptr<Answer[]> answers_;
};

// A read-only, decoded copy of rows split off a SeriesGroup (SeriesGroup::SplitColdRows): decode
// a blob once, then answer many queries with SeriesGroup::Query(m, window, now, &cold), or move
// the rows back with RestoreColdRows.
//
// Blob format (all integers LEB128 varints, signed ones zigzag):
//   u8 version (1) | fixed64 LE layout fingerprint | varint runs (= the layout's)
//   | per run: varint rows, then (if rows > 0) the newest row's tile index
//   | per run, per row: tile index (the first; then the step from the previous, >= 1)
//                     | varint present bits | per present slot, its partial (partial_codec.h)
// The empty blob holds no rows.
//
// Owns its partials; borrows the layout, which must outlive it. Thread-compatible: concurrent
// const use (queries) is safe.
class ColdRows {
 public:
  ColdRows() = default;  // no rows
  ~ColdRows();
  ColdRows(ColdRows&& other) noexcept;
  ColdRows& operator=(ColdRows&& other) noexcept;
  ColdRows(const ColdRows&) = delete;
  ColdRows& operator=(const ColdRows&) = delete;

  // Decodes `blob` (written by SplitColdRows or MergeBlobs under `layout`). Errors, all with a
  // message saying what is wrong: kInvalidArgument if the blob was written under another layout
  // (its fingerprint differs: aggregations changed) or in an unknown format version; kDataLoss
  // if it is truncated, has trailing bytes, a row out of order or repeated, a present bit of no
  // member, or a partial that does not decode. Never undefined behaviour on hostile bytes; it
  // allocates at most the decoded rows (each encoded in >= 3 bytes). O(blob bytes + rows).
  static Result<ColdRows> Decode(const GroupLayout& layout, std::string_view blob);

  // One blob of the rows of `older` and `newer` (both under `layout`; either may be empty),
  // for a second split on top of a first, leaving out the rows no window reads as of `now` or
  // later (as Add drops them in RAM), so repeated splits do not pile up dead rows. Errors:
  // Decode's, and kFailedPrecondition if both hold a row of one tile index of one run.
  // O(bytes of both).
  static Result<std::string> MergeBlobs(const GroupLayout& layout, std::string_view older,
                                        std::string_view newer, Micros now);

  // Whether no window of `layout` reads any row of `blob` as of `now` or later (each run's
  // newest row is older than that run's longest window; true for the empty blob), so the
  // caller can delete it: the cold counterpart of Add dropping old rows. Reads only the blob's
  // header. Errors: Decode's for the header. O(runs).
  static Result<bool> BlobExpired(const GroupLayout& layout, std::string_view blob, Micros now);

  bool empty() const { return row_count() == 0; }
  size_t row_count() const;
  // The end (exclusive) of the newest tile held, over all runs; the smallest int64 if empty.
  Micros newest_tile_end() const;
  // As BlobExpired, for these rows. O(runs).
  bool Expired(Micros now) const;
  // Heap bytes held (row buffers and partial payloads), as SeriesGroup::MemoryBytes. O(rows).
  size_t MemoryBytes() const;

 private:
  friend class SeriesGroup;
  struct RunRows {
    std::byte* data = nullptr;  // `size` rows of the run's row_bytes (::operator new)
    uint32_t size = 0;
  };
  // Appends the blob of the given rows (per run, ascending by index; pointers into row
  // buffers of `layout`) to `out`, which must be empty; writes nothing if there are none.
  static void Encode(const GroupLayout& layout,
                     const std::vector<std::vector<const std::byte*>>& rows, std::string& out);
  void Release();

  const GroupLayout* layout_ = nullptr;
  std::vector<RunRows> runs_;  // one per run of the layout; empty if no rows
};

// Estimated bytes of one value in an answer: 12 for a fixed-size value, payload + 8 for a
// string, bytes or float_vector.
size_t ValueBytes(const record::Value& value);

// The first instant windows[window] covers as of `as_of`: AlignDown(as_of, G) + G - W (see the
// window semantics above), clamped at the smallest int64 instead of overflowing. O(1).
Micros WindowStart(const Spec& spec, size_t window, Micros as_of);

// Estimated bytes of `out` in an answer, what lookups charge against limits.max_message_bytes:
// 4 for no value, 12 for a fixed-size value, payload + 8 for a string, bytes or float_vector; a
// list 8 plus its values. O(list length).
size_t OutputBytes(const Output& out);

// An event as ComputeAsOf sees it. `value` borrowed; null for kCount.
struct Sample {
  Micros event_time = 0;
  const record::Value* value = nullptr;
};

// The value of windows[window] as of `as_of`, computed from raw events given in arrival order:
// the point-in-time reference. Events after `as_of`, and (as in SeriesGroup::Add) events whose
// value is null or of another type, are skipped. Equals, bit for bit, what a SeriesGroup with a
// member of this spec that received the same events (none after as_of, each Add with
// now <= as_of) answers from Query(member, window, as_of). `spec` passed Validate().
// Thread-safe. O(events).
Output ComputeAsOf(const Spec& spec, size_t window, std::span<const Sample> events_in_arrival_order,
                   Micros as_of);

// ---- User-defined fns (Lua aggregators, issue #5) ---------------------------------------------
//
// A user-defined aggregation keeps, per tile, a state that only its fn reads (opaque bytes), under
// the same window semantics as the built-ins. Such a fn can fail on any call (a spent budget, a
// runtime error), so its tiles live apart from the infallible SeriesGroup rows, in CustomSeries.

// The fold of a user-defined aggregation. Implemented outside this component (the shard runs a
// Lua aggregator). A failed call changes nothing. Not thread-safe: the owner serializes calls.
class CustomFn {
 public:
  virtual ~CustomFn() = default;
  // Folds one event (`values` by field index, as SeriesGroup::Add) into a tile's `state`; an empty
  // state is a new tile. On error `state` is unchanged.
  virtual Status Update(std::string& state, Micros event_time,
                        std::span<const record::Value* const> values) = 0;
  // Sets `out` to the value of a window from the states of its non-empty tiles, oldest first
  // (none: an empty window). (An out-parameter rather than Result<Output>: moving an Output
  // through a Result trips GCC 12's -Wmaybe-uninitialized under the sanitizers.)
  virtual Status Finish(std::span<const std::string_view> tiles, Output& out) = 0;
};

// The tiles of one user-defined aggregation for one entity: per distinct tile size of `spec`'s
// windows (runs in order of first use), the non-empty tiles sorted by index, each kept only as
// far back as the longest window of its size needs. `spec` passes Validate() with fn kCount (its
// fn and input type are not used) and is the same on every call.
//
// Thread-compatible: the owning shard serializes access.
class CustomSeries {
 public:
  // An event's effect, computed by Stage without changing the series and applied by Commit, so
  // an event that several series take changes all of them or none.
  struct Staged {
    struct Change {
      uint32_t run = 0;
      int64_t index = 0;  // tile index
      std::string state;  // the tile's new state
    };
    std::vector<Change> changes;
  };

  // Runs fn.Update on a copy of the state of each tile the event falls in (none for a tile size
  // whose windows all ended before it, as of `now`), leaving the series as it is. Errors: fn's.
  Status Stage(CustomFn& fn, const Spec& spec, Micros event_time,
               std::span<const record::Value* const> values, Micros now, Staged& out) const;
  // Stores what Stage computed (no change to the series in between). Starting a new tile drops
  // the tiles of that size no window needs as of `now`. Returns the change of MemoryBytes().
  int64_t Commit(const Spec& spec, Staged& staged, Micros now);

  // Sets `out` to windows[window] as of `now`: fn.Finish over the states of its tiles (see the
  // window semantics above). O(log tiles + tiles in the window) plus the fn's work.
  Status Query(CustomFn& fn, const Spec& spec, size_t window, Micros now, Output& out) const;

  // Heap bytes held: the tile vector by capacity and the states' heap buffers.
  size_t MemoryBytes() const;

  // Hints the CPU to load the newest tiles (what the next Stage reads); changes nothing.
  void Prefetch() const;

 private:
  // One tile: `run` (tile size, in order of first use in the spec), its index, the fn's state.
  struct Tile {
    uint32_t run = 0;
    int64_t index = 0;
    std::string state;
  };
  // Where tile (run, index) is or would go in tiles_.
  std::vector<Tile>::const_iterator Find(uint32_t run, int64_t index) const;
  std::vector<Tile> tiles_;  // sorted by (run, index)
};

// An event as ComputeCustomAsOf sees it: its time and values by field index (borrowed).
struct CustomEvent {
  Micros event_time = 0;
  std::span<const record::Value* const> values;
};

// Sets `out` to the point-in-time value of a user-defined aggregation: folds the events (in arrival
// order) with time <= as_of into the tiles of windows[window] with fn.Update, then fn.Finish, as
// CustomSeries does online; so for the same events and a deterministic fn the answers are equal.
// Errors: fn's.
Status ComputeCustomAsOf(CustomFn& fn, const Spec& spec, size_t window,
                         std::span<const CustomEvent> events_in_arrival_order, Micros as_of,
                         Output& out);

}  // namespace ods::aggregate
