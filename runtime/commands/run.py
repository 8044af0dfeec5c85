"""`larry run`: a stack's whole plan on this machine, supervised the way the cluster would.

::

    larry run --stack dev [--speed 600] [--redis-url URL] [--coordination-dir D] [--s3-url s3://b/p]
              [--workers-per-process N]

Without ``--redis-url`` it starts a private redis-server (loopback, random password) for
the run. It writes each Larry's slice of the plan, what its pods would mount
(``{coordination-dir}/plans/<larry>.yaml``; converge reads the directory, the whole plan),
and starts, each as its own OS process through the same entrypoints the pods use:

* one ``larry coordinator`` per Larry: restarted whenever it dies, with the kubelet's
  crash-loop backoff (10 s doubling, scaled by the speed), like a Deployment's pod;
* one ``larry master`` per master of each Larry, beside its coordinator and restarted like it
  (its own Deployment in a cluster): the built-in master, or its agent profile's command;
* one ``larry worker ... -- larry simulate --speed N`` per worker (a worker with an agent
  profile runs the profile's command instead, as its Job would; the command after ``--``
  given to `larry run` replaces both): restarted after a
  non-zero exit up to the Job's backoffLimit (3); exit status 3 (the worker gave up:
  budget, deadline, failed dependency) is final, as a podFailurePolicy rule would make it;
* ``larry converge``, the meta-coordinator Job: it waits at the barriers, then writes the
  summary and the archive.

At fleet size one OS process per worker does not fit a machine (an interpreter each, about
40 MiB and half a second of CPU to start). Above :data:`HOST_THRESHOLD` workers, or with
``--workers-per-process N`` (N > 1; 1 forces a process per worker), the workers that play the
simulated payload run :data:`HOST_SIZE` (or N) to a ``larry worker-host`` process of one
Larry's workers (:mod:`runtime.commands.worker_host`: each worker's own loop in a thread, the
same leases, fences, ledger and events), supervised like a worker (a host that dies is
restarted and its workers take their leases over); workers with an agent profile, or any run
with a command after ``--``, keep a process each. A cluster keeps one pod per worker. A run of
more than :data:`HOST_THRESHOLD` processes starts them :data:`STARTS_PER_CORE` per core and
second (coordinators first), rather than all at once.

It prints the run's progress from the event stream, then the summary's path, and exits 0
when the summary's verdict is SUCCESS (every phase, task and validation check, and every
success metric), 1 otherwise (2 for usage errors, 130 when interrupted). Ctrl+C (or SIGTERM)
stops every process it started and the private Redis.

Before it writes anything it refuses (one line, exit 2) a plan the policy pack would block
for its token budgets (:func:`runtime.reporting.validation.budget_problems`) unless
``--allow-over-budget``, and a Redis and key prefix another `larry run` is using: the run
holds :mod:`runtime.support.run_lock` until it ends. Each run gets a directory of its own
(``.larry-runs/<stack>-<UTC time>-<random>``, created exclusively).

With ``--redis-url``, keys a previous run left there are that run's state, which the
processes resume (a finished run just reports again): use ``--key-prefix``, or ``larry
cleanup`` after archiving, for a fresh run. A password in the URL is moved to
``$LARRY_REDIS_PASSWORD`` (:mod:`runtime.support.credentials`): the processes get it from
the environment only, and it is masked in every message and in ``processes.json``.

Under ``{coordination-dir}``: ``logs/{process}.log``, ``pids/{process}.pid`` (the current
pid, e.g. for chaos tests), ``processes.json`` (metrics ports), and what the processes write
(results, reports, archives). ``--hold`` keeps coordinators and Redis up after the summary
until Ctrl+C, e.g. to scrape /metrics or watch ``larry dashboard`` (``{coordination-dir}/redis/env``
holds the private Redis's URL and password for them).
"""
from __future__ import annotations

import getpass
import json
import logging
import os
import queue
import secrets
import subprocess
import sys
import threading
import time
from argparse import Namespace
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from plan import environment as envvar
from plan.exits import ExitCode
from plan.model import AgentProfile, StackConfig
from plan.pods import WORKER_BACKOFF_LIMIT
from plan.statuses import PhaseStatus, TaskStatus
from runtime.agent.payload import die_with_parent
from runtime.cli import UsageError, add_process_arguments, interrupt_on_sigterm, load_plan, open_redis
from runtime.commands.catalog import local_catalog
from runtime.coordination.escalations import Escalations
from runtime.reporting.progress import ProgressPrinter
from runtime.reporting.schema import ReportError
from runtime.reporting.summary import load_reports, verdict
from runtime.reporting.validation import budget_problems
from runtime.support import timestamps
from runtime.support.credentials import mask_url
from runtime.support.files import write_atomic
from runtime.support.local_redis import LocalRedis
from runtime.support.ports import free_port
from runtime.support.run_lock import RunLock, RunLocked, holder_name
from runtime.support.timing import Timing

#: Kubelet's crash-loop backoff: 10 s, doubling, at most 5 min (scaled by the speed here).
BACKOFF_START, BACKOFF_CAP = 10.0, 300.0
STOP_GRACE = 10.0
#: Up to this many workers, each runs as its own OS process (as its pod would); above it,
#: :data:`HOST_SIZE` simulated workers of one Larry share a `larry worker-host` process.
HOST_THRESHOLD = 64
HOST_SIZE = 20
#: Processes started per second and core when a run starts more than HOST_THRESHOLD: two
#: hundred interpreters importing at once would starve Redis into client timeouts.
STARTS_PER_CORE = 2


def crash_loop_backoff(restarts: int, speed: float) -> float:
    """Seconds before restart number ``restarts`` (from 1) of a process, at ``speed``."""
    return min(BACKOFF_START * 2 ** (restarts - 1), BACKOFF_CAP) / speed


def configure_parser(parser) -> None:
    add_process_arguments(parser, coordination_dir=False)
    parser.add_argument("--coordination-dir", type=Path,
                        help="the run's directory (default .larry-runs/<stack>-<UTC time> under --project-dir)")
    parser.add_argument("--s3-url", default=os.environ.get(envvar.ARCHIVE_S3_URL),
                        help="also upload the archive to s3://bucket/prefix (default $LARRY_ARCHIVE_S3_URL)")
    parser.add_argument("--overspend-task", metavar="TASK",
                        help="make the simulated payload of this task spend 150 %% of its budget")
    parser.add_argument("--hold", action="store_true",
                        help="keep coordinators and Redis running after the summary, until Ctrl+C")
    parser.add_argument("--allow-over-budget", action="store_true",
                        help="run a plan the policy pack would block for its token budgets")
    parser.add_argument("--workers-per-process", type=int, default=0, metavar="N",
                        help=f"simulated workers per OS process (default: 1 up to {HOST_THRESHOLD} workers, "
                             f"else {HOST_SIZE}, in `larry worker-host` processes of one Larry each)")
    parser.add_argument("--approve", action="store_true",
                        help="the operator's sign-off of a plan that requires one (as `larry approve run`)")


EXAMPLES = """\
examples:
  larry run --stack dev --speed 60
  larry run --stack dev --approve                   # the sign-off of a plan with larry:approval required
  larry run --stack dev --speed 600 --hold          # then: larry dashboard, larry status
  LARRY_REDIS_PASSWORD=... larry run --stack dev --redis-url redis://redis:6379/0 --key-prefix run7:
  larry run --stack cortex --speed 600 --allow-over-budget --s3-url s3://bucket/runs
  larry run --stack dev --speed 60 -- my-agent --task-from-env      # every worker runs my-agent
"""


@dataclass
class Child:
    name: str
    argv: list[str]
    kind: str  # coordinator | master | worker | converge
    restarts: int = 0
    proc: subprocess.Popen | None = None
    done: bool = False
    exit_codes: list[int] = field(default_factory=list)


def larry_command() -> list[str]:
    """The console script the pods run, from this interpreter's environment."""
    script = Path(sys.executable).with_name("larry")
    return [str(script)] if script.exists() else [sys.executable, "-m", "runtime.cli"]


def payload_command(speed: float, overspend_task: str | None, tasks: list[str], payload: list[str],
                    profile: AgentProfile | None = None) -> list[str]:
    """What each worker runs after ``--``: the command given to `larry run` after its own
    ``--`` (the agent); else nothing for a worker with an agent profile (`larry worker` runs
    the profile's command, placeholders expanded, metered by its adapter, as in a cluster);
    else the simulated payload."""
    if payload:
        return payload
    if profile is not None:
        return []
    simulate = larry_command() + ["simulate", "--speed", f"{speed:g}"]
    if overspend_task not in tasks:
        return simulate
    # The payload is any command: this one picks the overspending variant by the task the
    # worker gives it in $LARRY_TASK_ID.
    script = 'task=$1; shift; if [ "$LARRY_TASK_ID" = "$task" ]; then exec "$@" --overspend; fi; exec "$@"'
    return ["sh", "-c", script, "payload", overspend_task, *simulate]


def hosted_groups(hosted: dict[str, tuple[str, int]]) -> dict[tuple[str, int], list[str]]:
    """(Larry, host number) -> its workers, in plan order."""
    groups: dict[tuple[str, int], list[str]] = {}
    for name, host in hosted.items():
        groups.setdefault(host, []).append(name)
    return groups


def main(args) -> int:
    cfg = load_plan(args)
    if args.workers_per_process < 0:
        raise UsageError(f"--workers-per-process {args.workers_per_process}: expected 1 or more (0: automatic)")
    # The stack's run id names the run here as in the cluster, unless --key-prefix says otherwise.
    args.key_prefix = args.key_prefix or cfg.key_prefix
    if args.overspend_task and args.overspend_task not in {t.id for larry in cfg.larrys for t in larry.tasks}:
        raise UsageError(f"--overspend-task: {args.overspend_task!r} is not a task of {cfg.source}")
    if args.overspend_task and args.payload:
        raise UsageError("--overspend-task plays the simulated payload; it cannot go with a payload after --")
    agent = next((cfg.agent_of(w) for _, w in cfg.workers if args.overspend_task in {t.id for t in w.tasks}), None)
    if args.overspend_task and agent is not None:
        raise UsageError(f"--overspend-task plays the simulated payload; {args.overspend_task} runs agent profile "
                         f"{agent.name!r}")
    problems = budget_problems(cfg)
    if problems and not args.allow_over_budget:
        raise UsageError(f"{cfg.source}: the policy pack would block this plan ({'; '.join(problems)}); "
                         "pass --allow-over-budget to run it anyway")
    run_dir = new_run_dir(args, cfg)
    interrupt_on_sigterm()
    lock = local = None
    try:
        if args.redis_url:  # a shared Redis: refuse before anything is written
            lock = take_run_lock(args, cfg, os.environ, run_dir)
        run_dir.mkdir(parents=True, exist_ok=args.coordination_dir is not None)
        if lock is None:
            local = LocalRedis(run_dir / "redis").start()
            lock = take_run_lock(args, cfg, local.environment(), run_dir)
        return Supervisor(cfg, args, run_dir, local).run()
    finally:
        if lock is not None:
            lock.release()
        if local is not None:
            local.stop()


def new_run_dir(args, cfg: StackConfig) -> Path:
    """--coordination-dir, or a new ``.larry-runs/<stack>-<UTC time>-<random>`` (not created yet)."""
    if args.coordination_dir:
        return Path(args.coordination_dir).resolve()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return (args.project_dir / ".larry-runs" / f"{cfg.stack}-{stamp}-{secrets.token_hex(3)}").resolve()


def take_run_lock(args, cfg: StackConfig, env, run_dir: Path) -> RunLock:
    """The run's lock on its Redis and key prefix; UsageError naming the holder if another run has it."""
    r, ks = open_redis(Namespace(redis_url=args.redis_url, key_prefix=args.key_prefix), cfg, env=env)
    try:
        return RunLock(r, ks.run_lock, holder_name(run_dir)).acquire()
    except RunLocked as locked:
        where = mask_url(args.redis_url) or "the run's Redis"
        raise UsageError(f"refusing: {locked} at {where}, key prefix {args.key_prefix!r}; use another "
                         "--key-prefix or wait for it to end") from None


class Supervisor:
    def __init__(self, cfg: StackConfig, args, run_dir: Path, local: LocalRedis | None):
        self.cfg, self.args, self.run_dir, self.local = cfg, args, run_dir, local
        self.timing = Timing.from_env(args.speed)
        self.started = time.monotonic()
        self.exits: queue.Queue = queue.Queue()
        self.pending_restarts: list[tuple[float, Child]] = []
        self.env = self._environment()
        self.children = self._children()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def _environment(self) -> dict[str, str]:
        run = {envvar.KEY_PREFIX: self.args.key_prefix, envvar.SPEED: f"{self.args.speed:g}",
               envvar.DEADLINE_ALLOWANCE: f"{self.timing.allowance:g}"}
        env = self.local.environment(run) if self.local is not None else {**os.environ, **run,
                                                                          envvar.REDIS_URL: self.args.redis_url}
        env.pop(envvar.REDIS_SENTINELS, None)
        env.update({envvar.COORDINATION_DIR: str(self.run_dir), "PYTHONUNBUFFERED": "1",
                    envvar.LOG_LEVEL: logging.getLevelName(logging.getLogger().getEffectiveLevel())})
        # An agent profile's `larry ...` command (the stacks' inventory profile) finds this
        # environment's console script first, as the pods find the image's.
        env["PATH"] = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), env.get("PATH")]))
        if self.local is not None:
            self.local.write_env(run)  # for `larry dashboard` and `larry status` beside a held run
        return env

    def _children(self) -> dict[str, Child]:
        # As in the cluster: a Larry's processes read its slice, converge every slice.
        plans = self.run_dir / "plans"
        for larry_id, text in self.cfg.slice_documents().items():
            write_atomic(plans / f"{larry_id}.yaml", text)
        larry, speed = larry_command(), f"{self.args.speed:g}"
        common = ["--coordination-dir", str(self.run_dir), "--speed", speed]
        self.ports = {each.id: free_port() for each in self.cfg.larrys}
        children = [Child(f"coordinator-{each.id}", larry + [
            "coordinator", "--plan", str(plans / f"{each.id}.yaml"), *common, "--larry", each.id,
            "--host", "127.0.0.1", "--port", str(self.ports[each.id])], "coordinator") for each in self.cfg.larrys]
        children += [Child(f"master-{each.id}-{master.name}", larry + [
            "master", "--plan", str(plans / f"{each.id}.yaml"), *common, "--larry", each.id,
            "--master", master.name, "--kill-grace", "2"], "master") for each in self.cfg.larrys for master in each.masters]
        if self.cfg.catalog.enabled:  # restarted whatever its exit, like the coordinators' Deployment pods
            self.env[envvar.CATALOG_URL], serve = local_catalog(self.cfg.catalog, self.args.project_dir)
            children.append(Child("catalog", larry + serve, "coordinator"))
        hosted = self.hosted()
        for each, worker in self.cfg.workers:
            if worker.name in hosted:
                continue
            payload = payload_command(self.args.speed, self.args.overspend_task, [t.id for t in worker.tasks],
                                      self.args.payload, self.cfg.agent_of(worker))
            children.append(Child(f"worker-{worker.name}", larry + [
                "worker", "--plan", str(plans / f"{each.id}.yaml"), *common, "--larry", each.id,
                "--worker", worker.name, "--kill-grace", "2", *(["--", *payload] if payload else [])], "worker"))
        overspend = ["--overspend-task", self.args.overspend_task] if self.args.overspend_task else []
        for (larry_id, index), names in hosted_groups(hosted).items():
            # A host is supervised like a worker's Job: its exit is its workers' (0 or 3), or a crash.
            children.append(Child(f"worker-host-{larry_id}-{index}", larry + [
                "worker-host", "--plan", str(plans / f"{larry_id}.yaml"), *common, "--larry", larry_id,
                "--workers", ",".join(names), "--kill-grace", "2", *overspend], "worker"))
        converge = larry + ["converge", "--plan", str(plans), *common] \
            + (["--s3-url", self.args.s3_url] if self.args.s3_url else []) \
            + (["--private-redis"] if self.local is not None else [])
        children.append(Child("converge", converge, "converge"))
        write_atomic(self.run_dir / "processes.json", json.dumps({
            "redis": (self.local.url if self.local else mask_url(self.args.redis_url)),
            "coordinators": {lid: {"metrics": f"http://127.0.0.1:{port}/metrics"} for lid, port in self.ports.items()},
            **({"catalog": {"metrics": self.env[envvar.CATALOG_URL].replace("/graphql", "/metrics")}}
               if self.cfg.catalog.enabled else {}),
        }, indent=2) + "\n")
        return {child.name: child for child in children}

    def hosted(self) -> dict[str, tuple[str, int]]:
        """Workers that run in a worker host -> (their Larry, their host's number in it): with
        more than one worker per process, every worker that plays the simulated payload (no
        command after ``--``, no agent profile), in hosts of one Larry's workers."""
        per_process = self.args.workers_per_process or (1 if len(self.cfg.workers) <= HOST_THRESHOLD else HOST_SIZE)
        if per_process <= 1 or self.args.payload:
            return {}
        hosted: dict[str, tuple[str, int]] = {}
        for each in self.cfg.larrys:
            simulated = [w.name for w in each.workers if self.cfg.agent_of(w) is None]
            hosted.update((name, (each.id, i // per_process)) for i, name in enumerate(simulated))
        return hosted

    # ------------------------------------------------------------------ processes
    def start(self, child: Child) -> None:
        logs, pids = self.run_dir / "logs", self.run_dir / "pids"
        logs.mkdir(exist_ok=True)
        pids.mkdir(exist_ok=True)
        with open(logs / f"{child.name}.log", "a") as log:
            log.write(f"--- start {child.restarts + 1} at {timestamps.now()}\n")
            log.flush()
            # Own session: the terminal's Ctrl+C reaches only this supervisor, which stops
            # the children in order.
            child.proc = subprocess.Popen(child.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=self.env, start_new_session=True, preexec_fn=die_with_parent)
        write_atomic(pids / f"{child.name}.pid", f"{child.proc.pid}\n")
        proc = child.proc
        threading.Thread(target=lambda: self.exits.put((child, proc, proc.wait())), daemon=True,
                         name=f"wait-{child.name}").start()

    def stop_all(self) -> None:
        running = [c.proc for c in self.children.values() if c.proc and c.proc.poll() is None]
        for proc in running:
            proc.terminate()
        until = time.monotonic() + STOP_GRACE
        for proc in running:
            try:
                proc.wait(max(0.1, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def exited(self, child: Child, code: int) -> None:
        """Handle an exit the way the cluster would: final, or a restart (with backoff)."""
        child.exit_codes.append(code)
        # A Deployment (coordinator, master) restarts its pod whatever the exit status; a Job stops on success and,
        # here, on the statuses that say a retry cannot help.
        final = {"worker": code in (ExitCode.OK, ExitCode.GAVE_UP),
                 "converge": code in (ExitCode.OK, ExitCode.USAGE)}.get(child.kind, False)
        if final or (child.kind in ("worker", "converge") and child.restarts >= WORKER_BACKOFF_LIMIT):
            child.done = True
            if code:
                why = "gave up" if final else f"reached backoffLimit {WORKER_BACKOFF_LIMIT}"
                self.say(f"{child.name} exited with status {code} and {why}; not restarted")
            return
        child.restarts += 1
        delay = crash_loop_backoff(child.restarts, self.args.speed)
        limit = "" if child.kind in ("coordinator", "master") else f"/{WORKER_BACKOFF_LIMIT}"
        self.say(f"{child.name} exited with status {code}; restart {child.restarts}{limit} in {delay:.2f}s")
        self.pending_restarts.append((time.monotonic() + delay, child))

    # ------------------------------------------------------------------ the run
    def run(self) -> int:
        self.say(f"running {self.cfg.stack}: {len(self.cfg.larrys)} Larrys, {len(self.cfg.workers)} workers, "
                 f"speed ×{self.args.speed:g}; run directory {self.run_dir}")
        # The supervisor's own connection, with the children's URL and password.
        r, ks = open_redis(Namespace(redis_url=None, key_prefix=self.args.key_prefix), self.cfg, env=self.env)
        printer = ProgressPrinter(self.cfg, r, ks, self.say).start()
        if self.args.approve:  # the printer says so, from the run_approved event
            Escalations(r, ks).approve_run(f"{getpass.getuser()} (larry run --approve)",
                                           [larry.id for larry in self.cfg.larrys])
        elif self.cfg.approval.required:
            self.say("the plan requires an operator's sign-off: no task starts before `larry approve run`")
        try:
            pace = 1 / (STARTS_PER_CORE * (os.cpu_count() or 1)) if len(self.children) > HOST_THRESHOLD else 0
            for child in self.children.values():
                self.start(child)
                time.sleep(pace)
            converged = self._supervise()
            printer.flush()
            return self._finish(converged)
        except KeyboardInterrupt:
            self.say(f"interrupted: stopping the run's processes; what they wrote is in {self.run_dir}")
            raise
        finally:
            printer.stop()
            self.stop_all()

    def _supervise(self) -> bool:
        """Until converge has exited; True if it succeeded."""
        until = self.started + self.timing.deadline(self.cfg.execution_window_minutes) + self.timing.allowance
        while True:
            now = time.monotonic()
            for due, child in [p for p in self.pending_restarts if p[0] <= now]:
                self.pending_restarts.remove((due, child))
                self.start(child)
            if now >= until:
                self.say("the run exceeded its execution window; stopping")
                return False
            wake = min([due for due, _ in self.pending_restarts] + [until])
            try:
                child, proc, code = self.exits.get(timeout=max(0.01, wake - now))
            except queue.Empty:
                continue
            if proc is not child.proc:
                continue  # an exit we caused while replacing it
            self.exited(child, code)
            if child.kind == "converge" and child.done:
                return code == 0

    def _finish(self, converged: bool) -> int:
        ok = converged and self._plan_succeeded()
        summary = next((self.run_dir / "reports").glob("*-LARRY-EXECUTION-SUMMARY.md"), None) \
            if (self.run_dir / "reports").is_dir() else None
        if self.args.hold and summary:
            try:
                for lid, port in self.ports.items():
                    self.say(f"{lid} metrics: http://127.0.0.1:{port}/metrics")
                self.say("holding: coordinators and Redis stay up until Ctrl+C")
                if self.local is not None:
                    self.say(f"to reach this run's Redis: set -a; . {self.local.env_file}; set +a")
                print(f"summary: {summary}", flush=True)
                threading.Event().wait()
            except KeyboardInterrupt:
                return ExitCode.OK if ok else ExitCode.FAILED
        self.say("plan completed" if ok else "plan FAILED (see the summary and logs/)")
        if summary:
            print(f"summary: {summary}", flush=True)
        return ExitCode.OK if ok else ExitCode.FAILED

    def _plan_succeeded(self) -> bool:
        """The summary's verdict: every success metric met (phases, tasks, validation checks,
        the execution window, the token utilisation target)."""
        try:
            reports = load_reports(self.cfg, self.run_dir / "reports")
        except ReportError as error:
            self.say(str(error))
            return False
        unmet = verdict(self.cfg, reports, self.timing.allowance, root=self.run_dir)
        for report in reports:
            failed = [c["check"] for c in report["validation"] if not c["passed"]]
            unfinished = [t["id"] for t in report["tasks"] if t["status"] != TaskStatus.COMPLETED]
            if report["status"] != PhaseStatus.COMPLETED or failed or unfinished:
                self.say(f"{report['larry']}: phase {report['status']}; tasks not completed: "
                         f"{', '.join(unfinished) or 'none'}; failed checks: {', '.join(failed) or 'none'}")
        if unmet:
            self.say(f"success metrics not met: {'; '.join(unmet)}")
        return not unmet
