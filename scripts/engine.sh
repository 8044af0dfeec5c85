#!/usr/bin/env bash
# scripts/engine.sh — make the Pulumi engine (CLI, Python language host, provider plugins)
# available offline, built from Go sources fetched through the Go module proxy.
#
#   scripts/engine.sh ensure     find or build every component, install the provider plugins
#   scripts/engine.sh env        print `export ...` lines for the Makefile / tests (no build)
#   scripts/engine.sh versions   print what the installed wheels ask for and what is built
#
# Versions come from the project's virtualenv (LARRY_VENV, default <repo>/.venv), so
# pyproject.toml stays the one place of pins:
#   * the `pulumi` wheel's version           -> pulumi CLI and language host (sdk/v3)
#   * each provider wheel's pulumi-plugin.json -> that provider plugin's version
#
# Everything is built outside the repository, keyed by version, and reused:
#   ${LARRY_ENGINE_CACHE:-$HOME/.cache/larry-engine}/
#     go/mod, go/build               GOMODCACHE and GOCACHE of these builds only
#     src/<component>/               generated consumer Go modules (never committed)
#     pulumi-v<ver>/bin/             pulumi, pulumi-language-python(+ -exec), pulumi-resource-pulumi-python
#     providers/<name>-v<ver>/       provider binaries
#     pulumi-home/                   PULUMI_HOME; plugins are installed here at exact versions
#
# What the Go module proxy serves here decides what can be built (probed 2026-11):
#   * github.com/pulumi/pulumi/pkg/v3@v3.260.0.zip -> 403; v3.259.0.zip -> 200. The CLI is built
#     at exactly the `pulumi` wheel's version, so pin pulumi==3.259.0 (or another version whose
#     pkg/v3 zip is served).
#   * The Python language host is its own untagged module
#     (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3); every pseudo-version
#     at a release commit (v3.250.0 ... v3.260.0 probed) -> 403. It is replaced by a small host
#     written for larry (scripts/engine/pulumi-language-python/main.go) built on the sdk/v3
#     module of the CLI's version, with the upstream `pulumi-language-python-exec` runner.
#   * Provider modules github.com/pulumi/pulumi-{kubernetes,random}/provider/v4 are untagged;
#     pseudo-versions at release commits -> 403 for every kubernetes 4.x and random 4.18-4.21.2
#     release. The only kubernetes provider source served is
#     v4.0.0-20260115033456-f47bc2d6f199 (commit of 2026-01-15 03:34 UTC, 39 h before the
#     sdk/v4.25.0 tag). PROVIDER_SOURCES below maps plugin versions to module versions; a
#     plugin version with no entry cannot be built and `ensure` says so.
#   * The proxy's checksum database lacks several github.com/pulumi module versions (e.g.
#     pkg/v3@v3.215.0, the provider pseudo-version: 404), so GONOSUMDB covers github.com/pulumi;
#     the module hashes the builds start from are pinned in the generated go.sum (below).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LARRY_VENV:-$ROOT/.venv}"
CACHE="${LARRY_ENGINE_CACHE:-$HOME/.cache/larry-engine}"
ENGINE_HOME="${LARRY_PULUMI_HOME:-${PULUMI_HOME:-$CACHE/pulumi-home}}"
LANGHOST_SRC="$ROOT/scripts/engine/pulumi-language-python/main.go"

# plugin name and version -> Go module version of github.com/pulumi/pulumi-<name>/provider/v4
# and the version string stamped into the binary. Only entries whose module zip the proxy
# serves belong here. The stamp names the real source in its semver build metadata, which
# version comparison ignores (a pre-release stamp such as 4.25.0-alpha.x would make the
# engine warn "expected to have version >=4.25.0" on every run).
declare -A PROVIDER_SOURCES=(
  # Commit f47bc2d6f199 of 2026-01-15 03:34 UTC, 39 h before the sdk/v4.25.0 tag; the
  # release commit itself (144dd813d53e) is not served (403).
  ["kubernetes@4.25.0"]="v4.0.0-20260115033456-f47bc2d6f199 4.25.0+untagged.20260115033456.f47bc2d6f199"
)
# go.sum lines for module versions the checksum database does not know (trust pinned here,
# taken from the first download and re-checked by go on every later one).
PINNED_SUMS='github.com/pulumi/pulumi-kubernetes/provider/v4 v4.0.0-20260115033456-f47bc2d6f199 h1:j2bphCf7c2YhnBrhwht2f3TNRRgcMImltUlAgzxr9H4=
github.com/pulumi/pulumi-kubernetes/provider/v4 v4.0.0-20260115033456-f47bc2d6f199/go.mod h1:61at6ZXhz4COFbTksqENrBzq5VUQ/LV8sdZ7WJt9KT4='

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

engine_go_env() {
  go_env "${LARRY_ENGINE_GOMODCACHE:-$CACHE/go/mod}" "${LARRY_ENGINE_GOCACHE:-$CACHE/go/build}"
  case ",${GONOSUMDB:-}," in *,github.com/pulumi,*) ;; *) export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/pulumi" ;; esac
}

venv_python() {
  [[ -x "$VENV/bin/python" ]] || die "no virtualenv at $VENV (run make first, or set LARRY_VENV)"
  printf '%s' "$VENV/bin/python"
}

# Prints "pulumi <version>" then "<plugin> <version>" for each installed provider wheel.
wheel_versions() {
  "$(venv_python)" - <<'PY'
import importlib.metadata as md, json
print("pulumi", md.version("pulumi"))
seen = set()
for dist in md.distributions():
    for f in dist.files or []:
        if f.name == "pulumi-plugin.json":
            d = json.loads(f.read_text())
            if d.get("resource") and (d["name"], d["version"]) not in seen:
                seen.add((d["name"], d["version"]))
                print(d["name"], d["version"])
PY
}

# True when `pulumi` on PATH (outside our cache) is the wanted version and has a Python
# language host beside it or on PATH.
found_cli() {
  local want="$1" bin ver
  bin="$(command -v pulumi 2>/dev/null)" || return 1
  [[ "$bin" == "$CACHE"/* ]] && return 1
  ver="$("$bin" version 2>/dev/null)" || return 1
  [[ "$ver" == "v$want" ]] || return 1
  [[ -x "$(dirname "$bin")/pulumi-language-python" ]] || command -v pulumi-language-python >/dev/null || return 1
  printf '%s' "$(dirname "$bin")"
}

cli_dir() { printf '%s' "$CACHE/pulumi-v$1/bin"; }

sha_of() { cat "$@" | sha256sum | cut -c1-16; }  # content only: a copy of the project reuses the build

write_gomod() { # dir module go-requires...
  local dir="$1" module="$2"; shift 2
  mkdir -p "$dir"
  {
    printf 'module %s\n\ngo 1.25\n\nrequire (\n' "$module"
    printf '\t%s\n' "$@"
    printf ')\n\n'
    # pkg/v3's own replace, which a dependent module must repeat.
    printf 'replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e\n'
  } >"$dir/go.mod"
  printf '%s\n' "$PINNED_SUMS" >"$dir/go.sum"
}

build_cli() { # version -> builds pulumi, language host, scripts into cli_dir
  local ver="$1" out src t0
  out="$(cli_dir "$ver")"; src="$CACHE/src/pulumi-v$ver"
  t0=$SECONDS
  rm -rf "$src" && mkdir -p "$src/cli" "$src/langhost" "$out"
  engine_go_env

  # pulumi CLI: consumer module importing pkg/v3's main package.
  write_gomod "$src/cli" larry.local/engine/pulumi \
    "github.com/pulumi/pulumi/pkg/v3 v$ver" "github.com/pulumi/pulumi/sdk/v3 v$ver"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"\n' >"$src/cli/tools.go"
  (cd "$src/cli" && go mod tidy && go build -trimpath \
      -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$ver" \
      -o "$out/pulumi.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) \
    || die "building pulumi CLI v$ver failed (is github.com/pulumi/pulumi/pkg/v3@v$ver served by the Go proxy?)"
  mv "$out/pulumi.tmp" "$out/pulumi"

  # Language host stand-in, on the same sdk/v3.
  cp "$LANGHOST_SRC" "$src/langhost/main.go"
  write_gomod "$src/langhost" larry.local/engine/pulumi-language-python "github.com/pulumi/pulumi/sdk/v3 v$ver"
  (cd "$src/langhost" && go mod tidy && go build -trimpath \
      -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$ver+larry" \
      -o "$out/pulumi-language-python" .) || die "building the Python language host failed"

  # Upstream scripts shipped in the sdk/v3 module zip; zip extraction drops the exec bit.
  local sdkdir
  sdkdir="$(cd "$src/langhost" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
  install -m 0755 "$sdkdir/python/cmd/pulumi-language-python-exec" "$out/pulumi-language-python-exec"
  install -m 0755 "$sdkdir/python/dist/pulumi-resource-pulumi-python" "$out/pulumi-resource-pulumi-python"
  sha_of "$LANGHOST_SRC" >"$out/.langhost-src"
  log "pulumi CLI v$ver + python language host: built in $((SECONDS - t0))s"
}

ensure_cli() { # version -> prints bin dir
  local ver="$1" dir t0=$SECONDS
  if dir="$(found_cli "$ver")"; then
    log "pulumi CLI v$ver: found at $dir"
  else
    dir="$(cli_dir "$ver")"
    if [[ -x "$dir/pulumi" && -x "$dir/pulumi-language-python" && -x "$dir/pulumi-language-python-exec" \
          && "$(cat "$dir/.langhost-src" 2>/dev/null)" == "$(sha_of "$LANGHOST_SRC")" ]] \
       && [[ "$("$dir/pulumi" version 2>/dev/null)" == "v$ver" ]]; then
      log "pulumi CLI v$ver + python language host: reused ($dir, $((SECONDS - t0))s)"
    else
      build_cli "$ver" >&2
    fi
  fi
  printf '%s' "$dir"
}

plugin_installed() { # name version
  local d="$ENGINE_HOME/plugins/resource-$1-v$2"
  [[ -x "$d/pulumi-resource-$1" && ! -e "$d.partial" ]]
}

# Writes the generated files a provider's main package embeds (git-ignored upstream, so
# absent from the module zip), from the JSON committed in the zip:
#   kubernetes: schema-embed.json (schema.json with "version" set), terraform-mapping-embed.json
#               (terraform-mapping.json minified) — what its generate.go does.
gen_embeds() { # name srcdir outdir version
  "$(venv_python)" - "$@" <<'PY'
import json, sys, os
name, src, out, version = sys.argv[1:5]
def dump(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
schema = json.load(open(os.path.join(src, "schema.json")))
schema["version"] = version
dump(schema, os.path.join(out, "schema-embed.json"))
if name == "kubernetes":
    dump(json.load(open(os.path.join(src, "terraform-mapping.json"))), os.path.join(out, "terraform-mapping-embed.json"))
PY
}

build_provider() { # name version modversion stamp -> prints binary path
  local name="$1" ver="$2" modver="$3" stamp="$4" src out modpath moddir t0=$SECONDS
  modpath="github.com/pulumi/pulumi-$name/provider/v4"
  src="$CACHE/src/provider-$name-v$ver"; out="$CACHE/providers/$name-v$ver"
  rm -rf "$src" && mkdir -p "$src" "$out"
  engine_go_env
  write_gomod "$src" "larry.local/engine/pulumi-resource-$name" "$modpath $modver"
  # The provider's main package, copied next to its generated embed files.
  moddir="$(cd "$src" && go mod download -json "$modpath@$modver" | "$(venv_python)" -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')" \
    || die "$name provider source $modpath@$modver is not available from the Go proxy"
  install -m 0644 "$moddir/cmd/pulumi-resource-$name/main.go" "$src/main.go"
  gen_embeds "$name" "$moddir/cmd/pulumi-resource-$name" "$src" "$stamp"
  (cd "$src" && go mod tidy && go build -trimpath \
      -ldflags "-s -w -X $modpath/pkg/version.Version=$stamp" -o "$out/pulumi-resource-$name.tmp" .) \
    || die "building the $name provider failed"
  mv "$out/pulumi-resource-$name.tmp" "$out/pulumi-resource-$name"
  log "provider $name v$ver (source $modver): built in $((SECONDS - t0))s"
}

ensure_provider() { # clidir name version
  local clidir="$1" name="$2" ver="$3" entry modver stamp bin t0=$SECONDS
  if plugin_installed "$name" "$ver"; then
    log "provider $name v$ver: found in $ENGINE_HOME/plugins"
    return 0
  fi
  entry="${PROVIDER_SOURCES["$name@$ver"]:-}"
  [[ -n "$entry" ]] || die "provider $name v$ver: no Go source for this version is served by the Go proxy (see the header of scripts/engine.sh); pin a version listed in PROVIDER_SOURCES or set LARRY_ENGINE_SKIP=$name"
  read -r modver stamp <<<"$entry"
  bin="$CACHE/providers/$name-v$ver/pulumi-resource-$name"
  if [[ -x "$bin" ]]; then
    log "provider $name v$ver: reused build ($bin)"
  else
    build_provider "$name" "$ver" "$modver" "$stamp" >&2
  fi
  PULUMI_HOME="$ENGINE_HOME" PULUMI_SKIP_UPDATE_CHECK=true \
    "$clidir/pulumi" plugin install resource "$name" "$ver" --file "$bin" >/dev/null
  log "provider $name v$ver: installed into $ENGINE_HOME/plugins ($((SECONDS - t0))s)"
}

skipped() { [[ ",${LARRY_ENGINE_SKIP:-}," == *",$1,"* ]]; }

cmd_ensure() {
  local t0=$SECONDS clidir name ver cliver
  command -v go >/dev/null || die "go is required to build the engine"
  mkdir -p "$CACHE" "$ENGINE_HOME"
  # One build at a time per cache: a second `ensure` (two make targets, two checkouts) waits
  # for the first and then finds everything built, instead of building it all again beside it.
  exec 9>"$CACHE/.ensure.lock"
  if ! flock -n 9; then
    log "another engine.sh ensure is building in $CACHE; waiting for it"
    flock 9
  fi
  {
    read -r _ cliver
    clidir="$(ensure_cli "${LARRY_PULUMI_CLI_VERSION:-$cliver}")"
    while read -r name ver; do
      if skipped "$name"; then log "provider $name v$ver: skipped (LARRY_ENGINE_SKIP)"; continue; fi
      ensure_provider "$clidir" "$name" "$ver"
    done
  } < <(wheel_versions)
  log "engine ready in $((SECONDS - t0))s"
}

cmd_env() {
  local cliver clidir
  cliver="${LARRY_PULUMI_CLI_VERSION:-$(wheel_versions | awk '$1=="pulumi"{print $2}')}"
  clidir="$(found_cli "$cliver" || cli_dir "$cliver")"
  printf 'export PATH=%q:"$PATH"\n' "$clidir"
  printf 'export PULUMI_HOME=%q\n' "$ENGINE_HOME"
  printf 'export PULUMI_SKIP_UPDATE_CHECK=true\n'
  printf 'export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true\n'
  printf 'export PULUMI_IGNORE_AMBIENT_PLUGINS=true\n'
  printf 'export PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK=true\n'
  # Dev-only default; a real passphrase (or passphrase file) set by the caller wins.
  if [[ -z "${PULUMI_CONFIG_PASSPHRASE+x}" && -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]]; then
    printf 'export PULUMI_CONFIG_PASSPHRASE=larry-dev-only\n'
  fi
  if [[ -z "${PULUMI_BACKEND_URL:-}" ]]; then
    printf 'export PULUMI_BACKEND_URL=%q\n' "file://$ROOT/.pulumi-state"
  fi
}

cmd_versions() {
  local name ver entry
  while read -r name ver; do
    if [[ "$name" == pulumi ]]; then
      printf 'pulumi CLI %s (language host: larry stand-in on sdk/v3 v%s)\n' "${LARRY_PULUMI_CLI_VERSION:-$ver}" "${LARRY_PULUMI_CLI_VERSION:-$ver}"
    else
      entry="${PROVIDER_SOURCES["$name@$ver"]:-unavailable}"
      printf 'provider %s %s <- %s\n' "$name" "$ver" "$entry"
    fi
  done < <(wheel_versions)
}

case "${1:-}" in
  ensure) cmd_ensure ;;
  env) cmd_env ;;
  versions) cmd_versions ;;
  *) die "usage: $0 ensure|env|versions" ;;
esac
