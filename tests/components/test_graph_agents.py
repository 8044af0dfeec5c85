"""A stack with agent profiles renders them (issue 14): the worker Job runs ``larry worker ...
--usage <adapter> -- <the profile's command>`` in the profile's image, with its env, its
Secret-backed env by reference only, a HOME on an emptyDir, and one egress NetworkPolicy per
profile and namespace (DNS plus exactly what ``egress`` names). Workers without a profile
render as before."""
import copy

import kubernetes_validate
import pulumi
import pytest

from plan.loader import load_plan_document
from plan.model import looks_like_secret
from plan.pods import AGENT_HOME_ENV
from tests.components import restricted
from tests.components.pulumi_graph import CM, JOB, NETPOL, GraphMocks, env_of, run_program, stack_values, walk_strings
from tests.components.test_graph_manifests import validate

CLAUDE = {
    "command": ["claude", "-p", "{title}", "--output-format", "stream-json", "--verbose", "--max-turns", "30"],
    "usage": "claude-code",
    "image": "ghcr.io/example/larry-claude:2.1.332",
    "env": {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1"},
    "secretEnv": {"ANTHROPIC_API_KEY": {"secret": "anthropic", "key": "api-key"}},
    "egress": [{"service": "egress-proxy.proxy", "ports": [3128]}, {"cidr": "192.0.2.0/24", "ports": [443, 8443]}],
}
CODEX = {
    "command": ["codex", "exec", "--json", "--skip-git-repo-check", "{title}"],
    "usage": "codex",
    "image": "ghcr.io/example/larry-codex:0.171.0",
    "secretEnv": {"OPENAI_API_KEY": {"secret": "openai", "key": "api-key"}},
    # no egress: DNS only
}
WORKER_COMMAND = ["larry", "worker", "--plan", "/etc/larry/plan.yaml"]


def _values(default="claude"):
    values = stack_values("dev")
    values["larry:agents"] |= {"claude": copy.deepcopy(CLAUDE), "codex": copy.deepcopy(CODEX)}  # beside inventory
    if default:
        values["larry:defaultAgent"] = default
    values["larry:larrys"][0]["workers"][1]["agent"] = "codex"  # larry-01/consolidation-worker
    return values


@pytest.fixture(scope="module")
def agents():
    return run_program("dev", _values())


@pytest.fixture(scope="module")
def one_agent():
    """No default: only larry-01's consolidation-worker runs an agent."""
    return run_program("dev", _values(default=None))


def _pod(job):
    return job.manifest["spec"]["template"]["spec"]


def test_the_worker_runs_the_profile_command_in_its_image(agents):
    jobs = agents.named(JOB)
    (claude,) = _pod(jobs["larry-03/feature-worker"])["containers"]
    assert claude["image"] == CLAUDE["image"]
    assert claude["command"] == [*WORKER_COMMAND, "--larry", "larry-03", "--worker", "feature-worker",
                                 "--usage", "claude-code", "--", *CLAUDE["command"]]
    (codex,) = _pod(jobs["larry-01/consolidation-worker"])["containers"]
    assert codex["image"] == CODEX["image"]
    assert codex["command"][-8:] == ["--usage", "codex", "--", *CODEX["command"]]


def test_env_is_the_runtime_s_the_home_the_profile_s_and_secrets_by_reference(agents):
    (container,) = _pod(agents.named(JOB)["larry-03/feature-worker"])["containers"]
    env = env_of(container)
    assert env["LARRY_WORKER_ID"] == "feature-worker"
    assert {name: env[name] for name in AGENT_HOME_ENV} == AGENT_HOME_ENV
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1" and env["DISABLE_TELEMETRY"] == "1"
    (key,) = [e for e in container["env"] if e["name"] == "ANTHROPIC_API_KEY"]
    assert key == {"name": "ANTHROPIC_API_KEY", "valueFrom": {"secretKeyRef": {"name": "anthropic", "key": "api-key"}}}
    assert "OPENAI_API_KEY" not in env  # another profile's secret is not this worker's
    assert len(container["env"]) == len(env), "a variable set twice"


def test_no_credential_has_a_literal_value_anywhere_in_the_graph(agents):
    for resource in agents.kubernetes():
        for pod in restricted.pod_specs(resource.manifest):
            for container in pod["containers"]:
                for entry in container.get("env", []):
                    if looks_like_secret(entry["name"]) or entry["name"] in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
                        assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], (resource.name, entry)
    # The stack outputs say nothing of the profiles' Secrets.
    assert not any(text in ("anthropic", "openai") for _, text, _ in walk_strings(agents.outputs))


def test_the_plan_config_map_holds_secret_references_not_values(agents):
    plans = {r.manifest["data"]["larry-id"]: r.manifest["data"]["plan.yaml"]
             for r in agents.of(CM) if "plan.yaml" in r.manifest.get("data", {})}
    cfg = load_plan_document(plans["larry-01"], "configmap")
    assert {name: (ref.secret, ref.key) for name, ref in cfg.agents["claude"].secret_env.items()} == {
        "ANTHROPIC_API_KEY": ("anthropic", "api-key")}
    # What the worker needs at run time (limits, prices, the command) is in the plan it mounts.
    assert cfg.agents["claude"].command == tuple(CLAUDE["command"])


def test_a_plain_secret_value_stops_the_program_before_anything_renders():
    values = _values()
    values["larry:agents"]["claude"]["secretEnv"]["ANTHROPIC_API_KEY"] = "sk-ant-api03-VERYSECRET"
    mocks = GraphMocks()
    with pytest.raises(pulumi.RunError) as raised:
        run_program("dev", values, mocks)
    assert str(raised.value).startswith("Pulumi.dev.yaml: larry:agents.claude.secretEnv.ANTHROPIC_API_KEY: ")
    assert "VERYSECRET" not in str(raised.value)
    assert not [r for r in mocks.resources if r.typ.startswith("kubernetes:")]


def test_the_agent_has_a_home_of_its_own_on_an_empty_dir(agents):
    pod = _pod(agents.named(JOB)["larry-03/feature-worker"])
    (container,) = pod["containers"]
    assert {"name": "agent-home", "mountPath": "/home/agent"} in container["volumeMounts"]
    assert {"name": "agent-home", "emptyDir": {"sizeLimit": "1Gi"}} in pod["volumes"]
    assert all(path.startswith("/home/agent") for path in AGENT_HOME_ENV.values())
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_one_egress_policy_per_profile_and_namespace(agents):
    policies = {key: r.manifest for key, r in agents.named(NETPOL).items() if "/agent-" in key}
    assert sorted(policies) == ["larry-01/agent-claude-egress", "larry-01/agent-codex-egress",
                                "larry-02/agent-claude-egress", "larry-03/agent-claude-egress",
                                "larry-03/agent-inventory-egress"]
    dns = {"to": [{"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["kube-system"]}]},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    claude = policies["larry-02/agent-claude-egress"]["spec"]
    assert claude == {
        "podSelector": {"matchLabels": {"larry.dev/agent": "claude"}},  # its workers' and masters' pods
        "policyTypes": ["Egress"],
        "egress": [dns,
                   {"to": [{"namespaceSelector": {"matchExpressions": [
                       {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["proxy"]}]},
                       "podSelector": {"matchLabels": {"app.kubernetes.io/name": "egress-proxy"}}}],
                    "ports": [{"protocol": "TCP", "port": 3128}]},
                   {"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}],
                    "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 8443}]}]}
    assert policies["larry-01/agent-codex-egress"]["spec"]["egress"] == [dns]  # empty egress: nothing but DNS


def test_each_egress_policy_selects_exactly_the_workers_of_its_profile(agents):
    jobs = agents.of(JOB)
    for key, policy in agents.named(NETPOL).items():
        if "/agent-" not in key:
            continue
        namespace, selector = key.split("/")[0], policy.manifest["spec"]["podSelector"]["matchLabels"]
        selected = {job.metadata["name"] for job in jobs if job.metadata.get("namespace") == namespace
                    and selector.items() <= job.manifest["spec"]["template"]["metadata"]["labels"].items()}
        profile = selector["larry.dev/agent"]
        expected = {job.metadata["name"] for job in jobs if job.metadata.get("namespace") == namespace
                    and job.manifest["spec"]["template"]["metadata"]["labels"].get("larry.dev/agent") == profile}
        assert selected == expected and selected, key
    assert "consolidation-worker" not in {
        job.metadata["name"] for job in jobs
        if job.manifest["spec"]["template"]["metadata"]["labels"].get("larry.dev/agent") == "claude"}


def test_workers_without_a_profile_render_as_before(one_agent, dev):
    before, after = dev.named(JOB), one_agent.named(JOB)
    assert set(before) == set(after)
    for key, job in before.items():
        if key == "larry-01/consolidation-worker":
            assert "larry.dev/agent" in after[key].manifest["spec"]["template"]["metadata"]["labels"]
        else:
            assert after[key].manifest == job.manifest, key
    policies = [key for key in one_agent.named(NETPOL) if "/agent-" in key]
    assert sorted(policies) == ["larry-01/agent-codex-egress", "larry-03/agent-inventory-egress"]


def test_agent_manifests_are_valid_and_restricted(agents):
    for resource in agents.kubernetes():
        if resource.kind in ("Job", "NetworkPolicy"):
            try:
                validate(resource.manifest)
            except kubernetes_validate.ValidationError as err:
                pytest.fail(f"{resource.kind} {resource.name}: {err.message} at {list(err.path)}")
        for pod in restricted.pod_specs(resource.manifest):
            assert restricted.violations(pod) == [], resource.name
