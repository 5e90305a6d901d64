#!/usr/bin/env bash
# Configures and builds ODS. Usage: scripts/build.sh [--sanitize] [ninja targets...]
#   --sanitize   ASan+UBSan build in build-asan/ (default: build/, RelWithDebInfo)
# Env: BUILD_DIR overrides the directory, JOBS the parallelism (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
sanitize=OFF
if [ "${1:-}" = "--sanitize" ]; then sanitize=ON; shift; fi
default_dir=build
[ "$sanitize" = ON ] && default_dir=build-asan
BUILD_DIR=${BUILD_DIR:-$default_dir}
mkdir -p "$BUILD_DIR"
# The sanitizer build is for tests only: benchmarks under ASan measure nothing useful.
benchmarks=ON
[ "$sanitize" = ON ] && benchmarks=OFF
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DODS_SANITIZE=$sanitize \
  -DODS_BUILD_BENCHMARKS=$benchmarks \
  >"$BUILD_DIR/configure.log" 2>&1 || { cat "$BUILD_DIR/configure.log"; exit 1; }
cmake --build "$BUILD_DIR" -j "${JOBS:-2}" -- "$@"
