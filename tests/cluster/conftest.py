"""The cluster tests' cluster (tests.support.cluster): started once for the tests/cluster
package and stopped when its last test is done, not at the end of the session, so the rest of
the suite runs without its load; stopping must leave nothing behind. A host without what it
needs (root, the binaries `make test` builds) fails the tests, saying what is missing."""
from __future__ import annotations

import os

import pytest

from tests.support.cluster import local_cluster


@pytest.fixture(scope="package")
def cluster(tmp_path_factory):
    with local_cluster(tmp_path_factory.mktemp("cluster") / "run", f"larry-test-{os.getpid()}") as up:
        yield up
