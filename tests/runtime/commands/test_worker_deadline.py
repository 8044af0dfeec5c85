"""A worker running Claude Code through its profile, at speed 1, against a stand-in that takes
the request and never answers: the worker's deadline (1 plan minute, no allowance) stops the
CLI and records the task as failed with ``deadline``, charging nothing (nothing was served)."""
from __future__ import annotations

import socket
import time

import yaml

from plan.model import worker_account
from runtime import cli
from tests.runtime.agent.conftest import claude_code  # noqa: F401 - fixture
from tests.runtime.commands.test_master import plan_with_profile
from tests.support.agent_clis import claude_env

LARRY, WORKER, TASK = "security", "scan-worker-01", "scan-cortex-namespace"


def test_a_hanging_agent_is_stopped_at_the_deadline_at_speed_1(rig, claude_code, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LARRY_DEADLINE_ALLOWANCE", "0")
    home = tmp_path / "home"
    # Connections are queued by the kernel and never accepted: the request goes out, no answer comes.
    with socket.socket() as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(8)
        url = f"http://127.0.0.1:{hanging.getsockname()[1]}"
        plan = plan_with_profile(rig, home, claude_env(home, url),
                                 [str(claude_code), "-p", "Say hello.", "--output-format", "stream-json", "--verbose"],
                                 worker=WORKER)
        document = yaml.safe_load(open(plan))
        larry = next(each for each in document["config"]["larry:larrys"] if each["id"] == LARRY)
        next(w for w in larry["workers"] if w["name"] == WORKER)["minutes"] = 1
        open(plan, "w").write(yaml.safe_dump(document))
        rig.start_phase(LARRY)
        started = time.monotonic()
        code = cli.main(["worker", "--plan", plan, "--larry", LARRY, "--worker", WORKER, "--redis-url", rig.url,
                         "--key-prefix", rig.ks.prefix, "--coordination-dir", str(rig.dir), "--speed", "1",
                         "--kill-grace", "2"])
        took = time.monotonic() - started
    assert code == 3
    assert 60 <= took < 60 + 20, f"stopped {took:.1f} s after the start, for a 60 s deadline"
    assert rig.board.statuses([TASK])[TASK] == "failed"
    assert rig.board.result(TASK)["data"]["error"] == "deadline"
    assert rig.result_file(LARRY, TASK)["detail"] == "deadline"
    assert rig.ledger().figures(worker_account(LARRY, WORKER))["committed"] == 0
