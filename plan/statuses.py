"""The status vocabulary of a run, named once: what Redis holds, the reports carry and every
reader compares against. Each is a ``StrEnum``, so a member is the very string stored in Redis
and written to JSON, and a bare string read back compares equal to it.
"""
from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    """``task:{id}:status``: pending -> in_progress -> completed | failed (in_progress may go
    back to pending when a lease is lost or a task is re-queued)."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


#: Statuses a task never leaves.
TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED})


class PhaseStatus(StrEnum):
    """``phase:{larry}:status``: pending -> in_progress -> completed | failed, never backwards."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class WorkerStatus(StrEnum):
    """``worker:{id}:status`` (seed: idle | busy | completed), plus what the runtime adds: a
    worker paused by its coordinator, one that gave up, one whose heartbeat was reaped."""

    IDLE = "idle"
    BUSY = "busy"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    ERROR = "error"
    DEAD = "dead"


#: Worker statuses of a process that is still running.
RUNNING = frozenset({WorkerStatus.IDLE, WorkerStatus.BUSY, WorkerStatus.PAUSED})
