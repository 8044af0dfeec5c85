"""Sentinel failover of the primary in the middle of a run (primary + replica + 3 sentinels).

Workers use Durability(replicas=1): a claim, completion or progress update counts
only once a replica holds it, and a retried script is idempotent, so the
promotion of the replica loses nothing that was acknowledged.

The crash variant cuts replication 0.5 s before kill -9, so the primary dies
holding writes the replica never saw: with Durability() instead, those
acknowledged claims and completions are lost and this test fails (checked).

With a single replica, durable writes pause after the promotion until Sentinel
turns the old primary into the new one's replica (about 10 s: Sentinel waits
8 s before reconfiguring a primary that is still up). Leases therefore get a
TTL well above that; production should run two replicas.
"""

import json
import multiprocessing
import random
import time
from collections import Counter

import pytest
import redis

from runtime.coordination.barrier import Barrier
from runtime.coordination.connection import Durability, RedisSettings, connect
from runtime.coordination.events import EventLog
from runtime.coordination.keys import Keyspace
from runtime.coordination.leases import LeaseManager
from runtime.coordination.phases import PhaseTracker
from runtime.coordination.tasks import TaskBoard

WORKERS, TASKS = 4, 240
LARRYS = [f"larry-0{i}" for i in (1, 2, 3, 4)]
DURABLE = Durability(replicas=1, timeout_ms=500, retry_for=30)


def settings(cluster_sentinels):
    return RedisSettings(sentinels=cluster_sentinels, master_name="larry", retry_for=30, socket_timeout=2)


def retrying(op):
    """Workers retry an op whose outcome is unknown; every op used here is idempotent."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return op()
        except redis.exceptions.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def worker(sentinels, prefix, n, out):
    r = connect(settings(sentinels))
    ks = Keyspace(prefix=prefix)
    larry = LARRYS[n]
    m = LeaseManager(r, ks, larry, ttl_ms=30_000, durability=DURABLE)
    phase = PhaseTracker(r, ks, larry, durability=DURABLE)
    barrier = Barrier(r, ks, "convergence", LARRYS, durability=DURABLE)
    retrying(phase.start)
    tasks = [f"task-{i:03d}" for i in range(TASKS)]
    random.Random(n).shuffle(tasks)
    ran, lost = [], []
    for i, task in enumerate(tasks):
        claim = retrying(lambda: m.acquire(task))
        if not claim:
            continue
        keeper = m.keep(claim.lease, lambda lease, why: lost.append([lease.task_id, why]))
        ran.append([task, claim.lease.token])  # the work starts only after a durable claim
        time.sleep(0.004)
        keeper.stop()
        if claim.lease.lost.is_set():
            continue  # told to stop: abandon, someone else will redo it (and the test will say so)
        write = retrying(lambda: m.complete(claim.lease, {"worker": n}))
        assert write.ok, (task, write)
        retrying(lambda: phase.progress(100 * (i + 1) // TASKS, f"{task} done"))
    retrying(phase.complete)
    retrying(lambda: barrier.arrive(larry))
    barrier.wait(timeout=60)
    with open(out, "w") as f:
        json.dump({"ran": ran, "lost": lost}, f)


@pytest.mark.parametrize("how", ["sentinel_failover", "kill_9_primary"])
def test_failover_mid_run_completes_without_duplicates_or_lost_events(sentinel_cluster, tmp_path, how):
    ks = Keyspace(prefix="fo:")
    sentinels = sentinel_cluster.sentinel_addresses
    r = connect(settings(sentinels))
    board = TaskBoard(r, ks)
    board.define("larry-01", {f"task-{i:03d}": [] for i in range(TASKS)})

    def counts() -> Counter:
        return Counter(board.statuses(f"task-{i:03d}" for i in range(TASKS)).values())

    old_primary = sentinel_cluster.master_port()

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=worker, args=(sentinels, ks.prefix, n, tmp_path / f"{n}.json"))
             for n in range(WORKERS)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + 30
    while counts().get("completed", 0) < TASKS // 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    done_before = counts().get("completed", 0)
    assert done_before < TASKS, "the run finished before the failover could interrupt it"
    if how == "sentinel_failover":
        sentinel_cluster.failover()
    else:
        sentinel_cluster.crash_primary(replica_lag=0.5)
    assert sentinel_cluster.master_port() != old_primary
    for p in procs:
        p.join(timeout=90)
    assert [p.exitcode for p in procs] == [0] * WORKERS

    results = [json.loads((tmp_path / f"{n}.json").read_text()) for n in range(WORKERS)]
    runs = [tuple(run) for res in results for run in res["ran"]]
    assert [res["lost"] for res in results] == [[]] * WORKERS
    per_task = Counter(task for task, _ in runs)
    assert len(per_task) == TASKS and set(per_task.values()) == {1}, "a task ran twice or never"
    assert counts() == {"completed": TASKS}

    # Every acknowledged transition is on the new primary's stream, exactly once.
    events = EventLog(r, ks).history(count=100_000)
    claims = Counter((e.data["task_id"], e.data["token"]) for e in events if e.name == "task_claimed")
    completions = Counter((e.data["task_id"], e.data["token"]) for e in events if e.name == "task_completed")
    for run in runs:
        assert claims[run] == 1, f"claim event of {run} lost or duplicated"
        assert completions[run] == 1, f"completion event of {run} lost or duplicated"
    assert len(completions) == TASKS
    assert Counter(e.data["larry"] for e in events if e.name == "phase_complete") == Counter(LARRYS)
    released = [e for e in events if e.name == "barrier_released"]
    assert len(released) == 1
    for larry in LARRYS:
        assert PhaseTracker(r, ks, larry).snapshot()["status"] == "completed"
