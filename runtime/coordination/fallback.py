"""File-based coordination on the shared ``/coordination`` volume when Redis stays down (seed risk 2).

:class:`Degrader` is the one degrade path (the worker's, :mod:`runtime.commands.worker`):
once the client's own retries have given up, it probes Redis once every ``interval``
without retries, and :meth:`Degrader.degrade` answers True (switch to file mode) when
Redis has stayed unreachable for ``degrade_after`` more seconds, False as soon as a probe
succeeds. An authentication error is not an outage and is raised. In file mode the
caller asks :meth:`Degrader.reachable` between tasks and, once Redis answers, replays its
file-mode work; :meth:`FileCoordination.replay_into` brings the volume's events into the
Redis stream exactly once across processes (the replay offset is kept in the volume under
the same lock).

:class:`FileCoordination` offers the minimum needed to keep working: fenced task
leases (``leases/{task}.json``, token in ``leases/{task}.fence``), fenced
completion (``results/{task}.json``), and an append-only ``events.jsonl``.
Every mutation holds one ``flock`` on ``.lock``; files are replaced atomically
(write temp + rename) and fsynced.

Weaker than Redis, by design:

* Expiry uses each node's wall clock (``time.time()``): clock skew between
  nodes shortens or lengthens leases. Keep TTLs long in file mode.
* Correctness needs a volume whose flock is honoured across nodes (local disk,
  or NFS with working lock manager; RWX PVCs vary). Without it, two holders
  are possible; fencing tokens then still reject the older holder's completion.
* The two worlds do not share leases or tokens: a partitioned client that still
  reaches Redis does not see file-mode leases. File-mode completions reach Redis
  only when the worker that made them replays them through the normal fenced path
  (and as replayed events with ``"mode": "file"``); nothing else reads
  :meth:`FileCoordination.completed`.
* Throughput is a few hundred operations per second, and there is no barrier,
  ledger or progress in file mode: those wait for Redis.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import redis

from runtime.coordination.connection import single_attempt
from runtime.coordination.events import EventLog
from runtime.support.files import write_atomic
from runtime.support.timestamps import now


class FileCoordination:
    def __init__(self, root: str | Path = "/coordination/fallback"):
        self.root = Path(root)
        for sub in ("leases", "results"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.events_path = self.root / "events.jsonl"

    @contextmanager
    def _locked(self):
        fd = os.open(self.root / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _read(self, path: Path):
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None

    def _paths(self, task_id: str):
        return (self.root / "leases" / f"{task_id}.json", self.root / "leases" / f"{task_id}.fence",
                self.root / "results" / f"{task_id}.json")

    def acquire(self, task_id: str, owner: str, ttl_s: float) -> int | None:
        """A fencing token, or None if someone else holds an unexpired lease or the task is done."""
        lease_path, fence_path, result_path = self._paths(task_id)
        with self._locked():
            if result_path.exists():
                return None
            lease = self._read(lease_path)
            if lease and lease["owner"] != owner and lease["expires"] > time.time():
                return None
            if lease and lease["owner"] == owner and lease["expires"] > time.time():
                token = lease["token"]
            else:
                # as in Redis: counter for order, clock floor for tokens from before a lost fence file
                token = max((self._read(fence_path) or 0) + 1, time.time_ns() // 1000)
                write_atomic(fence_path, json.dumps(token))
            write_atomic(lease_path, json.dumps({"owner": owner, "token": token, "expires": time.time() + ttl_s}))
            self._append({"event": "task_claimed", "task_id": task_id, "owner": owner, "token": token})
            return token

    def release(self, task_id: str, owner: str, token: int) -> str:
        lease_path, _, _ = self._paths(task_id)
        with self._locked():
            lease = self._read(lease_path)
            if not lease or lease["expires"] <= time.time():
                return "expired"
            if (lease["owner"], lease["token"]) != (owner, token):
                return "stolen"
            lease_path.unlink()
            return "released"

    def complete(self, task_id: str, owner: str, token: int, result) -> str:
        """``accepted``, ``stale`` (a newer token exists) or ``finished`` (already completed)."""
        lease_path, fence_path, result_path = self._paths(task_id)
        with self._locked():
            if result_path.exists():
                return "finished"
            if token < (self._read(fence_path) or 0):
                return "stale"
            write_atomic(result_path, json.dumps({"token": token, "owner": owner, "data": result, "at": now()}))
            lease_path.unlink(missing_ok=True)
            self._append({"event": "task_completed", "task_id": task_id, "owner": owner, "token": token})
            return "accepted"

    def completed(self) -> dict[str, dict]:
        return {p.stem: json.loads(p.read_text()) for p in (self.root / "results").glob("*.json")}

    def append_event(self, event: str, sender: str, **fields) -> None:
        with self._locked():
            self._append({**fields, "event": event, "from": sender})

    def _append(self, data: dict) -> None:
        data.setdefault("timestamp", now())  # this node's clock
        data["mode"] = "file"
        with open(self.events_path, "a") as f:
            f.write(json.dumps(data) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def events(self, offset: int = 0) -> tuple[list[dict], int]:
        """Events from byte ``offset`` on, and the offset after them."""
        try:
            with open(self.events_path) as f:
                f.seek(offset)
                lines = f.readlines()
                end = f.tell()
        except FileNotFoundError:
            return [], offset
        good = []
        for line in lines:
            try:
                good.append(json.loads(line))
            except ValueError:
                pass  # a torn last line from a crashed writer
        return good, end

    def replay_into(self, log: EventLog) -> int:
        """Emit file-mode events into the Redis stream once; returns how many were replayed."""
        offset_path = self.root / "replayed.offset"
        with self._locked():
            events, end = self.events(self._read(offset_path) or 0)
            for data in events:
                fields = {k: v for k, v in data.items() if k not in ("event", "from")}
                log.emit(data["event"], data.get("from") or data.get("owner", "fallback"), **fields)
            write_atomic(offset_path, json.dumps(end))
        return len(events)


class Degrader:
    """When to leave Redis for the volume, and whether Redis is back (see the module doc)."""

    def __init__(self, r: redis.Redis, degrade_after: float, *, interval: float = 0.2,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.r, self.degrade_after, self.interval = r, degrade_after, interval
        self.clock, self.sleep = clock, sleep

    def reachable(self) -> bool:
        """One PING without the client's retries."""
        try:
            with single_attempt():
                self.r.ping()
            return True
        except redis.exceptions.AuthenticationError:
            raise  # answering, but not to us: no volume can help with that
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return False

    def degrade(self) -> bool:
        """Called once the client's retries gave up: True when Redis stays unreachable for
        ``degrade_after`` seconds more (switch to file mode), False as soon as it answers."""
        until = self.clock() + self.degrade_after
        while not self.reachable():
            if self.clock() >= until:
                return True
            self.sleep(self.interval)
        return False
