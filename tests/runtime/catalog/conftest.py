"""Fixtures of the catalog tests: replicas on the session's Redis under a prefix of their own."""
import uuid

import pytest

from tests.runtime.catalog.service import CatalogProcess, redis_env
from tests.runtime.commands.conftest import rig  # noqa: F401 - the worker tests' rig
from tests.support.project import ROOT


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def replicas(redis_server, prefix, tmp_path):
    """``replicas(n, baseline=None)``: n replicas serving one catalog; all stopped afterwards."""
    started: list[CatalogProcess] = []

    def start(n: int = 1, baseline=None, env=None):
        new = [CatalogProcess(tmp_path, f"catalog-{len(started) + i}", env or redis_env(redis_server.url), prefix,
                              baseline) for i in range(n)]
        for replica in new:
            started.append(replica)
            replica.start()
        return new

    yield start
    for replica in started:
        replica.stop()


BASELINE = ROOT / "catalog-baseline.yaml"

