#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, docs/fuzzing.md) with clang, ASan+UBSan, in build-fuzz/
# and runs each for SECONDS (default 30) from its committed seed corpus. Fails if a fuzzer
# reports a crash, leak, timeout or sanitizer error; the reproducer is kept under
# build-fuzz/artifacts/<target>/ (rerun it with build-fuzz/fuzz/<target> FILE).
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (default: every target)
# Env: BUILD_DIR (default build-fuzz), JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(config_fuzzer record_codec_fuzzer predicate_fuzzer
                                     feature_ref_fuzzer request_fuzzer cold_rows_fuzzer)
BUILD_DIR=${BUILD_DIR:-build-fuzz}
mkdir -p "$BUILD_DIR"
# -O1 with line tables, as the sanitizer build: fast to compile, readable stack traces.
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
  "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1" -DODS_FUZZ=ON -DODS_BUILD_TESTS=OFF \
  -DODS_BUILD_BENCHMARKS=OFF >"$BUILD_DIR/configure.log" 2>&1 \
  || { cat "$BUILD_DIR/configure.log"; exit 1; }
cmake --build "$BUILD_DIR" -j "${JOBS:-2}" --target "${targets[@]}"
root=$PWD
build=$(cd "$BUILD_DIR" && pwd)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fail=0
for t in "${targets[@]}"; do
  # New inputs go to a scratch corpus; the committed seeds (fuzz/corpus/<target>) stay as they are.
  work="$build/corpus/$t"
  artifacts="$build/artifacts/$t"
  mkdir -p "$work" "$artifacts"
  log="$build/fuzz-$t.log"
  # The fuzzers run in a scratch directory: relative paths in fuzzed configs resolve there.
  if (cd "$artifacts" && "$build/fuzz/$t" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 -artifact_prefix="$artifacts/" \
        "$work" "$root/fuzz/corpus/$t") >"$log" 2>&1; then
    echo "fuzz: $t ok ($(grep -m1 -oE 'stat::number_of_executed_units: *[0-9]+' "$log" |
      grep -oE '[0-9]+$') runs in ${seconds}s)"
  else
    echo "fuzz: $t FAILED; log $log, reproducer in $artifacts:" >&2
    grep -E 'ERROR|SUMMARY|Test unit written|^    #[0-9]+ ' "$log" | head -40 >&2
    fail=1
  fi
done
exit $fail
