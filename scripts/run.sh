#!/usr/bin/env bash
# Sets up (Debian packages), builds and starts odsd on config/odsd.yaml (data under ./data).
# Extra arguments go to odsd, e.g. scripts/run.sh --grpc-listen 0.0.0.0:7070
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh odsd ods
echo "starting odsd (Ctrl-C stops it); client: build/src/cli/ods --addr 127.0.0.1:7070 health"
exec build/src/main/odsd --config config/odsd.yaml "$@"
