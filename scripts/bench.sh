#!/usr/bin/env bash
# Measures speed, memory and cost and writes BENCHMARKS.md (results part),
# bench/results.json and bench/latency.svg. Installs what is missing first.
# Takes about 10 minutes; `scripts/bench.sh --quick` is a 3-minute look.
set -euo pipefail
cd "$(dirname "$0")/.."
export SAM_CLI_TELEMETRY=0
bash scripts/tools.sh
export PATH="$PWD/.tools/venv/bin:$PATH"
exec cargo run --release -q -p xtask --bin bench -- "$@"
