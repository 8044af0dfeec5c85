"""`larry simulate`: the built-in payload a worker runs when it is given no agent.

::

    larry worker ... -- larry simulate [--speed N] [--overspend]

It plays the task the worker names in the payload environment (:mod:`runtime.agent.protocol`)
with :mod:`runtime.agent.simulated`, at the run's speed (``--speed``, default
``$LARRY_SPEED`` or 1, like every other command).
"""
from __future__ import annotations

import os

from runtime.agent import simulated
from runtime.cli import add_speed_argument

EXAMPLES = """\
examples:
  larry worker --stack dev --larry larry-02 --worker scan-worker-01 --speed 60 -- larry simulate --speed 60
  LARRY_TASK_ID=t LARRY_TOKEN_BUDGET=1000 LARRY_TASK_MINUTES=1 larry simulate --speed 600 --overspend
"""


def configure_parser(parser) -> None:
    add_speed_argument(parser)
    parser.add_argument("--overspend", action="store_true",
                        help="spend 150 %% of the token budget (to exercise the worker's budget stop)")


def main(args) -> int:
    return simulated.run(os.environ, speed=args.speed, overspend=args.overspend)
