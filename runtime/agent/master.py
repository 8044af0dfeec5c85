"""The built-in master: until masters run an agent of their own, each master of a Larry is
played by that Larry's coordinator, spending its budgets as seed 003/004's masters do.

* It reviews every task it oversees once the task has ended, and charges the review to its
  personal account (``review:{task}``, booked on personal → Larry → system): simulated
  tokens, 30-60 % of an even share of its personal budget per task, drawn from a generator
  seeded by the task id, so a run is reproducible. It oversees its own workers (those that
  name it, drawing on its pool) and a share of the Larry's workers that name no master
  (seed 001's, whose budgets are their Larry's): those are dealt to the masters in turn.
* Once every task of its own workers has ended, or its Larry's phase has, it releases what
  its worker pool did not use (``release:{pool}``) to its Larry, which lends it to the masters
  still working (seed 004's lesson "dynamic token reallocation between masters",
  :meth:`runtime.coordination.ledger.Ledger.release`).

Guaranteed: each review is charged once and each pool released once, whatever restarts the
coordinator goes through (op ids). At the end its part of the Larry's report
(:func:`master_report`) says what it reviewed, spent, used and handed back. Not guaranteed:
that a review reads anything (no agent runs), or that tokens a worker reports after its pool
was released are lent to it (they are booked, past the pool's limit: ``overrun``).
"""
from __future__ import annotations

import random
import zlib
from typing import Mapping

from plan.model import Larry, Master, master_account
from plan.statuses import TERMINAL, TaskStatus
from runtime.coordination.ledger import Ledger

#: A review costs this share of the master's personal tokens per task of its workers.
REVIEW_SHARE = (0.3, 0.6)


def review_tokens(master: Master, task: str, tasks: int) -> int:
    rng = random.Random(zlib.crc32(f"review:{task}".encode()))
    return int(master.personal_tokens / max(tasks, 1) * rng.uniform(*REVIEW_SHARE))


def overseen(larry: Larry, master: Master) -> tuple[list[str], set[str]]:
    """(the tasks ``master`` reviews, the tasks of the workers drawing on its pool)."""
    unowned = [w for w in larry.workers if w.master is None]
    dealt = unowned[[m.name for m in larry.masters].index(master.name)::len(larry.masters)]
    own = [w for w in larry.workers if w.master == master.name]
    return [t.id for w in own + dealt for t in w.tasks], {t.id for w in own for t in w.tasks}


def master_report(larry: Larry, master: Master, tasks: Mapping[str, dict], accounts: Mapping[str, dict]) -> dict:
    """The master's part of its Larry's final report, from the report's tasks and accounts:
    what it reviewed and how those tasks ended, what it spent, and what its pool used and
    handed back."""
    reviewed, _ = overseen(larry, master)
    ended = [tasks[t] for t in reviewed]
    personal, pool = (accounts[master_account(larry.id, master.name, part)] for part in ("personal", "pool"))
    return {"name": master.name, "reviewed": len(ended),
            "completed": sum(t["status"] == TaskStatus.COMPLETED for t in ended),
            "failed": sum(t["status"] == TaskStatus.FAILED for t in ended),
            "personal": {k: personal[k] for k in ("limit", "committed")},
            "pool": {k: pool[k] for k in ("limit", "granted", "committed", "released")},
            "tasks": reviewed}


class BuiltInMaster:
    def __init__(self, ledger: Ledger, larry: Larry, master: Master):
        self.ledger, self.larry, self.master = ledger, larry, master
        self.name = f"{larry.id}/{master.name}"
        self.tasks, self.pool_tasks = overseen(larry, master)
        self.personal = master_account(larry.id, master.name, "personal")
        self.pool = master_account(larry.id, master.name, "pool")
        self._reviewed: set[str] = set()
        self._released = False

    def tend(self, statuses: Mapping[str, str], *, phase_ended: bool = False) -> list[str]:
        """Review the tasks that ended since the last call, release the pool when its work is
        over; what it did, as narrative lines."""
        lines = []
        for task in (t for t in self.tasks if t not in self._reviewed and statuses.get(t) in TERMINAL):
            op = self.ledger.record(f"review:{task}", self.personal,
                                    review_tokens(self.master, task, len(self.tasks)), who=self.name)
            self._reviewed.add(task)
            if not op.replay:
                past = ", past its personal budget" if op.status == "overrun" else ""
                lines.append(f"master {self.name} reviewed {task} ({op.amount:,} tokens{past})")
        if not self._released and (phase_ended or self.pool_tasks <= self._reviewed):
            op = self.ledger.release(f"release:{self.pool}", self.pool, who=self.name)
            self._released = True
            if not op.replay:
                lines.append(f"master {self.name}: work over, {op.amount:,} unused pool tokens returned to "
                             f"{self.larry.id}")
        return lines
