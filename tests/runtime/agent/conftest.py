"""Fixtures for tests that run the real agent CLIs."""

from __future__ import annotations

import pytest

from tests.support.agent_clis import MissingAgent, agent_binary


def _binary(cli: str):
    """The pinned executable of ``cli`` (installed by scripts/agents.sh ensure when missing);
    a test that cannot have it fails saying so."""
    try:
        return agent_binary(cli)
    except MissingAgent as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def claude_code():
    return _binary("claude_code")


@pytest.fixture(scope="session")
def codex():
    return _binary("codex")


@pytest.fixture(scope="session")
def aider():
    return _binary("aider")
