"""The coordinator's final report of its Larry, assembled from Redis and the results volume
into the schema of :mod:`runtime.reporting.schema`.

Sources: the plan (tasks, workers, dependencies), the task statuses and fenced results
(``task:result:{id}``), the result files the workers wrote with the same fence (tokens and
findings of failed tasks, whose Redis result holds only the reason), the ledger, the
registry's worker statuses, the phase's timestamps, and the folded event stream
(:class:`runtime.reporting.history.History`: attempts, claim times, restarts, re-queues, alerts).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from plan.model import Larry, StackConfig
from plan.statuses import TERMINAL, PhaseStatus, TaskStatus
from plan.taskgraph import TaskGraph
from runtime.agent.master import master_report
from runtime.agent.protocol import count_of, normalise_findings
from runtime.reporting.history import History
from runtime.reporting.results import read_result
from runtime.reporting.schema import ACCOUNT_FIGURES, SCHEMA_VERSION, aggregate_findings
from runtime.reporting.validation import validate
from runtime.support.timestamps import parse


def _seconds_between(start: str, end: str) -> float:
    return max(0.0, (parse(end) - parse(start)).total_seconds())


def build_report(cfg: StackConfig, larry: Larry, *, phase: dict, statuses: dict, results: dict,
                 ledger: dict, accounts: list[dict], workers: dict, history: History, speed: float,
                 planned_seconds: float, results_dir: Path, masters: Mapping[str, Mapping | None]) -> dict:
    """The validated-shape report. ``statuses``: every task of the stack -> status;
    ``results``: own task -> TaskBoard.result; ``accounts``: Ledger.accounts_of(larry);
    ``workers``: own worker -> registry status; ``masters``: master -> its own report (None: it
    wrote none)."""
    doomed = TaskGraph(cfg).doomed(statuses)
    shown = [{"account": a["account"], "kind": a["kind"], **{k: a[k] for k in ACCOUNT_FIGURES}} for a in accounts]
    tasks = []
    for worker in larry.workers:
        for task in worker.tasks:
            tasks.append(_task(task, worker.name, statuses.get(task.id), results.get(task.id), doomed,
                               history, results_dir))
    by_id, by_account = {t["id"]: t for t in tasks}, {a["account"]: a for a in shown}
    report = {
        "schema": SCHEMA_VERSION, "stack": cfg.stack, "larry": larry.id, "phase": larry.phase,
        "status": PhaseStatus.COMPLETED if phase["status"] == PhaseStatus.COMPLETED else PhaseStatus.FAILED,
        "planned_seconds": planned_seconds, "speed": speed,
        "started_at": phase["started_at"], "completed_at": phase["completed_at"],
        "duration_seconds": _seconds_between(phase["started_at"], phase["completed_at"]),
        "tasks": tasks,
        "tokens": {"limit": ledger["limit"], "reserved": ledger["reserved"], "committed": ledger["committed"],
                   "emergency_drawn": ledger["emergency"]},
        "accounts": shown,
        "masters": [master_report(larry, m, by_id, by_account, masters.get(m.name)) for m in larry.masters],
        "findings": aggregate_findings(t["findings"] for t in tasks),
        "validation": [],
        "workers": {w.name: {"node": w.node, "status": workers.get(w.name) or "never started",
                             "restarts": history.restarts(w.name)} for w in larry.workers},
        "requeued_tasks": list(dict.fromkeys(history.requeued)),
        "alerts": history.alerts,
    }
    report["validation"] = validate(report)
    return report


def _task(task, worker: str, status: str | None, result: dict | None, doomed: dict, history: History,
          results_dir: Path) -> dict:
    fence = result["token"] if result and result["outcome"] in TERMINAL else 0
    data = result["data"] if fence else {}
    recorded = read_result(results_dir, task.id, fence)
    entry = {
        "id": task.id, "title": task.title, "worker": worker,
        "status": status if status in TERMINAL else TaskStatus.PENDING,
        "fence": fence,
        "tokens": count_of(data.get("tokens", recorded.get("tokens", 0))),
        "attempts": history.attempts.get(task.id, 0),
        "depends_on": list(task.depends_on),
        "started_at": history.claim_time(task.id, fence) if fence else None,
        "completed_at": result["at"] if fence else None,
        "findings": normalise_findings(data.get("findings", recorded.get("findings"))),
    }
    if status == TaskStatus.FAILED:
        entry["detail"] = str(data.get("error") or recorded.get("detail") or "failed")
    elif status != TaskStatus.COMPLETED:
        entry["detail"] = (f"not run: dependency {doomed[task.id]} failed" if task.id in doomed
                           else f"{status or TaskStatus.PENDING} when the phase ended")
    return entry
