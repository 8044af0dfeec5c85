"""Every key, channel and stream name of a run, and the patterns cleanup scans with."""
import fnmatch

import pytest

from runtime.coordination.keys import Keyspace, glob_escape


def test_without_a_prefix_the_seeds_names_appear_verbatim():
    ks = Keyspace()
    assert ks.phase_status("larry-01") == "phase:larry-01:status"
    assert ks.task_lock("t1") == "task:lock:t1" and ks.task_status("t1") == "task:status:t1"
    assert ks.worker_master("w") == "worker:w:master" and ks.worker_heartbeats == "worker:heartbeats"
    assert ks.metric("larry-01", "tasks") == "metrics:larry-01:tasks"
    assert ks.token_account("larry-01/m1/pool") == "tokens:acct:larry-01/m1/pool"
    assert (ks.token_ops, ks.token_open) == ("tokens:ops", "tokens:open")
    assert (ks.coordination, ks.alerts, ks.stream) == ("larry:coordination", "larry:alerts", "larry:events")


def test_a_prefix_namespaces_every_name():
    ks = Keyspace(prefix="run7:")
    names = [ks.phase_status("l"), ks.task_lock("t"), ks.worker_status("w"), ks.token_account("l"), ks.token_ops,
             ks.barrier_arrived("convergence"), ks.stream, ks.coordination, ks.alerts, ks.token_open]
    assert all(name.startswith("run7:") for name in names)


def test_cortex_names_and_plan_channels():
    cortex = Keyspace.cortex("p:")
    assert cortex.stream == "p:cortex:events:system" and cortex.token_ops == "p:tokens:ops"

    class Channels:
        coordination, alerts, events = "c", "a", "cortex:events:system"
    ks = Keyspace.for_plan(Channels, "x:")
    assert (ks.coordination, ks.alerts, ks.stream, ks.meta_coordinator) == ("x:c", "x:a", "x:cortex:events:system",
                                                                            "coordinator-master")


def test_lua_constants_match_the_python_names():
    ks = Keyspace(prefix="q:")
    lua = ks.lua()
    assert 'local LOCK_PREFIX = "q:task:lock:"' in lua
    assert 'local STREAM = "q:larry:events"' in lua
    assert f"local MAXLEN = {ks.stream_maxlen}" in lua


def test_non_ascii_names_are_refused():
    with pytest.raises(ValueError, match="printable ASCII"):
        Keyspace(prefix="é")


def test_run_patterns_match_every_family_and_the_stream_and_only_this_prefix():
    ks = Keyspace(prefix="a*[b]:")
    patterns = ks.run_patterns()
    ours = [ks.phase_status("l"), ks.task_result("t"), ks.worker_node("w"), ks.metric("l", "m"),
            ks.token_account("l"), ks.barrier_released("reports"), ks.stream, ks.handoffs, ks.handoff_seq,
            ks.notices, ks.worker_terminate("w"), ks.master_silent("l", "m")]
    theirs = ["aX[b]:phase:l:status", "other:task:lock:t", "a*[b]:unrelated"]

    def matched(key):  # Redis glob semantics for these patterns: fnmatch after unescaping brackets
        return any(fnmatch.fnmatchcase(key, p.replace("\\*", "[*]").replace("\\[", "[[]").replace("\\]", "[]]"))
                   for p in patterns)
    assert all(matched(key) for key in ours)
    assert not any(matched(key) for key in theirs)


def test_glob_escape_escapes_every_glob_character():
    assert glob_escape("a*b?c[d]e\\") == "a\\*b\\?c\\[d\\]e\\\\"
