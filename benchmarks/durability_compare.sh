#!/usr/bin/env bash
# Measures Put over gRPC in each durability mode (none, async, sync) of the table written, at one
# outstanding call and at --concurrency calls, on this machine (data dir under $TMPDIR, which
# must be a real disk for sync to mean anything).
#
# Usage: benchmarks/durability_compare.sh [--duration S] [--warmup S] [--concurrency C]
#                                         [--keys N] [--out FILE]
#   --duration S     seconds per measurement (default 5)
#   --warmup S       ods_bench warm-up seconds before each measurement (default 1)
#   --concurrency C  outstanding Puts of the concurrent measurement (default 16)
#   --keys N         key space written (default 100000)
#   --out FILE       also write the summary table to FILE
# Env: BUILD_DIR (default build), ODSD, ODS_BENCH override the binaries.
#
# For each mode, starts odsd with a temporary config (16 shards, the free-form table
# user_features with `durability: MODE`, durability_window 100ms) on a fresh data dir, then runs
# ods_bench --workload put (one record of four fields per call, f0 = 64 bytes) closed loop at
# concurrency 1 and C, and prints: mode, concurrency, acks/s, p50 and p99 in µs, and for sync the
# fsyncs of the run and acknowledged Puts per fsync (group commit), read from odsd's log at exit.
# Exit: 0 ok, 1 a server or a benchmark failed, 2 bad usage.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
case "$BUILD_DIR" in /*) build="$BUILD_DIR" ;; *) build="$root/$BUILD_DIR" ;; esac
ODSD=${ODSD:-$build/src/main/odsd}
ODS_BENCH=${ODS_BENCH:-$build/benchmarks/ods_bench}

duration=5
warmup=1
concurrency=16
keys=100000
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --keys) keys=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "durability_compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in "$duration" "$warmup" "$concurrency" "$keys"; do
  [[ "$v" =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
    { echo "durability_compare.sh: '$v' is not a number (see --help)" >&2; exit 2; }
done
for bin in "$ODSD" "$ODS_BENCH"; do
  [ -x "$bin" ] || { echo "durability_compare.sh: $bin not built (scripts/build.sh odsd ods_bench)" >&2; exit 1; }
done

BENCH_SCRIPT=durability_compare.sh
# shellcheck source=benchmarks/lib.sh
source "$(dirname "$0")/lib.sh"

rows=()
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for mode in none async sync; do
  mkdir -p "$tmp/$mode"
  cat >"$tmp/$mode/odsd.yaml" <<EOF
# Written by benchmarks/durability_compare.sh.
server: {grpc_listen: "127.0.0.1:0", admin_listen: "", shards: 16}
logging: {level: info}
storage: {data_dir: "$tmp/$mode/data", durability: $mode, durability_window: 100ms}
tables:
  user_features: {key: user_id}
EOF
  "$ODSD" --config "$tmp/$mode/odsd.yaml" >"$tmp/$mode/odsd.out" 2>"$tmp/$mode/odsd.out.err" &
  odsd_pid=$!
  pids+=("$odsd_pid")
  wait_for_line "$tmp/$mode/odsd.out" "odsd ready" "$odsd_pid" ||
    { cat "$tmp/$mode/odsd.out.err" >&2; fail "odsd ($mode) did not become ready"; }
  addr=$(sed -n 's/.*odsd ready grpc=\([^ ]*\).*/\1/p' "$tmp/$mode/odsd.out" | head -1)
  for c in 1 "$concurrency"; do
    output=$("$ODS_BENCH" --addr "$addr" --workload put --concurrency "$c" --duration "$duration" \
             --warmup "$warmup" --keys "$keys" --value-bytes 64 2>&1) ||
      { echo "$output" >&2; fail "ods_bench put ($mode, concurrency $c) failed"; }
    echo "$output" | sed "s/^/  [$mode c=$c] /" >&2
    row=$(echo "$output" | awk -v mode="$mode" -v c="$c" '/^RESULT/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
      printf "%-6s %4s %10s %9s %9s", mode, c, f["calls_per_s"], f["p50_us"], f["p99_us"] }')
    [ -n "$row" ] || fail "ods_bench ($mode) printed no RESULT line"
    rows+=("$row")
  done
  kill -TERM "$odsd_pid"
  wait "$odsd_pid" || fail "odsd ($mode) did not exit cleanly"
  pids=("${pids[@]/$odsd_pid}")
  # The engine logs its durable-tier counters at exit ("durable tier ... batches ... fsyncs").
  grep -h "durable tier.*fsyncs" "$tmp/$mode/odsd.out.err" | sed "s/^/  [$mode] /" >&2 || true
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

{
  echo "durability_compare.sh: Put over gRPC, 1 record/call, ${duration}s each, $(nproc) cores"
  echo "load average at start: $load_start; at end: $load_end"
  printf "%-6s %4s %10s %9s %9s\n" mode conc "acks/s" p50_us p99_us
  for r in "${rows[@]}"; do echo "$r"; done
} | tee ${out:+"$out"}
