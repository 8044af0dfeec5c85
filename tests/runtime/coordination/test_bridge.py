"""Messages PUBLISHed straight on the seeds' channels reach the durable stream once; malformed
ones are one log line and change nothing."""
from __future__ import annotations

import json
import logging
import threading

from runtime.coordination.bridge import ChannelBridge, bridged_channels, bridging_larrys
from runtime.coordination.events import EventLog
from runtime.coordination.keys import Keyspace
from tests.support.waiting import wait_for

ROLLBACK = '{"from":"larry-01","event":"rollback_initiated"}'  # seed 001 appendix B, verbatim


def subscribed(r, ks, bridges: int = 1) -> None:
    wait_for(lambda: r.pubsub_numsub(ks.alerts)[0][1] >= bridges, "the bridges' subscriptions", timeout=10)


def test_a_raw_publish_on_the_alerts_channel_is_recorded_once_and_the_runtimes_own_not_again(r, ks, caplog):
    log = EventLog(r, ks)
    stop = threading.Event()
    bridges = [ChannelBridge(r, ks), ChannelBridge(r, ks)]  # two coordinators hear every message
    threads = [bridge.start(stop) for bridge in bridges]
    try:
        subscribed(r, ks, 2)
        log.emit("worker_dead", "registry", alert=True, worker="w1")
        with caplog.at_level(logging.WARNING, logger="runtime.coordination.bridge"):
            r.publish(ks.alerts, "{not json")
            r.publish(ks.alerts, '["an", "array"]')
            r.publish(ks.alerts, ROLLBACK)
            wait_for(lambda: [e for e in log.history() if e.name == "rollback_initiated"],
                     "the raw PUBLISH on the stream", timeout=10)
            wait_for(lambda: sum(b.malformed for b in bridges) == 4, "both bridges to drop both malformed messages",
                     timeout=10)
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
    events = log.history()
    assert [e.name for e in events] == ["worker_dead", "rollback_initiated"]
    raw = events[1]
    assert raw.channel == ks.alerts and raw.data == json.loads(ROLLBACK)
    assert r.xrange(ks.stream)[1][1]["source"] == "larry-01"
    warnings = [rec.getMessage() for rec in caplog.records]
    assert len(warnings) == 4 and all(w.startswith(f"ignoring a message on {ks.alerts}: expected a JSON object")
                                      for w in warnings)
    assert all("\n" not in w for w in warnings)


def test_the_seed_004_channels_are_bridged_under_the_stacks_namespace():
    assert bridged_channels(Keyspace.cortex("p:")) == ("p:cortex:masters:escalation", "p:cortex:masters:handoff",
                                    "p:cortex:masters:dependencies", "p:cortex:workers:spawn",
                                    "p:cortex:workers:control", "p:cortex:workers:status")


def test_the_coordinators_of_the_first_three_larrys_bridge_whatever_the_fleets_size():
    assert bridging_larrys(["larry-01", "larry-02"]) == ("larry-01", "larry-02")
    fleet = [f"larry-{i:03d}" for i in range(100)]
    assert bridging_larrys(fleet) == ("larry-000", "larry-001", "larry-002")
