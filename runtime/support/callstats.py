"""Time spent in Redis calls by one process, for bench/bench_runtime_overhead.py.

Off unless ``$LARRY_CALL_STATS_DIR`` is set. Then every command and pipeline the process
sends through redis-py (and every FCALL a ``FunctionLibrary`` sends on its own connection) is
timed, and at exit ``{dir}/{name}-{pid}.json`` holds::

    {"process": name, "wall_seconds": ..., "calls": n, "call_seconds": ...,
     "main_thread_calls": n, "main_thread_seconds": ...,
     "blocking_calls": n, "blocking_seconds": ..., "by_command": {command: [n, seconds]}}

Blocking reads (``XREAD ... BLOCK``) are counted apart: their time is the process waiting
for something to happen, not the cost of coordinating. ``main_thread_*`` are the calls the
process's own work waited for; the rest (heartbeats, lease renewals) ran beside it.
"""
from __future__ import annotations

import atexit
import json
import os
import threading
import time
from pathlib import Path

from plan import environment as envvar
from runtime.support.files import write_atomic


class _Totals:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = self.blocking_calls = self.main_calls = 0
        self.seconds = self.blocking_seconds = self.main_seconds = 0.0
        self.by_command: dict[str, list] = {}

    def add(self, command: str, blocking: bool, seconds: float) -> None:
        with self.lock:
            if blocking:
                self.blocking_calls += 1
                self.blocking_seconds += seconds
                return
            self.calls += 1
            self.seconds += seconds
            if threading.current_thread() is threading.main_thread():
                self.main_calls += 1
                self.main_seconds += seconds
            entry = self.by_command.setdefault(command, [0, 0.0])
            entry[0] += 1
            entry[1] += seconds


def _word(arg) -> str:
    return (arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)).upper()


def _blocking(args) -> bool:
    return bool(args) and _word(args[0]) == "XREAD" and any(_word(a) == "BLOCK" for a in args)


def install(name: str, env=None) -> bool:
    """Time this process's Redis calls if ``$LARRY_CALL_STATS_DIR`` is set; True if it is."""
    directory = (os.environ if env is None else env).get(envvar.CALL_STATS_DIR)
    if not directory:
        return False
    import redis
    from redis.client import Pipeline

    from runtime.coordination.events import FunctionLibrary

    totals, started = _Totals(), time.monotonic()
    command, execute, send = redis.Redis.execute_command, Pipeline.execute, FunctionLibrary._send

    def timed(original, label):
        def wrapper(self, *args, **options):
            begin = time.perf_counter()
            try:
                return original(self, *args, **options)
            finally:
                totals.add(*label(args), time.perf_counter() - begin)
        return wrapper

    redis.Redis.execute_command = timed(command, lambda args: (_word(args[0]) if args else "?", _blocking(args)))
    Pipeline.execute = timed(execute, lambda args: ("PIPELINE", False))
    FunctionLibrary._send = timed(send, lambda args: ("FCALL", False))

    def write() -> None:
        write_atomic(Path(directory) / f"{name}-{os.getpid()}.json", json.dumps({
            "process": name, "wall_seconds": time.monotonic() - started, "calls": totals.calls,
            "call_seconds": totals.seconds, "main_thread_calls": totals.main_calls,
            "main_thread_seconds": totals.main_seconds, "blocking_calls": totals.blocking_calls,
            "blocking_seconds": totals.blocking_seconds, "by_command": totals.by_command}) + "\n")

    atexit.register(write)
    return True
