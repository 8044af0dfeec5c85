"""Worker registration, heartbeats and dead-worker detection."""

import threading
import time

from runtime.coordination.events import EventLog
from runtime.coordination.registry import WorkerRegistry


def test_register_heartbeat_and_seed_keys(r, ks):
    reg = WorkerRegistry(r, ks, grace_ms=500)
    reg.register("cleanup-worker", "larry-01", "k3s-worker01")
    assert r.get(ks.worker_master("cleanup-worker")) == "larry-01"
    assert r.get(ks.worker_node("cleanup-worker")) == "k3s-worker01"
    assert r.get(ks.worker_status("cleanup-worker")) == "idle"
    reg.heartbeat("cleanup-worker", "busy")
    info = reg.workers()["cleanup-worker"]
    assert info["status"] == "busy" and info["master"] == "larry-01" and info["last_beat_ms"] > 0


def test_silent_worker_is_detected_and_reaped_once(r, ks):
    reg = WorkerRegistry(r, ks, grace_ms=1000)
    reg.register("alive", "larry-02", "k3s-worker02")
    reg.register("silent", "larry-02", "k3s-worker02")
    stop = threading.Event()
    reg.beat_forever("alive", 0.05, stop)
    try:
        time.sleep(1.3)
        assert reg.dead() == ["silent"]
        assert reg.reap("silent") is True and reg.reap("silent") is False
    finally:
        stop.set()
    assert r.get(ks.worker_status("silent")) == "dead"
    assert "silent" not in reg.workers() and "alive" in reg.workers()
    dead = [e for e in EventLog(r, ks).history() if e.name == "worker_dead"]
    assert len(dead) == 1 and dead[0].data["worker"] == "silent" and dead[0].channel == ks.alerts


def test_reap_rechecks_a_worker_that_came_back(r, ks):
    reg = WorkerRegistry(r, ks, grace_ms=200)
    reg.register("flaky", "larry-03", "k3s-worker03")
    time.sleep(0.3)
    assert reg.dead() == ["flaky"]
    reg.heartbeat("flaky")
    assert reg.reap("flaky") is False and reg.dead() == []


def test_pause_and_resume_change_the_flag_and_emit_once_each(r, ks):
    reg = WorkerRegistry(r, ks)
    assert reg.pause("larry-02", "scan-worker-01", "CVE-2025-1") is True
    assert reg.pause("larry-02", "scan-worker-01", "CVE-2025-2") is False, "already paused: the first reason stays"
    assert r.get(ks.worker_paused("scan-worker-01")) == "CVE-2025-1"
    assert reg.resume("larry-02", "scan-worker-01") is True and reg.resume("larry-02", "scan-worker-01") is False
    assert r.get(ks.worker_paused("scan-worker-01")) is None
    events = [(e.name, e.data.get("reason")) for e in EventLog(r, ks).history()]
    assert events == [("worker_paused", "CVE-2025-1"), ("worker_resumed", None)]
