# Shared by the benchmark scripts (sourced, not run): a temp dir, the processes to stop on exit,
# messages, and waiting for a server's readiness line. Before sourcing, set BENCH_SCRIPT (the
# name used in messages) and optionally BENCH_WAIT_SECONDS (default 15); start_redis needs
# REDIS_SERVER and REDIS_CLI.

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ods-${BENCH_SCRIPT%.sh}.XXXXXX")
pids=()  # processes started by the script; cleanup stops them
halt_poll_file=/sys/module/haltpoll/parameters/guest_halt_poll_ns
halt_poll_restore=  # the value cleanup writes back when set_halt_poll changed it
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$halt_poll_restore" ]; then
    echo "$halt_poll_restore" >"$halt_poll_file" 2>/dev/null ||
      log "could not restore $halt_poll_file to $halt_poll_restore"
  fi
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

# The VM's vCPU halt polling (KVM guests whose cpuidle driver is haltpoll): how long an idle
# vCPU polls before it halts and has to be woken by the host (ods/common/vcpu_idle.h,
# docs/operations.md). Prints "off (guest_halt_poll_ns=0)", "on (guest_halt_poll_ns=N)" or
# "n/a (cpuidle driver D)".
halt_poll_state() {
  local driver
  driver=$(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || true)
  if [ "$driver" != haltpoll ] || [ ! -r "$halt_poll_file" ]; then
    echo "n/a (cpuidle driver ${driver:-unknown})"
  elif [ "$(cat "$halt_poll_file")" = 0 ]; then
    echo "off (guest_halt_poll_ns=0)"
  else
    echo "on (guest_halt_poll_ns=$(cat "$halt_poll_file"))"
  fi
}
# Sets the halt polling to NS nanoseconds for the script's run (root); cleanup restores the
# value it had. Fails the script on a machine without haltpoll or without the right to set it.
set_halt_poll() {  # ns
  local driver
  driver=$(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || true)
  if [ "$driver" != haltpoll ] || [ ! -r "$halt_poll_file" ]; then
    fail "--halt-poll-ns: this machine's cpuidle driver is '${driver:-unknown}', not haltpoll (a KVM guest's)"
  fi
  local was
  was=$(cat "$halt_poll_file")
  echo "$1" 2>/dev/null >"$halt_poll_file" ||
    fail "--halt-poll-ns: cannot write $halt_poll_file (run as root)"
  [ -n "$halt_poll_restore" ] || halt_poll_restore=$was
  log "vCPU halt polling set to $1 ns for this run (was $was; restored on exit)"
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
