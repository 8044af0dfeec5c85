"""`larry cleanup` against a real redis-server: refusals, dry run, SCAN + UNLINK of the run's keys only."""
from __future__ import annotations

import os
import time
from pathlib import Path

from runtime.cli import main as larry
from runtime.coordination.keys import Keyspace
from tests.runtime.commands.run_state import ROOT, build_run, finish_run, run_args


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
    # phase:* is 15, 4 of seed 001's findings, and the set of Larrys with a stream of their own
    assert out.startswith(f"would remove {len(before)} keys (") and f"{ks.prefix}phase:* 20" in out
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
    assert removed > 100 and r.exists(ks.stream) and r.exists(ks.token_ops)
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


def test_unreachable_redis_is_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.setenv("LARRY_REDIS_RETRY_FOR", "0.3")
    argv = ["cleanup", "--stack", "dev", "--project-dir", str(ROOT), "--redis-url", "redis://127.0.0.1:1/0"]
    assert larry(argv) == 2
    err = capsys.readouterr().err
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in err and err.count("\n") == 1 and "Traceback" not in err
