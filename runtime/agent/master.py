"""A master's duties (seeds 003/004: masters with personal budgets that plan, arbitrate and
review their workers' work), done by the master's own process (:mod:`runtime.commands.master`)
and each charged to its personal account (``{larry}/{master}/personal``, booked on personal →
Larry → system):

* **plan**, once, at phase start (op ``plan:{larry}/{master}``): it annotates every task it
  oversees with its place in the master's plan and a priority (``task:plan:{id}``: master,
  order, priority, note). The dependency graph is never changed: the plan is advice an agent
  reads and, in ``queue`` assignment, the order its workers take the master's queue in
  (:meth:`runtime.coordination.tasks.TaskBoard.plan`); in ``static`` assignment the order of
  claims stays the workers'.
* **escalation**, once per escalation one of its own workers raises (op ``escalation:{id}``):
  it decides ``retry`` (the worker's ledger path has the tokens the task needs again — another
  pool returned tokens, the reserve was refilled: it approves the escalation with nothing
  granted, and the worker, paused with its lease, runs the task again), ``reserve`` (it asks
  an operator to approve the tokens from the reserve) or ``human`` (it leaves the decision to
  an operator). A master never grants tokens itself: only ``larry approve`` raises a limit, so
  ``reserve`` and ``human`` leave the escalation open, with the master's decision recorded.
  A task that failed for good (budget exhausted, deadline, the agent's provider refused it,
  denied) is reviewed and reported, not retried: the reasons a worker fails a task for good
  are those a retry cannot help.
* **review**, once per overseen task once it ended (op ``review:{task}``).
* **release**, once its own workers' tasks have ended, or its Larry's phase has: what its pool
  did not use goes back to its Larry (op ``release:{pool}``), which lends it to the masters
  still working (seed 004's "dynamic token reallocation between masters",
  :meth:`runtime.coordination.ledger.Ledger.release`).
* **report**, once the phase has ended: its part of its Larry's report (``master:{larry}:{master}:report``),
  which the coordinator includes (:func:`master_report`).

A master oversees its own workers (those that name it, drawing on its pool) and a share of
the Larry's workers that name no master (seed 001's, whose budgets are their Larry's), dealt
to the masters in turn.

How a master thinks through a duty is its *mind*. With no agent profile,
:class:`BuiltInMind`: deterministic decisions and simulated personal tokens (plan 10 % of the
personal budget, each review 30-60 % of an even share of it per task, each escalation 5 %,
drawn from a generator seeded by the duty, so a run is reproducible). With a profile (or a
command given to ``larry master``), :class:`AgentMind`: the duty's prompt goes to the agent in
``LARRY_PROMPT_FILE``, the agent's own output is metered by the profile's usage adapter
exactly as a worker's agent is (each charge booked at once under ``{duty}:{key}``, the
difference to the CLI's final total when it exits), and an escalation's decision is the first
word of the agent's answer (anything else is ``human``).

Guaranteed: a finished duty is charged once and never done again, whatever restarts the master
goes through: duties are recorded in ``master:{larry}:{master}:duties`` after their charge,
and the built-in mind's charge is one ledger op id, so a master killed between the two
replays it without booking anything. Not guaranteed: an agent's duty interrupted by the
master's death is run again by its successor, and what the first run spent stays booked
(spent is spent); tokens a worker reports after its pool was released are booked past the
pool's limit (``overrun``), not lent.
"""
from __future__ import annotations

import json
import os
import queue
import random
import re
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from plan import environment as envvar
from plan.model import (
    PRIORITIES,
    AgentProfile,
    Larry,
    Master,
    highest_priority,
    master_account,
    worker_account,
)
from plan.statuses import TERMINAL, TaskStatus
from plan.taskgraph import TaskGraph
from runtime.agent.payload import PayloadProcess
from runtime.agent.protocol import ProtocolError, is_protocol_line, parse_line
from runtime.agent.usage import POLL_SECONDS, adapter_class, profile_command
from runtime.coordination.escalations import Escalations
from runtime.coordination.events import EventLog
from runtime.coordination.ledger import Ledger
from runtime.coordination.tasks import TaskBoard
from runtime.support.files import write_atomic
from runtime.support.timestamps import now

#: A review costs this share of the master's personal tokens per task it oversees.
REVIEW_SHARE = (0.3, 0.6)
#: The built-in mind's plan and each escalation decision cost these shares of its personal tokens.
PLAN_SHARE, ESCALATION_SHARE = 0.1, 0.05
#: What an escalation's decision may be (see the module docstring).
DECISIONS = ("retry", "reserve", "human")


def review_tokens(master: Master, task: str, tasks: int) -> int:
    rng = random.Random(zlib.crc32(f"review:{task}".encode()))
    return int(master.personal_tokens / max(tasks, 1) * rng.uniform(*REVIEW_SHARE))


def overseen(larry: Larry, master: Master) -> tuple[list[str], set[str]]:
    """(the tasks ``master`` reviews, the tasks of the workers drawing on its pool)."""
    dealt = [w for w in larry.workers if w.master is None and larry.overseer(w) == master.name]
    own = [w for w in larry.workers if w.master == master.name]
    return [t.id for w in own + dealt for t in w.tasks], {t.id for w in own for t in w.tasks}


def master_report(larry: Larry, master: Master, tasks: Mapping[str, dict], accounts: Mapping[str, dict],
                  own: Mapping | None) -> dict:
    """The master's part of its Larry's final report: ``own``, what the master process reported
    (what it planned, reviewed and decided; None when it did not report, e.g. it was down at the
    end: then the coordinator says so), with the figures of its accounts from the report's
    ``accounts`` and how the tasks it reviewed ended from its ``tasks``."""
    personal, pool = (accounts[master_account(larry.id, master.name, part)] for part in ("personal", "pool"))
    reviewed = list(own["reviewed"]) if own else []
    ended = [tasks[t] for t in reviewed if t in tasks]
    return {"name": master.name, "reported_by": "master" if own else "coordinator",
            "agent": own["agent"] if own else "unknown",
            "planned": own["planned"] if own else 0, "reviewed": len(ended),
            "completed": sum(t["status"] == TaskStatus.COMPLETED for t in ended),
            "failed": sum(t["status"] == TaskStatus.FAILED for t in ended),
            "decisions": list(own["decisions"]) if own else [],
            "personal": {k: personal[k] for k in ("limit", "committed")},
            "pool": {k: pool[k] for k in ("limit", "granted", "committed", "released")},
            "tasks": reviewed}


@dataclass(frozen=True)
class Duty:
    """One piece of a master's work: ``id`` is its op id (and its charges' prefix)."""
    id: str
    kind: str  # plan | escalation | review
    title: str
    prompt: str
    #: what the built-in mind spends on it
    simulated: int


@dataclass(frozen=True)
class Thought:
    """What thinking a duty through gave: the answer, the tokens booked for it, and why it
    failed ("" when it did not)."""
    text: str
    tokens: int
    failed: str = ""


class BuiltInMind:
    """Deterministic: spends the duty's simulated tokens in one charge (its op id) and decides
    ``retry`` when the tokens are there again, else ``human``."""

    name = "built-in"

    def __init__(self, ledger: Ledger, account: str, who: str):
        self.ledger, self.account, self.who = ledger, account, who

    def think(self, duty: Duty) -> Thought:
        op = self.ledger.record(duty.id, self.account, duty.simulated, who=self.who)
        return Thought("", op.amount)

    def decide(self, thought: Thought, room: bool) -> str:
        return "retry" if room else "human"


class AgentMind:
    """Runs the agent's command once per duty, metered like a worker's agent (see the module
    docstring); the agent is stopped when the ledger answers ``overrun`` (its personal budget
    or an account above it is spent) or after ``seconds``."""

    def __init__(self, ledger: Ledger, account: str, who: str, *, command: list[str], usage: str,
                 profile: AgentProfile | None, workdir: Path, seconds: float, kill_grace: float,
                 env: Mapping[str, str], log: Callable[[str], None]):
        self.ledger, self.account, self.who = ledger, account, who
        self.command, self.usage, self.profile = command, usage, profile
        self.workdir, self.seconds, self.kill_grace, self.env, self.log = workdir, seconds, kill_grace, env, log
        self.name = profile.name if profile else command[0]

    def think(self, duty: Duty) -> Thought:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", duty.id)
        self.workdir.mkdir(parents=True, exist_ok=True)
        prompt = self.workdir / f"{slug}-prompt.md"
        write_atomic(prompt, duty.prompt)
        env = {**self.env, envvar.TASK_ID: duty.id, envvar.TASK_TITLE: duty.title, envvar.PROMPT_FILE: str(prompt),
               envvar.RESULTS_DIR: str(self.workdir), envvar.PROTOCOL_FILE: str(self.workdir / f"{slug}-protocol.log"),
               envvar.TOKEN_BUDGET: str(max(0, self.ledger.tightest(self.account)[1]))}
        command = profile_command(self.profile, self.usage, {
            "task_id": duty.id, "title": duty.title, "prompt_file": str(prompt), "results_dir": str(self.workdir)}) \
            if self.profile else list(self.command)
        adapter = None
        if self.usage != "larry-protocol":
            adapter, command = adapter_class(self.usage).for_run(
                command, prices=self.profile.prices if self.profile else {},
                scratch=self.workdir / f"{slug}-analytics.jsonl")
        items: queue.Queue = queue.Queue()
        payload = PayloadProcess(command, env, Path(env[envvar.PROTOCOL_FILE]), items, label=f"{self.who}: ").start()
        run = _Booking(self, duty)
        until = time.monotonic() + self.seconds
        try:
            with open(self.workdir / f"{slug}-output.jsonl", "w") as raw:
                while True:
                    try:
                        kind, value = items.get(timeout=max(0.0, min(POLL_SECONDS, until - time.monotonic())))
                    except queue.Empty:
                        kind, value = "poll", None
                    if kind == "exit":
                        break
                    if adapter is not None:
                        if kind == "line":
                            raw.write(value + "\n")
                            raw.flush()
                        for charge in adapter.feed(value) if kind == "line" else adapter.poll():
                            run.book(charge.key, charge.tokens.total)
                    elif kind == "line":
                        run.protocol(value)
                    if run.stopped is None and time.monotonic() >= until:
                        run.stopped = "out of time"
                    if run.stopped and payload.running:
                        payload.stop(self.kill_grace)
        except BaseException:
            payload.stop(self.kill_grace)
            raise
        if adapter is None:
            return Thought(run.text, run.tokens, run.stopped or ("" if value == 0 else f"exit status {value}"))
        outcome = adapter.finish(value)
        if outcome.charge is not None:
            run.book(outcome.charge.key, outcome.charge.tokens.total)
        failed = run.stopped or (outcome.reason if outcome.failed else "")
        return Thought(outcome.text, run.tokens, failed)

    def decide(self, thought: Thought, room: bool) -> str:
        words = re.findall(r"[a-z]+", thought.text.lower())
        return words[0] if words and words[0] in DECISIONS else "human"


class _Booking:
    """The charges of one agent run of a duty, under op ids ``{duty}:{key}``."""

    def __init__(self, mind: AgentMind, duty: Duty):
        self.mind, self.duty = mind, duty
        self.tokens, self.reports, self.text = 0, 0, ""
        self.stopped: str | None = None

    def book(self, key: str, tokens: int) -> None:
        if self.stopped == "budget exhausted":
            return  # what a stopped agent still reports is not booked, as for a worker's
        self.tokens += tokens
        op = self.mind.ledger.record(f"{self.duty.id}:{key}", self.mind.account, tokens, who=self.mind.who)
        if not op.ok:
            self.stopped = "budget exhausted"
            self.mind.log(f"{self.duty.id}: stopping the agent ({op.account} is past its limit)")

    def protocol(self, line: str) -> None:
        if not is_protocol_line(line):
            return
        try:
            report = parse_line(line)
        except ProtocolError as error:
            self.mind.log(f"{self.duty.id}: skipping a malformed protocol line ({error})")
            return
        self.text = report.message or self.text
        if report.tokens:
            self.reports += 1
            self.book(str(self.reports), report.tokens)


class MasterDuties:
    """One master's duties against Redis state; :meth:`tend` does whatever is due."""

    def __init__(self, r, ks, ledger: Ledger, graph: TaskGraph, larry: Larry, master: Master, mind,
                 log: Callable[[str], None]):
        self.r, self.ks, self.ledger, self.graph = r, ks, ledger, graph
        self.larry, self.master, self.mind, self.log = larry, master, mind, log
        self.name = f"{larry.id}/{master.name}"
        self.tasks, self.pool_tasks = overseen(larry, master)
        self.workers = {w.name for w in larry.workers if w.master == master.name}
        self.specs = {t.id: (w, t) for w in larry.workers for t in w.tasks}
        self.personal = master_account(larry.id, master.name, "personal")
        self.pool = master_account(larry.id, master.name, "pool")
        self.escalations = Escalations(r, ks)
        self.events = EventLog(r, ks)
        self.board = TaskBoard(r, ks)
        self.duties_key = ks.master_duties(larry.id, master.name)
        self.done: dict[str, dict] = {k: json.loads(v) for k, v in r.hgetall(self.duties_key).items()}

    def _record(self, duty_id: str, outcome: dict) -> None:
        self.r.hset(self.duties_key, duty_id, json.dumps(outcome))
        self.done[duty_id] = outcome

    def _do(self, duty: Duty, extra: Callable[[Thought], dict] = lambda thought: {}) -> dict:
        thought = self.mind.think(duty)
        outcome = {"kind": duty.kind, "tokens": thought.tokens, "at": now(), **extra(thought)}
        if thought.failed:
            outcome["failed"] = thought.failed
            self.log(f"master {self.name}: {duty.id}: the agent failed ({thought.failed})")
        self._record(duty.id, outcome)
        return outcome

    def tend(self, statuses: Mapping[str, str], phase_ended: bool) -> bool:
        """Do every duty now due; True once the report is written."""
        self.plan()
        self.arbitrate()
        for task in (t for t in self.tasks if statuses.get(t) in TERMINAL):
            self.review(task, statuses[task])
        if phase_ended or self.pool_tasks <= {t for t in self.tasks if statuses.get(t) in TERMINAL}:
            self.release()
        if phase_ended:
            self.arbitrate()  # what was raised while the phase ended
            return self.report()
        return False

    # ------------------------------------------------------------------ duties
    def plan(self) -> None:
        duty_id = f"plan:{self.name}"
        if duty_id in self.done:
            return
        # Priority first, then the plan's order: the master's advice on what matters most.
        ranked = sorted(self.tasks, key=lambda t: (PRIORITIES.index(self._priority(t)),
                                                   self.tasks.index(t)))
        lines = [f"# Plan the work of master {self.master.name} ({self.larry.id}, phase {self.larry.phase})", "",
                 "Give one note per task: what to look out for. The dependencies are fixed.", ""]
        lines += [f"- {t}: {self.specs[t][1].title} (worker {self.specs[t][0].name}, priority {self._priority(t)}, "
                  f"depends on {', '.join(self.graph.deps[t]) or 'nothing'})" for t in ranked]
        duty = Duty(duty_id, "plan", f"plan of {self.master.name}", "\n".join(lines) + "\n",
                    int(self.master.personal_tokens * PLAN_SHARE))
        thought = self.mind.think(duty)
        # The plan and the tasks' places in the task queue (priority, then this order), at once.
        self.board.plan(self.master.name, {task: {
            "master": self.master.name, "order": order, "priority": self._priority(task),
            "note": (thought.text.strip() or f"step {order} of {len(ranked)} in {self.master.name}'s plan")[:2000]}
            for order, task in enumerate(ranked, 1)})
        self._record(duty_id, {"kind": "plan", "tokens": thought.tokens, "at": now(), "tasks": len(ranked),
                               **({"failed": thought.failed} if thought.failed else {})})
        self.log(f"master {self.name} planned {len(ranked)} tasks ({thought.tokens:,} tokens)")

    def _priority(self, task: str) -> str:
        worker, spec = self.specs[task]
        return highest_priority(worker.priority, spec.priority)

    def arbitrate(self) -> None:
        """Decide every open escalation one of its own workers raised."""
        for escalation in self.escalations.all():
            duty_id = f"escalation:{escalation['id']}"
            worker = (escalation["from"].split("/") + [""])[1]  # a worker's sender is {larry}/{worker}
            if escalation["larry"] != self.larry.id or worker not in self.workers:
                continue
            if duty_id in self.done:
                # A predecessor decided retry and died before approving: approve (once, by op id).
                if self.done[duty_id]["decision"] == "retry" and escalation["status"] in ("open", "approving"):
                    self.escalations.approve(escalation["id"], self.ledger, 0, by=self.name)
                continue
            if escalation["status"] != "open":
                continue
            need = int(escalation.get("tokens_short") or 0)
            tightest, available = self.ledger.tightest(worker_account(self.larry.id, worker))
            room = available >= need
            prompt = (f"# Escalation {escalation['id']} from {escalation['from']}\n\n- task: {escalation['task']}\n"
                      f"- issue: {escalation['issue']}\n- tokens needed: {need:,}\n"
                      f"- tightest account on its path: {tightest} ({available:,} tokens left)\n\n"
                      "Answer with one word first: retry (the tokens are there again), reserve (ask an operator "
                      "to approve them from the reserve) or human (leave it to an operator), then why.\n")
            duty = Duty(duty_id, "escalation", f"escalation {escalation['id']}", prompt,
                        int(self.master.personal_tokens * ESCALATION_SHARE))
            chosen: list[str] = []

            def decision(thought: Thought) -> dict:
                wanted = self.mind.decide(thought, room)
                made = wanted if wanted != "retry" or room else "human"
                chosen.append(made)
                why = {"retry": f"{available:,} tokens on its path again; approved with nothing granted",
                       "reserve": f"asks an operator to approve {need:,} tokens from the reserve",
                       "human": f"left to an operator ({tightest} has {available:,} of the {need:,} tokens needed)"}
                return {"escalation": escalation["id"], "task": escalation["task"], "decision": made,
                        "detail": why[made] + (f"; the agent said {wanted}" if wanted != made else "")}

            outcome = self._do(duty, decision)
            if chosen[0] == "retry":
                self.escalations.approve(escalation["id"], self.ledger, 0, by=self.name)
            self.events.emit("master_decided", self.name, larry=self.larry.id, master=self.master.name,
                             id=escalation["id"], task=escalation["task"], decision=chosen[0])
            self.log(f"master {self.name} decided {escalation['id']} ({escalation['task']}): {outcome['detail']}")

    def review(self, task: str, status: str) -> None:
        duty_id = f"review:{task}"
        if duty_id in self.done:
            return
        data = (self.board.result(task) or {}).get("data") or {}
        prompt = (f"# Review {task}: {self.specs[task][1].title}\n\n- status: {status}\n"
                  f"- worker: {self.specs[task][0].name}\n- message: {data.get('message') or data.get('error') or ''}\n"
                  f"- findings: {json.dumps(data.get('findings') or {}, sort_keys=True)}\n"
                  f"- tokens: {data.get('tokens', 0)}\n\nSay in a few lines whether the result holds up.\n")
        outcome = self._do(Duty(duty_id, "review", f"review of {task}", prompt,
                                review_tokens(self.master, task, len(self.tasks))),
                           lambda thought: {"status": status, "note": thought.text.strip()[:2000]})
        self.log(f"master {self.name} reviewed {task} ({outcome['tokens']:,} tokens)")

    def release(self) -> None:
        duty_id = f"release:{self.pool}"
        if duty_id in self.done:
            return
        op = self.ledger.release(duty_id, self.pool, who=self.name)
        self._record(duty_id, {"kind": "release", "tokens": op.amount, "at": now()})
        if not op.replay:
            self.log(f"master {self.name}: work over, {op.amount:,} unused pool tokens returned to {self.larry.id}")

    def report(self) -> bool:
        """Write the master's own part of its Larry's report (once); True."""
        key = self.ks.master_report(self.larry.id, self.master.name)
        if self.r.exists(key):
            return True
        reviewed = [t for t in self.tasks if f"review:{t}" in self.done]
        decisions = [{k: d[k] for k in ("escalation", "task", "decision", "detail")}
                     for d in self.done.values() if d["kind"] == "escalation"]
        report = {"name": self.master.name, "agent": self.mind.name, "planned": self.done.get(
            f"plan:{self.name}", {}).get("tasks", 0), "reviewed": reviewed, "decisions": decisions,
            "duties": len(self.done), "written_at": now()}
        self.r.set(key, json.dumps(report))
        self.events.emit("master_reported", self.name, larry=self.larry.id, master=self.master.name)
        spent = self.ledger.figures(self.personal)["committed"]
        self.log(f"master {self.name}: report written ({len(reviewed)} reviewed, {len(decisions)} escalations "
                 f"decided, {spent:,} of {self.master.personal_tokens:,} personal tokens spent)")
        return True


def environment_of(larry: Larry, master: Master) -> dict[str, str]:
    """What a master's agent learns of itself from its environment."""
    return {**os.environ, envvar.LARRY_ID: larry.id, envvar.MASTER: master.name}
