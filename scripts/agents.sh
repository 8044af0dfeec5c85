#!/usr/bin/env bash
# scripts/agents.sh — install the agent CLIs that larry's profiles run, at pinned versions,
# outside the repository, and say how to use them.
#
#   scripts/agents.sh ensure     install every CLI of AGENTS that is missing (idempotent)
#   scripts/agents.sh env        print `export ...` lines: PATH and one LARRY_AGENT_<CLI> per CLI
#
# Each CLI has one function `ensure_<cli>` (installs it unless it is installed) and one
# `bin_<cli>` (the executable's path, installed or not); AGENTS lists what `ensure` installs.
# Everything lives in versioned directories, one per CLI and version, reused once complete:
#   ${LARRY_AGENTS_CACHE:-$HOME/.cache/larry-agents}/
#     claude-code-<ver>/       npm prefix of @anthropic-ai/claude-code@<ver>
#
# Pins, and why:
#   * Claude Code 2.1.332: the newest release declares engines.node >= 22 and an unpinned
#     install on Node 20 silently picks an old one; 2.1.332 installs with an EBADENGINE warning
#     and runs. Its native linux-x64 binary comes in the optional dependency
#     @anthropic-ai/claude-code-linux-x64 (about 400 MB), so optional dependencies must stay on.
#
# An install goes to <dir>.partial and is renamed into place only once its executable
# answers --version with the pinned version: a failed or interrupted install never looks complete.
set -euo pipefail

CACHE="${LARRY_AGENTS_CACHE:-$HOME/.cache/larry-agents}"
CLAUDE_CODE_VERSION=2.1.332

# What `ensure` installs, in order; `env` exports a LARRY_AGENT_<CLI> for each.
AGENTS=(claude_code)

log() { printf '%s\n' "$*" >&2; }
die() { printf 'agents.sh: %s\n' "$*" >&2; exit 1; }

# True when the executable $1 reports version $2 (its --version output contains it).
answers_version() {
  local out
  [[ -x "$1" ]] || return 1
  out="$("$1" --version 2>/dev/null </dev/null)" || return 1
  [[ "$out" == *"$2"* ]]
}

# npm package@version into its own prefix dir; $3 is the executable's path inside the prefix.
npm_into() { # dir package@version relative-bin version
  local dir="$1" spec="$2" rel="$3" ver="$4" t0=$SECONDS
  if answers_version "$dir/$rel" "$ver"; then
    log "$spec: reused ($dir, $((SECONDS - t0))s)"
    return 0
  fi
  command -v npm >/dev/null || die "npm is required to install $spec (install Node.js 20 or newer)"
  rm -rf "$dir.partial" && mkdir -p "$dir.partial"
  npm install --prefix "$dir.partial" --no-audit --no-fund --no-update-notifier --loglevel=error \
      --include=optional "$spec" >&2 || die "npm install $spec failed"
  answers_version "$dir.partial/$rel" "$ver" \
    || die "$spec installed but $dir.partial/$rel does not answer --version with $ver"
  rm -rf "$dir" && mv "$dir.partial" "$dir"
  log "$spec: installed into $dir in $((SECONDS - t0))s"
}

bin_claude_code() { printf '%s' "$CACHE/claude-code-$CLAUDE_CODE_VERSION/node_modules/.bin/claude"; }
ensure_claude_code() {
  npm_into "$CACHE/claude-code-$CLAUDE_CODE_VERSION" "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" \
    node_modules/.bin/claude "$CLAUDE_CODE_VERSION"
}

cmd_ensure() {
  local t0=$SECONDS cli
  mkdir -p "$CACHE"
  # One install at a time per cache: a second `ensure` (make test beside make up, two
  # checkouts) waits for the first and then finds everything installed.
  exec 9>"$CACHE/.ensure.lock"
  if ! flock -n 9; then
    log "another agents.sh ensure is installing in $CACHE; waiting for it"
    flock 9
  fi
  for cli in "${AGENTS[@]}"; do "ensure_$cli"; done
  log "agent CLIs ready in $((SECONDS - t0))s"
}

cmd_env() {
  local cli bin dirs=""
  for cli in "${AGENTS[@]}"; do
    bin="$("bin_$cli")"
    printf 'export LARRY_AGENT_%s=%q\n' "${cli^^}" "$bin"
    dirs="${dirs:+$dirs:}$(dirname "$bin")"
  done
  printf 'export PATH=%q:"$PATH"\n' "$dirs"
}

case "${1:-}" in
  ensure) cmd_ensure ;;
  env) cmd_env ;;
  *) die "usage: $0 ensure|env" ;;
esac
