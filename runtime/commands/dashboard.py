"""``larry dashboard``: seed 000's "Monitoring Dashboard Layout" as a live terminal UI (rich).

Regions, top to bottom: the title with current and elapsed time against the window the run
has (the plan's execution window at ``--speed``, plus the allowance), the Redis connection and
the barrier; LARRY STATUS (per Larry: status, progress bar, tasks, active workers, tokens,
findings); for a plan on seed 004's protocol (queue assignment) shown whole, seed 004's
MASTER STATUS and WORKER DISTRIBUTION (:mod:`runtime.reporting.cortex_view`);
OPEN ESCALATIONS (id, from, severity, issue, recommendation), only while some
wait for an operator; ACTIVE TASKS (tasks in progress and who holds them, orphaned ones
flagged); RECENT EVENTS (newest first); a footer.

Event-driven: the dashboard reads the whole state once, then follows the event stream with
:class:`runtime.coordination.events.EventListener` (``XREAD BLOCK``) and re-reads only what an event
names: the Larry of a ``larry``/``task_id``/``worker`` field, the barriers on
``barrier_*``, the reserve pool on ``token_reserve_deployed``, the escalations on
``escalation_raised`` and ``escalation_decided``; at most every
:data:`MIN_READ_INTERVAL` s however fast events come. Heartbeats emit no events, so the
worker list alone is re-read every :data:`WORKERS_EVERY` s. The screen is a
:class:`rich.live.Live` on a :class:`rich.layout.Layout` whose regions keep their size:
it is redrawn when the state changed and once a second for the clock, never otherwise.

When Redis goes away the dashboard keeps the last state on screen marked
``reconnecting``, retries with backoff, and on reconnection re-reads everything and
resumes the stream after the last event it showed (no event lost or repeated).

A fleet is shown a page at a time (``--page``, ``--page-size``, default :data:`PAGE_SIZE`
Larrys; ``--larry`` for one): only the page's Larrys and their workers are read and followed,
and a header line sums up the whole fleet from each Larry's phase keys (Larrys by status,
the least progressed), re-read on phase and progress events.

Ctrl+C (or SIGTERM) leaves the screen as it was before and exits with status 0. When
stdout is not a terminal, or with ``--once``, one frame is printed and the command exits
(status 2 if Redis cannot be reached).
"""
from __future__ import annotations

import argparse
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import redis
from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from plan.model import Larry, StackConfig
from plan.statuses import TaskStatus
from plan.taskgraph import TaskGraph
from runtime.catalog.figures import Reading, assets_text, from_redis
from runtime.cli import UsageError, add_run_arguments, add_speed_argument, interrupt_on_sigterm, open_run
from runtime.commands.status import add_paging_arguments, fleet_text
from runtime.coordination.escalations import Escalations
from runtime.coordination.events import Event, EventListener, EventLog
from runtime.coordination.keys import Keyspace
from runtime.reporting.cortex_view import CortexView, master_status, read_cortex, worker_distribution
from runtime.reporting.run_text import barrier_text, findings_items, status_text, tokens_text
from runtime.reporting.run_view import (
    count_active,
    describe,
    larry_of_worker,
    read_barriers,
    read_fleet,
    read_larry,
    read_pool,
    read_workers,
    select_larrys,
)
from runtime.support.timestamps import parse_optional
from runtime.support.timing import Timing

#: Fewest seconds between two reads of the same state, however fast events arrive.
MIN_READ_INTERVAL = 0.25
#: Worker heartbeats emit no events: the worker list is re-read this often.
WORKERS_EVERY = 5.0
#: The clock in the title is redrawn this often.
TICK = 1.0
#: The dashboard's client gives up a command after this long, so an outage shows at once.
RETRY_SECONDS = 1.0
BACKOFF = (0.25, 4.0)
#: Open escalations shown at most; past that the last line says how many more wait.
ESCALATION_ROWS = 5
#: Seed 002: Purple = Larry-01, Red = Larry-02, Green = Larry-03; then on.
LARRY_COLORS = ("magenta", "red", "green", "cyan", "yellow", "blue", "bright_magenta", "bright_green")
ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
#: Larrys on one page by default (two lines each): a fleet's hundred would not fit a screen.
PAGE_SIZE = 8


EXAMPLES = """\
examples:
  larry dashboard --stack dev --speed 60
  (set -a; . .larry-runs/<run>/redis/env; larry dashboard --stack dev)   # a held `larry run`
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    add_speed_argument(parser)
    parser.add_argument("--events", type=int, default=10, metavar="N", help="recent events kept (default 10)")
    parser.add_argument("--once", action="store_true", help="print one frame and exit (also when not on a terminal)")
    add_paging_arguments(parser, PAGE_SIZE)


@dataclass
class Connection:
    state: str = "connecting"  # connecting | connected | reconnecting
    since: float = 0.0         # local time the state began
    error: str = ""
    outages: int = 0
    last_outage: float | None = None  # seconds the last outage lasted


class Dashboard:
    """The dashboard's state and the event loop step; rendering is :func:`layout`."""

    def __init__(self, cfg: StackConfig, ks: Keyspace, r: redis.Redis, *, events: int = 10, redis_at: str = "",
                 clock: Callable[[], float] = time.time, timing: Timing | None = None,
                 shown: list[Larry] | None = None, which: str = ""):
        self.cfg, self.ks, self.r, self.redis_at, self.clock = cfg, ks, r, redis_at, clock
        self.timing = timing or Timing()
        #: the Larrys on screen (a page of the fleet, or one), and how the header names them
        self.shown, self.which = list(shown or cfg.larrys), which
        self.paged = len(self.shown) < len(cfg.larrys)
        #: Seed 004's Master Status and Worker Distribution, for a plan on its protocol shown
        #: whole (they read every task of the plan: a page of a fleet shows the Larry table).
        self.cortex: CortexView | None = None
        self.shows_cortex = cfg.queued and not self.paged
        self.ids = [larry.id for larry in self.shown]
        self.fleet: dict | None = None
        self.larrys: dict[str, dict] = {}
        self.workers: list[dict] = []
        self.pool: dict = {}
        self.barriers: list[dict] = []
        self.escalations = Escalations(r, ks)
        self.open_escalations: list[dict] = []
        self.catalog: Reading | None = None  # with the catalog on: its assets, new since the baseline
        self.events: deque[Event] = deque(maxlen=events)
        self.listener: EventListener | None = None
        self.conn = Connection(since=clock())
        self.redis_offset = 0.0  # the primary's clock minus ours, seconds
        self.dirty: set[str] = set()
        self.task_larry = TaskGraph(cfg).larry
        self._worker_larry = larry_of_worker(cfg)
        self._last_read = 0.0
        self._workers_due = 0.0
        self._retry_at = 0.0
        self._backoff = BACKOFF[0]

    # ---- reading
    def sync(self) -> None:
        """Read everything; start (or resume) following the stream."""
        if self.listener is None:
            self.listener = EventListener(self.r, self.ks, "$")
            self.events.extend(reversed(EventLog(self.r, self.ks).recent(self.listener.positions, self.events.maxlen)))
        self.dirty = {*self.ids, "workers", "pool", "barriers", "escalations", "fleet"}
        self._read()

    def connect(self) -> None:
        """Read everything and mark Redis reachable; raises the Redis error when it is not."""
        self.sync()
        outage = self.clock() - self.conn.since if self.conn.state == "reconnecting" else self.conn.last_outage
        self.conn = Connection("connected", self.clock(), "", self.conn.outages, outage)
        self._backoff = BACKOFF[0]

    def _read(self) -> None:
        # Only what is on screen: the page's Larrys and their workers, the fleet in brief.
        for larry in self.shown:
            if larry.id in self.dirty:
                self.larrys[larry.id] = read_larry(self.r, self.ks, larry)
        if "workers" in self.dirty or self.dirty & set(self.ids):
            self.workers, now_ms = read_workers(self.r, self.ks, self.cfg, set(self.ids) if self.paged else None)
            self.redis_offset = now_ms / 1000 - self.clock()
            self._workers_due = time.monotonic() + WORKERS_EVERY
        count_active(list(self.larrys.values()), self.workers)
        if "pool" in self.dirty:
            self.pool = read_pool(self.r, self.ks, self.cfg)
        if "barriers" in self.dirty:
            self.barriers = read_barriers(self.r, self.ks, self.cfg.larry_ids)
        if "fleet" in self.dirty and self.paged:
            self.fleet = read_fleet(self.r, self.ks, self.cfg)
        if "escalations" in self.dirty:
            self.open_escalations = [e for e in self.escalations.all() if e["status"] == "open"]
        if self.shows_cortex and ("workers" in self.dirty or self.dirty & set(self.ids)):
            self.cortex = read_cortex(self.r, self.ks, self.cfg)
        if self.cfg.catalog.enabled and self.dirty & set(self.ids):  # a finished task may have added assets
            self.catalog = from_redis(self.r, self.ks)
        self.dirty = set()
        self._last_read = time.monotonic()

    def affected(self, event: Event) -> set[str]:
        """What ``event`` may have changed: Larry ids, ``workers``, ``pool``, ``barriers``,
        ``escalations``."""
        data, tags = event.data, set()
        for candidate in (data.get("larry"), self.task_larry.get(str(data.get("task_id"))),
                          str(data.get("from") or "").split("/")[0]):
            if candidate in self.ids:
                tags.add(candidate)
        if "worker" in data:
            tags |= {"workers", *({self._worker_larry(str(data["worker"]), None)} & set(self.ids))}
        if event.name.startswith("barrier_"):
            tags.add("barriers")
        if event.name.startswith(("phase_", "progress_")):
            tags.add("fleet")
        if event.name == "token_reserve_deployed":
            tags.add("pool")
        if event.name in ("escalation_raised", "escalation_decided"):
            tags.add("escalations")
        return tags

    # ---- the loop
    def step(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for events and apply them; True when the view changed."""
        try:
            if self.conn.state != "connected":
                return self._reconnect(timeout)
            wait = timeout
            if self.dirty:
                wait = min(wait, max(0.0, self._last_read + MIN_READ_INTERVAL - time.monotonic()))
            events = self.listener.poll(block_ms=max(1, int(wait * 1000)))
            for event in events:
                self.events.appendleft(event)
                self.dirty |= self.affected(event)
            if time.monotonic() >= self._workers_due:
                self.dirty.add("workers")
            read = bool(self.dirty) and time.monotonic() >= self._last_read + MIN_READ_INTERVAL
            if read:
                self._read()
            return bool(events) or read
        except ERRORS as exc:
            self._lost(exc)
            return True

    def _lost(self, exc: Exception) -> None:
        if self.conn.state == "connected":
            self.conn = Connection("reconnecting", self.clock(), str(exc), self.conn.outages + 1, self.conn.last_outage)
        else:
            self.conn.state, self.conn.error = "reconnecting", str(exc)
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF[1])

    def _reconnect(self, timeout: float) -> bool:
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, timeout))
            return False
        self.connect()
        return True

    # ---- derived figures
    def redis_now(self) -> float:
        return self.clock() + self.redis_offset

    def window(self) -> float:
        """Seconds the run has: the plan's execution window at the run's speed, plus the
        allowance every deadline gets (:mod:`runtime.support.timing`)."""
        return self.timing.deadline(self.cfg.execution_window_minutes)

    def elapsed(self) -> float | None:
        """Seconds since the first phase started; frozen at the last end once all have ended."""
        states = list(self.larrys.values())
        starts = [t for t in (parse_optional(s["started_at"]) for s in states) if t]
        if not starts:
            return None
        ends = [parse_optional(s["completed_at"]) for s in states]
        if len(states) == len(self.ids) and all(ends):
            return (max(ends) - min(starts)).total_seconds()
        return self.redis_now() - min(starts).timestamp()


# --------------------------------------------------------------------------- rendering

class Fit:
    """A region's content built for its size: ``build(rows, width)``, rows being the height
    less ``overhead`` (a table's header)."""

    def __init__(self, build: Callable[[int, int], RenderableType], overhead: int = 1):
        self.build, self.overhead = build, overhead

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.height or options.max_height
        yield self.build(max(1, height - self.overhead), options.max_width)


def clip(rows: list, limit: int) -> tuple[list, int]:
    """At most ``limit`` rows, keeping one for "… N more" when some are left out."""
    if len(rows) <= limit:
        return rows, 0
    keep = max(0, limit - 1)
    return rows[:keep], len(rows) - keep


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return (f"{hours}h " if hours else "") + f"{rest // 60}m {rest % 60:02d}s"


def local_time(stamp: str | None, fallback_ms: int = 0) -> str:
    moment = parse_optional(stamp) or datetime.fromtimestamp(fallback_ms / 1000, timezone.utc)
    return moment.astimezone().strftime("%H:%M:%S")


def short_owner(owner: str | None) -> str:
    """``larry-01/cleanup-worker/123-ab12cd`` (a lease owner) -> ``larry-01/cleanup-worker``."""
    return "/".join(str(owner or "?").split("/")[:2])


def color_of(dash: Dashboard, larry: str | None) -> str:
    return LARRY_COLORS[dash.ids.index(larry) % len(LARRY_COLORS)] if larry in dash.ids else ""


def header(dash: Dashboard) -> Panel:
    now = datetime.fromtimestamp(dash.clock()).astimezone()
    elapsed = dash.elapsed()
    line = Text.assemble(
        ("Stack ", "dim"), (dash.cfg.stack, "bold"),
        ("   Current Time: ", "dim"), now.strftime("%Y-%m-%d %H:%M:%S"),
        ("   Elapsed Time: ", "dim"),
        f"{duration(elapsed) if elapsed is not None else 'not started'} / {duration(dash.window())}",
        ("" if dash.timing.speed == 1 else f" ({dash.cfg.execution_window_minutes}m at ×{dash.timing.speed:g})", "dim"))
    lines = [line, connection_line(dash)]
    if dash.paged:
        lines.append(Text.assemble((f"{dash.which} · ", "dim"), fleet_text(dash.fleet) if dash.fleet else ""))
    return Panel(Text("\n").join(lines), box=box.DOUBLE, title_align="center",
                 title=Text(f"{len(dash.cfg.larry_ids)}-LARRY DISTRIBUTED ORCHESTRATION DASHBOARD", style="bold"))


def header_size(dash: Dashboard) -> int:
    """Height of the header: its borders, the clock and connection lines, and the page's line."""
    return 5 if dash.paged else 4


def connection_line(dash: Dashboard) -> Text:
    conn = dash.conn
    if conn.state == "connected":
        text = Text.assemble(("Redis: ", "dim"), ("connected", "green"), f" {dash.redis_at}")
        if conn.last_outage is not None:
            text.append(f"  (reconnected after a {duration(conn.last_outage)} outage)", style="yellow")
    else:
        down = duration(dash.clock() - conn.since)
        text = Text.assemble(("Redis: ", "dim"), (conn.state, "bold yellow"),
                             f" {dash.redis_at} for {down}: {conn.error}")
    if dash.catalog is not None:
        text.append_text(Text.assemble(("   Catalog: ", "dim"), assets_text(dash.catalog)))
    for barrier in dash.barriers:
        if barrier["arrived"]:
            text.append_text(Text.assemble(("   Barrier ", "dim"), f"{barrier['name']}: ",
                                           barrier_text(barrier, local_time)))
    return text


def larry_table(dash: Dashboard, width: int = 200) -> Table:
    """One two-line row per Larry: name and phase, status and active workers, progress bar,
    tasks, tokens (from 110 columns on), findings (the seed's metrics, on two lines)."""
    wide = width >= 110
    table = Table(box=box.SIMPLE_HEAD, expand=True, padding=(0, 1), show_edge=False)
    table.add_column("Larry", min_width=11, max_width=22 if wide else 16, no_wrap=True, overflow="ellipsis")
    table.add_column("Status", no_wrap=True)
    table.add_column("Progress", ratio=2)
    table.add_column("%", justify="right", no_wrap=True)
    table.add_column("Tasks", no_wrap=True)
    if wide:
        table.add_column("Tokens used", no_wrap=True)
    table.add_column("Findings", ratio=3, no_wrap=True, overflow="ellipsis")
    for larry in dash.shown:
        state = dash.larrys.get(larry.id)
        color = color_of(dash, larry.id)
        name = Text.assemble(("● ", color), (larry.id.upper(), f"bold {color}"), "\n", (larry.phase, "dim"))
        if state is None:
            table.add_row(name, Text("unknown", style="dim"))
            continue
        tasks = state["tasks"]
        task_text = f"{tasks[TaskStatus.COMPLETED]}/{tasks['total']} done\n" + " · ".join(
            f"{tasks[k]} {label}" for k, label in ((TaskStatus.IN_PROGRESS, "running"), (TaskStatus.FAILED, "failed"))
            if tasks[k])
        active = state.get("workers_active", 0)
        workers = Text(f"\n{active} worker{'' if active == 1 else 's'}", style="dim")
        cells = [name, status_text(state["status"]).append_text(workers),
                 ProgressBar(total=100, completed=state["progress"], complete_style=color or "bar.complete"),
                 f"{state['progress']}%", task_text, tokens_text(state["ledger"]),
                 two_lines(findings_items(state["findings"])) or Text("-", style="dim")]
        table.add_row(*(cells if wide else cells[:5] + cells[6:]))
    return table


def two_lines(items: list[str]) -> str:
    """``items`` joined with `` | ``: one line up to 36 characters, else two of about the same length."""
    if len(" | ".join(items)) <= 36:
        return " | ".join(items)

    def longer(cut: int) -> int:
        return max(len(" | ".join(items[:cut])), len(" | ".join(items[cut:])))
    cut = min(range(1, len(items)), key=longer, default=len(items))
    return "\n".join(" | ".join(part) for part in (items[:cut], items[cut:]) if part)


def larry_rows(dash: Dashboard) -> int:
    """Height of the LARRY STATUS table: header, rule and two lines per Larry."""
    return 2 + 2 * len(dash.ids)


def task_rows(dash: Dashboard) -> list[tuple[str, str, str, Text]]:
    """(Larry, task, status, holder): tasks in progress (orphaned ones flagged), then the
    tasks finished among the recent events."""
    rows = []
    for larry in dash.ids:
        for task in dash.larrys.get(larry, {}).get("active_tasks", []):
            holder = Text("orphaned: holder gone, claimable again", style="bold red") if task["orphaned"] \
                else Text(short_owner(task["owner"]).partition("/")[2])
            rows.append((larry, task["task"], TaskStatus.IN_PROGRESS, holder))
    shown_ids = {row[1] for row in rows}
    for event in dash.events:
        task = str(event.data.get("task_id"))
        if event.name in ("task_completed", "task_failed") and task not in shown_ids:
            shown_ids.add(task)
            larry = dash.task_larry.get(task, "?")
            rows.append((larry, task, event.name.removeprefix("task_"), Text(short_owner(event.sender).partition("/")[2])))
    return rows


def active_tasks(dash: Dashboard, limit: int) -> Table:
    table = Table(box=None, expand=True, padding=(0, 1), show_header=True, header_style="bold")
    table.add_column("Larry", no_wrap=True, min_width=10)
    table.add_column("Task", no_wrap=True, overflow="ellipsis", ratio=3)
    table.add_column("Status", no_wrap=True, min_width=11)
    table.add_column("Held by", no_wrap=True, overflow="ellipsis", ratio=2)
    rows = task_rows(dash)
    shown, more = clip(rows, limit)
    for larry, task, status, holder in shown:
        table.add_row(Text(f"[{larry}]", style=color_of(dash, larry)), task, status_text(status), holder)
    if more:
        table.add_row("", Text(f"… and {more} more", style="dim"))
    if not rows:
        table.add_row("", Text("no task in progress", style="dim"))
    return table


SEVERITY_STYLES = {"critical": "bold red", "high": "red", "medium": "yellow"}


def escalations_size(dash: Dashboard) -> int:
    """Height of the OPEN ESCALATIONS region: its borders and one line per escalation (at most
    :data:`ESCALATION_ROWS`); 0 when none is open, the region is then left out."""
    rows = min(len(dash.open_escalations), ESCALATION_ROWS)
    return rows + 2 if rows else 0


def open_escalations(dash: Dashboard, limit: int) -> Table:
    """One line per escalation waiting for an operator: id, from, severity, issue, recommendation."""
    table = Table(box=None, expand=True, padding=(0, 1), show_header=False)
    table.add_column("id", no_wrap=True, style="bold")
    table.add_column("from", no_wrap=True, max_width=32, overflow="ellipsis")
    table.add_column("severity", no_wrap=True)
    table.add_column("issue", ratio=1, no_wrap=True, overflow="ellipsis")
    table.add_column("recommendation", ratio=1, no_wrap=True, overflow="ellipsis")
    shown, more = clip(dash.open_escalations, limit)
    for e in shown:
        table.add_row(e["id"], Text(short_owner(e["from"]), style=color_of(dash, e.get("larry"))),
                      Text(e["severity"], style=SEVERITY_STYLES.get(e["severity"], "")), e["issue"],
                      f"→ {e['recommendation']}")
    if more:
        table.add_row("", "", "", Text(f"… and {more} more (larry escalations)", style="dim"))
    return table


def recent_events(dash: Dashboard, limit: int) -> Table:
    table = Table(box=None, expand=True, padding=(0, 1), show_header=False)
    table.add_column("time", no_wrap=True, style="dim")
    table.add_column("channel", no_wrap=True)
    table.add_column("from", no_wrap=True, max_width=28, overflow="ellipsis")
    table.add_column("event", no_wrap=True)
    table.add_column("detail", ratio=1, no_wrap=True, overflow="ellipsis")
    shown, more = clip(list(dash.events), limit)
    for event in shown:
        alert = event.channel == dash.ks.alerts
        channel = "alerts" if alert else "coordination" if event.channel == dash.ks.coordination else event.channel
        sender = str(event.sender or "?").split("/")[0]  # a lease owner's Larry; the worker is in the detail
        table.add_row(f"[{local_time(event.data.get('timestamp'), int(event.id.split('-')[0]))}]",
                      Text(f"[{channel}]", style="bold red" if alert else "blue"),
                      Text(f"[{sender}]", style=color_of(dash, sender)),
                      Text(event.name, style="bold red" if alert else "bold"), f"→ {detail}" if (detail := event_detail(event)) else "")
    if more:
        table.add_row("", "", "", Text(f"… {more} older", style="dim"), "")
    if not dash.events:
        table.add_row("", "", "", Text("no events yet", style="dim"), "")
    return table


def event_detail(event: Event) -> str:
    """The seed's second line: ``35% - 3/8 workers completed`` for progress; the task and the
    worker for task events; the other fields as ``name=value``."""
    sender = str(event.sender or "")
    # an escalation's options are the seed's, the same in every one: its OPEN ESCALATIONS row has the rest
    data = {k: v for k, v in event.data.items()
            if k not in ("event", "from", "timestamp", "token", "options") and v != sender}
    parts = []
    if "progress" in data:
        parts.append(f"{data.pop('progress')}%")
    if data.get("message"):
        parts.append(str(data.pop("message")))
    data.pop("message", None)
    if "task_id" in data:
        worker = sender.split("/")[1] if sender.count("/") >= 1 else ""
        parts.append(str(data.pop("task_id")) + (f" ({worker})" if worker else ""))
    parts += [f"{k}={short_owner(v) if k == 'owner' else v}" for k, v in data.items()]
    return " - ".join(parts)


def footer(dash: Dashboard) -> Text:
    last = local_time(dash.events[0].data.get("timestamp"), 0) if dash.events else "none"
    return Text(f" Press Ctrl+C to exit | updates on events from {dash.ks.stream} and {dash.ks.larry_stream('*')} "
                f"(last {last}); workers every {WORKERS_EVERY:g}s", style="dim")


def cortex_sizes(dash: Dashboard) -> tuple[int, int]:
    """Heights of seed 004's two views, borders included: a row per master and the
    coordinator-master's; a line per node and the legend (a line is cut to the width, never
    wrapped). (0, 0) when they are not shown."""
    if dash.cortex is None:
        return 0, 0
    return 2 + len(dash.cortex.masters), 2 + len(dash.cortex.nodes) + 1


def cortex_views(dash: Dashboard) -> list[Layout]:
    if dash.cortex is None:
        return []
    masters, workers = cortex_sizes(dash)
    return [Layout(Panel(Fit(lambda _rows, width: master_status(dash.cortex, width), 0), box=box.HEAVY_HEAD,
                         title=Text("MASTER STATUS", style="bold"), title_align="left"), name="masters", size=masters),
            Layout(Panel(worker_distribution(dash.cortex), box=box.HEAVY_HEAD, title=Text("WORKER DISTRIBUTION", style="bold"),
                         title_align="left"), name="distribution", size=workers)]


def layout(dash: Dashboard, sizes: tuple[int, int] | None = None) -> Layout:
    """The screen. Regions keep their size; ACTIVE TASKS and RECENT EVENTS share what is left
    of the terminal evenly, or get exactly ``sizes`` lines (for a printed frame)."""
    def section(name: str, body: Fit, size: int | None, ratio: int) -> Layout:
        panel = Panel(body, title=Text(name, style="bold"), title_align="left", box=box.HEAVY_HEAD)
        return Layout(panel, name=name, size=size, ratio=ratio, minimum_size=3)

    tasks_size, events_size = sizes or (None, None)
    # what waits for an operator comes right after the Larrys, and only takes room while it waits
    escalations = [] if not escalations_size(dash) else [Layout(
        Panel(Fit(lambda n, _width: open_escalations(dash, n), 0), box=box.HEAVY_HEAD, border_style="red",
              title=Text(f"OPEN ESCALATIONS ({len(dash.open_escalations)})", style="bold red"), title_align="left",
              subtitle=Text("larry approve ID [--tokens N] | larry deny ID --reason ...", style="dim"),
              subtitle_align="left"),
        name="escalations", size=escalations_size(dash))]

    root = Layout(name="root")
    root.split_column(
        Layout(header(dash), name="header", size=header_size(dash)),
        Layout(Panel(Fit(lambda _rows, width: larry_table(dash, width), 0), title=Text("LARRY STATUS", style="bold"), title_align="left",
                     box=box.HEAVY_HEAD), name="larrys", size=larry_rows(dash) + 2),
        *cortex_views(dash),
        *escalations,
        section("ACTIVE TASKS", Fit(lambda n, _width: active_tasks(dash, n)), tasks_size, 1),
        section("RECENT EVENTS", Fit(lambda n, _width: recent_events(dash, n), overhead=0), events_size, 1),
        Layout(footer(dash), name="footer", size=1),
    )
    return root


def print_frame(dash: Dashboard, console: Console) -> None:
    """One frame sized to its content (for --once and pipes)."""
    # panel borders, plus the tasks table's header; the events table has none
    tasks = 3 + max(1, len(task_rows(dash)))
    events = 2 + max(1, len(dash.events))
    console.print(layout(dash, (tasks, events)),
                  height=header_size(dash) + larry_rows(dash) + 2 + sum(cortex_sizes(dash)) + escalations_size(dash) + tasks + events + 1)


# --------------------------------------------------------------------------- the command

def main(args: argparse.Namespace) -> int:
    if args.events < 1:
        raise UsageError(f"--events must be at least 1, got {args.events}")
    cfg, r, ks = open_run(args, RETRY_SECONDS)
    try:
        shown, which = select_larrys(cfg, args.larry, args.page, args.page_size)
    except ValueError as error:
        raise UsageError(str(error)) from None
    dash = Dashboard(cfg, ks, r, events=args.events, redis_at=describe(r), timing=Timing.from_env(args.speed),
                     shown=shown, which=which)
    console = Console()
    if args.once or not console.is_terminal:
        try:
            dash.connect()
        except redis.exceptions.RedisError as exc:
            raise UsageError(f"cannot read the run from {describe(r)} ({exc})") from None
        print_frame(dash, console)
        return 0
    interrupt_on_sigterm(claim_ctrl_c=True)
    try:
        run_live(dash, console)
    except KeyboardInterrupt:
        pass  # Live has restored the terminal on the way out
    return 0


def run_live(dash: Dashboard, console: Console) -> None:
    with Live(layout(dash), console=console, screen=True, auto_refresh=False, redirect_stdout=False,
              redirect_stderr=False) as live:
        next_tick = time.monotonic()
        while True:
            changed = dash.step(max(0.0, next_tick - time.monotonic()))
            now = time.monotonic()
            if changed or now >= next_tick:
                live.update(layout(dash), refresh=True)
            if now >= next_tick:
                next_tick = now + TICK
