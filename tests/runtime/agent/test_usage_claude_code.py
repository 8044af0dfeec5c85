"""The Claude Code usage adapter on recorded output of the pinned CLI (2.1.332) run against the
stand-in Anthropic server (tests/runtime/agent/claude_code_scenarios.py): what it books equals
what the stand-in served, kind by kind, and it tells failures from successes as the CLI's
result fields say, whatever ``subtype`` claims."""

from __future__ import annotations

import json

import pytest

from plan.model import MAX_TOKENS
from runtime.agent.usage import Tokens, make_adapter
from runtime.agent.usage.claude_code import ClaudeCode
from tests.runtime.agent.claude_code_scenarios import RECORDINGS, SCENARIOS
from tests.support.agent_clis import booked


def recording(name: str) -> tuple[list[str], dict]:
    lines = (RECORDINGS / f"{name}.jsonl").read_text().splitlines()
    return lines, json.loads((RECORDINGS / f"{name}.served.json").read_text())


def meter(lines: list[str], exit_code: int, adapter: ClaudeCode | None = None):
    """(live charges, outcome, adapter) of feeding ``lines`` to a fresh adapter."""
    adapter = adapter or ClaudeCode()
    live = [charge for line in lines for charge in adapter.feed(line)]
    return live, adapter.finish(exit_code), adapter


def served_tokens(name: str) -> Tokens:
    return Tokens(**recording(name)[1]["served"])


def test_every_scenario_is_recorded():
    assert sorted(p.name.removesuffix(".jsonl") for p in RECORDINGS.glob("*.jsonl")) == sorted(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_booked_usage_equals_what_the_stand_in_served(name):
    lines, served = recording(name)
    live, outcome, _ = meter(lines, served["exit_code"])
    assert booked(live, outcome) == Tokens(**served["served"])
    assert outcome.usage == Tokens(**served["served"])
    assert (outcome.malformed, outcome.unknown, outcome.excess) == (0, 0, 0)
    keys = [c.key for c in live + [outcome.charge] if c]
    assert len(keys) == len(set(keys)), f"a key was charged twice: {keys}"


@pytest.mark.parametrize("name, text", [("plain", "Hello from the stand-in."),
                                        ("many_turns", "Five times."),
                                        ("tool_call", "The marker file is written."),
                                        ("multi_block", "Done."),
                                        ("rate_limited", "Hello after waiting."),
                                        ("cut_stream", "Hello at last.")])
def test_successful_runs_keep_the_final_text_and_cost(name, text):
    lines, served = recording(name)
    _, outcome, _ = meter(lines, served["exit_code"])
    assert (outcome.failed, outcome.reason, outcome.text) == (False, "", text)
    assert outcome.cost_usd and outcome.cost_usd > 0


def test_a_persistent_server_error_fails_although_subtype_says_success():
    lines, served = recording("server_error")
    result = json.loads(lines[-1])
    assert (result["subtype"], result["is_error"], served["exit_code"]) == ("success", True, 1)
    assert [r["status"] for r in served["requests"]] == [500, 500, 500], "CLAUDE_CODE_MAX_RETRIES=2: 1 + 2 attempts"
    live, outcome, _ = meter(lines, served["exit_code"])
    assert outcome.failed
    assert outcome.reason.startswith("api_error (API status 500): API Error: 500")
    assert live == [] and outcome.charge is None and outcome.usage == Tokens()


def test_a_success_result_with_a_non_zero_exit_is_a_failure():
    lines, _ = recording("plain")
    _, outcome, _ = meter(lines, 2)
    assert outcome.failed and outcome.reason == "claude exited 2 after a result that reports no error"


def test_max_budget_books_model_usage_although_result_usage_is_zero():
    lines, served = recording("max_budget")
    result = json.loads(lines[-1])
    assert result["terminal_reason"] == "budget_exhausted" and not any(
        v for k, v in result["usage"].items() if k.endswith("tokens")), "the trap: result.usage all zeros"
    live, outcome, _ = meter(lines, served["exit_code"])
    assert outcome.failed and outcome.reason == "budget_exhausted: Reached maximum budget ($0.01)"
    assert outcome.usage == Tokens(**served["served"]) == Tokens(90000, 2100, 0, 12000)


def test_max_turns_is_a_failure_with_the_limit_as_its_reason():
    lines, served = recording("max_turns")
    live, outcome, _ = meter(lines, served["exit_code"])
    assert (outcome.failed, outcome.reason) == (True, "max_turns: Reached maximum number of turns (2)")
    assert len(live) == 2 and outcome.usage == served_tokens("max_turns")


def test_start_of_message_usage_is_charged_live_and_the_rest_at_finish():
    lines, served = recording("tool_call")
    live, outcome, _ = meter(lines, served["exit_code"])
    # Two messages, each charged once as it starts (output 1), then the final output counts.
    assert [c.tokens for c in live] == [Tokens(1511, 1, 4100, 220), Tokens(1702, 1, 4400, 180)]
    assert outcome.charge.tokens == Tokens(0, 72 - 2, 0, 0)


def test_a_message_printed_once_per_content_block_is_charged_once():
    lines, served = recording("multi_block")
    ids = [json.loads(line)["message"]["id"] for line in lines if json.loads(line)["type"] == "assistant"]
    assert ids.count("msg_standin000001") == 2, "the trap: one message, two lines"
    live, _, _ = meter(lines, served["exit_code"])
    assert [c.key.rsplit(":", 1)[1] for c in live] == ["msg_standin000001", "msg_standin000002"]


def test_cut_streams_no_assistant_event_shows_are_charged_at_finish():
    lines, served = recording("cut_stream")
    live, outcome, _ = meter(lines, served["exit_code"])
    assert [c.tokens for c in live] == [Tokens(1203, 13, 800, 50)]
    assert outcome.charge.tokens == Tokens(1201 + 1202, 1 + 1, 600 + 700, 30 + 40)


@pytest.mark.parametrize("name", sorted(n for n in SCENARIOS if n.startswith("partial_")))
def test_with_partial_messages_live_charges_alone_equal_what_was_served(name):
    # message_delta completes each message as it ends, cut streams included: nothing is left
    # for the result to reconcile.
    lines, served = recording(name)
    live, outcome, _ = meter(lines, served["exit_code"])
    assert outcome.charge is None
    assert sum((c.tokens for c in live), Tokens()) == served_tokens(name)


def test_a_message_delta_charges_only_what_it_adds_to_its_message():
    lines, served = recording("partial_multi_block")
    live, _, _ = meter(lines, served["exit_code"])
    assert [(c.key.split(":", 2)[2], c.tokens) for c in live] == [
        ("msg_standin000001", Tokens(1333, 1, 3900, 250)), ("msg_standin000001:delta1", Tokens(0, 60, 0, 0)),
        ("msg_standin000002", Tokens(1444, 1, 4050, 90)), ("msg_standin000002:delta1", Tokens(0, 6, 0, 0))]


def test_a_message_delta_without_its_message_start_is_malformed():
    adapter = ClaudeCode()
    assert adapter.feed('{"type":"stream_event","event":{"type":"message_delta","usage":{"output_tokens":9}}}') == []
    assert adapter.malformed == 1 and "without a message_start" in adapter.rejected


@pytest.mark.parametrize("name", ["multi_block", "partial_multi_block"])
def test_feeding_the_same_output_twice_charges_nothing_more(name):
    lines, served = recording(name)
    adapter = ClaudeCode()
    first = [c for line in lines for c in adapter.feed(line)]
    again = [c for line in lines for c in adapter.feed(line)]
    assert first and again == []


def test_a_run_without_a_result_keeps_its_live_charges_and_fails():
    lines, _ = recording("tool_call")
    live, outcome, _ = meter(lines[:-1], -15)
    assert outcome.failed and outcome.reason == "claude was killed by signal 15 without a result line"
    assert outcome.charge is None and outcome.usage == booked(live, outcome) == Tokens(3213, 2, 8500, 400)


def test_live_charges_above_the_result_are_reported_as_excess_not_refunded():
    lines = ['{"type":"assistant","session_id":"s","message":{"id":"m1","usage":{"input_tokens":100,"output_tokens":1}}}',
             '{"type":"result","session_id":"s","is_error":false,"result":"ok","usage":{"input_tokens":40,"output_tokens":10}}']
    live, outcome, _ = meter(lines, 0)
    assert [c.tokens.total for c in live] == [101]
    assert (outcome.charge, outcome.excess, outcome.usage) == (None, 51, Tokens(40, 10))


def test_a_kind_charged_above_the_result_lowers_the_reconciling_charge_to_the_total():
    lines = ['{"type":"assistant","session_id":"s","message":{"id":"m1","usage":{"input_tokens":100,"output_tokens":1}}}',
             '{"type":"result","session_id":"s","is_error":false,"usage":{"input_tokens":90,"output_tokens":31}}']
    live, outcome, _ = meter(lines, 0)
    assert booked(live, outcome).total == 121 and outcome.excess == 0


BAD = ["not json", "[1, 2]", '"a string"', "{" * 100000,
       '{"type":"assistant","message":{"id":"m","usage":{"input_tokens":-5}}}',
       '{"type":"assistant","message":{"id":"m","usage":{"input_tokens":"12"}}}',
       '{"type":"assistant","message":{"id":"m","usage":{"output_tokens":true}}}',
       f'{{"type":"assistant","message":{{"id":"m","usage":{{"input_tokens":{MAX_TOKENS + 1}}}}}}}',
       '{"type":"assistant","message":{"usage":{"input_tokens":5}}}',
       '{"type":"assistant","message":"hello"}',
       '{"type":"result","usage":{"input_tokens":5}}',
       '{"type":"result","is_error":false,"modelUsage":{"m":{"inputTokens":1.5}}}']


@pytest.mark.parametrize("line", BAD, ids=range(len(BAD)))
def test_a_malformed_line_is_counted_and_skipped_never_charged(line):
    adapter = ClaudeCode()
    assert adapter.feed(line) == []
    assert adapter.rejected and "\n" not in adapter.rejected
    good, _ = recording("plain")
    live, outcome, _ = meter(good, 0, adapter)
    assert outcome.malformed == 1 and booked(live, outcome) == Tokens(1203, 17, 5000, 310)


def leaves(value, path=()):
    """Every path to a leaf (or an empty container) of a parsed JSON value."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    found = [p for key, item in items for p in leaves(item, path + (key,))]
    return found or [path]


def replaced(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


def test_no_change_of_one_field_of_a_recorded_line_makes_the_adapter_raise():
    # Every leaf of every distinct kind of recorded line, replaced by each value of the wrong
    # kind: the adapter returns (a charge or nothing), never raises.
    samples = {}
    for name in ("partial_multi_block", "server_error", "max_budget"):
        for line in recording(name)[0]:
            event = json.loads(line)
            samples.setdefault((event["type"], event.get("subtype")), event)
    fed = 0
    for event in samples.values():
        for path in leaves(event):
            for new in (None, -1, 1.5, "x", [], {}, [1], {"a": 1}):
                adapter = ClaudeCode()
                for charge in adapter.feed(json.dumps(replaced(event, path, new))):
                    assert charge.tokens.total > 0
                adapter.finish(0)
                fed += 1
    assert fed > 1000


def test_the_first_well_formed_line_fixes_the_session_of_every_key():
    adapter = ClaudeCode()
    adapter.feed('{"type":"assistant","session_id":"forged","message":{"id":"m0","usage":{"input_tokens":-1}}}')
    adapter.feed('{"type":"system","subtype":"init","session_id":"s1"}')
    [first] = adapter.feed('{"type":"assistant","session_id":"s2","message":{"id":"m1","usage":{"input_tokens":5}}}')
    assert first.key == "claude-code:s1:m1" and adapter.rejected is None
    # Without a session in the output, keys name a session of the adapter's own, unique per run.
    keys = [ClaudeCode().feed('{"type":"assistant","message":{"id":"m1","usage":{"input_tokens":5}}}')[0].key
            for _ in range(2)]
    assert keys[0] != keys[1]


def test_lines_of_unknown_kind_are_counted_apart():
    adapter = ClaudeCode()
    assert adapter.feed('{"type":"something_new","usage":{"input_tokens":5}}') == []
    assert adapter.feed("") == []
    outcome = adapter.finish(0)
    assert (outcome.unknown, outcome.malformed, outcome.failed) == (1, 0, True)


def test_adapters_are_chosen_by_their_usage_name():
    assert isinstance(make_adapter("claude-code"), ClaudeCode)
    with pytest.raises(ValueError, match=r"unknown usage adapter 'claude' \(expected one of: aider, claude-code, codex\)"):
        make_adapter("claude")
