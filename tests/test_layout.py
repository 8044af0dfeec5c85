"""The layering the project's packages promise: the plan contract imports neither Pulumi nor
Redis; the runtime (what the pods run) never imports the Pulumi program or Pulumi itself; the
Pulumi program never imports the runtime."""
from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.support.project import ROOT


def imported_modules(package: str) -> dict[str, set[str]]:
    """{file: top-level modules it imports} for every module of ``package``."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("package, forbidden", [
    ("plan", {"pulumi", "pulumi_kubernetes", "pulumi_policy", "redis", "runtime", "components", "policies"}),
    ("runtime", {"pulumi", "pulumi_kubernetes", "pulumi_policy", "components", "policies"}),
    ("components", {"runtime", "policies"}),
    ("policies", {"runtime", "components"}),
])
def test_packages_import_only_their_layer(package, forbidden):
    offenders = {path: sorted(names & forbidden) for path, names in imported_modules(package).items()
                 if names & forbidden}
    assert not offenders, f"{package}/ must not import {sorted(forbidden)}: {offenders}"


BLOCK_PULUMI = """
import importlib, importlib.abc, pkgutil, sys

class NoPulumi(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("pulumi", "pulumi_kubernetes", "pulumi_policy", "components", "policies"):
            raise ImportError(f"{name} is not in the runtime image")

sys.meta_path.insert(0, NoPulumi())
import plan, runtime
count = 0
for package in (plan, runtime):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
        count += 1
print(count)
"""


def test_every_runtime_module_imports_without_pulumi_installed():
    # What the runtime image has: plan/ and runtime/ with the runtime's dependencies only.
    done = subprocess.run([sys.executable, "-c", BLOCK_PULUMI], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 30, f"expected every module of plan/ and runtime/ to be imported, got {done.stdout}"
