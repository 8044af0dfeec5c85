"""The payload line protocol and the simulated payload that speaks it."""
import io

import pytest

from runtime.agent import simulated
from runtime.agent.protocol import (
    PayloadReport,
    ProtocolError,
    format_line,
    is_protocol_line,
    merge_findings,
    parse_line,
)


def test_round_trip():
    report = PayloadReport(tokens=120, findings={"cves": {"high": 2}}, progress=40, message="half way")
    line = format_line(report)
    assert is_protocol_line(line)
    assert parse_line(line) == report


@pytest.mark.parametrize("line,reason", [
    ("@larry {not json", "not JSON"),
    ("@larry [1, 2]", "expected a JSON object"),
    ('@larry {"tokens": -1}', "'tokens' must be a non-negative integer"),
    ('@larry {"tokens": "12"}', "'tokens' must be a non-negative integer"),
    ('@larry {"progress": 140}', "'progress' must be a number 0-100"),
    ('@larry {"findings": 3}', "'findings' must be an object"),
])
def test_malformed_lines_say_what_is_wrong(line, reason):
    with pytest.raises(ProtocolError, match=reason):
        parse_line(line)


def test_ordinary_output_is_not_protocol():
    assert not is_protocol_line("scanning namespace database")
    assert not is_protocol_line("@larry{}")  # the prefix includes the space


def test_merge_findings_sums_counts_and_merges_objects():
    merged = merge_findings({"cves": {"high": 1}, "prs_created": 1}, {"cves": {"high": 2, "critical": 1},
                                                                      "prs_created": 2, "note": "x"})
    assert merged == {"cves": {"high": 3, "critical": 1}, "prs_created": 3, "note": "x"}


def _simulate(**env_overrides):
    env = {"LARRY_TASK_ID": "scan-core-namespaces", "LARRY_WORKER_ID": "scan-worker-01",
           "LARRY_TOKEN_BUDGET": "8000", "LARRY_TASK_MINUTES": "5", **env_overrides}
    out = io.StringIO()
    slept = []
    overspend = env.pop("overspend", False)
    simulated.run(env, speed=600, overspend=overspend, out=out, sleep=slept.append)
    reports = [parse_line(line) for line in out.getvalue().splitlines()]
    return reports, slept


def test_simulated_scan_worker_spends_within_budget_and_finds_cves():
    reports, slept = _simulate()
    spent = sum(r.tokens for r in reports)
    assert 0.55 * 8000 <= spent <= 0.85 * 8000
    assert reports[-2].progress == 100
    assert set(reports[-1].findings["cves"]) == {"critical", "high", "medium", "low"}
    # 5 planned minutes at speed 600 and half busy: 0.25 s in all.
    assert sum(slept) == pytest.approx(5 * 60 * simulated.BUSY_SHARE / 600)


def test_simulation_is_reproducible_per_task():
    assert _simulate()[0] == _simulate()[0]
    assert _simulate()[0] != _simulate(LARRY_TASK_ID="scan-platform-namespaces")[0]


def test_overspending_payload_reports_more_than_its_budget():
    reports, _ = _simulate(overspend=True)
    assert sum(r.tokens for r in reports) > 8000


@pytest.mark.parametrize("worker,finding", [("catalog-worker-01", "assets_discovered"),
                                            ("test-coverage-worker", "coverage_delta"),
                                            ("remediation-worker", "prs_created")])
def test_findings_follow_the_kind_of_worker(worker, finding):
    reports, _ = _simulate(LARRY_WORKER_ID=worker)
    assert finding in reports[-1].findings
