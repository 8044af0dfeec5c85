"""`larry worker` against a real redis-server, with small payloads that misbehave on purpose.

The worker runs in the test process (through the `larry` CLI entry point) on the cortex
plan, whose workers have one or two tasks; the coordinator's initialisation of the Larry's
state is the real one. Payloads are `python -c` scripts speaking the line protocol.
"""
from __future__ import annotations

import getpass
import json
import sys
import textwrap
import threading
import time

import pytest
import yaml

from plan.loader import load_stack
from plan.taskgraph import TaskGraph
from runtime import cli
from runtime.commands.worker import streams_to_follow
from runtime.coordination.escalations import Escalations
from runtime.coordination.events import EventListener, EventLog
from runtime.coordination.leases import LeaseManager
from runtime.reporting.history import History
from runtime.reporting.results import results_dir
from runtime.reporting.summary import escalation_outcomes
from tests.runtime.commands.worker_rig import CORTEX, ROOT
from tests.support.waiting import wait_for


def payload(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


#: Reports tokens and findings on stdout and through the protocol file, with one malformed
#: line and one plain log line, and records the environment it was given.
GOOD = payload("""
    import json, os
    env = {k: v for k, v in os.environ.items() if k.startswith("LARRY_")}
    with open(os.path.join(env["LARRY_RESULTS_DIR"], "env.json"), "w") as f:
        json.dump(env, f)
    print("an ordinary log line")
    print('@larry {"tokens": 100, "progress": 50}')
    print('@larry {not json')
    with open(env["LARRY_PROTOCOL_FILE"], "a") as f:
        f.write('@larry {"tokens": 50, "findings": {"cves": {"high": 2}}}\\n')
    print('@larry {"findings": {"cves": {"high": 1}, "prs_created": 1}, "message": "done"}', flush=True)
""")

#: Spends one token more than its budget at once, then ignores SIGTERM.
OVERSPEND_AND_IGNORE_SIGTERM = payload("""
    import os, signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print('@larry {"tokens": %d}' % (int(os.environ["LARRY_TOKEN_BUDGET"]) + 1), flush=True)
    time.sleep(60)
""")

SLEEP = payload("import time; time.sleep(60)")


def in_thread(target) -> threading.Thread:
    """Run ``target`` beside the worker (which needs the main thread for its signal handler);
    an exception in it fails the test through ``join_ok``."""
    errors: list[BaseException] = []

    def run():
        try:
            target()
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.errors = errors
    thread.start()
    return thread


def join_ok(thread: threading.Thread) -> None:
    thread.join(30)
    assert not thread.is_alive(), "helper thread hung"
    if thread.errors:
        raise thread.errors[0]


# --------------------------------------------------------------------------- protocol, budget, results

def test_tasks_run_in_order_with_budget_shares_and_are_charged_and_recorded(rig, capsys):
    rig.start_phase("cicd")
    assert rig.worker("cicd", "analysis-worker-01", GOOD) == 0
    tasks = ["audit-github-actions", "optimize-cronjob-schedules"]
    assert rig.board.statuses(tasks) == dict.fromkeys(tasks, "completed")

    first, second = (json.loads((results_dir(rig.dir, "cicd") / t / "env.json").read_text()) for t in tasks)
    # analysis-worker: 5000 tokens and 15 minutes for 2 tasks; the second share is what is left.
    assert (first["LARRY_TOKEN_BUDGET"], second["LARRY_TOKEN_BUDGET"]) == ("2500", str(5000 - 150))
    assert first["LARRY_TASK_MINUTES"] == "7.5" and first["LARRY_WORKER_ID"] == "analysis-worker-01"
    assert first["LARRY_TASK_TITLE"].startswith("Analyze GitHub Actions")

    for task, env in zip(tasks, (first, second)):
        result = rig.board.result(task)
        assert result["token"] == int(env["LARRY_FENCE"])
        assert result["data"]["tokens"] == 150 and result["data"]["malformed_lines"] == 1
        assert result["data"]["findings"] == {"cves": {"high": 3}, "prs_created": 1}
        record = rig.result_file("cicd", task)
        assert record["fence"] == result["token"] and record["status"] == "completed"
        assert record["tokens"] == 150 and record["message"] == "done"
    assert rig.ledger().snapshot("cicd")["committed"] == 300
    assert [e.data["task_id"] for e in rig.events("task_claimed")] == tasks
    out = capsys.readouterr().out
    assert "[audit-github-actions] an ordinary log line" in out and "malformed protocol line" in out
    assert rig.r.get(rig.ks.worker_status("analysis-worker-01")) == "completed"


def test_overspending_payload_is_killed_failed_for_good_and_its_tokens_recorded(rig):
    rig.start_phase("security")
    started = time.monotonic()
    # scan-worker-03's second task depends on its first: nothing is left it could run.
    assert rig.worker("security", "scan-worker-03", OVERSPEND_AND_IGNORE_SIGTERM) == 3
    assert time.monotonic() - started < 30, "SIGKILL must follow the ignored SIGTERM"
    task = "scan-cortex-system-namespace"
    assert rig.board.statuses([task, "write-cve-remediation-plan"]) == {
        task: "failed", "write-cve-remediation-plan": "pending"}
    assert rig.board.result(task)["data"] == {"error": "budget exhausted"}
    record = rig.result_file("security", task)
    assert record["status"] == "failed" and record["detail"] == "budget exhausted"
    assert record["tokens"] == record["budget"] + 1 == 4001
    assert rig.ledger().snapshot("security")["committed"] == 4001  # spent is spent
    assert len(rig.events("task_claimed", task)) == 1, "a budget failure is not retried"
    assert rig.r.get(rig.ks.worker_status("scan-worker-03")) == "failed"


def test_tokens_the_ledger_refuses_stop_the_payload_and_are_recorded_as_an_overrun(rig):
    rig.start_phase("cicd")
    # The worker's own account holds 120 (a pool above it running dry escalates instead).
    rig.set_limit("cicd/analysis-worker-01", 120)
    rig.empty_reserve()
    assert rig.worker("cicd", "analysis-worker-01", GOOD) == 3
    assert rig.board.result("audit-github-actions")["data"] == {"error": "budget exhausted"}
    assert rig.ledger().snapshot("cicd")["committed"] == 150
    assert [(e.data["account"], e.data["used"]) for e in rig.events("token_overrun")] == [
        ("cicd/analysis-worker-01", 150)]
    assert rig.events("escalation_raised") == []
    # The worker's account is over its limit: its next task fails without starting its payload.
    assert rig.board.result("optimize-cronjob-schedules")["data"] == {"error": "budget exhausted"}


# A hanging agent is stopped at the deadline whatever meters it: the @larry protocol, an
# adapter reading stdout, or one polling a file (its poll timeouts must not hide the deadline).
@pytest.mark.parametrize("usage", [None, "claude-code", "aider"])
def test_deadline_stops_the_payload_and_fails_the_task(rig, monkeypatch, usage):
    monkeypatch.setenv("LARRY_DEADLINE_ALLOWANCE", "0.5")
    rig.start_phase("security")
    started = time.monotonic()
    # 15 plan minutes at speed 1800 = 0.5 s, plus the allowance.
    assert rig.worker("security", "scan-worker-01", SLEEP, speed=1800, usage=usage) == 3
    assert 1.0 <= time.monotonic() - started < 30
    assert rig.board.result("scan-cortex-namespace")["data"] == {"error": "deadline"}


@pytest.mark.parametrize("command", [payload("import sys; sys.exit(7)"), ["/nonexistent/agent"]])
def test_a_crashed_payload_puts_the_task_back_and_asks_for_a_restart(rig, command):
    rig.start_phase("security")
    assert rig.worker("security", "scan-worker-01", command) == 1
    assert rig.board.statuses(["scan-cortex-namespace"]) == {"scan-cortex-namespace": "pending"}
    assert rig.r.get(rig.ks.worker_status("scan-worker-01")) == "error"


# --------------------------------------------------------------------------- leases

def test_lost_lease_stops_the_payload_writes_nothing_and_the_task_is_run_again(rig):
    rig.start_phase("security")
    task = "scan-cortex-namespace"
    stopped = results_dir(rig.dir, "security") / task
    command = payload("""
        import os, signal, sys, time
        def stop(*_):
            open(os.path.join(os.environ["LARRY_RESULTS_DIR"], "stopped-" + os.environ["LARRY_FENCE"]), "w").close()
            sys.exit(1)
        signal.signal(signal.SIGTERM, stop)
        if not [n for n in os.listdir(os.environ["LARRY_RESULTS_DIR"]) if n.startswith("stopped-")]:
            time.sleep(60)
        print('@larry {"tokens": 10}')
    """)
    listener = EventListener(rig.r, rig.ks, "$")
    thief = LeaseManager(rig.r, rig.ks, "security", worker="thief")

    def steal():
        wait_for(lambda: any(e.name == "task_claimed" for e in listener.poll(200)), "the worker's claim")
        rig.r.delete(rig.ks.task_lock(task))
        stolen = thief.acquire(task).lease
        wait_for(lambda: stopped.is_dir() and any(p.name.startswith("stopped-") for p in stopped.iterdir()),
                 "the payload to be stopped")
        thief.release(stolen)

    helper = in_thread(steal)
    assert rig.worker("security", "scan-worker-01", command) == 0
    join_ok(helper)
    claims = [e.data["token"] for e in rig.events("task_claimed", task)]
    assert len(claims) == 3  # the worker's, the thief's, the worker's again
    assert rig.board.result(task)["token"] == claims[-1] > claims[0]
    assert [e.data["token"] for e in rig.events("task_completed", task)] == [claims[-1]]


def test_a_restarted_worker_takes_over_its_dead_predecessors_lease_at_once(rig):
    rig.start_phase("security")
    task = "scan-cortex-namespace"
    predecessor = LeaseManager(rig.r, rig.ks, "security", worker="scan-worker-01", ttl_ms=120_000)
    old = predecessor.acquire(task).lease
    started = time.monotonic()
    assert rig.worker("security", "scan-worker-01", GOOD) == 0
    assert time.monotonic() - started < 60, "it must not wait out the 120 s lease"
    [takeover] = rig.events("task_takeover", task)
    assert takeover.data["previous"] == old.owner
    assert rig.board.result(task)["token"] > old.token
    assert predecessor.complete(old, {"late": True}).status == "finished"


# --------------------------------------------------------------------------- waiting: dependencies, pause

def test_dependencies_of_other_workers_are_waited_for_on_the_event_stream(rig):
    """At speed 1 the worker re-reads state only every 30 s: finishing well within that
    means the dependencies' completion events woke it."""
    rig.start_phase("security")
    others = LeaseManager(rig.r, rig.ks, "security", worker="scan-worker-01")
    listener = EventListener(rig.r, rig.ks, "$")

    def finish_dependencies():
        wait_for(lambda: any(e.name == "task_completed" for e in listener.poll(200)), "the worker's own first task")
        # idle: it is now blocked on the stream, so only the completions below can wake it early
        wait_for(lambda: rig.r.get(rig.ks.worker_status("scan-worker-03")) == "idle",
                 "the worker to wait for its dependencies")
        for dep in ("scan-cortex-namespace", "scan-catalog-system-namespace"):
            assert others.complete(others.acquire(dep).lease, {"tokens": 1}).ok

    helper = in_thread(finish_dependencies)
    started = time.monotonic()
    assert rig.worker("security", "scan-worker-03", GOOD, speed=1) == 0
    join_ok(helper)
    assert time.monotonic() - started < 20
    order = [(e.name, e.data["task_id"]) for e in EventLog(rig.r, rig.ks).history()
             if e.name in ("task_claimed", "task_completed")]
    assert order.index(("task_claimed", "write-cve-remediation-plan")) > order.index(
        ("task_completed", "scan-catalog-system-namespace"))


def test_a_critical_cve_alert_pauses_the_named_worker_until_it_is_resolved(rig):
    coordinator = rig.start_phase("security")
    listener = EventListener(rig.r, rig.ks, "0-0")
    alert = EventLog(rig.r, rig.ks)

    def fold():
        coordinator.history.add(listener.poll(None))
        coordinator.apply_pauses()

    # Seed 001 appendix A example 3, addressed to one worker.
    alert.emit("critical_cve", "development", alert=True, severity="critical",
               data={"cve_id": "CVE-2025-12345", "cvss": 9.8, "workers": ["scan-worker-01"]})
    fold()
    assert rig.r.get(rig.ks.worker_paused("scan-worker-01")) == "critical_cve CVE-2025-12345 from development"
    assert rig.r.get(rig.ks.worker_paused("scan-worker-02")) is None

    def resolve_later():
        wait_for(lambda: rig.r.get(rig.ks.worker_status("scan-worker-01")) == "paused", "the worker to pause")
        time.sleep(0.5)
        assert rig.events("task_claimed") == [], "a paused worker claims nothing"
        alert.emit("critical_cve_resolved", "development", data={"workers": ["scan-worker-01"]})
        fold()

    helper = in_thread(resolve_later)
    started = time.monotonic()
    assert rig.worker("security", "scan-worker-01", GOOD, speed=1) == 0
    join_ok(helper)
    assert time.monotonic() - started < 20, "the resume event, not the 30 s re-check, must wake it"
    assert [e.data["worker"] for e in rig.events("worker_paused")] == ["scan-worker-01"]
    assert [e.data["worker"] for e in rig.events("worker_resumed")] == ["scan-worker-01"]


# --------------------------------------------------------------------------- usage errors

@pytest.mark.parametrize("argv,message", [
    (["--larry", "security", "--worker", "nobody"], "security has no worker 'nobody' (expected one of scan-worker-01,"),
    (["--larry", "nowhere", "--worker", "scan-worker-01"], "no Larry 'nowhere' in the plan"),
])
def test_unknown_names_are_one_line_and_exit_2(argv, message, capsys):
    assert cli.main(["worker", "--stack", "cortex", "--project-dir", str(ROOT), *argv, "--", "true"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_unreachable_redis_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setenv("LARRY_REDIS_RETRY_FOR", "0.3")
    monkeypatch.delenv("LARRY_REDIS_SENTINELS", raising=False)
    from tests.support.redis_servers import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    assert cli.main(["worker", "--stack", "cortex", "--project-dir", str(ROOT), "--larry", "security",
                     "--worker", "scan-worker-01", "--redis-url", url, "--", "true"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"larry worker: cannot reach Redis at {url} (") and len(err.strip().splitlines()) == 1


#: Floods one-token reports far past its budget, as fast as it can print them.
FLOOD = payload("""
    import sys
    line = '@larry {"tokens": 1}\\n'
    for _ in range(20_000):
        sys.stdout.write(line)
    sys.stdout.flush()
""")


def test_a_flooding_payload_is_booked_only_up_to_its_stop_with_one_overrun_alert(rig):
    rig.start_phase("security")
    ledger = rig.ledger()
    limit = ledger.snapshot("security")["limit"]
    rig.empty_reserve()
    assert rig.worker("security", "scan-worker-03", FLOOD) == 3
    (worker,) = [w for w in CORTEX.larry("security").workers if w.name == "scan-worker-03"]
    task = worker.tasks[0].id
    record = rig.result_file("security", task)
    assert record["status"] == "failed" and record["detail"] == "budget exhausted"
    # The report that crossed the task's share is booked, none after it: the ledger holds
    # exactly what the result says was charged, far below what was printed.
    assert record["tokens"] == record["budget"] + 1
    assert ledger.snapshot("security")["committed"] == record["tokens"] <= limit + 1
    assert record["unbooked_tokens"] > 0, "the flood went on after the stop (nothing to prove otherwise)"
    assert len(rig.events("token_overrun")) <= 1
    assert len(EventLog(rig.r, rig.ks).history(count=100_000)) < 100, "the payload flooded the event stream"

@pytest.mark.parametrize("auth,message", [
    (":wrong-pass@", "the password was refused ("),
    ("", "a password is required and none was given (set LARRY_REDIS_PASSWORD or put it in the URL)"),
])
def test_a_refused_or_missing_password_is_one_line_at_once(monkeypatch, capsys, tmp_path, auth, message):
    from tests.support.redis_servers import RedisServer

    monkeypatch.setenv("LARRY_REDIS_RETRY_FOR", "30")
    monkeypatch.delenv("LARRY_REDIS_SENTINELS", raising=False)
    monkeypatch.delenv("LARRY_REDIS_PASSWORD", raising=False)
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    server = RedisServer(tmp_path, password="s3cret").start()
    try:
        url = f"redis://{auth}127.0.0.1:{server.port}/0"
        started = time.monotonic()
        assert cli.main(["worker", "--stack", "cortex", "--project-dir", str(ROOT), "--larry", "security",
                         "--worker", "scan-worker-01", "--redis-url", url, "--", "true"]) == 2
        assert time.monotonic() - started < 10, "a password cannot get right by waiting"
    finally:
        server.stop()
    err = capsys.readouterr().err
    # A password given in the URL is moved out of it (to $LARRY_REDIS_PASSWORD) before use.
    bare = f"redis://127.0.0.1:{server.port}/0"
    assert err.startswith(f"larry worker: Redis at {bare}: {message}") and len(err.strip().splitlines()) == 1
    assert "wrong-pass" not in err and "HELLO" not in err


def test_a_phase_starting_later_than_the_socket_timeout_is_waited_for(rig, monkeypatch):
    """At speed 1 a worker waits on the stream in reads of up to 30 s; a 0.5 s socket timeout
    and a retry window of 1 s make any read that outlasts the timeout fatal here."""
    monkeypatch.setenv("LARRY_REDIS_SOCKET_TIMEOUT", "0.5")
    monkeypatch.setenv("LARRY_REDIS_RETRY_FOR", "1")

    def start_late():
        wait_for(lambda: rig.r.get(rig.ks.worker_status("scan-worker-01")), "the worker to register")
        time.sleep(2)  # the scenario: the phase starts well after the socket timeout
        rig.start_phase("security")

    starter = in_thread(start_late)
    assert rig.worker("security", "scan-worker-01", payload("pass"), speed=1) == 0
    join_ok(starter)


def escalation_args(rig, *args: str) -> list[str]:
    return [*args, "--stack", "cortex", "--project-dir", str(ROOT), "--redis-url", rig.url,
            "--key-prefix", rig.ks.prefix]


def dry_pool(rig) -> str:
    """cicd-master's pool holds 120, the reserve nothing: GOOD's second report (100 + 50)
    passes the pool, so analysis-worker-01 escalates its first task instead of failing it."""
    rig.start_phase("cicd")
    rig.set_limit("cicd/cicd-master/pool", 120)
    rig.empty_reserve()
    return "audit-github-actions"


def summary_lines(rig, larry: str) -> list[str]:
    """The summary's escalation outcomes for ``larry``, from the run's real event stream as its
    coordinator folds it into the report's alerts."""
    history = History(CORTEX.larry(larry), rig.ks)
    history.add(EventLog(rig.r, rig.ks).history())
    return escalation_outcomes(history.alerts)


def test_a_worker_past_its_masters_pool_and_the_reserve_is_paused_and_resumes_when_approved(rig, capsys):
    task = dry_pool(rig)

    def approve():
        wait_for(lambda: rig.r.get(rig.ks.worker_status("analysis-worker-01")) == "paused", "the worker to pause")
        (raised,) = rig.events("escalation_raised")
        assert raised.channel == rig.ks.alerts and raised.data["account"] == "cicd/cicd-master/pool"
        assert rig.board.statuses([task])[task] == "in_progress", "paused, not failed"
        assert cli.main(escalation_args(rig, "approve", raised.data["id"], "--tokens", "1000", "--by", "ops")) == 0
        assert cli.main(escalation_args(rig, "approve", raised.data["id"])) == 0, "a repeated approval grants once"

    helper = in_thread(approve)
    assert rig.worker("cicd", "analysis-worker-01", GOOD) == 0
    join_ok(helper)
    (escalation,) = Escalations(rig.r, rig.ks).all()
    assert (escalation["status"], escalation["tokens"], escalation["decided_by"]) == ("approved", "1000", "ops")
    assert escalation["options"][-1] == "escalate to a human operator" and escalation["recommendation"]
    assert rig.ledger().figures("cicd/cicd-master/pool")["granted"] == 1000
    # 150 before the pause, 150 for the run approved, 150 for the second task
    assert rig.ledger().snapshot("cicd/cicd-master/pool")["committed"] == 450
    assert rig.board.statuses([task])[task] == "completed"
    capsys.readouterr()
    assert cli.main(escalation_args(rig, "escalations", "--json")) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "approved"
    assert summary_lines(rig, "cicd") == [f"{escalation['id']} from cicd/analysis-worker-01 on {task} "
                                          f"({escalation['issue']}): approved by ops, 1,000 tokens granted"]


def test_a_denied_escalation_fails_the_task_with_the_reason(rig, capsys):
    task = dry_pool(rig)

    def deny():
        wait_for(lambda: rig.events("escalation_raised"), "an escalation")
        (raised,) = rig.events("escalation_raised")
        assert cli.main(escalation_args(rig, "deny", raised.data["id"], "--reason", "not worth it")) == 0
        assert cli.main(escalation_args(rig, "approve", raised.data["id"])) == 1, "decided once"
        # the pool is still dry: the worker's next task asks before it starts
        wait_for(lambda: len(rig.events("escalation_raised")) == 2, "the second task's escalation")
        second = rig.events("escalation_raised")[1].data
        assert second["task"] == "optimize-cronjob-schedules"
        assert cli.main(escalation_args(rig, "deny", second["id"], "--reason", "pool spent")) == 0

    helper = in_thread(deny)
    started = time.monotonic()
    assert rig.worker("cicd", "analysis-worker-01", GOOD) == 3
    join_ok(helper)
    assert time.monotonic() - started < 30, "the worker waited for its deadline instead of the decision"
    assert rig.board.result("optimize-cronjob-schedules")["data"] == {"error": "denied: pool spent"}
    assert rig.board.result(task)["data"] == {"error": "denied: not worth it"}
    assert rig.result_file("cicd", task)["detail"] == "denied: not worth it"
    assert rig.ledger().figures("cicd/cicd-master/pool")["granted"] == 0
    capsys.readouterr()
    assert cli.main(escalation_args(rig, "escalations")) == 0
    assert "[denied]" in capsys.readouterr().out
    outcomes = [line.rsplit("): ", 1)[1] for line in summary_lines(rig, "cicd")]
    operator = getpass.getuser()  # --by's default
    assert outcomes == [f"denied by {operator}: not worth it", f"denied by {operator}: pool spent"]


def test_a_pool_already_dry_escalates_before_the_payload_starts(rig):
    rig.start_phase("cicd")
    rig.set_limit("cicd/cicd-master/pool", 0)
    rig.empty_reserve()

    def approve():
        wait_for(lambda: rig.events("escalation_raised"), "an escalation")
        (raised,) = rig.events("escalation_raised")
        assert raised.data["account"] == "cicd/cicd-master/pool" and rig.events("task_completed") == []
        assert cli.main(escalation_args(rig, "approve", raised.data["id"], "--tokens", "1000")) == 0

    helper = in_thread(approve)
    assert rig.worker("cicd", "analysis-worker-01", GOOD) == 0
    join_ok(helper)
    assert len(rig.events("escalation_raised")) == 1, "the approved tokens carry the second task too"
    assert rig.ledger().snapshot("cicd/cicd-master/pool")["committed"] == 300


def test_with_a_required_sign_off_no_task_starts_before_the_run_is_approved(rig, tmp_path):
    document = yaml.safe_load((ROOT / "Pulumi.cortex.yaml").read_text())
    document["config"]["larry:approval"] = {"required": True}
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.cortex.yaml").write_text(yaml.safe_dump(document))
    rig.start_phase("cicd")

    def sign_off():
        wait_for(lambda: rig.r.get(rig.ks.worker_status("analysis-worker-01")) == "paused", "the worker to wait")
        assert rig.events("task_claimed") == [], "a task claimed before the sign-off"
        assert cli.main(escalation_args(rig, "approve", "run", "--by", "ops")) == 0

    helper = in_thread(sign_off)
    assert cli.main(["worker", "--stack", "cortex", "--project-dir", str(project), "--larry", "cicd",
                     "--worker", "analysis-worker-01", "--redis-url", rig.url, "--key-prefix", rig.ks.prefix,
                     "--coordination-dir", str(rig.dir), "--speed", "600", "--", *GOOD]) == 0
    join_ok(helper)
    assert Escalations(rig.r, rig.ks).run_approval()["by"] == "ops"
    (approved,) = rig.events("run_approved")
    assert approved.data["from"] == "ops" and "cicd" in approved.data["larrys"] and approved.data["at"]
    assert len(rig.events("task_completed")) == 2


def test_the_prompt_file_holds_the_task_and_what_its_dependencies_found(rig):
    rig.start_phase("monitoring")
    assert rig.worker("monitoring", "analysis-worker-02", GOOD) == 0
    dependent = results_dir(rig.dir, "monitoring") / "configure-critical-alerts"
    env = json.loads((dependent / "env.json").read_text())
    prompt = open(env["LARRY_PROMPT_FILE"]).read()
    assert prompt.startswith("# ") and "- task: configure-critical-alerts" in prompt
    assert "- Larry: monitoring, phase: " in prompt
    assert ('- analyze-prometheus-metrics (completed): done findings {"cves": {"high": 3}, "prs_created": 1}'
            in prompt), prompt


def test_a_worker_follows_its_larrys_stream_and_those_of_the_tasks_its_tasks_wait_on():
    dev = load_stack("dev", ROOT)

    def follows(larry_id: str, task: str):
        larry = dev.larry(larry_id)
        spec = next(w for w in larry.workers if task in [t.id for t in w.tasks])
        return streams_to_follow(dev, larry, TaskGraph(dev).around(t.id for t in dev.takes(larry, spec)))

    assert follows("larry-02", "patch-helm-charts") == ["larry-02", "larry-03"]  # waits on a larry-03 task
    assert follows("larry-01", "fix-pgadmin-crashloop") == ["larry-01"]
    queued = load_stack("cortex", ROOT)
    larry = queued.larrys[0]
    assert streams_to_follow(queued, larry, TaskGraph(queued)) is None, "a queue worker may be handed any task"
