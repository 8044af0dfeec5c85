"""`larry run`: whole plans on this machine, real redis-server and real processes, plus chaos.

Deadlines get a generous allowance ($LARRY_DEADLINE_ALLOWANCE) so a busy machine slows a
run down without failing it; nothing below asserts how fast anything was.
"""
from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from plan.loader import load_plan_path, load_stack
from plan.model import master_account, master_track, worker_account
from runtime import cli
from runtime.agent.master import PLAN_SHARE, overseen, review_tokens
from runtime.commands.converge import fetch_missing_reports, fetch_missing_results
from runtime.commands.run import larry_command
from runtime.coordination.connection import RedisSettings, connect
from runtime.coordination.events import EventListener, EventLog
from runtime.coordination.keys import CONVERGENCE_BARRIER, Keyspace
from runtime.coordination.ledger import figures, snapshot
from runtime.coordination.tasks import TaskBoard
from runtime.reporting.results import read_result, results_dir
from runtime.reporting.schema import ReportError, load_larry_report, report_path
from runtime.reporting.summary import LEVELS, converge
from tests.engine.pulumi_cli import copy_project, stack_document
from tests.runtime.coordination.test_queue import assert_claims_in_priority_order
from tests.runtime.reporting.test_summary import moto_server, s3  # noqa: F401 - fixtures
from tests.support.project import ROOT  # noqa: E402
from tests.support.prometheus import check_live_run
from tests.support.redis_servers import RedisServer

DEV = load_stack("dev", ROOT)
RUN_TIMEOUT = 240
pytestmark = pytest.mark.timeout(2 * RUN_TIMEOUT)


def run_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LARRY_")}
    return env | {"LARRY_DEADLINE_ALLOWANCE": "60"}


#: Runs `larry run` with SIGINT at its default, so the Ctrl+C the tests send reaches it even when
#: the suite runs with SIGINT ignored (as a background job of a non-interactive shell, whose
#: children inherit the ignored disposition through exec).
DEFAULT_SIGINT = [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                                        "os.execv(sys.argv[1], sys.argv[1:])"]


def start_run(stack: str, run_dir: Path, *args: str, project: Path = ROOT) -> subprocess.Popen:
    # its own process group: a run that has to be killed takes its coordinators and workers along
    return subprocess.Popen([*DEFAULT_SIGINT, *larry_command(), "run", "--stack", stack, "--project-dir", str(project),
                             "--speed", "600", "--coordination-dir", str(run_dir), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=run_env(),
                            start_new_session=True)


def kill_run(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    """The run's exit code and output; a run still going after RUN_TIMEOUT is killed and fails the test."""
    return RunOutput(proc).finish()


class RunOutput:
    """A run's output read by a thread of its own, so no wait on it can block forever."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.lines, self.seen = proc, queue.Queue(), []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _next(self, deadline: float, what: str) -> str | None:
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            kill_run(self.proc)
            raise AssertionError(f"timed out waiting for {what}; larry run killed. Output:\n"
                                 + "".join(self.seen)) from None
        if line is not None:
            self.seen.append(line)
        return line

    def until(self, prefix: str, timeout: float = RUN_TIMEOUT) -> None:
        """Read up to the first line starting with ``prefix``; fail if the run ends first."""
        deadline = time.monotonic() + timeout
        while (line := self._next(deadline, f"a '{prefix}' line")) is not None:
            if line.startswith(prefix):
                return
        raise AssertionError(f"larry run ended (exit {self.proc.wait()}) before a '{prefix}' line:\n"
                             + "".join(self.seen))

    def finish(self, timeout: float = RUN_TIMEOUT) -> tuple[int, str]:
        """Read to the end; the run's exit code and whole output."""
        deadline = time.monotonic() + timeout
        while self._next(deadline, "larry run to exit") is not None:
            pass
        return self.proc.wait(max(1.0, deadline - time.monotonic())), "".join(self.seen)


def summary_of(out: str) -> Path:
    return Path(re.findall(r"^summary: (.+)$", out, re.M)[-1])


def sections(summary: Path) -> list[str]:
    return re.findall(r"^## \d+\. (.+)$", summary.read_text(), re.M)


def section(summary: Path, title: str) -> str:
    text = summary.read_text()
    start = text.index(f". {title}\n")
    end = text.find("\n## ", start)
    return text[start:end if end > 0 else None]


class Observed:
    """A run against the test's own redis-server, whose state outlives the run."""

    def __init__(self, tmp_path: Path):
        self.server = RedisServer(tmp_path / "redis").start()
        self.r = self.server.client()
        self.ks = Keyspace.for_plan(DEV.channels)
        self.dir = tmp_path / "run"
        self.listener = EventListener(self.r, self.ks, "$")

    def start(self, *args: str) -> subprocess.Popen:
        self.proc = start_run("dev", self.dir, "--redis-url", self.server.url, *args)
        return self.proc

    def wait_for(self, name: str, task: str, proc: subprocess.Popen):
        deadline = time.monotonic() + RUN_TIMEOUT
        while proc.poll() is None:
            if time.monotonic() > deadline:
                kill_run(proc)
                raise AssertionError(f"timed out after {RUN_TIMEOUT} s waiting for {name} of {task}; run killed")
            for event in self.listener.poll(500):
                if event.name == name and event.data.get("task_id") == task:
                    return event
        raise AssertionError(f"the run ended (exit {proc.returncode}) before {name} of {task}:\n{proc.stdout.read()}")

    def kill_9(self, process: str) -> int:
        pid = int((self.dir / "pids" / f"{process}.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        return pid

    def events(self, name: str) -> list:
        return [e for e in EventLog(self.r, self.ks).history() if e.name == name]

    def completions(self) -> Counter:
        return Counter(e.data["task_id"] for e in self.events("task_completed"))

    def report(self, larry: str) -> dict:
        return load_larry_report(report_path(self.dir / "reports", larry))

    def stop(self) -> None:
        if getattr(self, "proc", None) is not None:
            kill_run(self.proc)  # a test that failed mid-run leaves nothing running
        self.server.stop()


def assert_seed_keys(r, ks: Keyspace, cfg, reports: dict) -> None:
    """The seeds' Redis names after a run (README "Seed 004's Redis schema"), consistent with
    the ledger, the tasks' results and the Larrys' reports."""
    board, tasks = TaskBoard(r, ks), [t for larry in cfg.larrys for t in larry.tasks]
    assert board.queued() == [], "every task finished: the queue is empty"
    for larry in cfg.larrys:
        for worker in larry.workers:
            for task in worker.tasks:
                entry = board.queue_entry(task.id)
                assert set(entry) == {"task_id", "master", "priority", "created_at", "dependencies"}
                assert (entry["master"], entry["dependencies"]) == (larry.queue_of(worker), list(task.depends_on))
    series = {name: float(r.xrevrange(ks.schema_series(name), count=1)[0][1]["value"])
              for name in ("tasks_completed", "task_queue_depth", "tokens_used", "cves_found")}
    assert series["tasks_completed"] == len(tasks) and series["task_queue_depth"] == 0
    assert series["tokens_used"] == snapshot(r, ks, "system")["committed"]
    spent_by_workers = 0
    for larry in cfg.larrys:
        report, findings = reports[larry.id], reports[larry.id]["findings"]
        assert r.smembers(ks.phase_workers(larry.id)) == {w.name for w in larry.workers}
        assert int(r.get(ks.tokens_used(larry.id))) == snapshot(r, ks, larry.id)["committed"]
        cves = {severity: n for severity, n in findings["cves"].items() if n}
        assert {k: int(v) for k, v in r.hgetall(ks.phase_findings(larry.id)).items()} == cves
        assert int(r.get(ks.metric(larry.id, "cves_found")) or 0) == sum(cves.values())
        assert int(r.get(ks.phase_figure(larry.id, "prs_created")) or 0) == findings["prs_created"]
        assert int(r.get(ks.metric(larry.id, "assets_cataloged")) or 0) == findings["assets_discovered"]
        assert float(r.get(ks.phase_figure(larry.id, "coverage_increase")) or 0) == pytest.approx(
            findings["coverage_delta"])
        for master in larry.masters:
            fields = r.hgetall(ks.schema_master(master.name))
            track = [t for t in report["tasks"] if any(t["id"] == task.id for _, task in larry.queue_tasks(master.name))]
            assert int(r.get(ks.phase_figure(larry.id, "prs_created", master_track(master.name))) or 0) == sum(
                t["findings"]["prs_created"] for t in track)
            own = [figures(r, ks, master_account(larry.id, master.name, part))["committed"]
                   for part in ("personal", "pool")]
            assert int(fields["tokens_used"]) == sum(own)
            assert int(fields["workers_spawned"]) == sum(larry.overseer(w) == master.name for w in larry.workers)
            assert (fields["status"], fields["tasks_active"]) == ("idle", "0") and fields["last_heartbeat"]
        for worker in larry.workers:
            fields = r.hgetall(ks.schema_worker(worker.name))
            assert (fields["status"], fields["progress"], fields["master"]) == (
                "completed", "100", worker.master or larry.id) and fields["started_at"]
            spent_by_workers += int(fields["tokens_used"])
    accounts = [snapshot(r, ks, worker_account(larry.id, w.name))["committed"] for larry, w in cfg.workers]
    assert spent_by_workers == sum(accounts), "what the workers spent is what their accounts were charged"
    entries = r.xrange(ks.stream, count=50)
    assert all(set(fields) == {"event_type", "source", "timestamp", "channel", "payload"} for _, fields in entries)
    assert all(json.loads(fields["payload"])["event"] == fields["event_type"] for _, fields in entries)


def assert_every_task_completed_once(run: Observed) -> None:
    ids = [t.id for larry in DEV.larrys for t in larry.tasks]
    assert run.completions() == Counter(ids), "each task completed exactly once"
    board = TaskBoard(run.r, run.ks)
    assert set(board.statuses(ids).values()) == {"completed"}
    for larry in DEV.larrys:
        for task in larry.tasks:
            fence = board.result(task.id)["token"]
            assert read_result(results_dir(run.dir, larry.id), task.id, fence)["status"] == "completed"


# --------------------------------------------------------------------------- the dev stack

@pytest.fixture(scope="module")
def dev_run(tmp_path_factory):
    """`larry run --stack dev --speed 600 --hold`: scraped while held, then stopped with Ctrl+C."""
    run = Observed(tmp_path_factory.mktemp("dev"))
    try:
        proc = run.start("--hold")
        output = RunOutput(proc)
        output.until("summary: ")
        ports = json.loads((run.dir / "processes.json").read_text())["coordinators"]
        run.metrics = {larry: urllib.request.urlopen(where["metrics"], timeout=10).read().decode()
                       for larry, where in ports.items()}
        run.pids = [int(p.read_text()) for p in (run.dir / "pids").glob("*.pid")]
        proc.send_signal(signal.SIGINT)
        run.code, run.out = output.finish()
        yield run
    finally:
        run.stop()  # also when the set-up failed: no run or redis-server outlives the module


def test_dev_run_completes_every_task_exactly_once(dev_run):
    assert dev_run.code == 0, dev_run.out
    assert_every_task_completed_once(dev_run)
    assert dev_run.events("task_failed") == [] and dev_run.events("task_requeued") == []


def test_dev_run_leaves_the_seeds_keys_consistent_with_its_results(dev_run):
    assert_seed_keys(dev_run.r, dev_run.ks, DEV, {larry.id: dev_run.report(larry.id) for larry in DEV.larrys})


def test_dev_run_processes_read_their_larrys_slice(dev_run):
    """As in the cluster: a Larry's coordinator and workers are given its slice of the plan,
    converge the directory of every slice; no process was given the whole plan."""
    plans = dev_run.dir / "plans"
    assert sorted(p.name for p in plans.iterdir()) == sorted(f"{larry.id}.yaml" for larry in DEV.larrys)
    for larry in DEV.larrys:
        part = load_plan_path(plans / f"{larry.id}.yaml")
        assert part.larrys == (larry,) and part.larry_ids == DEV.larry_ids
    assert not (dev_run.dir / "plan.yaml").exists()


def test_dev_run_phases_completed_and_barrier_passed(dev_run):
    for larry in DEV.larrys:
        assert dev_run.r.get(dev_run.ks.phase_status(larry.id)) == "completed"
        assert dev_run.report(larry.id)["status"] == "completed"
    assert dev_run.r.smembers(dev_run.ks.barrier_arrived(CONVERGENCE_BARRIER)) == {l.id for l in DEV.larrys}
    assert dev_run.r.exists(dev_run.ks.barrier_released(CONVERGENCE_BARRIER))
    released = [e.data["barrier"] for e in dev_run.events("barrier_released")]
    assert released == [CONVERGENCE_BARRIER, "reports"]


def test_dev_summary_has_nine_sections_and_the_ledgers_token_figures(dev_run):
    summary = summary_of(dev_run.out)
    assert summary.parent == dev_run.dir / "reports" and len(sections(summary)) == 9
    assert "**Overall: SUCCESS.**" in summary.read_text()
    tokens = section(summary, "Token Budget Utilization")
    total = 0
    for larry in DEV.larrys:
        ledger = snapshot(dev_run.r, dev_run.ks, larry.id)
        total += ledger["committed"]
        assert ledger["reserved"] == 0 and ledger["committed"] > 0
        row = re.search(rf"^\| {larry.id} \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|", tokens, re.M)
        assert [int(g.replace(",", "")) for g in row.groups()] == [ledger["limit"], 0, ledger["committed"]]
    system = re.search(r"^\| System \| [\d,]+ \| [\d,]+ \| ([\d,]+) \|", tokens, re.M)
    assert int(system.group(1).replace(",", "")) == total


def test_dev_masters_charge_their_personal_accounts_and_return_their_pools(dev_run):
    """The built-in masters, each a process of its own, plan and review every task of their
    workers on their personal budgets, write their reports and, their work over, hand the pools'
    unused tokens back; the summary shows every level."""
    tokens, reports = section(summary_of(dev_run.out), "Token Budget Utilization"), {}
    for larry in DEV.larrys:
        reports[larry.id] = accounts = {a["account"]: a for a in dev_run.report(larry.id)["accounts"]}
        reviewed = []
        for master in larry.masters:
            tasks = overseen(larry, master)[0]
            reviewed += tasks
            personal = figures(dev_run.r, dev_run.ks, master_account(larry.id, master.name, "personal"))
            assert personal["committed"] == int(master.personal_tokens * PLAN_SHARE) + sum(
                review_tokens(master, t, len(tasks)) for t in tasks) > 0, "the plan and each review, charged once"
            for task in tasks:
                planned = json.loads(dev_run.r.get(dev_run.ks.task_plan(task)))
                assert planned["master"] == master.name and 1 <= planned["order"] <= len(tasks)
            assert len(dev_run.r.hgetall(dev_run.ks.master_duties(larry.id, master.name))) == len(tasks) + 2
            # Seed 001's workers draw on their Larry, not on a master's pool: each pool goes back whole.
            pool = figures(dev_run.r, dev_run.ks, master_account(larry.id, master.name, "pool"))
            assert pool["committed"] == 0 and pool["released"] == pool["limit"] == master.worker_pool_tokens
            assert accounts[master_account(larry.id, master.name, "pool")]["released"] == pool["released"]
        assert sorted(reviewed) == sorted(t.id for t in larry.tasks), "every task reviewed by one master"
        masters = {m["name"]: m for m in dev_run.report(larry.id)["masters"]}
        for master in larry.masters:
            mine = masters[master.name]
            personal = figures(dev_run.r, dev_run.ks, master_account(larry.id, master.name, "personal"))
            assert mine["personal"]["committed"] == personal["committed"] and mine["completed"] == mine["reviewed"]
            assert (mine["reported_by"], mine["agent"], mine["planned"]) == ("master", "built-in", mine["reviewed"])
        assert sum(m["reviewed"] for m in masters.values()) == len(larry.tasks)
        text = summary_of(dev_run.out).read_text()
        for master in masters.values():
            assert re.search(rf"^\| {master['name']} \| {master['reviewed']} \| {master['completed']} \| 0 \| "
                             rf"{master['personal']['committed']:,} of ", text, re.M), f"{master['name']} not in the summary"
        own = figures(dev_run.r, dev_run.ks, larry.id)
        assert own["returned"] == sum(figures(dev_run.r, dev_run.ks, master_account(larry.id, m.name, "pool"))
                                      ["released"] for m in larry.masters)
        assert accounts[larry.id]["committed"] == own["committed"]
    for kind, label in LEVELS.items():
        row = re.search(rf"^\| {re.escape(label)} \| (\d+) \| ([\d,]+) \| [\d,]+ \| ([\d,]+) \| ([\d,]+) \|",
                        tokens, re.M)
        assert row, f"no {label} row in the summary's levels"
        accounts = [a for r in reports.values() for a in r.values() if a["kind"] == kind]
        assert [int(g.replace(",", "")) for g in row.groups()] == [
            len(accounts), sum(a["limit"] for a in accounts), sum(a["released"] for a in accounts),
            sum(a["committed"] for a in accounts)]


def metric(text: str, name: str, **labels) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (Prometheus text format)."""
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    values = [float(value) for found, value in re.findall(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.M)
              if wanted <= set(found.split(","))]
    assert values, f"{name} {wanted} not exposed"
    return sum(values)


def test_metrics_endpoint_exposes_the_seed_metrics_with_the_runs_values(dev_run):
    for larry in DEV.larrys:
        text = dev_run.metrics[larry.id]
        ledger = snapshot(dev_run.r, dev_run.ks, larry.id)
        assert metric(text, "larry_phase_progress", larry_id=larry.id) == 100
        assert metric(text, "larry_tasks_completed", larry_id=larry.id) == len(larry.tasks)
        assert metric(text, "larry_tokens_used", larry_id=larry.id) == ledger["committed"]
        assert metric(text, "larry_tokens_limit", larry_id=larry.id) == larry.token_budget
        assert metric(text, "larry_tasks_failed", larry_id=larry.id) == 0
        assert metric(text, "larry_barrier_passed", larry_id=larry.id) == 1
        for node in larry.worker_nodes:
            on_node = sum(w.node == node for w in larry.workers)
            assert 0 <= metric(text, "larry_workers_active", larry_id=larry.id, node=node) <= on_node


def test_ctrl_c_stops_every_process_of_the_run(dev_run):
    assert "holding: coordinators and Redis stay up until Ctrl+C" in dev_run.out
    for pid in dev_run.pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# --------------------------------------------------------------------------- cortex, private Redis, S3

def cortex_with_pools_for_their_tasks(dest: Path) -> Path:
    """A copy of the project whose cortex stack gives each master a worker pool as large as its
    tasks' budgets (its Larry's budget raised by as much). The seed's pools are smaller
    (development's 20,000 against four tasks of 32,000), so which pool runs dry, and which tasks
    wait on an operator's escalation instead of completing, depends on the order the workers
    take the queue and the emergency reserve lends: not what this test is about."""
    document, larrys = stack_document("cortex"), {larry.id: larry for larry in load_stack("cortex", ROOT).larrys}
    for entry in document["config"]["larry:larrys"]:
        larry = larrys[entry["id"]]
        for master_entry in entry.get("masters", ()):
            master = larry.master(master_entry["name"])
            need = sum(w.tokens * len(w.tasks) for w in larry.workers if larry.queue_of(w) == master.name)
            raise_by = max(0, need - master.worker_pool_tokens)
            master_entry["workerPoolTokens"] = master.worker_pool_tokens + raise_by
            entry["tokenBudget"] += raise_by
    return copy_project(dest, {"cortex": document})


def test_cortex_run_completes_with_its_private_redis_and_archives_to_s3(tmp_path, s3):  # noqa: F811
    """Seed 004's queue assignment: each master's workers take its queue's tasks, each once, by
    priority; the seeds' keys match the results. Held to read its private Redis, then Ctrl+C."""
    project = cortex_with_pools_for_their_tasks(tmp_path / "project")
    proc = start_run("cortex", tmp_path, "--allow-over-budget", "--hold", "--s3-url", "s3://larry-archives/runs/cortex",
                     project=project)
    output = RunOutput(proc)
    try:
        output.until("summary: ")
        env = dict(line.split("=", 1) for line in (tmp_path / "redis" / "env").read_text().splitlines())
        r = connect(RedisSettings(url=env["LARRY_REDIS_URL"], password=env["LARRY_REDIS_PASSWORD"]))
        cortex = load_stack("cortex", project)
        assert cortex.queued
        ks = Keyspace.for_plan(cortex.channels)
        history = EventLog(r, ks).history()
        completed = Counter(e.data["task_id"] for e in history if e.name == "task_completed")
        assert completed == Counter(t.id for larry in cortex.larrys for t in larry.tasks), "each task done once"
        # seed 004's master-to-coordinator messages, on its coordination channel, naming the queue's master
        seed = [e for e in history if e.name in ("TASK_STARTED", "TASK_COMPLETE")]
        assert Counter(e.data["task_id"] for e in seed if e.name == "TASK_COMPLETE") == completed
        assert {e.data["task_id"] for e in seed if e.name == "TASK_STARTED"} == set(completed)
        queues = {t.id: larry.queue_of(w) for larry in cortex.larrys for w in larry.workers for t in w.tasks}
        assert all(e.channel == ks.coordination and e.data["master"] == queues[e.data["task_id"]] for e in seed)
        board = TaskBoard(r, ks)
        assert_claims_in_priority_order(history, {t: board.queue_entry(t) for t in completed})
        for larry in cortex.larrys:
            queue_of = {w.name: larry.queue_of(w) for w in larry.workers}
            for worker in larry.workers:
                for task in worker.tasks:
                    ran_by = read_result(results_dir(tmp_path, larry.id), task.id, board.result(task.id)["token"])
                    assert queue_of[ran_by["worker"]] == queue_of[worker.name], f"{task.id} ran outside its queue"
        assert_seed_keys(r, ks, cortex, {larry.id: load_larry_report(report_path(tmp_path / "reports", larry.id))
                                         for larry in cortex.larrys})
        exec_id = assert_execution_plan(r, ks, cortex, tmp_path)
        check_live_run(tmp_path, r, ks, cortex, tmp_path / "prometheus")  # seed 004's rules on the live metrics
        r.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    code, out = output.finish()
    results = json.loads((tmp_path / "execution-plans" / "final-results.json").read_text())
    # One verdict: the run's exit code, the summary and final-results.json agree on seed 004's criteria.
    assert (code, results["verdict"]) in ((0, "SUCCESS"), (1, "CRITERIA NOT MET")), out
    assert ("Seed 004 success criteria" in out) == (code == 1)
    for larry in cortex.larrys:
        report = load_larry_report(report_path(tmp_path / "reports", larry.id))
        assert report["status"] == "completed"
        assert [t["status"] for t in report["tasks"]] == ["completed"] * len(larry.tasks)
        assert all(check["passed"] for check in report["validation"])
        for account in report["accounts"]:
            if account["kind"] in ("personal", "pool"):
                assert account["committed"] > 0, f"master account {account['account']} was never charged"
    summary = summary_of(out)
    assert len(sections(summary)) == len(cortex.larrys) + 6
    # the catalog's own figures (converge reads them on the hub), not the workers' sum
    total, new, baseline = map(int, re.search(
        r"Catalog \(seed 004 Inventory Results\): (\d+) assets in the catalog, (\d+) new since its baseline "
        r"of (\d+)", summary.read_text()).groups())
    assert baseline == 42 and new == total - baseline > 0
    archive = tmp_path / "archives" / f"exec-{exec_id}" / f"exec-{exec_id}.tar.gz"
    assert [p.name for p in (tmp_path / "archives").iterdir()] == [f"exec-{exec_id}"]
    with tarfile.open(archive) as tar:
        assert {"execution-plans/final-results.json", f"archives/exec-{exec_id}/task-queue.json",
                "masters/security-master/final-report.md"} <= set(tar.getnames())
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="larry-archives")["Contents"]]
    assert keys == [f"runs/cortex/{archive.name}"]
    # The private redis-server: password-protected, and shut down cleanly at the end.
    assert "requirepass " in (tmp_path / "redis" / "redis.conf").read_text()
    assert "ready to exit, bye bye" in (tmp_path / "redis" / "redis.log").read_text()
    assert re.search(r"^\[ *[\d.]+s\] barrier reports released$", out, re.M)


SEED_004_SECTIONS = ["Key Achievements:", "Masters Performance:", "Resource Utilization:", "Next Steps:"]


def assert_execution_plan(r, ks, cfg, run_dir: Path) -> str:
    """Seed 004's phases 0-5 in Redis and their files in the seed's shapes; the execution id."""
    phases = [{k: r.get(getattr(ks, f"phase_{k}")(f"execution-{n}")) for k in ("status", "started_at", "completed_at")}
              for n in range(6)]
    assert [p["status"] for p in phases] == ["completed"] * 6, phases
    assert all(p["started_at"] <= p["completed_at"] for p in phases)
    assert [p["started_at"] for p in phases] == sorted(p["started_at"] for p in phases)
    plans = run_dir / "execution-plans"
    files = {name: json.loads((plans / f"{name}.json").read_text())
             for name in ("preflight-report", "master-activation", "worker-distribution", "final-results")}
    exec_id = files["final-results"]["execution_id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d-\d{6}", exec_id)
    assert {f["execution_id"] for f in files.values()} == {exec_id}
    assert files["preflight-report"]["passed"] is True
    assert {c["check"]: c["outcome"] for c in files["preflight-report"]["checks"]}["Catalog baseline"] == "ok"
    masters = [m.name for larry in cfg.larrys for m in larry.masters]
    activation = files["master-activation"]
    assert [(m["name"], m["status"]) for m in activation["masters"]] == [(name, "active") for name in masters]
    distribution = files["worker-distribution"]
    assert {w["worker_id"]: w["k8s_node"] for w in distribution["workers"]} == {w.name: w.node for _, w in cfg.workers}
    assert set(distribution["workers"][0]) >= {"worker_id", "type", "master", "task_id", "k8s_node", "token_budget",
                                               "timeout_minutes", "status", "created_at"}
    tokens = files["final-results"]["token_budget"]
    assert set(tokens) == {"total_budget", "used", "remaining", "efficiency", "per_master"}
    assert list(tokens["per_master"]) == ["coordinator-master", *masters]
    assert tokens["used"] == sum(tokens["per_master"].values()) == tokens["total_budget"] - tokens["remaining"]
    assert tokens["total_budget"] == cfg.budget.system_tokens and re.fullmatch(r"\d+%", tokens["efficiency"])
    reported = sum(load_larry_report(report_path(run_dir / "reports", larry.id))["tokens"]["committed"]
                   for larry in cfg.larrys)
    assert tokens["used"] == reported + tokens["per_master"]["coordinator-master"]
    criteria = files["final-results"]["criteria"]
    assert {c["level"] for c in criteria} == {"system", "master", "worker", "cross-validation"}
    failed = [c for c in criteria if c["met"] is False]
    assert files["final-results"]["verdict"] == ("CRITERIA NOT MET" if failed else "SUCCESS")
    report = (plans / f"EXEC-{exec_id}-FINAL-REPORT.md").read_text()
    assert re.findall(r"^## (.+)$", report, re.M) == [SEED_004_SECTIONS[0], SEED_004_SECTIONS[1],
                                                       SEED_004_SECTIONS[2], "Phases:", "Success Criteria:",
                                                       SEED_004_SECTIONS[3]]
    for name in masters:
        assert (run_dir / "masters" / name / "final-report.md").read_text().startswith(f"# {name} - Final Report")
        assert json.loads((run_dir / "masters" / name / "status.json").read_text())["master"] == name
    # Cleanup: the queue moved into the archive, refreshed to the run's end; the pool emptied.
    archived = run_dir / "archives" / f"exec-{exec_id}"
    assert not (run_dir / "task-queue.json").exists()
    queue = json.loads((archived / "task-queue.json").read_text())
    assert {t["task_id"]: t["status"] for t in queue["tasks"]} == {
        t.id: r.get(ks.task_status(t.id)) for larry in cfg.larrys for t in larry.tasks}
    assert json.loads((run_dir / "worker-pool.json").read_text())["workers"] == []
    assert len(json.loads((archived / "worker-pool.json").read_text())["workers"]) == len(cfg.workers)
    assert json.loads((archived / "token-budget.json").read_text())["total_budget"] == cfg.budget.system_tokens
    return exec_id


# --------------------------------------------------------------------------- chaos

@pytest.fixture
def observed(tmp_path):
    run = Observed(tmp_path)
    yield run
    run.stop()


def test_kill_9_of_a_worker_mid_task_still_completes_the_task_exactly_once(observed):
    proc = observed.start()
    # The feature worker's second task: its longest (12.5 plan minutes), claimed once the
    # start-up rush is over.
    claim = observed.wait_for("task_claimed", "document-priority-feature", proc)
    pid = observed.kill_9("worker-feature-worker")
    code, out = finish(proc)
    assert code == 0, out
    assert "worker-feature-worker exited with status -9; restart 1/3" in out
    assert f"/{pid}-" in claim.data["owner"], "the killed process held the task"
    assert_every_task_completed_once(observed)
    report = observed.report("larry-03")
    task = next(t for t in report["tasks"] if t["id"] == "document-priority-feature")
    assert (task["status"], task["attempts"]) == ("completed", 2)
    assert task["fence"] > claim.data["token"]
    assert report["workers"]["feature-worker"]["restarts"] == 1


def test_a_killed_coordinator_is_restarted_and_resumes_from_redis_state(observed):
    proc = observed.start()
    observed.wait_for("task_completed", "investigate-pgadmin-root-cause", proc)
    observed.kill_9("coordinator-larry-01")
    code, out = finish(proc)
    assert code == 0, out
    assert "coordinator-larry-01 exited with status -9; restart 1 in" in out
    log = (observed.dir / "logs" / "coordinator-larry-01.log").read_text()
    assert "resuming: phase in_progress" in log
    assert [e.data["larry"] for e in observed.events("phase_started")].count("larry-01") == 1
    assert_every_task_completed_once(observed)
    report = observed.report("larry-01")
    ledger = snapshot(observed.r, observed.ks, "larry-01")
    assert report["status"] == "completed" and report["tokens"]["committed"] == ledger["committed"]
    assert report["started_at"] == observed.r.get(observed.ks.phase_started_at("larry-01"))


def test_an_overspending_payload_is_stopped_and_reported_as_such(tmp_path):
    code, out = finish(start_run("dev", tmp_path, "--overspend-task", "write-vulnerability-report"))
    assert code == 1, out
    assert "larry-02: write-vulnerability-report FAILED (budget exhausted)" in out
    assert "worker-scan-worker-01 exited with status 3 and gave up; not restarted" in out
    log = (tmp_path / "logs" / "worker-scan-worker-01.log").read_text()
    assert "write-vulnerability-report: stopping the payload (budget exhausted:" in log
    report = load_larry_report(report_path(tmp_path / "reports", "larry-02"))
    task = next(t for t in report["tasks"] if t["id"] == "write-vulnerability-report")
    assert (task["status"], task["detail"], task["attempts"]) == ("failed", "budget exhausted", 1)
    record = json.loads((tmp_path / "results" / "larry-02" / "write-vulnerability-report.json").read_text())
    assert record["tokens"] > record["budget"] and record["fence"] == task["fence"]
    assert report["status"] == "failed"
    others = [t for t in report["tasks"] if t["id"] != "write-vulnerability-report"]
    assert {t["status"] for t in others} == {"completed"}
    summary = summary_of(out).read_text()
    assert "**Overall: INCOMPLETE.**" in summary and "failed (budget exhausted)" in summary


# --------------------------------------------------------------------------- usage errors

@pytest.mark.parametrize("argv,message", [
    (["--stack", "nope"], "Pulumi.nope.yaml: stack file not found"),
    (["--stack", "dev", "--overspend-task", "nope"], "--overspend-task: 'nope' is not a task of"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert cli.main(["run", "--project-dir", str(ROOT), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_converge_on_a_volume_without_the_reports_reads_them_from_redis(dev_run, tmp_path):
    """In a cluster each Larry's volume lives in its own namespace; the converge Job sees none
    of them and takes the copies the coordinators left in Redis."""
    fetch_missing_reports(dev_run.r, dev_run.ks, DEV, tmp_path)
    fetch_missing_results(dev_run.r, dev_run.ks, DEV, tmp_path)
    for larry in DEV.larrys:
        assert load_larry_report(tmp_path / "reports" / f"{larry.id}-final.json") == dev_run.report(larry.id)
        for task in larry.tasks:
            # The same record the worker wrote, but for when: Redis's time of the write.
            ours, theirs = (json.loads((results_dir(d, larry.id) / f"{task.id}.json").read_text())
                            for d in (tmp_path, dev_run.dir))
            assert ours.pop("written_at") and theirs.pop("written_at") and ours == theirs
    result = converge(DEV, tmp_path)
    assert len(sections(result.summary)) == 9
    with tarfile.open(result.archive) as archive:
        archived = {name for name in archive.getnames() if name.startswith("results/") and name.endswith(".json")}
    assert archived == {f"results/{larry.id}/{task.id}.json" for larry in DEV.larrys for task in larry.tasks}


def test_a_corrupt_result_in_redis_is_one_error_naming_the_key(redis_server, tmp_path):
    client = connect(RedisSettings(url=redis_server.url, retry_for=2.0))
    ks = Keyspace(prefix="corrupt-result:")
    task = DEV.larrys[0].tasks[0].id
    client.hset(ks.task_result(task), mapping={"token": "1", "owner": "larry-01/w/1", "outcome": "completed",
                                               "data": "{not json", "at": "x"})
    with pytest.raises(ReportError, match=rf"redis key corrupt-result:task:result:{task}: not a task result"):
        fetch_missing_results(client, ks, DEV, tmp_path)
    assert not (tmp_path / "results").exists()


def test_a_corrupt_report_in_redis_is_one_error_naming_the_key(redis_server, tmp_path):
    client = connect(RedisSettings(url=redis_server.url, retry_for=2.0))
    ks = Keyspace(prefix="corrupt-report:")
    client.set(ks.phase_report("larry-01"), "{not json")
    with pytest.raises(ReportError, match=r"redis key corrupt-report:phase:larry-01:report: not valid JSON"):
        fetch_missing_reports(client, ks, DEV, tmp_path)
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())
