"""The catalog's GraphQL schema (seed 004 Appendix C), on strawberry-graphql.

The seed's types and fields as written — ``Asset {id, name, type, source, discoveredAt,
discoveredBy, metadata, health, lineage, tags}``; ``assets(type, source)``, ``asset(id)``,
``search(query)``, ``stats``; ``addAsset``, ``updateAsset``, ``deleteAsset``;
``assetAdded``, ``assetUpdated``, ``workerProgress(workerId)`` — plus what the seed leaves
out and a catalog needs: ``Asset.namespace`` and ``updatedAt`` (the natural key's fourth
part; when it last changed), ``addAssets`` (a batch, written whole or not at all: what a
worker's buffer replays), ``reportProgress`` (how workers feed ``workerProgress``),
``workerStatus(workerId)``.

Phase 0's baseline query: the seed writes ``{ assets { total } }``, which its own schema
cannot answer (``assets`` is a list of Asset, which has no ``total``). The count is
``{ stats { assets { total } } }``: ``AssetStats.assets`` holds the totals.

Guaranteed: every mutation validates its whole input (:mod:`runtime.catalog.assets`) before
anything is written and answers a mistake with one error naming the field and what was
expected; GraphQL itself rejects variables of the wrong type before any resolver runs.
``addAsset`` is an upsert by the natural key: adding what exists updates it, identical
content changes nothing and notifies nobody. Not guaranteed: ``lineage`` lists only the
linked assets the catalog holds (one reported later appears then).
"""
from __future__ import annotations

import asyncio
import enum
import logging
from datetime import datetime
from typing import Any, AsyncGenerator

import redis
import strawberry
from starlette.responses import Response
from strawberry.scalars import JSON
from strawberry.types import Info
from strawberry.utils.str_converters import to_camel_case

from runtime.catalog.assets import ASSET_TYPES, HEALTH, AssetError, parse_batch
from runtime.catalog.feed import ChangeFeed
from runtime.catalog.progress import parse_progress
from runtime.catalog.store import CatalogStore, Record, UpdateConflict
from runtime.support.timestamps import parse, parse_optional

log = logging.getLogger(__name__)

AssetType = strawberry.enum(enum.Enum("AssetType", {name: name for name in ASSET_TYPES}))
HealthStatus = strawberry.enum(enum.Enum("HealthStatus", {name: name for name in HEALTH}))


class CatalogError(Exception):
    """A request the catalog refuses; its message is the client's one line."""


def _store(info: Info) -> CatalogStore:
    return info.context["store"]


async def _call(info: Info, method: str, *args):
    """A store call off the event loop: the Redis client blocks (and retries through a failover).
    A Redis that stays away past the retries answers the HTTP request 503, so a client knows to
    send it again later (a worker's outbox keeps the batch) rather than take it as refused."""
    try:
        return await asyncio.to_thread(getattr(_store(info), method), *args)
    except (AssetError, UpdateConflict) as error:
        raise CatalogError(str(error)) from None
    except redis.exceptions.RedisError as error:
        response = info.context.get("response")
        if isinstance(response, Response):
            response.status_code = 503
        raise CatalogError(f"the catalog's Redis is unavailable ({error}); try again") from None


@strawberry.type(description="A thing the inventory found: a cluster object, an image, a repository ...")
class Asset:
    id: strawberry.ID
    name: str
    type: AssetType
    source: str
    namespace: str
    discovered_at: datetime
    discovered_by: str
    updated_at: datetime
    metadata: JSON
    health: HealthStatus
    tags: list[str]
    lineage_ids: strawberry.Private[tuple[str, ...]]

    @strawberry.field(description="The assets this one comes from (Pod -> ReplicaSet -> Deployment ...)")
    async def lineage(self, info: Info) -> list["Asset"]:
        return [asset_of(rec) for rec in await _call(info, "get_many", list(self.lineage_ids))]


def asset_of(rec: Record) -> Asset:
    a = rec.asset
    return Asset(id=strawberry.ID(a.id), name=a.name, type=AssetType[a.type], source=a.source, namespace=a.namespace,
                 discovered_at=parse(rec.discovered_at), discovered_by=rec.discovered_by,
                 updated_at=parse(rec.updated_at), metadata=a.metadata or {},
                 health=HealthStatus[a.health], tags=list(a.tags), lineage_ids=a.lineage)


@strawberry.type
class Count:
    key: str
    count: int


def _counts(counts: dict[str, int]) -> list[Count]:
    return [Count(key=key, count=count) for key, count in counts.items()]


@strawberry.type
class AssetCounts:
    total: int
    baseline: int = strawberry.field(description="assets loaded from the baseline file")
    new: int = strawberry.field(description="assets discovered since (total - baseline)")
    by_type: list[Count]
    by_source: list[Count]
    by_health: list[Count]
    by_discoverer: list[Count]


@strawberry.type
class AssetStats:
    assets: AssetCounts
    last_discovered_at: datetime | None
    workers: int = strawberry.field(description="workers that have reported progress")


@strawberry.type
class WorkerStatus:
    worker_id: strawberry.ID
    status: str
    progress: int | None
    tokens_used: int | None
    task: str | None
    message: str | None
    at: datetime | None


def worker_status_of(data: dict[str, Any]) -> WorkerStatus:
    return WorkerStatus(worker_id=strawberry.ID(data["workerId"]), status=data["status"],
                        progress=data.get("progress"), tokens_used=data.get("tokensUsed"), task=data.get("task"),
                        message=data.get("message"), at=parse_optional(data.get("at")))


@strawberry.input
class AddAssetInput:
    name: str
    type: AssetType
    source: str
    discovered_by: str
    namespace: str = ""
    metadata: JSON | None = None
    health: HealthStatus = HealthStatus.UNKNOWN
    lineage: list[strawberry.ID] | None = None
    tags: list[str] | None = None


@strawberry.input
class UpdateAssetInput:
    metadata: JSON | None = None
    health: HealthStatus | None = None
    lineage: list[strawberry.ID] | None = None
    tags: list[str] | None = None


@strawberry.input
class WorkerProgressInput:
    worker_id: strawberry.ID
    status: str
    progress: int | None = None
    tokens_used: int | None = None
    task: str | None = None
    message: str | None = None


def _raw(value: Any) -> Any:
    """An input object as the JSON-shaped dict :mod:`runtime.catalog.assets` validates."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list):
        return [_raw(item) for item in value]
    if hasattr(value, "__strawberry_definition__"):
        return {to_camel_case(key): _raw(item) for key, item in vars(value).items() if item is not None}
    return value


async def _add(info: Info, inputs: list[AddAssetInput]) -> list[Asset]:
    """Upsert ``inputs``, validated all before the first write, in one script."""
    raws = [_raw(item) for item in inputs]
    try:
        assets = parse_batch([{k: v for k, v in raw.items() if k != "discoveredBy"} for raw in raws], "input")
    except AssetError as error:
        raise CatalogError(str(error)) from None
    await _call(info, "upsert_by", [(a, raw["discoveredBy"]) for a, raw in zip(assets, raws)])
    records = {rec.id: rec for rec in await _call(info, "get_many", [a.id for a in assets])}
    return [asset_of(records[a.id]) for a in assets]


@strawberry.type
class Query:
    @strawberry.field
    async def assets(self, info: Info, type: AssetType | None = None, source: str | None = None) -> list[Asset]:
        records = await _call(info, "assets", type.value if type else None, source)
        return [asset_of(rec) for rec in records]

    @strawberry.field
    async def asset(self, info: Info, id: strawberry.ID) -> Asset | None:
        rec = await _call(info, "get", str(id))
        return asset_of(rec) if rec else None

    @strawberry.field(description="assets whose name, type, source, namespace, tags or metadata hold every word")
    async def search(self, info: Info, query: str) -> list[Asset]:
        return [asset_of(rec) for rec in await _call(info, "search", query)]

    @strawberry.field
    async def stats(self, info: Info) -> AssetStats:
        s = await _call(info, "stats")
        return AssetStats(
            assets=AssetCounts(total=s["total"], baseline=s["baseline"], new=s["new"], by_type=_counts(s["by_type"]),
                               by_source=_counts(s["by_source"]), by_health=_counts(s["by_health"]),
                               by_discoverer=_counts(s["by_discoverer"])),
            last_discovered_at=parse_optional(s["last_discovered_at"]), workers=s["workers"])

    @strawberry.field
    async def worker_status(self, info: Info, worker_id: strawberry.ID) -> WorkerStatus | None:
        data = await _call(info, "progress", str(worker_id))
        return worker_status_of(data) if data else None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="add an asset, or update the one with the same source, type, namespace and name")
    async def add_asset(self, info: Info, input: AddAssetInput) -> Asset:
        return (await _add(info, [input]))[0]

    @strawberry.mutation(description="add or update several assets at once: all are written or none")
    async def add_assets(self, info: Info, inputs: list[AddAssetInput]) -> list[Asset]:
        return await _add(info, inputs)

    @strawberry.mutation(description="change an asset's metadata, health, lineage or tags")
    async def update_asset(self, info: Info, id: strawberry.ID, input: UpdateAssetInput) -> Asset:
        try:
            return asset_of(await _call(info, "update", str(id), _raw(input)))
        except KeyError:
            raise CatalogError(f"id: no asset {str(id)!r}") from None

    @strawberry.mutation
    async def delete_asset(self, info: Info, id: strawberry.ID) -> bool:
        return await _call(info, "delete", str(id))

    @strawberry.mutation(description="a worker's status, for workerProgress subscribers")
    async def report_progress(self, info: Info, input: WorkerProgressInput) -> WorkerStatus:
        try:
            status = parse_progress(_raw(input))
        except ValueError as error:
            raise CatalogError(str(error)) from None
        return worker_status_of(await _call(info, "report_progress", status))


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def asset_added(self, info: Info) -> AsyncGenerator[Asset, None]:
        async for event in info.context["feed"].subscribe():
            if event.name == "asset_added":
                yield asset_of(Record.decode(event.data["asset"], event.data["meta"]))

    @strawberry.subscription
    async def asset_updated(self, info: Info) -> AsyncGenerator[Asset, None]:
        async for event in info.context["feed"].subscribe():
            if event.name == "asset_updated":
                yield asset_of(Record.decode(event.data["asset"], event.data["meta"]))

    @strawberry.subscription
    async def worker_progress(self, info: Info, worker_id: strawberry.ID) -> AsyncGenerator[WorkerStatus, None]:
        async for event in info.context["feed"].subscribe():
            if event.name == "worker_progress" and event.data["status"].get("workerId") == str(worker_id):
                yield worker_status_of(event.data["status"])


class _Schema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:
        # A refused request is the client's mistake: one line, not the library's traceback.
        for error in errors:
            log.info("GraphQL request refused: %s", error.message)


def build_schema() -> strawberry.Schema:
    return _Schema(query=Query, mutation=Mutation, subscription=Subscription)


def context(store: CatalogStore, feed: ChangeFeed) -> dict[str, Any]:
    return {"store": store, "feed": feed}
