"""The plain progress lines `larry run` prints, one per event that matters to a person
watching: phases, tasks finished, restarts and re-queues, alerts, barriers."""
from __future__ import annotations

import json
import threading
import time
from typing import Callable

from plan.model import StackConfig
from plan.taskgraph import TaskGraph
from runtime.coordination.events import Event, EventListener, EventLog


class ProgressPrinter:
    def __init__(self, cfg: StackConfig, r, ks, say: Callable[[str], None]):
        self.r, self.ks, self.say = r, ks, say
        self.graph = TaskGraph(cfg)
        self.totals = {larry.id: len(larry.tasks) for larry in cfg.larrys}
        self.done = dict.fromkeys(self.totals, 0)
        # Positioned now, before any process of the run exists: it sees the whole run.
        self.listener = EventListener(r, ks, "$")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="progress")

    def start(self) -> "ProgressPrinter":
        self._thread.start()
        return self

    def _loop(self) -> None:
        for event in self.listener.listen(self._stop, block_ms=300):
            line = self.describe(event)
            if line:
                self.say(line)

    def flush(self, timeout: float = 3.0) -> None:
        """Return once every event written so far has been printed (or ``timeout``)."""
        events = EventLog(self.r, self.ks)
        tails = events.tails(events.streams())
        until = time.monotonic() + timeout
        while self.listener.behind(tails) and time.monotonic() < until:
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def describe(self, event: Event) -> str | None:
        d, name = event.data, event.name
        task = d.get("task_id")
        larry = d.get("larry") or self.graph.larry.get(task, "")
        if task is not None and larry not in self.totals:
            return None  # another stack's task on a shared Redis
        if name == "task_completed":
            self.done[larry] += 1
            return f"{larry}: {task} completed ({self.done[larry]}/{self.totals[larry]})"
        if name == "task_failed":
            if d.get("retry"):
                return f"{larry}: {task} failed; pending again"
            return f"{larry}: {task} FAILED ({self._reason(task)})"
        simple = {
            "phase_started": f"{larry}: phase started",
            "phase_complete": f"{larry}: phase completed ({d.get('message', '')})",
            "phase_failed": f"{larry}: phase FAILED ({d.get('message', '')})",
            "task_requeued": f"{larry}: {task} re-queued (worker {d.get('worker')} dead)",
            "task_takeover": f"{larry}: {task} taken over from {d.get('previous')}",
            "worker_dead": f"worker {d.get('worker')} dead (no heartbeat)",
            "worker_paused": f"{larry}: worker {d.get('worker')} paused ({d.get('reason')})",
            "worker_resumed": f"{larry}: worker {d.get('worker')} resumed",
            "token_overrun": f"{larry}: token overrun, {d.get('used')} of {d.get('limit')} tokens",
            "token_reserve_deployed": f"{larry}: emergency reserve deployed, {d.get('amount')} tokens",
            "barrier_released": f"barrier {d.get('barrier')} released",
            "escalation_raised": f"{larry}: {d.get('id')} from {d.get('from')}: {d.get('issue')} "
                                 f"(larry approve / larry deny {d.get('id')})",
            "escalation_decided": f"{d.get('id')} {d.get('status')} by {d.get('from')}",
            "master_decided": f"{larry}: master {d.get('master')} decided {d.get('id')} ({d.get('task')}): "
                              f"{d.get('decision')}",
            "run_approved": f"the run is approved by {d.get('from')}",
            "critical_cve": f"alert critical_cve from {d.get('from')}",
            "critical_cve_resolved": f"critical_cve resolved by {d.get('from')}",
        }
        return simple.get(name)

    def _reason(self, task: str) -> str:
        raw = self.r.hget(self.ks.task_result(task), "data")
        try:
            return str(json.loads(raw).get("error", "no reason recorded"))
        except (TypeError, ValueError, AttributeError):
            return "no reason recorded"
