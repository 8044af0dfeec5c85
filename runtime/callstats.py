"""Time spent in Redis calls by one process, for bench/bench_runtime_overhead.py.

Off unless ``$LARRY_CALL_STATS_DIR`` is set. Then every command and pipeline the process
sends through redis-py is timed, and at exit ``{dir}/{name}-{pid}.json`` holds::

    {"process": name, "wall_seconds": ..., "calls": n, "call_seconds": ...,
     "blocking_calls": n, "blocking_seconds": ...}

Blocking reads (``XREAD ... BLOCK``) are counted apart: their time is the process waiting
for something to happen, not the cost of coordinating.
"""
from __future__ import annotations

import atexit
import json
import os
import threading
import time
from pathlib import Path

ENV = "LARRY_CALL_STATS_DIR"


class _Totals:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = self.blocking_calls = 0
        self.seconds = self.blocking_seconds = 0.0

    def add(self, seconds: float, blocking: bool) -> None:
        with self.lock:
            if blocking:
                self.blocking_calls += 1
                self.blocking_seconds += seconds
            else:
                self.calls += 1
                self.seconds += seconds


def _blocking(args) -> bool:
    return bool(args) and str(args[0]).upper() == "XREAD" and any(str(a).upper() == "BLOCK" for a in args)


def install(name: str, env=None) -> bool:
    """Time this process's Redis calls if ``$LARRY_CALL_STATS_DIR`` is set; True if it is."""
    directory = (os.environ if env is None else env).get(ENV)
    if not directory:
        return False
    import redis
    from redis.client import Pipeline

    totals, started = _Totals(), time.monotonic()
    command, execute = redis.Redis.execute_command, Pipeline.execute

    def timed_command(self, *args, **options):
        begin = time.perf_counter()
        try:
            return command(self, *args, **options)
        finally:
            totals.add(time.perf_counter() - begin, _blocking(args))

    def timed_execute(self, *args, **kwargs):
        begin = time.perf_counter()
        try:
            return execute(self, *args, **kwargs)
        finally:
            totals.add(time.perf_counter() - begin, False)

    redis.Redis.execute_command, Pipeline.execute = timed_command, timed_execute

    def write() -> None:
        path = Path(directory) / f"{name}-{os.getpid()}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "process": name, "wall_seconds": time.monotonic() - started, "calls": totals.calls,
            "call_seconds": totals.seconds, "blocking_calls": totals.blocking_calls,
            "blocking_seconds": totals.blocking_seconds}) + "\n")

    atexit.register(write)
    return True
