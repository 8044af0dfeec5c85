"""The real aider (pinned, from scripts/agents.sh) against the stand-in Chat Completions server,
metered live through the adapter the way a worker would: stdout fed line by line, the
analytics log polled on a period while aider runs, the rest read at exit. The tokens booked
equal the usage the stand-in served; a persistent server error, after which aider exits 0, is
a failure. Two runs only: aider takes about 10 s to start, and about 80 s to give up on a
broken server (its retries cannot be capped)."""

from __future__ import annotations

import threading

from runtime.agent.usage import Tokens, make_adapter
from tests.runtime.agent.aider_scenarios import MARKER, run_scenario

POLL_PERIOD = 0.05


def metered(aider, name, home):
    """Run scenario ``name`` with the log polled every POLL_PERIOD s from another thread;
    (charges polled live, outcome, run, server)."""
    adapter = make_adapter("aider", log=home / "analytics.jsonl")
    live, done = [], threading.Event()

    def poll() -> None:
        while not done.wait(POLL_PERIOD):
            live.extend(adapter.poll())

    poller = threading.Thread(target=poll, name="aider-log-poller", daemon=True)
    poller.start()
    try:
        run, server, _ = run_scenario(aider, name, home, adapter.feed)
    finally:
        done.set()
        poller.join(10)
    assert not poller.is_alive(), "timed out after 10 s waiting for the log poller to stop"
    return live, adapter.finish(run.exit_code), run, server


def test_an_edit_is_applied_and_the_booked_usage_equals_what_the_stand_in_served(aider, tmp_path):
    live, outcome, run, server = metered(aider, "edit", tmp_path)
    assert not outcome.failed, f"{outcome.reason}\n" + "\n".join(run.lines[-20:]) + run.stderr[-2000:]
    assert (tmp_path / "work" / MARKER).read_text() == "larry\n"
    assert server.unscripted == [] and len(server.requests) == 1
    booked = sum((c.tokens for c in live + ([outcome.charge] if outcome.charge else [])), Tokens())
    assert booked == Tokens(**server.served.__dict__) == outcome.usage and booked.total > 0
    assert outcome.cost_usd and outcome.cost_usd > 0


def test_a_persistent_server_error_is_a_failure_although_aider_exits_0(aider, tmp_path):
    live, outcome, run, server = metered(aider, "server_error", tmp_path)
    assert run.exit_code == 0
    assert outcome.failed and "without a message_send event" in outcome.reason, outcome.reason
    assert {r.status for r in server.requests} == {500} and len(server.requests) == 27, \
        "aider's own 9 attempts, each tried 3 times by the OpenAI client"
    assert live == [] and outcome.charge is None and server.served.total == 0
