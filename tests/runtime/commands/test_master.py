"""`larry master` and a master's duties against a real worker: the worker's master pool is dry
and the reserve empty, so the worker escalates; its master decides. The built-in master retries
once the tokens are back (it grants none itself); a master running Claude Code (against the stand-in) asks for the
reserve, an operator approves, and every token the stand-in served for the master's duties is
on its personal account."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import yaml

from plan.model import master_account, worker_account
from plan.taskgraph import TaskGraph
from runtime.agent.master import BuiltInMind, MasterDuties
from runtime.coordination.escalations import Escalations
from runtime.coordination.events import EventListener
from tests.runtime.agent.conftest import claude_code  # noqa: F401 - fixture
from tests.runtime.commands.worker_rig import CORTEX
from tests.support.agent_clis import claude_env
from tests.support.model_server import ModelServer, Reply, Usage
from tests.support.model_server.anthropic import Anthropic
from tests.support.project import ROOT

LARRY, MASTER, WORKER, TASK = "security", "security-master", "scan-worker-01", "scan-cortex-namespace"
POOL, PERSONAL = master_account(LARRY, MASTER, "pool"), master_account(LARRY, MASTER, "personal")
SIMULATE = [sys.executable, "-m", "runtime.cli", "simulate", "--speed", "600"]
WAIT = 120


def await_event(listener: EventListener, name: str, what: str, timeout: float = WAIT):
    """The first event ``name`` read by ``listener`` within ``timeout`` s (else the test fails naming ``what``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in listener.poll(block_ms=200):
            if event.name == name:
                return event
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def dry_pool(rig):
    rig.start_phase(LARRY)
    rig.set_limit(POOL, 0)
    rig.empty_reserve()


def test_the_built_in_master_retries_an_escalation_once_the_tokens_are_back(rig):
    dry_pool(rig)
    ledger = rig.ledger()
    lines: list[str] = []
    duties = MasterDuties(rig.r, rig.ks, ledger, TaskGraph(CORTEX), CORTEX.larry(LARRY),
                          CORTEX.larry(LARRY).masters[0], BuiltInMind(ledger, PERSONAL, f"{LARRY}/{MASTER}"),
                          lines.append)
    listener = EventListener(rig.r, rig.ks, "$")
    failure: list[BaseException] = []

    def master() -> None:
        try:
            await_event(listener, "escalation_raised", "the worker's escalation")
            # Another master returns tokens (as a release would): the task can run again.
            rig.set_limit(POOL, 15_000)
            duties.tend({}, phase_ended=False)
            duties.tend({}, phase_ended=False)  # decided once: nothing more to do or charge
        except BaseException as error:  # the main thread reports it
            failure.append(error)

    thread = threading.Thread(target=master, daemon=True)
    thread.start()
    assert rig.worker(LARRY, WORKER, SIMULATE) == 0
    thread.join(WAIT)
    assert not failure, failure
    assert rig.board.statuses([TASK])[TASK] == "completed"
    [escalation] = Escalations(rig.r, rig.ks).all()
    assert (escalation["status"], escalation["decided_by"], escalation["tokens"]) == ("approved", f"{LARRY}/{MASTER}", "0")
    assert ledger.figures(POOL)["granted"] == 0, "a master grants nothing: the tokens were there again"
    assert ledger.figures(PERSONAL)["committed"] == int(30_000 * 0.1) + int(30_000 * 0.05), \
        "the plan and the decision, each charged once"
    assert any("decided esc-1 (scan-cortex-namespace): 8,000 tokens on its path again" in line for line in lines)


def plan_with_profile(rig, home, env: dict[str, str], command: list[str], *, master: str | None = None,
                      worker: str | None = None, **limits) -> str:
    """The cortex plan with a profile ``claude`` running ``command`` in ``home``/work with ``env``
    (and ``limits``: maxTurns, maxRetries), given to the security Larry's ``master`` or ``worker``."""
    document = yaml.safe_load(CORTEX.plan_document())
    (home / "work").mkdir(parents=True, exist_ok=True)
    document["config"].setdefault("larry:agents", {})["claude"] = {
        "command": ["env", "-C", str(home / "work"), *(f"{k}={v}" for k, v in env.items()), *command],
        "usage": "claude-code", **limits}
    larry = next(each for each in document["config"]["larry:larrys"] if each["id"] == LARRY)
    for member in larry["masters"] + larry["workers"]:
        if member["name"] in (master, worker):
            member["agent"] = "claude"
    path = rig.dir / "plan.yaml"
    path.write_text(yaml.safe_dump(document))
    return str(path)


def test_a_master_running_claude_code_decides_its_workers_escalation(rig, claude_code, tmp_path):  # noqa: F811
    dry_pool(rig)
    replies = [Reply.text("Scan the cortex namespace first.", Usage(1201, 31, 2000, 100)),
               Reply.text("reserve: the scan is high priority and the pool is dry.", Usage(1302, 27, 2100, 0)),
               Reply.text("The scan result holds up.", Usage(1403, 19, 2200, 50))]
    listener = EventListener(rig.r, rig.ks, "$")
    with ModelServer(Anthropic(), replies, then=Reply.text("Nothing more.", Usage(1000, 1, 0, 0))) as server:
        # The duty's prompt goes to the model as the prompt itself: the stand-in then shows it arrived.
        plan = plan_with_profile(rig, tmp_path / "home", claude_env(tmp_path / "home", server.url),
                                 ["sh", "-c", 'exec "$0" -p "$(cat "$1")" --output-format stream-json --verbose',
                                  str(claude_code), "{prompt_file}"], master=MASTER)
        master = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "master", "--plan", plan, "--larry", LARRY, "--master", MASTER,
             "--redis-url", rig.url, "--key-prefix", rig.ks.prefix, "--coordination-dir", str(rig.dir),
             "--speed", "600", "--kill-grace", "1"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            decided: list = []
            operator = threading.Thread(daemon=True, target=lambda: decided.append(
                await_event(listener, "master_decided", "the master's decision on the escalation")))
            operator.start()
            # The worker waits, paused, for a decision: an operator approves what the master asked for.
            approver = threading.Thread(daemon=True, target=lambda: (
                operator.join(WAIT), decided and Escalations(rig.r, rig.ks).approve(
                    decided[0].data["id"], rig.ledger(), 8_000, by="ops")))
            approver.start()
            assert rig.worker(LARRY, WORKER, SIMULATE) == 0
            approver.join(WAIT)
            assert decided and decided[0].data["decision"] == "reserve"
            review = rig.ks.master_duties(LARRY, MASTER)
            deadline = time.monotonic() + WAIT
            while not rig.r.hexists(review, f"review:{TASK}"):
                assert time.monotonic() < deadline and master.poll() is None, \
                    f"the master never reviewed {TASK}:\n{master.stdout.read() if master.poll() is not None else ''}"
                listener.poll(block_ms=200)
        finally:
            master.terminate()
            out, _ = master.communicate(timeout=30)
    assert rig.board.statuses([TASK])[TASK] == "completed"
    duties = {k: json.loads(v) for k, v in rig.r.hgetall(rig.ks.master_duties(LARRY, MASTER)).items()}
    [escalation] = [d for d in duties.values() if d["kind"] == "escalation"]
    assert (escalation["decision"], escalation["task"]) == ("reserve", TASK)
    assert "asks an operator to approve 8,000 tokens from the reserve" in escalation["detail"]
    assert duties[f"review:{TASK}"]["note"] == "The scan result holds up."
    planned = json.loads(rig.r.get(rig.ks.task_plan(TASK)))
    assert planned["note"] == "Scan the cortex namespace first." and planned["master"] == MASTER
    personal = rig.ledger().figures(PERSONAL)["committed"]
    assert personal == server.served.total == sum(d["tokens"] for d in duties.values() if d["kind"] != "release") > 0, \
        f"every token the stand-in served is on the master's personal account:\n{out}"
    assert rig.ledger().figures(worker_account(LARRY, WORKER))["committed"] > 0
    assert "Escalation esc-1" in json.dumps(server.requests[1].body), "the duty's prompt reached the model"
    assert len(list((rig.dir / "masters" / LARRY / MASTER).glob("*-output.jsonl"))) == 3, "raw output kept per duty"


@pytest.mark.parametrize("argv,message", [
    (["--master", "nope"], "Pulumi.cortex.yaml: security has no master 'nope' (expected one of security-master)"),
    (["--master", MASTER, "--usage", "gpt"], "--usage 'gpt': expected one of"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, message, capsys):
    from runtime import cli
    assert cli.main(["master", "--stack", "cortex", "--project-dir", str(ROOT), "--larry", LARRY, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
