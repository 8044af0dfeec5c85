"""Connection settings and retry behaviour against real servers."""

import logging
import threading
import time

import pytest
import redis

from runtime.coordination.connection import (
    AuthenticationFailed,
    Durability,
    NotReplicated,
    RedisSettings,
    connect,
    mask_url,
    run_script,
)
from tests.support.redis_servers import RedisServer, SentinelProcess, free_port


def test_settings_from_env_direct_and_sentinel():
    direct = RedisSettings.from_env({"LARRY_REDIS_URL": "redis://h:1/2", "REDIS_PASSWORD": "s3cret"})
    assert direct.url == "redis://h:1/2" and direct.password == "s3cret" and not direct.sentinels
    sent = RedisSettings.from_env({"LARRY_REDIS_SENTINELS": "a:26379, b:26380", "LARRY_REDIS_MASTER_NAME": "cortex",
                                   "LARRY_REDIS_PASSWORD": "p", "REDIS_PASSWORD": "ignored",
                                   "LARRY_REDIS_RETRY_FOR": "45"})
    assert sent.sentinels == (("a", 26379), ("b", 26380)) and sent.master_name == "cortex"
    assert sent.password == "p" and sent.retry_for == 45 and sent.url is None


def test_password_from_environment_is_used(tmp_path):
    server = RedisServer(tmp_path, password="s3cret").start()
    try:
        settings = RedisSettings.from_env({"LARRY_REDIS_URL": server.url, "LARRY_REDIS_PASSWORD": "s3cret",
                                           "LARRY_REDIS_RETRY_FOR": "1"})
        assert connect(settings).ping()
        with pytest.raises(redis.exceptions.AuthenticationError):
            connect(RedisSettings(url=server.url, retry_for=0.5)).ping()
    finally:
        server.stop()


def test_retries_ride_out_a_restart_within_retry_for(tmp_path):
    server = RedisServer(tmp_path).start()
    client = connect(RedisSettings(url=server.url, retry_for=10))
    client.set("k", "v")
    server.kill()
    restarted = RedisServer(tmp_path, name="again")
    restarted.port = server.port

    import threading
    restart = threading.Timer(1.0, restarted.start)  # the outage lasts 1 s
    restart.start()
    try:
        assert client.ping()  # blocks in backoff until the server is back
    finally:
        restart.join(30)  # start() returns once the server answers: never stop it half-started
        restarted.stop()


def test_gives_up_after_retry_for():
    client = connect(RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0", retry_for=1.0, connect_timeout=0.2))
    started = time.monotonic()
    with pytest.raises(redis.exceptions.ConnectionError):
        client.ping()
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 5, f"retried for {elapsed:.1f}s instead of about 1s"


def test_durable_write_without_replicas_raises_not_replicated(r):
    script = r.register_script("return redis.call('INCR', KEYS[1])")
    with pytest.raises(NotReplicated):
        run_script(r, script, ["durable-test"], [], Durability(replicas=1, timeout_ms=50, retry_for=0.2))
    assert run_script(r, script, ["durable-test2"], [], Durability()) == 1


def test_missing_redis_server_fails_with_setup_hint(monkeypatch, tmp_path):
    from tests.support.redis_servers import MissingBinary
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingBinary, match=r"redis-server not found: run `make setup`"):
        RedisServer(tmp_path).start()


def test_mask_url_hides_only_the_password():
    assert mask_url("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert mask_url("rediss://alice:s3cret@h/1") == "rediss://alice:***@h/1"
    assert mask_url("redis://h:6379/0") == "redis://h:6379/0"
    assert "s3cret" not in RedisSettings(url="redis://:s3cret@h:1/0").target


@pytest.mark.parametrize("url_password,expected", [
    ("wrong", "the password was refused (invalid username-password pair"),
    (None, "a password is required and none was given (set LARRY_REDIS_PASSWORD or put it in the URL)"),
])
def test_authentication_errors_end_at_once_with_a_clear_line(tmp_path, caplog, url_password, expected):
    server = RedisServer(tmp_path, password="s3cret").start()
    try:
        auth = f":{url_password}@" if url_password else ""
        client = connect(RedisSettings(url=f"redis://{auth}127.0.0.1:{server.port}/0", retry_for=30))
        started = time.monotonic()
        with pytest.raises(AuthenticationFailed) as failed:
            client.ping()
        assert time.monotonic() - started < 3, "waiting cannot fix a password: no retries"
        assert str(failed.value).startswith(expected) and "HELLO" not in str(failed.value)
        assert "wrong" not in caplog.text and "s3cret" not in caplog.text
    finally:
        server.stop()


def test_a_long_wait_is_logged_with_what_is_awaited_and_the_password_masked(caplog):
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    client = connect(RedisSettings(url=url, retry_for=2.0, connect_timeout=0.2))
    with caplog.at_level(logging.WARNING, "runtime.coordination.connection"), \
            pytest.raises(redis.exceptions.ConnectionError):
        client.ping()
    masked = url.replace("s3cret", "***")
    assert f"waiting for Redis at {masked}: " in caplog.text and "Connection refused" in caplog.text
    assert f"gave up waiting for Redis at {masked} after" in caplog.text
    assert "s3cret" not in caplog.text


def test_a_primary_without_its_synced_replica_is_waited_for(tmp_path, caplog):
    """min-replicas-to-write 1: writes answer NOREPLICAS until a replica has synced."""
    primary = RedisServer(tmp_path, "primary").start()
    primary.client().config_set("min-replicas-to-write", 1)
    replica = RedisServer(tmp_path, "replica", replica_of=primary.port)
    client = connect(RedisSettings(url=primary.url, retry_for=30))
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    timer = threading.Timer(3, replica.start)  # past ANNOUNCE_AFTER plus one backoff cap
    timer.start()
    try:
        with caplog.at_level(logging.WARNING, "runtime.coordination.connection"):
            assert run_script(client, script, ["k"], [], Durability(replicas=1)) == 1, "a refused script ran"
            assert client.set("plain", "write")
        assert "waiting for Redis at" in caplog.text and "a replica to sync (" in caplog.text and "NOREPLICAS" in caplog.text
        assert "answers again after" in caplog.text
    finally:
        timer.join()
        replica.stop()
        primary.stop()


def test_a_sentinel_without_a_primary_yet_is_waited_for(tmp_path, caplog):
    primary = RedisServer(tmp_path, "primary").start()
    sentinel = SentinelProcess(tmp_path, "sentinel", "other", primary.port, 1000).start()

    def monitor():
        sentinel.client().execute_command("SENTINEL", "MONITOR", "larry", "127.0.0.1", primary.port, 1)

    timer = threading.Timer(3, monitor)  # past ANNOUNCE_AFTER plus one backoff cap
    timer.start()
    try:
        client = connect(RedisSettings(sentinels=(("127.0.0.1", sentinel.port),), master_name="larry", retry_for=30))
        with caplog.at_level(logging.WARNING, "runtime.coordination.connection"):
            assert client.set("k", "v")
        assert "waiting for Sentinel master 'larry'" in caplog.text and "No master found for 'larry'" in caplog.text
    finally:
        timer.join()
        sentinel.stop()
        primary.stop()
