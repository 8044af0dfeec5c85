"""The catalog's state in Redis: assets by id, when and by whom each was discovered, the latest
progress of each worker, and a change stream every replica reads.

Keys (under the stack's key prefix, beside the run's keys but never removed by ``larry
cleanup``: the catalog outlives runs): ``catalog:assets`` (hash id -> the asset's canonical
JSON), ``catalog:discovered`` (hash id -> ``{discoveredAt, discoveredBy, updatedAt}``),
``catalog:counts`` (the totals ``stats`` reads, kept by the same scripts as the assets),
``catalog:progress`` (hash worker -> its latest status) and ``catalog:changes`` (a stream of
``asset_added``, ``asset_updated``, ``asset_deleted`` and ``worker_progress`` entries in the
event stream's entry format, so :class:`runtime.coordination.events.EventListener` reads it).

Guaranteed:

* An upsert of a batch is one Lua script that checks every argument (and the expected
  current value of a compare-and-set) before its first write: a batch is written whole or
  not at all. An asset and its change entry are written together.
* Upserts are idempotent by the natural key (:mod:`runtime.catalog.assets`): re-reporting an
  asset with the same content writes nothing and emits nothing, so a retried or replayed
  report never duplicates an asset or a notification. Its first ``discoveredAt`` and
  ``discoveredBy`` are kept for good.
* Timestamps are the Redis primary's clock.
* Through :mod:`runtime.coordination.connection`, commands ride out a Sentinel failover.

Not guaranteed: a write acknowledged just before a failover can be lost with it (Redis
replicates asynchronously; the reporter's replay restores it); ``assets`` and ``search`` read
every asset (linear in the catalog's size; ``stats`` is not); the change stream is trimmed to
about :data:`CHANGES_MAXLEN` entries, so a replica away longer misses the oldest.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Iterable

import redis

from runtime.catalog.assets import BASELINE, MAX_TEXT, Asset, AssetError, parse_update
from runtime.coordination.connection import require_text
from runtime.coordination.events import lua_script
from runtime.coordination.keys import Keyspace

#: Entries the change stream keeps (approximately): minutes of a busy run's discoveries.
CHANGES_MAXLEN = 10_000
#: Compare-and-set attempts of an update racing other writers before it gives up.
UPDATE_ATTEMPTS = 20

# Totals kept by the writes themselves, so `stats` reads one small hash instead of every asset:
# 'total', 'type:T', 'source:S', 'health:H', 'by:D' (the discoverer), 'last' (the latest
# discovery, deleted assets included) and 'discovered' (every asset ever added: a counter).
_TALLY = r"""
local function tally(counts, asset, by, delta)
  redis.call('HINCRBY', counts, 'total', delta)
  redis.call('HINCRBY', counts, 'type:' .. asset.type, delta)
  redis.call('HINCRBY', counts, 'source:' .. asset.source, delta)
  redis.call('HINCRBY', counts, 'health:' .. asset.health, delta)
  redis.call('HINCRBY', counts, 'by:' .. by, delta)
end
"""

# ARGV[1] the writer (the prelude's SENDER), ARGV[2] the stream's MAXLEN, then five per asset:
# id, content (canonical JSON), discoveredBy, mode, expected content (mode 'cas' only).
# Modes: 'upsert' (add or replace), 'if_absent' (add only: a baseline never undoes later
# discoveries), 'cas' (replace only if the stored content is still the expected one).
_UPSERT = _TALLY + r"""
local ASSETS, DISCOVERED, CHANGES, COUNTS = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if (#ARGV - 2) % 5 ~= 0 or #ARGV < 7 then
  return redis.error_reply('ERR catalog upsert: expected 5 arguments per asset')
end
for i = 3, #ARGV, 5 do
  local ok, decoded = pcall(cjson.decode, ARGV[i + 1])
  if ARGV[i] == '' or not ok or type(decoded) ~= 'table' or ARGV[i + 2] == '' or type(decoded.type) ~= 'string'
      or type(decoded.source) ~= 'string' or type(decoded.health) ~= 'string' then
    return redis.error_reply('ERR catalog upsert: asset ' .. (i - 1) / 5 .. ' needs an id, JSON content with '
                             .. 'type, source and health, discoveredBy')
  end
  local mode = ARGV[i + 3]
  if mode ~= 'upsert' and mode ~= 'if_absent' and mode ~= 'cas' then
    return redis.error_reply('ERR catalog upsert: unknown mode ' .. mode)
  end
  if mode == 'cas' and redis.call('HGET', ASSETS, ARGV[i]) ~= ARGV[i + 4] then
    return {'conflict'}
  end
end
local kinds = {}
for i = 3, #ARGV, 5 do
  local id, content, by, mode = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local current = redis.call('HGET', ASSETS, id)
  local kind = 'unchanged'
  local meta
  local new = cjson.decode(content)
  if not current then
    kind = 'added'
    meta = cjson.encode({discoveredAt = now(), discoveredBy = by, updatedAt = now()})
    tally(COUNTS, new, by, 1)
    redis.call('HINCRBY', COUNTS, 'discovered', 1)  -- never decremented: its rate is the discovery rate
    redis.call('HSET', COUNTS, 'last', now())
  elseif mode ~= 'if_absent' and current ~= content then
    kind = 'updated'
    local ok, old = pcall(cjson.decode, redis.call('HGET', DISCOVERED, id) or '')
    if not ok or type(old) ~= 'table' then old = {discoveredAt = now(), discoveredBy = by} end
    old.updatedAt = now()
    meta = cjson.encode(old)
    local before = cjson.decode(current).health
    if before ~= new.health then  -- the natural key (type, source) cannot change; health can
      redis.call('HINCRBY', COUNTS, 'health:' .. before, -1)
      redis.call('HINCRBY', COUNTS, 'health:' .. new.health, 1)
    end
  end
  if kind ~= 'unchanged' then
    redis.call('HSET', ASSETS, id, content)
    redis.call('HSET', DISCOVERED, id, meta)
    local data = '{"event":"asset_' .. kind .. '","id":' .. cjson.encode(id) .. ',"asset":' .. content ..
                 ',"meta":' .. meta .. '}'
    redis.call('XADD', CHANGES, 'MAXLEN', '~', ARGV[2], '*', 'channel', CHANGES, 'payload', data)
  end
  kinds[#kinds + 1] = kind
end
return kinds
"""

# ARGV[1] the writer, ARGV[2] MAXLEN, ARGV[3] the id. Deleting what is gone emits nothing.
_DELETE = _TALLY + r"""
local content = redis.call('HGET', KEYS[1], ARGV[3])
if not content then return 0 end
local ok, meta = pcall(cjson.decode, redis.call('HGET', KEYS[2], ARGV[3]) or '')
tally(KEYS[4], cjson.decode(content), (ok and type(meta) == 'table' and meta.discoveredBy) or '', -1)
redis.call('HDEL', KEYS[1], ARGV[3])
redis.call('HDEL', KEYS[2], ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'channel', KEYS[3], 'payload',
           '{"event":"asset_deleted","id":' .. cjson.encode(ARGV[3]) .. '}')
return 1
"""

# ARGV[1] the writer, ARGV[2] MAXLEN, ARGV[3] the worker, ARGV[4] its status as a JSON object
# without the time (validated by the caller), to which the primary's clock adds ``at``.
_PROGRESS = r"""
local ok, status = pcall(cjson.decode, ARGV[4])
if not ok or type(status) ~= 'table' or type(status.workerId) ~= 'string' or string.sub(ARGV[4], 1, 1) ~= '{' then
  return redis.error_reply('ERR catalog progress: expected a JSON object with a workerId')
end
local data = '{"at":"' .. now() .. '",' .. string.sub(ARGV[4], 2)
redis.call('HSET', KEYS[1], ARGV[3], data)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'channel', KEYS[2], 'payload',
           '{"event":"worker_progress","status":' .. data .. '}')
return data
"""


class UpdateConflict(RuntimeError):
    """An update kept losing the race with other writers of the same asset."""


@dataclass(frozen=True)
class Record:
    """A stored asset with what the store adds to it."""

    asset: Asset
    discovered_at: str
    discovered_by: str
    updated_at: str

    @property
    def id(self) -> str:
        return self.asset.id

    @classmethod
    def decode(cls, content: str, meta: str | dict | None) -> "Record":
        meta = json.loads(meta) if isinstance(meta, str) else (meta or {})
        return cls(Asset.from_content(content) if isinstance(content, str) else Asset.from_data(content),
                   meta.get("discoveredAt", ""), meta.get("discoveredBy", ""), meta.get("updatedAt", ""))


def catalog_keys(ks: Keyspace) -> Keyspace:
    """``ks`` with the change stream as its event stream, for an EventListener of the catalog."""
    return replace(ks, events_stream="catalog:changes")


class CatalogStore:
    def __init__(self, r: redis.Redis, ks: Keyspace, writer: str = "catalog"):
        require_text(r)
        self.r, self.writer = r, writer
        self.changes_ks = catalog_keys(ks)
        self.assets_key = ks.prefix + "catalog:assets"
        self.discovered_key = ks.prefix + "catalog:discovered"
        self.progress_key = ks.prefix + "catalog:progress"
        self.counts_key = ks.prefix + "catalog:counts"
        self.changes_key = self.changes_ks.stream
        self._upsert = r.register_script(lua_script(ks, _UPSERT))
        self._delete = r.register_script(lua_script(ks, _DELETE))
        self._progress = r.register_script(lua_script(ks, _PROGRESS))

    # ---- writes
    def upsert(self, assets: Iterable[Asset], discovered_by: str, *, only_new: bool = False) -> list[tuple[str, str]]:
        """Add or update each asset; [(id, 'added' | 'updated' | 'unchanged')] in order."""
        return self.upsert_by([(asset, discovered_by) for asset in assets], only_new=only_new)

    def upsert_by(self, reports: list[tuple[Asset, str]], *, only_new: bool = False) -> list[tuple[str, str]]:
        """:meth:`upsert` of (asset, discoverer) pairs, all in one script."""
        for _asset, by in reports:
            if not isinstance(by, str) or not by.strip() or len(by) > MAX_TEXT:
                raise AssetError(f"discoveredBy: expected a non-empty string of at most {MAX_TEXT} characters")
        if not reports:
            return []
        mode = "if_absent" if only_new else "upsert"
        args: list = [self.writer, CHANGES_MAXLEN]
        for asset, by in reports:
            args += [asset.id, asset.content(), by, mode, ""]
        kinds = self._upsert(keys=self._keys(), args=args)
        return [(asset.id, kind) for (asset, _by), kind in zip(reports, kinds)]

    def update(self, asset_id: str, changes: Any) -> Record:
        """Apply ``changes`` (:func:`runtime.catalog.assets.parse_update`) to the stored asset,
        compare-and-set against concurrent writers; KeyError when there is no such asset."""
        for _attempt in range(UPDATE_ATTEMPTS):
            current = self.r.hget(self.assets_key, asset_id)
            if current is None:
                raise KeyError(asset_id)
            old = Asset.from_content(current)
            new = parse_update(old, changes)
            if new.content() == current:
                break
            reply = self._upsert(keys=self._keys(), args=[self.writer, CHANGES_MAXLEN, asset_id, new.content(),
                                                         self.writer, "cas", current])
            if reply != ["conflict"]:
                break
        else:
            raise UpdateConflict(f"asset {asset_id} changed under {UPDATE_ATTEMPTS} updates in a row; try again")
        record = self.get(asset_id)
        if record is None:
            raise KeyError(asset_id)
        return record

    def delete(self, asset_id: str) -> bool:
        return bool(self._delete(keys=self._keys(), args=[self.writer, CHANGES_MAXLEN, asset_id]))

    def report_progress(self, status: dict[str, Any]) -> dict[str, Any]:
        """Record and announce a worker's status (a validated object with ``workerId``)."""
        text = json.dumps({k: v for k, v in status.items() if k != "at"}, separators=(",", ":"))
        return json.loads(self._progress(keys=[self.progress_key, self.changes_key],
                                         args=[self.writer, CHANGES_MAXLEN, status["workerId"], text]))

    def _keys(self) -> list[str]:
        return [self.assets_key, self.discovered_key, self.changes_key, self.counts_key]

    # ---- reads
    def get(self, asset_id: str) -> Record | None:
        return next(iter(self.get_many([asset_id])), None)

    def get_many(self, ids: list[str]) -> list[Record]:
        """The stored ones of ``ids``, in order (missing ones skipped)."""
        if not ids:
            return []
        pipe = self.r.pipeline(transaction=False)
        pipe.hmget(self.assets_key, ids)
        pipe.hmget(self.discovered_key, ids)
        contents, metas = pipe.execute()
        return [Record.decode(c, m) for c, m in zip(contents, metas) if c is not None]

    def all(self) -> list[Record]:
        """Every asset, by discovery time then id."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.assets_key)
        pipe.hgetall(self.discovered_key)
        contents, metas = pipe.execute()
        records = [Record.decode(content, metas.get(i)) for i, content in contents.items()]
        return sorted(records, key=lambda rec: (rec.discovered_at, rec.id))

    def assets(self, type_: str | None = None, source: str | None = None) -> list[Record]:
        return [rec for rec in self.all()
                if (type_ is None or rec.asset.type == type_) and (source is None or rec.asset.source == source)]

    def search(self, query: str) -> list[Record]:
        """Assets whose name, type, source, namespace, tags or metadata contain every word of
        ``query`` (case-insensitive)."""
        words = query.lower().split()
        if not words:
            return []

        def text(rec: Record) -> str:
            a = rec.asset
            return " ".join([a.name, a.type, a.source, a.namespace, *a.tags,
                             json.dumps(a.metadata or {}, ensure_ascii=False), rec.discovered_by]).lower()
        return [rec for rec in self.all() if all(word in text(rec) for word in words)]

    def count(self) -> int:
        return self.r.hlen(self.assets_key)

    def discovered(self) -> int:
        """Assets ever added (deleted ones included): a counter, whose rate is the discovery rate."""
        return int(self.r.hget(self.counts_key, "discovered") or 0)

    def stats(self) -> dict[str, Any]:
        """Totals: all, by type, source, health and discoverer, and the baseline's share (from
        the counts the writes keep: one small hash, whatever the catalog holds)."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.counts_key)
        pipe.hlen(self.progress_key)
        counts, workers = pipe.execute()

        def by(kind: str) -> dict[str, int]:
            return dict(sorted((key.removeprefix(kind), int(n)) for key, n in counts.items()
                               if key.startswith(kind) and int(n) > 0))
        total = int(counts.get("total", 0))
        baseline = by("by:").get(BASELINE, 0)
        return {"total": total, "baseline": baseline, "new": total - baseline, "by_type": by("type:"),
                "by_source": by("source:"), "by_health": by("health:"), "by_discoverer": by("by:"),
                "last_discovered_at": counts.get("last") if total else None, "workers": workers}

    def progress(self, worker_id: str) -> dict[str, Any] | None:
        raw = self.r.hget(self.progress_key, worker_id)
        return json.loads(raw) if raw else None

    def ping(self) -> bool:
        return bool(self.r.ping())
