"""Every Redis key, channel and stream name the runtime uses, in one place.

The names follow seed 001's "Redis Coordination Protocol" so an operator with
redis-cli sees the documented keys::

    phase:{larry}:status|progress|started_at|completed_at|tasks
    task:lock:{id}  task:status:{id}          (seed)
    task:fence:{id} task:deps:{id} task:result:{id}   (added: fencing, dependsOn, results)
    task:home:{id}  phase:larrys                (added: the Larry whose stream has a task's events)
    worker:{id}:master|node|status            (seed)  worker:heartbeats, worker:{id}:paused (added)
    metrics:{larry}:{name}                    (seed)
    tokens:acct:{account}  tokens:ops  tokens:open  tokens:draws  (the ledger: plan.model.budget_accounts)
    escalation:{id}  escalation:index|seq  escalation:key:{dedupe}   (escalations to a human)
    barrier:{name}:arrived|released           barriers: convergence, reports
    channels larry:coordination, larry:alerts; streams larry:events, larry:events:{larry}
    worker:{id}:terminate  master:{larry}:{master}:silent   (control: runtime.coordination.control)
    phase:{larry}:workers|findings|prs_created, phase:{larry}:{track}:{name}
    tokens:{larry}:used                       (seed 001's figures, written by the leases and the ledger)

Seed 004's Redis schema (its Appendix B) under the stack's schema namespace ``{ns}`` (``cortex``
for the cortex stack, ``larry`` otherwise; the stream is the plan's ``larry:channels.events``)::

    {ns}:tasks:queue  {ns}:tasks:queue:entries   (the task queue: runtime.coordination.tasks)
    {ns}:workers:{id}  {ns}:masters:{name}  {ns}:metrics:{name}   (runtime.coordination.schema)
    {ns}:handoffs:all|seq  {ns}:notices:sent            (master-to-master handoffs: runtime.coordination.handoffs)
    channels {ns}:masters:handoff|dependencies, {ns}:workers:spawn|control|status  (its other channels)

``{larry}`` here is a template placeholder, not a Redis Cluster hash tag: the
runtime targets a single primary (optionally Sentinel-managed), so Lua scripts
may touch keys of several tasks (dependency checks build ``task:status:`` keys
from :meth:`Keyspace.task_status_prefix`).

The channel and stream names are fields because seed 004's cortex stack uses
its own (:meth:`Keyspace.cortex`). ``prefix`` namespaces a whole deployment
(tests use a unique prefix per test instead of FLUSHALL, which production
disables) and is empty in production so the seed's names appear verbatim.
``stream_maxlen`` lives here too because every emitter must trim the stream
to the same bound.

Lua scripts get the same names from :meth:`Keyspace.lua`, which renders them as
constants prepended to every script, so no template is written twice.

Guaranteed: names are printable ASCII (checked), so they read the same in JSON and Lua.
Not guaranteed: isolation between deployments sharing a Redis and a prefix; two runs with
the same prefix share every key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

#: The all-Larry barrier before Phase 4 (seed 001 "Convergence Protocol").
CONVERGENCE_BARRIER = "convergence"
#: Coordinators arrive here once their final report is on disk; `larry converge` reads them after it.
REPORTS_BARRIER = "reports"


@dataclass(frozen=True)
class Keyspace:
    prefix: str = ""
    coordination_channel: str = "larry:coordination"
    alerts_channel: str = "larry:alerts"
    events_stream: str = "larry:events"
    meta_coordinator: str = "meta-coordinator"
    #: The first part of seed 004's schema keys (``cortex:tasks:queue``, ``cortex:workers:{id}``).
    schema: str = "larry"
    stream_maxlen: int = 100_000

    def __post_init__(self):
        for name in (self.prefix, self.coordination_channel, self.alerts_channel, self.events_stream,
                     self.meta_coordinator, self.schema):
            # printable ASCII renders as the same literal in JSON and Lua (see lua())
            if not all(32 <= ord(c) < 127 for c in name):
                raise ValueError(f"key and channel names must be printable ASCII: {name!r}")

    def lua(self) -> str:
        """These names as Lua constants; scripts append an id to a ``*_PREFIX`` to build a key."""
        constants = {
            "STREAM": self.stream, "CH_COORDINATION": self.coordination, "CH_ALERTS": self.alerts,
            "LOCK_PREFIX": self.task_lock(""), "FENCE_PREFIX": self.task_fence(""),
            "STATUS_PREFIX": self.task_status_prefix, "DEPS_PREFIX": self.task_deps(""),
            "RESULT_PREFIX": self.task_result(""), "QUEUE": self.task_queue,
            "QUEUE_ENTRIES": self.task_queue_entries, "PLAN_PREFIX": self.task_plan(""),
            "QUEUE_DEPTH": self.schema_series("task_queue_depth"),
            "COMPLETED_SERIES": self.schema_series("tasks_completed"),
            "PUBLISHED_PREFIX": self.published(""), "HOME_PREFIX": self.task_home(""),
            "LARRY_STREAM_PREFIX": self.larry_stream(""), "STREAMED_LARRYS": self.streamed_larrys,
            "EVENT_SEQ": self.event_seq,
        }
        lines = [f"local {name} = {json.dumps(value)}" for name, value in constants.items()]
        return "\n".join(lines + [f"local MAXLEN = {int(self.stream_maxlen)}"]) + "\n"

    @classmethod
    def cortex(cls, prefix: str = "", **overrides) -> "Keyspace":
        """Seed 004's names: masters' coordination/escalation channels and its system event stream."""
        names = dict(
            coordination_channel="cortex:masters:coordination",
            alerts_channel="cortex:masters:escalation",
            events_stream="cortex:events:system",
            meta_coordinator="coordinator-master",
            schema="cortex",
        )
        names.update(overrides)
        return cls(prefix=prefix, **names)

    @classmethod
    def for_plan(cls, channels, prefix: str = "") -> "Keyspace":
        """The names a plan selects with ``larry:channels`` (a ``plan.model.Channels``).
        A plan on seed 004's event stream is the cortex stack and gets its meta-coordinator too."""
        base = cls.cortex(prefix) if channels.events == cls.cortex().events_stream else cls(prefix)
        return replace(base, coordination_channel=channels.coordination, alerts_channel=channels.alerts,
                       events_stream=channels.events)

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- channels and the durable event stream --------------------------------
    @property
    def coordination(self) -> str:
        return self.prefix + self.coordination_channel

    @property
    def alerts(self) -> str:
        return self.prefix + self.alerts_channel

    @property
    def stream(self) -> str:
        """The run's stream: every event but those a Larry's stream has (below)."""
        return self.prefix + self.events_stream

    def larry_stream(self, larry: str) -> str:
        """A Larry's own stream: the events about its work alone, which only its own processes
        (and readers of the whole run) wait for (runtime.coordination.events says which)."""
        return f"{self.stream}:{larry}"

    @property
    def event_seq(self) -> str:
        """The counter every stream's entry IDs take their sequence part from, so IDs order the
        events of all the streams (``_`` is in no Larry id: no Larry's stream is named so)."""
        return f"{self.stream}:_seq"

    @property
    def streamed_larrys(self) -> str:
        """The set of Larrys that have a stream of their own: how a reader of the whole run finds them."""
        return self._k("phase", "larrys")

    # -- phases (one per Larry) -------------------------------------------------
    def phase_status(self, larry: str) -> str:
        return self._k("phase", larry, "status")

    def phase_progress(self, larry: str) -> str:
        return self._k("phase", larry, "progress")

    def phase_started_at(self, larry: str) -> str:
        return self._k("phase", larry, "started_at")

    def phase_completed_at(self, larry: str) -> str:
        return self._k("phase", larry, "completed_at")

    def phase_tasks(self, larry: str) -> str:
        return self._k("phase", larry, "tasks")

    def phase_workers(self, larry: str) -> str:
        """Seed 001's ``phase:{larry}:workers``: the set of the Larry's worker names."""
        return self._k("phase", larry, "workers")

    def phase_findings(self, larry: str) -> str:
        """Seed 001's ``phase:{larry}:findings``: a hash, CVE severity -> count found."""
        return self._k("phase", larry, "findings")

    def phase_figure(self, larry: str, name: str, track: str | None = None) -> str:
        """Seed 001's ``phase:{larry}:{name}`` (``prs_created``) and, for one master's track,
        ``phase:{larry}:{track}:{name}`` (``phase:larry-03:inventory:assets_discovered``)."""
        return self._k("phase", larry, *((track,) if track else ()), name)

    # -- tasks ------------------------------------------------------------------
    def task_lock(self, task_id: str) -> str:
        return self._k("task", "lock", task_id)

    def task_status(self, task_id: str) -> str:
        return self.task_status_prefix + task_id

    def task_home(self, task_id: str) -> str:
        """The id of the Larry that defined the task (its events go to that Larry's stream)."""
        return self._k("task", "home", task_id)

    @property
    def task_status_prefix(self) -> str:
        return self._k("task", "status", "")

    def task_fence(self, task_id: str) -> str:
        return self._k("task", "fence", task_id)

    def task_deps(self, task_id: str) -> str:
        return self._k("task", "deps", task_id)

    def task_result(self, task_id: str) -> str:
        return self._k("task", "result", task_id)

    # -- workers ----------------------------------------------------------------
    def worker_master(self, worker_id: str) -> str:
        return self._k("worker", worker_id, "master")

    def worker_node(self, worker_id: str) -> str:
        return self._k("worker", worker_id, "node")

    def worker_status(self, worker_id: str) -> str:
        return self._k("worker", worker_id, "status")

    def worker_paused(self, worker_id: str) -> str:
        """Set (to the reason) while the worker's coordinator has it paused (a critical_cve alert)."""
        return self._k("worker", worker_id, "paused")

    def worker_terminate(self, worker_id: str) -> str:
        """Set (to the reason) by a WORKER_TERMINATE until the worker acts on it."""
        return self._k("worker", worker_id, "terminate")

    @property
    def worker_heartbeats(self) -> str:
        return self._k("worker", "heartbeats")

    def phase_report(self, larry: str) -> str:
        """The Larry's final report (JSON), for a converge that cannot mount the Larry's volume."""
        return self._k("phase", larry, "report")

    @property
    def task_queue(self) -> str:
        """Seed 004's task queue: a sorted set of the unfinished tasks, lowest score first
        (:func:`runtime.coordination.tasks.queue_score`: priority, then plan order)."""
        return self._k(self.schema, "tasks", "queue")

    @property
    def task_queue_entries(self) -> str:
        """Each queued task's entry, task id -> JSON ``{task_id, master, priority, created_at,
        dependencies}`` (kept once the task leaves the queue: what was queued, and when)."""
        return self._k(self.schema, "tasks", "queue", "entries")

    def task_plan(self, task_id: str) -> str:
        """What the task's master planned for it (JSON: master, order, priority, note); the
        dependency graph is never changed by it."""
        return self._k("task", "plan", task_id)

    # -- masters ----------------------------------------------------------------
    def master_duties(self, larry: str, master: str) -> str:
        """A master's finished duties: duty id -> its outcome (JSON), so a restart skips them."""
        return self._k("master", larry, master, "duties")

    def master_silent(self, larry: str, master: str) -> str:
        """Set (to when it was declared) once the master's process was found silent past its grace."""
        return self._k("master", larry, master, "silent")

    def master_report(self, larry: str, master: str) -> str:
        """The master's own part of its Larry's report (JSON), written once its duties are over."""
        return self._k("master", larry, master, "report")

    # -- metrics ----------------------------------------------------------------
    def metric(self, larry: str, name: str) -> str:
        return self._k("metrics", larry, name)

    def tokens_used(self, larry: str) -> str:
        """Seed 001's ``tokens:{larry}:used``: what the Larry's account has committed."""
        return self._k("tokens", larry, "used")

    # -- seed 004's schema (Appendix B) ------------------------------------------
    def schema_worker(self, worker_id: str) -> str:
        """``{ns}:workers:{id}``: status, started_at, progress, tokens_used, master."""
        return self._k(self.schema, "workers", worker_id)

    def schema_master(self, master: str) -> str:
        """``{ns}:masters:{name}``: status, tasks_active, tokens_used, workers_spawned, last_heartbeat."""
        return self._k(self.schema, "masters", master)

    def schema_series(self, metric: str) -> str:
        """``{ns}:metrics:{name}``: a stream, one entry (``value``) per change; the entry id is
        its time (the seed's TIMESERIES, which Debian's Redis lacks)."""
        return self._k(self.schema, "metrics", metric)

    @property
    def handoffs(self) -> str:
        """Every master-to-master handoff, id -> JSON (runtime.coordination.handoffs)."""
        return self._k(self.schema, "handoffs", "all")

    @property
    def handoff_seq(self) -> str:
        return self._k(self.schema, "handoffs", "seq")

    def published(self, digest: str) -> str:
        """Marks a message published on a bridged channel for a minute (its digest), so it is recorded on
        the stream once (runtime.coordination.bridge)."""
        return self._k(self.schema, "events", "published", digest)

    @property
    def notices(self) -> str:
        """The DEPENDENCY_MET / RESOURCE_CONFLICT notices announced: id -> when (runtime.coordination.notices)."""
        return self._k(self.schema, "notices", "sent")

    # -- seed 004's other channels (MASTER COORDINATION STRATEGY) ----------------
    def schema_channel(self, group: str, name: str) -> str:
        """``{ns}:masters:handoff|dependencies``, ``{ns}:workers:spawn|control|status``."""
        return self._k(self.schema, group, name)

    # -- token ledger -----------------------------------------------------------
    def token_account(self, account: str) -> str:
        """One account's hash (limit, reserved, committed, forced, granted, lent)."""
        return self._k("tokens", "acct", account)

    @property
    def token_ops(self) -> str:
        """Every ledger operation by op id."""
        return self._k("tokens", "ops")

    @property
    def token_draws(self) -> str:
        """Every loan of the emergency reserve, in order (JSON: who, priority, why, how much)."""
        return self._k("tokens", "draws")

    @property
    def token_open(self) -> str:
        """Reservations not yet committed or refunded: op id -> ``amount|path``."""
        return self._k("tokens", "open")

    # -- escalations to a human -------------------------------------------------
    def escalation(self, escalation_id: str) -> str:
        """One escalation's hash (from, issue, severity, options, recommendation, status ...)."""
        return self._k("escalation", escalation_id)

    @property
    def escalations(self) -> str:
        """Every escalation id in the order raised (a list); ``escalation:seq`` numbers them."""
        return self._k("escalation", "index")

    @property
    def escalation_seq(self) -> str:
        return self._k("escalation", "seq")

    @property
    def run_approval(self) -> str:
        """The operator's sign-off of the run (JSON: by, at), set once."""
        return self._k("escalation", "run-approval")

    def escalation_key(self, dedupe: str) -> str:
        """The id of the escalation raised for ``dedupe`` (one per blocked charge)."""
        return self._k("escalation", "key", dedupe)

    # -- barriers ---------------------------------------------------------------
    def barrier_arrived(self, name: str) -> str:
        return self._k("barrier", name, "arrived")

    def barrier_released(self, name: str) -> str:
        return self._k("barrier", name, "released")

    # -- the run ----------------------------------------------------------------
    @property
    def run_lock(self) -> str:
        """Held by the one `larry run` using this Redis and prefix (runtime.support.run_lock)."""
        return self._k("run", "lock")

    # -- SCAN MATCH patterns (operators' tools; never KEYS) ----------------------
    #: the key families above: every key a run leaves, except the event streams
    #: seed 004's schema families, under ``{schema}:``
    SCHEMA_FAMILIES = ("tasks", "workers", "masters", "metrics", "handoffs", "notices")
    RUN_FAMILIES = ("phase", "task", "worker", "master", "metrics", "tokens", "escalation", "barrier")

    def run_patterns(self) -> tuple[str, ...]:
        """Patterns matching every key of a run: ``phase:*``, ``task:*``, ``worker:*`` (seed
        001 "Post-Execution Cleanup"), ``master:*``, ``metrics:*``, ``tokens:*``, ``barrier:*``,
        seed 004's ``{ns}:tasks|workers|masters|metrics:*`` and the streams."""
        p = glob_escape(self.prefix)
        families = self.RUN_FAMILIES + tuple(f"{self.schema}:{part}" for part in self.SCHEMA_FAMILIES)
        return tuple(f"{p}{glob_escape(family)}:*" for family in families) + (
            glob_escape(self.stream), glob_escape(self.larry_stream("")) + "*")


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis glob pattern."""
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)
