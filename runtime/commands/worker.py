"""`larry worker`: the process of one worker Job.

::

    larry worker --plan /etc/larry/plan.yaml --larry larry-02 --worker scan-worker-01 [--usage ADAPTER] -- <payload...>

Guaranteed: a task's result is written only under the lease's fence (a worker that lost
its lease writes nothing), and every token report is charged once. Not guaranteed: that a
task runs only once (a stopped or cut-off payload is run again by the next holder), and the
weaker file-mode guarantees listed at the end.

It registers (``worker:{id}:master|node|status``) and heartbeats, waits for its Larry's
coordinator to start the phase, then claims its own tasks by lease, one at a time, in plan
order among those whose dependencies have completed. Dependencies held by other workers or
Larrys are waited for on the event stream (woken by their ``task_completed``), never by
polling; a wait re-reads state after at most one lease TTL because a lease that expires
emits nothing.

With ``larry:taskAssignment: queue`` (seed 004: "Pulls task from master's queue") it takes,
instead, the first claimable task of its master's queue (its Larry's, when it names no master)
in the task queue's order: priority, then its master's plan order
(:meth:`runtime.coordination.leases.LeaseManager.claim`), whichever worker the plan lists it
under, and comes back for more until every task of the queue has finished; a task held by a
worker that died is taken again once its lease expired. A task's tokens are charged to the
account of the worker the plan lists it under, whoever runs it (that worker's allotment was
sized for it; the master's pool, the Larry and the system above are the same), its share an
even part of what that account has left for its unfinished tasks; the ledger's ops name the
worker that ran it (``who``), and so does its result. Its exit status answers for the tasks it
ran: 3 when one of them failed for good, 0 otherwise.

Each task runs the payload (the command after ``--``; else the command of the worker's agent
profile, ``larry:agents``; else the built-in simulated payload) with the environment of
:mod:`runtime.agent.protocol` and the task's prompt in ``LARRY_PROMPT_FILE`` (title, phase,
what the tasks it depends on found). A profile's command has its placeholders (``{task_id}``,
``{title}``, ``{prompt_file}``, ``{results_dir}``) expanded; any other command runs as given.
The task's token budget is an equal share of what the worker has not spent yet;
``LARRY_TASK_MINUTES`` is the worker's minutes divided by its tasks.

Metering (``--usage``, default the profile's, else ``larry-protocol``): every ``@larry``
report with tokens, or every charge a usage adapter (:mod:`runtime.agent.usage`) reads from
the agent's own output, is charged at once to the worker's ledger account and every account
above it: its master's pool (or its Larry when it names no master), the Larry, the system
(one ``Ledger.record``, op id ``{task}:{fence}:{key}``, the key the report's number or the
adapter's idempotency key, so a retried charge is never counted twice). When an agent exits,
the difference to its own final total is charged, its run is judged by its output (a failed
agent run fails the task for good: retrying what the provider refused only spends more), and
the result keeps its answer, usage by kind, cost and raw output (``agent-output-{fence}.jsonl``
beside the prompt). The payload is stopped (SIGTERM to its process group, SIGKILL after
``--kill-grace``) when

* the lease is lost: nothing is written (the fence forbids it) and the task is claimed again;
* the worker's deadline passes (``minutes * 60 / speed`` plus the allowance of
  :mod:`runtime.support.timing`): the task fails with detail ``deadline``;
* its tokens exceed the task's share (never more than its ledger path still holds;
  with nothing left the payload is not started at all), or the ledger answers
  ``overrun``: the task fails with
  detail ``budget exhausted``. The tokens already spent are still booked (past the limit
  the ledger answers ``overrun`` and raises its ``token_overrun`` alert), and the task is
  not retried;
* an account above the worker's own (its master's pool, its Larry, the system) is past its
  limit, or has nothing left before the task starts, and the reserve cannot cover it: the
  worker raises an escalation (:mod:`runtime.coordination.escalations`) and waits, paused,
  with the lease kept: approved, it runs the task again with the tokens granted (charges
  under op ids ``{task}:{fence}:{escalation}:{n}``); denied, the task fails with
  ``denied: {reason}``.

With ``larry:approval: {required: true}`` the worker starts no task before the run's sign-off.

The catalog (seed 004's Catalog API, ``larry:catalog``): assets a payload reports
(``@larry {"assets": [...]}``) are written to ``$LARRY_CATALOG_URL`` (default: the stack's
catalog Service when it is enabled) as discovered by this worker, through an outbox on the
coordination volume (:mod:`runtime.catalog.outbox`: ``{results}/catalog-outbox-{worker}.jsonl``)
that keeps them while the catalog is unreachable and replays them when it answers; upserts by
natural key make a replay safe. The worker's status (busy with each task's progress, then its
final status) goes to the catalog's ``workerProgress`` subscribers, latest only. An exiting
worker tries for :data:`CATALOG_DRAIN_SECONDS` to empty its outbox; what is left stays on the
volume for its next start or ``larry catalog replay``. The catalog never holds up a task.

A finished task is a fenced write (:meth:`LeaseManager.complete` / ``fail``); only once it
is accepted does the worker write ``{coordination-dir}/results/{larry}/{task}.json``
(with the fence). A worker that dies between the two has the file re-written from Redis by
its successor.

Seed 004's control (:mod:`runtime.coordination.control`): a ``WORKER_TERMINATE`` naming the
worker stops its payload, hands the task back (lease released, nothing written) and ends the
worker with exit status 1, so its restart carries on; it answers ``WORKER_STATUS_REQUEST`` on
the status channel and announces its first start (``WORKER_SPAWN``). A queue worker takes
what its queue holds now, tasks handed to its master included (:mod:`runtime.coordination.handoffs`).
A payload's CVE of CVSS 9.0 or more (``@larry {"cve": ...}``) is raised as seed 001's
``critical_cve`` alert.

Pause (seed 001 appendix A example 3): while ``worker:{id}:paused`` is set by the
coordinator, the worker lets the task in hand finish and claims nothing new until the
coordinator's ``worker_resumed``. Freezing the payload instead (SIGSTOP) would hold the
lease and the worker's deadline hostage to an alert of unknown length.

Exit status (:class:`plan.exits.ExitCode`): 0 when all its tasks completed; 1 when a
restart may help (the payload crashed, the lease kept slipping, Redis went away), which the
Job's backoffLimit turns into
a retry; 3 when nothing a restart does can help (a task failed for good, a dependency
failed, the deadline passed); 2 for usage errors. A restarted worker skips completed tasks
and takes over the leases of its own previous incarnation at once: one pod per worker Job,
so a lease held under this worker's name by another process is a dead predecessor's.

File mode (seed risk 2): when Redis stays unreachable past the client's retry window
(``LARRY_REDIS_RETRY_FOR``) plus ``LARRY_DEGRADE_AFTER`` seconds (default 0; ``off``
disables it, and the worker exits 1 as before; :class:`runtime.coordination.fallback.Degrader`
probes and decides), the worker continues its remaining
tasks on the volume with :class:`runtime.coordination.fallback.FileCoordination` under
``{coordination-dir}/fallback``: a task is claimed there only when all its
dependencies are known completed (in Redis before the outage, or in the volume), runs
the same payload code path, and is completed there and in its results file (with
``"mode": "file"``). Its token reports go to the volume's event log instead of the
ledger (no ledger clamp on the share in file mode). Once Redis answers again the worker
replays, each step idempotent so a restarted worker can simply replay again: the
deferred charges (op id ``file:{task}:{fence}:{n}``), the completed tasks through the
normal fenced path (acquire, complete with the file result; the results file is
re-written with the Redis fence), then the volume's events into the stream. A payload
that fails or is stopped in file mode ends the worker (1 after a crash, 3 otherwise)
with its task still pending in Redis. The guarantees are weaker than Redis's:

* file leases expire by each node's wall clock and are not renewed (they last until the
  worker's deadline), so clock skew between nodes moves expiry;
* mutual exclusion relies on ``flock`` on the shared volume being honoured across nodes
  (NFS lock manager, RWX volumes vary); without it two holders are possible;
* at-most-once is not guaranteed across the switch: the payload in hand when Redis went
  away is stopped and run again in file mode, and a task whose file-mode completion
  cannot be replayed (its Redis dependencies not yet completed) may be run again in
  Redis mode; tokens reported by the interrupted run may not be booked at all;
* the coordinator sees nothing of file mode until the replay (no heartbeat status, no
  ledger, no pause).
"""
from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

import redis

from plan import environment as envvar
from plan.exits import ExitCode
from plan.model import (
    USAGE_ADAPTERS,
    AgentProfile,
    Larry,
    StackConfig,
    highest_priority,
    master_track,
    worker_account,
)
from plan.model import Worker as WorkerSpec
from plan.statuses import TERMINAL, PhaseStatus, TaskStatus, WorkerStatus
from plan.taskgraph import TaskGraph
from runtime.agent.payload import PayloadProcess
from runtime.agent.protocol import ProtocolError, is_protocol_line, merge_findings, parse_line
from runtime.agent.usage import POLL_SECONDS, UsageAdapter, adapter_class, profile_command
from runtime.catalog.client import CatalogClient
from runtime.catalog.outbox import CatalogOutbox, outbox_path
from runtime.catalog.progress import MAX_MESSAGE, progress_of
from runtime.cli import (
    UsageError,
    add_process_arguments,
    interrupt_on_sigterm,
    larry_of,
    load_plan,
    member_of,
    open_redis,
    positive_number,
)
from runtime.coordination.connection import AuthenticationFailed
from runtime.coordination.control import WorkerControl
from runtime.coordination.escalations import Escalations
from runtime.coordination.events import EventListener, EventLog
from runtime.coordination.fallback import Degrader, FileCoordination
from runtime.coordination.handoffs import Handoffs
from runtime.coordination.leases import Lease, LeaseManager
from runtime.coordination.ledger import Ledger, LedgerOp
from runtime.coordination.registry import WorkerRegistry
from runtime.coordination.tasks import TaskBoard
from runtime.reporting.results import read_result, results_dir, write_result
from runtime.support import callstats
from runtime.support.files import write_atomic
from runtime.support.timestamps import now
from runtime.support.timing import Timing

log = logging.getLogger(__name__)

#: Lease losses of one task before the worker hands over to a restart.
MAX_LEASE_LOSSES = 3
#: How long an exiting worker keeps trying to hand its buffered assets to an unreachable catalog.
CATALOG_DRAIN_SECONDS = 10.0


def queued_in(entries: dict[str, str], queue: str, order) -> list[str]:
    """The tasks (in ``order``) whose task-queue entry is in ``queue``; an entry that is not
    JSON (another writer's) counts as in no queue."""
    def queue_of(entry: str | None) -> str | None:
        try:
            return json.loads(entry).get("master") if entry else None
        except (ValueError, AttributeError):
            return None
    return [t for t in order if queue_of(entries.get(t)) == queue]


class GiveUp(Exception):
    """Nothing left this incarnation can do; ``code`` is the exit status."""

    def __init__(self, code: int, why: str):
        super().__init__(why)
        self.code = code


def configure_parser(parser) -> None:
    add_member_arguments(parser, "worker", envvar.WORKER_ID)


def add_member_arguments(parser, whose: str, variable: str) -> None:
    """What a process of one worker or master (``whose``) takes: the run's arguments, --larry,
    --worker or --master (default ``$variable``), and how its agent is stopped and metered
    (--kill-grace, --usage)."""
    add_process_arguments(parser)
    parser.add_argument("--larry", default=os.environ.get(envvar.LARRY_ID), help=f"the {whose}'s Larry (default $LARRY_ID)")
    parser.add_argument(f"--{whose}", default=os.environ.get(variable),
                        help=f"the {whose}'s name in the plan (default ${variable})")
    parser.add_argument("--kill-grace", type=positive_number, default=5.0,
                        help="seconds between SIGTERM and SIGKILL when the payload has to stop (default 5)")
    parser.add_argument("--usage", metavar="ADAPTER",
                        help=f"how the payload's token use is metered: one of {', '.join(USAGE_ADAPTERS)} "
                             f"(default: the {whose}'s agent profile's, else larry-protocol, its @larry lines)")


def check_usage(adapter: str) -> None:
    """Refuse an adapter that is not one of USAGE_ADAPTERS: a payload this runtime cannot meter
    must not run as if it were metered."""
    if adapter not in USAGE_ADAPTERS:
        raise UsageError(f"--usage {adapter!r}: expected one of {', '.join(USAGE_ADAPTERS)}")


def choose_payload(profile: AgentProfile | None, payload: list[str], usage: str | None,
                   simulate: list[str]) -> tuple[list[str], str, AgentProfile | None]:
    """(command, usage, the profile it runs or None). The command after ``--`` runs if given
    (the cluster's Job passes its profile's command there), else the worker's profile's, else
    the simulated payload. Only a profile's own command has its placeholders expanded and is
    metered by the profile's adapter by default: another command (``larry run``'s simulated
    payload, a test's) runs as given, metered by ``--usage`` or the ``@larry`` protocol."""
    runs_profile = profile is not None and (not payload or tuple(payload) == profile.command)
    command = payload or (list(profile.command) if runs_profile else simulate)
    return command, usage or (profile.usage if runs_profile else "larry-protocol"), \
        (profile if runs_profile else None)


def load_member(args, whose: str):
    """(plan, Larry, the worker or master ``whose`` names) of a member's process, its --usage
    checked first; UsageError naming what was expected."""
    if args.usage is not None:
        check_usage(args.usage)
    cfg = load_plan(args)
    larry = larry_of(cfg, args.larry)
    return cfg, larry, member_of(cfg, larry, whose, getattr(args, whose))


def main(args) -> int:
    cfg, larry, spec = load_member(args, "worker")
    simulate = [sys.executable, "-m", "runtime.cli", "simulate", "--speed", f"{args.speed:g}"]
    # A profile's usage needs no check: the plan's loader allows only USAGE_ADAPTERS.
    command, usage, profile = choose_payload(cfg.agent_of(spec), args.payload, args.usage, simulate)
    callstats.install(f"worker-{spec.name}")
    degrade_after = degrade_after_from_env()
    r, ks = open_redis(args, cfg)
    interrupt_on_sigterm()
    worker = Worker(cfg, larry, spec, r, ks, Timing.from_env(args.speed), command, args.coordination_dir,
                    kill_grace=args.kill_grace, degrade_after=degrade_after, usage=usage, profile=profile)
    try:
        return worker.run()
    except redis.exceptions.RedisError as error:
        log.error("larry worker: %s: lost Redis (%s); a restart will resume", spec.name, error)
        return ExitCode.FAILED


def degrade_after_from_env(env=None) -> float | None:
    """Seconds past the client's retry window before file mode (None: never)."""
    raw = (os.environ if env is None else env).get(envvar.DEGRADE_AFTER, "").strip()
    if raw.lower() in ("off", "no", "none", "false"):
        return None
    try:
        return max(0.0, float(raw)) if raw else 0.0
    except ValueError:
        raise UsageError(f"{envvar.DEGRADE_AFTER}={raw!r}: expected seconds or 'off'") from None



def streams_to_follow(cfg: StackConfig, larry: Larry, graph: TaskGraph) -> list[str] | None:
    """The Larrys whose streams a worker of ``larry`` with ``graph`` reads beside the run's: its
    own and those of the tasks its tasks wait on (every Larry's, None, with queues: a handoff
    may bring it any task)."""
    return None if cfg.queued else sorted({larry.id, *graph.larry.values()})

class Worker:
    #: Runs inside its Larry's phase: starts once the phase has, stops when it has ended (a
    #: rollback's worker, :mod:`runtime.commands.rollback`, runs after it instead).
    bound_to_phase = True

    def __init__(self, cfg: StackConfig, larry: Larry, spec: WorkerSpec, r, ks, timing: Timing,
                 command: list[str], coordination_dir: Path, *, kill_grace: float = 5.0,
                 degrade_after: float | None = None, usage: str = "larry-protocol",
                 profile: AgentProfile | None = None):
        self.cfg, self.larry, self.spec, self.r, self.ks = cfg, larry, spec, r, ks
        self.timing, self.command, self.kill_grace = timing, command, kill_grace
        #: how each run's token use is metered, and the agent profile whose command this is (its
        #: placeholders are expanded; any other command runs as given)
        self.usage, self.profile = usage, profile
        self.name = spec.name
        # The tasks it may run and those they wait on: a handoff (runtime.coordination.handoffs)
        # may bring any task of the stack into a queue.
        self.graph = TaskGraph(cfg) if cfg.queued else TaskGraph(cfg).around(t.id for t in cfg.takes(larry, spec))
        # Read the stream position before any state: nothing that happens after a state
        # read can then be missed by a wait that follows it.
        self.listener = self.follow_events(streams_to_follow(cfg, larry, self.graph))
        self.leases = LeaseManager(r, ks, larry.id, worker=spec.name, ttl_ms=timing.lease_ttl_ms,
                                   tracks={t.id: master_track(w.master) for owner in cfg.larrys
                                           for w in owner.workers if w.master for t in w.tasks})
        self.ledger = Ledger.for_plan(r, ks, cfg)
        self.account = worker_account(larry.id, spec.name)
        self.registry = WorkerRegistry(r, ks, grace_ms=timing.dead_after_ms)
        self.events = EventLog(r, ks)
        self.board = TaskBoard(r, ks)
        self.sender = f"{larry.id}/{spec.name}"
        # The tasks it may run: its own (static assignment) or its master's queue's (queue).
        self.queue = larry.queue_of(spec) if cfg.queued else None
        self.own = [t.id for t in cfg.takes(larry, spec)]
        # Every task of the stack: a handoff (runtime.coordination.handoffs) may bring any into
        # its queue.
        listed = [(owner, w, t) for owner in cfg.larrys for w in owner.workers for t in w.tasks]
        self.tasks = {t.id: t for _, _, t in listed}
        # A task's charges draw on the reserve at the higher of its own (its planned worker's
        # included) and this worker's priority.
        self.priorities = {t.id: highest_priority(spec.priority, highest_priority(w.priority, t.priority))
                           for _, w, t in listed}
        # A task is charged to the account of the worker the plan lists it under, whoever runs
        # it: that worker's allotment was sized for it, and the pool, Larry and system above
        # are the same (a queue is one master's). The ledger's ops name who ran it.
        self.planned = {t.id: w.name for _, w, t in listed}
        self.accounts = {t.id: worker_account(owner.id, w.name) for owner, w, t in listed}
        # How many of them it expects to run: all its own, or its even share of its queue.
        takers = sum(larry.queue_of(w) == self.queue for w in larry.workers) if self.queue else 1
        self.expected = max(1, -(-len(self.own) // takers))
        #: tasks this worker (any incarnation) failed for good: a queue worker's exit status
        self.failed_here: set[str] = set()
        self.results = results_dir(coordination_dir, larry.id)
        self.deadline = time.monotonic() + timing.deadline(spec.minutes)
        self.spent = 0
        self.approved = 0  # tokens operators granted this worker through escalations
        self.escalations = Escalations(r, ks)
        # WORKER_TERMINATE (runtime.coordination.control): the reason once asked to stop, and the
        # queue of the payload run in hand, which the control thread wakes.
        self.control = WorkerControl(r, ks)
        self.handoffs = Handoffs(r, ks)
        self.terminated: str | None = None
        self._items: queue.Queue | None = None
        self.lease_losses: dict[str, int] = {}
        self.waiting: set[str] = set()
        # File mode (see the module doc): the statuses last read from Redis, the volume.
        self.statuses: dict[str, str | None] = {}
        self.fallback_root = Path(coordination_dir) / "fallback"
        self.files: FileCoordination | None = None
        self.file_mode = False
        self.degrader = None if degrade_after is None else Degrader(r, degrade_after)
        # The catalog (seed 004): $LARRY_CATALOG_URL (`larry run` sets its own), else the stack's Service.
        url = os.environ.get(envvar.CATALOG_URL) or (cfg.catalog.url if cfg.catalog.enabled else None)
        self.catalog = CatalogOutbox(outbox_path(self.results, spec.name), CatalogClient(url),
                                     label=f"{spec.name}: ") if url else None

    def follow_events(self, larrys: list[str] | None):
        """The listener of its waits, positioned now (see :func:`streams_to_follow`)."""
        return EventListener(self.r, self.ks, "$", larrys=larrys)

    def log(self, text: str) -> None:
        """The worker's narrative: its output (stdout), what ``kubectl logs`` and the run's log show."""
        print(f"{self.name}: {text}", flush=True)

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> int:
        first = self.registry.register(self.name, self.spec.master or self.larry.id, self.spec.node,
                                       WorkerStatus.IDLE, counted_by=self.larry.overseer(self.spec))
        if first:
            self.control.spawned(self.sender, self.larry.id, self.name,
                                 type=self.profile.name if self.profile else "simulated", tasks=self.own,
                                 budget=self.spec.tokens, timeout=self.timing.deadline(self.spec.minutes))
        self.events.emit("worker_started", self.sender, home=self.larry.id, larry=self.larry.id, worker=self.name,
                         node=self.spec.node, pid=os.getpid())
        stop = threading.Event()
        beating = self.registry.beat_forever(self.name, self.timing.heartbeat, stop)
        self.control.watch(self.name, self._terminate, stop)
        if self.catalog is not None:
            self.catalog.start()
        code = ExitCode.FAILED
        try:
            self._wait_for_phase()
            self._wait_for_sign_off()
            self._recover()
            code = self._work_degrading()
        except GiveUp as reason:
            self.log(str(reason))
            code = reason.code
        finally:
            stop.set()
            # A beat still in flight would land after the sign-off and bring the worker back
            # to life in the registry, to be declared dead later.
            beating.join(timeout=self.timing.heartbeat + 5)
            self._sign_off(code)
        return code

    # ------------------------------------------------------------------ the catalog
    def report_assets(self, assets) -> None:
        """Hand assets the payload found to the catalog, through the outbox on the volume."""
        if self.catalog is not None:
            self.catalog.put(list(assets), self.name)

    def report_progress(self, status: str, **fields) -> None:
        """The worker's status for the catalog's ``workerProgress`` subscribers (latest wins)."""
        if self.catalog is not None:
            message = fields.get("message")
            self.catalog.progress(progress_of(self.name, status, tokensUsed=self.spent + fields.pop("tokens", 0),
                                              **{**fields, "message": message[:MAX_MESSAGE] if message else None}))

    def _sign_off(self, code: int) -> None:
        status = {ExitCode.OK: WorkerStatus.COMPLETED, ExitCode.FAILED: WorkerStatus.ERROR}.get(
            code, WorkerStatus.FAILED)
        try:
            if code == ExitCode.FAILED:
                # Stay in the heartbeat set: silence past the grace makes the coordinator
                # declare this worker dead and re-queue what it held.
                self.registry.heartbeat(self.name, status)
            else:
                self.registry.deregister(self.name, status)
            self.events.emit("worker_finished", self.sender, home=self.larry.id, larry=self.larry.id, worker=self.name,
                             status=status)
        except Exception as error:  # the exit status matters more than the last status write
            log.warning("%s: could not record the final status: %s", self.name, error)
        if self.catalog is not None:
            self.report_progress(status)
            self.catalog.close(CATALOG_DRAIN_SECONDS)

    def _terminate(self, reason: str) -> None:
        """WORKER_TERMINATE (the control thread): stop the payload in hand, if any; no new task."""
        self.terminated = reason
        items = self._items
        if items is not None:
            items.put(("terminate", reason))

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise GiveUp(ExitCode.GAVE_UP, f"deadline passed ({self.spec.minutes} plan minutes at speed "
                                       f"{self.timing.speed:g})")
        return left

    def _wait(self, wakes) -> None:
        """Block on the event stream until an event ``wakes`` accepts, or one re-check interval;
        GiveUp once a WORKER_TERMINATE asked the worker to stop."""
        until = time.monotonic() + min(self.timing.recheck, self._left())
        while (left := until - time.monotonic()) > 0:
            if self.terminated:
                raise GiveUp(ExitCode.FAILED, f"terminated ({self.terminated})")
            if any(wakes(event) for event in self.listener.poll(block_ms=max(1, int(left * 1000)))):
                return

    def _wait_for_phase(self) -> None:
        # The coordinator defines the tasks and the ledger limit before it starts the phase.
        while self.bound_to_phase and \
                (self.r.get(self.ks.phase_status(self.larry.id)) or PhaseStatus.PENDING) == PhaseStatus.PENDING:
            self._wait(lambda e: e.name == "phase_started" and e.data.get("larry") == self.larry.id)

    def _wait_for_sign_off(self) -> None:
        """With ``larry:approval: {required: true}``, no task before an operator approved the run."""
        if not self.cfg.approval.required or self.escalations.run_approval():
            return
        self.log("waiting for the operator's sign-off (`larry approve run`)")
        self.registry.heartbeat(self.name, WorkerStatus.PAUSED)
        while not self.escalations.run_approval():
            self._wait(lambda e: e.name == "run_approved")
        self.log("the run is approved")

    def _recover(self) -> None:
        """After a restart: free leases of dead predecessors, restore missing result files,
        count what earlier incarnations spent. (One round trip when there is nothing to do.)"""
        self._replay_fallback()
        prefix = f"{self.larry.id}/{self.name}/"
        pipe = self.r.pipeline(transaction=False)
        pipe.mget([self.ks.task_status(t) for t in self.own])
        pipe.mget([self.ks.task_lock(t) for t in self.own])
        statuses, holders = pipe.execute()
        for task, status, holder in zip(self.own, statuses, holders):
            if holder and holder.startswith(prefix):
                self.leases.take_over(task, prefix)
            if status not in TERMINAL:
                continue
            result = self.board.result(task)
            if result is None or not result["owner"].startswith(prefix):
                continue  # another worker of the queue ran it
            if result["outcome"] == TaskStatus.FAILED:
                self.failed_here.add(task)
            recorded = read_result(self.results, task, result["token"])
            if not recorded:
                data = result["data"] if result["outcome"] == TaskStatus.COMPLETED else {"detail": result["data"].get("error")}
                recorded = self._write_result(task, result["token"], result["outcome"], data)
            self.spent += int(recorded.get("tokens", 0))

    # ------------------------------------------------------------------ choosing work
    def _work(self) -> int:
        while True:
            if self.terminated:
                raise GiveUp(ExitCode.FAILED, f"terminated ({self.terminated})")
            pipe = self.r.pipeline(transaction=False)
            pipe.mget([self.ks.task_status(t) for t in self.graph.ids])
            pipe.get(self.ks.worker_paused(self.name))
            pipe.get(self.ks.phase_status(self.larry.id))
            if self.queue:
                pipe.hgetall(self.ks.task_queue_entries)
            statuses, paused, phase, *entries = pipe.execute()
            statuses = self.statuses = dict(zip(self.graph.ids, statuses))
            # A queue worker's tasks are those its queue holds now: handoffs move tasks between queues.
            mine = queued_in(entries[0], self.queue, self.graph.ids) if self.queue else self.own
            left = [t for t in mine if statuses.get(t) not in TERMINAL]
            if not left:
                # A queue worker answers for the tasks it ran, not for its queue's.
                failed = self.failed_here if self.queue else \
                    {t for t in self.own if statuses.get(t) == TaskStatus.FAILED}
                return ExitCode.GAVE_UP if failed else ExitCode.OK
            if self.bound_to_phase and phase in TERMINAL:
                raise GiveUp(ExitCode.GAVE_UP, f"phase {phase} with {', '.join(left)} unfinished")
            doomed = self.graph.doomed(statuses)
            runnable = [t for t in left if t not in doomed]
            if not runnable:
                raise GiveUp(ExitCode.GAVE_UP, "cannot run " + ", ".join(f"{t} (dependency {doomed[t]} failed)"
                                                                     for t in left))
            if paused:
                self._pause(paused)
                continue
            waiting = self._take_from_queue(left) if self.queue else self._take_own(runnable, len(left))
            if waiting:
                if waiting != self.waiting:
                    self.log(f"waiting for {', '.join(sorted(waiting))}")
                    self.waiting = waiting
                    self.registry.heartbeat(self.name, WorkerStatus.IDLE)
                self._wait(lambda e, w=waiting: e.data.get("task_id") in w or e.data.get("worker") == self.name)

    def _take_own(self, runnable: list[str], tasks_left: int) -> set[str]:
        """Static assignment: run the first of its own tasks it can lease, in plan order; what it
        waits for when none (empty once it ran one, or one finished meanwhile)."""
        waiting: set[str] = set()
        for task in runnable:
            claim = self.leases.acquire(task)
            if claim.lease is not None:
                self._run_task(task, claim.lease, tasks_left)
                return set()
            if claim.status in TERMINAL:
                return set()  # finished since the statuses were read: look again
            waiting.update(claim.waiting_on or (task,))
        return waiting

    def _take_from_queue(self, left: list[str]) -> set[str]:
        """Queue assignment: run the queue's first claimable task (whoever the plan lists it
        under); what it waits for when none (the queue's held tasks, the dependencies of its
        blocked ones). A worker that finished early comes back here for more."""
        claim = self.leases.claim(self.queue)
        if claim.lease is not None:
            self._run_task(claim.lease.task_id, claim.lease, len(left))
            return set()
        # drained: every task finished since the statuses were read (or the queue holds none
        # of them: wait on them all rather than spin)
        return set(claim.waiting_on or left)

    # ------------------------------------------------------------------ file mode
    def _work_degrading(self) -> int:
        """:meth:`_work`, switching to file mode while Redis stays unreachable."""
        while True:
            try:
                return self._work()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
                if self.degrader is None or not self.statuses or isinstance(error, AuthenticationFailed):
                    raise
                self.log(f"Redis unreachable ({error})")
                if self.degrader.degrade():
                    self._work_on_files()

    def _work_on_files(self) -> None:
        """Run the claimable own tasks on the volume; return once Redis answers again and
        the file-mode work has been replayed into it."""
        self.log(f"degrading to file-based coordination in {self.fallback_root}")
        self.files = self.files or FileCoordination(self.fallback_root)
        self.files.append_event("worker_degraded", self.sender, larry=self.larry.id, worker=self.name)
        self.file_mode = True
        try:
            while True:
                done = {t for t, s in self.statuses.items() if s == TaskStatus.COMPLETED} | set(self.files.completed())
                left = [t for t in self.own if t not in done and self.statuses.get(t) not in TERMINAL]
                for task in left:
                    if any(dep not in done for dep in self.graph.deps.get(task, ())):
                        continue
                    ttl = self._left() + self.kill_grace + 1
                    token = self.files.acquire(task, self.leases.owner, ttl)
                    if token is not None:
                        self._run_task(task, Lease(task, self.leases.owner, token, int(ttl * 1000)), len(left))
                        break
                else:
                    if self.degrader.reachable():
                        break
                    if time.monotonic() >= self.deadline:
                        # Not 3: the restarted worker replays the file-mode work in _recover.
                        raise GiveUp(ExitCode.FAILED, "deadline passed in file mode with Redis unreachable")
                    time.sleep(self.degrader.interval)
        finally:
            self.file_mode = False
        self.log("Redis is back; replaying the file-mode work")
        self._replay_fallback()

    def _replay_fallback(self) -> None:
        """Bring this worker's file-mode work into Redis; every step is idempotent."""
        if not self.fallback_root.is_dir():
            return
        files = self.files = self.files or FileCoordination(self.fallback_root)
        events, _ = files.events(0)
        for e in events:
            if e.get("event") == "tokens_deferred" and (e.get("larry"), e.get("worker")) == (self.larry.id, self.name):
                self.ledger.record(e["op_id"], self.accounts.get(e.get("task_id"), self.account), int(e["tokens"]),
                                   who=self.sender, worker=self.name,
                                   priority=e.get("priority", self.spec.priority))
        completed = files.completed()
        for task in self.own:  # plan order: own dependencies first
            done = completed.get(task)
            if done is None or self.board.statuses([task])[task] in TERMINAL:
                continue
            claim = self.leases.acquire(task)
            if claim.lease is None:
                self.log(f"{task}: file-mode completion not replayed yet ({claim.status})")
                continue
            data = {**done["data"], "mode": "file", "file_fence": done["token"]}
            if self.leases.complete(claim.lease, data).ok:
                self._write_result(task, claim.lease.token, TaskStatus.COMPLETED, data)
                self.log(f"{task}: file-mode completion replayed (fence {claim.lease.token})")
        replayed = files.replay_into(self.events)
        if replayed:
            self.log(f"replayed {replayed} file-mode events into the stream")

    def _finish_on_files(self, run: "_TaskRun", code: int) -> None:
        task, lease = run.task, run.lease
        if run.stopped or code != 0:
            why = run.stopped or f"payload exited with status {code}"
            self.files.release(task, lease.owner, lease.token)
            self.files.append_event("task_stopped", self.sender, larry=self.larry.id, worker=self.name,
                                    task_id=task, reason=why)
            raise GiveUp(ExitCode.GAVE_UP if run.stopped else ExitCode.FAILED,
                         f"{task}: {why} in file mode; the task stays pending in Redis")
        status = self.files.complete(task, lease.owner, lease.token, run.data())
        if status != "accepted":
            self.log(f"{task}: file-mode result not accepted ({status})")
            return
        self._write_result(task, lease.token, TaskStatus.COMPLETED, {**run.data(), "mode": "file"})
        self.log(f"{task}: completed in file mode, {run.tokens} tokens")

    def _pause(self, reason: str) -> None:
        self.log(f"paused by the coordinator ({reason}); no new task until resumed")
        self.registry.heartbeat(self.name, WorkerStatus.PAUSED)
        while self.r.get(self.ks.worker_paused(self.name)):
            self._wait(lambda e: e.name == "worker_resumed" and e.data.get("worker") == self.name)
        self.log("resumed")

    # ------------------------------------------------------------------ one task
    def _run_task(self, task: str, lease: Lease, tasks_left: int, attempt: str = "") -> None:
        # The worker's own share, but never more than its path in the ledger (its master's
        # pool or its Larry, up to the system) still holds: a full account starts no payload.
        # From a queue: an even share of what the task's account has left for its unfinished
        # tasks (``tasks_left``, the worker's own in static assignment, does not apply).
        account = self.accounts[task]
        if self.queue and not self.file_mode:
            unfinished = sum(w == self.planned[task] and self.statuses.get(t) not in TERMINAL
                             for t, w in self.planned.items())
            own = max(0, self.ledger.snapshot(account)["available"]) // max(1, unfinished)
        else:
            own = max(0, self.spec.tokens + self.approved - self.spent) // tasks_left
        tightest, available = (account, own) if self.file_mode else self.ledger.tightest(account)
        share = min(own, max(0, available))
        if share == 0:
            run = _TaskRun(self, task, lease, own, attempt)
            run.stopped = "budget exhausted"
            if own > 0 and tightest != account:
                # A pool above the worker is dry before the task starts: ask, as for a charge.
                run.short = LedgerOp("overrun", 0, tightest, available)
                self.log(f"{task}: not started ({tightest} has no tokens left for it)")
                return self._escalate(run, 0, tasks_left)
            self.log(f"{task}: not started (no tokens left for it)")
            self._finish(run, 0)
            return
        workdir = self.results / task
        workdir.mkdir(parents=True, exist_ok=True)
        run_name = f"{lease.token}{attempt.replace(':', '-')}"
        prompt = workdir / f"prompt-{run_name}.md"
        write_atomic(prompt, self.prompt(task, share))
        env = {**os.environ, envvar.LARRY_ID: self.larry.id, envvar.WORKER_ID: self.name, envvar.TASK_ID: task,
               envvar.TASK_WORKER: self.planned[task],
               envvar.TASK_TITLE: self.tasks[task].title, envvar.TASK_MINUTES: f"{self.spec.minutes / self.expected:g}",
               envvar.TOKEN_BUDGET: str(share), envvar.FENCE: str(lease.token),
               envvar.RESULTS_DIR: str(workdir), envvar.PROMPT_FILE: str(prompt),
               envvar.PROTOCOL_FILE: str(workdir / f"protocol-{run_name}.log")}
        command = profile_command(self.profile, self.usage, {
            "task_id": task, "title": self.tasks[task].title, "prompt_file": str(prompt), "results_dir": str(workdir)}) \
            if self.profile else list(self.command)
        self.log(f"running {task} (fence {lease.token}, budget {share} tokens"
                 + (", file mode)" if self.file_mode else ")"))
        if not self.file_mode:
            self.registry.heartbeat(self.name, WorkerStatus.BUSY)
        self.report_progress(WorkerStatus.BUSY, task=task, progress=0)
        self.waiting = set()
        items: queue.Queue = queue.Queue()
        self._items = items
        if self.terminated:
            items.put(("terminate", self.terminated))
        keeper = None if self.file_mode else self.leases.keep(lease, on_lost=lambda _lease, why: items.put(("lost", why)))
        run = _TaskRun(self, task, lease, share, attempt)
        if self.usage != "larry-protocol":
            adapter, command = adapter_class(self.usage).for_run(
                command, prices=self.profile.prices if self.profile else {},
                scratch=workdir / f"agent-analytics-{run_name}.jsonl")
            run.meter(adapter, workdir / f"agent-output-{run_name}.jsonl")
        payload = self.start_payload(command, env, items)
        if self.queue and not self.file_mode:
            # Seed 004's master-to-coordinator message, on its coordination channel.
            self.events.emit("TASK_STARTED", self.sender, master=self.queue, task_id=task, larry=self.larry.id,
                             estimated_duration=round(self.timing.scaled(float(env[envvar.TASK_MINUTES])), 3),
                             workers_needed=1)
        try:
            code = run.follow(items, payload)
        except BaseException:
            self._items = None
            # Interrupted (SIGTERM): stop the payload and hand the task back at once
            # rather than letting the next claimant wait out the lease.
            payload.stop(self.kill_grace)
            if self.file_mode:
                self.files.release(task, lease.owner, lease.token)
            else:
                keeper.stop()
                self.leases.release(lease)
            raise
        self._items = None
        if keeper is not None:
            keeper.stop()
        self.spent += run.tokens
        if run.short is not None and run.stopped == "budget exhausted":
            return self._escalate(run, code, tasks_left)
        self._finish(run, code)

    def start_payload(self, command: list[str], env: dict[str, str], items: queue.Queue):
        """Start one task's payload, its lines and exit going to ``items``: a process of its own
        (:class:`runtime.agent.payload.PayloadProcess`); a worker host runs its workers' simulated
        payloads in-process instead (:mod:`runtime.commands.worker_host`)."""
        return PayloadProcess(command, env, Path(env[envvar.PROTOCOL_FILE]), items, label=f"{self.name}: ").start()

    def prompt(self, task: str, share: int) -> str:
        """The task as an agent reads it: what to do, in which phase, and what the tasks it
        depends on found."""
        spec = self.tasks[task]
        lines = [f"# {spec.title}", "", f"- task: {task} (priority {self.priorities[task]})",
                 f"- Larry: {self.larry.id}, phase: {self.larry.phase}", f"- worker: {self.name}",
                 f"- token budget for this task: {share:,}", ""]
        if spec.depends_on:
            lines += ["## Results of the tasks it depends on", ""]
            for dep in spec.depends_on:
                result = self.board.result(dep) or {}
                data = result.get("data") or {}
                lines.append(f"- {dep} ({result.get('outcome', 'no result')}): {data.get('message') or ''} "
                             f"findings {json.dumps(data.get('findings') or {}, sort_keys=True)}")
        handoff = self.handoffs.of(task) if self.queue and not self.file_mode else None
        if handoff:
            lines += ["", "## Handed over", "", f"- from {handoff['from_master']} to {handoff['to_master']} "
                      f"({handoff['id']}); context: {json.dumps(handoff['context'], sort_keys=True)}"]
        return "\n".join(lines) + "\n"

    def _escalate(self, run: "_TaskRun", code: int, tasks_left: int) -> None:
        """A pool above this worker (its master's, its Larry's, the system's) ran dry and the
        reserve could not cover it: raise an escalation and wait for an operator, paused, with
        the lease kept. Approved: run the task again with the tokens granted. Denied: fail it
        with the reason."""
        task, lease, short = run.task, run.lease, run.short
        priority = self.priorities[task]
        need = -short.headroom + run.share
        escalation = self.escalations.raise_(
            f"{task}:{lease.token}{run.attempt}", sender=self.sender, larry=self.larry.id, account=short.account,
            task=task, issue=f"{short.account} is {-short.headroom:,} tokens past its limit and the emergency "
                             f"reserve cannot cover it", severity="critical" if priority == "critical" else "high",
            recommendation=f"approve {need:,} tokens for {task} ({priority} priority), or deny to fail it",
            tokens_short=need)
        self.log(f"{task}: escalated as {escalation} ({short.account} past its limit); paused until an operator "
                 f"approves or denies it")
        self.registry.heartbeat(self.name, WorkerStatus.PAUSED)
        lost: list[str] = []
        keeper = self.leases.keep(lease, on_lost=lambda _lease, why: lost.append(why))
        try:
            # "approving" until the tokens are in the ledger: resume only once they are
            while (decided := self.escalations.get(escalation))["status"] in ("open", "approving") and not lost:
                self._wait(lambda e: e.name == "escalation_decided" and e.data.get("id") == escalation)
        except GiveUp:
            if self.terminated:  # the task goes back at once
                keeper.stop()
                self.leases.release(lease)
            raise
        finally:
            keeper.stop()
        if lost:
            self.log(f"{task}: lease lost while waiting for {escalation} ({lost[0]}); nothing written")
            return
        if decided["status"] == "denied":
            run.stopped = f"denied: {decided['reason']}"
            return self._finish(run, code)
        self.approved += int(decided["tokens"])
        self.log(f"{task}: {escalation} approved by {decided['decided_by']} ({int(decided['tokens']):,} tokens); "
                 f"resuming")
        self._run_task(task, lease, tasks_left, attempt=f":{escalation}")

    def _finish(self, run: "_TaskRun", code: int) -> None:
        if self.file_mode:
            return self._finish_on_files(run, code)
        task, lease = run.task, run.lease
        if run.stopped == "lease lost":
            losses = self.lease_losses[task] = self.lease_losses.get(task, 0) + 1
            self.log(f"{task}: lease lost ({lease.lost_reason}); payload stopped, nothing written")
            if losses >= MAX_LEASE_LOSSES:
                raise GiveUp(ExitCode.FAILED, f"{task}: lease lost {losses} times")
            return
        if run.stopped:  # budget exhausted | deadline: the worker cannot do better by retrying
            write = self.leases.fail(lease, run.stopped, retry=False)
            status = TaskStatus.FAILED
        elif code != 0:
            write = self.leases.fail(lease, f"payload exited with status {code}", retry=True)
            if write.ok:
                raise GiveUp(ExitCode.FAILED, f"{task}: payload exited with status {code}; the task is pending again")
            status = None
        else:
            write = self.leases.complete(lease, run.data())
            status = TaskStatus.COMPLETED
        if not write.ok:
            self.log(f"{task}: result not accepted ({write.status}{': ' + write.detail if write.detail else ''})")
            return
        self._write_result(task, lease.token, status, run.data(detail=run.stopped))
        if status == TaskStatus.COMPLETED and self.queue and not self.file_mode:
            self.events.emit("TASK_COMPLETE", self.sender, master=self.queue, task_id=task, larry=self.larry.id,
                             results=run.findings, tokens_used=run.tokens,
                             duration=round(time.monotonic() - run.started, 3))
        if status == TaskStatus.FAILED:
            self.failed_here.add(task)
        self.log(f"{task}: {status}" + (f" ({run.stopped})" if run.stopped else "") + f", {run.tokens} tokens")
        if run.stopped == "deadline":
            raise GiveUp(ExitCode.GAVE_UP, "deadline passed")

    def _write_result(self, task: str, fence: int, status: str, data: dict) -> dict:
        record = {"larry": self.larry.id, "task": task, "worker": self.name, "fence": fence, "status": status,
                  **data, "written_at": now()}
        write_result(self.results, task, record)
        return record

    def charge(self, op_id: str, tokens: int, task: str) -> LedgerOp:
        """Book ``tokens`` (already spent) on the worker's account and every account above it;
        False once one of them is over its limit (booked all the same: spent is spent) or the
        ledger has no limit to book against.
        In file mode the charge is deferred to the volume's event log (see the module doc)."""
        if self.file_mode:
            self.files.append_event("tokens_deferred", self.sender, larry=self.larry.id, worker=self.name,
                                    task_id=task, priority=self.priorities[task],
                                    op_id=f"file:{op_id}", tokens=tokens)
            return LedgerOp("committed", tokens)
        booked = self.ledger.record(op_id, self.accounts[task], tokens, who=self.sender,
                                    priority=self.priorities[task], worker=self.name)
        if booked.status == "no_limit":
            self.log(f"ledger has no limit for {booked.account}; {tokens} tokens not recorded")
        return booked


class _TaskRun:
    """What one payload run reported, and why the worker stopped it (if it did)."""

    def __init__(self, worker: Worker, task: str, lease: Lease, share: int, attempt: str = ""):
        self.worker, self.task, self.lease, self.share = worker, task, lease, share
        self.started = time.monotonic()
        #: "" for the first run under this lease, ":{escalation}" for a run an operator approved
        #: (its charges need op ids of their own)
        self.attempt = attempt
        #: the overrun of an account above the worker's own: escalated rather than failed
        self.short: LedgerOp | None = None
        self.tokens = self.reports = self.malformed = self.unbooked = 0
        #: assets the payload reported (handed to the catalog's outbox)
        self.assets = 0
        self.findings: dict = {}
        #: escalations the payload raised in this run
        self.escalated = 0
        self.message: str | None = None
        self.stopped: str | None = None
        self.exit_code: int | None = None
        #: an agent metered from its own output (None: the @larry protocol), where its output is
        #: kept, and that file, open while the agent runs
        self.adapter: UsageAdapter | None = None
        self.output: Path | None = None
        self._raw: TextIO | None = None
        self.usage: dict | None = None
        self.cost_usd: float | None = None

    def meter(self, adapter: UsageAdapter, output: Path) -> None:
        self.adapter, self.output = adapter, output
        self._raw = output.open("w")

    def follow(self, items: queue.Queue, payload: PayloadProcess) -> int:
        """Handle the payload's lines until it exits; returns its exit status."""
        polls = self.adapter is not None and self.adapter.tails_a_file
        while True:
            timeout = None if self.stopped else max(0.0, self.worker.deadline - time.monotonic())
            if polls:
                timeout = POLL_SECONDS if timeout is None else min(timeout, POLL_SECONDS)
            try:
                kind, value = items.get(timeout=timeout)
            except queue.Empty:
                # Only a poll's timeout can end before the deadline (or after a stop).
                early = self.stopped or time.monotonic() < self.worker.deadline
                kind, value = ("poll", None) if polls and early else ("deadline", None)
            if kind == "exit":
                self.exit_code = value
                if self.adapter is not None:
                    self._raw.close()
                    self._conclude(value)
                return value
            if polls and kind in ("poll", "line"):
                for charge in self.adapter.poll():
                    self._book(charge.key, charge.tokens.total)
            if kind == "line":
                self._line(value)
            elif kind == "lost":
                self.stop(payload, "lease lost")
            elif kind == "deadline":
                self.stop(payload, "deadline")
            elif kind == "terminate":
                # Handed back at once by the caller's interruption path, which releases the lease.
                self.stop(payload, "terminated")
                raise GiveUp(ExitCode.FAILED, f"{self.task}: terminated ({value}); payload stopped, nothing "
                                              f"written, the task handed back")
            if self.stopped == "budget exhausted" and payload.running:
                payload.stop(self.worker.kill_grace)

    def stop(self, payload: PayloadProcess, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason
            self.worker.log(f"{self.task}: stopping the payload ({reason})")
        payload.stop(self.worker.kill_grace)

    def _line(self, line: str) -> None:
        if self.adapter is not None:
            # Flushed line by line: the raw output survives a worker killed mid-run.
            self._raw.write(line + "\n")
            self._raw.flush()
            for charge in self.adapter.feed(line):
                self._book(charge.key, charge.tokens.total)
            if self.adapter.rejected:
                self.worker.log(f"{self.task}: skipping a malformed line of the agent's output ({self.adapter.rejected})")
            return
        if not is_protocol_line(line):
            print(f"[{self.task}] {line}", flush=True)
            return
        try:
            report = parse_line(line)
        except ProtocolError as error:
            self.malformed += 1
            self.worker.log(f"{self.task}: skipping a malformed protocol line ({error})")
            return
        merge_findings(self.findings, report.findings)
        self.message = report.message or self.message
        if report.tokens:
            self._book(str(self.reports + 1), report.tokens)
        if report.assets:
            self.assets += len(report.assets)
            self.worker.report_assets(report.assets)
        if report.critical_cve and not self.worker.file_mode:
            self.worker.events.emit("critical_cve", self.worker.sender, alert=True, severity="critical",
                                    data=report.cve, task_id=self.task)
            self.worker.log(f"{self.task}: raised critical_cve {report.cve['cve_id']} (CVSS {report.cve['cvss']:g})")
        if report.escalation and not self.worker.file_mode:
            self._raise(report.escalation)
        if report.progress is not None and not self.worker.file_mode:
            self.worker.registry.progress(self.worker.name, report.progress)
        if report.progress is not None or report.message is not None:
            self.worker.report_progress(WorkerStatus.BUSY, task=self.task, progress=report.progress,
                                        message=report.message, tokens=self.tokens)

    def _raise(self, escalation: dict[str, str]) -> None:
        """The payload's own escalation (seed 004's ESCALATION), for an operator; the task goes on.
        Keyed by the run and its order among the run's escalations: a raise retried after a lost
        reply makes one escalation."""
        self.escalated += 1
        worker = self.worker
        raised = worker.escalations.raise_(
            f"{self.task}:{self.lease.token}{self.attempt}:agent:{self.escalated}", sender=worker.sender,
            larry=worker.larry.id, account=worker.accounts[self.task], task=self.task, issue=escalation["issue"],
            severity=escalation["severity"], recommendation=escalation.get("recommendation", ""), tokens_short=0)
        worker.log(f"{self.task}: the agent escalated {raised} ({escalation['severity']}): {escalation['issue']}")

    def _book(self, key: str, tokens: int) -> None:
        """Charge ``tokens`` under op id ``{task}:{fence}{attempt}:{key}``; stop the payload once
        the task's share or an account of its path is spent."""
        if self.stopped:
            # What a stopped payload had queued (or reports while it dies) is not booked: the
            # ledger holds what was reported up to the stop, so a payload flooding reports
            # cannot drain the reserve after it has been told to stop.
            self.unbooked += tokens
            return
        # spent is spent, whatever happened to the lease
        self.reports += 1
        self.tokens += tokens
        booked = self.worker.charge(f"{self.task}:{self.lease.token}{self.attempt}:{key}", tokens, self.task)
        if booked.status == "overrun" and booked.account != self.worker.accounts[self.task] and self.short is None:
            self.short = booked
        if (not booked.ok or self.tokens > self.share) and self.stopped is None:
            self.stopped = "budget exhausted"
            self.worker.log(f"{self.task}: stopping the payload (budget exhausted: {self.tokens} tokens "
                            f"of {self.share})")

    def _conclude(self, code: int) -> None:
        """The agent exited: book the difference to its own final total, and judge the run by
        its output, not by its exit status alone. A failed agent run fails the task for good:
        retrying what the provider refused would only spend more."""
        outcome = self.adapter.finish(code)
        if outcome.charge is not None:
            self._book(outcome.charge.key, outcome.charge.tokens.total)
        self.message = outcome.text or self.message
        self.usage, self.cost_usd = outcome.usage.as_dict(), outcome.cost_usd
        self.malformed += outcome.malformed
        if outcome.failed and self.stopped is None:
            self.stopped = f"agent failed: {outcome.reason}"
            self.worker.log(f"{self.task}: {self.stopped}")

    def data(self, detail: str | None = None) -> dict:
        data = {"tokens": self.tokens, "findings": self.findings, "budget": self.share, "exit_code": self.exit_code,
                "malformed_lines": self.malformed, "message": self.message, "detail": detail,
                "unbooked_tokens": self.unbooked or None, "assets_reported": self.assets or None,
                "usage": self.usage, "cost_usd": self.cost_usd,
                "agent_output": self.output.name if self.output else None}
        return {k: v for k, v in data.items() if v is not None}
