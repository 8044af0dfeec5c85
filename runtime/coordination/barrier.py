"""Barrier (seed "Barrier Synchronization"): wait until every named participant has arrived.

Arrivals are members of the SET ``barrier:{name}:arrived``, so arriving twice
(a retry, a restarted coordinator) is the same as arriving once, and the state
outlives any process: a waiter that restarts simply waits again.

The arrival that completes the set emits ``barrier_released`` exactly once
(guarded by ``barrier:{name}:released``). Waiters are woken by that event on the stream
(XREAD BLOCK), not by polling: the seed's 5-second poll becomes a wake-up within a round trip
of the last arrival. The cost stays flat per participant: an arrival is an SADD and an SCARD
(complete when the set holds as many members as there are participants, so every process
must name the same participants: one plan per run), a waiter's check one EXISTS of the
released key, whatever the barrier's size; who is missing is read only to say so on a timeout.
Under failover an unreplicated arrival can be rolled back (with the release it completed: one
script); a waiting participant re-asserts its own arrivals every second, and
``Durability(replicas=1)`` makes :meth:`Barrier.arrive` return only once a replica has it.

The convergence barrier's participants are the Larrys; by convention a Larry's coordinator
arrives once its phase has ended (:class:`runtime.coordination.phases.PhaseTracker`), and
re-arrives when it is restarted.

Not guaranteed: that everyone arrives. :meth:`Barrier.wait` gives up after its timeout
with :class:`BarrierTimeout` naming the missing; a barrier name is used once per run (a
new run uses fresh keys).
"""

from __future__ import annotations

import time

import redis

from runtime.coordination.connection import Durability, require_text, run_script
from runtime.coordination.events import EventListener, lua_script
from runtime.coordination.keys import Keyspace

_ARRIVE = r"""
-- KEYS[1] arrived, [2] released; ARGV[1] participant, [2] barrier, [3] how many participants
-- (the caller checked that ARGV[1] is one of them)
local everyone = tonumber(ARGV[3])
if not everyone or everyone < 1 or everyone ~= math.floor(everyone) then
  return redis.error_reply('ERR barrier ' .. ARGV[2] .. ': the number of participants must be a whole number '
                           .. 'above 0, got ' .. string.format('%q', ARGV[3]))
end
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  emit(false, {event='barrier_arrival', barrier=ARGV[2], participant=ARGV[1]})
end
if redis.call('SCARD', KEYS[1]) < everyone then return 0 end
if redis.call('SET', KEYS[2], now(), 'NX') then
  emit(false, {event='barrier_released', barrier=ARGV[2]})
end
return 1
"""


class BarrierTimeout(TimeoutError):
    def __init__(self, name: str, missing: list[str], timeout: float):
        super().__init__(f"barrier {name!r}: {', '.join(missing)} not arrived after {timeout:g}s")
        self.name, self.missing = name, missing


class Barrier:
    def __init__(self, r: redis.Redis, ks: Keyspace, name: str, participants, durability: Durability = Durability()):
        require_text(r)
        self.r, self.ks, self.name = r, ks, name
        self.participants = sorted(set(participants))
        self.durability = durability
        self._arrive = r.register_script(lua_script(ks, _ARRIVE))
        self._mine: set[str] = set()

    def arrive(self, participant: str) -> bool:
        """Record ``participant``'s arrival (idempotent). True if everyone has now arrived."""
        if participant not in self.participants:
            raise ValueError(f"{participant!r} is not a participant of barrier {self.name!r}")
        done = run_script(self.r, self._arrive,
                          [self.ks.barrier_arrived(self.name), self.ks.barrier_released(self.name)],
                          [participant, self.name, len(self.participants)], self.durability)
        self._mine.add(participant)
        return bool(done)

    def reassert(self) -> None:
        """Re-record this client's own arrivals (after a failover may have rolled them back)."""
        for participant in sorted(self._mine):
            self.arrive(participant)

    def missing(self) -> list[str]:
        arrived = self.r.smembers(self.ks.barrier_arrived(self.name))
        return [p for p in self.participants if p not in arrived]

    def released(self) -> bool:
        return bool(self.r.exists(self.ks.barrier_released(self.name)))

    def wait(self, timeout: float) -> None:
        """Return once all participants have arrived; raise :class:`BarrierTimeout` naming the missing."""
        deadline = time.monotonic() + timeout
        # Read the stream position before the state: a release after the
        # EXISTS has a later stream ID, so it cannot slip between the two.
        listener = EventListener(self.r, self.ks, "$", larrys=())  # barrier events are on the run's stream
        released = self.released()
        next_reassert = time.monotonic() + 1.0
        while not released:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BarrierTimeout(self.name, self.missing(), timeout)
            events = listener.poll(block_ms=max(1, int(min(left, 1.0) * 1000)))
            reasserted = bool(self._mine) and time.monotonic() >= next_reassert
            if reasserted:
                self.reassert()
                next_reassert = time.monotonic() + 1.0
            if reasserted or not events or any(e.name == "barrier_released" and e.data.get("barrier") == self.name
                                               for e in events):
                released = self.released()
