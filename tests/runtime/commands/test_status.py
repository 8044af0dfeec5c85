"""`larry status` against a real redis-server, on a run built by :mod:`run_state`."""
from __future__ import annotations

import json

import pytest

from runtime.cli import main as larry
from runtime.commands import status
from runtime.coordination.barrier import Barrier
from runtime.coordination.escalations import Escalations
from runtime.coordination.keys import CONVERGENCE_BARRIER, REPORTS_BARRIER
from runtime.coordination.registry import WorkerRegistry
from tests.runtime.commands.run_state import DEV, PROGRESS, ROOT, build_run, finish_task, run_args


def test_status_json_reports_phases_tasks_ledger_workers_and_barrier(r, ks, settings, capsys):
    built = build_run(r, ks)
    Barrier(r, ks, CONVERGENCE_BARRIER, ["larry-01", "larry-02", "larry-03"]).arrive("larry-02")
    assert larry(["status", *run_args(settings, ks, "--json")]) == 0
    state = json.loads(capsys.readouterr().out)
    by_id = {s["larry"]: s for s in state["larrys"]}
    assert [s["larry"] for s in state["larrys"]] == ["larry-01", "larry-02", "larry-03"]
    for larry_id, (percent, _message) in PROGRESS.items():
        s = by_id[larry_id]
        assert s["status"] == "in_progress" and s["progress"] == percent
        assert s["started_at"].endswith("Z") and s["completed_at"] is None
        assert s["ledger"]["committed"] == built["committed"][larry_id]
        assert s["ledger"]["limit"] == DEV.larry(larry_id).token_budget
        assert [t["task"] for t in s["active_tasks"]] == [built["held"][larry_id][1]]
        assert s["active_tasks"][0]["owner"].startswith(f"{larry_id}/{built['held'][larry_id][0]}/")
        assert s["workers_active"] == len(DEV.larry(larry_id).workers)
    assert by_id["larry-02"]["tasks"] == {"total": 12, "pending": 9, "in_progress": 1, "completed": 2, "failed": 0}
    assert by_id["larry-02"]["findings"] == {"cves": {"critical": 3, "high": 4, "medium": 5}}
    assert by_id["larry-03"]["findings"] == {"assets_discovered": 87, "prs_created": 2, "coverage_delta": 8.0}
    assert state["reserve_pool"] == {"left": 25_000, "plan": 25_000}
    workers = {w["worker"]: w for w in state["workers"]}
    assert len(workers) == 16 and workers["audit-worker"]["larry"] == "larry-02"
    assert workers["audit-worker"]["status"] == "busy" and workers["audit-worker"]["node"] == "k3s-worker02"
    assert all(0 <= w["heartbeat_age_s"] < 5 for w in workers.values())
    assert state["barriers"] == [
        {"name": CONVERGENCE_BARRIER, "arrived": ["larry-02"], "missing": ["larry-01", "larry-03"], "released_at": None},
        {"name": REPORTS_BARRIER, "arrived": [], "missing": ["larry-01", "larry-02", "larry-03"], "released_at": None}]


def test_status_heartbeat_age_grows_and_a_silent_worker_is_not_active(r, ks, settings, capsys):
    WorkerRegistry(r, ks).register("cleanup-worker", "larry-01", "k3s-worker01", "busy")
    # a heartbeat 20 s in the past (the primary's clock): beyond the registry's grace
    r.zadd(ks.worker_heartbeats, {"cleanup-worker": int(r.time()[0]) * 1000 - 20_000})
    assert larry(["status", *run_args(settings, ks, "--json")]) == 0
    state = json.loads(capsys.readouterr().out)
    (worker,) = state["workers"]
    assert 19.5 < worker["heartbeat_age_s"] < 25 and worker["alive"] is False
    assert state["larrys"][0]["workers_active"] == 0


def test_status_table_names_every_larry_and_figure(r, ks, settings, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    build_run(r, ks)
    assert larry(["status", *run_args(settings, ks)]) == 0
    out = capsys.readouterr().out
    for text in ("larry-01", "larry-02", "larry-03", "60%", "45%", "35%", "Critical: 3", "Assets: 87",
                 "Coverage: +8.0%", "audit-worker", "reserve pool 25,000 of 25,000",
                 "Barrier convergence: 0/3 arrived, waiting for larry-01, larry-02, larry-03"):
        assert text in out, text


@pytest.mark.parametrize("argv, message", [
    (["status", "--stack", "dev", "--project-dir", str(ROOT), "--redis-url", "nope://x"], "Redis URL must specify"),
    (["status", "--project-dir", str(ROOT)], "no plan: pass --plan FILE"),
    (["status", "--stack", "dev", "--project-dir", str(ROOT), "--redis-url", "redis://127.0.0.1:1/0",
      "--key-prefix", "é"], "key and channel names must be printable ASCII"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("LARRY_PLAN", raising=False)
    monkeypatch.setenv("LARRY_REDIS_RETRY_FOR", "0.3")
    assert larry(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


#: Findings of a shape the protocol refuses, as an older or foreign writer may have left them.
ODD_FINDINGS = {"cves": 5, "prs_created": "many"}


def test_findings_of_an_unexpected_shape_neither_crash_status_nor_count(r, ks, settings, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    build_run(r, ks)
    finish_task(r, ks, "larry-02", "scan-worker-02", "check-outdated-dependencies", ODD_FINDINGS, 10)
    assert larry(["status", *run_args(settings, ks)]) == 0
    assert "Critical: 3" in capsys.readouterr().out
    assert larry(["status", *run_args(settings, ks, "--json")]) == 0
    by_id = {s["larry"]: s for s in json.loads(capsys.readouterr().out)["larrys"]}
    assert by_id["larry-02"]["findings"] == {"cves": {"critical": 3, "high": 4, "medium": 5}}


def test_status_shows_open_escalations(r, ks, settings, capsys):
    build_run(r, ks)
    escalations = Escalations(r, ks)
    for n, task in enumerate(("scan-core-namespaces", "scan-platform-namespaces")):
        escalations.raise_(f"k{n}", sender=f"larry-02/scan-worker-0{n + 1}", larry="larry-02", account="larry-02",
                           task=task, issue="larry-02 is 10 tokens past its limit", severity="high",
                           recommendation="approve 510 tokens", tokens_short=510)
    escalations.deny("esc-2", "no", by="ops")
    assert larry(["status", *run_args(settings, ks, "--json")]) == 0
    state = json.loads(capsys.readouterr().out)
    assert [(e["id"], e["status"]) for e in state["escalations"]] == [("esc-1", "open"), ("esc-2", "denied")]
    assert larry(["status", *run_args(settings, ks)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert ("Open escalations: 1 esc-1 from larry-02/scan-worker-01 (scan-core-namespaces): larry-02 is 10 tokens "
            "past its limit; approve 510 tokens") in out and "esc-2" not in out


def test_status_pages_the_larrys_and_sums_up_the_fleet(r, ks, settings, capsys, monkeypatch):
    build_run(r, ks)
    assert larry(["status", *run_args(settings, ks, "--json", "--page", "2", "--page-size", "2")]) == 0
    state = json.loads(capsys.readouterr().out)
    assert [s["larry"] for s in state["larrys"]] == ["larry-03"]
    assert {w["larry"] for w in state["workers"]} == {"larry-03"}  # the page's workers only
    assert state["fleet"]["larrys"] == 3 and state["fleet"]["statuses"] == {"in_progress": 3}
    assert [p["larry"] for p in state["fleet"]["progress"]] == ["larry-03", "larry-02", "larry-01"]
    assert larry(["status", *run_args(settings, ks, "--json", "--larry", "larry-02")]) == 0
    assert [s["larry"] for s in json.loads(capsys.readouterr().out)["larrys"]] == ["larry-02"]
    # past WORKER_ROWS workers the table counts them per Larry instead of listing them
    monkeypatch.setattr(status, "WORKER_ROWS", 5)
    monkeypatch.setenv("COLUMNS", "160")
    assert larry(["status", *run_args(settings, ks)]) == 0
    out = capsys.readouterr().out
    assert "Fleet: 3 Larrys (3 in_progress); least progressed: larry-03 35%, larry-02 45%" in out
    assert "Workers per Larry: 16" in out and "audit-worker" not in out, out


@pytest.mark.parametrize("extra, message", [
    (["--page", "3", "--page-size", "2"], "--page 3 of 2 Larrys: expected a page from 1 to 2"),
    (["--page-size", "0"], "--page-size 0: expected 1 or more"),
    (["--larry", "larry-9"], "--larry 'larry-9': expected one of larry-01, larry-02, larry-03"),
])
def test_a_page_or_larry_the_plan_has_not_is_one_line_and_exit_2(extra, message, ks, settings, capsys):
    assert larry(["status", *run_args(settings, ks, *extra)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
