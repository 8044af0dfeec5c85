"""`larry status`, `larry preflight` and `larry cleanup` against a real redis-server.

The run's state is built with the runtime's primitives (phases, task board, leases, ledger,
registry, barrier) from the dev stack's plan: :func:`build_run` is shared with the
dashboard's tests.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from plan.loader import load_stack
from runtime.cli import main as larry
from runtime.coordination.barrier import Barrier
from runtime.coordination.keys import CONVERGENCE_BARRIER, REPORTS_BARRIER, Keyspace
from runtime.coordination.leases import LeaseManager
from runtime.coordination.ledger import Ledger, init_reserve_pool
from runtime.coordination.phases import PhaseTracker
from runtime.coordination.registry import WorkerRegistry
from runtime.coordination.tasks import TaskBoard
from tests.support.project import ROOT  # noqa: E402
from tests.support.redis_servers import free_port

DEV = load_stack("dev", ROOT)

#: The seed's dashboard at T+15:30 (seed 000 "Monitoring Dashboard Layout").
PROGRESS = {"larry-01": (60, "Database consolidation complete"), "larry-02": (45, "Security scan in progress"),
            "larry-03": (35, "3/8 workers completed")}


def build_run(r, ks: Keyspace, cfg=DEV) -> dict:
    """A run in progress: every phase started with the seed's progress, one task held per
    Larry, findings in completed tasks' results, tokens committed, workers heartbeating.
    Returns what the assertions need."""
    init_reserve_pool(r, ks, cfg.budget.meta.emergency_reserve_tokens)
    board, registry = TaskBoard(r, ks), WorkerRegistry(r, ks)
    for plan in cfg.larrys:
        Ledger(r, ks, plan.id).set_limit(plan.token_budget)
        board.define(plan.id, {t.id: t.depends_on for t in plan.tasks})
        phase = PhaseTracker(r, ks, plan.id)
        phase.start()
        phase.progress(*PROGRESS[plan.id])
        for worker in plan.workers:
            registry.register(worker.name, plan.id, worker.node)

    def finish(larry: str, worker: str, task: str, findings: dict, tokens: int) -> None:
        lease = LeaseManager(r, ks, larry, worker=worker).acquire(task).lease
        ledger = Ledger(r, ks, larry)
        ledger.record(f"op-{task}", tokens)
        assert LeaseManager(r, ks, larry, worker=worker).complete(lease, {"findings": findings, "tokens": tokens})

    finish("larry-02", "scan-worker-01", "scan-core-namespaces", {"cves": {"critical": 2, "high": 3, "medium": 1}}, 5000)
    finish("larry-02", "scan-worker-02", "scan-platform-namespaces", {"cves": {"critical": 1, "high": 1, "medium": 4}}, 4000)
    finish("larry-03", "catalog-worker-01", "scan-k8s-deployments", {"assets_discovered": 87}, 6000)
    finish("larry-03", "feature-worker", "implement-priority-feature", {"prs_created": 2}, 9000)
    finish("larry-03", "test-coverage-worker", "analyze-coverage-gaps", {"coverage_delta": 8.0}, 7000)
    held = {"larry-01": ("cleanup-worker", "fix-pgadmin-crashloop"),
            "larry-02": ("audit-worker", "audit-dependencies"),
            "larry-03": ("catalog-worker-02", "discover-helm-releases")}
    for larry_id, (worker, task) in held.items():
        assert LeaseManager(r, ks, larry_id, worker=worker).acquire(task)
        registry.heartbeat(worker, "busy")
    return {"held": held, "committed": {"larry-01": 0, "larry-02": 9000, "larry-03": 22000}}


def finish_run(r, ks: Keyspace, cfg=DEV) -> None:
    for plan in cfg.larrys:
        PhaseTracker(r, ks, plan.id).complete("done")
        Barrier(r, ks, CONVERGENCE_BARRIER, [x.id for x in cfg.larrys]).arrive(plan.id)


def output(capsys) -> str:
    """stdout with rich's line wrapping undone."""
    return " ".join(capsys.readouterr().out.split())


def run_args(settings, ks: Keyspace, *extra) -> list[str]:
    return ["--stack", "dev", "--project-dir", str(ROOT), "--redis-url", settings.url, "--key-prefix", ks.prefix,
            *extra]


def test_status_json_reports_phases_tasks_ledger_workers_and_barrier(r, ks, settings, capsys):
    built = build_run(r, ks)
    Barrier(r, ks, CONVERGENCE_BARRIER, ["larry-01", "larry-02", "larry-03"]).arrive("larry-02")
    assert larry(["status", *run_args(settings, ks, "--json")]) == 0
    state = json.loads(capsys.readouterr().out)
    by_id = {s["larry"]: s for s in state["larrys"]}
    assert [s["larry"] for s in state["larrys"]] == ["larry-01", "larry-02", "larry-03"]
    for larry_id, (percent, _message) in PROGRESS.items():
        s = by_id[larry_id]
        assert s["status"] == "in_progress" and s["progress"] == percent
        assert s["started_at"].endswith("Z") and s["completed_at"] is None
        assert s["ledger"]["committed"] == built["committed"][larry_id]
        assert s["ledger"]["limit"] == DEV.larry(larry_id).token_budget
        assert [t["task"] for t in s["active_tasks"]] == [built["held"][larry_id][1]]
        assert s["active_tasks"][0]["owner"].startswith(f"{larry_id}/{built['held'][larry_id][0]}/")
        assert s["workers_active"] == len(DEV.larry(larry_id).workers)
    assert by_id["larry-02"]["tasks"] == {"total": 12, "pending": 9, "in_progress": 1, "completed": 2, "failed": 0}
    assert by_id["larry-02"]["findings"] == {"cves": {"critical": 3, "high": 4, "medium": 5}}
    assert by_id["larry-03"]["findings"] == {"assets_discovered": 87, "prs_created": 2, "coverage_delta": 8.0}
    assert state["reserve_pool"] == {"left": 25_000, "plan": 25_000}
    workers = {w["worker"]: w for w in state["workers"]}
    assert len(workers) == 16 and workers["audit-worker"]["larry"] == "larry-02"
    assert workers["audit-worker"]["status"] == "busy" and workers["audit-worker"]["node"] == "k3s-worker02"
    assert all(0 <= w["heartbeat_age_s"] < 5 for w in workers.values())
    assert state["barriers"] == [
        {"name": CONVERGENCE_BARRIER, "arrived": ["larry-02"], "missing": ["larry-01", "larry-03"], "released_at": None},
        {"name": REPORTS_BARRIER, "arrived": [], "missing": ["larry-01", "larry-02", "larry-03"], "released_at": None}]


def test_status_heartbeat_age_grows_and_a_silent_worker_is_not_active(r, ks, settings, capsys):
    WorkerRegistry(r, ks).register("cleanup-worker", "larry-01", "k3s-worker01", "busy")
    # a heartbeat 20 s in the past (the primary's clock): beyond the registry's grace
    r.zadd(ks.worker_heartbeats, {"cleanup-worker": int(r.time()[0]) * 1000 - 20_000})
    assert larry(["status", *run_args(settings, ks, "--json")]) == 0
    state = json.loads(capsys.readouterr().out)
    (worker,) = state["workers"]
    assert 19.5 < worker["heartbeat_age_s"] < 25 and worker["alive"] is False
    assert state["larrys"][0]["workers_active"] == 0


def test_status_table_names_every_larry_and_figure(r, ks, settings, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    build_run(r, ks)
    assert larry(["status", *run_args(settings, ks)]) == 0
    out = capsys.readouterr().out
    for text in ("larry-01", "larry-02", "larry-03", "60%", "45%", "35%", "Critical: 3", "Assets: 87",
                 "Coverage: +8.0%", "audit-worker", "reserve pool 25,000 of 25,000",
                 "Barrier convergence: 0/3 arrived, waiting for larry-01, larry-02, larry-03"):
        assert text in out, text


def test_preflight_passes_for_a_consistent_ledger(r, ks, settings, capsys):
    assert larry(["preflight", *run_args(settings, ks)]) == 0
    out = output(capsys)
    assert "✔ Redis reachable ok" in out and "✘" not in out
    assert "no Sentinel configured" in out and "no run ledger in Redis yet" in out
    assert "plan allocates 478,000 of 478,000" in out
    build_run(r, ks)
    Ledger(r, ks, "larry-03").record("big", 205_000)  # crosses 90 %: draws the reserve pool
    assert r.get(ks.tokens("larry-03", "emergency")) == "25000"
    assert larry(["preflight", *run_args(settings, ks)]) == 0
    assert "✔ ledger matches plan ok limits equal the plan's; reserve pool 0 + drawn 25,000" in output(capsys)


def test_preflight_fails_when_the_ledger_differs_from_the_plan(r, ks, settings, capsys):
    build_run(r, ks)
    Ledger(r, ks, "larry-02").set_limit(90_000, overwrite=True)
    r.incrby(ks.token_pool, 1)
    assert larry(["preflight", *run_args(settings, ks)]) == 1
    out = output(capsys)
    assert "larry-02: ledger limit 90,000 != plan 81,000" in out
    assert "reserve pool 25,001 + drawn 0 != plan 25,000" in out


def test_preflight_fails_on_an_over_budget_plan(r, ks, settings, capsys):
    # seed 004's figures do not add up (Pulumi.cortex.yaml says so); preflight must say it too
    args = ["preflight", "--stack", "cortex", "--project-dir", str(ROOT), "--redis-url", settings.url,
            "--key-prefix", ks.prefix]
    assert larry(args) == 1
    out = output(capsys)
    assert "✘ system budget failed plan allocates 365,000 of 295,000" in out


def test_preflight_fails_when_redis_is_unreachable(capsys, monkeypatch):
    monkeypatch.setenv("LARRY_REDIS_RETRY_FOR", "0.3")
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert larry(["preflight", "--stack", "dev", "--project-dir", str(ROOT), "--redis-url", url]) == 1
    captured = capsys.readouterr()
    out = " ".join(captured.out.split())
    assert "✘ Redis reachable failed" in out and "ledger matches plan skipped Redis unreachable" in out
    assert "Traceback" not in captured.err


def test_preflight_checks_sentinel_quorum(sentinel_cluster, ks, capsys, monkeypatch):
    monkeypatch.setenv("LARRY_REDIS_SENTINELS", ",".join(f"{h}:{p}" for h, p in sentinel_cluster.sentinel_addresses))
    monkeypatch.delenv("LARRY_REDIS_URL", raising=False)
    args = ["preflight", "--stack", "dev", "--project-dir", str(ROOT), "--key-prefix", ks.prefix]
    assert larry(args) == 0
    out = output(capsys)
    assert "✔ Sentinel quorum ok" in out and "OK 3 usable Sentinels" in out
    for sentinel in sentinel_cluster.sentinels[1:]:
        sentinel.kill()
    # the survivor counts the others out once they are down for down-after-milliseconds (1 s)
    deadline = time.monotonic() + 10
    while larry(args) == 0 and time.monotonic() < deadline:
        capsys.readouterr()
        time.sleep(0.2)
    out = output(capsys)
    assert "✘ Sentinel quorum failed" in out and "NOQUORUM 1 usable Sentinels" in out


def _archive(tmp_path: Path, age: float = 0.0) -> Path:
    archive = tmp_path / "archives" / "3-larry-execution-20260101-000000.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(b"")
    stamp = time.time() - age
    os.utime(archive, (stamp, stamp))
    return archive


def _run_keys(r, ks: Keyspace) -> set[str]:
    return {key for pattern in ks.run_patterns() for key in r.scan_iter(match=pattern, count=1000)}


def test_cleanup_refuses_an_unfinished_or_unarchived_run(r, ks, settings, tmp_path, capsys):
    build_run(r, ks)
    before = _run_keys(r, ks)
    cleanup = ["cleanup", *run_args(settings, ks, "--coordination-dir", str(tmp_path))]
    _archive(tmp_path)
    assert larry(cleanup) == 2
    assert "the run has not finished (larry-01 is in_progress" in capsys.readouterr().err
    finish_run(r, ks)
    _archive(tmp_path).unlink()
    assert larry(cleanup) == 2
    assert "no archive under" in capsys.readouterr().err
    _archive(tmp_path, age=3600)  # a previous run's archive does not count
    assert larry(cleanup) == 2
    err = capsys.readouterr().err
    assert "is older than the run's end" in err and err.count("\n") == 1 and "Traceback" not in err
    assert before <= _run_keys(r, ks), "a refused cleanup removed keys"


def test_cleanup_dry_run_counts_and_removes_nothing(r, ks, settings, tmp_path, capsys):
    build_run(r, ks)
    finish_run(r, ks)
    _archive(tmp_path)
    before = _run_keys(r, ks)
    assert larry(["cleanup", *run_args(settings, ks, "--coordination-dir", str(tmp_path), "--dry-run")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"would remove {len(before)} keys (") and f"{ks.prefix}phase:* 15" in out
    assert _run_keys(r, ks) == before


def test_cleanup_unlinks_every_run_key_and_nothing_else(own_server, tmp_path, capsys):
    from runtime.coordination.connection import RedisSettings, connect
    settings = RedisSettings(url=own_server.url, retry_for=2.0)
    r = connect(settings)
    ks, other = Keyspace(prefix="run:"), Keyspace(prefix="other:")
    build_run(r, ks)
    finish_run(r, ks)
    build_run(r, other)
    r.set("run:unrelated", "x")  # same prefix, not a key family of a run
    _archive(tmp_path)
    before_other = _run_keys(r, other)
    removed = len(_run_keys(r, ks))
    assert removed > 100 and r.exists(ks.stream) and r.exists(ks.token_pool)
    r.config_resetstat()
    assert larry(["cleanup", *run_args(settings, ks, "--coordination-dir", str(tmp_path))]) == 0
    assert capsys.readouterr().out.startswith(f"removed {removed} keys (")
    assert _run_keys(r, ks) == set() and r.get("run:unrelated") == "x"
    assert _run_keys(r, other) == before_other
    stats = r.info("commandstats")
    assert stats["cmdstat_unlink"]["calls"] >= 1 and stats["cmdstat_scan"]["calls"] >= 1
    assert "cmdstat_del" not in stats and "cmdstat_keys" not in stats and "cmdstat_flushall" not in stats
    r.close()


def test_cleanup_force_skips_the_archive_check(r, ks, settings, tmp_path, capsys):
    build_run(r, ks)
    assert larry(["cleanup", *run_args(settings, ks, "--coordination-dir", str(tmp_path), "--force")]) == 0
    assert capsys.readouterr().out.startswith("removed ")
    assert _run_keys(r, ks) == set()


@pytest.mark.parametrize("argv, message", [
    (["status", "--stack", "dev", "--project-dir", str(ROOT), "--redis-url", "nope://x"], "Redis URL must specify"),
    (["status", "--project-dir", str(ROOT)], "no plan: pass --plan FILE"),
    (["cleanup", "--stack", "dev", "--project-dir", str(ROOT), "--redis-url", "redis://127.0.0.1:1/0"],
     "cannot reach Redis at redis://127.0.0.1:1/0"),
    (["status", "--stack", "dev", "--project-dir", str(ROOT), "--redis-url", "redis://127.0.0.1:1/0",
      "--key-prefix", "é"], "key and channel names must be printable ASCII"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("LARRY_PLAN", raising=False)
    monkeypatch.setenv("LARRY_REDIS_RETRY_FOR", "0.3")
    assert larry(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
