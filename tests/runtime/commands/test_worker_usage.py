"""`larry worker --usage ADAPTER`: a name outside plan.model.USAGE_ADAPTERS is one line and
exit 2 before anything runs; every adapter the plan names can be metered here, and each (and
the default) goes on to start the worker."""
import pytest

from plan.model import USAGE_ADAPTERS
from runtime import cli
from runtime.agent.usage import ADAPTERS
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
