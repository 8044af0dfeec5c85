"""One payload process for one task: start it, collect its output, stop it and everything it
started.

The payload is untrusted: it may leave children behind (``sleep 300 &``), hand its stdout to
a background tool (``nohup … &``), start new sessions (``setsid``, a daemon's double fork)
or ignore SIGTERM. None of that may outlive it. So the worker never starts the payload
directly but through a *keeper*: this very file run as a script (:func:`keep`), a small
process of its own session that

* makes itself a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)`` via ctypes), so every
  descendant the payload orphans — whatever session or process group it moved to — is
  re-parented to the keeper instead of init, and the keeper's process tree holds all of them;
* starts the payload and reaps every child (payload or adopted orphan) as it exits;
* once the payload has exited, SIGTERMs every descendant still there and SIGKILLs what is
  left after :data:`LEFTOVER_GRACE` s: children never outlive a payload that exits, even
  normally, and a child holding stdout cannot keep the worker reading;
* on SIGTERM (:meth:`PayloadProcess.stop`) forwards SIGTERM to every descendant; on SIGUSR1
  (the stop's grace ran out, or the worker died: ``PR_SET_PDEATHSIG``) SIGKILLs every
  descendant, as every process of a container dies with the container: a worker killed
  with -9 must not leave its payload running while the restarted worker runs the task again;
* exits the way the payload did (its status, or its signal), after the last descendant.

The worker side reads the payload's stdout until EOF, which comes once the keeper and every
descendant have exited; should a descendant survive even SIGKILL (uninterruptible sleep),
the reader is abandoned :data:`DRAIN_SECONDS` s after the keeper exited, and nothing it
reads later is reported.

Everything the worker has to react to arrives on one queue, in the order it happened:
``("line", text)`` for each line of stdout or of ``LARRY_PROTOCOL_FILE``, then exactly one
``("exit", returncode)`` after the last line (127: the payload could not be started). The
worker adds its own items (a lost lease) to the same queue, so it waits on one thing.

Not guaranteed: a keeper killed with SIGKILL itself (by the OOM killer, say) cannot clean
up; the payload's process group is SIGKILLed then, but descendants in other sessions are
re-parented to init. Without ``/proc`` and ``prctl`` (not Linux) only the payload's process
group is stopped.
"""
from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Mapping, Sequence

#: How often a protocol file is read for new lines while the payload runs.
FILE_POLL_SECONDS = 0.2
#: Seconds the payload's leftover descendants get between SIGTERM and SIGKILL once it exited.
LEFTOVER_GRACE = 1.0
#: Seconds the keeper waits for SIGKILLed descendants to go before it exits regardless.
KILL_WAIT = 5.0
#: Seconds the reader may still drain stdout after the keeper exited.
DRAIN_SECONDS = 2.0
#: What the keeper tells about itself on stderr.
LABEL = "larry payload keeper"

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
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
        self._lock = threading.Lock()
        self._exited = False

    def start(self) -> "PayloadProcess":
        keeper = [sys.executable, "-I", "-S", __file__, str(os.getpid()), "--", *self.command]
        self.proc = subprocess.Popen(
            keeper, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            text=True, bufsize=1, errors="replace", start_new_session=True, preexec_fn=die_with_parent)
        tail = threading.Thread(target=self._tail_file, daemon=True, name="payload-file")
        reader = threading.Thread(target=self._read_stdout, daemon=True, name="payload-stdout")
        tail.start()
        reader.start()
        threading.Thread(target=self._wait, args=(reader, tail), daemon=True, name="payload-wait").start()
        return self

    def _put_line(self, line: str) -> None:
        with self._lock:
            if not self._exited:
                self.events.put(("line", line))

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._put_line(line.rstrip("\n"))

    def _wait(self, reader: threading.Thread, tail: threading.Thread) -> None:
        code = self.proc.wait()
        reader.join(DRAIN_SECONDS)
        self._file_done.set()
        tail.join()
        with self._lock:
            self._exited = True
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
                self._put_line(line)
            if done:
                if partial:
                    self._put_line(partial)
                return

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float) -> None:
        """SIGTERM to the payload and everything it started; SIGKILL to all of it if anything
        is still there after ``grace`` s. Returns once the keeper has exited."""
        if self.proc is None:
            return
        for signum, wait in ((signal.SIGTERM, grace), (signal.SIGUSR1, KILL_WAIT + 1)):
            self._signal(signum)
            try:
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                pass
        self._signal(signal.SIGKILL, group=True)  # a keeper that does not answer: its group at least
        self.proc.wait()

    def _signal(self, signum: int, group: bool = False) -> None:
        if self.proc.returncode is not None:
            return  # reaped: its pid (and group id) may already belong to another process
        try:
            if group:
                os.killpg(self.proc.pid, signum)
            else:
                self.proc.send_signal(signum)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------- the keeper
# Runs as ``python -I -S payload.py PARENT_PID -- COMMAND...``: the standard library only.

_WATCHED = {signal.SIGCHLD, signal.SIGTERM, signal.SIGUSR1}


def descendants(root: int, proc: Path = Path("/proc")) -> list[int]:
    """Every process below ``root`` in the process tree, read from ``/proc`` (empty without it)."""
    children: dict[int, list[int]] = {}
    try:
        entries = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            stat = (proc / entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def _signal_all(signum: int) -> None:
    for pid in descendants(os.getpid()):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _reap(payload: int) -> tuple[int | None, bool]:
    """Reap every exited child: (the payload's wait status if it was among them, whether
    any child is left)."""
    status = None
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status, False
        if pid == 0:
            return status, True
        if pid == payload:
            status = wait_status


def _exit_like(status: int) -> None:
    """Exit with the payload's status, or die of the signal it died of."""
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        if -code != signal.SIGKILL:
            signal.signal(-code, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {-code})
        os.kill(os.getpid(), -code)
        code = 128 - code  # only if that signal does not end a process
    os._exit(code)


def keep(parent: int, command: list[str]) -> None:
    """The keeper's life (see the module doc); never returns."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
    if _prctl is not None:
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        _prctl(_PR_SET_PDEATHSIG, signal.SIGUSR1)
    if os.getppid() != parent:
        os._exit(1)  # the worker died before we could notice: start nothing
    try:
        payload = os.posix_spawnp(command[0], command, os.environ, setsigmask=())
    except OSError as exc:
        print(f"{LABEL}: cannot start payload {command[0]!r}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        os._exit(127)
    status: int | None = None
    killing_since: float | None = None
    deadline: float | None = None
    while True:
        reaped, left = _reap(payload)
        if reaped is not None:
            status = reaped
            _signal_all(signal.SIGTERM)  # what the payload left behind
            deadline = time.monotonic() + LEFTOVER_GRACE
        if status is not None and not left:
            _exit_like(status)
        now = time.monotonic()
        if deadline is not None and now >= deadline and killing_since is None:
            killing_since = now
        if killing_since is not None:
            if now - killing_since > KILL_WAIT:
                os._exit(1 if status is None else 137)  # unkillable descendants: give up on them
            _signal_all(signal.SIGKILL)  # again each round: a descendant may have forked meanwhile
            wait = 0.05
        else:
            wait = None if deadline is None else max(0.0, deadline - now)
        got = signal.sigtimedwait(_WATCHED, wait) if wait is not None else signal.sigwaitinfo(_WATCHED)
        signum = got.si_signo if got is not None else None
        if signum == signal.SIGTERM:
            _signal_all(signal.SIGTERM)
        elif signum == signal.SIGUSR1 and killing_since is None:
            killing_since = time.monotonic()


if __name__ == "__main__":
    keep(int(sys.argv[1]), sys.argv[3:])
