"""Every Prometheus rule the stacks render (the Observability component's alerts and recording
rules, the Catalog's CatalogAPIDown), checked and unit-tested by Debian's promtool on series
shaped like the runtime's: each alert fires when its condition holds for its ``for``, and not
otherwise; each recording rule computes the figure the dashboards read."""
from __future__ import annotations

import re

import yaml

from components.observability import DISCOVERY_RATE, TOKEN_SHARE
from tests.support.prometheus import CATALOG_JOB, promtool, write_rules


def _annotations(rule: dict, labels: dict[str, str]) -> dict[str, str]:
    """The rule's annotations as Prometheus expands them for an alert with ``labels``."""
    return {key: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
            for key, text in rule["annotations"].items()}


def _case(rules: dict[str, dict], series: dict[str, str], alerts: dict[str, dict[str, list[dict]]] = None,
          records: dict[str, dict[str, float]] = None) -> dict:
    """One promtool test: ``series`` (name -> values, one every 15 s); ``alerts``: alert name ->
    eval time -> the label sets expected firing; ``records``: expression -> eval time -> value."""
    def firing(name: str, label_sets: list[dict]) -> list[dict]:
        rule = rules[name]
        return [{"exp_labels": {"severity": rule["labels"]["severity"], **labels},
                 "exp_annotations": _annotations(rule, labels)} for labels in label_sets]
    return {"interval": "15s", "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "alert_rule_test": [{"eval_time": at, "alertname": name, "exp_alerts": firing(name, sets)}
                                for name, by_time in (alerts or {}).items() for at, sets in by_time.items()],
            "promql_expr_test": [{"expr": expr, "eval_time": at, "exp_samples": [{"labels": f'{{__name__="{expr}"}}', "value": value}]}
                                 for expr, by_time in (records or {}).items() for at, value in by_time.items()]}


def test_promtool_checks_and_unit_tests_every_rule(tmp_path):
    groups = write_rules(tmp_path / "rules.yaml")
    rules = {r.get("alert") or r["record"]: r for group in groups for r in group["rules"]}
    checked = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout

    a, b = 'up{job="catalog-api", instance="a"}', 'up{job="catalog-api", instance="b"}'
    # A coordinator restarted elsewhere leaves a second series of the same Larry: never double-counted.
    used_a, used_b = 'larry_tokens_used{larry_id="x", instance="a"}', 'larry_tokens_used{larry_id="x", instance="b"}'
    limit = 'larry_tokens_limit{larry_id="x", instance="a"}'
    worker = 'larry_id="x", worker_id="scan-worker-01", worker_type="scan-worker"'
    x = [{"larry_id": "x"}]
    cases = [
        # Both catalog replicas down from 30 s: pending for its minute, then firing.
        _case(rules, {a: "1 0x12", b: "1 1 0x11"}, {"CatalogAPIDown": {"45s": [], "2m": [{}]}}),
        # One replica answers: the API is up.
        _case(rules, {a: "1x12", b: "0x12"}, {"CatalogAPIDown": {"3m": []}}),
        # Nothing scraped at all (no monitor, no target): as down as can be.
        _case(rules, {'up{job="other"}': "1x12"},
              {"CatalogAPIDown": {"30s": [], "2m": [{"job": CATALOG_JOB}]}}),
        # Tokens: 850, 950, 1050 of 1000 (reserve trigger 0.9), the restarted coordinator's copy beside.
        _case(rules, {used_a: "850 950 1050", used_b: "850 950 1050", limit: "1000x2"},
              {"HighTokenUsage": {"0s": [], "15s": x, "30s": []},
               "TokenBudgetExceeded": {"15s": [], "30s": x}},
              {TOKEN_SHARE: {"0s": 0.85, "30s": 1.05}}),
        _case(rules, {'larry_tasks_failed{larry_id="x"}': "0 1"}, {"MasterTaskFailed": {"0s": [], "15s": x}}),
        # The seed's `cortex_worker_duration_seconds > timeout * 0.8`: 60, 75, 90 s of 100.
        _case(rules, {f"cortex_worker_duration_seconds{{{worker}}}": "60 75 90",
                      f"cortex_worker_timeout_seconds{{{worker}}}": "100x2"},
              {"SlowWorkerExecution": {"15s": [], "30s": [dict(re.findall(r'(\w+)="([^"]*)"', worker))]}}),
        # Seed 004's "Redis coordination latency < 10ms": 12 ms for two minutes fires, 5 ms never.
        _case(rules, {'cortex_redis_latency_ms{larry_id="x"}': "12x10", 'cortex_redis_latency_ms{larry_id="y"}': "5x10"},
              {"RedisCoordinationSlow": {"30s": [], "2m": x}}),
        # Two replicas count the same catalog: 15 assets per 15 s is 60 a minute, not 120.
        _case(rules, {'cortex_catalog_assets_discovered_total{instance="a"}': "42+15x8",
                      'cortex_catalog_assets_discovered_total{instance="b"}': "42+15x8"},
              records={DISCOVERY_RATE: {"2m": 60}}),
    ]
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "15s",
                                                         "tests": cases}))
    tested = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
