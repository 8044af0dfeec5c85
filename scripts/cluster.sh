#!/usr/bin/env bash
# scripts/cluster.sh — a real Kubernetes control plane on this machine, built from Go sources
# fetched through the Go module proxy, run inside a network namespace of its own.
#
#   scripts/cluster.sh ensure              find or build the binaries; install Debian's etcd,
#                                          containerd, runc and CNI plugins when missing
#   scripts/cluster.sh up [--stack NAME]   start a cluster (default stack: dev) with one kwok fake
#                                          node per node of the stack's larry:nodes, its storage
#                                          classes, and prometheus-operator's CRDs; beside
#                                          them one real node (kubelet, containerd, kube-proxy,
#                                          kube-router enforcing NetworkPolicies)
#   scripts/cluster.sh env                 print what kubectl and pulumi need (KUBECONFIG, netns)
#   scripts/cluster.sh status              say what runs
#   scripts/cluster.sh down                stop everything `up` started and remove its state
#
# The cluster lives in a network namespace of its own (LARRY_CLUSTER_NETNS, default
# larry-cluster): loopback, and a veth pair carrying the node address the API server
# advertises and the cluster DNS address (this kernel has no dummy links). Every address the
# cluster uses is inside it; the host's interfaces and iptables are never touched. Clients run
# inside it too: `ip netns exec larry-cluster kubectl get nodes` (see `env`).
#
# Run state (certificates, kubeconfigs, etcd data, logs, PID files) lives in
# ${LARRY_CLUSTER_DIR:-<cache>/run}; each component runs in a session of its own (setsid) and
# `down` stops exactly those process groups, by their PID files, never by name.
#
# Binaries are built outside the repository, keyed by version, and reused:
#   ${LARRY_CLUSTER_CACHE:-$HOME/.cache/larry-cluster}/
#     go/mod, go/build       GOMODCACHE and GOCACHE of these builds only
#     src/kubernetes-<ver>/  generated consumer Go module (never committed)
#     <key>/bin/             kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
#                            kubelet, kube-proxy, kwok, coredns; <key> names every version
#     kube-router-<ver>/bin/ kube-router, built apart so that a new version rebuilds it alone
#     crds-prometheus-operator-<ver>/  the ServiceMonitor and PrometheusRule CRDs, from the
#                            prometheus-operator module (a cluster with kube-prometheus-stack
#                            has them; the stacks' monitoring objects are validated against them)
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
PROMETHEUS_OPERATOR_VERSION=v0.85.0
# The only version of kube-router the Go module proxy serves. It runs as k3s runs it (its
# network policy controller alone), inside the cluster's namespace and for the real node only.
KUBE_ROUTER_VERSION=v2.1.0
KUBE_ROUTER="$CACHE/kube-router-$KUBE_ROUTER_VERSION/bin/kube-router"
CRDS="$CACHE/crds-prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"
CRD_KINDS=(servicemonitors prometheusrules)
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
  [ipset]=/usr/sbin/ipset
)

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

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
  go_env "$CACHE/go/mod" "$CACHE/go/build"
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

build_kube_router() {
  local t0=$SECONDS tmp="${KUBE_ROUTER%/bin/*}/bin.partial"
  go_env "$CACHE/go/mod" "$CACHE/go/build"
  rm -rf "$tmp" && mkdir -p "$tmp"
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION" \
    || die "go install kube-router@$KUBE_ROUTER_VERSION failed"
  rm -rf "${KUBE_ROUTER%/*}" && mv "$tmp" "${KUBE_ROUTER%/*}"
  log "kube-router $KUBE_ROUTER_VERSION built in $((SECONDS - t0))s"
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
  [[ -x "$KUBE_ROUTER" ]] || build_kube_router
  [[ -f "$STAGES" ]] || write_kwok_stages
  [[ -d "$CRDS" ]] || fetch_crds
  log "cluster ready to start in $((SECONDS - t0))s"
}

# kwok's own stages (node-initialize, node-heartbeat-with-lease, pod-ready, pod-complete,
# pod-delete: its "fast" set) from the module of the kwok that was built; without stages kwok
# stops with "no stages found".
write_kwok_stages() {
  local dir="$CACHE/go/mod/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage" f
  [[ -d "$dir" ]] || { go_env "$CACHE/go/mod" "$CACHE/go/build"; GOFLAGS= go mod download "sigs.k8s.io/kwok@$KWOK_VERSION"; }
  for f in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
           pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    printf -- '---\n'; cat "$dir/$f.yaml"
  done >"$STAGES.tmp"
  mv "$STAGES.tmp" "$STAGES"
}

fetch_crds() {
  local mod="$CACHE/go/mod/github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" kind
  if [[ ! -d "$mod" ]]; then
    go_env "$CACHE/go/mod" "$CACHE/go/build"
    GOFLAGS= go mod download "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" \
      || die "prometheus-operator@$PROMETHEUS_OPERATOR_VERSION is not served by the Go module proxy"
  fi
  rm -rf "$CRDS.partial" && mkdir -p "$CRDS.partial"
  for kind in "${CRD_KINDS[@]}"; do
    cp "$mod/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$CRDS.partial/"
  done
  mv "$CRDS.partial" "$CRDS"
}

# ---------------------------------------------------------------------------------------------
# The running cluster.
RUN="${LARRY_CLUSTER_DIR:-$CACHE/run}"
NS="${LARRY_CLUSTER_NETNS:-larry-cluster}"
VENV="${LARRY_VENV:-$ROOT/.venv}"
STAGES="$CACHE/$KEY/kwok-stages.yaml"
# Addresses, all inside the namespace. Service and pod ranges and the DNS address are k3s's
# defaults, so what a stack assumes of a k3s cluster holds here.
NODE_IP=10.201.0.1
# The fake nodes' address (and their pods' hostIP), apart from the real node's: kube-router,
# which acts on the pods whose hostIP is its node's, then keeps rules for real pods only.
FAKE_NODE_IP=10.201.0.2
API_PORT=6443
SERVICE_CIDR=10.43.0.0/16
API_SERVICE_IP=10.43.0.1
DNS_IP=10.43.0.10
POD_CIDR=10.42.0.0/16
CLUSTER_DOMAIN=cluster.local
# Start order; `down` stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok coredns provisioner containerd kubelet kube-proxy kube-router)
# The one real node: a kubelet with containerd, for pods that must really run. Its pods get
# addresses of their own bridge; a stack that names this node in larry:nodes has its pods there.
REAL_NODE=larry-node
NODE_POD_CIDR=10.44.0.0/24
PROXY_HEALTHZ_PORT=10256
ROUTER_HEALTH_PORT=20244
NODE="$RUN/node"
# The node's pod cgroups, under a root of this cluster's own in every hierarchy (cgroup v1).
CGROUP_ROOT="/larry-$NS"
START_TIMEOUT=${LARRY_CLUSTER_START_TIMEOUT:-120}
# How long a node may go without renewing its Lease before it is NotReady (upstream: 50 s). On
# two busy cores kwok's renewals of the fake nodes' Leases can come late; a NotReady node has
# its pods marked unready, and kwok never marks them ready again, so Deployments and
# StatefulSets would never become available. Node failure is not what this cluster tests.
NODE_GRACE=5m

in_ns() { ip netns exec "$NS" "$@"; }
kctl() { in_ns "$BIN/kubectl" --kubeconfig "$RUN/kubeconfig" "$@"; }
ns_exists() { [[ -e "/run/netns/$NS" ]]; }

# Waits until a command succeeds, at most `seconds`; on timeout says what was awaited.
await() { # seconds what log cmd...
  local limit="$1" what="$2" logfile="$3" end=$((SECONDS + $1))
  shift 3
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= end)); then
      [[ -f "$logfile" ]] && tail -n 5 "$logfile" >&2
      die "timed out after ${limit}s waiting for $what (log: $logfile)"
    fi
    sleep 0.5
  done
}

# ---- certificates and kubeconfigs (openssl; EC P-256 keys)
issue() { # name subject extended-key-usage [subjectAltName]
  local d="$RUN/pki" name="$1"
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/$name.key" 2>/dev/null
  openssl req -new -key "$d/$name.key" -subj "$2" -out "$d/$name.csr"
  {
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n' "$3"
    [[ -z "${4:-}" ]] || printf 'subjectAltName=%s\n' "$4"
  } >"$d/$name.ext"
  openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 365 -extfile "$d/$name.ext" -out "$d/$name.crt" 2>/dev/null
  rm -f "$d/$name.csr" "$d/$name.ext"
}

kubeconfig() { # user file
  cat >"$2" <<KC
apiVersion: v1
kind: Config
clusters:
- name: larry
  cluster:
    server: https://$NODE_IP:$API_PORT
    certificate-authority: $RUN/pki/ca.crt
users:
- name: $1
  user:
    client-certificate: $RUN/pki/$1.crt
    client-key: $RUN/pki/$1.key
contexts:
- name: larry
  context: {cluster: larry, user: $1}
current-context: larry
KC
}

make_pki() {
  local d="$RUN/pki" name
  mkdir -p "$d" "$RUN/kubeconfigs"
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$d/ca.key" -subj /CN=larry-cluster-ca -days 3650 -out "$d/ca.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/sa.key" 2>/dev/null
  openssl ec -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  issue kube-apiserver /CN=kube-apiserver serverAuth \
    "IP:$NODE_IP,IP:127.0.0.1,IP:$API_SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN"
  issue kube-apiserver-kubelet-client /O=system:masters/CN=kube-apiserver-kubelet-client clientAuth
  issue admin /O=system:masters/CN=larry-admin clientAuth
  issue kube-controller-manager /CN=system:kube-controller-manager clientAuth
  issue kube-scheduler /CN=system:kube-scheduler clientAuth
  # kwok stands in for the kubelets of every fake node; the Node authorizer binds one identity
  # to one node, so kwok gets cluster-admin rights instead.
  issue kwok /O=system:masters/CN=kwok clientAuth
  issue coredns /CN=system:coredns clientAuth
  # The identity the API server's bootstrap policy binds to system:node-proxier.
  issue kube-proxy /CN=system:kube-proxy clientAuth
  issue kube-router /CN=system:kube-router clientAuth
  # The volume provisioner creates and deletes PersistentVolumes: cluster-admin, as k3s's
  # local-path provisioner is in effect.
  issue provisioner /O=system:masters/CN=larry-provisioner clientAuth
  # The real node's kubelet: its client identity (the Node authorizer binds it to its node)
  # and the serving certificate the API server checks when it fetches logs.
  issue kubelet "/O=system:nodes/CN=system:node:$REAL_NODE" clientAuth,serverAuth "IP:$NODE_IP,DNS:$REAL_NODE"
  for name in kube-controller-manager kube-scheduler kwok coredns provisioner kubelet kube-proxy kube-router; do
    kubeconfig "$name" "$RUN/kubeconfigs/$name.yaml"
  done
  kubeconfig admin "$RUN/kubeconfig"
  chmod 600 "$d"/*.key
}

# ---- processes: each in a session of its own inside the namespace, recorded by PID and start
# time so that `down` signals exactly the process group it started, even if a PID was reused.
start() { # name cmd...
  local name="$1"; shift
  # `ip netns exec` execs without forking, and setsid need not fork either (the background
  # child is not a group leader), so $! is the component itself and leads its own group.
  ip netns exec "$NS" setsid "$@" >"$RUN/logs/$name.log" 2>&1 </dev/null &
  printf '%s %s\n' "$!" "$(start_time "$!")" >"$RUN/pids/$name.pid"
}

start_time() { local s; s="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1; set -- ${s##*) }; printf '%s' "${20}"; }
group_of() { local s; s="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1; set -- ${s##*) }; printf '%s' "$3"; }

# Prints the PID of a component if the process recorded in its PID file still runs.
live_pid() { # name
  local pid started
  read -r pid started 2>/dev/null <"$RUN/pids/$1.pid" || return 1
  [[ -n "$pid" && "$(start_time "$pid")" == "$started" ]] || return 1
  printf '%s' "$pid"
}

stop_component() { # name
  local name="$1" pid end
  pid="$(live_pid "$name")" || { rm -f "$RUN/pids/$name.pid"; return 0; }
  # Only a group the component leads is signalled as a group (setsid made it so).
  if [[ "$(group_of "$pid")" == "$pid" ]]; then kill -TERM -- "-$pid" 2>/dev/null || true
  else kill -TERM "$pid" 2>/dev/null || true; fi
  end=$((SECONDS + 20))
  while kill -0 -- "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= end)); then
      log "$name (pid $pid) still running 20s after SIGTERM; sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      end=$((SECONDS + 10))
    fi
    sleep 0.2
  done
  rm -f "$RUN/pids/$name.pid"
}

# The real node's components need the host's cgroup mounts, which `ip netns exec` hides (it
# mounts a sysfs of the namespace's own): they enter the network namespace only.
start_on_node() { # name cmd...
  local name="$1"; shift
  nsenter --net="/run/netns/$NS" setsid "$@" >"$RUN/logs/$name.log" 2>&1 </dev/null &
  printf '%s %s\n' "$!" "$(start_time "$!")" >"$RUN/pids/$name.pid"
}

ctr_() { ctr --address "$NODE/containerd/containerd.sock" -n k8s.io "$@"; }

write_node_configs() {
  mkdir -p "$NODE/containerd" "$NODE/cni" "$NODE/kubelet"
  # restrict_oom_score_adj: without CAP_SYS_RESOURCE runc cannot lower a score, and every
  # sandbox would fail; the pod network namespaces live under the state directory, so `down`
  # finds exactly this cluster's.
  cat >"$NODE/containerd.toml" <<TOML
version = 2
root = "$NODE/containerd/root"
state = "$NODE/containerd/state"
[grpc]
  address = "$NODE/containerd/containerd.sock"
[ttrpc]
  address = "$NODE/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/larry-pause:1"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE/cni"
TOML
  cat >"$NODE/cni/10-larry.conflist" <<CNI
{"cniVersion": "0.4.0", "name": "larry", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$NODE_POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$NODE/cni-ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
CNI
  cat >"$NODE/kubelet.yaml" <<KUBELET
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
failSwapOn: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $RUN/pki/ca.crt}
authorization: {mode: Webhook}
clusterDNS: [$DNS_IP]
clusterDomain: $CLUSTER_DOMAIN
tlsCertFile: $RUN/pki/kubelet.crt
tlsPrivateKeyFile: $RUN/pki/kubelet.key
containerRuntimeEndpoint: unix://$NODE/containerd/containerd.sock
# A busy shared disk must not make the node evict the pods under test.
evictionHard: {memory.available: "1%", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
readOnlyPort: 0
serializeImagePulls: false
# Not the host's /var/log/pods: another cluster's kubelet there removes the logs of pods it
# does not know (a finished pod's logs vanished from the API while a second cluster ran).
podLogsDir: $NODE/pod-logs
KUBELET
  # Services for the node's pods. Its rules live in the cluster's namespace and go with it.
  # masqueradeAll: a pod reaching a Service whose endpoint is on the same bridge would get the
  # reply straight over the bridge, past the connection tracking that undoes the DNAT; masked
  # as the bridge's gateway, the reply comes back through the namespace's routing. The
  # conntrack zeros leave the kernel's limits and timeouts alone (the limit is host-wide).
  cat >"$NODE/kube-proxy.yaml" <<PROXY
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $RUN/kubeconfigs/kube-proxy.yaml}
hostnameOverride: $REAL_NODE
mode: iptables
clusterCIDR: $NODE_POD_CIDR
iptables: {masqueradeAll: true, localhostNodePorts: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
nodePortAddresses: [primary]
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:10249
PROXY
}

cgroup_dirs() { local d; for d in /sys/fs/cgroup/*/; do [[ -d "$d${CGROUP_ROOT#/}" ]] && printf '%s\n' "$d${CGROUP_ROOT#/}"; done; }

start_real_node() {
  local line ref archive
  write_node_configs
  for line in /sys/fs/cgroup/*/; do [[ -f "$line/cgroup.procs" ]] && mkdir -p "$line${CGROUP_ROOT#/}"; done
  start_on_node containerd /usr/bin/containerd --config "$NODE/containerd.toml"
  await "$START_TIMEOUT" "containerd's socket" "$RUN/logs/containerd.log" ctr_ version
  # The images the node runs, without any registry: what scripts/images.sh built.
  while read -r ref archive; do
    ctr_ images import "$archive" >/dev/null || die "importing $ref ($archive) into the node failed"
  done < <("$ROOT/scripts/images.sh" list)
  start_on_node kubelet "$BIN/kubelet" --config "$NODE/kubelet.yaml" --kubeconfig "$RUN/kubeconfigs/kubelet.yaml" \
    --node-ip "$NODE_IP" --hostname-override "$REAL_NODE" --root-dir "$NODE/kubelet" --cert-dir "$NODE/kubelet/pki"
  await "$START_TIMEOUT" "the real node $REAL_NODE Ready" "$RUN/logs/kubelet.log" \
    kctl wait --for=condition=Ready "node/$REAL_NODE" --timeout=5s
  start kube-proxy "$BIN/kube-proxy" --config "$NODE/kube-proxy.yaml"
  await "$START_TIMEOUT" "kube-proxy's first sync of the Service rules" "$RUN/logs/kube-proxy.log" \
    in_ns curl -fsS "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz"
  # NetworkPolicies, enforced as k3s enforces them: kube-router's policy controller (iptables
  # and ipsets, in this namespace only) for the real node's pods. Pods on one bridge reach each
  # other past iptables unless bridged traffic is sent through it.
  in_ns sysctl -qw net.bridge.bridge-nf-call-iptables=1
  start kube-router "$KUBE_ROUTER" --run-firewall=true --run-router=false --run-service-proxy=false \
    --enable-cni=false --kubeconfig="$RUN/kubeconfigs/kube-router.yaml" --hostname-override="$REAL_NODE" \
    --service-cluster-ip-range="$SERVICE_CIDR" --health-port="$ROUTER_HEALTH_PORT" --metrics-port=0
  await "$START_TIMEOUT" "kube-router's network policy controller healthy" "$RUN/logs/kube-router.log" \
    in_ns curl -fsS "http://127.0.0.1:$ROUTER_HEALTH_PORT/healthz"
}

# What a stopped kubelet and containerd leave: the containers (each under a shim of its own),
# the kubelet's and the pods' mounts, the pod cgroups. Only this cluster's: its containerd's
# tasks, mounts under its run directory, cgroups under its own root.
stop_real_node() {
  local task mount dir
  if [[ -S "$NODE/containerd/containerd.sock" ]] && live_pid containerd >/dev/null; then
    [[ -f "$RUN/pids/kubelet.pid" ]] && stop_component kubelet
    for task in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true; done
    for task in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks rm -f "$task" >/dev/null 2>&1 || true; done
    for task in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers rm "$task" >/dev/null 2>&1 || true; done
  fi
  [[ -f "$RUN/pids/kubelet.pid" ]] && stop_component kubelet
  [[ -f "$RUN/pids/containerd.pid" ]] && stop_component containerd
  # Deepest first: a mount inside another goes before it.
  while read -r mount; do umount -l "$mount" 2>/dev/null || true; done < <(
    awk -v run="$RUN" 'index($5, run) == 1 {print $5}' /proc/self/mountinfo | sort -r)
  while read -r dir; do
    find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done < <(cgroup_dirs)
}

# ---- configuration files
write_configs() {
  cat >"$RUN/Corefile" <<CF
.:53 {
    errors
    ready 127.0.0.1:8181
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $RUN/kubeconfigs/coredns.yaml larry
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
}
CF
  # What CoreDNS reads (the upstream kubernetes add-on's ClusterRole, minus nodes), and what
  # kube-router's informers read (its firewall daemonset's ClusterRole, read-only); each bound
  # to the user its certificate names.
  {
    cat <<RB
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
RB
    user_binding system:coredns
    cat <<RB
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:kube-router"}
rules:
- apiGroups: [""]
  resources: [namespaces, pods, services, nodes, endpoints]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
RB
    user_binding system:kube-router
  } >"$RUN/rbac.yaml"
}

user_binding() { # the ClusterRole and user of the same name
  cat <<RB
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "$1"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "$1"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "$1"}
RB
}

make_netns() {
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  # The node's interface: a veth pair kept inside the namespace (no dummy links here). The
  # default route makes every address not in the namespace a dead end inside it.
  ip -n "$NS" link add larry0 type veth peer name larry0-peer
  ip -n "$NS" addr add "$NODE_IP/24" dev larry0
  ip -n "$NS" addr add "$FAKE_NODE_IP/32" dev larry0
  ip -n "$NS" addr add "$DNS_IP/32" dev larry0
  ip -n "$NS" link set larry0-peer up
  ip -n "$NS" link set larry0 up
  ip -n "$NS" route add default dev larry0
  # `ip netns exec` bind-mounts /etc/netns/<name>/* over /etc: clients run in the namespace
  # resolve Service names through the cluster DNS.
  mkdir -p "/etc/netns/$NS"
  printf 'nameserver %s\nsearch default.svc.%s svc.%s %s\noptions ndots:5\n' \
    "$DNS_IP" "$CLUSTER_DOMAIN" "$CLUSTER_DOMAIN" "$CLUSTER_DOMAIN" >"/etc/netns/$NS/resolv.conf"
}

failed_up() { # exit status
  (($1)) || return 0
  rm -rf "$CACHE/failed-up-logs" && cp -r "$RUN/logs" "$CACHE/failed-up-logs" 2>/dev/null || true
  log "up failed; stopping what was started (logs kept in $CACHE/failed-up-logs)"
  cmd_down
}

cmd_up() {
  local stack=dev t0=$SECONDS objects kind
  while (($#)); do
    case "$1" in
      --stack) [[ $# -ge 2 && -n "$2" ]] || die "--stack needs a stack name"; stack="$2"; shift 2 ;;
      *) die "up: unknown argument '$1' (usage: $0 up [--stack NAME])" ;;
    esac
  done
  [[ "$(id -u)" -eq 0 ]] || die "up needs root (network namespaces)"
  built && [[ -f "$STAGES" && -d "$CRDS" && -x "$KUBE_ROUTER" ]] || die "cluster binaries missing in $CACHE: run $0 ensure first"
  local pkg
  for pkg in "${!DEB_PACKAGES[@]}"; do
    [[ -e "${DEB_PACKAGES[$pkg]}" ]] || die "${DEB_PACKAGES[$pkg]} missing (Debian $pkg): run $0 ensure first"
  done
  [[ -x "$VENV/bin/python" ]] || die "no virtualenv at $VENV (run make venv, or set LARRY_VENV)"
  if ns_exists || [[ -e "$RUN/stack" ]]; then
    die "a cluster is already up (netns $NS, run dir $RUN): run $0 down first"
  fi
  # The stack is read before anything is created: a mistake leaves nothing to clean.
  objects="$(cd "$ROOT" && PYTHONPATH="$ROOT" "$VENV/bin/python" scripts/cluster/stack_objects.py "$stack" "$ROOT" "$REAL_NODE")" \
    || die "stack $stack: cannot read its nodes and storage classes (above)"
  # From here on a failure stops what was started; the logs are kept for the diagnosis.
  trap 'failed_up $?' EXIT
  mkdir -p "$RUN/logs" "$RUN/pids"
  printf '%s\n' "$stack" >"$RUN/stack"
  printf '%s\n' "$objects" >"$RUN/stack-objects.json"
  make_pki
  write_configs
  make_netns
  start etcd /usr/bin/etcd --name larry --data-dir "$RUN/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster larry=http://127.0.0.1:2380
  await "$START_TIMEOUT" "etcd health" "$RUN/logs/etcd.log" in_ns curl -fsS http://127.0.0.1:2379/health

  start kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 \
    --advertise-address="$NODE_IP" --bind-address=0.0.0.0 --secure-port="$API_PORT" \
    --client-ca-file="$RUN/pki/ca.crt" \
    --tls-cert-file="$RUN/pki/kube-apiserver.crt" --tls-private-key-file="$RUN/pki/kube-apiserver.key" \
    --kubelet-client-certificate="$RUN/pki/kube-apiserver-kubelet-client.crt" \
    --kubelet-client-key="$RUN/pki/kube-apiserver-kubelet-client.key" \
    --service-account-key-file="$RUN/pki/sa.pub" --service-account-signing-key-file="$RUN/pki/sa.key" \
    --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC \
    --kubelet-preferred-address-types=InternalIP \
    --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true
  await "$START_TIMEOUT" "the API server's /readyz" "$RUN/logs/kube-apiserver.log" kctl get --raw /readyz

  kctl apply -f "$RUN/rbac.yaml" >/dev/null
  kctl create -f "$RUN/stack-objects.json" >/dev/null
  for kind in "${CRD_KINDS[@]}"; do
    kctl apply --server-side -f "$CRDS/monitoring.coreos.com_$kind.yaml" >/dev/null
  done

  start kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$RUN/kubeconfigs/kube-controller-manager.yaml" \
    --authentication-kubeconfig="$RUN/kubeconfigs/kube-controller-manager.yaml" \
    --authorization-kubeconfig="$RUN/kubeconfigs/kube-controller-manager.yaml" \
    --bind-address=127.0.0.1 --leader-elect=false \
    --node-monitor-grace-period="$NODE_GRACE" \
    --use-service-account-credentials=true \
    --root-ca-file="$RUN/pki/ca.crt" --service-account-private-key-file="$RUN/pki/sa.key" \
    --cluster-signing-cert-file="$RUN/pki/ca.crt" --cluster-signing-key-file="$RUN/pki/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR"
  start kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig="$RUN/kubeconfigs/kube-scheduler.yaml" \
    --authentication-kubeconfig="$RUN/kubeconfigs/kube-scheduler.yaml" \
    --authorization-kubeconfig="$RUN/kubeconfigs/kube-scheduler.yaml" \
    --bind-address=127.0.0.1 --leader-elect=false
  # With node leases kwok renews each fake node's Lease, as a kubelet does; without them the
  # heartbeat-with-lease stage renews nothing, the node lifecycle controller finds every node
  # NotReady after its grace period, and Deployments and StatefulSets stop becoming available.
  start kwok "$BIN/kwok" --config="$STAGES" --kubeconfig="$RUN/kubeconfigs/kwok.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds=40 \
    --node-ip="$FAKE_NODE_IP" --cidr="$POD_CIDR"
  start coredns "$BIN/coredns" -conf "$RUN/Corefile"
  start_real_node
  mkdir -p "$RUN/volumes"
  start provisioner /usr/bin/python3 "$ROOT/scripts/cluster/provisioner.py" "$BIN/kubectl" \
    "$RUN/kubeconfigs/provisioner.yaml" "$RUN/volumes"

  await "$START_TIMEOUT" "every fake node Ready" "$RUN/logs/kwok.log" \
    kctl wait --for=condition=Ready node --all --timeout=5s
  await "$START_TIMEOUT" "the default ServiceAccount (controller-manager)" "$RUN/logs/kube-controller-manager.log" \
    kctl get serviceaccount default -n default
  for kind in "${CRD_KINDS[@]}"; do
    await "$START_TIMEOUT" "the $kind CRD established" "$RUN/logs/kube-apiserver.log" \
      kctl wait --for=condition=Established "crd/$kind.monitoring.coreos.com" --timeout=5s
  done
  await "$START_TIMEOUT" "CoreDNS ready" "$RUN/logs/coredns.log" in_ns curl -fsS http://127.0.0.1:8181/ready
  await "$START_TIMEOUT" "kubernetes.default.svc.$CLUSTER_DOMAIN to resolve to $API_SERVICE_IP" "$RUN/logs/coredns.log" \
    in_ns sh -c "getent hosts kubernetes.default.svc.$CLUSTER_DOMAIN | grep -q '^$API_SERVICE_IP '"
  trap - EXIT
  log "cluster up in $((SECONDS - t0))s: stack $stack, $(kctl get nodes -l type=kwok --no-headers | wc -l) fake nodes and the real node $REAL_NODE, netns $NS"
  cmd_env
}

cmd_down() {
  local i name
  stop_real_node
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    name="${COMPONENTS[$i]}"
    [[ -f "$RUN/pids/$name.pid" ]] && stop_component "$name"
  done
  if ns_exists; then ip netns delete "$NS"; fi
  rm -rf "/etc/netns/$NS"
  rmdir /etc/netns 2>/dev/null || true  # only if no other namespace has files there
  rm -rf "$RUN"
  ! ns_exists || die "netns $NS still present after down"
  if grep -qsF -e "$RUN" -e "/run/netns/$NS" /proc/self/mountinfo; then die "mounts of the cluster remain (see /proc/self/mountinfo)"; fi
  [[ -z "$(cgroup_dirs)" ]] || die "cgroups of the cluster remain: $(cgroup_dirs | tr '\n' ' ')"
  log "cluster down: no process, namespace, mount or state of it left ($RUN removed)"
}

cmd_env() {
  printf 'export KUBECONFIG=%q\n' "$RUN/kubeconfig"
  printf 'export LARRY_CLUSTER_NETNS=%q\n' "$NS"
  printf 'export PATH=%q:"$PATH"\n' "$BIN"
  printf '# every client runs inside the namespace: ip netns exec %q kubectl get nodes\n' "$NS"
}

cmd_status() {
  local name pid up=0
  if ns_exists; then printf 'netns %s: present\n' "$NS"; else printf 'netns %s: absent\n' "$NS"; fi
  [[ -f "$RUN/stack" ]] && printf 'stack: %s (run dir %s)\n' "$(cat "$RUN/stack")" "$RUN"
  for name in "${COMPONENTS[@]}"; do
    if pid="$(live_pid "$name")"; then printf '%-24s running (pid %s)\n' "$name" "$pid"; up=1
    elif [[ -f "$RUN/pids/$name.pid" ]]; then printf '%-24s exited (log: %s)\n' "$name" "$RUN/logs/$name.log"
    else printf '%-24s not started\n' "$name"; fi
  done
  if ((up)) && live_pid kube-apiserver >/dev/null; then kctl get nodes -o wide 2>&1 || true; fi
}

case "${1:-}" in
  ensure) cmd_ensure ;;
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  env) cmd_env ;;
  status) cmd_status ;;
  *) die "usage: $0 ensure | up [--stack NAME] | down | env | status" ;;
esac
