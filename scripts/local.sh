#!/usr/bin/env bash
# Runs the whole pipeline locally on stand-ins for AWS (no Docker, no AWS
# account): installs what is missing, builds both functions, then starts
# DynamoDB Local, moto, the functions under the Lambda RIE, an HTTP front on
# :3000 and an SQS poller. Ctrl-C stops everything. Ports: see --help.
# `scripts/local.sh --sam [...]`: the HTTP port served by `sam local start-api` (Docker).
set -euo pipefail
cd "$(dirname "$0")/.."
# Where tools.sh installs the stand-ins (the Rust side reads it too).
export SMARTLEAD_TOOLS_DIR="${SMARTLEAD_TOOLS_DIR:-$PWD/.tools}"
bash scripts/tools.sh
# The functions and xtask, no more (the bench binary is not built);
# --workspace: the tests' feature set (see test-support/Cargo.toml).
cargo build --workspace --bin smartlead-ingest --bin smartlead-consumer --bin smartlead-reconcile --bin xtask
if [ "${1:-}" != --sam ]; then
  exec cargo run -q -p xtask -- local "$@"
fi

# --sam: `sam local start-api` (Docker) serves the HTTP port instead of the
# built-in front; the rest of the stack (stand-ins, consumer under the RIE,
# poller) as without it. Installs and starts Docker and builds the Lambda
# base image when missing (scripts/sam-docker.sh), and `sam build`s x86_64.
shift
export PATH="$SMARTLEAD_TOOLS_DIR/venv/bin:$PATH" SAM_CLI_TELEMETRY=0
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
. scripts/sam-docker.sh
http=3000 moto=5000
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --http-port) http="${args[i + 1]:-$http}" ;;
    --http-port=*) http="${args[i]#*=}" ;;
    --moto-port) moto="${args[i + 1]:-$moto}" ;;
    --moto-port=*) moto="${args[i]#*=}" ;;
  esac
done
sam_docker_up || { echo "local.sh --sam: no Docker engine (see above); scripts/local.sh runs without it" >&2; exit 1; }
sam_base_image || exit 1
echo "local.sh --sam: sam build (x86_64)" >&2
sam_build_x86_64 || exit 1
env_file="$SAM_WORK/local-env.json"
rm -f "$env_file"
cargo run -q -p xtask -- local --no-front --docker --sam-env-vars "$env_file" "$@" &
stack=$!
trap 'kill $stack 2>/dev/null; wait $stack 2>/dev/null; sam_docker_down' EXIT
until [ -f "$env_file" ]; do
  kill -0 $stack 2>/dev/null || exit 1
  sleep 1
done
sam local start-api -p "$http" -t "$SAM_BUILD_DIR/template.yaml" --skip-pull-image \
  --add-host host.docker.internal:host-gateway \
  --parameter-overrides Architecture=x86_64 "LocalEndpoint=http://host.docker.internal:$moto" --env-vars "$env_file"
