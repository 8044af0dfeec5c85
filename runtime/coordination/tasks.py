"""Task definitions and their observable state: the seed's dependency graph (risk 5).

A Larry's tasks are the set ``phase:{larry}:tasks``; a task's ``dependsOn`` is
the set ``task:deps:{id}``. The authoritative dependency check is inside the
lease acquire script (:mod:`runtime.leases`); :meth:`TaskBoard.claimable` is only
a cheap pre-filter for workers choosing what to try next.
"""

from __future__ import annotations

import json
from collections import Counter
from graphlib import CycleError, TopologicalSorter
from typing import Iterable, Mapping

import redis

from runtime.coordination.connection import require_text
from runtime.coordination.keys import Keyspace

TERMINAL = ("completed", "failed")


class TaskBoard:
    def __init__(self, r: redis.Redis, ks: Keyspace):
        require_text(r)
        self.r, self.ks = r, ks

    def define(self, larry: str, graph: Mapping[str, Iterable[str]]) -> list[str]:
        """Register ``{task: dependsOn}`` for a Larry; returns the tasks in dependency order.

        Idempotent: an existing task keeps its status. Raises ValueError on a
        cycle (it could never be claimed). Dependencies may belong to other Larrys.
        """
        graph = {task: tuple(deps) for task, deps in graph.items()}
        try:
            order = [t for t in TopologicalSorter(graph).static_order() if t in graph]
        except CycleError as error:
            raise ValueError(f"dependency cycle: {error.args[1]}") from None
        pipe = self.r.pipeline(transaction=True)
        for task in order:
            pipe.sadd(self.ks.phase_tasks(larry), task)
            pipe.delete(self.ks.task_deps(task))
            if graph[task]:
                pipe.sadd(self.ks.task_deps(task), *graph[task])
            pipe.set(self.ks.task_status(task), "pending", nx=True)
        pipe.execute()
        return order

    def tasks(self, larry: str) -> list[str]:
        return sorted(self.r.smembers(self.ks.phase_tasks(larry)))

    def statuses(self, task_ids: Iterable[str]) -> dict[str, str | None]:
        task_ids = list(task_ids)
        if not task_ids:
            return {}
        return dict(zip(task_ids, self.r.mget([self.ks.task_status(t) for t in task_ids])))

    def counts(self, larry: str) -> Counter:
        """How many of a Larry's tasks are in each status (for progress and dashboards)."""
        return Counter(self.statuses(self.tasks(larry)).values())

    def _scan(self, larry: str) -> list[tuple[str, str | None, bool, set]]:
        """(task, status, locked, dependsOn) for each of a Larry's tasks, in one round trip."""
        tasks = self.tasks(larry)
        pipe = self.r.pipeline(transaction=False)
        for task in tasks:
            pipe.get(self.ks.task_status(task))
            pipe.exists(self.ks.task_lock(task))
            pipe.smembers(self.ks.task_deps(task))
        replies = pipe.execute()
        return [(task, replies[3 * i], bool(replies[3 * i + 1]), replies[3 * i + 2]) for i, task in enumerate(tasks)]

    def claimable(self, larry: str) -> list[str]:
        """Unfinished, unlocked tasks whose dependencies are all completed (a snapshot)."""
        candidates = {t: deps for t, status, locked, deps in self._scan(larry) if status not in TERMINAL and not locked}
        dep_status = self.statuses({d for deps in candidates.values() for d in deps})
        return [t for t, deps in candidates.items() if all(dep_status[d] == "completed" for d in deps)]

    def orphaned(self, larry: str) -> list[str]:
        """Tasks still ``in_progress`` whose lease is gone: their holder died or was cut
        off. Nothing needs re-queueing (they are claimable as they are); this is for
        the coordinator's and dashboard's view."""
        return [t for t, status, locked, _ in self._scan(larry) if status == "in_progress" and not locked]

    def result(self, task_id: str) -> dict | None:
        """The accepted fenced write: token, owner, outcome, data (decoded JSON), at."""
        raw = self.r.hgetall(self.ks.task_result(task_id))
        if not raw:
            return None
        return {**raw, "token": int(raw["token"]), "data": json.loads(raw["data"])}
