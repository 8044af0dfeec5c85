"""`larry rollback LARRY` (seed 001 appendix B), a real `larry` process against the session's
redis-server: it announces ``rollback_initiated`` on the alerts channel and the stream, runs the
Larry's steps as tasks exactly once under leases with their tokens on the Larry's ledger, and
records the rollback in the summary; bad input is one line and exit 2 with nothing written."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from plan.exits import ExitCode
from plan.loader import load_stack
from runtime import cli
from runtime.coordination.events import EventLog
from runtime.coordination.keys import Keyspace
from runtime.coordination.ledger import figures
from runtime.coordination.tasks import TaskBoard
from runtime.reporting.summary import converge, record_rollback
from tests.runtime.reporting.test_summary import NOW, make_reports, sections, write_all
from tests.support.project import ROOT

DEV = load_stack("dev", ROOT)
STEPS = ["revert-postgres-consolidation", "restore-pgadmin"]
#: A step's payload: notes the step it ran, reports 100 tokens spent.
PAYLOAD = [sys.executable, "-c", "import os\nwith open(os.environ['RAN'], 'a') as f: f.write(os.environ['LARRY_TASK_ID'] "
           "+ '\\n')\nprint('@larry {\"tokens\": 100, \"progress\": 100}', flush=True)"]
TIMEOUT = 60


#: The console script; PYTHONPATH makes it run this tree's code whichever tree it was installed from.
LARRY = Path(sys.executable).with_name("larry")


def larry(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """A real `larry` process of this tree's code."""
    assert LARRY.exists(), f"no `larry` console script beside {sys.executable} (pip install -e .)"
    return subprocess.run([str(LARRY), *args], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.fixture
def prefix(r):
    name = f"rb{uuid.uuid4().hex[:10]}:"
    yield name
    for key in r.scan_iter(f"{name}*"):
        r.delete(key)


def next_message(subscriber, seconds: float) -> dict:
    """The subscription's next published message (its confirmation skipped)."""
    until = time.monotonic() + seconds
    while (left := until - time.monotonic()) > 0:
        if (message := subscriber.get_message(ignore_subscribe_messages=True, timeout=left)) is not None:
            return message
    raise AssertionError(f"no message on the alerts channel within {seconds} s")


def rollback(redis_url: str, prefix: str, coordination, *extra: str, env: dict | None = None):
    return larry("rollback", *extra, "--stack", "dev", "--project-dir", str(ROOT), "--redis-url", redis_url,
                 "--key-prefix", prefix, "--coordination-dir", str(coordination), "--speed", "1",  # the plan's 30 s leases: a loaded machine loses none
                 "--", *PAYLOAD, env=env)


def test_rollback_announces_runs_each_step_once_under_leases_charges_and_records(redis_server, r, prefix, tmp_path):
    ks = Keyspace.for_plan(DEV.channels, prefix)
    summary = tmp_path / "reports" / "3-LARRY-EXECUTION-SUMMARY.md"
    summary.parent.mkdir()
    summary.write_text("# 3-Larry Execution Summary\n")  # converged before the rollback
    ran = tmp_path / "ran.txt"
    subscriber = r.pubsub()
    subscriber.subscribe(ks.alerts)

    first = rollback(redis_server.url, prefix, tmp_path, "larry-01", env={"RAN": str(ran)})
    assert first.returncode == ExitCode.OK, first.stderr
    published = json.loads(next_message(subscriber, 10)["data"])
    assert (published["from"], published["event"], published["steps"]) == ("larry-01", "rollback_initiated", STEPS)
    [streamed] = [e for e in EventLog(r, ks).history() if e.name == "rollback_initiated"]
    assert (streamed.channel, streamed.data) == (ks.alerts, published)

    board = TaskBoard(r, ks)
    assert ran.read_text().split() == STEPS  # each step once, in order
    for step in STEPS:
        result = board.result(step)
        assert result["outcome"] == "completed" and result["token"] > 0, step  # a fenced write
        assert result["owner"].startswith("larry-01/larry-01-rollback/"), result["owner"]
    assert figures(r, ks, "larry-01/larry-01-rollback")["committed"] == 200
    assert figures(r, ks, "larry-01")["committed"] == 200 == int(r.get(ks.tokens_used("larry-01")))

    record = json.loads((tmp_path / "reports" / "larry-01-rollback.json").read_text())
    assert (record["status"], record["tokens"], [s["id"] for s in record["steps"]]) == ("completed", 200, STEPS)
    assert record["event_id"] == streamed.id
    text = summary.read_text()
    assert "## larry-01 Rollback (after convergence)" in text and all(f"| {step} |" in text for step in STEPS)

    again = rollback(redis_server.url, prefix, tmp_path, "larry-01", env={"RAN": str(ran)})
    assert again.returncode == ExitCode.OK, again.stderr
    assert ran.read_text().split() == STEPS  # completed steps are not run again
    assert figures(r, ks, "larry-01")["committed"] == 200
    subscriber.close()


@pytest.mark.parametrize("case, expected", [
    ("larry-99", "no Larry 'larry-99' in the plan"),
    ("no-steps", "larry:larrys[0].rollback: larry-01 has no rollback steps"),
    ("unreachable", "cannot reach Redis at redis://127.0.0.1:1/0"),
    ("coordination-dir-is-a-file", "coordination: cannot write there"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(redis_server, r, prefix, tmp_path, monkeypatch, capsys,
                                                          case, expected):
    """In this process (the subprocess's path to stderr is the test above's): each check comes
    before the first write."""
    monkeypatch.setenv("LARRY_REDIS_RETRY_FOR", "0.5")
    url = "redis://127.0.0.1:1/0" if case == "unreachable" else redis_server.url
    if case == "no-steps":  # the dev stack with larry-01's rollback taken out
        stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
        del stack["config"]["larry:larrys"][0]["rollback"]
        (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(stack))
    coordination = tmp_path / "coordination"
    if case == "coordination-dir-is-a-file":
        coordination.write_text("")
    code = cli.main(["rollback", "larry-99" if case == "larry-99" else "larry-01", "--stack", "dev", "--project-dir",
                     str(tmp_path if case == "no-steps" else ROOT), "--redis-url", url, "--key-prefix", prefix,
                     "--coordination-dir", str(coordination)])
    stderr = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert stderr.count("\n") == 1 and expected in stderr and stderr.startswith("larry rollback: "), stderr
    assert not list(r.scan_iter(f"{prefix}*"))
    assert coordination.is_file() if case == "coordination-dir-is-a-file" else not coordination.exists()


def test_a_rollback_before_convergence_is_a_section_of_the_summary(tmp_path):
    write_all(tmp_path, make_reports(DEV))
    steps = [{"id": step, "title": step, "status": "completed", "fence": 7, "tokens": 10, "detail": None}
             for step in STEPS]
    record_rollback(DEV, tmp_path, {"larry": "larry-01", "account": "larry-01/larry-01-rollback", "event_id": "1-0",
                                    "initiated_at": "t0", "finished_at": "t1", "status": "completed",
                                    "tokens": 20, "steps": steps})
    titles = [title for _, title, _ in sections(converge(DEV, tmp_path, now=NOW).summary.read_text())]
    assert titles[titles.index("Token Budget Utilization") + 1] == "larry-01 Rollback"
