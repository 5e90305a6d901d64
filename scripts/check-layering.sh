#!/usr/bin/env bash
# Checks the component layering of DESIGN.md/STYLE.md §1 from the #include lines:
#   common -> {config, record} -> {aggregate, sandbox, tier} -> shard -> engine -> {server, cli}
#   -> main
# - a component includes ODS headers only of itself and of components below it;
# - generated protobuf/gRPC code ("ods/v1/", grpcpp, google/protobuf) is included only by
#   server and cli (and tests/benchmarks, which are not checked);
# - public headers (include/ods/) include no gRPC, protobuf, yaml-cpp, abseil, Boost, Lua,
#   RocksDB, libpqxx/libpq, zstd or zlib header (spdlog is allowed in common/logging.h only).
# Prints each violation as FILE:LINE: what; exits 1 if there is any. Run by ctest (LayeringTest).
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A allowed=(
  [common]="common"
  [config]="common config"
  [record]="common record"
  [aggregate]="common record aggregate"
  [sandbox]="common record sandbox"
  [tier]="common config record tier"
  [shard]="common record aggregate sandbox shard"
  [engine]="common config record aggregate sandbox tier shard engine"
  [server]="common config record aggregate sandbox tier shard engine server"
  [cli]="common cli"
  [main]="common config record aggregate sandbox tier shard engine server main"
)
proto_ok=" server cli "
fail=0

report() { echo "$1: $2"; fail=1; }

for component in "${!allowed[@]}"; do
  for file in $(find "src/$component" "include/ods/$component" -name '*.h' -o -name '*.cc' 2>/dev/null); do
    while IFS=: read -r line text; do
      inc=$(sed -E 's/^#include [<"]([^">]+)[">].*/\1/' <<<"$text")
      if [[ $inc == ods/v1/* || $inc == grpcpp/* || $inc == google/protobuf/* ]]; then
        [[ $proto_ok == *" $component "* ]] || report "$file:$line" "$component must not include $inc (generated gRPC/protobuf code is for server and cli only)"
      elif [[ $inc == ods/* ]]; then
        dep=$(cut -d/ -f2 <<<"$inc")
        [[ " ${allowed[$component]} " == *" $dep "* ]] || report "$file:$line" "$component must not include $inc ($dep is not below $component)"
      fi
      if [[ $file == include/* ]]; then
        case $inc in
          grpc*|google/*|yaml-cpp/*|absl/*|boost/*|lua*|rocksdb/*|pqxx/*|libpq*|zstd*|zlib*)
            report "$file:$line" "public header includes third-party $inc; hide it behind a pimpl in src/" ;;
          spdlog/*)
            [[ $file == include/ods/common/logging.h ]] || report "$file:$line" "only common/logging.h may include spdlog" ;;
        esac
      fi
    done < <(grep -n '^#include' "$file" || true)
  done
done

if [ "$fail" -ne 0 ]; then
  echo "check-layering: violations found"
  exit 1
fi
echo "check-layering: ok"
