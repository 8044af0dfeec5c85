"""`larry run` with ``larry:catalog`` enabled: the run starts a catalog replica seeded with the
baseline, its catalog workers write what they discover into it, and nothing stays buffered.
The dev stack on this machine, real processes, the session's redis-server."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import yaml

from runtime.agent.simulated import assets_for
from runtime.catalog.baseline import read_baseline
from runtime.catalog.store import CatalogStore
from runtime.coordination.keys import Keyspace
from tests.runtime.catalog.conftest import BASELINE
from tests.runtime.catalog.service import LARRY
from tests.support.project import ROOT


def test_a_local_run_serves_the_catalog_and_its_catalog_workers_fill_it(tmp_path, redis_server, r, prefix):
    project = tmp_path / "project"
    project.mkdir()
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    stack["config"]["larry:catalog"] = {"enabled": True, "baseline": "baseline.yaml"}
    (project / "Pulumi.dev.yaml").write_text(yaml.safe_dump(stack))
    shutil.copy(BASELINE, project / "baseline.yaml")
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LARRY_")}
    # The children run the `larry` console script; this tree's code goes first on their path.
    env |= {"LARRY_DEADLINE_ALLOWANCE": "60", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([*LARRY, "run", "--stack", "dev", "--project-dir", str(project), "--speed", "600",
                           "--coordination-dir", str(run_dir), "--redis-url", redis_server.url, "--key-prefix", prefix],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]

    store = CatalogStore(r, Keyspace(prefix=prefix))
    results = [json.loads(p.read_text()) for p in (run_dir / "results").glob("*/*.json")]
    reported = {asset.id for res in results if res.get("assets_reported")
                for asset in assets_for(res["task"], res["findings"]["assets_discovered"])}
    assert reported, "no worker of the dev stack reported assets"
    baseline = {asset.id for asset in read_baseline(BASELINE)}
    stats = store.stats()
    # Each discovered asset once, however many workers found it; rediscovered baseline assets
    # (the cortex and aiana APIs) stay the baseline's.
    assert stats["baseline"] == 42 and len(reported & baseline) == 4
    assert stats["new"] == len(reported - baseline)
    assert {rec.id for rec in store.all()} == reported | baseline
    assert all(p.read_text() == "" for p in (run_dir / "results").glob("*/catalog-outbox-*.jsonl"))
    assert (run_dir / "logs" / "catalog.log").read_text().count("42 of 42 assets added") == 1
