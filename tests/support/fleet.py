"""Generated fleets of simulated workers, for the scale tests and bench/bench_scale.py.

The fleets are ``tests.components.pulumi_graph.fleet_values`` (the dev stack's larry-03 copied,
three chained tasks per worker) without masters or agent profiles, so every worker plays the
simulated payload, and with a system budget that covers every Larry's.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.components.pulumi_graph import fleet_values
from tests.support.project import ROOT

STACK = "scale"


def simulated_fleet(larrys: int, workers: int) -> dict[str, Any]:
    """The ``larry:*`` values of ``larrys`` Larrys of ``workers`` simulated workers each."""
    values = fleet_values(larrys, workers)
    for larry in values["larry:larrys"]:
        larry["masters"] = []
        for worker in larry["workers"]:
            worker.pop("agent", None)
            worker.pop("master", None)
    values.pop("larry:agents", None)
    values["larry:budget"]["systemTokens"] = sum(larry["tokenBudget"] for larry in values["larry:larrys"])
    return values


def write_project(project: Path, values: dict[str, Any]) -> Path:
    """A project directory whose stack :data:`STACK` holds ``values``, its Larrys in
    ``plans/fleet.yaml`` (``larry:planFile``); returns the directory."""
    values = dict(values)
    fleet = {"larry:larrys": values.pop("larry:larrys")}
    (project / "plans").mkdir(parents=True)
    (project / "plans" / "fleet.yaml").write_text(yaml.safe_dump(fleet, sort_keys=False))
    stack = {"config": {**values, "larry:planFile": "plans/fleet.yaml"}}
    (project / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(stack, sort_keys=False))
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    return project
