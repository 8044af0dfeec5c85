"""Session fixtures: each committed stack's program graph, built once under mocks."""
import pytest

from tests.components.pulumi_graph import Graph, run_program, stack_values


@pytest.fixture(scope="session")
def dev() -> Graph:
    return run_program("dev", stack_values("dev"))


@pytest.fixture(scope="session")
def cortex() -> Graph:
    return run_program("cortex", stack_values("cortex"))


@pytest.fixture(scope="session", params=["dev", "cortex"])
def graph(request) -> Graph:
    return request.getfixturevalue(request.param)
