"""Seed 004's master-to-worker events ("MASTER COORDINATION STRATEGY", 3), on its channels and the
durable stream:

* ``WORKER_SPAWN {worker_id, type, task, budget, timeout}`` on ``{ns}:workers:spawn``: a worker's
  first start (its registration's first time; a restart is ``worker_started`` only). ``type`` is
  its agent profile (``simulated`` without one), ``task`` the tasks it may run, ``budget`` its
  tokens, ``timeout`` its deadline in seconds at the run's speed.
* ``WORKER_TERMINATE {worker_id, reason}`` on ``{ns}:workers:control``: a coordinator, a master
  or an operator stops a worker. The script that emits it sets ``worker:{id}:terminate`` too, so
  a worker that was not listening at that moment still finds it (it checks every second): the
  worker stops its payload (SIGTERM, then SIGKILL), writes nothing for the task (its fence is
  not used), hands the task back (lease released: pending, in its queue again) and exits 1, so
  its Job (or ``larry run``) starts it again after the backoff; the task is then run once more,
  by whichever worker takes it. The flag is consumed when the worker acts on it: the restarted
  worker carries on. A raw ``PUBLISH`` of the event naming the worker stops it the same way, and
  so does either while the worker waits (for a dependency, a pause's end, an escalation's
  decision: its lease is released then too).
* ``WORKER_STATUS_REQUEST {worker_id}`` on ``{ns}:workers:status``, answered by the worker on
  the same channel with ``WORKER_STATUS {worker_id, status, progress, tokens_used, master,
  started_at}`` (its ``{ns}:workers:{id}`` hash, read in the script that answers).

A malformed message on the control or status channel (not a JSON object with an ``event``
string) gets one warning naming the channel and is ignored.

Not guaranteed: that a status request is answered (only a running worker subscribed at that
moment answers; pub/sub keeps nothing); that a terminated task is not run twice in part (the
stopped payload's side effects outside the runtime stay, as for any stopped payload); that a
worker terminated while between tasks has no task to hand back (it simply exits).
"""
from __future__ import annotations

import threading
from typing import Callable

import redis

from runtime.coordination.bridge import decode_message, follow_channels
from runtime.coordination.connection import Durability, require_text, run_script
from runtime.coordination.events import EventLog, lua_script
from runtime.coordination.keys import Keyspace

TERMINATE, STATUS_REQUEST, STATUS, SPAWN = "WORKER_TERMINATE", "WORKER_STATUS_REQUEST", "WORKER_STATUS", "WORKER_SPAWN"
#: How often a worker looks at its terminate flag when no message came.
CHECK_SECONDS = 1.0

_TERMINATE = r"""
-- KEYS[1] worker:{id}:terminate; ARGV[1] sender, [2] worker, [3] reason, [4] control channel
redis.call('SET', KEYS[1], ARGV[3])
return emit_on(ARGV[4], {event='WORKER_TERMINATE', worker_id=ARGV[2], reason=ARGV[3]})
"""

_ANSWER = r"""
-- KEYS[1] {ns}:workers:{id}; ARGV[1] worker, [2] status channel
local fields = {event='WORKER_STATUS', worker_id=ARGV[1]}
local hash = redis.call('HGETALL', KEYS[1])
for i = 1, #hash, 2 do fields[hash[i]] = hash[i + 1] end
return emit_on(ARGV[2], fields)
"""


def control_channel(ks: Keyspace) -> str:
    return ks.schema_channel("workers", "control")


def status_channel(ks: Keyspace) -> str:
    return ks.schema_channel("workers", "status")


class WorkerControl:
    def __init__(self, r: redis.Redis, ks: Keyspace, durability: Durability = Durability()):
        require_text(r)
        self.r, self.ks, self.durability = r, ks, durability
        self._terminate = r.register_script(lua_script(ks, _TERMINATE))
        self._answer = r.register_script(lua_script(ks, _ANSWER))
        self.events = EventLog(r, ks, durability)

    def terminate(self, sender: str, worker: str, reason: str) -> str:
        """Ask ``worker`` to stop (see the module docstring); the event's stream id."""
        return run_script(self.r, self._terminate, [self.ks.worker_terminate(worker)],
                          [sender, worker, reason, control_channel(self.ks)], self.durability, idempotent=True)

    def request_status(self, sender: str, worker: str) -> str:
        """Ask ``worker`` for its status (answered on the status channel by the worker)."""
        return self.events.emit(STATUS_REQUEST, sender, channel=status_channel(self.ks), worker_id=worker)

    def spawned(self, sender: str, larry: str, worker: str, *, type: str, tasks: list[str], budget: int,
                timeout: float) -> str:
        """``WORKER_SPAWN`` of a worker's first start (on its Larry's stream)."""
        return self.events.emit(SPAWN, sender, channel=self.ks.schema_channel("workers", "spawn"), home=larry,
                                worker_id=worker, type=type, task=tasks, budget=budget, timeout=round(timeout, 3))

    def answer(self, worker: str) -> str:
        """``WORKER_STATUS`` of ``worker`` on the status channel, from its seed 004 hash."""
        return self._answer(keys=[self.ks.schema_worker(worker)], args=[worker, status_channel(self.ks)])

    def watch(self, worker: str, on_terminate: Callable[[str], None], stop: threading.Event) -> threading.Thread:
        """In a daemon thread until ``stop``: answer ``worker``'s status requests and call
        ``on_terminate(reason)`` once its terminate flag is found (the flag is then consumed)."""
        def on_message(channel: str, raw) -> None:
            data = decode_message(channel, raw) if channel else None
            addressed = data is not None and data.get("worker_id") == worker
            if addressed and data["event"] == STATUS_REQUEST:
                self.answer(worker)
            reason = self.r.getdel(self.ks.worker_terminate(worker))
            if reason is None and addressed and data["event"] == TERMINATE:
                reason = str(data.get("reason") or f"terminated by {data.get('from', 'redis-cli')}")
            if reason is not None:
                on_terminate(reason)

        thread = threading.Thread(target=follow_channels, daemon=True, name=f"control-{worker}",
                                  args=(self.r, (control_channel(self.ks), status_channel(self.ks)), on_message, stop),
                                  kwargs={"label": f"{worker}: control channel", "wait": CHECK_SECONDS})
        thread.start()
        return thread
