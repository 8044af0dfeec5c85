"""The agent image recipes install the very CLI versions scripts/agents.sh pins (the ones the
adapters and their recordings were checked on): one version per CLI."""
import re

import pytest

from tests.support.project import ROOT


def pinned(variable: str) -> str:
    found = re.search(rf"^{variable}=(\S+)$", (ROOT / "scripts" / "agents.sh").read_text(), re.M)
    assert found, f"scripts/agents.sh pins no {variable}"
    return found.group(1)


@pytest.mark.parametrize("dockerfile, variable", [("Dockerfile.claude-code", "CLAUDE_CODE_VERSION"),
                                                  ("Dockerfile.codex", "CODEX_VERSION")])
def test_an_agent_image_installs_the_pinned_version(dockerfile, variable):
    found = re.search(rf"^ARG {variable}=(\S+)$", (ROOT / dockerfile).read_text(), re.M)
    assert found, f"{dockerfile} has no ARG {variable}"
    assert found.group(1) == pinned(variable), f"{dockerfile} and scripts/agents.sh pin different versions"
