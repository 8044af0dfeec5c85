"""Token budgets: every Larry within its tokenBudget, the whole plan within the system budget,
workers within their master's pool and their type's cap, and an emergency reserve kept back.

Guaranteed: the numbers compared are the plan's own arithmetic (``plan.model``), never
recomputed here; a Larry's and a master pool's allotments are read from the account tree
(:func:`plan.model.budget_accounts`) the token ledger enforces at run time, and a plan over any of these limits is reported. Not guaranteed: that
payloads spend what they are planned to; the token ledger meters that during the run.
"""
from __future__ import annotations

import math

from pulumi_policy import ReportViolation

from plan.model import StackConfig, allocated, budget_accounts, larry_account, master_account
from policies.facts import grouped
from policies.rule import ADVISORY, MANDATORY, Setting, stack_rule


@stack_rule("larry-token-budget",
            "A Larry's masters (personal tokens and worker pools) and its workers without a master "
            "fit the Larry's tokenBudget", MANDATORY)
def larry_token_budget(_resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    accounts = budget_accounts(plan)
    for larry in plan.larrys:
        used, allowed = allocated(accounts, larry_account(larry.id)), accounts[larry_account(larry.id)].limit
        if used > allowed:
            parts = [f"{m.name} {grouped(m.total_tokens)} ({grouped(m.personal_tokens)} personal + "
                     f"{grouped(m.worker_pool_tokens)} worker pool)" for m in larry.masters]
            parts += [f"{w.name} {grouped(w.tokens)} (no master)" for w in larry.workers if w.master is None]
            report(f"Larry {larry.id}: allocates {grouped(used)} tokens, its tokenBudget is {grouped(allowed)} "
                   f"(over by {grouped(used - allowed)}): {', '.join(parts)}", None)


@stack_rule("system-token-budget",
            "All Larrys plus the meta-coordinator (orchestration, worker pool, emergency reserve) "
            "fit the system token budget", MANDATORY)
def system_token_budget(_resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    used, allowed, meta = plan.allocated_tokens, plan.budget.system_tokens, plan.budget.meta
    if used > allowed:
        larrys = ", ".join(f"{larry.id} {grouped(larry.allocated_tokens)}" for larry in plan.larrys)
        report(f"The plan allocates {grouped(used)} tokens, the system budget is {grouped(allowed)} "
               f"(over by {grouped(used - allowed)}): Larrys {grouped(plan.larry_tokens)} ({larrys}); "
               f"meta-coordinator {grouped(meta.total_tokens)} (orchestration {grouped(meta.orchestration_tokens)}, "
               f"worker pool {grouped(meta.worker_pool_tokens)}, "
               f"emergency reserve {grouped(meta.emergency_reserve_tokens)})", None)


@stack_rule("worker-fits-master-pool",
            "A worker that names a master needs no more tokens than that master's worker pool", MANDATORY)
def worker_fits_master_pool(_resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    for larry, worker in plan.workers:
        if worker.master is None:
            continue
        pool = larry.master(worker.master).worker_pool_tokens
        if worker.tokens > pool:
            report(f"Worker {worker.name} (Larry {larry.id}): needs {grouped(worker.tokens)} tokens, "
                   f"master {worker.master}'s worker pool holds {grouped(pool)}", None)


@stack_rule("master-pool-overcommit",
            "The workers drawing on one master's worker pool together fit that pool", ADVISORY,
            [Setting("maxOvercommit", 1.0, {"type": "number", "exclusiveMinimum": 0, "description":
                     "How many times its worker pool a master's workers may draw together"})])
def master_pool_overcommit(_resources, plan: StackConfig, report: ReportViolation, settings) -> None:
    # Advisory by default: the token ledger enforces the pool at run time (a worker's charge
    # is refused or answered overrun once its master's pool is spent), and seed 004 plans
    # more work per master than its pool holds (inventory: 32,000 on 15,000).
    ratio, accounts = float(settings["maxOvercommit"]), budget_accounts(plan)
    for larry in plan.larrys:
        for master in larry.masters:
            pool = accounts[master_account(larry.id, master.name, "pool")]
            used, allowed = allocated(accounts, pool.name), pool.limit * ratio
            if used > allowed:
                drawers = ", ".join(f"{w.name} {grouped(w.tokens)}" for w in larry.workers if w.master == master.name)
                report(f"Master {master.name} (Larry {larry.id}): its workers draw {grouped(used)} tokens on a "
                       f"worker pool of {grouped(master.worker_pool_tokens)} (allowed {grouped(allowed)} at "
                       f"maxOvercommit {ratio:g}): {drawers}", None)


@stack_rule("worker-type-cap", "A worker of a declared worker type needs no more tokens than the type's cap",
            MANDATORY)
def worker_type_cap(_resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    for larry, worker in plan.workers:
        if worker.type is None:
            continue  # typed workers only: a stack without larry:workerTypes has no caps
        cap = plan.worker_types[worker.type].tokens
        if worker.tokens > cap:
            report(f"Worker {worker.name} (Larry {larry.id}): needs {grouped(worker.tokens)} tokens, "
                   f"its type {worker.type} caps workers at {grouped(cap)}", None)


@stack_rule("emergency-reserve",
            "The meta-coordinator holds an emergency reserve of at least a share of the system budget",
            MANDATORY,
            [Setting("minShare", 0.05, {"type": "number", "minimum": 0, "maximum": 1, "description":
                     "Smallest emergency reserve, as a share of the system token budget"})])
def emergency_reserve(_resources, plan: StackConfig, report: ReportViolation, settings) -> None:
    share, system = float(settings["minShare"]), plan.budget.system_tokens
    reserve = plan.budget.meta.emergency_reserve_tokens
    if reserve <= 0 or plan.reserve_share < share:
        report(f"The emergency reserve is {grouped(reserve)} tokens, {plan.reserve_share:.1%} of the system "
               f"budget {grouped(system)}; at least {share:.1%} ({grouped(math.ceil(share * system))}) is required",
               None)


RULES = (larry_token_budget, system_token_budget, worker_fits_master_pool, master_pool_overcommit,
         worker_type_cap, emergency_reserve)
