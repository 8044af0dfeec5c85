"""One run per Redis and key prefix: an exclusive, expiring, renewed lock.

`larry run` takes ``{prefix}run:lock`` (:attr:`runtime.coordination.keys.Keyspace.run_lock`)
before it writes anything, with ``SET NX PX``; the value names the holder (host, pid, run
directory). A second run against the same Redis and prefix is refused with one line naming
that holder. The holder renews the lock every third of its TTL on a daemon thread (compare
and ``PEXPIRE`` in one script) and deletes it when the run ends (compare and ``DEL``), so
a run killed with -9 blocks others for at most :data:`TTL_SECONDS`.

Not guaranteed: a holder stalled longer than the TTL (SIGSTOP, a frozen VM) loses the lock
and a second run may start beside it; the stalled one notices at its next renewal and logs
it, but cannot undo what the other did meanwhile. Across a Sentinel failover the lock, like
every write, may be lost with an unreplicated write; the next renewal takes it again when
it is free. Only `larry run` takes it: processes started by hand or by the cluster do not.
"""
from __future__ import annotations

import logging
import os
import socket
import threading

import redis

from runtime.coordination.connection import run_script

log = logging.getLogger(__name__)

TTL_SECONDS = 15.0

# KEYS[1] lock; ARGV[1] holder, [2] ttl ms. Renews our lock or takes it back when it lapsed:
# 1 renewed/taken, 0 someone else holds it.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]); return 1 end
return 0
"""
# KEYS[1] lock; ARGV[1] holder: deletes the lock only if it is ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RunLocked(Exception):
    """Another run holds the lock; ``holder`` names it."""

    def __init__(self, holder: str):
        super().__init__(f"another larry run is using this Redis and key prefix ({holder})")
        self.holder = holder


def holder_name(run_dir) -> str:
    """The lock's value for this process: where a person finds the run that holds it."""
    return f"host {socket.gethostname()}, pid {os.getpid()}, run directory {run_dir}"


class RunLock:
    def __init__(self, r: redis.Redis, key: str, holder: str, ttl: float = TTL_SECONDS):
        self.r, self.key, self.holder, self.ttl = r, key, holder, ttl
        self._renew = r.register_script(_RENEW)
        self._release = r.register_script(_RELEASE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> "RunLock":
        """Take the lock and start renewing it; RunLocked naming the holder if it is taken."""
        if not self.r.set(self.key, self.holder, nx=True, px=int(self.ttl * 1000)):
            current = self.r.get(self.key)
            if current != self.holder:
                raise RunLocked(current or "a holder whose lock just expired: try again")
        self._thread = threading.Thread(target=self._keep, daemon=True, name="run-lock")
        self._thread.start()
        return self

    def renew(self) -> bool:
        """Extend the lock (or take it back if it lapsed); False if another run holds it now."""
        return bool(run_script(self.r, self._renew, [self.key], [self.holder, int(self.ttl * 1000)]))

    def _keep(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if not self.renew():
                    log.error("the run lock %s was taken by %s", self.key, self.r.get(self.key))
            except redis.exceptions.RedisError as error:
                log.warning("renewing the run lock %s failed: %s", self.key, error)

    def release(self) -> None:
        """Stop renewing and delete the lock if it is still ours (never raises)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            run_script(self.r, self._release, [self.key], [self.holder])
        except redis.exceptions.RedisError as error:
            log.warning("releasing the run lock %s failed (it expires in %g s): %s", self.key, self.ttl, error)
