"""`larry worker --usage claude-code|codex|aider`: the real agent CLIs run as a task's payload
against the stand-in model servers, metered from their own output. The ledger holds what the
stand-in served, the result keeps the agent's answer, usage and raw output, the prompt reaches
it as a file; an agent past its budget is stopped, and one the provider keeps refusing fails
the task for good after the CLI's capped retries."""

from __future__ import annotations

import json

from plan.model import worker_account
from runtime.agent.usage import Tokens
from tests.runtime.agent import aider_scenarios, codex_scenarios
from tests.runtime.agent.claude_code_scenarios import SCENARIOS
from tests.runtime.agent.conftest import aider, claude_code, codex  # noqa: F401 - fixtures
from tests.support.agent_clis import aider_argv, aider_env, claude_env, codex_argv, codex_env
from tests.support.model_server import ModelServer
from tests.support.model_server.anthropic import Anthropic
from tests.support.model_server.openai import ChatCompletions, Responses

LARRY, WORKER, TASK = "security", "scan-worker-01", "scan-cortex-namespace"  # one task, 8,000 tokens


def run_worker(rig, binary, name: str, home):
    """scan-worker-01 running Claude Code on scenario ``name``; (exit status, server)."""
    scenario = SCENARIOS[name]
    rig.start_phase(LARRY)
    (home / "work").mkdir(parents=True)
    with ModelServer(Anthropic(), list(scenario.replies), then=scenario.then) as server:
        env = [f"{k}={v}" for k, v in claude_env(home, server.url, scenario.env).items()]
        command = ["env", "-C", str(home / "work"), *env, str(binary), "-p", scenario.prompt,
                   "--output-format", "stream-json", "--verbose", *scenario.args]
        code = rig.worker(LARRY, WORKER, command, usage="claude-code")
    return code, server


def test_the_ledger_holds_what_the_stand_in_served_and_the_result_keeps_the_answer(rig, claude_code, tmp_path):  # noqa: F811
    code, server = run_worker(rig, claude_code, "plain", tmp_path / "home")
    assert code == 0
    assert rig.board.statuses([TASK])[TASK] == "completed"
    booked = rig.ledger().figures(worker_account(LARRY, WORKER))["committed"]
    assert booked == server.served.total > 0
    data = rig.board.result(TASK)["data"]
    assert data["message"] == "Hello from the stand-in." and data["tokens"] == booked
    assert Tokens(**data["usage"]) == server.served
    output = rig.result_file(LARRY, TASK)
    raw = (rig.dir / "results" / LARRY / TASK / output["agent_output"]).read_text().splitlines()
    assert json.loads(raw[-1])["type"] == "result", "the agent's raw output is kept with the result"
    prompts = list((rig.dir / "results" / LARRY / TASK).glob("prompt-*.md"))
    assert len(prompts) == 1 and "Scan the cortex namespace" in prompts[0].read_text()


def test_an_agent_past_its_budget_is_stopped_with_what_it_spent_booked(rig, claude_code, tmp_path):  # noqa: F811
    # Each turn starts at about 4,100 tokens: the second message passes the task's 8,000.
    code, server = run_worker(rig, claude_code, "many_turns", tmp_path / "home")
    assert code == 3
    assert rig.board.result(TASK)["data"]["error"] == "budget exhausted"
    booked = rig.ledger().figures(worker_account(LARRY, WORKER))["committed"]
    served = server.served.total
    largest = max(r.served.total for r in server.requests)
    assert 8_000 < booked <= served and served - booked <= largest, "booked within one message of what was served"
    assert len(server.requests) < len(SCENARIOS["many_turns"].replies), "the agent kept working after the stop"


def test_an_agent_the_provider_keeps_refusing_fails_the_task_without_a_retry(rig, claude_code, tmp_path):  # noqa: F811
    code, server = run_worker(rig, claude_code, "server_error", tmp_path / "home")
    assert code == 3, "a failed agent run is final: the Job must not run it again"
    assert [r.status for r in server.requests] == [500, 500, 500]
    error = rig.board.result(TASK)["data"]["error"]
    assert error.startswith("agent failed: api_error (API status 500)"), error
    assert rig.ledger().figures(worker_account(LARRY, WORKER))["committed"] == 0


def wrapped(env: dict[str, str], home, argv: list[str]) -> list[str]:
    """``argv`` run in ``home``/work with ``env`` set (on top of what the worker gives it)."""
    (home / "work").mkdir(parents=True, exist_ok=True)
    return ["env", "-C", str(home / "work"), *(f"{k}={v}" for k, v in env.items()), *argv]


def test_codex_through_the_worker_books_what_the_stand_in_served(rig, codex, tmp_path):  # noqa: F811
    scenario, home = codex_scenarios.SCENARIOS["plain"], tmp_path / "home"
    rig.start_phase(LARRY)
    with ModelServer(Responses(), list(scenario.replies)) as server:
        command = wrapped(codex_env(home, server.url), home, codex_argv(codex, scenario.prompt))
        assert rig.worker(LARRY, WORKER, command, usage="codex") == 0
    data = rig.board.result(TASK)["data"]
    assert rig.ledger().figures(worker_account(LARRY, WORKER))["committed"] == data["tokens"] == server.served.total > 0
    assert Tokens(**data["usage"]) == server.served and data["message"] == "Hello from the stand-in."
    assert "cost_usd" not in data, "no profile prices the model: Codex reports no cost"


def test_aider_through_the_worker_is_metered_from_its_analytics_log(rig, aider, tmp_path):  # noqa: F811
    scenario, home = aider_scenarios.SCENARIOS["plain"], tmp_path / "home"
    rig.start_phase(LARRY)
    with ModelServer(ChatCompletions(), list(scenario.replies)) as server:
        command = wrapped(aider_env(home), home, aider_argv(aider, server.url, scenario.prompt))
        # aider's own start (litellm's imports) is real time: at the rig's 600x a busy machine
        # pushes it past the task's scaled deadline.
        assert rig.worker(LARRY, WORKER, command, usage="aider", speed=60) == 0
    data = rig.board.result(TASK)["data"]
    assert rig.ledger().figures(worker_account(LARRY, WORKER))["committed"] == data["tokens"] == server.served.total > 0
    assert Tokens(**data["usage"]) == server.served
    logs = list((rig.dir / "results" / LARRY / TASK).glob("agent-analytics-*.jsonl"))
    assert len(logs) == 1 and '"message_send"' in logs[0].read_text(), "the worker gave aider its analytics log"
