"""Prometheus metrics of a coordinator and its HTTP endpoint (/metrics, /healthz).

Metric names are the seed's (001 "Prometheus Metrics": larry_phase_progress,
larry_workers_active, larry_tasks_completed, larry_tokens_used) plus the lease, ledger and
barrier figures the alert rules and dashboards use. Each coordinator process owns one
registry, so several coordinators in one test process do not collide.
"""
from __future__ import annotations

import threading
from typing import Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app


class CoordinatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        larry = ["larry_id"]

        def gauge(name: str, text: str, labels=larry) -> Gauge:
            return Gauge(name, text, labels, registry=self.registry)

        def counter(name: str, text: str, labels=larry) -> Counter:
            return Counter(name, text, labels, registry=self.registry)

        self.phase_progress = gauge("larry_phase_progress", "Phase progress of the Larry, 0-100")
        self.workers_active = gauge("larry_workers_active", "Workers alive (heartbeating) by node",
                                    ["larry_id", "node"])
        self.tasks_completed = gauge("larry_tasks_completed", "Tasks of the Larry completed")
        self.tasks_failed = gauge("larry_tasks_failed", "Tasks of the Larry failed")
        self.tokens_used = gauge("larry_tokens_used", "Tokens committed in the Larry's ledger")
        self.tokens_reserved = gauge("larry_tokens_reserved", "Tokens reserved, not yet committed")
        self.tokens_limit = gauge("larry_tokens_limit", "The Larry's token limit including reserve drawn")
        self.emergency_drawn = gauge("larry_emergency_reserve_drawn_tokens",
                                     "Tokens the Larry drew from the meta-coordinator's emergency reserve")
        self.tasks_requeued = counter("larry_tasks_requeued", "Tasks of dead workers put back to pending")
        self.lease_conflicts = gauge("larry_lease_conflicts", "task_conflict alerts seen for the Larry")
        self.worker_restarts = gauge("larry_worker_restarts", "Worker registrations beyond the first")
        self.barrier_wait = Histogram("larry_barrier_wait_seconds", "Time the coordinator waited at the barrier",
                                      larry, registry=self.registry,
                                      buckets=(0.001, 0.005, 0.02, 0.1, 0.5, 1, 5, 30, 120, 600, 3600))
        self.barrier_passed = gauge("larry_barrier_passed", "1 once the all-Larry barrier released")


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - probes every few seconds would flood the log
        pass


def serve(registry: CollectorRegistry, port: int, healthy: Callable[[], bool],
          host: str = "0.0.0.0") -> WSGIServer:
    """Serve /metrics and /healthz on a daemon thread; returns the server (``.server_port``)."""
    metrics_app = make_wsgi_app(registry)

    def app(environ, start_response):
        if environ.get("PATH_INFO") == "/healthz":
            ok = healthy()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ok\n" if ok else b"unhealthy\n"]
        if environ.get("PATH_INFO") == "/metrics":
            return metrics_app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    server = make_server(host, port, app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
