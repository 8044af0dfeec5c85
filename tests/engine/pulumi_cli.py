"""Running the real Pulumi engine from tests: its environment, throwaway project copies, commands.

The engine is whatever `scripts/engine.sh env` points at (found on the machine or built by
`make setup`). Engine tests are part of the normal run; `LARRY_SKIP_ENGINE_TESTS=1` is the
only way to skip them, and the skip is reported with its reason.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.project import ROOT  # noqa: E402

#: What a copy of the project needs to run `pulumi` and the policy pack.
PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "plan", "components", "policies", "runtime", "pyproject.toml", "Makefile",
                 "scripts", "catalog-baseline.yaml")
TIMEOUT = 900


def require_engine() -> None:
    if os.environ.get("LARRY_SKIP_ENGINE_TESTS") == "1":
        pytest.skip("LARRY_SKIP_ENGINE_TESTS=1: engine tests opted out")


def engine_env(backend: str, **extra: str) -> dict[str, str]:
    """The environment `scripts/engine.sh env` sets up, with state on ``backend``."""
    require_engine()
    script = f'eval "$({ROOT}/scripts/engine.sh env)" && env -0'
    # The committed stack files carry the salt of the development passphrase engine.sh defaults to.
    outer = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_CONFIG_PASSPHRASE")}
    done = subprocess.run(["bash", "-c", script], capture_output=True, env=outer, timeout=60)
    if done.returncode != 0:
        pytest.fail(f"scripts/engine.sh env failed: {done.stderr.decode()}\nRun `make setup` to build the engine.")
    env = dict(item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)
    if not shutil.which("pulumi", path=env["PATH"]):
        pytest.fail("no `pulumi` CLI on the engine's PATH: run `make setup` (scripts/engine.sh ensure) first")
    env.update(PULUMI_BACKEND_URL=backend, **extra)
    # A kubeconfig in the environment would become the provider's and clash with render mode.
    env.pop("KUBECONFIG", None)
    return env


def copy_project(dest: Path, stacks: dict[str, dict] | None = None) -> Path:
    """A copy of the project in ``dest`` using the project's virtualenv; ``stacks`` maps a
    stack name to its stack file document (default: the committed dev and cortex files)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    for stack, document in (stacks or {s: stack_document(s) for s in ("dev", "cortex")}).items():
        (dest / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return dest


def stack_document(stack: str) -> dict:
    return yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())


def run(args: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    if check and done.returncode != 0:
        pytest.fail(f"`{' '.join(args)}` exited {done.returncode}\n--- stdout\n{done.stdout[-6000:]}"
                    f"\n--- stderr\n{done.stderr[-6000:]}")
    return done


def pulumi(args: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    return run(["pulumi", *args, "--non-interactive"], cwd, env, check)


def init_stack(stack: str, cwd: Path, env: dict[str, str]) -> None:
    pulumi(["stack", "select", "--create", stack], cwd, env)
