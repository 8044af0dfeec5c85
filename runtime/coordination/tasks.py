"""Task definitions and their observable state: the seed's dependency graph (risk 5).

A Larry's tasks are the set ``phase:{larry}:tasks``; a task's ``dependsOn`` is the set
``task:deps:{id}``; its status (:class:`plan.statuses.TaskStatus`) is ``task:status:{id}``.

Guarantees: :meth:`TaskBoard.define` is one MULTI/EXEC and idempotent (an existing task keeps
its status); a cyclic graph is refused before anything is written. :meth:`TaskBoard.requeue`
is one Lua script that puts a task back to ``pending`` only while it is still
``in_progress`` with no lease, so a live holder never loses its task, and emits
``task_requeued`` (on the event stream only) exactly once.

Not guaranteed: the authoritative "may this task run now" check is not here but in the
lease acquire function (:mod:`runtime.coordination.leases`), which checks status, holder and
dependencies atomically; :meth:`TaskBoard.statuses` is a snapshot that may be stale at once.
"""

from __future__ import annotations

import json
from graphlib import CycleError, TopologicalSorter
from typing import Iterable, Mapping

import redis

from plan.statuses import TaskStatus
from runtime.coordination.connection import Durability, require_text, run_script
from runtime.coordination.events import lua_script
from runtime.coordination.keys import Keyspace

# Only a task still marked in progress whose lease is gone: a live holder keeps its task.
_REQUEUE = r"""
-- ARGV[1] larry, [2] task, [3] worker that held it
local status_key = STATUS_PREFIX .. ARGV[2]
if redis.call('GET', status_key) ~= 'in_progress' or redis.call('EXISTS', LOCK_PREFIX .. ARGV[2]) == 1 then
  return 0
end
redis.call('SET', status_key, 'pending')
record({event='task_requeued', larry=ARGV[1], task_id=ARGV[2], worker=ARGV[3]})
return 1
"""


class TaskBoard:
    def __init__(self, r: redis.Redis, ks: Keyspace, durability: Durability = Durability()):
        require_text(r)
        self.r, self.ks, self.durability = r, ks, durability
        self._requeue = r.register_script(lua_script(ks, _REQUEUE))

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
            pipe.set(self.ks.task_status(task), TaskStatus.PENDING, nx=True)
        pipe.execute()
        return order

    def statuses(self, task_ids: Iterable[str]) -> dict[str, str | None]:
        task_ids = list(task_ids)
        if not task_ids:
            return {}
        return dict(zip(task_ids, self.r.mget([self.ks.task_status(t) for t in task_ids])))

    def requeue(self, larry: str, task_id: str, worker: str) -> bool:
        """Coordinator: put a dead ``worker``'s orphaned task (in progress, no lease) back to
        pending; True if this call did it."""
        return bool(run_script(self.r, self._requeue, [], [larry, task_id, worker], self.durability))

    def result(self, task_id: str) -> dict | None:
        """The accepted fenced write: token, owner, outcome, data (decoded JSON), at."""
        raw = self.r.hgetall(self.ks.task_result(task_id))
        if not raw:
            return None
        return {**raw, "token": int(raw["token"]), "data": json.loads(raw["data"])}
