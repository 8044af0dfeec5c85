"""The aider usage adapter on recorded runs of the pinned aider-chat 0.86.2 against the stand-in
Chat Completions server (tests/runtime/agent/aider_scenarios.py): what it books from the
analytics log equals what the stand-in served; the log is tailed as it grows (partial lines
wait, old content is not this run's); exit 0 without a ``message_send`` event is a failure."""

from __future__ import annotations

import json

import pytest

from runtime.agent.usage import Charge, Tokens, make_adapter
from runtime.agent.usage.aider import Aider
from tests.runtime.agent.aider_scenarios import MARKER, RECORDINGS, SCENARIOS


def recording(name: str) -> tuple[str, list[str], dict]:
    """(analytics log text, stdout lines, served record) of scenario ``name``."""
    return ((RECORDINGS / f"{name}.log.jsonl").read_text(),
            (RECORDINGS / f"{name}.stdout.txt").read_text().splitlines(),
            json.loads((RECORDINGS / f"{name}.served.json").read_text()))


def replay(name: str, tmp_path, exit_code: int | None = None):
    """(charges from polling, outcome, adapter) of replaying a recorded run: the log written
    after the adapter was made, stdout fed, the log polled, then finish."""
    log_text, stdout, served = recording(name)
    log = tmp_path / "analytics.jsonl"
    adapter = Aider(log)
    log.write_text(log_text)
    assert [c for line in stdout for c in adapter.feed(line)] == [], "stdout is never charged"
    charges = adapter.poll()
    return charges, adapter.finish(served["exit_code"] if exit_code is None else exit_code), adapter


def test_every_scenario_is_recorded():
    assert sorted(p.name.removesuffix(".log.jsonl") for p in RECORDINGS.glob("*.log.jsonl")) == sorted(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_booked_usage_equals_what_the_stand_in_served(name, tmp_path):
    _, _, served = recording(name)
    charges, outcome, _ = replay(name, tmp_path)
    assert sum((c.tokens for c in charges), Tokens()) == Tokens(**served["served"]) == outcome.usage
    assert (outcome.charge, outcome.malformed, outcome.unknown) == (None, 0, 0)


@pytest.mark.parametrize("name, text", [("plain", "Hello from the stand-in."),
                                        ("rate_limited", "Hello after waiting.")])
def test_successful_runs_keep_the_answer_and_aiders_cost(name, text, tmp_path):
    log_text, _, served = recording(name)
    _, outcome, _ = replay(name, tmp_path)
    assert (outcome.failed, outcome.reason, outcome.text) == (False, "", text)
    sent = [json.loads(line)["properties"] for line in log_text.splitlines()
            if json.loads(line)["event"] == "message_send"]
    assert outcome.cost_usd == pytest.approx(sum(p["cost"] for p in sent)) and outcome.cost_usd > 0


def test_the_edit_run_applied_its_edit_and_the_text_says_so(tmp_path):
    _, _, served = recording("edit")
    _, outcome, _ = replay("edit", tmp_path)
    assert not outcome.failed and served["requests"][0]["status"] == 200
    assert outcome.text.startswith("Here it is.") and outcome.text.endswith(f"Applied edit to {MARKER}")
    assert "Tokens:" not in outcome.text and "Aider v" not in outcome.text


def test_a_429_is_retried_and_only_the_answer_is_booked(tmp_path):
    _, _, served = recording("rate_limited")
    assert [r["status"] for r in served["requests"]] == [429, 200]
    charges, _, _ = replay("rate_limited", tmp_path)
    assert len(charges) == 1


def test_a_persistent_server_error_exits_0_and_is_a_failure_by_the_missing_message_send(tmp_path):
    log_text, _, served = recording("server_error")
    assert served["exit_code"] == 0 and '"message_send"' not in log_text
    assert {r["status"] for r in served["requests"]} == {500}, "aider retries for a minute: 9 x 3 requests"
    charges, outcome, _ = replay("server_error", tmp_path)
    assert charges == [] and outcome.usage == Tokens() and outcome.cost_usd is None
    assert outcome.failed
    assert outcome.reason == "aider exited 0 without a message_send event in its analytics log (its model requests failed?)"
    assert "InternalServerError" in outcome.text


def test_a_message_send_exception_is_the_reason(tmp_path):
    log = tmp_path / "log"
    adapter = Aider(log)
    log.write_text(json.dumps({"event": "message_send_exception", "properties": {"exception": "boom"}}) + "\n")
    assert adapter.finish(0).reason == "aider exited 0 without a message_send event in its analytics log: boom"


@pytest.mark.parametrize("exit_code, reason", [(1, "aider exited 1"), (-15, "aider was killed by signal 15")])
def test_a_non_zero_exit_is_a_failure_even_after_a_message(exit_code, reason, tmp_path):
    _, outcome, _ = replay("plain", tmp_path, exit_code)
    assert (outcome.failed, outcome.reason) == (True, reason) and outcome.usage.total > 0


def test_the_log_is_tailed_as_it_grows(tmp_path):
    log_text, _, served = recording("plain")
    lines = log_text.splitlines(keepends=True)
    send = next(i for i, line in enumerate(lines) if '"message_send"' in line)
    log = tmp_path / "analytics.jsonl"
    adapter = Aider(log)
    assert adapter.poll() == [], "no log yet: nothing, no error"
    log.write_text("".join(lines[:send]) + lines[send][:40])
    assert adapter.poll() == [], "half a line waits for its end"
    with open(log, "a") as f:
        f.write(lines[send][40:])
    [charge] = adapter.poll()
    assert charge.tokens == Tokens(**served["served"])
    assert adapter.poll() == [], "read once"
    with open(log, "a") as f:
        f.write("".join(lines[send + 1:]))
    outcome = adapter.finish(0)
    assert (outcome.charge, outcome.failed, outcome.usage) == (None, False, charge.tokens)


def test_what_is_in_the_log_before_the_run_is_not_charged(tmp_path):
    log_text, _, _ = recording("plain")
    log = tmp_path / "analytics.jsonl"
    log.write_text(log_text)  # a previous run's events
    adapter = Aider(log)
    assert adapter.poll() == []
    assert adapter.finish(0).failed


def test_events_only_read_at_exit_come_as_one_charge_even_without_a_final_newline(tmp_path):
    log_text, _, served = recording("plain")
    log = tmp_path / "analytics.jsonl"
    adapter = Aider(log)
    log.write_text(log_text.rstrip("\n"))
    before = adapter.poll()  # the last line (exit) has no newline yet: waits
    assert sum((c.tokens for c in before), Tokens()) == Tokens(**served["served"])
    second = json.dumps({"event": "message_send", "properties": {"prompt_tokens": 5, "completion_tokens": 3,
                                                                  "cost": 0.5}})
    with open(log, "a") as f:
        f.write("\n" + second)  # no newline at the end: aider died mid-write, or just exited
    outcome = adapter.finish(0)
    assert isinstance(outcome.charge, Charge) and outcome.charge.tokens == Tokens(input=5, output=3)
    assert outcome.usage == Tokens(**served["served"]) + Tokens(input=5, output=3)


def test_malformed_lines_are_counted_and_skipped_never_charged(tmp_path):
    log_text, _, served = recording("plain")
    good = json.loads(next(line for line in log_text.splitlines() if '"message_send"' in line))
    bad = ["not json", "[]", '{"event": 5}', '{"event": "message_send"}',
           json.dumps({**good, "properties": {**good["properties"], "prompt_tokens": -1}}),
           json.dumps({**good, "properties": {**good["properties"], "completion_tokens": "17"}}),
           json.dumps({**good, "properties": {**good["properties"], "cost": -0.1}}),
           json.dumps({**good, "properties": {**good["properties"], "cost": True}}),
           '{"event": "message_send_exception", "properties": 3}', "\xff\xfe", "{" * 100_000]
    log = tmp_path / "analytics.jsonl"
    adapter = Aider(log)
    log.write_text("\n".join(bad + [json.dumps(good)]) + "\n")
    charges = adapter.poll()
    outcome = adapter.finish(0)
    assert sum((c.tokens for c in charges), Tokens()) == Tokens(**served["served"])
    assert (outcome.malformed, outcome.failed) == (len(bad), False)


def test_the_registry_makes_an_aider_adapter_for_a_log(tmp_path):
    adapter = make_adapter("aider", log=tmp_path / "log")
    assert isinstance(adapter, Aider) and adapter.poll() == []
