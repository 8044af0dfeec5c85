"""`larry worker --usage ADAPTER`: a name outside plan.model.USAGE_ADAPTERS, or one this
runtime cannot meter yet, is one line and exit 2 before anything runs; the available one
(and the default) goes on to start the worker."""
import pytest

from plan.model import USAGE_ADAPTERS
from runtime import cli
from runtime.commands.worker import AVAILABLE_USAGE
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


@pytest.mark.parametrize("adapter", [a for a in USAGE_ADAPTERS if a not in AVAILABLE_USAGE])
def test_an_adapter_not_available_yet_is_refused_not_run_unmetered(adapter, capsys, monkeypatch):
    code, err, _ = _run(adapter, capsys, monkeypatch)
    assert code == 2
    assert err.strip() == (f"larry worker: --usage {adapter}: this runtime cannot meter {adapter} yet "
                           f"(available: {', '.join(AVAILABLE_USAGE)})")


@pytest.mark.parametrize("adapter", [*AVAILABLE_USAGE, None])
def test_an_available_adapter_and_the_default_start_the_worker(adapter, capsys, monkeypatch):
    code, err, url = _run(adapter, capsys, monkeypatch)
    assert code == 2 and err.startswith(f"larry worker: cannot reach Redis at {url} (")


def test_the_available_adapters_are_usage_adapters():
    assert set(AVAILABLE_USAGE) <= set(USAGE_ADAPTERS)
