"""`larry worker --usage ADAPTER`: a name outside plan.model.USAGE_ADAPTERS is one line and
exit 2 before anything runs; every adapter the plan names can be metered here, and each (and
the default) goes on to start the worker."""
import pytest

from plan.model import USAGE_ADAPTERS, AgentProfile
from runtime import cli
from runtime.agent.usage import ADAPTERS
from runtime.commands.worker import choose_payload
from tests.support.project import ROOT
from tests.support.redis_servers import free_port

WORKER = ["worker", "--stack", "cortex", "--project-dir", str(ROOT), "--larry", "security", "--worker", "scan-worker-01"]


def _run(usage, capsys, monkeypatch):
    # An unreachable Redis, answered within 0.3 s: getting that far means --usage was accepted.
    monkeypatch.setenv("LARRY_REDIS_RETRY_FOR", "0.3")
    monkeypatch.delenv("LARRY_REDIS_SENTINELS", raising=False)
    url = f"redis://127.0.0.1:{free_port()}/0"
    code = cli.main([*WORKER, *(["--usage", usage] if usage else []), "--redis-url", url, "--", "true"])
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return code, err, url


def test_an_unknown_adapter_is_one_line(capsys, monkeypatch):
    code, err, _ = _run("claude", capsys, monkeypatch)
    assert code == 2
    assert err.strip() == "larry worker: --usage 'claude': expected one of claude-code, codex, aider, larry-protocol"


@pytest.mark.parametrize("adapter", [*USAGE_ADAPTERS, None])
def test_every_adapter_and_the_default_start_the_worker(adapter, capsys, monkeypatch):
    code, err, url = _run(adapter, capsys, monkeypatch)
    assert code == 2 and err.startswith(f"larry worker: cannot reach Redis at {url} (")


def test_every_usage_name_of_the_plan_has_an_adapter():
    assert set(USAGE_ADAPTERS) == {"larry-protocol", *ADAPTERS}, "the @larry protocol is the worker's own"


PROFILE = AgentProfile("claude", ("claude", "-p", "{title}"), "claude-code")
SIMULATE = ["python", "-m", "runtime.cli", "simulate"]


@pytest.mark.parametrize("profile, payload, usage, expected", [
    (None, [], None, (SIMULATE, "larry-protocol", None)),
    (PROFILE, [], None, (["claude", "-p", "{title}"], "claude-code", PROFILE)),
    # the cluster's Job passes the profile's own command after --
    (PROFILE, ["claude", "-p", "{title}"], None, (["claude", "-p", "{title}"], "claude-code", PROFILE)),
    # larry run's simulated payload for a worker with a profile: run as given, not as the agent
    (PROFILE, ["sh", "-c", "simulate {x}"], None, (["sh", "-c", "simulate {x}"], "larry-protocol", None)),
    (PROFILE, ["my-agent"], "codex", (["my-agent"], "codex", None)),
    (None, ["my-agent"], None, (["my-agent"], "larry-protocol", None)),
])
def test_the_payload_its_metering_and_its_placeholders_come_from_the_profile_only_for_its_command(
        profile, payload, usage, expected):
    assert choose_payload(profile, payload, usage, SIMULATE) == expected
