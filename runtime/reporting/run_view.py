"""The operator's commands: ``larry status``, ``larry preflight`` and ``larry cleanup``.

They read a run's state from Redis through the runtime's primitives and compare it with the
plan; :func:`read_run` is also what ``larry dashboard`` shows.

``larry status [--json]``
    per Larry: phase status, progress, started/completed, task counts, ledger snapshot,
    findings and tasks in progress; the meta-coordinator's reserve pool; the workers with
    the age of their last heartbeat (the primary's clock); every barrier's arrivals.
``larry preflight``
    a checklist: Redis reachable and writable (a primary), Sentinel quorum (``SENTINEL
    CKQUORUM``) when Sentinel is configured, the plan's budget arithmetic
    (:mod:`components.config`), and, once a run's ledger exists, its limits equal to the
    plan's. Exit status 1 when a check failed.
``larry cleanup [--dry-run] [--force]``
    removes the run's keys (:meth:`runtime.keys.Keyspace.run_patterns`: the seed's
    ``phase:*``, ``task:*``, ``worker:*`` plus ``metrics:*``, ``tokens:*``, ``barrier:*`` and
    the event stream) with SCAN and UNLINK, never KEYS or FLUSHALL. It refuses (exit 2)
    unless every phase has ended and an archive under ``--coordination-dir/archives`` was
    written after the last phase ended (``larry converge`` writes it), or ``--force``.

Findings are read from the tasks' fenced results (``task:result:{id}``): the ``findings``
object of each result's data (the worker's protocol reports), summed with
:func:`runtime.protocol.merge_findings`.
"""
from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable

import redis
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from plan import environment as envvar
from plan.model import Larry, StackConfig
from plan.statuses import TERMINAL
from runtime.agent.protocol import merge_findings
from runtime.cli import (
    UsageError,
    add_coordination_dir,
    add_key_prefix,
    add_plan_arguments,
    add_redis_arguments,
    load_plan,
    open_redis,
)
from runtime.coordination.connection import RedisSettings
from runtime.coordination.keys import CONVERGENCE_BARRIER, REPORTS_BARRIER, Keyspace
from runtime.coordination.ledger import Ledger
from runtime.coordination.phases import PhaseTracker
from runtime.coordination.registry import WorkerRegistry

#: How long an operator's command keeps retrying an unreachable Redis before saying so.
OPERATOR_RETRY_SECONDS = 3.0
#: A worker whose last heartbeat is older than this is not counted as active (the registry's grace).
HEARTBEAT_GRACE_MS = 15_000
#: Slack between the Redis primary's clock (phase end) and the file system's (archive mtime).
CLOCK_SLACK = timedelta(seconds=5)
TASK_STATUSES = ("pending", "in_progress", "completed", "failed")
UNLINK_BATCH = 500
#: The barriers a run passes, in order; the Larrys are the participants of both.
BARRIERS = (CONVERGENCE_BARRIER, REPORTS_BARRIER)


# --------------------------------------------------------------------------- arguments, connection

def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The plan, Redis and key prefix: what every command reading a run needs."""
    add_plan_arguments(parser)
    add_redis_arguments(parser)
    add_key_prefix(parser)


def configure_status(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the state as one JSON document")


def configure_preflight(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)


def configure_cleanup(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    add_coordination_dir(parser)
    parser.add_argument("--dry-run", action="store_true", help="count the keys that would be removed, remove none")
    parser.add_argument("--force", action="store_true", help="remove the keys even if the run was not archived")


def impatient_env(retry_for: float) -> dict[str, str]:
    """The environment with Redis retries cut to ``retry_for`` s: an operator wants an answer,
    not the runtime's 30 s ride through a failover."""
    try:
        current = float(os.environ.get(envvar.REDIS_RETRY_FOR) or retry_for)
    except ValueError:
        current = retry_for
    return {**os.environ, envvar.REDIS_RETRY_FOR: str(min(current, retry_for))}


def open_run(args: argparse.Namespace,
             retry_for: float = OPERATOR_RETRY_SECONDS) -> tuple[StackConfig, redis.Redis, Keyspace]:
    """Plan, a client that has answered a PING (else one line, exit 2) and the keyspace."""
    cfg = load_plan(args)
    client, ks = open_redis(args, cfg, impatient_env(retry_for))
    return cfg, client, ks


def describe(r: redis.Redis) -> str:
    """Where the client points: ``redis://host:port/db`` or the Sentinel master's name."""
    pool = r.connection_pool
    if getattr(pool, "service_name", None):
        return f"Sentinel master {pool.service_name!r}"
    kw = pool.connection_kwargs
    return f"redis://{kw.get('host')}:{kw.get('port')}/{kw.get('db', 0)}"


# --------------------------------------------------------------------------- a run's state

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
    counts = Counter(status or "pending" for status in statuses)
    state["tasks"] = {"total": len(ids), **{s: counts.get(s, 0) for s in TASK_STATUSES}}
    state["active_tasks"] = [
        {"task": task, "owner": holder, "orphaned": holder is None}
        for task, status, holder in zip(ids, statuses, holders) if status == "in_progress"]
    findings: dict = {}
    for raw in results:
        data = _json_object(raw)
        if isinstance(data.get("findings"), dict):
            merge_findings(findings, data["findings"])
    state["findings"] = findings
    ledger = Ledger(r, ks, larry.id).snapshot()
    ledger.pop("pool")
    state["ledger"] = ledger
    return state


def _json_object(raw: str | None) -> dict:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def read_workers(r: redis.Redis, ks: Keyspace, cfg: StackConfig) -> tuple[list[dict], int]:
    """Heartbeating workers with their Larry and heartbeat age, and the primary's clock (ms)."""
    seconds, micros = r.time()
    now_ms = seconds * 1000 + micros // 1000
    larry_of = larry_of_worker(cfg)
    workers = []
    for worker, info in sorted(WorkerRegistry(r, ks).workers().items()):
        age_ms = max(0, now_ms - info["last_beat_ms"])
        workers.append({"worker": worker, "larry": larry_of(worker, info["master"]), "node": info["node"],
                        "status": info["status"], "heartbeat_age_s": round(age_ms / 1000, 1),
                        "alive": age_ms <= HEARTBEAT_GRACE_MS})
    return workers, now_ms


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
    left = r.get(ks.token_pool)
    return {"left": None if left is None else int(left), "plan": cfg.budget.meta.emergency_reserve_tokens}


def read_run(r: redis.Redis, ks: Keyspace, cfg: StackConfig) -> dict:
    """The whole state ``larry status --json`` prints."""
    larrys = [read_larry(r, ks, larry) for larry in cfg.larrys]
    workers, now_ms = read_workers(r, ks, cfg)
    count_active(larrys, workers)
    return {"stack": cfg.stack, "time": iso_ms(now_ms), "larrys": larrys, "reserve_pool": read_pool(r, ks, cfg),
            "workers": workers, "barriers": read_barriers(r, ks, (larry.id for larry in cfg.larrys))}


def count_active(larrys: list[dict], workers: list[dict]) -> None:
    """Set each Larry's ``workers_active``: its workers heartbeating within the grace, not finished."""
    active = Counter(w["larry"] for w in workers if w["alive"] and w["status"] not in ("completed", "dead"))
    for state in larrys:
        state["workers_active"] = active.get(state["larry"], 0)


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(stamp: str | None) -> datetime | None:
    """An ISO 8601 timestamp of the runtime (``...Z``), or None."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


# --------------------------------------------------------------------------- presentation helpers

def findings_items(findings: dict) -> list[str]:
    """The seed's metrics: ``Critical: 3``, ``High: 4`` ..., ``Assets: 87``, ``PRs: 2``, ``Coverage: +8.0%``."""
    items = [f"{severity.capitalize()}: {n}" for severity, n in (findings.get("cves") or {}).items() if n]
    items += [f"{label}: {findings[key]}" for key, label in (("assets_discovered", "Assets"), ("prs_created", "PRs"))
              if findings.get(key)]
    if findings.get("coverage_delta"):
        items.append(f"Coverage: {findings['coverage_delta']:+.1f}%")
    return items


def findings_text(findings: dict) -> str:
    return " | ".join(findings_items(findings))


def tokens_text(ledger: dict) -> str:
    """Used (committed + reserved) of the limit, in thousands as the seed writes budgets (111k)."""
    used = ledger["committed"] + ledger["reserved"]
    text = f"{used / 1000:,.1f}k / {ledger['limit'] / 1000:,.0f}k"
    return text + (f" +{ledger['emergency'] / 1000:,.0f}k reserve" if ledger["emergency"] else "")


def barrier_text(barrier: dict, when: Callable[[str], str] = str) -> Text:
    """``released <when>`` or ``1/3 arrived, waiting for larry-01, larry-03``."""
    if barrier["released_at"]:
        return Text(f"released {when(barrier['released_at'])}", style="green")
    return Text(f"{len(barrier['arrived'])}/{len(barrier['arrived']) + len(barrier['missing'])} arrived, "
                f"waiting for {', '.join(barrier['missing'])}", style="yellow")


STATUS_STYLES = {"pending": "dim", "in_progress": "yellow", "completed": "green", "failed": "bold red"}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


# --------------------------------------------------------------------------- larry status

def status(args: argparse.Namespace) -> int:
    cfg, r, ks = open_run(args)
    state = read_run(r, ks, cfg)
    if args.json:
        print(json.dumps(state, indent=2))
        return 0
    console = Console()
    console.print(Text(f"Stack {state['stack']} · Redis time {state['time']}", style="bold"))
    for table in (_phases_table(state), _findings_table(state), _ledger_table(state), _workers_table(state)):
        console.print()
        console.print(table)
    console.print()
    for barrier in state["barriers"]:
        console.print(Text.assemble("Barrier ", (barrier["name"], "bold"), ": ", barrier_text(barrier)))
    return 0


def _table(title: str, left: tuple[str, ...], right: tuple[str, ...] = ()) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, show_edge=False,
                  padding=(0, 0, 0, 1), pad_edge=False)
    for column in left + right:
        table.add_column(column, justify="right" if column in right else "left")
    return table


def _phases_table(state: dict) -> Table:
    table = _table("Phases (times UTC)", ("Larry", "Status"),
                   ("Progress", "Started", "Completed", "Done", "Running", "Failed"))
    for larry in state["larrys"]:
        tasks = larry["tasks"]
        table.add_row(larry["larry"], status_text(larry["status"]), f"{larry['progress']}%",
                      _clock(larry["started_at"]), _clock(larry["completed_at"]),
                      f"{tasks['completed']}/{tasks['total']}", str(tasks["in_progress"]), str(tasks["failed"]))
    return table


def _clock(stamp: str | None) -> str:
    moment = parse_time(stamp)
    return moment.astimezone(timezone.utc).strftime("%H:%M:%S") if moment else "-"


def _findings_table(state: dict) -> Table:
    table = _table("Findings", ("Larry", "Phase", "Findings"))
    for larry in state["larrys"]:
        table.add_row(larry["larry"], larry["phase"], findings_text(larry["findings"]) or "-")
    return table


def _ledger_table(state: dict) -> Table:
    pool = state["reserve_pool"]
    left = "not initialised" if pool["left"] is None else f"{pool['left']:,}"
    table = _table(f"Token ledger · reserve pool {left} of {pool['plan']:,}", ("Larry",),
                   ("Limit", "Reserved", "Committed", "Emergency drawn", "Available"))
    for larry in state["larrys"]:
        ledger = larry["ledger"]
        table.add_row(larry["larry"], *(f"{ledger[k]:,}" for k in
                                        ("limit", "reserved", "committed", "emergency", "available")))
    return table


def _workers_table(state: dict) -> Table:
    table = _table(f"Workers ({len(state['workers'])} heartbeating)", ("Worker", "Larry", "Node", "Status"),
                   ("Heartbeat age",))
    for worker in state["workers"]:
        age = Text(f"{worker['heartbeat_age_s']:.1f}s", style="" if worker["alive"] else "bold red")
        table.add_row(worker["worker"], worker["larry"] or "?", worker["node"] or "?", worker["status"] or "?", age)
    return table


# --------------------------------------------------------------------------- larry preflight

@dataclass(frozen=True)
class Check:
    name: str
    outcome: str  # "ok" | "failed" | "skipped"
    detail: str


def preflight(args: argparse.Namespace) -> int:
    cfg = load_plan(args)
    checks = [Check("plan", "ok", f"{cfg.source}: {len(cfg.larrys)} Larrys, {len(cfg.workers)} workers, "
                                  f"{sum(len(larry.tasks) for larry in cfg.larrys)} tasks")]
    try:
        r, ks = open_redis(args, cfg, impatient_env(OPERATOR_RETRY_SECONDS))
    except UsageError as exc:
        checks.append(Check("Redis reachable", "failed", str(exc)))
        r = ks = None
    else:
        checks.append(check_redis(r))
    checks.append(check_sentinel_quorum(RedisSettings.from_env()))
    checks += check_plan_budgets(cfg)
    if checks[1].outcome == "ok":
        checks.append(check_ledger(r, ks, cfg))
    else:
        checks.append(Check("ledger matches plan", "skipped", "Redis unreachable"))
    print_checklist(checks)
    return 1 if any(check.outcome == "failed" for check in checks) else 0


def check_redis(r: redis.Redis) -> Check:
    """A primary (a replica would refuse every write of the run)."""
    name = "Redis reachable"
    try:
        version = r.info("server")["redis_version"]
        role = r.info("replication")["role"]
    except redis.exceptions.RedisError as exc:
        return Check(name, "failed", f"{describe(r)}: {exc}")
    if role != "master":
        return Check(name, "failed", f"{describe(r)} is a {role}, not a primary: writes would fail")
    return Check(name, "ok", f"{describe(r)}: redis {version}, primary")


def check_sentinel_quorum(settings: RedisSettings) -> Check:
    """SENTINEL CKQUORUM on the first sentinel that answers (it counts the usable sentinels itself)."""
    name = "Sentinel quorum"
    if not settings.sentinels:
        return Check(name, "skipped", "no Sentinel configured (LARRY_REDIS_SENTINELS unset)")
    errors = []
    for host, port in settings.sentinels:
        client = redis.Redis(host, port, password=settings.sentinel_password, decode_responses=True,
                             socket_timeout=settings.connect_timeout, socket_connect_timeout=settings.connect_timeout)
        try:
            reply = client.execute_command("SENTINEL", "CKQUORUM", settings.master_name)
        except redis.exceptions.ResponseError as exc:  # NOQUORUM ... / unknown master
            return Check(name, "failed", f"sentinel {host}:{port}: {exc}")
        except redis.exceptions.RedisError as exc:
            errors.append(f"{host}:{port} {exc}")
            continue
        finally:
            client.close()
        return Check(name, "ok", f"sentinel {host}:{port}: {reply}")
    return Check(name, "failed", "no sentinel answered: " + "; ".join(errors))


def check_plan_budgets(cfg: StackConfig) -> list[Check]:
    """The plan's own arithmetic (components.config): each Larry within its budget, all within the system's."""
    over = [f"{larry.id} allocates {larry.allocated_tokens:,} > tokenBudget {larry.token_budget:,}"
            for larry in cfg.larrys if larry.allocated_tokens > larry.token_budget]
    fits = ", ".join(f"{larry.id} {larry.allocated_tokens:,}/{larry.token_budget:,}" for larry in cfg.larrys)
    checks = [Check("Larry budgets", "failed" if over else "ok", "; ".join(over) or fits)]
    used, allowed = cfg.allocated_tokens, cfg.budget.system_tokens
    checks.append(Check("system budget", "failed" if used > allowed else "ok",
                        f"plan allocates {used:,} of {allowed:,} (Larrys {cfg.larry_tokens:,} + meta-coordinator "
                        f"{cfg.budget.meta.total_tokens:,})"))
    return checks


def check_ledger(r: redis.Redis, ks: Keyspace, cfg: StackConfig) -> Check:
    """Once a run initialised its ledger: limits equal each Larry's tokenBudget, and the reserve
    pool plus what the Larrys drew from it equals the plan's emergency reserve."""
    name = "ledger matches plan"
    snapshots = {larry.id: Ledger(r, ks, larry.id).snapshot() for larry in cfg.larrys}
    exists = {larry_id: bool(r.exists(ks.tokens(larry_id, "limit"))) for larry_id in snapshots}
    if not any(exists.values()):
        return Check(name, "skipped", "no run ledger in Redis yet")
    problems = [f"{larry.id}: no ledger limit" if not exists[larry.id] else
                f"{larry.id}: ledger limit {snapshots[larry.id]['limit']:,} != plan {larry.token_budget:,}"
                for larry in cfg.larrys
                if not exists[larry.id] or snapshots[larry.id]["limit"] != larry.token_budget]
    pool = read_pool(r, ks, cfg)
    drawn = sum(snapshot["emergency"] for snapshot in snapshots.values())
    if pool["left"] is None:
        problems.append("reserve pool not initialised")
    elif pool["left"] + drawn != pool["plan"]:
        problems.append(f"reserve pool {pool['left']:,} + drawn {drawn:,} != plan {pool['plan']:,}")
    if problems:
        return Check(name, "failed", "; ".join(problems))
    return Check(name, "ok", f"limits equal the plan's; reserve pool {pool['left']:,} + drawn {drawn:,}")


_MARKS = {"ok": ("✔", "green"), "failed": ("✘", "bold red"), "skipped": ("–", "dim")}


def print_checklist(checks: list[Check]) -> None:
    table = Table(show_header=False, box=None, padding=(0, 1))
    for check in checks:
        mark, style = _MARKS[check.outcome]
        table.add_row(Text(mark, style=style), Text(check.name, style="bold"), Text(check.outcome, style=style),
                      check.detail)
    Console().print(table)


# --------------------------------------------------------------------------- larry cleanup

def cleanup(args: argparse.Namespace) -> int:
    cfg, r, ks = open_run(args)
    if not args.force:
        refusal = cleanup_refusal(r, ks, cfg, Path(args.coordination_dir) / "archives")
        if refusal:
            raise UsageError(f"refusing: {refusal}; pass --force to remove the keys anyway")
    counts = remove_run_keys(r, ks, dry_run=args.dry_run)
    total = sum(counts.values())
    detail = ", ".join(f"{pattern} {n}" for pattern, n in counts.items() if n)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {total} key{'s' if total != 1 else ''}" + (f" ({detail})" if detail else ""))
    return 0


def cleanup_refusal(r: redis.Redis, ks: Keyspace, cfg: StackConfig, archives: Path) -> str | None:
    """Why the run's keys must stay (not finished, not archived since it finished), or None."""
    phases = [PhaseTracker(r, ks, larry.id).snapshot() for larry in cfg.larrys]
    running = [f"{p['larry']} is {p['status']}" for p in phases if p["status"] not in TERMINAL]
    if running and any(p["started_at"] for p in phases):
        return "the run has not finished (" + ", ".join(running) + ")"
    ended = max((t for t in (parse_time(p["completed_at"]) for p in phases) if t), default=None)
    found = sorted(archives.glob("*.tar.gz")) if archives.is_dir() else []
    if not found:
        return f"no archive under {archives} (run `larry converge` first)"
    newest = max(datetime.fromtimestamp(path.stat().st_mtime, timezone.utc) for path in found)
    if ended and newest < ended - CLOCK_SLACK:
        return (f"the newest archive under {archives} ({newest.isoformat(timespec='seconds')}) is older than "
                f"the run's end ({ended.isoformat(timespec='seconds')})")
    return None


def remove_run_keys(r: redis.Redis, ks: Keyspace, *, dry_run: bool = False) -> dict[str, int]:
    """SCAN each of the run's patterns and UNLINK what matches; returns keys removed per pattern."""
    counts: dict[str, int] = {}
    seen: set[str] = set()
    for pattern in ks.run_patterns():
        keys = sorted(set(r.scan_iter(match=pattern, count=1000)) - seen)
        seen.update(keys)
        if dry_run:
            counts[pattern] = len(keys)
            continue
        removed = 0
        for start in range(0, len(keys), UNLINK_BATCH):
            removed += r.unlink(*keys[start:start + UNLINK_BATCH])
        counts[pattern] = removed
    return counts

