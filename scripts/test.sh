#!/usr/bin/env bash
# Runs every check and test. Installs what is missing first (scripts/tools.sh);
# the integration tests start DynamoDB Local, moto and the Lambda RIE themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export SAM_CLI_TELEMETRY=0
bash scripts/tools.sh
export PATH="$PWD/.tools/venv/bin:$PATH"

echo "== rustfmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
if [ -f template.yaml ]; then
  echo "== sam validate"
  sam validate --lint -t template.yaml
  AWS_DEFAULT_REGION=us-east-1 sam validate -t template.yaml
fi
echo "== tests"
# Builds the function binaries first: the emulator tests invoke them.
cargo build --workspace --bins
cargo test --workspace --lib --bins --tests -- --test-threads="${TEST_THREADS:-4}"
echo "== benchmarks (compiled, each run once in test mode; figures come from scripts/bench.sh)"
# Criterion's harness takes no libtest flags, so the benches run on their own.
cargo test --workspace --bench '*'
