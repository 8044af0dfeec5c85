"""Seed 004's master hashes ``{ns}:masters:{name}`` (Appendix B: status active|idle|overloaded,
tasks_active, tokens_used, workers_spawned, last_heartbeat).

Who writes which field, and how consistent it is:

* ``tokens_used``: the ledger, in the script that books the tokens (its personal account and
  its pool's together, :mod:`runtime.coordination.ledger`): always the ledger's figure.
* ``workers_spawned``: the registry, in the script that registers a worker it oversees
  (:meth:`plan.model.Larry.overseer`: the workers naming it and those dealt to it) for the
  first time (:mod:`runtime.coordination.registry`): restarts are not counted again.
* ``last_heartbeat``: the master's own process, every heartbeat interval while it tends its
  duties (:meth:`MasterBoard.beat`), in the primary's clock.
* ``status`` and ``tasks_active``: a view the Larry's coordinator refreshes every heartbeat
  and once its phase ended (:meth:`MasterBoard.refresh`): ``tasks_active`` counts the tasks in
  progress of the workers it oversees, ``status`` is ``active`` with a task in progress
  (``overloaded`` when its pool has also used the reserve trigger's share of its own budget,
  the point the reserve is lent to it), else ``idle``. Not guaranteed: that it is current between refreshes (it is read from state, not
  written with it: a task's lease can expire without a write).

The other seed 004 keys live with the state they mirror: the task queue in
:mod:`runtime.coordination.tasks`, the worker hashes in the registry, the metric series where
their figures change (leases, ledger), the event entries in :mod:`runtime.coordination.events`.
"""
from __future__ import annotations

from typing import Mapping

import redis

from plan.model import Larry, master_account
from plan.statuses import MasterStatus, TaskStatus
from runtime.coordination.connection import require_text
from runtime.coordination.events import lua_script
from runtime.coordination.keys import Keyspace
from runtime.coordination.ledger import Ledger

_BEAT = r"""
-- KEYS[1] {ns}:masters:{name}; ARGV[1] master
redis.call('HSET', KEYS[1], 'last_heartbeat', now())
return 1
"""


class MasterBoard:
    def __init__(self, r: redis.Redis, ks: Keyspace, ledger: Ledger, *, trigger: float):
        require_text(r)
        self.r, self.ks, self.ledger, self.trigger = r, ks, ledger, trigger
        self._beat = r.register_script(lua_script(ks, _BEAT))

    def beat(self, master: str) -> None:
        """The master's process is alive now."""
        self._beat(keys=[self.ks.schema_master(master)], args=[master])

    def refresh(self, larry: Larry, statuses: Mapping[str, str | None]) -> None:
        """Write each of ``larry``'s masters' status and tasks_active from the task statuses."""
        pipe = self.r.pipeline(transaction=True)
        for master in larry.masters:
            active = sum(statuses.get(t.id) == TaskStatus.IN_PROGRESS for w in larry.workers
                         if larry.overseer(w) == master.name for t in w.tasks)
            pool = self.ledger.figures(master_account(larry.id, master.name, "pool"))
            # its own budget, not what was lent to it: a loan is what being overloaded brings
            loaded = pool["limit"] > 0 and pool["reserved"] + pool["committed"] >= pool["limit"] * self.trigger
            status = MasterStatus.OVERLOADED if loaded and active else \
                MasterStatus.ACTIVE if active else MasterStatus.IDLE
            key = self.ks.schema_master(master.name)
            pipe.hset(key, mapping={"status": status, "tasks_active": active})
            for counted in ("tokens_used", "workers_spawned"):  # 0 until its first
                pipe.hsetnx(key, counted, 0)
        pipe.execute()
