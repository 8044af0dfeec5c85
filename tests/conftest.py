"""Fixtures: real Redis processes started by the suite; isolation by a unique key prefix per test."""

from __future__ import annotations

import uuid

import pytest

from runtime.coordination.connection import RedisSettings, connect
from runtime.coordination.keys import Keyspace
from tests.support.redis_servers import MissingBinary, RedisServer, SentinelCluster


def _start(process):
    try:
        return process.start()
    except MissingBinary as error:
        pytest.fail(str(error), pytrace=False)


def pytest_xdist_make_scheduler(config, log):
    """`make test` runs the suite on two xdist workers: the cluster tests share one cluster, so
    they are one unit of work for one worker, and every other test is a unit of its own.
    (xdist's own ``xdist_group`` mark does not group under pytest 9: xdist renames the item's
    ``_nodeid``, which pytest 9 no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ClusterTestsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tests/cluster" if nodeid.startswith("tests/cluster/") else nodeid

    return ClusterTestsTogether(config, log)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One server for the session: tests share it safely because each uses its own key prefix."""
    server = _start(RedisServer(tmp_path_factory.mktemp("redis")))
    yield server
    server.stop()


@pytest.fixture
def own_server(tmp_path):
    """A server this test alone may pause, kill or restart."""
    server = _start(RedisServer(tmp_path))
    yield server
    server.stop()


@pytest.fixture
def sentinel_cluster(tmp_path):
    try:
        cluster = SentinelCluster(tmp_path).start()
    except MissingBinary as error:
        pytest.fail(str(error), pytrace=False)
    yield cluster
    cluster.stop()


@pytest.fixture
def ks() -> Keyspace:
    return Keyspace(prefix=f"t{uuid.uuid4().hex[:10]}:")


@pytest.fixture
def settings(redis_server) -> RedisSettings:
    return RedisSettings(url=redis_server.url, retry_for=5.0)


@pytest.fixture
def r(settings):
    client = connect(settings)
    yield client
    client.close()
