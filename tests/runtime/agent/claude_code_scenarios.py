"""Claude Code runs against the stand-in Anthropic server, one per situation the adapter meters.

The adapter's unit tests read recordings of these runs (``recordings/claude-code-<version>/``:
``<name>.jsonl``, the CLI's stdout, and ``<name>.served.json``, what the stand-in served and
how the CLI exited); the integration test runs some of them live. To record them again,
after a version change::

    python -m tests.runtime.agent.claude_code_scenarios

Usage figures are distinct per reply and kind, so a sum that counts a message twice or drops
one cannot match by accident.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

from tests.support.agent_clis import AgentRun, Scenario, record_scenarios, run_claude
from tests.support.model_server import ModelServer, Reply, Text, ToolCall, Usage
from tests.support.model_server.anthropic import Anthropic

VERSION = "2.1.332"
RECORDINGS = Path(__file__).parent / "recordings" / f"claude-code-{VERSION}"
MARKER = "larry-tool-ran.txt"  # the file the tool-call scenarios make the agent write


def _bash(command: str) -> ToolCall:
    return ToolCall("Bash", {"command": command, "description": "write the marker file"})


SCENARIOS = {
    "plain": Scenario("Say hello.", (Reply.text("Hello from the stand-in.", Usage(1203, 17, 5000, 310)),)),
    # A tool_use turn the CLI executes (the marker file appears), then the answer.
    "tool_call": Scenario(
        "Write the marker file.",
        (Reply.tool("Bash", _bash(f"echo larry > {MARKER}").arguments, Usage(1511, 43, 4100, 220)),
         Reply.text("The marker file is written.", Usage(1702, 29, 4400, 180))),
        args=("--allowedTools", "Bash")),
    # One message with two content blocks (text, then tool_use): printed once per block.
    "multi_block": Scenario(
        "Explain, then write the marker file.",
        (Reply(blocks=(Text("I will write the marker file now."), _bash(f"echo larry > {MARKER}")),
               usage=Usage(1333, 61, 3900, 250)),
         Reply.text("Done.", Usage(1444, 7, 4050, 90))),
        args=("--allowedTools", "Bash")),
    "rate_limited": Scenario("Say hello after a 429.",
                             (Reply.error(429, retry_after=1), Reply.text("Hello after waiting.", Usage(1111, 13, 2200, 70)))),
    # Every request fails; CLAUDE_CODE_MAX_RETRIES caps the attempts at 1 + 2.
    "server_error": Scenario("Say hello to a broken server.", (), env={"CLAUDE_CODE_MAX_RETRIES": "2"},
                             then=Reply.error(500)),
    # Two streams cut after message_start (their start usage reported), then the CLI falls
    # back to a non-streaming request.
    "cut_stream": Scenario(
        "Say hello over a flaky connection.",
        (Reply(blocks=(Text("never seen"),), usage=Usage(1201, 11, 600, 30), cut_after=3),
         Reply(blocks=(Text("never seen"),), usage=Usage(1202, 12, 700, 40), cut_after=3),
         Reply.text("Hello at last.", Usage(1203, 13, 800, 50)))),
    # An agent that keeps working: five tool turns, then its answer.
    "many_turns": Scenario(
        "Write the marker file five times.",
        tuple(Reply.tool("Bash", _bash(f"echo larry >> {MARKER}").arguments, Usage(1000 + i, 20 + i, 3000 + i, 100 + i))
              for i in range(5)) + (Reply.text("Five times.", Usage(1999, 9, 3999, 99)),),
        args=("--allowedTools", "Bash")),
    # --max-turns 2 ends the run after its second tool turn.
    "max_turns": Scenario(
        "Write the marker file until stopped.",
        tuple(Reply.tool("Bash", _bash(f"echo larry >> {MARKER}").arguments, Usage(2000 + i, 30 + i, 0, 0))
              for i in range(3)),
        args=("--allowedTools", "Bash", "--max-turns", "2")),
    # The first turn alone costs more than the budget: the CLI stops after it.
    "max_budget": Scenario(
        "Write the marker file on a tiny budget.",
        (Reply.tool("Bash", _bash(f"echo larry > {MARKER}").arguments, Usage(90000, 2100, 0, 12000)),
         Reply.text("Should not be reached.", Usage(1000, 10, 0, 0))),
        args=("--allowedTools", "Bash", "--max-budget-usd", "0.01")),
}

# The same runs with --include-partial-messages: the API's stream events printed as well.
PARTIAL = "--include-partial-messages"
SCENARIOS.update({f"partial_{name}": replace(SCENARIOS[name], args=SCENARIOS[name].args + (PARTIAL,))
                  for name in ("multi_block", "many_turns", "cut_stream", "server_error", "max_budget")})


def run_scenario(binary: Path, name: str, home: Path,
                 on_line: Callable[[str], bool | None] | None = None) -> tuple[AgentRun, ModelServer]:
    scenario = SCENARIOS[name]
    with ModelServer(Anthropic(), list(scenario.replies), then=scenario.then) as server:
        run = run_claude(binary, home, server.url, scenario.prompt, scenario.args, scenario.env, on_line)
    return run, server


def record(names: list[str]) -> None:
    record_scenarios("claude_code", names, RECORDINGS, run_scenario)


if __name__ == "__main__":
    record(sys.argv[1:] or list(SCENARIOS))
