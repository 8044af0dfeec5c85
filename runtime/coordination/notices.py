"""Seed 004's master-to-master notices that the runtime derives from its own state, announced
by the coordinator of the Larry they concern, each exactly once (``{ns}:notices:sent`` holds
what was announced, set in the script that emits it, so a restarted coordinator replaying the
stream announces nothing twice):

* ``DEPENDENCY_MET {master, task_id, dependency_resolved}`` on ``{ns}:masters:dependencies``,
  once per dependency of each of its tasks, once that dependency has completed ("security-master
  completes scan → development-master notified"): ``master`` is the dependent task's (the master
  overseeing its worker, its Larry's id when none does).
* ``RESOURCE_CONFLICT {masters_involved, resource, resolution_needed}`` on the coordination
  channel, for each ``task_conflict`` on one of its tasks (a lease asked for while another holds
  it, seed 001 appendix A example 1) between workers of different masters: ``resource`` is
  ``task:<id>``, ``resolution_needed`` what the lease already decided (the holder keeps it; the
  other waits).

Not guaranteed: promptness (dependencies are looked at every heartbeat and on the Larry's own
task events; a dependency of another Larry completing is noticed at the next heartbeat).
"""
from __future__ import annotations

import json
from typing import Iterable, Mapping

import redis

from plan.model import Larry, StackConfig
from plan.statuses import TaskStatus
from runtime.coordination.connection import require_text
from runtime.coordination.events import Event, lua_script
from runtime.coordination.keys import Keyspace

DEPENDENCY_MET, RESOURCE_CONFLICT = "DEPENDENCY_MET", "RESOURCE_CONFLICT"

_ANNOUNCE = r"""
-- KEYS[1] {ns}:notices:sent; ARGV[1] sender, [2] notice id, [3] channel, [4] event JSON object,
-- [5] the Larry (its stream has the notice)
if redis.call('HSETNX', KEYS[1], ARGV[2], now()) == 0 then return 0 end
emit_on(ARGV[3], cjson.decode(ARGV[4]), nil, home_stream(ARGV[5]))
return 1
"""


class Notices:
    def __init__(self, r: redis.Redis, ks: Keyspace, cfg: StackConfig, larry: Larry):
        require_text(r)
        self.r, self.ks, self.larry = r, ks, larry
        self.sender = f"{larry.id}/coordinator"
        self._announce = r.register_script(lua_script(ks, _ANNOUNCE))
        #: who oversees each worker of the stack (its master, or its Larry's id)
        self.master_of_worker = {w.name: w.master or owner.id for owner in cfg.larrys for w in owner.workers}
        self.master_of_task = {t.id: w.master or larry.id for w in larry.workers for t in w.tasks}
        self.waiting = {(t.id, dep) for t in larry.tasks for dep in t.depends_on}

    def _send(self, notice: str, channel: str, fields: dict) -> bool:
        args = [self.sender, notice, channel, json.dumps(fields), self.larry.id]
        return bool(self._announce(keys=[self.ks.notices], args=args))

    def dependencies(self, statuses: Mapping[str, str | None]) -> None:
        """Announce each dependency of the Larry's tasks that has completed, once."""
        for task, dep in sorted(t for t in self.waiting if statuses.get(t[1]) == TaskStatus.COMPLETED):
            self._send(f"dependency:{task}:{dep}", self.ks.schema_channel("masters", "dependencies"),
                       {"event": DEPENDENCY_MET, "master": self.master_of_task[task], "task_id": task,
                        "dependency_resolved": dep})
            self.waiting.discard((task, dep))

    def conflicts(self, events: Iterable[Event]) -> None:
        """Announce the lease conflicts on the Larry's tasks between different masters' workers."""
        for event in events:
            task = event.data.get("task_id")
            if event.name != "task_conflict" or task not in self.master_of_task:
                continue
            masters = sorted({self.master_of_worker.get(_worker(event.data.get(who)))
                              for who in ("from", "owner")} - {None})
            if len(masters) > 1:
                self._send(f"conflict:{event.id}", self.ks.coordination,
                           {"event": RESOURCE_CONFLICT, "masters_involved": masters, "resource": f"task:{task}",
                            "resolution_needed": f"{event.data.get('owner')} holds the lease; the other waits for it"})


def _worker(sender) -> str | None:
    """The worker named in a lease owner or sender (``<larry>/<worker>[/...]``)."""
    parts = sender.split("/") if isinstance(sender, str) else []
    return parts[1] if len(parts) > 1 else None
