"""A worker's client of the catalog: GraphQL over HTTP with the standard library.

Guaranteed: :class:`CatalogRejected` only for what sending again cannot cure (the catalog
answered with a GraphQL error, or HTTP 400: bad input, or a catalog of another version) and
:class:`CatalogUnavailable` for everything else (no connection, a timeout, a 503 from a
replica without Redis, any other HTTP status, such as a wrong URL's 404), so a caller buffers the first and drops the second. Not guaranteed: that a request
that timed out was not applied (the upserts it sends are idempotent, so sending it again is
safe).
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from runtime.catalog.assets import Asset

ADD_ASSETS = "mutation($inputs: [AddAssetInput!]!) { addAssets(inputs: $inputs) { id } }"
REPORT_PROGRESS = "mutation($input: WorkerProgressInput!) { reportProgress(input: $input) { workerId } }"


class CatalogUnavailable(Exception):
    """The catalog did not answer, or answered that it cannot serve now."""


class CatalogRejected(Exception):
    """The catalog answered with an error that sending again cannot cure."""


def asset_input(asset: Asset, discovered_by: str) -> dict[str, Any]:
    """``AddAssetInput`` of ``asset`` (its lineage already resolved to ids)."""
    data = json.loads(asset.content())
    data["discoveredBy"] = discovered_by
    return data


class CatalogClient:
    def __init__(self, url: str, timeout: float = 5.0):
        self.url, self.timeout = url, timeout

    def execute(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.loads(response.read())
        except urllib.error.HTTPError as error:
            # Only a 400 judges the request; anything else (a 404 from a wrong URL, a proxy's
            # 502) says nothing about the batch, which must then be kept.
            if error.code != 400:
                raise CatalogUnavailable(f"{self.url}: HTTP {error.code}") from None
            raise CatalogRejected(f"{self.url}: HTTP 400: {error.read()[:200]!r}") from None
        except (urllib.error.URLError, OSError) as error:
            raise CatalogUnavailable(f"{self.url}: {getattr(error, 'reason', error)}") from None
        except ValueError as error:
            raise CatalogRejected(f"{self.url}: the answer is not JSON ({error})") from None
        if reply.get("errors"):
            raise CatalogRejected(f"{self.url}: {reply['errors'][0].get('message')}")
        return reply.get("data") or {}

    def add_assets(self, inputs: list[dict[str, Any]]) -> None:
        self.execute(ADD_ASSETS, {"inputs": inputs})

    def report_progress(self, status: dict[str, Any]) -> None:
        self.execute(REPORT_PROGRESS, {"input": status})
