"""How the runtime's clocks follow ``--speed``: deadlines, lease TTL, heartbeats.

The plan's minutes are real minutes in the cluster (speed 1). A local run at ``--speed 600``
plays a 25-minute phase in 2.5 s, so every deadline is ``minutes * 60 / speed``. Two things
do not speed up with it and get floors instead:

* process start-up and coordination round trips: every deadline gets an unscaled
  ``allowance`` (default 10 s; ``$LARRY_DEADLINE_ALLOWANCE``), negligible at speed 1 and
  what keeps a 2.5 s phase from failing because Python took a second to import;
* liveness: a lease TTL or heartbeat grace of 50 ms would expire under ordinary scheduling
  jitter, so they scale down only to a floor of a few seconds.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from plan import environment as envvar

DEFAULT_ALLOWANCE = 10.0


@dataclass(frozen=True)
class Timing:
    speed: float = 1.0
    allowance: float = DEFAULT_ALLOWANCE

    @classmethod
    def from_env(cls, speed: float, env=None) -> "Timing":
        env = os.environ if env is None else env
        return cls(speed, float(env.get(envvar.DEADLINE_ALLOWANCE) or DEFAULT_ALLOWANCE))

    def scaled(self, minutes: float) -> float:
        """The plan's ``minutes`` in seconds at this speed."""
        return minutes * 60 / self.speed

    def deadline(self, minutes: float) -> float:
        """Seconds a piece of work planned for ``minutes`` may take, allowance included."""
        return self.scaled(minutes) + self.allowance

    @property
    def lease_ttl_ms(self) -> int:
        """30 s in the cluster (the seed's lock TTL), at least 3 s when accelerated."""
        return int(max(3.0, 30.0 / self.speed) * 1000)

    @property
    def heartbeat(self) -> float:
        """5 s in the cluster, at least 1 s when accelerated."""
        return max(1.0, 5.0 / self.speed)

    @property
    def dead_after_ms(self) -> int:
        """A worker silent this long is dead: three missed heartbeats, at least 5 s."""
        return int(max(5.0, 15.0 / self.speed) * 1000)

    @property
    def recheck(self) -> float:
        """Longest wait on the event stream before re-reading state (leases expire silently)."""
        return self.lease_ttl_ms / 1000
