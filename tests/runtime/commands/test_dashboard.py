"""`larry dashboard`: frames rendered from a real Redis state, event-driven updates, the
reconnect path across a redis-server restart, and Ctrl+C under a pseudo-terminal."""
from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest
from rich.console import Console

from plan.loader import load_stack
from plan.statuses import SchemaWorkerStatus, TaskStatus
from runtime.cli import main as larry
from runtime.commands.dashboard import RETRY_SECONDS, Dashboard, layout, print_frame, task_rows
from runtime.coordination.connection import RedisSettings, connect
from runtime.coordination.escalations import Escalations
from runtime.coordination.events import EventLog
from runtime.coordination.keys import Keyspace
from runtime.coordination.ledger import Ledger
from runtime.coordination.phases import PhaseTracker
from runtime.coordination.registry import WorkerRegistry
from runtime.support.timing import Timing
from tests.runtime.commands.run_state import DEV, PROGRESS, ROOT, build_run, finish_run, finish_task, run_args
from tests.runtime.commands.test_status import ODD_FINDINGS


def frame(dash: Dashboard, width: int = 140, height: int = 48) -> str:
    """The live screen as a terminal of ``width`` x ``height`` would show it."""
    console = Console(record=True, width=width, height=height, file=open(os.devnull, "w"))
    console.print(layout(dash))
    return console.export_text()


def line_of(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


def step_until(dash: Dashboard, predicate, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the dashboard did not get there in time"
        dash.step(0.1)


def test_frame_shows_the_seed_layout_from_redis_state(r, ks):
    built = build_run(r, ks)
    dash = Dashboard(DEV, ks, r, events=60)
    dash.connect()
    assert len(dash.events) == 19  # 3 phase_started, 3 progress_update, 13 task events
    text = frame(dash, height=70)
    assert "3-LARRY DISTRIBUTED ORCHESTRATION DASHBOARD" in text and "Elapsed Time: 0m 0" in text
    assert "Redis: connected" in text
    for title in ("LARRY STATUS", "ACTIVE TASKS", "RECENT EVENTS", "Press Ctrl+C to exit"):
        assert title in text
    bars = {}
    for larry_id, (percent, message) in PROGRESS.items():
        row = line_of(text, f"● {larry_id.upper()}")
        assert "in_progress" in row and f"{percent}%" in row
        bars[larry_id] = row.count("━")  # a console without colour draws only the done part
        assert "progress_update" in line_of(text, f"→ {percent}% - {message}")
        worker, task = built["held"][larry_id]
        assert worker in line_of(text, f"[{larry_id}]  {task}")
    assert bars["larry-01"] > bars["larry-02"] > bars["larry-03"] > 0
    assert "Critical: 3 | High: 4" in line_of(text, "● LARRY-02") and "Medium: 5" in text
    assert "Assets: 87 | PRs: 2" in line_of(text, "● LARRY-03") and "Coverage: +8.0%" in text
    assert "22.0k / 211k" in line_of(text, "● LARRY-03")
    assert "8 workers" in text and "2/12 done" in line_of(text, "● LARRY-02")
    assert "scan-k8s-deployments" in line_of(text, "completed    catalog-worker-01")


def test_only_what_an_event_names_is_read_again(r, ks):
    build_run(r, ks)
    dash = Dashboard(DEV, ks, r)
    dash.connect()
    r.set(ks.phase_progress("larry-01"), "99")  # a change no event reports
    PhaseTracker(r, ks, "larry-02").progress(80, "triage")
    step_until(dash, lambda: dash.larrys["larry-02"]["progress"] == 80)
    assert dash.larrys["larry-01"]["progress"] == 60, "larry-01 was read again without an event naming it"
    assert "80% - triage" in frame(dash)
    EventLog(r, ks).emit("progress_update", "larry-01", larry="larry-01", progress=99, message="poke")
    step_until(dash, lambda: dash.larrys["larry-01"]["progress"] == 99)
    assert "99%" in line_of(frame(dash), "● LARRY-01")


def test_phase_completion_and_barrier_release_show_up(r, ks):
    build_run(r, ks)
    dash = Dashboard(DEV, ks, r)
    dash.connect()
    assert "Barrier" not in line_of(frame(dash), "Redis: connected")
    WorkerRegistry(r, ks, grace_ms=0).reap("scan-worker-01")
    step_until(dash, lambda: dash.events[0].name == "worker_dead")
    row = line_of(frame(dash), "→ worker=scan-worker-01")
    assert "[alerts]" in row and "[registry]" in row and "worker_dead" in row
    finish_run(r, ks)
    step_until(dash, lambda: dash.barriers and dash.barriers[0]["released_at"]
               and all(s["status"] == "completed" for s in dash.larrys.values()))
    text = frame(dash)
    assert "Barrier convergence: released" in text
    assert all("completed" in line_of(text, f"● {x.id.upper()}") for x in DEV.larrys)
    assert "100%" in line_of(text, "● LARRY-03")
    elapsed = dash.elapsed()
    dash.clock = lambda: time.time() + 600
    assert dash.elapsed() == elapsed < 5, "the elapsed time must stop once every phase has ended"


def test_redis_outage_shows_reconnecting_then_recovers(own_server):
    ks = Keyspace(prefix="outage:")
    r = connect(RedisSettings(url=own_server.url, retry_for=RETRY_SECONDS))
    build_run(r, ks)
    dash = Dashboard(DEV, ks, r, redis_at=own_server.url)
    dash.connect()
    own_server.kill()
    step_until(dash, lambda: dash.conn.state == "reconnecting")
    text = frame(dash)
    assert f"Redis: reconnecting {own_server.url}" in text
    assert "60%" in line_of(text, "● LARRY-01"), "the last state stays on screen during the outage"
    dash.step(0.2)  # retrying against a dead server changes nothing
    assert dash.conn.state == "reconnecting"
    own_server.start()  # same port, empty (no persistence): the run starts over
    PhaseTracker(r, ks, "larry-01").start()
    PhaseTracker(r, ks, "larry-01").progress(20, "after the restart")
    step_until(dash, lambda: dash.conn.state == "connected" and dash.larrys["larry-01"]["progress"] == 20)
    text = frame(dash)
    assert "Redis: connected" in text and "reconnected after a 0m" in text
    assert dash.conn.outages == 1
    PhaseTracker(r, ks, "larry-01").progress(30, "still following the stream")
    step_until(dash, lambda: dash.larrys["larry-01"]["progress"] == 30)
    assert "30% - still following the stream" in frame(dash)
    r.close()


def test_once_prints_one_frame_when_not_on_a_terminal(r, ks, settings, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    build_run(r, ks)
    assert larry(["dashboard", *run_args(settings, ks)]) == 0  # capsys's stdout is no terminal
    out = capsys.readouterr().out
    assert out.count("LARRY STATUS") == 1 and "● LARRY-02" in out and "RECENT EVENTS" in out
    assert "task_claimed" in out and "fix-pgadmin-crashloop" in out


def test_once_with_unreachable_redis_is_one_line_exit_2(ks, capsys):
    argv = ["dashboard", "--once", "--stack", "dev", "--project-dir", str(ROOT), "--redis-url", "redis://127.0.0.1:1/0"]
    assert larry(argv) == 2
    err = capsys.readouterr().err
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in err and err.count("\n") == 1


def escalations_region(text: str) -> list[str]:
    """The lines of the OPEN ESCALATIONS region ([] when the frame has none)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "OPEN ESCALATIONS" in line), None)
    if start is None:
        return []
    end = next(i for i, line in enumerate(lines) if "ACTIVE TASKS" in line)
    return lines[start:end]


def test_open_escalations_show_until_an_operator_decides(r, ks):
    """Raised and decided through the real API; the dashboard follows the escalation events
    and reads them again from Redis: each open one shows, a decided one goes."""
    build_run(r, ks)
    dash = Dashboard(DEV, ks, r, events=5)
    dash.connect()
    assert escalations_region(frame(dash)) == [], "the region takes room only while escalations are open"
    escalations = Escalations(r, ks)
    for n, (task, severity) in enumerate((("scan-core-namespaces", "critical"), ("scan-platform-namespaces", "high"))):
        escalations.raise_(f"k{n}", sender=f"larry-02/scan-worker-0{n + 1}/77-ab12", larry="larry-02",
                           account="larry-02", task=task, issue=f"larry-02 is {n + 1}0 tokens past its limit",
                           severity=severity, recommendation=f"approve 51{n} tokens for {task}", tokens_short=510 + n)
    step_until(dash, lambda: len(escalations_region(frame(dash))) == 4)  # title, two rows, bottom border
    title, first, second, _ = escalations_region(frame(dash))
    assert "options=" not in frame(dash), "the seed's options, the same in every escalation, are left out of the events"
    assert "OPEN ESCALATIONS (2)" in title
    for row, values in ((first, ("esc-1", "larry-02/scan-worker-01", "critical", "larry-02 is 10 tokens past",
                                 "approve 510 tokens")),
                        (second, ("esc-2", "larry-02/scan-worker-02", "high", "larry-02 is 20 tokens past",
                                  "approve 511 tokens"))):
        assert all(value in row for value in values), row
    console = Console(record=True, width=120, file=open(os.devnull, "w"))
    print_frame(dash, console)  # what --once prints makes room for the region too
    printed = console.export_text()
    assert len(escalations_region(printed)) == 4 and "Press Ctrl+C" in printed.splitlines()[-1]
    escalations.deny("esc-2", "not this quarter", by="ops")
    step_until(dash, lambda: "OPEN ESCALATIONS (1)" in frame(dash))
    region = escalations_region(frame(dash))
    assert any("esc-1" in line for line in region) and not any("esc-2" in line for line in region)
    assert escalations.approve("esc-1", Ledger.for_plan(r, ks, DEV), 510, by="ops").status == "approved"
    step_until(dash, lambda: not escalations_region(frame(dash)))
    text = frame(dash)  # the events name who raised (the spender's Larry) and who decided
    assert "[larry-02]" in line_of(text, "escalation_raised") and "[ops]" in line_of(text, "escalation_decided")
    assert sum("escalation_decided" in line and "[ops]" in line for line in text.splitlines()) == 2


def test_print_frame_fits_its_content(r, ks):
    build_run(r, ks)
    dash = Dashboard(DEV, ks, r, events=4)
    dash.connect()
    console = Console(record=True, width=120, file=open(os.devnull, "w"))
    print_frame(dash, console)
    lines = console.export_text().splitlines()
    assert lines[0].startswith("╔") and "Press Ctrl+C" in lines[-1]
    assert not any("… and" in line or "older" in line for line in lines), "a printed frame left rows out"
    assert sum("→" in line for line in lines) == 4, "four events, each on its line"
    assert sum("[larry-0" in line for line in lines) == 4 + len(task_rows(dash)) == 4 + 3 + 1


@pytest.mark.parametrize("sig, started_ignoring", [(signal.SIGINT, False), (signal.SIGTERM, False),
                                                   (signal.SIGINT, True)],
                         ids=["SIGINT", "SIGTERM", "SIGINT-started-ignored"])
def test_ctrl_c_leaves_the_terminal_clean_and_exits_0(r, ks, settings, sig, started_ignoring):
    """Under a pseudo-terminal (the live screen): SIGINT/SIGTERM exit with status 0, the
    alternate screen is left, no traceback. Ctrl+C works even when the dashboard was started
    with SIGINT ignored, as a script's background job or ``nohup`` starts it."""
    build_run(r, ks)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 130, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT)}
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    disposition = signal.SIG_IGN if started_ignoring else signal.SIG_DFL
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "dashboard", *run_args(settings, ks)],
                            stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env, close_fds=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, disposition))
    os.close(slave)
    seen = b""
    try:
        # Generous: a loaded two-core machine can take many seconds to start Python and rich.
        deadline = time.monotonic() + 60
        while b"LARRY-03" not in seen:
            assert proc.poll() is None, f"the dashboard exited with {proc.returncode}: {seen[-500:]!r}"
            assert time.monotonic() < deadline, f"no frame drawn in 60 s: {seen[-500:]!r}"
            seen += _read(master, 0.2)
        proc.send_signal(sig)
        # Keep reading, as a terminal does: a dashboard blocked writing to a full
        # pseudo-terminal could never get as far as leaving the alternate screen.
        deadline = time.monotonic() + 30
        while proc.poll() is None:
            assert time.monotonic() < deadline, f"the dashboard did not exit within 30 s of {sig.name}"
            seen += _read(master, 0.2)
        assert proc.returncode == 0
        seen += _read(master, 0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"\x1b[?1049l" in seen[seen.index(b"\x1b[?1049h"):], "the alternate screen was not left"
    assert b"Traceback" not in seen and b"KeyboardInterrupt" not in seen


def _read(fd: int, timeout: float) -> bytes:
    """What the terminal has to read within about ``timeout`` (bounded even while the screen redraws)."""
    import select
    data = b""
    until = time.monotonic() + timeout + 1.0
    while time.monotonic() < until and select.select([fd], [], [], timeout)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        data += chunk
        timeout = 0.05
    return data


def test_findings_of_an_unexpected_shape_do_not_crash_the_frame(r, ks):
    build_run(r, ks)
    finish_task(r, ks, "larry-02", "scan-worker-02", "check-outdated-dependencies", ODD_FINDINGS, 10)
    dash = Dashboard(DEV, ks, r, events=5)
    dash.connect()
    assert "Critical: 3" in line_of(frame(dash, height=70), "● LARRY-02")


def test_the_elapsed_time_is_shown_against_the_window_the_run_has(r, ks):
    build_run(r, ks)
    dash = Dashboard(DEV, ks, r, events=5, timing=Timing(60, allowance=10))
    dash.connect()
    # 40 plan minutes at x60 plus the 10 s allowance: 50 s, not "40m"
    assert re.search(r"Elapsed Time: 0m 0\ds / 0m 50s \(40m at ×60\)", frame(dash))


def test_a_page_shows_and_reads_its_larrys_only_and_the_fleet_in_one_line(r, ks):
    build_run(r, ks)
    dash = Dashboard(DEV, ks, r, shown=[DEV.larry("larry-02")], which="Larry larry-02")
    dash.connect()
    text = frame(dash, height=40)
    assert "3-LARRY DISTRIBUTED ORCHESTRATION DASHBOARD" in text
    assert "● LARRY-02" in text and "● LARRY-01" not in text and "● LARRY-03" not in text
    assert "Larry larry-02 · Fleet: 3 Larrys (3 in_progress); least progressed: larry-03 35%" in text
    assert set(dash.larrys) == {"larry-02"} and {w["larry"] for w in dash.workers} == {"larry-02"}


def test_a_plan_on_seed_004s_protocol_shows_master_status_and_worker_distribution(r):
    cortex = load_stack("cortex", ROOT)
    ks = Keyspace.for_plan(cortex.channels, prefix=f"t{os.urandom(5).hex()}:")
    security = cortex.larrys[0]
    task = security.workers[0].tasks[0]
    r.set(ks.task_status(task.id), TaskStatus.IN_PROGRESS)
    r.hset(ks.schema_worker(security.workers[0].name), "status", SchemaWorkerStatus.RUNNING)
    dash = Dashboard(cortex, ks, r, events=5)
    dash.connect()
    text = frame(dash, width=180, height=80)
    assert "MASTER STATUS" in text and "WORKER DISTRIBUTION" in text
    assert task.title[:20] in line_of(text, "security-master:")
    nodes = {w.node for larry in cortex.larrys for w in larry.workers}
    assert all(f"{node}: [" in text for node in nodes)
    console = Console(record=True, width=180, file=open(os.devnull, "w"))
    print_frame(dash, console)
    printed = console.export_text()
    assert "MASTER STATUS" in printed and "RECENT EVENTS" in printed and "monitoring-master:" in printed
    # seed 001's plan has no masters' queues: the Larry table alone
    dev = Dashboard(DEV, Keyspace(prefix=ks.prefix), r, events=5)
    dev.connect()
    assert "MASTER STATUS" not in frame(dev)
