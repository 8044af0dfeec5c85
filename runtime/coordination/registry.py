"""Worker registration, heartbeats and pauses: ``worker:{id}:master|node|status`` (seed), the
sorted set ``worker:heartbeats`` (worker -> last beat, in the primary's clock) and
``worker:{id}:paused`` (set by the worker's coordinator); and seed 004's worker hash
``{ns}:workers:{id}`` (status, started_at, progress, master; its tokens_used is the ledger's,
:mod:`runtime.coordination.ledger`), written in the script that changes the status it mirrors
(:data:`plan.statuses.SCHEMA_WORKER_STATUS`), and its master's ``workers_spawned`` (one per
worker, at its first registration).

Guarantees: liveness uses only the Redis primary's clock (TIME inside the scripts), so
workers' clock skew cannot make a live worker look dead. A worker is dead when it has not
beaten for ``grace_ms``. :meth:`WorkerRegistry.reap` marks it ``dead``, forgets its
heartbeat and raises a ``worker_dead`` alert exactly once; its task leases need no action:
they expire by TTL (the coordinator then re-queues what it held,
:meth:`runtime.coordination.tasks.TaskBoard.requeue`). :meth:`~WorkerRegistry.pause` and
:meth:`~WorkerRegistry.resume` change the flag and emit ``worker_paused`` /
``worker_resumed`` in one script, each exactly once per change.

Not guaranteed: a heartbeat is best effort (missed beats are what the grace is for); after
a failover a rolled-back beat is simply re-written by the next one, and a grace of several
heartbeat intervals absorbs the gap. A pause is advisory: the worker honours it between
tasks, never inside one.
"""

from __future__ import annotations

import logging
import threading

import redis

from plan.statuses import SCHEMA_WORKER_STATUS, WorkerStatus
from runtime.coordination.connection import Durability, require_text, run_script
from runtime.coordination.events import lua_script
from runtime.coordination.keys import Keyspace

log = logging.getLogger(__name__)

# Seed 004's view of a status change, in the script that makes it.
_SCHEMA = r"""
local function schema_status(key, status)
  redis.call('HSET', key, 'status', status)
  if status == 'completed' then redis.call('HSET', key, 'progress', '100') end
end
"""

_REGISTER = _SCHEMA + r"""
-- KEYS[1] heartbeats, [2] status, [3] {ns}:workers:{id}, [4] worker:{id}:master, [5] worker:{id}:node,
-- [6] {ns}:masters:{master} (only for a worker that names a master); ARGV[1] worker, [2] status,
-- [3] its seed 004 status, [4] master, [5] node
redis.call('MSET', KEYS[4], ARGV[4], KEYS[5], ARGV[5], KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[1], NOW_MS, ARGV[1])
local first = redis.call('HSETNX', KEYS[3], 'started_at', now())
redis.call('HSET', KEYS[3], 'master', ARGV[4])
redis.call('HSETNX', KEYS[3], 'progress', '0')
redis.call('HSETNX', KEYS[3], 'tokens_used', '0')
schema_status(KEYS[3], ARGV[3])
if first == 1 and KEYS[6] then redis.call('HINCRBY', KEYS[6], 'workers_spawned', 1) end
return first
"""

_BEAT = _SCHEMA + r"""
-- KEYS[1] heartbeats, [2] status, [3] {ns}:workers:{id}; ARGV[1] worker, [2] status or '',
-- [3] its seed 004 status or ''
redis.call('ZADD', KEYS[1], NOW_MS, ARGV[1])
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[2])
  schema_status(KEYS[3], ARGV[3])
end
return 1
"""

_SIGN_OFF = _SCHEMA + r"""
-- KEYS[1] heartbeats, [2] status, [3] {ns}:workers:{id}; ARGV[1] worker, [2] status, [3] its seed 004 status
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
schema_status(KEYS[3], ARGV[3])
return 1
"""

_DEAD = r"""
-- KEYS[1] heartbeats; ARGV[1] asker, [2] grace ms
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', NOW_MS - tonumber(ARGV[2])))
"""

_REAP = r"""
-- KEYS[1] heartbeats, [2] status, [3] {ns}:workers:{id}; ARGV[1] reaper, [2] worker, [3] grace ms,
-- [4] the seed 004 status of a dead worker
local beat = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not beat then return 0 end
if tonumber(beat) > NOW_MS - tonumber(ARGV[3]) then return 0 end  -- it beat again since listed as dead
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], 'dead')
redis.call('HSET', KEYS[3], 'status', ARGV[4])
emit(true, {event='worker_dead', worker=ARGV[2]})
return 1
"""

_PAUSE = r"""
-- KEYS[1] worker:{id}:paused; ARGV[1] larry, [2] worker, [3] reason
if not redis.call('SET', KEYS[1], ARGV[3], 'NX') then return 0 end
emit(false, {event='worker_paused', larry=ARGV[1], worker=ARGV[2], reason=ARGV[3]})
return 1
"""

_RESUME = r"""
-- KEYS[1] worker:{id}:paused; ARGV[1] larry, [2] worker
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
emit(false, {event='worker_resumed', larry=ARGV[1], worker=ARGV[2]})
return 1
"""


class WorkerRegistry:
    def __init__(self, r: redis.Redis, ks: Keyspace, *, grace_ms: int = 15_000,
                 durability: Durability = Durability()):
        require_text(r)
        self.r, self.ks, self.grace_ms, self.durability = r, ks, grace_ms, durability
        self._register, self._beat, self._sign_off, self._dead, self._reap, self._pause, self._resume = (
            r.register_script(lua_script(ks, body))
            for body in (_REGISTER, _BEAT, _SIGN_OFF, _DEAD, _REAP, _PAUSE, _RESUME))

    def _status_keys(self, worker_id: str) -> list[str]:
        return [self.ks.worker_heartbeats, self.ks.worker_status(worker_id), self.ks.schema_worker(worker_id)]

    def register(self, worker_id: str, master: str, node: str, status: str = WorkerStatus.IDLE, *,
                 counted_by: str | None = None) -> bool:
        """Record the worker's master (its Larry's id when it names none) and node and beat;
        ``counted_by``: the master whose ``workers_spawned`` counts it. True the first time."""
        ks = self.ks
        keys = self._status_keys(worker_id) + [ks.worker_master(worker_id), ks.worker_node(worker_id)]
        if counted_by:
            keys.append(ks.schema_master(counted_by))
        return bool(run_script(self.r, self._register, keys,
                               [worker_id, status, SCHEMA_WORKER_STATUS[status], master, node], self.durability))

    def heartbeat(self, worker_id: str, status: str | None = None) -> None:
        """Beat, optionally setting status (a :class:`plan.statuses.WorkerStatus`)."""
        self._beat(keys=self._status_keys(worker_id),
                   args=[worker_id, status or "", SCHEMA_WORKER_STATUS[status] if status else ""])

    def progress(self, worker_id: str, percent: int) -> None:
        """Seed 004's ``progress`` of the worker: its task in hand's, as its payload reports it."""
        self.r.hset(self.ks.schema_worker(worker_id), "progress", max(0, min(100, int(percent))))

    def dead(self) -> list[str]:
        return self._dead(keys=[self.ks.worker_heartbeats], args=["registry", self.grace_ms])

    def reap(self, worker_id: str) -> bool:
        """Mark a dead worker (re-checked atomically); True if this call did it."""
        return bool(run_script(self.r, self._reap, self._status_keys(worker_id),
                               ["registry", worker_id, self.grace_ms, SCHEMA_WORKER_STATUS[WorkerStatus.DEAD]],
                               self.durability))

    def pause(self, larry: str, worker_id: str, reason: str) -> bool:
        """Coordinator: ask the worker to claim nothing new; True if it was not paused yet."""
        return bool(run_script(self.r, self._pause, [self.ks.worker_paused(worker_id)],
                               [larry, worker_id, reason], self.durability))

    def resume(self, larry: str, worker_id: str) -> bool:
        """Coordinator: lift the pause; True if the worker was paused."""
        return bool(run_script(self.r, self._resume, [self.ks.worker_paused(worker_id)],
                               [larry, worker_id], self.durability))

    def workers(self) -> dict[str, dict]:
        """Every worker with a heartbeat: master, node, status, last beat (ms, primary clock)."""
        beats = self.r.zrange(self.ks.worker_heartbeats, 0, -1, withscores=True)
        pipe = self.r.pipeline(transaction=False)
        for worker_id, _ in beats:
            pipe.mget(self.ks.worker_master(worker_id), self.ks.worker_node(worker_id),
                      self.ks.worker_status(worker_id))
        return {w: {"master": m, "node": n, "status": s, "last_beat_ms": int(score)}
                for (w, score), (m, n, s) in zip(beats, pipe.execute())}

    def deregister(self, worker_id: str, status: str = WorkerStatus.COMPLETED) -> None:
        run_script(self.r, self._sign_off, self._status_keys(worker_id),
                   [worker_id, status, SCHEMA_WORKER_STATUS[status]], self.durability)

    def beat_forever(self, worker_id: str, interval: float, stop: threading.Event) -> threading.Thread:
        """Heartbeat every ``interval`` s in a daemon thread until ``stop`` is set."""

        def loop():
            while not stop.wait(interval):
                try:
                    self.heartbeat(worker_id)
                except redis.exceptions.RedisError as error:
                    log.debug("heartbeat of %s missed: %s", worker_id, error)  # what the grace is for

        thread = threading.Thread(target=loop, daemon=True, name=f"heartbeat-{worker_id}")
        thread.start()
        return thread
