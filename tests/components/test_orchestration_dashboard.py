"""Seed 004's Cortex orchestration dashboard as the cortex stack renders it: a ConfigMap the
Grafana sidecar loads, the seed's eight panels refreshed every 5 s. That each query names series
the runtime really exports is checked against a live scrape (tests/scenarios/test_run.py's
cortex run, :func:`tests.support.prometheus.check_live_run`)."""
from __future__ import annotations

import json

from tests.components.pulumi_graph import CM
from tests.support.prometheus import metric_names

SEED_PANELS = ["Master activity timeline", "Token budget usage", "Worker distribution heatmap", "Task queue depth",
               "Asset discovery rate", "CVE severity breakdown", "Test coverage trend", "PR creation timeline"]


def test_the_cortex_stack_has_seed_004s_eight_panel_dashboard(cortex):
    (config,) = [c for c in cortex.of(CM) if c.metadata["name"] == "cortex-orchestration-dashboard"]
    assert config.metadata["labels"]["grafana_dashboard"] == "1"
    board = json.loads(config.manifest["data"]["cortex-orchestration.json"])
    assert (board["uid"], board["refresh"]) == ("cortex-orchestration", "5s")
    assert [p["title"] for p in board["panels"]] == SEED_PANELS
    assert [p["type"] for p in board["panels"]] == ["state-timeline", "gauge", "heatmap", "timeseries", "stat",
                                                    "piechart", "timeseries", "timeseries"]
    # What the live check compares with the scraped names: each query names at least one series.
    assert all(metric_names(t["expr"]) for p in board["panels"] for t in p["targets"])
    # No two panels overlap on Grafana's 24-column grid.
    cells = [(p["gridPos"]["x"] + dx, p["gridPos"]["y"] + dy) for p in board["panels"]
             for dx in range(p["gridPos"]["w"]) for dy in range(p["gridPos"]["h"])]
    assert len(cells) == len(set(cells)) and all(x < 24 for x, _ in cells)


def test_metric_names_skips_functions_labels_and_ranges():
    assert metric_names('sum by (larry_id) (delta(cortex_prs_created{job="x"}[1m]))') == {"cortex_prs_created"}
    assert metric_names("100 * cortex:token_budget_used:ratio") == {"cortex:token_budget_used:ratio"}
    assert metric_names("max by (a) (x_total) > on (a) 0.8 * max by (a) (y) and z offset 5m") == {"x_total", "y", "z"}
