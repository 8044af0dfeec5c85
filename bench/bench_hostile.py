"""Hostile-run benchmark (issue 11 "Measure"): prints figures and PASS/FAIL per count, asserts nothing.

One generated plan (2 Larrys, 8 workers, 24 tasks of a few seconds at ``--speed`` 60) is run
twice with `larry run` against a loopback redis-server whose data survives a restart
(an append-only file it flushes when it shuts down):

* clean: every payload well-behaved;
* hostile, mixing in one run: a payload flooding ``@larry {"tokens": 1}`` past its budget;
  huge and malformed reports (10**30, 2**63-1, negative, non-integer, a string, findings of
  the wrong shape); a payload whose children (one in its process group, one in a session of
  its own) keep its stdout open after it exits; kill -9 of a worker holding a lease; SIGSTOP
  of a worker holding a lease, SIGCONT after twice the lease TTL; redis-server shut down and,
  2 s later, started again on the same port with its data; a concurrent second `larry run` on
  the same Redis and key prefix.

Each run is `larry run ... -- python -c PAYLOAD`: every worker runs this file's payload, which
picks its behaviour by the task id; the real supervisor, coordinators, workers and converge
run unchanged. The second run is a plain `larry run` (its payload is `larry simulate`).

Printed per run, clean beside hostile (every count must be 0, or the expected figure, for PASS):

* tasks done exactly once / more than once (``task_completed`` and final ``task_failed``
  events per task on the stream) / lost (never completed nor failed, read from Redis), and
  finished tasks whose result file does not carry the accepted finish (fence, status, the
  tokens the ledger booked for that lease);
* tokens booked beyond what was reported before each stop: per lease (op ids
  ``{task}:{fence}:{n}`` in the ledger's ops hash), booked minus what the payload itself
  logged before printing, counted up to and including the report that crossed its budget
  (the worker must stop there); plus committed tokens no op explains;
* events lost: gaps a listener reading the stream from its start detects, entries added
  to the stream that it never read, gaps the run's own processes logged, and entries
  trimmed from the stream at all (a 24-task run is far below its MAXLEN, so any trimming
  means a flood, and a reader of the history such as converge would miss them);
* processes left behind (anything carrying the run's marker in its environment after
  `larry run` exited), readers crashing (`larry status`, `--json`, `larry dashboard --once`
  on the run's final state), and the second run's disturbance (payloads it started,
  summaries it wrote);
* wall time, hostile against clean.

Exit status: 0 whatever the counts (it is a benchmark); 1 when the harness itself failed
(a run could not be started, a chaos step never found its target).

Usage: python bench/bench_hostile.py [--speed 60] [--run-timeout 150] [--second-run-seconds 20] [--work-dir D]
Target (issue 11): every count 0; wall time of the hostile run within a small factor of the clean one.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plan.loader import load_stack  # noqa: E402
from plan.model import worker_account  # noqa: E402
from plan.statuses import TaskStatus  # noqa: E402
from runtime.commands.run import larry_command  # noqa: E402
from runtime.coordination.connection import RedisSettings, connect  # noqa: E402
from runtime.coordination.events import EventListener, EventLog  # noqa: E402
from runtime.coordination.keys import Keyspace  # noqa: E402
from runtime.coordination.ledger import snapshot as ledger_snapshot  # noqa: E402
from runtime.reporting.results import read_result, results_dir  # noqa: E402
from runtime.support.timing import Timing  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402

STACK = "hostile"
#: Environment of every process of a run (inherited down to the payloads' children): how
#: leftovers are found, where payloads log what they reported, and the clean run's switch.
MARK, TRUTH, CLEAN = "HOSTILE_BENCH_RUN", "HOSTILE_BENCH_TRUTH", "HOSTILE_BENCH_CLEAN"

# Larry -> worker -> its tasks (id, dependsOn). A task's mode is its id before the first '-'.
PLAN = {
    "bench-01": {"w-flood": [("flood-1", []), ("a1", []), ("a2", [])],
                 "w-malformed": [("malformed-1", []), ("b1", []), ("b2", [])],
                 "w-holder": [("c1", []), ("holder-1", []), ("c2", [])],
                 "w-kill": [("kill-1", []), ("d1", ["kill-1"]), ("d2", [])]},
    "bench-02": {"w-stop": [("stop-1", []), ("e1", []), ("e2", ["stop-1"])],
                 "w-redis": [("f1", []), ("f2", []), ("f3", [])],
                 "w-second": [("g1", ["a1"]), ("g2", []), ("g3", [])],
                 "w-h": [("h1", []), ("h2", []), ("h3", [])]},
}
WORKER_TOKENS, WORKER_MINUTES = 9000, 30
#: The operator's readers of a run's state (item 7: none may crash on what the protocol accepted).
READERS = (["status", "--json"], ["status"], ["dashboard", "--once"])
#: Tasks that fail by design in the hostile run: the flood is stopped at its budget.
EXPECTED_FAILURES = {"flood-1"}

# The payload: `python -c PAYLOAD`. Every report is logged to $HOSTILE_BENCH_TRUTH *before*
# it is printed, so the log bounds what the worker can have read. A well-behaved run takes
# 30 % of the task's planned time and reports 60 % of its budget in six steps.
PAYLOAD = r'''
import json, os, subprocess, sys, time
env = os.environ
task, budget = env["LARRY_TASK_ID"], int(env["LARRY_TOKEN_BUDGET"])
seconds = float(env["LARRY_TASK_MINUTES"]) * 60 / float(env.get("LARRY_SPEED", "1")) * 0.3
mode = "clean" if env.get("HOSTILE_BENCH_CLEAN") else task.split("-")[0]
name = f"{task}.{env['LARRY_FENCE']}.{os.getpid()}.jsonl"
truth = open(os.path.join(env["HOSTILE_BENCH_TRUTH"], name), "a")

def note(**record):
    truth.write(json.dumps(record) + "\n")
    truth.flush()

def report(line, each=0, count=1):
    note(each=each, count=count)
    sys.stdout.write(line * count)
    sys.stdout.flush()

note(start=time.time(), budget=budget, mode=mode)
if mode == "flood":
    for _ in range(40):  # 20,000 lines at most; the worker must stop it after budget + 1
        report('@larry {"tokens": 1}\n', each=1, count=500)
    time.sleep(60)
    sys.exit(0)
if mode == "malformed":
    for text in ('{"tokens": 1' + "0" * 30 + "}", '{"tokens": 9223372036854775807}', '{"tokens": -5}',
                 '{"tokens": 2.5}', '{"tokens": "7"}', '{"tokens": true}', "[1, 2]", "{not json",
                 '{"findings": {"cves": 5}}', '{"findings": [1]}', '{"progress": 1e308}'):
        report("@larry " + text + "\n")  # each=0: none of these may be booked
if mode == "holder":
    subprocess.Popen(["sleep", "300"])  # inherits stdout, stays in the payload's process group
    subprocess.Popen(["sleep", "300"], start_new_session=True)  # inherits stdout, a session of its own
steps = 6
each = budget * 6 // 10 // steps
for step in range(1, steps + 1):
    time.sleep(seconds / steps)
    report('@larry {"tokens": %d, "progress": %d}\n' % (each, 100 * step // steps), each=each)
report('@larry {"findings": {"assets_discovered": 1}}\n')
note(done=time.time())
'''

def stack_document() -> dict:
    resources = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    larrys = []
    for number, (larry_id, workers) in enumerate(PLAN.items(), start=1):
        larrys.append({
            "id": larry_id, "phase": f"Hostile {number}", "namespace": larry_id, "node": "master",
            "workerNodes": ["worker"], "deadlineMinutes": 45, "tokenBudget": 60000, "storage": "1Gi",
            "coordinator": resources,
            "masters": [{"name": f"master-{number}", "personalTokens": 10000, "workerPoolTokens": 10000}],
            "workers": [{"name": name, "node": "worker", "tokens": WORKER_TOKENS, "minutes": WORKER_MINUTES,
                         "resources": resources,
                         "tasks": [{"id": task, "title": f"hostile bench task {task}",
                                    **({"dependsOn": deps} if deps else {})} for task, deps in tasks]}
                        for name, tasks in workers.items()]})
    return {"config": {
        "larry:executionWindowMinutes": 60,
        "larry:budget": {"systemTokens": 150000,
                         "metaCoordinator": {"orchestrationTokens": 10000, "emergencyReserveTokens": 10000}},
        "larry:nodes": {"master": {"role": "master", "ip": "10.0.0.1", "cpu": "16", "memory": "64Gi"},
                        "worker": {"role": "worker", "ip": "10.0.0.2", "cpu": "16", "memory": "64Gi"}},
        "larry:redis": {"namespace": "redis-ha", "serviceName": "redis", "port": 6379, "replicas": 1,
                        "sentinels": 3},
        "larry:larrys": larrys}}


class DurableRedis(RedisServer):
    """The test-suite's redis-server with an append-only file, restarted on the same port
    keeping every acknowledged write: SIGTERM makes it flush and fsync the file before it
    exits. (``appendfsync always`` would survive a kill -9 too, but at about 5 ms per write on
    this kind of disk it slows every booking of the run and would be measured as the runtime's.)"""

    def config(self) -> list[str]:
        return [line for line in super().config() if not line.startswith("appendonly")] + [
            "appendonly yes", "appendfsync everysec"]

    def restart(self, down: float) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"redis-server did not shut down within 30 s; log:\n{self.log_tail()}") from None
        time.sleep(down)
        self.start(timeout=30)


def stop_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM to the process group of ``proc`` (started in a session of its own), SIGKILL after ``grace``."""
    if proc.poll() is not None:
        return  # reaped: its group id may belong to someone else now
    for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def marked_processes(marker: str) -> list[int]:
    """Live processes whose environment carries ``marker`` (this machine, this user)."""
    needle = f"{MARK}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_for(condition, timeout: float, stop: threading.Event) -> bool:
    until = time.monotonic() + timeout
    while time.monotonic() < until and not stop.is_set():
        if condition():
            return True
        time.sleep(0.05)
    return False


class StreamWatch(threading.Thread):
    """Reads the run's event stream from its first entry, as a coordinator would."""

    def __init__(self, url: str, ks: Keyspace):
        super().__init__(daemon=True, name="stream-watch")
        self.listener = EventListener(connect(RedisSettings(url=url)), ks, "0-0")
        self.stop = threading.Event()
        self.read = 0
        # task -> (completed | failed, fence) of each accepted finish, in order
        self.terminal: dict[str, list[tuple[str, int]]] = defaultdict(list)
        self.names: Counter = Counter()

    def take(self, event) -> None:
        self.read += 1
        self.names[event.name] += 1
        task = event.data.get("task_id")
        if event.name == "task_completed":
            self.terminal[task].append((TaskStatus.COMPLETED, event.data.get("token")))
        elif event.name == "task_failed" and not event.data.get("retry"):
            self.terminal[task].append((TaskStatus.FAILED, event.data.get("token")))

    def run(self) -> None:
        for event in self.listener.listen(self.stop, block_ms=500):
            self.take(event)

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=10)
        while events := self.listener.poll(block_ms=None):
            for event in events:
                self.take(event)


@dataclass
class Run:
    """One `larry run` of the plan and what the bench saw of it."""

    name: str
    tmp: Path
    redis: DurableRedis
    speed: float
    hostile: bool
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    wall: float = 0.0
    exit_code: int | None = None
    harness_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    second: dict = field(default_factory=dict)
    leftovers: list[int] = field(default_factory=list)

    def __post_init__(self):
        self.dir = self.tmp / self.name
        self.run_dir, self.truth = self.dir / "run", self.dir / "truth"
        self.truth.mkdir(parents=True)
        self.prefix = f"{self.name}:"
        self.ks = Keyspace.for_plan(load_stack(STACK, self.tmp).channels, self.prefix)
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"  {self.name}: [{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def larry_args(self, run_dir: Path) -> list[str]:
        return ["run", "--stack", STACK, "--project-dir", str(self.tmp), "--redis-url", self.redis.url,
                "--key-prefix", self.prefix, "--speed", f"{self.speed:g}", "--coordination-dir", str(run_dir)]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LARRY_")}
        env.update({MARK: self.marker, TRUTH: str(self.truth), "PYTHONPATH": str(ROOT)})
        if not self.hostile:
            env[CLEAN] = "1"
        return env

    # ------------------------------------------------------------------ the run
    def execute(self, timeout: float, second_run_seconds: float) -> "Run":
        self.watch = StreamWatch(self.redis.url, self.ks)
        self.watch.start()
        log = open(self.dir / "larry-run.log", "w")
        stop = threading.Event()
        chaos: list[threading.Thread] = []
        self.started = time.monotonic()
        proc = subprocess.Popen([*larry_command(), *self.larry_args(self.run_dir), "--", sys.executable, "-c", PAYLOAD],
                                cwd=ROOT, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            if self.hostile:
                chaos = [threading.Thread(target=self._guarded, args=(step, stop), daemon=True)
                         for step in (self.kill_lease_holder, self.stop_lease_holder, self.restart_redis,
                                      lambda stop: self.second_run(stop, second_run_seconds))]
                for thread in chaos:
                    thread.start()
            try:
                self.exit_code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.notes.append(f"`larry run` did not finish within {timeout:g} s: stopped")
        finally:
            self.wall = time.monotonic() - self.started
            stop.set()
            for thread in chaos:
                thread.join(timeout=60)
            stop_group(proc, grace=15)
            log.close()
            # Processes the supervisor stopped may take a moment to be gone.
            wait_for(lambda: not marked_processes(self.marker), 3, threading.Event())
            self.leftovers = marked_processes(self.marker)
            for pid in self.leftovers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.watch.finish()
        return self

    def _guarded(self, step, stop: threading.Event) -> None:
        try:
            step(stop)
        except Exception as error:  # a chaos step that broke is the harness's failure, not the runtime's
            self.harness_errors.append(f"chaos step failed: {error!r}")

    # ------------------------------------------------------------------ chaos
    def reports_logged(self, task: str) -> int:
        """Token reports the payloads of ``task`` have logged so far (all attempts)."""
        return sum(1 for path in self.truth.glob(f"{task}.*.jsonl") for rec in read_truth(path) if rec.get("each"))

    def worker_pid(self, worker: str) -> int:
        return int((self.run_dir / "pids" / f"worker-{worker}.pid").read_text())

    def holding(self, task: str, reports: int, stop: threading.Event, timeout: float = 60) -> bool:
        if wait_for(lambda: self.reports_logged(task) >= reports, timeout, stop):
            return True
        self.harness_errors.append(f"chaos step not performed: {task} did not report {reports} times "
                                   f"({'the run ended' if stop.is_set() else f'waited {timeout:g} s'})")
        return False

    def kill_lease_holder(self, stop: threading.Event) -> None:
        if self.holding("kill-1", 2, stop):
            pid = self.worker_pid("w-kill")
            os.kill(pid, signal.SIGKILL)
            self.say(f"kill -9 worker-w-kill (pid {pid}) holding the lease of kill-1")

    def stop_lease_holder(self, stop: threading.Event) -> None:
        if not self.holding("stop-1", 1, stop):
            return
        pid = self.worker_pid("w-stop")
        frozen = 2 * Timing.from_env(self.speed).lease_ttl_ms / 1000 + 2
        os.kill(pid, signal.SIGSTOP)
        self.say(f"SIGSTOP worker-w-stop (pid {pid}) holding the lease of stop-1, for {frozen:g} s")
        try:
            time.sleep(frozen)
        finally:
            os.kill(pid, signal.SIGCONT)
            self.say(f"SIGCONT worker-w-stop (pid {pid})")

    def restart_redis(self, stop: threading.Event) -> None:
        if self.holding("f2", 1, stop):
            self.say(f"redis-server (port {self.redis.port}) shut down for a restart")
            self.redis.restart(down=2.0)
            self.say(f"redis-server restarted on port {self.redis.port} (append-only file kept)")

    def second_run(self, stop: threading.Event, seconds: float) -> None:
        if not self.holding("g2", 1, stop):
            return
        run_dir = self.dir / "second-run"
        with open(self.dir / "second-run.log", "w") as log:
            proc = subprocess.Popen([*larry_command(), *self.larry_args(run_dir)], cwd=ROOT, env=self.environment(),
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            self.say(f"second `larry run` on the same Redis and prefix started (pid {proc.pid})")
            try:
                code = proc.wait(seconds)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                stop_group(proc, grace=10)
        output = (self.dir / "second-run.log").read_text().strip().splitlines()
        started = [p for p in (run_dir / "results").glob("*/*") if p.is_dir()] if (run_dir / "results").is_dir() else []
        summaries = list((run_dir / "reports").glob("*SUMMARY*")) if (run_dir / "reports").is_dir() else []
        said = next((line for line in output if line.startswith("larry run")), output[-1] if output else "(no output)")
        self.second = {"exit": code, "said": said,
                       "payloads_started": len(started), "summaries": len(summaries)}
        self.say("second run " + (f"exited with status {code}" if code is not None else
                                  f"still running after {seconds:g} s: stopped"))

    # ------------------------------------------------------------------ measures
    def measure(self) -> dict:
        r = connect(RedisSettings(url=self.redis.url, retry_for=10))
        cfg = load_stack(STACK, self.tmp)
        tasks = [t.id for larry in cfg.larrys for t in larry.tasks]
        statuses = dict(zip(tasks, r.mget([self.ks.task_status(t) for t in tasks])))
        terminal = self.watch.terminal
        completed_once = [t for t in tasks if [s for s, _ in terminal.get(t, ())] == [TaskStatus.COMPLETED]]
        more = [t for t in tasks if len(terminal.get(t, ())) > 1]
        lost = [t for t in tasks if statuses[t] not in (TaskStatus.COMPLETED, TaskStatus.FAILED)]
        failed = [t for t in tasks if statuses[t] == TaskStatus.FAILED]
        expected_failures = EXPECTED_FAILURES if self.hostile else set()
        booked = self.booked(r, cfg)
        beyond, beyond_detail = self.tokens_beyond(r, cfg, booked)
        added = length = 0
        for stream in EventLog(r, self.ks).streams():
            info = r.xinfo_stream(stream)
            added += int(info.get("entries-added", info.get("entries_added", 0)))
            length += int(info.get("length", 0))
        logged_gaps = sum(len(re.findall("may have been trimmed", p.read_text(errors="replace")))
                          for p in (self.run_dir / "logs").glob("*.log")) if (self.run_dir / "logs").is_dir() else 0
        output = (self.dir / "larry-run.log").read_text(errors="replace")
        restarts = Counter(m.group(1) for m in re.finditer(r"\] (\w+)-\S+ exited with status -?\d+; restart", output))
        verdicts = re.findall(r"\] (.*(?:tasks not completed|execution window|plan FAILED).*)", output)
        return {
            "tasks": len(tasks), "expected_done": len(tasks) - len(expected_failures),
            "done_once": completed_once, "more": more, "lost": lost,
            "unexpected_failures": [t for t in failed if t not in expected_failures],
            "failed": failed, "beyond": beyond, "beyond_detail": beyond_detail,
            "results": self.results_disagreeing(cfg, booked),
            "gaps": self.watch.listener.gaps, "unread": max(0, added - self.watch.read - self.watch.listener.malformed),
            "logged_gaps": logged_gaps, "trimmed": max(0, added - length),
            "overrun_alerts": self.watch.names["token_overrun"],
            "leftovers": len(self.leftovers), "readers": self.readers_crashing(),
            "disturbance": self.second.get("payloads_started", 0) + self.second.get("summaries", 0),
            "restarts": restarts, "verdicts": verdicts, "attempts": self.attempts(),
        }

    def attempts(self) -> tuple[int, int]:
        """(payload runs, runs that reached their end): the work the runtime may repeat."""
        runs = [read_truth(path) for path in self.truth.glob("*.jsonl")]
        return len(runs), sum(any("done" in rec for rec in records) for records in runs)

    def readers_crashing(self) -> list[str]:
        """The operator's readers of the run's state that fail on it, with their last line."""
        crashed = []
        for reader in READERS:
            done = subprocess.run([*larry_command(), *reader, "--stack", STACK, "--project-dir", str(self.tmp),
                                   "--redis-url", self.redis.url, "--key-prefix", self.prefix],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60,
                                  env={k: v for k, v in os.environ.items() if not k.startswith("LARRY_")})
            if done.returncode != 0 or "Traceback" in done.stdout:
                last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
                crashed.append(f"larry {' '.join(reader)} (exit {done.returncode}): {last[:200]}")
        return crashed

    def booked(self, r, cfg) -> dict[str, dict[tuple[str, str], int]]:
        """Larry -> (task, fence) -> tokens its ledger booked for that lease (op ids
        ``{task}:{fence}:{n}``, ``file:`` before them for file-mode charges)."""
        booked: dict[str, dict[tuple[str, str], int]] = {larry.id: defaultdict(int) for larry in cfg.larrys}
        workers = {worker_account(larry.id, w.name) for larry, w in cfg.workers}
        for op_id, value in r.hgetall(self.ks.token_ops).items():
            record = json.loads(value)
            larry = next((name for name in record["path"] if name in booked), None)
            if record["kind"] != "record" or larry is None or record["path"][0] not in workers:
                continue  # an operator's grant, a master's duty, or an account outside the Larrys
            task, fence, _n = op_id.removeprefix("file:").split(":", 2)
            booked[larry][(task, fence)] += int(record["amount"])
        return booked

    def tokens_beyond(self, r, cfg, booked) -> tuple[int, list[str]]:
        """Tokens booked per lease beyond what its payloads logged up to their budget crossing,
        plus committed tokens that no op explains; and the leases concerned."""
        allowed: dict[tuple[str, str], int] = defaultdict(int)
        for path in self.truth.glob("*.jsonl"):
            task, fence, _pid, _ext = path.name.rsplit(".", 3)
            allowed[(task, fence)] += reported_until_stop(read_truth(path))
        beyond, detail = 0, []
        for larry in cfg.larrys:
            for key, amount in sorted(booked[larry.id].items()):
                over = amount - allowed.get(key, 0)
                if over > 0:
                    beyond += over
                    detail.append(f"{key[0]} (fence {key[1]}): booked {amount:,}, reported {allowed.get(key, 0):,}"
                                  + ("" if key in allowed else " (no payload of this run held that lease)"))
            committed = ledger_snapshot(r, self.ks, larry.id)["committed"]
            unexplained = committed - sum(booked[larry.id].values())
            if unexplained > 0:
                beyond += unexplained
                detail.append(f"{larry.id}: {unexplained:,} committed tokens no op explains")
        return beyond, detail

    def results_disagreeing(self, cfg, booked) -> list[str]:
        """Finished tasks whose result file does not carry the accepted finish: its fence, its
        status, and the tokens the ledger booked for that lease."""
        problems = []
        for larry in cfg.larrys:
            for task in larry.tasks:
                if not self.watch.terminal.get(task.id):
                    continue  # never finished: counted as lost
                status, fence = self.watch.terminal[task.id][-1]
                record = read_result(results_dir(self.run_dir, larry.id), task.id, fence)
                tokens = booked[larry.id].get((task.id, str(fence)), 0)
                if not record:
                    problems.append(f"{task.id}: no result file with the accepted fence {fence}")
                elif record.get("status") != status or record.get("tokens", 0) != tokens:
                    problems.append(f"{task.id}: result file says {record.get('status')}, {record.get('tokens', 0):,} "
                                    f"tokens; Redis accepted {status}, the ledger booked {tokens:,}")
        return problems


def read_truth(path: Path) -> list[dict]:
    """A payload's log; a last line it was killed half-way through writing is not a record."""
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def reported_until_stop(records: list[dict]) -> int:
    """Tokens a payload reported up to and including the report that took it past its budget."""
    budget = next((rec["budget"] for rec in records if "budget" in rec), 0)
    total = 0
    for rec in records:
        each, count = rec.get("each", 0), rec.get("count", 1)
        if not each:
            continue
        if total + each * count > budget:
            return total + each * ((budget - total) // each + 1)
        total += each * count
    return total


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(clean: dict, hostile: dict, clean_run: Run, hostile_run: Run) -> None:
    rows = [
        ("tasks done exactly once", f"{len(clean['done_once'])}/{clean['expected_done']}",
         f"{len(hostile['done_once'])}/{hostile['expected_done']}",
         len(hostile["done_once"]) == hostile["expected_done"] and not hostile["unexpected_failures"]),
        ("tasks done more than once", len(clean["more"]), len(hostile["more"]), not hostile["more"]),
        ("tasks lost (never completed nor failed)", len(clean["lost"]), len(hostile["lost"]), not hostile["lost"]),
        ("tasks failed that should complete", len(clean["unexpected_failures"]), len(hostile["unexpected_failures"]),
         not hostile["unexpected_failures"]),
        ("result files disagreeing with Redis", len(clean["results"]), len(hostile["results"]),
         not hostile["results"]),
        ("tokens booked beyond reported-until-stop", f"{clean['beyond']:,}", f"{hostile['beyond']:,}",
         not hostile["beyond"]),
        ("events lost: listener gaps", clean["gaps"], hostile["gaps"], not hostile["gaps"]),
        ("events lost: entries never read", clean["unread"], hostile["unread"], not hostile["unread"]),
        ("events lost: gaps the run's processes logged", clean["logged_gaps"], hostile["logged_gaps"],
         not hostile["logged_gaps"]),
        ("events lost: entries trimmed from the stream", clean["trimmed"], hostile["trimmed"], not hostile["trimmed"]),
        ("processes left behind after the run", clean["leftovers"], hostile["leftovers"], not hostile["leftovers"]),
        ("readers crashing (status, dashboard --once)", len(clean["readers"]), len(hostile["readers"]),
         not hostile["readers"]),
        ("second run: payloads started + summaries", "-", hostile["disturbance"], not hostile["disturbance"]),
    ]
    print(f"\n{'measure':<46}{'clean':>10}{'hostile':>10}  verdict (hostile)")
    for name, a, b, ok in rows:
        print(f"{name:<46}{a!s:>10}{b!s:>10}  {verdict(ok)}")
    print(f"{'wall time (s)':<46}{clean_run.wall:>10.1f}{hostile_run.wall:>10.1f}  "
          f"ratio {hostile_run.wall / clean_run.wall:.2f}x")
    print(f"{'`larry run` exit status':<46}{clean_run.exit_code!s:>10}{hostile_run.exit_code!s:>10}  "
          "(the hostile plan fails by design: flood-1)")
    for kind in ("worker", "coordinator"):
        print(f"{kind + ' restarts by the supervisor':<46}{clean['restarts'][kind]:>10}{hostile['restarts'][kind]:>10}"
              "  (info)")
    attempts = [f"{m['attempts'][0]} ({m['attempts'][1]})" for m in (clean, hostile)]
    print(f"{'payload runs (of them ran to their end)':<46}{attempts[0]:>10}{attempts[1]:>10}  (info: work may repeat)")
    print(f"{'token_overrun alerts':<46}{clean['overrun_alerts']:>10}{hostile['overrun_alerts']:>10}  (info)")

    for label, m, run in (("clean", clean, clean_run), ("hostile", hostile, hostile_run)):
        notes = list(run.notes) + [f"`larry run`: {line}" for line in m["verdicts"]]
        if m["failed"]:
            notes.append("failed: " + ", ".join(m["failed"]))
        if m["more"]:
            notes.append("done more than once: " + ", ".join(m["more"]))
        if m["lost"]:
            notes.append("lost: " + ", ".join(m["lost"]))
        notes.extend(m["results"])
        notes.extend(m["beyond_detail"])
        notes.extend(m["readers"])
        for note in notes:
            print(f"  {label}: {note}")
    if hostile_run.second:
        s = hostile_run.second
        print(f"  second run: exit {s['exit']}: {s['said'][:240]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--run-timeout", type=float, default=150.0, help="seconds each `larry run` may take")
    parser.add_argument("--second-run-seconds", type=float, default=20.0,
                        help="how long the concurrent second run may run before it is stopped")
    parser.add_argument("--work-dir", type=Path,
                        help="keep the runs' directories (logs, results, payload logs) here instead of a temporary one")
    args = parser.parse_args()

    if args.work_dir:
        args.work_dir.mkdir(parents=True)  # a fresh one: runs must not mix
        return bench(args, args.work_dir.resolve())
    with tempfile.TemporaryDirectory(prefix="larry-hostile-") as tmp_name:
        return bench(args, Path(tmp_name))


def bench(args, tmp: Path) -> int:
    (tmp / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(stack_document(), sort_keys=False))
    redis = DurableRedis(tmp, "redis")
    try:
        redis.start()
        workers = sum(len(w) for w in PLAN.values())
        print(f"hostile-run benchmark: {len(PLAN)} Larrys, {workers} workers, "
              f"{sum(len(t) for w in PLAN.values() for t in w.values())} tasks, speed {args.speed:g}, "
              f"lease TTL {Timing.from_env(args.speed).lease_ttl_ms / 1000:g} s, redis-server on port {redis.port}")
        runs = []
        for name, hostile in (("clean", False), ("hostile", True)):
            run = Run(name, tmp, redis, args.speed, hostile)
            print(f"{name} run ...", flush=True)
            run.execute(args.run_timeout, args.second_run_seconds)
            print(f"{name} run: {run.wall:.1f} s, `larry run` exit status {run.exit_code}", flush=True)
            runs.append((run, run.measure()))
    finally:
        redis.kill()
    (clean_run, clean), (hostile_run, hostile) = runs
    print_table(clean, hostile, clean_run, hostile_run)
    errors = clean_run.harness_errors + hostile_run.harness_errors
    for error in errors:
        print(f"HARNESS: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
