"""Prometheus metrics of a coordinator and its HTTP endpoint (/metrics, /healthz).

Two families, one registry per coordinator process (several coordinators in one test process
do not collide):

* seed 001's (its "Prometheus Metrics": larry_phase_progress, larry_workers_active,
  larry_tasks_completed, larry_tokens_used) plus the lease, ledger and barrier figures the alert
  rules and dashboards use: gauges the coordinator sets as its loop comes round;
* seed 004's (its "MONITORING APPROACH": :data:`ORCHESTRATION_METRICS`, ``cortex_*``), one
  Larry's share of them, read from Redis at each scrape by :class:`OrchestrationCollector`:
  its masters' and workers' seed 004 hashes, the task queue, seed 001's findings keys, the
  PING round trip and the ``HANDOFF_REQUEST`` events of the stream. Every series carries
  ``larry_id``; a stack's figure is the ``sum`` over its coordinators.

Not guaranteed: a scrape while Redis is away answers without the ``cortex_*`` families (the
``larry_*`` gauges keep their last values); a worker's ``cortex_worker_duration_seconds`` is
exported only while it runs (the hash keeps no end time).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from plan.model import Larry, Worker
from plan.statuses import SchemaWorkerStatus, TaskStatus
from runtime.agent.protocol import SEVERITIES
from runtime.coordination.events import EventListener
from runtime.coordination.keys import Keyspace
from runtime.coordination.tasks import queue_entries
from runtime.support.timestamps import parse_optional
from runtime.support.timing import Timing

log = logging.getLogger(__name__)

#: Seed 004's event of one master handing a task to another (payload ``{from_master,
#: to_master, task_id, context}``), counted by ``cortex_handoff_count``.
HANDOFF_EVENT = "HANDOFF_REQUEST"

#: Seed 004's metrics: name -> (type, labels besides ``larry_id``, help). The one list the
#: collector emits and the dashboard and rules tests read.
ORCHESTRATION_METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "cortex_master_tasks_active": ("gauge", ("master",), "Tasks in progress of the workers the master oversees"),
    "cortex_master_tokens_used": ("gauge", ("master",), "Tokens the master's personal account and pool committed"),
    "cortex_master_workers_spawned": ("gauge", ("master",), "Workers the master oversees that registered, ever"),
    "cortex_worker_duration_seconds": ("gauge", ("worker_id", "worker_type"),
                                       "Seconds since the worker started, while it runs"),
    "cortex_worker_timeout_seconds": ("gauge", ("worker_id", "worker_type"),
                                      "The worker's time budget (its plan minutes at the run's speed)"),
    "cortex_worker_tokens_used": ("gauge", ("worker_id", "worker_type"), "Tokens the worker's tasks committed"),
    "cortex_worker_success_rate": ("gauge", ("worker_type",),
                                   "Share of the finished workers of the type that completed, 0-1"),
    "cortex_redis_latency_ms": ("gauge", (), "Round trip of one PING to the coordination Redis (ms)"),
    "cortex_task_queue_depth": ("gauge", ("queue",), "Tasks of the queue waiting for a worker (queued, not held)"),
    "cortex_handoff_count": ("counter", (), "HANDOFF_REQUEST events of the Larry's masters"),
    "cortex_cves_found": ("gauge", ("severity",), "CVEs the Larry's completed tasks found, by severity"),
    "cortex_assets_discovered": ("gauge", (), "Assets the Larry's completed tasks discovered"),
    "cortex_prs_created": ("gauge", (), "Pull requests the Larry's completed tasks created"),
    "cortex_coverage_increase_percent": ("gauge", (), "Test coverage change the Larry's completed tasks reported"),
}


def exported_names(name: str) -> tuple[str, ...]:
    """The series names one metric appears under on /metrics (a counter's ``_total``)."""
    return (name + "_total",) if ORCHESTRATION_METRICS[name][0] == "counter" else (name,)


class OrchestrationCollector:
    """One Larry's :data:`ORCHESTRATION_METRICS`, read from Redis when scraped."""

    def __init__(self, r: redis.Redis, ks: Keyspace, larry: Larry, timing: Timing):
        self.r, self.ks, self.larry, self.timing = r, ks, larry, timing
        self.queues = {task: entry.queue for task, entry in queue_entries(larry).items()}
        self.masters = {m.name for m in larry.masters}
        self._handoffs = EventListener(r, ks, "0-0", larrys=())  # handoffs are on the run's stream
        self._handoff_count = 0
        self._lock = threading.Lock()  # scrapes may overlap; the listener's cursor is one

    def describe(self) -> list:  # nothing to check at registration: collect() reads Redis
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            with self._lock:
                figures = self._read()
        except redis.exceptions.RedisError as error:
            log.warning("%s: cortex_* metrics not read: %s", self.larry.id, error)
            return
        lid = self.larry.id
        for name, (kind, labels, text) in ORCHESTRATION_METRICS.items():
            family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
                name, text, labels=("larry_id", *labels))
            for values, value in figures.get(name, []):
                family.add_metric((lid, *values), value)
            yield family

    def _read(self) -> dict[str, list[tuple[tuple[str, ...], float]]]:
        larry, ks = self.larry, self.ks
        started = time.perf_counter()
        self.r.ping()
        latency_ms = (time.perf_counter() - started) * 1000
        tasks = [t.id for t in larry.tasks]
        pipe = self.r.pipeline(transaction=False)
        pipe.time()
        for master in larry.masters:
            pipe.hmget(ks.schema_master(master.name), "tasks_active", "tokens_used", "workers_spawned")
        for worker in larry.workers:
            pipe.hmget(ks.schema_worker(worker.name), "status", "started_at", "tokens_used")
        pipe.zrange(ks.task_queue, 0, -1)
        pipe.mget([ks.task_status(t) for t in tasks])
        pipe.hgetall(ks.phase_findings(larry.id))
        pipe.mget([ks.phase_figure(larry.id, name) for name in ("assets_discovered", "prs_created",
                                                                 "coverage_increase")])
        (seconds, micros), *rest = pipe.execute()
        now = seconds + micros / 1e6
        masters, rest = rest[:len(larry.masters)], rest[len(larry.masters):]
        workers, (queued, statuses, cves, (assets, prs, coverage)) = rest[:len(larry.workers)], rest[len(larry.workers):]
        out: dict[str, list] = {"cortex_redis_latency_ms": [((), latency_ms)],
                                "cortex_handoff_count": [((), self._count_handoffs())]}
        for master, fields in zip(larry.masters, masters):
            for name, value in zip(("tasks_active", "tokens_used", "workers_spawned"), fields):
                out.setdefault(f"cortex_master_{name}", []).append(((master.name,), _number(value)))
        finished: dict[str, list[bool]] = {}
        for worker, (status, started_at, tokens) in zip(larry.workers, workers):
            labels = (worker.name, _type(worker))
            out.setdefault("cortex_worker_tokens_used", []).append((labels, _number(tokens)))
            out.setdefault("cortex_worker_timeout_seconds", []).append((labels, self.timing.scaled(worker.minutes)))
            began = parse_optional(started_at)
            if status in (SchemaWorkerStatus.COMPLETED, SchemaWorkerStatus.FAILED):
                finished.setdefault(_type(worker), []).append(status == SchemaWorkerStatus.COMPLETED)
            elif began is not None:
                out.setdefault("cortex_worker_duration_seconds", []).append((labels, max(0.0, now - began.timestamp())))
        out["cortex_worker_success_rate"] = [((kind,), sum(done) / len(done)) for kind, done in finished.items()]
        status_of = dict(zip(tasks, statuses))
        depth = {queue: 0 for queue in dict.fromkeys(self.queues.values())}
        for task in queued:
            if task in self.queues and status_of.get(task) in (None, TaskStatus.PENDING):
                depth[self.queues[task]] += 1
        out["cortex_task_queue_depth"] = [((queue,), n) for queue, n in depth.items()]
        out["cortex_cves_found"] = [((severity,), _number(cves.get(severity))) for severity in SEVERITIES]
        out["cortex_assets_discovered"] = [((), _number(assets))]
        out["cortex_prs_created"] = [((), _number(prs))]
        out["cortex_coverage_increase_percent"] = [((), _number(coverage))]
        return out

    def _count_handoffs(self) -> int:
        """Fold the stream's events since the last scrape: handoffs one of this Larry's masters asked for."""
        while events := self._handoffs.poll(None):
            self._handoff_count += sum(event.name == HANDOFF_EVENT and event.data.get("from_master") in self.masters
                                       for event in events)
        return self._handoff_count


def _type(worker: Worker) -> str:
    return worker.type or "worker"


def _number(raw: str | None) -> float:
    """A figure Redis holds as text; 0 until it is first written (or if it is not a number)."""
    try:
        return float(raw) if raw is not None else 0.0
    except ValueError:
        return 0.0


class CoordinatorMetrics:
    def __init__(self, orchestration: OrchestrationCollector | None = None) -> None:
        self.registry = CollectorRegistry()
        if orchestration is not None:
            self.registry.register(orchestration)
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
