#!/usr/bin/env bash
# Runs the whole pipeline locally on stand-ins for AWS (no Docker, no AWS
# account): installs what is missing, builds both functions, then starts
# DynamoDB Local, moto, the functions under the Lambda RIE, an HTTP front on
# :3000 and an SQS poller. Ctrl-C stops everything. Ports: see --help.
set -euo pipefail
cd "$(dirname "$0")/.."
# Where tools.sh installs the stand-ins (the Rust side reads it too).
export SMARTLEAD_TOOLS_DIR="${SMARTLEAD_TOOLS_DIR:-$PWD/.tools}"
bash scripts/tools.sh
cargo build --bins
exec cargo run -q -p xtask -- local "$@"
