"""The suite's bounded waits fail fast and say why (issue 11 item 16: a test once blocked for
10 minutes in recv() after its child had died)."""

import os
import signal
import sys
import time

import pytest

from tests.support.waiting import Child, ChildFailed, WaitTimeout, wait_for


def dies_before_sending(conn):
    print("about to fail")
    raise RuntimeError("boom in the child")


def waits_forever(conn):
    conn.recv()


def sends(conn, value):
    conn.send(value)


def test_a_child_that_dies_fails_recv_at_once_with_its_output(tmp_path):
    child = Child("doomed", dies_before_sending, log_dir=tmp_path)
    started = time.monotonic()
    with pytest.raises(ChildFailed) as failure:
        child.recv("its lease", timeout=60)
    assert time.monotonic() - started < 10, "the parent waited on a dead child"
    message = str(failure.value)
    assert "doomed" in message and "exited with code 1 before sending its lease" in message
    assert "about to fail" in message and "RuntimeError: boom in the child" in message


def test_a_killed_child_is_eof_not_a_hang(tmp_path):
    child = Child("killed", waits_forever, log_dir=tmp_path)
    os.kill(child.pid, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(ChildFailed, match=r"exited with code -9 before sending the answer"):
        child.recv("the answer", timeout=60)
    assert time.monotonic() - started < 10


def test_gather_fails_on_the_first_dead_child_while_others_still_run(tmp_path):
    children = [Child("slow", waits_forever, log_dir=tmp_path), Child("doomed", dies_before_sending, log_dir=tmp_path)]
    try:
        started = time.monotonic()
        with pytest.raises(ChildFailed, match=r"doomed \(pid \d+\) exited with code 1 before sending its runs"):
            Child.gather(children, "its runs", timeout=60)
        assert time.monotonic() - started < 10
    finally:
        for child in children:
            child.stop()
    assert not children[0].process.is_alive()


def test_gather_returns_each_childs_message_in_order(tmp_path):
    children = [Child(f"c{n}", sends, n, log_dir=tmp_path) for n in range(3)]
    assert Child.gather(children, "its number", timeout=30) == [0, 1, 2]
    assert [c.join("exit", timeout=10) for c in children] == [0, 0, 0]


def test_a_silent_child_times_out_naming_what_was_awaited(tmp_path):
    child = Child("silent", waits_forever, log_dir=tmp_path)
    try:
        with pytest.raises(ChildFailed, match=r"timed out after 0.3 s waiting for the go-ahead from silent"):
            child.recv("the go-ahead", timeout=0.3)
    finally:
        child.stop()


def test_wait_for_returns_the_value_or_names_what_never_happened():
    assert wait_for(lambda: 42, "the answer") == 42
    with pytest.raises(WaitTimeout, match=r"timed out after 0.1 s waiting for the sky to fall \(last error: nope\)"):
        wait_for(lambda: (_ for _ in ()).throw(OSError("nope")), "the sky to fall", timeout=0.1, ignore=(OSError,))
    with pytest.raises(ZeroDivisionError):
        wait_for(lambda: 1 / 0, "an unexpected error to propagate", ignore=(OSError,))


def test_child_output_is_kept_apart_from_the_parents(tmp_path, capfd):
    child = Child("talker", lambda conn: (print("from the child"), print("err", file=sys.stderr)), log_dir=tmp_path)
    assert child.join("exit", timeout=10) == 0
    assert "from the child" in child.output() and "err" in child.output()
    assert "from the child" not in capfd.readouterr().out
