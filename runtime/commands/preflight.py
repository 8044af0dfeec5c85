"""`larry preflight`: a checklist before a run, or of a run under way.

Redis reachable and writable (a primary), Sentinel quorum (``SENTINEL CKQUORUM``) when
Sentinel is configured, the plan's budget arithmetic (:mod:`plan.model`), and, once a run's
ledger exists, every account's limit equal to the plan's and the reserve lent within
what it holds; with the catalog on (``$LARRY_CATALOG_URL`` or the stack's Service) its
baseline, seed 004's ``{ stats { assets { total } } }``; with ``$LARRY_PROMETHEUS_URL`` set,
Prometheus ready. Exit status 1 when a check failed, 0 otherwise. Read-only: it changes
nothing in Redis or the catalog. Seed 004's Phase 0 runs the same checks
(:mod:`runtime.reporting.execution_plan`).
"""
from __future__ import annotations

import argparse
import os
import urllib.error
import urllib.request
from dataclasses import dataclass

import redis
from rich.console import Console
from rich.table import Table
from rich.text import Text

from plan import environment as envvar
from plan.exits import ExitCode
from plan.model import StackConfig, budget_accounts
from runtime.catalog.client import CatalogClient, CatalogRejected, CatalogUnavailable
from runtime.cli import OPERATOR_RETRY_SECONDS, UsageError, add_run_arguments, impatient_env, load_plan, open_redis
from runtime.coordination.connection import RedisSettings
from runtime.coordination.keys import Keyspace
from runtime.reporting.run_view import describe, read_pool
from runtime.reporting.validation import larrys_over_budget, system_allocation

EXAMPLES = """\
examples:
  larry preflight --stack dev
  LARRY_REDIS_SENTINELS=redis-sentinel:26379 larry preflight --plan /etc/larry/plan.yaml
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)


@dataclass(frozen=True)
class Check:
    name: str
    outcome: str  # "ok" | "failed" | "skipped"
    detail: str


def main(args: argparse.Namespace) -> int:
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
    checks.append(check_catalog_baseline(catalog_url(cfg))[0])
    checks.append(check_prometheus(os.environ.get(envvar.PROMETHEUS_URL)))
    print_checklist(checks)
    return ExitCode.FAILED if any(check.outcome == "failed" for check in checks) else ExitCode.OK


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
    """The plan's own arithmetic (plan.model): each Larry within its budget, all within the system's."""
    over = larrys_over_budget(cfg)
    fits = ", ".join(f"{larry.id} {larry.allocated_tokens:,}/{larry.token_budget:,}" for larry in cfg.larrys)
    checks = [Check("Larry budgets", "failed" if over else "ok", "; ".join(over) or fits)]
    checks.append(Check("system budget", "failed" if cfg.allocated_tokens > cfg.budget.system_tokens else "ok",
                        system_allocation(cfg)))
    return checks


def check_ledger(r: redis.Redis, ks: Keyspace, cfg: StackConfig) -> Check:
    """Once a run initialised its ledger: every account's limit equals the plan's
    (:func:`plan.model.budget_accounts`), and the reserve has lent no more than it holds."""
    name = "ledger matches plan"
    accounts = budget_accounts(cfg)
    pipe = r.pipeline(transaction=False)
    for account in accounts:
        pipe.hget(ks.token_account(account), "limit")
    stored = dict(zip(accounts, pipe.execute()))
    if all(limit is None for limit in stored.values()):
        return Check(name, "skipped", "no run ledger in Redis yet")
    problems = [f"{account}: no ledger limit" if stored[account] is None else
                f"{account}: ledger limit {int(stored[account]):,} != plan {a.limit:,}"
                for account, a in accounts.items() if stored[account] is None or int(stored[account]) != a.limit]
    pool = read_pool(r, ks, cfg)
    if pool["left"] is not None and pool["left"] < 0:
        problems.append(f"the reserve lent {pool['plan'] - pool['left']:,} of {pool['plan']:,}")
    if problems:
        return Check(name, "failed", "; ".join(problems))
    lent = pool["plan"] - pool["left"]
    return Check(name, "ok", f"{len(accounts)} account limits equal the plan's; reserve lent {lent:,} of {pool['plan']:,}")


#: Seed 004 Phase 0 "Catalog Service Baseline" (its ``{ assets { total } }`` is ``stats`` in its schema).
BASELINE_QUERY = "{ stats { assets { total baseline } } }"


def catalog_url(cfg: StackConfig) -> str | None:
    """Where the run's catalog answers: ``$LARRY_CATALOG_URL``, else the stack's Service when on."""
    return os.environ.get(envvar.CATALOG_URL) or (cfg.catalog.url if cfg.catalog.enabled else None)


def catalog_baseline(url: str, timeout: float = 5.0) -> dict:
    """``{total, baseline}`` from the catalog's stats; CatalogUnavailable/CatalogRejected otherwise."""
    counts = CatalogClient(url, timeout).execute(BASELINE_QUERY, {})
    try:
        assets = counts["stats"]["assets"]
        return {"total": int(assets["total"]), "baseline": int(assets["baseline"])}
    except (KeyError, TypeError, ValueError):
        raise CatalogRejected(f"{url}: expected stats.assets.total and baseline, got {counts!r:.200}") from None


def check_catalog_baseline(url: str | None) -> tuple[Check, dict | None]:
    """The catalog answers its baseline query and holds at least its baseline's assets; and
    the counts it answered (None when it did not)."""
    name = "Catalog baseline"
    if url is None:
        return Check(name, "skipped", "the stack has no catalog (larry:catalog)"), None
    try:
        counts = catalog_baseline(url)
    except (CatalogUnavailable, CatalogRejected) as error:
        return Check(name, "failed", str(error)), None
    if counts["total"] < counts["baseline"]:
        return Check(name, "failed", f"{url}: {counts['total']} assets, fewer than its baseline "
                                     f"{counts['baseline']}"), counts
    return Check(name, "ok", f"{url}: {counts['total']} assets ({counts['baseline']} from the baseline)"), counts


def check_prometheus(url: str | None, timeout: float = 5.0) -> Check:
    """Prometheus's ``/-/ready`` answers 200 (seed 004 Phase 0: "Prometheus scraping metrics")."""
    name = "Prometheus ready"
    if not url:
        return Check(name, "skipped", f"no Prometheus configured (${envvar.PROMETHEUS_URL} unset)")
    ready = url.rstrip("/") + "/-/ready"
    try:
        with urllib.request.urlopen(ready, timeout=timeout) as response:
            return Check(name, "ok", f"{ready}: HTTP {response.status}")
    except urllib.error.HTTPError as error:
        return Check(name, "failed", f"{ready}: HTTP {error.code}")
    except (urllib.error.URLError, OSError) as error:
        return Check(name, "failed", f"{ready}: {getattr(error, 'reason', error)}")


_MARKS = {"ok": ("✔", "green"), "failed": ("✘", "bold red"), "skipped": ("–", "dim")}


def print_checklist(checks: list[Check]) -> None:
    table = Table(show_header=False, box=None, padding=(0, 1))
    for check in checks:
        mark, style = _MARKS[check.outcome]
        table.add_row(Text(mark, style=style), Text(check.name, style="bold"), Text(check.outcome, style=style),
                      check.detail)
    Console().print(table)
