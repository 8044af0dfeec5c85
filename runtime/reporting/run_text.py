"""How a run's state reads to a person: the words and colours ``larry status`` and ``larry
dashboard`` share for findings, tokens, barriers and statuses (rich :class:`~rich.text.Text`).

Every function takes what :mod:`runtime.reporting.run_view` read and never fails on it:
findings are whatever the protocol accepted, and a figure of an unexpected shape is left
out rather than shown wrong.
"""
from __future__ import annotations

from typing import Callable

from rich.text import Text

from plan.statuses import TaskStatus
from runtime.agent.protocol import COUNTS, COVERAGE, normalise_findings

STATUS_STYLES = {TaskStatus.PENDING: "dim", TaskStatus.IN_PROGRESS: "yellow", TaskStatus.COMPLETED: "green",
                 TaskStatus.FAILED: "bold red"}


LABELS = {"assets_discovered": "Assets", "prs_created": "PRs"}


def findings_items(findings: dict) -> list[str]:
    """The seed's metrics: ``Critical: 3``, ``High: 4`` ..., ``Assets: 87``, ``PRs: 2``, ``Coverage: +8.0%``."""
    found = normalise_findings(findings)
    items = [f"{severity.capitalize()}: {n}" for severity, n in found["cves"].items() if n]
    items += [f"{LABELS[key]}: {found[key]}" for key in sorted(COUNTS) if found[key]]
    if found[COVERAGE]:
        items.append(f"Coverage: {found[COVERAGE]:+.1f}%")
    return items


def findings_text(findings: dict) -> str:
    return " | ".join(findings_items(findings))


def tokens_text(ledger: dict) -> str:
    """Used (committed + reserved) of the limit, in thousands as the seed writes budgets (111k)."""
    used = ledger["committed"] + ledger["reserved"]
    text = f"{used / 1000:,.1f}k / {ledger['limit'] / 1000:,.0f}k"
    return text + (f" +{ledger['emergency'] / 1000:,.0f}k reserve" if ledger["emergency"] else "")


def barrier_text(barrier: dict, when: Callable[[str], str] = str) -> Text:
    """``released <when>`` or ``1/3 arrived, waiting for larry-01, larry-03``."""
    if barrier["released_at"]:
        return Text(f"released {when(barrier['released_at'])}", style="green")
    return Text(f"{len(barrier['arrived'])}/{len(barrier['arrived']) + len(barrier['missing'])} arrived, "
                f"waiting for {', '.join(barrier['missing'])}", style="yellow")


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))
