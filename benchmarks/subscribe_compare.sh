#!/usr/bin/env bash
# Measures Put over gRPC with no subscriber, with one stalled subscriber and with one live
# subscriber of the table written, on one odsd, and prints each mode's acks/s and its ratio to
# no subscriber (issue #7 point 2: a stalled subscriber must not slow writers; target >= 0.90).
#
# Usage: benchmarks/subscribe_compare.sh [--duration S] [--warmup S] [--concurrency C]
#                                        [--rounds R] [--out FILE]
#   --duration S     seconds per measurement (default 5)
#   --warmup S       ods_bench warm-up seconds before each measurement (default 1)
#   --concurrency C  outstanding Puts (default 16)
#   --rounds R       rounds of the four modes, alternated to spread drift (default 2)
#   --out FILE       also write the summary table to FILE
# Env: BUILD_DIR (default build), ODSD, ODS, ODS_BENCH override the binaries.
#
# Starts odsd with a temporary config (16 shards, the free-form table user_features, durability
# none, the default subscriptions section), then per round and mode runs ods_bench --workload
# put (one record of four fields per call, f0 = 64 bytes) closed loop at concurrency C:
#   none     no subscriber
#   stalled  `ods subscribe --table user_features`, stopped with SIGSTOP once it printed its first
#            message: it holds its stream open and reads nothing
#   stalled-default  examples/python/ods_subscribe.py --bdp-probe, stopped the same way: a
#            third-party client that kept gRPC C-core's default multi-MB receive window, so odsd's
#            socket backs up (odsd holds the stream; docs/architecture.md, "Subscriptions")
#   live     the same subscriber, running, printing every change to /dev/null
# Prints per mode the median acks/s over the rounds, p99 of the last round, and acks/s over the
# no-subscriber median. Exit: 0 ok, 1 a server or a benchmark failed, 2 bad usage.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
case "$BUILD_DIR" in /*) build="$BUILD_DIR" ;; *) build="$root/$BUILD_DIR" ;; esac
ODSD=${ODSD:-$build/src/main/odsd}
ODS=${ODS:-$build/src/cli/ods}
ODS_BENCH=${ODS_BENCH:-$build/benchmarks/ods_bench}
PYTHON3=/usr/bin/python3  # Debian's, which python3-grpcio installs into
STUBS=$build/examples/python/gen

duration=5
warmup=1
concurrency=16
rounds=2
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "subscribe_compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in "$duration" "$warmup" "$concurrency" "$rounds"; do
  [[ "$v" =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
    { echo "subscribe_compare.sh: '$v' is not a number (see --help)" >&2; exit 2; }
done
for bin in "$ODSD" "$ODS" "$ODS_BENCH" "$PYTHON3"; do
  [ -x "$bin" ] || { echo "subscribe_compare.sh: $bin not built (scripts/build.sh odsd ods ods_bench)" >&2; exit 1; }
done
[ -f "$STUBS/ods/v1/features_pb2.py" ] ||
  { echo "subscribe_compare.sh: no Python stubs in $STUBS (scripts/build.sh ods_python_stubs)" >&2; exit 1; }

BENCH_SCRIPT=subscribe_compare.sh
# shellcheck source=benchmarks/lib.sh
source "$(dirname "$0")/lib.sh"

cat >"$tmp/odsd.yaml" <<EOF
# Written by benchmarks/subscribe_compare.sh.
server: {grpc_listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", shards: 16}
logging: {level: warn}
storage: {data_dir: "$tmp/data", durability: none}
tables:
  user_features: {key: user_id}
EOF
"$ODSD" --config "$tmp/odsd.yaml" >"$tmp/odsd.out" 2>"$tmp/odsd.out.err" &
odsd_pid=$!
pids+=("$odsd_pid")
wait_for_line "$tmp/odsd.out" "odsd ready" "$odsd_pid" ||
  { cat "$tmp/odsd.out.err" >&2; fail "odsd did not become ready"; }
addr=$(sed -n 's/.*odsd ready grpc=\([^ ]*\).*/\1/p' "$tmp/odsd.out" | head -1)
admin=$(sed -n 's/.*odsd ready grpc=[^ ]* admin=\([^ ]*\).*/\1/p' "$tmp/odsd.out" | head -1)

# Starts a subscriber printing to $1 (`ods subscribe`, or with $2 = python the Python example
# with gRPC's default window); sets sub_pid once it printed its first message.
sub_pid=
start_subscriber() {
  # Emptied here, not by the redirect: the child truncates only once it runs, so waiting for the
  # line could otherwise find the previous round's and stop a subscriber that never subscribed.
  : >"$1"
  if [ "${2:-}" = python ]; then
    "$PYTHON3" "$root/examples/python/ods_subscribe.py" --stubs "$STUBS" --target "$addr" \
      --table user_features --bdp-probe >"$1" 2>"$1.err" &
  else
    "$ODS" --addr "$addr" --timeout 3600 subscribe --table user_features >"$1" 2>"$1.err" &
  fi
  sub_pid=$!
  pids+=("$sub_pid")
  wait_for_line "$1" "next_sequence" "$sub_pid" || fail "subscriber ($mode) did not start"
}
stop_subscriber() {
  kill -CONT "$sub_pid" 2>/dev/null || true
  kill -TERM "$sub_pid" 2>/dev/null || true
  wait "$sub_pid" 2>/dev/null || true
  pids=("${pids[@]/$sub_pid}")
}

declare -A acks p99
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$rounds"); do
  for mode in none stalled stalled-default live; do
    case "$mode" in
      stalled) start_subscriber "$tmp/sub.out"; kill -STOP "$sub_pid" ;;
      stalled-default) start_subscriber "$tmp/sub.out" python; kill -STOP "$sub_pid" ;;
      live) start_subscriber "$tmp/live.out" ;;
    esac
    output=$("$ODS_BENCH" --addr "$addr" --workload put --concurrency "$concurrency" \
             --duration "$duration" --warmup "$warmup" --value-bytes 64 2>&1) ||
      { echo "$output" >&2; fail "ods_bench put ($mode) failed"; }
    if [ "${mode#stalled}" != "$mode" ]; then
      # While it is still stopped: the server sees its lag (and, over the rounds, its holds).
      curl -s "http://$admin/metrics" 2>/dev/null |
        grep -E '^ods_(subscribers|subscriber_max_lag|subscription_gaps_total|subscriber_socket_holds_total) ' |
        sed "s/^/  [round $round stalled] /" >&2 || true
    fi
    [ "$mode" = none ] || stop_subscriber
    line=$(echo "$output" | grep '^RESULT') || fail "ods_bench ($mode) printed no RESULT line"
    echo "  [round $round $mode] $line" >&2
    a=$(echo "$line" | tr ' ' '\n' | sed -n 's/^calls_per_s=//p')
    acks[$mode]="${acks[$mode]:-} $a"
    p99[$mode]=$(echo "$line" | tr ' ' '\n' | sed -n 's/^p99_us=//p')
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
kill -TERM "$odsd_pid"
wait "$odsd_pid" || fail "odsd did not exit cleanly"
pids=("${pids[@]/$odsd_pid}")

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {
  if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
base=$(echo "${acks[none]}" | median)
{
  echo "subscribe_compare.sh: Put over gRPC, 1 record/call, concurrency $concurrency," \
       "${duration}s x $rounds rounds per mode, $(nproc) cores"
  echo "load average at start: $load_start; at end: $load_end"
  printf "%-15s %12s %9s %8s   %s\n" mode "acks/s(med)" p99_us ratio "acks/s per round"
  for mode in none stalled stalled-default live; do
    m=$(echo "${acks[$mode]}" | median)
    printf "%-15s %12s %9s %8s  %s\n" "$mode" "$m" "${p99[$mode]}" \
      "$(awk -v a="$m" -v b="$base" 'BEGIN { printf "%.3f", a / b }')" "${acks[$mode]}"
  done
} | tee ${out:+"$out"}
