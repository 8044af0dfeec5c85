"""aider runs against the stand-in OpenAI Chat Completions server, one per situation the adapter
meters.

The adapter's unit tests read recordings of these runs (``recordings/aider-<version>/``:
``<name>.log.jsonl``, aider's ``--analytics-log``; ``<name>.stdout.txt``, what it printed; and
``<name>.served.json``, what the stand-in served and how aider exited); the integration test
runs some of them live. aider runs with ``--no-stream`` so that its figures are the server's.
To record them again, after a version change (the persistent error alone takes about 90 s:
aider retries for a minute and nothing caps it)::

    python -m tests.runtime.agent.aider_scenarios

Usage figures are distinct per reply and kind, so a sum that counts a message twice or drops
one cannot match by accident. Cached tokens are left out (0): aider ignores them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.agent_clis import AgentRun, Scenario, record_scenarios, run_aider
from tests.support.model_server import ModelServer, Reply, Usage
from tests.support.model_server.openai import ChatCompletions

VERSION = "0.86.2"
RECORDINGS = Path(__file__).parent / "recordings" / f"aider-{VERSION}"
MARKER = "larry-tool-ran.txt"  # the file the edit scenario makes aider write


SCENARIOS = {
    "plain": Scenario("Say hello.", (Reply.text("Hello from the stand-in.", Usage(1203, 17)),)),
    # aider's tool is the edit: a reply in its "whole" edit format that it applies (the marker
    # file appears).
    "edit": Scenario(f"Create {MARKER} containing larry.",
                     (Reply.text(f"Here it is.\n\n{MARKER}\n```\nlarry\n```\n", Usage(1511, 43)),),
                     args=("--edit-format", "whole")),
    "rate_limited": Scenario("Say hello after a 429.",
                             (Reply.error(429, retry_after=1), Reply.text("Hello after waiting.", Usage(1111, 13)))),
    # Every request fails: aider retries for about a minute, then exits 0 with no message_send.
    "server_error": Scenario("Say hello to a broken server.", (), then=Reply.error(500)),
}


def run_scenario(binary: Path, name: str, home: Path, on_line=None) -> tuple[AgentRun, ModelServer, Path]:
    """The run, the server, and aider's analytics log."""
    scenario = SCENARIOS[name]
    log = home / "analytics.jsonl"
    with ModelServer(ChatCompletions(), list(scenario.replies), then=scenario.then) as server:
        run = run_aider(binary, home, server.url, scenario.prompt, log, scenario.args, on_line)
    return run, server, log


def _record_one(binary: Path, name: str, home: Path):
    run, server, log = run_scenario(binary, name, home)
    if name == "edit" and not (home / "work" / MARKER).exists():
        raise SystemExit(f"{name}: aider did not apply the edit (no {MARKER}); output:\n"
                         + "\n".join(run.lines) + run.stderr)
    (RECORDINGS / f"{name}.log.jsonl").write_text(log.read_text() if log.exists() else "")
    return run, server


def record(names: list[str]) -> None:
    record_scenarios("aider", names, RECORDINGS, _record_one, stdout=".stdout.txt")


if __name__ == "__main__":
    record(sys.argv[1:] or list(SCENARIOS))
