#!/usr/bin/env bash
# Sets up (Debian packages), builds and runs the whole ODS test suite with ctest.
# Usage: scripts/test.sh [--sanitize]   (--sanitize: the ASan+UBSan build, in build-asan/)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh "$@"
dir=build
[ "${1:-}" = "--sanitize" ] && dir=build-asan
dir=${BUILD_DIR:-$dir}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$dir" --output-on-failure -j 2 --timeout 300
