"""File-based fallback: leases and events on a shared directory; switching away from and back to Redis."""

import multiprocessing
import time
from collections import Counter

from runtime.coordination.connection import RedisSettings, connect
from runtime.coordination.events import EventLog
from runtime.coordination.fallback import Degrader, FileCoordination
from tests.support.redis_servers import RedisServer
from tests.support.waiting import wait_for


def test_file_leases_exclusive_expire_and_fence(tmp_path):
    files = FileCoordination(tmp_path)
    token = files.acquire("t", "a", ttl_s=0.2)
    assert token and files.acquire("t", "b", ttl_s=10) is None
    assert files.acquire("t", "a", ttl_s=0.2) == token, "re-acquire by the owner is idempotent"
    newer = wait_for(lambda: files.acquire("t", "b", ttl_s=10), "a's 0.2 s file lease to expire", timeout=10)
    assert newer > token
    assert files.release("t", "a", token) == "stolen"
    assert files.complete("t", "a", token, {"late": True}) == "stale"
    assert files.complete("t", "b", newer, {"ok": True}) == "accepted"
    assert files.complete("t", "b", newer, {"ok": True}) == "finished"
    assert files.acquire("t", "c", ttl_s=10) is None
    assert files.completed()["t"]["data"] == {"ok": True}


def claim_all(root, n, out):
    files = FileCoordination(root)
    mine = []
    for i in range(60):
        token = files.acquire(f"t{i}", f"p{n}", ttl_s=30)
        if token and files.complete(f"t{i}", f"p{n}", token, n) == "accepted":
            mine.append(f"t{i}")
    with open(out, "w") as f:
        f.write("\n".join(mine))


def test_file_leases_across_processes_each_task_once(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=claim_all, args=(tmp_path / "c", n, tmp_path / f"{n}.txt")) for n in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 6, "a claiming process failed or hung"
    done = Counter(t for n in range(6) for t in (tmp_path / f"{n}.txt").read_text().split())
    assert len(done) == 60 and set(done.values()) == {1}
    events, _ = FileCoordination(tmp_path / "c").events()
    assert Counter(e["event"] for e in events)["task_completed"] == 60


class FakeClock:
    def __init__(self):
        self.now, self.slept = 0.0, 0

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += 1


def test_degrades_after_configured_outage_and_replays_on_return(tmp_path, ks):
    server = RedisServer(tmp_path / "redis").start()
    files = FileCoordination(tmp_path / "coordination")
    clock = FakeClock()
    d = Degrader(connect(RedisSettings(url=server.url, retry_for=30)), degrade_after=0.3,
                 clock=lambda: clock.now, sleep=clock.sleep)
    assert d.reachable() and d.degrade() is False and clock.slept == 0
    port = server.port
    server.kill()
    started = time.monotonic()
    assert not d.reachable(), "a probe must not wait out the client's 30 s of retries"
    assert d.degrade() is True and clock.now >= 0.3 and clock.slept >= 2, "degraded before the outage lasted"
    assert time.monotonic() - started < 10
    token = files.acquire("t", "w1", ttl_s=30)
    files.complete("t", "w1", token, {"ok": True})
    files.append_event("progress_update", "larry-01", progress=40)

    back = RedisServer(tmp_path / "redis2")
    back.port = port
    back.start()
    try:
        assert d.reachable() and d.degrade() is False
        assert files.replay_into(EventLog(back.client(), ks)) == 3
        names = [e.name for e in EventLog(back.client(), ks).history()]
        assert names == ["task_claimed", "task_completed", "progress_update"]
        assert files.replay_into(EventLog(back.client(), ks)) == 0
        assert len(EventLog(back.client(), ks).history()) == 3, "replayed twice"
    finally:
        back.stop()
