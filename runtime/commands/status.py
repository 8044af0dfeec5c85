"""`larry status`: a run's state, read from Redis beside the plan.

Per Larry: phase status, progress, started/completed, task counts, ledger snapshot,
findings and tasks in progress; the meta-coordinator's reserve pool; open escalations; the workers with the
age of their last heartbeat (the primary's clock); every barrier's arrivals
(:func:`runtime.reporting.run_view.read_run`). ``--json`` prints that state as one document;
otherwise as tables. Read-only: it changes nothing in Redis.

At fleet size it reads and shows one page of Larrys (``--page``, ``--page-size``, default
:data:`PAGE_SIZE`) or one Larry (``--larry``), with a line on the whole fleet (Larrys by phase
status, the least progressed) from each Larry's phase keys alone; past :data:`WORKER_ROWS`
workers the table counts them per Larry and status instead of listing them.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from datetime import timezone

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from plan.statuses import TERMINAL
from runtime.cli import UsageError, add_run_arguments, open_run
from runtime.reporting.run_text import barrier_text, findings_text, status_text
from runtime.reporting.run_view import read_run, select_larrys
from runtime.support.timestamps import parse_optional

EXAMPLES = """\
examples:
  larry status --stack dev
  larry status --stack fleet --page 3                 # Larrys 41-60; every Larry's phase in brief
  larry status --stack fleet --larry larry-042        # one Larry's tasks, ledger and workers
  larry status --plan /etc/larry/plan.yaml --key-prefix run7: --json | jq '.larrys[].tasks'
"""


#: Larrys per page (``--page``) by default.
PAGE_SIZE = 20
#: Up to this many workers are listed one per row; more are counted per Larry and status.
WORKER_ROWS = 40


def add_paging_arguments(parser: argparse.ArgumentParser, page_size: int) -> None:
    """--larry, --page, --page-size: which Larrys a view of the run reads and shows."""
    parser.add_argument("--larry", metavar="ID", help="show this Larry only (its tasks, ledger and workers)")
    parser.add_argument("--page", type=int, default=1, metavar="N",
                        help="show the N-th page of Larrys, in plan order (default 1)")
    parser.add_argument("--page-size", type=int, default=page_size, metavar="N",
                        help=f"Larrys per page (default {page_size})")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    add_paging_arguments(parser, PAGE_SIZE)
    parser.add_argument("--json", action="store_true", help="print the state as one JSON document")


def main(args: argparse.Namespace) -> int:
    cfg, r, ks = open_run(args)
    try:
        shown, which = select_larrys(cfg, args.larry, args.page, args.page_size)
    except ValueError as error:
        raise UsageError(str(error)) from None
    state = read_run(r, ks, cfg, shown)
    if args.json:
        print(json.dumps(state, indent=2))
        return 0
    console = Console()
    console.print(Text(f"Stack {state['stack']} · Redis time {state['time']} · {which}", style="bold"))
    console.print(fleet_text(state["fleet"]))
    workers = _workers_table(state) if len(state["workers"]) <= WORKER_ROWS else _workers_summary(state)
    for table in (_phases_table(state), _findings_table(state), _ledger_table(state), workers):
        console.print()
        console.print(table)
    console.print()
    for barrier in state["barriers"]:
        console.print(Text.assemble("Barrier ", (barrier["name"], "bold"), ": ", barrier_text(barrier)))
    waiting = [e for e in state["escalations"] if e["status"] == "open"]
    console.print(Text(f"Open escalations: {len(waiting) or 'none'}", style="bold red" if waiting else ""))
    for e in waiting:
        console.print(f"  {e['id']} from {e['from']} ({e['task']}): {e['issue']}; {e['recommendation']}")
    return 0


def _table(title: str, left: tuple[str, ...], right: tuple[str, ...] = ()) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, show_edge=False,
                  padding=(0, 0, 0, 1), pad_edge=False)
    for column in left + right:
        table.add_column(column, justify="right" if column in right else "left")
    return table


def _phases_table(state: dict) -> Table:
    table = _table("Phases (times UTC)", ("Larry", "Status"),
                   ("Progress", "Started", "Completed", "Done", "Running", "Failed"))
    for larry in state["larrys"]:
        tasks = larry["tasks"]
        table.add_row(larry["larry"], status_text(larry["status"]), f"{larry['progress']}%",
                      _clock(larry["started_at"]), _clock(larry["completed_at"]),
                      f"{tasks['completed']}/{tasks['total']}", str(tasks["in_progress"]), str(tasks["failed"]))
    return table


def _clock(stamp: str | None) -> str:
    moment = parse_optional(stamp)
    return moment.astimezone(timezone.utc).strftime("%H:%M:%S") if moment else "-"


def _findings_table(state: dict) -> Table:
    table = _table("Findings", ("Larry", "Phase", "Findings"))
    for larry in state["larrys"]:
        table.add_row(larry["larry"], larry["phase"], findings_text(larry["findings"]) or "-")
    return table


def _ledger_table(state: dict) -> Table:
    pool = state["reserve_pool"]
    left = "not initialised" if pool["left"] is None else f"{pool['left']:,}"
    table = _table(f"Token ledger · reserve pool {left} of {pool['plan']:,}", ("Larry",),
                   ("Limit", "Reserved", "Committed", "Emergency drawn", "Available"))
    for larry in state["larrys"]:
        ledger = larry["ledger"]
        table.add_row(larry["larry"], *(f"{ledger[k]:,}" for k in
                                        ("limit", "reserved", "committed", "emergency", "available")))
    return table


def _workers_table(state: dict) -> Table:
    table = _table(f"Workers ({len(state['workers'])} heartbeating)", ("Worker", "Larry", "Node", "Status"),
                   ("Heartbeat age",))
    for worker in state["workers"]:
        age = Text(f"{worker['heartbeat_age_s']:.1f}s", style="" if worker["alive"] else "bold red")
        table.add_row(worker["worker"], worker["larry"] or "?", worker["node"] or "?", worker["status"] or "?", age)
    return table


def fleet_text(fleet: dict) -> Text:
    """One line for the whole fleet: Larrys by phase status, and the least progressed."""
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(fleet["statuses"].items()))
    behind = [f"{p['larry']} {p['progress']}%" for p in fleet["progress"]
              if p["status"] not in TERMINAL][:5]
    return Text(f"Fleet: {fleet['larrys']} Larrys ({statuses})"
                + (f"; least progressed: {', '.join(behind)}" if behind else ""))


def _workers_summary(state: dict) -> Table:
    """The workers counted per Larry and status: a fleet's thousands of rows would not be read."""
    counts: dict[str, Counter] = {}
    for worker in state["workers"]:
        count = counts.setdefault(worker["larry"] or "?", Counter())
        count[worker["status"] or "?"] += 1
        count["silent"] += not worker["alive"]
    statuses = sorted({s for c in counts.values() for s in c if s != "silent"})
    table = _table(f"Workers per Larry: {len(state['workers'])}", ("Larry",),
                   (*statuses, "Silent"))
    for larry, count in sorted(counts.items()):
        silent = Text(str(count["silent"]), style="bold red" if count["silent"] else "")
        table.add_row(larry, *(str(count[s]) for s in statuses), silent)
    return table
