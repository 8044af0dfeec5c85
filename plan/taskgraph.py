"""The plan's task graph as the processes of a run need it: owners, dependencies, dead ends.

A task whose dependency failed for good can never be claimed (the lease script only grants
tasks whose dependencies completed), and neither can anything downstream of it. Worker and
coordinator both have to recognise that, or they would wait for their deadlines.

Every walk of the graph is iterative, so a dependency chain of any length is fine (no
recursion limit); a dependency naming no task of the plan is ignored here (the loader
reports it).
"""
from __future__ import annotations

from functools import cached_property
from typing import Mapping

from plan.model import StackConfig
from plan.statuses import TERMINAL


class TaskGraph:
    """The tasks of ``cfg``: a whole plan's, or a slice's own and the other Larrys' tasks they
    wait for (``cfg.upstream``), which is all a slice needs to see its tasks blocked."""

    def __init__(self, cfg: StackConfig):
        self.deps = {t.id: t.depends_on for larry in cfg.larrys for t in larry.tasks}
        self.larry = {t.id: larry.id for larry in cfg.larrys for t in larry.tasks}
        self.worker = {t.id: w.name for larry in cfg.larrys for w in larry.workers for t in w.tasks}
        for task in cfg.upstream:
            self.deps[task.id], self.larry[task.id], self.worker[task.id] = task.depends_on, task.larry, task.worker
        self.ids = list(self.deps)

    def around(self, tasks) -> "TaskGraph":
        """The graph of ``tasks`` and every task they wait on, directly or not: all a worker
        of those tasks needs, so what it reads stays the size of its own work, not the plan's."""
        keep, stack = set(), [t for t in tasks if t in self.deps]
        while stack:
            task = stack.pop()
            if task not in keep:
                keep.add(task)
                stack.extend(d for d in self.deps[task] if d in self.deps)
        part = object.__new__(TaskGraph)
        part.ids = [t for t in self.ids if t in keep]
        part.deps = {t: self.deps[t] for t in part.ids}
        part.larry = {t: self.larry[t] for t in part.ids}
        part.worker = {t: self.worker[t] for t in part.ids if t in self.worker}
        return part

    @cached_property
    def _order(self) -> tuple[list[str], list[str]]:
        """(tasks with each after all its dependencies, tasks on or behind a cycle)."""
        waiting = {t: sum(d in self.deps for d in deps) for t, deps in self.deps.items()}
        dependents: dict[str, list[str]] = {}
        for task, deps in self.deps.items():
            for dep in deps:
                dependents.setdefault(dep, []).append(task)
        order = [t for t in self.ids if not waiting[t]]
        for task in order:  # grows while it is walked
            for user in dependents.get(task, ()):
                waiting[user] -= 1
                if not waiting[user]:
                    order.append(user)
        return order, [t for t in self.ids if waiting[t]]

    def cycle(self) -> list[str] | None:
        """One dependency cycle as a path (first task repeated at the end), or None."""
        left = set(self._order[1])
        if not left:
            return None
        # Every task left over waits on another one left over: following those must loop.
        path, seen = [self._order[1][0]], {}
        while path[-1] not in seen:
            seen[path[-1]] = len(path) - 1
            path.append(next(d for d in self.deps[path[-1]] if d in left))
        return path[seen[path[-1]]:]

    def doomed(self, statuses: Mapping[str, str | None]) -> dict[str, str]:
        """Unfinished tasks that can never run -> the failed task that blocks them (the
        first dependency, in declared order, that failed or is itself blocked)."""
        cause: dict[str, str | None] = {}
        for task in self._order[0]:  # dependencies first, so their causes are known
            cause[task] = None
            for dep in self.deps[task]:
                found = dep if statuses.get(dep) == "failed" else cause.get(dep)
                if found:
                    cause[task] = found
                    break
        return {t: c for t in self.ids if statuses.get(t) not in TERMINAL and (c := cause.get(t))}
