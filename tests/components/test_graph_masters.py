"""Masters render as Deployments of their own (one pod each, ``larry master``), pinned to their
Larry's master node beside the coordinator; a master with an agent profile runs the profile's
command in its image and is selected by the profile's egress policy; the namespace's quota
counts the masters' pods."""
import pytest

from plan.loader import load_stack
from tests.components.pulumi_graph import DEPLOY, NETPOL, env_of, hostnames, run_program, stack_values
from tests.components.test_graph_agents import CLAUDE, _values
from tests.support.project import ROOT

DEV = load_stack("dev", ROOT)
QUOTA = "kubernetes:core/v1:ResourceQuota"


@pytest.fixture(scope="module")
def plain():
    return run_program("dev", stack_values("dev"))


@pytest.fixture(scope="module")
def agents():
    return run_program("dev", _values())


def _masters(graph) -> dict:
    return {k: r.manifest for k, r in graph.named(DEPLOY).items() if "-master-" in k}


def test_one_deployment_per_master_pinned_beside_its_coordinator(plain):
    masters = _masters(plain)
    assert sorted(masters) == sorted(f"{l.id}/{l.id}-master-{m.name}" for l in DEV.larrys for m in l.masters)
    for larry in DEV.larrys:
        for master in larry.masters:
            spec = masters[f"{larry.id}/{larry.id}-master-{master.name}"]["spec"]
            pod = spec["template"]["spec"]
            assert (spec["replicas"], spec["strategy"]) == (1, {"type": "Recreate"})
            assert hostnames(pod) == [larry.node]
            assert pod["automountServiceAccountToken"] is False, "a master needs no API token"
            (container,) = pod["containers"]
            assert container["command"] == ["larry", "master", "--plan", "/etc/larry/plan.yaml",
                                            "--larry", larry.id, "--master", master.name]
            assert env_of(container)["LARRY_MASTER"] == master.name
            assert "ports" not in container and spec["template"]["metadata"]["labels"]["app"] == "larry-master"


def test_a_master_with_a_profile_runs_its_command_and_gets_its_egress(agents):
    spec = _masters(agents)["larry-02/larry-02-master-security-master"]["spec"]
    (container,) = spec["template"]["spec"]["containers"]
    assert container["image"] == CLAUDE["image"]
    assert container["command"][-len(CLAUDE["command"]) - 3:] == ["--usage", "claude-code", "--", *CLAUDE["command"]]
    assert env_of(container)["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    labels = spec["template"]["metadata"]["labels"]
    policy = agents.named(NETPOL)["larry-02/agent-claude-egress"].manifest["spec"]["podSelector"]["matchLabels"]
    assert policy.items() <= labels.items(), "the profile's egress policy selects the master's pod"


def test_the_quota_counts_the_masters_pods(plain):
    quotas = {k: r.manifest["spec"]["hard"] for k, r in plain.named(QUOTA).items()}
    larry03 = next(l for l in DEV.larrys if l.id == "larry-03")
    pods = 1 + len(larry03.masters) + len(larry03.workers)
    hard = next(h for k, h in quotas.items() if k.startswith(larry03.namespace))
    assert int(hard["pods"]) >= pods
