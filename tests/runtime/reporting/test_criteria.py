"""Seed 004's success criteria and seed 001's cross-validation, from synthetic cortex reports;
and the verdict: a plan whose criteria failed is never reported SUCCESS."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from plan.loader import load_stack
from runtime.reporting.criteria import Measurements, evaluate, failed
from runtime.reporting.execution_plan import FINAL_RESULTS
from runtime.reporting.summary import converge, load_reports, verdict
from tests.runtime.reporting.test_summary import NOW, finalise, make_reports, write_all
from tests.support.project import ROOT

CORTEX = load_stack("cortex", ROOT)


def measured(**changes) -> Measurements:
    """A run that met every criterion: 80 % of the tokens, 1 ms PINGs, the catalog always up,
    within the scaled 60 minutes."""
    good = Measurements(
        masters={m.name: "2026-11-21T06:00:01.000Z" for larry in CORTEX.larrys for m in larry.masters},
        workers={w.name: {"status": "completed"} for _, w in CORTEX.workers},
        redis_latency_ms=(1.0, 2.0), catalog_probes=(10, 10), duration_seconds=5.0,
        window_seconds=(4.5, 66.0), speed=600.0, tokens_used=int(CORTEX.budget.system_tokens * 0.8))
    return replace(good, **changes)


@pytest.fixture
def reports():
    made = make_reports(CORTEX)
    # The synthetic spend overruns the inventory master's pool (seed 004's figures do not add
    # up); as in a real run, the emergency reserve lends it what it needs.
    pool = made["inventory"]["masters"][0]["pool"]
    pool["granted"] = pool["committed"] - pool["limit"]
    return made


def names(criteria) -> set[str]:
    return {f"{c.subject}: {c.name}" for c in criteria}


def test_every_level_is_met_by_a_run_that_met_them(reports):
    criteria = evaluate(CORTEX, list(reports.values()), measured())
    assert failed(criteria) == []
    levels = [c.level for c in criteria]
    masters = sum(len(larry.masters) for larry in CORTEX.larrys)
    assert levels.count("master") == 4 * masters + 2  # and coordinator-master's two
    assert levels.count("worker") == 4 * len(CORTEX.workers)
    assert levels.count("cross-validation") == len(CORTEX.larrys) * (len(CORTEX.larrys) - 1)
    eviction = next(c for c in criteria if c.name == "Zero pod evictions or OOMKills")
    assert eviction.met is None, "not knowable without pod status, and not counted as failed"


@pytest.mark.parametrize("changes,criterion", [
    ({"tokens_used": int(CORTEX.budget.system_tokens * 0.5)}, "system: Token budget usage 70%-90%"),
    ({"tokens_used": int(CORTEX.budget.system_tokens * 0.95)}, "system: Token budget usage 70%-90%"),
    ({"redis_latency_ms": (9.0, 12.0)}, "system: Redis coordination latency < 10 ms average"),
    ({"catalog_probes": (9, 10)}, "system: Catalog API uptime 100%"),
    ({"duration_seconds": 66.5}, "system: Execution completes in 45-60 minutes (scaled ×600)"),
    ({"evictions": ("cicd/analysis-worker-01 OOMKilled",)}, "system: Zero pod evictions or OOMKills"),
    ({"masters": {"security-master": None}}, "security-master: Activated (heartbeating)"),
    ({"workers": {}}, "scan-worker-01: Status reported to its master"),
])
def test_each_system_criterion_can_fail(reports, changes, criterion):
    criteria = evaluate(CORTEX, list(reports.values()), measured(**changes))
    assert criterion in names(failed(criteria))


def test_an_unfinished_task_fails_its_worker_its_master_and_the_other_larrys_cross_validation(reports):
    security = reports["security"]
    task = next(t for t in security["tasks"] if t["worker"] == "scan-worker-01")
    task.update(status="failed", completed_at=None)
    security["status"] = "failed"
    security["workers"]["scan-worker-01"]["status"] = "failed"
    finalise(security)
    failures = names(failed(evaluate(CORTEX, list(reports.values()), measured())))
    assert {"scan-worker-01: Completes its assigned task(s)", "scan-worker-01: Clean termination (no crashes)",
            "security-master: Its workers' tasks completed"} <= failures
    checkers = {f.split(" checks ")[0] for f in failures if " checks security" in f}
    assert checkers == {larry.id for larry in CORTEX.larrys} - {"security"}
    assert not [f for f in failures if "checks" in f and "checks security" not in f]


def test_a_failing_criterion_is_not_reported_as_success(tmp_path, reports):
    write_all(tmp_path, reports)
    loaded = load_reports(CORTEX, tmp_path / "reports")
    assert verdict(CORTEX, loaded, root=tmp_path)[0].startswith("seed 004 success criteria unreadable")
    for tokens, expected in ((0.8, "SUCCESS"), (0.5, "INCOMPLETE")):
        criteria = evaluate(CORTEX, loaded, measured(tokens_used=int(CORTEX.budget.system_tokens * tokens)))
        (tmp_path / FINAL_RESULTS).parent.mkdir(exist_ok=True)
        (tmp_path / FINAL_RESULTS).write_text(json.dumps({"criteria": [c.as_dict() for c in criteria]}))
        unmet = verdict(CORTEX, loaded, root=tmp_path)
        result = converge(CORTEX, tmp_path, now=NOW, execution_id="2026-11-21-060000", criteria=criteria)
        assert f"**Overall: {expected}.**" in result.summary.read_text()
        assert result.archive == tmp_path / "archives" / "exec-2026-11-21-060000" / "exec-2026-11-21-060000.tar.gz"
        if expected == "SUCCESS":
            assert unmet == []
        else:
            assert "system: Token budget usage 70%-90% (147,500 of 295,000 (50.0%))" in unmet
