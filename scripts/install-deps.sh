#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of ODS from Debian 12 packages.
# Idempotent: when every package is already present it only checks and returns (no apt-get update).
# Must run as root (or with sudo available). Nothing is downloaded outside apt.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  # API: gRPC + protobuf (+ the gRPC codegen plugin)
  libgrpc++-dev libgrpc-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  # storage, logging, config, sandbox, backing store
  librocksdb-dev libspdlog-dev libfmt-dev libboost-dev libyaml-cpp-dev liblua5.4-dev libpqxx-dev
  # backing store: zstd compression and zlib's crc32 for segment files (libpq-dev comes with
  # libpqxx-dev)
  libzstd-dev zlib1g-dev libpq-dev
  libabsl-dev
  # TLS checks and API key digests (libcrypto); tests make certificates with the openssl command
  libssl-dev openssl
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # fuzzers (scripts/fuzz.sh): clang 14 and its runtime libraries (libclang_rt.fuzzer, asan, ubsan)
  clang libclang-rt-dev
  # the Python client example (examples/python) and its test: grpcio and the protobuf runtime for
  # Debian's python3. Its stubs come from protoc + grpc_python_plugin (above), not
  # python3-grpc-tools, whose bundled protoc 3.5 cannot compile proto3 `optional`.
  python3 python3-grpcio python3-protobuf
  # servers used by tests and benchmarks (started on loopback by our scripts, never as services)
  redis-server redis-tools postgresql
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d keeps Debian from starting redis/postgres as system services: our scripts start
# their own instances on loopback when a test or benchmark needs one.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
