"""The plan's task graph as the processes of a run need it: owners, dependencies, dead ends.

A task whose dependency failed for good can never be claimed (the lease script only grants
tasks whose dependencies completed), and neither can anything downstream of it. Worker and
coordinator both have to recognise that, or they would wait for their deadlines.
"""
from __future__ import annotations

from typing import Mapping

from plan.model import StackConfig
from plan.statuses import TERMINAL


class TaskGraph:
    def __init__(self, cfg: StackConfig):
        self.deps = {t.id: t.depends_on for larry in cfg.larrys for t in larry.tasks}
        self.larry = {t.id: larry.id for larry in cfg.larrys for t in larry.tasks}
        self.worker = {t.id: w.name for larry in cfg.larrys for w in larry.workers for t in w.tasks}
        self.ids = list(self.deps)

    def doomed(self, statuses: Mapping[str, str | None]) -> dict[str, str]:
        """Unfinished tasks that can never run -> the failed task that blocks them."""
        blocked: dict[str, str | None] = {}

        def cause(task: str) -> str | None:
            if task not in blocked:
                blocked[task] = None  # a cycle is impossible (the config rejects them); this ends recursion anyway
                for dep in self.deps.get(task, ()):
                    found = dep if statuses.get(dep) == "failed" else cause(dep)
                    if found:
                        blocked[task] = found
                        break
            return blocked[task]

        return {t: c for t in self.ids if statuses.get(t) not in TERMINAL and (c := cause(t))}
