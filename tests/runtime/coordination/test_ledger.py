"""Token ledger: atomic, idempotent by op_id, emergency reserve from a pool that is never overdrawn."""

import multiprocessing
import random

from runtime.coordination.connection import RedisSettings, connect
from runtime.coordination.events import EventLog
from runtime.coordination.keys import Keyspace
from runtime.coordination.ledger import Ledger, LedgerOp, init_reserve_pool

LARRYS = ["larry-01", "larry-02", "larry-03"]


def test_reserve_commit_refund_and_replays(r, ks):
    ledger = Ledger(r, ks, "larry-01", draw=0)
    assert ledger.reserve("op-1", 10).status == "no_limit"
    ledger.set_limit(100)
    assert ledger.set_limit(999) == 100, "a restarted coordinator must not reset the budget"
    assert ledger.reserve("op-1", 40) == LedgerOp("reserved", 40)
    replay = ledger.reserve("op-1", 40)
    assert replay.replay and replay.status == "reserved"
    assert ledger.snapshot()["reserved"] == 40
    assert ledger.commit("op-1", 25).status == "committed"
    assert ledger.commit("op-1", 25).replay
    assert ledger.refund("op-1").status == "committed" and ledger.refund("op-1").replay
    snap = ledger.snapshot()
    assert (snap["reserved"], snap["committed"], snap["available"]) == (0, 25, 75)
    assert ledger.reserve("op-2", 80).status == "insufficient" and ledger.reserve("op-2", 80).amount == 75
    assert ledger.reserve("op-3", 75).ok
    assert ledger.refund("op-3").status == "refunded"
    assert ledger.snapshot()["reserved"] == 0
    assert ledger.commit("never-reserved", 5).status == "unknown"
    assert ledger.refund("op-4").ok and ledger.reserve("op-4", 10).replay, "refund overtaking its reserve"
    assert r.get(ks.tokens("larry-01", "committed")) == "25"


def test_reserve_drawn_at_90_percent_with_alert(r, ks):
    init_reserve_pool(r, ks, 25_000)
    ledger = Ledger(r, ks, "larry-01", draw=25_000)
    ledger.set_limit(111_000)
    assert ledger.reserve("a", 99_000).ok
    assert ledger.snapshot()["emergency"] == 0
    assert ledger.reserve("b", 1_000).ok  # 100k >= 90 % of 111k
    snap = ledger.snapshot()
    assert snap["emergency"] == 25_000 and snap["pool"] == 0
    (alert,) = [e for e in EventLog(r, ks).history() if e.name == "token_reserve_deployed"]
    assert alert.channel == ks.alerts and alert.data["larry"] == "larry-01" and alert.data["amount"] == 25_000
    assert ledger.reserve("c", 36_000).ok  # beyond the original limit, within limit + reserve
    assert ledger.reserve("d", 1).status == "insufficient"


def test_record_books_spent_tokens_once_and_answers_overrun_past_the_limit(r, ks):
    ledger = Ledger(r, ks, "larry-02", draw=0)
    assert ledger.record("spent-0", 5).status == "no_limit"
    ledger.set_limit(100)
    assert ledger.record("spent-1", 60) == LedgerOp("committed", 60)
    assert ledger.record("spent-1", 60).replay, "a retried report must not charge twice"
    assert ledger.snapshot()["committed"] == 60
    overrun = ledger.record("spent-2", 50)
    assert (overrun.status, overrun.amount, overrun.ok) == ("overrun", -10, False)
    assert ledger.snapshot()["committed"] == 110, "spent is spent: booked even past the limit"
    (alert,) = [e for e in EventLog(r, ks).history() if e.name == "token_overrun"]
    assert alert.data["larry"] == "larry-02" and int(alert.data["used"]) == 110


def hammer(url, prefix, larry, seed, ops):
    r = connect(RedisSettings(url=url))
    ledger = Ledger(r, Keyspace(prefix=prefix), larry, draw=3_000)
    rnd = random.Random(seed)
    for i in range(ops):
        op = f"{seed}-{i}"
        n = rnd.randint(1, 400)
        if ledger.reserve(op, n).ok:
            ledger.reserve(op, n)  # a retried command must not charge twice
            choice = rnd.random()
            if choice < 0.7:
                ledger.commit(op, rnd.randint(0, n))
                ledger.commit(op, n)  # replayed with another amount: still the first commit counts
            else:
                ledger.refund(op)
                ledger.refund(op)


def test_concurrent_processes_never_exceed_limit_plus_pool(r, ks, redis_server):
    pool = 5_000
    init_reserve_pool(r, ks, pool)
    for larry in LARRYS:
        Ledger(r, ks, larry).set_limit(10_000)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=hammer, args=(redis_server.url, ks.prefix, LARRYS[i % 3], i, 150))
             for i in range(12)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * len(procs)

    total_emergency = 0
    for larry in LARRYS:
        snap = Ledger(r, ks, larry).snapshot()
        ops = r.hgetall(ks.tokens(larry, "ops"))
        committed = sum(int(v.split(":")[1]) for v in ops.values() if v.startswith("committed:"))
        reserved = sum(int(v.split(":")[1]) for v in ops.values() if v.startswith("reserved:"))
        assert snap["committed"] == committed and snap["reserved"] == reserved == 0, "charged twice or lost"
        assert snap["committed"] <= snap["limit"] + snap["emergency"]
        total_emergency += snap["emergency"]
    assert Ledger(r, ks, "larry-01").snapshot()["pool"] == pool - total_emergency >= 0
    assert total_emergency > 0, "the load never reached the 90 % threshold: the test proves nothing"
