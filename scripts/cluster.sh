#!/usr/bin/env bash
# scripts/cluster.sh — a real Kubernetes control plane on this machine, built from Go sources
# fetched through the Go module proxy, run inside a network namespace of its own.
#
#   scripts/cluster.sh ensure     find or build the binaries; install Debian's etcd, containerd,
#                                 runc and CNI plugins when missing
#
# Binaries are built outside the repository, keyed by version, and reused:
#   ${LARRY_CLUSTER_CACHE:-$HOME/.cache/larry-cluster}/
#     go/mod, go/build       GOMODCACHE and GOCACHE of these builds only
#     src/kubernetes-<ver>/  generated consumer Go module (never committed)
#     <key>/bin/             kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
#                            kubelet, kube-proxy, kwok, coredns; <key> names every version
#
# Why a consumer module: k8s.io/kubernetes replaces its staging modules (k8s.io/api,
# k8s.io/client-go, ...) with ./staging/src/k8s.io/* in its own go.mod, so `go install
# k8s.io/kubernetes/cmd/...@v1.34.4` is refused. A module of our own requires it, names the
# commands in a `tool` block, and repeats one replace per staging module pointing at the
# published v0.<minor>.<patch> of that module; the list is read from the real go.mod, so a
# version bump needs no edit here. kwok and CoreDNS have no replace directives: `go install`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${LARRY_CLUSTER_CACHE:-$HOME/.cache/larry-cluster}"
K8S_VERSION=v1.34.4
KWOK_VERSION=v0.8.0
COREDNS_VERSION=v1.14.7
KEY="k8s-$K8S_VERSION-kwok-$KWOK_VERSION-coredns-$COREDNS_VERSION"
BIN="$CACHE/$KEY/bin"
K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
ALL_BINARIES=("${K8S_COMMANDS[@]}" kwok coredns)
# Debian package -> a file it installs (what tells us it is missing).
declare -A DEB_PACKAGES=(
  [etcd-server]=/usr/bin/etcd
  [containerd]=/usr/bin/containerd
  [runc]=/usr/sbin/runc
  [containernetworking-plugins]=/usr/lib/cni/bridge
)

log() { printf '%s\n' "$*" >&2; }
die() { printf 'cluster.sh: %s\n' "$*" >&2; exit 1; }

go_env() {
  export GOMODCACHE="$CACHE/go/mod"
  export GOCACHE="$CACHE/go/build"
  export GOFLAGS="-mod=mod -buildvcs=false"
  export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
  export CGO_ENABLED=0
}

# What the binaries were built from: a rebuild happens when this changes.
recipe() {
  printf '%s\n' "$K8S_VERSION" "$KWOK_VERSION" "$COREDNS_VERSION"
  declare -f write_k8s_module build_k8s
}

built() {
  local b
  for b in "${ALL_BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
  [[ "$(cat "$BIN/.recipe" 2>/dev/null)" == "$(recipe | sha256sum | cut -c1-16)" ]]
}

write_k8s_module() { # dir
  local dir="$1" gomod minor cmd
  gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')"
  [[ -f "$gomod" ]] || die "k8s.io/kubernetes@$K8S_VERSION is not served by the Go module proxy"
  minor="${K8S_VERSION#v*.}"
  mkdir -p "$dir"
  {
    printf 'module larry.local/cluster/kubernetes\n\n'
    # The same language version and GODEBUG defaults as upstream's own builds.
    grep -E '^(go|godebug) ' "$gomod"
    printf '\nrequire k8s.io/kubernetes %s\n\ntool (\n' "$K8S_VERSION"
    for cmd in "${K8S_COMMANDS[@]}"; do printf '\tk8s.io/kubernetes/cmd/%s\n' "$cmd"; done
    printf ')\n\nreplace (\n'
    sed -n 's#^\t\(k8s\.io/[a-z0-9-]*\) => \./staging/src/k8s\.io/[a-z0-9-]*$#\t\1 => \1 v0.'"$minor"'#p' "$gomod"
    printf ')\n'
  } >"$dir/go.mod"
  grep -q ' => ' "$dir/go.mod" || die "no staging replaces found in $gomod"
}

build_k8s() { # outdir
  local out="$1" src="$CACHE/src/kubernetes-$K8S_VERSION" tag_time ldflags pkg cmd pkgs=()
  rm -rf "$src"
  write_k8s_module "$src"
  tag_time="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\t"Info": "\(.*\)",$/\1/p' | xargs sed -n 's/.*"Time":"\([^"]*\)".*/\1/p')"
  # Names from hack/lib/version.sh; without them clients report v0.0.0. The build date is
  # the tag's, so two builds of one version are stamped alike; the commit is not published
  # by the proxy and stays empty.
  local major="${K8S_VERSION#v}"; major="${major%%.*}"
  local minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$tag_time"
  done
  for cmd in "${K8S_COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$cmd"); done
  (cd "$src" && go mod tidy && go build -trimpath -ldflags "$ldflags" -o "$out/" "${pkgs[@]}") \
    || die "building Kubernetes $K8S_VERSION failed (log above)"
}

build_all() {
  local t0=$SECONDS tmp="$CACHE/$KEY/bin.partial"
  go_env
  rm -rf "$tmp" && mkdir -p "$tmp"
  build_k8s "$tmp"
  log "kubernetes $K8S_VERSION: built in $((SECONDS - t0))s"
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" \
    || die "go install kwok@$KWOK_VERSION failed"
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION" \
    || die "go install coredns@$COREDNS_VERSION failed"
  recipe | sha256sum | cut -c1-16 >"$tmp/.recipe"
  rm -rf "$BIN" && mv "$tmp" "$BIN"
  log "cluster binaries built in $((SECONDS - t0))s into $BIN"
}

install_packages() {
  local pkg missing=() sudo=""
  for pkg in "${!DEB_PACKAGES[@]}"; do [[ -e "${DEB_PACKAGES[$pkg]}" ]] || missing+=("$pkg"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get here; install them with your package manager"
  [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
  log "installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packages start system-wide services; the cluster runs its own, inside its namespace.
  if command -v systemctl >/dev/null; then
    for pkg in etcd containerd; do
      systemctl is-active --quiet "$pkg" 2>/dev/null && { $sudo systemctl disable --now "$pkg" >/dev/null 2>&1 || true; }
    done
  fi
  for pkg in "${missing[@]}"; do [[ -e "${DEB_PACKAGES[$pkg]}" ]] || die "$pkg installed but ${DEB_PACKAGES[$pkg]} is absent"; done
}

cmd_ensure() {
  local t0=$SECONDS
  command -v go >/dev/null || die "go is required to build the cluster binaries"
  mkdir -p "$CACHE"
  # One build at a time per cache: a second `ensure` waits for the first, then reuses it.
  exec 9>"$CACHE/.ensure.lock"
  if ! flock -n 9; then
    log "another cluster.sh ensure is running in $CACHE; waiting for it"
    flock 9
  fi
  install_packages
  if built; then
    log "cluster binaries: reused ($BIN, $((SECONDS - t0))s)"
  else
    build_all
  fi
  log "cluster ready to start in $((SECONDS - t0))s"
}

case "${1:-}" in
  ensure) cmd_ensure ;;
  *) die "usage: $0 ensure" ;;
esac
