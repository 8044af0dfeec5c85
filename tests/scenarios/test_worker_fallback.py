"""`larry worker` degrading to file-based coordination when its redis-server goes away (seed risk 2).

A real redis-server of the test's own is shut down (saving its state) while the worker's
second task runs; the worker finishes that task on the volume, and once the server is
started again on the same port, replays: statuses, results, deferred ledger charges
(exactly once) and the volume's events.
"""
from __future__ import annotations

import json
import os
import signal
import uuid

import pytest

from runtime import cli
from runtime.commands.coordinator import Coordinator
from runtime.coordination.events import EventLog
from runtime.coordination.fallback import FileCoordination
from runtime.coordination.keys import Keyspace
from runtime.coordination.ledger import snapshot
from runtime.coordination.tasks import TaskBoard
from runtime.reporting.results import read_result, results_dir
from runtime.support.timing import Timing
from tests.runtime.commands.test_worker import in_thread, join_ok, payload
from tests.runtime.commands.worker_rig import CORTEX, ROOT
from tests.support.redis_servers import MissingBinary, RedisServer
from tests.support.waiting import wait_for

TASKS = ["audit-github-actions", "optimize-cronjob-schedules"]

#: The second task waits at a gate (the test stops Redis first), then reports 150 tokens.
GATED = payload("""
    import os, time
    gate = os.environ["FALLBACK_TEST_GATE"]
    if os.environ["LARRY_TASK_ID"] == "optimize-cronjob-schedules":
        open(gate + ".started", "a").close()
        while not os.path.exists(gate):
            time.sleep(0.02)
    print('@larry {"tokens": 100}')
    print('@larry {"tokens": 50, "message": "done"}', flush=True)
""")


@pytest.fixture
def server(tmp_path):
    try:
        redis = RedisServer(tmp_path, "fallback-redis").start()
    except MissingBinary as missing:
        pytest.skip(str(missing))
    yield redis
    redis.stop()


def test_worker_finishes_on_the_volume_while_redis_is_down_and_replays_when_it_returns(
        server, tmp_path, monkeypatch):
    monkeypatch.setenv("LARRY_DEADLINE_ALLOWANCE", "60")
    monkeypatch.setenv("LARRY_REDIS_RETRY_FOR", "1")
    monkeypatch.setenv("LARRY_DEGRADE_AFTER", "0.5")
    monkeypatch.delenv("LARRY_REDIS_SENTINELS", raising=False)
    gate = tmp_path / "gate"
    monkeypatch.setenv("FALLBACK_TEST_GATE", str(gate))
    sigterm = signal.getsignal(signal.SIGTERM)
    r = server.client()
    ks = Keyspace.for_plan(CORTEX.channels, f"f{uuid.uuid4().hex[:10]}:")
    coordination = tmp_path / "coordination"
    Coordinator(CORTEX, CORTEX.larry("cicd"), r, ks, Timing(600), coordination).initialise()
    files = FileCoordination(coordination / "fallback")

    def outage():
        wait_for(lambda: os.path.exists(f"{gate}.started"), "the second task's payload", timeout=20)
        r.shutdown(save=True)  # a clean stop: the restarted server has the state
        server.proc.wait(10)
        gate.touch()
        wait_for(lambda: TASKS[1] in files.completed(), "the file-mode completion", timeout=20)
        server.start()

    def worker() -> int:
        return cli.main(["worker", "--stack", "cortex", "--project-dir", str(ROOT), "--larry", "cicd",
                         "--worker", "analysis-worker-01", "--redis-url", server.url, "--key-prefix", ks.prefix,
                         "--coordination-dir", str(coordination), "--speed", "600", "--kill-grace", "0.5",
                         "--", *GATED])

    helper = in_thread(outage)
    try:
        assert worker() == 0
        join_ok(helper)
        r = server.client()
        board = TaskBoard(r, ks)
        assert board.statuses(TASKS) == dict.fromkeys(TASKS, "completed")

        # The second task completed on the volume, then through the fenced path in Redis.
        done = files.completed()[TASKS[1]]
        assert done["data"]["tokens"] == 150
        result = board.result(TASKS[1])
        assert result["data"]["mode"] == "file" and result["data"]["file_fence"] == done["token"]
        record = read_result(results_dir(coordination, "cicd"), TASKS[1], result["token"])
        assert record["status"] == "completed" and record["mode"] == "file" and record["tokens"] == 150

        events = [json.loads(line) for line in (coordination / "fallback" / "events.jsonl").read_text().splitlines()]
        names = [e["event"] for e in events]
        assert {"worker_degraded", "task_claimed", "task_completed", "tokens_deferred"} <= set(names)
        stream = EventLog(r, ks).history()
        assert any(e.name == "tokens_deferred" and e.data.get("mode") == "file" for e in stream)
        # 150 for the first task in Redis mode, 150 deferred from file mode: booked once.
        assert snapshot(r, ks, "cicd")["committed"] == 300

        # A restarted worker replays again: nothing is booked or completed twice.
        replayed = len(stream)
        assert worker() == 0
        assert snapshot(r, ks, "cicd")["committed"] == 300
        completions = [e for e in EventLog(r, ks).history()[replayed:] if e.name == "task_completed"]
        assert completions == []
    finally:
        signal.signal(signal.SIGTERM, sigterm)
