"""Reading Kubernetes objects as the engine hands them (policies/kube.py)."""
from __future__ import annotations

from policies import kube
from tests.policies.harness import (
    engine_shaped,
)


def test_label_selectors_follow_kubernetes_semantics():
    labels = {"app": "redis", "tier": "cache"}
    assert kube.selector_matches({}, labels)
    assert not kube.selector_matches(None, labels)
    assert kube.selector_matches({"matchLabels": {"app": "redis"},
                                  "matchExpressions": [{"key": "tier", "operator": "In", "values": ["cache"]},
                                                       {"key": "zone", "operator": "DoesNotExist"}]}, labels)
    assert not kube.selector_matches({"matchExpressions": [{"key": "app", "operator": "NotIn",
                                                            "values": ["redis"]}]}, labels)
    assert not kube.selector_matches({"matchExpressions": [{"key": "app", "operator": "Gt"}]}, labels)


def test_pinning_reads_node_selector_and_anded_expressions():
    spec = engine_shaped({"nodeSelector": {kube.HOSTNAME: "a"}, "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": kube.HOSTNAME, "operator": "In", "values": ["a", "b"]},
                                  {"key": kube.HOSTNAME, "operator": "In", "values": ["a", "c"]}]}]}}}})
    assert kube.pinned_hostnames(spec) == {"a"}
    assert kube.pinned_hostnames(engine_shaped({"nodeSelector": {kube.HOSTNAME: "z"}})) == {"z"}
    assert kube.pinned_hostnames(engine_shaped({})) is None


def test_image_names():
    assert kube.image_repository("docker.io/library/redis:7.2.5-alpine") == "redis"
    assert kube.image_repository("oliver006/redis_exporter:v1.62.0") == "redis_exporter"
    assert kube.image_tag("registry:5000/redis") is None
    assert kube.image_tag("redis:7.2") == "7.2"
