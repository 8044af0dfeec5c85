"""Assets: what the catalog holds, their validation, and the natural key that makes an upsert
idempotent.

An asset is named by its natural key, ``source + type + namespace + name`` (seed 004's
"source + kind + namespace + name"; ``type`` is the kind, ``namespace`` is empty for what no
namespace holds); its ``id`` is derived from that key alone (:func:`asset_id`), so whoever
reports the same thing, through whichever replica, any number of times, names one asset.

Guaranteed: :func:`parse_asset` and :func:`parse_update` either return a complete, bounded
value or raise :class:`AssetError` naming the field and what was expected; nothing else here
touches Redis, so a caller validates a whole batch before its first write. :func:`content`
is canonical (sorted keys, no spaces): equal assets encode to equal strings, which is how the
store tells an unchanged re-report from an update. Not guaranteed: that a lineage entry names
an asset the catalog holds (it may be reported later; readers skip what is missing).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

#: What an asset may be (GraphQL enum ``AssetType``). Cluster objects by kind, plus what the
#: seed's inventory also catalogues beyond the cluster (repositories, pipelines, dashboards).
ASSET_TYPES = (
    "NAMESPACE", "NODE", "DEPLOYMENT", "STATEFULSET", "DAEMONSET", "REPLICASET", "POD", "CONTAINER",
    "CONTAINER_IMAGE", "SERVICE", "ENDPOINT_SLICE", "INGRESS", "JOB", "CRONJOB", "CONFIGMAP", "SECRET",
    "PERSISTENT_VOLUME", "PERSISTENT_VOLUME_CLAIM", "SERVICE_ACCOUNT", "HELM_RELEASE", "REPOSITORY", "PIPELINE",
    "DASHBOARD", "ALERT_RULE", "DATABASE", "OTHER",
)
#: GraphQL enum ``HealthStatus``.
HEALTH = ("HEALTHY", "DEGRADED", "UNHEALTHY", "UNKNOWN")
#: The ``discoveredBy`` of assets loaded from a baseline file: what `stats` counts as the baseline.
BASELINE = "baseline"

MAX_TEXT = 253  # a Kubernetes object name's bound
MAX_TAGS = 64
MAX_TAG = 128
MAX_LINEAGE = 256
MAX_METADATA_BYTES = 16 * 1024
#: Assets one write (a mutation, a protocol line, a baseline file's batch) may carry.
MAX_BATCH = 1000


class AssetError(ValueError):
    """An asset or update of the wrong shape; the message names the field and what was expected."""


@dataclass(frozen=True)
class Asset:
    """What a reporter says about an asset (the stored part; the store adds ``discoveredAt``,
    ``discoveredBy`` and ``updatedAt``)."""

    name: str
    type: str
    source: str
    namespace: str = ""
    metadata: dict[str, Any] | None = None
    health: str = "UNKNOWN"
    lineage: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return asset_id(self.source, self.type, self.namespace, self.name)

    def content(self) -> str:
        """The canonical JSON the store keeps and compares."""
        data = asdict(self)
        data.update(metadata=self.metadata or {}, lineage=list(self.lineage), tags=list(self.tags))
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_content(cls, text: str) -> "Asset":
        return cls.from_data(json.loads(text))

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "Asset":
        """The asset of a decoded :meth:`content` (as the change stream carries it)."""
        return cls(**{**data, "lineage": tuple(data["lineage"]), "tags": tuple(data["tags"])})


def asset_id(source: str, type_: str, namespace: str, name: str) -> str:
    """The id of the asset with this natural key: stable, and distinct for distinct keys (the
    parts are JSON-encoded before hashing, so no separator inside a name can collide)."""
    key = json.dumps([source, type_, namespace, name], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def _text(raw: dict, key: str, where: str, *, required: bool = True, default: str = "") -> str:
    value = raw.get(key, None if required else default)
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > MAX_TEXT:
        raise AssetError(f"{where}.{key}: expected a {'non-empty ' if required else ''}string of at most "
                         f"{MAX_TEXT} characters, got {short(value)}")
    return value


def _choice(raw: dict, key: str, where: str, choices: tuple[str, ...], default: str | None = None) -> str:
    value = raw.get(key, default)
    normal = value.strip().upper().replace("-", "_") if isinstance(value, str) else value
    if normal not in choices:
        raise AssetError(f"{where}.{key}: expected one of {', '.join(choices)}, got {short(value)}")
    return normal


def _metadata(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AssetError(f"{where}.metadata: expected a JSON object, got {short(value)}")
    try:
        size = len(json.dumps(value, allow_nan=False, separators=(",", ":")).encode())
    except (TypeError, ValueError, RecursionError) as error:
        raise AssetError(f"{where}.metadata: expected plain JSON ({error})") from None
    if size > MAX_METADATA_BYTES:
        raise AssetError(f"{where}.metadata: expected at most {MAX_METADATA_BYTES:,} bytes of JSON, got {size:,}")
    return value


def _tags(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_TAGS or \
            not all(isinstance(t, str) and 0 < len(t) <= MAX_TAG for t in value):
        raise AssetError(f"{where}.tags: expected a list of at most {MAX_TAGS} non-empty strings of at most "
                         f"{MAX_TAG} characters, got {short(value)}")
    return tuple(dict.fromkeys(value))


def _lineage(value: Any, where: str, source: str) -> tuple[str, ...]:
    """Ids, or natural keys ``{type, name, namespace?, source?}`` (the source defaults to the
    asset's own, the namespace to none: an image or a node is in none), each resolved to its id."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_LINEAGE:
        raise AssetError(f"{where}.lineage: expected a list of at most {MAX_LINEAGE} asset ids or "
                         f"{{type, name, namespace, source}} objects, got {short(value)}")
    ids = []
    for i, entry in enumerate(value):
        at = f"{where}.lineage[{i}]"
        if isinstance(entry, str) and 0 < len(entry) <= MAX_TEXT:
            ids.append(entry)
        elif isinstance(entry, dict):
            unknown = set(entry) - {"type", "name", "namespace", "source"}
            if unknown:
                raise AssetError(f"{at}: unknown field {sorted(unknown)[0]!r} (expected type, name, namespace, source)")
            ids.append(asset_id(_text(entry, "source", at, required=False, default=source) or source,
                                _choice(entry, "type", at, ASSET_TYPES), _text(entry, "namespace", at, required=False),
                                _text(entry, "name", at)))
        else:
            raise AssetError(f"{at}: expected an asset id or a {{type, name, namespace, source}} object, "
                             f"got {short(entry)}")
    return tuple(dict.fromkeys(ids))


_FIELDS = ("name", "type", "source", "namespace", "metadata", "health", "lineage", "tags")


def parse_asset(raw: Any, where: str = "asset") -> Asset:
    """A reported asset from its JSON form (``type`` and ``health`` case-insensitive, ``-`` for
    ``_``); AssetError naming the first problem."""
    if not isinstance(raw, dict):
        raise AssetError(f"{where}: expected an object with name, type, source, got {short(raw)}")
    unknown = set(raw) - set(_FIELDS) - {"discoveredBy"}
    if unknown:
        raise AssetError(f"{where}: unknown field {sorted(unknown)[0]!r} (expected {', '.join(_FIELDS)})")
    source = _text(raw, "source", where)
    return Asset(name=_text(raw, "name", where), type=_choice(raw, "type", where, ASSET_TYPES), source=source,
                 namespace=_text(raw, "namespace", where, required=False),
                 metadata=_metadata(raw.get("metadata"), where),
                 health=_choice(raw, "health", where, HEALTH, "UNKNOWN"),
                 lineage=_lineage(raw.get("lineage"), where, source), tags=_tags(raw.get("tags"), where))


def parse_update(current: Asset, raw: Any, where: str = "input") -> Asset:
    """``current`` with the fields of an update (``metadata``, ``health``, ``lineage``, ``tags``;
    each replaces the old value). The natural key cannot change: it is the asset's identity."""
    if not isinstance(raw, dict):
        raise AssetError(f"{where}: expected an object, got {short(raw)}")
    allowed = ("metadata", "health", "lineage", "tags")
    unknown = set(raw) - set(allowed)
    if unknown:
        raise AssetError(f"{where}: field {sorted(unknown)[0]!r} cannot be updated (expected {', '.join(allowed)}; "
                         f"name, type, source and namespace are the asset's identity)")
    changes: dict[str, Any] = {}
    if raw.get("metadata") is not None:
        changes["metadata"] = _metadata(raw["metadata"], where)
    if raw.get("health") is not None:
        changes["health"] = _choice(raw, "health", where, HEALTH)
    if raw.get("lineage") is not None:
        changes["lineage"] = _lineage(raw["lineage"], where, current.source)
    if raw.get("tags") is not None:
        changes["tags"] = _tags(raw["tags"], where)
    return replace(current, **changes)


def parse_batch(raw: Any, where: str) -> list[Asset]:
    """A list of assets, all validated before any is used."""
    if not isinstance(raw, list) or len(raw) > MAX_BATCH:
        raise AssetError(f"{where}: expected a list of at most {MAX_BATCH:,} assets, got {short(raw)}")
    return [parse_asset(item, f"{where}[{i}]") for i, item in enumerate(raw)]


def short(value: Any) -> str:
    try:
        text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
