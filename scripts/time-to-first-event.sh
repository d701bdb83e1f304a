#!/usr/bin/env bash
# Measures what a new user waits for: from `scripts/local.sh` on a fresh
# clone to the first webhook processed into DynamoDB. Run it twice to see the
# cold figure (nothing installed, nothing built) and the warm one.
#   scripts/time-to-first-event.sh [--cold]
# --cold uses an empty tools dir and target dir (downloads and a full build).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
git clone -q "$root" "$work/repo"
cd "$work/repo"
# The clone gets its own target dir (a target dir shared between checkouts
# can hand one checkout's binaries to the other).
export CARGO_TARGET_DIR="$work/target"
if [ "${1:-}" = "--cold" ]; then
  export SMARTLEAD_TOOLS_DIR="$work/tools"
else
  # Warm: tools installed and the workspace built once, as after a first run.
  export SMARTLEAD_TOOLS_DIR="$root/.tools"
  cargo build -q --workspace --bin smartlead-ingest --bin smartlead-consumer --bin smartlead-reconcile --bin xtask # what local.sh builds
fi
port=$((21000 + RANDOM % 5000))
start=$(date +%s.%N)
bash scripts/local.sh --http-port "$port" --dynamodb-port $((port + 1)) --moto-port $((port + 2)) \
  --consumer-port $((port + 3)) --ingest-port $((port + 10)) > "$work/local.log" 2>&1 &
url="http://127.0.0.1:$port/webhooks/smartlead?token=local-dev-secret"
until curl -sf -XPOST "$url" -H 'content-type: application/json' -d @events/payloads/email_reply.json >/dev/null 2>&1; do
  sleep 0.2
  kill -0 %1 2>/dev/null || { cat "$work/local.log"; exit 1; }
done
accepted=$(date +%s.%N)
until grep -q "1 done" "$work/local.log"; do sleep 0.05; done
done_at=$(date +%s.%N)
printf 'first webhook accepted after %.1f s, processed after %.1f s (%s)\n' \
  "$(echo "$accepted - $start" | bc)" "$(echo "$done_at - $start" | bc)" "${1:---warm}"
