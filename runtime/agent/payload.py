"""One payload process for one task: start it, collect its output, stop it.

The payload runs in its own process group, so stopping it (SIGTERM, then SIGKILL after a
grace period) also stops whatever it started: an agent's tool calls, a shell's children. On
Linux it also gets SIGKILL when the worker dies (PR_SET_PDEATHSIG), as every process of a
container does when the container dies: a worker killed with -9 must not leave its payload
running on while the restarted worker runs the task again.

Everything the worker has to react to arrives on one queue, in the order it happened:
``("line", text)`` for each line of stdout or of ``LARRY_PROTOCOL_FILE``, then exactly one
``("exit", returncode)`` after the last line. The worker adds its own items (a lost lease)
to the same queue, so it waits on one thing.
"""
from __future__ import annotations

import ctypes
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Mapping, Sequence

log = logging.getLogger(__name__)

#: How often a protocol file is read for new lines while the payload runs.
FILE_POLL_SECONDS = 0.2

_PR_SET_PDEATHSIG = 1
_prctl = None
if sys.platform.startswith("linux"):
    try:
        # Resolved now, not in the child: after fork only async-signal-safe work is wise.
        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        _prctl = None


def die_with_parent() -> None:
    """``preexec_fn`` of a child that must not outlive this process (Linux; elsewhere a no-op)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class PayloadProcess:
    def __init__(self, command: Sequence[str], env: Mapping[str, str], protocol_file: Path,
                 events: "queue.Queue[tuple[str, object]]", label: str = ""):
        self.command, self.env, self.protocol_file = list(command), dict(env), protocol_file
        self.events, self.label = events, label
        self.proc: subprocess.Popen | None = None
        self._file_done = threading.Event()

    def start(self) -> "PayloadProcess":
        try:
            self.proc = subprocess.Popen(
                self.command, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                text=True, bufsize=1, errors="replace", start_new_session=True, preexec_fn=die_with_parent)
        except OSError as exc:
            # A payload that cannot start is reported like one that failed at once.
            log.error("%scannot start payload %r: %s", self.label, self.command[0], exc.strerror or exc)
            self.events.put(("exit", 127))
            return self
        tail = threading.Thread(target=self._tail_file, daemon=True, name="payload-file")
        tail.start()
        threading.Thread(target=self._read_stdout, args=(tail,), daemon=True, name="payload-stdout").start()
        return self

    def _read_stdout(self, tail: threading.Thread) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(("line", line.rstrip("\n")))
        code = self.proc.wait()
        self._file_done.set()
        tail.join()
        self.events.put(("exit", code))

    def _tail_file(self) -> None:
        position = 0
        partial = ""
        while True:
            done = self._file_done.wait(FILE_POLL_SECONDS)
            try:
                with open(self.protocol_file, encoding="utf-8", errors="replace") as handle:
                    handle.seek(position)
                    chunk = handle.read()
                    position = handle.tell()
            except FileNotFoundError:
                chunk = ""
            # Only whole lines count: the payload may be half-way through writing one.
            *lines, partial = (partial + chunk).split("\n")
            for line in lines:
                self.events.put(("line", line))
            if done:
                if partial:
                    self.events.put(("line", partial))
                return

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float) -> None:
        """SIGTERM to the payload's process group; SIGKILL if it is still there after ``grace`` s."""
        if self.proc is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait()

    def _signal(self, signum: int) -> None:
        if self.proc.returncode is not None:
            return  # reaped: its pid (and group id) may already belong to another process
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            pass
