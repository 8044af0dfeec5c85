"""Connecting to Redis (direct URL or Sentinel) with retries that outlast a failover.

Guarantees and limits:

* Every command is retried on what waiting can cure (connection errors, timeouts, a
  Sentinel that names no primary yet, ``NOREPLICAS`` from a primary whose replicas have
  not synced under ``min-replicas-to-write``) with exponential backoff plus jitter until
  ``retry_for`` seconds have passed (default 30 s, longer than a Sentinel failover:
  down-after-milliseconds + election). A refused or missing password is not retried:
  :class:`AuthenticationFailed` says which at once.
* A wait that lasts past a second is logged once, naming what is awaited, and so are the
  end of the wait (Redis answers again) and giving up; URLs in messages never show a
  password (:func:`runtime.support.credentials.mask_url`).
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

import logging
import os
import random
import re
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

from plan import environment as envvar
from runtime.support.credentials import mask_url

log = logging.getLogger(__name__)

#: A wait on Redis shorter than this is not worth a log line (a reconnect, a blip).
ANNOUNCE_AFTER = 1.0


class NotReplicated(redis.exceptions.RedisError):
    """A write was not confirmed by the required number of replicas in time."""


class AuthenticationFailed(redis.exceptions.AuthenticationError):
    """Redis refused the credentials, or wants some and got none: waiting cannot help."""


def _transient(error: Exception) -> bool:
    """Whether waiting can cure ``error``."""
    if isinstance(error, (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError)):
        return False
    if isinstance(error, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, socket.timeout)):
        return True
    # Refused before the script's first write (the check precedes every write), so nothing
    # ran; in a pipeline redis-py puts the command in front of the server's text.
    return isinstance(error, redis.exceptions.ResponseError) and re.search(r"\bNOREPLICAS\b", str(error)) is not None


def _awaited(error: Exception) -> str:
    if isinstance(error, redis.exceptions.ResponseError):
        return f"a replica to sync ({error})"
    return str(error) or type(error).__name__


# One wait per thread: redis-py nests retries (command -> connect), and the outermost
# call's deadline and announcement are shared by the nested ones, so the total stays
# ``retry_for`` instead of multiplying and a wait is logged once.
_wait = threading.local()


class DeadlineRetry(Retry):
    """redis-py Retry bounded by elapsed time instead of a count, logging long waits."""

    def __init__(self, retry_for: float, base: float = 0.05, cap: float = 2.0, *,
                 target: str = "Redis", password_given: bool = True):
        super().__init__(ExponentialWithJitterBackoff(cap=cap, base=base), retries=-1)
        self.retry_for, self.target, self.password_given = retry_for, target, password_given

    def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        owner = getattr(_wait, "deadline", None) is None
        if owner:
            _wait.since = time.monotonic()
            _wait.deadline, _wait.announced = _wait.since + self.retry_for, False
        self._backoff.reset()
        failures = 0
        try:
            while True:
                try:
                    result = do()
                except Exception as error:
                    if not _transient(error) or (is_retryable and not is_retryable(error)):
                        raise self._refused(error) if isinstance(error, redis.exceptions.AuthenticationError) \
                            else error
                    failures += 1
                    fail(error, failures) if with_failure_count else fail(error)
                    now = time.monotonic()
                    left = _wait.deadline - now
                    if left <= 0:
                        if owner and _wait.announced:
                            log.error("gave up waiting for %s after %.0f s: %s", self.target, now - _wait.since,
                                      _awaited(error))
                        raise
                    delay = min(self._backoff.compute(failures), left)
                    # Announced before a sleep that takes the wait past ANNOUNCE_AFTER, so no
                    # wait that long goes unsaid, however the backoff's jitter falls.
                    if not _wait.announced and now + delay - _wait.since >= ANNOUNCE_AFTER:
                        _wait.announced = True
                        log.warning("waiting for %s: %s (retrying for up to %.0f s more)", self.target,
                                    _awaited(error), left)
                    time.sleep(delay)
                else:
                    if owner and _wait.announced:
                        log.warning("%s answers again after %.1f s", self.target, time.monotonic() - _wait.since)
                    return result
        finally:
            if owner:
                _wait.deadline = None

    def _refused(self, error: Exception) -> Exception:
        if isinstance(error, AuthenticationFailed):
            return error
        # The server's text for a missing password ("HELLO must be called with the client
        # already authenticated ...") names a protocol detail, not the cause.
        failed = AuthenticationFailed(f"the password was refused ({error})" if self.password_given else
                                      "a password is required and none was given (set LARRY_REDIS_PASSWORD "
                                      "or put it in the URL)")
        failed.__cause__ = error
        return failed


@contextmanager
def single_attempt():
    """Commands of this thread inside the block are tried once, without the client's retries
    (a probe whose caller decides what an unreachable Redis means)."""
    saved = getattr(_wait, "deadline", None), getattr(_wait, "since", None), getattr(_wait, "announced", False)
    _wait.since = _wait.deadline = time.monotonic()
    _wait.announced = True  # a probe announces nothing
    try:
        yield
    finally:
        _wait.deadline, _wait.since, _wait.announced = saved


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

    @property
    def target(self) -> str:
        """Where Redis is, for messages: the URL without its password, or the Sentinel master."""
        if self.sentinels:
            return f"Sentinel master {self.master_name!r} (via {', '.join(f'{h}:{p}' for h, p in self.sentinels)})"
        return f"Redis at {mask_url(self.url or '')}"

    @property
    def password_given(self) -> bool:
        return bool(self.password or (self.url and urlsplit(self.url).password))

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
        retry=DeadlineRetry(settings.retry_for, settings.backoff_base, settings.backoff_cap,
                            target=settings.target, password_given=settings.password_given),
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
