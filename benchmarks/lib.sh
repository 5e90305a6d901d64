# Shared by the benchmark scripts (sourced, not run): a temp dir, the processes to stop on exit,
# messages, and waiting for a server's readiness line. Before sourcing, set BENCH_SCRIPT (the
# name used in messages) and optionally BENCH_WAIT_SECONDS (default 15); start_redis needs
# REDIS_SERVER and REDIS_CLI.

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ods-${BENCH_SCRIPT%.sh}.XXXXXX")
pids=()  # processes started by the script; cleanup stops them
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "$BENCH_SCRIPT: $*" >&2; }
fail() { log "$*"; exit 1; }

# Waits up to BENCH_WAIT_SECONDS for `pattern` in `file`; fails if process `pid` dies first.
wait_for_line() {
  local file=$1 pattern=$2 pid=$3 i
  for i in $(seq $((${BENCH_WAIT_SECONDS:-15} * 10))); do
    grep -q "$pattern" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$file" "$file.err" >&2 2>/dev/null; return 1; }
    sleep 0.1
  done
  return 1
}

# Starts redis-server on a free loopback port with persistence off, logging to $tmp/NAME.log;
# sets redis_port and redis_pid and adds the process to pids. Fails the script if it cannot.
redis_port=
redis_pid=
start_redis() {  # name
  local attempt port pid i
  redis_port=; redis_pid=
  for attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    [ -n "$(ss -Htln "sport = :$port" 2>/dev/null)" ] && continue
    "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
      --dir "$tmp" >"$tmp/$1.log" 2>&1 &
    pid=$!
    for i in $(seq 50); do
      "$REDIS_CLI" -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if "$REDIS_CLI" -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
      pids+=("$pid"); redis_port=$port; redis_pid=$pid; return 0
    fi
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  done
  cat "$tmp/$1.log" >&2
  fail "redis-server did not start"
}
