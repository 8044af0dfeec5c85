"""A Larry's Phase 4 checks, and the plan budget problems `larry run` refuses."""
import pytest

from plan.loader import load_stack
from runtime.reporting.validation import budget_problems, validate
from tests.support.project import ROOT


def report(committed: int, limit: int = 100_000, drawn: int = 0) -> dict:
    return {"larry": "larry-01", "findings": {}, "tasks": [{"worker": "w", "status": "completed"}],
            "tokens": {"limit": limit, "reserved": 0, "committed": committed, "emergency_drawn": drawn}}


def budget_check(r: dict) -> dict:
    return next(c for c in validate(r) if c["check"] == "Token use within the Larry's budget")


@pytest.mark.parametrize("committed, drawn, passed", [
    (100_000, 0, True),
    (100_001, 0, False),
    (120_000, 25_000, False),  # the emergency reserve kept it going; it did not enlarge its budget
    (90_000, 25_000, True),
])
def test_token_use_is_within_the_budget_only_up_to_the_larry_s_token_budget(committed, drawn, passed):
    check = budget_check(report(committed, drawn=drawn))
    assert check["passed"] is passed
    assert check["detail"].startswith(f"{committed:,} of 100,000 tokens committed ({committed / 1000:.1f}%)")
    assert ("drawn from the emergency reserve" in check["detail"]) is bool(drawn)


def test_the_dev_plan_fits_its_budgets_and_the_cortex_plan_does_not():
    assert budget_problems(load_stack("dev", ROOT)) == []
    assert budget_problems(load_stack("cortex", ROOT)) == [
        "plan allocates 365,000 of 295,000 (Larrys 260,000 + meta-coordinator 105,000): over the system budget"]
