#!/usr/bin/env bash
# Measures memory per record of odsd and of redis-server holding the same records, on loopback,
# on this machine.
#
# Usage: benchmarks/memory_compare.sh [--records N] [--warmup-records N] [--step-timeout S]
#                                     [--numeric-fields K] [--out FILE]
#   --records N         records loaded into each server (default 1000000)
#   --numeric-fields K  instead of the four measurements below, records of K numeric fields
#                       f0..fK-1 (even j int64 = i + j, odd j double = i/3 + j/10; ods_bench
#                       --numeric-fields K) in: ODS typed (durable, async, as every table below
#                       unless said), ODS volatile (typed, durability none: no RocksDB
#                       memtable in RSS), ODS free-form, ODS tiered (a durable
#                       typed table with a tiering rule that does not fire during the run, so its
#                       RAM entries carry the 4-byte access time), ODS on SSD (the same table with
#                       rule `to: ssd`: measured once every record has moved and odsd has been
#                       restarted on its data, so what is left in RAM is the per-record entry
#                       below RAM), and redis HSET key f0 v0 .. fK-1
#                       vK-1 (integers as %d, doubles as %.17g text, as ODS would print them).
#                       odsd gets a config written by this script (tables num_typed,
#                       num_volatile, num_free, num_tiered, num_ssd).
#   --warmup-records N  records with other keys (warm:%012d) loaded before the "before" reading,
#                       so that connection set-up, thread pools and first allocations are not
#                       counted per record (default 10000; 0 disables)
#   --step-timeout S    most seconds any one step (a start, a load) may take (default 300)
#   --out FILE          also write the summary table to FILE
# Env: BUILD_DIR (default build), ODSD, ODS_BENCH, ODS_CLI, REDIS_SERVER, REDIS_CLI override the
#      binaries. ods_bench must have `--workload load` (and --numeric-fields for that option).
#
# Four measurements, each on a fresh server started by this script (127.0.0.1, free ports):
#   ODS typed      odsd (embedded default config), table user_profile (typed, ttl 90d)
#   ODS free-form  odsd, table user_features (free-form, no ttl)
#   redis hash     redis-server --save '' --appendonly no, HSET key age A country C score S premium P
#   redis string   redis-server, SET key <31-byte value> (one opaque value per key, for reference)
# Records: keys user:%012d (17 bytes), 0..N-1; fields age int64 = i, country = 2 letters,
# score double = i/3, premium bool = i even. ODS is loaded by `ods_bench --workload load`
# (batches of 500, 4 connections); redis by `redis-cli --pipe` from a generated RESP stream
# (score as %.17g text: redis keeps numbers as strings).
# Each figure is a delta between a reading after the warm-up and one after the load, divided by
# the records added: process RSS (VmRSS) for both, and the server's own accounting:
# ods_ram_bytes (odsd's estimate) and INFO used_memory (redis's allocator count).
# Stops everything it started on exit. Exit: 0 ok, 1 a server or a load failed, 2 bad usage.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
case "$BUILD_DIR" in /*) build="$BUILD_DIR" ;; *) build="$root/$BUILD_DIR" ;; esac
ODSD=${ODSD:-$build/src/main/odsd}
ODS_BENCH=${ODS_BENCH:-$build/benchmarks/ods_bench}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}
ODS_CLI=${ODS_CLI:-$build/src/cli/ods}

records=1000000
numeric_fields=0
warmup_records=10000
step_timeout=300
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --records) records=${2:?--records needs a value}; shift 2 ;;
    --warmup-records) warmup_records=${2:?--warmup-records needs a value}; shift 2 ;;
    --step-timeout) step_timeout=${2:?--step-timeout needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    --numeric-fields) numeric_fields=${2:?--numeric-fields needs a value}; shift 2 ;;
    -h|--help) sed -n '2,41p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "memory_compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in "$records" "$warmup_records" "$step_timeout" "$numeric_fields"; do
  [[ "$v" =~ ^[0-9]+$ ]] || { echo "memory_compare.sh: '$v' is not a whole number" >&2; exit 2; }
done
[ "$records" -ge 1 ] || { echo "memory_compare.sh: --records must be >= 1" >&2; exit 2; }
[ "$step_timeout" -ge 1 ] || { echo "memory_compare.sh: --step-timeout must be >= 1" >&2; exit 2; }
for bin in "$ODSD" "$ODS_BENCH"; do
  [ -x "$bin" ] || { echo "memory_compare.sh: $bin not built (scripts/build.sh odsd ods_bench)" >&2; exit 1; }
done
bench_help=$("$ODS_BENCH" --help)
grep -qE '^ +load +' <<<"$bench_help" ||
  { echo "memory_compare.sh: $ODS_BENCH has no --workload load; rebuild it" >&2; exit 1; }
if [ "$numeric_fields" -gt 0 ]; then
  grep -q -- --numeric-fields <<<"$bench_help" ||
    { echo "memory_compare.sh: $ODS_BENCH has no --numeric-fields; rebuild it" >&2; exit 1; }
  [ -x "$ODS_CLI" ] || { echo "memory_compare.sh: $ODS_CLI not built (scripts/build.sh ods)" >&2; exit 1; }
  command -v python3 >/dev/null || { echo "memory_compare.sh: python3 missing" >&2; exit 1; }
fi
for bin in "$REDIS_SERVER" "$REDIS_CLI" curl timeout; do
  command -v "$bin" >/dev/null || { echo "memory_compare.sh: $bin missing (scripts/install-deps.sh)" >&2; exit 1; }
done

BENCH_SCRIPT=memory_compare.sh
BENCH_WAIT_SECONDS=$step_timeout
# shellcheck source=benchmarks/lib.sh
source "$(dirname "$0")/lib.sh"

# Drops `pid` from the processes cleanup stops.
forget() {
  local p keep=()
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# Stops server `pid` (started by us) and forgets it.
stop() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget "$1"
}

rss_bytes() {  # pid; VmRSS in bytes (bash arithmetic: mawk prints large numbers as 1.2e+09)
  local kb
  kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status")
  echo $((kb * 1024))
}

# Lets transient buffers of a load be freed before a reading.
settle() { sleep 2; }

# Rows: name records rss_delta own_delta own_name load_seconds
rows=()

# --- ODS --------------------------------------------------------------------------------------
ods_metric() {  # admin_addr metric_name
  local v
  v=$(curl -sf --max-time 10 "http://$1/metrics" | awk -v m="$2" '$1 == m { print $2 }') ||
    fail "cannot read http://$1/metrics"
  [ -n "$v" ] || fail "no $2 in http://$1/metrics"
  echo "$v"
}

# Runs "$@" in the background and waits for it, so that a signal reaches our trap at once (bash
# defers traps while a foreground command runs). Returns its exit code.
run_bg() {
  local pid rc=0
  "$@" &
  pid=$!
  pids+=("$pid")
  wait "$pid" || rc=$?
  forget "$pid"
  return "$rc"
}

ods_load() {  # addr table prefix count
  local shape=(--value-bytes 2 --field-names country,age,score,premium)
  [ "$numeric_fields" -eq 0 ] || shape=(--numeric-fields "$numeric_fields")
  if ! run_bg timeout "$step_timeout" "$ODS_BENCH" --addr "$1" --workload load --table "$2" \
       --key-prefix "$3" --keys "$4" "${shape[@]}" >"$tmp/load.log" 2>&1; then
    cat "$tmp/load.log" >&2
    fail "ods_bench load of $4 records into $2 failed (or took over ${step_timeout}s)"
  fi
  sed "s/^/  [ods_bench] /" "$tmp/load.log" >&2
}

# Field `tier`.`what` (records, bytes, reads) of `table` in `ods tiers` (Admin.GetTierStats).
tier_stat() {  # addr table tier what
  timeout 30 "$ODS_CLI" --addr "$1" tiers | python3 -c '
import json, sys
t = [x for x in json.load(sys.stdin).get("tables", []) if x.get("table") == sys.argv[1]]
print(int(t[0].get(sys.argv[2], {}).get(sys.argv[3], 0)) if t else -1)' "$2" "$3" "$4" ||
    fail "ods tiers failed"
}

# Waits until every one of `count` records of `table` is on SSD (the sweep moves them).
wait_all_on_ssd() {  # addr table count
  local i n=0 ram
  for i in $(seq "$step_timeout"); do
    n=$(tier_stat "$1" "$2" ssd records); ram=$(tier_stat "$1" "$2" ram records)
    [ "$n" -ge "$3" ] && [ "$ram" -eq 0 ] && return 0
    sleep 1
  done
  fail "after ${step_timeout}s only $n of $3 records of $2 are on SSD ($ram in RAM)"
}

# Starts odsd on data dir `data` (and `config`, if not empty); sets pid, addr and admin.
start_ods() {  # name data config
  local config_args=()
  [ -z "$3" ] || config_args=(--config "$3")
  "$ODSD" "${config_args[@]}" --grpc-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --data-dir "$2" >"$tmp/$1.out" 2>"$tmp/$1.out.err" &
  pid=$!
  pids+=("$pid")
  wait_for_line "$tmp/$1.out" "odsd ready" "$pid" || fail "odsd did not become ready"
  addr=$(sed -n 's/.*odsd ready grpc=\([^ ]*\).*/\1/p' "$tmp/$1.out" | head -1)
  admin=$(sed -n 's/.*odsd ready .*admin=\([^ ]*\).*/\1/p' "$tmp/$1.out" | head -1)
  [ -n "$addr" ] && [ -n "$admin" ] || fail "cannot parse odsd's ready line: $(cat "$tmp/$1.out")"
  log "$1: odsd pid $pid grpc=$addr admin=$admin, rss at start $(( $(rss_bytes "$pid") / 1024 )) KiB"
}

# ods-on-ssd: once every record is on SSD, restarts odsd on the same data dir, so that RSS holds
# what recovery rebuilds (the entries below RAM: recovery reads RocksDB without filling its block
# cache, and RocksDB flushes the replayed log) and not the freed record blocks malloc keeps, nor
# the memtables of the load. Checks that every entry came back.
restart_ods() {  # name data config table count
  stop "$pid"
  start_ods "$1" "$2" "$3"
  local n
  n=$(tier_stat "$addr" "$4" ssd records)
  [ "$n" -eq "$5" ] || fail "$1: after a restart $n records of $4 are on SSD, expected $5"
}

measure_ods() {  # row_name table [config]; ods-on-ssd is read once every record moved to SSD
  local name=$1 table=$2 config=${3:-} data="$tmp/data-$1" pid addr admin
  mkdir -p "$data"
  start_ods "$name" "$data" "$config"
  local on_ssd=0
  [ "$name" != ods-on-ssd ] || on_ssd=1
  [ "$warmup_records" -eq 0 ] || ods_load "$addr" "$table" warm: "$warmup_records"
  if [ "$on_ssd" -eq 1 ]; then
    [ "$warmup_records" -eq 0 ] || wait_all_on_ssd "$addr" "$table" "$warmup_records"
    restart_ods "$name" "$data" "$config" "$table" "$warmup_records"
  fi
  settle
  local rss0 ram0 n0 rss1 ram1 n1 t0 t1
  rss0=$(rss_bytes "$pid"); ram0=$(ods_metric "$admin" ods_ram_bytes); n0=$(ods_metric "$admin" ods_records)
  log "$name: loading $records records into $table"
  t0=$(date +%s.%N)
  ods_load "$addr" "$table" user: "$records"
  t1=$(date +%s.%N)
  if [ "$on_ssd" -eq 1 ]; then
    log "$name: waiting for the sweep to move every record to SSD"
    wait_all_on_ssd "$addr" "$table" $((records + warmup_records))
    log "$name: all on SSD $(awk -v a="$t1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s after the load;" \
        "rss $(rss_bytes "$pid"), ods_ram_bytes $(ods_metric "$admin" ods_ram_bytes) before the restart"
    restart_ods "$name" "$data" "$config" "$table" $((records + warmup_records))
    # ods_records counts RAM records only: count the entries below RAM instead.
    n0=0; n1=$(( $(tier_stat "$addr" "$table" ssd records) - warmup_records ))
  fi
  settle
  rss1=$(rss_bytes "$pid"); ram1=$(ods_metric "$admin" ods_ram_bytes)
  [ "$on_ssd" -eq 1 ] || n1=$(ods_metric "$admin" ods_records)
  [ $((n1 - n0)) -eq "$records" ] || fail "$name: odsd holds $((n1 - n0)) new records, expected $records"
  log "$name: rss $rss0 -> $rss1, ods_ram_bytes $ram0 -> $ram1, records $n0 -> $n1"
  [ -z "$config" ] || log "$name: ods tiers for $table: ram $(tier_stat "$addr" "$table" ram records) records" \
    "$(tier_stat "$addr" "$table" ram bytes) B, ssd $(tier_stat "$addr" "$table" ssd records) records" \
    "$(tier_stat "$addr" "$table" ssd bytes) B"
  rows+=("$name $((n1 - n0)) $((rss1 - rss0)) $((ram1 - ram0)) ods_ram_bytes $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')")
  stop "$pid"
}

# --- redis ------------------------------------------------------------------------------------
used_memory() {
  "$REDIS_CLI" -h 127.0.0.1 -p "$redis_port" info memory | tr -d '\r' |
    awk -F: '$1 == "used_memory" { print $2 }'
}

# RESP for `count` records with keys prefix%012d, as HSET (kind hash) or SET (kind string).
redis_stream() {  # kind prefix count [numeric_fields]
  awk -v kind="$1" -v prefix="$2" -v n="$3" -v nf="${4:-0}" 'BEGIN {
    for (i = 0; i < n; i++) {
      k = sprintf("%s%012d", prefix, i)
      if (kind == "numeric") {  # as ods_bench --numeric-fields nf
        printf "*%d\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n", 2 + 2 * nf, length(k), k
        for (j = 0; j < nf; j++) {
          f = "f" j
          v = (j % 2 == 0) ? sprintf("%d", i + j) : sprintf("%.17g", i / 3 + j / 10)
          printf "$%d\r\n%s\r\n$%d\r\n%s\r\n", length(f), f, length(v), v
        }
        continue
      }
      c = sprintf("%c%c", 97 + i % 26, 97 + i % 26)   # as ods_bench --value-bytes 2
      age = sprintf("%d", i); score = sprintf("%.17g", i / 3); p = (i % 2 == 0) ? "1" : "0"
      if (kind == "hash") {
        printf "*10\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n$3\r\nage\r\n$%d\r\n%s\r\n$7\r\ncountry\r\n" \
               "$%d\r\n%s\r\n$5\r\nscore\r\n$%d\r\n%s\r\n$7\r\npremium\r\n$%d\r\n%s\r\n",
               length(k), k, length(age), age, length(c), c, length(score), score, length(p), p
      } else {
        v = sprintf("%-31.31s", c "|" age "|" score "|" p)  # 31 bytes, the size of the ODS encoding
        printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v
      }
    }
  }'
}

redis_load() {  # kind prefix count
  # One `timeout` around generator and client: a signal to it reaches its whole process group.
  if ! run_bg timeout "$step_timeout" bash -c "set -o pipefail; $(declare -f redis_stream)
      redis_stream \"\$1\" \"\$2\" \"\$3\" \"\$6\" | \"\$4\" -h 127.0.0.1 -p \"\$5\" --pipe" \
      _ "$1" "$2" "$3" "$REDIS_CLI" "$redis_port" "$numeric_fields" >"$tmp/load.log" 2>&1; then
    cat "$tmp/load.log" >&2
    fail "redis --pipe load of $3 records failed (or took over ${step_timeout}s)"
  fi
  grep -q "errors: 0" "$tmp/load.log" || { cat "$tmp/load.log" >&2; fail "redis load had errors"; }
}

measure_redis() {  # row_name kind
  local name=$1 kind=$2
  start_redis "$name"
  log "$name: redis-server pid $redis_pid port $redis_port, $("$REDIS_SERVER" --version | awk '{ print $3, $6 }')"
  [ "$warmup_records" -eq 0 ] || redis_load "$kind" warm: "$warmup_records"
  settle
  local rss0 used0 n0 rss1 used1 n1 t0 t1
  rss0=$(rss_bytes "$redis_pid"); used0=$(used_memory)
  n0=$("$REDIS_CLI" -h 127.0.0.1 -p "$redis_port" dbsize)
  log "$name: loading $records records as $kind"
  t0=$(date +%s.%N)
  redis_load "$kind" user: "$records"
  t1=$(date +%s.%N)
  settle
  rss1=$(rss_bytes "$redis_pid"); used1=$(used_memory)
  n1=$("$REDIS_CLI" -h 127.0.0.1 -p "$redis_port" dbsize)
  [ $((n1 - n0)) -eq "$records" ] || fail "$name: redis holds $((n1 - n0)) new keys, expected $records"
  log "$name: rss $rss0 -> $rss1, used_memory $used0 -> $used1, dbsize $n0 -> $n1," \
      "encoding of user:000000000000: $("$REDIS_CLI" -h 127.0.0.1 -p "$redis_port" object encoding user:000000000000)"
  rows+=("$name $((n1 - n0)) $((rss1 - rss0)) $((used1 - used0)) used_memory $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')")
  stop "$redis_pid"
}

if [ "$numeric_fields" -eq 0 ]; then
  measure_ods ods-typed user_profile
  measure_ods ods-freeform user_features
  measure_redis redis-hash hash
  measure_redis redis-string string
else
  # One config for the four ODS tables; each measurement still gets a fresh odsd.
  fields=$(for ((j = 0; j < numeric_fields; j++)); do
             if [ $((j % 2)) -eq 0 ]; then printf 'f%d: int64, ' "$j"; else printf 'f%d: double, ' "$j"; fi
           done | sed 's/, $//')
  cat >"$tmp/numeric.yaml" <<EOF
server: {shards: 16}
storage:
  durability: async
  ram: {max_bytes: 16GiB}
tables:
  num_typed: {key: id, fields: {$fields}}
  num_volatile: {key: id, fields: {$fields}, durability: none}   # no RocksDB write
  num_free: {key: id}
  num_tiered:
    key: id
    fields: {$fields}
    tiering: [{to: ssd, when: {idle_for: 30d}}]   # never fires during the run
    promote: never
  num_ssd:
    key: id
    fields: {$fields}
    tiering: [{to: ssd}]
    promote: never
EOF
  measure_ods ods-typed num_typed "$tmp/numeric.yaml"
  measure_ods ods-volatile num_volatile "$tmp/numeric.yaml"
  measure_ods ods-freeform num_free "$tmp/numeric.yaml"
  measure_ods ods-tiered num_tiered "$tmp/numeric.yaml"
  measure_ods ods-on-ssd num_ssd "$tmp/numeric.yaml"
  measure_redis redis-hash numeric
fi

# --- summary ----------------------------------------------------------------------------------
shape=age,country,score,premium
[ "$numeric_fields" -eq 0 ] || shape="f0..f$((numeric_fields - 1))(int64,double,..)"
summary=$(printf '%s\n' "${rows[@]}" | awk -v n="$records" -v w="$warmup_records" -v nproc="$(nproc)" \
    -v shape="$shape" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" '
  { idx[$1] = ++k; name[k] = $1; rss[$1] = $3 / $2; own[$1] = $4 / $2; ownname[$1] = $5; secs[$1] = $6 }
  END {
    printf "memory_compare: records=%d warmup_records=%d keys=user:%%012d (17 B) fields=%s cores=%d loadavg=%s\n",
           n, w, shape, nproc, load
    printf "%-14s %14s %14s  %-14s %8s\n", "target", "RSS B/record", "own B/record", "(own = )", "load s"
    for (i = 1; i <= k; i++) {
      x = name[i]
      printf "%-14s %14.1f %14.1f  %-14s %8.1f\n", x, rss[x], own[x], ownname[x], secs[x]
    }
    b = "redis-hash"
    if (b in idx && rss[b] > 0 && own[b] > 0) {
      printf "%-26s %10s %10s %20s\n", "ratio to redis-hash", "RSS/RSS", "own/own", "own/used_memory<=0.5"
      m = split("ods-typed ods-volatile ods-freeform ods-tiered ods-on-ssd", o, " ")
      for (j = 1; j <= m; j++) {
        x = o[j]
        if (!(x in idx)) continue
        r = own[x] / own[b]
        printf "%-26s %9.2fx %9.2fx %20s\n", x, rss[x] / rss[b], r, (r <= 0.5 ? "met" : "NOT met")
      }
    }
  }')
echo "$summary"
[ -z "$out" ] || echo "$summary" >"$out"
