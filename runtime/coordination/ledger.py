"""Token ledger over the plan's account tree (:func:`plan.model.budget_accounts`): system,
meta-coordinator (orchestration, worker pool, emergency reserve), Larry, master personal,
master pool, worker. Each account is one hash ``tokens:acct:{name}`` (limit, reserved,
committed, forced, granted, released; a lender's ``returned`` and ``lent``); ``tokens:ops``
records every operation by op id, ``tokens:open`` the reservations not yet committed or
refunded, ``tokens:draws`` every movement of tokens between accounts.

Every operation is one Lua script that books on the named account and on each of its
ancestors up to ``system``:

* ``reserve(op, account, n)``: on every account of the path, or on none; refused when any
  would pass limit + granted. Reservations never take any account past its limit.
* ``commit(op, reservation, account, actual)``: closes the reservation and books ``actual``
  (what was spent; above the reservation the excess is counted in ``forced``).
* ``refund(op, reservation, account)``: closes the reservation, booking nothing.
* ``grant(op, account, n)``: raises the limit (``granted``) of every account of the path,
  the system's included, by what a human approved (:mod:`runtime.coordination.escalations`).
* ``release(op, pool)``: a finished pool (seed 004: "dynamic token reallocation between
  masters") hands its unused tokens (``released``) back to its parent (``returned``), which
  lends them to its other pools as the reserve does. Tokens held by open reservations stay
  with the pool; what they do not spend is returned by a later release.
* ``record(op, account, n)``: books tokens already spent (the truth, always booked, counted
  in ``forced``); ``overrun`` when an account of the path is past limit + granted, so the
  caller stops the spender, with one ``token_overrun`` alert per account as use crosses it.

Spent tokens (``record``, ``commit``) are mirrored in the same script, so the mirrors are the
ledger's figures: seed 001's ``tokens:{larry}:used`` (the Larry account's committed), seed
004's ``tokens_used`` of ``{ns}:masters:{name}`` (its personal account and pool's together)
and of ``{ns}:workers:{id}`` (what that worker spent, on whichever account: in ``queue``
assignment a worker runs tasks charged to another's), and the ``{ns}:metrics:tokens_used``
series (all spending; the meta-coordinator's too).

Guarantees (whatever the concurrency, since each script is atomic):

* Idempotent by op id at every level: one op id is booked once on all its accounts; a replay
  answers the recorded outcome with ``replay=True`` and writes nothing. A reservation is
  closed once, whatever op id tries again.
* Validate, then write: the amounts, the script's arguments, every account's stored figures
  and the reservation named are checked before the first write, so a refused call leaves
  nothing half-written.
* ``reserved + committed - forced <= limit + granted - released`` on every account at all times, and the
  figures of each account are the sums of the operations recorded in ``tokens:ops`` whose
  path holds it.
* When a booking takes a pool (a Larry, a master pool, the meta-coordinator's pool) to
  ``threshold`` (90 %) of its limit, a slice (``reserve_slice`` tokens, seed 003: 10k of
  25k) is lent in the same script to that pool and every account above it below the lender
  (``granted``): the nearest ancestor holding tokens its finished pools returned (a
  ``token_reallocated`` alert), else the emergency reserve (``token_reserve_deployed``).
  Each movement is recorded in ``tokens:draws`` (who, priority, account, source, why, how
  much). By priority (seed 004): a spender may not draw the share kept back for the
  priorities above its own (:data:`plan.model.RESERVE_KEPT_BACK`: low 75 %, medium 50 %,
  high 25 %, critical nothing), so the last of a lender's tokens go to the highest
  priority; a lender's ``lent`` never passes what it holds.

Not guaranteed: that ``committed`` stays within the limit (spent is spent: the worker stops
the payload when told ``overrun``); reservations of a killed client stay open until refunded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping

import redis

from plan.model import (
    DEFAULT_PRIORITY,
    MAX_TOKENS,
    POOL_KINDS,
    PRIORITIES,
    RESERVE_KEPT_BACK,
    Account,
    StackConfig,
    account_path,
    budget_accounts,
    larry_of_account,
    master_of_account,
    meta_account,
)
from runtime.coordination.connection import Durability, require_text, run_script
from runtime.coordination.events import lua_script
from runtime.coordination.keys import Keyspace

FIELDS = ("limit", "reserved", "committed", "forced", "granted", "lent", "released", "returned")

_LEDGER = r"""
-- KEYS[1] ops hash, [2] open reservations hash, [3] the reserve account, [4] the draws list,
-- [5..] the path's accounts, leaf first, system last.
-- ARGV[1] kind, [2] op id, [3] amount, [4] reservation op id (commit, refund) or '',
-- [5] threshold (per mille), [6] slice size, [7] largest amount, [8] spender,
-- [9] per path account '1' if it is a pool that may borrow from the reserve else '0',
-- [10] the spender's priority, [11] the share of a lender's tokens kept back from it (per
-- mille), [12] the reserve's account name, [13..] the path's account names (as KEYS[5..]),
-- [13 + n] where spent tokens are mirrored (JSON: hashes whose tokens_used, counters and metric
-- series that grow by them; seed 004's schema and seed 001's tokens:{larry}:used).
-- Everything is read and checked before the first write: Lua does not roll back.
local MAX = tonumber(ARGV[7])
local function whole(text, what)
  if type(text) ~= 'string' or not string.match(text, '^%d+$') or #text > 16 or tonumber(text) > MAX then
    return nil, what .. ' is not a whole number of tokens from 0 to ' .. ARGV[7] .. ': ' .. tostring(text)
  end
  return tonumber(text)
end
local FIELDS = {'limit', 'reserved', 'committed', 'forced', 'granted', 'lent', 'released', 'returned'}
local function account(key)
  local raw = redis.call('HMGET', key, unpack(FIELDS))
  local a = {}
  for i, f in ipairs(FIELDS) do
    local n = tonumber(raw[i] or '0')
    if not n or n ~= math.floor(n) or n < 0 or n > MAX * 1000 then
      return nil, key .. ' ' .. f .. ' holds ' .. tostring(raw[i]) .. ', expected a whole number'
    end
    a[f] = n
  end
  a.defined = raw[1] ~= false
  return a
end
local kind, op, ref, who = ARGV[1], ARGV[2], ARGV[4], ARGV[8]
local KNOWN = {reserve=true, commit=true, refund=true, record=true, grant=true, release=true}
if not KNOWN[kind] then
  return {'invalid', 'unknown operation ' .. tostring(kind)}
end
if op == '' then return {'invalid', 'an empty op id'} end
local n = #KEYS - 4
if n < 1 or #ARGV ~= 13 + n or #ARGV[9] ~= n then return {'invalid', 'the path does not match its names'} end
local read, mirrors = pcall(cjson.decode, ARGV[13 + n])
if not read or type(mirrors) ~= 'table' then return {'invalid', 'the mirrors are not a JSON object'} end
for _, part in ipairs({'hashes', 'counters', 'series'}) do
  if type(mirrors[part]) ~= 'table' then return {'invalid', 'the mirrors have no list ' .. part} end
end
local amount, bad = whole(ARGV[3], 'the amount')
if not amount then return {'invalid', bad} end
local threshold, draw
threshold, bad = whole(ARGV[5], 'the threshold')
if not threshold or threshold > 1000 then return {'invalid', bad or 'the threshold is over 1000 per mille'} end
draw, bad = whole(ARGV[6], 'the slice size')
if not draw then return {'invalid', bad} end
local kept
kept, bad = whole(ARGV[11], 'the share kept back')
if not kept or kept > 1000 then return {'invalid', bad or 'the share kept back is over 1000 per mille'} end
local acc, names = {}, {}
for i = 1, n do
  acc[i], bad = account(KEYS[4 + i])
  if not acc[i] then return {'invalid', bad} end
  names[i] = ARGV[12 + i]
end
local reserve
reserve, bad = account(KEYS[3])
if not reserve then return {'invalid', bad} end
local prev = redis.call('HGET', KEYS[1], op)
if prev then return {'replay', prev} end
for i = 1, n do
  if not acc[i].defined then return {'no_limit', names[i]} end
end
local path = table.concat(names, ',')
local held = 0
if kind == 'commit' or kind == 'refund' then
  local open = redis.call('HGET', KEYS[2], ref)
  if not open then return {'closed', ref} end
  local sep = string.find(open, '|', 1, true)
  if not sep or string.sub(open, sep + 1) ~= path then
    return {'invalid', 'reservation ' .. ref .. ' was made on another account'}
  end
  held = tonumber(string.sub(open, 1, sep - 1))
  if kind == 'refund' then amount = 0 end
end
-- Tokens in use on each account after this operation, and what each may hold.
local add = amount
if kind == 'commit' or kind == 'refund' then add = amount - held end
local function used(a) return a.reserved + a.committed end
local function cap(a) return a.limit + a.granted - a.released end
-- What a lender holding ``holds`` tokens, ``lent`` of them out, may still lend this priority.
local function lendable(holds, lent) return holds - lent - math.ceil(holds * kept / 1000) end
local record = {kind = kind, amount = amount, path = names, who = who}
if kind == 'release' then
  -- A finished pool hands what it did not use back to its parent, which lends it again.
  local a = acc[1]
  if n < 2 or string.sub(ARGV[9], 1, 1) ~= '1' then return {'invalid', names[1] .. ' is not a pool'} end
  local unused = math.max(cap(a) - used(a), 0)
  redis.call('HINCRBY', KEYS[5], 'released', unused)
  redis.call('HINCRBY', KEYS[6], 'returned', unused)
  record.status, record.amount = 'released', unused
  redis.call('HSET', KEYS[1], op, cjson.encode(record))
  local move = {op=op, kind='release', ['from']=who, account=names[1], source=names[1], to=names[2],
                amount=unused, why=names[1] .. ' finished with ' .. used(a) .. ' of ' .. cap(a) .. ' tokens used',
                used=used(a), limit=cap(a) - unused, pool_left=acc[2].returned + unused - acc[2].lent, at=now()}
  redis.call('RPUSH', KEYS[4], cjson.encode(move))
  move.event, move.larry, move.at = 'token_pool_released', names[n - 1], nil
  emit(true, move)
  return {'released', cjson.encode(record)}
end
-- A slice is lent to the lowest pool this operation takes to the threshold, and to every
-- account above it below the lender, so the lent tokens can be spent all the way up. The
-- nearest lender first: an ancestor holding what its finished pools returned, else the
-- emergency reserve (whose tokens the system holds already). A priority may not draw the
-- share kept back for the priorities above it.
local take, from, lender = 0, nil, nil
for i = 1, (kind == 'refund' or kind == 'grant') and 0 or n do
  local a = acc[i]
  if string.sub(ARGV[9], i, i) == '1' and (used(a) + add) * 1000 >= cap(a) * threshold then
    -- A released pool has finished: nothing is lent to it again.
    if a.released > 0 then break end
    for j = i + 1, n - 1 do
      local left = lendable(acc[j].returned, acc[j].lent)
      if left > 0 then take, lender = math.min(draw, left), j break end
    end
    if not lender then
      take, lender = math.min(draw, math.max(lendable(reserve.limit, reserve.lent), 0)), n
    end
    if take > 0 then from = i end
    break
  end
end
local function granted(i)
  if from and i >= from and i < lender then return take end
  return 0
end
if kind == 'reserve' then
  for i = 1, n do
    local a = acc[i]
    if used(a) + amount > cap(a) + granted(i) then
      record.status = 'refused'
      record.account = names[i]
      redis.call('HSET', KEYS[1], op, cjson.encode(record))
      return {'refused', cjson.encode(record)}
    end
  end
end
if take > 0 and from then
  local source, left, event = ARGV[12], reserve.limit - reserve.lent - take, 'token_reserve_deployed'
  if lender < n then
    redis.call('HINCRBY', KEYS[4 + lender], 'lent', take)
    source, left, event = names[lender], acc[lender].returned - acc[lender].lent - take, 'token_reallocated'
  else
    redis.call('HINCRBY', KEYS[3], 'lent', take)
  end
  for i = from, n do
    if granted(i) > 0 then redis.call('HINCRBY', KEYS[4 + i], 'granted', take) end
  end
  record.drawn, record.drawn_for, record.drawn_from = take, names[from], source
  local a = acc[from]
  local draw_record = {op=op, kind='draw', ['from']=who, priority=ARGV[10], account=names[from], source=source,
                       amount=take, why=names[from] .. ' at ' .. (used(a) + add) .. ' of ' .. cap(a) .. ' tokens',
                       used=used(a) + add, limit=cap(a) + take, pool_left=left, at=now()}
  redis.call('RPUSH', KEYS[4], cjson.encode(draw_record))
  draw_record.event, draw_record.larry, draw_record.at = event, names[n - 1], nil
  emit(true, draw_record)
end
if kind == 'grant' then
  for i = 1, n do redis.call('HINCRBY', KEYS[4 + i], 'granted', amount) end
  record.status = 'granted'
  redis.call('HSET', KEYS[1], op, cjson.encode(record))
  return {'granted', cjson.encode(record)}
end
local over, status = nil, 'committed'
if kind == 'reserve' then status = 'reserved' elseif kind == 'refund' then status = 'refunded' end
for i = 1, n do
  local a, key = acc[i], KEYS[4 + i]
  if kind == 'reserve' then
    redis.call('HINCRBY', key, 'reserved', amount)
  else
    if held > 0 then redis.call('HINCRBY', key, 'reserved', -held) end
    if amount > 0 then redis.call('HINCRBY', key, 'committed', amount) end
    local forced = amount
    if kind == 'commit' then forced = math.max(0, amount - held) end
    if forced > 0 then redis.call('HINCRBY', key, 'forced', forced) end
    local effective = cap(a) + granted(i)
    local after = used(a) + add
    if after > effective then
      if not over then over = {names[i], effective - after} end
      -- One alert when use crosses the limit, not one per report past it.
      if used(a) <= effective then
        emit(true, {event='token_overrun', larry=names[n - 1], account=names[i], ['from']=who,
                    used=after, limit=effective})
      end
    end
  end
end
if amount > 0 and (kind == 'record' or kind == 'commit') then
  for _, key in ipairs(mirrors.hashes) do redis.call('HINCRBY', key, 'tokens_used', amount) end
  for _, key in ipairs(mirrors.counters) do redis.call('INCRBY', key, amount) end
  for _, key in ipairs(mirrors.series) do series(key, amount) end
end
if kind == 'reserve' then
  redis.call('HSET', KEYS[2], op, amount .. '|' .. path)
elseif kind ~= 'record' then
  redis.call('HDEL', KEYS[2], ref)
  record.ref, record.held = ref, held
end
if over then status, record.account, record.headroom = 'overrun', over[1], over[2] end
record.status = status
redis.call('HSET', KEYS[1], op, cjson.encode(record))
return {status, cjson.encode(record)}
"""


@dataclass(frozen=True)
class LedgerOp:
    """``status``: reserved | refused (nothing booked; ``account`` the one without room) |
    committed | refunded | overrun (booked, but ``account`` is past its limit: ``headroom`` is
    negative) | no_limit (nothing booked: ``account`` has no limit in Redis yet) | closed
    (the reservation was already committed or refunded). A replayed op id returns its
    recorded outcome with ``replay=True``."""

    status: str  # also granted | released
    amount: int = 0
    account: str | None = None
    headroom: int | None = None
    drawn: int = 0
    replay: bool = False

    @property
    def ok(self) -> bool:
        return self.status in ("reserved", "committed", "refunded", "granted", "released")

    @classmethod
    def parse(cls, status: str, detail: str, replay: bool = False) -> "LedgerOp":
        if status in ("no_limit", "closed"):
            return cls(status, account=detail if status == "no_limit" else None)
        d = json.loads(detail)
        return cls(d["status"], int(d["amount"]), d.get("account"), d.get("headroom"), int(d.get("drawn", 0)), replay)


class Ledger:
    """The ledger of one plan's accounts (``budget_accounts(cfg)``)."""

    def __init__(self, r: redis.Redis, ks: Keyspace, accounts: Mapping[str, Account], *, threshold: float = 0.9,
                 reserve_slice: int = 10_000, durability: Durability = Durability()):
        require_text(r)
        self.r, self.ks, self.accounts, self.durability = r, ks, accounts, durability
        self.threshold_permille, self.slice = int(round(threshold * 1000)), int(reserve_slice)
        self._script = r.register_script(lua_script(ks, _LEDGER))

    @classmethod
    def for_plan(cls, r: redis.Redis, ks: Keyspace, cfg: StackConfig, durability: Durability = Durability()) -> "Ledger":
        """The ledger of ``cfg``'s accounts, lending its reserve in slices at ``reserveTrigger``."""
        return cls(r, ks, budget_accounts(cfg), threshold=cfg.budget.reserve_trigger,
                   reserve_slice=cfg.budget.reserve_slice, durability=durability)

    def open(self, names=None, *, overwrite: bool = False) -> None:
        """Coordinator: set the limits of ``names`` (default every account) from the plan; an
        existing limit is kept across coordinator restarts unless ``overwrite``."""
        pipe = self.r.pipeline(transaction=True)
        for name in names if names is not None else self.accounts:
            key = self.ks.token_account(name)
            if overwrite:
                pipe.hset(key, "limit", int(self.accounts[name].limit))
            else:
                pipe.hsetnx(key, "limit", int(self.accounts[name].limit))
        pipe.execute()

    def path(self, account: str) -> tuple[Account, ...]:
        return account_path(self.accounts, account)

    def _mirrors(self, path: tuple[Account, ...], worker: str | None) -> str:
        """Where tokens booked on ``path`` are mirrored: the spending worker's and its masters'
        ``tokens_used`` (seed 004), ``tokens:{larry}:used`` (seed 001), the
        ``tokens_used`` series."""
        ks = self.ks
        hashes = [ks.schema_worker(worker)] if worker else []
        hashes += [ks.schema_master(master) for a in path if (master := master_of_account(a))]
        counters = [ks.tokens_used(a.name) for a in path if a.kind == "larry"]
        return json.dumps({"hashes": hashes, "counters": counters, "series": [ks.schema_series("tokens_used")]})

    def _run(self, kind: str, op_id: str, account: str, amount: int, ref: str, who: str, priority: str,
             worker: str | None = None) -> LedgerOp:
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= MAX_TOKENS:
            raise ValueError(f"token amounts are whole numbers from 0 to {MAX_TOKENS:,}, got {amount!r}")
        if priority not in RESERVE_KEPT_BACK:
            raise ValueError(f"priority {priority!r} is not one of {', '.join(PRIORITIES)}")
        path = self.path(account)
        keys = [self.ks.token_ops, self.ks.token_open, self.ks.token_account(meta_account("reserve")),
                self.ks.token_draws] + [self.ks.token_account(a.name) for a in path]
        flags = "".join("1" if a.kind in POOL_KINDS else "0" for a in path)
        args = [kind, op_id, amount, ref, self.threshold_permille, self.slice, MAX_TOKENS, who or account, flags,
                priority, round(RESERVE_KEPT_BACK[priority] * 1000), meta_account("reserve")] + [a.name for a in path] \
            + [self._mirrors(path, worker)]
        status, detail = run_script(self.r, self._script, keys, args, self.durability)
        if status == "invalid":
            raise ValueError(f"ledger account {account}: {detail}")
        if status == "replay":
            return LedgerOp.parse("", detail, replay=True)
        return LedgerOp.parse(status, detail)

    # ``who`` (default: the account) and ``priority`` say who spends and how urgently: the
    # reserve lends a priority only what is not kept back for those above it.
    def reserve(self, op_id: str, account: str, amount: int, *, who: str = "",
                priority: str = DEFAULT_PRIORITY) -> LedgerOp:
        return self._run("reserve", op_id, account, amount, "", who, priority)

    def commit(self, op_id: str, reservation: str, account: str, actual: int, *, who: str = "",
               priority: str = DEFAULT_PRIORITY) -> LedgerOp:
        return self._run("commit", op_id, account, actual, reservation, who, priority)

    def refund(self, op_id: str, reservation: str, account: str, *, who: str = "") -> LedgerOp:
        return self._run("refund", op_id, account, 0, reservation, who, DEFAULT_PRIORITY)

    def record(self, op_id: str, account: str, spent: int, *, who: str = "",
               priority: str = DEFAULT_PRIORITY, worker: str | None = None) -> LedgerOp:
        """Book tokens already spent: ``committed``, or ``overrun`` once an account of the path
        is past its limit; ``worker``: the worker that spent them (its seed 004 hash counts
        them, whichever account they are booked on). ValueError, with nothing written, for an
        amount that is not a whole number from 0 to :data:`plan.model.MAX_TOKENS` or an account
        holding something else than numbers."""
        return self._run("record", op_id, account, spent, "", who, priority, worker)

    def grant(self, op_id: str, account: str, tokens: int, *, who: str) -> LedgerOp:
        """Raise the limit of ``account`` and of every account above it, the system included,
        by ``tokens`` (``granted``): what a human approved beyond the plan's budgets."""
        return self._run("grant", op_id, account, tokens, "", who, DEFAULT_PRIORITY)

    def release(self, op_id: str, pool: str, *, who: str) -> LedgerOp:
        """Hand what ``pool`` (a finished master's pool) did not use back to its parent, to be
        lent again; ``amount`` is what was handed back. What open reservations hold stays with
        the pool: release again, under a new op id, once they are closed."""
        if self.accounts[pool].kind != "pool":
            raise ValueError(f"ledger account {pool}: only a master's pool is released, not a {self.accounts[pool].kind}")
        return self._run("release", op_id, pool, 0, "", who, DEFAULT_PRIORITY)

    def draws(self) -> list[dict]:
        """Every movement, in order: ``kind`` draw (op, from (who), priority, account,
        source (the reserve or the Larry lending what its pools returned), amount, why, used
        and limit of the account, pool_left (what the source has left), at) or release (op,
        from, account, to, amount, why, at)."""
        return [json.loads(raw) for raw in self.r.lrange(self.ks.token_draws, 0, -1)]

    def figures(self, account: str) -> dict[str, int]:
        return figures(self.r, self.ks, account)

    def snapshot(self, account: str) -> dict:
        return snapshot(self.r, self.ks, account)

    def accounts_of(self, larry: str) -> list[dict]:
        """Every account of ``larry``'s budget (its own, its masters' personal and pools, its
        workers'), in plan order: name, kind and stored figures (:data:`FIELDS`)."""
        names = [n for n in self.accounts if larry_of_account(self.accounts, n) == larry]
        pipe = self.r.pipeline(transaction=True)
        for name in names:
            pipe.hmget(self.ks.token_account(name), FIELDS)
        return [{"account": name, "kind": self.accounts[name].kind, **_figures(raw)}
                for name, raw in zip(names, pipe.execute())]

    def tightest(self, account: str) -> tuple[str, int]:
        """The account of ``account``'s path with the least room, and that room: what a charge
        on ``account`` can still take."""
        rooms = [(a.name, self.snapshot(a.name)["available"]) for a in self.path(account)]
        return min(rooms, key=lambda room: room[1])


def _figures(raw: list) -> dict[str, int]:
    """An account's HMGET of :data:`FIELDS` as numbers, 0 where unset."""
    return {f: int(v or 0) for f, v in zip(FIELDS, raw)}


def figures(r: redis.Redis, ks: Keyspace, account: str) -> dict[str, int]:
    """One account's stored figures (:data:`FIELDS`, 0 where unset)."""
    return _figures(r.hmget(ks.token_account(account), FIELDS))


def snapshot(r: redis.Redis, ks: Keyspace, account: str) -> dict:
    """One account as reports show it: limit, reserved, committed, ``emergency`` (what was lent
    or granted to it), ``released`` (what it handed back when finished), ``available`` (what
    it can still take) and ``pool`` (what the reserve has left to lend)."""
    f, reserve = figures(r, ks, account), figures(r, ks, meta_account("reserve"))
    return {"limit": f["limit"], "reserved": f["reserved"], "committed": f["committed"], "emergency": f["granted"],
            "released": f["released"],
            "available": f["limit"] + f["granted"] - f["released"] - f["reserved"] - f["committed"],
            "pool": reserve["limit"] - reserve["lent"]}
