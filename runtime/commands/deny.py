"""`larry deny ESCALATION --reason TEXT`: an operator denies an escalation; the paused worker
fails its task with the reason (not retried).

Exit status 0 when this call denied it, 1 when it was decided before, 2 for an unknown one.
"""
from __future__ import annotations

import argparse

from plan.exits import ExitCode
from runtime.cli import UsageError, open_run
from runtime.commands.escalations import add_decision_arguments
from runtime.coordination.escalations import Escalations

EXAMPLES = """\
examples:
  larry deny esc-1 --reason "over budget for a low-priority scan" --stack cortex
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", required=True, help="why: the failed task's detail")
    add_decision_arguments(parser, "denies")


def main(args: argparse.Namespace) -> int:
    _cfg, r, ks = open_run(args)
    if not args.reason.strip():
        raise UsageError("--reason: expected a reason, got an empty text")
    decision = Escalations(r, ks).deny(args.escalation, args.reason, by=args.by)
    if decision.status == "unknown":
        raise UsageError(f"no escalation {args.escalation!r} (see `larry escalations`)")
    if decision.status == "decided":
        print(f"{args.escalation} was {decision.detail} before; not changed")
        return ExitCode.FAILED
    print(f"{args.escalation} denied by {args.by}: {args.reason}")
    return ExitCode.OK
