"""Codex runs against the stand-in OpenAI Responses server, one per situation the adapter meters.

The adapter's unit tests read recordings of these runs (``recordings/codex-<version>/``:
``<name>.jsonl``, the CLI's stdout, and ``<name>.served.json``, what the stand-in served and
how the CLI exited); the integration test runs some of them live. To record them again,
after a version change::

    python -m tests.runtime.agent.codex_scenarios

Usage figures are distinct per reply and kind, so a sum that counts a request twice or drops
one cannot match by accident.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.agent_clis import AgentRun, Scenario, record_scenarios, run_codex
from tests.support.model_server import ModelServer, Reply, Usage
from tests.support.model_server.openai import Responses

VERSION = "0.171.0"
RECORDINGS = Path(__file__).parent / "recordings" / f"codex-{VERSION}"
MARKER = "larry-tool-ran.txt"  # the file the tool-call scenario makes the agent write
# Codex's sandbox is read-only by default; the tool call must really write.
WRITE = ("--dangerously-bypass-approvals-and-sandbox",)


SCENARIOS = {
    "plain": Scenario("Say hello.", (Reply.text("Hello from the stand-in.", Usage(1203, 17, 5000)),)),
    # A function call Codex executes (the marker file appears), then the answer: two requests,
    # one turn.
    "tool_call": Scenario(
        "Write the marker file.",
        (Reply.tool("exec_command", {"cmd": f"echo larry > {MARKER}"}, Usage(1511, 43, 4100)),
         Reply.text("The marker file is written.", Usage(1702, 29, 4400))),
        args=WRITE),
    "rate_limited": Scenario("Say hello after a 429.",
                             (Reply.error(429, retry_after=1), Reply.text("Hello after waiting.", Usage(1111, 13, 2200)))),
    # Every request fails; request_max_retries / stream_max_retries = 2 cap the attempts.
    "server_error": Scenario("Say hello to a broken server.", (), then=Reply.error(500)),
}


def run_scenario(binary: Path, name: str, home: Path, on_line=None) -> tuple[AgentRun, ModelServer]:
    scenario = SCENARIOS[name]
    with ModelServer(Responses(), list(scenario.replies), then=scenario.then) as server:
        run = run_codex(binary, home, server.url, scenario.prompt, scenario.args, on_line)
    return run, server


def _record_one(binary: Path, name: str, home: Path):
    run, server = run_scenario(binary, name, home)
    if name == "tool_call" and not (home / "work" / MARKER).exists():
        raise SystemExit(f"{name}: codex did not run the tool call (no {MARKER}); stderr:\n{run.stderr}")
    return run, server


def record(names: list[str]) -> None:
    record_scenarios("codex", names, RECORDINGS, _record_one)


if __name__ == "__main__":
    record(sys.argv[1:] or list(SCENARIOS))
