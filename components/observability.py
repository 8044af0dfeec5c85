"""Monitoring resources: ServiceMonitors, the Grafana dashboard and the Prometheus alert rules.

Metric names are the runtime's (seed 001 "Prometheus Metrics": larry_phase_progress,
larry_workers_active, larry_tasks_completed, larry_tokens_used; plus larry_tokens_limit and
larry_tasks_failed), redis_exporter's and kube-state-metrics'. Everything here that needs
prometheus-operator CRDs sits behind ``observability.serviceMonitors``; the dashboard is a
plain ConfigMap for the Grafana sidecar and sits behind ``observability.grafanaDashboard``.
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
        # activeDeadlineSeconds is the worker's time budget: warn at 80 % of it, as the seed does.
        rule("SlowWorkerExecution",
             f'(time() - kube_job_status_start_time{{namespace=~"{namespaces}"}})'
             " > on (namespace, job_name) 0.8 * kube_job_spec_active_deadline_seconds"
             " and on (namespace, job_name) kube_job_status_active > 0",
             "warning", "Worker {{ $labels.job_name }} has used 80% of its deadline",
             "Prepare timeout handling"),
    ]


def dashboard(stack: str, window_minutes: int) -> dict[str, Any]:
    """Seed 001 "3-Larry Orchestration Dashboard": its five panels."""
    def panel(pid: int, title: str, kind: str, expr: str, legend: str, x: int, y: int, w: int,
              **extra: Any) -> dict[str, Any]:
        target = {"refId": "A", "expr": expr, "legendFormat": legend,
                  "datasource": {"type": "prometheus", "uid": "${datasource}"}}
        return {"id": pid, "title": title, "type": kind, "gridPos": {"x": x, "y": y, "w": w, "h": 8},
                "datasource": {"type": "prometheus", "uid": "${datasource}"}, "targets": [target], **extra}

    percent = {"defaults": {"unit": "percent", "min": 0, "max": 100}, "overrides": []}
    stacked = {"defaults": {"custom": {"stacking": {"mode": "normal"}, "fillOpacity": 40}}, "overrides": []}
    return {
        "uid": f"larry-{stack}", "title": f"Larry orchestration ({stack})", "schemaVersion": 39,
        "refresh": "10s", "time": {"from": f"now-{window_minutes}m", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]},
        "panels": [
            panel(1, "Larry progress", "gauge", "max by (larry_id) (larry_phase_progress)", "{{larry_id}}",
                  0, 0, 12, fieldConfig=percent),
            panel(2, "Worker pod status", "table", "sum by (larry_id, node) (larry_workers_active)", "",
                  12, 0, 12),
            panel(3, "Redis operations/sec", "timeseries", "sum(rate(redis_commands_processed_total[1m]))",
                  "ops/s", 0, 8, 12),
            panel(4, "Token usage by Larry", "timeseries", "max by (larry_id) (larry_tokens_used)",
                  "{{larry_id}}", 12, 8, 12, fieldConfig=stacked),
            panel(5, "Task completion timeline", "state-timeline", "max by (larry_id) (larry_tasks_completed)",
                  "{{larry_id}}", 0, 16, 24),
        ],
    }


@dataclass(frozen=True)
class ObservabilityArgs:
    #: Which of the objects to create: they need prometheus-operator and the Grafana sidecar.
    enabled: ObservabilityConfig
    stack: str
    #: The Larry namespaces, whose worker pods the alerts watch.
    larry_namespaces: tuple[str, ...]
    #: The stack's execution window (minutes), the dashboard's time range.
    execution_window_minutes: int
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
        if args.enabled.service_monitors:
            k8s.apiextensions.CustomResource(
                f"{name}-alerts", api_version=MONITORING_API, kind="PrometheusRule",
                metadata=kube.metadata("larry-alerts", args.namespace, {**labels, **args.enabled.prometheus_labels}),
                spec={"groups": [{"name": "larry", "rules": alert_rules(args.larry_namespaces, args.reserve_trigger)}]},
                opts=child)
            created.append("alerts")
        self.register_outputs({"created": created})
