"""Seed 004's Master Status and Worker Distribution views, read from a real redis-server."""
from __future__ import annotations

import os

from rich.console import Console

from plan.loader import load_stack
from plan.statuses import MasterStatus, SchemaWorkerStatus, TaskStatus
from runtime.coordination.keys import Keyspace
from runtime.reporting.cortex_view import WORKER_STYLES, master_status, read_cortex, worker_distribution
from tests.support.project import ROOT

CORTEX = load_stack("cortex", ROOT)


def text_of(renderable, width: int = 140) -> str:
    console = Console(record=True, width=width, file=open(os.devnull, "w"))
    console.print(renderable)
    return console.export_text()


def test_master_bars_and_worker_cells_follow_the_state(r):
    ks = Keyspace.cortex(prefix=f"{os.urandom(5).hex()}:")
    security = next(larry for larry in CORTEX.larrys if larry.id == "security")
    first, second, *rest = [t for w in security.workers for t in w.tasks]
    r.set(ks.task_status(first.id), TaskStatus.COMPLETED)
    r.set(ks.task_status(second.id), TaskStatus.IN_PROGRESS)
    r.hset(ks.schema_master("security-master"), "status", MasterStatus.ACTIVE)
    scan1, scan2 = security.workers[0], security.workers[1]
    r.hset(ks.schema_worker(scan1.name), "status", SchemaWorkerStatus.COMPLETED)
    r.hset(ks.schema_worker(scan2.name), "status", SchemaWorkerStatus.FAILED)

    view = read_cortex(r, ks, CORTEX)
    text = text_of(master_status(view))
    masters = [m.name for larry in CORTEX.larrys for m in larry.masters]
    lines = text.splitlines()
    assert [line.split(":")[0].strip() for line in lines] == ["coordinator-master", *masters]
    total = len(security.tasks)
    row = next(line for line in lines if line.startswith("security-master:"))
    assert f"{100 // total}%" in row and "active" in row and second.title in row
    head = lines[0]
    all_tasks = sum(len(larry.tasks) for larry in CORTEX.larrys)
    assert f"{100 * 1 // all_tasks}%" in head and f"Coordinating {len(masters)} masters (1 active)" in head
    idle = next(line for line in lines if line.startswith("monitoring-master:"))
    assert "0%" in idle and "idle" in idle

    cells = {node: dict(workers) for node, workers in view.nodes.items()}
    assert cells[scan1.node][scan1.name] == SchemaWorkerStatus.COMPLETED
    assert cells[scan2.node][scan2.name] == SchemaWorkerStatus.FAILED
    planned = {(w.node, w.name) for larry in CORTEX.larrys for w in larry.workers}
    assert {(node, name) for node, workers in cells.items() for name in workers} == planned
    lines = worker_distribution(view).renderables
    scan1_line = next(line for line in lines if line.plain.startswith(f"{scan1.node}:"))
    styles = {scan1_line.plain[span.start:span.end]: span.style for span in scan1_line.spans}
    assert styles[f"[{scan1.name}]"] == WORKER_STYLES[SchemaWorkerStatus.COMPLETED]
    pending = next(w.name for larry in CORTEX.larrys[1:] for w in larry.workers if w.node == scan1.node)
    assert styles[f"[{pending}]"] == WORKER_STYLES[SchemaWorkerStatus.PENDING]
