"""The real agent CLIs, installed by scripts/agents.sh, run unattended against a stand-in model
server on loopback.

Guaranteed: a CLI runs with a HOME and config directory of its own (under the directory the
caller gives), stdin from /dev/null, no telemetry, no update checks, no nonessential traffic,
and its model API at the stand-in's URL; each run is bounded by a timeout that names what
was awaited. Not guaranteed: that the CLI makes no other connection (the settings are the
ones the facts note measured to keep it on loopback).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from runtime.agent.usage import Tokens
from tests.support.model_server import Reply
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


@dataclass(frozen=True)
class Scenario:
    """One recorded situation: the prompt, the stand-in's script (``then`` once it is used up),
    extra CLI arguments and environment."""
    prompt: str
    replies: tuple[Reply, ...]
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    then: Reply | None = None


def served_record(run: AgentRun, server) -> dict:
    """What a recording keeps beside the CLI's output: its exit code, the usage the stand-in
    ``server`` served and each request's path, status and scripted reply."""
    return {"exit_code": run.exit_code, "served": server.served.__dict__,
            "requests": [{"path": r.path, "status": r.status, "reply": r.reply} for r in server.requests]}


def save_recording(directory: Path, name: str, run: AgentRun, server, stdout: str = ".jsonl") -> None:
    """Keep scenario ``name``'s run for the adapter's unit tests: the CLI's stdout
    (``<name><stdout>``) and :func:`served_record` (``<name>.served.json``)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}{stdout}").write_text("".join(line + "\n" for line in run.lines))
    (directory / f"{name}.served.json").write_text(json.dumps(served_record(run, server), indent=1) + "\n")
    print(f"{name}: exit {run.exit_code}, {len(run.lines)} lines, {len(server.requests)} requests, "
          f"served {server.served}", file=sys.stderr)


def record_scenarios(cli: str, names: list[str], directory: Path,
                     run_one: Callable[[Path, str, Path], tuple[AgentRun, object]], stdout: str = ".jsonl") -> None:
    """Re-records ``names``: ``run_one(binary, name, home)`` runs one scenario of the real ``cli``
    in a throwaway home (checking what it must have done there) and returns its run and server."""
    binary = agent_binary(cli)
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"{cli}-{name}-") as home:
            run, server = run_one(binary, name, Path(home))
        save_recording(directory, name, run, server, stdout=stdout)


def booked(live: list, outcome) -> Tokens:
    """What an adapter booked for a run: its live charges and the reconciling one."""
    return sum((c.tokens for c in live + ([outcome.charge] if outcome.charge else [])), Tokens())


def claude_env(home: Path, base_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Claude Code's environment for an unattended run against ``base_url`` (facts note)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(home / ".claude"), "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": "sk-ant-standin", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_MAX_RETRIES": "2",
            **(extra or {})}


def run_agent(name: str, argv: list[str], cwd: Path, env: dict[str, str],
              on_line: Callable[[str], bool | None] | None = None, timeout: float = 120) -> AgentRun:
    """Run ``argv`` in ``cwd`` with exactly ``env`` and stdin from /dev/null; each stdout line
    goes to ``on_line`` as it is printed (the way a worker reads it), and when ``on_line``
    returns True the CLI gets SIGTERM (the way a worker stops it). Bounded by ``timeout``
    (then the CLI is killed and the failure quotes its output)."""
    cwd.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    expired = threading.Event()
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=stderr, text=True)
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
        raise AssertionError(f"timed out after {timeout:g} s waiting for {name} to finish; its output:\n"
                             + "\n".join(lines[-5:]) + f"\n{errors[-2000:]}")
    return AgentRun(lines, exit_code, errors)


def run_claude(binary: Path, home: Path, base_url: str, prompt: str, args: tuple[str, ...] = (),
               env: dict[str, str] | None = None, on_line: Callable[[str], bool | None] | None = None,
               timeout: float = 120) -> AgentRun:
    """``claude -p PROMPT --output-format stream-json --verbose ARGS`` in ``home``/work."""
    argv = [str(binary), "-p", prompt, "--output-format", "stream-json", "--verbose", *args]
    return run_agent("claude", argv, home / "work", claude_env(home, base_url, env), on_line, timeout)


#: Codex features that look up outside hosts (plugin sync, account, model list); facts note.
CODEX_FEATURES_OFF = ("plugins", "apps", "remote_plugin", "plugin_sharing", "in_app_updates", "remote_models",
                      "api_key_model_discovery", "memories")
CODEX_MODEL = "gpt-5.5"  # a model Codex knows: an unknown one adds an error item to the output


def codex_home(home: Path, base_url: str, retries: int = 2) -> Path:
    """A CODEX_HOME under ``home`` whose config.toml sends every model request to ``base_url``
    (Responses API) with ``retries`` retries per request and per stream."""
    config = home / ".codex"
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.toml").write_text("\n".join([
        f'model = "{CODEX_MODEL}"', 'model_provider = "standin"', "",
        "[model_providers.standin]", 'name = "stand-in"', f'base_url = "{base_url}/v1"',
        'wire_api = "responses"', 'env_key = "LARRY_STANDIN_API_KEY"',
        f"request_max_retries = {retries}", f"stream_max_retries = {retries}", "",
        "[features]", *(f"{feature} = false" for feature in CODEX_FEATURES_OFF), ""]))
    return config


def codex_env(home: Path, base_url: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
            "CODEX_HOME": str(codex_home(home, base_url)), "LARRY_STANDIN_API_KEY": "sk-standin"}


def codex_argv(binary: Path, prompt: str, args: tuple[str, ...] = ()) -> list[str]:
    return [str(binary), "exec", "--json", "--skip-git-repo-check", "-m", CODEX_MODEL, *args, prompt]


def run_codex(binary: Path, home: Path, base_url: str, prompt: str, args: tuple[str, ...] = (),
              on_line: Callable[[str], bool | None] | None = None, timeout: float = 120) -> AgentRun:
    """``codex exec --json --skip-git-repo-check -m CODEX_MODEL ARGS PROMPT`` in ``home``/work."""
    return run_agent("codex", codex_argv(binary, prompt, args), home / "work", codex_env(home, base_url),
                     on_line, timeout)


AIDER_MODEL = "openai/gpt-4o"  # a model litellm's bundled price table knows


def aider_env(home: Path) -> dict[str, str]:
    """aider's environment: its own HOME with a fresh model-info cache and litellm's bundled
    prices, so it looks nothing up outside (facts note; scripts/agents.sh aider_env)."""
    exported = subprocess.run(["bash", "-c", f'eval "$({AGENTS_SH} env)"; printf "%s\\n%s" '
                               '"$LARRY_AIDER_PRICES" "$LITELLM_LOCAL_MODEL_COST_MAP"'],
                              capture_output=True, text=True, timeout=60)
    prices, local_map = exported.stdout.splitlines()
    caches = home / ".aider" / "caches"
    caches.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(prices, caches / "model_prices_and_context_window.json")
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
            "LITELLM_LOCAL_MODEL_COST_MAP": local_map, "OPENAI_API_KEY": "sk-standin"}


def aider_argv(binary: Path, base_url: str, prompt: str, args: tuple[str, ...] = ()) -> list[str]:
    """``aider --message PROMPT --no-stream ...``, unattended and without git, update checks or
    analytics sent anywhere; its analytics log is for the caller to add."""
    return [str(binary), "--message", prompt, "--model", AIDER_MODEL, "--openai-api-base", f"{base_url}/v1",
            "--no-stream", "--yes-always", "--no-git", "--no-check-update", "--no-show-release-notes",
            "--no-analytics", "--no-show-model-warnings", "--no-detect-urls", "--no-pretty", "--no-fancy-input",
            *args]


def run_aider(binary: Path, home: Path, base_url: str, prompt: str, log: Path, args: tuple[str, ...] = (),
              on_line: Callable[[str], bool | None] | None = None, timeout: float = 180) -> AgentRun:
    """aider (:func:`aider_argv`) with its analytics log at ``log``, in ``home``/work."""
    argv = [*aider_argv(binary, base_url, prompt, args), "--analytics-log", str(log)]
    return run_agent("aider", argv, home / "work", aider_env(home), on_line, timeout)
