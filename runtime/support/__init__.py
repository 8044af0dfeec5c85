"""What the rest of the runtime leans on; no module here knows about Larrys or tasks.

===============  =============================================================
``timing``       how deadlines, lease TTLs and heartbeats follow ``--speed``
``timestamps``   the one written timestamp form (UTC, ms, ``Z``) and its parser
``files``        the one atomic file writer
``logs``         logging of every process, configured once by the CLI
``credentials``  Redis passwords: masked in messages and files, passed by environment
``run_lock``     one `larry run` per Redis and key prefix: an expiring, renewed lock
``local_redis``  the private redis-server of `larry run`
``callstats``    time spent in Redis calls, for the benchmarks
===============  =============================================================
"""
