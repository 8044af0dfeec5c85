"""Atomic file writes: readers see the old file or the new one, never a part.

The content goes to a temp file in the same directory, is fsynced, and replaces the target
with ``os.replace``; on an exception nothing is left behind. Not guaranteed: durability of
the directory entry across a power loss (the directory is not fsynced), and atomicity on
file systems without an atomic rename (some network file systems).
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


@contextmanager
def atomic_file(path: str | Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces ``path`` when the block ends without an
    exception. ``mode`` defaults to world-readable, since other pods' users read results and
    reports on the shared volume; pass ``0o600`` for anything secret."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path, mode) as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
