"""Masters' liveness (seed 004 "Monitors: each master's heartbeat"; seed 003 failure scenario 2,
"Master Crash"): activation, silence and the reassignment of a silent master's tasks.

* A master's process beats ``last_heartbeat`` of ``{ns}:masters:{name}`` every heartbeat
  interval (:meth:`runtime.coordination.schema.MasterBoard.beat`) and, each time it starts,
  announces ``MASTER_ACTIVATION {master, larry, tasks}`` on the coordination channel
  (:meth:`MasterWatch.activated`), which also lifts an earlier silence.
* Its Larry's coordinator checks its masters every heartbeat (:meth:`MasterWatch.check`): a
  master that has beaten once and not since ``grace`` seconds (the primary's clock) is declared
  silent, once per silence (``master:{larry}:{master}:silent``), with a ``master_silent`` alert
  (a human is to restart it; the Deployment's restart, or ``larry run``'s, usually already does).
  In ``queue`` assignment its pending queued tasks are then handed over
  (:mod:`runtime.coordination.handoffs`, requested by the coordinator on its behalf) to the live
  master with the most running workers, its Larry's first: "reassigns tasks to other masters
  temporarily". Its workers carry on with what they hold (they are autonomous). A master
  declared silent whose beat is newer than the declaration is not silent any more; it is
  declared again only after it announced itself again (MASTER_ACTIVATION) and went silent
  again.

Not guaranteed: that a master which never beat is noticed (it has not started: nothing of it
is lost); that handed-over tasks come back when it returns (they are done where they went);
that a live master receives them (it acknowledges on its next round; until then they stay).
"""
from __future__ import annotations

import json
from typing import Iterable, Mapping

import redis

from plan.model import Larry, StackConfig
from plan.statuses import RUNNING
from runtime.coordination.connection import Durability, require_text, run_script
from runtime.coordination.events import lua_script
from runtime.coordination.handoffs import Handoffs
from runtime.coordination.keys import Keyspace
from runtime.support.timestamps import parse

ACTIVATION, SILENT = "MASTER_ACTIVATION", "master_silent"

_DECLARE = r"""
-- KEYS[1] master:{larry}:{master}:silent, [2] {ns}:masters:{master}; ARGV[1] sender, [2] larry,
-- [3] master, [4] the last heartbeat the caller judged silent, [5] grace seconds
if redis.call('HGET', KEYS[2], 'last_heartbeat') ~= ARGV[4] then return 0 end  -- it beat since
if not redis.call('SET', KEYS[1], now(), 'NX') then return 0 end
emit(true, {event='master_silent', larry=ARGV[2], master=ARGV[3], last_heartbeat=ARGV[4], grace_s=tonumber(ARGV[5])})
return 1
"""

_ACTIVATED = r"""
-- KEYS[1] master:{larry}:{master}:silent; ARGV[1] sender, [2] larry, [3] master, [4] tasks JSON
redis.call('DEL', KEYS[1])
return emit(false, {event='MASTER_ACTIVATION', larry=ARGV[2], master=ARGV[3], tasks=cjson.decode(ARGV[4])})
"""


class MasterWatch:
    def __init__(self, r: redis.Redis, ks: Keyspace, cfg: StackConfig, *, grace: float,
                 durability: Durability = Durability()):
        require_text(r)
        self.r, self.ks, self.cfg, self.grace, self.durability = r, ks, cfg, grace, durability
        self.handoffs = Handoffs(r, ks, durability)
        self._declare, self._activated = (r.register_script(lua_script(ks, body)) for body in (_DECLARE, _ACTIVATED))

    def activated(self, larry: str, master: str, tasks: Iterable[str]) -> str:
        """A master's process starts: MASTER_ACTIVATION, and any earlier silence lifted."""
        return run_script(self.r, self._activated, [self.ks.master_silent(larry, master)],
                          [f"{larry}/{master}", larry, master, json.dumps(list(tasks))], self.durability,
                          idempotent=False)

    def _beats(self) -> dict[str, str | None]:
        names = [m.name for larry in self.cfg.larrys for m in larry.masters]
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.hget(self.ks.schema_master(name), "last_heartbeat")
        return dict(zip(names, pipe.execute()))

    def check(self, larry: Larry) -> tuple[list[str], list[tuple[str, str, str]]]:
        """Declare ``larry``'s silent masters and request handoffs of their pending queued tasks;
        (the masters declared now, the handoffs requested: (task, from, to))."""
        seconds, micros = self.r.time()
        now = seconds + micros / 1e6
        beats = self._beats()
        silent = {name for name, beat in beats.items() if beat and now - parse(beat).timestamp() > self.grace}
        declared_now, requested = [], []
        for master in larry.masters:
            if master.name not in silent:
                continue
            declared = run_script(self.r, self._declare, [self.ks.master_silent(larry.id, master.name),
                                                          self.ks.schema_master(master.name)],
                                  [f"{larry.id}/coordinator", larry.id, master.name, beats[master.name], self.grace],
                                  self.durability)
            if declared:
                declared_now.append(master.name)
                if self.cfg.queued:
                    requested += self.reassign(larry, master.name, silent)
        return declared_now, requested

    def reassign(self, larry: Larry, master: str, silent: set[str]) -> list[tuple[str, str, str]]:
        """Request handoffs of ``master``'s pending queued tasks to the live master with the most
        running workers (its own Larry's first); none when no master is live."""
        target = self._target(larry, master, silent)
        if target is None:
            return []
        entries = self.r.hgetall(self.ks.task_queue_entries)
        queued = self.r.zrange(self.ks.task_queue, 0, -1)
        requested = []
        for task in queued:
            entry = entries.get(task)
            if entry is None or _queue(entry) != master:
                continue
            status, _ = self.handoffs.request(f"{larry.id}/coordinator", master, target, task,
                                              {"reason": f"{master} silent for more than {self.grace:g} s"})
            if status == "requested":
                requested.append((task, master, target))
        return requested

    def _target(self, larry: Larry, master: str, silent: set[str]) -> str | None:
        live = [(m.name, owner) for owner in self.cfg.larrys for m in owner.masters
                if m.name != master and m.name not in silent]
        workers = {w.name: owner.queue_of(w) for owner in self.cfg.larrys for w in owner.workers}
        statuses = dict(zip(workers, self.r.mget([self.ks.worker_status(w) for w in workers]))) if workers else {}
        running = _count(statuses, workers)
        ranked = sorted((pair for pair in live if running.get(pair[0], 0) > 0),
                        key=lambda pair: (pair[1].id != larry.id, -running[pair[0]]))
        return ranked[0][0] if ranked else None


def _queue(entry: str) -> str | None:
    try:
        return json.loads(entry).get("master")
    except ValueError:
        return None


def _count(statuses: Mapping[str, str | None], queues: Mapping[str, str]) -> dict[str, int]:
    running: dict[str, int] = {}
    for worker, status in statuses.items():
        if status in RUNNING:
            running[queues[worker]] = running.get(queues[worker], 0) + 1
    return running
