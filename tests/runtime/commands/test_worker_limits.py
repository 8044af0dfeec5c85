"""A profile's ``maxTurns`` and ``maxRetries`` reach Claude Code (``--max-turns``,
``CLAUDE_CODE_MAX_RETRIES``) when a worker runs the profile's own command: the real CLI against
the stand-in stops at the turn limit, and gives up on a broken provider after the capped
retries. (Codex and aider take neither on their command line: see UsageAdapter.limited.)"""
from __future__ import annotations

from plan.model import worker_account
from runtime import cli
from tests.runtime.agent.claude_code_scenarios import SCENARIOS
from tests.runtime.agent.conftest import claude_code  # noqa: F401 - fixture
from tests.runtime.commands.test_master import plan_with_profile
from tests.support.agent_clis import claude_env
from tests.support.model_server import ModelServer
from tests.support.model_server.anthropic import Anthropic

LARRY, WORKER, TASK = "security", "scan-worker-01", "scan-cortex-namespace"


def run_profile(rig, binary, home, scenario: str, **limits) -> tuple[int, ModelServer]:
    """scan-worker-01 running its profile (Claude Code on ``scenario``, with ``limits``), no command after --."""
    scenario = SCENARIOS[scenario]
    rig.start_phase(LARRY)
    with ModelServer(Anthropic(), list(scenario.replies), then=scenario.then) as server:
        env = {k: v for k, v in claude_env(home, server.url).items() if k != "CLAUDE_CODE_MAX_RETRIES"}
        args = [a for a in scenario.args if a not in ("--max-turns", "2")]  # the limit is the profile's
        command = [str(binary), "-p", scenario.prompt, "--output-format", "stream-json", "--verbose", *args]
        plan = plan_with_profile(rig, home, env, command, worker=WORKER, **limits)
        code = cli.main(["worker", "--plan", plan, "--larry", LARRY, "--worker", WORKER, "--redis-url", rig.url,
                         "--key-prefix", rig.ks.prefix, "--coordination-dir", str(rig.dir), "--speed", "600",
                         "--kill-grace", "0.5"])
    return code, server


def test_max_turns_stops_the_agent_at_its_turn_limit(rig, claude_code, tmp_path):  # noqa: F811
    code, server = run_profile(rig, claude_code, tmp_path / "home", "max_turns", maxTurns=2)
    assert code == 3
    assert len(server.requests) == 2 < len(SCENARIOS["max_turns"].replies), "two turns, then the CLI stopped"
    error = rig.board.result(TASK)["data"]["error"]
    assert error == "agent failed: max_turns: Reached maximum number of turns (2)", error
    assert rig.ledger().figures(worker_account(LARRY, WORKER))["committed"] == server.served.total > 0


def test_max_retries_caps_the_agent_s_retries_of_a_broken_provider(rig, claude_code, tmp_path):  # noqa: F811
    code, server = run_profile(rig, claude_code, tmp_path / "home", "server_error", maxRetries=1)
    assert code == 3
    assert [r.status for r in server.requests] == [500, 500], "one request and one retry"
    assert rig.board.result(TASK)["data"]["error"].startswith("agent failed: api_error")


def test_codex_and_aider_run_as_given_and_the_protocol_has_no_cli_to_cap():
    from plan.model import AgentProfile
    from runtime.agent.usage import profile_command
    values = {"task_id": "t", "title": "T", "prompt_file": "/p", "results_dir": "/r"}
    for usage in ("codex", "aider", "larry-protocol"):
        profile = AgentProfile("x", ("agent", "{task_id}"), usage, max_turns=3, max_retries=1)
        assert profile_command(profile, usage, values) == ["agent", "t"], usage
    claude = AgentProfile("c", ("claude", "-p", "{prompt_file}"), "claude-code", max_turns=3, max_retries=1)
    assert profile_command(claude, "claude-code", values) == [
        "env", "CLAUDE_CODE_MAX_RETRIES=1", "claude", "-p", "/p", "--max-turns", "3"]
