"""Redis credentials: never printed, never written, never on a command line.

A password reaches the runtime in ``$LARRY_REDIS_PASSWORD`` (and
``$LARRY_REDIS_SENTINEL_PASSWORD``), which is how `larry run` hands it to the processes it
starts. A password given inside a URL (``--redis-url redis://:PASSWORD@host``, or
``$LARRY_REDIS_URL``) is moved there by :func:`take_password`, which also overwrites it in
this process's command line, so ``ps`` no longer shows it once the process has started.
Every message and file shows URLs through :func:`mask_url`.

Not guaranteed: ``ps`` run in the instant between the process's start and
:func:`take_password`, or a system without ``/proc/self/mem`` (not Linux), still sees a
password typed on the command line: prefer the environment variable.
"""
from __future__ import annotations

import os
from typing import Iterable, MutableMapping
from urllib.parse import unquote, urlsplit, urlunsplit

from plan import environment as envvar

MASK = "***"


def _without_password(url: str, replacement: str | None) -> tuple[str, str | None]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None
    if parts.password is None:
        return url, None
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    login = f"{user}:{replacement}@" if replacement is not None else (f"{user}@" if user else "")
    return urlunsplit(parts._replace(netloc=login + host)), unquote(parts.password)


def mask_url(url: str | None) -> str | None:
    """``url`` with its password replaced by ``***`` (any other URL unchanged)."""
    return url if url is None else _without_password(url, MASK)[0]


def mask(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def take_password(url: str | None, env: MutableMapping[str, str] | None = None) -> str | None:
    """``url`` without its password, the password moved to ``$LARRY_REDIS_PASSWORD`` in ``env``
    (default: this process's environment, which its children inherit; a password already
    there is kept, the URL's then only hidden) and hidden from ``ps``. A URL without a
    password is returned as it is."""
    if url is None:
        return None
    env = os.environ if env is None else env
    bare, password = _without_password(url, None)
    if password:
        if not env.get(envvar.REDIS_PASSWORD):
            env[envvar.REDIS_PASSWORD] = password
        hide_from_ps(password)
        if env.get(envvar.REDIS_URL) == url:
            env[envvar.REDIS_URL] = bare
    return bare


def hide_from_ps(secret: str) -> bool:
    """Overwrite ``secret`` with ``*`` in this process's command line as ``ps`` reads it
    (``/proc/self/cmdline``); True if it was there and could be overwritten."""
    data = secret.encode()
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (stat fields 48, 49)
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            args = mem.read(end - start)
            found = False
            at = args.find(data)
            while at >= 0:
                mem.seek(start + at)
                mem.write(b"*" * len(data))
                found = True
                at = args.find(data, at + len(data))
            return found
    except (OSError, ValueError, IndexError):
        return False
