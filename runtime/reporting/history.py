"""One Larry's view of the event stream, folded: what its report and metrics need that the
keys do not hold (attempts, claim times, restarts, re-queues, alerts, pause requests).

The coordinator folds the stream from its first entry, so a restarted coordinator rebuilds
the same view from Redis and carries on.

Pause requests (seed 001 appendix A example 3): a ``critical_cve`` alert names whom it
stops, with ``workers: [name, ...]`` and/or ``larrys: [id, ...]`` (every worker of those
Larrys), at the top level or inside its ``data`` object like the seed's example; a
``critical_cve_resolved`` event addressed the same way lifts it. An alert that names
nobody is recorded, not acted on.
"""
from __future__ import annotations

import json
from typing import Iterable

from plan.model import Larry
from runtime.coordination.events import Event
from runtime.coordination.keys import Keyspace

PAUSE_EVENT, RESUME_EVENT = "critical_cve", "critical_cve_resolved"
#: Fields of an event that are bookkeeping, not what an alert is about.
_ENVELOPE = ("event", "from", "timestamp", "token")


class History:
    def __init__(self, larry: Larry, ks: Keyspace):
        self.larry, self.ks = larry, ks
        self.tasks = {t.id for t in larry.tasks}
        self.workers = [w.name for w in larry.workers]
        self.attempts: dict[str, int] = {}
        self.claimed_at: dict[str, dict[int, str]] = {}
        self.starts: dict[str, int] = {}
        self.requeued: list[str] = []
        self.alerts: list[dict] = []
        self.conflicts = 0
        #: worker -> the reason it should be paused, or None to resume; cleared by the coordinator
        self.pause_requests: dict[str, str | None] = {}

    def add(self, events: Iterable[Event]) -> bool:
        """Fold ``events``; True if one of them concerns this Larry's tasks."""
        touched = False
        for event in events:
            data, task = event.data, event.data.get("task_id")
            if task in self.tasks:
                touched = True
                self._task_event(event.name, task, data)
            elif event.name == "worker_started" and data.get("worker") in self.workers:
                self.starts[data["worker"]] = self.starts.get(data["worker"], 0) + 1
            if event.name in (PAUSE_EVENT, RESUME_EVENT):
                for worker in self._addressed(data):
                    self.pause_requests[worker] = _reason(data) if event.name == PAUSE_EVENT else None
            if event.channel == self.ks.alerts and self._concerns(data, task):
                detail = {k: v for k, v in data.items() if k not in _ENVELOPE}
                self.alerts.append({"event": event.name, "from": str(data.get("from") or "unknown"),
                                    "detail": json.dumps(detail, sort_keys=True, separators=(",", ":"))})
        return touched

    def _task_event(self, name: str, task: str, data: dict) -> None:
        if name == "task_claimed":
            self.attempts[task] = self.attempts.get(task, 0) + 1
            self.claimed_at.setdefault(task, {})[int(data.get("token", 0))] = data.get("timestamp")
        elif name == "task_requeued":
            self.requeued.append(task)
        elif name == "task_conflict":
            self.conflicts += 1

    def _addressed(self, data: dict) -> list[str]:
        inner = data.get("data") if isinstance(data.get("data"), dict) else {}
        workers = _names(data.get("workers")) + _names(inner.get("workers"))
        larrys = _names(data.get("larrys")) + _names(inner.get("larrys"))
        everyone = self.larry.id in larrys
        return [w for w in self.workers if everyone or w in workers]

    def _concerns(self, data: dict, task) -> bool:
        sender = str(data.get("from") or "")
        return (task in self.tasks or data.get("larry") == self.larry.id or data.get("worker") in self.workers
                or sender == self.larry.id or sender.startswith(self.larry.id + "/") or bool(self._addressed(data)))

    def claim_time(self, task: str, fence: int) -> str | None:
        """When the attempt holding ``fence`` claimed ``task`` (else the latest claim)."""
        claims = self.claimed_at.get(task, {})
        return claims.get(fence) or (claims[max(claims)] if claims else None)

    def restarts(self, worker: str) -> int:
        return max(0, self.starts.get(worker, 0) - 1)


def _names(value) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _reason(data: dict) -> str:
    inner = data.get("data") if isinstance(data.get("data"), dict) else {}
    cve = data.get("cve_id") or inner.get("cve_id")
    return f"critical_cve {cve} from {data.get('from', 'unknown')}" if cve else f"critical_cve from {data.get('from')}"
