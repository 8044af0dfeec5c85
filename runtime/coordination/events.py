"""Durable events: every event is appended to a bounded Redis Stream, and most are PUBLISHed.

Design: the stream is the source of truth; PUBLISH is kept so operators (and
seed-style subscribers) can ``redis-cli SUBSCRIBE larry:coordination``, for every alert and
every coordination event except the task lease transitions (``task_claimed``,
``task_released``, ``task_completed``, ``task_failed`` with a retry, ``task_takeover``,
``task_requeued``): the seed publishes none of them, no listener of the runtime subscribes,
and they are the busiest events, so they are on the stream only (``record`` in the Lua
prelude; ``redis-cli XREAD BLOCK 0 STREAMS larry:events:<larry> $`` follows a Larry's).
Listeners do not use pub/sub at all: ``XREAD BLOCK`` wakes them as fast as a
subscription would, and reading by stream ID from the last ID they processed
gives gap- and duplicate-free catch-up after a disconnect for free, where
pub/sub loses everything sent while the listener was away and would need
de-duplication against the stream.

The stream is one per Larry plus the run's (``larry:events:{larry}`` beside ``larry:events``,
:class:`runtime.coordination.keys.Keyspace`). An event about one Larry's work goes to its stream:
its tasks' lease transitions, conflicts and failures (the Larry that defined the task,
``task:home:{id}``), its workers' starts, spawns and ends, its phase and progress, its seed 004
notices (``DEPENDENCY_MET``, ``RESOURCE_CONFLICT``); the rest (barriers, the ledger's alerts,
escalations, handoffs, pauses, control) to the run's. The per-Larry events are most of a run
(about 5 a task), and only the Larry's own processes wait for them: a coordinator reads the
run's stream and its Larry's, a worker those of the Larrys its tasks wait on, so what each reads
no longer grows with the whole fleet's work. Readers of the whole run (the dashboard, reports,
``larry run``'s progress) read every stream, merged by ID. Channels are unchanged: an event
PUBLISHed on a channel still is, whichever stream has it.

Guarantees:

* An event and the state change it reports are one Lua script or function (every one
  is built by :func:`lua_script` or :class:`FunctionLibrary` and can ``emit``), so an event
  exists iff its change happened, and a retried script whose change is already
  done emits nothing: transition events are exactly-once.
* A :class:`FunctionLibrary` is loaded into the server once and reloaded when the server
  lacks it (restarted without it, or a replica promoted before the load reached it): a call
  refused as ``Function not found`` ran nothing and is made again after the load.
* :meth:`EventLog.emit` for free-form events is at-least-once if the caller
  retries after an error whose outcome is unknown.
* A listener sees every entry of its streams after its start IDs, each stream's in order,
  exactly once, unless entries were trimmed away (``MAXLEN ~``, per stream) before it read
  them; that is detected when the listener resumes and counted in ``gaps``. Across streams the
  order is the entry IDs' (the primary's clock): two events of the same millisecond on two
  streams come in the order they were written (entry IDs share one sequence, see ``append``
  in the Lua prelude), unless a stream was written around the runtime or the primary's clock
  went back.
* Messages PUBLISHed straight to a channel (redis-cli) bypass this module; those on the alerts
  channel and seed 004's worker and master channels reach the stream through the coordinators'
  :class:`runtime.coordination.bridge.ChannelBridge`, the coordination channel's do not.
* An event goes to the coordination or alerts channel, or to one of seed 004's (``channel=``
  of :meth:`EventLog.emit`, ``emit_on`` in Lua).
* Timestamps are the Redis primary's clock (ISO 8601 UTC, milliseconds).
* Malformed stream entries (no data, bad JSON, no ``event`` name) are counted
  in ``malformed`` and skipped.
* A listener's wait never outlasts the client's socket timeout in one read
  (:meth:`EventListener.poll`), so a quiet stream is never mistaken for a lost Redis.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Iterable, Mapping

import redis

from runtime.coordination.connection import Durability, require_text, run_script
from runtime.coordination.keys import Keyspace

log = logging.getLogger(__name__)

# Prepended (after Keyspace.lua()'s names) to every script and function library of the runtime.
# Convention: ARGV[1] is the sender (owner, Larry, participant) named in events.
# begin(ARGV) starts every call (FunctionLibrary wraps each function in it). clock() reads the
# primary's clock once per call, when first needed (a lease renewal never needs it), and sets
# NOW_US and NOW_MS; lua_script reads it at once, so its bodies may use NOW_* directly. All
# timestamps come from this one clock and agree with the stream IDs; the date arithmetic is
# H. Hinnant's civil_from_days.
_LUA_PRELUDE = r"""
local NOW_T, NOW_US, NOW_MS, NOW_ISO, SENDER
local function begin(argv)
  NOW_T, NOW_ISO, SENDER = nil, nil, argv[1]
end
local function clock()
  if not NOW_T then
    NOW_T = redis.call('TIME')
    NOW_US = tonumber(NOW_T[1]) * 1000000 + tonumber(NOW_T[2])
    NOW_MS = math.floor(NOW_US / 1000)
  end
  return NOW_US
end
-- The formatted second: a function library keeps it between calls, so at a lease's rate most
-- calls format only their milliseconds (string.format is a large part of a call's cost).
local ISO_SECS, ISO_SECOND
local function iso_second(secs)
  if secs ~= ISO_SECS then
    local days = math.floor(secs / 86400)
    local rem = secs - days * 86400
    local z = days + 719468
    local era = math.floor(z / 146097)
    local doe = z - era * 146097
    local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
    local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
    local mp = math.floor((5 * doy + 2) / 153)
    local month = mp < 10 and mp + 3 or mp - 9
    local year = yoe + era * 400 + (month <= 2 and 1 or 0)
    ISO_SECS = secs
    ISO_SECOND = string.format('%04d-%02d-%02dT%02d:%02d:%02d.', year, month, doy - math.floor((153 * mp + 2) / 5) + 1,
                               math.floor(rem / 3600), math.floor(rem % 3600 / 60), rem % 60)
  end
  return ISO_SECOND
end
local function iso8601(secs, usec)
  return iso_second(secs) .. string.format('%03dZ', math.floor(usec / 1000))
end
local function now()  -- formatted on first use only
  if not NOW_ISO then
    clock()
    NOW_ISO = iso8601(tonumber(NOW_T[1]), tonumber(NOW_T[2]))
  end
  return NOW_ISO
end
-- Seed 004's entry: {event_type, source, timestamp, payload}, and the channel it went to; on
-- ``stream`` (a Larry's) or the run's. The ID is the primary's clock (ms) and a sequence shared
-- by every stream (EVENT_SEQ), so IDs order events across streams as they happened. An entry
-- written around this (a raw XADD), or a clock that went back, can put a stream ahead of that
-- ID: the server's own next ID is then taken (XADD refuses a smaller ID before writing anything).
local function append(channel, event_type, data, stream)
  stream = stream or STREAM
  local entry = {'event_type', event_type, 'source', SENDER, 'timestamp', now(), 'channel', channel, 'payload', data}
  local id = redis.pcall('XADD', stream, 'MAXLEN', '~', MAXLEN,
                         string.format('%d-%d', NOW_MS, redis.call('INCR', EVENT_SEQ)), unpack(entry))
  if type(id) == 'table' then id = redis.call('XADD', stream, 'MAXLEN', '~', MAXLEN, '*', unpack(entry)) end
  return id
end
-- A message on a channel the bridge follows (every one but the coordination channel), marked
-- as on the stream for a minute (runtime.coordination.bridge); false when it was already.
local function mark_published(channel, data)
  return redis.call('SET', PUBLISHED_PREFIX .. redis.sha1hex(channel .. '\n' .. data), '1', 'NX', 'PX', 60000)
end
-- On the stream (``stream`` or the run's), and PUBLISHed on ``channel`` (seed 004's event
-- channels are many).
local function publish(channel, event_type, data, stream)
  local id = append(channel, event_type, data, stream)
  if channel ~= CH_COORDINATION then mark_published(channel, data) end
  redis.call('PUBLISH', channel, data)
  return id
end
local function emit_raw(alert, event_type, data, stream)
  return publish(alert and CH_ALERTS or CH_COORDINATION, event_type, data, stream)
end
-- The stream of Larry ``larry``, registered as one a whole-run reader reads.
local function home_stream(larry)
  redis.call('SADD', STREAMED_LARRYS, larry)
  return LARRY_STREAM_PREFIX .. larry
end
-- The stream of a task's Larry, ``home`` its task:home (registered when the task was defined);
-- nil (the run's stream) when no coordinator defined the task.
local function task_stream(home)
  return home and LARRY_STREAM_PREFIX .. home or nil
end
local function encode(fields, token)
  fields['from'] = SENDER
  fields['timestamp'] = now()
  local data = cjson.encode(fields)
  if token then
    -- cjson prints 14 significant digits; fencing tokens have 16, so splice them in as text
    data = string.sub(data, 1, -2) .. ',"token":' .. token .. '}'
  end
  return data
end
-- An event on ``stream`` (default: the run's), PUBLISHed on its channel too.
local function emit(alert, fields, token, stream)
  return emit_raw(alert, fields.event, encode(fields, token), stream)
end
-- An event on ``stream`` (default: the run's), PUBLISHed on ``channel``.
local function emit_on(channel, fields, token, stream)
  return publish(channel, fields.event, encode(fields, token), stream)
end
-- A task's lease transition, on its Larry's stream only (see the module docstring: which
-- events, and why): ``home`` is the task's task:home (see task_stream).
local function record(fields, token, home)
  return append(CH_COORDINATION, fields.event, encode(fields, token), task_stream(home))
end
-- One point of a metric series (seed 004's TIMESERIES {ns}:metrics:{name}, a stream here):
-- ``value`` at the primary's clock (the entry id); series() adds ``delta`` to the last value.
local function point(key, value)
  redis.call('XADD', key, 'MAXLEN', '~', MAXLEN, '*', 'value', string.format('%.15g', value))
end
local function series(key, delta)
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  point(key, delta + (last[1] and tonumber(last[1][2][2]) or 0))
end
"""


def lua_script(ks: Keyspace, body: str) -> str:
    """A runtime script for EVAL: the keyspace's names, the clock/emit prelude, then ``body``."""
    return ks.lua() + _LUA_PRELUDE + "begin(ARGV)\nclock()\n" + body


# The server's reply to FCALL of a function it does not have (Redis 7.0 to 7.4).
_MISSING_FUNCTION = "Function not found"


@functools.lru_cache(maxsize=64)
def _library(ks: Keyspace, title: str, common: str, bodies: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    """(name, code) of a function library. The name ends in a digest of the code, so it is the
    library's version: changed code (or names) is a new library, never a stale one reused."""
    source = ks.lua() + _LUA_PRELUDE + common + "".join(
        f"redis.register_function(LIBRARY .. '_{fn}', function(KEYS, ARGV)\nbegin(ARGV)\n{body}\nend)\n"
        for fn, body in bodies)
    name = f"larry_{title}_{hashlib.sha1(source.encode()).hexdigest()[:12]}"
    return name, f"#!lua name={name}\nlocal LIBRARY = '{name}'\n{source}"


def _bulk(value) -> bytes:
    data = value.encode() if value.__class__ is str else str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _exchange(conn, packed: bytes):
    """Send one command already in RESP and read its reply, under the connection's retry policy
    (redis-py's command path without its per-command encoding and bookkeeping)."""
    def attempt():
        conn.send_packed_command((packed,))
        return conn.read_response()

    try:
        return conn.retry.call_with_retry(attempt, lambda _error: conn.disconnect())
    except redis.exceptions.ResponseError:
        raise  # the reply was read whole: the connection is in step
    except BaseException:
        conn.disconnect()  # a reply may be left unread (interrupted, or out of retries)
        raise


class _FunctionCall:
    """FCALL of one function in a pipeline, in the form :func:`run_script` runs a script."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, keys, args, client):
        return client.fcall(self.name, len(keys), *keys, *args)


class FunctionLibrary:
    """Lua bodies (each written like a :func:`lua_script` body) loaded once into the server as
    one Redis Functions library, and called with FCALL.

    Compared with EVALSHA of a script holding the prelude, the prelude's functions are built once
    per load instead of once per call, and a call is sent already encoded (see :meth:`_send`).
    ``common`` is Lua shared by the bodies (after the prelude). A server without the library
    (restarted empty, or promoted before the load reached it) answers ``Function not found``:
    the library is then loaded (FUNCTION LOAD REPLACE, which replicates) and the call made
    again, which is safe because the refused call ran nothing.

    Not guaranteed: that old libraries go away. Each version and keyspace is its own library
    (a few kB, kept in the server's RDB/AOF like its keys) until ``FUNCTION DELETE`` of its name.
    """

    def __init__(self, r: redis.Redis, ks: Keyspace, title: str, bodies: Mapping[str, str], *,
                 common: str = "", durability: Durability = Durability()):
        require_text(r)
        self.r, self.durability = r, durability
        self.name, self.code = _library(ks, title, common, tuple(bodies.items()))
        self._heads = {fn: _bulk(f"{self.name}_{fn}") + b"$1\r\n0\r\n" for fn in bodies}
        self._pipelined = {fn: _FunctionCall(f"{self.name}_{fn}") for fn in bodies}
        self._own, self._conn, self._pid = threading.Lock(), None, 0

    def call(self, fn: str, *args):
        """The reply of function ``fn`` called with ``args`` (str or int) and no keys; with
        ``durability.replicas`` > 0 confirmed by WAIT as :func:`run_script` does."""
        try:
            return self._call(fn, args)
        except redis.exceptions.ResponseError as error:
            if _MISSING_FUNCTION not in str(error):
                raise
        self.r.function_load(self.code, replace=True)
        return self._call(fn, args)

    def _call(self, fn: str, args: tuple):
        if self.durability.replicas > 0:
            return run_script(self.r, self._pipelined[fn], [], args, self.durability)
        return self._send(b"*%d\r\n$5\r\nFCALL\r\n" % (3 + len(args)) + self._heads[fn] + b"".join(map(_bulk, args)))

    def _send(self, packed: bytes):
        """The reply to ``packed``, on the library's own connection when no other thread is using
        it, else on one from the pool. Taking a pooled connection costs a lock and a poll()
        system call per command: about 30 of the 90 µs of CPU a call took the client on the
        two-core development machine.
        ``runtime.support.callstats`` times this method as it times execute_command."""
        if not self._own.acquire(blocking=False):
            pool = self.r.connection_pool
            conn = pool.get_connection()
            try:
                return _exchange(conn, packed)
            finally:
                pool.release(conn)
        try:
            if self._conn is None or self._pid != os.getpid():  # a forked child must not share a socket
                pool = self.r.connection_pool
                self._conn, self._pid = pool.get_connection(), os.getpid()
                weakref.finalize(self, pool.release, self._conn)
            return _exchange(self._conn, packed)
        finally:
            self._own.release()


_EMIT = r"""
-- ARGV[2] event JSON object (without timestamp), ARGV[3] the channel, [4] its name, [5] the
-- Larry whose stream has it ('' for the run's)
local stream = ARGV[5] ~= '' and home_stream(ARGV[5]) or nil
return publish(ARGV[3], ARGV[4], '{"timestamp":"' .. now() .. '",' .. string.sub(ARGV[2], 2), stream)
"""


@dataclass(frozen=True)
class Event:
    id: str
    channel: str
    data: dict

    @property
    def name(self) -> str:
        return self.data["event"]

    @property
    def sender(self) -> str | None:
        return self.data.get("from")


def parse_entry(entry_id: str, fields: dict) -> Event | None:
    """An Event, or None when the entry is malformed."""
    try:
        data = json.loads(fields["payload"])
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        return None
    return Event(entry_id, fields.get("channel", ""), data)


def _parse_entries(stream: str, entries) -> tuple[list[Event], int]:
    """The well-formed events of raw stream entries, and how many were malformed (logged)."""
    events = []
    for entry_id, fields in entries:
        event = parse_entry(entry_id, fields)
        if event is None:
            log.warning("skipping malformed entry %s of %s: expected a payload field holding a JSON object with an "
                        "\"event\" string, got %.200r", entry_id, stream, fields)
        else:
            events.append(event)
    return events, len(entries) - len(events)


#: Positions in the run's streams (stream name -> the last entry ID read), or one ID for every
#: stream: "0-0" for the start, an entry ID (a time cut: IDs are the one primary's clock).
Positions = Mapping[str, str] | str


def _position(positions: Positions, stream: str) -> str:
    return positions if isinstance(positions, str) else positions.get(stream, "0-0")


class EventLog:
    """Writes events and reads the streams' history."""

    def __init__(self, r: redis.Redis, ks: Keyspace, durability: Durability = Durability()):
        require_text(r)
        self.r, self.ks, self.durability = r, ks, durability
        self._emit = r.register_script(lua_script(ks, _EMIT))

    def emit(self, event: str, sender: str, *, alert: bool = False, channel: str | None = None,
             home: str = "", **fields) -> str:
        """Append to the stream (``home``'s, a Larry's, or the run's) and publish on ``channel``
        (default: the alerts channel for an ``alert``, else the coordination channel); returns
        the stream ID. At-least-once under retries."""
        data = json.dumps({**fields, "event": event, "from": sender})
        channel = channel or (self.ks.alerts if alert else self.ks.coordination)
        return run_script(self.r, self._emit, [], [sender, data, channel, event, home], self.durability,
                          idempotent=False)

    def streams(self, larrys: Iterable[str] | None = None) -> list[str]:
        """The run's stream and ``larrys``' streams (None: every Larry that has one)."""
        if larrys is None:
            larrys = self.r.smembers(self.ks.streamed_larrys)
        return [self.ks.stream] + [self.ks.larry_stream(larry) for larry in sorted(larrys)]

    def tails(self, streams: Iterable[str]) -> dict[str, str]:
        """Each stream's newest entry ID ("0-0" when empty): start after them to see only new events."""
        streams = list(streams)
        with self.r.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xrevrange(stream, count=1)
            return {stream: last[0][0] if last else "0-0" for stream, last in zip(streams, pipe.execute())}

    def history(self, after: Positions = "0-0", until: Positions = "+", *, larrys: Iterable[str] | None = None,
                count: int = 1000) -> list[Event]:
        """Every well-formed event of the run's stream and ``larrys``' streams (None: every
        Larry's) after ``after`` (exclusive) up to ``until`` (inclusive), oldest first, read
        ``count`` entries per round trip (a coordinator's catch-up)."""
        events: list[Event] = []
        for stream in self.streams(larrys):
            start, end = _position(after, stream), _position(until, stream)
            low = "(" + start if start != "0-0" else "-"
            while end != "0-0" and (entries := self.r.xrange(stream, min=low, max=end, count=count)):
                events.extend(_parse_entries(stream, entries)[0])
                low = "(" + entries[-1][0]
        return sorted(events, key=lambda event: _id_tuple(event.id))

    def recent(self, until: Mapping[str, str], count: int) -> list[Event]:
        """The last ``count`` well-formed events of ``until``'s streams up to their positions
        there (``until``: :attr:`EventListener.positions`), oldest first."""
        streams = [stream for stream, position in until.items() if position != "0-0"]
        with self.r.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xrevrange(stream, max=until[stream], count=count)
            replies = pipe.execute()
        events = [event for stream, entries in zip(streams, replies) for event in _parse_entries(stream, entries)[0]]
        return sorted(events, key=lambda event: _id_tuple(event.id))[-count:]


class EventListener:
    """Reads the run's stream and Larrys' streams with XREAD BLOCK from the last IDs it handed out.

    ``larrys`` names the Larrys whose streams it reads beside the run's (their tasks' lease
    transitions, their workers' starts and ends); None reads every Larry's, including those
    whose streams appear later (a whole-run reader: the dashboard, `larry run`'s progress), at
    one SMEMBERS per poll; ``()`` the run's stream alone. Events of one poll are handed out in
    ID order (the one primary's clock); each stream's are in its order, exactly once.

    ``start`` is where to resume (persist :attr:`positions` to resume across restarts; one ID
    applies to every stream), ``"0-0"`` for the whole retained history, or ``"$"`` for new
    events only (resolved to concrete IDs at once, so nothing that happens between
    construction and the first poll is missed).
    """

    def __init__(self, r: redis.Redis, ks: Keyspace, start: Positions = "$", *,
                 larrys: Iterable[str] | None = None, count: int = 500):
        require_text(r)
        self.r, self.ks, self.count = r, ks, count
        socket_timeout = r.connection_pool.connection_kwargs.get("socket_timeout")
        self._max_block_ms = max(1, int(socket_timeout * 500)) if socket_timeout else 2**31
        self._log = EventLog(r, ks)
        self._every_larry = larrys is None
        streams = self._log.streams(larrys)
        self.positions: dict[str, str] = self._log.tails(streams) if start == "$" else {
            stream: _position(start, stream) for stream in streams}
        self.malformed = 0
        self.gaps = 0
        self.disconnects = 0
        if start not in ("$", "0-0"):
            self._check_gap()  # resuming from a persisted position

    def behind(self, tails: Mapping[str, str]) -> bool:
        """Whether some stream of ``tails`` (:meth:`EventLog.tails`) has entries not yet read."""
        return any(_id_tuple(self.positions.get(stream, "0-0")) < _id_tuple(tail) for stream, tail in tails.items())

    def poll(self, block_ms: int | None = 1000) -> list[Event]:
        """Events after the positions; waits up to ``block_ms`` for the first (None: don't wait).

        A long wait is a series of XREADs each blocking at most half the client's socket
        timeout: a read blocked longer than that would come back as a timeout, be taken
        for a lost connection and retried until the client gives up on a healthy Redis."""
        if block_ms is None:
            return self._read(None)
        until = time.monotonic() + block_ms / 1000
        while True:
            left_ms = int((until - time.monotonic()) * 1000)
            events = self._read(max(1, min(left_ms, self._max_block_ms)))  # BLOCK 0 would wait forever
            if events or left_ms <= self._max_block_ms:
                return events

    def _read(self, block_ms: int | None) -> list[Event]:
        if self._every_larry:  # a Larry's stream that appeared since: all of it is new
            for stream in self._log.streams():
                self.positions.setdefault(stream, "0-0")
        reply = self.r.xread(self.positions, count=self.count, block=block_ms)
        events = []
        for stream, entries in reply or ():
            if entries:
                self.positions[stream] = entries[-1][0]
                parsed, malformed = _parse_entries(stream, entries)
                events.extend(parsed)
                self.malformed += malformed
        if len(reply or ()) > 1:
            events.sort(key=lambda event: _id_tuple(event.id))
        return events

    def listen(self, stop: threading.Event | None = None, block_ms: int = 1000):
        """Yield events until ``stop`` is set, riding out Redis outages without gaps."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                events = self.poll(block_ms)
            except redis.exceptions.AuthenticationError:
                raise  # waiting cannot help
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
                self.disconnects += 1
                log.warning("event stream unreachable (%s); will resume after %s", error, self.positions)
                stop.wait(1.0)
                try:
                    self._check_gap()
                except redis.exceptions.RedisError:
                    pass
                continue
            yield from events

    def _check_gap(self) -> None:
        """Count a gap for each stream whose entries after its position may have been trimmed
        before we read them.

        Trimming removes the oldest entries, so while the position itself is still in the
        stream nothing after it is gone; once it is gone, something after it may be (XINFO's
        max-deleted-entry-id is not updated by MAXLEN in 7.0).
        """
        for stream, last_id in self.positions.items():
            if last_id == "0-0" or self.r.xrange(stream, min=last_id, max=last_id, count=1):
                continue
            first = self.r.xrange(stream, min="-", count=1)
            if first and _id_tuple(first[0][0]) > _id_tuple(last_id):
                self.gaps += 1
                log.error("events of %s after %s may have been trimmed before being read", stream, last_id)


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)

