"""The runtime: what runs in the pods and on an operator's machine, as the console script `larry`.

It reads the plan through :mod:`plan` and never imports the Pulumi program or Pulumi.

============================  ==========================================================
``cli``                       the ``larry`` entry: one table of commands, shared arguments,
                              one-line usage errors, logging configured once
``coordination/``             the Redis primitives every process shares:
``coordination.keys``         every key, channel and stream name of a run (one Keyspace)
``coordination.connection``   connecting (URL or Sentinel), retries, ``run_script``
``coordination.events``       the durable event stream and the Lua prelude (``emit``, ``now``)
``coordination.leases``       fenced task leases and their renewal
``coordination.ledger``       the per-Larry token ledger and the emergency reserve
``coordination.barrier``      the all-Larry barrier on a stream
``coordination.phases``       a Larry's phase status and progress (PhaseTracker)
``coordination.registry``     worker registration and heartbeats
``coordination.tasks``        task definitions, statuses and fenced results
``coordination.fallback``     file-based coordination on the volume while Redis is down
``agent/``                    the boundary with the untrusted payload (the AI agent)
``commands/``                 one module per ``larry`` command
``reporting/``                reports, summary, the run's read model and its presentation
``support/``                  what the rest leans on: timing, timestamps, files, logs ...
============================  ==========================================================

Each subpackage's docstring maps its own modules.
"""
