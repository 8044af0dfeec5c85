"""A Larry's Phase 4 validation (seed 001 "Final Validation"): checks derived from its report.

Every Larry gets the checks its data always supports: every plan task completed, and token
use within its budget. On top come the seeds' own success criteria, for the Larrys the
seeds name, wherever the run's data can decide them: seed 001's phase "Success Criteria"
and "Final Validation" (larry-01..03) and seed 004's "Master-Level Success" (the cortex
Larrys). Criteria the data cannot decide (PgAdmin restarts, p95 latency, PRs merged) are
left out rather than passed on faith.

A check is ``{"check": text, "passed": bool, "detail": text}`` (the report schema's).

:func:`budget_problems` validates the plan itself before a run: what the policy pack's
mandatory token rules would block it for.
"""
from __future__ import annotations

from typing import Callable

from plan.model import StackConfig, utilisation
from plan.statuses import TaskStatus

Check = dict
Criterion = Callable[[dict], Check]


def _check(text: str, passed: bool, detail: str) -> Check:
    return {"check": text, "passed": bool(passed), "detail": detail}


def at_least(field: str, minimum: float, text: str) -> Criterion:
    """A findings figure of the Larry reaches ``minimum`` (> 0 when ``minimum`` is 0)."""
    def check(report: dict) -> Check:
        value = report["findings"][field]
        passed = value > 0 if minimum == 0 else value >= minimum
        wanted = "more than 0" if minimum == 0 else f"at least {minimum:g}"
        return _check(text, passed, f"{field} = {value:g} ({wanted} wanted)")
    return check


def workers_done(word: str, text: str) -> Criterion:
    """Every task of the Larry's workers whose name contains ``word`` completed."""
    def check(report: dict) -> Check:
        tasks = [t for t in report["tasks"] if word in t["worker"]]
        done = [t for t in tasks if t["status"] == TaskStatus.COMPLETED]
        workers = sorted({t["worker"] for t in tasks})
        return _check(text, bool(tasks) and len(done) == len(tasks),
                      f"{len(done)}/{len(tasks)} tasks of {', '.join(workers) or f'no *{word}* worker'} completed")
    return check


#: Seed success criteria per Larry id.
SEED_CRITERIA: dict[str, list[Criterion]] = {
    # seed 001
    "larry-01": [workers_done("monitoring", "Monitoring dashboards operational"),
                 workers_done("optimization", "Backup automation and connection pooling in place")],
    "larry-02": [workers_done("scan", "Complete security scan (all namespaces)"),
                 at_least("prs_created", 3, "3+ automated fix PRs created"),
                 workers_done("remediation", "Compliance audit trail created")],
    "larry-03": [workers_done("catalog", "Complete asset inventory"),
                 at_least("coverage_delta", 10, "Test coverage improved by 10%+"),
                 workers_done("feature", "1+ feature implemented and tested")],
    # seed 004
    "security": [workers_done("scan", "Full cluster security scan complete")],
    "development": [at_least("prs_created", 3, "3+ feature PRs submitted"),
                    at_least("coverage_delta", 0, "Test coverage increased")],
    "inventory": [at_least("assets_discovered", 100, "100+ new assets discovered")],
    "cicd": [workers_done("analysis", "CI/CD workflows audited")],
    "testing": [at_least("coverage_delta", 0, "Test coverage measured")],
    "monitoring": [workers_done("analysis", "Critical alerts configured")],
}


def validate(report: dict) -> list[Check]:
    """The checks for the report's Larry (``validation`` itself is not read)."""
    tasks = report["tasks"]
    done = sum(t["status"] == TaskStatus.COMPLETED for t in tasks)
    tokens = report["tokens"]
    # The Larry's budget is its tokenBudget (the ledger's limit): what it drew from the
    # emergency reserve kept the run going, it did not enlarge the budget.
    drawn = f"; {tokens['emergency_drawn']:,} drawn from the emergency reserve" if tokens["emergency_drawn"] else ""
    checks = [
        _check("All plan tasks completed", done == len(tasks), f"{done}/{len(tasks)} completed"),
        _check("Token use within the Larry's budget", tokens["committed"] <= tokens["limit"],
               f"{tokens['committed']:,} of {tokens['limit']:,} tokens committed "
               f"({utilisation(tokens['committed'], tokens['limit']):.1%}){drawn}"),
    ]
    return checks + [criterion(report) for criterion in SEED_CRITERIA.get(report["larry"], ())]


# --------------------------------------------------------------------------- the plan's budgets

def larrys_over_budget(cfg: StackConfig) -> list[str]:
    return [f"{larry.id} allocates {larry.allocated_tokens:,} > tokenBudget {larry.token_budget:,}"
            for larry in cfg.larrys if larry.allocated_tokens > larry.token_budget]


def system_allocation(cfg: StackConfig) -> str:
    return (f"plan allocates {cfg.allocated_tokens:,} of {cfg.budget.system_tokens:,} (Larrys {cfg.larry_tokens:,} "
            f"+ meta-coordinator {cfg.budget.meta.total_tokens:,})")


def budget_problems(cfg: StackConfig) -> list[str]:
    """What the policy pack's mandatory token rules would block the plan for (plan.model's
    arithmetic): a Larry over its tokenBudget, the plan over the system budget, a worker over
    its master's pool or its type's cap."""
    problems = larrys_over_budget(cfg)
    if cfg.allocated_tokens > cfg.budget.system_tokens:
        problems.append(f"{system_allocation(cfg)}: over the system budget")
    for larry, worker in cfg.workers:
        if worker.master is not None and worker.tokens > larry.master(worker.master).worker_pool_tokens:
            problems.append(f"worker {worker.name} needs {worker.tokens:,} > master {worker.master}'s pool "
                            f"{larry.master(worker.master).worker_pool_tokens:,}")
        if worker.type is not None and worker.tokens > cfg.worker_types[worker.type].tokens:
            problems.append(f"worker {worker.name} needs {worker.tokens:,} > its type {worker.type}'s cap "
                            f"{cfg.worker_types[worker.type].tokens:,}")
    return problems
