"""Master-to-master handoffs (seed 004: ``HANDOFF_REQUEST {from_master, to_master, task_id,
context}`` on ``{ns}:masters:handoff``; ``/coordination/handoffs.json``), in ``queue`` assignment.

The protocol, each step one script that checks, changes and emits:

1. **request** (the handing master, or a coordinator for a master gone silent,
   :mod:`runtime.coordination.masters`): the task must be queued in ``from_master``'s queue and
   pending (not held, not finished), with no other handoff of it open. The handoff is recorded
   (``{ns}:handoffs:all``, id ``handoff-<n>``: from_master, to_master, task_id, context,
   status ``requested``, requested_by, requested_at) and ``HANDOFF_REQUEST`` emitted.
2. **acknowledge** (the receiving master's process, :mod:`runtime.commands.master`, on its next
   round): if the task is still pending in ``from_master``'s queue, its queue entry moves to
   ``to_master``'s queue (``master``) naming the handoff (``handoff``: the record holds the
   context, which the receiving worker's prompt shows), the record becomes ``accepted``
   (accepted_at) and ``HANDOFF_ACCEPTED`` is emitted; otherwise it becomes ``refused`` with the
   reason (``HANDOFF_REFUSED``). Either way once.

Workers of the receiving master take the task from their queue like their own (its tokens are
still charged to the account of the worker the plan lists it under, whoever runs it).
``handoffs.json`` under the coordination directory holds every record (:func:`write_file`, the
atomic writer), rewritten by whoever changed one and by the coordinator every heartbeat.

Not guaranteed: that a handoff is acknowledged (the receiving master may be down: the request
stays open and the task stays where it was, so nothing is lost); that the file is current between
a change and its rewrite; in ``static`` assignment there is no queue to move a task to, so every
request is refused.
"""
from __future__ import annotations

import json
from pathlib import Path

import redis

from runtime.coordination.connection import Durability, require_text, run_script
from runtime.coordination.events import lua_script
from runtime.coordination.keys import Keyspace
from runtime.support.files import write_atomic

REQUEST, ACCEPTED, REFUSED = "HANDOFF_REQUEST", "HANDOFF_ACCEPTED", "HANDOFF_REFUSED"
FILE = "handoffs.json"

# Why the task cannot move now ('' when it can): queued in ``from``'s queue, pending.
_COMMON = r"""
local function unmovable(task, from)
  local entry = redis.call('HGET', QUEUE_ENTRIES, task)
  if not entry then return 'it is not in the task queue', nil end
  local queue = cjson.decode(entry)['master']
  if queue ~= from then return 'it is in the queue of ' .. tostring(queue), nil end
  local status = redis.call('GET', STATUS_PREFIX .. task)
  if status ~= 'pending' or not redis.call('ZSCORE', QUEUE, task) then
    return 'it is ' .. tostring(status), nil
  end
  return '', entry
end
"""

_REQUEST = _COMMON + r"""
-- KEYS[1] {ns}:handoffs:all, [2] {ns}:handoffs:seq; ARGV[1] sender, [2] from_master, [3] to_master,
-- [4] task, [5] context (a JSON object), [6] the handoff channel
local why = unmovable(ARGV[4], ARGV[2])
if why ~= '' then return {'refused', 'cannot hand over ' .. ARGV[4] .. ': ' .. why} end
for _, raw in ipairs(redis.call('HVALS', KEYS[1])) do
  local h = cjson.decode(raw)
  if h.task_id == ARGV[4] and h.status == 'requested' then return {'open', h.id} end
end
local id = 'handoff-' .. redis.call('INCR', KEYS[2])
local context = cjson.decode(ARGV[5])
redis.call('HSET', KEYS[1], id, cjson.encode({id=id, from_master=ARGV[2], to_master=ARGV[3], task_id=ARGV[4],
  context=context, status='requested', requested_by=SENDER, requested_at=now()}))
emit_on(ARGV[6], {event='HANDOFF_REQUEST', id=id, from_master=ARGV[2], to_master=ARGV[3], task_id=ARGV[4],
  context=context})
return {'requested', id}
"""

_ACKNOWLEDGE = _COMMON + r"""
-- KEYS[1] {ns}:handoffs:all, [2] {ns}:handoffs:seq; ARGV[1] sender, [2] id, [3] the receiving master,
-- [4] the handoff channel
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return {'unknown', ''} end
local h = cjson.decode(raw)
if h.status ~= 'requested' then return {h.status, h.reason or ''} end
if h.to_master ~= ARGV[3] then return {'not_addressed', h.to_master} end
local why, entry = unmovable(h.task_id, h.from_master)
local event = {id=h.id, from_master=h.from_master, to_master=h.to_master, task_id=h.task_id}
if why == '' then
  -- the entry's own form (compact JSON, runtime.coordination.tasks), edited in place like its priority
  entry = string.gsub(entry, '"master":"[^"]*"', '"master":' .. cjson.encode(h.to_master), 1)
  entry = string.gsub(entry, ',"handoff":"[^"]*"', '', 1)
  redis.call('HSET', QUEUE_ENTRIES, h.task_id, string.sub(entry, 1, -2) .. ',"handoff":' .. cjson.encode(h.id) .. '}')
  h.status, h.accepted_at, event.event = 'accepted', now(), 'HANDOFF_ACCEPTED'
else
  h.status, h.reason, h.refused_at, event.event = 'refused', why, now(), 'HANDOFF_REFUSED'
  event.reason = why
end
redis.call('HSET', KEYS[1], h.id, cjson.encode(h))
redis.call('INCR', KEYS[2])
emit_on(ARGV[4], event)
return {h.status, h.reason or ''}
"""


def handoff_channel(ks: Keyspace) -> str:
    return ks.schema_channel("masters", "handoff")


class Handoffs:
    def __init__(self, r: redis.Redis, ks: Keyspace, durability: Durability = Durability()):
        require_text(r)
        self.r, self.ks, self.durability = r, ks, durability
        self._request, self._acknowledge = (r.register_script(lua_script(ks, body)) for body in (_REQUEST, _ACKNOWLEDGE))

    def _keys(self) -> list[str]:
        return [self.ks.handoffs, self.ks.handoff_seq]

    def request(self, sender: str, from_master: str, to_master: str, task: str, context: dict | None = None
                ) -> tuple[str, str]:
        """(``requested``, id), (``open``, the id of the handoff of ``task`` already open) or
        (``refused``, why)."""
        status, detail = run_script(self.r, self._request, self._keys(),
                                    [sender, from_master, to_master, task, json.dumps(context or {}),
                                     handoff_channel(self.ks)], self.durability, idempotent=False)
        return status, detail

    def acknowledge(self, sender: str, handoff: str, master: str) -> tuple[str, str]:
        """The receiving ``master`` acknowledges: (``accepted``, '') or (``refused``, why); a
        handoff already decided answers its status and changes nothing."""
        status, detail = run_script(self.r, self._acknowledge, self._keys(),
                                    [sender, handoff, master, handoff_channel(self.ks)], self.durability,
                                    idempotent=True)
        return status, detail

    def all(self) -> list[dict]:
        """Every handoff, in the order requested."""
        records = [json.loads(raw) for raw in self.r.hvals(self.ks.handoffs)]
        return sorted(records, key=lambda h: int(h["id"].rpartition("-")[2]))

    def of(self, task: str) -> dict | None:
        """The accepted handoff that brought ``task`` to the queue it is in, if one did."""
        entry = self.r.hget(self.ks.task_queue_entries, task)
        try:
            handoff = json.loads(entry).get("handoff") if entry else None
        except (ValueError, AttributeError):
            return None
        raw = self.r.hget(self.ks.handoffs, handoff) if isinstance(handoff, str) else None
        return json.loads(raw) if raw else None

    def open_for(self, master: str) -> list[dict]:
        """The handoffs addressed to ``master`` awaiting its acknowledgement."""
        return [h for h in self.all() if h["to_master"] == master and h["status"] == "requested"]

    def version(self) -> int:
        """Changes so far (a request or a decision each): rewrite the file when it moved."""
        return int(self.r.get(self.ks.handoff_seq) or 0)

    def write_file(self, coordination_dir: str | Path) -> Path:
        """``handoffs.json``: every handoff, as Redis holds it now."""
        path = Path(coordination_dir) / FILE
        write_atomic(path, json.dumps({"handoffs": self.all()}, indent=2) + "\n")
        return path
