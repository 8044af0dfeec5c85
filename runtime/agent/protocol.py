"""The line protocol between `larry worker` and the payload (the agent) it runs.

The worker starts the payload once per task with this environment:

==========================  ===========================================================
``LARRY_ID``                the Larry the worker belongs to
``LARRY_WORKER_ID``         the worker's name
``LARRY_TASK_ID``           the task being run; ``LARRY_TASK_TITLE`` its title
``LARRY_TASK_MINUTES``      the time the plan gives this task (minutes, unscaled)
``LARRY_TOKEN_BUDGET``      tokens the payload may still spend on this task
``LARRY_FENCE``             the lease's fencing token (pass it on to anything you write)
``LARRY_RESULTS_DIR``       a directory for the payload's own output files
``LARRY_PROTOCOL_FILE``     a file the payload may append protocol lines to instead
==========================  ===========================================================

The payload reports by printing lines ``@larry <json object>`` on stdout (or appending them
to ``LARRY_PROTOCOL_FILE``). Every other line is ordinary log output. Fields, all optional:

``tokens``    int >= 0, tokens used *since the previous report* (the worker charges the ledger)
``findings``  object merged into the task's findings, e.g. ``{"cves": {"critical": 1}}``
``progress``  0-100, the task's progress
``message``   a short status text

Example::

    @larry {"tokens": 1200, "progress": 40, "message": "scanned 3 of 7 namespaces"}
    @larry {"findings": {"cves": {"critical": 1, "high": 2}, "prs_created": 1}}

A malformed protocol line is counted and skipped; it never stops the worker. The worker stops
the payload (SIGTERM, then SIGKILL) when its lease is lost, the deadline passes or the
reported tokens exceed the budget.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

PREFIX = "@larry "


@dataclass(frozen=True)
class PayloadReport:
    tokens: int = 0
    findings: dict[str, Any] = field(default_factory=dict)
    progress: int | None = None
    message: str | None = None


class ProtocolError(ValueError):
    """A line that starts with the protocol prefix but is not a valid report."""


def is_protocol_line(line: str) -> bool:
    return line.startswith(PREFIX)


def parse_line(line: str) -> PayloadReport:
    """Parse one ``@larry {...}`` line; raises ProtocolError saying what is wrong."""
    try:
        data = json.loads(line[len(PREFIX):])
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON after {PREFIX.strip()!r}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ProtocolError("expected a JSON object")
    tokens = data.get("tokens", 0)
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise ProtocolError(f"'tokens' must be a non-negative integer, got {tokens!r}")
    findings = data.get("findings", {})
    if not isinstance(findings, dict):
        raise ProtocolError("'findings' must be an object")
    progress = data.get("progress")
    if progress is not None and (isinstance(progress, bool) or not isinstance(progress, (int, float))
                                 or not 0 <= progress <= 100):
        raise ProtocolError(f"'progress' must be a number 0-100, got {progress!r}")
    message = data.get("message")
    if message is not None and not isinstance(message, str):
        raise ProtocolError("'message' must be a string")
    return PayloadReport(tokens, findings, None if progress is None else int(progress), message)


def format_line(report: PayloadReport) -> str:
    """The line a payload prints for ``report`` (used by the simulated payload)."""
    data: dict[str, Any] = {}
    if report.tokens:
        data["tokens"] = report.tokens
    if report.findings:
        data["findings"] = report.findings
    if report.progress is not None:
        data["progress"] = report.progress
    if report.message is not None:
        data["message"] = report.message
    return PREFIX + json.dumps(data, separators=(",", ":"))


def merge_findings(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Add ``new`` into ``into``: numbers are summed, nested objects merged, the rest replaced."""
    for key, value in new.items():
        current = into.get(key)
        if isinstance(value, dict):
            into[key] = merge_findings(dict(current) if isinstance(current, dict) else {}, value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(current, (int, float)):
            into[key] = current + value
        else:
            into[key] = value
    return into
