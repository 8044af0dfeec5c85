"""Token ledger per Larry (seed risk 4): ``tokens:{larry}:limit|reserved|committed|emergency|ops``.

A worker books the tokens its payload reports as spent with :meth:`Ledger.record`: one Lua
script keyed by the caller's ``op_id``, recorded in the ``ops`` hash, so a command retried
after a lost reply never charges twice: a replay returns the recorded outcome with
``replay=True``.

Guarantees (whatever the concurrency, since each script is atomic):

* Spent is spent: a record is always booked; going past limit + emergency answers
  ``overrun`` so the caller stops the spender, with one ``token_overrun`` alert when use
  crosses the limit (not one per record past it).
* Validate, then write: the amount (a whole number up to :data:`plan.model.MAX_TOKENS`),
  the script's other arguments and every ledger key are checked before the first write, so
  a refused record leaves nothing half-written (no reserve moved without its booking).
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

from plan.model import MAX_TOKENS
from runtime.coordination.connection import Durability, require_text, run_script
from runtime.coordination.events import lua_script
from runtime.coordination.keys import Keyspace

_RECORD = r"""
-- KEYS[1] limit, [2] reserved, [3] committed, [4] emergency, [5] ops, [6] pool
-- ARGV[1] larry, [2] op id, [3] amount, [4] threshold (per mille), [5] draw size, [6] largest amount
-- Everything is read and checked before the first write: Lua does not roll back, so a script
-- that stopped half-way (an overflow, a key holding garbage) would leave the reserve moved.
local MAX = tonumber(ARGV[6])
local function whole(text, what)
  if type(text) ~= 'string' or not string.match(text, '^%d+$') or #text > 16 or tonumber(text) > MAX then
    return nil, what .. ' is not a whole number of tokens from 0 to ' .. ARGV[6] .. ': ' .. tostring(text)
  end
  return tonumber(text)
end
local function stored(key)
  local value = redis.call('GET', key)
  if not value then return 0 end
  local n = tonumber(value)
  if not n or n ~= math.floor(n) or n < -MAX * 1000 or n > MAX * 1000 then
    return nil, key .. ' holds ' .. value .. ', expected a whole number'
  end
  return n
end
if not redis.call('GET', KEYS[1]) then return {'no_limit', '0'} end
local amount, bad = whole(ARGV[3], 'the amount')
if not amount then return {'invalid', bad} end
local threshold, draw
threshold, bad = whole(ARGV[4], 'the threshold')
if not threshold or threshold > 1000 then return {'invalid', bad or 'the threshold is over 1000 per mille'} end
draw, bad = whole(ARGV[5], 'the draw size')
if not draw then return {'invalid', bad} end
local v = {}
for i, key in ipairs({KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6]}) do
  v[i], bad = stored(key)
  if not v[i] then return {'invalid', bad} end
end
local limit, reserved, committed, emergency, pool = v[1], v[2], v[3], v[4], v[5]
local prev = redis.call('HGET', KEYS[5], ARGV[2])
if prev then return {'replay', prev} end
local before = reserved + committed
local used = before + amount
if used * 1000 >= (limit + emergency) * threshold then
  local take = math.min(draw, math.max(pool, 0))
  if take > 0 then
    redis.call('DECRBY', KEYS[6], take)
    redis.call('INCRBY', KEYS[4], take)
    emergency, pool = emergency + take, pool - take
    emit(true, {event='token_reserve_deployed', larry=ARGV[1], amount=take, used=used,
                limit=limit + emergency, pool_left=pool})
  end
end
redis.call('INCRBY', KEYS[3], amount)
redis.call('HSET', KEYS[5], ARGV[2], 'committed:' .. ARGV[3])
local effective = limit + emergency
if used > effective then
  -- One alert when use crosses the limit, not one per report past it: a payload flooding
  -- reports must not flood the stream.
  if before <= effective then
    emit(true, {event='token_overrun', larry=ARGV[1], used=used, limit=effective})
  end
  return {'overrun', string.format('%d', effective - used)}
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
        """Book tokens already spent: ``committed``, or ``overrun`` once past the limit.

        ValueError, with nothing written, for an amount that is not a whole number from 0 to
        :data:`plan.model.MAX_TOKENS`, or when a ledger key in Redis holds something else than
        a number (the script checks every argument and key before its first write)."""
        if isinstance(spent, bool) or not isinstance(spent, int) or not 0 <= spent <= MAX_TOKENS:
            raise ValueError(f"token amounts are whole numbers from 0 to {MAX_TOKENS:,}, got {spent!r}")
        keys = [self._key(f) for f in ("limit", "reserved", "committed", "emergency", "ops")] + [self.ks.token_pool]
        args = [self.larry, op_id, spent, self.threshold_permille, self.draw, MAX_TOKENS]
        status, detail = run_script(self.r, self._record, keys, args, self.durability)
        if status == "invalid":
            raise ValueError(f"ledger of {self.larry}: {detail}")
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
