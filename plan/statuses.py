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


class SchemaWorkerStatus(StrEnum):
    """Seed 004's ``{ns}:workers:{id}`` status: pending | running | completed | failed."""
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


#: What seed 004's schema shows for each worker status: a worker with no task in hand is
#: pending, one that gave up, crashed or was reaped has failed.
SCHEMA_WORKER_STATUS = {
    WorkerStatus.IDLE: SchemaWorkerStatus.PENDING, WorkerStatus.PAUSED: SchemaWorkerStatus.PENDING,
    WorkerStatus.BUSY: SchemaWorkerStatus.RUNNING, WorkerStatus.COMPLETED: SchemaWorkerStatus.COMPLETED,
    WorkerStatus.FAILED: SchemaWorkerStatus.FAILED, WorkerStatus.ERROR: SchemaWorkerStatus.FAILED,
    WorkerStatus.DEAD: SchemaWorkerStatus.FAILED,
}


class MasterStatus(StrEnum):
    """Seed 004's ``{ns}:masters:{name}`` status: active (a task of its queue in progress), idle
    (none), overloaded (its worker pool at the reserve trigger: the reserve is lent to it)."""
    ACTIVE = "active"
    IDLE = "idle"
    OVERLOADED = "overloaded"
