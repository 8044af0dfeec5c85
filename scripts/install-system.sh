#!/usr/bin/env bash
# Installs the system packages the project runs against (real Redis and Sentinel for the
# runtime, its tests and `larry run`), only when they are missing. Debian/Ubuntu only.
set -euo pipefail
# Debian's prometheus and promtool for the alert rules' tests: unpacked into a cache, never
# installed as a service (scripts/prometheus.sh says why).
"$(dirname "${BASH_SOURCE[0]}")/prometheus.sh" ensure
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-sentinel >/dev/null || missing+=(redis-sentinel)
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "install-system: missing ${missing[*]} and no apt-get here; install them with your package manager" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-system: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package starts a system-wide server on 6379; the project starts its own.
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
  $sudo systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
