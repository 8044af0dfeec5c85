"""The workers' fenced result files on the coordination volume.

``{coordination-dir}/results/{larry}/{task}.json`` is written (atomically) by the worker
whose finish of the task Redis accepted, with that lease's ``fence``; the payload's own
files go to the directory ``{coordination-dir}/results/{larry}/{task}/``. A reader trusts
a file only when its fence equals the one in ``task:result:{task}``. In a cluster each Larry's
volume is its own: converge rebuilds the files its volume lacks from ``task:result:{task}``
(:func:`stored_result`), without the payload's own files, which stay on the Larry's volume.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from plan.statuses import TaskStatus
from runtime.support.files import write_atomic


def results_dir(coordination_dir: str | Path, larry: str) -> Path:
    return Path(coordination_dir) / "results" / larry


def write_result(directory: Path, task: str, record: dict) -> None:
    write_atomic(directory / f"{task}.json", json.dumps(record, indent=2) + "\n")


def stored_result(larry: str, task: str, stored: Mapping[str, str]) -> dict:
    """The record a worker writes, from the accepted fenced write in Redis (its hash fields:
    token, owner, outcome, data, at; the owner is ``larry/worker/process``). Raises KeyError,
    IndexError or ValueError (JSONDecodeError) on a hash of another shape."""
    data = json.loads(stored["data"])
    if stored["outcome"] != TaskStatus.COMPLETED:
        data = {"detail": data.get("error")}
    return {"larry": larry, "task": task, "worker": stored["owner"].split("/")[1], "fence": int(stored["token"]),
            "status": stored["outcome"], **data, "written_at": stored["at"]}


def read_result(directory: Path, task: str, fence: int) -> dict:
    """The task's result file if it carries ``fence``, else {}."""
    try:
        data = json.loads((directory / f"{task}.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and fence and data.get("fence") == fence else {}
