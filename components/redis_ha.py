"""The RedisHA component: the coordination hub (seed 001 "Redis Coordination Hub").

Primary and replicas in one StatefulSet with append-only persistence, Sentinels watching them
(seed 004 risk 3: a Redis failure must not stop coordination), the generated password in a
Secret, required anti-affinity so no node holds two servers or two sentinels (a one-node
stack pins them all to its node instead), disruption
budgets, and network policies admitting only the Larry namespaces and the metrics scraper.

Clients find the primary through Sentinel (sentinel address and master name, as
``runtime_pod.RuntimePods.redis_env`` renders them): the ``serviceName`` Service spans
every server, so after a failover only Sentinel knows which one accepts writes. Sentinels
require the same password as the servers.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.namespace import AUTH_KEY, AUTH_SECRET, auth_secret, default_deny, namespace
from components.observability import service_monitor
from components.password import GeneratedPassword
from plan import labels
from plan.model import Observability, Redis
from plan.quantities import ResourceList, Resources

SCRIPTS = Path(__file__).parent / "redis"
#: The redis user and group of the official Alpine image.
REDIS_UID, REDIS_GID = 999, 1000
EXPORTER_PORT = 9121
#: Small fixed sizes for the helpers; the servers' own resources come from the config.
SENTINEL_RESOURCES = Resources(ResourceList("100m", "64Mi"), ResourceList("200m", "128Mi"))
#: A sentinel's volume holds one small config file.
SENTINEL_STORAGE = "64Mi"
EXPORTER_RESOURCES = Resources(ResourceList("50m", "32Mi"), ResourceList("100m", "64Mi"))
#: Commands that could wipe or stall the shared state, disabled for every client.
DISABLED_COMMANDS = ("FLUSHALL", "FLUSHDB", "KEYS")


def redis_conf(redis: Redis) -> str:
    """The servers' base config; redis.sh adds the password and the replication source."""
    # With replicas, a primary that has lost all of them refuses writes instead of accepting
    # writes a failover would then discard.
    min_replicas = 1 if redis.replicas > 1 else 0
    lines = [
        f"port {redis.port}", "bind 0.0.0.0", "dir /data",
        "appendonly yes", "appendfsync everysec",
        f"min-replicas-to-write {min_replicas}", "min-replicas-max-lag 10",
        "replica-read-only yes",
        *(f'rename-command {command} ""' for command in DISABLED_COMMANDS),
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RedisHAArgs:
    redis: Redis
    #: Namespaces whose pods may connect (the Larry namespaces).
    client_namespaces: tuple[str, ...]
    observability: Observability
    #: Secrets the hub's namespace holds for pulling its images.
    pull_secrets: tuple[str, ...] = ()
    #: A one-node stack's node (StackConfig.only_node): every server and sentinel runs there,
    #: so they are pinned to it instead of spread across nodes.
    node: str | None = None


class RedisHA(pulumi.ComponentResource):
    password: pulumi.Output[str]

    def __init__(self, name: str, args: RedisHAArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("larry:index:RedisHA", name, None, opts)
        redis = self._redis = args.redis
        self._pull_secrets, self._node = args.pull_secrets, args.node
        self._name, ns = name, redis.namespace
        self.namespace = namespace(ns, name, kube.opts(self))
        self._child = kube.opts(self, depends_on=[self.namespace])
        generated = GeneratedPassword(f"{name}-password", 32, opts=kube.opts(self))
        self.password = pulumi.Output.secret(generated.result)
        self.secret = auth_secret(ns, f"{name}-redis-auth", self.password, self._child)
        self._headless = f"{redis.service_name}-headless"

        scripts = {"redis.conf": redis_conf(redis),
                   **{script.name: script.read_text() for script in sorted(SCRIPTS.glob("*.sh"))}}
        # A pod reads its scripts only when it starts: their digest in the pod template rolls
        # the StatefulSets when a script or the configuration changes.
        self._scripts_digest = hashlib.sha256(json.dumps(scripts, sort_keys=True).encode()).hexdigest()
        k8s.core.v1.ConfigMap(f"{name}-scripts", metadata=kube.metadata(
            f"{redis.service_name}-scripts", ns, self._labels("scripts")), data=scripts, opts=self._child)
        self._services(args.observability)
        self._servers()
        self._sentinels()
        self._network(args.client_namespaces, args.observability.prometheus_namespace)

        self.endpoints = {
            "host": redis.host, "port": redis.port, "url": f"redis://{redis.host}:{redis.port}/0",
            "sentinelHost": redis.sentinel_host, "sentinelPort": redis.sentinel_port,
            "masterName": redis.master_name,
        }
        self.register_outputs({**self.endpoints, "password": self.password})

    # ---- services
    def _services(self, observability: Observability) -> None:
        redis, ns = self._redis, self._redis.namespace
        # Stable per-pod DNS names for replication and Sentinel, resolvable before pods are ready.
        k8s.core.v1.Service(f"{self._name}-headless", metadata=kube.metadata(
            self._headless, ns, self._labels("peers")), spec={
            "clusterIP": "None", "publishNotReadyAddresses": True, "selector": kube.REDIS_POD_SELECTOR,
            "ports": [self._port("redis", redis.port), self._port("sentinel", redis.sentinel_port)]}, opts=self._child)
        ports = [self._port("redis", redis.port)]
        if redis.exporter:
            ports.append(self._port("metrics", EXPORTER_PORT))
        server_labels = self._labels("server")
        k8s.core.v1.Service(f"{self._name}-server", metadata=kube.metadata(redis.service_name, ns, server_labels),
                            spec={"type": "ClusterIP", "selector": self._selector("server"), "ports": ports},
                            opts=self._child)
        k8s.core.v1.Service(f"{self._name}-sentinel", metadata=kube.metadata(
            redis.sentinel_service, ns, self._labels("sentinel")), spec={
            "type": "ClusterIP", "selector": self._selector("sentinel"),
            "ports": [self._port("sentinel", redis.sentinel_port)]}, opts=self._child)
        if redis.exporter and observability.service_monitors:
            service_monitor(f"{self._name}-server", redis.service_name, ns, server_labels,
                            self._selector("server"), "metrics", observability, self._child)

    # ---- workloads
    def _script_env(self) -> list[dict[str, Any]]:
        redis = self._redis
        password = [kube.secret_env(var, AUTH_SECRET, AUTH_KEY) for var in ("REDIS_PASSWORD", "REDISCLI_AUTH")]
        return kube.env({
            "REDIS_PORT": redis.port, "REDIS_STATEFULSET": redis.service_name, "REDIS_REPLICAS": redis.replicas,
            "HEADLESS_DOMAIN": f"{self._headless}.{redis.namespace}.svc.cluster.local",
            "SENTINEL_HOST": redis.sentinel_host, "SENTINEL_PORT": redis.sentinel_port,
            "MASTER_NAME": redis.master_name, "QUORUM": redis.quorum,
            "DOWN_AFTER_MS": redis.down_after_ms, "FAILOVER_TIMEOUT_MS": redis.failover_timeout_ms,
        }) + password

    def _servers(self) -> None:
        redis = self._redis
        run = {"name": "run", "mountPath": "/run/redis"}
        containers = [kube.container(
            "redis", redis.image, redis.resources.as_dict(), command=["sh", "/scripts/redis.sh"],
            env=self._script_env(), ports=[self._port("redis", redis.port, container=True)],
            mounts=[{"name": "data", "mountPath": "/data"}, self._scripts_mount(), run],
            readinessProbe=self._ping(redis.port), livenessProbe=self._tcp("redis"))]
        if redis.exporter:
            containers.append(kube.container(
                "exporter", redis.exporter_image, EXPORTER_RESOURCES.as_dict(),
                env=kube.env({"REDIS_ADDR": f"redis://localhost:{redis.port}"})
                + [kube.secret_env("REDIS_PASSWORD", AUTH_SECRET, AUTH_KEY)],
                ports=[self._port("metrics", EXPORTER_PORT, container=True)], livenessProbe=self._tcp("metrics")))
        self._stateful_set("server", redis.service_name, redis.replicas, containers, [run], claims=[{
            "metadata": {"name": "data"},
            # No storage class: the cluster default (local disk suits Redis, which replicates itself).
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": redis.storage}}}}])
        # Servers are drained one at a time so a primary and a replica never leave together.
        self._disruption_budget("server", {"maxUnavailable": 1})

    def _sentinels(self) -> None:
        redis = self._redis
        container = kube.container(
            "sentinel", redis.image, SENTINEL_RESOURCES.as_dict(), command=["sh", "/scripts/sentinel.sh"],
            env=self._script_env(), ports=[self._port("sentinel", redis.sentinel_port, container=True)],
            mounts=[self._scripts_mount(), {"name": "data", "mountPath": "/data"}],
            readinessProbe=self._ping(redis.sentinel_port), livenessProbe=self._tcp("sentinel"))
        # The sentinel's config is its memory of the topology: on a volume, it outlives the pod.
        self._stateful_set("sentinel", redis.sentinel_service, redis.sentinels, [container], [], claims=[{
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": SENTINEL_STORAGE}}}}])
        # A drain never takes the sentinels below the quorum a failover needs.
        self._disruption_budget("sentinel", {"minAvailable": redis.quorum})

    def _stateful_set(self, component: str, name: str, replicas: int, containers: list[dict[str, Any]],
                      run_mounts: list[dict[str, Any]], claims: list[dict[str, Any]] | None = None) -> None:
        selector = self._selector(component)
        volumes = [{"name": "scripts", "configMap": {"name": f"{self._redis.service_name}-scripts"}},
                   *({"name": mount["name"], "emptyDir": {}} for mount in run_mounts)]
        spec: dict[str, Any] = {
            "serviceName": self._headless, "replicas": replicas, "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": self._labels(component),
                                      "annotations": {labels.SCRIPTS_DIGEST: self._scripts_digest}},
                         "spec": kube.pod_spec(
                containers, uid=REDIS_UID, gid=REDIS_GID, volumes=volumes, pull_secrets=self._pull_secrets,
                affinity=kube.node_affinity([self._node]) if self._node else kube.spread_across_nodes(selector))}}
        if claims:
            spec["volumeClaimTemplates"] = claims
        k8s.apps.v1.StatefulSet(f"{self._name}-{component}", metadata=kube.metadata(
            name, self._redis.namespace, self._labels(component)), spec=spec, opts=self._child)

    def _disruption_budget(self, component: str, budget: dict[str, int]) -> None:
        k8s.policy.v1.PodDisruptionBudget(f"{self._name}-{component}", metadata=kube.metadata(
            f"{self._redis.service_name}-{component}", self._redis.namespace, self._labels(component)),
            spec={**budget, "selector": {"matchLabels": self._selector(component)}}, opts=self._child)

    # ---- network
    def _network(self, client_namespaces: tuple[str, ...], prometheus_namespace: str) -> None:
        redis, ns = self._redis, self._redis.namespace
        default_deny(ns, f"{self._name}-default-deny", self._child)
        ports = [{"protocol": "TCP", "port": p} for p in (redis.port, redis.sentinel_port)]
        ingress = [{"from": [{"namespaceSelector": kube.namespace_selector(client_namespaces)},
                             {"podSelector": {}}], "ports": ports}]
        if redis.exporter:
            ingress.append({"from": [{"namespaceSelector": kube.namespace_selector([prometheus_namespace])}],
                            "ports": [{"protocol": "TCP", "port": EXPORTER_PORT}]})
        k8s.networking.v1.NetworkPolicy(f"{self._name}-clients", metadata=kube.metadata(
            f"{redis.service_name}-clients", ns, self._labels("network")), spec={
            "podSelector": {"matchLabels": kube.REDIS_POD_SELECTOR}, "policyTypes": ["Ingress"],
            "ingress": ingress}, opts=self._child)
        # Replication and Sentinel traffic between the hub's own pods, plus DNS.
        k8s.networking.v1.NetworkPolicy(f"{self._name}-peers", metadata=kube.metadata(
            f"{redis.service_name}-peers", ns, self._labels("network")), spec={
            "podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": kube.REDIS_POD_SELECTOR}}], "ports": ports},
                       kube.dns_egress()]}, opts=self._child)

    # ---- small pieces
    def _labels(self, component: str) -> dict[str, str]:
        return kube.labels("redis", self._redis.service_name, component)

    def _selector(self, component: str) -> dict[str, str]:
        return {**kube.REDIS_POD_SELECTOR, "app.kubernetes.io/component": component}

    @staticmethod
    def _port(name: str, port: int, container: bool = False) -> dict[str, Any]:
        if container:
            return {"name": name, "containerPort": port, "protocol": "TCP"}
        return {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}

    @staticmethod
    def _scripts_mount() -> dict[str, Any]:
        return {"name": "scripts", "mountPath": "/scripts", "readOnly": True}

    @staticmethod
    def _ping(port: int) -> dict[str, Any]:
        # REDISCLI_AUTH in the environment authenticates without the password on a command line.
        return {"exec": {"command": ["sh", "-c", f"redis-cli -p {port} ping | grep -q PONG"]},
                "periodSeconds": 10, "timeoutSeconds": 3}

    @staticmethod
    def _tcp(port: str) -> dict[str, Any]:
        return {"tcpSocket": {"port": port}, "periodSeconds": 20, "initialDelaySeconds": 10}
