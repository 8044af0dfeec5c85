"""The session's cluster (tests.support.cluster): started once for every cluster test, stopped
at the end, which must leave nothing behind. A host without what it needs (root, the binaries
`make test` builds) fails the tests, saying what is missing."""
from __future__ import annotations

import os

import pytest

from tests.support.cluster import local_cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    with local_cluster(tmp_path_factory.mktemp("cluster") / "run", f"larry-test-{os.getpid()}") as up:
        yield up
