"""The ``rig`` fixture of the worker and coordinator tests (see worker_rig.py)."""
import signal

import pytest

from tests.runtime.commands.worker_rig import Rig


@pytest.fixture
def rig(redis_server, r, tmp_path, monkeypatch):
    monkeypatch.setenv("LARRY_DEADLINE_ALLOWANCE", "60")
    monkeypatch.delenv("LARRY_REDIS_SENTINELS", raising=False)
    sigterm = signal.getsignal(signal.SIGTERM)  # the worker installs its own handler
    yield Rig(redis_server, r, tmp_path)
    signal.signal(signal.SIGTERM, sigterm)
