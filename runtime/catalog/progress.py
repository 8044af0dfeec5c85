"""A worker's progress as the catalog records and announces it (``workerProgress``).

Guaranteed: :func:`parse_progress` returns a bounded object of the documented fields or
raises ValueError naming the field and what was expected. Not guaranteed: that the worker
exists in any plan; the catalog records what it is told.
"""
from __future__ import annotations

from typing import Any

from plan.statuses import WorkerStatus
from runtime.catalog.assets import MAX_TEXT, short

#: ``status`` values: the registry's worker statuses.
STATUSES = tuple(s.value for s in WorkerStatus)
MAX_MESSAGE = 500


def parse_progress(raw: Any) -> dict[str, Any]:
    """``{workerId, status, progress?, tokensUsed?, task?, message?}`` checked field by field."""
    if not isinstance(raw, dict):
        raise ValueError(f"progress: expected an object, got {short(raw)}")
    unknown = set(raw) - {"workerId", "status", "progress", "tokensUsed", "task", "message"}
    if unknown:
        raise ValueError(f"progress: unknown field {sorted(unknown)[0]!r}")
    worker, status = raw.get("workerId"), raw.get("status")
    if not isinstance(worker, str) or not worker.strip() or len(worker) > MAX_TEXT:
        raise ValueError(f"workerId: expected a non-empty string of at most {MAX_TEXT} characters, got {short(worker)}")
    if status not in STATUSES:
        raise ValueError(f"status: expected one of {', '.join(STATUSES)}, got {short(status)}")
    out: dict[str, Any] = {"workerId": worker, "status": status}
    for key, high in (("progress", 100), ("tokensUsed", 10**12)):
        value = raw.get(key)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
                raise ValueError(f"{key}: expected an integer 0-{high:,}, got {short(value)}")
            out[key] = value
    for key, high in (("task", MAX_TEXT), ("message", MAX_MESSAGE)):
        value = raw.get(key)
        if value is not None:
            if not isinstance(value, str) or len(value) > high:
                raise ValueError(f"{key}: expected a string of at most {high} characters, got {short(value)}")
            out[key] = value
    return out


def progress_of(worker: str, status: str, **fields: Any) -> dict[str, Any]:
    """What a worker reports, ready to send (validated): unset fields left out."""
    return parse_progress({"workerId": worker, "status": status, **{k: v for k, v in fields.items() if v is not None}})
