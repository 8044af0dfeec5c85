"""The payload line protocol and the simulated payload that speaks it."""
import io
import json
import re

import pytest

from runtime.agent import simulated
from runtime.agent.protocol import (
    MAX_TOKENS,
    PayloadReport,
    ProtocolError,
    format_line,
    is_protocol_line,
    merge_findings,
    normalise_findings,
    parse_line,
)
from runtime.catalog.assets import asset_id


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


def test_an_escalation_round_trips_and_a_malformed_one_says_what_is_wrong():
    escalation = {"issue": "the fix needs a schema migration", "severity": "high", "recommendation": "approve a window"}
    report = PayloadReport(tokens=5, escalation=escalation)
    assert parse_line(format_line(report)) == report
    for bad, reason in (({"issue": "x"}, "'escalation.severity' is required"),
                        ({"issue": "x", "severity": "urgent"}, "'escalation.severity' must be one of critical"),
                        ({"issue": "", "severity": "low"}, "'escalation.issue' must be a string of 1-500"),
                        ({"issue": "x", "severity": "low", "options": []}, "unknown escalation field 'options'"),
                        ("help", "'escalation' must be an object")):
        with pytest.raises(ProtocolError, match=re.escape(reason)):
            parse_line(f'@larry {{"escalation": {json.dumps(bad)}}}')


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
    # Catalog workers report the assets they count, for the catalog; the others none.
    assert len(reports[-1].assets) == reports[-1].findings.get("assets_discovered", 0)


@pytest.mark.parametrize("line, reason", [
    ('@larry {"assets": {"name": "a"}}', "assets: expected a list of at most 1,000 assets"),
    ('@larry {"assets": [{"name": "a", "type": "POD"}]}', "assets[0].source: expected a non-empty string"),
    ('@larry {"assets": [{"name": "a", "type": "ROCKET", "source": "k"}]}', "assets[0].type: expected one of"),
    ('@larry {"assets": [{"name": "a", "type": "POD", "source": "k", "owner": "me"}]}',
     "assets[0]: unknown field 'owner'"),
    ('@larry {"assets": [{"name": "a", "type": "POD", "source": "k", "lineage": [{"type": "POD"}]}]}',
     "assets[0].lineage[0].name: expected a non-empty string"),
])
def test_malformed_assets_reject_the_whole_line(line, reason):
    with pytest.raises(ProtocolError) as caught:
        parse_line(line)
    assert reason in str(caught.value)


def test_assets_are_read_with_lineage_by_natural_key():
    report = parse_line('@larry {"assets": [{"name": "api-7d9", "type": "replicaset", "source": "k3s", '
                        '"namespace": "cortex", "lineage": [{"type": "DEPLOYMENT", "name": "api"}]}]}')
    (asset,) = report.assets
    assert (asset.type, asset.health) == ("REPLICASET", "UNKNOWN")
    # a natural key without a source or namespace: the asset's source, no namespace
    assert asset.lineage == (asset_id("k3s", "DEPLOYMENT", "", "api"),)


@pytest.mark.parametrize("line, reason", [
    ('@larry {"findings": {"cves": 5}}', "'findings.cves' must be an object of counts by severity, got 5"),
    ('@larry {"findings": {"cves": {"critical": -1}}}', "'findings.cves.critical' must be an integer 0-"),
    ('@larry {"findings": {"cves": {"urgent": 1}}}', "unknown severity 'urgent'"),
    ('@larry {"findings": {"prs_created": "2"}}', "'findings.prs_created' must be an integer"),
    ('@larry {"findings": {"coverage_delta": 1000}}', "'findings.coverage_delta' must be a number -100 to 100"),
    ('@larry {"findings": {"secrets": ["aws"]}}', "unknown finding 'secrets'"),
    ('@larry {"tokens": 1e30}', "'tokens' must be a non-negative integer of at most 1,000,000,000,000, got 1e+30"),
    ('@larry {"tokens": 9223372036854775807}', "'tokens' must be a non-negative integer of at most"),
    ('@larry {"tokens": 1000000000001}', "'tokens' must be a non-negative integer of at most"),
    ('@larry {"tokens": 1.5}', "'tokens' must be a non-negative integer"),
    ('@larry {"tokens": true}', "'tokens' must be a non-negative integer"),
    ('@larry {"progress": NaN}', "'progress' must be a number 0-100"),
])
def test_findings_and_tokens_outside_the_documented_schema_are_malformed(line, reason):
    with pytest.raises(ProtocolError, match=re.escape(reason)):
        parse_line(line)


def test_the_documented_bounds_are_accepted():
    report = parse_line('@larry {"tokens": 1000000000000, "findings": {"cves": {"low": 0}, "coverage_delta": -100}}')
    assert report.tokens == MAX_TOKENS and report.findings == {"cves": {"low": 0}, "coverage_delta": -100}


def test_normalised_findings_have_the_full_shape_whatever_was_stored():
    empty = {"cves": {"critical": 0, "high": 0, "medium": 0, "low": 0}, "prs_created": 0, "assets_discovered": 0,
             "coverage_delta": 0.0}
    assert normalise_findings({"cves": 5, "prs_created": "x", "coverage_delta": float("nan")}) == empty
    assert normalise_findings(None) == empty
    assert normalise_findings({"cves": {"high": 2}, "assets_discovered": 3})["cves"]["high"] == 2
