"""Token ledger: atomic, idempotent by op_id, emergency reserve from a pool that is never overdrawn."""

import multiprocessing
import random

from runtime.coordination.connection import RedisSettings, connect
from runtime.coordination.events import EventLog
from runtime.coordination.keys import Keyspace
from runtime.coordination.ledger import Ledger, LedgerOp, init_reserve_pool

LARRYS = ["larry-01", "larry-02", "larry-03"]


def test_reserve_drawn_at_90_percent_with_alert(r, ks):
    init_reserve_pool(r, ks, 25_000)
    ledger = Ledger(r, ks, "larry-01", draw=25_000)
    ledger.set_limit(111_000)
    assert ledger.record("a", 99_000).ok
    assert ledger.snapshot()["emergency"] == 0
    assert ledger.record("b", 1_000).ok  # 100k >= 90 % of 111k
    snap = ledger.snapshot()
    assert snap["emergency"] == 25_000 and snap["pool"] == 0
    (alert,) = [e for e in EventLog(r, ks).history() if e.name == "token_reserve_deployed"]
    assert alert.channel == ks.alerts and alert.data["larry"] == "larry-01" and alert.data["amount"] == 25_000
    assert ledger.record("c", 36_000).ok  # beyond the original limit, within limit + reserve
    assert ledger.record("d", 1).status == "overrun"


def test_record_books_spent_tokens_once_and_answers_overrun_past_the_limit(r, ks):
    ledger = Ledger(r, ks, "larry-02", draw=0)
    assert ledger.record("spent-0", 5).status == "no_limit"
    ledger.set_limit(100)
    assert ledger.set_limit(999) == 100, "a restarted coordinator must not reset the budget"
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
        n = rnd.randint(1, 100)
        ledger.record(op, n)
        assert ledger.record(op, rnd.randint(1, 100)).replay, "a retried command must not charge twice"


def test_concurrent_processes_charge_once_and_never_overdraw_the_pool(r, ks, redis_server):
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
        assert len(ops) == 4 * 150, "an op lost or booked under two ids"
        assert snap["committed"] == sum(int(v.split(":")[1]) for v in ops.values()), "charged twice or lost"
        total_emergency += snap["emergency"]
    assert Ledger(r, ks, "larry-01").snapshot()["pool"] == pool - total_emergency >= 0
    assert total_emergency > 0, "the load never reached the 90 % threshold: the test proves nothing"


def test_one_overrun_alert_when_use_crosses_the_limit_not_one_per_record(r, ks):
    ledger = Ledger(r, ks, "larry-01", draw=0)
    ledger.set_limit(10)
    assert ledger.record("a", 10).ok
    for n in range(50):
        assert ledger.record(f"past-{n}", 1).status == "overrun"
    assert ledger.snapshot()["committed"] == 60
    assert [e.data["used"] for e in EventLog(r, ks).history() if e.name == "token_overrun"] == [11]


def untouched(r, ks, larry):
    """The ledger keys and the pool as they are in Redis, to compare before and after."""
    return r.mget([ks.tokens(larry, f) for f in ("limit", "reserved", "committed", "emergency")] + [ks.token_pool])


def test_an_amount_out_of_range_is_refused_before_anything_is_written(r, ks):
    init_reserve_pool(r, ks, 25_000)
    ledger = Ledger(r, ks, "larry-01", draw=25_000)
    ledger.set_limit(1000)
    assert ledger.record("a", 850).ok  # at 85 %: the next booking past 900 would draw the reserve
    before = untouched(r, ks, "larry-01")
    for amount in (10**30, 9223372036854775807, -1, 1.5, True, "7"):
        try:
            ledger.record(f"bad-{amount}", amount)
        except ValueError as error:
            assert "whole numbers from 0 to 1,000,000,000,000" in str(error)
        else:
            raise AssertionError(f"{amount!r} was booked")
    assert untouched(r, ks, "larry-01") == before


def test_the_script_checks_its_arguments_and_keys_before_its_first_write(r, ks):
    # What the Python side would never send still cannot move the reserve: Lua does not roll
    # back, so the script validates everything before DECRBY.
    init_reserve_pool(r, ks, 25_000)
    ledger = Ledger(r, ks, "larry-01", draw=25_000)
    ledger.set_limit(1000)
    assert ledger.record("a", 850).ok
    keys = [ks.tokens("larry-01", f) for f in ("limit", "reserved", "committed", "emergency", "ops")] + [ks.token_pool]
    before = untouched(r, ks, "larry-01")
    for amount in ("1" + "0" * 30, "9223372036854775807", "-5", "1e3", "abc", ""):
        status, detail = ledger._record(keys=keys, args=["larry-01", f"raw-{amount}", amount, 900, 25_000, 10**12])
        assert status == "invalid" and "the amount is not a whole number" in detail, (amount, status, detail)
    r.set(ks.tokens("larry-01", "committed"), "garbage")
    with_garbage = untouched(r, ks, "larry-01")
    try:
        ledger.record("after-garbage", 10)
    except ValueError as error:
        assert "holds garbage, expected a whole number" in str(error)
    else:
        raise AssertionError("a corrupt ledger key was booked against")
    assert untouched(r, ks, "larry-01") == with_garbage
    assert before[-1] == with_garbage[-1] == "25000", "the reserve pool was never touched"
    assert r.hlen(ks.tokens("larry-01", "ops")) == 1
