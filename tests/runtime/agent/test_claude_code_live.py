"""The real Claude Code CLI (pinned, from scripts/agents.sh) against the stand-in Anthropic
server, metered live through the adapter the way a worker reads it: the tokens booked equal
the usage the stand-in served, and a persistent server error is a failure after a capped
number of requests."""

from __future__ import annotations

import json

import pytest

from runtime.agent.usage import Tokens, make_adapter
from tests.runtime.agent.claude_code_scenarios import MARKER, run_scenario


def metered(claude_code, name, home, stop_after: int | None = None):
    """Run scenario ``name``, stopped with SIGTERM once ``stop_after`` charges are booked;
    (charges as (line number, charge), outcome, run, server)."""
    adapter = make_adapter("claude-code")
    charges, seen = [], []

    def on_line(line: str) -> bool:
        seen.append(line)
        charges.extend((len(seen), charge) for charge in adapter.feed(line))
        return stop_after is not None and len(charges) >= stop_after

    run, server = run_scenario(claude_code, name, home, on_line)
    outcome = adapter.finish(run.exit_code)
    if outcome.charge:
        charges.append((len(seen) + 1, outcome.charge))
    return charges, outcome, run, server


@pytest.mark.parametrize("name", ["plain", "tool_call", "multi_block", "rate_limited", "cut_stream",
                                  "partial_many_turns", "partial_cut_stream"])
def test_booked_usage_equals_the_usage_the_stand_in_served(claude_code, tmp_path, name):
    charges, outcome, run, server = metered(claude_code, name, tmp_path)
    assert not outcome.failed, f"{outcome.reason}\n{run.stderr[-2000:]}"
    assert server.unscripted == [], "every model request was scripted"
    assert sum((c.tokens for _, c in charges), Tokens()) == server.served
    assert outcome.usage.total == server.served.total > 0
    # Live: each message is charged when its first line is read, before the result line.
    result_line = next(i for i, line in enumerate(run.lines, 1) if json.loads(line)["type"] == "result")
    assert charges and all(at < result_line for at, c in charges if not c.key.endswith(":result"))


def test_the_tool_call_ran_for_real(claude_code, tmp_path):
    _, outcome, _, server = metered(claude_code, "tool_call", tmp_path)
    assert (tmp_path / "work" / MARKER).read_text() == "larry\n"
    assert len(server.requests) == 2 and outcome.text == "The marker file is written."


def test_a_persistent_server_error_is_a_failure_without_a_retry_storm(claude_code, tmp_path):
    charges, outcome, run, server = metered(claude_code, "server_error", tmp_path)
    assert run.exit_code == 1
    assert outcome.failed and outcome.reason.startswith("api_error (API status 500)"), outcome.reason
    assert [r.status for r in server.requests] == [500, 500, 500], "CLAUDE_CODE_MAX_RETRIES=2: three requests"
    assert charges == [] and server.served.total == 0


@pytest.mark.parametrize("name", ["many_turns", "partial_many_turns"])
def test_a_run_stopped_mid_way_keeps_what_it_was_charged(claude_code, tmp_path, name):
    # The worker stops an agent at its budget with SIGTERM: the CLI then prints no result, so
    # what stays booked is what was charged live. With partial messages that is every message
    # the stand-in finished serving (and the start of one under way, if any); without, each
    # seen message's start usage, short of what was served by its output beyond one token.
    partial = name.startswith("partial_")
    charges, outcome, run, server = metered(claude_code, name, tmp_path, stop_after=4 if partial else 2)
    assert outcome.failed and "without a result line" in outcome.reason and outcome.charge is None
    booked = sum((c.tokens for _, c in charges), Tokens())
    assert booked == outcome.usage
    assert len(server.requests) <= 3, "stopped: at most the request under way after the second message"
    if partial:
        # Within one message: the two finished messages exactly, of the one under way (if the
        # CLI sent it before the signal) at most what the stand-in served.
        gap = [s - b for s, b in zip(server.served.as_dict().values(), booked.as_dict().values())]
        last = server.requests[-1].served.as_dict().values() if len(server.requests) == 3 else [0] * 4
        assert all(0 <= g <= most for g, most in zip(gap, last)), (booked, server.served)
        assert booked.total >= sum((r.served for r in server.requests[:2]), Tokens()).total
    else:
        seen = [int(c.key.rsplit("msg_standin", 1)[1]) for _, c in charges]
        served = sum((server.requests[n - 1].served for n in seen), Tokens())
        assert booked == Tokens(served.input, len(seen), served.cache_read, served.cache_write), "one output token each"
