"""One module per ``larry`` command: its arguments (``configure_parser``), its ``main`` and
its help's ``EXAMPLES``; :data:`runtime.cli.COMMANDS` is the table.

===============  ===============================================================
``worker``       a worker Job's process: claims its tasks by lease, runs the payload
``coordinator``  a Larry's coordinator: phase, re-queues, pause, report, metrics
``converge``     the meta-coordinator's Phase 4: barriers, summary, archive (S3)
``run``          a stack's whole plan on this machine, supervised like the cluster
``simulate``     the built-in payload (:mod:`runtime.agent.simulated`)
``dashboard``    the live terminal dashboard (seed 000's layout)
``status``       a run's state: phases, tasks, ledgers, workers, barriers
``preflight``    checks before a run: Redis, Sentinel quorum, budgets, ledger
``cleanup``      removes a finished, archived run's keys
===============  ===============================================================
"""
