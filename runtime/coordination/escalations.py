"""Escalations to a human (seed 004 "Conflict Resolution"): a charge that neither the spender's
pool nor the emergency reserve can cover is raised as an escalation, and the spender waits,
paused, for an operator's ``larry approve ESCALATION [--tokens N]`` or ``larry deny ESCALATION
--reason ...``.

An escalation is the hash ``escalation:{id}`` (id ``esc-{n}``, numbered by ``escalation:seq``,
listed in order in ``escalation:index``) holding: from (the spender), larry, account (the one
past its limit), task, issue, severity, options (the seed's, in order: deploy reserve, defer
lower-priority tasks, reduce workers, extend the timeline, escalate to a human),
recommendation, status (open | approving, until the tokens are granted | approved | denied),
raised_at; once decided: decided_by,
decided_at, and tokens (approved) or reason (denied). Raising and deciding each emit an event
on the alerts (escalation) channel: ``escalation_raised`` (from the spender), ``escalation_decided``
(from the operator who decided).

Guarantees: one escalation per blocked charge (raising is idempotent by the caller's key, in
one script); an escalation is decided once (a second decision answers what the first was and
changes nothing); approved tokens are granted in the ledger by op id ``approval:{id}``, so
repeating ``larry approve`` after a lost reply grants them once.
The run's sign-off (``larry:approval: {required: true}``) is ``escalation:run-approval``
(JSON: by, at), set once, with a ``run_approved`` event naming every Larry.

Not guaranteed: that anyone answers; the spender waits until its deadline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from runtime.coordination.connection import require_text
from runtime.coordination.events import lua_script
from runtime.coordination.keys import Keyspace
from runtime.coordination.ledger import Ledger

#: Seed 004's options when tokens run short, in the order they are tried.
OPTIONS = ("deploy the emergency reserve", "defer lower-priority tasks", "reduce workers (pause)",
           "extend the timeline within the execution window", "escalate to a human operator")

_RAISE = r"""
-- KEYS[1] dedupe key, [2] sequence, [3] index; ARGV[1] the spender (the event's sender), [2]
-- escalation key prefix, [3] options JSON, [4..] field, value pairs
local known = redis.call('GET', KEYS[1])
if known then return {'known', known} end
local id = 'esc-' .. redis.call('INCR', KEYS[2])
local key = ARGV[2] .. id
local fields = {id=id, status='open', raised_at=now(), options=ARGV[3]}
for i = 4, #ARGV, 2 do fields[ARGV[i]] = ARGV[i + 1] end
for name, value in pairs(fields) do redis.call('HSET', key, name, value) end
redis.call('SET', KEYS[1], id)
redis.call('RPUSH', KEYS[3], id)
fields.event, fields.options, fields.raised_at = 'escalation_raised', cjson.decode(ARGV[3]), nil
emit(true, fields)
return {'raised', id}
"""

_DECIDE = r"""
-- KEYS[1] the escalation; ARGV[1] by (the event's sender), [2] approving | denied, [3] tokens or reason
-- An approval is 'approving' until its tokens are granted in the ledger (FINISH makes it
-- 'approved'), so a spender never resumes before the tokens are there.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'unknown', ''} end
if status ~= 'open' then return {'decided', status} end
local detail = ARGV[2] == 'approving' and 'tokens' or 'reason'
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'decided_by', ARGV[1], 'decided_at', now(), detail, ARGV[3])
if ARGV[2] == 'denied' then
  emit(true, {event='escalation_decided', id=redis.call('HGET', KEYS[1], 'id'), status='denied',
              larry=redis.call('HGET', KEYS[1], 'larry'), spender=redis.call('HGET', KEYS[1], 'from'),
              task=redis.call('HGET', KEYS[1], 'task'), reason=ARGV[3]})
end
return {ARGV[2], ''}
"""

_FINISH_APPROVAL = r"""
-- KEYS[1] the escalation, its tokens granted; ARGV[1] who approved it (the event's sender)
if redis.call('HGET', KEYS[1], 'status') ~= 'approving' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'approved')
local e = redis.call('HMGET', KEYS[1], 'id', 'larry', 'from', 'task', 'tokens')
emit(true, {event='escalation_decided', id=e[1], status='approved', larry=e[2], spender=e[3], task=e[4],
            tokens=e[5]})
return 1
"""


_APPROVE_RUN = r"""
-- KEYS[1] the run's approval; ARGV[1] by, [2] the Larrys (JSON list)
local known = redis.call('GET', KEYS[1])
if known then return {'known', known} end
local approval = cjson.encode({by=ARGV[1], at=now()})
redis.call('SET', KEYS[1], approval)
emit(true, {event='run_approved', ['from']=ARGV[1], at=cjson.decode(approval).at, larrys=cjson.decode(ARGV[2])})
return {'approved', approval}
"""


@dataclass(frozen=True)
class Decision:
    """``status``: approved (approved, now or before: its tokens are granted) | denied (this call
    denied it) | decided (denied before: ``detail`` says so) | unknown (no such escalation)."""

    status: str
    detail: str


class Escalations:
    def __init__(self, r: redis.Redis, ks: Keyspace):
        require_text(r)
        self.r, self.ks = r, ks
        self._raise = r.register_script(lua_script(ks, _RAISE))
        self._decide = r.register_script(lua_script(ks, _DECIDE))
        self._finish_approval = r.register_script(lua_script(ks, _FINISH_APPROVAL))
        self._approve_run = r.register_script(lua_script(ks, _APPROVE_RUN))

    def approve_run(self, by: str, larrys: list[str]) -> tuple[bool, dict]:
        """The operator's sign-off (seed 004 "Approval Required"): (True, {by, at}) when this
        call approved the run, (False, the earlier approval) when it was approved before. The
        ``run_approved`` event names every Larry, so each one's report records it."""
        status, approval = self._approve_run(keys=[self.ks.run_approval], args=[by, json.dumps(larrys)])
        return status == "approved", json.loads(approval)

    def run_approval(self) -> dict | None:
        raw = self.r.get(self.ks.run_approval)
        return json.loads(raw) if raw else None

    def raise_(self, dedupe: str, *, sender: str, larry: str, account: str, task: str, issue: str,
               severity: str, recommendation: str, tokens_short: int) -> str:
        """The escalation's id: a new one, or the one already raised for ``dedupe``."""
        values = {"from": sender, "larry": larry, "account": account, "task": task, "issue": issue,
                  "severity": severity, "recommendation": recommendation, "tokens_short": str(tokens_short)}
        args = [sender, self.ks.escalation(""), json.dumps(OPTIONS)] + [x for pair in values.items() for x in pair]
        _, escalation_id = self._raise(keys=[self.ks.escalation_key(dedupe), self.ks.escalation_seq,
                                             self.ks.escalations], args=args)
        return escalation_id

    def get(self, escalation_id: str) -> dict | None:
        data = self.r.hgetall(self.ks.escalation(escalation_id))
        if not data:
            return None
        data["options"] = json.loads(data.get("options", "[]"))
        return data

    def all(self) -> list[dict]:
        """Every escalation in the order raised."""
        return [e for e in (self.get(i) for i in self.r.lrange(self.ks.escalations, 0, -1)) if e]

    def approve(self, escalation_id: str, ledger: Ledger, tokens: int, *, by: str) -> Decision:
        """Approve, and grant ``tokens`` on the escalation's account and every account above it.
        Repeated after a lost reply, the grant is made once (op id ``approval:{id}``)."""
        key = self.ks.escalation(escalation_id)
        decision = Decision(*self._decide(keys=[key], args=[by, "approving", str(int(tokens))]))
        if decision.status == "approving" or decision.detail in ("approving", "approved"):
            # This call's approval, or one that stopped before its grant: granted once (op id),
            # then the spender is told.
            escalation = self.get(escalation_id)
            if int(escalation["tokens"]):  # an agent's escalation may ask for none
                ledger.grant(f"approval:{escalation_id}", escalation["account"], int(escalation["tokens"]),
                             who=escalation["decided_by"])
            self._finish_approval(keys=[key], args=[escalation["decided_by"]])
            return Decision("approved", "")
        return decision

    def deny(self, escalation_id: str, reason: str, *, by: str) -> Decision:
        return Decision(*self._decide(keys=[self.ks.escalation(escalation_id)], args=[by, "denied", reason]))
