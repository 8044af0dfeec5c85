"""Sentinel failover of the primary in the middle of a run (primary + replica + 3 sentinels).

Workers use Durability(replicas=1): a claim, completion or progress update counts
only once a replica holds it, and a retried script is idempotent, so the
promotion of the replica loses nothing that was acknowledged.

The crash variant cuts replication 0.5 s before kill -9, so the primary dies
holding writes the replica never saw: with Durability() instead, those
acknowledged claims and completions are lost and this test fails (checked).

With a single replica, durable writes pause after the promotion until the old
primary replicates from the new one: after a crash it restarts as a replica (as
a Redis pod does); after SENTINEL FAILOVER Sentinel reconfigures it, about 10 s
on an idle machine and up to SENTINEL_SETTLES_WITHIN on a busy one. A pause
longer than the lease TTL is allowed to expire leases: what the design
guarantees, and what is asserted, is that no task is completed twice, nothing
acknowledged is lost, and a write is refused only once its lease could have
expired. Production should run two replicas.
"""

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
from tests.support.redis_servers import SENTINEL_SETTLES_WITHIN
from tests.support.waiting import Child, wait_for

WORKERS, TASKS, TTL_MS = 4, 240, 30_000
LARRYS = [f"larry-0{i}" for i in (1, 2, 3, 4)]
DURABLE = Durability(replicas=1, timeout_ms=500, retry_for=30)
#: Each operation outlasts the longest pause Sentinel may impose on durable writes.
OP_DEADLINE = 2 * SENTINEL_SETTLES_WITHIN


def settings(cluster_sentinels):
    return RedisSettings(sentinels=cluster_sentinels, master_name="larry", retry_for=30, socket_timeout=2)


def retrying(op):
    """Workers retry an op whose outcome is unknown; every op used here is idempotent."""
    deadline = time.monotonic() + OP_DEADLINE
    while True:
        try:
            return op()
        except redis.exceptions.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def worker(conn, sentinels, prefix, n):
    """Sends back every run: [task, token, outcome], outcome one of ``completed`` (write
    accepted), ``abandoned`` (the keeper gave the lease up) or ``refused:<status>``."""
    r = connect(settings(sentinels))
    ks = Keyspace(prefix=prefix)
    larry = LARRYS[n]
    m = LeaseManager(r, ks, larry, ttl_ms=TTL_MS, durability=DURABLE)
    phase = PhaseTracker(r, ks, larry, durability=DURABLE)
    barrier = Barrier(r, ks, "convergence", LARRYS, durability=DURABLE)
    retrying(phase.start)
    tasks = [f"task-{i:03d}" for i in range(TASKS)]
    random.Random(n).shuffle(tasks)
    runs = []
    for i, task in enumerate(tasks):
        claim = retrying(lambda: m.acquire(task))
        if not claim:
            continue
        keeper = m.keep(claim.lease)
        time.sleep(0.004)  # the work starts only after a durable claim
        keeper.stop()
        if claim.lease.lost.is_set():
            runs.append([task, claim.lease.token, "abandoned"])  # told to stop: someone else redoes it
            continue
        write = retrying(lambda: m.complete(claim.lease, {"worker": n}))
        if not write.ok:
            # By design only once the lease could have expired (a pause longer than the TTL);
            # refused while still valid would mean the fence moved under a live lease.
            assert claim.lease.remaining() <= 0, (task, write, f"refused {claim.lease.remaining():.1f} s before expiry")
            runs.append([task, claim.lease.token, f"refused:{write.status}"])
            continue
        runs.append([task, claim.lease.token, "completed"])
        retrying(lambda: phase.progress(100 * (i + 1) // TASKS, f"{task} done"))
    retrying(phase.complete)
    retrying(lambda: barrier.arrive(larry))
    barrier.wait(timeout=OP_DEADLINE)
    conn.send(runs)


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

    workers = [Child(f"worker-{n}", worker, sentinels, ks.prefix, n, log_dir=tmp_path) for n in range(WORKERS)]
    try:
        done_before = wait_for(lambda: counts().get("completed", 0) >= TASKS // 4
                               and counts()["completed"], "a quarter of the tasks to complete",
                               timeout=60)
        assert done_before < TASKS, "the run finished before the failover could interrupt it"
        if how == "sentinel_failover":
            sentinel_cluster.failover()
        else:
            sentinel_cluster.crash_primary(replica_lag=0.5)
        assert sentinel_cluster.master_port() != old_primary
        results = Child.gather(workers, "its runs", timeout=2 * OP_DEADLINE)
    finally:
        for child in workers:
            child.stop()

    runs = [tuple(run) for worker_runs in results for run in worker_runs]
    accepted = {task: token for task, token, outcome in runs if outcome == "completed"}
    twice = [task for task, n in Counter(t for t, _, outcome in runs if outcome == "completed").items() if n > 1]
    assert twice == [], "a task's completion was accepted twice"
    assert sorted(accepted) == [f"task-{i:03d}" for i in range(TASKS)], "a task was never completed"
    assert counts() == {"completed": TASKS}
    for task, token in accepted.items():
        assert board.result(task)["token"] == token, f"the acknowledged completion of {task} was lost"

    # Every acknowledged transition is on the new primary's stream, exactly once.
    events = EventLog(r, ks).history(count=100_000)
    claims = Counter((e.data["task_id"], e.data["token"]) for e in events if e.name == "task_claimed")
    completions = Counter((e.data["task_id"], e.data["token"]) for e in events if e.name == "task_completed")
    for task, token, _ in runs:
        assert claims[task, token] == 1, f"claim event of {task} (token {token}) lost or duplicated"
    assert completions == Counter(accepted.items()), "a completion event lost, duplicated or not acknowledged"
    assert Counter(e.data["larry"] for e in events if e.name == "phase_complete") == Counter(LARRYS)
    released = [e for e in events if e.name == "barrier_released"]
    assert len(released) == 1
    for larry in LARRYS:
        assert PhaseTracker(r, ks, larry).snapshot()["status"] == "completed"
