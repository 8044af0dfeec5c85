"""`larry approve ESCALATION [--tokens N]`: an operator approves an escalation; the tokens (by
default what the escalation recommends) are granted in the ledger on the account that ran
short and every account above it, and the paused worker resumes its task.

`larry approve run`: the operator's sign-off of a run whose plan requires one
(``larry:approval: {required: true}``); until then no worker starts its first task.

Exit status 0 when this call approved it (or repeated the same approval), 1 when it was
denied before, 2 for an unknown escalation.
"""
from __future__ import annotations

import argparse

from plan.exits import ExitCode
from runtime.cli import UsageError, open_run
from runtime.commands.escalations import add_decision_arguments
from runtime.coordination.escalations import Escalations
from runtime.coordination.ledger import Ledger

EXAMPLES = """\
examples:
  larry approve esc-1 --stack cortex
  larry approve esc-2 --tokens 5000 --plan /etc/larry/plan.yaml
  larry approve run --stack dev
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokens", type=int, help="tokens to grant (default: what the escalation recommends)")
    add_decision_arguments(parser, "approves")


def main(args: argparse.Namespace) -> int:
    cfg, r, ks = open_run(args)
    escalations = Escalations(r, ks)
    if args.escalation == "run":
        approved, approval = escalations.approve_run(args.by, list(cfg.larry_ids))  # every Larry, from a slice too
        print(f"the run {'is now' if approved else 'was already'} approved by {approval['by']} at {approval['at']}")
        return ExitCode.OK
    escalation = escalations.get(args.escalation)
    if escalation is None:
        raise UsageError(f"no escalation {args.escalation!r} (see `larry escalations`)")
    tokens = int(escalation["tokens_short"]) if args.tokens is None else args.tokens
    # An agent's own escalation (the protocol's `escalation`) asks for no tokens: approved
    # as it is, nothing is granted.
    if not (0 < tokens <= 10**12 or (tokens == 0 and args.tokens is None)):
        raise UsageError(f"--tokens: expected a whole number of tokens from 1 to 1,000,000,000,000, got {tokens}")
    decision = escalations.approve(args.escalation, Ledger.for_plan(r, ks, cfg), tokens, by=args.by)
    if decision.status != "approved":
        print(f"{args.escalation} was {decision.detail} before; nothing granted")
        return ExitCode.FAILED
    granted = escalations.get(args.escalation)
    if not tokens:
        print(f"{args.escalation} approved by {granted['decided_by']}: no tokens asked, none granted "
              f"({granted['from']}, {granted['task']}: {granted['issue']})")
        return ExitCode.OK
    print(f"{args.escalation} approved by {granted['decided_by']}: {int(granted['tokens']):,} tokens granted "
          f"on {granted['account']}; {granted['from']} resumes {granted['task']}")
    return ExitCode.OK
