"""The Codex usage adapter on recorded output of the pinned CLI (0.171.0) run against the
stand-in Responses server (tests/runtime/agent/codex_scenarios.py): what it books equals what
the stand-in served, kind by kind; it prices the tokens from the profile's prices; it tells a
retry notice from a failure."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from plan.model import MAX_TOKENS
from runtime.agent.usage import Tokens, make_adapter
from runtime.agent.usage.codex import Codex
from tests.runtime.agent.codex_scenarios import RECORDINGS, SCENARIOS
from tests.support.agent_clis import booked

MODEL = "gpt-5.5"
# US dollars per million tokens (the profile's ``prices`` entry; plan.model.ModelPrice's fields)
PRICE = SimpleNamespace(input=1.25, output=10.0, cache_read=0.125, cache_write=0.0)


def recording(name: str) -> tuple[list[str], dict]:
    lines = (RECORDINGS / f"{name}.jsonl").read_text().splitlines()
    return lines, json.loads((RECORDINGS / f"{name}.served.json").read_text())


def meter(lines: list[str], exit_code: int, adapter: Codex | None = None):
    """(live charges, outcome) of feeding ``lines`` to a fresh adapter."""
    adapter = adapter or Codex(MODEL, {MODEL: PRICE})
    live = [charge for line in lines for charge in adapter.feed(line)]
    return live, adapter.finish(exit_code)


def test_every_scenario_is_recorded():
    assert sorted(p.name.removesuffix(".jsonl") for p in RECORDINGS.glob("*.jsonl")) == sorted(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_booked_usage_equals_what_the_stand_in_served(name):
    lines, served = recording(name)
    live, outcome = meter(lines, served["exit_code"])
    assert booked(live, outcome) == Tokens(**served["served"])
    assert outcome.usage == Tokens(**served["served"])
    assert (outcome.malformed, outcome.unknown, outcome.excess, outcome.charge) == (0, 0, 0, None)
    keys = [c.key for c in live]
    assert len(keys) == len(set(keys)), f"a key was charged twice: {keys}"


def test_cached_input_is_part_of_input_tokens_and_counted_once():
    lines, served = recording("plain")
    usage = json.loads(lines[-1])["usage"]
    assert usage["input_tokens"] == served["served"]["input"] + served["served"]["cache_read"]
    live, _ = meter(lines, 0)
    assert [c.tokens.total for c in live] == [usage["input_tokens"] + usage["output_tokens"]]


def test_the_turn_of_a_tool_call_sums_both_requests_in_one_charge_keyed_by_thread_and_turn():
    lines, served = recording("tool_call")
    assert [r["reply"] for r in served["requests"]] == [0, 1]
    live, _ = meter(lines, 0)
    thread = json.loads(lines[0])["thread_id"]
    assert [c.key for c in live] == [f"codex:{thread}:turn:1"]


@pytest.mark.parametrize("name, text", [("plain", "Hello from the stand-in."),
                                        ("tool_call", "The marker file is written."),
                                        ("rate_limited", "Hello after waiting.")])
def test_successful_runs_keep_the_final_text_and_are_priced_from_the_profile(name, text):
    lines, served = recording(name)
    _, outcome = meter(lines, served["exit_code"])
    assert (outcome.failed, outcome.reason, outcome.text) == (False, "", text)
    s = served["served"]
    assert outcome.cost_usd == pytest.approx((s["input"] * 1.25 + s["output"] * 10.0 + s["cache_read"] * 0.125) / 1e6)


@pytest.mark.parametrize("model, prices", [(None, {MODEL: PRICE}), (MODEL, {}), ("other", {MODEL: PRICE})])
def test_without_a_price_for_the_model_the_cost_is_unknown(model, prices):
    lines, _ = recording("plain")
    _, outcome = meter(lines, 0, Codex(model, prices))
    assert outcome.cost_usd is None and not outcome.failed


def test_a_retry_notice_before_a_completed_turn_is_not_a_failure():
    lines, served = recording("rate_limited")
    assert [r["status"] for r in served["requests"]] == [429, 200]
    assert json.loads(lines[2])["type"] == "error" and "429" in json.loads(lines[2])["message"]
    _, outcome = meter(lines, 0)
    assert not outcome.failed


def test_a_persistent_server_error_fails_with_codexs_message_after_capped_retries():
    lines, served = recording("server_error")
    # request_max_retries = stream_max_retries = 2: (1 + 2) attempts, each retried as a stream 1 + 2 times
    assert [r["status"] for r in served["requests"]] == [500] * 9
    live, outcome = meter(lines, served["exit_code"])
    assert served["exit_code"] == 1 and live == [] and outcome.usage == Tokens()
    message = json.loads(lines[-1])["error"]["message"]
    assert (outcome.failed, outcome.reason, outcome.text) == (True, f"turn failed: {message}", message)


def test_an_error_after_the_last_completed_turn_is_a_failure():
    lines, _ = recording("plain")
    _, outcome = meter(lines + ['{"type":"error","message":"stream disconnected"}'], 0)
    assert (outcome.failed, outcome.reason) == (True, "error after the last completed turn: stream disconnected")
    assert outcome.usage.total > 0, "what was spent before the error stays booked"


@pytest.mark.parametrize("cut, exit_code, reason", [
    (None, 2, "codex exited 2 after its turn completed"),
    (-1, -9, "codex was killed by signal 9 without completing a turn"),
    (-1, 0, "codex exited 0 without completing a turn"),
])
def test_exit_codes_and_missing_turns_fail(cut, exit_code, reason):
    lines, _ = recording("plain")
    _, outcome = meter(lines[:cut], exit_code)
    assert (outcome.failed, outcome.reason) == (True, reason)


def test_malformed_lines_are_counted_and_skipped_never_charged():
    lines, served = recording("plain")
    usage = json.loads(lines[-1])["usage"]
    bad = ["not json", "[1, 2]", '{"type": 7}', '{"type":"thread.started","thread_id":""}',
           '{"type":"turn.completed"}', '{"type":"turn.completed","usage":[]}',
           json.dumps({"type": "turn.completed", "usage": {**usage, "output_tokens": -1}}),
           json.dumps({"type": "turn.completed", "usage": {**usage, "input_tokens": MAX_TOKENS + 1}}),
           json.dumps({"type": "turn.completed", "usage": {**usage, "output_tokens": True}}),
           json.dumps({"type": "turn.completed", "usage": {**usage, "cached_input_tokens": usage["input_tokens"] + 1}}),
           '{"type":"turn.failed","error":"no object"}', '{"type":"error"}', '{"type":"item.completed"}',
           "[" * 100_000]
    live, outcome = meter(lines[:-1] + bad + lines[-1:], 0)
    assert booked(live, outcome) == Tokens(**served["served"])
    assert (outcome.malformed, outcome.unknown, outcome.failed) == (len(bad), 0, False)


def test_unknown_event_types_are_counted_apart_and_a_second_thread_id_changes_no_key():
    lines, _ = recording("plain")
    adapter = Codex()
    live = [c for line in [lines[0], '{"type":"thread.started","thread_id":"other"}', '{"type":"new.kind"}', *lines[1:]]
            for c in adapter.feed(line)]
    assert [c.key for c in live] == [f"codex:{json.loads(lines[0])['thread_id']}:turn:1"]
    assert adapter.finish(0).unknown == 1


def test_a_line_replayed_twice_charges_two_turns_but_a_key_is_never_reused():
    lines, _ = recording("plain")
    live, outcome = meter(lines + lines[-1:], 0)
    assert [c.key.rsplit(":", 1)[1] for c in live] == ["1", "2"]


def test_the_registry_makes_a_codex_adapter_with_its_prices():
    adapter = make_adapter("codex", model=MODEL, prices={MODEL: PRICE})
    lines, _ = recording("plain")
    _, outcome = meter(lines, 0, adapter)
    assert isinstance(adapter, Codex) and outcome.cost_usd is not None
