"""Durable events and phase progress."""

import json
import threading
import time

import pytest
import redis

from runtime.coordination.connection import RedisSettings, connect
from runtime.coordination.events import EventListener, EventLog
from runtime.coordination.keys import Keyspace
from runtime.coordination.leases import LeaseManager
from runtime.coordination.phases import PhaseTracker, execution_trackers
from runtime.coordination.tasks import TaskBoard
from tests.support.waiting import wait_for


def test_event_is_streamed_and_published_on_the_seed_channel(r, ks):
    sub = r.pubsub()
    sub.subscribe(ks.coordination)
    wait_for(lambda: sub.get_message(timeout=0.5), "the subscription confirmation", timeout=10)
    entry_id = EventLog(r, ks).emit("progress_update", "larry-01", progress=50, message="Database consolidation")
    message = wait_for(lambda: sub.get_message(ignore_subscribe_messages=True, timeout=0.5),
                       "the event on the seed channel", timeout=10)
    published = json.loads(message["data"])
    assert published["event"] == "progress_update" and published["from"] == "larry-01"
    assert published["progress"] == 50 and published["timestamp"].endswith("Z")
    (event,) = EventLog(r, ks).history()
    assert event.id == entry_id and event.data == published and event.channel == ks.coordination
    sub.close()


def test_listener_catches_up_after_disconnect_without_gaps_or_duplicates(r, ks, settings):
    log = EventLog(r, ks)
    listener_client = connect(settings)
    listener = EventListener(listener_client, ks, "$")
    log.emit("e", "x", n=0)
    assert [e.data["n"] for e in listener.poll(None)] == [0]

    # Drop the listener's connection server-side, then emit while it is away.
    listener_client.client_setname("listener")
    for client in r.client_list():
        if client.get("name") == "listener":
            r.client_kill_filter(_id=client["id"])
    for n in range(1, 6):
        log.emit("e", "x", n=n)
    seen = []
    wait_for(lambda: seen.extend(e.data["n"] for e in listener.poll(block_ms=500)) or len(seen) >= 5,
             "the five events emitted while the listener was away", timeout=20)
    assert seen == [1, 2, 3, 4, 5]
    assert listener.poll(block_ms=None) == []
    listener_client.close()


def test_restarted_listener_resumes_after_its_persisted_id(r, ks):
    client = r
    log = EventLog(client, ks)
    log.emit("e", "x", n=1)
    listener = EventListener(client, ks, "0-0")
    assert [e.data["n"] for e in listener.poll(None)] == [1]
    # A restarted listener resumes from the ID it persisted.
    resumed = EventListener(client, ks, listener.positions)
    log.emit("e", "x", n=2)
    assert [e.data["n"] for e in resumed.poll(None)] == [2]
    assert resumed.gaps == 0


def test_listener_reports_a_gap_when_its_position_was_trimmed(r):
    ks = Keyspace(prefix=f"trim{id(r)}:", stream_maxlen=10)
    log = EventLog(r, ks)
    first = log.emit("e", "x", n=0)
    for n in range(1, 400):
        log.emit("e", "x", n=n)
    assert EventListener(r, ks, first).gaps == 1


def test_malformed_entries_are_counted_and_skipped(r, ks):
    listener = EventListener(r, ks, "$")
    r.xadd(ks.stream, {"channel": ks.coordination, "payload": "{not json"})
    r.xadd(ks.stream, {"channel": ks.coordination})
    r.xadd(ks.stream, {"channel": ks.coordination, "payload": json.dumps([1, 2])})
    r.xadd(ks.stream, {"channel": ks.coordination, "payload": json.dumps({"no": "event"})})
    good = EventLog(r, ks).emit("phase_complete", "larry-02")
    events = listener.poll(None)
    assert [e.id for e in events] == [good] and listener.malformed == 4


def test_listen_yields_in_order_until_stopped(r, ks):
    listener = EventListener(r, ks, "$")
    stop = threading.Event()
    got = []

    def consume():
        for event in listener.listen(stop, block_ms=100):
            got.append(event.data["n"])
            if len(got) == 20:
                stop.set()

    thread = threading.Thread(target=consume)
    thread.start()
    for n in range(20):
        EventLog(r, ks).emit("e", "x", n=n)
    thread.join(5)
    assert got == list(range(20))


def test_phase_status_moves_forward_only_with_timestamps(r, ks):
    phase = PhaseTracker(r, ks, "larry-01")
    assert phase.init() is True and phase.init() is False
    assert phase.complete() == "pending", "cannot complete a phase that never started"
    assert phase.start() == "started" and phase.start() == "in_progress"
    snap = phase.snapshot()
    assert snap["status"] == "in_progress" and snap["started_at"] and snap["completed_at"] is None
    assert phase.complete("done") == "completed" and phase.complete() == "already"
    assert phase.start() == "completed" and phase.fail("late") == "completed"
    snap = phase.snapshot()
    assert snap["status"] == "completed" and snap["progress"] == 100 and snap["completed_at"]
    assert r.get(ks.phase_status("larry-01")) == "completed"  # the seed's redis-cli GET works


def test_progress_is_monotonic_and_replays_emit_nothing(r, ks):
    phase = PhaseTracker(r, ks, "larry-02")
    phase.start()
    listener = EventListener(r, ks, "$")
    assert phase.progress(30, "scanning") == 30
    assert phase.progress(20, "late report") == 30
    assert phase.progress(30, "replay") == 30
    assert phase.progress(55) == 55
    assert phase.progress(250) == 100
    events = listener.poll(None)
    assert [(e.name, e.data["progress"]) for e in events] == [("progress_update", 30), ("progress_update", 55),
                                                              ("progress_update", 100)]
    assert r.get(ks.phase_progress("larry-02")) == "100"


def test_progress_from_many_threads_ends_at_the_maximum(r, ks):
    phase = PhaseTracker(r, ks, "larry-03")
    phase.start()
    threads = [threading.Thread(target=lambda v=v: phase.progress(v)) for v in range(0, 100, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert phase.snapshot()["progress"] == 99


def test_failed_phase_alerts(r, ks):
    listener = EventListener(r, ks, "$")
    phase = PhaseTracker(r, ks, "larry-01")
    phase.start()
    assert phase.fail("postgres consolidation broke") == "failed"
    (started, failed) = listener.poll(None)
    assert failed.name == "phase_failed" and failed.channel == ks.alerts


def test_client_must_decode_responses(redis_server, ks):
    raw = redis.Redis.from_url(redis_server.url)
    with pytest.raises(ValueError, match="decode_responses"):
        EventLog(raw, ks)


def test_lua_timestamps_match_python_across_calendar_edges(r, ks):
    from datetime import datetime, timezone

    from runtime.coordination.events import lua_script
    script = r.register_script(lua_script(ks, "return iso8601(tonumber(ARGV[2]), tonumber(ARGV[3]))"))
    for text in ["1970-01-01T00:00:00.000", "2000-02-29T12:34:56.789", "2024-12-31T23:59:59.999",
                 "2025-03-01T00:00:00.001", "2100-02-28T23:00:00.500", "2026-11-21T05:55:34.123"]:
        moment = datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
        secs = int(moment.timestamp())
        assert script(args=["x", secs, moment.microsecond]) == text + "Z"


def test_event_timestamp_is_the_primarys_clock(r, ks):
    from datetime import datetime
    entry_id = EventLog(r, ks).emit("e", "x")
    (event,) = EventLog(r, ks).history()
    stamped = datetime.fromisoformat(event.data["timestamp"].replace("Z", "+00:00")).timestamp() * 1000
    assert abs(stamped - int(entry_id.split("-")[0])) <= 2


def test_cortex_stack_uses_its_own_channels_and_stream(r, ks):
    p = ks.prefix
    ks = Keyspace.cortex(prefix=p)
    sub = r.pubsub()
    sub.subscribe(p + "cortex:masters:escalation")
    wait_for(lambda: sub.get_message(timeout=0.5), "the subscription confirmation", timeout=10)
    EventLog(r, ks).emit("ESCALATION", "security-master", alert=True, severity="critical")
    escalation = wait_for(lambda: sub.get_message(ignore_subscribe_messages=True, timeout=0.5),
                          "the escalation on its channel", timeout=10)
    assert json.loads(escalation["data"])["event"] == "ESCALATION"
    assert r.xlen(p + "cortex:events:system") == 1
    assert ks.phase_status("larry-01") == p + "phase:larry-01:status"
    sub.close()


def test_names_must_be_printable_ascii():
    with pytest.raises(ValueError):
        Keyspace(coordination_channel='bad"\nname\u00e9')


def test_history_reads_every_page_up_to_its_end_and_skips_malformed_entries(r, ks):
    log = EventLog(r, ks)
    ids = [log.emit("progress_update", "larry-01", progress=n) for n in range(7)]
    r.xadd(ks.stream, {"channel": ks.coordination, "payload": "not json"})
    later = log.emit("progress_update", "larry-01", progress=99)
    everything = log.history(count=2)  # four round trips, one of them all but malformed
    assert [e.id for e in everything] == ids + [later]
    assert [e.data["progress"] for e in log.history(after=ids[1], until=ids[4], count=2)] == [2, 3, 4]


def test_a_wait_longer_than_the_socket_timeout_is_not_a_lost_connection(ks, redis_server):
    # No retries: a read that outlasted the socket timeout would raise at once.
    client = connect(RedisSettings(url=redis_server.url, socket_timeout=0.4, retry_for=0))
    listener = EventListener(client, ks, "$")
    started = time.monotonic()
    assert listener.poll(block_ms=1200) == []
    assert 1.1 < time.monotonic() - started < 3, "the wait is the caller's, in slices"
    timer = threading.Timer(0.9, lambda: EventLog(client, ks).emit("progress_update", "larry-01", progress=1))
    timer.start()
    (event,) = listener.poll(block_ms=5000)
    timer.join()
    assert event.data["progress"] == 1 and time.monotonic() - started < 5


def _two_larrys_with_a_task_each(r, ks):
    board = TaskBoard(r, ks)
    board.define("larry-01", {"t1": ()})
    board.define("larry-02", {"t2": ()})
    for larry, task in (("larry-01", "t1"), ("larry-02", "t2")):
        manager = LeaseManager(r, ks, larry, worker="w")
        assert manager.complete(manager.acquire(task).lease, {})


def test_a_tasks_lease_transitions_are_on_its_larrys_stream_and_a_listener_reads_only_the_larrys_it_names(r, ks):
    log = EventLog(r, ks)
    first = EventListener(r, ks, "$", larrys=("larry-01",))
    everyone = EventListener(r, ks, "$")  # before any Larry has a stream: finds them as they appear
    _two_larrys_with_a_task_each(r, ks)
    log.emit("progress_update", "larry-02", progress=10, message="on the run's stream")
    assert [e.name for e in log.history(larrys=())] == ["progress_update"]
    assert [(e.name, e.data["task_id"]) for e in log.history(larrys=("larry-02",)) if "task_id" in e.data] == [
        ("task_claimed", "t2"), ("task_completed", "t2")]
    assert r.xlen(ks.larry_stream("larry-01")) == 2 and r.xlen(ks.larry_stream("larry-02")) == 2
    seen = [(e.name, e.data.get("task_id")) for e in first.poll(None)]
    assert seen == [("task_claimed", "t1"), ("task_completed", "t1"), ("progress_update", None)]
    whole = [(e.name, e.data.get("task_id")) for e in everyone.poll(None)]
    assert whole == [("task_claimed", "t1"), ("task_completed", "t1"), ("task_claimed", "t2"),
                     ("task_completed", "t2"), ("progress_update", None)]


def test_a_task_no_coordinator_defined_has_its_events_on_the_runs_stream(r, ks):
    manager = LeaseManager(r, ks, "larry-01", worker="w")
    manager.release(manager.acquire("loose").lease)
    assert [e.name for e in EventLog(r, ks).history(larrys=())] == ["task_claimed", "task_released"]
    assert r.smembers(ks.streamed_larrys) == set()


def test_a_workers_start_goes_to_its_larrys_stream_which_whole_run_readers_then_find(r, ks):
    log = EventLog(r, ks)
    log.emit("worker_started", "larry-03/w", home="larry-03", larry="larry-03", worker="w")
    assert r.smembers(ks.streamed_larrys) == {"larry-03"}
    assert log.history(larrys=()) == [] and [e.name for e in log.history()] == ["worker_started"]


def test_ids_order_events_across_streams_and_a_stream_written_around_the_runtime_still_takes_events(r, ks):
    _two_larrys_with_a_task_each(r, ks)  # all within a millisecond or two, on three streams
    written = ["task_claimed", "task_completed"] * 2
    assert [e.name for e in EventLog(r, ks).history()] == written, "merged by ID: the order they were written"
    r.xadd(ks.stream, {"payload": json.dumps({"event": "raw"})}, id="99999999999999-0")  # ahead of every ID
    entry_id = EventLog(r, ks).emit("progress_update", "larry-01", progress=1, message="after the raw entry")
    assert entry_id == "99999999999999-1" and [e.name for e in EventLog(r, ks).history()][-2:] == [
        "raw", "progress_update"]


def test_a_larrys_phase_events_are_on_its_stream_and_an_execution_phases_on_the_runs(r, ks):
    phase = PhaseTracker(r, ks, "larry-01")
    phase.start()
    phase.progress(40, "halfway")
    phase.complete("done")
    execution_trackers(r, ks)[0].start()
    log = EventLog(r, ks)
    assert [(e.name, e.data["larry"]) for e in log.history(larrys=())] == [("phase_started", "execution-0")]
    assert [e.name for e in log.history(larrys=("larry-01",))] == [
        "phase_started", "progress_update", "phase_complete", "phase_started"]
    assert r.smembers(ks.streamed_larrys) == {"larry-01"}, "an execution phase is no Larry"
