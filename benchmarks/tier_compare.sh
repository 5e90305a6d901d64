#!/usr/bin/env bash
# Measures odsd Get over gRPC by tier (RAM, SSD, backing store) on loopback, on this machine, and
# checks with `ods tiers` (Admin.GetTierStats) that each tier really served its reads.
#
# Usage: benchmarks/tier_compare.sh [--records N] [--duration S] [--warmup S] [--concurrency C]
#                                   [--client-threads T] [--repeat R] [--step-timeout S]
#                                   [--out FILE]
#   --records N         records per tier (default 100000)
#   --duration S        seconds per measurement (default 10)
#   --warmup S          ods_bench warm-up seconds before each measurement (default 2)
#   --concurrency C     calls kept outstanding (closed loop; default 16)
#   --client-threads T  ods_bench client threads (default 1)
#   --repeat R          rounds; each round measures the three tiers in turn, and the summary is
#                       the median of the rounds (default 3)
#   --step-timeout S    most seconds a start, a load or the wait for the moves may take
#                       (default 300)
#   --out FILE          also write the summary table to FILE
# Env: BUILD_DIR (default build), ODSD, ODS_BENCH, ODS_CLI override the binaries.
#
# Writes a config into a temp dir and starts one odsd (data dir in the temp dir, 127.0.0.1, free
# ports) with `storage.durability: async`, `storage.backing: {kind: directory}` and three
# free-form tables, each with `promote: never` so that reads leave the records where they are:
#   tier_ram      tiering [{to: ssd, when: {idle_for: 30d}}]: tiered (RAM entries carry the
#                 access time) but no record moves during the run
#   tier_ssd      tiering [{to: ssd}]: the sweep moves every record to SSD (RocksDB)
#   tier_backing  tiering [{to: backing}]: every record goes to the backing store's segment files
# Loads N records into each (ods_bench --workload load: keys key:%012d, f0 16-byte string, f1
# int64, f2 double, f3 bool), waits until `ods tiers` shows all N of each table in its tier, then
# runs `ods_bench --workload get --no-preload` (uniform random keys) per table. Around every run
# it reads the tables' reads counters: the intended tier's must have grown by at least the calls
# counted and the other tiers' not at all, every key must be found, and the records must still
# be in their tier afterwards; otherwise the script fails.
# Exit: 0 ok, 1 a server, a load, a benchmark or a check failed, 2 bad usage.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
case "$BUILD_DIR" in /*) build="$BUILD_DIR" ;; *) build="$root/$BUILD_DIR" ;; esac
ODSD=${ODSD:-$build/src/main/odsd}
ODS_BENCH=${ODS_BENCH:-$build/benchmarks/ods_bench}
ODS_CLI=${ODS_CLI:-$build/src/cli/ods}

records=100000
duration=10
warmup=2
concurrency=16
client_threads=1
repeat=3
step_timeout=300
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --records) records=${2:?--records needs a value}; shift 2 ;;
    --duration) duration=${2:?--duration needs a value}; shift 2 ;;
    --warmup) warmup=${2:?--warmup needs a value}; shift 2 ;;
    --concurrency) concurrency=${2:?--concurrency needs a value}; shift 2 ;;
    --client-threads) client_threads=${2:?--client-threads needs a value}; shift 2 ;;
    --repeat) repeat=${2:?--repeat needs a value}; shift 2 ;;
    --step-timeout) step_timeout=${2:?--step-timeout needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    -h|--help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "tier_compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in "$records" "$concurrency" "$client_threads" "$repeat" "$step_timeout"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "tier_compare.sh: '$v' is not a whole number >= 1" >&2; exit 2; }
done
for v in "$duration" "$warmup"; do
  [[ "$v" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "tier_compare.sh: '$v' is not a number of seconds" >&2; exit 2; }
done
for bin in "$ODSD" "$ODS_BENCH" "$ODS_CLI"; do
  [ -x "$bin" ] || { echo "tier_compare.sh: $bin not built (scripts/build.sh odsd ods ods_bench)" >&2; exit 1; }
done
for bin in python3 timeout; do
  command -v "$bin" >/dev/null || { echo "tier_compare.sh: $bin missing" >&2; exit 1; }
done

BENCH_SCRIPT=tier_compare.sh
BENCH_WAIT_SECONDS=$step_timeout
# shellcheck source=benchmarks/lib.sh
source "$(dirname "$0")/lib.sh"

tiers=(ram ssd backing)

# --- server -----------------------------------------------------------------------------------
cat >"$tmp/odsd.yaml" <<'EOF'
server: {shards: 16}
storage:
  durability: async
  ram: {max_bytes: 8GiB}
  backing: {kind: directory}
tables:
  tier_ram:
    key: id
    tiering: [{to: ssd, when: {idle_for: 30d}}]   # tiered, but nothing moves during the run
    promote: never
  tier_ssd:
    key: id
    tiering: [{to: ssd}]
    promote: never
  tier_backing:
    key: id
    tiering: [{to: backing}]
    promote: never
EOF
mkdir -p "$tmp/data"
"$ODSD" --config "$tmp/odsd.yaml" --grpc-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  --data-dir "$tmp/data" >"$tmp/odsd.out" 2>"$tmp/odsd.out.err" &
odsd_pid=$!
pids+=("$odsd_pid")
wait_for_line "$tmp/odsd.out" "odsd ready" "$odsd_pid" || fail "odsd did not become ready"
addr=$(sed -n 's/.*odsd ready grpc=\([^ ]*\).*/\1/p' "$tmp/odsd.out" | head -1)
[ -n "$addr" ] || fail "cannot parse odsd's ready line: $(cat "$tmp/odsd.out")"
log "odsd pid $odsd_pid grpc=$addr, config $tmp/odsd.yaml"

# Prints "TIER.WHAT=N ..." (records and reads of each tier) for `table` from `ods tiers`.
tier_counts() {  # table
  timeout 30 "$ODS_CLI" --addr "$addr" tiers >"$tmp/tiers.json" 2>"$tmp/tiers.err" ||
    { cat "$tmp/tiers.err" >&2; fail "ods tiers failed"; }
  python3 - "$1" "$tmp/tiers.json" <<'EOF'
import json, sys
table, path = sys.argv[1], sys.argv[2]
t = [x for x in json.load(open(path)).get("tables", []) if x.get("table") == table]
if not t:
    sys.exit(f"ods tiers has no table {table}")
out = [f"{tier}.{what}={int(t[0].get(tier, {}).get(what, 0))}"
       for tier in ("ram", "ssd", "backing") for what in ("records", "reads")]
out.append(f"read_p50={int(t[0].get('read_p50_micros', 0))}")
out.append(f"read_p99={int(t[0].get('read_p99_micros', 0))}")
print(" ".join(out))
EOF
}
count_of() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'; }  # counts key

# Fails unless all N records of `table` are in `tier` and none elsewhere.
in_tier() {  # table tier
  local c t n
  c=$(tier_counts "$1")
  for t in "${tiers[@]}"; do
    n=$(count_of "$c" "$t.records")
    if [ "$t" = "$2" ]; then [ "$n" -eq "$records" ] || return 1; else [ "$n" -eq 0 ] || return 1; fi
  done
}

# --- load and place ---------------------------------------------------------------------------
for t in "${tiers[@]}"; do
  log "loading $records records into tier_$t"
  timeout "$step_timeout" "$ODS_BENCH" --addr "$addr" --workload load --table "tier_$t" \
    --keys "$records" >"$tmp/load.log" 2>&1 || { cat "$tmp/load.log" >&2; fail "load of tier_$t failed"; }
  sed "s/^/  [ods_bench] /" "$tmp/load.log" >&2
done
t0=$(date +%s)
for t in "${tiers[@]}"; do
  until in_tier "tier_$t" "$t"; do
    [ $(($(date +%s) - t0)) -lt "$step_timeout" ] ||
      fail "tier_$t: records not all in $t after ${step_timeout}s: $(tier_counts "tier_$t")"
    sleep 1
  done
  log "tier_$t: all $records records in $t ($(($(date +%s) - t0)) s after the loads): $(tier_counts "tier_$t")"
done

# --- measurements -----------------------------------------------------------------------------
# Rows: tier calls/s p50_us p99_us
rows=()
measure() {  # tier
  local t=$1 table="tier_$1" before after output calls misses x d
  before=$(tier_counts "$table")
  if ! output=$(timeout $((step_timeout + ${duration%.*} + ${warmup%.*})) "$ODS_BENCH" \
                --addr "$addr" --workload get --no-preload --table "$table" --keys "$records" \
                --concurrency "$concurrency" --threads "$client_threads" --duration "$duration" \
                --warmup "$warmup" 2>&1); then
    echo "$output" >&2
    fail "ods_bench get on $table failed"
  fi
  after=$(tier_counts "$table")
  echo "$output" | grep -E '^(op|get|RESULT)' | sed "s/^/  [$t] /" >&2
  calls=$(echo "$output" | awk '/^RESULT op=get/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "calls_per_s") print kv[2] } }')
  calls=$(awk -v r="$calls" -v d="$duration" 'BEGIN { printf "%d", r * d }')
  misses=$(echo "$output" | sed -n 's/^RESULT op=get .*misses=\([0-9]*\).*/\1/p')
  [ -n "$misses" ] && [ "$misses" -eq 0 ] || fail "$table: $misses of the keys read were not found"
  for x in "${tiers[@]}"; do
    d=$(( $(count_of "$after" "$x.reads") - $(count_of "$before" "$x.reads") ))
    if [ "$x" = "$t" ]; then
      # Warm-up calls and calls completing after the window are served too: >=, not ==.
      [ "$d" -ge "$calls" ] ||
        fail "$table: $x served $d reads, fewer than the $calls calls measured: $before -> $after"
    else
      [ "$d" -eq 0 ] || fail "$table: $x served $d reads, expected none (all from $t): $before -> $after"
    fi
  done
  in_tier "$table" "$t" || fail "$table: records left $t during the run: $after"
  log "$t: reads by tier ram/ssd/backing +$(( $(count_of "$after" ram.reads) - $(count_of "$before" ram.reads) ))/+$(( $(count_of "$after" ssd.reads) - $(count_of "$before" ssd.reads) ))/+$(( $(count_of "$after" backing.reads) - $(count_of "$before" backing.reads) )) for $calls calls in the window"
  rows+=("$(echo "$output" | awk -v name="$t" '/^RESULT op=get/ {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    printf "%s %s %s %s", name, f["calls_per_s"], f["p50_us"], f["p99_us"] }')")
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "measuring at concurrency $concurrency, ${duration}s each, $repeat round(s), load average $load_start"
for round in $(seq "$repeat"); do
  [ "$repeat" -eq 1 ] || log "round $round of $repeat"
  for t in "${tiers[@]}"; do measure "$t"; done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
server_side=""
for t in "${tiers[@]}"; do
  c=$(tier_counts "tier_$t")
  server_side+="$t:$(count_of "$c" read_p50)/$(count_of "$c" read_p99) "
done

# --- summary ----------------------------------------------------------------------------------
summary=$(printf '%s\n' "${rows[@]}" | awk -v c="$concurrency" -v n="$records" -v d="$duration" \
  -v t="$client_threads" -v r="$repeat" -v nproc="$(nproc)" -v l0="$load_start" -v l1="$load_end" \
  -v server="$server_side" '
  function median(list,    n, v, i, j, x) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++) { x = v[i] + 0; for (j = i - 1; j >= 1 && v[j] + 0 > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  {
    if (!($1 in idx)) { idx[$1] = ++k; name[k] = $1 }
    rps[$1] = rps[$1] " " $2; p50[$1] = p50[$1] " " $3; p99[$1] = p99[$1] " " $4
    all[$1] = all[$1] (all[$1] == "" ? "" : " | ") sprintf("%.0f/s %.0f/%.0fus", $2, $3, $4)
  }
  END {
    printf "tier_compare: records=%s per tier concurrency=%s client_threads=%s duration=%ss rounds=%s cores=%s loadavg %s -> %s\n",
           n, c, t, d, r, nproc, l0, l1
    printf "%-8s %10s %9s %9s %11s %11s   %s\n", "tier", "calls/s", "p50_us", "p99_us",
           "calls/RAM", "p99/RAM", "each round: calls/s p50/p99"
    for (i = 1; i <= k; i++) {
      x = name[i]; R[x] = median(rps[x]); P50[x] = median(p50[x]); P99[x] = median(p99[x])
    }
    for (i = 1; i <= k; i++) {
      x = name[i]
      printf "%-8s %10.0f %9.1f %9.1f %10.2fx %10.2fx   %s\n", x, R[x], P50[x], P99[x],
             ("ram" in R && R["ram"] > 0 ? R[x] / R["ram"] : 0),
             ("ram" in P99 && P99["ram"] > 0 ? P99[x] / P99["ram"] : 0), all[x]
    }
    printf "server-side Engine::Get p50/p99 us by table since start (ods tiers, bucket upper bounds): %s\n", server
  }')
echo "$summary"
[ -z "$out" ] || echo "$summary" >"$out"
