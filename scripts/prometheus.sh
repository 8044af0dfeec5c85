#!/usr/bin/env bash
# scripts/prometheus.sh — Debian's prometheus and promtool binaries, for the tests that check,
# unit-test and live-evaluate the stacks' alert rules (install-system.sh runs `ensure`).
#
#   scripts/prometheus.sh ensure   download and unpack them when missing
#   scripts/prometheus.sh path     print the directory holding prometheus and promtool; fail if absent
#
# Unpacked, not installed: `apt-get download` fetches the pinned .deb and `dpkg-deb -x` unpacks
# it into ${LARRY_PROMETHEUS_CACHE:-$HOME/.cache/larry-prometheus}/<version>/. Installing the
# package would create a `prometheus` system user, /var/lib/prometheus, an enabled service that
# its postinst starts (scraping :9090 on its own), and pull a dozen JavaScript packages for its
# web console; the tests need only the two binaries (Go, linked against libc alone) and start
# their own Prometheus on loopback with a configuration and data directory of their own. So
# nothing outside the cache changes: no dpkg state, no user, no service, no root needed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# Debian 12's (bookworm) package; a new version is a new cache directory.
VERSION="2.42.0+ds-5+deb12u1"
CACHE="${LARRY_PROMETHEUS_CACHE:-$HOME/.cache/larry-prometheus}"
DIR="$CACHE/$VERSION"

unpacked() { [[ -x "$DIR/prometheus" && -x "$DIR/promtool" ]]; }

cmd_ensure() {
  unpacked && return 0
  command -v apt-get >/dev/null || die "no apt-get here: put Debian's prometheus $VERSION binaries in $DIR"
  command -v dpkg-deb >/dev/null || die "no dpkg-deb here to unpack prometheus $VERSION"
  mkdir -p "$CACHE"
  WORK="$(mktemp -d "$CACHE/download.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  log "prometheus.sh: fetching Debian's prometheus $VERSION (binaries only, into $DIR)"
  # apt's sandbox user cannot write a root-owned temporary directory: download as the caller.
  (cd "$WORK" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "prometheus=$VERSION" >/dev/null) \
    || die "apt-get download prometheus=$VERSION failed (run apt-get update if the candidate is unknown)"
  dpkg-deb -x "$WORK"/prometheus_*.deb "$WORK/root"
  mkdir -p "$WORK/bin"
  mv "$WORK/root/usr/bin/prometheus" "$WORK/root/usr/bin/promtool" "$WORK/bin/"
  # Whole or not at all: an interrupted download leaves no half directory behind.
  rm -rf "$DIR" && mv "$WORK/bin" "$DIR"
  "$DIR/promtool" --version >/dev/null || die "the unpacked promtool does not run"
}

cmd_path() {
  unpacked || die "Debian's prometheus $VERSION is not unpacked: run scripts/prometheus.sh ensure (make setup does)"
  printf '%s\n' "$DIR"
}

case "${1:-}" in
  ensure) cmd_ensure ;;
  path) cmd_path ;;
  *) echo "usage: scripts/prometheus.sh ensure|path" >&2; exit 2 ;;
esac
