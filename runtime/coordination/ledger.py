"""Token ledger per Larry (seed risk 4): ``tokens:{larry}:limit|reserved|committed|emergency|ops``.

A model call first reserves its worst case, then commits what it really used
(or refunds). Every operation is one Lua script keyed by the caller's
``op_id``, recorded in the ``ops`` hash, so a command retried after a lost
reply never charges twice: a replay returns the recorded outcome with
``replay=True``.

Guarantees (whatever the concurrency, since each script is atomic):

* reserved + committed never exceeds limit + emergency through reservations:
  a reservation that would is refused (``insufficient``). Commits of at most the
  reserved amount keep the invariant; a commit above it records the truth
  anyway (tokens already spent) and raises a ``token_overrun`` alert.
* ``record`` books tokens already spent (an agent reports what it used) in one
  round trip instead of reserve + commit: spent is spent, so it is always booked,
  and going past the limit answers ``overrun`` (with a ``token_overrun`` alert)
  so the caller stops the spender.
* When use (reserved + committed) reaches ``threshold`` (90 %) of the effective
  limit, up to ``draw`` tokens move from the meta-coordinator's pool
  ``tokens:{meta}:pool`` to this Larry's ``emergency`` in the same script, with a
  ``token_reserve_deployed`` alert. The draw is min(draw, pool): the pool is
  never overdrawn, so the sum over Larrys of their emergency never exceeds the
  initial pool.

The numbers (limits, pool, draw size) come from configuration as plain ints.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from runtime.coordination.connection import Durability, require_text, run_script
from runtime.coordination.events import lua_script
from runtime.coordination.keys import Keyspace

_COMMON = r"""
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
"""

_RESERVE = _COMMON + r"""
if prev then return {'replay', prev} end
local used = num(KEYS[2]) + num(KEYS[3]) + tonumber(ARGV[3])
maybe_draw(used)
if used > effective() then
  return {'insufficient', tostring(effective() - used + tonumber(ARGV[3]))}
end
redis.call('INCRBY', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[5], ARGV[2], 'reserved:' .. ARGV[3])
return {'reserved', ARGV[3]}
"""

_COMMIT = _COMMON + r"""
if not prev then return {'unknown', '0'} end
local state, amount = string.match(prev, '^(%a+):(%d+)$')
if state ~= 'reserved' then return {'replay', prev} end
redis.call('DECRBY', KEYS[2], amount)
redis.call('INCRBY', KEYS[3], ARGV[3])
redis.call('HSET', KEYS[5], ARGV[2], 'committed:' .. ARGV[3])
if tonumber(ARGV[3]) > tonumber(amount) then
  local used = num(KEYS[2]) + num(KEYS[3])
  maybe_draw(used)
  if used > effective() then
    emit(true, {event='token_overrun', larry=ARGV[1], used=used, limit=effective()})
  end
end
return {'committed', ARGV[3]}
"""

_RECORD = _COMMON + r"""
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

_REFUND = _COMMON + r"""
if not prev then
  -- a refund overtaking its reserve: the tombstone makes the late reserve a no-op
  redis.call('HSET', KEYS[5], ARGV[2], 'refunded:0')
  return {'refunded', '0'}
end
local state, amount = string.match(prev, '^(%a+):(%d+)$')
if state ~= 'reserved' then return {'replay', prev} end
redis.call('DECRBY', KEYS[2], amount)
redis.call('HSET', KEYS[5], ARGV[2], 'refunded:' .. amount)
return {'refunded', amount}
"""


@dataclass(frozen=True)
class LedgerOp:
    """``status``: reserved | committed | refunded | insufficient (``amount`` = what is
    still available) | unknown (commit without reserve) | no_limit. A replayed op_id
    returns its recorded status and amount with ``replay=True``."""

    status: str
    amount: int
    replay: bool = False
    # overrun: booked but past the limit (``amount`` = the negative headroom left)

    @property
    def ok(self) -> bool:
        return self.status in ("reserved", "committed", "refunded")


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
        self._reserve, self._commit, self._refund, self._record = (
            r.register_script(lua_script(ks, body)) for body in (_RESERVE, _COMMIT, _REFUND, _RECORD))

    def _key(self, field: str) -> str:
        return self.ks.tokens(self.larry, field)

    def set_limit(self, limit: int, *, overwrite: bool = False) -> int:
        """Coordinator: this Larry's budget (kept across coordinator restarts unless ``overwrite``)."""
        self.r.set(self._key("limit"), int(limit), nx=not overwrite)
        return int(self.r.get(self._key("limit")))

    def _run(self, script, op_id: str, amount: int) -> LedgerOp:
        if amount < 0:
            raise ValueError("token amounts are non-negative")
        keys = [self._key(f) for f in ("limit", "reserved", "committed", "emergency", "ops")] + [self.ks.token_pool]
        args = [self.larry, op_id, int(amount), self.threshold_permille, self.draw]
        status, detail = run_script(self.r, script, keys, args, self.durability)
        if status == "replay":
            state, _, recorded = detail.partition(":")
            return LedgerOp(state, int(recorded), replay=True)
        return LedgerOp(status, int(detail))

    def reserve(self, op_id: str, tokens: int) -> LedgerOp:
        return self._run(self._reserve, op_id, tokens)

    def commit(self, op_id: str, actual: int) -> LedgerOp:
        return self._run(self._commit, op_id, actual)

    def refund(self, op_id: str) -> LedgerOp:
        return self._run(self._refund, op_id, 0)

    def record(self, op_id: str, spent: int) -> LedgerOp:
        """Book tokens already spent: ``committed``, or ``overrun`` once past the limit."""
        return self._run(self._record, op_id, spent)

    def snapshot(self) -> dict:
        fields = ("limit", "reserved", "committed", "emergency")
        values = self.r.mget([self._key(f) for f in fields] + [self.ks.token_pool])
        snap = {f: int(v or 0) for f, v in zip(fields + ("pool",), values)}
        snap["available"] = snap["limit"] + snap["emergency"] - snap["reserved"] - snap["committed"]
        return snap
