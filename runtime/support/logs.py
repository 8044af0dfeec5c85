"""Logging of every `larry` process, configured once by the CLI.

:func:`configure` installs one handler on the root logger: stderr, one line per record,
``{UTC time} {level} {process} {logger}: {message}``. The level comes from ``-v`` /
``--log-level`` or ``$LARRY_LOG_LEVEL`` (default ``INFO``); `larry run` hands the level it
runs at to its children through the same variable, so every process of a run logs alike.

Library modules log through ``logging.getLogger(__name__)`` and never print diagnostics;
what a command prints for its user (summaries, status tables, progress lines) stays on
stdout. Not guaranteed: records of threads still running at interpreter exit.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Mapping

from plan import environment as envvar

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LEVEL = "INFO"
FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s %(process)d %(name)s: %(message)s"


def level_from(text: str | None, env: Mapping[str, str] | None = None) -> str:
    """The level named by ``text`` or else ``$LARRY_LOG_LEVEL``, upper-cased; ValueError
    naming the accepted levels when it is none of them."""
    raw = text or (os.environ if env is None else env).get(envvar.LOG_LEVEL) or DEFAULT_LEVEL
    level = raw.strip().upper()
    if level not in LEVELS:
        source = "--log-level" if text else envvar.LOG_LEVEL
        raise ValueError(f"{source}={raw!r}: expected one of {', '.join(LEVELS)}")
    return level


class _Stderr(logging.StreamHandler):
    """The process's current ``sys.stderr`` at each record (tests and daemons replace it)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr


def configure(level: str = DEFAULT_LEVEL) -> None:
    """Route every logger of the process to stderr at ``level``. Calling it again replaces
    the handler it installed before and leaves others (a test runner's capture) alone."""
    formatter = logging.Formatter(FORMAT, datefmt="%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Stderr)]:
        root.removeHandler(old)
    handler = _Stderr()
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level)
