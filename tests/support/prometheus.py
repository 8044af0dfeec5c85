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
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from components.observability import catalog_alert_rules, rule_groups
from runtime.support.local_redis import free_port
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
    return {name for name in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*(?![A-Za-z0-9_:]*\s*\()", stripped)
            if name not in _KEYWORDS and not re.fullmatch(r"[eE]|[0-9]+", name)}


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
