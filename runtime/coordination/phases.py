"""Per-Larry phase state: ``phase:{larry}:status|progress|started_at|completed_at``.

Guarantees: status (:class:`plan.statuses.PhaseStatus`) moves pending -> in_progress ->
completed | failed and never backwards; progress only grows (Lua max), so late or replayed
updates cannot make it go down. Each transition and each increase emits its event (seed
names: ``phase_started``, ``progress_update``, ``phase_complete``; ``phase_failed`` on the
alerts channel) in the same script, so replays emit nothing twice; on the Larry's own stream
(:mod:`runtime.coordination.events`), an execution phase's on the run's.

Not guaranteed: who may end a phase. Any caller can complete or fail it; by convention only
the Larry's coordinator does. A phase is never started over: a new run uses fresh keys.

Seed 004's execution phases 0-5 (:data:`EXECUTION_PHASES`, run by the meta-coordinator for a
plan on seed 004's protocol, :func:`runs_execution_phases`) are phases of the same kind, each
under the name ``execution-{n}`` (``phase:execution-0:status`` ...), so they have the same
guarantees, events and ``larry cleanup``.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from plan.model import StackConfig
from plan.statuses import PhaseStatus
from runtime.coordination.connection import Durability, require_text, run_script
from runtime.coordination.events import lua_script
from runtime.coordination.keys import Keyspace

# Every script's last argument: the Larry whose stream has the phase's events ('' for the run's).
_STREAM = r"""
local function phase_stream()
  if ARGV[#ARGV] ~= '' then return home_stream(ARGV[#ARGV]) end
end
"""

_START = r"""
-- KEYS[1] status, [2] started_at, [3] progress; ARGV[1] larry
local status = redis.call('GET', KEYS[1])
if status == 'in_progress' then return 'in_progress' end
if status and status ~= 'pending' then return status end
redis.call('SET', KEYS[1], 'in_progress')
redis.call('SET', KEYS[2], now(), 'NX')
redis.call('SET', KEYS[3], '0', 'NX')
emit(false, {event='phase_started', larry=ARGV[1]}, nil, phase_stream())
return 'started'
"""

_PROGRESS = r"""
-- KEYS[1] progress, [2] status; ARGV[1] larry, [2] percent, [3] message
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[2])
local status = redis.call('GET', KEYS[2])
if wanted <= current or status == 'completed' or status == 'failed' then return current end
redis.call('SET', KEYS[1], ARGV[2])
emit(false, {event='progress_update', larry=ARGV[1], progress=wanted, message=ARGV[3]}, nil, phase_stream())
return wanted
"""

_FINISH = r"""
-- KEYS[1] status, [2] completed_at, [3] progress; ARGV[1] larry, [2] completed|failed, [3] message
local status = redis.call('GET', KEYS[1])
if status == ARGV[2] then return 'already' end
if status ~= 'in_progress' then return status or 'pending' end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], now())
if ARGV[2] == 'completed' then
  redis.call('SET', KEYS[3], '100')
  emit(false, {event='phase_complete', larry=ARGV[1], message=ARGV[3]}, nil, phase_stream())
else
  emit(true, {event='phase_failed', larry=ARGV[1], message=ARGV[3]}, nil, phase_stream())
end
return ARGV[2]
"""


class PhaseTracker:
    """One Larry's phase. Methods return what happened, e.g. ``started`` vs ``in_progress`` (already)."""

    def __init__(self, r: redis.Redis, ks: Keyspace, larry: str, durability: Durability = Durability(), *,
                 own_stream: bool = True):
        require_text(r)
        self.r, self.ks, self.larry, self.durability = r, ks, larry, durability
        #: the Larry's stream has its phase's events; an execution phase's are on the run's
        self.home = larry if own_stream else ""
        self._start, self._progress, self._finish = (
            r.register_script(lua_script(ks, _STREAM + body)) for body in (_START, _PROGRESS, _FINISH))

    def _run(self, script, keys, extra):
        return run_script(self.r, script, keys, [self.larry, *extra, self.home], self.durability)

    def init(self) -> bool:
        """Coordinator: mark the phase pending unless it already has a status. True if it was new."""
        return bool(self.r.set(self.ks.phase_status(self.larry), PhaseStatus.PENDING, nx=True))

    def start(self) -> str:
        """``started``, or the current status if it was not pending (``in_progress`` on a replay)."""
        ks = self.ks
        return self._run(self._start, [ks.phase_status(self.larry), ks.phase_started_at(self.larry),
                                       ks.phase_progress(self.larry)], [])

    def progress(self, percent: int, message: str = "") -> int:
        """Raise progress to ``percent`` (0-100); returns the stored value, which never decreases."""
        percent = max(0, min(100, int(percent)))
        ks = self.ks
        return int(self._run(self._progress, [ks.phase_progress(self.larry), ks.phase_status(self.larry)],
                             [percent, message]))

    def complete(self, message: str = "") -> str:
        """``completed``, ``already``, or the status that forbids it (``pending``, ``failed``)."""
        return self._finish_as(PhaseStatus.COMPLETED, message)

    def fail(self, message: str) -> str:
        return self._finish_as(PhaseStatus.FAILED, message)

    def _finish_as(self, outcome: str, message: str) -> str:
        ks = self.ks
        return self._run(self._finish, [ks.phase_status(self.larry), ks.phase_completed_at(self.larry),
                                        ks.phase_progress(self.larry)], [outcome, message])

    def snapshot(self) -> dict:
        ks = self.ks
        status, progress, started, completed = self.r.mget(
            ks.phase_status(self.larry), ks.phase_progress(self.larry),
            ks.phase_started_at(self.larry), ks.phase_completed_at(self.larry))
        return {"larry": self.larry, "status": status or PhaseStatus.PENDING, "progress": int(progress or 0),
                "started_at": started, "completed_at": completed}


@dataclass(frozen=True)
class ExecutionPhase:
    """One of seed 004's "PHASE BREAKDOWN" phases: number, title, planned minutes."""
    number: int
    title: str
    minutes: int

    @property
    def name(self) -> str:
        """The phase's name in Redis keys and events: ``execution-{n}``."""
        return f"execution-{self.number}"


#: Seed 004's phases 0-5 with their planned minutes (60 in all, the seed's execution window).
EXECUTION_PHASES = (
    ExecutionPhase(0, "Pre-flight check", 5),
    ExecutionPhase(1, "Master activation", 10),
    ExecutionPhase(2, "Worker distribution", 15),
    ExecutionPhase(3, "Parallel execution", 20),
    ExecutionPhase(4, "Result aggregation", 5),
    ExecutionPhase(5, "Reporting and cleanup", 5),
)


def runs_execution_phases(cfg: StackConfig) -> bool:
    """A plan on seed 004's protocol (``larry:taskAssignment: queue``, the cortex stack) runs
    seed 004's phases 0-5; seed 001's plans converge as seed 001 describes."""
    return cfg.queued


def execution_trackers(r: redis.Redis, ks: Keyspace) -> dict[int, PhaseTracker]:
    """The tracker of each execution phase, by number."""
    return {phase.number: PhaseTracker(r, ks, phase.name, own_stream=False) for phase in EXECUTION_PHASES}
