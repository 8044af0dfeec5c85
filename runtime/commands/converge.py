"""`larry converge`: the meta-coordinator's Phase 4 (see :func:`runtime.reporting.summary.converge`).

::

    larry converge --plan /etc/larry/larrys [--coordination-dir D] [--s3-url s3://bucket/prefix]

With Redis configured (``--redis-url`` or the environment) it first waits, on the event
stream, until every Larry has passed the ``convergence`` barrier and then arrived at the
``reports`` barrier, which each coordinator does once its final report is on disk; the wait
is bounded by the plan's execution window (scaled by ``--speed``, plus the allowance of
:mod:`runtime.support.timing`). ``--no-wait`` skips it for reports already written. It prints the
summary's path. Reports and results its volume lacks (in a cluster, each Larry's are on that
Larry's volume) are written from Redis first. A missing or corrupt report, or a failed upload, is one line and exit
status 2; a barrier that times out names the Larrys missing and exits 1.

For a plan on seed 004's protocol it is coordinator-master running seed 004's phases 0-5
(:mod:`runtime.reporting.execution_plan`): pre-flight, master activation and worker
distribution before the convergence barrier, the coordination files kept current while it
waits, then result aggregation, the execution report and the archive ``archives/exec-{id}/``.
Its success criteria go into the summary's verdict; a run whose criteria failed still
converges (exit 0: the Job did its work) and `larry run` exits 1 on that verdict.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from plan import environment as envvar
from runtime.catalog.figures import Reading, from_redis
from runtime.cli import add_process_arguments, interrupt_on_sigterm, load_plan, open_redis
from runtime.commands.preflight import catalog_url
from runtime.coordination.barrier import Barrier, BarrierTimeout
from runtime.coordination.keys import CONVERGENCE_BARRIER, REPORTS_BARRIER
from runtime.coordination.phases import runs_execution_phases
from runtime.reporting.execution_plan import ExecutionPlan
from runtime.reporting.results import results_dir, stored_result, write_result
from runtime.reporting.schema import ReportError, report_path, write_larry_report
from runtime.reporting.summary import ERRORS, converge, load_reports
from runtime.support import callstats
from runtime.support.timing import Timing


def configure_parser(parser) -> None:
    add_process_arguments(parser)
    parser.add_argument("--s3-url", default=os.environ.get(envvar.ARCHIVE_S3_URL),
                        help="also upload the archive to s3://bucket/prefix (default $LARRY_ARCHIVE_S3_URL)")
    parser.add_argument("--no-wait", action="store_true", help="do not wait at the barriers (reports already written)")
    parser.add_argument("--private-redis", action="store_true",
                        help="the run's Redis goes away with it (larry run's own server): no cleanup advice")


EXAMPLES = """\
examples:
  larry converge --plan /etc/larry/larrys --coordination-dir /coordination --s3-url s3://bucket/runs
  larry converge --stack dev --coordination-dir .larry-runs/dev-20261130-141355-a1b2c3 --no-wait
"""


def fetch_missing_reports(r, ks, cfg, coordination_dir) -> None:
    """Write the reports this volume lacks from the copies coordinators left in Redis.

    Locally every process shares one directory; in a cluster each Larry's volume is in its
    own namespace. A report in neither place stays missing, and converge names its file.
    """
    for larry in cfg.larrys:
        if report_path(coordination_dir / "reports", larry.id).exists():
            continue
        key = ks.phase_report(larry.id)
        stored = r.get(key)
        if stored is None:
            continue
        try:
            report = json.loads(stored)
        except json.JSONDecodeError as exc:
            raise ReportError(f"redis key {key}: not valid JSON ({exc.msg})") from None
        write_larry_report(coordination_dir / "reports", report)


def fetch_missing_results(r, ks, cfg, coordination_dir) -> None:
    """Write the result files this volume lacks from the fenced results in Redis.

    Workers write them to their own Larry's volume; in a cluster converge's volume is another,
    and without these its archive would hold no result at all.
    """
    for larry in cfg.larrys:
        directory = results_dir(coordination_dir, larry.id)
        for task in larry.tasks:
            if (directory / f"{task.id}.json").exists():
                continue
            key = ks.task_result(task.id)
            stored = r.hgetall(key)
            if not stored:
                continue
            try:
                record = stored_result(larry.id, task.id, stored)
            except (KeyError, IndexError, ValueError) as exc:
                raise ReportError(f"redis key {key}: not a task result (token, owner, outcome, data, at): {exc!r}") from None
            write_result(directory, task.id, record)


def main(args) -> int:
    cfg = load_plan(args)
    callstats.install("converge")
    interrupt_on_sigterm()
    r = ks = None
    timing = Timing.from_env(args.speed)
    waits = not args.no_wait and (args.redis_url or os.environ.get(envvar.REDIS_SENTINELS))
    if waits:
        r, ks = open_redis(args, cfg)
    if waits and runs_execution_phases(cfg):
        return run_execution_plan(args, cfg, r, ks, timing)
    if waits:
        larrys = [larry.id for larry in cfg.larrys]
        until = time.monotonic() + timing.deadline(cfg.execution_window_minutes)
        try:
            for name in (CONVERGENCE_BARRIER, REPORTS_BARRIER):
                Barrier(r, ks, name, larrys).wait(max(0.001, until - time.monotonic()))
        except BarrierTimeout as timeout:
            print(f"larry converge: {timeout}", file=sys.stderr)
            return 1
    try:
        if r is not None:
            fetch_missing_reports(r, ks, cfg, args.coordination_dir)
            fetch_missing_results(r, ks, cfg, args.coordination_dir)
        result = converge(cfg, args.coordination_dir, s3_url=args.s3_url, allowance=timing.allowance,
                          private_redis=args.private_redis, catalog=catalog_figures(cfg, r, ks))
    except ERRORS as error:
        print(f"larry converge: {error}", file=sys.stderr)
        return 2
    return _printed(result)


def catalog_figures(cfg, r, ks) -> Reading | None:
    """The catalog's figures from the hub it keeps its state on, which converge is connected to
    already; None (the summary asks the catalog's API) without a connection."""
    return from_redis(r, ks) if cfg.catalog.enabled and r is not None else None


def _printed(result) -> int:
    print(f"archive: {result.archive}" + (f" and {result.s3_uri}" if result.s3_uri else ""))
    print(f"summary: {result.summary}", flush=True)
    return 0


def run_execution_plan(args, cfg, r, ks, timing: Timing) -> int:
    """Seed 004's phases 0-5 (coordinator-master), then the summary and archive."""
    root = Path(args.coordination_dir)
    plan = ExecutionPlan(cfg, r, ks, root, timing, catalog_url=catalog_url(cfg),
                         prometheus_url=os.environ.get(envvar.PROMETHEUS_URL),
                         say=lambda text: print(f"coordinator-master: {text}", flush=True))
    until = time.monotonic() + timing.deadline(cfg.execution_window_minutes)
    try:
        plan.preflight(until)
        plan.activate_masters(until)
        plan.distribute_workers(until)
        plan.execute(until)
        plan.begin_aggregation()
        Barrier(r, ks, REPORTS_BARRIER, cfg.larry_ids).wait(max(0.001, until - time.monotonic()))
    except BarrierTimeout as timeout:
        plan.fail(str(timeout))
        print(f"larry converge: {timeout}", file=sys.stderr)
        return 1
    try:
        fetch_missing_reports(r, ks, cfg, root)
        fetch_missing_results(r, ks, cfg, root)
        reports = load_reports(cfg, root / "reports")
        plan.aggregate(reports)
        plan.report_and_clean_up(reports)
        result = converge(cfg, root, s3_url=args.s3_url, allowance=timing.allowance,
                          private_redis=args.private_redis, execution_id=plan.id, criteria=plan.criteria,
                          catalog=catalog_figures(cfg, r, ks))
    except ERRORS as error:
        plan.fail(str(error))
        print(f"larry converge: {error}", file=sys.stderr)
        return 2
    plan.finish(result.summary, result.archive.parent)
    return _printed(result)
