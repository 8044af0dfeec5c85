"""`larry escalations`: the run's escalations to a human, oldest first, with their outcome.

Read-only. ``--json`` prints them as one JSON list (each escalation's fields as stored by
:mod:`runtime.coordination.escalations`); otherwise one block per escalation.
"""
from __future__ import annotations

import argparse
import getpass
import json

from runtime.cli import add_run_arguments, open_run
from runtime.coordination.escalations import Escalations

EXAMPLES = """\
examples:
  larry escalations --stack cortex
  larry escalations --plan /etc/larry/plan.yaml --json | jq '.[] | select(.status == "open")'
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the escalations as one JSON list")


def add_decision_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    """What `larry approve` and `larry deny` both take: the escalation, who decides, the run."""
    parser.add_argument("escalation", help="the escalation's id (see `larry escalations`)"
                        + (", or `run` for the run's sign-off" if verb == "approves" else ""))
    parser.add_argument("--by", default=getpass.getuser(), help=f"who {verb} (default: the current user)")
    add_run_arguments(parser)


def main(args: argparse.Namespace) -> int:
    _cfg, r, ks = open_run(args)
    escalations = Escalations(r, ks).all()
    if args.json:
        print(json.dumps(escalations, indent=2))
        return 0
    if not escalations:
        print("no escalations")
    for e in escalations:
        print(f"{e['id']} [{e['status']}] {e['severity']} from {e['from']} ({e['task']}), raised {e['raised_at']}")
        print(f"  issue: {e['issue']}")
        print(f"  options: {'; '.join(e['options'])}")
        print(f"  recommendation: {e['recommendation']}")
        print(f"  outcome: {outcome(e)}")
    return 0


def outcome(escalation: dict) -> str:
    """One line: waiting, or who decided what and when."""
    if escalation["status"] == "open":
        return "waiting for `larry approve` or `larry deny`"
    if escalation["status"] == "approving":
        return "approved; its tokens are being granted (repeat `larry approve` if that was interrupted)"
    what = (f"{int(escalation['tokens']):,} tokens granted" if escalation["status"] == "approved"
            else f"reason: {escalation['reason']}")
    return f"{escalation['status']} by {escalation['decided_by']} at {escalation['decided_at']} ({what})"
