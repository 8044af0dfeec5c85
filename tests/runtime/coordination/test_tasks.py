"""Task definitions, statuses and the re-queueing of orphaned tasks."""

import pytest

from runtime.coordination.events import EventLog
from runtime.coordination.leases import LeaseManager
from runtime.coordination.tasks import TaskBoard


def test_define_is_idempotent_ordered_and_refuses_cycles(r, ks):
    board = TaskBoard(r, ks)
    assert board.define("larry-01", {"b": ["a"], "a": []}) == ["a", "b"]
    r.set(ks.task_status("a"), "completed")
    board.define("larry-01", {"b": ["a"], "a": []})
    assert board.statuses(["a", "b", "unknown"]) == {"a": "completed", "b": "pending", "unknown": None}
    with pytest.raises(ValueError, match="dependency cycle"):
        board.define("larry-02", {"x": ["y"], "y": ["x"]})
    assert r.get(ks.task_status("x")) is None, "nothing written for a refused graph"


def test_requeue_only_an_in_progress_task_whose_lease_is_gone(r, ks):
    board = TaskBoard(r, ks)
    board.define("larry-01", {"t": []})
    assert board.requeue("larry-01", "t", "w1") is False, "pending: nothing to re-queue"
    holder = LeaseManager(r, ks, "larry-01", worker="w1")
    holder.acquire("t")
    assert board.requeue("larry-01", "t", "w1") is False, "a live holder keeps its task"
    r.delete(ks.task_lock("t"))  # its lease expired
    assert board.requeue("larry-01", "t", "w1") is True and board.requeue("larry-01", "t", "w1") is False
    assert board.statuses(["t"]) == {"t": "pending"}
    (event,) = [e for e in EventLog(r, ks).history() if e.name == "task_requeued"]
    assert event.data == {**event.data, "larry": "larry-01", "task_id": "t", "worker": "w1"}
