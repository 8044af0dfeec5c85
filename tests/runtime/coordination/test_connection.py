"""Connection settings and retry behaviour against real servers."""

import time

import pytest
import redis

from runtime.coordination.connection import Durability, NotReplicated, RedisSettings, connect, run_script
from tests.support.redis_servers import RedisServer, free_port


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
