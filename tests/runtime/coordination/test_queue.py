"""Seed 004's task queue (``queue`` assignment): workers racing on a master's queue take each
task once, the highest-priority claimable one first, dependencies respected; an early finisher
takes more; a task whose taker was killed is taken again once its lease expired."""

import os
import random
import signal
from collections import Counter

from plan.model import PRIORITIES
from runtime.coordination.connection import RedisSettings, connect
from runtime.coordination.events import EventListener, EventLog
from runtime.coordination.keys import Keyspace
from runtime.coordination.leases import LeaseManager
from runtime.coordination.tasks import QueueEntry, TaskBoard
from tests.support.waiting import Child, wait_for

WORKERS = 4


def queue_plan() -> tuple[dict, dict]:
    """24 tasks of master ``m``, priorities shuffled, every fourth waiting on the two before it;
    and 4 tasks of another master, which the workers of ``m`` must never take."""
    rng = random.Random(4)
    graph, entries = {}, {}
    for i in range(24):
        task = f"t{i:02d}"
        graph[task] = [f"t{i - 1:02d}", f"t{i - 2:02d}"] if i % 4 == 3 else []
        entries[task] = QueueEntry("m", rng.choice(PRIORITIES), i + 1)
    for i in range(4):
        graph[f"other{i}"], entries[f"other{i}"] = [], QueueEntry("other-master", "critical", i + 1)
    return graph, entries


def assert_claims_in_priority_order(history, entries: dict) -> None:
    """Replays the stream: at each ``task_claimed`` of a queued task, no task of the same queue
    that was claimable then (not finished, not held, its dependencies completed) had a higher
    priority. The replay may think a task held whose lease silently expired, never the
    reverse, so what it finds claimable was claimable."""
    completed, failed, held, claims = set(), set(), set(), 0
    for event in history:
        task = event.data.get("task_id")
        if task not in entries:
            continue
        if event.name == "task_claimed":
            entry = entries[task]
            claimable = [t for t, e in entries.items() if e["master"] == entry["master"] and t not in held
                         and t not in completed | failed and set(e["dependencies"]) <= completed]
            best = min(PRIORITIES.index(entries[t]["priority"]) for t in claimable + [task])
            assert PRIORITIES.index(entry["priority"]) == best, \
                f"{task} ({entry['priority']}) taken while {sorted(claimable)} were claimable"
            assert set(entry["dependencies"]) <= completed, f"{task} taken before its dependencies completed"
            held.add(task)
            claims += 1
        elif event.name in ("task_completed", "task_failed", "task_released", "task_takeover"):
            held.discard(task)
            if event.name == "task_completed":
                completed.add(task)
            elif event.name == "task_failed" and not event.data.get("retry"):
                failed.add(task)
    assert claims, "no claim of a queued task on the stream"


def entries_of(board: TaskBoard, tasks) -> dict:
    return {task: board.queue_entry(task) for task in tasks}


def racer(conn, url, prefix, n):
    """A worker of master ``m``: takes from the queue until it is drained, woken by completions."""
    r = connect(RedisSettings(url=url))
    ks = Keyspace(prefix=prefix)
    leases = LeaseManager(r, ks, "larry-01", worker=f"w{n}")
    listener = EventListener(r, ks, "$")
    ran = []
    while (claim := leases.claim("m")).status != "drained":
        if claim.lease is None:
            listener.poll(block_ms=200)  # until one of the tasks it waits on completes
            continue
        ran.append(claim.lease.task_id)
        assert leases.complete(claim.lease, {"worker": n}).status == "accepted"
    conn.send(ran)


def test_workers_racing_on_a_queue_take_each_task_once_by_priority_after_its_dependencies(
        r, ks, redis_server, tmp_path):
    board = TaskBoard(r, ks)
    graph, entries = queue_plan()
    board.define("larry-01", graph, entries)
    assert len(board.queued()) == len(graph), "every task queued"
    workers = [Child(f"racer-{n}", racer, redis_server.url, ks.prefix, n, log_dir=tmp_path) for n in range(WORKERS)]
    try:
        ran = Child.gather(workers, "the tasks it took", timeout=60)
    finally:
        for child in workers:
            child.stop()
    mine = [t for t in graph if entries[t].queue == "m"]
    assert Counter(t for tasks in ran for t in tasks) == Counter(mine), "each task of m once, none of another queue"
    history = EventLog(r, ks).history()
    assert Counter(e.data["task_id"] for e in history if e.name == "task_completed") == Counter(mine)
    assert_claims_in_priority_order(history, entries_of(board, graph))
    assert [task for task, _ in board.queued()] == [f"other{i}" for i in range(4)], "finished tasks left the queue"
    assert board.queue_entry("t03") | {"created_at": None} == {
        "task_id": "t03", "master": "m", "priority": entries["t03"].priority, "dependencies": ["t02", "t01"],
        "created_at": None}


def test_a_worker_that_finishes_early_takes_more_of_its_queue(r, ks):
    board = TaskBoard(r, ks)
    board.define("larry-01", {f"t{i}": [] for i in range(6)},
                 {f"t{i}": QueueEntry("m", "medium", i + 1) for i in range(6)})
    slow, fast = (LeaseManager(r, ks, "larry-01", worker=name) for name in ("slow", "fast"))
    held = slow.claim("m").lease
    assert held.task_id == "t0", "plan order among equal priorities"
    taken = []
    while (claim := fast.claim("m")).lease is not None:
        taken.append(claim.lease.task_id)
        assert fast.complete(claim.lease, {}).ok
    assert taken == ["t1", "t2", "t3", "t4", "t5"]
    assert (claim.status, claim.waiting_on) == ("waiting", ("t0",)), "the slow worker's task is not taken"
    assert slow.complete(held, {}).ok and fast.claim("m").status == "drained"


def test_a_master_s_plan_reorders_its_queue_and_a_finished_task_stays_out(r, ks):
    board = TaskBoard(r, ks)
    board.define("larry-01", {"a": [], "b": [], "c": []}, {t: QueueEntry("m", "medium", i) for i, t in enumerate("abc")})
    m = LeaseManager(r, ks, "larry-01", worker="w")
    assert m.complete(m.claim("m").lease, {}).ok  # a
    board.plan("m", {t: {"master": "m", "order": order, "priority": p, "note": ""}
                     for t, order, p in (("a", 0, "critical"), ("c", 1, "high"), ("b", 2, "medium"))})
    assert [t for t, _ in board.queued()] == ["c", "b"]
    assert board.queue_entry("c")["priority"] == "high"
    board.define("larry-01", {"a": [], "b": [], "c": []}, {t: QueueEntry("m", "medium", i) for i, t in enumerate("abc")})
    assert [t for t, _ in board.queued()] == ["c", "b"], "a restarted coordinator queues no finished task again"


def holder(conn, url, prefix):
    r = connect(RedisSettings(url=url))
    lease = LeaseManager(r, Keyspace(prefix=prefix), "larry-01", worker="victim", ttl_ms=1500).claim("m").lease
    conn.send([lease.task_id, lease.token])
    signal.pause()  # mid-task until killed


def test_a_task_whose_taker_was_killed_is_taken_again_after_its_lease_and_done_once(r, ks, redis_server, tmp_path):
    board = TaskBoard(r, ks)
    board.define("larry-01", {"t0": [], "t1": []}, {"t0": QueueEntry("m", "high", 1), "t1": QueueEntry("m", "low", 2)})
    victim = Child("victim", holder, redis_server.url, ks.prefix, log_dir=tmp_path)
    try:
        task, token = victim.recv("the task it took")
        os.kill(victim.pid, signal.SIGKILL)
        victim.join("die of SIGKILL")
    finally:
        victim.stop()
    assert task == "t0"
    survivor = LeaseManager(r, ks, "larry-01", worker="survivor")
    first = survivor.claim("m")
    assert first.lease.task_id == "t1", "the killed worker's task is held until its lease expires"
    assert survivor.complete(first.lease, {}).ok
    retaken = wait_for(lambda: survivor.claim("m").lease, "the killed worker's lease to expire", timeout=10)
    assert (retaken.task_id, retaken.token > token) == ("t0", True)
    assert survivor.complete(retaken, {}).ok and survivor.claim("m").status == "drained"
    completions = Counter(e.data["task_id"] for e in EventLog(r, ks).history() if e.name == "task_completed")
    assert completions == Counter(["t0", "t1"])
