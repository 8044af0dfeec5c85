"""Timestamps of a run: one written form and one parser.

Every timestamp the runtime writes (Redis hashes, events, results, reports, file-mode
records) is ISO 8601 in UTC with milliseconds and a ``Z``: ``2026-11-30T14:13:55.123Z``. The
Lua prelude of :mod:`runtime.coordination.events` writes the same form from the primary's
clock. :func:`parse` also reads ``+00:00`` offsets and other precisions, so files written by
earlier versions stay readable.
"""
from __future__ import annotations

from datetime import datetime, timezone


def format_time(moment: datetime) -> str:
    """``moment`` in the written form (a naive datetime is taken to be UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now() -> str:
    """This machine's current time in the written form."""
    return format_time(datetime.now(timezone.utc))


def from_ms(ms: int | float) -> str:
    """Milliseconds since the epoch (a stream id's first part, ``NOW_MS``) in the written form."""
    return format_time(datetime.fromtimestamp(ms / 1000, timezone.utc))


def parse(text: str) -> datetime:
    """An aware datetime from a written timestamp; ValueError if ``text`` is not one."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return moment


def parse_optional(text: str | None) -> datetime | None:
    """:func:`parse` for a field that may be unset or unreadable (a display): None then."""
    if not text:
        return None
    try:
        return parse(text)
    except ValueError:
        return None
