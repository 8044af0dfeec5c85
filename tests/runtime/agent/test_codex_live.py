"""The real Codex CLI (pinned, from scripts/agents.sh) against the stand-in Responses server,
metered live through the adapter the way a worker reads it: the tokens booked equal the usage
the stand-in served, a tool call runs for real, and a persistent server error is a failure
after a capped number of requests."""

from __future__ import annotations

import pytest

from runtime.agent.usage import Tokens, make_adapter
from tests.runtime.agent.codex_scenarios import MARKER, run_scenario


def metered(codex, name, home):
    """Run scenario ``name``; (charges as (line number, charge), outcome, run, server)."""
    adapter = make_adapter("codex")
    charges, seen = [], []

    def on_line(line: str) -> None:
        seen.append(line)
        charges.extend((len(seen), charge) for charge in adapter.feed(line))

    run, server = run_scenario(codex, name, home, on_line)
    return charges, adapter.finish(run.exit_code), run, server


@pytest.mark.parametrize("name", ["plain", "tool_call", "rate_limited"])
def test_booked_usage_equals_the_usage_the_stand_in_served(codex, tmp_path, name):
    charges, outcome, run, server = metered(codex, name, tmp_path)
    assert not outcome.failed, f"{outcome.reason}\n{run.stderr[-2000:]}"
    assert server.unscripted == [], "every model request was scripted"
    assert outcome.charge is None
    assert sum((c.tokens for _, c in charges), Tokens()) == Tokens(**server.served.__dict__) == outcome.usage
    assert server.served.total > 0
    # Live: charged when the turn.completed line was read, not at the end of the run.
    assert [at for at, _ in charges] == [i for i, line in enumerate(run.lines, 1) if '"turn.completed"' in line]


def test_the_tool_call_ran_for_real(codex, tmp_path):
    _, outcome, _, server = metered(codex, "tool_call", tmp_path)
    assert (tmp_path / "work" / MARKER).read_text() == "larry\n"
    assert len(server.requests) == 2 and outcome.text == "The marker file is written."
    # The second request carries the command's result back to the model.
    outputs = [item for item in server.requests[1].body["input"] if item.get("type") == "function_call_output"]
    assert [o["call_id"] for o in outputs] == ["call_standin000100"]


def test_a_persistent_server_error_is_a_failure_without_a_retry_storm(codex, tmp_path):
    charges, outcome, run, server = metered(codex, "server_error", tmp_path)
    assert run.exit_code == 1
    assert outcome.failed and outcome.reason.startswith("turn failed: "), outcome.reason
    assert [r.status for r in server.requests] == [500] * 9, "2 request retries x 2 stream retries: 9 requests"
    assert charges == [] and server.served.total == 0
