#!/usr/bin/env bash
# Load test of issue #7 point 5: 200 concurrent clients for 60 s over mixed Put / Get /
# GetOnlineFeatures / PushEvents against one odsd: zero unexpected errors, p99 reported, RSS
# stable after warm-up.
#
# Usage: benchmarks/load_test.sh [--clients N] [--duration S] [--warmup S] [--channels C]
#                                [--keys K] [--mix P,G,F,E] [--rss-growth-pct X] [--out FILE]
#   --clients N         calls kept outstanding (default 200), see "clients" below
#   --duration S        measured seconds after the warm-up (default 60)
#   --warmup S          seconds of full load before the measurement (default 10, at least 8:
#                       the event state needs 5 s to reach its steady state, see below)
#   --channels C        gRPC channels (TCP connections) the clients share (default 8)
#   --keys K            the bounded key and entity space (default 10000)
#   --mix P,G,F,E       percent of Put, Get, GetOnlineFeatures, PushEvents calls
#                       (default 20,50,20,10)
#   --rss-growth-pct X  fail if odsd's RSS grows by more than X% of its after-warm-up value
#                       during the measurement (default 5), not counting the growth of the
#                       RocksDB memtables and of the event state (accounted, see below)
#   --out FILE          also write the summary to FILE
# Env: BUILD_DIR (default build), ODSD, ODS_BENCH override the binaries.
#
# What runs: odsd with a temporary config (the table user_features with `durability: async`,
# written through to RocksDB; the event template tx {user, ts, amount double, merchant string}
# with history_retention 5s; aggregations tx_count count, amount_sum sum, merchants
# distinct_count, each over windows [2s, 5s] with 1 s tiles: 6 feature refs). The key space is
# preloaded (one Put per key, one event per entity), then ods_bench --workload all keeps N calls
# outstanding (closed loop) over C channels for warm-up + duration seconds: Put of one record,
# Get of one key, GetOnlineFeatures of 10 entities x 4 features, PushEvents of one event, keys
# and entities uniform over the K keys. A "client" is one outstanding call restarted as soon as
# it completes (a closed-loop user); the clients are spread over C HTTP/2 connections
# (C client threads, N/C calls each) as an application's connection pool would.
#
# Why the memory must plateau: keys are bounded (every Put replaces one of K records, all present
# from the preload); events older than 5 s leave the history, their tiles fall out of every
# window after 5 s, and idle entities are swept. Two things odsd accounts for still grow and
# are subtracted before the check: the RocksDB memtables of the durable table, with every Put
# until RocksDB flushes them (64 MiB write buffer; ods_rocksdb_memtable_bytes), and the event
# state's reserved capacity (ods_event_state_bytes counts capacity, and an entity's buffers keep
# the largest size a burst of its events needed: +2-3 MiB over a 60 s window at ~35k calls/s).
#
# Prints per operation: calls, calls/s, p50/p99/max latency and errors (with each error's code
# and message), then odsd's RSS (VmRSS, sampled every second) after the warm-up, at the end and
# its peak, the memtable growth, and the load average. Exit: 0 no error and RSS stable; 1 an
# error, a failed call, or RSS growth over the threshold; 2 bad usage.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
case "$BUILD_DIR" in /*) build="$BUILD_DIR" ;; *) build="$root/$BUILD_DIR" ;; esac
ODSD=${ODSD:-$build/src/main/odsd}
ODS_BENCH=${ODS_BENCH:-$build/benchmarks/ods_bench}

clients=200
duration=60
warmup=10
channels=8
keys=10000
mix=20,50,20,10
rss_growth_pct=5
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --channels) channels=$2; shift 2 ;;
    --keys) keys=$2; shift 2 ;;
    --mix) mix=$2; shift 2 ;;
    --rss-growth-pct) rss_growth_pct=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,44p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "load_test.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in "$clients" "$duration" "$warmup" "$channels" "$keys" "$rss_growth_pct"; do
  [[ "$v" =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
    { echo "load_test.sh: '$v' is not a number (see --help)" >&2; exit 2; }
done
for v in "$clients" "$duration" "$warmup" "$channels" "$keys"; do
  [[ "$v" =~ ^[0-9]+$ ]] || { echo "load_test.sh: '$v' must be a whole number" >&2; exit 2; }
done
[ "$warmup" -ge 8 ] || { echo "load_test.sh: --warmup must be at least 8 s (see --help)" >&2; exit 2; }
[ "$duration" -ge 5 ] || { echo "load_test.sh: --duration must be at least 5 s" >&2; exit 2; }
for bin in "$ODSD" "$ODS_BENCH"; do
  [ -x "$bin" ] || { echo "load_test.sh: $bin not built (scripts/build.sh odsd ods_bench)" >&2; exit 1; }
done

BENCH_SCRIPT=load_test.sh
# shellcheck source=benchmarks/lib.sh
source "$(dirname "$0")/lib.sh"

features=tx_count@5s,amount_sum@2s,amount_sum@5s,merchants@5s

mkdir -p "$tmp/data"
cat >"$tmp/odsd.yaml" <<EOF
# Written by benchmarks/load_test.sh.
server: {grpc_listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0"}
storage: {data_dir: "$tmp/data", durability: none, durability_window: 100ms}
tables:
  user_features: {key: user_id, durability: async}
event_templates:
  tx:
    key: user
    timestamp: ts
    fields: {amount: double, merchant: string}
    history_retention: 5s
    dedup_window: 0s
aggregations:
  tx_count: {template: tx, fn: count, windows: [2s, 5s], tile: 1s}
  amount_sum: {template: tx, fn: sum, field: amount, windows: [2s, 5s], tile: 1s}
  merchants: {template: tx, fn: distinct_count, field: merchant, windows: [2s, 5s], tile: 1s}
EOF
"$ODSD" --config "$tmp/odsd.yaml" >"$tmp/odsd.out" 2>"$tmp/odsd.out.err" &
odsd_pid=$!
pids+=("$odsd_pid")
wait_for_line "$tmp/odsd.out" "odsd ready" "$odsd_pid" ||
  { cat "$tmp/odsd.out.err" >&2; fail "odsd did not become ready"; }
odsd_addr=$(sed -n 's/.*odsd ready grpc=\([^ ]*\).*/\1/p' "$tmp/odsd.out" | head -1)
admin_addr=$(sed -n 's/.*odsd ready .*admin=\([^ ]*\).*/\1/p' "$tmp/odsd.out" | head -1)
log "odsd $odsd_addr (admin $admin_addr), pid $odsd_pid"

# One sample of /metrics (whole text).
scrape() {
  exec 3<>"/dev/tcp/${admin_addr%:*}/${admin_addr##*:}" || fail "cannot reach odsd's admin endpoint"
  printf 'GET /metrics HTTP/1.0\r\nHost: odsd\r\n\r\n' >&3
  cat <&3
  exec 3>&-
}
# Value of the unlabelled sample `name` in a scrape ($1 file), 0 if absent.
metric() { awk -v n="$2" '$1 == n { v = $2 } END { print v + 0 }' "$1"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$odsd_pid/status"; }

log "preloading $keys records and one event per entity"
"$ODS_BENCH" --addr "$odsd_addr" --workload load --keys "$keys" --concurrency 4 \
  >"$tmp/preload.log" 2>&1 || { cat "$tmp/preload.log" >&2; fail "preloading records failed"; }
"$ODS_BENCH" --addr "$odsd_addr" --workload load-events --keys "$keys" --concurrency 4 \
  >>"$tmp/preload.log" 2>&1 || { cat "$tmp/preload.log" >&2; fail "preloading events failed"; }
sed 's/^/  /' "$tmp/preload.log" >&2

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "load: $clients clients over $channels channels, mix put,get,features,push = $mix," \
    "${warmup}s warm-up + ${duration}s"
start_ns=$(date +%s%N)
"$ODS_BENCH" --addr "$odsd_addr" --workload all --mix "$mix" --concurrency "$clients" \
  --threads "$channels" --duration "$duration" --warmup "$warmup" --keys "$keys" --no-preload \
  --batch 1 --entities 10 --features "$features" >"$tmp/bench.log" 2>&1 &
bench_pid=$!
pids+=("$bench_pid")

# Every second: milliseconds since the load started, RSS (KiB) and the memtables' bytes (from
# /metrics); the whole /metrics at the end of the warm-up and at the end.
: >"$tmp/rss.txt"
scraped_warm=0
sample() {
  local t
  t=$(( ($(date +%s%N) - start_ns) / 1000000 ))
  scrape >"$tmp/metrics.now"
  echo "$t $(rss_kib) $(metric "$tmp/metrics.now" ods_rocksdb_memtable_bytes)" \
    "$(metric "$tmp/metrics.now" ods_event_state_bytes)" >>"$tmp/rss.txt"
  if [ "$scraped_warm" = 0 ] && [ "$t" -ge $((warmup * 1000)) ]; then
    cp "$tmp/metrics.now" "$tmp/metrics.warm"; scraped_warm=1
  fi
}
while kill -0 "$bench_pid" 2>/dev/null; do
  kill -0 "$odsd_pid" 2>/dev/null || fail "odsd died during the load"
  sample
  sleep 1
done
bench_rc=0
wait "$bench_pid" || bench_rc=$?
pids=("${pids[@]/$bench_pid}")
kill -0 "$odsd_pid" 2>/dev/null || fail "odsd died during the load"
sample
cp "$tmp/metrics.now" "$tmp/metrics.end"
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
[ "$scraped_warm" = 1 ] || fail "the load ended before the warm-up did (see $tmp/bench.log)"
sed 's/^/  [ods_bench] /' "$tmp/bench.log" >&2

# Over the window (after the warm-up): RSS at its start and end and its peak; and RSS without the
# memtables and the event state (residual), as medians of the window's first and last thirds
# (20 samples of a 60 s window), so that a memtable flush does not decide: the memtable gauge
# drops by a whole memtable at once while RSS drops by what was touched, which lifts the
# residual by a few MiB
# for ~10 s (seen 60.1 -> 65.9 -> 63 MiB); with medians of 5 samples one flush in the last 10 s
# of the window read as growth (+6.3%, a fresh-clone CI run on 2026-12-03). A leak still shows:
# it raises the last third over the first by two thirds of its growth over the window.
read -r rss_warm rss_end rss_peak mem_warm mem_end res_warm res_end < <(
  awk -v w=$((warmup * 1000)) -v e=$(((warmup + duration) * 1000)) '
  function median(a, from, k, n,    v, i, j, x, m) {
    m = 0
    for (i = from; i < from + k && i <= n; i++) v[++m] = a[i]
    for (i = 2; i <= m; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
    return m == 0 ? 0 : (m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2)
  }
  $1 >= w && $1 <= e + 1500 {
    n++; rss[n] = $2; mem[n] = $3 / 1024; res[n] = $2 - ($3 + $4) / 1024
    if ($2 > peak) peak = $2
  }
  END {
    if (n == 0) { print 0, 0, 0, 0, 0, 0, 0; exit }
    k = int(n / 3); if (k < 5) k = 5
    print rss[1], rss[n], peak, mem[1], mem[n], median(res, 1, k, n), median(res, (n > k ? n - k + 1 : 1), k, n)
  }' "$tmp/rss.txt")
# odsd's own accounting, after the warm-up -> at the end, to tell where memory goes.
gauges=$(for g in ods_records ods_ram_bytes ods_entities ods_event_state_bytes \
                  ods_rocksdb_memtable_bytes ods_rocksdb_block_cache_bytes; do
  printf '%s %s -> %s\n' "$g" "$(metric "$tmp/metrics.warm" "$g")" "$(metric "$tmp/metrics.end" "$g")"
done)
summary=$(awk -v c="$clients" -v ch="$channels" -v d="$duration" -v w="$warmup" -v k="$keys" \
  -v mix="$mix" -v rw="$rss_warm" -v re="$rss_end" -v rp="$rss_peak" -v mw="$mem_warm" \
  -v me="$mem_end" -v sw="$res_warm" -v se="$res_end" -v pct="$rss_growth_pct" \
  -v ls="$load_start" -v le="$load_end" -v nproc="$(nproc)" -v rc="$bench_rc" '
  /^ods_bench / || /^all:/ || /^features:/ { next }
  /^RESULT/ {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    op = f["op"]; rows[++n] = op; cps[op] = f["calls_per_s"]; p50[op] = f["p50_us"]
    p99[op] = f["p99_us"]; mx[op] = f["max_us"]; err[op] = f["errors"]; errors += f["errors"]
    next
  }
  /errors: [0-9]+ x/ { kinds = kinds "  " $0 "\n" }
  /calls failed/ { failed = 1 }
  END {
    printf "load_test.sh: %d clients (outstanding calls) over %d channels, mix put,get,features,push = %s, keys %d, %ds warm-up + %ds, %d cores\n", c, ch, mix, k, w, d, nproc
    printf "load average (1/5/15 min) at start: %s; at end: %s\n", ls, le
    printf "%-9s %10s %10s %10s %10s %8s\n", "op", "calls/s", "p50_us", "p99_us", "max_us", "errors"
    for (i = 1; i <= n; i++) { o = rows[i]; tot += cps[o]
      printf "%-9s %10.0f %10.1f %10.1f %10.1f %8d\n", o, cps[o], p50[o], p99[o], mx[o], err[o] }
    printf "%-9s %10.0f\n", "total", tot
    printf "errors: %d%s\n", errors, (rc != 0 && errors == 0 ? " (ods_bench failed, see its output)" : "")
    if (kinds != "") printf "%s", kinds
    growth = re - rw
    printf "odsd RSS: %.1f MiB after warm-up, %.1f MiB at the end (%+.1f MiB, %+.2f%%), peak %.1f MiB\n", rw / 1024, re / 1024, growth / 1024, (rw > 0 ? 100 * growth / rw : 0), rp / 1024
    printf "RocksDB memtables: %.1f MiB after warm-up, %.1f MiB at the end (%+.1f MiB; bounded by the write buffers, 2 x 64 MiB)\n", mw / 1024, me / 1024, (me - mw) / 1024
    adj = se - sw
    limit = rw * pct / 100
    printf "RSS without the memtables and event state (medians of the window'"'"'s first / last third): %.1f -> %.1f MiB, %+.1f MiB (%+.2f%% of RSS after warm-up; limit %.1f%%): %s\n", sw / 1024, se / 1024, adj / 1024, (rw > 0 ? 100 * adj / rw : 0), pct, (adj <= limit ? "stable" : "GROWING")
    if (rw == 0) print "no RSS sample after the warm-up"
    exit (errors > 0 || rc != 0 || adj > limit || rw == 0) ? 1 : 0
  }' "$tmp/bench.log") && verdict=0 || verdict=$?
summary="$summary
odsd's gauges, after the warm-up -> at the end:
$(echo "$gauges" | sed 's/^/  /')"
echo "$summary"
[ -z "$out" ] || echo "$summary" >"$out"
echo "samples (seconds since the load started: RSS MiB / RSS without memtables and event state MiB):" >&2
awk '{ printf "%s%.0f:%.1f/%.1f", (NR > 1 ? " " : "  "), $1 / 1000, $2 / 1024, ($2 - ($3 + $4) / 1024) / 1024 }
     END { print "" }' "$tmp/rss.txt" >&2
if [ "$verdict" -ne 0 ]; then
  log "FAILED: errors, or odsd's RSS grew after the warm-up"
  exit 1
fi
kill -TERM "$odsd_pid"
wait "$odsd_pid" || fail "odsd did not exit cleanly after the load"
pids=("${pids[@]/$odsd_pid}")
log "ok"
