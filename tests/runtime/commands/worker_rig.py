"""The state of one worker or coordinator test: the cortex plan on the session's
redis-server under a key prefix of its own, and a coordination directory. The plan's tasks
are assigned statically, each worker its own (the queue's tests: tests/runtime/coordination/
test_queue.py and the cortex run of tests/scenarios/test_run.py)."""
from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

from plan.loader import load_stack
from plan.model import meta_account
from runtime import cli
from runtime.commands.coordinator import Coordinator
from runtime.coordination.events import EventLog
from runtime.coordination.keys import Keyspace
from runtime.coordination.ledger import Ledger
from runtime.coordination.tasks import TaskBoard
from runtime.reporting.results import read_result, results_dir
from runtime.support.timing import Timing
from tests.support.project import ROOT

_QUEUED = load_stack("cortex", ROOT)
CORTEX = replace(_QUEUED, task_assignment="static", values={**_QUEUED.values, "larry:taskAssignment": "static"})


class Rig:
    """One test's plan state: a key prefix on the session's redis-server, a coordination dir."""

    def __init__(self, redis_server, r, tmp_path: Path):
        self.url, self.r, self.dir = redis_server.url, r, tmp_path
        self.ks = Keyspace.for_plan(CORTEX.channels, f"w{uuid.uuid4().hex[:10]}:")
        self.board = TaskBoard(r, self.ks)
        self.plan = tmp_path / "plan.yaml"
        self.plan.write_text(CORTEX.plan_document())

    def coordinator(self, larry: str) -> Coordinator:
        return Coordinator(CORTEX, CORTEX.larry(larry), self.r, self.ks, Timing(600), self.dir)

    def start_phase(self, larry: str) -> Coordinator:
        coordinator = self.coordinator(larry)
        coordinator.initialise()
        return coordinator

    def worker(self, larry: str, name: str, command: list[str], *, speed: float = 600, kill_grace: float = 0.5,
               usage: str | None = None) -> int:
        return cli.main(["worker", "--plan", str(self.plan), "--larry", larry,
                         "--worker", name, "--redis-url", self.url, "--key-prefix", self.ks.prefix,
                         "--coordination-dir", str(self.dir), "--speed", str(speed),
                         "--kill-grace", str(kill_grace), *(["--usage", usage] if usage else []), "--", *command])

    def events(self, name: str, task: str | None = None) -> list:
        return [e for e in EventLog(self.r, self.ks).history()
                if e.name == name and (task is None or e.data.get("task_id") == task)]

    def result_file(self, larry: str, task: str) -> dict:
        return read_result(results_dir(self.dir, larry), task, self.board.result(task)["token"])

    def ledger(self) -> Ledger:
        return Ledger.for_plan(self.r, self.ks, CORTEX)

    def set_limit(self, account: str, limit: int) -> None:
        self.r.hset(self.ks.token_account(account), "limit", limit)

    def empty_reserve(self) -> None:
        self.set_limit(meta_account("reserve"), 0)
