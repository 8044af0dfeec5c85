"""How deadlines, lease TTLs and heartbeats follow --speed, with their floors."""
import pytest

from runtime.support.timing import DEFAULT_ALLOWANCE, Timing


def test_cluster_speed_keeps_the_seeds_figures():
    timing = Timing(1.0)
    assert timing.scaled(25) == 1500
    assert timing.deadline(25) == 1500 + DEFAULT_ALLOWANCE
    assert timing.lease_ttl_ms == 30_000 and timing.heartbeat == 5.0 and timing.dead_after_ms == 15_000
    assert timing.recheck == 30.0


def test_accelerated_deadlines_scale_but_liveness_has_floors():
    timing = Timing(600.0, allowance=2.0)
    assert timing.scaled(25) == pytest.approx(2.5)
    assert timing.deadline(25) == pytest.approx(4.5)
    assert timing.lease_ttl_ms == 3_000 and timing.heartbeat == 1.0 and timing.dead_after_ms == 5_000
    assert timing.recheck == 3.0


def test_between_the_floors_liveness_scales():
    timing = Timing(5.0)
    assert timing.lease_ttl_ms == 6_000 and timing.heartbeat == 1.0 and timing.dead_after_ms == 5_000


def test_allowance_comes_from_the_environment():
    assert Timing.from_env(60, {"LARRY_DEADLINE_ALLOWANCE": "0.5"}).allowance == 0.5
    assert Timing.from_env(60, {}).allowance == DEFAULT_ALLOWANCE
    assert Timing.from_env(60, {"LARRY_DEADLINE_ALLOWANCE": ""}).speed == 60
