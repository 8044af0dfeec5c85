"""Fenced task leases (seed ``task:lock:{id}``, fixing its GET-then-DEL release and missing fencing).

A lease is ``task:lock:{id} = owner`` with a TTL, plus a fencing token: an
integer that grows with every grant of that task, kept in ``task:fence:{id}``
(the highest token issued). Results are written with the token and the write is
rejected when a higher token has been issued since, so a holder that was paused,
partitioned or simply slow can never overwrite the work of the next holder.

Guarantees:

* Every operation is one function of a Redis Functions library loaded once per server
  (:class:`runtime.coordination.events.FunctionLibrary`), which checks its arguments
  before its first write and refuses bad ones with an error naming what was expected.
* Acquire: terminal status, current holder and every ``dependsOn`` task's status are
  checked, and on success the lock (SET PX), the token, ``task:status = in_progress``
  and a ``task_claimed`` event are written together. A busy task publishes the seed's
  ``task_conflict`` alert. Lease transitions are on the event stream only, alerts are
  also published (see :mod:`runtime.coordination.events`).
* Claim (``queue`` assignment) takes the first task of a master's queue, in the task queue's
  order (priority, then plan order), that acquire would grant, with acquire's writes, in one
  call: workers racing on a queue never get the same task under the same fence, and a task
  held by a worker that died is claimable again once its lease has expired. Finishing a task
  for good removes it from the queue in the same call. Its cost grows with the queue's length
  (every queued task's entry is read): fine for plans of hundreds of tasks, not millions.
* Release/extend are owner- and token-checked in Lua and report
  ``released``/``extended``, ``expired`` (key gone) or ``stolen`` (someone
  else's lease, or a newer one of ours) instead of raising.
* Tokens stay monotonic across a Sentinel failover that rolls back writes:
  token = max(highest token of this task + 1, primary's clock in microseconds).
  Tokens that reached the replica are covered by the counter; tokens lost with
  the old primary are smaller than the new primary's clock as long as clock
  skew between Redis hosts is below the time from the lost grant to the next
  grant (at least the failover time for a crashed primary). With
  ``Durability(replicas=1)`` no lost token is ever used: acquire returns only
  once a replica holds the grant, so this clock assumption is defence in depth.
* :meth:`LeaseManager.take_over` frees a lease of a dead predecessor of the same worker
  (``task_takeover``); the next grant then carries a higher token, so the predecessor's
  writes, should it be alive after all, are fenced off.
* Fenced writes (:meth:`LeaseManager.complete`/:meth:`~LeaseManager.fail`)
  succeed iff no higher token has been issued for the task and it is not
  finished. A write whose lease merely expired, with no newer grant, is still
  accepted: nobody else worked on the task. Replaying an accepted write reports
  ``duplicate`` and changes nothing.
* :class:`LeaseKeeper` renews at ttl/3 and calls ``on_lost`` once, *before* the
  lease can have expired on the server: local validity is measured from the
  moment the grant/extension was *sent* (minus a drift allowance, as Redlock
  does), and the callback fires ``margin`` earlier. The watchdog is a separate
  thread, so a renewal stuck in retries cannot delay it.

Not guaranteed: mutual exclusion of the *work* itself. A holder stopped for
longer than its TTL (GC, SIGSTOP) resumes believing nothing happened until its
keeper fires; only its writes are fenced. Side effects outside Redis need their
own check of the token (pass ``lease.token`` along).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping

import redis

from plan.statuses import TaskStatus
from runtime.coordination.connection import Durability, require_text
from runtime.coordination.events import FunctionLibrary
from runtime.coordination.keys import Keyspace

log = logging.getLogger(__name__)

# The lease functions build their keys from the task id (Keyspace.lua() prefixes): fewer
# arguments per call, and dependency keys must be built in Lua anyway. Each reads what it needs
# in one MGET and checks every argument before its first write (Lua does not roll back); a
# refused argument is an error reply naming what was expected.
_COMMON = r"""
local function refuse(what, value)
  return redis.error_reply('ERR lease: ' .. what .. ', got ' .. string.format('%q', tostring(value)))
end
-- An error reply for a missing owner or task, or a ``number`` that is not a whole number above 0
-- of at most 16 digits (a TTL in ms, a fencing token); nil when all is well.
local function invalid(owner, task, number, what)
  if owner == '' then return refuse('an owner is required', owner) end
  if task == '' then return refuse('a task id is required', task) end
  if number and not (#number <= 16 and string.find(number, '^[1-9]%d*$')) then
    return refuse(what .. ' must be a whole number above 0', number)
  end
end
-- {'blocked', dep...} naming the dependencies of ``task`` not completed; nil if there are none.
local function blockers(task)
  local deps = redis.call('SMEMBERS', DEPS_PREFIX .. task)
  local blocked = {'blocked'}
  for first = 1, #deps, 500 do  -- MGET in slices: unpack() of a huge table overflows Lua's stack
    local keys = {}
    for i = first, math.min(first + 499, #deps) do keys[#keys + 1] = STATUS_PREFIX .. deps[i] end
    for i, state in ipairs(redis.call('MGET', unpack(keys))) do
      if state ~= 'completed' then blocked[#blocked + 1] = deps[first + i - 1] end
    end
  end
  if #blocked > 1 then return blocked end
end
-- A completed task's findings on the seeds' keys: ``how`` is hash (HINCRBY per severity of a
-- table), count (INCRBY, a table's sum), float (INCRBYFLOAT) or series (a point of the sum).
-- Only whole numbers (floats for coverage) count: a worker's findings are checked
-- (runtime.agent.protocol), any other payload's are whatever its caller wrote.
local function count_findings(targets, found)
  if type(found) ~= 'table' then return end
  local function whole(n) return type(n) == 'number' and n == math.floor(n) and n >= 0 end
  for _, target in ipairs(targets) do
    local what, how, key = target[1], target[2], target[3]
    local value = found[what]
    if type(value) == 'table' then
      local sum = 0
      for name, n in pairs(value) do
        if whole(n) then
          sum = sum + n
          if how == 'hash' then redis.call('HINCRBY', key, name, n) end
        end
      end
      value = sum
    end
    if how ~= 'hash' and type(value) == 'number' and (how == 'float' or whole(value)) then
      if how == 'count' then redis.call('INCRBY', key, value)
      elseif how == 'float' then redis.call('INCRBYFLOAT', key, string.format('%.15g', value))
      else series(key, value) end
    end
  end
end
-- Grant ``task`` to ``owner``: the lock, a token above ``highest`` (the last one issued) and the
-- primary's clock, the status, the event (on the stream of ``home``, see record()); returns the token.
local function grant(owner, task, ttl, highest, home)
  -- counter for monotonicity on this primary, clock floor for monotonicity across a rollback
  local token = string.format('%d', math.max(tonumber(highest or '0') + 1, clock()))
  redis.call('SET', LOCK_PREFIX .. task, owner, 'PX', ttl)
  redis.call('MSET', FENCE_PREFIX .. task, token, STATUS_PREFIX .. task, 'in_progress')
  record({event='task_claimed', task_id=task, owner=owner}, token, home)
  return token
end
"""

_ACQUIRE = r"""
-- ARGV[1] owner, [2] task, [3] ttl ms, [4] '1' to alert on conflict
local owner, task, ttl = ARGV[1], ARGV[2], ARGV[3]
local bad = invalid(owner, task, ttl, 'the ttl (ms)')
if bad then return bad end
local lock = LOCK_PREFIX .. task
local state = redis.call('MGET', STATUS_PREFIX .. task, lock, FENCE_PREFIX .. task, HOME_PREFIX .. task)
local status, holder, highest = state[1], state[2], state[3]
if status == 'completed' or status == 'failed' then return {status} end
if holder == owner then
  -- a retried or re-asserted acquire of our own lease: same token, fresh TTL, no second event
  redis.call('PEXPIRE', lock, ttl)
  return {'held', highest}
end
if holder then
  if ARGV[4] == '1' then emit(true, {event='task_conflict', task_id=task, owner=holder}, nil, task_stream(state[4])) end
  return {'conflict', holder}
end
local blocked = blockers(task)
if blocked then return blocked end
return {'acquired', grant(owner, task, ttl, highest, state[4])}
"""

# The first claimable task of a queue, by score: not finished, not held, its dependencies
# completed. A task the owner holds already is re-asserted (same token, fresh TTL).
_CLAIM = r"""
-- ARGV[1] owner, [2] queue, [3] ttl ms
local owner, queue, ttl = ARGV[1], ARGV[2], ARGV[3]
if queue == '' then return refuse('a queue is required', queue) end
local bad = invalid(owner, queue, ttl, 'the ttl (ms)')
if bad then return bad end
local waiting, queued = {'waiting'}, false
for _, task in ipairs(redis.call('ZRANGE', QUEUE, 0, -1)) do
  local entry = redis.call('HGET', QUEUE_ENTRIES, task)
  if entry and cjson.decode(entry)['master'] == queue then
    local state = redis.call('MGET', STATUS_PREFIX .. task, LOCK_PREFIX .. task, FENCE_PREFIX .. task,
                             HOME_PREFIX .. task)
    if state[1] ~= 'completed' and state[1] ~= 'failed' then
      queued = true
      if state[2] == owner then
        redis.call('PEXPIRE', LOCK_PREFIX .. task, ttl)
        return {'held', task, state[3]}
      end
      if state[2] then
        waiting[#waiting + 1] = task
      else
        local blocked = blockers(task)
        if not blocked then return {'acquired', task, grant(owner, task, ttl, state[3], state[4])} end
        for i = 2, #blocked do waiting[#waiting + 1] = blocked[i] end
      end
    end
  end
end
if not queued then return {'drained'} end
return waiting
"""

_EXTEND = r"""
-- ARGV[1] owner, [2] task, [3] token, [4] ttl ms
local bad = invalid(ARGV[1], ARGV[2], ARGV[3], 'the token') or invalid(ARGV[1], ARGV[2], ARGV[4], 'the ttl (ms)')
if bad then return bad end
local lock = LOCK_PREFIX .. ARGV[2]
local state = redis.call('MGET', lock, FENCE_PREFIX .. ARGV[2])
if not state[1] then return 'expired' end
if state[1] ~= ARGV[1] or state[2] ~= ARGV[3] then return 'stolen' end
redis.call('PEXPIRE', lock, ARGV[4])
return 'extended'
"""

_RELEASE = r"""
-- ARGV[1] owner, [2] task, [3] token
local owner, task, token = ARGV[1], ARGV[2], ARGV[3]
local bad = invalid(owner, task, token, 'the token')
if bad then return bad end
local lock, status_key = LOCK_PREFIX .. task, STATUS_PREFIX .. task
local state = redis.call('MGET', lock, FENCE_PREFIX .. task, status_key, HOME_PREFIX .. task)
if not state[1] then return 'expired' end
if state[1] ~= owner or state[2] ~= token then return 'stolen' end
redis.call('DEL', lock)
if state[3] == 'in_progress' then redis.call('SET', status_key, 'pending') end
record({event='task_released', task_id=task, owner=owner}, token, state[4])
return 'released'
"""

_FINISH = r"""
-- ARGV[1] owner, [2] task, [3] token, [4] outcome (completed|failed|pending), [5] payload JSON,
-- [6] completed-tasks metric key, [7] where a completed task's findings are counted (JSON
-- [[finding, how, key], ...], see LeaseManager.findings_targets)
local owner, task, token, outcome = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local bad = invalid(owner, task, token, 'the token')
if bad then return bad end
local targets, payload = cjson.decode(ARGV[7]), cjson.decode(ARGV[5])
if outcome ~= 'completed' and outcome ~= 'failed' and outcome ~= 'pending' then
  return refuse('the outcome must be completed, failed or pending', outcome)
end
local lock, status_key, result = LOCK_PREFIX .. task, STATUS_PREFIX .. task, RESULT_PREFIX .. task
local written = redis.call('HMGET', result, 'token', 'outcome')
if written[1] == token and written[2] == outcome then return {'duplicate', outcome} end
local state = redis.call('MGET', status_key, FENCE_PREFIX .. task, lock, HOME_PREFIX .. task)
local status, highest = state[1], state[2]
if status == 'completed' or status == 'failed' then return {'finished', status} end
if not highest or tonumber(token) < tonumber(highest) then return {'stale', highest or ''} end
redis.call('HSET', result, 'token', token, 'owner', owner, 'outcome', outcome, 'data', ARGV[5], 'at', now())
redis.call('SET', status_key, outcome)
if outcome ~= 'pending' and redis.call('ZREM', QUEUE, task) == 1 then
  point(QUEUE_DEPTH, redis.call('ZCARD', QUEUE))
end
if state[3] == owner then redis.call('DEL', lock) end
if outcome == 'completed' then
  redis.call('INCR', ARGV[6])
  if type(payload) == 'table' then count_findings(targets, payload['findings']) end
  series(COMPLETED_SERIES, 1)
  return {'accepted', record({event='task_completed', task_id=task, owner=owner}, token, state[4])}
end
local failed = {event='task_failed', task_id=task, owner=owner, retry=(outcome == 'pending')}
if outcome == 'failed' then return {'accepted', emit(true, failed, token, task_stream(state[4]))} end
return {'accepted', record(failed, token, state[4])}
"""

# The caller vouches that a holder whose name starts with ARGV[3] is dead (one process per
# worker name: another holder of that name is a predecessor that was killed).
_TAKE_OVER = r"""
-- ARGV[1] new owner, [2] task, [3] owner prefix of the dead incarnations
local bad = invalid(ARGV[1], ARGV[2])
if bad then return bad end
if ARGV[3] == '' then return refuse("the predecessors' owner prefix is required", ARGV[3]) end
local lock = LOCK_PREFIX .. ARGV[2]
local state = redis.call('MGET', lock, HOME_PREFIX .. ARGV[2])
local holder = state[1]
if not holder or holder == ARGV[1] or string.sub(holder, 1, #ARGV[3]) ~= ARGV[3] then return 0 end
redis.call('DEL', lock)
record({event='task_takeover', task_id=ARGV[2], previous=holder, owner=ARGV[1]}, nil, state[2])
return 1
"""

_FUNCTIONS = {"acquire": _ACQUIRE, "claim": _CLAIM, "extend": _EXTEND, "release": _RELEASE,
              "finish": _FINISH, "take_over": _TAKE_OVER}

# Redlock's allowance for the server's clock running faster than ours.
_DRIFT_FACTOR, _DRIFT_MS = 0.01, 2


def _valid_until(sent_at: float, ttl_ms: int) -> float:
    return sent_at + (ttl_ms - ttl_ms * _DRIFT_FACTOR - _DRIFT_MS) / 1000


_lost_guard = threading.Lock()


class Lease:
    """A granted lease. ``token`` and ``valid_until`` (time.monotonic() before which the
    server cannot have expired it) move when it is extended or re-asserted; ``lost``
    is set, and ``lost_reason`` given, once its keeper gives up."""

    __slots__ = ("task_id", "owner", "token", "ttl_ms", "valid_until", "lost_reason", "_lost")

    def __init__(self, task_id: str, owner: str, token: int, ttl_ms: int, valid_until: float = 0.0):
        self.task_id, self.owner, self.token, self.ttl_ms = task_id, owner, token, ttl_ms
        self.valid_until = valid_until
        self.lost_reason: str | None = None
        self._lost: threading.Event | None = None

    @property
    def lost(self) -> threading.Event:
        # Created on first use: most leases never get a keeper and an Event is not free.
        with _lost_guard:
            if self._lost is None:
                self._lost = threading.Event()
            return self._lost

    def remaining(self) -> float:
        return self.valid_until - time.monotonic()

    def __repr__(self) -> str:
        return f"Lease({self.task_id!r}, owner={self.owner!r}, token={self.token})"


@dataclass(frozen=True)
class Claim:
    """Outcome of an acquire: ``acquired``/``held`` (with a lease), ``conflict``
    (``holder`` has it), ``blocked`` (``waiting_on`` deps), ``completed``/``failed``; of a
    claim from a queue also ``waiting`` (``waiting_on``: the queue's held tasks and the
    dependencies its blocked ones wait for) and ``drained`` (nothing of it left unfinished)."""

    status: str
    lease: Lease | None = None
    holder: str | None = None
    waiting_on: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.lease is not None


@dataclass(frozen=True)
class Write:
    """Outcome of a fenced write: ``accepted``, ``duplicate`` (replay of an
    accepted write), ``stale`` (a newer token exists) or ``finished`` (someone
    else finished the task)."""

    status: str
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("accepted", "duplicate")


def make_owner(larry: str, worker: str | None = None) -> str:
    """Unique per process and manager: a restarted worker must not inherit its predecessor's leases."""
    return f"{larry}/{worker or socket.gethostname()}/{os.getpid()}-{secrets.token_hex(3)}"


class LeaseManager:
    """Acquires, extends, releases and finishes task leases for one owner."""

    def __init__(self, r: redis.Redis, ks: Keyspace, larry: str, *, worker: str | None = None,
                 ttl_ms: int = 30_000, durability: Durability = Durability(), alert_on_conflict: bool = True,
                 tracks: Mapping[str, str] | None = None):
        require_text(r)
        self.r, self.ks, self.larry, self.ttl_ms = r, ks, larry, ttl_ms
        self.owner = make_owner(larry, worker)
        self._completed_metric = ks.metric(larry, "tasks_completed")
        #: task -> the track (its master's, :func:`plan.model.master_track`) its findings count for
        self.tracks = tracks or {}
        self._alert = int(alert_on_conflict)
        self._call = FunctionLibrary(r, ks, "leases", _FUNCTIONS, common=_COMMON, durability=durability).call

    def take_over(self, task_id: str, predecessors: str) -> bool:
        """Free a lease held by a dead earlier incarnation of this owner (its owner name starts
        with ``predecessors``) so the next acquire gets a new, higher fence; True if one was."""
        return bool(self._call("take_over", self.owner, task_id, predecessors))

    def acquire(self, task_id: str, *, into: Lease | None = None) -> Claim:
        """Try to take the task. ``into``: an existing lease to re-assert (updated in place)."""
        sent_at = time.monotonic()
        reply = self._call("acquire", self.owner, task_id, self.ttl_ms, self._alert)
        status = reply[0]
        if status in ("acquired", "held"):
            lease = into or Lease(task_id, self.owner, 0, self.ttl_ms, 0.0)
            lease.token, lease.valid_until = int(reply[1]), _valid_until(sent_at, self.ttl_ms)
            return Claim(status, lease=lease)
        if status == "conflict":
            return Claim(status, holder=reply[1])
        if status == "blocked":
            return Claim(status, waiting_on=tuple(reply[1:]))
        return Claim(status)

    def claim(self, queue: str) -> Claim:
        """Take the first claimable task of ``queue`` in the task queue's order (priority, then
        plan order; :mod:`runtime.coordination.tasks`): one function call, so workers racing on
        a queue each get a different task, each task once per fence."""
        sent_at = time.monotonic()
        reply = self._call("claim", self.owner, queue, self.ttl_ms)
        status = reply[0]
        if status in ("acquired", "held"):
            lease = Lease(reply[1], self.owner, int(reply[2]), self.ttl_ms, _valid_until(sent_at, self.ttl_ms))
            return Claim(status, lease=lease)
        return Claim(status, waiting_on=tuple(dict.fromkeys(reply[1:])))

    def extend(self, lease: Lease) -> str:
        """``extended`` (validity pushed forward), ``expired`` or ``stolen``."""
        sent_at = time.monotonic()
        status = self._call("extend", lease.owner, lease.task_id, lease.token, lease.ttl_ms)
        if status == "extended":
            lease.valid_until = _valid_until(sent_at, lease.ttl_ms)
        return status

    def release(self, lease: Lease) -> str:
        """Give the task up unfinished: ``released``, ``expired`` or ``stolen``.

        A release retried after a lost reply reports ``expired``: the first run removed the key.
        """
        return self._call("release", lease.owner, lease.task_id, lease.token)

    def complete(self, lease: Lease, result) -> Write:
        """Fenced write of the task's result (JSON-serialisable); marks it completed and frees the lock."""
        return self._write(lease, TaskStatus.COMPLETED, result)

    def fail(self, lease: Lease, error: str, *, retry: bool = True) -> Write:
        """Fenced failure: ``retry`` puts the task back to pending, otherwise it is terminally failed."""
        return self._write(lease, TaskStatus.PENDING if retry else TaskStatus.FAILED, {"error": error})

    def findings_targets(self, task_id: str) -> str:
        """Where ``task_id``'s findings are counted once it completed (in the call that completes
        it): seed 001's ``phase:{larry}:findings`` (CVEs by severity), ``phase:{larry}:{name}``
        and, for its master's track, ``phase:{larry}:{track}:{name}``, ``metrics:{larry}:
        cves_found|assets_cataloged``; seed 004's series ``cves_found``, ``prs_created``,
        ``assets_discovered`` (and ``tasks_completed``, always)."""
        ks, larry, track = self.ks, self.larry, self.tracks.get(task_id)
        targets = [["cves", "hash", ks.phase_findings(larry)], ["cves", "count", ks.metric(larry, "cves_found")],
                   ["assets_discovered", "count", ks.metric(larry, "assets_cataloged")]]
        for finding, name, how in (("prs_created", "prs_created", "count"),
                                   ("assets_discovered", "assets_discovered", "count"),
                                   ("coverage_delta", "coverage_increase", "float")):
            targets += [[finding, how, ks.phase_figure(larry, name, part)] for part in (None, track)[:2 if track else 1]]
        targets += [[finding, "series", ks.schema_series(name)] for finding, name in (
            ("cves", "cves_found"), ("prs_created", "prs_created"), ("assets_discovered", "assets_discovered"))]
        return json.dumps(targets)

    def _write(self, lease: Lease, outcome: str, payload) -> Write:
        reply = self._call("finish", lease.owner, lease.task_id, lease.token, outcome, json.dumps(payload),
                           self._completed_metric, self.findings_targets(lease.task_id))
        return Write(reply[0], reply[1] if len(reply) > 1 else None)

    def keep(self, lease: Lease, on_lost: Callable[[Lease, str], None] | None = None, **kwargs) -> "LeaseKeeper":
        """Start renewing ``lease`` in the background (see :class:`LeaseKeeper`)."""
        return LeaseKeeper(self, lease, on_lost, **kwargs).start()


class LeaseKeeper:
    """Renews a lease every ``renew_every`` s (ttl/3) and calls ``on_lost(lease, reason)``
    once, ``margin`` s (ttl/10, at least 50 ms) before the lease could have expired,
    if renewals have not kept it alive. If the lock vanished while we still held
    it (a failover rolled it back) the keeper re-acquires it before giving up.
    """

    def __init__(self, manager: LeaseManager, lease: Lease, on_lost=None, *,
                 renew_every: float | None = None, margin: float | None = None):
        self.manager, self.lease, self.on_lost = manager, lease, on_lost
        self.renew_every = renew_every if renew_every is not None else lease.ttl_ms / 3000
        self.margin = margin if margin is not None else max(lease.ttl_ms / 10_000, 0.05)
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._fired = threading.Lock()
        self._threads = [threading.Thread(target=self._renew, daemon=True, name=f"renew-{lease.task_id}"),
                         threading.Thread(target=self._watch, daemon=True, name=f"watch-{lease.task_id}")]

    def start(self) -> "LeaseKeeper":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=1.0)

    def __enter__(self) -> "LeaseKeeper":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _renew(self) -> None:
        lease = self.lease
        while not self._stop.wait(self.renew_every):
            if lease.lost.is_set():
                return
            try:
                status = self.manager.extend(lease)
                if status == "expired" and lease.remaining() > self.margin:
                    status = self.manager.acquire(lease.task_id, into=lease).status
            except redis.exceptions.RedisError as error:
                log.warning("renewing %s failed: %s", lease.task_id, error)
                continue  # the watchdog decides when it is too late
            if status in ("extended", "acquired", "held"):
                with self._changed:
                    self._changed.notify_all()
            else:
                self._lose(status)
                return

    def _watch(self) -> None:
        lease = self.lease
        with self._changed:
            while not self._stop.is_set() and not lease.lost.is_set():
                left = lease.remaining() - self.margin
                if left <= 0:
                    break
                self._changed.wait(left)
        if not self._stop.is_set():
            self._lose("not renewed in time")

    def _lose(self, reason: str) -> None:
        with self._fired:
            if self.lease.lost.is_set():
                return
            self.lease.lost_reason = reason
            self.lease.lost.set()
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        log.warning("lease on %s lost: %s", self.lease.task_id, reason)
        if self.on_lost is not None:
            try:
                self.on_lost(self.lease, reason)
            except Exception:  # the callback's failure must not kill the keeper silently
                log.exception("on_lost callback for %s raised", self.lease.task_id)
