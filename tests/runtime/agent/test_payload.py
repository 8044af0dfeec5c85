"""One payload process: its lines and exit on one queue, in order; stopping it stops what it started."""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import time

import pytest

from runtime.agent.payload import LEFTOVER_GRACE, PayloadProcess
from tests.support.project import ROOT

WAIT = 20.0


def items_until_exit(events: queue.Queue, timeout: float = WAIT) -> list[tuple[str, object]]:
    """Every item up to and including ("exit", code); fails naming what was seen if it takes longer."""
    seen: list = []
    until = time.monotonic() + timeout
    while not seen or seen[-1][0] != "exit":
        try:
            seen.append(events.get(timeout=max(0.01, until - time.monotonic())))
        except queue.Empty:
            pytest.fail(f"no ('exit', code) within {timeout} s; seen {seen}")
    return seen


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def start(command: list[str], tmp_path, env=None) -> tuple[PayloadProcess, queue.Queue]:
    events: queue.Queue = queue.Queue()
    payload = PayloadProcess(command, {**os.environ, **(env or {})}, tmp_path / "protocol.log", events).start()
    return payload, events


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead for our purpose
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_stdout_lines_then_exactly_one_exit_with_the_status(tmp_path):
    _, events = start(python("print('one'); print('@larry {\"tokens\": 3}'); raise SystemExit(4)"), tmp_path)
    assert items_until_exit(events) == [("line", "one"), ("line", '@larry {"tokens": 3}'), ("exit", 4)]
    assert events.empty()


def test_protocol_file_lines_arrive_before_the_exit_including_a_last_unterminated_one(tmp_path):
    code = ("import os; f = open(os.environ['PF'], 'a'); f.write('@larry {\"progress\": 50}\\n'); "
            "f.write('@larry {\"progress\": 90}'); f.close()")
    _, events = start(python(code), tmp_path, {"PF": str(tmp_path / "protocol.log")})
    assert items_until_exit(events) == [("line", '@larry {"progress": 50}'), ("line", '@larry {"progress": 90}'),
                                        ("exit", 0)]


def test_a_payload_that_cannot_start_reports_exit_127(tmp_path):
    payload, events = start([str(tmp_path / "no-such-agent")], tmp_path)
    assert items_until_exit(events) == [("exit", 127)]
    assert not payload.running


def test_stop_terminates_the_payload_and_its_process_group(tmp_path):
    code = ("import subprocess, sys, time; child = subprocess.Popen(['sleep', '300']); "
            "print(child.pid, flush=True); time.sleep(300)")
    payload, events = start(python(code), tmp_path)
    kind, child = events.get(timeout=WAIT)
    assert kind == "line"
    assert payload.running
    payload.stop(grace=5)
    assert items_until_exit(events)[-1] == ("exit", -15)
    until = time.monotonic() + WAIT
    while alive(int(child)):
        assert time.monotonic() < until, "the payload's child survived stop()"
        time.sleep(0.02)


def test_stop_kills_a_payload_that_ignores_sigterm_after_the_grace(tmp_path):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(300)"
    payload, events = start(python(code), tmp_path)
    assert events.get(timeout=WAIT) == ("line", "ready")
    began = time.monotonic()
    payload.stop(grace=0.3)
    assert items_until_exit(events)[-1] == ("exit", -9)
    assert time.monotonic() - began < 5


# ---- nothing the payload started outlives it (issue 11 item 4)

def wait_dead(pid: int, what: str, timeout: float = WAIT) -> None:
    until = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < until, f"{what} (pid {pid}) still alive {timeout} s after the payload ended"
        time.sleep(0.02)


def wait_own_session(pid: int) -> None:
    """Until ``pid`` leads a session of its own (setsid done): it has left the payload's group."""
    until = time.monotonic() + WAIT
    while True:
        with open(f"/proc/{pid}/stat") as stat:
            if int(stat.read().rsplit(")", 1)[1].split()[3]) == pid:
                return
        assert time.monotonic() < until, f"pid {pid} never called setsid"
        time.sleep(0.01)


def first_line(events: queue.Queue) -> str:
    kind, value = events.get(timeout=WAIT)
    assert kind == "line", (kind, value)
    return value


def test_a_child_holding_stdout_does_not_hang_the_reader_and_is_stopped(tmp_path):
    # `sleep 300 &` inherits stdout: before, the worker waited for EOF until the sleep ended
    _, events = start(["sh", "-c", "sleep 300 & echo $!"], tmp_path)
    child = int(first_line(events))
    began = time.monotonic()
    assert items_until_exit(events, timeout=10) == [("exit", 0)]
    assert time.monotonic() - began < 5
    wait_dead(child, "the background child holding stdout")


def test_children_do_not_outlive_a_payload_that_exits_normally(tmp_path):
    _, events = start(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], tmp_path)
    child = int(first_line(events))
    assert items_until_exit(events) == [("exit", 0)]
    wait_dead(child, "the payload's orphan", timeout=LEFTOVER_GRACE + 5)


ESCAPE = "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!; sleep 300"


def test_stop_reaches_a_descendant_in_a_session_of_its_own(tmp_path):
    # setsid leaves the payload's process group and session: killpg alone never reached it
    payload, events = start(["sh", "-c", ESCAPE], tmp_path)
    escaped = int(first_line(events))
    wait_own_session(escaped)
    payload.stop(grace=2)
    assert items_until_exit(events)[-1] == ("exit", -15)
    wait_dead(escaped, "the descendant in its own session")


def test_a_double_forked_daemon_is_stopped_when_the_payload_exits(tmp_path):
    # The payload exits only once its daemon runs and has said so: a payload that exits first
    # has its leftovers stopped at once, maybe before the daemon printed anything (seen under load).
    daemon = ("import os, time\nr, w = os.pipe()\nif os.fork():\n    os.close(w); os.read(r, 1); os._exit(0)\n"
              "os.setsid(); print(os.getpid(), flush=True); os.write(w, b'x'); time.sleep(300)")
    _, events = start([sys.executable, "-c", daemon], tmp_path)
    pid = int(first_line(events))
    assert items_until_exit(events) == [("exit", 0)]
    wait_dead(pid, "the daemon")


WORKER = f"""
import os, queue, sys
from pathlib import Path
from runtime.agent.payload import LEFTOVER_GRACE, PayloadProcess
from tests.support.project import ROOT
events = queue.Queue()
PayloadProcess(["sh", "-c", {ESCAPE!r}], dict(os.environ), Path(sys.argv[1]), events).start()
print(events.get(timeout=20)[1], flush=True)
events.get()
"""


def test_everything_the_payload_started_dies_with_a_worker_killed_with_sigkill(tmp_path):
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "p.log")], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        escaped = int(worker.stdout.readline())
        wait_own_session(escaped)
        worker.send_signal(signal.SIGKILL)
        worker.wait(WAIT)
        wait_dead(escaped, "the payload's descendant in its own session")
    finally:
        worker.kill()
        worker.wait()
        worker.stdout.close()
