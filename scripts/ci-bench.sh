#!/usr/bin/env bash
# CI benchmark pass (< 5 minutes on 2 cores): engine, features and codec micro-benchmarks
# with the 1-thread vs 2-thread items/s ratio of Engine Get and Put and Features Ingest and
# Online, then a short benchmarks/compare.sh (odsd vs redis vs gRPC echo) and a short
# benchmarks/features_compare.sh (features API vs its promises and redis HMGET), a short
# benchmarks/subscribe_compare.sh (Put with no, a stalled, a stalled default-window and a live
# subscriber), then the load
# test of issue #7 (benchmarks/load_test.sh: 200 clients for 60 s). Prints figures only: fails if
# a benchmark cannot run, never on a speed (shared CI machines are too noisy to gate on); the load
# test also fails on any failed call or on odsd's RSS growing after its warm-up, which are bugs
# rather than noise. Full runs: docs/benchmarks.md.
# Env: BUILD_DIR (default build, as built by scripts/test.sh), BENCH_FILTER, BENCH_MIN_TIME,
#      COMPARE_DURATION (seconds per compare and features_compare measurement, default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR=${BUILD_DIR:-build}
filter=${BENCH_FILTER:-'BM_Engine_(Get|GetBatch|Put)/typed:0/|BM_Engine_SpinBaseline|BM_Codec_|BM_Features_(Ingest|Online)/'}
min_time=${BENCH_MIN_TIME:-0.2}
compare_duration=${COMPARE_DURATION:-3}

bash scripts/build.sh ods_micro_bench ods_bench ods_echo_server odsd ods

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ods-ci-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "== micro-benchmarks (filter '$filter', min_time ${min_time}s, $(nproc) cores)"
"$BUILD_DIR/benchmarks/ods_micro_bench" --benchmark_filter="$filter" \
  --benchmark_min_time="$min_time" --benchmark_out="$tmp/micro.csv" --benchmark_out_format=csv

# CSV: name,iterations,real_time,cpu_time,time_unit,bytes_per_second,items_per_second,label,
#      error_occurred,error_message
if awk -F, 'NR > 1 && $9 == "true" { bad = 1 } END { exit !bad }' "$tmp/micro.csv"; then
  echo "ci-bench: a micro-benchmark reported an error" >&2
  exit 1
fi
# The tier benchmarks report per-call p50/p99 counters, which the CSV reporter refuses to mix
# with benchmarks without them: they run on their own, to the console.
echo "== tiering micro-benchmarks (Get by tier with p50/p99, a sweep step's lock hold)"
"$BUILD_DIR/benchmarks/ods_micro_bench" --benchmark_filter='BM_Tier_(Get|SweepStepHold)' \
  --benchmark_min_time="$min_time"
echo "== thread scaling (items/s at 2 threads / 1 thread; the project expects >= 1.6 on 2 cores)"
printf "%-32s %14s %14s %7s\n" benchmark "items/s@1" "items/s@2" ratio
awk -F, '
  /^"BM_(Engine|Features)_/ {
    name = $1; gsub(/"/, "", name)
    if (match(name, /\/threads:[0-9]+$/) == 0) next
    threads = substr(name, RSTART + 9); base = substr(name, 1, RSTART - 1)
    sub(/\/real_time$/, "", base)
    ips[base, threads] = $7; seen[base] = 1
  }
  END {
    for (b in seen) if (ips[b, 1] > 0)
      printf "%-32s %14.0f %14.0f %6.2fx\n", b, ips[b, 1], ips[b, 2], ips[b, 2] / ips[b, 1]
  }' "$tmp/micro.csv" | sort

echo "== compare: odsd vs redis vs gRPC echo (${compare_duration}s each)"
bash benchmarks/compare.sh --duration "$compare_duration" --warmup 1 --out "$tmp/compare.txt" \
  2>"$tmp/compare.log" || { cat "$tmp/compare.log" >&2; echo "ci-bench: compare.sh failed" >&2; exit 1; }

echo "== features_compare: features API vs its promises and redis HMGET (${compare_duration}s each)"
bash benchmarks/features_compare.sh --duration "$compare_duration" --warmup 1 --keys 20000 \
  --rounds 1 --out "$tmp/features.txt" 2>"$tmp/features.log" ||
  { cat "$tmp/features.log" >&2; echo "ci-bench: features_compare.sh failed" >&2; exit 1; }

echo "== subscribe_compare: Put with no, a stalled (two kinds) and a live subscriber (${compare_duration}s each)"
bash benchmarks/subscribe_compare.sh --duration "$compare_duration" --warmup 1 --rounds 1 \
  --out "$tmp/subscribe.txt" 2>"$tmp/subscribe.log" ||
  { cat "$tmp/subscribe.log" >&2; echo "ci-bench: subscribe_compare.sh failed" >&2; exit 1; }
# Issue #7 point 5, each run: 200 clients over mixed Put/Get/GetOnlineFeatures/PushEvents for 60 s
# after a 30 s warm-up; zero errors and RSS stable after the warm-up, or the step fails (an error
# or a leak is a bug, not noise; the p99 figures are printed, not gated). 30 s, not 10 or 20: at
# ~30k calls/s the event state and malloc's arenas still fill after 20 s on some runs (one
# fresh-clone CI run saw RSS less memtables climb 54 -> 58 MiB over seconds 10-20; another, on
# 2026-12-03, 43 -> 58 MiB over the first 15 s and on to 65 MiB by second 80, +6.3% of the
# window, while the event state shrank 13.2 -> 8.7 MB; two others at the same code: +2.0%, +2.4%).
echo "== load test: 200 clients, mixed Put/Get/GetOnlineFeatures/PushEvents, 30 s warm-up + 60 s"
bash benchmarks/load_test.sh --clients 200 --duration 60 --warmup 30 --out "$tmp/load.txt" \
  2>"$tmp/load.log" || { cat "$tmp/load.log" "$tmp/load.txt" >&2; echo "ci-bench: load_test.sh failed" >&2; exit 1; }
