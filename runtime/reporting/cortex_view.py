"""Seed 004's two terminal views ("MONITORING APPROACH" 2 and 3) for plans on its protocol:

* **Master Status**: one bar per master — the share of the tasks it oversees that are done,
  its seed 004 status (active | idle | overloaded) and what it is doing (the task in progress,
  or how many) — headed by the coordinator-master's row for the whole plan;
* **Worker Distribution**: one line per node, a cell per worker placed there, coloured by the
  worker's seed 004 status: green completed, yellow running, red failed, dim pending.

Read in one pipelined round trip from the state the runtime keeps: the task statuses, seed
004's ``{ns}:masters:{name}`` and ``{ns}:workers:{id}`` hashes (:mod:`runtime.coordination.schema`).
Guaranteed: every master and worker of the plan has its row or cell, absent state showing as
pending. Not guaranteed: the fields are as current as their writers keep them (a master's
status is refreshed on its coordinator's heartbeat); the read is not a snapshot (a task may
finish between two of its keys).
"""
from __future__ import annotations

from dataclasses import dataclass

import redis
from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from plan.model import StackConfig
from plan.statuses import MasterStatus, SchemaWorkerStatus, TaskStatus
from runtime.coordination.keys import Keyspace

#: The coordinator-master's name in seed 004 (its row heads the Master Status view).
COORDINATOR_MASTER = "coordinator-master"
WORKER_STYLES = {SchemaWorkerStatus.COMPLETED: "bold green", SchemaWorkerStatus.RUNNING: "bold yellow",
                 SchemaWorkerStatus.FAILED: "bold red", SchemaWorkerStatus.PENDING: "dim"}
MASTER_STYLES = {MasterStatus.ACTIVE: "green", MasterStatus.OVERLOADED: "bold yellow", MasterStatus.IDLE: "dim"}


@dataclass(frozen=True)
class MasterRow:
    name: str
    status: str
    done: int
    total: int
    activity: str


@dataclass(frozen=True)
class CortexView:
    masters: tuple[MasterRow, ...]
    #: node -> ((worker, seed 004 status), ...), nodes and workers in plan order
    nodes: dict[str, tuple[tuple[str, str], ...]]


def read_cortex(r: redis.Redis, ks: Keyspace, cfg: StackConfig) -> CortexView:
    """The two views' state, in one round trip."""
    tasks = [(larry, worker, task) for larry in cfg.larrys for worker in larry.workers for task in worker.tasks]
    masters = [(larry, master) for larry in cfg.larrys for master in larry.masters]
    workers = [(larry, worker) for larry in cfg.larrys for worker in larry.workers]
    pipe = r.pipeline(transaction=False)
    pipe.mget([ks.task_status(task.id) for _, _, task in tasks])
    for _, master in masters:
        pipe.hget(ks.schema_master(master.name), "status")
    for _, worker in workers:
        pipe.hget(ks.schema_worker(worker.name), "status")
    statuses, *fields = pipe.execute()
    status_of = {task.id: status or TaskStatus.PENDING for (_, _, task), status in zip(tasks, statuses)}
    master_status, worker_status = fields[:len(masters)], fields[len(masters):]

    rows = []
    for (larry, master), status in zip(masters, master_status):
        mine = [task for owner, worker, task in tasks if owner is larry and larry.overseer(worker) == master.name]
        rows.append(_row(master.name, status or MasterStatus.IDLE, mine, status_of))
    done = sum(status == TaskStatus.COMPLETED for status in status_of.values())
    active = sum(row.status != MasterStatus.IDLE for row in rows)
    head = MasterRow(COORDINATOR_MASTER, MasterStatus.ACTIVE if done < len(tasks) else MasterStatus.IDLE, done,
                     len(tasks), f"Coordinating {len(rows)} masters ({active} active)")
    nodes: dict[str, list[tuple[str, str]]] = {}
    for (_, worker), status in zip(workers, worker_status):
        nodes.setdefault(worker.node, []).append((worker.name, status or SchemaWorkerStatus.PENDING))
    return CortexView((head, *rows), {node: tuple(cells) for node, cells in nodes.items()})


def _row(name: str, status: str, tasks: list, status_of: dict[str, str]) -> MasterRow:
    done = sum(status_of[t.id] == TaskStatus.COMPLETED for t in tasks)
    running = [t for t in tasks if status_of[t.id] == TaskStatus.IN_PROGRESS]
    if running:
        activity = running[0].title + (f" (+{len(running) - 1} more)" if len(running) > 1 else "")
    elif tasks and done == len(tasks):
        activity = f"{done} tasks done"
    else:
        activity = f"{len(tasks) - done} tasks waiting"
    return MasterRow(name, status, done, len(tasks), activity)


def master_status(view: CortexView, width: int = 120) -> Table:
    """``security-master:  [████████░░] 80%  active - Scanning catalog-system``, a row a master."""
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(no_wrap=True)
    table.add_column(width=max(10, min(30, width // 4)))
    table.add_column(justify="right", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    for row in view.masters:
        percent = 100 * row.done // row.total if row.total else 100
        table.add_row(f"{row.name}:", ProgressBar(total=max(1, row.total), completed=row.done),
                      f"{percent}%", Text(row.status, style=MASTER_STYLES.get(row.status, "")), f"- {row.activity}")
    return table


def worker_distribution(view: CortexView) -> Group:
    """``k3s-worker01: [catalog-worker-01] [scan-worker-01] …``, a line a node (cut to the width,
    never wrapped: the region's height is a line a node), and the legend."""
    lines = []
    for node, cells in view.nodes.items():
        line = Text(f"{node}: ", style="bold", no_wrap=True, overflow="ellipsis")
        for worker, status in cells:
            line.append(f"[{worker}]", style=WORKER_STYLES.get(status, ""))
            line.append(" ")
        lines.append(line)
    legend = Text("  ").join(Text(str(status), style=style) for status, style in WORKER_STYLES.items())
    return Group(*lines, legend)
