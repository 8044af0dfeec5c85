"""Phase 4 convergence: per-Larry reports -> N-LARRY-EXECUTION-SUMMARY.md + archive (+ S3).

The reports are generated from the real stack configs (tasks scheduled in dependency order,
token use derived from the workers' budgets), so no figure below is hard-coded.
"""
from __future__ import annotations

import copy
import io
import json
import re
import tarfile
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from plan.loader import load_plan_document, load_stack
from plan.model import account_path, budget_accounts, larry_of_account, master_account, utilisation, worker_account
from runtime.agent.master import master_report, overseen
from runtime.reporting.schema import (
    ReportError,
    aggregate_findings,
    load_larry_report,
    report_path,
    write_larry_report,
)
from runtime.reporting.summary import ConvergeError, converge, load_reports, verdict
from runtime.support.files import atomic_file
from tests.support.project import ROOT  # noqa: E402

T0 = datetime(2026, 11, 21, 6, 0, tzinfo=timezone.utc)
NOW = datetime(2026, 11, 21, 6, 5, 7, tzinfo=timezone.utc)
SPEED = 600.0


# --------------------------------------------------------------------------- fixture generator

def _findings(task_id: str) -> dict:
    """Findings a seed worker of this kind would plausibly report."""
    return {
        "cves": {"critical": 0, "high": 2 if "scan" in task_id else 0,
                 "medium": len(task_id) % 3 if "scan" in task_id else 0, "low": 0},
        "prs_created": 1 if "prs" in task_id or "patch" in task_id else 0,
        "assets_discovered": 40 + len(task_id) if task_id.startswith(("scan-k8s", "discover")) else 0,
        "coverage_delta": 6.5 if "tests" in task_id else 0.0,
    }


def make_reports(cfg, speed: float = SPEED) -> dict[str, dict]:
    """One valid final report per Larry: every task run once, in dependency order."""
    items = [(larry, worker, task) for larry in cfg.larrys for worker in larry.workers for task in worker.tasks]
    finish: dict[str, datetime] = {}
    free = defaultdict(lambda: T0)
    tasks: dict[str, list[dict]] = defaultdict(list)
    while len(finish) < len(items):
        for larry, worker, task in items:
            if task.id in finish or not all(d in finish for d in task.depends_on):
                continue
            start = max([free[worker.name], *(finish[d] for d in task.depends_on)])
            end = start + timedelta(milliseconds=100 + 10 * (len(task.id) % 5))
            finish[task.id] = free[worker.name] = end
            tasks[larry.id].append({
                "id": task.id, "title": task.title, "worker": worker.name, "status": "completed",
                "fence": 1, "tokens": worker.tokens // (len(worker.tasks) + 1), "attempts": 1,
                "depends_on": list(task.depends_on), "started_at": start.isoformat(),
                "completed_at": end.isoformat(), "findings": _findings(task.id)})
    reports = {}
    for larry in cfg.larrys:
        own = tasks[larry.id]
        started, completed = min(t["started_at"] for t in own), max(t["completed_at"] for t in own)
        reports[larry.id] = finalise({
            "schema": 1, "stack": cfg.stack, "larry": larry.id, "phase": larry.phase, "status": "completed",
            "planned_seconds": larry.deadline_minutes * 60 / speed, "speed": speed,
            "started_at": started, "completed_at": completed, "duration_seconds": 0.0,
            "tasks": own,
            "tokens": {"limit": larry.token_budget, "reserved": 0,
                       "committed": sum(t["tokens"] for t in own) + 1500 * len(larry.masters),
                       "emergency_drawn": 0},
            "accounts": accounts_of(cfg, larry, own),
            "masters": masters_of(larry, own, accounts_of(cfg, larry, own)),
            "findings": {},
            "validation": [{"check": "All tasks completed", "passed": True, "detail": f"{len(own)}/{len(own)}"}],
            "workers": {w.name: {"node": w.node, "status": "completed", "restarts": 0} for w in larry.workers},
            "requeued_tasks": [], "alerts": []})
    return reports


def accounts_of(cfg, larry, tasks: list[dict]) -> list[dict]:
    """The report's accounts, as the ledger would hold them after ``tasks`` and a 1,500-token
    review by each master."""
    spent = defaultdict(int)
    for task in tasks:
        for account in account_path(budget_accounts(cfg), worker_account(larry.id, task["worker"]))[:-1]:
            spent[account.name] += task["tokens"]
    for master in larry.masters:
        for name in (master_account(larry.id, master.name, "personal"), larry.id):
            spent[name] += 1500
    return [{"account": a.name, "kind": a.kind, "limit": a.limit, "granted": 0, "released": 0, "reserved": 0,
             "committed": spent[a.name]}
            for a in budget_accounts(cfg).values() if larry_of_account(budget_accounts(cfg), a.name) == larry.id]


def masters_of(larry, tasks: list[dict], accounts: list[dict]) -> list[dict]:
    by_id, by_account = {t["id"]: t for t in tasks}, {a["account"]: a for a in accounts}
    return [master_report(larry, m, by_id, by_account, {"agent": "built-in", "planned": len(overseen(larry, m)[0]),
                                                       "reviewed": overseen(larry, m)[0], "decisions": []})
            for m in larry.masters]


def finalise(report: dict) -> dict:
    """Recompute the derived fields after a test changed tasks or times."""
    report["findings"] = aggregate_findings(t["findings"] for t in report["tasks"])
    report["duration_seconds"] = (datetime.fromisoformat(report["completed_at"])
                                  - datetime.fromisoformat(report["started_at"])).total_seconds()
    return report


def write_all(coordination: Path, reports: dict[str, dict]) -> None:
    for report in reports.values():
        write_larry_report(coordination / "reports", report)
    results = coordination / "results" / "larry-01"
    results.mkdir(parents=True, exist_ok=True)
    (results / "fix-pgadmin-crashloop.json").write_text('{"fence": 1}\n')


def sections(summary: str) -> list[tuple[int, str, str]]:
    """(number, title, body) of every level-2 section."""
    parts = re.split(r"^## (\d+)\. (.+)$", summary, flags=re.M)
    return [(int(parts[i]), parts[i + 1], parts[i + 2]) for i in range(1, len(parts), 3)]


def archive_pattern(larrys: int) -> str:
    """The archive's name for a run converged at NOW: its UTC time and a random part."""
    return rf"{larrys}-larry-execution-20261121-060507-[0-9a-f]{{6}}\.tar\.gz"


def section(summary: str, title: str) -> str:
    return next(body for _, t, body in sections(summary) if t == title)


def table_rows(body: str) -> dict[str, list[str]]:
    """First cell -> the row's cells, for every markdown table row of ``body``."""
    rows = {}
    for line in body.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0]] = cells
    return rows


@pytest.fixture(scope="module")
def dev():
    return load_stack("dev", ROOT)


@pytest.fixture
def run_dir(tmp_path, dev):
    reports = make_reports(dev)
    write_all(tmp_path, reports)
    return tmp_path, reports


def leftovers(coordination: Path) -> list[str]:
    """Anything convergence would have written."""
    found = list((coordination / "reports").glob("*.md")) + list((coordination / "reports").glob(".*"))
    found += list((coordination / "archives").glob("*")) if (coordination / "archives").exists() else []
    return [str(p) for p in found]


# --------------------------------------------------------------------------- the summary

def test_dev_summary_has_the_nine_sections_of_the_seed_in_order(run_dir, dev):
    coordination, _ = run_dir
    result = converge(dev, coordination, now=NOW)
    assert result.summary == coordination / "reports" / "3-LARRY-EXECUTION-SUMMARY.md"
    titles = [(n, t) for n, t, _ in sections(result.summary.read_text())]
    assert titles == [
        (1, "Executive Summary"),
        (2, "Phase Timelines (actual vs. planned)"),
        (3, "larry-01 Infrastructure & Database Operations Results"),
        (4, "larry-02 Security & Compliance Results"),
        (5, "larry-03 Development & Inventory Results"),
        (6, "Cross-Phase Dependencies Resolved"),
        (7, "Token Budget Utilization"),
        (8, "Lessons Learned"),
        (9, "Next Steps"),
    ]
    assert "**Overall: SUCCESS.**" in result.summary.read_text()
    assert result.s3_key is None


def test_cortex_summary_has_one_section_per_larry(tmp_path):
    cortex = load_stack("cortex", ROOT)
    write_all(tmp_path, make_reports(cortex))
    result = converge(cortex, tmp_path, now=NOW)
    assert result.summary.name == "6-LARRY-EXECUTION-SUMMARY.md"
    assert re.fullmatch(archive_pattern(6), result.archive.name)
    titles = [t for _, t, _ in sections(result.summary.read_text())]
    assert titles[2:8] == [f"{larry.id} {larry.phase} Results" for larry in cortex.larrys]
    assert len(titles) == len(cortex.larrys) + 6 and titles[-1] == "Next Steps"


def test_token_figures_equal_the_reports_ledger_figures(tmp_path, dev):
    reports = make_reports(dev)
    reports["larry-02"]["tokens"].update(reserved=1234, emergency_drawn=4321)
    reports["larry-03"]["tokens"]["committed"] += 777
    write_all(tmp_path, reports)
    rows = table_rows(section(converge(dev, tmp_path, now=NOW).summary.read_text(), "Token Budget Utilization"))

    def figures(cells):
        return [int(c.replace(",", "")) for c in cells[1:5]]

    for larry, report in reports.items():
        ledger = report["tokens"]
        assert figures(rows[larry]) == [ledger["limit"], ledger["reserved"], ledger["committed"],
                                        ledger["emergency_drawn"]]
        assert rows[larry][5] == f"{utilisation(ledger['committed'], ledger['limit']):.1%}"
    totals = [sum(r["tokens"][k] for r in reports.values()) for k in ("reserved", "committed", "emergency_drawn")]
    assert figures(rows["System"]) == [dev.budget.system_tokens, *totals]
    assert rows["System"][5] == f"{utilisation(totals[1], dev.budget.system_tokens):.1%}"
    assert rows["System"][6] == "within"
    assert "Target < 95%" in rows["Larry"]


def test_larry_over_the_utilisation_target_is_flagged(tmp_path, dev):
    reports = make_reports(dev)
    reports["larry-01"]["tokens"]["committed"] = reports["larry-01"]["tokens"]["limit"]
    write_all(tmp_path, reports)
    summary = converge(dev, tmp_path, now=NOW).summary.read_text()
    rows = table_rows(section(summary, "Token Budget Utilization"))
    assert rows["larry-01"][5:] == ["100.0%", "**OVER**"] and rows["larry-02"][6] == "within"
    assert "larry-01: token budget near its limit, 100.0% used" in section(summary, "Lessons Learned")


def test_phase_timelines_compare_actual_with_planned(run_dir, dev):
    coordination, reports = run_dir
    rows = table_rows(section(converge(dev, coordination, now=NOW).summary.read_text(),
                              "Phase Timelines (actual vs. planned)"))
    for larry in dev.larrys:
        report = reports[larry.id]
        cells = rows[larry.id]
        assert cells[5] == f"{report['duration_seconds']:.1f} s"
        assert cells[6] == f"{larry.deadline_minutes * 60 / SPEED:.1f} s"
        assert cells[8].endswith(f"of {larry.deadline_minutes} min")


def test_cross_phase_dependencies_list_crossings_with_their_resolution(run_dir, dev):
    coordination, reports = run_dir
    body = section(converge(dev, coordination, now=NOW).summary.read_text(), "Cross-Phase Dependencies Resolved")
    rows = table_rows(body)
    start = min(datetime.fromisoformat(r["started_at"]) for r in reports.values())
    helm = next(t for t in reports["larry-03"]["tasks"] if t["id"] == "discover-helm-releases")
    row = rows["patch-helm-charts (larry-02/remediation-worker)"]
    assert row[1:3] == ["discover-helm-releases (larry-03/catalog-worker-02)", "cross-Larry"]
    assert row[3] == f"T+{(datetime.fromisoformat(helm['completed_at']) - start).total_seconds():.1f} s"
    assert row[5] == "ok"
    assert rows["generate-cve-fix-prs (larry-02/remediation-worker)"][2] == "cross-worker"
    # a dependency inside one worker is not a crossing
    assert not any(key.startswith("investigate-pgadmin-root-cause") for key in rows)
    expected = sum(1 for larry in dev.larrys for w in larry.workers for t in w.tasks for d in t.depends_on
                   if d not in {x.id for x in w.tasks})
    lines = [line for line in body.splitlines() if line.startswith("| ")]
    assert len(lines) - 1 == expected  # minus the header row


def test_clean_run_lessons_and_next_steps_say_so(run_dir, dev):
    coordination, _ = run_dir
    result = converge(dev, coordination, now=NOW)
    summary = result.summary.read_text()
    lessons, steps = section(summary, "Lessons Learned"), section(summary, "Next Steps")
    assert "record no worker restarts, re-queued or retried tasks, alerts" in lessons
    assert "No failed phases, failed validation checks, unfinished tasks or critical CVEs remain." in steps
    assert f"archives/{result.archive.name}" in steps and "larry cleanup" in steps


def test_lessons_and_next_steps_are_derived_from_the_reports(tmp_path, dev):
    reports = make_reports(dev)
    one, two, three = reports["larry-01"], reports["larry-02"], reports["larry-03"]
    one["workers"]["cleanup-worker"]["restarts"] = 2
    one["requeued_tasks"] = ["deploy-pgbouncer"]
    next(t for t in one["tasks"] if t["id"] == "deploy-pgbouncer")["attempts"] = 2
    two["alerts"] = [{"event": "critical_cve", "from": "larry-02", "detail": "CVE-2026-0001 in ingress"}]
    cve_task = next(t for t in two["tasks"] if t["id"] == "identify-critical-cves")
    cve_task["findings"]["cves"]["critical"] = 3
    two["validation"].append({"check": "All critical CVEs addressed or tracked", "passed": False,
                              "detail": "3 open"})
    two["status"] = "failed"
    three["tasks"][-1].update(status="failed", detail="budget exhausted")
    three["planned_seconds"] = three["duration_seconds"] / 2
    for report in (one, two, three):
        finalise(report)
    three["planned_seconds"] = three["duration_seconds"] / 2
    write_all(tmp_path, reports)
    summary = converge(dev, tmp_path, now=NOW).summary.read_text()
    lessons, steps = section(summary, "Lessons Learned"), section(summary, "Next Steps")
    assert "larry-01: worker cleanup-worker on k3s-worker01 restarted 2 time(s)." in lessons
    assert "larry-01: 1 task(s) re-queued from dead workers: deploy-pgbouncer." in lessons
    assert "larry-01: task(s) needed more than one attempt: deploy-pgbouncer (2)." in lessons
    assert "larry-02: alert critical_cve from larry-02: CVE-2026-0001 in ingress." in lessons
    assert "larry-03: phase ran over plan" in lessons and "(200.0%)" in lessons
    assert "record no worker restarts" not in lessons
    assert "larry-02: the phase 'Security & Compliance' ended failed" in steps
    assert 'larry-02: resolve the failed check "All critical CVEs addressed or tracked" (3 open)' in steps
    assert f"larry-03: task {three['tasks'][-1]['id']} ({three['tasks'][-1]['worker']}) is failed " \
           "(budget exhausted); re-run it." in steps
    assert "larry-02: remediate or track 3 critical CVE(s) reported by identify-critical-cves (3)." in steps
    assert "No failed phases" not in steps
    assert "**Overall: INCOMPLETE.**" in summary


def test_a_dependent_started_too_early_is_reported(tmp_path, dev):
    reports = make_reports(dev)
    task = next(t for t in reports["larry-02"]["tasks"] if t["id"] == "patch-helm-charts")
    task["started_at"] = reports["larry-02"]["started_at"]
    write_all(tmp_path, reports)
    summary = converge(dev, tmp_path, now=NOW).summary.read_text()
    row = table_rows(section(summary, "Cross-Phase Dependencies Resolved"))["patch-helm-charts (larry-02/remediation-worker)"]
    assert row[5].startswith("**VIOLATED**")
    assert "Task patch-helm-charts started before its dependency" in section(summary, "Lessons Learned")


# --------------------------------------------------------------------------- the archive

def test_archive_holds_reports_summary_results_and_plan(run_dir, dev):
    coordination, _ = run_dir
    result = converge(dev, coordination, now=NOW)
    assert result.archive.parent == coordination / "archives" and re.fullmatch(archive_pattern(3), result.archive.name)
    with tarfile.open(result.archive) as tar:
        names = sorted(tar.getnames())
        summary = tar.extractfile("reports/3-LARRY-EXECUTION-SUMMARY.md").read()
        plan = tar.extractfile("plan.yaml").read().decode()
        report = json.loads(tar.extractfile("reports/larry-02-final.json").read())
    assert names == sorted(["plan.yaml", "reports/3-LARRY-EXECUTION-SUMMARY.md",
                            "results/larry-01/fix-pgadmin-crashloop.json",
                            *(f"reports/{larry.id}-final.json" for larry in dev.larrys)])
    assert summary == result.summary.read_bytes()
    assert load_plan_document(plan, "plan.yaml") == replace(dev, source="plan.yaml")
    assert report == load_larry_report(report_path(coordination / "reports", "larry-02"))


# --------------------------------------------------------------------------- bad reports

def test_a_missing_report_names_the_file_and_writes_nothing(run_dir, dev):
    coordination, _ = run_dir
    missing = report_path(coordination / "reports", "larry-02")
    missing.unlink()
    with pytest.raises(ReportError) as error:
        converge(dev, coordination, now=NOW)
    assert str(error.value).startswith(f"{missing}: report file not found")
    assert "\n" not in str(error.value)
    assert leftovers(coordination) == []


def test_a_corrupt_report_names_the_file_and_writes_nothing(run_dir, dev):
    coordination, _ = run_dir
    corrupt = report_path(coordination / "reports", "larry-03")
    corrupt.write_text(corrupt.read_text()[:200])
    with pytest.raises(ReportError) as error:
        converge(dev, coordination, now=NOW)
    assert str(error.value).startswith(f"{corrupt}: not valid JSON (")
    assert leftovers(coordination) == []


def _set(path: str, value):
    def mutate(report: dict) -> None:
        *parents, last = path.split(".")
        target = report
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is KeyError:
            del target[last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return mutate


@pytest.mark.parametrize("mutate, message", [
    (_set("tokens.committed", KeyError), "tokens.committed: required field is missing (expected a non-negative integer)"),
    (_set("tasks.0.tokens", "12"), "tasks[0].tokens: expected a non-negative integer, got string \"12\""),
    (_set("tasks.1.attempts", True), "tasks[1].attempts: expected a non-negative integer, got boolean true"),
    (_set("status", "done"), "status: expected 'completed' or 'failed', got string \"done\""),
    (_set("started_at", "06:00"), "started_at: expected an ISO 8601 timestamp with a time zone, got string \"06:00\""),
    (_set("schema", 2), "schema: expected schema version 1, got number 2"),
    (_set("workers.cleanup-worker.restarts", -1), "workers.cleanup-worker.restarts: expected a non-negative integer"),
    (_set("alerts", {}), "alerts: expected an array of an object, got an object"),
    (_set("validation.0.passed", "yes"), "validation[0].passed: expected true or false, got string \"yes\""),
    (_set("tasks.0.colour", "red"), "tasks[0].colour: unknown field (expected only id, title,"),
    (_set("findings.prs_created", 99), "findings: expected the sum of the tasks' findings"),
    (_set("larry", "larry-02"), f"larry: expected 'larry-01' (from the plan {ROOT / 'Pulumi.dev.yaml'}), got 'larry-02'"),
    (_set("tasks.0.worker", "scan-worker-01"), "tasks[0]: expected worker 'cleanup-worker' and depends_on []"),
    (lambda r: r["tasks"].pop(), "tasks: missing plan task(s) of larry-01: "),
    (lambda r: r["tasks"].append(copy.deepcopy(r["tasks"][0])), "tasks: task(s) reported more than once of larry-01"),
])
def test_an_invalid_report_names_the_file_and_field_and_writes_nothing(run_dir, dev, mutate, message):
    coordination, _ = run_dir
    path = report_path(coordination / "reports", "larry-01")
    report = json.loads(path.read_text())
    mutate(report)
    path.write_text(json.dumps(report))
    with pytest.raises(ReportError) as error:
        converge(dev, coordination, now=NOW)
    assert str(error.value).startswith(f"{path}: {message}")
    assert leftovers(coordination) == []


def test_nan_is_not_a_number_a_report_may_hold(run_dir):
    coordination, _ = run_dir
    path = report_path(coordination / "reports", "larry-01")
    path.write_text(path.read_text().replace('"coverage_delta": 0.0', '"coverage_delta": NaN', 1))
    with pytest.raises(ReportError, match=re.escape(f"{path}: not valid JSON (NaN is not a number JSON allows")):
        load_larry_report(path)


def test_write_larry_report_round_trips_and_refuses_invalid_reports(tmp_path, dev):
    report = make_reports(dev)["larry-02"]
    path = write_larry_report(tmp_path, report)
    assert path == tmp_path / "larry-02-final.json"
    assert load_larry_report(path) == report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["larry-02-final.json"]  # no temp file left
    broken = copy.deepcopy(report) | {"larry": "larry-03", "speed": 0}
    with pytest.raises(ReportError, match=re.escape(f"{tmp_path / 'larry-03-final.json'}: speed: expected a positive number")):
        write_larry_report(tmp_path, broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["larry-02-final.json"]
    assert load_larry_report(path) == report


def test_an_interrupted_atomic_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "summary.md"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"] and target.read_text() == "old"


def test_aggregate_findings_sums_every_kind():
    a = {"cves": {"critical": 1, "high": 2, "medium": 3, "low": 4}, "prs_created": 1,
         "assets_discovered": 10, "coverage_delta": 0.1}
    b = {"cves": {"critical": 0, "high": 5, "medium": 0, "low": 1}, "prs_created": 2,
         "assets_discovered": 0, "coverage_delta": 0.2}
    total = aggregate_findings([a, b, b])
    assert total["cves"] == {"critical": 1, "high": 12, "medium": 3, "low": 6}
    assert (total["prs_created"], total["assets_discovered"]) == (5, 10)
    assert total["coverage_delta"] == pytest.approx(0.5)
    assert aggregate_findings([])["cves"] == {"critical": 0, "high": 0, "medium": 0, "low": 0}


# --------------------------------------------------------------------------- S3

@pytest.fixture(scope="module")
def moto_server():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_server, monkeypatch, tmp_path):
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    client = boto3.client("s3")
    client.create_bucket(Bucket="larry-archives")
    yield client
    for obj in client.list_objects_v2(Bucket="larry-archives").get("Contents", []):
        client.delete_object(Bucket="larry-archives", Key=obj["Key"])
    client.delete_bucket(Bucket="larry-archives")


def test_archive_is_uploaded_to_s3(run_dir, dev, s3):
    coordination, _ = run_dir
    result = converge(dev, coordination, s3_url="s3://larry-archives/runs/dev/", now=NOW)
    assert result.s3_key == f"runs/dev/{result.archive.name}"
    assert result.s3_uri == f"s3://larry-archives/{result.s3_key}"
    body = s3.get_object(Bucket="larry-archives", Key=result.s3_key)["Body"].read()
    assert body == result.archive.read_bytes()
    assert tarfile.open(fileobj=io.BytesIO(body)).getnames()  # a readable archive
    assert f"`{result.s3_uri}`" in section(result.summary.read_text(), "Next Steps")


def test_failed_upload_keeps_the_archive_and_writes_no_summary(run_dir, dev, s3):
    coordination, _ = run_dir
    with pytest.raises(ConvergeError) as error:
        converge(dev, coordination, s3_url="s3://no-such-bucket/runs", now=NOW)
    message = str(error.value)
    [archive] = (coordination / "archives").iterdir()
    assert re.fullmatch(archive_pattern(3), archive.name)
    assert message.startswith(f"s3://no-such-bucket/runs/{archive.name}: upload failed (")
    assert "NoSuchBucket" in message and "\n" not in message
    assert not (coordination / "reports" / "3-LARRY-EXECUTION-SUMMARY.md").exists()


@pytest.mark.parametrize("url", ["larry-archives/runs", "s3:///runs", "https://bucket/x"])
def test_a_bad_s3_url_fails_before_anything_is_written(run_dir, dev, url):
    coordination, _ = run_dir
    with pytest.raises(ConvergeError, match=re.escape(f"{url}: expected an S3 URL of the form s3://bucket/prefix")):
        converge(dev, coordination, s3_url=url, now=NOW)
    assert leftovers(coordination) == []


# --------------------------------------------------------------------------- the verdict (issue 11 item 14)

def late(reports: dict[str, dict], seconds: float) -> dict[str, dict]:
    """The reports with the last phase ending ``seconds`` later."""
    last = reports["larry-03"]
    last["completed_at"] = (datetime.fromisoformat(last["completed_at"]) + timedelta(seconds=seconds)).isoformat()
    finalise(last)
    return reports


def test_a_run_over_its_execution_window_is_not_a_success(tmp_path, dev):
    write_all(tmp_path, late(make_reports(dev), 10))  # the window is 40 min at x600 = 4 s
    summary = converge(dev, tmp_path, now=NOW).summary.read_text()
    metrics = table_rows(section(summary, "Executive Summary"))
    assert metrics["Within the execution window"][2] == "no"
    assert "**Overall: INCOMPLETE.**" in summary
    assert "overrun its execution window" in section(summary, "Next Steps")
    assert verdict(dev, load_reports(dev, tmp_path / "reports")) == ["Within the execution window"]


def test_the_window_is_the_one_the_run_had_allowance_included(tmp_path, dev):
    write_all(tmp_path, late(make_reports(dev), 10))
    summary = converge(dev, tmp_path, now=NOW, allowance=60).summary.read_text()
    row = table_rows(section(summary, "Executive Summary"))["Within the execution window"]
    assert row[2] == "yes" and "40 min plan window at speed ×600 + 60 s start-up allowance = 64.0 s" in row[1]
    assert "**Overall: SUCCESS.**" in summary
    assert verdict(dev, load_reports(dev, tmp_path / "reports"), allowance=60) == []


def test_no_cleanup_advice_once_the_private_redis_is_gone(run_dir, dev):
    coordination, _ = run_dir
    steps = section(converge(dev, coordination, now=NOW, private_redis=True).summary.read_text(), "Next Steps")
    assert "larry cleanup" not in steps and "no keys are left to clean up" in steps


def test_an_over_budget_plan_is_said_so_in_the_summary(tmp_path):
    cortex = load_stack("cortex", ROOT)
    write_all(tmp_path, make_reports(cortex))
    summary = converge(cortex, tmp_path, now=NOW).summary.read_text()
    assert ("**Warning:** the plan is over its token budgets, and the policy pack would block it: plan allocates "
            "365,000 of 295,000") in section(summary, "Executive Summary")
    dev = load_stack("dev", ROOT)
    (tmp_path / "reports" / "6-LARRY-EXECUTION-SUMMARY.md").unlink()
    for path in (tmp_path / "reports").glob("*.json"):
        path.unlink()
    write_all(tmp_path, make_reports(dev))
    assert "**Warning:**" not in converge(dev, tmp_path, now=NOW).summary.read_text()


def test_two_convergences_in_the_same_second_keep_both_archives(run_dir, dev):
    coordination, _ = run_dir
    first, second = converge(dev, coordination, now=NOW), converge(dev, coordination, now=NOW)
    assert first.archive != second.archive and first.archive.exists() and second.archive.exists()


def test_every_escalation_is_listed_with_its_outcome(tmp_path, dev):
    reports = make_reports(dev)
    raised = {"id": "esc-1", "task": "scan-core-namespaces", "issue": "larry-02 is 500 tokens past its limit"}
    two = reports["larry-02"]
    two["alerts"] = [
        {"event": "escalation_raised", "from": "larry-02/scan-worker-01", "detail": json.dumps(raised)},
        {"event": "escalation_raised", "from": "larry-02/scan-worker-02",
         "detail": json.dumps({**raised, "id": "esc-2", "task": "scan-platform-namespaces"})},
        {"event": "escalation_raised", "from": "larry-02/audit-worker",
         "detail": json.dumps({**raised, "id": "esc-3", "task": "audit-dependencies"})},
        {"event": "escalation_decided", "from": "ops", "detail": json.dumps({"id": "esc-1", "status": "approved",
                                                                            "tokens": "5000"})},
        {"event": "escalation_decided", "from": "ops", "detail": json.dumps({"id": "esc-2", "status": "denied",
                                                                            "reason": "low priority"})}]
    for report in reports.values():
        finalise(report)
    write_all(tmp_path, reports)
    summary = converge(dev, tmp_path, now=NOW).summary.read_text()
    assert ("Escalations: esc-1 from larry-02/scan-worker-01 on scan-core-namespaces (larry-02 is 500 tokens past "
            "its limit): approved by ops, 5,000 tokens granted; esc-2 from larry-02/scan-worker-02 on "
            "scan-platform-namespaces (larry-02 is 500 tokens past its limit): denied by ops: low priority; "
            "esc-3 from larry-02/audit-worker on audit-dependencies") in summary
    assert "audit-dependencies (larry-02 is 500 tokens past its limit): still open." in summary
    assert summary.count("Escalations: none.") == 2
