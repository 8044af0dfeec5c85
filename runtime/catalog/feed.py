"""Fan-out of the catalog's change stream to this replica's GraphQL subscriptions.

One thread per replica reads ``catalog:changes`` (:class:`runtime.coordination.events.EventListener`,
XREAD from the last entry it handed out) and hands each change to every open subscription
on the server's event loop. Every replica reads the same stream, so a subscription sees the
writes made through any replica, and the listener resumes after a Redis outage or failover
from the last entry it read: no change is skipped or delivered twice because of a reconnect.

Guaranteed: a subscription gets every change the replica reads after it was opened, in
stream order: all written after it opened (and possibly a few written just before, which the
replica had not read yet).
Not guaranteed: changes trimmed from the stream before the thread read them (it logs the
gap), changes lost with a failover (asynchronous replication); a subscription that falls
:data:`MAX_BEHIND` changes behind is ended with an error instead of buffering without bound.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import AsyncIterator

import redis

from runtime.catalog.store import CatalogStore
from runtime.coordination.events import Event, EventListener

log = logging.getLogger(__name__)

#: Undelivered changes a subscription may hold before it is ended.
MAX_BEHIND = 10_000
_LOST = object()


class SubscriptionLost(RuntimeError):
    """The subscriber read too slowly and was cut off."""


class Subscription:
    def __init__(self, feed: "ChangeFeed"):
        self.feed = feed
        self.queue: asyncio.Queue = asyncio.Queue()

    async def __aiter__(self) -> AsyncIterator[Event]:
        try:
            while True:
                event = await self.queue.get()
                if event is _LOST:
                    raise SubscriptionLost(f"this subscription fell {MAX_BEHIND:,} changes behind and was ended; "
                                           f"subscribe again")
                yield event
        finally:
            self.feed.subscribers.discard(self)


class ChangeFeed:
    def __init__(self, store: CatalogStore):
        self.store = store
        self.subscribers: set[Subscription] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start reading after the stream's current end (changes before it are not news)."""
        self._loop = loop
        listener = EventListener(self.store.r, self.store.changes_ks, "$", larrys=())  # one stream of changes
        self._thread = threading.Thread(target=self._read, args=(listener,), name="catalog-feed", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def subscribe(self) -> Subscription:
        """Open on the event loop; iterate it with ``async for``."""
        subscription = Subscription(self)
        self.subscribers.add(subscription)
        return subscription

    def _read(self, listener: EventListener) -> None:
        while not self._stop.is_set():
            try:
                for event in listener.listen(self._stop):
                    self._loop.call_soon_threadsafe(self._dispatch, event)
            except redis.exceptions.RedisError as error:  # a refused password: say so, keep trying
                log.error("catalog change stream unreadable (%s); retrying", error)
                self._stop.wait(5.0)

    def _dispatch(self, event: Event) -> None:
        for subscription in list(self.subscribers):
            if subscription.queue.qsize() >= MAX_BEHIND:
                self.subscribers.discard(subscription)
                subscription.queue.put_nowait(_LOST)
            else:
                subscription.queue.put_nowait(event)
