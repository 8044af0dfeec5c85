"""`larry run` at fleet size: workers hosted many to a process (`larry worker-host`), and
coordinators whose per-heartbeat Redis work does not grow with the fleet.

Real redis-server and real processes; no timing is asserted. The host's event hub is tested
on the session's server; the heartbeat's key lookups on a server of the test's own (its
INFO counters must not count other tests' work)."""
from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter

import pytest

from plan.loader import load_config, load_plan_document
from plan.statuses import TaskStatus
from runtime.commands.coordinator import Coordinator
from runtime.commands.run import larry_command
from runtime.commands.worker_host import EventHub
from runtime.coordination.connection import RedisSettings, connect
from runtime.coordination.events import EventLog
from runtime.coordination.keys import Keyspace
from runtime.coordination.registry import WorkerRegistry
from runtime.coordination.tasks import TaskBoard
from runtime.support.timing import Timing
from tests.support.fleet import STACK, simulated_fleet, write_project
from tests.support.waiting import wait_for


def test_a_hub_view_sees_every_event_read_after_it_was_made_in_order_and_none_before(r, ks):
    log = EventLog(r, ks)
    hub = EventHub(r, ks).start()

    def read(count):
        return wait_for(lambda: hub.base + len(hub.events) >= count, f"the hub to read {count} events", 10)
    try:
        log.emit("before", "t")
        read(1)
        early = hub.view()
        log.emit("one", "t")
        read(2)
        late = hub.view()
        log.emit("two", "t")
        seen: list = []
        wait_for(lambda: seen.extend(early.poll(block_ms=200)) or len(seen) >= 2, "both events in the early view", 10)
        assert [e.name for e in seen] == ["one", "two"]
        assert [e.name for e in late.poll(block_ms=5000)] == ["two"]
        assert early.poll(block_ms=None) == []
        hub.drop(early)
        hub.drop(late)
        assert hub.events == []  # nothing kept that no view still needs
    finally:
        hub.stop()


def _key_lookups(client) -> int:
    stats = client.info("stats")
    return stats["keyspace_hits"] + stats["keyspace_misses"]


def _heartbeat_lookups(client, tmp_path, larrys: int) -> int:
    """Keys one coordinator's heartbeat (and metrics refresh) reads, its Larry one of ``larrys``
    of four workers each, every worker of the fleet registered and beating."""
    cfg = load_config(simulated_fleet(larrys, 4), STACK)
    own = load_plan_document(cfg.slice_documents()["larry-000"], "larry-000 slice")
    ks = Keyspace.for_plan(cfg.channels, f"scale{larrys}:")
    registry = WorkerRegistry(client, ks)
    for larry, worker in cfg.workers:
        registry.register(worker.name, larry.id, worker.node)
    coordinator = Coordinator(own, own.larry("larry-000"), client, ks, Timing(60), tmp_path)
    coordinator.initialise()
    before = _key_lookups(client)
    for _ in range(3):
        coordinator.heartbeat()
        coordinator.update_metrics()
    return (_key_lookups(client) - before) // 3


def test_a_coordinators_heartbeat_reads_as_many_keys_in_a_fleet_six_times_larger(own_server, tmp_path):
    """Reading the whole fleet's registry or tasks would add keys per Larry: 2 -> 12 Larrys
    must not change what one Larry's coordinator reads per heartbeat (INFO's keyspace
    hits + misses: one per key a command looks up, a count, not a time)."""
    client = connect(RedisSettings(url=own_server.url))
    small = _heartbeat_lookups(client, tmp_path / "small", 2)
    large = _heartbeat_lookups(client, tmp_path / "large", 12)
    assert small > 0
    assert large == small, f"per heartbeat: {small} key lookups with 2 Larrys, {large} with 12"


@pytest.mark.timeout(240)
def test_a_host_killed_mid_run_is_restarted_and_every_task_completes_once(redis_server, r, tmp_path):
    """One Larry of four simulated workers, two per `larry worker-host`; kill -9 of a host while
    its worker holds a task: the supervisor restarts it, its workers take their leases over,
    and the run completes with every task completed exactly once."""
    project = write_project(tmp_path / "project", simulated_fleet(1, 4))
    run_dir, prefix = tmp_path / "run", "hostkill:"
    ks = Keyspace.for_plan(load_config(simulated_fleet(1, 4), STACK).channels, prefix)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LARRY_")}
    run = subprocess.Popen([*larry_command(), "run", "--stack", STACK, "--project-dir", str(project),
                            "--speed", "60", "--workers-per-process", "2", "--coordination-dir", str(run_dir),
                            "--redis-url", redis_server.url, "--key-prefix", prefix],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        hosted = ["larry-000-w00", "larry-000-w01"]  # host 0's, in plan order
        tasks = [f"{w}-t{k}" for w in hosted for k in range(3)]
        board = TaskBoard(r, ks)
        held = wait_for(lambda: [t for t, s in board.statuses(tasks).items() if s == TaskStatus.IN_PROGRESS],
                        "a task of host 0's workers in progress", 60)
        pid = int((run_dir / "pids" / "worker-host-larry-000-0.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        output, _ = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 0, output[-3000:]
    completed = Counter(e.data["task_id"] for e in EventLog(r, ks).history() if e.name == "task_completed")
    every = [f"larry-000-w{j:02d}-t{k}" for j in range(4) for k in range(3)]
    assert completed == Counter(every), f"task_completed per task: {dict(completed)}"
    log = (run_dir / "logs" / "worker-host-larry-000-0.log").read_text()
    assert "--- start 2" in log, f"host 0 was not restarted after the kill (held {held})"
    assert not (run_dir / "logs" / "worker-larry-000-w00.log").exists()  # hosted, not a process of its own
