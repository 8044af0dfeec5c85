"""A worker's outbox to the catalog on the coordination volume (seed 004 risk 4: "Workers
buffer results locally" while the Catalog API is down).

Every batch of assets a worker reports is appended to ``{results}/catalog-outbox-{worker}.jsonl``
(fsynced) before it is sent; a sender thread sends the pending batches in order and removes
each from the file once the catalog has accepted it. While the catalog is unreachable the
batches stay in the file and the sender tries again with backoff (capped at
:data:`MAX_BACKOFF` s); a restarted worker, or ``larry catalog replay``, sends what an earlier
process left.

Guaranteed: nothing accepted by :meth:`CatalogOutbox.put` is lost while the volume keeps the
file, and nothing is duplicated in the catalog: a batch sent again (the process died between
the catalog's answer and the file's rewrite, or the answer was lost) is an idempotent upsert
by natural key. Every rewrite of the file is atomic, and appends and rewrites of all processes
sharing the volume are serialised by ``flock`` on a lock file beside it.
Not guaranteed: progress reports are not buffered (only the latest one is kept in memory and
sent when the catalog answers: a status is stale once a newer one exists); a batch the catalog
rejects as invalid (another version's schema) is logged and dropped, since sending it again
cannot help.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from runtime.catalog.assets import Asset
from runtime.catalog.client import CatalogClient, CatalogRejected, CatalogUnavailable, asset_input
from runtime.support.files import write_atomic

log = logging.getLogger(__name__)

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 10.0


def outbox_path(results: Path, worker: str) -> Path:
    return Path(results) / f"catalog-outbox-{worker}.jsonl"


class CatalogOutbox:
    def __init__(self, path: Path, client: CatalogClient, label: str = ""):
        self.path, self.client, self.label = Path(path), client, label
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._progress: dict[str, Any] | None = None
        self._progress_lock = threading.Lock()
        #: one flush at a time (the sender thread's and a closing worker's)
        self._sending = threading.Lock()
        self._thread: threading.Thread | None = None
        self._down_since: float | None = None
        self.sent = 0

    # ---- what the worker calls
    def put(self, assets: list[Asset], discovered_by: str) -> None:
        """Append one batch (durable once this returns) and wake the sender."""
        line = json.dumps({"assets": [asset_input(a, discovered_by) for a in assets]}, separators=(",", ":"))
        with self._locked():
            with self.path.open("a+b") as handle:
                handle.seek(0, os.SEEK_END)
                if handle.tell():  # a line cut short by a crash mid-append stays a line of its own
                    handle.seek(-1, os.SEEK_END)
                    if handle.read(1) != b"\n":
                        handle.write(b"\n")
                handle.write(line.encode() + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
        self._wake.set()

    def progress(self, status: dict[str, Any]) -> None:
        """The worker's latest status (validated), sent when the catalog next answers."""
        with self._progress_lock:
            self._progress = status
        self._wake.set()

    def pending(self) -> int:
        return len(self._lines())

    def start(self) -> "CatalogOutbox":
        self._thread = threading.Thread(target=self._run, name="catalog-outbox", daemon=True)
        self._thread.start()
        self._wake.set()  # what an earlier incarnation left
        return self

    def close(self, drain_seconds: float) -> int:
        """Stop the sender after trying for up to ``drain_seconds`` to send what is pending;
        the number of batches left in the file."""
        deadline = time.monotonic() + drain_seconds
        while not self.flush() and time.monotonic() < deadline:
            time.sleep(min(FIRST_BACKOFF, max(0.0, deadline - time.monotonic())))
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.client.timeout * 2 + 1)
        left = self.pending()
        if left:
            log.warning("%s%d batch(es) of assets stay buffered in %s (the catalog did not answer); "
                        "`larry catalog replay` or the worker's next start sends them", self.label, left, self.path)
        return left

    # ---- sending
    def flush(self) -> bool:
        """Send the latest progress and every pending batch, in order; True once nothing is pending."""
        with self._sending:
            return self._flush()

    def _flush(self) -> bool:
        try:
            with self._progress_lock:
                status, self._progress = self._progress, None
            if status is not None:
                try:
                    self.client.report_progress(status)
                except CatalogUnavailable:
                    with self._progress_lock:
                        self._progress = self._progress or status  # unless a newer one came meanwhile
                    raise
            for line in self._lines():
                try:
                    self.client.add_assets(json.loads(line)["assets"])
                except CatalogRejected as error:
                    log.error("%sthe catalog rejected a buffered batch of assets, dropping it: %s", self.label, error)
                self._remove_first(line)
                self.sent += 1
        except CatalogUnavailable as error:
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning("%scatalog unreachable (%s); buffering assets in %s", self.label, error, self.path)
            return False
        except CatalogRejected as error:
            log.error("%sthe catalog rejected a progress report: %s", self.label, error)
        if self._down_since is not None:
            log.warning("%scatalog answers again after %.1f s; the buffered assets are replayed", self.label,
                        time.monotonic() - self._down_since)
            self._down_since = None
        return not self._lines()

    def _run(self) -> None:
        backoff = FIRST_BACKOFF
        while not self._stop.is_set():
            self._wake.wait(backoff if self._down_since is not None else None)
            self._wake.clear()
            if self._stop.is_set():
                return
            backoff = FIRST_BACKOFF if self.flush() else min(backoff * 2, MAX_BACKOFF)

    # ---- the file
    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _lines(self) -> list[str]:
        if not self.path.exists():  # nothing ever buffered: no lock file either
            return []
        with self._locked():
            try:
                text = self.path.read_text(encoding="utf-8")
            except FileNotFoundError:
                return []
        # A line cut short by a crash mid-append was never acknowledged to the worker.
        return [line for line in text.splitlines() if _complete(line)]

    def _remove_first(self, line: str) -> None:
        """Drop ``line``, the file's first pending batch, and any cut-short line before it
        (appends only add at the end, so it is still the first)."""
        with self._locked():
            lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
            for i, text in enumerate(lines):
                if text.rstrip("\n") == line:
                    write_atomic(self.path, "".join(lines[i + 1:]))
                    return


def _complete(line: str) -> bool:
    try:
        return isinstance(json.loads(line).get("assets"), list)
    except (ValueError, AttributeError):
        return False
