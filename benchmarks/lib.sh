# Shared by the benchmark scripts (sourced, not run): a temp dir, the processes to stop on exit,
# messages, and waiting for a server's readiness line. Before sourcing, set BENCH_SCRIPT (the
# name used in messages) and optionally BENCH_WAIT_SECONDS (default 15).

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
