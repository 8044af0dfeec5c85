"""The read model of a run: its state in Redis, read through the runtime's primitives and
laid beside the plan, as ``larry status --json`` prints it and ``larry dashboard`` shows it.

:func:`read_run` is the whole state: per Larry its phase, task counts, tasks in progress
(with their lease holder, or flagged orphaned), findings and ledger; the meta-coordinator's
reserve pool; the heartbeating workers with the age of their last beat by the primary's
clock; every barrier's arrivals. The other readers are its parts, for a dashboard that
re-reads only what an event touched. At fleet size a view reads a page of Larrys
(:func:`select_larrys`): their tasks and workers by name, and every Larry's phase in brief
(:func:`read_fleet`), so its work follows the page, not the fleet.

Findings are read from the tasks' fenced results (``task:result:{id}``): the ``findings``
object of each result's data (the worker's protocol reports), summed with
:func:`runtime.agent.protocol.merge_findings`; a result whose findings are not of the
protocol's shape counts as nothing found. Reads are not one transaction: a state
changing while it is read may show parts from either side of the change.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Callable, Collection, Iterable

import redis

from plan.model import Larry, StackConfig, meta_account
from plan.statuses import TaskStatus, WorkerStatus
from runtime.agent.protocol import ProtocolError, merge_findings, validate_findings
from runtime.coordination.escalations import Escalations
from runtime.coordination.keys import CONVERGENCE_BARRIER, REPORTS_BARRIER, Keyspace
from runtime.coordination.ledger import snapshot
from runtime.coordination.phases import PhaseTracker
from runtime.coordination.registry import WorkerRegistry
from runtime.support.timestamps import from_ms

#: A worker whose last heartbeat is older than this is not counted as active (the registry's grace).
HEARTBEAT_GRACE_MS = 15_000
#: The barriers a run passes, in order; the Larrys are the participants of both.
BARRIERS = (CONVERGENCE_BARRIER, REPORTS_BARRIER)
#: Worker statuses of a process that will do nothing more.
FINISHED_WORKERS = frozenset({WorkerStatus.COMPLETED, WorkerStatus.DEAD})


def describe(r: redis.Redis) -> str:
    """Where the client points: ``redis://host:port/db`` or the Sentinel master's name
    (never the password)."""
    pool = r.connection_pool
    if getattr(pool, "service_name", None):
        return f"Sentinel master {pool.service_name!r}"
    kw = pool.connection_kwargs
    return f"redis://{kw.get('host')}:{kw.get('port')}/{kw.get('db', 0)}"


def larry_of_worker(cfg: StackConfig) -> Callable[[str, str | None], str | None]:
    """Maps (worker id, its ``worker:{id}:master``) to a Larry of the plan, or None."""
    by_worker = {w.name: larry.id for larry, w in cfg.workers}
    by_master = {m.name: larry.id for larry in cfg.larrys for m in larry.masters}
    larrys = {larry.id for larry in cfg.larrys}

    def lookup(worker_id: str, master: str | None) -> str | None:
        if worker_id in by_worker:
            return by_worker[worker_id]
        if master in larrys:
            return master
        return by_master.get(master)
    return lookup


def read_larry(r: redis.Redis, ks: Keyspace, larry: Larry) -> dict:
    """One Larry's phase, tasks (from the plan, statuses from Redis), findings and ledger."""
    state = PhaseTracker(r, ks, larry.id).snapshot()
    state["phase"] = larry.phase
    ids = [task.id for task in larry.tasks]
    pipe = r.pipeline(transaction=False)
    pipe.mget([ks.task_status(t) for t in ids])
    pipe.mget([ks.task_lock(t) for t in ids])
    for task in ids:
        pipe.hget(ks.task_result(task), "data")
    statuses, holders, *results = pipe.execute()
    counts = Counter(status or TaskStatus.PENDING for status in statuses)
    state["tasks"] = {"total": len(ids), **{str(s): counts.get(s, 0) for s in TaskStatus}}
    state["active_tasks"] = [
        {"task": task, "owner": holder, "orphaned": holder is None}
        for task, status, holder in zip(ids, statuses, holders) if status == TaskStatus.IN_PROGRESS]
    findings: dict = {}
    for raw in results:
        try:
            merge_findings(findings, validate_findings(_json_object(raw).get("findings", {})))
        except ProtocolError:
            pass  # written by something that did not speak the protocol: shows as nothing found
    state["findings"] = findings
    ledger = snapshot(r, ks, larry.id)
    ledger.pop("pool")
    state["ledger"] = ledger
    return state


def _json_object(raw: str | None) -> dict:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def read_workers(r: redis.Redis, ks: Keyspace, cfg: StackConfig,
                 larrys: Collection[str] | None = None) -> tuple[list[dict], int]:
    """Heartbeating workers with their Larry and heartbeat age, and the primary's clock (ms).
    ``larrys``: only the plan's workers of those Larrys, looked up by name (the work is theirs,
    not the whole fleet's registry); None: every worker in the registry."""
    seconds, micros = r.time()
    now_ms = seconds * 1000 + micros // 1000
    larry_of = larry_of_worker(cfg)
    registered = WorkerRegistry(r, ks).workers() if larrys is None else \
        _registered(r, ks, [w.name for larry, w in cfg.workers if larry.id in larrys])
    workers = []
    for worker, info in sorted(registered.items()):
        age_ms = max(0, now_ms - info["last_beat_ms"])
        workers.append({"worker": worker, "larry": larry_of(worker, info["master"]), "node": info["node"],
                        "status": info["status"], "heartbeat_age_s": round(age_ms / 1000, 1),
                        "alive": age_ms <= HEARTBEAT_GRACE_MS})
    return workers, now_ms


def _registered(r: redis.Redis, ks: Keyspace, names: list[str]) -> dict[str, dict]:
    """:meth:`WorkerRegistry.workers` of the workers ``names`` only."""
    beats = r.zmscore(ks.worker_heartbeats, names) if names else []
    beating = [(name, beat) for name, beat in zip(names, beats) if beat is not None]
    pipe = r.pipeline(transaction=False)
    for name, _ in beating:
        pipe.mget(ks.worker_master(name), ks.worker_node(name), ks.worker_status(name))
    return {w: {"master": m, "node": n, "status": s, "last_beat_ms": int(beat)}
            for (w, beat), (m, n, s) in zip(beating, pipe.execute() if beating else [])}


def read_fleet(r: redis.Redis, ks: Keyspace, cfg: StackConfig) -> dict:
    """Every Larry's phase in brief, from what its coordinator keeps up to date (status and
    progress: four keys a Larry, however many tasks it has): how many Larrys are in each
    status, and the Larrys in progress order, least first."""
    phases = [PhaseTracker(r, ks, larry.id).snapshot() for larry in cfg.larrys]
    return {"larrys": len(phases), "statuses": dict(Counter(str(p["status"]) for p in phases)),
            "progress": [{"larry": p["larry"], "status": p["status"], "progress": p["progress"]}
                         for p in sorted(phases, key=lambda p: (p["progress"], p["larry"]))]}


def select_larrys(cfg: StackConfig, larry: str | None, page: int, page_size: int) -> tuple[list[Larry], str]:
    """The Larrys a view shows, and how it says which: the one ``larry`` names, else page
    ``page`` (from 1) of ``page_size``; ValueError naming what was expected."""
    if larry is not None:
        chosen = [each for each in cfg.larrys if each.id == larry]
        if not chosen:
            raise ValueError(f"--larry {larry!r}: expected one of {', '.join(cfg.larry_ids)}")
        return chosen, f"Larry {larry}"
    if page_size < 1:
        raise ValueError(f"--page-size {page_size}: expected 1 or more")
    pages = max(1, -(-len(cfg.larrys) // page_size))
    if not 1 <= page <= pages:
        raise ValueError(f"--page {page} of {page_size} Larrys: expected a page from 1 to {pages}")
    chosen = cfg.larrys[(page - 1) * page_size:page * page_size]
    if pages == 1:
        return chosen, f"all {len(chosen)} Larrys"
    first = (page - 1) * page_size + 1
    return chosen, f"Larrys {first}-{first + len(chosen) - 1} of {len(cfg.larrys)} (page {page} of {pages})"


def read_barriers(r: redis.Redis, ks: Keyspace, participants: Iterable[str]) -> list[dict]:
    """The run's barriers (convergence, reports): who arrived, who is missing, when it released."""
    participants = list(participants)
    barriers = []
    for name in BARRIERS:
        arrived = sorted(r.smembers(ks.barrier_arrived(name)))
        barriers.append({"name": name, "arrived": arrived,
                         "missing": [p for p in participants if p not in arrived],
                         "released_at": r.get(ks.barrier_released(name))})
    return barriers


def read_pool(r: redis.Redis, ks: Keyspace, cfg: StackConfig) -> dict:
    """The meta-coordinator's emergency reserve: what is left (None before a run set it) of the plan's."""
    limit, lent = r.hmget(ks.token_account(meta_account("reserve")), ("limit", "lent"))
    return {"left": None if limit is None else int(limit) - int(lent or 0),
            "plan": cfg.budget.meta.emergency_reserve_tokens}


def read_run(r: redis.Redis, ks: Keyspace, cfg: StackConfig, shown: list[Larry] | None = None) -> dict:
    """The state ``larry status --json`` prints: of every Larry, or of the Larrys ``shown``
    (their tasks, ledgers and workers; the fleet's phases in brief, barriers and escalations
    are the whole run's either way)."""
    chosen = cfg.larrys if shown is None else shown
    larrys = [read_larry(r, ks, larry) for larry in chosen]
    workers, now_ms = read_workers(r, ks, cfg, None if shown is None else {larry.id for larry in chosen})
    count_active(larrys, workers)
    return {"stack": cfg.stack, "time": from_ms(now_ms), "fleet": read_fleet(r, ks, cfg), "larrys": larrys,
            "reserve_pool": read_pool(r, ks, cfg), "workers": workers,
            "barriers": read_barriers(r, ks, cfg.larry_ids), "escalations": Escalations(r, ks).all()}


def count_active(larrys: list[dict], workers: list[dict]) -> None:
    """Set each Larry's ``workers_active``: its workers heartbeating within the grace, not finished."""
    active = Counter(w["larry"] for w in workers if w["alive"] and w["status"] not in FINISHED_WORKERS)
    for state in larrys:
        state["workers_active"] = active.get(state["larry"], 0)
