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
# Sanitizer build: -O1 (what ASan recommends) with line tables only, which compiles in a fraction
# of RelWithDebInfo's time and keeps assertions (no NDEBUG) on.
build_type=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
[ "$sanitize" = ON ] && build_type=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1")
cmake -S . -B "$BUILD_DIR" -G Ninja "${build_type[@]}" -DODS_SANITIZE=$sanitize \
  -DODS_BUILD_BENCHMARKS=$benchmarks \
  >"$BUILD_DIR/configure.log" 2>&1 || { cat "$BUILD_DIR/configure.log"; exit 1; }
cmake --build "$BUILD_DIR" -j "${JOBS:-2}" -- "$@"
