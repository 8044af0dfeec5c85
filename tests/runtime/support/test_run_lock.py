"""One run per Redis and key prefix: the lock is exclusive, names its holder, expires, renews."""
import pytest

from runtime.support.run_lock import RunLock, RunLocked


def test_a_second_holder_is_refused_with_the_first_named(r, ks):
    first = RunLock(r, ks.run_lock, "host a, pid 1, run directory /runs/a").acquire()
    try:
        with pytest.raises(RunLocked) as refused:
            RunLock(r, ks.run_lock, "host b, pid 2, run directory /runs/b").acquire()
        assert refused.value.holder == "host a, pid 1, run directory /runs/a"
        assert "another larry run is using this Redis and key prefix (host a" in str(refused.value)
    finally:
        first.release()
    RunLock(r, ks.run_lock, "host b, pid 2, run directory /runs/b").acquire().release()


def test_the_lock_expires_without_its_holder_and_renewal_extends_it(r, ks):
    lock = RunLock(r, ks.run_lock, "me", ttl=30)
    assert r.set(ks.run_lock, "me", px=100)  # as if taken long ago, about to lapse
    assert lock.renew() and r.pttl(ks.run_lock) > 25_000
    r.delete(ks.run_lock)  # lapsed (e.g. a Redis restart): renewal takes it back
    assert lock.renew() and r.get(ks.run_lock) == "me"
    r.set(ks.run_lock, "someone else")
    assert not lock.renew() and r.get(ks.run_lock) == "someone else"


def test_release_deletes_only_its_own_lock(r, ks):
    lock = RunLock(r, ks.run_lock, "me").acquire()
    r.set(ks.run_lock, "the next run")
    lock.release()
    assert r.get(ks.run_lock) == "the next run"
    assert ks.run_lock.startswith(ks.prefix)
