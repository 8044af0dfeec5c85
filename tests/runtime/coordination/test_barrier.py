"""Barrier woken by events: release on the last arrival, idempotent arrivals, restart safety, timeout."""

import threading
import time

import pytest
import redis

from runtime.coordination.barrier import Barrier, BarrierTimeout
from runtime.coordination.events import EventLog

LARRYS = ["larry-01", "larry-02", "larry-03"]


def test_released_by_the_last_arrival_not_before(r, ks):
    barrier = Barrier(r, ks, "convergence", LARRYS)
    released_at, arrived_at = [], {}

    def waiter():
        barrier.wait(timeout=20)
        released_at.append(time.monotonic())

    thread = threading.Thread(target=waiter)
    thread.start()
    for larry in LARRYS:
        time.sleep(0.2)
        assert not released_at, f"released before {larry} arrived"
        arrived_at[larry] = time.monotonic()
        Barrier(r, ks, "convergence", LARRYS).arrive(larry)
    thread.join(20)
    assert released_at and released_at[0] >= arrived_at["larry-03"]
    # Woken by the event, not a poll: far below the seed's 5 s sleep (bench measures the real latency).
    assert released_at[0] - arrived_at["larry-03"] < 1.0
    events = [e.name for e in EventLog(r, ks).history()]
    assert events.count("barrier_arrival") == 3 and events.count("barrier_released") == 1


def test_arrivals_are_idempotent(r, ks):
    barrier = Barrier(r, ks, "convergence", LARRYS)
    assert barrier.arrive("larry-01") is False
    assert barrier.arrive("larry-01") is False
    assert barrier.missing() == ["larry-02", "larry-03"]
    barrier.arrive("larry-02")
    assert barrier.arrive("larry-03") is True and barrier.arrive("larry-03") is True
    events = [e.name for e in EventLog(r, ks).history()]
    assert events.count("barrier_arrival") == 3 and events.count("barrier_released") == 1


def test_timeout_names_the_missing(r, ks):
    barrier = Barrier(r, ks, "convergence", LARRYS)
    barrier.arrive("larry-02")
    with pytest.raises(BarrierTimeout) as caught:
        barrier.wait(timeout=0.3)
    assert caught.value.missing == ["larry-01", "larry-03"]
    assert "larry-01, larry-03 not arrived" in str(caught.value)


def test_restarted_waiter_returns_at_once_when_everyone_already_arrived(r, ks):
    for larry in LARRYS:
        Barrier(r, ks, "convergence", LARRYS).arrive(larry)
    started = time.monotonic()
    Barrier(r, ks, "convergence", LARRYS).wait(timeout=5)  # a new process: state lives in Redis
    assert time.monotonic() - started < 1.0


def test_waiter_reasserts_its_own_arrival_lost_in_a_failover(r, ks):
    mine = Barrier(r, ks, "convergence", ["larry-01", "larry-02"])
    mine.arrive("larry-01")
    r.srem(ks.barrier_arrived("convergence"), "larry-01")  # as if a rolled-back write
    threading.Timer(0.2, lambda: Barrier(r, ks, "convergence", ["larry-01", "larry-02"]).arrive("larry-02")).start()
    mine.wait(timeout=5)
    assert mine.missing() == []


def test_unknown_participant_is_refused(r, ks):
    with pytest.raises(ValueError):
        Barrier(r, ks, "convergence", LARRYS).arrive("larry-99")


def _calls(r, command: str) -> int:
    return int(r.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def test_cost_stays_flat_per_participant(r, ks):
    """A 300-participant barrier: each arrival is one SADD and one SCARD (no check of every
    participant), and the waiter, woken by the release alone, never reads the arrived set."""
    everyone = [f"larry-{i:03d}" for i in range(300)]
    waiter = Barrier(r, ks, "wide", everyone)
    thread = threading.Thread(target=waiter.wait, kwargs={"timeout": 30})
    thread.start()
    time.sleep(0.2)
    r.config_resetstat()
    arriving = Barrier(r, ks, "wide", everyone)
    for participant in everyone:
        arriving.arrive(participant)
    thread.join(30)
    assert not thread.is_alive(), "the waiter was not released"
    assert _calls(r, "sismember") == 0 and _calls(r, "smembers") == 0
    assert _calls(r, "sadd") == 300 and _calls(r, "scard") == 300
    assert _calls(r, "exists") <= 5, "the waiter checked the release more than a few times"


def test_the_script_refuses_a_participant_count_that_is_not_a_whole_number(r, ks):
    barrier = Barrier(r, ks, "convergence", LARRYS)
    for bad in ("0", "-3", "2.5", "many"):
        with pytest.raises(redis.exceptions.ResponseError, match="number of participants must be a whole number"):
            barrier._arrive(keys=[ks.barrier_arrived("convergence"), ks.barrier_released("convergence")],
                            args=["larry-01", "convergence", bad])
    assert r.exists(ks.barrier_arrived("convergence")) == 0, "a refused arrival wrote"
