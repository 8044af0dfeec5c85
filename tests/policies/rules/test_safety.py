"""Safety rules (policies/rules/safety.py)."""
from __future__ import annotations

import pytest
from pulumi_policy import EnforcementLevel

from policies import kube
from policies.rules import RULES
from tests.policies.harness import (
    CLEANUP,
    COORDINATOR_01,
    COORDINATOR_02,
    REDIS,
    K8s,
    all_violations,
    containers_of,
    meta,
    named,
    plan,
    program_resources,
    render,
    violations,
    without,
)


def redis_container(resources: list[K8s], name: str) -> dict:
    return next(c for c in containers_of(named(resources, "redis")) if c["name"] == name)


def test_redis_requires_a_password_from_a_secret(dev_resources):
    redis_container(dev_resources, "redis")["args"] = ["--port", "6379"]
    redis_container(dev_resources, "sentinel")["command"][-1] = "hunter2"
    assert violations("redis-password", dev_resources) == [
        f"{REDIS}, container redis: starts Redis without requirepass in its command "
        "and args",
        f"{REDIS}, container sentinel: requirepass in its command and args is not "
        "followed by a variable set from a Secret (a literal password would sit in the manifest)"]


def test_redis_password_variable_must_come_from_a_secret(dev_resources):
    redis_container(dev_resources, "redis")["env"] = [{"name": "REDIS_PASSWORD", "value": "hunter2"}]
    assert violations("redis-password", dev_resources) == [
        f"{REDIS}, container redis: requirepass in its command and args uses "
        "$REDIS_PASSWORD, which is not set from a Secret"]


def scripted_redis(resources: list[K8s], script: str) -> list[K8s]:
    """The server started by a script from a ConfigMap, as the RedisHA component does it."""
    server = redis_container(resources, "redis")
    server.update(command=["sh", "/scripts/redis.sh"], volumeMounts=[{"name": "scripts", "mountPath": "/scripts"}])
    del server["args"]
    pod_spec = named(resources, "redis").props["spec"]["template"]["spec"]
    pod_spec["volumes"] = [{"name": "scripts", "configMap": {"name": "redis-scripts"}}]
    scripts = K8s(kube.CONFIG_MAP, "redis-scripts", {"metadata": meta("redis-scripts", "redis-ha"), "data": {
        "redis.sh": ". /scripts/common.sh\nprintf 'port 6379\\n' > /run/redis.conf\nexec redis-server /run/redis.conf",
        "common.sh": script}})
    return [*resources, scripts]


def test_redis_password_set_by_a_mounted_script(dev_resources):
    # Followed through redis.sh into common.sh: the directive and its placeholder count.
    resources = scripted_redis(dev_resources, "printf 'requirepass \"%s\"\\n' \"$REDIS_PASSWORD\" >> /run/redis.conf")
    assert violations("redis-password", resources) == []
    resources = scripted_redis(render(plan("dev")), "echo starting")
    assert violations("redis-password", resources) == [
        f"{REDIS}, container redis: starts Redis without requirepass in its command "
        "and args, /scripts/redis.sh, /scripts/common.sh"]


def test_redis_script_from_a_config_map_outside_the_stack_cannot_evaluate(dev_resources):
    resources = without(scripted_redis(dev_resources, "requirepass $REDIS_PASSWORD"), "redis-scripts")
    assert violations("redis-password", resources) == [
        f"{REDIS}, container redis: cannot evaluate, /scripts/redis.sh comes from "
        "ConfigMap redis-scripts, which is not in the stack"]


def test_redis_is_fenced_by_a_network_policy(dev_resources):
    assert violations("redis-network-policy", dev_resources) == []
    unfenced = [r for r in dev_resources if r.type != kube.NETWORK_POLICY]
    assert violations("redis-network-policy", unfenced) == [
        f"{REDIS}: no NetworkPolicy in namespace redis-ha selects its pods "
        "(app.kubernetes.io/name=redis, app.kubernetes.io/part-of=larry) for ingress"]


def test_a_network_policy_open_to_everyone_is_no_fence(dev_resources):
    named(dev_resources, "redis-allow-larrys").props["spec"]["ingress"] = [
        {"ports": [{"port": 6379}]}, {"from": [{"namespaceSelector": {}}]},
        {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]
    assert violations("redis-network-policy", dev_resources) == [
        f"{REDIS}: NetworkPolicy redis-ha/allow-larrys ingress rule 0 has no 'from'",
        f"{REDIS}: NetworkPolicy redis-ha/allow-larrys ingress rule 1 admits every "
        "namespace or address",
        f"{REDIS}: NetworkPolicy redis-ha/allow-larrys ingress rule 2 admits every "
        "namespace or address"]


def test_a_stack_without_redis_cannot_show_it_is_fenced(dev_resources):
    assert violations("redis-network-policy", without(dev_resources, "redis")) == [
        "cannot evaluate: no workload runs the redis image, though the plan deploys Redis in namespace redis-ha"]


def test_no_privileged_root_or_escalating_container(dev_resources):
    job = named(dev_resources, "larry-01-cleanup-worker")
    containers_of(job)[0]["securityContext"] = {"privileged": True, "runAsUser": 0,
                                                "capabilities": {"add": ["SYS_ADMIN"]}}
    coordinator_ = named(dev_resources, "larry-01-coordinator")
    coordinator_.props["spec"]["template"]["spec"]["securityContext"] = {}
    containers_of(coordinator_)[0]["securityContext"] = {"allowPrivilegeEscalation": False}
    assert violations("container-security", dev_resources) == [
        f"{COORDINATOR_01}, container coordinator: may run as root (neither "
        "runAsNonRoot: true nor a non-zero runAsUser)",
        f"{CLEANUP}, container worker: privileged: true; allowPrivilegeEscalation is not false "
        "(Kubernetes defaults it to true); adds capabilities SYS_ADMIN; runs as root (runAsUser 0)"]


def test_cluster_roles_only_read(dev_resources):
    role = named(dev_resources, "larry-02-cluster-read")
    role.props["rules"] += [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
                            {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["list", "patch", "*"]}]
    assert violations("clusterrole-read-only", dev_resources) == [
        "ClusterRole larry:larry-02:cluster-read: rule 1 grants access to secrets",
        "ClusterRole larry:larry-02:cluster-read: rule 2 grants patch, * on * (allowed verbs: get, list, watch)",
        "ClusterRole larry:larry-02:cluster-read: rule 2 grants access to *"]


def test_an_aggregated_cluster_role_cannot_be_evaluated(dev_resources):
    role = named(dev_resources, "larry-02-cluster-read")
    role.props["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {"rbac.example/aggregate": "true"}}]}
    assert violations("clusterrole-read-only", [role]) == [
        "ClusterRole larry:larry-02:cluster-read: cannot evaluate, it aggregates other ClusterRoles, whose rules "
        "this policy does not see"]


def test_untagged_or_latest_images_are_advised_against(dev_resources):
    assert RULES["image-tag"].level is EnforcementLevel.ADVISORY
    containers_of(named(dev_resources, "larry-01-cleanup-worker"))[0]["image"] = "ghcr.io/larry-dev/larry-runtime"
    containers_of(named(dev_resources, "larry-01-coordinator"))[0]["image"] = "registry:5000/larry-runtime:latest"
    containers_of(named(dev_resources, "larry-02-coordinator"))[0]["image"] = "registry:5000/larry-runtime"
    containers_of(named(dev_resources, "larry-03-coordinator"))[0]["image"] = "larry-runtime@sha256:" + "a" * 64
    assert violations("image-tag", dev_resources) == [
        f"{COORDINATOR_01}, container coordinator: image registry:5000/larry-runtime:latest "
        "is tagged latest, so it is not pinned",
        f"{CLEANUP}, container worker: image ghcr.io/larry-dev/larry-runtime is untagged, so it "
        "is not pinned",
        f"{COORDINATOR_02}, container coordinator: image registry:5000/larry-runtime is "
        "untagged, so it is not pinned"]


# --------------------------------------------------------------------------- agent profiles (issue 14)

CLAUDE = {"command": ["claude", "-p", "{title}"], "usage": "claude-code",
          "image": "ghcr.io/example/larry-claude:2.1.332",
          "secretEnv": {"ANTHROPIC_API_KEY": {"secret": "anthropic", "key": "api-key"}},
          "egress": [{"service": "egress-proxy.proxy", "ports": [3128]}]}


def with_agent(egress):
    """The dev stack with every worker running a claude profile whose egress is ``egress``."""
    def edit(values):
        values.setdefault("larry:agents", {})["claude"] = {**CLAUDE, "egress": egress}
        values["larry:defaultAgent"] = "claude"
    return edit


def agent_policy(egress: list[dict]) -> K8s:
    return K8s(kube.NETWORK_POLICY, "larry-01-agent-claude", {
        "metadata": meta("agent-claude-egress", "larry-01", {"larry.dev/agent": "claude"}),
        "spec": {"podSelector": {"matchLabels": {"app": "larry-worker", "larry.dev/agent": "claude"}},
                 "policyTypes": ["Egress"], "egress": egress}})


AGENT_POLICY = "NetworkPolicy larry-01/agent-claude-egress (agent profile claude)"


def test_the_rendered_stack_with_a_fenced_profile_passes():
    resources = program_resources("dev", with_agent([{"service": "egress-proxy.proxy", "ports": [3128]},
                                                     {"cidr": "10.43.0.0/16"}, {"cidr": "192.0.2.7/32", "ports": [443]}]))
    assert [r for r in resources if "agent-claude" in r.name]
    assert all_violations(resources) == {}  # these two rules and every other


@pytest.mark.parametrize("cidr,ports", [("0.0.0.0/0", [443]), ("::/0", None), ("0.0.0.0/0", None)])
def test_a_profile_open_to_every_address_is_mandatory(cidr, ports):
    assert RULES["egress-open"].level is EnforcementLevel.MANDATORY
    rule = {"cidr": cidr, **({"ports": ports} if ports else {})}
    found = violations("egress-open", program_resources("dev", with_agent([rule])))
    # One per namespace whose workers run the profile, naming it (in no particular order: the
    # program registers resources concurrently).
    assert sorted(found) == [f"NetworkPolicy {ns}/agent-claude-egress (agent profile claude): egress rule 1 admits "
                     f"every address ({cidr})" for ns in ("larry-01", "larry-02", "larry-03")]


def test_every_port_of_a_wide_network_is_flagged_a_narrow_one_or_named_ports_are_not():
    found = violations("egress-open", [agent_policy([
        {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]},
        {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"protocol": "TCP", "port": 443}]},
        {"to": [{"ipBlock": {"cidr": "10.43.0.0/16"}}]},
        {"to": [{"ipBlock": {"cidr": "2001:db8::/32"}}]},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": 443}]},
    ])])
    assert found == [f"{AGENT_POLICY}: egress rule 0 admits every port of 10.0.0.0/8, wider than /16",
                     f"{AGENT_POLICY}: egress rule 3 admits every port of 2001:db8::/32, wider than /48",
                     f"{AGENT_POLICY}: egress rule 4 admits every address (0.0.0.0/0)"]
    assert violations("egress-open", [agent_policy([{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}])],
                      {"ipv4MinPrefix": 8}) == []


def test_an_egress_rule_without_destinations_admits_everything():
    found = violations("egress-open", [agent_policy([{"ports": [{"protocol": "TCP", "port": 443}]}, {"to": []}])])
    assert found == [f"{AGENT_POLICY}: egress rule 0 has no 'to', so it admits every destination",
                     f"{AGENT_POLICY}: egress rule 1 has no 'to', so it admits every destination"]


def test_a_malformed_cidr_cannot_be_evaluated():
    assert violations("egress-open", [agent_policy([{"to": [{"ipBlock": {"cidr": "somewhere"}}]}])]) == [
        f"{AGENT_POLICY}: cannot evaluate, ipBlock cidr 'somewhere' "
        "is not a network"]


def test_the_committed_stacks_open_no_egress():
    for stack in ("dev", "cortex"):
        assert violations("egress-open", program_resources(stack)) == []


def test_a_credential_as_a_literal_value_is_flagged_without_showing_it(dev_resources):
    assert RULES["secret-env-from-secret"].level is EnforcementLevel.MANDATORY
    # What the loader cannot see: a container rendered with the value written in.
    containers_of(named(dev_resources, "larry-01-cleanup-worker"))[0]["env"] = [
        {"name": "ANTHROPIC_API_KEY", "value": "sk-ant-api03-VERYSECRET"},
        {"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "openai", "key": "api-key"}}},
        {"name": "CLAUDE_CODE_MAX_OUTPUT_TOKENS", "value": "4096"}]
    found = violations("secret-env-from-secret", dev_resources)
    assert found == [f"{CLEANUP}, container worker: ANTHROPIC_API_KEY has a literal value (not shown); "
                     "a credential comes from a Secret (valueFrom.secretKeyRef)"]
