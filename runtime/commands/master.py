"""`larry master`: one master's process (in a cluster, its own Deployment of one pod).

::

    larry master --plan /etc/larry/plan.yaml --larry larry-01 --master security-master [--usage ADAPTER] [-- AGENT...]

It waits for its Larry's coordinator to start the phase, then does its duties
(:mod:`runtime.agent.master`: plan, decide its workers' escalations, review the tasks it
oversees, release its pool, report) as they fall due: on every event of the stream and at
least every heartbeat interval it reads the task statuses and the open escalations from Redis
and does what is due and not yet done. Once the phase has ended and its report is written it
keeps running until SIGTERM, as a Deployment's pod must (``--once`` exits 0 instead).

Its mind: the command after ``--`` (metered by ``--usage``, default the profile's adapter
when the command is its profile's, else the ``@larry`` protocol), else the command of its
agent profile (``agent:`` on the master, or ``larry:defaultAgent``), else the built-in
deterministic master, which spends simulated personal tokens.

While it is down (killed, restarted by the supervisor or Kubernetes), nothing it owes is lost
and nothing waits on it but its duties: the coordinator and the workers carry on without it.
A restarted master reads what is due from Redis state, not from events it may have missed, so
its successor does every duty its predecessor did not finish, once (see
:mod:`runtime.agent.master` for what an agent's interrupted duty costs). Meanwhile: reviews and
the plan are done late; a worker's escalation stays open (the worker stays paused, its lease
kept) until the master returns or an operator decides it (``larry approve`` / ``deny`` always
work); its pool is released late, so its Larry lends those tokens late. A master that is still
down when its coordinator writes the Larry's report is reported by the coordinator
(``reported_by: coordinator``, nothing reviewed), with its accounts' figures.

Masters' events (seed 004): each start announces ``MASTER_ACTIVATION``; every round it
acknowledges the handoffs addressed to it (:mod:`runtime.coordination.handoffs`: the task moves
to its queue, ``handoffs.json`` is rewritten); its heartbeat is what its coordinator watches
(:mod:`runtime.coordination.masters`: silent past the grace, its pending tasks are handed over).

Exit status: 0 (``--once``, report written); 1 when Redis went away (a restart resumes); 2 for
usage errors; 130 when interrupted.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import redis

from plan import environment as envvar
from plan.exits import ExitCode
from plan.model import master_account
from plan.statuses import TERMINAL, PhaseStatus
from plan.taskgraph import TaskGraph
from runtime.agent.master import AgentMind, BuiltInMind, MasterDuties, environment_of
from runtime.cli import (
    hold,
    interrupt_on_sigterm,
    open_redis,
)
from runtime.commands.worker import add_member_arguments, choose_payload, load_member
from runtime.coordination.events import EventListener
from runtime.coordination.handoffs import Handoffs
from runtime.coordination.ledger import Ledger
from runtime.coordination.masters import MasterWatch
from runtime.coordination.schema import MasterBoard
from runtime.support import callstats
from runtime.support.timing import Timing

log = logging.getLogger(__name__)

#: Plan minutes an agent may take over one duty before it is stopped.
DUTY_MINUTES = 10


def configure_parser(parser) -> None:
    add_member_arguments(parser, "master", envvar.MASTER)
    parser.add_argument("--once", action="store_true", help="exit once the master's report is written")


EXAMPLES = """\
examples:
  larry master --plan /etc/larry/plan.yaml --larry larry-01 --master security-master
  larry master --stack dev --larry larry-01 --master infra-master --speed 60 --usage claude-code -- claude -p ...
"""


def main(args) -> int:
    cfg, larry, master = load_member(args, "master")
    command, usage, profile = choose_payload(cfg.agent_of(master), args.payload, args.usage, [])
    callstats.install(f"master-{larry.id}-{master.name}")
    r, ks = open_redis(args, cfg)
    interrupt_on_sigterm()
    timing = Timing.from_env(args.speed)
    name = f"{larry.id}/{master.name}"

    def say(text: str) -> None:
        print(text, flush=True)

    ledger = Ledger.for_plan(r, ks, cfg)
    personal = master_account(larry.id, master.name, "personal")
    if command:
        mind = AgentMind(ledger, personal, name, command=command, usage=usage, profile=profile,
                         workdir=Path(args.coordination_dir) / "masters" / larry.id / master.name,
                         seconds=timing.deadline(DUTY_MINUTES), kill_grace=args.kill_grace,
                         env=environment_of(larry, master), log=say)
    else:
        mind = BuiltInMind(ledger, personal, name)
    # Read the stream position before any state, so no event after a state read is missed.
    listener = EventListener(r, ks, "$")
    board = MasterBoard(r, ks, ledger, trigger=cfg.budget.reserve_trigger)
    handoffs = Handoffs(r, ks)
    try:
        duties = MasterDuties(r, ks, ledger, TaskGraph(cfg), larry, master, mind, say)
        say(f"master {name}: {mind.name} mind, overseeing {len(duties.tasks)} tasks")
        board.beat(master.name)
        MasterWatch(r, ks, cfg, grace=timing.dead_after_ms / 1000).activated(larry.id, master.name, duties.tasks)
        # From a thread of its own: a duty an agent takes minutes over must not look like silence.
        threading.Thread(target=beat_forever, args=(board, master.name, timing.heartbeat), daemon=True,
                         name="master-heartbeat").start()
        while True:
            acknowledge_handoffs(handoffs, name, master.name, args.coordination_dir, say)
            phase = r.get(ks.phase_status(larry.id)) or PhaseStatus.PENDING
            if phase != PhaseStatus.PENDING:
                statuses = dict(zip(duties.graph.ids, r.mget([ks.task_status(t) for t in duties.graph.ids])))
                if duties.tend(statuses, phase_ended=phase in TERMINAL):
                    break
            until = time.monotonic() + timing.heartbeat
            while (left := until - time.monotonic()) > 0 and not listener.poll(block_ms=max(1, int(left * 1000))):
                pass
    except redis.exceptions.RedisError as error:
        log.error("larry master: %s: lost Redis (%s); a restart resumes from Redis state", name, error)
        return ExitCode.FAILED
    return hold(args.once)


def beat_forever(board: MasterBoard, master: str, interval: float) -> None:
    """The master's heartbeat, every ``interval`` s for the life of the process."""
    while True:
        time.sleep(interval)
        try:
            board.beat(master)
        except redis.exceptions.RedisError as error:
            log.debug("heartbeat of %s missed: %s", master, error)  # what the coordinator's grace is for


def acknowledge_handoffs(handoffs: Handoffs, sender: str, master: str, coordination_dir, say) -> None:
    """Acknowledge the handoffs addressed to ``master`` (the task moves to its queue, or the
    handoff is refused saying why) and rewrite ``handoffs.json``."""
    open_ = handoffs.open_for(master)
    for handoff in open_:
        status, why = handoffs.acknowledge(sender, handoff["id"], master)
        say(f"master {sender}: {handoff['id']} of {handoff['task_id']} from {handoff['from_master']}: {status}"
            + (f" ({why})" if why else ""))
    if open_:
        handoffs.write_file(coordination_dir)
