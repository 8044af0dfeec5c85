"""Seed 004's "SUCCESS CRITERIA" at system, master and worker level, and seed 001's
cross-validation ("Each Larry performs cross-validation"), computed from the Larrys' final
reports, the plan and what the meta-coordinator measured during the run.

Guaranteed: every criterion is derived from those inputs only, and each is ``met`` True,
False, or None when this run cannot know it (pod evictions and OOMKills are the kubelet's to
report: a run whose meta-coordinator has no pod status to read says so); only False fails the
plan (:func:`failed`). The seed's domain criteria that no report measures ("code quality
maintained", "Grafana dashboards created") are not invented here.

Not guaranteed: cross-validation is each Larry's checks of the others' reports as the
meta-coordinator runs them on its behalf, after the reports barrier; a Larry's own process does
not re-read the others' reports.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

from plan.model import StackConfig, utilisation
from plan.statuses import PhaseStatus, TaskStatus, WorkerStatus
from runtime.support.timestamps import parse

Report = dict[str, Any]

#: Seed 004 system level: "Token budget usage 70-90% (efficient but not wasteful)".
TOKEN_USE = (0.70, 0.90)
#: "Redis coordination latency <10ms average".
REDIS_LATENCY_MS = 10.0
#: "Execution completes in 45-60 minutes".
DURATION_MINUTES = (45, 60)
#: The meta-coordinator's name in seed 004.
COORDINATOR_MASTER = "coordinator-master"


@dataclass(frozen=True)
class Criterion:
    level: str  # system | master | worker | cross-validation
    subject: str
    name: str
    result: str
    met: bool | None  # None: this run cannot know it

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Measurements:
    """What the meta-coordinator saw: masters' first heartbeat (None: never), the workers that
    registered, Redis PING round trips (ms), catalog probes (answered, sent; None when the
    catalog is off), the run's duration and window (s, allowance included in the upper bound),
    the tokens the ledger committed (every master's accounts and the meta-coordinator's), and
    pod evictions/OOMKills (None when no pod status was readable)."""
    masters: Mapping[str, str | None]
    workers: Mapping[str, Mapping[str, str]]
    redis_latency_ms: tuple[float, ...]
    catalog_probes: tuple[int, int] | None
    duration_seconds: float
    window_seconds: tuple[float, float]
    speed: float
    tokens_used: int
    evictions: tuple[str, ...] | None = None


def failed(criteria: Iterable[Criterion]) -> list[Criterion]:
    return [c for c in criteria if c.met is False]


def evaluate(cfg: StackConfig, reports: list[Report], m: Measurements) -> list[Criterion]:
    return [*system_level(cfg, m), *master_level(cfg, reports, m), *worker_level(cfg, reports, m),
            *cross_validation(reports)]


def _pct(share: float) -> str:
    return f"{share:.1%}"


def system_level(cfg: StackConfig, m: Measurements) -> list[Criterion]:
    def row(name, result, met):
        return Criterion("system", "system", name, result, met)

    masters = [master.name for larry in cfg.larrys for master in larry.masters]
    active = [name for name in masters if m.masters.get(name)]
    plan_workers = {w.name: w.node for _, w in cfg.workers}
    seen = [name for name in plan_workers if name in m.workers]
    nodes = {plan_workers[name] for name in seen}
    used = m.tokens_used
    share = utilisation(used, cfg.budget.system_tokens)
    low, high = TOKEN_USE
    rows = [
        row(f"All {len(masters)} masters activated", f"{len(active)}/{len(masters)} heartbeating",
            len(active) == len(masters)),
        row(f"{len(plan_workers)} workers deployed across {len(set(plan_workers.values()))} nodes",
            f"{len(seen)} workers registered on {len(nodes)} nodes", len(seen) == len(plan_workers)),
        row(f"Token budget usage {low:.0%}-{high:.0%}",
            f"{used:,} of {cfg.budget.system_tokens:,} ({_pct(share)})", low <= share <= high),
    ]
    if m.evictions is None:
        rows.append(row("Zero pod evictions or OOMKills", "not knowable: no pod status readable by this run", None))
    else:
        rows.append(row("Zero pod evictions or OOMKills", ", ".join(m.evictions) or "none", not m.evictions))
    if m.redis_latency_ms:
        average = sum(m.redis_latency_ms) / len(m.redis_latency_ms)
        rows.append(row(f"Redis coordination latency < {REDIS_LATENCY_MS:g} ms average",
                        f"{average:.2f} ms average over {len(m.redis_latency_ms)} PINGs, max "
                        f"{max(m.redis_latency_ms):.2f} ms", average < REDIS_LATENCY_MS))
    else:
        rows.append(row(f"Redis coordination latency < {REDIS_LATENCY_MS:g} ms average", "not measured", False))
    if m.catalog_probes is not None:
        answered, sent = m.catalog_probes
        rows.append(row("Catalog API uptime 100%", f"{answered}/{sent} probes answered", sent > 0 and answered == sent))
    first, last = DURATION_MINUTES
    lower, upper = m.window_seconds
    plan_minutes = m.duration_seconds * m.speed / 60
    rows.append(row(f"Execution completes in {first}-{last} minutes (scaled ×{m.speed:g})",
                    f"{m.duration_seconds:.1f} s = {plan_minutes:.1f} plan minutes (window {lower:.1f}-{upper:.1f} s; "
                    + ("ahead of the plan" if m.duration_seconds < lower else "within it"
                       if m.duration_seconds <= upper else "over it") + ")",
                    m.duration_seconds <= upper))
    return rows


def _escalations_open(report: Report) -> list[str]:
    raised, decided = set(), set()
    for alert in report["alerts"]:
        if alert["event"] in ("escalation_raised", "escalation_decided"):
            ident = str(json.loads(alert["detail"]).get("id"))
            (raised if alert["event"] == "escalation_raised" else decided).add(ident)
    return sorted(raised - decided)


def master_level(cfg: StackConfig, reports: list[Report], m: Measurements) -> list[Criterion]:
    by_larry = {r["larry"]: r for r in reports}
    open_all = [e for r in reports for e in _escalations_open(r)]
    over = [r["larry"] for r in reports if r["tokens"]["committed"] > r["tokens"]["limit"] + r["tokens"]["emergency_drawn"]]
    rows = [
        Criterion("master", COORDINATOR_MASTER, "Zero unresolved escalations", ", ".join(open_all) or "none",
                  not open_all),
        Criterion("master", COORDINATOR_MASTER, "Token budgets managed (no Larry over its limit)",
                  ", ".join(over) or "every Larry within its limit and what it drew", not over),
    ]
    for larry in cfg.larrys:
        report = by_larry[larry.id]
        status = {t["id"]: t["status"] for t in report["tasks"]}
        figures = {f["name"]: f for f in report["masters"]}
        for master in larry.masters:
            mine = [t.id for w in larry.workers if larry.overseer(w) == master.name for t in w.tasks]
            done = [t for t in mine if status.get(t) == TaskStatus.COMPLETED]
            f = figures.get(master.name)
            within = f is not None and f["personal"]["committed"] <= f["personal"]["limit"] \
                and f["pool"]["committed"] <= f["pool"]["limit"] + f["pool"]["granted"]
            spent = "no figures" if f is None else (
                f"personal {f['personal']['committed']:,}/{f['personal']['limit']:,}, pool "
                f"{f['pool']['committed']:,}/{f['pool']['limit'] + f['pool']['granted']:,}")
            opened = _escalations_open(report)
            rows += [
                Criterion("master", master.name, "Activated (heartbeating)", m.masters.get(master.name) or "never",
                          bool(m.masters.get(master.name))),
                Criterion("master", master.name, "Its workers' tasks completed", f"{len(done)}/{len(mine)}",
                          len(done) == len(mine)),
                Criterion("master", master.name, "Token budget not overrun", spent, within),
                Criterion("master", master.name, "Escalations resolved", ", ".join(opened) or "none open",
                          not opened),
            ]
    return rows


def worker_level(cfg: StackConfig, reports: list[Report], m: Measurements) -> list[Criterion]:
    by_larry = {r["larry"]: r for r in reports}
    rows = []
    for larry in cfg.larrys:
        report = by_larry[larry.id]
        status = {t["id"]: t["status"] for t in report["tasks"]}
        accounts = {a["account"]: a for a in report["accounts"]}
        for worker in larry.workers:
            tasks = [t.id for t in worker.tasks]
            done = [t for t in tasks if status.get(t) == TaskStatus.COMPLETED]
            account = accounts.get(f"{larry.id}/{worker.name}")
            state = report["workers"].get(worker.name, {})
            clean = state.get("status") == WorkerStatus.COMPLETED and state.get("restarts") == 0
            rows += [
                Criterion("worker", worker.name, "Completes its assigned task(s)", f"{len(done)}/{len(tasks)}",
                          len(done) == len(tasks)),
                Criterion("worker", worker.name, "Token budget not exceeded",
                          "no account" if account is None else f"{account['committed']:,}/{account['limit']:,}",
                          account is not None and account["committed"] <= account["limit"] + account["granted"]),
                Criterion("worker", worker.name, "Status reported to its master",
                          "registered" if worker.name in m.workers else "never registered", worker.name in m.workers),
                Criterion("worker", worker.name, "Clean termination (no crashes)",
                          f"{state.get('status', 'unknown')}, {state.get('restarts', 0)} restart(s)", clean),
            ]
    return rows


def cross_validation(reports: list[Report]) -> list[Criterion]:
    """Each Larry checks every other Larry's report: its phase completed, its final validation
    passed, its tokens within its limit, and every task of the checking Larry that depends on
    one of the other's started only after it completed."""
    started = {t["id"]: t["started_at"] for r in reports for t in r["tasks"]}
    rows = []
    for checker in reports:
        for other in reports:
            if other is checker:
                continue
            problems = []
            if other["status"] != PhaseStatus.COMPLETED:
                problems.append(f"phase {other['status']}")
            problems += [f"check {c['check']!r} failed" for c in other["validation"] if not c["passed"]]
            tokens = other["tokens"]
            if tokens["committed"] > tokens["limit"] + tokens["emergency_drawn"]:
                problems.append(f"tokens {tokens['committed']:,} over {tokens['limit']:,}")
            theirs = {t["id"]: t for t in other["tasks"]}
            for task in checker["tasks"]:
                for dep in (theirs[d] for d in task["depends_on"] if d in theirs):
                    if dep["status"] != TaskStatus.COMPLETED:
                        problems.append(f"{task['id']} depends on {dep['id']}, {dep['status']}")
                    elif started[task["id"]] and parse(started[task["id"]]) < parse(dep["completed_at"]):
                        problems.append(f"{task['id']} started before {dep['id']} completed")
            rows.append(Criterion("cross-validation", f"{checker['larry']} checks {other['larry']}",
                                  "Report consistent", "; ".join(problems) or "consistent", not problems))
    return rows
