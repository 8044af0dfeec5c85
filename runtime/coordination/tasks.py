"""Task definitions and their observable state: the seed's dependency graph (risk 5) and seed
004's task queue.

A Larry's tasks are the set ``phase:{larry}:tasks``; a task's ``dependsOn`` is the set
``task:deps:{id}``; its status (:class:`plan.statuses.TaskStatus`) is ``task:status:{id}``.

The task queue (seed 004 Appendix B, ``{ns}:tasks:queue``; the seed draws a LIST of JSON
entries, which cannot be taken by priority nor keep a task whose taker died): a sorted set of
the task ids not yet finished, scored by :func:`queue_score` (priority first, critical lowest,
then the master's plan order), beside the hash ``{ns}:tasks:queue:entries`` of each task's
entry ``{task_id, master, priority, created_at, dependencies}`` (``master``: the queue, its
workers' master, or the Larry's id for workers that name none). A task stays queued while it
is pending or held; the lease function that finishes it for good removes it in the same call
(:mod:`runtime.coordination.leases`), and its entry is kept. In ``queue`` assignment workers
take from it (:meth:`runtime.coordination.leases.LeaseManager.claim`); in ``static``
assignment it is the same view of the plan, and nobody takes from it.

Guarantees: :meth:`TaskBoard.define` is one script and idempotent (an existing task keeps
its status, a finished one is not queued again, an entry keeps its ``created_at``); a cyclic
graph is refused before anything is written. :meth:`TaskBoard.plan` writes a master's plan
and re-scores the queue in one script (a finished task stays out). :meth:`TaskBoard.requeue`
is one Lua script that puts a task back to ``pending`` only while it is still
``in_progress`` with no lease, so a live holder never loses its task, and emits
``task_requeued`` (on the event stream only) exactly once.

Not guaranteed: the authoritative "may this task run now" check is not here but in the
lease acquire function (:mod:`runtime.coordination.leases`), which checks status, holder and
dependencies atomically; :meth:`TaskBoard.statuses` is a snapshot that may be stale at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Iterable, Mapping

import redis

from plan.model import PRIORITIES, Larry, highest_priority
from runtime.coordination.connection import Durability, require_text, run_script
from runtime.coordination.events import lua_script
from runtime.coordination.keys import Keyspace

# Only a task still marked in progress whose lease is gone: a live holder keeps its task.
_REQUEUE = r"""
-- ARGV[1] larry, [2] task, [3] worker that held it
local status_key = STATUS_PREFIX .. ARGV[2]
local state = redis.call('MGET', status_key, LOCK_PREFIX .. ARGV[2], HOME_PREFIX .. ARGV[2])
if state[1] ~= 'in_progress' or state[2] then return 0 end
redis.call('SET', status_key, 'pending')
record({event='task_requeued', larry=ARGV[1], task_id=ARGV[2], worker=ARGV[3]}, nil, state[3])
return 1
"""


# Tasks in dependency order; a finished task is never queued again.
_DEFINE = r"""
-- KEYS[1] phase:{larry}:tasks, [2] phase:{larry}:workers; ARGV[1] larry, [2] JSON [[task, [deps],
-- score or false, entry JSON without created_at], ...], [3] JSON [worker, ...]
local tasks, workers = cjson.decode(ARGV[2]), cjson.decode(ARGV[3])
if #workers > 0 then redis.call('SADD', KEYS[2], unpack(workers)) end
redis.call('SADD', STREAMED_LARRYS, ARGV[1])
for _, t in ipairs(tasks) do
  local task, deps, score, entry = t[1], t[2], t[3], t[4]
  redis.call('SADD', KEYS[1], task)
  redis.call('SET', HOME_PREFIX .. task, ARGV[1])
  redis.call('DEL', DEPS_PREFIX .. task)
  if #deps > 0 then redis.call('SADD', DEPS_PREFIX .. task, unpack(deps)) end
  redis.call('SET', STATUS_PREFIX .. task, 'pending', 'NX')
  if score then
    local status = redis.call('GET', STATUS_PREFIX .. task)
    if status ~= 'completed' and status ~= 'failed' then redis.call('ZADD', QUEUE, 'NX', score, task) end
    redis.call('HSETNX', QUEUE_ENTRIES, task, '{"created_at":"' .. now() .. '",' .. string.sub(entry, 2))
  end
end
point(QUEUE_DEPTH, redis.call('ZCARD', QUEUE))
return #tasks
"""

# A master's plan of its tasks: the advice, and their place in the queue (only while queued).
_PLAN = r"""
-- ARGV[1] master, [2] JSON [[task, plan JSON, score, priority], ...]
for _, t in ipairs(cjson.decode(ARGV[2])) do
  local task = t[1]
  redis.call('SET', PLAN_PREFIX .. task, t[2])
  redis.call('ZADD', QUEUE, 'XX', t[3], task)
  local entry = redis.call('HGET', QUEUE_ENTRIES, task)
  if entry then
    redis.call('HSET', QUEUE_ENTRIES, task, (string.gsub(entry, '"priority":"%a+"', '"priority":"' .. t[4] .. '"', 1)))
  end
end
return 1
"""

#: Queue positions per priority: a plan order beyond it would sort into the next priority.
_ORDER_SPAN = 1_000_000


def queue_score(priority: str, order: int) -> int:
    """A queued task's score: its priority first (critical lowest), then its plan order."""
    if not 0 <= order < _ORDER_SPAN:
        raise ValueError(f"a plan order must be in [0, {_ORDER_SPAN}), got {order}")
    return PRIORITIES.index(priority) * _ORDER_SPAN + order


@dataclass(frozen=True)
class QueueEntry:
    """Where a task is queued: its queue (the master's name, or the Larry's id), its priority
    and its place in the plan's order of that queue."""

    queue: str
    priority: str
    order: int


def queue_entries(larry: Larry) -> dict[str, QueueEntry]:
    """Where each of ``larry``'s tasks is queued before its master plans: its worker's queue,
    the higher of its own and its worker's priority, its place in the plan's order there."""
    entries = {}
    for queue in dict.fromkeys(larry.queue_of(w) for w in larry.workers):
        for order, (worker, task) in enumerate(larry.queue_tasks(queue), 1):
            entries[task.id] = QueueEntry(queue, highest_priority(worker.priority, task.priority), order)
    return entries


class TaskBoard:
    def __init__(self, r: redis.Redis, ks: Keyspace, durability: Durability = Durability()):
        require_text(r)
        self.r, self.ks, self.durability = r, ks, durability
        self._requeue, self._define, self._plan = (
            r.register_script(lua_script(ks, body)) for body in (_REQUEUE, _DEFINE, _PLAN))

    def define(self, larry: str, graph: Mapping[str, Iterable[str]],
               queue: Mapping[str, QueueEntry] | None = None, workers: Iterable[str] = ()) -> list[str]:
        """Register ``{task: dependsOn}`` for a Larry, and its ``workers`` (seed 001's
        ``phase:{larry}:workers``, a set), and queue the tasks ``queue`` places; returns the
        tasks in dependency order.

        Idempotent: an existing task keeps its status. Raises ValueError on a
        cycle (it could never be claimed). Dependencies may belong to other Larrys.
        """
        graph = {task: tuple(deps) for task, deps in graph.items()}
        queue = queue or {}
        try:
            order = [t for t in TopologicalSorter(graph).static_order() if t in graph]
        except CycleError as error:
            raise ValueError(f"dependency cycle: {error.args[1]}") from None
        rows = []
        for task in order:
            place = queue.get(task)
            entry = place is not None and json.dumps({"task_id": task, "master": place.queue, "priority": place.priority,
                                          "dependencies": list(graph[task])}, separators=(",", ":"))
            rows.append([task, list(graph[task]), place is not None and queue_score(place.priority, place.order),
                         entry])
        run_script(self.r, self._define, [self.ks.phase_tasks(larry), self.ks.phase_workers(larry)],
                   [larry, json.dumps(rows), json.dumps(list(workers))], self.durability)
        return order

    def plan(self, master: str, plans: Mapping[str, dict]) -> None:
        """A master's plan of its tasks (``task:plan:{id}``: master, order, priority, note), in
        one script with their places in the queue: priority, then the plan's ``order``."""
        rows = [[task, json.dumps(plan), queue_score(plan["priority"], plan["order"]), plan["priority"]]
                for task, plan in plans.items()]
        if rows:
            run_script(self.r, self._plan, [], [master, json.dumps(rows)], self.durability)

    def queued(self) -> list[tuple[str, int]]:
        """The task queue, first to be taken first: (task, score)."""
        return [(task, int(score)) for task, score in self.r.zrange(self.ks.task_queue, 0, -1, withscores=True)]

    def queue_entry(self, task_id: str) -> dict | None:
        raw = self.r.hget(self.ks.task_queue_entries, task_id)
        return json.loads(raw) if raw else None

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
