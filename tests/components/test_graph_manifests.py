"""Every manifest either stack would apply: valid against the Kubernetes OpenAPI schema, pods
"restricted", every container bounded; and a config mistake stops the program with its message."""
import copy

import kubernetes_validate
import pulumi
import pytest

from plan.loader import ConfigError, load_config
from tests.components import restricted
from tests.components.pulumi_graph import run_program, stack_values
from tests.support.manifests import CRD_KINDS, KUBERNETES_VERSION


def validate(manifest):
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_every_builtin_kind_validates_against_the_schema(graph):
    kinds = set()
    for resource in graph.kubernetes():
        if resource.kind in CRD_KINDS:
            continue
        try:
            validate(resource.manifest)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{resource.kind} {resource.name}: {err.message} at {list(err.path)}")
        kinds.add(resource.kind)
    assert {"Job", "Deployment", "StatefulSet", "NetworkPolicy", "ResourceQuota"} <= kinds


def test_the_validator_rejects_what_the_api_server_would():
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"},
           "spec": {"backoffLimit": 3, "template": {"spec": {"restartPolicy": "OnFailure",
                                                               "containers": [{"name": "c", "image": "i"}]}}}}
    validate(job)
    for broken in ({"backoffLimit": "three"}, {"backoffLimits": 3}):
        bad = copy.deepcopy(job)
        bad["spec"].update(broken)
        with pytest.raises(kubernetes_validate.ValidationError):
            validate(bad)


def test_custom_resources_are_well_formed(graph):
    """CRD kinds are not in the Kubernetes schema (kubernetes-validate raises SchemaNotFoundError
    for them), so they are checked here against what prometheus-operator requires and against
    the objects they point at."""
    services = {(s.metadata["namespace"], s.metadata["name"]): s.manifest
                for s in graph.kubernetes() if s.kind == "Service"}
    monitors = [r for r in graph.kubernetes() if r.kind == "ServiceMonitor"]
    rules = [r for r in graph.kubernetes() if r.kind == "PrometheusRule"]
    assert monitors and rules
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate(monitors[0].manifest)
    for monitor in monitors:
        manifest = monitor.manifest
        assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
        spec = manifest["spec"]
        ns = manifest["metadata"]["namespace"]
        assert spec["namespaceSelector"]["matchNames"] == [ns]
        matched = [svc for (svc_ns, _), svc in services.items() if svc_ns == ns
                   and spec["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()]
        assert len(matched) == 1, f"{monitor.name} selects {len(matched)} Services"
        ports = {p["name"] for p in matched[0]["spec"]["ports"]}
        assert all(endpoint["port"] in ports and endpoint["path"] == "/metrics" for endpoint in spec["endpoints"])
    for rule in rules:
        for group in rule.manifest["spec"]["groups"]:
            assert group["name"] and group["rules"]
            for entry in group["rules"]:
                assert entry["expr"].count("(") == entry["expr"].count(")")
                if "record" in entry:
                    assert set(entry) == {"record", "expr"}
                    continue
                assert {"alert", "expr", "labels", "annotations"} <= set(entry) <= {"alert", "expr", "for", "labels",
                                                                                     "annotations"}
                assert entry["labels"]["severity"] in {"critical", "high", "warning"}


def test_every_pod_is_restricted(graph):
    pods = [(r, pod) for r in graph.kubernetes() for pod in restricted.pod_specs(r.manifest)]
    assert len(pods) >= 20
    for resource, pod in pods:
        assert restricted.violations(pod) == [], f"{resource.kind} {resource.name}"


def test_the_restricted_check_catches_a_privileged_pod():
    pod = {"hostNetwork": True, "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
           "containers": [{"name": "c", "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}},
                           "ports": [{"containerPort": 80, "hostPort": 80}]}]}
    problems = " ".join(restricted.violations(pod))
    for rule in ("host namespaces", "HostPath", "privileged", "host ports", "privilege escalation",
                 "non-root", "seccomp", "capabilities", "project rule"):
        assert rule in problems


def test_every_container_has_requests_and_limits(graph):
    for resource in graph.kubernetes():
        for pod in restricted.pod_specs(resource.manifest):
            for container in pod["containers"]:
                for part in ("requests", "limits"):
                    assert set(container["resources"][part]) == {"cpu", "memory"}, f"{resource.name} {container['name']}"


def test_images_come_from_config_and_are_pinned(graph):
    for resource in graph.kubernetes():
        for pod in restricted.pod_specs(resource.manifest):
            for container in pod["containers"]:
                image = container["image"]
                assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image


def test_config_mistake_raises_run_error_with_the_config_message():
    values = stack_values("dev")
    values["larry:larrys"][2]["workers"][4]["node"] = "k3s-worker09"
    with pytest.raises(ConfigError) as expected:
        load_config(copy.deepcopy(values), "dev")
    with pytest.raises(pulumi.RunError) as raised:
        run_program("dev", values)
    assert str(raised.value) == str(expected.value) == (
        "Pulumi.dev.yaml: larry:larrys[2].workers[4].node: 'k3s-worker09' is not declared in larry:nodes")
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_an_unknown_larry_key_fails_the_program_as_it_fails_the_loader():
    values = stack_values("dev")
    values["larry:storageclass"] = "local-path"  # a typo of larry:storageClass
    with pytest.raises(pulumi.RunError) as raised:
        run_program("dev", values)
    assert "larry:storageclass" in str(raised.value) and "storageClass" in str(raised.value)
