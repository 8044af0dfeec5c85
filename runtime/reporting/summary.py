"""Phase 4 convergence (seed 001): aggregate the per-Larry reports, summarise, archive.

:func:`converge` is the meta-coordinator's last step, run after the all-Larry barrier:

1. load every Larry's ``reports/{larry}-final.json`` (:mod:`runtime.reporting.schema`) and check it
   against the plan: the right Larry, stack and phase, every plan task reported once with
   the plan's worker and dependencies. Any problem is a :class:`ReportError` naming the
   file, raised before anything is written, so there is never a summary with a silently
   missing phase;
2. render ``reports/{N}-LARRY-EXECUTION-SUMMARY.md`` with seed 001's "Report Structure":
   executive summary, phase timelines, one section per Larry, cross-phase dependencies,
   token budget utilisation, lessons learned and next steps. Every statement is derived
   from the reports and the plan; token figures are the reports' ledger figures and the
   budget arithmetic is :mod:`plan.model`'s;
3. archive the run as ``archives/{N}-larry-execution-{YYYYmmdd-HHMMSS}-{random}.tar.gz`` (UTC):
   ``reports/*.json``, the summary, ``results/**`` and the plan as ``plan.yaml``;
4. upload the archive to ``s3://bucket/prefix`` when asked (boto3; endpoint and
   credentials from the standard AWS environment and config chain);
5. write the summary, atomically and last: a summary on disk means the run converged,
   was archived and (if asked) uploaded.

For a plan that runs seed 004's phases (:mod:`runtime.reporting.execution_plan`) the
archive is ``archives/exec-{id}/exec-{id}.tar.gz`` and also holds ``execution-plans/**``,
``masters/**`` and the coordination files archived beside it; the success metrics gain
seed 004's success criteria, so a run whose criteria failed is never reported SUCCESS
(:func:`verdict` reads them from ``execution-plans/final-results.json``).

A Larry rolled back (`larry rollback`, seed 001 appendix B) has its record
``reports/{larry}-rollback.json``: the summary gains a section for it, whether the rollback came
before convergence (rendered with the rest) or after (:func:`record_rollback` appends it).

Errors are :data:`ERRORS`, each a one-line message for the CLI to print.
"""
from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from secrets import token_hex
from typing import Any, Iterable
from urllib.parse import urlsplit

from plan.model import Larry, StackConfig, utilisation
from plan.statuses import PhaseStatus, TaskStatus
from plan.taskgraph import TaskGraph
from runtime.agent.protocol import SEVERITIES
from runtime.catalog.figures import Reading, assets_text, from_api
from runtime.coordination.phases import runs_execution_phases
from runtime.reporting.criteria import Criterion
from runtime.reporting.criteria import failed as failed_criteria
from runtime.reporting.execution_plan import FINAL_RESULTS, read_final_results
from runtime.reporting.schema import (
    ReportError,
    aggregate_findings,
    load_larry_report,
    report_path,
)
from runtime.reporting.validation import budget_problems
from runtime.support.files import atomic_file, write_atomic
from runtime.support.timestamps import format_time, parse

Report = dict[str, Any]


class ConvergeError(Exception):
    """A convergence step that failed for a reason other than a bad report: one line."""


#: What :func:`converge` raises for anything a user can fix; print ``str(error)``.
ERRORS = (ReportError, ConvergeError)


@dataclass(frozen=True)
class ConvergeResult:
    summary: Path
    archive: Path
    s3_bucket: str | None = None
    s3_key: str | None = None

    @property
    def s3_uri(self) -> str | None:
        return f"s3://{self.s3_bucket}/{self.s3_key}" if self.s3_key else None


def summary_name(cfg: StackConfig) -> str:
    return f"{len(cfg.larrys)}-LARRY-EXECUTION-SUMMARY.md"


def archive_name(cfg: StackConfig, now: datetime) -> str:
    """``{N}-larry-execution-{UTC time}-{random}.tar.gz``: two runs converging in the same
    second (or on one S3 prefix) never overwrite each other's archive."""
    return f"{len(cfg.larrys)}-larry-execution-{now.astimezone(timezone.utc):%Y%m%d-%H%M%S}-{token_hex(3)}.tar.gz"


def converge(cfg: StackConfig, coordination_dir: str | Path, *, s3_url: str | None = None,
             now: datetime | None = None, allowance: float = 0.0, private_redis: bool = False,
             execution_id: str | None = None, criteria: list[Criterion] | None = None,
             catalog: Reading | None = None) -> ConvergeResult:
    """Aggregate, summarise, archive (and upload) the run under ``coordination_dir``.
    ``allowance``: the unscaled seconds every deadline of the run got (its execution window
    is the plan's scaled plus this); ``private_redis``: the run's Redis goes away with it,
    so there are no keys to clean up; ``execution_id`` and ``criteria``: seed 004's
    execution (its archive's name and contents, and its success criteria); ``catalog``: the
    catalog's figures as the caller read them (by default from its API)."""
    now = now or datetime.now(timezone.utc)
    root = Path(coordination_dir)
    bucket, prefix = parse_s3_url(s3_url) if s3_url else (None, None)
    reports = load_reports(cfg, root / "reports")
    rollbacks = [json.loads(path.read_text()) for larry in cfg.larrys
                 if (path := rollback_path(root / "reports", larry.id)).exists()]
    summary = root / "reports" / summary_name(cfg)
    if execution_id:
        archive = root / "archives" / f"exec-{execution_id}" / f"exec-{execution_id}.tar.gz"
        trees = ("execution-plans", "masters", f"archives/exec-{execution_id}")
    else:
        archive, trees = root / "archives" / archive_name(cfg, now), ()
    key = "/".join(p for p in (prefix, archive.name) if p) if bucket else None
    result = ConvergeResult(summary, archive, bucket, key)
    text = render_summary(cfg, reports, generated_at=now, archive=result, allowance=allowance,
                          private_redis=private_redis, criteria=criteria, rollbacks=rollbacks, catalog=catalog)
    write_archive(archive, root, {f"reports/{summary.name}": text, "plan.yaml": cfg.plan_document()}, now, trees)
    if bucket:
        upload(archive, bucket, key)
    _write(summary, text)
    return result


# --------------------------------------------------------------------------- loading

def load_reports(cfg: StackConfig, reports_dir: Path) -> list[Report]:
    """Every Larry's validated report, in plan order, checked against the plan."""
    return [_check_against_plan(cfg, larry, report_path(reports_dir, larry.id)) for larry in cfg.larrys]


def _check_against_plan(cfg: StackConfig, larry: Larry, path: Path) -> Report:
    report = load_larry_report(path)
    for field, expected in (("larry", larry.id), ("stack", cfg.stack), ("phase", larry.phase)):
        if report[field] != expected:
            raise ReportError(f"{path}: {field}: expected {expected!r} (from the plan {cfg.source}), "
                              f"got {report[field]!r}")
    graph = TaskGraph(cfg)
    plan = {t.id: (graph.worker[t.id], sorted(graph.deps[t.id])) for t in larry.tasks}
    ids = [task["id"] for task in report["tasks"]]
    problems = [
        ("missing plan task(s)", [t for t in plan if t not in ids]),
        ("task(s) not in the plan", [t for t in ids if t not in plan]),
        ("task(s) reported more than once", sorted({t for t in ids if ids.count(t) > 1})),
    ]
    for what, names in problems:
        if names:
            raise ReportError(f"{path}: tasks: {what} of {larry.id}: {', '.join(names)}")
    for index, task in enumerate(report["tasks"]):
        worker, deps = plan[task["id"]]
        if (task["worker"], sorted(task["depends_on"])) != (worker, deps):
            raise ReportError(f"{path}: tasks[{index}]: expected worker {worker!r} and depends_on {deps} "
                              f"as in the plan, got {task['worker']!r} and {sorted(task['depends_on'])}")
    return report


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without surrounding slashes)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ConvergeError(f"{url}: expected an S3 URL of the form s3://bucket/prefix")
    return parts.netloc, parts.path.strip("/")


# --------------------------------------------------------------------------- rollbacks

def rollback_path(reports_dir: Path, larry: str) -> Path:
    return reports_dir / f"{larry}-rollback.json"


def rollback_title(record: Report) -> str:
    return f"{record['larry']} Rollback"


def rollback_lines(record: Report) -> list[str]:
    """A rollback record as the summary shows it: when, its outcome, each step, the tokens."""
    lines = [f"Initiated {record['initiated_at']} (event `{record['event_id']}`), finished "
             f"{record['finished_at']}: **{record['status']}**; {record['tokens']:,} tokens charged to "
             f"`{record['account']}` on {record['larry']}'s budget.", ""]
    return lines + _table(("Step", "Title", "Status", "Fence", "Tokens"), (
        (s["id"], s["title"], s["status"] + (f" ({s['detail']})" if s.get("detail") else ""), s["fence"] or "-",
         f"{s['tokens']:,}") for s in record["steps"]))


def record_rollback(cfg: StackConfig, coordination_dir: str | Path, record: Report) -> Path:
    """Write ``record`` as ``reports/{larry}-rollback.json``; a summary already written gains
    its section (a later :func:`converge` renders it with the rest). Returns the record's path."""
    reports = Path(coordination_dir) / "reports"
    path = rollback_path(reports, record["larry"])
    _write(path, json.dumps(record, indent=2) + "\n")
    summary = reports / summary_name(cfg)
    if summary.exists():
        section = [f"## {rollback_title(record)} (after convergence)", "", *rollback_lines(record)]
        _write(summary, summary.read_text().rstrip("\n") + "\n\n" + "\n".join(section) + "\n")
    return path


# --------------------------------------------------------------------------- output

def _write(path: Path, data: str | bytes) -> None:
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise ConvergeError(f"{path}: cannot write ({exc.strerror or exc})") from None


def write_archive(archive: Path, root: Path, extra: dict[str, str], now: datetime,
                  trees: Iterable[str] = ()) -> None:
    """tar.gz of ``reports/*.json``, ``results/**``, every file under ``trees`` and ``extra``
    (arcname -> text), atomically."""
    files = sorted((root / "reports").glob("*.json")) + sorted(
        p for tree in ("results", *trees) for p in (root / tree).rglob("*") if p.is_file())
    try:
        with atomic_file(archive) as handle, tarfile.open(fileobj=handle, mode="w:gz") as tar:
            for path in files:
                tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)
            for name, text in extra.items():
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), int(now.timestamp()), 0o644
                tar.addfile(info, io.BytesIO(data))
    except OSError as exc:
        raise ConvergeError(f"{exc.filename or archive}: cannot archive ({exc.strerror or exc})") from None


def upload(archive: Path, bucket: str, key: str) -> None:
    """Upload ``archive`` to S3 with boto3's standard endpoint/credential resolution."""
    import boto3  # imported here: only convergence with an S3 URL pays for boto3's import
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        boto3.client("s3").upload_file(str(archive), bucket, key)
    except (BotoCoreError, ClientError, Boto3Error) as exc:
        reason = " ".join(str(exc).split())
        raise ConvergeError(f"s3://{bucket}/{key}: upload failed ({reason}); the archive is kept at "
                            f"{archive}") from None


# --------------------------------------------------------------------------- summary

def render_summary(cfg: StackConfig, reports: list[Report], *, generated_at: datetime,
                   archive: ConvergeResult, allowance: float = 0.0, private_redis: bool = False,
                   criteria: list[Criterion] | None = None, rollbacks: Iterable[Report] = (),
                   catalog: Reading | None = None) -> str:
    """The markdown summary: seed 001's nine sections (N + 6 for N Larrys), numbered, and one
    per rollback record."""
    run = _Run(cfg, reports, allowance, criteria)
    run.catalog = catalog
    sections = [
        ("Executive Summary", _executive_summary(run)),
        ("Phase Timelines (actual vs. planned)", _timelines(run)),
        *((f"{r['larry']} {r['phase']} Results", _larry_results(run, r)) for r in reports),
        ("Cross-Phase Dependencies Resolved", _dependencies(run)),
        ("Token Budget Utilization", _tokens(run)),
        *((rollback_title(record), rollback_lines(record)) for record in rollbacks),
        ("Lessons Learned", _lessons(run)),
        ("Next Steps", _next_steps(run, archive, private_redis)),
    ]
    lines = [f"# {len(reports)}-Larry Execution Summary: stack `{cfg.stack}`", "",
             f"Generated {format_time(generated_at)} "
             f"from {len(reports)} per-Larry final reports and the plan `{cfg.source}`.", ""]
    for number, (title, body) in enumerate(sections, 1):
        lines += [f"## {number}. {title}", "", *body, ""]
    return "\n".join(lines).rstrip() + "\n"


class _Run:
    """The reports plus what several sections derive from them."""

    def __init__(self, cfg: StackConfig, reports: list[Report], allowance: float = 0.0,
                 criteria: list[Criterion] | None = None):
        self.cfg, self.reports, self.allowance, self.criteria = cfg, reports, allowance, criteria
        self.catalog: Reading | None = None
        self.start = min(parse(r["started_at"]) for r in reports)
        self.end = max(parse(r["completed_at"]) for r in reports)
        self.tasks = {t["id"]: (r["larry"], t) for r in reports for t in r["tasks"]}
        speeds = {r["speed"] for r in reports}
        self.speed = speeds.pop() if len(speeds) == 1 else None
        self.committed = sum(r["tokens"]["committed"] for r in reports)
        self.system_utilisation = utilisation(self.committed, cfg.budget.system_tokens)

    def offset(self, stamp: str | None) -> str:
        return "—" if stamp is None else f"T+{(parse(stamp) - self.start).total_seconds():.1f} s"

    @property
    def window_seconds(self) -> float | None:
        """The window the run had: the plan's, scaled by the speed, plus the allowance."""
        return self.cfg.execution_window_minutes * 60 / self.speed + self.allowance if self.speed else None

    def window_text(self) -> str:
        if self.window_seconds is None:
            return "the reports' speed factors differ, so no common window"
        allowance = f" + {self.allowance:g} s start-up allowance" if self.allowance else ""
        return (f"{self.cfg.execution_window_minutes} min plan window at speed ×{self.speed:g}{allowance} "
                f"= {self.window_seconds:.1f} s")

    @property
    def span(self) -> float:
        return (self.end - self.start).total_seconds()

    def dependencies(self) -> list[tuple[str, dict, str, dict, str]]:
        """(larry, task, dependency's larry, dependency, scope) for dependencies across workers.

        Every dependency is a reported task: the plan check guarantees it.
        """
        edges = []
        for larry, task in self.tasks.values():
            for dep_larry, dep in (self.tasks[d] for d in task["depends_on"]):
                if dep["worker"] != task["worker"]:
                    edges.append((larry, task, dep_larry, dep, "cross-Larry" if dep_larry != larry else "cross-worker"))
        return edges

    def order_violations(self) -> list[tuple[dict, dict]]:
        return [(task, dep) for _, task, _, dep, _ in self.dependencies()
                if dep["completed_at"] and task["started_at"]
                and parse(task["started_at"]) < parse(dep["completed_at"])]


def _pct(share: float) -> str:
    return f"{share:.1%}"


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(" ".join(str(cell).split()).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _findings_text(findings: dict) -> str:
    cves = findings["cves"]
    return (f"CVEs {' / '.join(f'{cves[s]} {s}' for s in SEVERITIES)}; "
            f"{findings['prs_created']} PR(s) created; {findings['assets_discovered']} asset(s) discovered; "
            f"coverage {findings['coverage_delta']:+.1f} pts")


def _task_findings(findings: dict) -> str:
    cves = findings["cves"]
    parts = [f"{cves[s]} {s}" for s in SEVERITIES if cves[s]]
    parts += [f"{findings[k]} {label}" for k, label in (("prs_created", "PR"), ("assets_discovered", "assets"))
              if findings[k]]
    if findings["coverage_delta"]:
        parts.append(f"coverage {findings['coverage_delta']:+.1f}")
    return ", ".join(parts) or "—"


def _counts(report: Report) -> tuple[int, int, int, int]:
    """(tasks completed, tasks, checks passed, checks)."""
    return (sum(t["status"] == TaskStatus.COMPLETED for t in report["tasks"]), len(report["tasks"]),
            sum(v["passed"] for v in report["validation"]), len(report["validation"]))


def success_metrics(run: _Run) -> list[tuple[str, str, bool | None]]:
    """Seed 001's "Success Metrics", system-wide: (metric, result, met; None when unknown)."""
    reports, budget = run.reports, run.cfg.budget
    done = sum(r["status"] == PhaseStatus.COMPLETED for r in reports)
    tasks_done, tasks, checks_ok, checks = (sum(c) for c in zip(*map(_counts, reports)))
    window = run.window_seconds
    seed004 = [] if run.criteria is None else [(
        "Seed 004 success criteria (execution-plans/final-results.json)",
        f"{sum(c.met is True for c in run.criteria)} of {len(run.criteria)} met, "
        f"{len(failed_criteria(run.criteria))} failed, {sum(c.met is None for c in run.criteria)} not knowable here",
        not failed_criteria(run.criteria))]
    return seed004 + [
        (f"All {len(reports)} Larrys complete", f"{done}/{len(reports)} completed", done == len(reports)),
        ("Within the execution window", f"{run.span:.1f} s ({run.window_text()})",
         None if window is None else run.span <= window),
        ("Every plan task completed, each reported once", f"{tasks_done}/{tasks}", tasks_done == tasks),
        ("Final validation passed", f"{checks_ok}/{checks} checks", checks_ok == checks),
        (f"Token budget utilisation < {budget.utilisation_target:.0%}", _pct(run.system_utilisation),
         run.system_utilisation < budget.utilisation_target),
    ]


def verdict(cfg: StackConfig, reports: list[Report], allowance: float = 0.0, root: Path | None = None) -> list[str]:
    """The success metrics the run did not meet (or cannot show it met): empty means SUCCESS.
    For a plan running seed 004's phases, ``root`` (the coordination directory) gives its
    success criteria; without them the run cannot show it met them."""
    criteria = None
    if root is not None and runs_execution_phases(cfg):
        try:
            criteria = [Criterion(**c) for c in read_final_results(root)["criteria"]]
        except (OSError, ValueError, KeyError, TypeError) as error:
            return [f"seed 004 success criteria unreadable ({root / FINAL_RESULTS}: {error})"]
    unmet = [metric for metric, _, met in success_metrics(_Run(cfg, reports, allowance, criteria)) if met is not True]
    return unmet + [f"{c.subject}: {c.name} ({c.result})" for c in failed_criteria(criteria or [])]


def _executive_summary(run: _Run) -> list[str]:
    reports, budget = run.reports, run.cfg.budget
    done = [r for r in reports if r["status"] == PhaseStatus.COMPLETED]
    tasks_done, tasks, checks_ok, checks = (sum(c) for c in zip(*map(_counts, reports)))
    findings_total = aggregate_findings(r["findings"] for r in reports)
    metrics = success_metrics(run)
    success = all(met is True for _, _, met in metrics)
    lines = [f"**Overall: {'SUCCESS' if success else 'INCOMPLETE'}.** {len(done)} of {len(reports)} phases "
             f"completed, {tasks_done} of {tasks} plan tasks completed, {checks_ok} of {checks} final "
             f"validation checks passed, {run.committed:,} tokens committed "
             f"({_pct(run.system_utilisation)} of the {budget.system_tokens:,}-token system budget).", ""]
    lines += _table(["Larry", "Phase", "Status", "Tasks", "Validation", "Tokens committed"], (
        (r["larry"], r["phase"], r["status"], f"{c[0]}/{c[1]}", f"{c[2]}/{c[3]} passed",
         f"{r['tokens']['committed']:,}") for r, c in ((r, _counts(r)) for r in reports)))
    problems = budget_problems(run.cfg)
    if problems:
        lines += [f"**Warning:** the plan is over its token budgets, and the policy pack would block it: "
                  f"{'; '.join(problems)}.", ""]
    lines += ["", "Success metrics (seed 001 \"Success Metrics\", system-wide):", ""]
    lines += _table(["Metric", "Result", "Met"], [
        (metric, result, {True: "yes", False: "no", None: "—"}[met]) for metric, result, met in metrics])
    lines += ["", f"Findings across all phases: {_findings_text(findings_total)}."]
    if run.cfg.catalog.enabled:  # the workers' reports count an asset found twice twice; the catalog once
        lines += ["", f"Catalog (seed 004 Inventory Results): {assets_text(run.catalog or from_api())}."]
    return lines


def _timelines(run: _Run) -> list[str]:
    lines = _table(
        ["Larry", "Phase", "Status", "Started", "Completed", "Actual", "Planned", "Actual / planned",
         "Plan time used (actual × speed)"],
        ((r["larry"], r["phase"], r["status"], run.offset(r["started_at"]), run.offset(r["completed_at"]),
          f"{r['duration_seconds']:.1f} s", f"{r['planned_seconds']:.1f} s",
          _pct(r["duration_seconds"] / r["planned_seconds"]),
          f"{r['duration_seconds'] * r['speed'] / 60:.1f} of {run.cfg.larry(r['larry']).deadline_minutes} min")
         for r in run.reports))
    span = run.span
    lines += ["", f"T+0 is the first phase start, {format_time(run.start)}; the last phase completed at "
                  f"{format_time(run.end)} (T+{span:.1f} s)."]
    if run.window_seconds is not None:
        lines.append(f"Execution window: {run.window_text()}; actual {span:.1f} s "
                     f"({_pct(span / run.window_seconds)}).")
    return lines


def _larry_results(run: _Run, r: Report) -> list[str]:
    done, total, ok, checks = _counts(r)
    tokens = r["tokens"]
    lines = [f"- Status: **{r['status']}**, {run.offset(r['started_at'])} → {run.offset(r['completed_at'])} "
             f"({r['duration_seconds']:.1f} s of {r['planned_seconds']:.1f} s planned)",
             f"- Tasks: {done}/{total} completed; validation {ok}/{checks} checks passed",
             f"- Tokens: {tokens['committed']:,} committed of {tokens['limit']:,} "
             f"({_pct(utilisation(tokens['committed'], tokens['limit']))})",
             f"- Findings: {_findings_text(r['findings'])}",
             "", "### Final validation", ""]
    lines += _table(["Check", "Result", "Detail"],
                    ((v["check"], "passed" if v["passed"] else "**FAILED**", v["detail"]) for v in r["validation"])
                    ) if r["validation"] else ["No validation checks were reported."]
    lines += ["", "### Tasks", ""]
    lines += _table(["Task", "Title", "Worker", "Status", "Attempts", "Fence", "Tokens", "Findings"],
                    ((t["id"], t["title"], t["worker"], t["status"] + (f" ({t['detail']})" if t.get("detail") else ""),
                      t["attempts"], t["fence"], f"{t['tokens']:,}", _task_findings(t["findings"]))
                     for t in r["tasks"]))
    lines += ["", "### Masters", ""]
    lines += _table(["Master", "Reviewed", "Completed", "Failed", "Personal tokens", "Pool used", "Pool returned",
                     "Mind", "Planned", "Escalations decided"],
                    ((m["name"], m["reviewed"], m["completed"], m["failed"],
                      f"{m['personal']['committed']:,} of {m['personal']['limit']:,}",
                      f"{m['pool']['committed']:,} of {m['pool']['limit'] + m['pool']['granted']:,}",
                      f"{m['pool']['released']:,}",
                      m["agent"] if m["reported_by"] == "master" else "**no report** (figures from the coordinator)",
                      m["planned"], "; ".join(f"{d['escalation']} ({d['task']}): {d['decision']}"
                                              for d in m["decisions"]) or "none") for m in r["masters"])
                    ) if r["masters"] else ["This Larry has no masters."]
    lines += ["", "### Workers", ""]
    lines += _table(["Worker", "Node", "Status", "Restarts"],
                    ((name, w["node"], w["status"], w["restarts"]) for name, w in r["workers"].items()))
    lines += ["", f"Re-queued tasks: {', '.join(r['requeued_tasks']) or 'none'}.",
              "Escalations: " + ("; ".join(escalation_outcomes(r["alerts"])) or "none") + ".",
              "Alerts: " + ("; ".join(f"{a['event']} from {a['from']} ({a['detail']})" for a in r["alerts"])
                            or "none") + "."]
    return lines


def escalation_outcomes(alerts: list[dict]) -> list[str]:
    """Each escalation the report's alerts raised, with its outcome (``open`` if undecided)."""
    raised: dict[str, dict] = {}
    decided: dict[str, dict] = {}
    for alert in alerts:
        if alert["event"] in ("escalation_raised", "escalation_decided"):
            detail = json.loads(alert["detail"])
            (raised if alert["event"] == "escalation_raised" else decided)[str(detail.get("id"))] = \
                {**detail, "from": alert["from"]}
    lines = []
    for eid, e in raised.items():
        d = decided.get(eid)
        outcome = ("still open" if d is None else f"approved by {d['from']}, {int(d['tokens']):,} tokens granted"
                   if d.get("status") == "approved" else f"denied by {d['from']}: {d.get('reason')}")
        lines.append(f"{eid} from {e['from']} on {e.get('task')} ({e.get('issue')}): {outcome}")
    return lines


def _dependencies(run: _Run) -> list[str]:
    edges = run.dependencies()
    if not edges:
        return ["No task depends on a task of another worker or Larry."]
    rows = []
    for larry, task, dep_larry, dep, scope in edges:
        resolved = run.offset(dep["completed_at"]) if dep["status"] == TaskStatus.COMPLETED else \
            f"unresolved (dependency {dep['status']})"
        order = "—"
        if dep["completed_at"] and task["started_at"]:
            order = "ok" if parse(task["started_at"]) >= parse(dep["completed_at"]) else \
                "**VIOLATED** (started before its dependency completed)"
        rows.append((f"{task['id']} ({larry}/{task['worker']})", f"{dep['id']} ({dep_larry}/{dep['worker']})",
                     scope, resolved, run.offset(task["started_at"]), order))
    cross_larry = sum(e[4] == "cross-Larry" for e in edges)
    lines = [f"{len(edges)} dependencies cross a worker boundary ({cross_larry} of them cross Larrys). "
             "\"Resolved\" is when the dependency completed.", ""]
    return lines + _table(["Task", "Depends on", "Scope", "Resolved", "Task started", "Order"], rows)


def _tokens(run: _Run) -> list[str]:
    cfg, budget = run.cfg, run.cfg.budget
    target = budget.utilisation_target
    reserve = budget.meta.emergency_reserve_tokens
    drawn = sum(r["tokens"]["emergency_drawn"] for r in run.reports)

    def row(name: str, limit: int, reserved: int, committed: int, emergency: int) -> tuple:
        share = utilisation(committed, limit)
        return (name, f"{limit:,}", f"{reserved:,}", f"{committed:,}", f"{emergency:,}", _pct(share),
                "within" if share < target else "**OVER**")

    rows = [row(r["larry"], *(r["tokens"][k] for k in ("limit", "reserved", "committed", "emergency_drawn")))
            for r in run.reports]
    rows.append(row("System", budget.system_tokens, sum(r["tokens"]["reserved"] for r in run.reports),
                    run.committed, drawn))
    lines = _table(["Larry", "Limit", "Reserved", "Committed", "Emergency drawn", "Utilisation",
                    f"Target < {target:.0%}"], rows)
    lines += ["",
              f"Per-Larry figures are each coordinator's ledger; the system row sums them against the "
              f"{budget.system_tokens:,}-token system budget of the plan.",
              f"Plan allocation: {cfg.allocated_tokens:,} tokens (Larrys {cfg.larry_tokens:,}; meta-coordinator "
              f"{budget.meta.total_tokens:,} including the {reserve:,}-token emergency reserve).",
              f"Emergency reserve drawn: {drawn:,} of {reserve:,} ({_pct(utilisation(drawn, reserve))}).",
              "The meta-coordinator's own orchestration tokens are not metered in the per-Larry reports "
              "and are not included above.", ""]
    return lines + _levels(run)


#: The levels of a Larry's budget as the summary names them.
LEVELS = {"larry": "Larrys", "personal": "Masters' personal", "pool": "Masters' worker pools", "worker": "Workers"}


def _levels(run: _Run) -> list[str]:
    """Utilisation at every level of the Larrys' budgets, from the accounts in the reports."""
    rows = []
    for kind, label in LEVELS.items():
        accounts = [a for r in run.reports for a in r["accounts"] if a["kind"] == kind]
        if not accounts:
            continue
        limit, committed = sum(a["limit"] for a in accounts), sum(a["committed"] for a in accounts)
        fullest = max(accounts, key=lambda a: utilisation(a["committed"], a["limit"]))
        rows.append((label, len(accounts), f"{limit:,}", f"{sum(a['granted'] for a in accounts):,}",
                     f"{sum(a['released'] for a in accounts):,}", f"{committed:,}", _pct(utilisation(committed, limit)),
                     f"{fullest['account']} {_pct(utilisation(fullest['committed'], fullest['limit']))}"))
    released = sum(a["released"] for r in run.reports for a in r["accounts"])
    return ["By level (every account of the Larrys' budgets; utilisation against the plan's limits):", ""] + \
        _table(["Level", "Accounts", "Limit", "Lent or granted", "Released", "Committed", "Utilisation",
                "Fullest account"], rows) + \
        ["", f"Masters whose work was over returned {released:,} unused pool tokens to their Larrys, which lend "
             "them to the masters still working before the emergency reserve (\"Lent or granted\" counts both, "
             "and what an operator approved)."]


def _lessons(run: _Run) -> list[str]:
    budget = run.cfg.budget
    lessons = []
    for r in run.reports:
        larry = r["larry"]
        for name, w in r["workers"].items():
            if w["restarts"]:
                lessons.append(f"{larry}: worker {name} on {w['node']} restarted {w['restarts']} time(s).")
        if r["requeued_tasks"]:
            lessons.append(f"{larry}: {len(r['requeued_tasks'])} task(s) re-queued from dead workers: "
                           f"{', '.join(r['requeued_tasks'])}.")
        retried = [f"{t['id']} ({t['attempts']})" for t in r["tasks"] if t["attempts"] > 1]
        if retried:
            lessons.append(f"{larry}: task(s) needed more than one attempt: {', '.join(retried)}.")
        for a in r["alerts"]:
            lessons.append(f"{larry}: alert {a['event']} from {a['from']}: {a['detail']}.")
        if r["duration_seconds"] > r["planned_seconds"]:
            lessons.append(f"{larry}: phase ran over plan, {r['duration_seconds']:.1f} s of "
                           f"{r['planned_seconds']:.1f} s planned "
                           f"({_pct(r['duration_seconds'] / r['planned_seconds'])}).")
        share = utilisation(r["tokens"]["committed"], r["tokens"]["limit"])
        if share >= budget.reserve_trigger:
            lessons.append(f"{larry}: token budget near its limit, {_pct(share)} used (emergency reserve "
                           f"trigger {budget.reserve_trigger:.0%}).")
        if r["tokens"]["emergency_drawn"]:
            lessons.append(f"{larry}: drew {r['tokens']['emergency_drawn']:,} tokens from the emergency reserve.")
    if run.system_utilisation >= budget.utilisation_target:
        lessons.append(f"System token utilisation {_pct(run.system_utilisation)} missed the "
                       f"< {budget.utilisation_target:.0%} target.")
    for task, dep in run.order_violations():
        lessons.append(f"Task {task['id']} started before its dependency {dep['id']} completed.")
    if not lessons:
        lessons.append("The reports record no worker restarts, re-queued or retried tasks, alerts, phases "
                       "over plan, budgets near their limits or dependency-order violations.")
    slowest = max(run.reports, key=lambda r: r["duration_seconds"] / r["planned_seconds"])
    lessons.append(f"Slowest phase relative to plan: {slowest['larry']} at "
                   f"{_pct(slowest['duration_seconds'] / slowest['planned_seconds'])} of its planned time.")
    return [f"- {text}" for text in lessons]


def _next_steps(run: _Run, archive: ConvergeResult, private_redis: bool) -> list[str]:
    steps = []
    for r in run.reports:
        larry = r["larry"]
        if r["status"] != PhaseStatus.COMPLETED:
            steps.append(f"{larry}: the phase {r['phase']!r} ended {r['status']}; investigate before re-running it.")
        for v in r["validation"]:
            if not v["passed"]:
                steps.append(f"{larry}: resolve the failed check \"{v['check']}\" ({v['detail']}) and re-validate.")
        for t in r["tasks"]:
            if t["status"] != TaskStatus.COMPLETED:
                steps.append(f"{larry}: task {t['id']} ({t['worker']}) is {t['status']}"
                             + (f" ({t['detail']})" if t.get("detail") else "") + "; re-run it.")
        critical = [(t["id"], t["findings"]["cves"]["critical"]) for t in r["tasks"] if t["findings"]["cves"]["critical"]]
        if critical:
            steps.append(f"{larry}: remediate or track {sum(n for _, n in critical)} critical CVE(s) reported by "
                         + ", ".join(f"{tid} ({n})" for tid, n in critical) + ".")
    if run.order_violations():
        steps.append("Investigate the dependency-order violations listed in Cross-Phase Dependencies.")
    if run.system_utilisation >= run.cfg.budget.utilisation_target:
        steps.append("Re-plan the token budgets: the system utilisation target was missed.")
    if run.span > (run.window_seconds or float("inf")):
        steps.append("Find what made the run overrun its execution window (Phase Timelines) before re-running it.")
    if not steps:
        steps.append("No failed phases, failed validation checks, unfinished tasks or critical CVEs remain.")
    where = f"`archives/{archive.archive.name}`" + (f" and `{archive.s3_uri}`" if archive.s3_uri else "")
    if private_redis:
        steps.append(f"The run is archived to {where}; its private Redis went away with it, so no keys are "
                     "left to clean up.")
    else:
        steps.append(f"The run is archived to {where}; after checking it, run `larry cleanup` to remove the run's "
                     "phase:*, task:lock:* and worker:* keys (seed 001 \"Post-Execution Cleanup\").")
    return [f"- {text}" for text in steps]
