"""Bounded waits for tests: on a condition, on a thread's result, on child processes.

Every wait names what it waits for and fails after its timeout with one message saying what
did not happen, after how long, and the last error seen. A fixed sleep is either too short
on a busy machine or wasted time on an idle one; these return as soon as the condition holds.

Child processes (fork) talk to the test over a pipe whose ends each side closes in the
other: a child that dies makes the parent's read end report EOF at once instead of blocking
forever, and its stdout/stderr go to a file that the failure message quotes. Not guaranteed:
that a child stopped with SIGSTOP is noticed before the timeout (it is alive, just silent).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import traceback
from multiprocessing.connection import wait as wait_any
from pathlib import Path
from typing import Callable

_fork = multiprocessing.get_context("fork")


class WaitTimeout(AssertionError):
    """A bounded wait ran out: the awaited condition never held."""


def wait_for(condition: Callable, what: str, timeout: float = 20.0, *, interval: float = 0.02, ignore=()):
    """Call ``condition`` until it returns something truthy and return that; raise
    :class:`WaitTimeout` naming ``what`` after ``timeout`` seconds. Exceptions of the
    ``ignore`` types count as "not yet" (the last one is quoted on timeout); others propagate."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except ignore as error:
            last_error = error
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what} (last error: {last_error})")
        time.sleep(interval)


class ChildFailed(AssertionError):
    """A child process died, or did not answer in time; the message carries its output."""


class Child:
    """``target(conn, *args)`` in a forked process; ``conn`` is the child's end of a pipe.

    The parent's :meth:`recv`, :meth:`gather` and :meth:`join` are bounded and fail at once,
    with the child's output, when the child dies without sending what was awaited.
    """

    def __init__(self, name: str, target: Callable, *args, log_dir: Path):
        self.name, self.log = name, Path(log_dir) / f"{name}.log"
        self.conn, theirs = _fork.Pipe()
        self.process = _fork.Process(target=_child_main, args=(target, theirs, self.conn, self.log, args),
                                     name=name, daemon=True)
        self.process.start()
        theirs.close()  # only the child holds its end now: its death is EOF here

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(no output)"
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:]) or "(no output)"

    def _died(self, what: str) -> ChildFailed:
        self.process.join(5)
        return ChildFailed(f"{self.name} (pid {self.pid}) exited with code {self.process.exitcode} "
                           f"before {what}; its output:\n{self.output()}")

    def send(self, message) -> None:
        self.conn.send(message)

    def recv(self, what: str, timeout: float = 20.0):
        """The child's next message, or a failure naming ``what`` once it died or ``timeout`` passed."""
        if not self.conn.poll(timeout):
            if not self.process.is_alive():
                raise self._died(f"sending {what}")
            raise ChildFailed(f"timed out after {timeout:g} s waiting for {what} from {self.name} "
                              f"(pid {self.pid}, still running); its output:\n{self.output()}")
        try:
            return self.conn.recv()
        except EOFError:
            raise self._died(f"sending {what}") from None

    def join(self, what: str, timeout: float = 20.0) -> int:
        """Wait for the child to exit; fail if it is still running after ``timeout`` (it is then killed)."""
        self.process.join(timeout)
        if self.process.is_alive():
            self.stop()
            raise ChildFailed(f"timed out after {timeout:g} s waiting for {self.name} (pid {self.pid}) to {what}; "
                              f"its output:\n{self.output()}")
        return self.process.exitcode

    def stop(self) -> None:
        """Kill the child if it still runs (a test's cleanup: never leave one behind)."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()

    @staticmethod
    def gather(children: list["Child"], what: str, timeout: float) -> list:
        """One message from each child, in their order; the first child to die without sending
        fails the test at once (not when its turn comes), and so does the timeout."""
        results: dict[int, object] = {}
        deadline = time.monotonic() + timeout
        while len(results) < len(children):
            pending = [c for i, c in enumerate(children) if i not in results]
            left = deadline - time.monotonic()
            if left <= 0:
                names = ", ".join(c.name for c in pending)
                raise ChildFailed(f"timed out after {timeout:g} s waiting for {what} from {names}; output of "
                                  f"{pending[0].name}:\n{pending[0].output()}")
            ready = wait_any([c.conn for c in pending] + [c.process.sentinel for c in pending], left)
            for child in pending:
                if child.conn in ready or (child.process.sentinel in ready and child.conn.poll(0)):
                    try:
                        results[children.index(child)] = child.conn.recv()
                    except EOFError:
                        raise child._died(f"sending {what}") from None
                elif child.process.sentinel in ready:
                    raise child._died(f"sending {what}")
        return [results[i] for i in range(len(children))]


def _child_main(target, conn, parents_end, log: Path, args) -> None:
    parents_end.close()  # the parent's death must be EOF here too
    # fds for what the child execs, sys.* for Python (pytest replaced them with its capture)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = sys.stderr = open(log, "a", buffering=1)
    try:
        target(conn, *args)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
