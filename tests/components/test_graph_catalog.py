"""The Catalog component as the cortex stack renders it (seed 004: catalog-system, 2 replicas,
Redis-backed), and its absence where ``larry:catalog`` is off."""
from __future__ import annotations

import yaml

from tests.components import restricted
from tests.components.pulumi_graph import (
    CM,
    DEPLOY,
    JOB,
    NETPOL,
    NS,
    PDB,
    RULE,
    SECRET,
    SM,
    STS,
    SVC,
    run_program,
    stack_values,
)
from tests.support.project import ROOT

CATALOG_NS = "catalog-system"


def in_catalog(graph, typ):
    return [r for r in graph.of(typ) if r.metadata.get("namespace") == CATALOG_NS]


def test_the_catalog_is_a_component_of_its_own_in_a_restricted_namespace(cortex):
    (component,) = cortex.of("larry:index:Catalog")
    children = [r for r in cortex.resources if r.inputs.get("metadata", {}).get("namespace") == CATALOG_NS]
    assert children
    (namespace,) = [n for n in cortex.of(NS) if n.metadata["name"] == CATALOG_NS]
    assert namespace.metadata["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_two_replicas_on_two_nodes_probed_and_drained_one_at_a_time(cortex):
    (deployment,) = in_catalog(cortex, DEPLOY)
    spec = deployment.manifest["spec"]
    assert deployment.metadata["name"] == "catalog-api" and spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert restricted.violations(pod) == []
    (term,) = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    (container,) = pod["containers"]
    assert container["command"] == ["larry", "catalog", "serve", "--port", "3000",
                                     "--baseline", "/etc/catalog/baseline.yaml"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e for e in container["env"]}
    # Through Sentinel like every runtime pod, the password from the namespace's own Secret.
    assert env["LARRY_REDIS_SENTINELS"]["value"] == "redis-sentinel.cortex-system.svc.cluster.local:26379"
    assert env["LARRY_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "redis-auth", "key": "password"}
    assert [s.metadata["name"] for s in in_catalog(cortex, SECRET)] == ["redis-auth"]
    (budget,) = in_catalog(cortex, PDB)
    assert budget.manifest["spec"]["maxUnavailable"] == 1
    assert budget.manifest["spec"]["selector"] == spec["selector"]


def test_the_seeds_service_monitor_and_baseline(cortex):
    (service,) = in_catalog(cortex, SVC)
    assert service.metadata["name"] == "catalog-api"  # CATALOG_API: http://catalog-api.catalog-system...:3000
    assert service.manifest["spec"]["ports"] == [{"name": "http", "port": 3000, "targetPort": "http",
                                                  "protocol": "TCP"}]
    (monitor,) = in_catalog(cortex, SM)
    assert monitor.manifest["spec"]["endpoints"][0]["port"] == "http"
    # Seed 004's CatalogAPIDown watches the monitor's job, which Prometheus names after the Service.
    (alerts,) = in_catalog(cortex, RULE)
    (group,) = alerts.manifest["spec"]["groups"]
    assert [(r["alert"], r["expr"], r["for"]) for r in group["rules"]] == [
        ("CatalogAPIDown", 'sum(up{job="catalog-api"}) == 0 or absent(up{job="catalog-api"})', "1m")]
    (baseline,) = in_catalog(cortex, CM)
    assert len(yaml.safe_load(baseline.manifest["data"]["baseline.yaml"])["assets"]) == 42
    assert baseline.manifest["data"]["baseline.yaml"] == (ROOT / "catalog-baseline.yaml").read_text()


def test_larry_namespaces_may_write_prometheus_may_scrape_nothing_else(cortex):
    policies = {(p.metadata["namespace"], p.metadata["name"]): p.manifest["spec"] for p in cortex.of(NETPOL)}
    assert policies[(CATALOG_NS, "default-deny")] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    clients = policies[(CATALOG_NS, "catalog-api-clients")]
    sources = [rule["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] for rule in clients["ingress"]]
    assert sources == [["cortex-workers"], ["cortex-system"], ["monitoring"]]
    # From the hub's namespace, converge's pod alone (Phase 0 reads the catalog's baseline).
    (meta,) = [p for p in cortex.of(JOB) if p.metadata["namespace"] == "cortex-system"]
    converge_labels = meta.manifest["spec"]["template"]["metadata"]["labels"]
    selector = clients["ingress"][1]["from"][0]["podSelector"]["matchLabels"]
    assert selector.items() <= converge_labels.items()
    egress = policies[("cortex-system", "allow-catalog-converge")]
    assert egress["podSelector"]["matchLabels"] == selector and egress["policyTypes"] == ["Egress"]
    assert egress["egress"][0]["to"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == [CATALOG_NS]
    assert all(rule["ports"] == [{"protocol": "TCP", "port": 3000}] for rule in clients["ingress"])
    # The replicas reach the Redis hub and DNS only.
    (to_redis, dns) = clients["egress"]
    assert to_redis["to"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["cortex-system"]
    assert {p["port"] for p in dns["ports"]} == {53}
    # Each Larry namespace denies egress by default; its pods get exactly the API.
    writer = policies[("cortex-workers", "allow-catalog")]
    assert writer["egress"] == [{"to": [{"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [CATALOG_NS]}]},
        "podSelector": {"matchLabels": clients["podSelector"]["matchLabels"]}}],
        "ports": [{"protocol": "TCP", "port": 3000}]}]
    # The Redis hub admits the catalog's namespace beside the Larry namespaces.
    hub = policies[("cortex-system", "redis-clients")]
    assert CATALOG_NS in hub["ingress"][0]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"]


def test_no_catalog_unless_enabled(dev):
    assert not dev.of("larry:index:Catalog")
    assert CATALOG_NS not in {n.metadata["name"] for n in dev.of(NS)}
    values = stack_values("dev")
    values["larry:catalog"] = {"enabled": True, "replicas": 3}
    graph = run_program("dev", values)
    (deployment,) = in_catalog(graph, DEPLOY)
    assert deployment.manifest["spec"]["replicas"] == 3
    assert "--baseline" not in deployment.manifest["spec"]["template"]["spec"]["containers"][0]["command"]
    assert not in_catalog(graph, CM) and not in_catalog(graph, STS)
    writers = {p.metadata["namespace"] for p in graph.of(NETPOL) if p.metadata["name"] == "allow-catalog"}
    assert writers == set(graph_namespaces(values))


def graph_namespaces(values):
    return {larry["namespace"] for larry in values["larry:larrys"]}
