"""The Catalog component: seed 004's Catalog API ("catalog-system namespace (Redis-backed, 42
assets)", "2 replicas (HA)", risk 4 "Catalog API Downtime").

In its own namespace, enforcing Pod Security "restricted": a Deployment ``catalog-api`` of
``larry:catalog.replicas`` replicas (seed: 2) running ``larry catalog serve`` from the runtime
image, no two on one node (required anti-affinity) and surging one at a time so a rollout
never drops below the running count; readiness on ``/readyz`` (Redis answers) and liveness on
``/healthz``; a PodDisruptionBudget letting a drain take one replica at a time; the Service
``catalog-api`` on the seed's port 3000 (``CATALOG_API``
``http://catalog-api.catalog-system.svc.cluster.local:3000``) and a ServiceMonitor (its job is
``catalog-api``, the one seed 004's ``CatalogAPIDown`` alert watches); the baseline file as a
ConfigMap each replica loads at start (adding only what the catalog lacks; a file that is not
valid stops the replica with one line naming the entry, before anything is written).

State: the stack's Redis hub, under ``catalog:*`` keys beside the run's; replicas find the
primary through Sentinel like every runtime pod, with a copy of the hub's password. Network:
default deny; the Larry namespaces may call the API (and get an egress policy in each of them
to do so), and so may converge (the meta-coordinator, whose Phase 0 reads the baseline: an
egress policy for its pod in the hub's namespace), Prometheus may scrape it, the replicas reach only the Redis hub and DNS.
Not guaranteed: authentication of writers beyond the network policy.
"""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.meta_coordinator import APP_NAME as CONVERGE_APP
from components.namespace import auth_secret, default_deny, namespace
from components.observability import MONITORING_API, catalog_alert_rules, service_monitor
from components.runtime_pod import RuntimePods
from plan import labels as contract
from plan.model import Catalog as CatalogConfig
from plan.model import Observability
from plan.pods import RUNTIME_UID
from plan.quantities import ResourceList, Resources

APP = "catalog-api"
RESOURCES = Resources(ResourceList("200m", "128Mi"), ResourceList("500m", "512Mi"))
#: The meta-coordinator's pod (converge), the catalog's one reader outside the Larry namespaces.
CONVERGE_SELECTOR = {contract.APP: CONVERGE_APP}
BASELINE_DIR, BASELINE_KEY = "/etc/catalog", "baseline.yaml"


@dataclass(frozen=True)
class CatalogArgs:
    catalog: CatalogConfig
    #: The runtime image and how a runtime process reaches the Redis hub.
    pods: RuntimePods
    #: The hub's password, copied into the catalog's namespace.
    password: pulumi.Output[str]
    #: Namespaces whose pods may call the API (the Larry namespaces).
    writer_namespaces: tuple[str, ...]
    observability: Observability
    #: The baseline file's text, or None for an empty catalog.
    baseline: str | None
    #: The RedisHA component and the writers' namespaces: what must exist first.
    depends_on: tuple[pulumi.Resource, ...]


class Catalog(pulumi.ComponentResource):
    def __init__(self, name: str, args: CatalogArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("larry:index:Catalog", name, None, opts)
        catalog, ns = args.catalog, args.catalog.namespace
        self._name, self._catalog = name, catalog
        self.namespace = namespace(ns, name, kube.opts(self))
        child = self._child = kube.opts(self, depends_on=[self.namespace, *args.depends_on])
        auth_secret(ns, f"{name}-redis-auth", args.password, child)
        labels = kube.labels(APP, catalog.service_name, "api")
        selector = {"app.kubernetes.io/name": APP, "app.kubernetes.io/instance": catalog.service_name}
        if args.baseline is not None:
            k8s.core.v1.ConfigMap(f"{name}-baseline", metadata=kube.metadata(f"{APP}-baseline", ns, labels),
                                  data={BASELINE_KEY: args.baseline}, opts=child)
        self._deployment(args, labels, selector)
        k8s.policy.v1.PodDisruptionBudget(f"{name}-api", metadata=kube.metadata(catalog.service_name, ns, labels),
                                          spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}}, opts=child)
        k8s.core.v1.Service(f"{name}-api", metadata=kube.metadata(catalog.service_name, ns, labels), spec={
            "type": "ClusterIP", "selector": selector,
            "ports": [{"name": "http", "port": catalog.port, "targetPort": "http", "protocol": "TCP"}]}, opts=child)
        if args.observability.service_monitors:
            service_monitor(f"{name}-api", catalog.service_name, ns, labels, selector, "http", args.observability, child)
            # The ServiceMonitor's job is the Service's name.
            k8s.apiextensions.CustomResource(
                f"{name}-alerts", api_version=MONITORING_API, kind="PrometheusRule",
                metadata=kube.metadata(f"{APP}-alerts", ns, {**labels, **args.observability.prometheus_labels}),
                spec={"groups": [{"name": "catalog", "rules": catalog_alert_rules(catalog.service_name)}]}, opts=child)
        self._network(args, selector)
        self.url = catalog.url
        self.register_outputs({"namespace": ns, "url": catalog.url, "replicas": catalog.replicas})

    def _deployment(self, args: CatalogArgs, labels: dict[str, str], selector: dict[str, str]) -> None:
        catalog = self._catalog
        command = ["larry", "catalog", "serve", "--port", str(catalog.port)]
        mounts, volumes = [], []
        if args.baseline is not None:
            command += ["--baseline", f"{BASELINE_DIR}/{BASELINE_KEY}"]
            mounts = [{"name": "baseline", "mountPath": BASELINE_DIR, "readOnly": True}]
            volumes = [{"name": "baseline", "configMap": {"name": f"{APP}-baseline"}}]
        container = kube.container(
            "api", args.pods.image, RESOURCES.as_dict(), command=command, env=args.pods.redis_env(),
            ports=[{"name": "http", "containerPort": catalog.port, "protocol": "TCP"}], mounts=mounts,
            readinessProbe=kube.http_probe("/readyz", "http", 5), livenessProbe=kube.http_probe("/healthz", "http", 20))
        k8s.apps.v1.Deployment(f"{self._name}-api", metadata=kube.metadata(APP, catalog.namespace, labels), spec={
            "replicas": catalog.replicas,
            # One new replica before an old one goes: the API never runs below its count.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels}, "spec": kube.pod_spec(
                [container], uid=RUNTIME_UID, gid=RUNTIME_UID, volumes=volumes, pull_secrets=args.pods.pull_secrets,
                affinity=kube.spread_across_nodes(selector))}}, opts=self._child)

    def _network(self, args: CatalogArgs, selector: dict[str, str]) -> None:
        catalog, redis, ns = self._catalog, args.pods.redis, self._catalog.namespace
        api_port = [{"protocol": "TCP", "port": catalog.port}]
        default_deny(ns, f"{self._name}-default-deny", self._child)
        part_of = {"app.kubernetes.io/part-of": kube.PART_OF}
        k8s.networking.v1.NetworkPolicy(f"{self._name}-clients", metadata=kube.metadata(
            f"{APP}-clients", ns, part_of), spec={
            "podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"namespaceSelector": kube.namespace_selector(args.writer_namespaces)}],
                         "ports": api_port},
                        {"from": [{"namespaceSelector": kube.namespace_selector([redis.namespace]),
                                   "podSelector": {"matchLabels": CONVERGE_SELECTOR}}], "ports": api_port},
                        {"from": [{"namespaceSelector": kube.namespace_selector([args.observability.prometheus_namespace])}],
                         "ports": api_port}],
            "egress": [{"to": [{"namespaceSelector": kube.namespace_selector([redis.namespace]),
                                "podSelector": {"matchLabels": kube.REDIS_POD_SELECTOR}}],
                        "ports": [{"protocol": "TCP", "port": p} for p in (redis.port, redis.sentinel_port)]},
                       kube.dns_egress()]}, opts=self._child)
        # Converge (seed 004's coordinator-master, in the hub's namespace, which denies egress
        # but to the hub) reads the catalog's baseline in Phase 0 and its uptime after.
        k8s.networking.v1.NetworkPolicy(f"{self._name}-converge", metadata=kube.metadata(
            "allow-catalog-converge", redis.namespace, part_of), spec={
            "podSelector": {"matchLabels": CONVERGE_SELECTOR}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": kube.namespace_selector([ns]),
                                "podSelector": {"matchLabels": selector}}], "ports": api_port}]},
            opts=self._child)
        # The Larry namespaces deny all egress by default: their pods may call the API, nothing more.
        for writer in args.writer_namespaces:
            k8s.networking.v1.NetworkPolicy(f"{self._name}-writer-{writer}", metadata=kube.metadata(
                "allow-catalog", writer, part_of), spec={
                "podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": kube.namespace_selector([ns]),
                                    "podSelector": {"matchLabels": selector}}], "ports": api_port}]},
                opts=self._child)

