"""`larry worker-host`: many of one Larry's workers in one OS process, for `larry run` at fleet size.

::

    larry worker-host --plan plans/larry-042.yaml --larry larry-042 --workers larry-042-w00,larry-042-w01 --speed 60

One OS process per worker (what ``larry run`` does for a small plan, and what the cluster
does: one pod per worker Job) costs an interpreter each, about 40 MiB and half a second of
CPU to start: 2,000 workers would not fit a laptop. A worker host runs each named worker's
own loop (:class:`runtime.commands.worker.Worker`, unchanged: the same leases, fences,
ledger charges, heartbeats and events) as a thread, with the built-in simulated payload
(:mod:`runtime.agent.simulated`) played in-process in a thread of its own instead of a
``larry simulate`` process behind a keeper. The host shares between its workers what a
process would otherwise hold once per worker: the plan, the Redis connection pool, and one
reader of the event stream (:class:`EventHub`) whose events every worker's waits see, in
order, from the moment that worker started.

Each worker thread is supervised like its Job: a run that ends with status 1 is started
again after the kubelet's crash-loop backoff, up to the Job's backoffLimit; 0 and 3 are
final. The host exits once every worker is final: 0 when all completed, 3 otherwise. Killed
(kill -9, an OOM), it takes its workers with it; ``larry run`` restarts it like a worker
process, and each restarted worker skips its completed tasks and takes over the leases its
previous incarnation held under its name at once (one host per set of workers, as one pod
per worker Job).

Not guaranteed: isolation between the workers of one host (a worker loop that hangs the
interpreter, or a payload that exhausts its memory, takes every worker of the host down with
it), per-worker CPU accounting, or anything but the simulated payload (an agent's command
needs a process: such workers keep one each). SIGTERM ends the host without releasing its
leases: they expire after one lease TTL, or are taken over at once by a restarted host.
"""
from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time

import redis

from plan import environment as envvar
from plan.exits import ExitCode
from plan.pods import WORKER_BACKOFF_LIMIT
from plan.taskgraph import TaskGraph
from runtime.agent import simulated
from runtime.cli import (
    UsageError,
    add_process_arguments,
    interrupt_on_sigterm,
    larry_of,
    load_plan,
    open_redis,
    positive_number,
)
from runtime.commands.run import crash_loop_backoff
from runtime.commands.worker import Worker, streams_to_follow
from runtime.coordination.events import EventListener
from runtime.support import callstats
from runtime.support.timing import Timing

log = logging.getLogger(__name__)

#: Longest block of the host's one stream read: how soon a stopping host notices.
HUB_BLOCK_MS = 1000
#: Seconds between the hub's attempts to read while Redis is away.
HUB_RETRY = 0.5
#: Seconds the hub lets events gather after a read that found some: a fleet's stream carries
#: hundreds of events a second, and waking every waiting worker of the host for each would
#: cost more than the 50 ms this adds to a wait.
HUB_GATHER = 0.05


EXAMPLES = """\
examples:
  larry worker-host --plan plans/larry-042.yaml --larry larry-042 --workers larry-042-w00,larry-042-w01 --speed 60
  larry run --stack fleet --workers-per-process 20   # how `larry run` starts hosts for a fleet
"""


def configure_parser(parser) -> None:
    add_process_arguments(parser)
    parser.add_argument("--larry", default=os.environ.get(envvar.LARRY_ID), help="the workers' Larry (default $LARRY_ID)")
    parser.add_argument("--workers", required=True, help="comma-separated names of the Larry's workers to run")
    parser.add_argument("--kill-grace", type=positive_number, default=5.0,
                        help="seconds a stopped simulated payload gets to end (default 5)")
    parser.add_argument("--overspend-task", metavar="TASK",
                        help="the simulated payload of this task spends 150 %% of its budget")


class EventHub:
    """One XREAD of the event streams for every worker loop of the process: the run's and those
    of the Larrys its workers' tasks wait on (:func:`runtime.commands.worker.streams_to_follow`).

    :meth:`view` gives a worker a listener (``poll(block_ms)`` like
    :class:`runtime.coordination.events.EventListener`) that sees every event the hub reads
    after the view was made, in stream order, so a worker that makes its view before it reads
    state misses nothing that follows. Events are kept until every view has seen them; a
    view must be dropped (:meth:`drop`) when its worker ends. While Redis is unreachable a
    view's poll raises the hub's last error (the worker's own handling of an outage applies).
    Events reach the views in batches at most every :data:`HUB_GATHER` s."""

    def __init__(self, r, ks, larrys: list[str] | None = None):
        self.listener = EventListener(r, ks, "$", larrys=larrys)
        self.changed = threading.Condition()
        self.events: list = []
        self.base = 0  # stream position of events[0]
        self.cursors: dict[int, int] = {}
        self.error: Exception | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True, name="event-hub")

    def start(self) -> "EventHub":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(HUB_BLOCK_MS / 1000 + 5)

    def view(self) -> "HubView":
        with self.changed:
            view = HubView(self)
            self.cursors[id(view)] = self.base + len(self.events)
            return view

    def drop(self, view: "HubView") -> None:
        with self.changed:
            self.cursors.pop(id(view), None)
            self._trim()

    def _trim(self) -> None:
        keep_from = min(self.cursors.values(), default=self.base + len(self.events))
        del self.events[:keep_from - self.base]
        self.base = keep_from

    def _read(self) -> None:
        while not self.stopping.is_set():
            try:
                batch = self.listener.poll(block_ms=HUB_BLOCK_MS)
            except redis.exceptions.RedisError as error:
                with self.changed:
                    self.error = error
                    self.changed.notify_all()
                self.stopping.wait(HUB_RETRY)
                continue
            with self.changed:
                self.error = None
                if batch:
                    self.events.extend(batch)
                    self._trim()
                    self.changed.notify_all()
            if batch:
                self.stopping.wait(HUB_GATHER)

    def poll(self, view: "HubView", block_ms: int | None) -> list:
        key = id(view)
        with self.changed:
            def ready():
                return self.error is not None or self.base + len(self.events) > self.cursors[key]
            if block_ms is not None:
                self.changed.wait_for(ready, timeout=block_ms / 1000)
            cursor = self.cursors[key]
            if cursor >= self.base + len(self.events) and self.error is not None:
                raise self.error
            events = self.events[cursor - self.base:]
            self.cursors[key] = self.base + len(self.events)
            return events


class HubView:
    """A worker's listener on the host's :class:`EventHub`."""

    def __init__(self, hub: EventHub):
        self.hub = hub

    def poll(self, block_ms: int | None = 1000) -> list:
        return self.hub.poll(self, block_ms)


class _Stopped(Exception):
    pass


class _Lines:
    """A text stream whose complete lines go to the worker's queue as ``("line", text)``."""

    def __init__(self, items: queue.Queue):
        self.items, self.partial = items, ""

    def write(self, text: str) -> int:
        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            self.items.put(("line", line))
        return len(text)

    def flush(self) -> None:
        pass


class SimulatedPayload:
    """The simulated payload of one task, played in a thread: the interface of
    :class:`runtime.agent.payload.PayloadProcess` the worker uses (``running``, ``stop``), its
    lines and then exactly one ``("exit", code)`` on the worker's queue; a stop ends it at its
    next step with the status a SIGTERMed process has (-15)."""

    def __init__(self, env: dict, items: queue.Queue, speed: float, overspend: bool):
        self.env, self.items, self.speed, self.overspend = env, items, speed, overspend
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._play, daemon=True, name=f"payload-{env.get(envvar.TASK_ID)}")

    def start(self) -> "SimulatedPayload":
        self.thread.start()
        return self

    def _sleep(self, seconds: float) -> None:
        if self.stopped.wait(seconds):
            raise _Stopped

    def _play(self) -> None:
        lines = _Lines(self.items)
        try:
            code = simulated.run(self.env, speed=self.speed, overspend=self.overspend, out=lines, sleep=self._sleep)
        except _Stopped:
            code = -signal.SIGTERM
        except Exception as error:  # a payload's crash is the task's failure, not the host's
            log.error("simulated payload of %s: %s", self.env.get(envvar.TASK_ID), error)
            code = 1
        self.items.put(("exit", code))

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def stop(self, grace: float) -> None:
        self.stopped.set()
        self.thread.join(grace)


class HostedWorker(Worker):
    """A worker loop of a host: the hub's view for its waits, its payload in-process."""

    def __init__(self, hub: EventHub, overspend_task: str | None, *args, **kwargs):
        self.hub, self.overspend_task = hub, overspend_task
        super().__init__(*args, **kwargs)

    def follow_events(self, larrys):
        # The view before any state read, as the worker's own listener would be; the hub reads
        # the streams of every worker of the host.
        self.view = self.hub.view()
        return self.view

    def start_payload(self, command, env, items):
        return SimulatedPayload(env, items, self.timing.speed, env.get(envvar.TASK_ID) == self.overspend_task).start()


class WorkerHost:
    def __init__(self, cfg, larry, specs, r, ks, timing: Timing, coordination_dir, *, kill_grace: float = 5.0,
                 overspend_task: str | None = None):
        self.cfg, self.larry, self.specs, self.r, self.ks = cfg, larry, specs, r, ks
        self.timing, self.coordination_dir, self.kill_grace = timing, coordination_dir, kill_grace
        self.overspend_task = overspend_task
        self.codes: dict[str, int] = {}
        every_task = (t.id for spec in specs for t in cfg.takes(larry, spec))
        self.hub = EventHub(r, ks, streams_to_follow(cfg, larry, TaskGraph(cfg).around(every_task)))

    def _one_run(self, spec) -> int:
        try:
            worker = HostedWorker(self.hub, self.overspend_task, self.cfg, self.larry, spec, self.r, self.ks,
                                  self.timing, [], self.coordination_dir, kill_grace=self.kill_grace)
        except redis.exceptions.RedisError as error:
            log.error("larry worker-host: %s: Redis unreachable (%s); restarting it", spec.name, error)
            return ExitCode.FAILED
        try:
            return worker.run()
        except redis.exceptions.RedisError as error:
            log.error("larry worker-host: %s: lost Redis (%s); restarting it", spec.name, error)
            return ExitCode.FAILED
        except Exception:  # one worker's bug must not end its neighbours: its Job would retry it
            log.exception("larry worker-host: %s crashed", spec.name)
            return ExitCode.FAILED
        finally:
            self.hub.drop(worker.view)

    def _supervise(self, spec) -> None:
        """One worker as its Job: restarted after status 1, with backoff, up to the backoffLimit."""
        restarts = 0
        while True:
            code = self._one_run(spec)
            if code in (ExitCode.OK, ExitCode.GAVE_UP) or restarts >= WORKER_BACKOFF_LIMIT:
                break
            restarts += 1
            delay = crash_loop_backoff(restarts, self.timing.speed)
            print(f"{spec.name}: exited with status {code}; restart {restarts}/{WORKER_BACKOFF_LIMIT} in "
                  f"{delay:.2f}s", flush=True)
            time.sleep(delay)
        self.codes[spec.name] = code

    def run(self) -> int:
        self.hub.start()
        threads = [threading.Thread(target=self._supervise, args=(spec,), daemon=True, name=f"worker-{spec.name}")
                   for spec in self.specs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.hub.stop()
        failed = sorted(name for name, code in self.codes.items() if code != ExitCode.OK)
        if failed:
            print(f"worker host: not completed: {', '.join(failed)}", flush=True)
        return ExitCode.GAVE_UP if failed or len(self.codes) < len(self.specs) else ExitCode.OK


def main(args) -> int:
    cfg = load_plan(args)
    larry = larry_of(cfg, args.larry)
    names = [name for name in args.workers.split(",") if name]
    known = {w.name: w for w in larry.workers}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise UsageError(f"--workers: expected names of {larry.id}'s workers ({', '.join(known)}), "
                         f"got {', '.join(unknown) or 'none'}")
    specs = [known[name] for name in names]
    profiled = [w.name for w in specs if cfg.agent_of(w) is not None]
    if profiled or args.payload:
        raise UsageError("a worker host plays the simulated payload only; "
                         + (f"{', '.join(profiled)} run an agent profile" if profiled else "drop the command after --"))
    callstats.install(f"worker-host-{larry.id}-{specs[0].name}")
    r, ks = open_redis(args, cfg)
    interrupt_on_sigterm()
    host = WorkerHost(cfg, larry, specs, r, ks, Timing.from_env(args.speed), args.coordination_dir,
                      kill_grace=args.kill_grace, overspend_task=args.overspend_task)
    return host.run()
