# scripts/lib.sh — what the setup scripts (engine.sh, cluster.sh, agents.sh) share. Sourced,
# never run.

log() { printf '%s\n' "$*" >&2; }
# One line naming the script, then exit 1.
die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# go_env MODCACHE BUILDCACHE: a Go build with caches of its own, modules as the proxy serves
# them (no vendoring, no VCS stamping), the machine's toolchain, no cgo unless asked for.
go_env() {
  export GOMODCACHE="$1" GOCACHE="$2"
  export GOFLAGS="-mod=mod -buildvcs=false"
  export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
  export CGO_ENABLED="${CGO_ENABLED:-0}"
}
