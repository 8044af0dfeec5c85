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
#     codex-<ver>/             npm prefix of @openai/codex@<ver>
#     aider-<ver>/             a virtualenv of its own with aider-chat==<ver> (never the project's
#                              .venv: aider pins its own litellm, openai, numpy ...), and
#                              prices/model_prices_and_context_window.json (see aider_env)
#
# Pins, and why:
#   * Claude Code 2.1.332: the newest release declares engines.node >= 22 and an unpinned
#     install on Node 20 silently picks an old one; 2.1.332 installs with an EBADENGINE warning
#     and runs. Its native linux-x64 binary comes in the optional dependency
#     @anthropic-ai/claude-code-linux-x64 (about 400 MB), so optional dependencies must stay on.
#   * Codex 0.171.0 (the newest npm serves, 2026-11): its native linux-x64 (musl) binary comes
#     in the optional dependency @openai/codex-linux-x64.
#   * aider-chat 0.86.2 needs Python 3.10-3.12 (LARRY_AIDER_PYTHON, default python3.11).
#
# An install goes to <dir>.partial and is renamed into place only once its executable
# answers --version with the pinned version: a failed or interrupted install never looks complete.
set -euo pipefail

CACHE="${LARRY_AGENTS_CACHE:-$HOME/.cache/larry-agents}"
CLAUDE_CODE_VERSION=2.1.332
CODEX_VERSION=0.171.0
AIDER_VERSION=0.86.2
AIDER_PYTHON="${LARRY_AIDER_PYTHON:-python3.11}"

# What `ensure` installs, in order; `env` exports a LARRY_AGENT_<CLI> for each.
AGENTS=(claude_code codex aider)

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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

bin_codex() { printf '%s' "$CACHE/codex-$CODEX_VERSION/node_modules/.bin/codex"; }
ensure_codex() {
  npm_into "$CACHE/codex-$CODEX_VERSION" "@openai/codex@$CODEX_VERSION" node_modules/.bin/codex "$CODEX_VERSION"
}

# A virtualenv records its own path in its scripts, so it cannot be built in <dir>.partial and
# renamed: it is built in place and marked complete (.complete, written last) once aider answers.
# Its bin/ holds python and pip too, so what goes on PATH is larry-bin/ with aider alone.
bin_aider() { printf '%s' "$CACHE/aider-$AIDER_VERSION/larry-bin/aider"; }
ensure_aider() {
  local dir="$CACHE/aider-$AIDER_VERSION" t0=$SECONDS
  if [[ -f "$dir/.complete" && -x "$(bin_aider)" ]]; then
    log "aider-chat==$AIDER_VERSION: reused ($dir, $((SECONDS - t0))s)"
    return 0
  fi
  command -v "$AIDER_PYTHON" >/dev/null || die "$AIDER_PYTHON is required for aider (set LARRY_AIDER_PYTHON to a Python 3.10-3.12)"
  rm -rf "$dir"
  "$AIDER_PYTHON" -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "aider-chat==$AIDER_VERSION" >&2 \
    || die "pip install aider-chat==$AIDER_VERSION failed"
  # The price table litellm ships, for aider's model-info cache (see aider_env).
  mkdir -p "$dir/prices"
  "$dir/bin/python" -c 'import importlib.resources as r, shutil, sys
shutil.copyfile(str(r.files("litellm") / "model_prices_and_context_window_backup.json"), sys.argv[1])' \
    "$dir/prices/model_prices_and_context_window.json" || die "litellm's price table is missing from $dir"
  mkdir -p "$dir/larry-bin" && ln -sfn ../bin/aider "$dir/larry-bin/aider"
  answers_version "$dir/larry-bin/aider" "$AIDER_VERSION" || die "aider installed but $(bin_aider) does not answer --version with $AIDER_VERSION"
  touch "$dir/.complete"
  log "aider-chat==$AIDER_VERSION: installed into $dir in $((SECONDS - t0))s"
}

# aider makes no outside look-up when litellm reads its bundled price table
# (LITELLM_LOCAL_MODEL_COST_MAP) and aider's model-info cache, $HOME/.aider/caches/
# model_prices_and_context_window.json, is younger than a day: whoever gives aider its HOME
# copies LARRY_AIDER_PRICES there first (a copy's mtime is now).
aider_env() {
  printf 'export LARRY_AIDER_PRICES=%q\n' "$CACHE/aider-$AIDER_VERSION/prices/model_prices_and_context_window.json"
  printf 'export LITELLM_LOCAL_MODEL_COST_MAP=True\n'
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
  aider_env
  printf 'export PATH=%q:"$PATH"\n' "$dirs"
}

case "${1:-}" in
  ensure) cmd_ensure ;;
  env) cmd_env ;;
  *) die "usage: $0 ensure|env" ;;
esac
