"""Seed 004's phases 0-5 as the meta-coordinator (coordinator-master, `larry converge`) runs
them for a plan on seed 004's protocol (:func:`runtime.coordination.phases.runs_execution_phases`),
with their files on the coordination volume.

0. Pre-flight: Redis, Sentinel quorum, the run's ledger against the plan, the catalog's
   baseline (when the catalog is on), Prometheus (when ``$LARRY_PROMETHEUS_URL`` is set)
   -> ``execution-plans/preflight-report.json``.
1. Master activation: every master of the plan heartbeating -> ``master-activation.json``.
2. Worker distribution: every worker of the plan registered, by node -> ``worker-distribution.json``.
3. Parallel execution: until every Larry passed the convergence barrier; every heartbeat
   interval it rewrites the coordination files ``task-queue.json``, ``worker-pool.json``,
   ``token-budget.json`` and ``masters/{name}/status.json`` from Redis, times a Redis PING and
   probes the catalog.
4. Result aggregation (after the reports barrier): ``final-results.json``: seed 004's Token
   Budget Analysis (total_budget, used, remaining, efficiency, per_master), findings, the
   catalog's counts and seed 004's success criteria (:mod:`runtime.reporting.criteria`).
5. Reporting and cleanup: ``EXEC-{id}-FINAL-REPORT.md`` (seed 004's executive summary: Key
   Achievements, Masters Performance, Resource Utilization, Next Steps),
   ``masters/{name}/final-report.md``, and the coordination files moved or copied into
   ``archives/exec-{id}/`` (``worker-pool.json`` left as ``{"workers": []}``).

Each phase's status and timing are in Redis (``phase:execution-{n}:*``, :mod:`runtime.coordination.phases`)
and in ``final-results.json``. The execution id is phase 0's start in Redis's clock
(``YYYY-mm-dd-HHMMSS``): a restarted meta-coordinator finds the same id. Every file carries it
(``execution_id``) and every file is written atomically (:mod:`runtime.support.files`).

Guaranteed: a phase that did not reach its goal within its planned minutes (scaled, plus the
allowance) ends ``failed`` and the run goes on (the workers do not wait for the meta-coordinator);
its failure is a failed criterion. Not guaranteed: the coordination files are current only to
the last refresh (one heartbeat interval); Redis keys are left for ``larry cleanup``.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import redis

from plan.model import StackConfig, master_account, meta_account, utilisation
from plan.statuses import PhaseStatus, TaskStatus
from runtime.catalog.client import CatalogRejected, CatalogUnavailable
from runtime.commands.preflight import (
    Check,
    catalog_baseline,
    check_catalog_baseline,
    check_ledger,
    check_prometheus,
    check_redis,
    check_sentinel_quorum,
)
from runtime.coordination.barrier import Barrier, BarrierTimeout
from runtime.coordination.connection import RedisSettings
from runtime.coordination.keys import CONVERGENCE_BARRIER, Keyspace
from runtime.coordination.ledger import figures
from runtime.coordination.phases import EXECUTION_PHASES, execution_trackers
from runtime.reporting import criteria as success
from runtime.reporting.schema import aggregate_findings
from runtime.reporting.validation import budget_problems
from runtime.support.files import write_atomic
from runtime.support.timestamps import from_ms, parse
from runtime.support.timing import Timing

EXECUTION_DIR = "execution-plans"
FINAL_RESULTS = f"{EXECUTION_DIR}/final-results.json"
COORDINATION_FILES = ("task-queue.json", "worker-pool.json", "token-budget.json")
#: Seed 004 Phase 5: these move into the archive; the others are copied.
MOVED = ("task-queue.json", "handoffs.json")

Report = dict[str, Any]


def execution_id(started_at: str) -> str:
    """``YYYY-mm-dd-HHMMSS`` of phase 0's start (seed 004: ``EXEC-2025-12-21-001``)."""
    return parse(started_at).strftime("%Y-%m-%d-%H%M%S")


def final_report_name(exec_id: str) -> str:
    return f"EXEC-{exec_id}-FINAL-REPORT.md"


def token_analysis(total: int, per_master: dict[str, int]) -> dict:
    """Seed 004's "Token Budget Analysis"."""
    used = sum(per_master.values())
    return {"total_budget": total, "used": used, "remaining": total - used,
            "efficiency": f"{utilisation(used, total):.0%}", "per_master": per_master}


class ExecutionPlan:
    def __init__(self, cfg: StackConfig, r: redis.Redis, ks: Keyspace, root: Path, timing: Timing, *,
                 catalog_url: str | None, prometheus_url: str | None, say: Callable[[str], None] = print):
        self.cfg, self.r, self.ks, self.root, self.timing = cfg, r, ks, Path(root), timing
        self.catalog_url, self.prometheus_url, self.say = catalog_url, prometheus_url, say
        self.trackers = execution_trackers(r, ks)
        self.id: str | None = None
        self.latency_ms: list[float] = []
        self.catalog_probes: list[int] | None = [0, 0] if catalog_url else None
        self.masters: dict[str, str | None] = {}
        self.workers: dict[str, dict] = {}
        self.checks: list[Check] = []
        self.catalog_start: dict | None = None
        self.criteria: list[success.Criterion] = []
        self.results: dict | None = None

    # ------------------------------------------------------------------ phases
    def _begin(self, number: int) -> None:
        tracker = self.trackers[number]
        tracker.init()
        tracker.start()
        if self.id is None:
            # A named run (larry:runId) is its own execution id: the label on its pods says it too.
            self.id = self.cfg.run_id or execution_id(self.trackers[0].snapshot()["started_at"])
        self.say(f"phase {number} ({EXECUTION_PHASES[number].title}) started, execution {self.id}")

    def _end(self, number: int, ok: bool, message: str) -> None:
        tracker = self.trackers[number]
        (tracker.complete if ok else tracker.fail)(message)
        self.say(f"phase {number} ({EXECUTION_PHASES[number].title}) {'completed' if ok else 'FAILED'}: {message}")

    def fail(self, message: str) -> None:
        """End the phase in progress as failed (the run cannot go on: an error or a timeout)."""
        for number, tracker in self.trackers.items():
            if tracker.snapshot()["status"] == PhaseStatus.IN_PROGRESS:
                self._end(number, False, message)

    def _phase_until(self, number: int, until: float) -> float:
        return min(until, time.monotonic() + self.timing.deadline(EXECUTION_PHASES[number].minutes))

    def _tick(self, until: float) -> None:
        """One heartbeat of waiting: a PING timed, then sleep to the next heartbeat (or ``until``)."""
        self.measure()
        time.sleep(max(0.0, min(self.timing.heartbeat / 4, until - time.monotonic())))

    def measure(self) -> None:
        started = time.perf_counter()
        self.r.ping()
        self.latency_ms.append((time.perf_counter() - started) * 1000)
        if self.catalog_probes is not None and self.catalog_start is not None:  # up since Phase 0 saw it
            self.catalog_probes[1] += 1
            try:
                catalog_baseline(self.catalog_url)
                self.catalog_probes[0] += 1
            except (CatalogUnavailable, CatalogRejected):
                pass

    def preflight(self, until: float) -> bool:
        """Phase 0: the checks, repeated until they pass (the run's processes are starting) or its time is up."""
        self._begin(0)
        phase_until = self._phase_until(0, until)
        while True:
            self.checks = self._checks()
            failed = [c for c in self.checks if c.outcome == "failed"]
            if not failed or time.monotonic() >= phase_until:
                break
            self._tick(phase_until)
        self._end(0, not failed, "; ".join(f"{c.name}: {c.detail}" for c in failed) or
                  f"{sum(c.outcome == 'ok' for c in self.checks)} checks passed")
        self._write(f"{EXECUTION_DIR}/preflight-report.json", {
            "phase": self.phase_view(0), "passed": not failed,
            "checks": [{"check": c.name, "outcome": c.outcome, "detail": c.detail} for c in self.checks],
            "catalog_baseline": self.catalog_start,
            "plan_budget_problems": budget_problems(self.cfg),
            "token_budget_available": self.cfg.budget.system_tokens,
            "coordination_files": list(COORDINATION_FILES)})
        self.refresh()
        return not failed

    def _checks(self) -> list[Check]:
        started = time.perf_counter()
        redis_check = check_redis(self.r)
        self.latency_ms.append((time.perf_counter() - started) * 1000)
        ledger = check_ledger(self.r, self.ks, self.cfg)
        if ledger.outcome == "skipped":  # the coordinators open it as they start
            ledger = Check(ledger.name, "failed", "the run's ledger is not initialised yet")
        nodes = {w.node for _, w in self.cfg.workers}
        catalog, self.catalog_start = check_catalog_baseline(self.catalog_url)
        return [redis_check, check_sentinel_quorum(RedisSettings.from_env()), ledger,
                Check("Worker nodes in the plan", "ok", f"{len(nodes)} nodes: {', '.join(sorted(nodes))} (their "
                      "readiness is the scheduler's: Phase 2 shows where the workers registered)"),
                catalog, check_prometheus(self.prometheus_url)]

    def activate_masters(self, until: float) -> bool:
        """Phase 1: every master heartbeating (its ``last_heartbeat``)."""
        self._begin(1)
        phase_until = self._phase_until(1, until)
        names = [m.name for larry in self.cfg.larrys for m in larry.masters]
        while True:
            self.masters = {name: self.r.hget(self.ks.schema_master(name), "last_heartbeat") for name in names}
            missing = [n for n, beat in self.masters.items() if not beat]
            if not missing or time.monotonic() >= phase_until:
                break
            self._tick(phase_until)
        self._end(1, not missing, f"not heartbeating: {', '.join(missing)}" if missing
                  else f"{len(names)} masters active")
        entries = self._queue_entries()
        self._write(f"{EXECUTION_DIR}/master-activation.json", {
            "phase": self.phase_view(1),
            "coordinator": {"name": success.COORDINATOR_MASTER, "status": "active", "role": "Orchestration hub"},
            "masters": [{"name": m.name, "larry": larry.id, "track": larry.phase,
                         "status": "active" if self.masters[m.name] else "missing",
                         "activated_at": self.masters[m.name], "token_budget": m.total_tokens,
                         "workers": [w.name for w in larry.workers if larry.overseer(w) == m.name],
                         "tasks": [t for t, e in entries.items() if e and e.get("master") == m.name]}
                        for larry in self.cfg.larrys for m in larry.masters]})
        return not missing

    def distribute_workers(self, until: float) -> bool:
        """Phase 2: every worker registered (its seed 004 hash has started_at)."""
        self._begin(2)
        phase_until = self._phase_until(2, until)
        while True:
            self.workers = {w.name: self.r.hgetall(self.ks.schema_worker(w.name)) for _, w in self.cfg.workers}
            self.workers = {name: state for name, state in self.workers.items() if state.get("started_at")}
            missing = [w.name for _, w in self.cfg.workers if w.name not in self.workers]
            if not missing or time.monotonic() >= phase_until:
                break
            self._tick(phase_until)
        specs = [self._worker_spec(larry, w, self.workers.get(w.name, {})) for larry, w in self.cfg.workers]
        nodes: dict[str, list] = {}
        for spec in specs:
            nodes.setdefault(spec["k8s_node"], []).append(spec["worker_id"])
        self._end(2, not missing, f"not registered: {', '.join(missing)}" if missing
                  else f"{len(specs)} workers on {len(nodes)} nodes")
        self._write(f"{EXECUTION_DIR}/worker-distribution.json",
                    {"phase": self.phase_view(2), "nodes": nodes, "workers": specs})
        return not missing

    @staticmethod
    def _worker_spec(larry, worker, state: dict) -> dict:
        """Seed 004's "Master Creates Worker Spec" of a plan worker, with its state (its
        ``{ns}:workers:{id}`` hash)."""
        return {"worker_id": worker.name, "type": worker.type, "master": larry.overseer(worker) or larry.id,
                "task_id": worker.tasks[0].id if worker.tasks else None, "task_ids": [t.id for t in worker.tasks],
                "k8s_node": worker.node, "token_budget": worker.tokens, "timeout_minutes": worker.minutes,
                "status": state.get("status", "pending"), "created_at": state.get("started_at")}

    def execute(self, until: float) -> None:
        """Phase 3: until every Larry passed the convergence barrier; BarrierTimeout past ``until``."""
        self._begin(3)
        barrier = Barrier(self.r, self.ks, CONVERGENCE_BARRIER, self.cfg.larry_ids)
        begun = time.monotonic()
        while True:
            self.refresh()
            self.measure()
            left = until - time.monotonic()
            try:
                barrier.wait(max(0.001, min(left, self.timing.heartbeat)))
                break
            except BarrierTimeout as timeout:
                if left <= self.timing.heartbeat:
                    whole = BarrierTimeout(CONVERGENCE_BARRIER, timeout.missing, time.monotonic() - begun)
                    self._end(3, False, str(whole))
                    raise whole from None
        self.refresh()
        self._end(3, True, f"all {len(self.cfg.larrys)} Larrys passed the convergence barrier")

    def begin_aggregation(self) -> None:
        self._begin(4)

    # ------------------------------------------------------------------ coordination files
    def _queue_entries(self) -> dict[str, dict | None]:
        ids = [t.id for larry in self.cfg.larrys for t in larry.tasks]
        raw = self.r.hmget(self.ks.task_queue_entries, ids) if ids else []
        return {t: json.loads(e) if e else None for t, e in zip(ids, raw)}

    def refresh(self) -> None:
        """Rewrite the coordination files from Redis (seed 004 "Coordination Files")."""
        cfg, ks = self.cfg, self.ks
        ids = [t.id for larry in cfg.larrys for t in larry.tasks]
        entries = self._queue_entries()
        statuses = dict(zip(ids, self.r.mget([ks.task_status(t) for t in ids]))) if ids else {}
        self._write("task-queue.json", {"tasks": [
            {**(entries[t] or {"task_id": t}), "status": statuses[t] or TaskStatus.PENDING} for t in ids]})
        pipe = self.r.pipeline(transaction=False)
        for _, worker in cfg.workers:
            pipe.hgetall(ks.schema_worker(worker.name))
        states = pipe.execute()
        self._write("worker-pool.json", {"workers": [
            {**self._worker_spec(larry, w, state), "progress": int(state.get("progress", 0)),
             "tokens_used": int(state.get("tokens_used", 0))}
            for (larry, w), state in zip(cfg.workers, states)]})
        self._write("token-budget.json", self.live_tokens())
        for larry in cfg.larrys:
            for master in larry.masters:
                self._write(f"masters/{master.name}/status.json",
                            {"master": master.name, "larry": larry.id, **self.r.hgetall(ks.schema_master(master.name))})

    def live_tokens(self) -> dict:
        """The Token Budget Analysis from the ledger now: each master's personal account and pool."""
        per_master = {success.COORDINATOR_MASTER: figures(self.r, self.ks, meta_account("orchestration"))["committed"]}
        for larry in self.cfg.larrys:
            for m in larry.masters:
                per_master[m.name] = sum(figures(self.r, self.ks, master_account(larry.id, m.name, part))["committed"]
                                         for part in ("personal", "pool"))
        return token_analysis(self.cfg.budget.system_tokens, per_master)

    def phase_view(self, number: int) -> dict:
        snap = self.trackers[number].snapshot()
        return {"number": number, "title": EXECUTION_PHASES[number].title,
                "planned_minutes": EXECUTION_PHASES[number].minutes,
                **{k: snap[k] for k in ("status", "started_at", "completed_at")}}

    def _write(self, relative: str, document: dict) -> None:
        write_atomic(self.root / relative, json.dumps({"execution_id": self.id, "updated_at": self._now(),
                                                        **document}, indent=2) + "\n")

    def _now(self) -> str:
        seconds, micros = self.r.time()
        return from_ms(seconds * 1000 + micros // 1000)

    # ------------------------------------------------------------------ phase 4
    def aggregate(self, reports: list[Report]) -> dict:
        """Phase 4 (the reports are in): the criteria and ``final-results.json`` (its phase 4
        entry shows it in progress; :meth:`finish` rewrites the phases at the end)."""
        # The run began with the first of phase 0 and the Larrys' phases (they do not wait for it).
        started = min([parse(self.trackers[0].snapshot()["started_at"]),
                       *(parse(r["started_at"]) for r in reports)])
        duration = (parse(self._now()) - started).total_seconds()
        first, last = success.DURATION_MINUTES
        tokens = self.live_tokens()
        measured = success.Measurements(
            masters=self.masters, workers=self.workers, redis_latency_ms=tuple(self.latency_ms),
            catalog_probes=None if self.catalog_probes is None else tuple(self.catalog_probes),
            duration_seconds=duration, speed=self.timing.speed, tokens_used=tokens["used"],
            window_seconds=(self.timing.scaled(first), self.timing.deadline(last)))
        self.criteria = success.evaluate(self.cfg, reports, measured)
        self.criteria += [success.Criterion("system", "system", f"Phase {n} ({p.title}) completed",
                                            self.trackers[n].snapshot()["status"],
                                            self.trackers[n].snapshot()["status"] == PhaseStatus.COMPLETED)
                          for n, p in enumerate(EXECUTION_PHASES[:4])]
        catalog_end = None
        if self.catalog_url:
            try:
                catalog_end = catalog_baseline(self.catalog_url)
            except (CatalogUnavailable, CatalogRejected) as error:
                catalog_end = {"error": str(error)}
        failed = success.failed(self.criteria)
        self.results = {
            "phases": [self.phase_view(n) for n in range(len(EXECUTION_PHASES))],
            "token_budget": tokens, "duration_seconds": round(duration, 3), "speed": self.timing.speed,
            "findings": aggregate_findings(r["findings"] for r in reports),
            "catalog": {"start": self.catalog_start, "end": catalog_end},
            "redis_latency_ms": {"samples": len(self.latency_ms),
                                 "average": round(sum(self.latency_ms) / len(self.latency_ms), 3) if self.latency_ms
                                 else None},
            "larrys": {r["larry"]: {"status": r["status"], "tasks": len(r["tasks"]),
                                    "completed": sum(t["status"] == TaskStatus.COMPLETED for t in r["tasks"]),
                                    "tokens": r["tokens"]} for r in reports},
            "criteria": [c.as_dict() for c in self.criteria],
            "verdict": "SUCCESS" if not failed else "CRITERIA NOT MET",
            "criteria_failed": len(failed)}
        self._write(FINAL_RESULTS, self.results)
        self._end(4, True, f"{len(reports)} reports aggregated; {len(failed)} of {len(self.criteria)} criteria failed")
        return self.results

    # ------------------------------------------------------------------ phase 5
    def report_and_clean_up(self, reports: list[Report]) -> Path:
        """Phase 5's reports and the coordination files' archive; returns the archive's directory.
        The phase ends with :meth:`finish`, once the run's archive and summary are written."""
        self._begin(5)
        write_atomic(self.root / EXECUTION_DIR / final_report_name(self.id), render_final_report(self, reports))
        for larry in self.cfg.larrys:
            report = next(r for r in reports if r["larry"] == larry.id)
            for master in larry.masters:
                write_atomic(self.root / "masters" / master.name / "final-report.md",
                             render_master_report(self, larry, master, report))
        archive = self.root / "archives" / f"exec-{self.id}"
        archive.mkdir(parents=True, exist_ok=True)
        for name in ("task-queue.json", "worker-pool.json", "token-budget.json", "handoffs.json"):
            source = self.root / name
            if source.exists():
                (shutil.move if name in MOVED else shutil.copy2)(source, archive / name)
        for status in sorted((self.root / "masters").glob("*/status.json")):
            target = archive / "masters" / status.parent.name / "status.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(status, target)
        self._write("worker-pool.json", {"workers": []})
        return archive

    def finish(self, summary: Path, archive: Path) -> None:
        self._end(5, True, f"summary {summary.name}, archive {archive.relative_to(self.root)}")
        self.results["phases"] = [self.phase_view(n) for n in range(len(EXECUTION_PHASES))]
        self._write(FINAL_RESULTS, self.results)


def read_final_results(root: Path) -> dict:
    """``final-results.json`` of a run (ValueError/OSError for the caller to name)."""
    return json.loads((Path(root) / FINAL_RESULTS).read_text())


# --------------------------------------------------------------------------- markdown

def _md_table(header: list[str], rows) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]


def render_final_report(plan: ExecutionPlan, reports: list[Report]) -> str:
    """Seed 004's executive summary (Phase 5 "Executive Summary")."""
    cfg, results = plan.cfg, plan.results
    tokens, findings = results["token_budget"], results["findings"]
    cves = findings["cves"]
    failed = success.failed(plan.criteria)
    duration = results["duration_seconds"]
    masters = [m for larry in cfg.larrys for m in larry.masters]
    catalog = results["catalog"]
    lines = [f"# {cfg.stack} orchestration - Execution Report EXEC-{plan.id}", "",
             f"Cluster: {len(cfg.nodes)} nodes ({', '.join(cfg.nodes)})",
             f"Duration: {duration:.1f} s ({duration * plan.timing.speed / 60:.1f} plan minutes at speed "
             f"×{plan.timing.speed:g})",
             f"Masters Active: {sum(bool(v) for v in plan.masters.values())} of {len(masters)} "
             f"(+ {success.COORDINATOR_MASTER})",
             f"Workers Deployed: {len(plan.workers)} of {len(cfg.workers)}",
             f"Token Usage: {tokens['used']:,} / {tokens['total_budget']:,} ({tokens['efficiency']})",
             f"Verdict: **{results['verdict']}**" + (f" ({len(failed)} of {len(plan.criteria)} success criteria "
                                                    "failed; see Success Criteria)" if failed else ""),
             "", "## Key Achievements:", ""]
    done = sum(v["completed"] for v in results["larrys"].values())
    total = sum(v["tasks"] for v in results["larrys"].values())
    achievements = [f"{done} of {total} plan tasks completed"]
    end = catalog["end"] or {}
    if "total" in end:
        achievements.append(f"{end['total'] - end['baseline']} new assets cataloged since the baseline "
                            f"({end['total']} in the catalog, {end['baseline']} from the baseline)")
    else:
        achievements.append(f"{findings['assets_discovered']} assets discovered (workers' reports)")
    achievements += [f"{sum(cves.values())} security vulnerabilities identified ({cves['critical']} critical, "
                     f"{cves['high']} high)", f"{findings['prs_created']} PRs created",
                     f"Test coverage {findings['coverage_delta']:+.1f} pts"]
    lines += [f"- {a}" for a in achievements]
    lines += ["", "## Masters Performance:", ""]
    lines += _md_table(["Master", "Larry", "Tasks completed", "Tokens used", "Escalations open", "Criteria"],
                       _master_rows(plan))
    lines += ["", "## Resource Utilization:", ""]
    latency = results["redis_latency_ms"]
    lines += [f"- Redis: {latency['samples']} PINGs timed, {latency['average']} ms average",
              f"- Tokens: {tokens['used']:,} of {tokens['total_budget']:,} used, {tokens['remaining']:,} remaining "
              f"({tokens['efficiency']})",
              "- Catalog: " + ("off in this stack" if plan.catalog_probes is None else
                               f"{plan.catalog_probes[0]}/{plan.catalog_probes[1]} probes answered; " +
                               (f"{end['total']} assets" if "total" in end else end.get("error", "no answer"))),
              "- K8s CPU / memory: not measured by the run (see the cluster's Prometheus)"]
    lines += ["", "## Phases:", ""]
    lines += _md_table(["Phase", "Title", "Status", "Started", "Completed", "Planned"],
                       ((p["number"], p["title"], p["status"], p["started_at"] or "-", p["completed_at"] or "-",
                         f"{p['planned_minutes']} min") for p in map(plan.phase_view, range(len(EXECUTION_PHASES)))))
    lines += ["", "## Success Criteria:", ""]
    lines += _md_table(["Level", "Subject", "Criterion", "Result", "Met"],
                       ((c.level, c.subject, c.name, c.result, {True: "yes", False: "**NO**", None: "unknown"}[c.met])
                        for c in plan.criteria))
    lines += ["", "## Next Steps:", ""]
    steps = [f"Resolve: {c.subject}: {c.name} ({c.result})" for c in failed]
    if cves["critical"]:
        steps.append(f"Address {cves['critical']} critical CVEs")
    if findings["prs_created"]:
        steps.append("Review and merge all PRs")
    steps += [f"Archived coordination state: archives/exec-{plan.id}/; Redis keys stay for `larry cleanup`",
              "Schedule next orchestration run"]
    lines += [f"{n}. {step}" for n, step in enumerate(steps, 1)]
    return "\n".join(lines) + "\n"


def _master_rows(plan: ExecutionPlan):
    for larry in plan.cfg.larrys:
        for m in larry.masters:
            own = [c for c in plan.criteria if c.subject == m.name]
            rows = {c.name: c for c in own}
            yield (m.name, larry.id, rows["Its workers' tasks completed"].result,
                   f"{plan.results['token_budget']['per_master'].get(m.name, 0):,}",
                   rows["Escalations resolved"].result, f"{sum(c.met is True for c in own)}/{len(own)} met")


def render_master_report(plan: ExecutionPlan, larry, master, report: Report) -> str:
    """``masters/{name}/final-report.md``: the master's track, tasks, tokens, workers, criteria."""
    workers = [w for w in larry.workers if larry.overseer(w) == master.name]
    names = {w.name for w in workers} | {master.name}
    figures_ = next((m for m in report["masters"] if m["name"] == master.name), None)
    tasks = [t for t in report["tasks"] if t["worker"] in {w.name for w in workers}]
    lines = [f"# {master.name} - Final Report (EXEC-{plan.id})", "",
             f"Track: {larry.phase} (Larry `{larry.id}`); phase {report['status']}", ""]
    if figures_:
        lines += [f"Tokens: personal {figures_['personal']['committed']:,} of {figures_['personal']['limit']:,}; "
                  f"pool {figures_['pool']['committed']:,} of {figures_['pool']['limit'] + figures_['pool']['granted']:,}"
                  f"; decisions: {len(figures_['decisions'])}", ""]
    lines += ["## Tasks", ""]
    lines += _md_table(["Task", "Worker", "Status", "Tokens", "Attempts"],
                       ((t["id"], t["worker"], t["status"], f"{t['tokens']:,}", t["attempts"]) for t in tasks))
    lines += ["", "## Workers", ""]
    lines += _md_table(["Worker", "Node", "Status", "Restarts"],
                       ((w.name, w.node, report["workers"].get(w.name, {}).get("status", "unknown"),
                         report["workers"].get(w.name, {}).get("restarts", 0)) for w in workers))
    lines += ["", "## Success Criteria", ""]
    lines += _md_table(["Subject", "Criterion", "Result", "Met"],
                       ((c.subject, c.name, c.result, {True: "yes", False: "**NO**", None: "unknown"}[c.met])
                        for c in plan.criteria if c.subject in names))
    return "\n".join(lines) + "\n"
