"""Masters as processes of their own under `larry run`: one killed mid-run is restarted by the
supervisor, does what its predecessor left undone and charges nothing twice."""
from __future__ import annotations

import time

from plan.model import master_account
from runtime.agent.master import PLAN_SHARE, overseen, review_tokens
from runtime.coordination.ledger import figures
from tests.scenarios.test_run import DEV, RUN_TIMEOUT, assert_every_task_completed_once, finish, kill_run, observed  # noqa: F401

LARRY = "larry-03"
MASTER = next(m for m in DEV.larry(LARRY).masters if m.name == "inventory-master")


def test_a_master_killed_mid_run_is_restarted_and_charges_nothing_twice(observed):  # noqa: F811
    proc = observed.start()
    tasks = overseen(DEV.larry(LARRY), MASTER)[0]
    duties = observed.ks.master_duties(LARRY, MASTER.name)
    deadline = time.monotonic() + RUN_TIMEOUT
    # Killed once it has planned and reviewed some, not all, of its tasks.
    while not 3 <= observed.r.hlen(duties) < len(tasks) + 1:
        if proc.poll() is not None or time.monotonic() > deadline:
            kill_run(proc)
            raise AssertionError(f"the master's duties never reached 3 of {len(tasks) + 2} before the run ended "
                                 f"or {RUN_TIMEOUT} s passed (it had {observed.r.hlen(duties)})")
        observed.listener.poll(200)  # woken by the run's events
    done_before = observed.r.hlen(duties)
    observed.kill_9(f"master-{LARRY}-{MASTER.name}")
    code, out = finish(proc)
    assert code == 0, out
    assert f"master-{LARRY}-{MASTER.name} exited with status -9; restart 1 in" in out
    log = (observed.dir / "logs" / f"master-{LARRY}-{MASTER.name}.log").read_text()
    assert "--- start 2 at" in log
    assert_every_task_completed_once(observed)
    personal = figures(observed.r, observed.ks, master_account(LARRY, MASTER.name, "personal"))
    assert personal["committed"] == int(MASTER.personal_tokens * PLAN_SHARE) + sum(
        review_tokens(MASTER, t, len(tasks)) for t in tasks), "the plan and every review charged exactly once"
    assert observed.r.hlen(duties) == len(tasks) + 2 > done_before, "its successor did the duties left undone"
    mine = next(m for m in observed.report(LARRY)["masters"] if m["name"] == MASTER.name)
    assert (mine["reported_by"], mine["reviewed"], mine["personal"]["committed"]) == (
        "master", len(tasks), personal["committed"])
