"""The real agent CLIs, installed by scripts/agents.sh, run unattended against a stand-in model
server on loopback.

Guaranteed: a CLI runs with a HOME and config directory of its own (under the directory the
caller gives), stdin from /dev/null, no telemetry, no update checks, no nonessential traffic,
and its model API at the stand-in's URL; each run is bounded by a timeout that names what
was awaited. Not guaranteed: that the CLI makes no other connection (the settings are the
ones the facts note measured to keep it on loopback).
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tests.support.project import ROOT

AGENTS_SH = ROOT / "scripts" / "agents.sh"


class MissingAgent(AssertionError):
    """An agent CLI the tests need is not installed."""


def agent_binary(cli: str) -> Path:
    """The executable of ``cli`` (``claude_code``), installing it if missing (``agents.sh
    ensure`` reuses an installed one in well under a second)."""
    done = subprocess.run([AGENTS_SH, "ensure"], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise MissingAgent(f"agent CLIs are not installed and could not be: run scripts/agents.sh ensure "
                           f"({done.stderr.strip()[-500:]})")
    env = subprocess.run(["bash", "-c", f'eval "$({AGENTS_SH} env)"; printf %s "$LARRY_AGENT_{cli.upper()}"'],
                         capture_output=True, text=True, timeout=60)
    binary = Path(env.stdout)
    if env.returncode != 0 or not env.stdout or not os.access(binary, os.X_OK):
        raise MissingAgent(f"{cli} CLI not found at {env.stdout!r}: run scripts/agents.sh ensure")
    return binary


@dataclass(frozen=True)
class AgentRun:
    lines: list[str]
    exit_code: int
    stderr: str


def claude_env(home: Path, base_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Claude Code's environment for an unattended run against ``base_url`` (facts note)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(home / ".claude"), "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": "sk-ant-standin", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_MAX_RETRIES": "2",
            **(extra or {})}


def run_claude(binary: Path, home: Path, base_url: str, prompt: str, args: tuple[str, ...] = (),
               env: dict[str, str] | None = None, on_line: Callable[[str], bool | None] | None = None,
               timeout: float = 120) -> AgentRun:
    """``claude -p PROMPT --output-format stream-json --verbose ARGS`` in ``home``/work; each
    stdout line goes to ``on_line`` as it is printed (the way a worker reads it), and when
    ``on_line`` returns True the CLI gets SIGTERM (the way a worker stops it)."""
    work = home / "work"
    work.mkdir(parents=True, exist_ok=True)
    argv = [str(binary), "-p", prompt, "--output-format", "stream-json", "--verbose", *args]
    lines: list[str] = []
    expired = threading.Event()
    with open(home / "claude.stderr", "w+") as stderr:
        process = subprocess.Popen(argv, cwd=work, env=claude_env(home, base_url, env), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=stderr, text=True)
        timer = threading.Timer(timeout, lambda: (expired.set(), process.kill()))
        timer.start()
        try:
            for line in process.stdout:
                lines.append(line.rstrip("\n"))
                if on_line and on_line(lines[-1]) and process.poll() is None:
                    process.terminate()
            exit_code = process.wait()
        finally:
            timer.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
        stderr.seek(0)
        errors = stderr.read()
    if expired.is_set():
        raise AssertionError(f"timed out after {timeout:g} s waiting for claude to finish {prompt!r}; "
                             f"its output:\n" + "\n".join(lines[-5:]) + f"\n{errors[-2000:]}")
    return AgentRun(lines, exit_code, errors)
