"""One payload process: its lines and exit on one queue, in order; stopping it stops what it started."""
from __future__ import annotations

import os
import queue
import sys
import time

import pytest

from runtime.agent.payload import PayloadProcess

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
