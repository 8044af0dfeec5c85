"""The coordination primitives: everything a run shares through Redis, each state change one
idempotent Lua script run through :func:`runtime.coordination.connection.run_script`.

* ``keys``: every Redis key, channel and stream name, and their Lua constants.
* ``connection``: connecting (URL or Sentinel), retries within a time window, ``run_script`` and its durability (WAIT).
* ``events``: the durable event stream, the Lua prelude (clock, ``emit``) and listeners.
* ``leases``: fenced task leases, take-over of a dead predecessor's lease, the keeper that renews them.
* ``tasks``: task definitions, dependencies, statuses, results, re-queueing of orphaned tasks.
* ``phases``: one Larry's phase status and progress.
* ``registry``: worker registration, heartbeats, reaping of dead workers, pause and resume.
* ``ledger``: the token ledger and the emergency reserve pool.
* ``barrier``: waiting until every participant has arrived (convergence, reports).
* ``fallback``: file-based leases and events on the shared volume, and when to degrade to them.
"""
