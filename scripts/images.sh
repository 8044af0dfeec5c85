#!/usr/bin/env bash
# scripts/images.sh — the images a local cluster's real node runs, built on this machine
# without any registry, from Debian's packages and the project's own Dockerfile.
#
#   scripts/images.sh ensure   build what is missing or stale; reused when its inputs are unchanged
#   scripts/images.sh list     print one line per image: "<reference> <docker-archive tar>"
#
# Images (references as the stacks name them):
#   localhost/larry-python:3.11-bookworm   Debian 12 minbase with python3 (mmdebstrap): the
#                                          Dockerfile's PYTHON_IMAGE
#   <runtime image>                        the project's Dockerfile built by buildah, tagged
#                                          as plan/model.py's DEFAULT_RUNTIME_IMAGE
#   localhost/larry-redis:7-bookworm       Debian's redis-server, redis-sentinel and redis-tools
#   localhost/larry-pause:1                the pod sandbox: a static binary waiting for SIGTERM
#
# Each image is kept as a docker-archive tar in ${LARRY_IMAGES_CACHE:-$HOME/.cache/larry-images},
# named by a key of everything it is built from (package lists, the Dockerfile, pyproject.toml,
# plan/ and runtime/), so a change to any of them rebuilds it and nothing else does. The tars
# are what `ctr images import` loads into a node's containerd.
#
# The build trusts what this machine trusts: its CA bundle and pip configuration (a proxy's CA,
# an index mirror) are bind-mounted into the build's RUN steps and never land in an image.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${LARRY_IMAGES_CACHE:-$HOME/.cache/larry-images}"
SUITE=bookworm
PYTHON_IMAGE=localhost/larry-python:3.11-bookworm
REDIS_IMAGE=localhost/larry-redis:7-bookworm
PAUSE_IMAGE=localhost/larry-pause:1
PYTHON_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
REDIS_PACKAGES=redis-server,redis-sentinel,redis-tools
declare -A DEB_PACKAGES=([buildah]=/usr/bin/buildah [mmdebstrap]=/usr/bin/mmdebstrap)

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

buildah_() {
  buildah --root "$CACHE/storage" --runroot "$CACHE/runroot" --storage-driver vfs "$@"
}

runtime_image() {
  sed -n 's/^DEFAULT_RUNTIME_IMAGE = "\(.*\)"$/\1/p' "$ROOT/plan/model.py"
}

# A key of the files an image is built from (content, not timestamps).
files_key() { # paths...
  (cd "$ROOT" && git ls-files -z -- "$@" | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}

text_key() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }

archive_of() { # name key
  printf '%s/%s-%s.tar' "$CACHE" "$1" "$2"
}

python_key() { text_key "$SUITE" "$PYTHON_PACKAGES" "$(declare -f rootfs_image)"; }
redis_key() { text_key "$SUITE" "$REDIS_PACKAGES" "$(declare -f rootfs_image)"; }
pause_key() { text_key "$(declare -f build_pause)"; }
runtime_key() { text_key "$(python_key)" "$(files_key Dockerfile pyproject.toml plan runtime)"; }

install_packages() {
  local pkg missing=()
  for pkg in "${!DEB_PACKAGES[@]}"; do [[ -e "${DEB_PACKAGES[$pkg]}" ]] || missing+=("$pkg"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get here; install them with your package manager"
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A Debian root filesystem with `packages`, committed as `ref` and saved as a docker-archive.
rootfs_image() { # ref packages archive [cmd]
  local ref="$1" packages="$2" archive="$3" cmd="${4:-sh}" tmp container
  tmp="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
  mmdebstrap --quiet --variant=minbase --include="$packages" --aptopt='Acquire::Retries "3"' \
    "$SUITE" "$tmp/rootfs.tar" || die "mmdebstrap of $ref failed"
  container="$(buildah_ from scratch)"
  buildah_ add "$container" "$tmp/rootfs.tar" / >/dev/null
  buildah_ config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd "$cmd" "$container"
  buildah_ commit -q "$container" "$ref" >/dev/null
  buildah_ rm "$container" >/dev/null
  rm -rf "$tmp"
  save "$ref" "$archive"
}

# The sandbox every pod holds its namespaces with: nothing but waiting to be stopped.
build_pause() { # archive
  local archive="$1" src container
  src="$(mktemp -d "$CACHE/pause.XXXXXX")"
  cat >"$src/main.go" <<'GO'
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
GO
  printf 'module larry.local/pause\n\ngo 1.21\n' >"$src/go.mod"
  go_env "$CACHE/go/mod" "$CACHE/go/build"
  (cd "$src" && go build -trimpath -ldflags "-s -w" -o pause .) || die "building the pause binary failed"
  container="$(buildah_ from scratch)"
  buildah_ copy "$container" "$src/pause" /pause >/dev/null
  buildah_ config --entrypoint '["/pause"]' --user 65535:65535 "$container"
  buildah_ commit -q "$container" "$PAUSE_IMAGE" >/dev/null
  buildah_ rm "$container" >/dev/null
  rm -rf "$src"
  save "$PAUSE_IMAGE" "$archive"
}

build_runtime() { # archive
  local archive="$1" ref mounts=()
  ref="$(runtime_image)"
  [[ -n "$ref" ]] || die "no DEFAULT_RUNTIME_IMAGE in plan/model.py"
  [[ -d /etc/ssl/certs ]] && mounts+=(-v /etc/ssl/certs:/etc/ssl/certs:ro)
  [[ -f /etc/pip.conf ]] && mounts+=(-v /etc/pip.conf:/etc/pip.conf:ro)
  buildah_ build --quiet --isolation chroot "${mounts[@]}" --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" \
    -t "$ref" -f "$ROOT/Dockerfile" "$ROOT" >/dev/null || die "building $ref from the Dockerfile failed"
  save "$ref" "$archive"
}

save() { # ref archive
  rm -f "$2.partial"
  buildah_ push -q "$1" "docker-archive:$2.partial:$1" >/dev/null || die "saving $1 failed"
  mv "$2.partial" "$2"
}

# ensure_image name key builder args...: builds unless the archive for this key exists; older
# archives of the same image are removed.
ensure_image() {
  local name="$1" key="$2" archive t0=$SECONDS
  shift 2
  archive="$(archive_of "$name" "$key")"
  if [[ -f "$archive" ]]; then
    log "$name: reused ($archive)"
    return 0
  fi
  "$@" "$archive"
  find "$CACHE" -maxdepth 1 -name "$name-*.tar" ! -path "$archive" -delete
  log "$name: built in $((SECONDS - t0))s ($archive)"
}

cmd_ensure() {
  local t0=$SECONDS
  [[ "$(id -u)" -eq 0 ]] || die "ensure needs root (buildah's chroot builds, mmdebstrap)"
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.ensure.lock"
  if ! flock -n 9; then
    log "another images.sh ensure is running in $CACHE; waiting for it"
    flock 9
  fi
  install_packages
  ensure_image python "$(python_key)" rootfs_image "$PYTHON_IMAGE" "$PYTHON_PACKAGES"
  # The runtime build starts from the base image in buildah's store: a reused archive whose
  # store was wiped is loaded back first.
  buildah_ inspect "$PYTHON_IMAGE" >/dev/null 2>&1 ||
    buildah_ pull -q "docker-archive:$(archive_of python "$(python_key)")" >/dev/null
  ensure_image runtime "$(runtime_key)" build_runtime
  ensure_image redis "$(redis_key)" rootfs_image "$REDIS_IMAGE" "$REDIS_PACKAGES"
  ensure_image pause "$(pause_key)" build_pause
  log "images ready in $((SECONDS - t0))s"
}

cmd_list() {
  local name key ref archive
  for name in python runtime redis pause; do
    case "$name" in
      python) key="$(python_key)" ref="$PYTHON_IMAGE" ;;
      runtime) key="$(runtime_key)" ref="$(runtime_image)" ;;
      redis) key="$(redis_key)" ref="$REDIS_IMAGE" ;;
      pause) key="$(pause_key)" ref="$PAUSE_IMAGE" ;;
    esac
    archive="$(archive_of "$name" "$key")"
    [[ -f "$archive" ]] || die "$name image not built for the current sources: run $0 ensure"
    printf '%s %s\n' "$ref" "$archive"
  done
}

case "${1:-}" in
  ensure) cmd_ensure ;;
  list) cmd_list ;;
  *) die "usage: $0 ensure | list" ;;
esac
