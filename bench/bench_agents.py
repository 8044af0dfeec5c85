"""Agent harness benchmark: prints figures and ratios, asserts nothing.

One run, all on loopback: a fresh redis-server, the stand-in Anthropic server
(tests/support/model_server) and the real Claude Code CLI (scripts/agents.sh ensure). Each
agent run has the same scripted conversation: ``--turns`` tool turns, then an answer.

* **Overhead**: wall time of ``larry worker --usage claude-code -- claude ...`` for a worker
  with one task (interpreter start, plan, Redis, lease, prompt file, ledger charges, fenced
  result) against the same ``claude ...`` run alone, ``--runs`` times each: median and p90,
  and their difference and ratio.
* **Metering lag**: per message, from the CLI printing the first line of that message (a
  relay in front of the CLI timestamps every line it passes on) to the ledger script that
  books it arriving at Redis (the ``EVALSHA`` carrying the charge's op id, timestamped by
  ``MONITOR``): p50 and p99 over every message of every worker run.

Usage: python bench/bench_agents.py [--runs 5] [--turns 4]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plan.loader import load_stack  # noqa: E402
from runtime.commands.coordinator import Coordinator  # noqa: E402
from runtime.commands.run import larry_command  # noqa: E402
from runtime.coordination.connection import RedisSettings, connect  # noqa: E402
from runtime.coordination.keys import Keyspace  # noqa: E402
from runtime.support.timing import Timing  # noqa: E402
from tests.support.agent_clis import agent_binary, claude_env  # noqa: E402
from tests.support.model_server import ModelServer, Reply, ToolCall, Usage  # noqa: E402
from tests.support.model_server.anthropic import Anthropic  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402

LARRY, WORKER = "security", "scan-worker-01"  # one task, 8,000 tokens (cortex)
PROMPT = "Append to the marker file, once per turn."
RELAY = r"""
import subprocess, sys, time
with open(sys.argv[1], "a") as stamps:
    agent = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE, text=True)
    for line in agent.stdout:
        stamps.write(f"{time.time():.6f}\t{line}")
        stamps.flush()
        sys.stdout.write(line)
        sys.stdout.flush()
    sys.exit(agent.wait())
"""


def replies(turns: int) -> list[Reply]:
    bash = ToolCall("Bash", {"command": "echo larry >> marker.txt", "description": "append"})
    return [Reply(blocks=(bash,), usage=Usage(300 + i, 10, 0, 0)) for i in range(turns)] + \
        [Reply.text("Done.", Usage(400, 5, 0, 0))]


def claude_argv(binary: Path, home: Path, url: str) -> list[str]:
    (home / "work").mkdir(parents=True, exist_ok=True)
    env = [f"{k}={v}" for k, v in claude_env(home, url).items()]
    return ["env", "-C", str(home / "work"), *env, str(binary), "-p", PROMPT, "--output-format", "stream-json",
            "--verbose", "--allowedTools", "Bash"]


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    if done.returncode != 0:
        sys.exit(f"{argv[0]} … exited {done.returncode}:\n{done.stdout[-3000:]}")
    return time.perf_counter() - started


class Monitor(threading.Thread):
    """(time, command) of every command Redis receives, from MONITOR."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.seen, self.ready = url, [], threading.Event()

    def run(self) -> None:
        try:
            with connect(RedisSettings(url=self.url)).monitor() as monitor:
                self.ready.set()
                for entry in monitor.listen():
                    self.seen.append((float(entry["time"]), entry["command"]))
        except redis.exceptions.ConnectionError:
            pass  # the server stopped: the bench is over


def message_stamps(path: Path) -> dict[str, float]:
    """message id -> when the relay passed on the first line of that message."""
    first: dict[str, float] = {}
    for row in path.read_text().splitlines():
        stamp, _, line = row.partition("\t")
        try:
            event = json.loads(line)
        except ValueError:
            continue
        message = event.get("message") if event.get("type") == "assistant" else None
        if isinstance(message, dict) and isinstance(message.get("id"), str):
            first.setdefault(message["id"], float(stamp))
    return first


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--turns", type=int, default=4)
    args = parser.parse_args()
    binary = agent_binary("claude_code")
    cortex = load_stack("cortex", ROOT)
    with tempfile.TemporaryDirectory(prefix="bench-agents-") as tmp:
        tmp = Path(tmp)
        redis_server = RedisServer(tmp / "redis").start()
        try:
            r = connect(RedisSettings(url=redis_server.url))
            alone, harnessed, lags = [], [], []
            monitor = Monitor(redis_server.url)
            monitor.start()
            monitor.ready.wait(10)
            for run in range(args.runs):
                with ModelServer(Anthropic(), replies(args.turns)) as server:
                    alone.append(timed(claude_argv(binary, tmp / f"alone-{run}", server.url)))
                ks = Keyspace.for_plan(cortex.channels, f"b{uuid.uuid4().hex[:10]}:")
                Coordinator(cortex, cortex.larry(LARRY), r, ks, Timing(1), tmp / f"run-{run}").initialise()
                stamps = tmp / f"stamps-{run}.tsv"
                env = {k: v for k, v in os.environ.items() if not k.startswith("LARRY_")}
                with ModelServer(Anthropic(), replies(args.turns)) as server:
                    agent = [sys.executable, "-c", RELAY, str(stamps), *claude_argv(binary, tmp / f"worker-{run}", server.url)]
                    harnessed.append(timed([*larry_command(), "worker", "--stack", "cortex", "--project-dir", str(ROOT),
                                            "--larry", LARRY, "--worker", WORKER, "--redis-url", redis_server.url,
                                            "--key-prefix", ks.prefix, "--coordination-dir", str(tmp / f"run-{run}"),
                                            "--speed", "1", "--usage", "claude-code", "--", *agent], env))
                # The stand-in numbers its messages alike in every run: match within this run's prefix.
                for message, printed in message_stamps(stamps).items():
                    booked = next((t for t, command in monitor.seen if command.startswith("EVALSHA")
                                   and ks.prefix in command and f":{message}" in command), None)
                    if booked is not None:
                        lags.append(booked - printed)
        finally:
            redis_server.stop()
    a, h = statistics.median(alone), statistics.median(harnessed)
    print(f"agent harness, {args.runs} runs each, {args.turns} tool turns + an answer per run, real Claude Code "
          f"against the loopback stand-in, one redis-server")
    print(f"{'':28}{'median s':>10}{'p90 s':>10}")
    print(f"{'claude alone':28}{a:>10.3f}{pct(alone, 0.9):>10.3f}")
    print(f"{'larry worker around claude':28}{h:>10.3f}{pct(harnessed, 0.9):>10.3f}")
    print(f"harness overhead: {h - a:+.3f} s per run (median), worker/alone = {h / a:.2f}x")
    if lags:
        print(f"metering lag (line printed -> ledger script at Redis), {len(lags)} messages: "
              f"p50 {1000 * pct(lags, 0.5):.1f} ms, p99 {1000 * pct(lags, 0.99):.1f} ms, max {1000 * max(lags):.1f} ms")
    else:
        print("metering lag: no message's charge was seen at Redis (nothing to report)")


if __name__ == "__main__":
    main()
