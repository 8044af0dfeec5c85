"""`larry rollback LARRY`: seed 001 appendix B's rollback procedure of one Larry, run as tasks.

::

    larry rollback --stack dev larry-01 [-- <payload...>]

The Larry's ``rollback`` steps (stack config, :class:`plan.model.Rollback`) are announced and
then run by one worker of the Larry, ``{larry}-rollback``, the machinery of `larry worker`
(:class:`runtime.commands.worker.Worker`) without waiting for the Larry's phase:

1. everything a user can get wrong is checked first (the plan, the Larry, that it has rollback
   steps, the payload's metering, that Redis answers a PING within a few seconds, that the
   coordination directory takes files): one line on stderr and exit 2 (:class:`plan.exits.ExitCode`), nothing written;
2. the steps are defined as tasks (``phase:{larry}-rollback:tasks``; each depends on the one
   before, so a failed step stops the rest), the worker's ledger account
   ``{larry}/{larry}-rollback`` is opened with the rollback's ``tokens`` under the Larry's own
   account (the Larry's and the system's limits are set from the plan where no coordinator set
   them; a limit already there is kept), and ``rollback_initiated`` (seed format ``{"from": larry, "event":
   "rollback_initiated", ...}``) goes to the stream and is PUBLISHed on the alerts channel;
3. each step is leased, run by the payload (the command after ``--``, else the rollback's agent
   profile, else the stack's default agent, else the simulated payload), metered and charged
   like any task: every reported token is booked once on the worker's account, the Larry's and
   the system's (nothing charged that was not reported spent), its result a fenced write;
4. the record ``reports/{larry}-rollback.json`` is written and the run's summary gains its
   section (:func:`runtime.reporting.summary.record_rollback`).

Exit status: the worker's (0 every step completed, 3 a step failed for good, 1 Redis was lost
or a payload crashed: run it again), 2 for a usage mistake.

Guaranteed: each step runs under a lease, its result is written once under its fence, so
running the command again resumes the rollback (completed steps are not run again) and a
second command racing the first runs no step twice at once. Not guaranteed: that a payload
stopped mid-step (lease lost, Ctrl+C) did not partly act before the step is run again, nor
that ``rollback_initiated`` is announced once: each command announces its own start.
"""
from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import os
import sys
from pathlib import Path

import redis

from plan.exits import ExitCode
from plan.model import Larry, StackConfig, worker_account
from plan.statuses import TaskStatus
from runtime.cli import (
    OPERATOR_RETRY_SECONDS,
    UsageError,
    add_process_arguments,
    impatient_env,
    interrupt_on_sigterm,
    larry_of,
    load_plan,
    open_redis,
    positive_number,
)
from runtime.commands.worker import Worker, check_usage, choose_payload
from runtime.coordination.events import EventLog
from runtime.coordination.ledger import Ledger
from runtime.coordination.tasks import TaskBoard
from runtime.reporting.results import read_result, results_dir
from runtime.reporting.summary import ConvergeError, record_rollback
from runtime.support.timestamps import now
from runtime.support.timing import Timing

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  larry rollback --stack dev larry-01
  larry rollback --plan /etc/larry/plan.yaml --redis-url redis://redis:6379/0 larry-02 -- my-agent --model m
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("larry", help="the Larry to roll back (one with `rollback` steps in the plan)")
    add_process_arguments(parser)
    parser.add_argument("--kill-grace", type=positive_number, default=5.0,
                        help="seconds between SIGTERM and SIGKILL when a step's payload has to stop (default 5)")
    parser.add_argument("--usage", metavar="ADAPTER",
                        help="how the payload's token use is metered (default: the agent profile's, else "
                             "larry-protocol)")


class RollbackWorker(Worker):
    """A worker that runs after its Larry's phase: an operator asked for it, so it waits for
    neither the phase nor the run's sign-off."""

    bound_to_phase = False

    def _wait_for_sign_off(self) -> None:
        pass


def rollback_plan(cfg: StackConfig, larry: Larry) -> tuple[StackConfig, Larry]:
    """The plan as the rollback runs it: ``larry`` with its rollback worker among its workers
    (so the ledger knows its account, under the Larry's), every worker on its own tasks."""
    rolled = dataclasses.replace(larry, workers=larry.workers + (larry.rollback.worker(larry),))
    return dataclasses.replace(cfg, larrys=tuple(rolled if entry is larry else entry for entry in cfg.larrys),
                               task_assignment="static"), rolled


def main(args: argparse.Namespace) -> int:
    if args.usage is not None:
        check_usage(args.usage)
    cfg = load_plan(args)
    larry = larry_of(cfg, args.larry)
    if larry.rollback is None:
        raise UsageError(f"{cfg.source}: larry:larrys[{cfg.larrys.index(larry)}].rollback: {larry.id} has no "
                         f"rollback steps (expected a rollback with steps for it)")
    plan, rolled = rollback_plan(cfg, larry)
    spec = rolled.workers[-1]
    simulate = [sys.executable, "-m", "runtime.cli", "simulate", "--speed", f"{args.speed:g}"]
    command, usage, profile = choose_payload(cfg.agent_of(spec), args.payload, args.usage, simulate)
    r, ks = open_redis(args, cfg, impatient_env(OPERATOR_RETRY_SECONDS))
    reports = Path(args.coordination_dir) / "reports"
    try:  # where the results and the record go: found unusable after the steps ran would be too late
        reports.mkdir(parents=True, exist_ok=True)
        if not os.access(reports, os.W_OK):
            raise PermissionError(errno.EACCES, "not writable")
    except OSError as error:
        raise UsageError(f"--coordination-dir {args.coordination_dir}: cannot write there "
                         f"({error.strerror or error})") from None
    interrupt_on_sigterm()
    account = worker_account(larry.id, spec.name)
    try:
        TaskBoard(r, ks).define(spec.name, {t.id: t.depends_on for t in spec.tasks}, workers=[spec.name])
        ledger = Ledger.for_plan(r, ks, plan)
        # its own limit, and the Larry's and the system's if no coordinator set them yet
        ledger.open([a.name for a in ledger.path(account)])
        initiated_at = now()
        event_id = EventLog(r, ks).emit("rollback_initiated", larry.id, alert=True, larry=larry.id,
                                        worker=spec.name, steps=[t.id for t in spec.tasks])
        print(f"{larry.id}: rollback_initiated ({event_id}); running {len(spec.tasks)} step(s) as {spec.name}",
              flush=True)
        code = RollbackWorker(plan, rolled, spec, r, ks, Timing.from_env(args.speed), command, args.coordination_dir,
                              kill_grace=args.kill_grace, usage=usage, profile=profile).run()
        board = TaskBoard(r, ks)
        statuses = board.statuses(t.id for t in spec.tasks)
        stored = {t.id: board.result(t.id) for t in spec.tasks}
        charged = ledger.figures(account)["committed"]
    except redis.exceptions.RedisError as error:
        log.error("larry rollback: %s: lost Redis (%s); run it again to resume", larry.id, error)
        return ExitCode.FAILED
    results = results_dir(args.coordination_dir, larry.id)
    steps = []
    for task in spec.tasks:
        # the worker's file of the accepted write (it keeps a failed step's tokens too)
        result = read_result(results, task.id, stored[task.id]["token"]) if stored[task.id] else {}
        steps.append({"id": task.id, "title": task.title, "status": statuses[task.id] or TaskStatus.PENDING,
                      "fence": result.get("fence"), "tokens": int(result.get("tokens", 0)),
                      "detail": result.get("detail")})
    done = all(step["status"] == TaskStatus.COMPLETED for step in steps)
    try:
        path = record_rollback(cfg, args.coordination_dir, {
            "larry": larry.id, "worker": spec.name, "account": account, "event_id": event_id,
            "initiated_at": initiated_at, "finished_at": now(), "status": "completed" if done else "failed",
            "exit_code": int(code), "tokens": charged, "steps": steps})
    except ConvergeError as error:
        log.error("larry rollback: %s: the rollback ran but its record was not written: %s", larry.id, error)
        return ExitCode.FAILED
    print(f"{larry.id}: rollback {'completed' if done else 'failed'}, {charged:,} tokens; recorded in {path}",
          flush=True)
    return code

