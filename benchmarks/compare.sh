#!/usr/bin/env bash
# Compares odsd Get over gRPC with redis GET and HGETALL and with a bare gRPC echo server, at the
# same concurrency (outstanding requests), on loopback, on this machine.
#
# Usage: benchmarks/compare.sh [--duration S] [--warmup S] [--concurrency C] [--keys N]
#                              [--value-bytes N] [--client-threads T] [--rounds R] [--out FILE]
#   --duration S        seconds per measurement (default 10)
#   --warmup S          ods_bench warm-up seconds before each measurement (default 2)
#   --concurrency C     outstanding requests: redis-benchmark -c C, ods_bench --concurrency C
#                       (default 16)
#   --keys N            keys loaded into each server and drawn uniformly (default 100000)
#   --value-bytes N     string value of redis SET and of field f0 in redis HSET / odsd (default 16)
#   --client-threads T  ods_bench client threads (default 1; redis-benchmark uses 1)
#   --rounds R          run the four measurements R times, interleaved, and report the median
#                       of each figure (default 1); each round is also printed
#   --out FILE          also write the summary table to FILE
# Env: BUILD_DIR (default build), ODSD, ODS_BENCH, ECHO_SERVER, REDIS_SERVER, REDIS_BENCHMARK,
#      REDIS_CLI override the binaries.
#
# Starts redis-server, odsd and ods_echo_server on 127.0.0.1 with free ports, loads the same keys
# into redis (SET key:%012d value; HSET h:%012d f0 value f1 int f2 double f3 bool) and odsd
# (table user_features, the same four fields), runs redis-benchmark -P 1 (one request per round
# trip) for GET and HGETALL and ods_bench for get and echo, prints one table with the ratios, and
# stops everything it started on exit. Exit: 0 ok, 1 a server or a benchmark failed, 2 bad usage.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
case "$BUILD_DIR" in /*) build="$BUILD_DIR" ;; *) build="$root/$BUILD_DIR" ;; esac
ODSD=${ODSD:-$build/src/main/odsd}
ODS_BENCH=${ODS_BENCH:-$build/benchmarks/ods_bench}
ECHO_SERVER=${ECHO_SERVER:-$build/benchmarks/ods_echo_server}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-redis-benchmark}
REDIS_CLI=${REDIS_CLI:-redis-cli}

duration=10
warmup=2
concurrency=16
keys=100000
value_bytes=16
client_threads=1
rounds=1
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --keys) keys=$2; shift 2 ;;
    --value-bytes) value_bytes=$2; shift 2 ;;
    --client-threads) client_threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for bin in "$ODSD" "$ODS_BENCH" "$ECHO_SERVER"; do
  [ -x "$bin" ] || { echo "compare.sh: $bin not built (scripts/build.sh odsd ods_bench ods_echo_server)" >&2; exit 1; }
done
for bin in "$REDIS_SERVER" "$REDIS_BENCHMARK" "$REDIS_CLI"; do
  command -v "$bin" >/dev/null || { echo "compare.sh: $bin missing (scripts/install-deps.sh)" >&2; exit 1; }
done

BENCH_SCRIPT=compare.sh
# shellcheck source=benchmarks/lib.sh
source "$(dirname "$0")/lib.sh"

# --- servers ----------------------------------------------------------------------------------
start_redis redis

mkdir -p "$tmp/data"
"$ODSD" --grpc-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$tmp/data" \
  >"$tmp/odsd.out" 2>"$tmp/odsd.out.err" &
odsd_pid=$!
pids+=("$odsd_pid")
wait_for_line "$tmp/odsd.out" "odsd ready" "$odsd_pid" || fail "odsd did not become ready"
odsd_addr=$(sed -n 's/.*odsd ready grpc=\([^ ]*\).*/\1/p' "$tmp/odsd.out" | head -1)

"$ECHO_SERVER" --listen 127.0.0.1:0 >"$tmp/echo.out" 2>"$tmp/echo.out.err" &
echo_pid=$!
pids+=("$echo_pid")
wait_for_line "$tmp/echo.out" "echo ready" "$echo_pid" || fail "echo server did not become ready"
echo_addr=$(sed -n 's/.*echo ready addr=\([^ ]*\).*/\1/p' "$tmp/echo.out" | head -1)
log "redis 127.0.0.1:$redis_port, odsd $odsd_addr, echo $echo_addr"

# --- load the same keys everywhere ------------------------------------------------------------
log "loading $keys keys into redis (SET and HSET with 4 fields)"
awk -v n="$keys" -v vb="$value_bytes" 'BEGIN {
  v = sprintf("%*s", vb, ""); gsub(/ /, "v", v);
  for (i = 0; i < n; i++) {
    k = sprintf("key:%012d", i); h = sprintf("h:%012d", i);
    f1 = sprintf("%d", i); f2 = sprintf("%.6f", i / 3); f3 = (i % 2 == 0) ? "1" : "0";
    printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v;
    printf "*10\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n$2\r\nf0\r\n$%d\r\n%s\r\n$2\r\nf1\r\n$%d\r\n%s\r\n" \
           "$2\r\nf2\r\n$%d\r\n%s\r\n$2\r\nf3\r\n$%d\r\n%s\r\n",
           length(h), h, length(v), v, length(f1), f1, length(f2), f2, length(f3), f3;
  }
}' >"$tmp/load.resp"
"$REDIS_CLI" -h 127.0.0.1 -p "$redis_port" --pipe <"$tmp/load.resp" >"$tmp/load.log" 2>&1 ||
  { cat "$tmp/load.log" >&2; fail "redis --pipe load failed"; }
grep -q "errors: 0" "$tmp/load.log" || { cat "$tmp/load.log" >&2; fail "redis load had errors"; }
dbsize=$("$REDIS_CLI" -h 127.0.0.1 -p "$redis_port" dbsize)
[ "$dbsize" -eq $((2 * keys)) ] || fail "redis holds $dbsize keys, expected $((2 * keys))"

# --- measurements -----------------------------------------------------------------------------
# Rows: name calls/s p50_us p99_us
rows=()

# redis-benchmark stops after -n requests, not after a time: a short calibration run (which is
# also the warm-up) sizes -n so that the measured run lasts about $duration seconds.
redis_bench() {
  local name=$1; shift
  local cal rps n csv
  cal=$("$REDIS_BENCHMARK" -h 127.0.0.1 -p "$redis_port" -c "$concurrency" -n 20000 \
        -r "$keys" -P 1 --csv "$@") || fail "redis-benchmark $name failed"
  rps=$(echo "$cal" | awk -F'"' 'NR == 2 { print $4 }')
  n=$(awk -v r="$rps" -v d="$duration" 'BEGIN { n = int(r * d); print (n < 10000 ? 10000 : n) }')
  "$REDIS_CLI" -h 127.0.0.1 -p "$redis_port" config resetstat >/dev/null
  csv=$("$REDIS_BENCHMARK" -h 127.0.0.1 -p "$redis_port" -c "$concurrency" -n "$n" \
        -r "$keys" -P 1 --csv "$@") || fail "redis-benchmark $name failed"
  echo "$csv" | sed "s/^/  [$name] /" >&2
  local hits misses
  hits=$("$REDIS_CLI" -h 127.0.0.1 -p "$redis_port" info stats | tr -d '\r' |
         awk -F: '/^keyspace_hits/ { print $2 }')
  misses=$("$REDIS_CLI" -h 127.0.0.1 -p "$redis_port" info stats | tr -d '\r' |
           awk -F: '/^keyspace_misses/ { print $2 }')
  [ "$misses" -eq 0 ] || log "$name: $misses keyspace misses ($hits hits)"
  # CSV columns: test, rps, avg, min, p50, p95, p99, max (ms).
  rows+=("$(echo "$csv" | awk -F'"' -v name="$name" 'NR == 2 {
    printf "%s %s %.1f %.1f", name, $4, $10 * 1000, $14 * 1000 }')")
}

ods_bench() {
  local name=$1; shift
  local output
  if ! output=$("$ODS_BENCH" --concurrency "$concurrency" --threads "$client_threads" \
                --duration "$duration" --warmup "$warmup" --keys "$keys" "$@" 2>&1); then
    echo "$output" >&2
    fail "ods_bench $name failed"
  fi
  echo "$output" | sed "s/^/  [$name] /" >&2
  rows+=("$(echo "$output" | awk -v name="$name" '/^RESULT/ {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    printf "%s %s %s %s", name, f["calls_per_s"], f["p50_us"], f["p99_us"] }')")
  last_output=$output
}

log "measuring at concurrency $concurrency, ${duration}s each, $rounds round(s)"
for round in $(seq "$rounds"); do
  [ "$rounds" -eq 1 ] || log "round $round of $rounds"
  redis_bench redis-GET GET 'key:__rand_int__'
  redis_bench redis-HGETALL HGETALL 'h:__rand_int__'
  # Preload once; later rounds reuse the keys.
  preload_flag=
  [ "$round" -eq 1 ] || preload_flag=--no-preload
  ods_bench ods-Get --addr "$odsd_addr" --workload get --value-bytes "$value_bytes" $preload_flag
  # The echo payload is the size of one Get response, so both calls move about the same bytes.
  get_bytes=$(echo "$last_output" | sed -n 's/.*get_response_bytes=\([0-9]*\).*/\1/p' | head -1)
  ods_bench grpc-echo --addr "$echo_addr" --workload echo --value-bytes "${get_bytes:-64}"
done

# --- summary ----------------------------------------------------------------------------------
summary=$(printf '%s\n' "${rows[@]}" | awk -v c="$concurrency" -v k="$keys" -v vb="$value_bytes" \
  -v d="$duration" -v t="$client_threads" -v r="$rounds" -v nproc="$(nproc)" '
  function median(list,    n, v, i, j, x) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++) { x = v[i] + 0; for (j = i - 1; j >= 1 && v[j] + 0 > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  {
    if (!($1 in idx)) { idx[$1] = ++n; name[n] = $1 }
    rps[$1] = rps[$1] " " $2; p50[$1] = p50[$1] " " $3; p99[$1] = p99[$1] " " $4
    all[$1] = all[$1] (all[$1] == "" ? "" : " | ") sprintf("%.0f/s p99 %.0fus", $2, $4)
  }
  END {
    printf "compare: concurrency=%s keys=%s value_bytes=%s duration=%ss rounds=%s ods_bench_threads=%s cores=%s\n",
           c, k, vb, d, r, t, nproc
    printf "%-14s %12s %10s %10s%s\n", "target", "calls/s", "p50_us", "p99_us",
           (r > 1 ? "   (median of rounds; each round: calls/s, p99)" : "")
    for (i = 1; i <= n; i++) {
      x = name[i]; R[x] = median(rps[x]); P50[x] = median(p50[x]); P99[x] = median(p99[x])
      printf "%-14s %12.0f %10.1f %10.1f%s\n", x, R[x], P50[x], P99[x], (r > 1 ? "   " all[x] : "")
    }
    split("redis-GET redis-HGETALL grpc-echo", base, " ")
    printf "%-22s %12s %12s\n", "ratio", "throughput", "p99"
    for (j = 1; j <= 3; j++) {
      b = base[j]
      if (("ods-Get" in idx) && (b in idx) && R[b] > 0 && P99[b] > 0)
        printf "ODS/%-18s %11.2fx %11.2fx\n", b, R["ods-Get"] / R[b], P99["ods-Get"] / P99[b]
    }
  }')
echo "$summary"
[ -z "$out" ] || echo "$summary" >"$out"
