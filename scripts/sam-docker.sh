# `bash scripts/sam-docker.sh`: Docker running and the Lambda base image
# built, once, for the `sam local` commands of docs/local.md (dockerd keeps running).
# Sourced by scripts/sam-local-test.sh and scripts/local.sh --sam: what
# `sam local` needs on a machine like this one (Debian, root, no image
# registry reachable). Each step is skipped when already done.
#   sam_docker_up     a Docker engine: Debian's docker.io, dockerd started in
#                     the background (stopped by sam_docker_down if started here)
#   sam_base_image    the Lambda base image `sam local` builds on, made once
#                     from a Debian root filesystem (debootstrap) when absent
#   sam_build_x86_64  `sam build` for x86_64 into .aws-sam/build-x86_64
# Needs: cd to the checkout, the venv's `sam` on PATH.

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  cd "$(dirname "$0")/.."
fi
SAM_WORK="${SAM_WORK:-$PWD/.aws-sam/sam-local}" # under .aws-sam: sam build's cache ignores it
SAM_BASE_IMAGE="public.ecr.aws/lambda/provided:al2023-x86_64"
SAM_BUILD_DIR="${SAM_BUILD_DIR:-$PWD/.aws-sam/build-x86_64}"
SAM_DOCKERD_PID=""
mkdir -p "$SAM_WORK"

sam_note() { echo "sam-docker: $*" >&2; }

# Installs Debian packages (apt-get update once per call) unless present.
sam_apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    sam_note "cannot install ${missing[*]}: needs root and apt-get"
    return 1
  fi
  sam_note "installing ${missing[*]} from Debian (about a minute, once)"
  timeout 600 apt-get update -q >"$SAM_WORK/apt.log" 2>&1 &&
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q "${missing[@]}" >>"$SAM_WORK/apt.log" 2>&1 ||
    { sam_note "apt-get failed, see $SAM_WORK/apt.log"; return 1; }
}

# A running Docker engine; returns 1 (with the reason on stderr) if none can be had.
sam_docker_up() {
  docker info >/dev/null 2>&1 && return 0
  if ! command -v dockerd >/dev/null 2>&1; then
    sam_apt_install docker.io || return 1
  fi
  sam_note "starting dockerd (log: $SAM_WORK/dockerd.log)"
  setsid dockerd >"$SAM_WORK/dockerd.log" 2>&1 </dev/null &
  SAM_DOCKERD_PID=$!
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && return 0
    kill -0 "$SAM_DOCKERD_PID" 2>/dev/null || break
    sleep 1
  done
  sam_note "dockerd did not start; last lines of $SAM_WORK/dockerd.log:"
  tail -n 5 "$SAM_WORK/dockerd.log" >&2
  SAM_DOCKERD_PID=""
  return 1
}

# Stops the dockerd sam_docker_up started (none otherwise).
sam_docker_down() {
  [ -n "$SAM_DOCKERD_PID" ] || return 0
  kill "$SAM_DOCKERD_PID" 2>/dev/null || true
  for _ in $(seq 20); do kill -0 "$SAM_DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
  SAM_DOCKERD_PID=""
}

# The Debian mirror and release apt already uses (no other source is reachable).
sam_debian_mirror() {
  local m=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    m="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)"
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m="$(awk '$1 == "deb" && $2 !~ /^\[/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)"
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

# `sam local` builds its image FROM the Lambda base image. Where the
# registry answers, the real image is pulled. Where it does not (machines
# like this one), any glibc root filesystem serves a Rust bootstrap, so one
# is made from Debian's packages, once, and kept by the engine under the base
# image's name (`docker history` shows its origin; `docker rmi` it to rebuild
# or to pull the real one).
sam_base_image() {
  docker image inspect "$SAM_BASE_IMAGE" >/dev/null 2>&1 && return 0
  if timeout 60 docker pull -q "$SAM_BASE_IMAGE" >"$SAM_WORK/pull.log" 2>&1; then
    sam_note "pulled $SAM_BASE_IMAGE"
    return 0
  fi
  sam_note "cannot pull $SAM_BASE_IMAGE (see $SAM_WORK/pull.log): making a stand-in"
  command -v debootstrap >/dev/null 2>&1 || sam_apt_install debootstrap || return 1
  local suite mirror rootfs t0
  suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
  mirror="$(sam_debian_mirror)"
  rootfs="$(mktemp -d)"
  t0=$(date +%s)
  sam_note "building $SAM_BASE_IMAGE from Debian $suite ($mirror), once (about a minute)"
  if ! timeout 1200 debootstrap --variant=minbase --include=ca-certificates "$suite" "$rootfs" "$mirror" \
    >"$SAM_WORK/debootstrap.log" 2>&1; then
    sam_note "debootstrap failed, see $SAM_WORK/debootstrap.log"
    rm -rf "$rootfs"
    return 1
  fi
  mkdir -p "$rootfs/var/task" "$rootfs/var/runtime" "$rootfs/opt"
  tar -C "$rootfs" -c . | timeout 600 docker import --platform linux/amd64 \
    -m "Debian $suite minbase for sam local (scripts/sam-docker.sh)" - "$SAM_BASE_IMAGE" >/dev/null
  local rc=$?
  rm -rf "$rootfs"
  [ $rc -eq 0 ] && sam_note "base image built in $(($(date +%s) - t0)) s"
  return $rc
}

# The x86_64 build this host can run (the template's default is arm64).
sam_build_x86_64() {
  sam build --beta-features --cached -b "$SAM_BUILD_DIR" -t template.yaml \
    --parameter-overrides Architecture=x86_64 >"$SAM_WORK/build.log" 2>&1 ||
    { tail -n 20 "$SAM_WORK/build.log" >&2; return 1; }
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  sam_docker_up || { sam_note "no Docker engine could be installed or started"; exit 1; }
  sam_base_image || exit 1
  sam_note "Docker is running$([ -n "$SAM_DOCKERD_PID" ] && echo " (dockerd pid $SAM_DOCKERD_PID)") and $SAM_BASE_IMAGE is there"
fi
