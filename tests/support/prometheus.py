"""Debian's prometheus and promtool (`scripts/prometheus.sh`, which `make setup` runs) for the
tests: the rules rendered as Prometheus reads them, promtool, a real Prometheus on loopback
scraping a run, and the metric names a PromQL expression reads.

The Prometheus runs in a temporary directory of its own (configuration, TSDB, log), listens on
127.0.0.1 only, is awaited with a bound and stopped by its PID, never by name.
"""
from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from components.observability import TOKEN_SHARE, catalog_alert_rules, orchestration_dashboard, rule_groups
from plan.statuses import SchemaWorkerStatus
from runtime.agent.protocol import SEVERITIES
from runtime.catalog.figures import from_redis
from runtime.coordination.events import EventLog
from runtime.reporting.metrics import HANDOFF_EVENT
from runtime.support.ports import free_port
from runtime.support.timestamps import from_ms
from tests.support.project import ROOT
from tests.support.waiting import wait_for

#: The job names the rules expect: the catalog's ServiceMonitor's (its Service's name).
CATALOG_JOB = "catalog-api"
COORDINATOR_JOB = "larry-coordinators"


def binaries() -> Path:
    done = subprocess.run(["bash", str(ROOT / "scripts" / "prometheus.sh"), "path"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"no Debian prometheus/promtool (make setup unpacks them): {done.stderr.strip()}")
    return Path(done.stdout.strip())


def write_rules(path: Path, namespaces: tuple[str, ...] = ("larry-01",), trigger: float = 0.9) -> list[dict]:
    """Every rule the stacks render (the Observability component's groups and the Catalog's),
    as one rule file; returns the groups."""
    groups = rule_groups(namespaces, trigger) + [{"name": "catalog", "rules": catalog_alert_rules(CATALOG_JOB)}]
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return groups


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(binaries() / "promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


# Labels lists and matchers, ranges and offsets name no metric; a name followed by "(" is a function.
_NOT_NAMES = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)|\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}


def metric_names(expr: str) -> set[str]:
    """The metric (and recording rule) names a PromQL expression reads."""
    stripped = _NOT_NAMES.sub(" ", expr)
    return {name for name in re.findall(r"(?<![A-Za-z0-9_:.])[A-Za-z_:][A-Za-z0-9_:]*(?![A-Za-z0-9_:]*\s*\()", stripped)
            if name not in _KEYWORDS}


class Prometheus:
    """A running Prometheus: its HTTP API on loopback."""

    def __init__(self, url: str, proc: subprocess.Popen, log: Path):
        self.url, self.proc, self.log = url, proc, log

    def api(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def value(self, expr: str) -> float | None:
        """The single sample ``expr`` evaluates to, or None when it is empty."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr}: {len(result)} series"
        return float(result[0]["value"][1]) if result else None


@contextlib.contextmanager
def running(workdir: Path, targets: dict[str, list[str]], rule_file: Path, timeout: float = 60) -> Iterator[Prometheus]:
    """Prometheus scraping ``targets`` (job -> host:port) every second and evaluating ``rule_file``
    every second; ready once its API answers."""
    port = free_port()
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
              "rule_files": [str(rule_file)],
              "scrape_configs": [{"job_name": job, "static_configs": [{"targets": hosts}]}
                                 for job, hosts in targets.items()]}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = workdir / "prometheus.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(binaries() / "prometheus"), f"--config.file={workdir / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    prometheus = Prometheus(f"http://127.0.0.1:{port}", proc, log)
    try:
        def ready() -> bool:
            assert proc.poll() is None, f"prometheus exited {proc.returncode}: {log.read_text()[-2000:]}"
            try:
                with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=2) as answer:
                    return answer.status == 200
            except OSError:
                return False
        wait_for(ready, "Prometheus's /-/ready", timeout, interval=0.2)
        yield prometheus
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


def _scrape(url: str) -> dict[str, dict[tuple, float]]:
    """A /metrics page read directly: name -> {sorted label items: value}."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def check_live_run(run_dir: Path, r, ks, cfg, workdir: Path, timeout: float = 60) -> None:
    """A real Prometheus scraping a held `larry run`'s coordinators and catalog (from its
    ``processes.json``) and evaluating every rule: every target answers, every rule evaluates
    without error, each alert fires exactly when the figures read directly from the
    coordinators' /metrics say it must, the cortex_* figures and recording rules match Redis and
    those pages, and every query of seed 004's dashboard names series the run exports and
    answers with data."""
    workdir.mkdir(exist_ok=True)
    processes = json.loads((run_dir / "processes.json").read_text())
    pages = [where["metrics"] for where in processes["coordinators"].values()]
    targets = {COORDINATOR_JOB: [_host(url) for url in pages], CATALOG_JOB: [_host(processes["catalog"]["metrics"])]}
    groups = write_rules(workdir / "rules.yaml", cfg.namespaces, cfg.budget.reserve_trigger)
    recorded = {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}
    board = orchestration_dashboard(cfg.stack, cfg.execution_window_minutes)
    queries = [t["expr"] for p in board["panels"] for t in p["targets"]]
    direct = [_scrape(url) for url in pages]  # the run has finished: its figures stand still

    def figure(name: str) -> dict[str, float]:
        return {dict(labels)["larry_id"]: value for page in direct for labels, value in page[name].items()}
    used, limit = figure("larry_tokens_used"), figure("larry_tokens_limit")
    with running(workdir, targets, workdir / "rules.yaml", timeout) as prometheus:
        def scraped() -> bool:
            health = [t["health"] for t in prometheus.api("targets")["activeTargets"]]
            return len(health) == len(pages) + 1 and set(health) == {"up"}
        wait_for(scraped, "Prometheus to scrape every coordinator and the catalog", timeout, interval=0.2)
        # rate() and delta() need two samples, a recording rule an evaluation after them.
        wait_for(lambda: all(prometheus.query(q) for q in queries), "every dashboard query to answer with data",
                 timeout, interval=0.2)

        def rules() -> dict[str, dict]:
            return {rule["name"]: rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]}
        # CatalogAPIDown is pending until the catalog's first scrape was evaluated.
        wait_for(lambda: rules()["CatalogAPIDown"]["state"] == "inactive", "CatalogAPIDown to see the catalog up",
                 timeout, interval=0.2)
        evaluated = rules()
        names = set(prometheus.api("label/__name__/values"))
        assert prometheus.value(TOKEN_SHARE) == pytest.approx(sum(used.values()) / sum(limit.values()))
        assert prometheus.value("sum(cortex_master_workers_spawned)") == len(cfg.workers)
        assert prometheus.value("sum(cortex_task_queue_depth)") == 0
        assert prometheus.value("sum(cortex_worker_tokens_used)") == sum(
            int(r.hget(ks.schema_worker(w.name), "tokens_used") or 0) for _, w in cfg.workers)
        assert prometheus.value("sum(cortex_handoff_count_total)") == sum(
            e.name == HANDOFF_EVENT for e in EventLog(r, ks).history())
        cves = {s["metric"]["severity"]: float(s["value"][1]) for s in prometheus.query(
            "sum by (severity) (cortex_cves_found)")}
        assert cves == {severity: sum(float(r.hget(ks.phase_findings(larry.id), severity) or 0) for larry in cfg.larrys)
                        for severity in SEVERITIES}
        assert prometheus.value("max(cortex_catalog_assets_total)") == from_redis(r, ks).assets.total
        # The coordinators read Redis when scraped: a worker that seems to have run for an hour
        # of its minutes must raise SlowWorkerExecution through scrape, rule and alert.
        _, worker = cfg.workers[0]
        key = ks.schema_worker(worker.name)
        saved = r.hgetall(key)
        r.hset(key, mapping={"status": SchemaWorkerStatus.RUNNING, "started_at": from_ms((time.time() - 3600) * 1000)})
        try:
            wait_for(lambda: [a["labels"]["worker_id"] for a in prometheus.api("alerts")["alerts"]
                              if a["labels"]["alertname"] == "SlowWorkerExecution" and a["state"] == "firing"]
                     == [worker.name], f"SlowWorkerExecution to fire for {worker.name}", timeout, interval=0.2)
        finally:
            r.hset(key, mapping=saved)

    assert set(evaluated) == {rule.get("alert") or rule["record"] for group in groups for rule in group["rules"]}
    assert {name: rule["health"] for name, rule in evaluated.items()} == {name: "ok" for name in evaluated}, evaluated
    for query in queries:
        assert metric_names(query) <= names | recorded, f"{query}: {metric_names(query) - names - recorded} not exported"
    firing = {name: sorted(a["labels"].get("larry_id", "") for a in rule.get("alerts", []) if a["state"] == "firing")
              for name, rule in evaluated.items() if rule["type"] == "alerting"}
    assert firing.pop("TokenBudgetExceeded") == sorted(x for x in used if used[x] > limit[x])
    trigger = cfg.budget.reserve_trigger
    assert firing.pop("HighTokenUsage") == sorted(x for x in used if trigger * limit[x] < used[x] <= limit[x])
    assert firing.pop("MasterTaskFailed") == sorted(x for x, n in figure("larry_tasks_failed").items() if n > 0)
    assert all(not alerts for alerts in firing.values()), f"nothing else may fire on a finished run: {firing}"
