"""The catalog service: GraphQL over HTTP and WebSocket at ``/graphql``, on uvicorn.

Routes: ``/graphql`` (queries and mutations by POST or GET; subscriptions over WebSocket with
the ``graphql-transport-ws`` protocol), ``/healthz`` (liveness: the process answers),
``/readyz`` (readiness: Redis answers one PING, no retries, 503 otherwise, so a replica cut
off from Redis leaves the Service), ``/metrics`` (Prometheus: ``cortex_catalog_assets_total``,
``cortex_catalog_api_latency_ms``, ``cortex_catalog_subscribers``,
``cortex_catalog_assets_discovered_total``).

Guaranteed: every replica is stateless: state is in Redis (:mod:`runtime.catalog.store`) and
subscriptions are fed from Redis's change stream (:mod:`runtime.catalog.feed`), so any number
of replicas serve the same catalog. Not guaranteed: authentication: who may write is decided
by the network (the Catalog component's NetworkPolicies admit only the Larry namespaces).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from runtime.catalog.feed import ChangeFeed
from runtime.catalog.schema import build_schema, context
from runtime.catalog.store import CatalogStore
from runtime.coordination.connection import single_attempt

log = logging.getLogger(__name__)

#: Latency buckets (ms): the seed claims "<1ms query time".
LATENCY_BUCKETS_MS = (0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)


class _Endpoint(GraphQL):
    def __init__(self, store: CatalogStore, feed: ChangeFeed, latency: Histogram):
        super().__init__(build_schema(), graphql_ide=None, subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,))
        self.store, self.feed, self.latency = store, feed, latency

    async def get_context(self, request, response):
        return {**context(self.store, self.feed), "request": request, "response": response}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        started = time.perf_counter()
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.latency.observe((time.perf_counter() - started) * 1000)


class _Discovered:
    """``cortex_catalog_assets_discovered_total``: every asset the catalog ever added, read from
    Redis, so every replica reports the catalog's count; ``rate()`` of it is the discovery rate."""

    def __init__(self, store: CatalogStore):
        self.store = store

    def describe(self):  # nothing to check at registration: collect() reads Redis
        return []

    def collect(self):
        yield CounterMetricFamily("cortex_catalog_assets_discovered", "assets added to the catalog, ever",
                                  value=self.store.discovered())


def create_app(store: CatalogStore) -> Starlette:
    feed = ChangeFeed(store)
    registry = CollectorRegistry()
    latency = Histogram("cortex_catalog_api_latency_ms", "GraphQL HTTP request latency (ms)",
                        buckets=LATENCY_BUCKETS_MS, registry=registry)
    Gauge("cortex_catalog_assets_total", "assets in the catalog", registry=registry).set_function(store.count)
    Gauge("cortex_catalog_subscribers", "open subscriptions on this replica",
          registry=registry).set_function(lambda: len(feed.subscribers))
    registry.register(_Discovered(store))
    graphql = _Endpoint(store, feed, latency)

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok\n")

    def ping() -> bool:
        with single_attempt():
            return store.ping()

    async def readyz(_request: Request) -> Response:
        try:
            await asyncio.to_thread(ping)
        except Exception as error:  # any failure to answer means: not ready
            return PlainTextResponse(f"Redis does not answer: {error}\n", status_code=503)
        return PlainTextResponse("ready\n")

    async def metrics(_request: Request) -> Response:
        return Response(await asyncio.to_thread(generate_latest, registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        feed.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            feed.stop()

    return Starlette(routes=[
        Route("/graphql", graphql, methods=["GET", "POST"]), WebSocketRoute("/graphql", graphql),
        Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics),
    ], lifespan=lifespan)


def serve(store: CatalogStore, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT (uvicorn's handlers: open requests finish first)."""
    config = uvicorn.Config(create_app(store), host=host, port=port, lifespan="on", log_level="warning",
                            ws="websockets-sansio", access_log=False)
    log.warning("catalog serving http://%s:%d/graphql", host, port)
    uvicorn.Server(config).run()
