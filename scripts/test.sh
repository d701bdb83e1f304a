#!/usr/bin/env bash
# Runs every check and test. Installs what is missing first (scripts/tools.sh);
# the integration tests start DynamoDB Local, moto and the Lambda RIE themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
# Where tools.sh installs the stand-ins (the Rust side reads it too).
export SMARTLEAD_TOOLS_DIR="${SMARTLEAD_TOOLS_DIR:-$PWD/.tools}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export SAM_CLI_TELEMETRY=0
bash scripts/tools.sh
export PATH="$SMARTLEAD_TOOLS_DIR/venv/bin:$PATH"

echo "== rustfmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
if [ -f template.yaml ]; then
  echo "== sam validate"
  sam validate --lint -t template.yaml
  AWS_DEFAULT_REGION=us-east-1 sam validate -t template.yaml
  echo "== checkov (a check that does not fit is skipped in the template, with its reason)"
  "$SMARTLEAD_TOOLS_DIR/checkov/bin/checkov" -f template.yaml --framework cloudformation \
    --skip-download --compact --quiet
fi
echo "== tests"
# Builds the function binaries first: the emulator tests invoke them.
cargo build --workspace --bins
cargo test --workspace --lib --bins --tests -- --test-threads="${TEST_THREADS:-4}"
echo "== benchmarks (compiled, each run once in test mode; figures come from scripts/bench.sh)"
# Criterion's harness takes no libtest flags, so the benches run on their own.
cargo test --workspace --bench '*'

echo "== sam build: arm64 (the deploy default) and x86_64 (so the emulator can run it here)"
sam build --beta-features --cached -b .aws-sam/build-arm64 -t template.yaml
for f in IngestFunction ConsumerFunction ReconcileFunction; do
  head -c 20 ".aws-sam/build-arm64/$f/bootstrap" | od -An -tx1 | tr -d ' \n' | grep -q '^7f454c46020101.*b700$' \
    || { echo "sam build made no aarch64 ELF for $f" >&2; exit 1; }
done
sam build --beta-features --cached -b .aws-sam/build-x86_64 -t template.yaml --parameter-overrides Architecture=x86_64
echo "== the sam-built bootstraps under the Lambda RIE"
SAM_BUILD_DIR="$PWD/.aws-sam/build-x86_64" cargo test -p smartlead-ingest -p smartlead-consumer -p smartlead-reconcile --test emulator
echo "== sam local invoke / start-api in Docker (SAM_LOCAL=skip skips it)"
SAM_BUILD_DIR="$PWD/.aws-sam/build-x86_64" bash scripts/sam-local-test.sh
