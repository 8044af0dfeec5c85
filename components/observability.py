"""Monitoring resources: ServiceMonitors, the Grafana dashboards and the Prometheus rules.

Metric names are the runtime's (seed 001 "Prometheus Metrics": larry_phase_progress,
larry_workers_active, larry_tasks_completed, larry_tokens_used; plus larry_tokens_limit and
larry_tasks_failed; seed 004's cortex_* of every coordinator and the catalog's
cortex_catalog_*), redis_exporter's and kube-state-metrics'. Everything here that needs
prometheus-operator CRDs sits behind ``observability.serviceMonitors``; the dashboards are
plain ConfigMaps for the Grafana sidecar and sit behind ``observability.grafanaDashboard``:
seed 001's for every stack, seed 004's Cortex orchestration dashboard for a stack with seed
004's task queue (the cortex stack).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from plan.model import Observability as ObservabilityConfig

MONITORING_API = "monitoring.coreos.com/v1"
#: The labels a worker's cortex_* series are told apart by (its coordinator's instance may change).
WORKER = "larry_id, worker_id, worker_type"
#: Recording rules: what the dashboards read that no single series is.
TOKEN_SHARE = "cortex:token_budget_used:ratio"
DISCOVERY_RATE = "cortex_catalog_discovery_rate"


def service_monitor(resource_name: str, name: str, namespace: str, labels: Mapping[str, str],
                    selector: Mapping[str, str], port: str, prometheus: ObservabilityConfig,
                    opts: pulumi.ResourceOptions) -> None:
    """Scrape /metrics on the named port of the Services matching ``selector`` in ``namespace``,
    labelled so the cluster's Prometheus selects it."""
    k8s.apiextensions.CustomResource(
        resource_name, api_version=MONITORING_API, kind="ServiceMonitor",
        metadata=kube.metadata(name, namespace, {**labels, **prometheus.prometheus_labels}),
        spec={"selector": {"matchLabels": dict(selector)}, "namespaceSelector": {"matchNames": [namespace]},
              "endpoints": [{"port": port, "path": "/metrics", "interval": "15s"}]}, opts=opts)


def rule(alert: str, expr: str, severity: str, summary: str, action: str, duration: str | None = None) -> dict[str, Any]:
    """One alerting rule; ``duration``: how long ``expr`` must hold before it fires (``for``)."""
    return {"alert": alert, "expr": expr, **({"for": duration} if duration else {}), "labels": {"severity": severity},
            "annotations": {"summary": summary, "action": action}}


def catalog_alert_rules(job: str) -> list[dict[str, Any]]:
    """Seed 004's ``CatalogAPIDown``: no replica of the catalog (the ServiceMonitor's ``job``)
    answers Prometheus's scrape, or none is scraped at all, for a minute. The workers keep what
    they find in their outboxes meanwhile (seed 004 risk 4) and replay it when it is back."""
    return [rule("CatalogAPIDown", f'sum(up{{job="{job}"}}) == 0 or absent(up{{job="{job}"}})', "critical",
                 "No replica of the catalog API answers", "Workers buffer to their outboxes; restore the catalog "
                 "(its Redis, its pods), then `larry catalog replay` what stayed on the volume", duration="1m")]


def alert_rules(namespaces: Iterable[str], trigger: float) -> list[dict[str, Any]]:
    """Seed 004 "Alert Rules", written against metrics that exist.

    The seed's cortex_* names become the runtime's larry_* gauges, aggregated by larry_id so
    a restarted coordinator's second series cannot double-count. The seed's evictions and
    worker durations are not runtime metrics: kube-state-metrics reports both from the Job
    and Pod objects, so those rules join its series on namespace and Job name. ``trigger`` is
    the share of a limit at which the ledger draws the emergency reserve (seed risk 4): the
    warning fires there.
    """
    used = "max by (larry_id) (larry_tokens_used)"
    limit = "max by (larry_id) (larry_tokens_limit)"
    namespaces = "|".join(namespaces)
    return [
        rule("TokenBudgetExceeded", f"{used} > on (larry_id) {limit}", "critical",
             "{{ $labels.larry_id }} has used more tokens than its limit", "Halt workers, escalate to a human"),
        rule("HighTokenUsage",
             f"({used} > on (larry_id) {trigger} * {limit}) and on (larry_id) ({used} <= on (larry_id) {limit})",
             "warning", f"{{{{ $labels.larry_id }}}} has used over {trigger:.0%} of its token limit",
             "Notify the meta-coordinator"),
        rule("MasterTaskFailed", "max by (larry_id) (larry_tasks_failed) > 0", "critical",
             "{{ $labels.larry_id }} has failed tasks", "Escalate to the meta-coordinator"),
        # Every Job in a Larry namespace is a worker; kube_pod_owner names the Job of the pod.
        rule("WorkerPodEvicted",
             f'max by (namespace, pod, owner_name) (kube_pod_status_reason{{reason="Evicted", namespace=~"{namespaces}"}}'
             ' * on (namespace, pod) group_left (owner_name) kube_pod_owner{owner_kind="Job"}) > 0',
             "high", "Worker {{ $labels.owner_name }} was evicted from its node",
             "Reschedule the worker, investigate the node"),
        # The seed's `cortex_worker_duration_seconds > timeout * 0.8`, the timeout being the
        # worker's planned minutes; its Job's activeDeadlineSeconds (the Larry's deadline) below.
        rule("SlowWorkerExecution",
             f"max by ({WORKER}) (cortex_worker_duration_seconds)"
             f" > on ({WORKER}) 0.8 * max by ({WORKER}) (cortex_worker_timeout_seconds)",
             "warning", "Worker {{ $labels.worker_id }} has run 80% of its planned time",
             "Prepare timeout handling"),
        rule("WorkerJobNearDeadline",
             f'(time() - kube_job_status_start_time{{namespace=~"{namespaces}"}})'
             " > on (namespace, job_name) 0.8 * kube_job_spec_active_deadline_seconds"
             " and on (namespace, job_name) kube_job_status_active > 0",
             "warning", "Worker Job {{ $labels.job_name }} has used 80% of its deadline",
             "Prepare timeout handling"),
        # Seed 004's success criterion "Redis coordination latency < 10ms".
        rule("RedisCoordinationSlow", "max by (larry_id) (avg_over_time(cortex_redis_latency_ms[1m])) > 10",
             "warning", "{{ $labels.larry_id }}'s Redis round trips average over 10 ms",
             "Check the Redis primary's load and the network to it", duration="1m"),
    ]



def recording_rules() -> list[dict[str, Any]]:
    """Seed 004's ``cortex_catalog_discovery_rate`` (assets added per minute, over every catalog
    replica: they count the same Redis, so ``max``) and the stack's share of its token limits."""
    return [
        {"record": DISCOVERY_RATE, "expr": "max(rate(cortex_catalog_assets_discovered_total[1m])) * 60"},
        {"record": TOKEN_SHARE,
         "expr": "sum(max by (larry_id) (larry_tokens_used)) / sum(max by (larry_id) (larry_tokens_limit))"},
    ]


def rule_groups(namespaces: Iterable[str], trigger: float) -> list[dict[str, Any]]:
    """The PrometheusRule's groups: the alerts, then the recording rules."""
    return [{"name": "larry", "rules": alert_rules(namespaces, trigger)},
            {"name": "larry-recording", "rules": recording_rules()}]


PROMETHEUS = {"type": "prometheus", "uid": "${datasource}"}


def panel(pid: int, title: str, kind: str, expr: str | Iterable[tuple[str, str]], legend: str, x: int, y: int,
          w: int, **extra: Any) -> dict[str, Any]:
    """One panel at (x, y), ``w`` columns wide; ``expr``: its query, or (query, legend) pairs."""
    queries = [(expr, legend)] if isinstance(expr, str) else list(expr)
    targets = [{"refId": chr(ord("A") + i), "expr": query, "legendFormat": label, "datasource": PROMETHEUS}
               for i, (query, label) in enumerate(queries)]
    return {"id": pid, "title": title, "type": kind, "gridPos": {"x": x, "y": y, "w": w, "h": 8},
            "datasource": PROMETHEUS, "targets": targets, **extra}


def _board(uid: str, title: str, refresh: str, window_minutes: int, panels: list[dict[str, Any]]) -> dict[str, Any]:
    return {"uid": uid, "title": title, "schemaVersion": 39, "refresh": refresh,
            "time": {"from": f"now-{window_minutes}m", "to": "now"},
            "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]},
            "panels": panels}


PERCENT = {"defaults": {"unit": "percent", "min": 0, "max": 100}, "overrides": []}


def dashboard(stack: str, window_minutes: int) -> dict[str, Any]:
    """Seed 001 "3-Larry Orchestration Dashboard": its five panels."""
    stacked = {"defaults": {"custom": {"stacking": {"mode": "normal"}, "fillOpacity": 40}}, "overrides": []}
    return _board(f"larry-{stack}", f"Larry orchestration ({stack})", "10s", window_minutes, [
        panel(1, "Larry progress", "gauge", "max by (larry_id) (larry_phase_progress)", "{{larry_id}}",
              0, 0, 12, fieldConfig=PERCENT),
        panel(2, "Worker pod status", "table", "sum by (larry_id, node) (larry_workers_active)", "",
              12, 0, 12),
        panel(3, "Redis operations/sec", "timeseries", "sum(rate(redis_commands_processed_total[1m]))",
              "ops/s", 0, 8, 12),
        panel(4, "Token usage by Larry", "timeseries", "max by (larry_id) (larry_tokens_used)",
              "{{larry_id}}", 12, 8, 12, fieldConfig=stacked),
        panel(5, "Task completion timeline", "state-timeline", "max by (larry_id) (larry_tasks_completed)",
              "{{larry_id}}", 0, 16, 24),
    ])


def orchestration_dashboard(stack: str, window_minutes: int) -> dict[str, Any]:
    """Seed 004 "Cortex Orchestration Dashboard" (``/d/cortex-orchestration``): its eight panels,
    refreshed every 5 s, from the coordinators' cortex_* series, the catalog's and the recording
    rules (:func:`recording_rules`)."""
    bars = {"defaults": {"custom": {"drawStyle": "bars", "fillOpacity": 80}}, "overrides": []}
    return _board("cortex-orchestration", f"Cortex orchestration ({stack})", "5s", window_minutes, [
        panel(1, "Master activity timeline", "state-timeline", "max by (master) (cortex_master_tasks_active)",
              "{{master}}", 0, 0, 24),
        panel(2, "Token budget usage", "gauge", f"100 * {TOKEN_SHARE}", "used", 0, 8, 8, fieldConfig=PERCENT,
              options={"showThresholdMarkers": True}),
        panel(3, "Worker distribution heatmap", "heatmap", "sum by (node) (larry_workers_active)", "{{node}}",
              8, 8, 16),
        panel(4, "Task queue depth", "timeseries", "sum by (queue) (cortex_task_queue_depth)", "{{queue}}",
              0, 16, 12),
        panel(5, "Asset discovery rate", "stat", [(DISCOVERY_RATE, "assets/min (catalog)"),
                                                  ("max(cortex_catalog_assets_total)", "in the catalog"),
                                                  ("sum(cortex_assets_discovered)", "reported by workers")],
              "", 12, 16, 12),
        panel(6, "CVE severity breakdown", "piechart", "sum by (severity) (cortex_cves_found)", "{{severity}}",
              0, 24, 8),
        panel(7, "Test coverage trend", "timeseries", "max by (larry_id) (cortex_coverage_increase_percent)",
              "{{larry_id}}", 8, 24, 8),
        panel(8, "PR creation timeline", "timeseries", "sum by (larry_id) (delta(cortex_prs_created[1m]))",
              "{{larry_id}}", 16, 24, 8, fieldConfig=bars),
    ])


@dataclass(frozen=True)
class ObservabilityArgs:
    #: Which of the objects to create: they need prometheus-operator and the Grafana sidecar.
    enabled: ObservabilityConfig
    stack: str
    #: The Larry namespaces, whose worker pods the alerts watch.
    larry_namespaces: tuple[str, ...]
    #: The stack's execution window (minutes), the dashboard's time range.
    execution_window_minutes: int
    #: Seed 004's task queue (``larry:taskAssignment: queue``, the cortex stack): its dashboard too.
    orchestration_dashboard: bool
    #: Share of a Larry's token limit at which the ledger draws the emergency reserve.
    reserve_trigger: float
    #: Where the stack-wide monitoring objects live: the Redis hub's namespace, the one
    #: namespace every stack has that no single Larry owns.
    namespace: str
    #: That namespace's Namespace object.
    depends_on: pulumi.Resource


class Observability(pulumi.ComponentResource):
    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("larry:index:Observability", name, None, opts)
        child = kube.opts(self, depends_on=[args.depends_on])
        labels = kube.labels("larry", args.stack, "monitoring")
        created = []
        if args.enabled.grafana_dashboard:
            k8s.core.v1.ConfigMap(f"{name}-dashboard", metadata=kube.metadata(
                "larry-dashboard", args.namespace, {**labels, "grafana_dashboard": "1"}),
                data={"larry.json": json.dumps(dashboard(args.stack, args.execution_window_minutes), indent=1)},
                opts=child)
            created.append("dashboard")
            if args.orchestration_dashboard:
                k8s.core.v1.ConfigMap(f"{name}-orchestration-dashboard", metadata=kube.metadata(
                    "cortex-orchestration-dashboard", args.namespace, {**labels, "grafana_dashboard": "1"}),
                    data={"cortex-orchestration.json": json.dumps(
                        orchestration_dashboard(args.stack, args.execution_window_minutes), indent=1)},
                    opts=child)
                created.append("orchestration-dashboard")
        if args.enabled.service_monitors:
            k8s.apiextensions.CustomResource(
                f"{name}-alerts", api_version=MONITORING_API, kind="PrometheusRule",
                metadata=kube.metadata("larry-alerts", args.namespace, {**labels, **args.enabled.prometheus_labels}),
                spec={"groups": rule_groups(args.larry_namespaces, args.reserve_trigger)},
                opts=child)
            created.append("alerts")
        self.register_outputs({"created": created})
