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


def pytest_collection_modifyitems(items):
    # `make test` runs the suite on two xdist workers (--dist loadgroup): the cluster tests share
    # one cluster, so they all go to the same worker.
    for item in items:
        if item.nodeid.startswith("tests/cluster/"):
            item.add_marker(pytest.mark.xdist_group("cluster"))


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
