"""Connecting to Redis (direct URL or Sentinel) with retries that outlast a failover.

Guarantees and limits:

* Every command is retried on connection errors and timeouts with exponential
  backoff plus jitter until ``retry_for`` seconds have passed (default 30 s,
  longer than a Sentinel failover: down-after-milliseconds + election).
  With Sentinel the client asks the sentinels for the current primary on every
  reconnect, and a demoted primary's READONLY error makes redis-py drop the
  connection, so commands land on the new primary after a failover.
* A retried command may have run once already (the reply was lost, not the
  request). Every state-changing Lua script in this package is therefore
  idempotent: re-running it reports the same state without charging, emitting
  or issuing twice (free-form ``EventLog.emit`` is the exception: at-least-once).
* Redis replicates asynchronously: an acknowledged write can vanish when a
  replica that never saw it is promoted. :class:`Durability` closes that hole
  for callers that ask for it: the script and a ``WAIT`` run on one connection
  and the result is returned only once ``replicas`` replicas have the write;
  otherwise the (idempotent) script is re-run until it is, or
  :class:`NotReplicated` is raised when ``retry_for`` runs out.
"""

from __future__ import annotations

import os
import random
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

from plan import environment as envvar


class NotReplicated(redis.exceptions.RedisError):
    """A write was not confirmed by the required number of replicas in time."""


_deadline = threading.local()


class DeadlineRetry(Retry):
    """redis-py Retry bounded by elapsed time instead of a count.

    redis-py nests retries (command -> connect); the outermost call's deadline
    is shared by the nested ones through a thread-local so the total stays
    ``retry_for`` instead of multiplying.
    """

    def __init__(self, retry_for: float, base: float = 0.05, cap: float = 2.0):
        super().__init__(ExponentialWithJitterBackoff(cap=cap, base=base), retries=-1)
        self.retry_for = retry_for

    def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        outer = getattr(_deadline, "at", None)
        deadline = outer if outer is not None else time.monotonic() + self.retry_for
        _deadline.at = deadline
        self._backoff.reset()
        failures = 0
        try:
            while True:
                try:
                    return do()
                except self._supported_errors as error:
                    if is_retryable and not is_retryable(error):
                        raise
                    failures += 1
                    fail(error, failures) if with_failure_count else fail(error)
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise
                    time.sleep(min(self._backoff.compute(failures), left))
        finally:
            _deadline.at = outer


@contextmanager
def single_attempt():
    """Commands of this thread inside the block are tried once, without the client's retries
    (a probe whose caller decides what an unreachable Redis means)."""
    outer = getattr(_deadline, "at", None)
    _deadline.at = time.monotonic()
    try:
        yield
    finally:
        _deadline.at = outer


class _RediscoveringConnection(SentinelManagedConnection):
    """Looks the primary up again on every reconnect.

    redis-py 8.1 reconnects a dropped connection through connect_check_health(),
    which bypasses SentinelManagedConnection.connect() and so reuses the demoted
    primary's address forever after a failover (every write: READONLY).
    """

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True):
        if not self._sock and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        return super().connect_check_health(check_health, retry_socket_connect)


def _env_float(env, name: str, default: float) -> float:
    value = env.get(name)
    return float(value) if value else default


@dataclass(frozen=True)
class RedisSettings:
    """Where Redis is. Either ``url`` or ``sentinels`` + ``master_name``."""

    url: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    master_name: str = "larry"
    password: str | None = None
    sentinel_password: str | None = None
    db: int = 0
    socket_timeout: float = 5.0
    connect_timeout: float = 2.0
    retry_for: float = 30.0
    backoff_base: float = 0.05
    backoff_cap: float = 2.0

    @classmethod
    def from_env(cls, env=None) -> "RedisSettings":
        """LARRY_REDIS_URL, or LARRY_REDIS_SENTINELS="h:p,h:p" + LARRY_REDIS_MASTER_NAME;
        password from LARRY_REDIS_PASSWORD or REDIS_PASSWORD; LARRY_REDIS_SENTINEL_PASSWORD;
        LARRY_REDIS_RETRY_FOR (seconds)."""
        env = os.environ if env is None else env
        sentinels = tuple(
            (host, int(port))
            for host, _, port in (s.strip().rpartition(":") for s in env.get(envvar.REDIS_SENTINELS, "").split(","))
            if host
        )
        url = env.get(envvar.REDIS_URL) or None
        if not url and not sentinels:
            url = "redis://localhost:6379/0"
        return cls(
            url=url,
            sentinels=sentinels,
            master_name=env.get(envvar.REDIS_MASTER_NAME, "larry"),
            password=env.get(envvar.REDIS_PASSWORD) or env.get("REDIS_PASSWORD") or None,
            sentinel_password=env.get(envvar.REDIS_SENTINEL_PASSWORD) or None,
            retry_for=_env_float(env, envvar.REDIS_RETRY_FOR, cls.retry_for),
            socket_timeout=_env_float(env, envvar.REDIS_SOCKET_TIMEOUT, cls.socket_timeout),
        )


def connect(settings: RedisSettings) -> redis.Redis:
    """A text-mode client (decode_responses=True) for the primary, retrying per ``settings``."""
    common = dict(
        password=settings.password,
        db=settings.db,
        socket_timeout=settings.socket_timeout,
        socket_connect_timeout=settings.connect_timeout,
        retry=DeadlineRetry(settings.retry_for, settings.backoff_base, settings.backoff_cap),
        decode_responses=True,
    )
    if settings.sentinels:
        sentinel = Sentinel(
            list(settings.sentinels),
            sentinel_kwargs=dict(
                password=settings.sentinel_password,
                socket_timeout=settings.connect_timeout,
                socket_connect_timeout=settings.connect_timeout,
            ),
        )
        return sentinel.master_for(settings.master_name, connection_class=_RediscoveringConnection, **common)
    if settings.password is None:
        del common["password"]  # keep a password given in the URL
    return redis.Redis.from_url(settings.url, **common)


def require_text(r: redis.Redis) -> None:
    if not r.get_connection_kwargs().get("decode_responses"):
        raise ValueError("runtime needs a client with decode_responses=True (use runtime.connection.connect)")


@dataclass(frozen=True)
class Durability:
    """How many replicas must hold a write before it is reported done.

    ``replicas=0`` (default) is plain Redis: fast, but a failover can roll back
    the last writes. Production with Sentinel should use ``replicas=1``.
    """

    replicas: int = 0
    timeout_ms: int = 1000
    retry_for: float = 30.0


def run_script(r: redis.Redis, script, keys, args, durability: Durability = Durability(), *, idempotent: bool = True):
    """Run a registered Lua script; with ``durability.replicas`` > 0 confirm it with WAIT.

    Script and WAIT share one pipeline (one connection): WAIT counts only the
    writes of its own connection, and a pooled client may hand consecutive
    commands to different connections.
    """
    if durability.replicas <= 0:
        return script(keys=keys, args=args, client=r)
    deadline = time.monotonic() + durability.retry_for
    while True:
        pipe = r.pipeline(transaction=False)
        script(keys=keys, args=args, client=pipe)
        pipe.wait(durability.replicas, durability.timeout_ms)
        try:
            result, acked = pipe.execute()
        except redis.exceptions.ResponseError as error:
            if not _demoted(error):
                raise
            # Still connected to a primary that Sentinel demoted (redis-py only
            # notices READONLY replies, not WAIT's refusal): drop the pool's
            # connections so the next attempt asks the sentinels again.
            r.connection_pool.disconnect()
            acked = -1
        if acked >= durability.replicas:
            return result
        if not idempotent or time.monotonic() >= deadline:
            raise NotReplicated(f"write reached {acked} of {durability.replicas} replicas")
        time.sleep(random.uniform(0.05, 0.2))


def _demoted(error: Exception) -> bool:
    text = str(error)
    return "WAIT cannot be used with replica" in text or "READONLY" in text
