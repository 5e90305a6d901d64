#!/usr/bin/env bash
# Measures odsd's features API (ods.v1.Features) over gRPC against the issue's promises, and
# feature lookups against redis pipelined HMGET of the same number of values, on loopback, on
# this machine.
#
# Usage: benchmarks/features_compare.sh [--duration S] [--warmup S] [--keys N] [--concurrency C]
#                                       [--client-threads T] [--event-batch B] [--rounds R]
#                                       [--grpc-threads N] [--halt-poll-ns NS] [--out FILE]
#   --duration S        seconds per measurement (default 10)
#   --warmup S          ods_bench warm-up seconds before each measurement (default 2)
#   --keys N            entities loaded into each server and drawn uniformly (default 100000)
#   --concurrency C     outstanding requests: ods_bench --concurrency C, redis-benchmark -c C
#                       (default 16)
#   --client-threads T  ods_bench client threads, and StreamEvents streams (default 1;
#                       redis-benchmark uses 1)
#   --event-batch B     events per PushEvents call and per StreamEvents message (default 100)
#   --rounds R          run every measurement R times, interleaved, and report the median of each
#                       figure (default 1); each round is also printed
#   --grpc-threads N    odsd's server.grpc_threads (default 1: odsd's default)
#   --halt-poll-ns NS   on a KVM guest with the haltpoll cpuidle driver, let idle vCPUs poll NS
#                       nanoseconds before they halt, for this run (root; restored on exit):
#                       docs/operations.md. Default: leave the machine's setting, which the
#                       summary names either way
#   --out FILE          also write the summary table to FILE
# Env: BUILD_DIR (default build), ODSD, ODS_BENCH, REDIS_SERVER, REDIS_BENCHMARK, REDIS_CLI
#      override the binaries.
#
# Starts odsd with a temporary config (event template tx {user, ts, amount double, merchant
# string}, history_retention 0; aggregations tx_count count, amount_sum sum, amount_mean mean,
# amount_max max, merchants distinct_count, each over windows [1h, 24h]: 10 feature refs) and
# redis-server, both on 127.0.0.1 with free ports; pushes one event per entity key:%012d into
# odsd (ods_bench --workload load-events) and loads redis with HSET key:%012d f0..f9 (10 values
# per entity, redis-cli --pipe). Each round measures:
#   ods-features       GetOnlineFeatures of 100 entities x 10 features, closed loop: the peak
#   ods-features-half  the same, open loop at half the peak calls/s of the round: the p99 (the
#                      promise is < 2 ms), and the p99 bucket of odsd's own handler time for
#                      those calls (its /metrics histogram), to tell odsd's share of the tail,
#                      with the client's start lag and the machine's stalls in that run (a p99
#                      cannot be below the vCPU stalls of a shared VM: see machine_probe.h)
#   redis-HMGET        redis-benchmark -P 16 HMGET key:__rand_int__ f0 .. f9 (values = requests x 10)
#   ods-stream         StreamEvents, one stream per client thread: events/s (promise >= 250,000)
#   ods-push           PushEvents of --event-batch events, closed loop: events/s
# and prints one table (values/s = feature values, or events for stream and push) and the ratio
# of ODS feature values/s to redis values/s. Stops everything it started on exit.
# Exit: 0 ok, 1 a server or a benchmark failed, 2 bad usage.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
case "$BUILD_DIR" in /*) build="$BUILD_DIR" ;; *) build="$root/$BUILD_DIR" ;; esac
ODSD=${ODSD:-$build/src/main/odsd}
ODS_BENCH=${ODS_BENCH:-$build/benchmarks/ods_bench}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-redis-benchmark}
REDIS_CLI=${REDIS_CLI:-redis-cli}

duration=10
warmup=2
keys=100000
concurrency=16
client_threads=1
event_batch=100
rounds=1
grpc_threads=1
halt_poll_ns=
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --keys) keys=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --client-threads) client_threads=$2; shift 2 ;;
    --event-batch) event_batch=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --grpc-threads) grpc_threads=$2; shift 2 ;;
    --halt-poll-ns) halt_poll_ns=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "features_compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in "$duration" "$warmup" "$keys" "$concurrency" "$client_threads" "$event_batch" "$rounds" \
  "$grpc_threads" ${halt_poll_ns:+"$halt_poll_ns"}; do
  [[ "$v" =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
    { echo "features_compare.sh: '$v' is not a number (see --help)" >&2; exit 2; }
done
[[ "$halt_poll_ns" =~ ^[0-9]*$ ]] ||
  { echo "features_compare.sh: --halt-poll-ns takes whole nanoseconds, not '$halt_poll_ns'" >&2; exit 2; }
for bin in "$ODSD" "$ODS_BENCH"; do
  [ -x "$bin" ] || { echo "features_compare.sh: $bin not built (scripts/build.sh odsd ods_bench)" >&2; exit 1; }
done
for bin in "$REDIS_SERVER" "$REDIS_BENCHMARK" "$REDIS_CLI"; do
  command -v "$bin" >/dev/null || { echo "features_compare.sh: $bin missing (scripts/install-deps.sh)" >&2; exit 1; }
done

BENCH_SCRIPT=features_compare.sh
# shellcheck source=benchmarks/lib.sh
source "$(dirname "$0")/lib.sh"

[ -z "$halt_poll_ns" ] || set_halt_poll "$halt_poll_ns"

features=tx_count@1h,tx_count@24h,amount_sum@1h,amount_sum@24h,amount_mean@1h,amount_mean@24h
features=$features,amount_max@1h,amount_max@24h,merchants@1h,merchants@24h
n_features=10
entities=100

# --- servers ----------------------------------------------------------------------------------
start_redis redis

mkdir -p "$tmp/data"
cat >"$tmp/odsd.yaml" <<EOF
# Written by benchmarks/features_compare.sh.
server: {grpc_listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", shards: 16,
         grpc_threads: $grpc_threads}
storage: {data_dir: "$tmp/data"}
event_templates:
  tx:
    key: user
    timestamp: ts
    fields: {amount: double, merchant: string}
    history_retention: 0s  # tiles only, as BM_Features_Ingest
aggregations:
  tx_count: {template: tx, fn: count, windows: [1h, 24h]}
  amount_sum: {template: tx, fn: sum, field: amount, windows: [1h, 24h]}
  amount_mean: {template: tx, fn: mean, field: amount, windows: [1h, 24h]}
  amount_max: {template: tx, fn: max, field: amount, windows: [1h, 24h]}
  merchants: {template: tx, fn: distinct_count, field: merchant, windows: [1h, 24h]}
EOF
"$ODSD" --config "$tmp/odsd.yaml" >"$tmp/odsd.out" 2>"$tmp/odsd.out.err" &
odsd_pid=$!
pids+=("$odsd_pid")
wait_for_line "$tmp/odsd.out" "odsd ready" "$odsd_pid" ||
  { cat "$tmp/odsd.out.err" >&2; fail "odsd did not become ready"; }
odsd_addr=$(sed -n 's/.*odsd ready grpc=\([^ ]*\).*/\1/p' "$tmp/odsd.out" | head -1)
admin_addr=$(sed -n 's/.*odsd ready .*admin=\([^ ]*\).*/\1/p' "$tmp/odsd.out" | head -1)
log "redis 127.0.0.1:$redis_port, odsd $odsd_addr"

# --- load the same entities into both ---------------------------------------------------------
log "loading $keys entities into redis (HSET key:%012d f0..f9)"
awk -v n="$keys" 'BEGIN {
  for (i = 0; i < n; i++) {
    k = sprintf("key:%012d", i)
    printf "*22\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n", length(k), k
    for (f = 0; f < 10; f++) {
      v = sprintf("%.2f", (i * 7 + f * 13) % 100000 / 100)
      printf "$2\r\nf%d\r\n$%d\r\n%s\r\n", f, length(v), v
    }
  }
}' >"$tmp/load.resp"
"$REDIS_CLI" -h 127.0.0.1 -p "$redis_port" --pipe <"$tmp/load.resp" >"$tmp/load.log" 2>&1 ||
  { cat "$tmp/load.log" >&2; fail "redis --pipe load failed"; }
grep -q "errors: 0" "$tmp/load.log" || { cat "$tmp/load.log" >&2; fail "redis load had errors"; }
dbsize=$("$REDIS_CLI" -h 127.0.0.1 -p "$redis_port" dbsize)
[ "$dbsize" -eq "$keys" ] || fail "redis holds $dbsize keys, expected $keys"

log "pushing one event for each of $keys entities into odsd"
"$ODS_BENCH" --addr "$odsd_addr" --workload load-events --keys "$keys" --concurrency 4 \
  >"$tmp/load-events.log" 2>&1 || { cat "$tmp/load-events.log" >&2; fail "odsd event load failed"; }
sed 's/^/  /' "$tmp/load-events.log" >&2

# --- measurements -----------------------------------------------------------------------------
# Rows: name calls/s values/s p50_us p99_us
rows=()

# Runs ods_bench, appends its RESULT line as a row and leaves its calls/s in last_calls_per_s.
ods_bench() {
  local name=$1; shift
  local output
  if ! output=$("$ODS_BENCH" --addr "$odsd_addr" --threads "$client_threads" --duration "$duration" \
                --warmup "$warmup" --keys "$keys" --no-preload "$@" 2>&1); then
    echo "$output" >&2
    fail "ods_bench $name failed"
  fi
  echo "$output" | sed "s/^/  [$name] /" >&2
  local row
  row=$(echo "$output" | awk -v name="$name" '/^RESULT/ {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    printf "%s %s %s %s %s", name, f["calls_per_s"], f["keys_per_s"], f["p50_us"], f["p99_us"] }')
  [ -n "$row" ] || fail "ods_bench $name printed no RESULT line"
  rows+=("$row")
  last_calls_per_s=$(echo "$row" | awk '{ print $2 }')
  # The client's lag behind its schedule (open loop) and the machine's stalls during the run.
  last_lag=$(echo "$output" | sed -n 's/.*start lag behind schedule .*p99=\([0-9.]*\)us.*/\1/p')
  last_machine=$(echo "$output" |
    sed -n 's/^machine: .* p99=\([0-9.]*\)us .*; \([0-9]*\) stalls >= 1 ms, \([0-9.]*\) ms in all.*/\2 stalls, \3 ms/p')
}

# redis-benchmark stops after -n requests, not after a time: a short calibration run (which is
# also the warm-up) sizes -n so that the measured run lasts about $duration seconds.
redis_bench() {
  local name=$1 values_per_request=$2; shift 2
  local cal rps n csv
  cal=$("$REDIS_BENCHMARK" -h 127.0.0.1 -p "$redis_port" -c "$concurrency" -n 50000 \
        -r "$keys" -P 16 --csv "$@") || fail "redis-benchmark $name failed"
  rps=$(echo "$cal" | awk -F'"' 'NR == 2 { print $4 }')
  n=$(awk -v r="$rps" -v d="$duration" 'BEGIN { n = int(r * d); print (n < 50000 ? 50000 : n) }')
  "$REDIS_CLI" -h 127.0.0.1 -p "$redis_port" config resetstat >/dev/null
  csv=$("$REDIS_BENCHMARK" -h 127.0.0.1 -p "$redis_port" -c "$concurrency" -n "$n" \
        -r "$keys" -P 16 --csv "$@") || fail "redis-benchmark $name failed"
  echo "$csv" | sed "s/^/  [$name] /" >&2
  local misses
  misses=$("$REDIS_CLI" -h 127.0.0.1 -p "$redis_port" info stats | tr -d '\r' |
           awk -F: '/^keyspace_misses/ { print $2 }')
  [ "$misses" -eq 0 ] || fail "$name: $misses keyspace misses (keys not loaded?)"
  # CSV columns: test, rps, avg, min, p50, p95, p99, max (ms). With -P 16 a latency is that of
  # a pipeline of 16 requests.
  rows+=("$(echo "$csv" | awk -F'"' -v name="$name" -v vpr="$values_per_request" 'NR == 2 {
    printf "%s %s %s %.1f %.1f", name, $4, $4 * vpr, $10 * 1000, $14 * 1000 }')")
}

# GetOnlineFeatures handler-time bucket counts from odsd's /metrics (cumulative, one per line).
handler_buckets() {
  local body
  exec 3<>"/dev/tcp/${admin_addr%:*}/${admin_addr##*:}" || fail "cannot reach odsd's admin endpoint"
  printf 'GET /metrics HTTP/1.0\r\nHost: odsd\r\n\r\n' >&3
  body=$(cat <&3)
  exec 3>&-
  echo "$body" | grep '^ods_rpc_handler_seconds_bucket{method="ods.v1.Features/GetOnlineFeatures"' |
    sed 's/.*le="\([^"]*\)"} \(.*\)/\1 \2/'
}
# The smallest bucket bound holding 99% of the calls between two handler_buckets snapshots:
# odsd's own share of a lookup's p99 (parse, engine, encode), without gRPC queueing, transport
# and the client.
handler_p99() {
  paste <(echo "$1") <(echo "$2") | awk '
    { le[NR] = $1; d[NR] = $4 - $2 }
    END { total = d[NR]; for (i = 1; i <= NR; i++) if (d[i] >= 0.99 * total) { print le[i]; exit } }'
}
handler_p99s=""
half_lags=""
half_machine=""

log "measuring: concurrency $concurrency, ${duration}s each, $rounds round(s)"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)  # the machine's noise, printed with the figures
for round in $(seq "$rounds"); do
  [ "$rounds" -eq 1 ] || log "round $round of $rounds"
  ods_bench ods-features --workload features --concurrency "$concurrency" \
    --entities "$entities" --features "$features"
  half=$(awk -v r="$last_calls_per_s" 'BEGIN { printf "%.1f", r / 2 }')
  before=$(handler_buckets)
  ods_bench ods-features-half --workload features --concurrency "$concurrency" \
    --entities "$entities" --features "$features" --rate "$half"
  handler_p99s="$handler_p99s${handler_p99s:+ | }<= $(handler_p99 "$before" "$(handler_buckets)") s"
  half_lags="$half_lags${half_lags:+ | }${last_lag:-?} us"
  half_machine="$half_machine${half_machine:+ | }${last_machine:-?}"
  redis_bench redis-HMGET "$n_features" HMGET 'key:__rand_int__' f0 f1 f2 f3 f4 f5 f6 f7 f8 f9
  ods_bench ods-stream --workload stream --batch "$event_batch"
  ods_bench ods-push --workload push --concurrency "$concurrency" --batch "$event_batch"
done

# --- summary ----------------------------------------------------------------------------------
summary=$(printf '%s\n' "${rows[@]}" | awk -v c="$concurrency" -v k="$keys" -v d="$duration" \
  -v handler="$handler_p99s" -v lags="$half_lags" -v machine="$half_machine" \
  -v t="$client_threads" -v r="$rounds" -v eb="$event_batch" -v nproc="$(nproc)" \
  -v gt="$grpc_threads" -v halt_poll="$(halt_poll_state)" \
  -v load="$load_start / $(cut -d' ' -f1-3 /proc/loadavg)" '
  function median(list,    n, v, i, j, x) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++) { x = v[i] + 0; for (j = i - 1; j >= 1 && v[j] + 0 > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  {
    if (!($1 in idx)) { idx[$1] = ++n; name[n] = $1 }
    round_of[$1]++; at[$1, round_of[$1]] = $3
    cps[$1] = cps[$1] " " $2; vps[$1] = vps[$1] " " $3; p50[$1] = p50[$1] " " $4
    p99[$1] = p99[$1] " " $5
    all[$1] = all[$1] (all[$1] == "" ? "" : " | ") sprintf("%.0f/s p99 %.0fus", $3, $5)
  }
  END {
    printf "features_compare: concurrency=%s keys=%s lookups=100x10 event_batch=%s duration=%ss rounds=%s ods_bench_threads=%s odsd_grpc_threads=%s cores=%s\nload average (1/5/15 min) at start / end: %s\nvCPU halt polling: %s\n",
           c, k, eb, d, r, t, gt, nproc, load, halt_poll
    printf "%-18s %11s %13s %10s %10s%s\n", "target", "calls/s", "values/s", "p50_us", "p99_us",
           (r > 1 ? "   (median of rounds; each round: values/s, p99)" : "")
    for (i = 1; i <= n; i++) {
      x = name[i]; C[x] = median(cps[x]); V[x] = median(vps[x]); P50[x] = median(p50[x])
      P99[x] = median(p99[x])
      printf "%-18s %11.0f %13.0f %10.1f %10.1f%s\n", x, C[x], V[x], P50[x], P99[x],
             (r > 1 ? "   " all[x] : "")
    }
    printf "values/s: feature values (features, HMGET), events (stream, push); redis latency is per pipeline of 16\n"
    # The ratio of each round (both measured minutes apart), then their median: steadier than
    # the ratio of the medians when the machine load drifts between rounds.
    ratios = ""; each = ""
    for (j = 1; j <= round_of["redis-HMGET"]; j++)
      if (at["redis-HMGET", j] > 0) {
        x = at["ods-features", j] / at["redis-HMGET", j]
        ratios = ratios " " x; each = each (each == "" ? "" : " | ") sprintf("%.2fx", x)
      }
    if (ratios != "")
      printf "ratio ODS feature values/s / redis HMGET values/s: %.2fx (promise: > 1)%s\n",
             median(ratios), (r > 1 ? "   (median of the rounds: " each ")" : "")
    printf "p99 of 100x10 lookups at half the peak rate: %.2f ms (promise: < 2 ms)\n",
           P99["ods-features-half"] / 1000
    printf "  of which in odsd'"'"'s handler (p99 bucket of ods_rpc_handler_seconds, per round): %s\n",
           handler
    printf "  the client'"'"'s start lag behind its schedule, p99 per round: %s\n", lags
    printf "  the machine meanwhile (ods_bench'"'"'s 1 ms sleeper woken >= 1 ms late), per round: %s\n", machine
    printf "StreamEvents events/s: %.0f (promise: >= 250,000)\n", V["ods-stream"]
  }')
echo "$summary"
[ -z "$out" ] || echo "$summary" >"$out"
