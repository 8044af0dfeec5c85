"""Fixtures for tests that run the real agent CLIs."""

from __future__ import annotations

import pytest

from tests.support.agent_clis import MissingAgent, agent_binary


@pytest.fixture(scope="session")
def claude_code():
    """The pinned Claude Code executable (installed by scripts/agents.sh ensure when missing);
    a test that cannot have it fails saying so."""
    try:
        return agent_binary("claude_code")
    except MissingAgent as error:
        pytest.fail(str(error), pytrace=False)
