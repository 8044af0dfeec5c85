#!/usr/bin/env bash
# bench/bench_engine.sh — time building the Pulumi engine with scripts/engine.sh.
#
#   bench/bench_engine.sh              cold, warm and reuse timings
#   bench/bench_engine.sh --skip-cold  warm and reuse timings only
#
#   cold   empty cache: module downloads + compiling everything (what a fresh CI machine pays)
#   warm   Go module and build caches kept, built binaries and installed plugins removed
#          (what a version bump of the project's own code, or a lost binary, costs)
#   reuse  everything present: `ensure` only checks versions
#
# The cold and warm runs use a scratch cache (LARRY_BENCH_CACHE, default a temp dir that is
# removed afterwards) so the project's own cache is not touched. Versions and skipped
# providers follow scripts/engine.sh (LARRY_VENV, LARRY_ENGINE_SKIP, ...).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
skip_cold=0
[[ "${1:-}" == "--skip-cold" ]] && skip_cold=1

keep=1
if [[ -z "${LARRY_BENCH_CACHE:-}" ]]; then
  LARRY_BENCH_CACHE="$(mktemp -d "${TMPDIR:-/tmp}/larry-engine-bench.XXXXXX")"
  keep=0
fi
# Module files are read-only in the Go module cache; make them removable first.
cleanup() { chmod -R u+w "$LARRY_BENCH_CACHE" 2>/dev/null || true; rm -rf "$LARRY_BENCH_CACHE"; }
(( keep )) || trap cleanup EXIT

export LARRY_ENGINE_CACHE="$LARRY_BENCH_CACHE"
unset LARRY_PULUMI_HOME PULUMI_HOME

timed() { # label
  local label="$1" t0 t1
  t0=$(date +%s.%N)
  "$ROOT/scripts/engine.sh" ensure 2>&1 | grep -v '^go: downloading' | sed 's/^/    /'
  t1=$(date +%s.%N)
  awk -v l="$label" -v a="$t0" -v b="$t1" 'BEGIN { printf "%-6s %8.1f s\n", l, b - a }'
}

echo "engine build benchmark on $(nproc) cores, $(go version | awk '{print $3}'), cache $LARRY_BENCH_CACHE"
"$ROOT/scripts/engine.sh" versions | sed 's/^/  /'

if (( ! skip_cold )); then
  chmod -R u+w "$LARRY_BENCH_CACHE" 2>/dev/null || true
  rm -rf "${LARRY_BENCH_CACHE:?}"/*
  timed cold
elif [[ ! -d "$LARRY_BENCH_CACHE/go/mod" ]]; then
  echo "  (--skip-cold with an empty cache: the first run below is a cold one)"
  timed first
fi

# Warm: keep go/mod and go/build, drop what ensure produced.
rm -rf "$LARRY_BENCH_CACHE"/pulumi-v* "$LARRY_BENCH_CACHE/providers" "$LARRY_BENCH_CACHE/pulumi-home" "$LARRY_BENCH_CACHE/src"
timed warm
timed reuse
