"""The dev stack's plan, and its rendering afresh for each test to edit."""
from __future__ import annotations

import pytest

from plan.model import StackConfig
from tests.policies.harness import K8s, plan, render


@pytest.fixture(scope="module")
def dev() -> StackConfig:
    return plan("dev")


@pytest.fixture
def dev_resources(dev) -> list[K8s]:
    return render(dev)
