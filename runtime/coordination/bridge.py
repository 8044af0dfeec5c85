"""Messages PUBLISHed straight on a channel (``redis-cli PUBLISH larry:alerts '{...}'``, seed
001's rollback and escalation examples) recorded on the durable event stream, so the runtime's
stream readers (a coordinator's history: pauses, alerts in the report) see them like their own.

A :class:`ChannelBridge` subscribes to the alerts channel and seed 004's worker and master
channels (the coordination channel is left out: it carries every runtime event, and the seeds
publish nothing on it that the runtime acts on). The coordinators of the plan's first
:data:`BRIDGES` Larrys run one each: enough that a coordinator's restart loses nothing, and
few enough that a fleet's messages are not each handled by every coordinator (a hundred Larrys'
coordinators would otherwise hear, and look up, every message a hundred times). A message that
is a JSON object with an
``event`` string is appended to the stream unless it is marked as already there: the script
that appends one of the runtime's own events to the stream marks it (a key named by the digest
of channel and message, kept a minute) before publishing it, and the first bridge to hear a raw
message marks it in the script that appends it, so the other bridges (one per coordinator)
skip it: one entry per message, at one key lookup each. The entry's ``source`` is the
message's ``from`` (``redis-cli`` when it has none).

A message of any other shape gets one warning naming the channel and what was expected, and
is dropped; nothing a publisher sends stops the bridge.

Not guaranteed: a message published while no bridge is subscribed (the bridging coordinators
down, or their connections being re-made) is lost, as pub/sub loses it; two identical raw
messages within a minute are one entry; a bridge more than a minute behind records the
runtime's own messages again.
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Callable

import redis

from runtime.coordination.connection import require_text
from runtime.coordination.events import lua_script
from runtime.coordination.keys import Keyspace

log = logging.getLogger(__name__)

_RECORD = r"""
-- ARGV[1] source, [2] channel, [3] message, [4] its event name
if not mark_published(ARGV[2], ARGV[3]) then return false end
return append(ARGV[2], ARGV[4], ARGV[3])
"""

#: How many coordinators (those of the plan's first Larrys) run a bridge.
BRIDGES = 3


def bridging_larrys(larry_ids) -> tuple[str, ...]:
    """The Larrys whose coordinators run a bridge: the first :data:`BRIDGES` of the plan's."""
    return tuple(larry_ids)[:BRIDGES]


def bridged_channels(ks: Keyspace) -> tuple[str, ...]:
    """The channels whose straight PUBLISHes reach the stream."""
    return (ks.alerts, ks.schema_channel("masters", "handoff"), ks.schema_channel("masters", "dependencies"),
            ks.schema_channel("workers", "spawn"), ks.schema_channel("workers", "control"),
            ks.schema_channel("workers", "status"))


def follow_channels(r: redis.Redis, channels, on_message: Callable[[str, str | None], None],
                    stop: threading.Event, *, label: str, wait: float = 1.0) -> None:
    """Call ``on_message(channel, raw)`` for each message on ``channels``, and
    ``on_message("", None)`` after each ``wait`` s without one, until ``stop`` is set;
    subscribing again after a lost connection (what was published meanwhile is lost)."""
    failing = False
    while not stop.is_set():
        pubsub = r.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(*channels)
            failing = False
            while not stop.is_set():
                message = pubsub.get_message(timeout=wait)
                if message and message["type"] == "message":
                    on_message(message["channel"], message["data"])
                else:
                    on_message("", None)
        except (redis.exceptions.RedisError, OSError) as error:
            # once per outage: a worker in file mode goes on without Redis for long
            log.log(logging.DEBUG if failing else logging.WARNING, "%s lost Redis (%s); subscribing again",
                    label, error)
            failing = True
            stop.wait(wait)
        finally:
            pubsub.close()


def decode_message(channel: str, raw) -> dict | None:
    """A channel message as a JSON object with an ``event`` string, else None after one warning
    naming the channel and what was expected."""
    try:
        data = json.loads(raw)
    except (TypeError, ValueError, RecursionError) as error:
        log.warning("ignoring a message on %s: expected a JSON object with an \"event\" string, got "
                    "something that is not JSON (%s): %.120r", channel, getattr(error, "msg", error), raw)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        log.warning("ignoring a message on %s: expected a JSON object with an \"event\" string, got %.120r",
                    channel, raw)
        return None
    return data


class ChannelBridge:
    def __init__(self, r: redis.Redis, ks: Keyspace):
        require_text(r)
        self.r, self.ks = r, ks
        self.channels = bridged_channels(ks)
        self._record = r.register_script(lua_script(ks, _RECORD))
        #: messages recorded by this bridge, and messages dropped as malformed
        self.recorded = self.malformed = 0

    def handle(self, channel: str, raw) -> str | None:
        """Record one message heard on ``channel``; the new entry's id, or None (malformed, or
        already on the stream)."""
        data = decode_message(channel, raw)
        if data is None:
            self.malformed += 1
            return None
        source = data.get("from") if isinstance(data.get("from"), str) and data["from"] else "redis-cli"
        entry = self._record(keys=[], args=[source, channel, raw, data["event"]])
        if entry:
            self.recorded += 1
            log.info("recorded %s published on %s by %s", data["event"], channel, source)
        return entry or None

    def start(self, stop: threading.Event) -> threading.Thread:
        """Listen in a daemon thread until ``stop`` is set, re-subscribing after a lost connection."""
        def on_message(channel: str, raw) -> None:
            if channel:
                self.handle(channel, raw)

        thread = threading.Thread(target=follow_channels, args=(self.r, self.channels, on_message, stop),
                                  kwargs={"label": "channel bridge"}, daemon=True, name="channel-bridge")
        thread.start()
        return thread
