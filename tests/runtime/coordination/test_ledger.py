"""Token ledger over the account tree: one script books on every level, idempotent by op id,
reservations never past a limit, the reserve lent from a pool that is never overdrawn."""

import json
import multiprocessing
import os
import random
import threading
import time

import pytest

from plan.model import PRIORITIES, Account, account_path, meta_account
from runtime.coordination.connection import RedisSettings, connect
from runtime.coordination.events import EventLog
from runtime.coordination.keys import Keyspace
from runtime.coordination.ledger import FIELDS, Ledger, LedgerOp

RESERVE = meta_account("reserve")


def tree(larrys=1, masters=1, workers=1, *, system=10_000, larry=600, personal=100, pool=200, worker=150,
         reserve=100, meta=100) -> dict[str, Account]:
    """A plan's account tree: per Larry ``masters`` masters with ``workers`` workers each, and
    one worker that names no master."""
    accounts = [Account("system", "system", system, None),
                Account(meta_account("orchestration"), "orchestration", meta, "system"),
                Account(meta_account("pool"), "meta-pool", meta, "system"),
                Account(RESERVE, "reserve", reserve, "system")]
    for li in range(larrys):
        lid = f"L{li}"
        accounts.append(Account(lid, "larry", larry, "system"))
        for mi in range(masters):
            accounts.append(Account(f"{lid}/m{mi}/personal", "personal", personal, lid))
            accounts.append(Account(f"{lid}/m{mi}/pool", "pool", pool, lid))
            accounts += [Account(f"{lid}/m{mi}w{wi}", "worker", worker, f"{lid}/m{mi}/pool") for wi in range(workers)]
        accounts.append(Account(f"{lid}/free", "worker", worker, lid))
    return {a.name: a for a in accounts}


def figures(r, ks, accounts) -> dict[str, dict[str, int]]:
    """Every account's stored figures, read in one transaction (a consistent cut)."""
    pipe = r.pipeline(transaction=True)
    for name in accounts:
        pipe.hmget(ks.token_account(name), FIELDS)
    return {name: {f: int(v or 0) for f, v in zip(FIELDS, raw)} for name, raw in zip(accounts, pipe.execute())}


def within_limits(snap: dict[str, dict[str, int]]) -> list[str]:
    """Accounts that reservations took past their limit (tokens reported after the fact,
    ``forced``, are the truth and may pass it), and a lender that lent more than it held (the
    reserve its limit, a Larry what its finished pools returned)."""
    bad = [f"{name}: {f}" for name, f in snap.items()
           if f["reserved"] + f["committed"] - f["forced"] > f["limit"] + f["granted"] - f["released"]]
    return bad + [f"{name} lent {f['lent']}" for name, f in snap.items()
                  if f["lent"] > (f["limit"] if name == RESERVE else f["returned"])]


@pytest.fixture
def ledger(r, ks):
    ledger = Ledger(r, ks, tree(), threshold=0.9, reserve_slice=0)
    ledger.open()
    return ledger


def test_a_record_is_booked_once_on_every_account_of_its_path(r, ks, ledger):
    assert ledger.record("a", "L0/m0w0", 100) == LedgerOp("committed", 100)
    assert ledger.record("a", "L0/m0w0", 70).replay, "a retried report must not charge twice"
    for name in ("L0/m0w0", "L0/m0/pool", "L0", "system"):
        assert ledger.snapshot(name)["committed"] == 100, name
    for name in ("L0/m0/personal", "L0/free", meta_account("orchestration")):
        assert ledger.snapshot(name)["committed"] == 0, name
    assert ledger.record("b", "L0/free", 20).ok
    assert [ledger.snapshot(n)["committed"] for n in ("L0/free", "L0/m0/pool", "L0")] == [20, 100, 120], \
        "a worker that names no master draws on its Larry"


def test_overrun_names_the_account_past_its_limit_with_one_alert_when_it_crosses(r, ks, ledger):
    assert ledger.record("a", "L0/m0w0", 150).ok
    over = ledger.record("b", "L0/m0w0", 10)
    assert (over.status, over.account, over.headroom, over.ok) == ("overrun", "L0/m0w0", -10, False)
    for n in range(5):
        assert ledger.record(f"past-{n}", "L0/m0w0", 1).status == "overrun"
    assert ledger.snapshot("L0/m0w0")["committed"] == 165, "spent is spent: booked even past the limit"
    assert ledger.record("c", "L0/m0/personal", 100).ok, "a sibling's account is untouched"
    alerts = [e.data for e in EventLog(r, ks).history() if e.name == "token_overrun"]
    assert [(a["account"], a["used"], a["larry"]) for a in alerts] == [("L0/m0w0", 160, "L0")]


def test_a_reservation_takes_every_account_or_none(r, ks, ledger):
    assert ledger.reserve("r1", "L0/m0w0", 120).status == "reserved"
    assert ledger.reserve("r2", "L0/m0w0", 100).status == "refused"
    refused = ledger.reserve("r3", "L0/m0/pool", 90)
    assert (refused.status, refused.account) == ("refused", "L0/m0/pool"), "the master's pool holds 200"
    before = figures(r, ks, ledger.accounts)
    assert ledger.reserve("r3", "L0/m0/pool", 1).replay, "a refused op id stays refused"
    assert figures(r, ks, ledger.accounts) == before
    assert before["L0"]["reserved"] == before["system"]["reserved"] == 120
    # commit closes the reservation: what it held is released, what was spent booked
    assert ledger.commit("c1", "r1", "L0/m0w0", 90).status == "committed"
    assert ledger.commit("c2", "r1", "L0/m0w0", 90).status == "closed", "a reservation closes once"
    assert ledger.refund("f1", "r1", "L0/m0w0").status == "closed"
    snap = ledger.figures("L0/m0/pool")
    assert (snap["reserved"], snap["committed"], snap["forced"]) == (0, 90, 0)
    assert ledger.reserve("r4", "L0/free", 50).ok and ledger.refund("f2", "r4", "L0/free").status == "refunded"
    assert ledger.snapshot("L0")["reserved"] == 0 and ledger.snapshot("L0")["committed"] == 90
    assert ledger.reserve("r5", "L0/free", 5).ok
    with pytest.raises(ValueError, match="reservation r5 was made on another account"):
        ledger.commit("c5", "r5", "L0/m0w0", 5)


def test_the_reserve_is_lent_in_slices_by_priority_and_never_overdrawn(r, ks):
    ledger = Ledger(r, ks, tree(pool=200, reserve=100), threshold=0.9, reserve_slice=40)
    ledger.open()
    assert ledger.record("a", "L0/m0/pool", 100).ok and ledger.figures("L0/m0/pool")["granted"] == 0
    drawn = ledger.record("b", "L0/m0/pool", 85, who="L0/m0")  # 185 >= 90 % of 200: one slice
    assert drawn.ok and drawn.drawn == 40
    assert [ledger.figures(n)["granted"] for n in ("L0/m0/pool", "L0", "system", "L0/m0w0")] == [40, 40, 0, 0]
    # medium may not draw the half of the reserve kept back for high and critical
    assert ledger.record("c", "L0/m0/pool", 40).drawn == 10
    assert ledger.record("d", "L0/m0/pool", 30).drawn == 0
    assert ledger.record("e", "L0/m0/pool", 1, priority="low").drawn == 0
    assert ledger.record("f", "L0/m0/pool", 1, priority="critical").drawn == 40
    assert ledger.record("g", "L0/m0/pool", 10, priority="critical").drawn == 10, "the rest, no more"
    assert ledger.record("h", "L0/m0/pool", 10, priority="critical").drawn == 0
    assert ledger.figures(RESERVE)["lent"] == 100 and ledger.figures("L0/m0/pool")["granted"] == 100
    draws = ledger.draws()
    assert [(d["op"], d["priority"], d["amount"], d["pool_left"]) for d in draws] == [
        ("b", "medium", 40, 60), ("c", "medium", 10, 50), ("f", "critical", 40, 10), ("g", "critical", 10, 0)]
    assert draws[0]["from"] == "L0/m0" and draws[0]["why"] == "L0/m0/pool at 185 of 200 tokens"
    alerts = [e.data for e in EventLog(r, ks).history() if e.name == "token_reserve_deployed"]
    assert [(a["account"], a["amount"], a["larry"]) for a in alerts][:1] == [("L0/m0/pool", 40, "L0")]
    with pytest.raises(ValueError, match="priority 'urgent' is not one of critical, high, medium, low"):
        ledger.record("i", "L0/m0/pool", 1, priority="urgent")


def test_a_finished_pool_returns_its_unused_tokens_which_its_larry_lends_by_priority(r, ks):
    ledger = Ledger(r, ks, tree(masters=2, reserve=100), threshold=0.9, reserve_slice=40)
    ledger.open()
    assert ledger.record("a", "L0/m0w0", 50).ok
    assert ledger.reserve("r1", "L0/m0w0", 20).ok
    released = ledger.release("rel-1", "L0/m0/pool", who="L0/m0")
    assert (released.status, released.amount) == ("released", 130), "what a reservation holds stays"
    assert ledger.release("rel-1", "L0/m0/pool", who="L0/m0").replay
    assert ledger.commit("c1", "r1", "L0/m0w0", 0).ok
    assert ledger.release("rel-2", "L0/m0/pool", who="L0/m0").amount == 20, "then what it did not spend"
    assert ledger.release("rel-3", "L0/m0/pool", who="L0/m0").amount == 0, "released once, whatever op id"
    assert (ledger.figures("L0/m0/pool")["released"], ledger.figures("L0")["returned"]) == (150, 150)
    assert ledger.reserve("r2", "L0/m0w0", 1).account == "L0/m0/pool", "a released pool takes no more"
    # The other master's pool reaches the threshold: its Larry lends what came back, a slice at
    # a time, keeping back from medium the half kept for high and critical.
    assert ledger.record("b", "L0/m1/pool", 185).drawn == 40
    assert ledger.record("c", "L0/m1/pool", 35).drawn == 35
    assert [ledger.figures(n)["granted"] for n in ("L0/m1/pool", "L0", "system")] == [75, 0, 0]
    assert (ledger.figures("L0")["lent"], ledger.figures(RESERVE)["lent"]) == (75, 0)
    # Nothing left for medium at the Larry: the emergency reserve lends instead, to the Larry too.
    assert ledger.record("d", "L0/m1/pool", 40).drawn == 40
    assert [ledger.figures(n)["granted"] for n in ("L0/m1/pool", "L0", "system")] == [115, 40, 0]
    # critical may take what the Larry kept back
    assert ledger.record("e", "L0/m1/pool", 30, priority="critical").drawn == 40
    assert ledger.figures("L0")["lent"] == 115
    moves = [(m["kind"], m["op"], m.get("source"), m["amount"]) for m in ledger.draws()]
    assert moves == [("release", "rel-1", "L0/m0/pool", 130), ("release", "rel-2", "L0/m0/pool", 20),
                     ("release", "rel-3", "L0/m0/pool", 0),
                     ("draw", "b", "L0", 40), ("draw", "c", "L0", 35), ("draw", "d", RESERVE, 40),
                     ("draw", "e", "L0", 40)]
    events = [(e.name, e.data.get("amount")) for e in EventLog(r, ks).history()
              if e.name in ("token_pool_released", "token_reallocated", "token_reserve_deployed")]
    assert events == [("token_pool_released", 130), ("token_pool_released", 20), ("token_pool_released", 0),
                      ("token_reallocated", 40),
                      ("token_reallocated", 35), ("token_reserve_deployed", 40), ("token_reallocated", 40)]
    snap = figures(r, ks, ledger.accounts)
    assert not within_limits(snap) and snap == expected_figures(r, ks, ledger.accounts)
    with pytest.raises(ValueError, match="only a master's pool is released, not a larry"):
        ledger.release("rel-4", "L0", who="x")


def test_bad_amounts_and_corrupt_keys_are_refused_before_anything_is_written(r, ks, ledger):
    assert ledger.record("a", "L0/m0w0", 100).ok
    before = figures(r, ks, ledger.accounts)
    for amount in (10**30, -1, 1.5, True, "7"):
        with pytest.raises(ValueError, match="whole numbers from 0 to 1,000,000,000,000"):
            ledger.record(f"bad-{amount}", "L0/m0w0", amount)
    assert figures(r, ks, ledger.accounts) == before
    path = account_path(ledger.accounts, "L0/m0w0")
    keys = [ks.token_ops, ks.token_open, ks.token_account(RESERVE), ks.token_draws]
    keys += [ks.token_account(a.name) for a in path]
    names = [a.name for a in path]
    mirrors = ledger._mirrors(path, None)
    for amount in ("1" + "0" * 30, "-5", "1e3", "abc", ""):
        status, detail = ledger._script(keys=keys, args=["record", f"raw-{amount}", amount, "", 900, 0, 10**12, "x",
                                                          "0110", "medium", 500, RESERVE, *names, mirrors])
        assert status == "invalid" and "the amount is not a whole number" in detail, (amount, status, detail)
    status, detail = ledger._script(keys=keys, args=["record", "raw-names", 1, "", 900, 0, 10**12, "x", "01", "medium", 500,
                                                        RESERVE, *names, mirrors])
    assert status == "invalid" and "the path does not match" in detail
    for bad in ("{not json", "[1]", '{"hashes": []}'):
        status, detail = ledger._script(keys=keys, args=["record", "raw-mirrors", 1, "", 900, 0, 10**12, "x", "0110",
                                                            "medium", 500, RESERVE, *names, bad])
        assert status == "invalid" and "the mirrors" in detail, (bad, detail)
    r.hset(ks.token_account("L0"), "committed", "garbage")
    with_garbage = figures(r, ks, [n for n in ledger.accounts if n != "L0"])
    with pytest.raises(ValueError, match="committed holds garbage, expected a whole number"):
        ledger.record("after-garbage", "L0/m0w0", 10)
    assert figures(r, ks, [n for n in ledger.accounts if n != "L0"]) == with_garbage
    assert r.hlen(ks.token_ops) == 1


def test_an_account_without_a_limit_books_nothing(r, ks):
    ledger = Ledger(r, ks, tree())
    ledger.open(["system", "L0"])
    assert ledger.record("a", "L0/m0w0", 5) == LedgerOp("no_limit", account="L0/m0w0")
    assert r.hlen(ks.token_ops) == 0 and ledger.snapshot("L0")["committed"] == 0


# ---- 32 processes, kill -9 between and during calls, every op id replayed -----------------

CHAOS_TREE = dict(larrys=2, masters=2, workers=2, system=12_000, larry=5_000, personal=2_000, pool=2_000,
                  worker=1_500, reserve=4_000, meta=2_000)
STEPS = 120


def chaos_client(url: str, prefix: str, seed: int) -> None:
    """One client's fixed sequence of operations: a run killed at any point and started again
    replays every op id it had sent and goes on; each op is also sent twice in a row."""
    accounts = tree(**CHAOS_TREE)
    ledger = Ledger(connect(RedisSettings(url=url)), Keyspace(prefix=prefix), accounts, threshold=0.9,
                    reserve_slice=500)
    spendable = [n for n in accounts if n != RESERVE]
    pools = [n for n, a in accounts.items() if a.kind == "pool"]
    rnd = random.Random(seed)
    held: list[tuple[str, str]] = []
    for step in range(STEPS):
        op, choice = f"{seed}:{step}", rnd.random()
        if choice < 0.4 or not held:
            account, amount = rnd.choice(spendable), rnd.randint(1, 400)
            call = lambda p: ledger.reserve(op, account, amount, priority=p)  # noqa: E731
        elif choice < 0.7:
            ref, account = held.pop(rnd.randrange(len(held)))
            actual = rnd.randint(0, 450)
            call = lambda p: ledger.commit(op, ref, account, actual, priority=p)  # noqa: E731
        elif choice < 0.8:
            ref, account = held.pop(rnd.randrange(len(held)))
            call = lambda p: ledger.refund(op, ref, account)  # noqa: E731
        elif choice < 0.81:
            account = rnd.choice(pools)
            call = lambda p: ledger.release(op, account, who=str(seed))  # noqa: E731
        else:
            account, spent = rnd.choice(spendable), rnd.randint(1, 200)
            call = lambda p: ledger.record(op, account, spent, priority=p)  # noqa: E731
        priority = rnd.choice(PRIORITIES)
        first = call(priority)
        again = call(priority)
        assert again.replay and again.status == first.status, (op, first, again)
        assert first.status in ("reserved", "refused", "committed", "refunded", "overrun", "released"), (op, first)
        if first.status == "reserved":
            held.append((op, account))


def expected_figures(r, ks, accounts) -> dict[str, dict[str, int]]:
    """Each account's figures as the sums of the recorded operations whose path holds it."""
    sums = {name: dict.fromkeys(FIELDS, 0) for name in accounts}
    for name, account in accounts.items():
        sums[name]["limit"] = account.limit
    open_reservations = r.hgetall(ks.token_open)
    records = {op: json.loads(raw) for op, raw in r.hgetall(ks.token_ops).items()}
    closed = {record.get("ref") for record in records.values()}
    for op, record in records.items():
        path, amount = record["path"], int(record["amount"])
        assert path == [a.name for a in account_path(accounts, path[0])], (op, path)
        if record["status"] == "reserved":
            assert (open_reservations.pop(op, None) is not None) != (op in closed), f"{op}: open and closed, or neither"
        if record["kind"] == "release" and record["status"] == "released":
            sums[path[0]]["released"] += amount
            sums[path[1]]["returned"] += amount
        for name in path:
            if record["kind"] in ("commit", "record") and record["status"] != "refused":
                sums[name]["committed"] += amount
                sums[name]["forced"] += amount if record["kind"] == "record" else max(0, amount - record["held"])
        if record.get("drawn"):
            source = record["drawn_from"]
            sums[source]["lent"] += record["drawn"]
            below = path.index(source) if source in path else -1
            for name in path[path.index(record["drawn_for"]):below]:
                sums[name]["granted"] += record["drawn"]
    assert not open_reservations, f"open reservations without an op: {open_reservations}"
    for op, raw in r.hgetall(ks.token_open).items():
        amount, path = raw.split("|")
        for name in path.split(","):
            sums[name]["reserved"] += int(amount)
    return sums


def test_32_processes_killed_and_replayed_never_overdraw_and_book_each_op_once(r, ks, redis_server):
    accounts = tree(**CHAOS_TREE)
    Ledger(r, ks, accounts).open()
    ctx = multiprocessing.get_context("fork")
    start = lambda seed: ctx.Process(target=chaos_client, args=(redis_server.url, ks.prefix, seed))  # noqa: E731
    procs = {seed: start(seed) for seed in range(32)}
    for p in procs.values():
        p.start()
    violations, samples, stop = [], [0], threading.Event()

    def watch():
        while not stop.is_set():
            violations.extend(within_limits(figures(r, ks, accounts)))
            samples[0] += 1

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    rnd, kills, deadline = random.Random(7), 0, time.monotonic() + 60
    while any(p.exitcode is None for p in procs.values()):
        assert time.monotonic() < deadline, f"clients still running after 60 s: {[s for s, p in procs.items() if p.exitcode is None]}"
        time.sleep(rnd.uniform(0.005, 0.03))  # a random instant, between or during a client's calls
        running = [s for s, p in procs.items() if p.exitcode is None and p.is_alive()]
        if running and kills < 64:
            seed = rnd.choice(running)
            os.kill(procs[seed].pid, 9)
            procs[seed].join(10)
            procs[seed] = start(seed)  # the same sequence again: every op id sent so far is replayed
            procs[seed].start()
            kills += 1
        for seed, p in procs.items():
            assert p.exitcode in (None, 0), f"client {seed} failed (exit {p.exitcode})"
    stop.set()
    watcher.join(10)
    assert kills >= 32, f"only {kills} kills: the test proves little"
    assert samples[0] > 10 and not violations, violations[:5]
    assert r.hlen(ks.token_ops) == 32 * STEPS, "an op lost or booked under two ids"
    snap = figures(r, ks, accounts)
    assert not within_limits(snap)
    assert snap == expected_figures(r, ks, accounts), "an account differs from the sum of its ops"
    statuses = {json.loads(v)["status"] for v in r.hvals(ks.token_ops)}
    assert {"refused", "overrun", "committed", "refunded", "reserved", "released"} <= statuses, statuses
    assert snap[RESERVE]["lent"] > 0, "the load never reached a threshold: the reserve was never lent"
    # Whether a Larry lends what a finished pool returned depends on how the clients interleave,
    # which load changes; that it lends, and by priority, is
    # test_a_finished_pool_returns_its_unused_tokens_which_its_larry_lends_by_priority. Here
    # every lending that did happen must match the moves below.
    moves = Ledger(r, ks, accounts).draws()
    for lender, figure in snap.items():
        lent = sum(m["amount"] for m in moves if m["kind"] == "draw" and m["source"] == lender)
        returned = sum(m["amount"] for m in moves if m["kind"] == "release" and m["to"] == lender)
        assert (lent, returned) == (figure["lent"], figure["returned"]), f"a movement of {lender} not recorded"
