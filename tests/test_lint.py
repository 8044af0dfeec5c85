"""The tree has no unused imports or names, no undefined names and sorted imports (ruff's
pyflakes and isort rules, configured in pyproject.toml)."""
import subprocess
import sys

from tests.support.project import ROOT


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F,I", "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
