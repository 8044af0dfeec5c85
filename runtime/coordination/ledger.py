"""Token ledger per Larry (seed risk 4): ``tokens:{larry}:limit|reserved|committed|emergency|ops``.

A worker books the tokens its payload reports as spent with :meth:`Ledger.record`: one Lua
script keyed by the caller's ``op_id``, recorded in the ``ops`` hash, so a command retried
after a lost reply never charges twice: a replay returns the recorded outcome with
``replay=True``.

Guarantees (whatever the concurrency, since each script is atomic):

* Spent is spent: a record is always booked; going past limit + emergency answers
  ``overrun`` (with a ``token_overrun`` alert) so the caller stops the spender.
* When use (reserved + committed) reaches ``threshold`` (90 %) of the effective
  limit, up to ``draw`` tokens move from the meta-coordinator's pool
  ``tokens:{meta}:pool`` to this Larry's ``emergency`` in the same script, with a
  ``token_reserve_deployed`` alert. The draw is min(draw, pool): the pool is
  never overdrawn, so the sum over Larrys of their emergency never exceeds the
  initial pool.

Not guaranteed: that committed stays within the limit (it is a record of what was spent,
not a permission to spend; the worker enforces the budget by stopping the payload), and
nothing is ever reserved ahead of spending (``reserved`` stays 0 and is read only for
reports).

The numbers (limits, pool, draw size) come from configuration as plain ints.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from runtime.coordination.connection import Durability, require_text, run_script
from runtime.coordination.events import lua_script
from runtime.coordination.keys import Keyspace

_RECORD = r"""
-- KEYS[1] limit, [2] reserved, [3] committed, [4] emergency, [5] ops, [6] pool
-- ARGV[1] larry, [2] op id, [3] amount, [4] threshold (per mille), [5] draw size
local function num(key) return tonumber(redis.call('GET', key) or '0') end
if not redis.call('GET', KEYS[1]) then return {'no_limit', '0'} end
local function effective() return num(KEYS[1]) + num(KEYS[4]) end
local function maybe_draw(used)
  if used * 1000 < effective() * tonumber(ARGV[4]) then return end
  local take = math.min(tonumber(ARGV[5]), num(KEYS[6]))
  if take <= 0 then return end
  redis.call('DECRBY', KEYS[6], take)
  redis.call('INCRBY', KEYS[4], take)
  emit(true, {event='token_reserve_deployed', larry=ARGV[1], amount=take, used=used,
              limit=effective(), pool_left=num(KEYS[6])})
end
local prev = redis.call('HGET', KEYS[5], ARGV[2])
if prev then return {'replay', prev} end
local used = num(KEYS[2]) + num(KEYS[3]) + tonumber(ARGV[3])
maybe_draw(used)
redis.call('INCRBY', KEYS[3], ARGV[3])
redis.call('HSET', KEYS[5], ARGV[2], 'committed:' .. ARGV[3])
if used > effective() then
  emit(true, {event='token_overrun', larry=ARGV[1], used=used, limit=effective()})
  return {'overrun', tostring(effective() - used)}
end
return {'committed', ARGV[3]}
"""


@dataclass(frozen=True)
class LedgerOp:
    """``status``: committed | overrun (booked, but past the limit: ``amount`` is the negative
    headroom left) | no_limit (nothing booked: the Larry has no limit yet). A replayed op_id
    returns its recorded status and amount with ``replay=True``."""

    status: str
    amount: int
    replay: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "committed"


def init_reserve_pool(r: redis.Redis, ks: Keyspace, amount: int, *, overwrite: bool = False) -> int:
    """Coordinator: fill the meta-coordinator's emergency pool (only if unset unless ``overwrite``)."""
    r.set(ks.token_pool, int(amount), nx=not overwrite)
    return int(r.get(ks.token_pool))


class Ledger:
    def __init__(self, r: redis.Redis, ks: Keyspace, larry: str, *, threshold: float = 0.9,
                 draw: int = 25_000, durability: Durability = Durability()):
        require_text(r)
        self.r, self.ks, self.larry, self.durability = r, ks, larry, durability
        self.threshold_permille, self.draw = int(round(threshold * 1000)), int(draw)
        self._record = r.register_script(lua_script(ks, _RECORD))

    def _key(self, field: str) -> str:
        return self.ks.tokens(self.larry, field)

    def set_limit(self, limit: int, *, overwrite: bool = False) -> int:
        """Coordinator: this Larry's budget (kept across coordinator restarts unless ``overwrite``)."""
        self.r.set(self._key("limit"), int(limit), nx=not overwrite)
        return int(self.r.get(self._key("limit")))

    def record(self, op_id: str, spent: int) -> LedgerOp:
        """Book tokens already spent: ``committed``, or ``overrun`` once past the limit."""
        if spent < 0:
            raise ValueError("token amounts are non-negative")
        keys = [self._key(f) for f in ("limit", "reserved", "committed", "emergency", "ops")] + [self.ks.token_pool]
        args = [self.larry, op_id, int(spent), self.threshold_permille, self.draw]
        status, detail = run_script(self.r, self._record, keys, args, self.durability)
        if status == "replay":
            state, _, recorded = detail.partition(":")
            return LedgerOp(state, int(recorded), replay=True)
        return LedgerOp(status, int(detail))

    def snapshot(self) -> dict:
        fields = ("limit", "reserved", "committed", "emergency")
        values = self.r.mget([self._key(f) for f in fields] + [self.ks.token_pool])
        snap = {f: int(v or 0) for f, v in zip(fields + ("pool",), values)}
        snap["available"] = snap["limit"] + snap["emergency"] - snap["reserved"] - snap["committed"]
        return snap
