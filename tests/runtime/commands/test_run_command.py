"""`larry run` refusing before it writes anything: an over-budget plan, a Redis and prefix
another run holds; unique run directories; the Redis password kept out of messages, files,
command lines. (Whole runs are tests/scenarios/test_run.py.)"""
from __future__ import annotations

import json
import re
from argparse import Namespace

import pytest
import yaml

from plan.loader import load_config, load_stack
from runtime import cli
from runtime.commands.run import Supervisor, new_run_dir
from runtime.coordination.connection import RedisSettings, connect
from runtime.coordination.keys import Keyspace
from runtime.support.credentials import take_password
from runtime.support.run_lock import RunLock
from tests.support.project import ROOT
from tests.support.redis_servers import RedisServer, free_port

PASSWORD = "pw-5d1e9a7c"
DEV = load_stack("dev", ROOT)


@pytest.fixture
def locked_server(tmp_path):
    server = RedisServer(tmp_path / "redis", password=PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture
def clean_env(monkeypatch):
    # what `larry` sets in its own environment must not leak into other tests
    for name in ("LARRY_REDIS_PASSWORD", "LARRY_REDIS_URL"):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("LARRY_REDIS_RETRY_FOR", "0.5")


def stack_values(stack: str) -> dict:
    """The ``larry:*`` config of a committed stack file, to edit."""
    return yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_an_over_budget_plan_is_refused_before_anything_is_written(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert cli.main(["run", "--stack", "cortex", "--project-dir", str(ROOT), "--coordination-dir", str(run_dir)]) == 2
    err = one_line(capsys)
    assert "the policy pack would block this plan (plan allocates 365,000 of 295,000" in err
    assert "pass --allow-over-budget to run it anyway" in err
    assert not run_dir.exists()


def test_a_second_run_on_the_same_redis_and_prefix_is_refused_naming_the_first(locked_server, tmp_path, capsys,
                                                                              clean_env):
    ks = Keyspace(prefix="shared:")
    r = connect(RedisSettings(url=locked_server.url, password=PASSWORD, retry_for=2))
    first = RunLock(r, ks.run_lock, "host a, pid 1, run directory /runs/first").acquire()
    run_dir = tmp_path / "second"
    try:
        url = f"redis://:{PASSWORD}@127.0.0.1:{locked_server.port}/0"
        assert cli.main(["run", "--stack", "dev", "--project-dir", str(ROOT), "--redis-url", url,
                         "--key-prefix", ks.prefix, "--coordination-dir", str(run_dir)]) == 2
    finally:
        first.release()
        r.close()
    err = one_line(capsys)
    assert "refusing: another larry run is using this Redis and key prefix (host a, pid 1, run directory " \
           "/runs/first)" in err
    assert f"at redis://127.0.0.1:{locked_server.port}/0, key prefix 'shared:'" in err
    assert PASSWORD not in err and not run_dir.exists()


@pytest.mark.parametrize("url", [f"redis://:{PASSWORD}@127.0.0.1:{{port}}/0",  # unreachable
                                 f"redis://:wrong-{PASSWORD}@127.0.0.1:{{server}}/0"])  # refused
def test_status_never_prints_the_password(url, locked_server, capsys, clean_env):
    url = url.format(port=free_port(), server=locked_server.port)
    assert cli.main(["status", "--stack", "dev", "--project-dir", str(ROOT), "--redis-url", url]) == 2
    err = one_line(capsys)
    assert "Redis at redis://127.0.0.1:" in err and PASSWORD not in err


def test_the_password_reaches_the_run_s_processes_by_environment_only(tmp_path, clean_env):
    args = cli.build_parser("run").parse_args(
        ["run", "--stack", "dev", "--project-dir", str(ROOT), "--redis-url", f"redis://:{PASSWORD}@db:6379/0"])
    args.redis_url = take_password(args.redis_url)  # what cli.main does with every --redis-url
    supervisor = Supervisor(DEV, args, tmp_path, None)
    processes = (tmp_path / "processes.json").read_text()
    assert json.loads(processes)["redis"] == "redis://db:6379/0" and PASSWORD not in processes
    assert all(PASSWORD not in " ".join(child.argv) for child in supervisor.children.values())
    assert supervisor.env["LARRY_REDIS_URL"] == "redis://db:6379/0"
    assert supervisor.env["LARRY_REDIS_PASSWORD"] == PASSWORD


def test_run_directories_are_unique_even_within_one_second():
    args = Namespace(coordination_dir=None, project_dir=ROOT)
    first, second = new_run_dir(args, DEV), new_run_dir(args, DEV)
    assert first != second and first.parent == second.parent == (ROOT / ".larry-runs").resolve()
    assert re.fullmatch(r"dev-\d{8}-\d{6}-[0-9a-f]{6}", first.name)


def test_a_payload_after_the_double_dash_is_what_every_worker_runs(tmp_path, clean_env):
    args = cli.build_parser("run").parse_args(["run", "--stack", "dev", "--project-dir", str(ROOT)])
    args.payload = ["my-agent", "--task-from-env"]  # what cli.main takes from after `--`
    supervisor = Supervisor(DEV, args, tmp_path, None)
    workers = [child.argv for child in supervisor.children.values() if child.kind == "worker"]
    assert len(workers) == len(DEV.workers)
    assert all(argv[argv.index("--") + 1:] == ["my-agent", "--task-from-env"] for argv in workers)


def test_a_payload_cannot_be_combined_with_the_simulated_overspend(tmp_path, capsys):
    assert cli.main(["run", "--stack", "dev", "--project-dir", str(ROOT), "--coordination-dir", str(tmp_path / "r"),
                     "--overspend-task", "fix-pgadmin-crashloop", "--", "my-agent"]) == 2
    assert "--overspend-task plays the simulated payload" in one_line(capsys)


def test_a_worker_with_an_agent_profile_runs_it_and_the_others_the_simulation(tmp_path, clean_env):
    """`larry run` gives a worker with a profile no command after ``--``: `larry worker` then runs
    the profile's command with its adapter, as the worker's Job does. Every master is a process."""
    values = stack_values("dev")
    values.setdefault("larry:agents", {})["echo"] = {"command": ["sh", "-c", "echo {task_id}"], "usage": "larry-protocol"}
    values["larry:larrys"][0]["workers"][1]["agent"] = "echo"  # larry-01/consolidation-worker
    values["larry:larrys"][0]["masters"][0]["agent"] = "echo"
    cfg = load_config(values, "dev")
    args = cli.build_parser("run").parse_args(["run", "--stack", "dev", "--project-dir", str(ROOT)])
    supervisor = Supervisor(cfg, args, tmp_path, None)
    workers = {name: child.argv for name, child in supervisor.children.items() if child.kind == "worker"}
    profiled = {f"worker-{w.name}" for _, w in cfg.workers if cfg.agent_of(w) is not None}
    assert "worker-consolidation-worker" in profiled
    assert all("--" not in workers.pop(name) for name in profiled)
    assert all(argv[argv.index("--") + 1:][-3:] == ["simulate", "--speed", "1"] for argv in workers.values())
    masters = sorted(name for name, child in supervisor.children.items() if child.kind == "master")
    assert masters == sorted(f"master-{larry.id}-{m.name}" for larry in cfg.larrys for m in larry.masters)
    assert all("--" not in supervisor.children[name].argv for name in masters), "a master finds its own profile"


def test_the_simulated_overspend_of_a_task_an_agent_runs_is_refused(tmp_path, capsys, monkeypatch):
    values = stack_values("dev")
    values.setdefault("larry:agents", {})["echo"] = {"command": ["sh", "-c", "echo {task_id}"], "usage": "larry-protocol"}
    values["larry:larrys"][0]["workers"][0]["agent"] = "echo"  # larry-01/cleanup-worker
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": values}))
    task = load_config(values, "dev").larrys[0].workers[0].tasks[0].id
    assert cli.main(["run", "--stack", "dev", "--project-dir", str(tmp_path), "--coordination-dir", str(tmp_path / "r"),
                     "--overspend-task", task]) == 2
    assert f"--overspend-task plays the simulated payload; {task} runs agent profile 'echo'" in one_line(capsys)
