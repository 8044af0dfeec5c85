"""`larry coordinator`: one Larry's coordinator (the Deployment's pod).

::

    larry coordinator --plan /etc/larry/plan.yaml --larry larry-01 --port 9100

1. Initialises its Larry's Redis state, each step only if it is not there yet, so a
   restarted coordinator resumes instead of starting over: the tasks and their
   dependencies, the phase status, the ledger's limits of its Larry's accounts (the Larry's
   ``tokenBudget``, its masters' personal tokens and pools, its workers) and of the shared
   ones (system, meta-coordinator, emergency reserve); then starts the phase (``phase_started``).
2. Serves /metrics (:class:`runtime.reporting.metrics.CoordinatorMetrics`) and /healthz.
3. Follows the event stream from its first entry (:class:`runtime.reporting.history.History`), and
   every heartbeat interval looks after its workers: a worker silent past the grace is
   reaped (``worker_dead``) and its orphaned tasks are put back to ``pending``
   (``task_requeued``). It raises the phase's progress (``progress_update``) as tasks
   complete, and pauses / resumes the workers a ``critical_cve`` alert names. Its Larry's
   masters are processes of their own (:mod:`runtime.commands.master`): the coordinator never
   waits on them while the phase runs, but declares one silent past ``--master-grace`` and
   hands its pending tasks over (:mod:`runtime.coordination.masters`), keeps ``handoffs.json``
   current, announces ``DEPENDENCY_MET`` / ``RESOURCE_CONFLICT`` (:mod:`runtime.coordination.notices`),
   and (the first three Larrys' coordinators) records raw PUBLISHes on the seeds' channels on the
   stream (:mod:`runtime.coordination.bridge`).
4. Ends the phase: ``completed`` when every task completed; ``failed`` as soon as every
   task has either finished or can never run (a dependency failed for good, its worker
   gave up), or when the phase deadline passes (``deadlineMinutes * 60 / speed`` plus the
   allowance of :mod:`runtime.support.timing`, counted from the phase's start in Redis).
5. Arrives at the ``convergence`` barrier and waits for every Larry, gives its masters up to
   :data:`MASTER_REPORT_HEARTBEATS` heartbeats to write their reports (a master still down then
   is reported by the coordinator: ``reported_by: coordinator``), runs its Phase 4 validation (:mod:`runtime.reporting.validation`), writes ``{coordination-dir}/reports/{larry}-final.json``
   (:mod:`runtime.reporting.larry_report`) and arrives at the ``reports`` barrier, which is what
   ``larry converge`` waits for.
6. Keeps serving /metrics with the final figures until SIGTERM, as a Deployment's pod must
   (exiting would only get it restarted); ``--once`` exits 0 instead.

Guaranteed: every step is idempotent against Redis state, so a coordinator killed at any
point and restarted ends the phase once, with the same outcome. Not guaranteed: that a
worker it pauses stops at once (a pause takes effect between tasks), or that a report is
written when Redis stays away past the client's retry window (the process exits 1 and its
restart resumes).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time

import redis

from plan import environment as envvar
from plan.exits import ExitCode
from plan.model import Larry, StackConfig, larry_of_account
from plan.statuses import RUNNING, TERMINAL, PhaseStatus, TaskStatus, WorkerStatus
from plan.taskgraph import TaskGraph
from runtime.cli import UsageError, add_process_arguments, hold, interrupt_on_sigterm, larry_of, load_plan, open_redis
from runtime.coordination.barrier import Barrier, BarrierTimeout
from runtime.coordination.bridge import ChannelBridge, bridging_larrys
from runtime.coordination.events import EventListener, EventLog
from runtime.coordination.keys import CONVERGENCE_BARRIER, REPORTS_BARRIER
from runtime.coordination.ledger import Ledger
from runtime.coordination.masters import MasterWatch
from runtime.coordination.notices import Notices
from runtime.coordination.phases import PhaseTracker
from runtime.coordination.registry import WorkerRegistry
from runtime.coordination.schema import MasterBoard
from runtime.coordination.tasks import TaskBoard, queue_entries
from runtime.reporting.history import History
from runtime.reporting.larry_report import build_report
from runtime.reporting.metrics import CoordinatorMetrics, OrchestrationCollector, serve
from runtime.reporting.results import results_dir
from runtime.reporting.schema import write_larry_report
from runtime.support import callstats
from runtime.support.timestamps import parse
from runtime.support.timing import Timing

log = logging.getLogger(__name__)

DEFAULT_PORT = 9100
#: Seconds between metric refreshes while the phase runs (Prometheus scrapes every 15-30 s);
#: the final figures are set when the phase ends and after the report.
METRICS_INTERVAL = 5.0
#: Heartbeats the coordinator waits, after the barrier, for its masters' reports (a master
#: restarted after a crash has that long to come back and report).
MASTER_REPORT_HEARTBEATS = 6

def configure_parser(parser) -> None:
    add_process_arguments(parser)
    parser.add_argument("--larry", default=os.environ.get(envvar.LARRY_ID), help="the Larry to coordinate (default $LARRY_ID)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port of /metrics and /healthz (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--host", default="0.0.0.0", help="address of /metrics and /healthz (default all)")
    parser.add_argument("--once", action="store_true", help="exit once the final report is written")
    parser.add_argument("--master-grace", type=float, default=None, metavar="SECONDS",
                        help="a master silent this long is declared silent and its pending tasks handed over "
                             "(default: a worker's grace, three heartbeats and at least 5 s)")


def main(args) -> int:
    cfg = load_plan(args)
    larry = larry_of(cfg, args.larry)
    callstats.install(f"coordinator-{larry.id}")
    r, ks = open_redis(args, cfg)
    interrupt_on_sigterm()
    if args.master_grace is not None and not args.master_grace > 0:
        raise UsageError(f"--master-grace must be a positive number of seconds, got {args.master_grace:g}")
    coordinator = Coordinator(cfg, larry, r, ks, Timing.from_env(args.speed), args.coordination_dir,
                              master_grace=args.master_grace)
    try:
        server = serve(coordinator.metrics.registry, args.port, coordinator.healthy, host=args.host)
    except OSError as error:
        raise UsageError(f"cannot serve /metrics on {args.host}:{args.port} ({error.strerror or error})") from None
    coordinator.log(f"serving /metrics and /healthz on port {server.server_port}")
    bridging = threading.Event()  # raw PUBLISHes on the seeds' channels reach the stream
    if larry.id in bridging_larrys(cfg.larry_ids):
        ChannelBridge(r, ks).start(bridging)
    try:
        coordinator.run()
    except redis.exceptions.RedisError as error:
        log.error("larry coordinator: %s: lost Redis (%s); a restart resumes from Redis state", larry.id, error)
        return ExitCode.FAILED
    try:
        return hold(args.once)
    finally:
        bridging.set()
        server.shutdown()


class Coordinator:
    def __init__(self, cfg: StackConfig, larry: Larry, r, ks, timing: Timing, coordination_dir, *,
                 master_grace: float | None = None):
        self.cfg, self.larry, self.r, self.ks, self.timing = cfg, larry, r, ks, timing
        self.coordination_dir = coordination_dir
        self.metrics = CoordinatorMetrics(OrchestrationCollector(r, ks, larry, timing))
        self.phase = PhaseTracker(r, ks, larry.id)
        self.board = TaskBoard(r, ks)
        self.ledger = Ledger.for_plan(r, ks, cfg)
        self.registry = WorkerRegistry(r, ks, grace_ms=timing.dead_after_ms)
        self.masters = MasterBoard(r, ks, self.ledger, trigger=cfg.budget.reserve_trigger)
        self.master_watch = MasterWatch(r, ks, cfg, grace=master_grace or timing.dead_after_ms / 1000)
        self._handoffs_written = 0
        self.notices = Notices(r, ks, cfg, larry)
        everyone = list(cfg.larry_ids)  # a slice holds its own Larry; the index names them all
        self.convergence = Barrier(r, ks, CONVERGENCE_BARRIER, everyone)
        self.reports = Barrier(r, ks, REPORTS_BARRIER, everyone)
        self.history = History(larry, ks)
        self.graph = TaskGraph(cfg)
        self.own = [t.id for t in larry.tasks]
        # Who may run each task: the worker the plan lists it under, or in queue assignment
        # every worker of its queue.
        self.takers: dict[str, list[str]] = {}
        for worker in larry.workers:
            for task in cfg.takes(larry, worker):
                self.takers.setdefault(task.id, []).append(worker.name)
        self._alive_at = time.monotonic()
        self._converging = False
        self._requeued_seen = 0
        self.report: dict | None = None

    def log(self, text: str) -> None:
        """The coordinator's narrative: its output (stdout), what ``kubectl logs`` and the run's log show."""
        print(f"{self.larry.id}: {text}", flush=True)

    def healthy(self) -> bool:
        """Alive while the loop keeps coming round (it wakes at least every heartbeat interval),
        and from the barrier on, where waiting for the other Larrys is its job."""
        return self._converging or time.monotonic() - self._alive_at < max(30.0, 6 * self.timing.heartbeat)

    # ------------------------------------------------------------------ lifecycle
    def initialise(self) -> None:
        larry = self.larry
        self.board.define(larry.id, {t.id: t.depends_on for t in larry.tasks}, queue_entries(larry),
                          [w.name for w in larry.workers])
        self.ledger.open(name for name in self.ledger.accounts
                         if larry_of_account(self.ledger.accounts, name) in (None, larry.id))
        self.phase.init()
        started = self.phase.start()
        self.log("phase started" if started == "started" else f"resuming: phase {started}")

    def run(self) -> dict:
        self.initialise()
        outcome = self.follow()
        if outcome:
            status, message = outcome
            (self.phase.complete if status == PhaseStatus.COMPLETED else self.phase.fail)(message)
            self.log(f"phase {status}: {message}")
        self.masters.refresh(self.larry, self._statuses()[0])
        self.update_metrics()
        self.converge()
        return self.report

    def follow(self) -> tuple[str, str] | None:
        """Fold the stream, tend the workers, until the phase can end; the (status, message) to
        end it with, or None when it had already ended (a restarted coordinator)."""
        # The history first, then act once on its net effect; then follow from where it ended.
        # The run's stream and the Larry's own: its tasks' and workers' events are on the latter.
        mine = (self.larry.id,)
        events = EventLog(self.r, self.ks)
        tails = events.tails(events.streams(mine))
        past = events.history(until=tails, larrys=mine)
        self.history.add(past)
        self.notices.conflicts(past)
        listener = EventListener(self.r, self.ks, tails, larrys=mine)
        phase = self.phase.snapshot()
        if phase["status"] in TERMINAL:  # only this coordinator ends its phase: checked once
            return None
        deadline = self._deadline(phase["started_at"])
        progress, next_tick, next_metrics, touched = phase["progress"], 0.0, 0.0, True
        while True:
            now = self._alive_at = time.monotonic()
            self.apply_pauses()
            tick = now >= next_tick
            if now >= next_metrics:
                self.update_metrics()
                next_metrics = now + METRICS_INTERVAL
            if tick or touched:
                statuses, workers = self.heartbeat() if tick else self._statuses()
                if tick:
                    next_tick = now + self.timing.heartbeat
                    self.watch_masters()
                self.notices.dependencies(statuses)
                progress = self._raise_progress(statuses, progress)
                outcome = self.outcome(deadline, statuses, workers)
                if outcome:
                    return outcome
            wait = max(0.001, min(next_tick, deadline) - time.monotonic())
            new = listener.poll(block_ms=max(1, int(wait * 1000)))
            self.notices.conflicts(new)
            touched = self.history.add(new)

    def heartbeat(self) -> tuple[dict, dict]:
        """One heartbeat's care of the workers (reap the silent, re-queue their tasks, the
        masters' figures); the statuses it read, as :meth:`_statuses`. Its Redis work is its
        own Larry's tasks and workers (and the tasks they wait for), whatever the fleet's size."""
        self.reap_dead_workers()
        statuses, workers = self._statuses()
        self.requeue_orphans(workers)
        self.masters.refresh(self.larry, statuses)
        return statuses, workers

    def _deadline(self, started_at: str) -> float:
        """The phase deadline on this process's monotonic clock, from the start time in Redis."""
        seconds, micros = self.r.time()
        elapsed = seconds + micros / 1e6 - parse(started_at).timestamp()
        return time.monotonic() - elapsed + self.timing.deadline(self.larry.deadline_minutes)

    def _statuses(self) -> tuple[dict, dict]:
        """(every task of the stack -> status, own worker -> registry status), one round trip."""
        pipe = self.r.pipeline(transaction=False)
        pipe.mget([self.ks.task_status(t) for t in self.graph.ids])
        pipe.mget([self.ks.worker_status(w.name) for w in self.larry.workers])
        tasks, workers = pipe.execute()
        return dict(zip(self.graph.ids, tasks)), dict(zip((w.name for w in self.larry.workers), workers))

    def outcome(self, deadline: float, statuses: dict | None = None, workers: dict | None = None
                ) -> tuple[str, str] | None:
        """How the phase ends, if that is known now: (status, message), else None."""
        if statuses is None or workers is None:
            statuses, workers = self._statuses()
        own = {t: statuses[t] for t in self.own}
        done = sum(s == TaskStatus.COMPLETED for s in own.values())
        if done == len(own):
            return PhaseStatus.COMPLETED, f"all {done} tasks completed"
        doomed = self.graph.doomed(statuses)
        unfinished = [t for t, s in own.items() if s not in TERMINAL]
        # Never to run: a dependency failed for good, or the worker gave up before claiming it.
        stuck = [t for t in unfinished
                 if t in doomed or (all(workers[w] == WorkerStatus.FAILED for w in self.takers[t])
                                    and own[t] != TaskStatus.IN_PROGRESS)]
        if len(stuck) == len(unfinished):
            failed = [t for t, s in own.items() if s == TaskStatus.FAILED]
            return PhaseStatus.FAILED, (f"{done}/{len(own)} tasks completed; failed: {', '.join(failed) or 'none'}; "
                              f"cannot run: {', '.join(stuck) or 'none'}")
        if time.monotonic() >= deadline:
            return PhaseStatus.FAILED, (f"deadline passed ({self.larry.deadline_minutes} plan minutes at speed "
                              f"{self.timing.speed:g}) with {done}/{len(own)} tasks completed")
        return None

    def _raise_progress(self, statuses: dict, current: int) -> int:
        done = sum(statuses[t] == TaskStatus.COMPLETED for t in self.own)
        percent = 100 * done // len(self.own)
        if percent > current:
            return self.phase.progress(percent, f"{done}/{len(self.own)} tasks completed")
        return current

    # ------------------------------------------------------------------ workers
    def reap_dead_workers(self) -> None:
        """Mark this Larry's workers silent past the grace ``dead`` (a ``worker_dead`` alert)."""
        own = {w.name for w in self.larry.workers}
        for worker in self.registry.dead():
            if worker in own and self.registry.reap(worker):
                self.log(f"worker {worker} is dead (no heartbeat for {self.timing.dead_after_ms} ms)")

    def requeue_orphans(self, workers: dict) -> None:
        """Put the orphaned tasks of workers marked dead back to pending (in queue assignment
        any task of the dead worker's queue may be one: only an orphaned one is re-queued)."""
        for worker in (w for w in self.larry.workers if workers.get(w.name) == WorkerStatus.DEAD):
            for task in self.cfg.takes(self.larry, worker):
                if self.board.requeue(self.larry.id, task.id, worker.name):
                    self.log(f"re-queued {task.id} of dead worker {worker.name}")

    def watch_masters(self) -> None:
        """Declare its masters silent past the grace and hand their pending tasks over; keep
        ``handoffs.json`` current (:mod:`runtime.coordination.masters`, :mod:`~runtime.coordination.handoffs`)."""
        declared, requested = self.master_watch.check(self.larry)
        for master in declared:
            self.log(f"master {master} is silent (no heartbeat for {self.master_watch.grace:g} s)")
        for task, silent, target in requested:
            self.log(f"handing {task} of silent master {silent} over to {target}")
        handoffs = self.master_watch.handoffs
        if (version := handoffs.version()) != self._handoffs_written:
            handoffs.write_file(self.coordination_dir)
            self._handoffs_written = version

    def apply_pauses(self) -> None:
        requests, self.history.pause_requests = self.history.pause_requests, {}
        for worker, reason in requests.items():
            if reason is not None and self.registry.pause(self.larry.id, worker, reason):
                self.log(f"paused {worker}: {reason}")
            elif reason is None and self.registry.resume(self.larry.id, worker):
                self.log(f"resumed {worker}")

    # ------------------------------------------------------------------ metrics
    def update_metrics(self) -> None:
        m, lid = self.metrics, self.larry.id
        statuses, _ = self._statuses()
        own = [statuses[t] for t in self.own]
        snapshot = self.phase.snapshot()
        ledger = self.ledger.snapshot(self.larry.id)
        m.phase_progress.labels(lid).set(snapshot["progress"])
        m.tasks_completed.labels(lid).set(own.count(TaskStatus.COMPLETED))
        m.tasks_failed.labels(lid).set(own.count(TaskStatus.FAILED))
        m.tokens_used.labels(lid).set(ledger["committed"])
        m.tokens_reserved.labels(lid).set(ledger["reserved"])
        m.tokens_limit.labels(lid).set(ledger["limit"] + ledger["emergency"])
        m.emergency_drawn.labels(lid).set(ledger["emergency"])
        m.lease_conflicts.labels(lid).set(self.history.conflicts)
        m.worker_restarts.labels(lid).set(sum(self.history.restarts(w.name) for w in self.larry.workers))
        new = len(self.history.requeued) - self._requeued_seen
        if new > 0:
            m.tasks_requeued.labels(lid).inc(new)
            self._requeued_seen += new
        # Its own workers' beats only: the registry holds the whole fleet's.
        names = [w.name for w in self.larry.workers]
        beats = self.r.zmscore(self.ks.worker_heartbeats, names) if names else []
        beating = {w for w, beat in zip(names, beats) if beat is not None} - set(self.registry.dead())
        active = {w.node: 0 for w in self.larry.workers}
        for worker in self.larry.workers:
            active[worker.node] += worker.name in beating
        for node, count in active.items():
            m.workers_active.labels(lid, node).set(count)

    # ------------------------------------------------------------------ Phase 4
    def converge(self) -> None:
        self._converging = True
        self.convergence.arrive(self.larry.id)
        waited = time.monotonic()
        window = self.timing.deadline(self.cfg.execution_window_minutes)
        try:
            self.convergence.wait(window)
            self.metrics.barrier_passed.labels(self.larry.id).set(1)
        except BarrierTimeout as timeout:
            self.log(f"{timeout}; reporting anyway")
        self.metrics.barrier_wait.labels(self.larry.id).observe(time.monotonic() - waited)
        self._await_sign_offs()
        self._await_master_reports()
        self.report = self.build_report()
        path = write_larry_report(os.path.join(self.coordination_dir, "reports"), self.report)
        # In a cluster each Larry's volume lives in its own namespace, where the converge Job
        # cannot mount it: the report also goes to Redis before the reports barrier.
        self.r.set(self.ks.phase_report(self.larry.id), json.dumps(self.report))
        self.update_metrics()
        self.reports.arrive(self.larry.id)
        passed = sum(check["passed"] for check in self.report["validation"])
        self.log(f"final report {path}: phase {self.report['status']}, "
                 f"validation {passed}/{len(self.report['validation'])} checks passed")

    def _await_sign_offs(self) -> None:
        """Give workers still registered as running (they finish right after their last task)
        a couple of heartbeats to sign off, so the report has their final status."""
        listener = EventListener(self.r, self.ks, "$", larrys=(self.larry.id,))
        until = time.monotonic() + 2 * self.timing.heartbeat
        while (left := until - time.monotonic()) > 0:
            if not [w for w, s in self._statuses()[1].items() if s in RUNNING]:
                return
            listener.poll(block_ms=max(1, int(left * 1000)))

    def _master_reports(self) -> dict[str, dict | None]:
        raw = self.r.mget([self.ks.master_report(self.larry.id, m.name) for m in self.larry.masters]) \
            if self.larry.masters else []
        return {m.name: json.loads(text) if text else None for m, text in zip(self.larry.masters, raw)}

    def _await_master_reports(self) -> None:
        """Give the masters (they report once they see the phase ended) a few heartbeats; one
        still down after that is reported by the coordinator."""
        listener = EventListener(self.r, self.ks, "$", larrys=(self.larry.id,))
        until = time.monotonic() + MASTER_REPORT_HEARTBEATS * self.timing.heartbeat
        while (missing := [m for m, report in self._master_reports().items() if report is None]):
            if (left := until - time.monotonic()) <= 0:
                self.log(f"no report from master {', '.join(missing)}; the coordinator reports its figures")
                return
            listener.poll(block_ms=max(1, int(left * 1000)))

    def build_report(self) -> dict:
        statuses, workers = self._statuses()
        return build_report(
            self.cfg, self.larry, phase=self.phase.snapshot(), statuses=statuses,
            results={t: self.board.result(t) for t in self.own}, ledger=self.ledger.snapshot(self.larry.id),
            accounts=self.ledger.accounts_of(self.larry.id), workers=workers, history=self.history,
            speed=self.timing.speed, planned_seconds=self.timing.scaled(self.larry.deadline_minutes),
            results_dir=results_dir(self.coordination_dir, self.larry.id), masters=self._master_reports())
