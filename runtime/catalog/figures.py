"""What a run shows of the catalog: its assets in all and those new since the baseline (seed
004 "Inventory Results": "Total Assets: 200+, New Discoveries: 158"), read from the catalog
itself rather than summed from the workers' reports (which count a rediscovered asset again).

Two ways to the same figures (:meth:`runtime.catalog.store.CatalogStore.stats`): from Redis,
for readers that hold the run's connection (``larry dashboard``), and from the GraphQL API,
for readers that do not (the summary): at ``$LARRY_CATALOG_URL``, which `larry run` gives its
processes (a reader without it says so rather than guess at a cluster address).

Guaranteed: never raises for an absent or failing catalog: the figures are None and
:func:`assets_text` says why. Not guaranteed: that the figures are those at the run's end (a
catalog outlives runs, and other writers may have added since).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import redis

from plan import environment as envvar
from runtime.catalog.client import CatalogClient, CatalogRejected, CatalogUnavailable
from runtime.catalog.store import CatalogStore
from runtime.coordination.keys import Keyspace

STATS = "{ stats { assets { total baseline new } } }"


@dataclass(frozen=True)
class CatalogAssets:
    total: int
    baseline: int
    new: int


@dataclass(frozen=True)
class Reading:
    """The figures, or None with the reason they could not be read."""
    assets: CatalogAssets | None
    problem: str = ""


def from_redis(r: redis.Redis, ks: Keyspace) -> Reading:
    try:
        stats = CatalogStore(r, ks).stats()
    except redis.exceptions.RedisError as error:
        return Reading(None, f"Redis did not answer ({error})")
    return Reading(CatalogAssets(stats["total"], stats["baseline"], stats["new"]))


def from_api(timeout: float = 5.0) -> Reading:
    url = os.environ.get(envvar.CATALOG_URL)
    if not url:
        return Reading(None, f"${envvar.CATALOG_URL} is not set")
    try:
        counts = CatalogClient(url, timeout).execute(STATS, {})["stats"]["assets"]
        return Reading(CatalogAssets(int(counts["total"]), int(counts["baseline"]), int(counts["new"])))
    except (CatalogUnavailable, CatalogRejected) as error:
        return Reading(None, str(error))
    except (KeyError, TypeError, ValueError) as error:
        return Reading(None, f"{url}: stats is not {STATS} ({error!r})")


def assets_text(reading: Reading) -> str:
    """``183 assets in the catalog, 141 new since its baseline of 42`` (or why there are none)."""
    if reading.assets is None:
        return f"catalog figures unavailable: {reading.problem}"
    a = reading.assets
    return f"{a.total} assets in the catalog, {a.new} new since its baseline of {a.baseline}"
