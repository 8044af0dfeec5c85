"""Worker registration and heartbeats: ``worker:{id}:master|node|status`` (seed) plus the
sorted set ``worker:heartbeats`` (worker -> last beat, in the primary's clock).

Liveness uses only the Redis primary's clock (TIME inside the scripts), so
workers' clock skew cannot make a live worker look dead. A worker is dead when
it has not beaten for ``grace_ms``. :meth:`WorkerRegistry.reap` marks it
``dead``, forgets its heartbeat and raises a ``worker_dead`` alert exactly once;
its task leases need no action: they expire by TTL and the tasks become
claimable again. After a failover a rolled-back beat is simply re-written by
the next one; a grace of several heartbeat intervals absorbs the gap.
"""

from __future__ import annotations

import threading

import redis

from .connection import require_text, run_script
from .events import LUA_EMIT, EventLog
from .keys import Keyspace

_BEAT = r"""
-- KEYS[1] heartbeats, [2] status; ARGV[1] worker, [2] status or ''
local now = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000), ARGV[1])
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2]) end
return 1
"""

_DEAD = r"""
-- KEYS[1] heartbeats; ARGV[1] grace ms
local now = redis.call('TIME')
local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', cutoff))
"""

_REAP = LUA_EMIT + r"""
-- KEYS[2] heartbeats, [3] status; ARGV[6] worker, [7] grace ms
local beat = redis.call('ZSCORE', KEYS[2], ARGV[6])
if not beat then return 0 end
local now = redis.call('TIME')
if tonumber(beat) > tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[7]) then
  return 0  -- it beat again since it was listed as dead
end
redis.call('ZREM', KEYS[2], ARGV[6])
redis.call('SET', KEYS[3], 'dead')
emit(true, {event='worker_dead', worker=ARGV[6]})
return 1
"""


class WorkerRegistry:
    def __init__(self, r: redis.Redis, ks: Keyspace, *, grace_ms: int = 15_000):
        require_text(r)
        self.r, self.ks, self.grace_ms = r, ks, grace_ms
        self.events = EventLog(r, ks)
        self._beat = r.register_script(_BEAT)
        self._dead = r.register_script(_DEAD)
        self._reap = r.register_script(_REAP)

    def register(self, worker_id: str, master: str, node: str, status: str = "idle") -> None:
        ks = self.ks
        self.r.mset({ks.worker_master(worker_id): master, ks.worker_node(worker_id): node})
        self.heartbeat(worker_id, status)

    def heartbeat(self, worker_id: str, status: str | None = None) -> None:
        """Beat, optionally setting status (seed: idle | busy | completed)."""
        self._beat(keys=[self.ks.worker_heartbeats, self.ks.worker_status(worker_id)], args=[worker_id, status or ""])

    def dead(self) -> list[str]:
        return self._dead(keys=[self.ks.worker_heartbeats], args=[self.grace_ms])

    def reap(self, worker_id: str) -> bool:
        """Mark a dead worker (re-checked atomically); True if this call did it."""
        keys, args = self.events.envelope("registry")
        return bool(run_script(self.r, self._reap, keys + [self.ks.worker_heartbeats, self.ks.worker_status(worker_id)],
                               args + [worker_id, self.grace_ms]))

    def workers(self) -> dict[str, dict]:
        """Every worker with a heartbeat: master, node, status, last beat (ms, primary clock)."""
        beats = self.r.zrange(self.ks.worker_heartbeats, 0, -1, withscores=True)
        pipe = self.r.pipeline(transaction=False)
        for worker_id, _ in beats:
            pipe.mget(self.ks.worker_master(worker_id), self.ks.worker_node(worker_id),
                      self.ks.worker_status(worker_id))
        return {w: {"master": m, "node": n, "status": s, "last_beat_ms": int(score)}
                for (w, score), (m, n, s) in zip(beats, pipe.execute())}

    def deregister(self, worker_id: str, status: str = "completed") -> None:
        self.r.zrem(self.ks.worker_heartbeats, worker_id)
        self.r.set(self.ks.worker_status(worker_id), status)

    def beat_forever(self, worker_id: str, interval: float, stop: threading.Event) -> threading.Thread:
        """Heartbeat every ``interval`` s in a daemon thread until ``stop`` is set."""

        def loop():
            while not stop.wait(interval):
                try:
                    self.heartbeat(worker_id)
                except redis.exceptions.RedisError:
                    pass  # missed beats are what the grace period is for

        thread = threading.Thread(target=loop, daemon=True, name=f"heartbeat-{worker_id}")
        thread.start()
        return thread
