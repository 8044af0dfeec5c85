"""32 processes race over 1,000 tasks (some with dependsOn): every task completed exactly once."""

import random
import time
from collections import Counter

from runtime.coordination.connection import RedisSettings, connect
from runtime.coordination.events import EventLog
from runtime.coordination.keys import Keyspace
from runtime.coordination.leases import LeaseManager
from runtime.coordination.tasks import TaskBoard
from tests.support.waiting import Child

PROCESSES, TASKS = 32, 1000


def graph():
    # every tenth task depends on the two before it, so claims must wait for completions
    return {f"task-{i:04d}": ([f"task-{i - 1:04d}", f"task-{i - 2:04d}"] if i % 10 == 9 else [])
            for i in range(TASKS)}


def worker(conn, url, prefix, n):
    r = connect(RedisSettings(url=url))
    m = LeaseManager(r, Keyspace(prefix=prefix), f"larry-0{n % 3 + 1}", worker=f"w{n}", ttl_ms=30_000)
    remaining = sorted(graph())
    random.Random(n).shuffle(remaining)
    ran = []
    while remaining:
        for task in list(remaining):
            claim = m.acquire(task)
            if claim.status == "completed":
                remaining.remove(task)
            elif claim:
                ran.append([task, claim.lease.token])
                write = m.complete(claim.lease, {"worker": n})
                assert write.status == "accepted", write
                remaining.remove(task)
        if remaining:
            time.sleep(0.005)  # what is left is held by others or waiting on dependencies
    conn.send(ran)


def test_32_processes_1000_tasks_each_completed_exactly_once(r, ks, redis_server, tmp_path):
    board = TaskBoard(r, ks)
    board.define("larry-01", graph())
    workers = [Child(f"worker-{n}", worker, redis_server.url, ks.prefix, n, log_dir=tmp_path)
               for n in range(PROCESSES)]
    try:
        results = Child.gather(workers, "the tasks it ran", timeout=300)
    finally:
        for child in workers:
            child.stop()

    runs = [tuple(run) for ran in results for run in ran]
    per_task = Counter(task for task, _ in runs)
    assert len(per_task) == TASKS and set(per_task.values()) == {1}, "some task ran twice or never"
    assert Counter(board.statuses(graph()).values()) == {"completed": TASKS}
    for task, token in runs[:50]:
        assert board.result(task)["token"] == token
    completed_metric = sum(int(r.get(ks.metric(f"larry-0{i}", "tasks_completed")) or 0) for i in (1, 2, 3))
    assert completed_metric == TASKS

    # The stream holds one claim and one completion per task, and every
    # dependent task was claimed after both of its dependencies completed.
    events = EventLog(r, ks).history(count=10 * TASKS)
    claimed = {e.data["task_id"]: e.id for e in events if e.name == "task_claimed"}
    completed = Counter(e.data["task_id"] for e in events if e.name == "task_completed")
    done_at = {e.data["task_id"]: e.id for e in events if e.name == "task_completed"}
    assert len(claimed) == TASKS and set(completed.values()) == {1} and len(completed) == TASKS

    def order(entry_id):
        ms, seq = entry_id.split("-")
        return int(ms), int(seq)

    for task, deps in graph().items():
        for dep in deps:
            assert order(done_at[dep]) < order(claimed[task]), f"{task} claimed before {dep} completed"
