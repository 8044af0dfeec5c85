"""The per-Larry report schema on its own: what it accepts, and one line naming the field
for what it does not."""
import copy
import json

import pytest

from runtime.reporting.schema import (
    ReportError,
    aggregate_findings,
    load_larry_report,
    report_path,
    validate_report,
    write_larry_report,
)

NONE_FOUND = {"cves": {"critical": 0, "high": 0, "medium": 0, "low": 0}, "prs_created": 0,
              "assets_discovered": 0, "coverage_delta": 0.0}
FOUND = {"cves": {"critical": 1, "high": 2, "medium": 0, "low": 0}, "prs_created": 1,
         "assets_discovered": 0, "coverage_delta": 2.5}


def report() -> dict:
    tasks = [
        {"id": "scan", "title": "Scan", "worker": "scan-worker", "status": "completed", "fence": 3, "tokens": 10,
         "attempts": 1, "depends_on": [], "started_at": "2026-11-30T14:00:00.000Z",
         "completed_at": "2026-11-30T14:00:01.500Z", "findings": FOUND},
        {"id": "fix", "title": "Fix", "worker": "fix-worker", "status": "pending", "fence": 0, "tokens": 0,
         "attempts": 0, "depends_on": ["scan"], "started_at": None, "completed_at": None,
         "findings": NONE_FOUND, "detail": "pending when the phase ended"},
    ]
    return {"schema": 1, "stack": "dev", "larry": "larry-02", "phase": "Security", "status": "failed",
            "planned_seconds": 150.0, "speed": 600.0, "started_at": "2026-11-30T14:00:00.000Z",
            "completed_at": "2026-11-30T14:00:02.000+00:00", "duration_seconds": 2.0, "tasks": tasks,
            "tokens": {"limit": 100, "reserved": 0, "committed": 10, "emergency_drawn": 0},
            "accounts": [{"account": "larry-02", "kind": "larry", "limit": 100, "granted": 0, "released": 0,
                          "reserved": 0, "committed": 10}],
            "masters": [],
            "findings": aggregate_findings(t["findings"] for t in tasks),
            "validation": [{"check": "All plan tasks completed", "passed": False, "detail": "1/2 completed"}],
            "workers": {"scan-worker": {"node": "n1", "status": "completed", "restarts": 0}},
            "requeued_tasks": [], "alerts": [{"event": "token_overrun", "from": "larry-02/x", "detail": "{}"}]}


def test_a_complete_report_is_valid_and_round_trips(tmp_path):
    validate_report(report(), "r.json")
    path = write_larry_report(tmp_path, report())
    assert path == report_path(tmp_path, "larry-02") == tmp_path / "larry-02-final.json"
    assert load_larry_report(path) == report()


def test_aggregate_findings_sums_counts_and_coverage():
    total = aggregate_findings([FOUND, FOUND, NONE_FOUND])
    assert total == {"cves": {"critical": 2, "high": 4, "medium": 0, "low": 0}, "prs_created": 2,
                     "assets_discovered": 0, "coverage_delta": 5.0}


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("tasks"), "tasks: required field is missing (expected an array of an object)"),
    (lambda r: r["tasks"][1].update(status="running"),
     "tasks[1].status: expected 'completed' or 'failed' or 'pending', got string \"running\""),
    (lambda r: r["tasks"][0].update(started_at="2026-11-30T14:00:00"),
     "tasks[0].started_at: expected an ISO 8601 timestamp with a time zone, got string"),
    (lambda r: r["tasks"][0]["findings"]["cves"].update(critical=-1), "tasks[0].findings.cves.critical: expected a non-negative"),
    (lambda r: r["tokens"].update(spent=1), "tokens.spent: unknown field"),
    (lambda r: r.update(larry="Larry 2"), "larry: expected a lowercase DNS label"),
    (lambda r: r.update(findings=NONE_FOUND), "findings: expected the sum of the tasks' findings"),
])
def test_a_malformed_report_is_one_line_naming_the_source_and_field(change, message):
    broken = copy.deepcopy(report())
    change(broken)
    with pytest.raises(ReportError) as error:
        validate_report(broken, "reports/larry-02-final.json")
    text = str(error.value)
    assert text.startswith(f"reports/larry-02-final.json: {message}") and "\n" not in text


def test_loading_names_the_file_for_missing_unreadable_and_non_json(tmp_path):
    missing = tmp_path / "larry-01-final.json"
    with pytest.raises(ReportError, match="report file not found"):
        load_larry_report(missing)
    missing.write_bytes(b"\xff\xfe")
    with pytest.raises(ReportError, match="cannot read the report"):
        load_larry_report(missing)
    missing.write_text("[]")
    with pytest.raises(ReportError, match="report: expected a JSON object, got an array"):
        load_larry_report(missing)
    missing.write_text(json.dumps(report()).replace("150.0", "Infinity"))
    with pytest.raises(ReportError, match="Infinity is not a number JSON allows"):
        load_larry_report(missing)


def test_an_invalid_report_is_not_written(tmp_path):
    broken = report() | {"speed": 0}
    with pytest.raises(ReportError, match="speed: expected a positive number"):
        write_larry_report(tmp_path, broken)
    assert list(tmp_path.iterdir()) == []
