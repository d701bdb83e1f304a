#!/usr/bin/env bash
# Runs every check and test. Installs what is missing first (scripts/tools.sh);
# the integration tests start DynamoDB Local, moto and the Lambda RIE themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
# Where tools.sh installs the stand-ins (the Rust side reads it too).
export SMARTLEAD_TOOLS_DIR="${SMARTLEAD_TOOLS_DIR:-$PWD/.tools}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export SAM_CLI_TELEMETRY=0
# A full run, not an edit loop: incremental caches would add gigabytes to the
# target dir for nothing (CI's disk is finite).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
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
echo "== tests, and the benchmarks once each in test mode (figures come from scripts/bench.sh)"
# One cargo invocation, one feature set: every crate is built once (the
# function binaries too, which the emulator tests invoke). The thread count
# goes by environment: Criterion's harness takes no libtest flags.
RUST_TEST_THREADS="${TEST_THREADS:-4}" cargo test --workspace --all-targets

echo "== sam build: arm64 (the deploy default) and x86_64 (so the emulator can run it here)"
sam build --beta-features --cached -b .aws-sam/build-arm64 -t template.yaml
for f in IngestFunction ConsumerFunction ReconcileFunction; do
  head -c 20 ".aws-sam/build-arm64/$f/bootstrap" | od -An -tx1 | tr -d ' \n' | grep -q '^7f454c46020101.*b700$' \
    || { echo "sam build made no aarch64 ELF for $f" >&2; exit 1; }
done
sam build --beta-features --cached -b .aws-sam/build-x86_64 -t template.yaml --parameter-overrides Architecture=x86_64
echo "== the sam-built bootstraps under the Lambda RIE"
# --workspace, not -p: the same feature set as above, so nothing recompiles.
SAM_BUILD_DIR="$PWD/.aws-sam/build-x86_64" RUST_TEST_THREADS="${TEST_THREADS:-4}" cargo test --workspace --test emulator
echo "== sam local invoke / start-api in Docker (SAM_LOCAL=skip skips it)"
SAM_BUILD_DIR="$PWD/.aws-sam/build-x86_64" bash scripts/sam-local-test.sh
