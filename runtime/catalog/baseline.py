"""The baseline file: the assets the catalog holds before a run (seed 004 Phase 0: "42+ assets
already cataloged").

A YAML or JSON document ``{assets: [...]}`` of assets in the protocol's form
(:func:`runtime.catalog.assets.parse_asset`). Loading adds the assets the catalog lacks, as
discovered by ``baseline``, and leaves the ones it has alone: a replica that restarts, or a
second replica seeding at the same time, never undoes what was discovered since.

Guaranteed: the whole file is read and validated before the first write; a mistake is one
:class:`BaselineError` naming the file, the entry and what was expected, and nothing is
written. Not guaranteed: a file larger than one batch (:data:`runtime.catalog.assets.MAX_BATCH`)
is written in several scripts, so a crash between them leaves a prefix (loading again
completes it).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from runtime.catalog.assets import BASELINE, MAX_BATCH, Asset, AssetError, parse_asset, short
from runtime.catalog.store import CatalogStore


class BaselineError(ValueError):
    """The baseline file is unreadable or not of the documented shape."""


def read_baseline(path: Path) -> list[Asset]:
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise BaselineError(f"{path}: cannot read the baseline file ({error})") from None
    except yaml.YAMLError as error:
        raise BaselineError(f"{path}: not YAML or JSON ({str(error).splitlines()[0]})") from None
    if not isinstance(document, dict) or not isinstance(document.get("assets"), list) or set(document) != {"assets"}:
        raise BaselineError(f"{path}: expected a document {{assets: [...]}}, got {short(document)}")
    try:
        assets = [parse_asset(raw, f"assets[{i}]") for i, raw in enumerate(document["assets"])]
    except AssetError as error:
        raise BaselineError(f"{path}: {error}") from None
    ids = {}
    for i, asset in enumerate(assets):
        if asset.id in ids:
            raise BaselineError(f"{path}: assets[{i}] repeats assets[{ids[asset.id]}] (same source, type, "
                                f"namespace and name)")
        ids[asset.id] = i
    return assets


def load_baseline(store: CatalogStore, assets: list[Asset]) -> int:
    """Add the assets the catalog lacks; how many were added."""
    added = 0
    for start in range(0, len(assets), MAX_BATCH):
        kinds = store.upsert(assets[start:start + MAX_BATCH], BASELINE, only_new=True)
        added += sum(1 for _id, kind in kinds if kind == "added")
    return added
