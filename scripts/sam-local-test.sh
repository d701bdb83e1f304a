#!/usr/bin/env bash
# `sam local` for real, as docs/local.md's "With Docker" section runs it:
#   - a Docker engine (Debian's docker.io, dockerd started here if none runs)
#     and the Lambda base image built once from Debian's packages;
#   - the stand-ins (DynamoDB Local, moto, queues, table) from `xtask local`,
#     which writes the --env-vars file for its ports (events/env/local.json
#     is that file for the default ports);
#   - `sam local invoke IngestFunction` on every events/api fixture (200,
#     received, each payload byte for byte on moto's queue), `sam local invoke
#     ConsumerFunction` on every events/sqs fixture and on the messages the
#     ingest queued (no failures, the state in DynamoDB Local, once), and
#     `sam local start-api` answering the README's curl.
# SAM_LOCAL=skip skips it all (prints SKIPPED); otherwise anything missing
# that cannot be installed or started is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export SMARTLEAD_TOOLS_DIR="${SMARTLEAD_TOOLS_DIR:-$PWD/.tools}"
export PATH="$SMARTLEAD_TOOLS_DIR/venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0
# What `sam local` hands the functions (DynamoDB Local runs -sharedDb, moto takes any key).
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
unset AWS_PROFILE AWS_SESSION_TOKEN

if [ "${SAM_LOCAL:-}" = skip ]; then
  echo "SKIPPED: sam local invoke / start-api (SAM_LOCAL=skip was set)"
  exit 0
fi

fail() { echo "sam-local-test: FAILED: $*" >&2; exit 1; }
# shellcheck source=scripts/sam-docker.sh
. scripts/sam-docker.sh
WORK="$SAM_WORK/test"
rm -rf "$WORK" && mkdir -p "$WORK"
T0=$(date +%s)
elapsed() { echo "$(($(date +%s) - T0)) s"; }

STACK_PID="" API_PID=""
cleanup() {
  [ -n "$API_PID" ] && kill "$API_PID" 2>/dev/null && wait "$API_PID" 2>/dev/null
  [ -n "$STACK_PID" ] && kill "$STACK_PID" 2>/dev/null && wait "$STACK_PID" 2>/dev/null
  sam_docker_down
}
trap cleanup EXIT

sam_docker_up || fail "no Docker engine could be installed or started (see above); SAM_LOCAL=skip skips this test"
echo "== sam local: Docker engine up ($(elapsed))"
sam_base_image || fail "the Lambda base image could not be built (see above)"
echo "== sam local: base image $SAM_BASE_IMAGE ready ($(elapsed))"
# test.sh has just built it; alone, build it when missing or older than LocalEndpoint.
grep -q LocalEndpoint "$SAM_BUILD_DIR/template.yaml" 2>/dev/null || sam_build_x86_64 || fail "sam build (x86_64)"

# The stand-ins on free ports; no poller, so what the ingest queues stays there.
read -r P_HTTP P_DDB P_MOTO P_INGEST P_CONSUMER P_API < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(6)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
ENV_FILE="$WORK/env.json"
# Built here first (after the test run, nothing is left to compile: the
# workspace resolves one feature set), so the wait below times the stand-ins'
# start only.
cargo build -q --workspace --bin smartlead-ingest --bin smartlead-consumer --bin smartlead-reconcile --bin xtask # what local.sh builds
bash scripts/local.sh --docker --no-front --no-poller --ingest-instances 1 \
  --http-port "$P_HTTP" --dynamodb-port "$P_DDB" --moto-port "$P_MOTO" \
  --ingest-port "$P_INGEST" --consumer-port "$P_CONSUMER" \
  --sam-env-vars "$ENV_FILE" >"$WORK/stack.log" 2>&1 &
STACK_PID=$!
for _ in $(seq 120); do
  [ -f "$ENV_FILE" ] && break
  kill -0 "$STACK_PID" 2>/dev/null || { cat "$WORK/stack.log" >&2; fail "the local stack did not start"; }
  sleep 1
done
[ -f "$ENV_FILE" ] || fail "the local stack wrote no env-vars file in 120 s"
MOTO="http://127.0.0.1:$P_MOTO"
DDB="http://127.0.0.1:$P_DDB"
echo "== sam local: stand-ins up, moto $MOTO, DynamoDB Local $DDB ($(elapsed))"

# The flags of docs/local.md (With Docker), with this stack's ports. The containers reach
# the stand-ins through the Docker host (SAM has no host networking).
SAM_FLAGS=(-t "$SAM_BUILD_DIR/template.yaml" --skip-pull-image --add-host host.docker.internal:host-gateway
  --parameter-overrides Architecture=x86_64 "LocalEndpoint=http://host.docker.internal:$P_MOTO" --env-vars "$ENV_FILE")

# The checks: `xtask sam-check` (xtask/src/sam_check.rs), the xtask built above.
XTASK="${CARGO_TARGET_DIR:-target}/debug/xtask"
[ -x "$XTASK" ] || fail "no $XTASK: cargo build --workspace --bin xtask made none"
check() { "$XTASK" sam-check --moto "$MOTO" --dynamodb "$DDB" --env "$ENV_FILE" "$@"; }

# `sam local invoke FUNCTION -e FILE` for each FILE, JOBS at a time (each
# invoke is its own container; most of its time is waiting on Docker), each
# answer checked with VERB; prints each invoke's time.
JOBS="${SAM_LOCAL_JOBS:-4}"
invoke_one() { # function verb file
  local name t rc=0
  name="$1-$(basename "$3" .json)"
  t=$(date +%s%N)
  sam local invoke "$1" -e "$3" "${SAM_FLAGS[@]}" >"$WORK/$name.out" 2>"$WORK/$name.log" || rc=$?
  [ $rc -eq 0 ] && { check "$2" "$WORK/$name.out" 2>>"$WORK/$name.log" || rc=$?; }
  echo "   $1 -e $3: $(($(($(date +%s%N) - t)) / 1000000)) ms$([ $rc -eq 0 ] || echo " FAILED (log: $WORK/$name.log)")"
  [ $rc -eq 0 ] || touch "$WORK/failed"
}
invoke_all() { # function verb files...
  local fn="$1" verb="$2"
  shift 2
  local pids=() running p
  rm -f "$WORK/failed"
  for f in "$@"; do
    while :; do
      running=0
      for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && running=$((running + 1)); done
      [ "$running" -lt "$JOBS" ] && break
      sleep 0.2
    done
    invoke_one "$fn" "$verb" "$f" &
    pids+=($!)
  done
  wait "${pids[@]}" || true
  if [ -e "$WORK/failed" ]; then
    fail "sam local invoke $fn: some invokes failed (above)"
  fi
}

echo "== sam local invoke IngestFunction, every events/api fixture ($JOBS at a time)"
# The first alone: SAM builds its emulation image on the first invoke.
first=(events/api/*.json)
invoke_all IngestFunction ingest-answer "${first[0]}"
invoke_all IngestFunction ingest-answer "${first[@]:1}"
check queue-holds events/payloads "$WORK/queued.json" || fail "the queue does not hold each payload once, byte for byte"
echo "   every payload is on moto's queue once, byte for byte ($(elapsed))"

echo "== sam local invoke ConsumerFunction: batch_all (every fixture), its state, again"
invoke_all ConsumerFunction no-batch-failures events/sqs/batch_all.json
check state-after events/sqs/batch_all.json "$WORK/state-1.json" || fail "DynamoDB Local lacks the state of events/sqs/batch_all.json"
# batch_all again: every record is a duplicate, nothing changes.
invoke_all ConsumerFunction no-batch-failures events/sqs/batch_all.json
check state-after events/sqs/batch_all.json "$WORK/state-2.json" || fail "DynamoDB Local after batch_all again"
cmp -s "$WORK/state-1.json" "$WORK/state-2.json" || fail "batch_all applied twice: the table changed (diff $WORK/state-1.json $WORK/state-2.json)"
echo "   the state of batch_all is in DynamoDB Local, once ($(elapsed))"

echo "== sam local invoke ConsumerFunction, every other events/sqs fixture and what the ingest queued"
check queued-as-sqs-event "$WORK/queued.json" "$WORK/queued-event.json" || fail "making an SQS event of the queued messages"
others=()
for f in events/sqs/*.json; do [ "$f" = events/sqs/batch_all.json ] || others+=("$f"); done
invoke_all ConsumerFunction no-batch-failures "${others[@]}" "$WORK/queued-event.json"
echo "   all processed ($(elapsed))"

echo "== sam local start-api, the README's curl"
sam local start-api -p "$P_API" "${SAM_FLAGS[@]}" >"$WORK/start-api.log" 2>&1 &
API_PID=$!
URL="http://127.0.0.1:$P_API/webhooks/smartlead"
t=$(date +%s)
for _ in $(seq 90); do
  curl -s -o /dev/null "http://127.0.0.1:$P_API/" && break
  kill -0 "$API_PID" 2>/dev/null || { tail -n 20 "$WORK/start-api.log" >&2; fail "sam local start-api exited"; }
  sleep 1
done
echo "   listening after $(($(date +%s) - t)) s"
t=$(date +%s%N)
curl -s -o "$WORK/api-reply.out" -w '%{http_code}' -XPOST "$URL?token=local-dev-secret" \
  -H 'content-type: application/json' -d @events/payloads/email_reply.json >"$WORK/api-reply.status" ||
  fail "curl to sam local start-api"
echo "   POST email_reply: $(cat "$WORK/api-reply.status") in $(($(($(date +%s%N) - t)) / 1000000)) ms"
check http-answer 200 "$WORK/api-reply.status" "$WORK/api-reply.out" || { tail -n 20 "$WORK/start-api.log" >&2; fail "start-api: the README's curl"; }
# (email_open.json: no secret_key in the body, which would authenticate it)
curl -s -o "$WORK/api-401.out" -w '%{http_code}' -XPOST "$URL?token=wrong" \
  -H 'content-type: application/json' -d @events/payloads/email_open.json >"$WORK/api-401.status"
check http-answer 401 "$WORK/api-401.status" "$WORK/api-401.out" || fail "start-api: a wrong token"
check queue-holds-one events/payloads/email_reply.json || fail "start-api: the webhook is not on the queue"
echo "== sam local: all passed ($(elapsed))"
